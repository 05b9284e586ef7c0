// Import throughput on CIFAR-10 (50,000 32x32 JPEGs): `npm run bench:import [-- count]`.
// Reports images/s for the full import (decode, hash, thumbnail, SQLite) and, in the same process,
// for a bare sharp decode+thumbnail loop over the same files: the ratio shows what the import adds.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import sharp from 'sharp';
import { importPaths } from '../../app/media/import.ts';
import { scanImages } from '../../app/media/scan.ts';
import { openProject } from '../../app/store/project.ts';

const ARCHIVE = path.resolve(import.meta.dirname, '../../../shared/datasets/cifar10-train.tar.gz');
const CIFAR = path.join(os.tmpdir(), 'cifar');

function ensureCifar(): string {
  const train = path.join(CIFAR, 'train');
  if (!fs.existsSync(train)) {
    fs.mkdirSync(CIFAR, { recursive: true });
    execFileSync('tar', ['xzf', ARCHIVE, '-C', CIFAR]);
  }
  return train;
}

async function referenceLoop(files: string[]): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < files.length) {
      const bytes = await fs.promises.readFile(files[next++]);
      await sharp(bytes).resize(128, 128, { fit: 'inside', withoutEnlargement: true }).webp({ quality: 80 }).toBuffer();
    }
  }));
  return files.length / ((performance.now() - started) / 1000);
}

const limit = Number(process.argv[2] ?? 50_000);
const train = ensureCifar();
const { files } = await scanImages([train]);
const chosen = files.slice(0, limit).map((f) => f.path);
const source = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-import-src-'));
for (const file of chosen) {
  const target = path.join(source, path.relative(train, file));
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.symlinkSync(file, target);
}

const rounds: { import: number; reference: number }[] = [];
for (let round = 0; round < 3; round++) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-import-'));
  const project = openProject(dir, { create: true });
  const summary = await importPaths(project, [source], { labelsFromFolders: true });
  project.close();
  fs.rmSync(dir, { recursive: true, force: true });
  const reference = await referenceLoop(chosen);
  rounds.push({ import: summary.added / summary.seconds, reference });
  console.log(`round ${round + 1}: import ${summary.imagesPerSecond.toFixed(0)} img/s (${summary.added} images), bare sharp loop ${reference.toFixed(0)} img/s`);
}
fs.rmSync(source, { recursive: true, force: true });
const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const imp = median(rounds.map((r) => r.import));
const ref = median(rounds.map((r) => r.reference));
console.log(JSON.stringify({ images: chosen.length, importPerSecond: Math.round(imp), bareSharpPerSecond: Math.round(ref), ratio: +(imp / ref).toFixed(2), cores: os.cpus().length }));
