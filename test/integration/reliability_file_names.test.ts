import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { importPaths } from '../../app/media/import.ts';
import { getOriginal } from '../../app/store/images.ts';
import { listClasses } from '../../app/store/labels.ts';
import { openProject } from '../../app/store/project.ts';
import { fsPath, pathKey } from '../../app/store/file_paths.ts';
import { tempDir } from '../helpers.ts';

const SAMPLE = path.resolve(import.meta.dirname, '../../resources/sample');
const sampleJpegs = fs.readdirSync(SAMPLE, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.jpg')).map((f) => path.join(SAMPLE, f));

/** A path from raw bytes: Linux takes any bytes but "/" and NUL in a name. */
const bytePath = (dir: string, ...names: Buffer[]) => Buffer.concat([Buffer.from(dir), ...names.flatMap((name) => [Buffer.from('/'), name])]);
const latin1 = (text: string) => Buffer.from(text, 'latin1');

test('images whose names are not UTF-8 are imported, stored losslessly and opened by their exact bytes', { skip: process.platform !== 'linux' && 'needs a file system that takes any bytes in names' }, async () => {
  const dir = tempDir();
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  const names = [
    bytePath(src, latin1('caf\xe9.jpg')), // café.jpg written by a Latin-1 system
    bytePath(src, latin1('caf\xe8.jpg')), // cafè.jpg: the same text as the one above once mangled
    bytePath(src, latin1('\xff\xfe.jpg')),
    bytePath(src, Buffer.from('café.jpg')), // valid UTF-8: stored as plain text, as before
    bytePath(src, latin1('dir-\xe9'), latin1('x.jpg')),
    bytePath(src, latin1('100%.jpg')),
  ];
  fs.mkdirSync(bytePath(src, latin1('dir-\xe9')));
  names.forEach((name, i) => fs.copyFileSync(sampleJpegs[i], name));

  const project = openProject(path.join(dir, 'p'), { create: true });
  const summary = await importPaths(project, [src], { labelsFromFolders: true });
  assert.deepEqual(summary.problems, []);
  assert.equal(summary.added, names.length);

  const rows = project.db.prepare('SELECT id, path, sha256 FROM images ORDER BY id').all() as { id: number; path: string; sha256: string }[];
  const stored = rows.map((row) => Buffer.from(fsPath(row.path))).sort(Buffer.compare);
  assert.deepEqual(stored, [...names].sort(Buffer.compare), 'every path stored byte for byte');
  assert.ok(rows.some((row) => row.path === path.join(src, 'café.jpg')), 'a UTF-8 path is kept as plain text');
  assert.ok(rows.some((row) => row.path === `file://${src}/caf%E9.jpg`), 'a Latin-1 path reads as a file URL');
  for (const row of rows) {
    const bytes = fs.readFileSync(fsPath(getOriginal(project.db, row.id)!.path));
    assert.equal(createHash('sha256').update(bytes).digest('hex'), row.sha256, `image ${row.id} opens the file it was imported from`);
  }
  assert.deepEqual(listClasses(project.db).map((c) => [c.name, c.labels]), [['dir-\ufffd', 1]]);

  const again = await importPaths(project, [src]);
  assert.deepEqual([again.added, again.alreadyKnown, again.errors], [0, names.length, 0], 'the second import recognises every file');
  project.close();
});

test('path keys round-trip any bytes and never collide with a real path', () => {
  const latin1 = Buffer.from([0x2f, 0x74, 0x2f, 0xe9, 0x25, 0x20, 0x23]);
  assert.equal(pathKey(latin1), 'file:///t/%E9%25%20%23');
  assert.deepEqual(fsPath(pathKey(latin1)), latin1);
  const every = Buffer.from(Array.from({ length: 255 }, (_, i) => i + 1));
  assert.deepEqual(fsPath(pathKey(every)), every);
  assert.equal(pathKey(Buffer.from('/t/ünï 画像 %.jpg')), '/t/ünï 画像 %.jpg');
});
