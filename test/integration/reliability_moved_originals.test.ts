import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { importPaths } from '../../app/media/import.ts';
import { openProject } from '../../app/store/project.ts';
import { countProject } from '../../app/store/status.ts';
import { runCli, tempDir } from '../helpers.ts';

const SAMPLE = path.resolve(import.meta.dirname, '../../resources/sample');

function copySamples(dest: string, classes: string[], perClass: number): void {
  for (const name of classes) {
    const files = fs.readdirSync(path.join(SAMPLE, name)).sort().slice(0, perClass);
    fs.mkdirSync(path.join(dest, name), { recursive: true });
    for (const file of files) fs.copyFileSync(path.join(SAMPLE, name, file), path.join(dest, name, file));
  }
}

type Row = { id: number; path: string; label: string | null };
const imagesWithLabels = (project: ReturnType<typeof openProject>) =>
  project.db.prepare(
    `SELECT i.id, i.path, c.name AS label FROM images i
     LEFT JOIN labels l ON l.image_id = i.id LEFT JOIN classes c ON c.id = l.class_id ORDER BY i.id`,
  ).all() as Row[];

test('re-importing a moved folder re-links its images (same ids, labels kept); status counts missing originals', async () => {
  const dir = tempDir();
  const src = path.join(dir, 'photos');
  const classes = fs.readdirSync(SAMPLE).filter((name) => fs.statSync(path.join(SAMPLE, name)).isDirectory()).sort().slice(0, 2);
  copySamples(src, classes, 3);
  const projectDir = path.join(dir, 'p');
  const project = openProject(projectDir, { create: true });
  await importPaths(project, [src], { labelsFromFolders: true });
  const before = imagesWithLabels(project);
  assert.equal(before.length, 6);
  assert.equal(countProject(project.db, { checkOriginals: true }).missingOriginals, 0);

  const moved = path.join(dir, 'archive', 'photos');
  fs.mkdirSync(path.dirname(moved));
  fs.renameSync(src, moved);
  assert.equal(countProject(project.db, { checkOriginals: true }).missingOriginals, 6);
  project.close();
  assert.match(runCli(['status', projectDir]).stdout, /originals: +6 missing \(moved or deleted/);

  const reopened = openProject(projectDir);
  const summary = await importPaths(reopened, [moved], { labelsFromFolders: true });
  assert.deepEqual([summary.added, summary.relinked, summary.duplicates, summary.errors], [0, 6, 0, 0]);
  assert.deepEqual(summary.problems, []);
  const after = imagesWithLabels(reopened);
  assert.deepEqual(after, before.map((row) => ({ ...row, path: row.path.replace(src, moved) })), 'same ids and labels, new paths');
  assert.equal(countProject(reopened.db, { checkOriginals: true }).missingOriginals, 0);
  assert.equal((reopened.db.prepare('SELECT COUNT(*) AS n FROM files WHERE path LIKE ?').get(`${src}/%`) as { n: number }).n, 0, 'old paths forgotten');

  // A copy of a file that is still in place is a duplicate, as before.
  const copy = path.join(dir, 'copy.jpg');
  fs.copyFileSync(after[0].path, copy);
  const again = await importPaths(reopened, [copy]);
  assert.deepEqual([again.added, again.relinked, again.duplicates], [0, 0, 1]);
  assert.equal(again.problems[0].reason, `same content as ${after[0].path}`);
  reopened.close();
  assert.match(runCli(['status', projectDir]).stdout, /originals: +none missing/);
});
