import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { migrations } from '../../app/store/migrations.ts';
import { openProject } from '../../app/store/project.ts';
import { shortenPath } from '../../app/store/file_paths.ts';
import { runCli, tempDir } from '../helpers.ts';

const lockFiles = (dir: string) => fs.readdirSync(dir).filter((name) => name.startsWith('project.lock'));

test('a project.db of random bytes is refused as damaged, in one line, and left as it was', () => {
  const dir = path.join(tempDir(), 'p');
  fs.mkdirSync(dir);
  const garbage = randomBytes(64 * 1024);
  fs.writeFileSync(path.join(dir, 'project.db'), garbage);
  for (const readonly of [false, true]) {
    assert.throws(() => openProject(dir, { readonly }), {
      code: 'project_corrupt',
      message: `${path.join(dir, 'project.db')} is damaged or is not a Contrast Studio project (file is not a database); ` +
        'it was left as it is: restore it from a backup, or move it away and create a new project',
    });
  }
  assert.deepEqual(fs.readFileSync(path.join(dir, 'project.db')), garbage);
  assert.deepEqual(lockFiles(dir), []);
  const cli = runCli(['status', dir]);
  assert.equal(cli.code, 1);
  assert.match(cli.stderr, /^contrast status: .* is damaged or is not a Contrast Studio project .*\n$/);
});

test('a project from a newer version is refused with project_too_new, for writing and for reading, and not changed', () => {
  const dir = path.join(tempDir(), 'p');
  openProject(dir, { create: true }).close();
  const db = new Database(path.join(dir, 'project.db'));
  db.pragma(`user_version = ${migrations.length + 5}`);
  db.close();
  for (const readonly of [false, true]) {
    assert.throws(() => openProject(dir, { readonly }), {
      code: 'project_too_new',
      message: `this project was written by a newer Contrast Studio (schema ${migrations.length + 5}, this build knows ${migrations.length}); ` +
        'update the app to open it (the project was not changed)',
    });
  }
  const after = new Database(path.join(dir, 'project.db'), { readonly: true });
  assert.equal(after.pragma('user_version', { simple: true }), migrations.length + 5);
  after.close();
  assert.deepEqual(lockFiles(dir), []);
});

test('paths over 4,096 characters are shortened in messages, with the middle elided', () => {
  const root = tempDir();
  const long = path.join(root, ...Array.from({ length: 25 }, (_, i) => `folder-${i}-`.padEnd(200, 'x')), 'photo.jpg');
  assert.ok(long.length > 5000);

  assert.throws(() => openProject(long), (error: Error) => error.message.length < 300 && /^no project at .*…/.test(error.message));
  assert.throws(() => openProject(long, { create: true }), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'path_too_long');
    assert.match(error.message, new RegExp(`^the path is too long for the file system \\(${long.length} characters\\): ${root}.*…`));
    assert.ok(error.message.length < 300, `${error.message.length} characters`);
    return true;
  });

  const project = path.join(root, 'p');
  assert.equal(runCli(['init', project]).code, 0);
  const imported = runCli(['import', project, long]);
  assert.equal(imported.code, 0);
  const errorLine = imported.stdout.split('\n').find((line) => line.includes('error:'))!;
  assert.match(errorLine, /^ {2}error: .*….*photo\.jpg: path too long for the file system$/);
  assert.ok(imported.stdout.length + imported.stderr.length < 600, `printed ${imported.stdout.length + imported.stderr.length} characters`);

  assert.equal(shortenPath('a'.repeat(50) + 'b'.repeat(50), 21), 'aaaaaa…bbbbbbbbbbbbbb');
  assert.equal(shortenPath('/short/path.jpg'), '/short/path.jpg');
});

test('a project is not created in a folder that holds files; an empty folder, a new one or an existing project are fine', () => {
  const root = tempDir();
  const photos = path.join(root, 'photos');
  fs.mkdirSync(photos);
  fs.writeFileSync(path.join(photos, 'a.jpg'), 'x');
  fs.writeFileSync(path.join(photos, 'b.jpg'), 'x');
  assert.throws(() => openProject(photos, { create: true }), {
    code: 'folder_not_empty',
    message: `${photos} already holds files ("a.jpg" and 1 more): pick an empty folder for the new project, or a new folder's name`,
  });
  assert.deepEqual(fs.readdirSync(photos).sort(), ['a.jpg', 'b.jpg'], 'nothing created there');
  assert.match(runCli(['init', photos]).stderr, /already holds files/);

  const empty = path.join(root, 'empty');
  fs.mkdirSync(empty);
  fs.writeFileSync(path.join(empty, '.DS_Store'), ''); // left by a file manager: not the user's files
  openProject(empty, { create: true }).close();
  openProject(empty, { create: true }).close(); // an existing project opens as before
  openProject(path.join(root, 'new', 'project'), { create: true }).close();
});
