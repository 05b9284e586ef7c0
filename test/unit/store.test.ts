import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import Database from 'better-sqlite3';
import { migrations } from '../../app/store/migrations.ts';
import { openProject } from '../../app/store/project.ts';
import { insertImage } from '../../app/store/images.ts';
import {
  addClass, deleteClass, ensureSplits, labelledImages, listClasses, mergeClasses, renameClass, setLabels, validationShare,
} from '../../app/store/labels.ts';
import { applyLabelCsv, exportLabelsCsv, parseCsv } from '../../app/store/labels_csv.ts';
import { tempDir } from '../helpers.ts';

function addImages(db: Database.Database, count: number, prefix = 'img'): number[] {
  return Array.from({ length: count }, (_, i) =>
    insertImage(db, {
      path: `/data/${prefix}${i}.jpg`, sha256: `${prefix}-${i}`, size: 1, width: 1, height: 1, format: 'jpeg',
      thumbnail: Buffer.from([1]), batchId: null, testSet: false,
    }, 'now'),
  );
}

test('a new project has the current schema, WAL journal and foreign keys', () => {
  const project = openProject(path.join(tempDir(), 'p'), { create: true });
  assert.equal(project.db.pragma('user_version', { simple: true }), migrations.length);
  assert.equal(project.db.pragma('journal_mode', { simple: true }), 'wal');
  assert.equal(project.db.pragma('foreign_keys', { simple: true }), 1);
  for (const sub of ['checkpoints', 'exports']) assert.ok(fs.statSync(path.join(project.dir, sub)).isDirectory());
  project.close();
});

test('opening a folder that is not a project says how to create one', () => {
  assert.throws(() => openProject(path.join(tempDir(), 'missing')), { code: 'no_project', message: /^no project at .*missing$/ });
});

test('a second process gets a clear "open in another window" error while the first holds the project', async () => {
  const dir = path.join(tempDir(), 'p');
  openProject(dir, { create: true }).close();
  const holder = spawn(process.execPath, ['--import', 'tsx', '-e',
    `const { openProject } = await import(${JSON.stringify(path.resolve('app/store/project.ts'))});
     openProject(${JSON.stringify(dir)}); console.log('locked'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
  try {
    assert.throws(() => openProject(dir), /project is open in another window \(process \d+/);
    const reader = openProject(dir, { readonly: true });
    assert.equal((reader.db.prepare('SELECT COUNT(*) AS n FROM images').get() as { n: number }).n, 0);
    reader.close();
  } finally {
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
  }
  // The killed holder left its lock file behind; its process is gone, so the project opens again.
  const reopened = openProject(dir);
  reopened.close();
});

test('classes: add, rename, merge and delete report what they change', () => {
  const project = openProject(path.join(tempDir(), 'p'), { create: true });
  const { db } = project;
  const ids = addImages(db, 6);
  const cat = addClass(db, 'cat');
  const kitten = addClass(db, 'kitten');
  const dog = addClass(db, 'dog');
  assert.throws(() => addClass(db, 'CAT'), /already exists/);
  assert.throws(() => addClass(db, '  '), /cannot be empty/);
  setLabels(db, ids.slice(0, 2), cat, 'human', 'ann');
  setLabels(db, ids.slice(2, 5), kitten, 'human', 'ann');
  setLabels(db, [ids[5]], dog, 'human', 'ann');
  assert.equal(mergeClasses(db, 'kitten', 'cat'), 3);
  renameClass(db, 'cat', 'feline');
  assert.throws(() => renameClass(db, 'feline', 'Dog'), /already exists/);
  assert.deepEqual(listClasses(db).map((c) => [c.name, c.labels]), [['dog', 1], ['feline', 5]]);
  assert.equal(deleteClass(db, 'dog'), 1);
  assert.equal((db.prepare('SELECT COUNT(*) AS n FROM labels').get() as { n: number }).n, 5);
  project.close();
});

test('setLabels returns the previous class of each image so a label can be undone', () => {
  const project = openProject(path.join(tempDir(), 'p'), { create: true });
  const [a, b] = addImages(project.db, 2);
  const cat = addClass(project.db, 'cat');
  const dog = addClass(project.db, 'dog');
  setLabels(project.db, [a], cat, 'human', 'ann');
  const changes = setLabels(project.db, [a, b], dog, 'human', 'ann');
  assert.deepEqual(changes, [{ imageId: a, previousClassId: cat }, { imageId: b, previousClassId: null }]);
  project.close();
});

test('splits are stratified, about 10% validation per class, and never move when labels are added', () => {
  const project = openProject(path.join(tempDir(), 'p'), { create: true });
  const { db } = project;
  const ids = addImages(db, 200);
  const [cat, dog] = [addClass(db, 'cat'), addClass(db, 'dog')];
  setLabels(db, ids.slice(0, 50), cat, 'human', 'ann');
  setLabels(db, ids.slice(100, 150), dog, 'human', 'ann');
  ensureSplits(db);
  const first = new Map(labelledImages(db, 'val').map((l) => [l.imageId, l.classId]));
  const valPerClass = (classId: number) => labelledImages(db, 'val').filter((l) => l.classId === classId).length;
  assert.equal(valPerClass(cat), 5);
  assert.equal(valPerClass(dog), 5);
  setLabels(db, ids.slice(50, 100), cat, 'human', 'ann');
  ensureSplits(db);
  for (const [imageId] of first) assert.ok(labelledImages(db, 'val').some((l) => l.imageId === imageId), 'val image moved');
  assert.equal(valPerClass(cat), 10);
  assert.equal(labelledImages(db, 'train').length + labelledImages(db, 'val').length, 150);
  project.close();
});

test('validation holds a tenth of a class, but one image from five labels on, so every class is scored', () => {
  assert.deepEqual([0, 4, 5, 8, 19, 20, 80].map((labelled) => validationShare(labelled)), [0, 0, 1, 1, 1, 2, 8]);
});

test('label CSV: quoted fields, relative paths against the CSV folder, unknown paths reported', () => {
  assert.deepEqual(parseCsv('path,class\n"a,b.jpg","say ""hi"""\r\nc.jpg,dog\n'), [['path', 'class'], ['a,b.jpg', 'say "hi"'], ['c.jpg', 'dog']]);
  const dir = tempDir();
  const project = openProject(path.join(dir, 'p'), { create: true });
  insertImage(project.db, { path: path.join(dir, 'imgs', 'a.jpg'), sha256: 'a', size: 1, width: 1, height: 1, format: 'jpeg', thumbnail: Buffer.from([1]), batchId: null, testSet: false }, 'now');
  fs.writeFileSync(path.join(dir, 'labels.csv'), 'path,class\nimgs/a.jpg,cat\nimgs/nope.jpg,dog\n');
  const result = applyLabelCsv(project.db, path.join(dir, 'labels.csv'), 'ann');
  assert.deepEqual(result, { applied: 1, unknownPaths: ['imgs/nope.jpg'] });
  fs.writeFileSync(path.join(dir, 'bad.csv'), 'imgs/a.jpg\n');
  assert.throws(() => applyLabelCsv(project.db, path.join(dir, 'bad.csv'), 'ann'), /line 1 needs two columns/);
  const out = exportLabelsCsv(project.db, path.join(dir, 'out'));
  assert.equal(fs.readFileSync(out, 'utf8'), `path,class,source,split\n${path.join(dir, 'imgs', 'a.jpg')},cat,human,\n`);
  project.close();
});
