/** Small synthetic image sets for engine tests: two classes a tiny network separates in a few steps. */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { Rng } from '../../app/engine/simclr/random.ts';

const created: string[] = [];
process.once('exit', () => {
  for (const dir of created) fs.rmSync(dir, { recursive: true, force: true });
});

/** A fresh folder under the system temp dir, removed when the test process exits. */
export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  created.push(dir);
  return dir;
}

/**
 * A size×size PNG: "warm" images are a red-orange field with a bright disc, "cool" ones a
 * blue-green field with a dark square; every pixel gets noise so no two files are equal.
 */
export async function writeShapeImage(file: string, kind: 'warm' | 'cool', rng: Rng, size = 24): Promise<void> {
  const pixels = Buffer.alloc(size * size * 3);
  const base = kind === 'warm' ? [200, 80, 40] : [40, 110, 200];
  const centre = size / 2 + rng.uniform(-3, 3);
  const radius = size / 4;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const inside =
        kind === 'warm'
          ? (x - centre) ** 2 + (y - centre) ** 2 < radius ** 2
          : Math.abs(x - centre) < radius && Math.abs(y - centre) < radius;
      const shift = inside ? (kind === 'warm' ? 50 : -35) : 0;
      for (let c = 0; c < 3; c++) {
        const value = base[c] + shift + rng.uniform(-30, 30);
        pixels[(y * size + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(value)));
      }
    }
  }
  await sharp(pixels, { raw: { width: size, height: size, channels: 3 } }).png().toFile(file);
}

/** Writes `perClass` images of each kind into dir/warm and dir/cool; returns the paths by kind. */
export async function writeShapeFolders(dir: string, perClass: number, seed = 7, size = 24): Promise<Record<'warm' | 'cool', string[]>> {
  const rng = new Rng(seed);
  const out: Record<'warm' | 'cool', string[]> = { warm: [], cool: [] };
  for (const kind of ['warm', 'cool'] as const) {
    fs.mkdirSync(path.join(dir, kind), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const file = path.join(dir, kind, `${kind}-${String(i).padStart(3, '0')}.png`);
      await writeShapeImage(file, kind, rng, size);
      out[kind].push(file);
    }
  }
  return out;
}

export const CONTRAST_BIN = path.resolve(import.meta.dirname, '../../bin/contrast.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The JSON lines of stdout (with --json). */
  events: Record<string, unknown>[];
}

/** Runs `contrast <args>` in a child process, as a user would. */
export function runCli(args: string[]): CliResult {
  const result = spawnSync(process.execPath, [CONTRAST_BIN, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  const events = result.stdout
    .split('\n')
    .filter((line) => line.startsWith('{') || line.startsWith('['))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { code: result.status, stdout: result.stdout, stderr: result.stderr, events };
}

/** Starts `contrast <args> --json` and resolves once `stop(event)` says so, handing back the child. */
export function startCli(args: string[], stop: (event: Record<string, unknown>) => boolean) {
  const child = spawn(process.execPath, [CONTRAST_BIN, ...args, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const events: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const reached = new Promise<void>((resolve) => {
    let buffered = '';
    child.stdout.on('data', (chunk) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        const event = JSON.parse(line);
        events.push(event);
        if (stop(event)) resolve();
      }
    });
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, events, reached, exited, stderr: () => stderr };
}

/**
 * A project with `perClass` warm and cool images imported, and `labelledPerClass` of each
 * labelled through a CSV, all through the CLI.
 */
export async function shapesProject(perClass: number, labelledPerClass: number, size = 24): Promise<{ dir: string; project: string }> {
  const dir = tempDir('contrast-train-');
  const files = await writeShapeFolders(path.join(dir, 'images'), perClass, 7, size);
  const project = path.join(dir, 'project');
  for (const args of [['init', project], ['import', project, path.join(dir, 'images')]]) {
    const result = runCli(args);
    if (result.code !== 0) throw new Error(`contrast ${args[0]} failed: ${result.stderr}`);
  }
  const csv = path.join(dir, 'labels.csv');
  const rows = (['warm', 'cool'] as const).flatMap((kind) => files[kind].slice(0, labelledPerClass).map((file) => `${file},${kind}`));
  fs.writeFileSync(csv, ['path,class', ...rows].join('\n') + '\n');
  const labelled = runCli(['label', project, '--csv', csv]);
  if (labelled.code !== 0) throw new Error(`contrast label failed: ${labelled.stderr}`);
  return { dir, project };
}

/** The bundled sample: ten CIFAR-10 classes, one folder each. */
export const SAMPLE_IMAGES = path.resolve(import.meta.dirname, '../../resources/sample');
/** Debian's PyTorch (python3-torch), which the PyTorch comparisons run with. */
export const TORCH_PYTHON = '/usr/bin/python3';

/** Runs `contrast <args>`, failing the test unless it succeeds; returns what it printed. */
export function cliSucceeds(args: string[]): string {
  const result = runCli(args);
  if (result.code !== 0) throw new Error(`contrast ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

/** A new project holding the sample images, labelled by their folders. */
export function sampleProject(prefix: string): { dir: string; projectDir: string } {
  const dir = tempDir(prefix);
  const projectDir = path.join(dir, 'project');
  cliSucceeds(['init', projectDir]);
  cliSucceeds(['import', projectDir, SAMPLE_IMAGES, '--labels-from-folders']);
  return { dir, projectDir };
}

/** Why the PyTorch checks cannot run on this machine (printed as the skip reason), or false when they can. */
export function whyTorchCannotRun(modules: string[], packages: string): string | false {
  const probe = spawnSync(TORCH_PYTHON, ['-c', `import ${modules.join(', ')}`], { encoding: 'utf8' });
  if (probe.status === 0) return false;
  const reason = `PyTorch is not installed for ${TORCH_PYTHON} (apt-get install ${packages}): ${(probe.stderr || probe.error?.message || '').trim().split('\n').at(-1)}`;
  console.log(`# skipped: ${reason}`);
  return reason;
}
