import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { openProject, type Project } from '../../app/store/project.ts';
import { classIdFor, ensureSplits, setLabels } from '../../app/store/labels.ts';
import { cachePath, epochOrder, labelledRows, openPixelCache } from '../../app/engine/data/dataset.ts';
import { trainingClasses } from '../../app/store/ground_truth.ts';
import { Rng } from '../../app/engine/simclr/random.ts';
import { tempDir } from '../integration/train_fixtures.ts';

/** A solid-colour 20×10 PNG (wider than tall, so the cache's centre crop is exercised). */
async function solidImage(file: string, rgb: [number, number, number]): Promise<void> {
  await sharp({ create: { width: 20, height: 10, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } })
    .png()
    .toFile(file);
}

function addImage(project: Project, file: string): number {
  const sha = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  return Number(
    project.db
      .prepare(
        `INSERT INTO images (path, sha256, size, width, height, format, thumbnail, created_at) VALUES (?, ?, 1, 20, 10, 'png', x'00', 'now')`,
      )
      .run(file, sha).lastInsertRowid,
  );
}

async function projectWithImages(colours: [number, number, number][]): Promise<{ project: Project; ids: number[]; files: string[] }> {
  const dir = tempDir('dataset-test-');
  const project = openProject(path.join(dir, 'project'), { create: true });
  const files: string[] = [];
  const ids: number[] = [];
  for (const [i, colour] of colours.entries()) {
    const file = path.join(dir, `image-${i}.png`);
    await solidImage(file, colour);
    files.push(file);
    ids.push(addImage(project, file));
  }
  return { project, ids, files };
}

test('the cache holds each image once at the training size, as RGB rows scaled to [0, 1] in batches', async () => {
  const { project, ids } = await projectWithImages([[255, 0, 0], [0, 128, 255]]);
  const cache = await openPixelCache(project, 4);
  assert.deepEqual(cache.imageIds, ids);
  assert.equal(cache.rowBytes, 4 * 4 * 3);
  const pixels = cache.readRows([1]);
  assert.deepEqual(Array.from(pixels.subarray(0, 3)), [0, 128, 255]);
  const batch = cache.batch([1, 0]);
  assert.deepEqual(batch.shape, [2, 4, 4, 3]);
  const values = await batch.data();
  assert.deepEqual(Array.from(values.subarray(0, 3)).map((v) => Math.round(v * 255)), [0, 128, 255]);
  assert.deepEqual(Array.from(values.subarray(48, 51)), [1, 0, 0]);
  batch.dispose();
  cache.close();
  project.close();
});

test('a second open decodes nothing; new images are added and removed ones dropped', async () => {
  const { project, ids, files } = await projectWithImages([[10, 20, 30], [40, 50, 60]]);
  const killedRebuild = `${cachePath(project, 4)}.tmp-99999`;
  fs.writeFileSync(killedRebuild, 'half a cache');
  (await openPixelCache(project, 4)).close();
  assert.ok(!fs.existsSync(killedRebuild), 'a rebuild removes what a killed one left behind');
  let decoded = 0;
  const again = await openPixelCache(project, 4, { onProgress: () => decoded++ });
  assert.equal(decoded, 0);
  again.close();

  const extra = path.join(path.dirname(files[0]), 'extra.png');
  await solidImage(extra, [70, 80, 90]);
  const extraId = addImage(project, extra);
  project.db.prepare('DELETE FROM images WHERE id = ?').run(ids[0]);
  const updated = await openPixelCache(project, 4, { onProgress: () => decoded++ });
  assert.equal(decoded, 1);
  assert.deepEqual(updated.imageIds, [ids[1], extraId]);
  assert.deepEqual(Array.from(updated.readRows([0, 1]).filter((_, i) => i % 48 < 3)), [40, 50, 60, 70, 80, 90]);
  updated.close();
  project.close();
});

test('images whose file vanished or broke are skipped with one warning naming them, every time', async () => {
  const { project, ids, files } = await projectWithImages([[1, 2, 3], [4, 5, 6], [7, 8, 9]]);
  fs.rmSync(files[0]);
  fs.writeFileSync(files[2], 'not a png any more');
  const warnings: string[] = [];
  const cache = await openPixelCache(project, 4, { warn: (message) => warnings.push(message) });
  assert.deepEqual(cache.imageIds, [ids[1]]);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /skipped 2 image.*image-0\.png \(file not found\).*image-2\.png/);
  cache.close();
  const again = await openPixelCache(project, 4, { warn: (message) => warnings.push(message) });
  assert.deepEqual(again.imageIds, [ids[1]]);
  assert.equal(warnings.length, 2);
  again.close();
  fs.rmSync(files[2]);
  (await openPixelCache(project, 4)).close();
  const written = fs.statSync(cachePath(project, 4)).mtimeMs;
  (await openPixelCache(project, 4)).close();
  assert.equal(fs.statSync(cachePath(project, 4)).mtimeMs, written, 'only vanished files: the cache is not rewritten');
  project.close();
});

test('labelled rows follow the splits, ignore suggested labels and map classes to their index', async () => {
  const colours: [number, number, number][] = Array.from({ length: 12 }, (_, i) => [i * 20, 0, 0]);
  const { project, ids } = await projectWithImages(colours);
  const cat = classIdFor(project.db, 'cat');
  const dog = classIdFor(project.db, 'dog');
  setLabels(project.db, ids.slice(0, 5), cat, 'human', 'test');
  setLabels(project.db, ids.slice(5, 10), dog, 'human', 'test');
  setLabels(project.db, ids.slice(10), dog, 'suggestion', 'model');
  ensureSplits(project.db, 0.2);
  const cache = await openPixelCache(project, 2);
  const classes = trainingClasses(project.db);
  assert.deepEqual(classes.map((c) => c.name), ['cat', 'dog']);
  const train = labelledRows(project, cache, 'train', classes);
  const val = labelledRows(project, cache, 'val', classes);
  assert.equal(train.rows.length + val.rows.length, 10);
  assert.ok(val.rows.length >= 2, 'each class gives val some images');
  for (const set of [train, val]) {
    set.rows.forEach((row, i) => assert.equal(set.labels[i], ids.indexOf(cache.imageIds[row]) < 5 ? 0 : 1));
  }
  cache.close();
  project.close();
});

test('epoch order is a seeded permutation; balanced order draws classes evenly', () => {
  const order = epochOrder(10, new Rng(3));
  assert.deepEqual([...order].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(epochOrder(10, new Rng(3)), order);
  const labels = [...Array(90).fill(0), ...Array(10).fill(1)];
  const balanced = epochOrder(2000, new Rng(5), { labels });
  const minority = balanced.filter((position) => labels[position] === 1).length;
  assert.ok(minority > 850 && minority < 1150, `minority drawn ${minority} of 2000`);
});
