import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { importPaths } from '../../app/media/import.ts';
import * as tf from '@tensorflow/tfjs';
import { saveCheckpoint } from '../../app/engine/data/checkpoint.ts';
import { openProject } from '../../app/store/project.ts';
import { createRun, latestCheckpoint } from '../../app/store/runs.ts';
import { tempDir } from '../helpers.ts';

const SAMPLE = path.resolve(import.meta.dirname, '../../resources/sample');

/** A 1 MiB tmpfs to fill up, or why there can be none here (mounting needs root and a permissive sandbox). */
function smallDisk(): { dir: string } | { unavailable: string } {
  if (process.platform !== 'linux') return { unavailable: 'tmpfs is Linux only' };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'contrast-disk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'pipe' });
  } catch (error) {
    fs.rmdirSync(dir);
    return { unavailable: `cannot mount a tmpfs here: ${String((error as { stderr?: Buffer }).stderr ?? error).split('\n')[0].trim()}` };
  }
  after(() => {
    execFileSync('umount', ['--lazy', dir]); // detached even if a failed test left a file open in it
    fs.rmdirSync(dir);
  });
  return { dir };
}

const freeBytes = (dir: string) => {
  const stats = fs.statfsSync(dir);
  return stats.bavail * stats.bsize;
};

/** Fills the disk but `leave` bytes; returns the filler, to delete to free the space again. */
function fill(dir: string, leave: number): string {
  const filler = path.join(dir, 'filler');
  fs.writeFileSync(filler, Buffer.alloc(Math.max(0, freeBytes(dir) - leave)));
  return filler;
}

test('opening a project on a full disk says so in one line and leaves no lock file', (t) => {
  const disk = smallDisk();
  if ('unavailable' in disk) return t.skip(disk.unavailable);
  const projectDir = path.join(disk.dir, 'p');
  openProject(projectDir, { create: true }).close();
  fill(disk.dir, 0);

  assert.throws(() => openProject(projectDir), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'disk_full');
    assert.equal(error.message, `the disk holding ${projectDir} is full: the project was not opened (nothing in it changed); free some space, then open it again`);
    return true;
  });
  assert.deepEqual(fs.readdirSync(projectDir).filter((name) => name.startsWith('project.lock')), [], 'no lock, torn or whole, and no temp file');
});

test('an import that fills the disk stops with a clear message; the project stays consistent and the next run finishes it', async (t) => {
  const disk = smallDisk();
  if ('unavailable' in disk) return t.skip(disk.unavailable);
  const projectDir = path.join(disk.dir, 'p');
  openProject(projectDir, { create: true }).close();
  const filler = fill(disk.dir, 200 * 1024); // less than 200 images' thumbnails and records
  const project = openProject(projectDir);

  await assert.rejects(importPaths(project, [SAMPLE]), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'disk_full');
    assert.match(error.message, /^the disk holding .* is full: the import stopped.*; free some space, then run the import again to finish it$/);
    return true;
  });
  project.close();
  fs.rmSync(filler);

  const reopened = openProject(projectDir);
  assert.equal(reopened.db.pragma('integrity_check', { simple: true }), 'ok');
  const rest = await importPaths(reopened, [SAMPLE]);
  assert.equal(rest.errors, 0);
  const count = (sql: string) => (reopened.db.prepare(sql).get() as { n: number }).n;
  assert.equal(count('SELECT COUNT(*) AS n FROM files'), 200, 'every sample file recorded once');
  assert.equal(count('SELECT COUNT(*) AS n FROM images'), count("SELECT COUNT(*) AS n FROM files WHERE status = 'imported'"));
  reopened.close();
});

test('an import stopped by SQLite finding the database full says "disk full" too (no mount needed)', async () => {
  const dir = tempDir();
  const project = openProject(path.join(dir, 'p'), { create: true });
  // SQLite reports a database that may not grow past max_page_count exactly as a full disk (SQLITE_FULL).
  const pages = project.db.pragma('page_count', { simple: true }) as number;
  project.db.pragma(`max_page_count = ${pages + 8}`);
  await assert.rejects(importPaths(project, [SAMPLE]), { code: 'disk_full', message: /the import stopped before writing anything/ });
  assert.equal(project.db.pragma('integrity_check', { simple: true }), 'ok');
  project.close();
});

test('a checkpoint that does not fit says so, leaves no torn file and keeps the last checkpoint', async (t) => {
  const disk = smallDisk();
  if ('unavailable' in disk) return t.skip(disk.unavailable);
  // Any backend holds these tensors; the plain one needs no set-up, where wasm must load first.
  await tf.setBackend('cpu');
  const project = openProject(path.join(disk.dir, 'p'), { create: true });
  try {
    const runId = createRun(project.db, 'pretrain', null, {});
    const weights = [{ name: 'w', tensor: tf.zeros([16, 16]) }];
    const state = { step: 1, epoch: 0, rng: 7, extra: {} };
    await saveCheckpoint(project, { runId, weights, optimizer: [], state, isBest: false });
    const filler = fill(disk.dir, 4096);
    const big = [{ name: 'w', tensor: tf.zeros([256, 256]) }];
    await assert.rejects(saveCheckpoint(project, { runId, weights: big, optimizer: [], state: { ...state, step: 2 }, isBest: false }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'disk_full');
      assert.match(error.message, /the checkpoint at step 2 was not written, the run keeps its last one; free some space, then resume the run$/);
      return true;
    });
    const files = fs.readdirSync(path.join(project.dir, 'checkpoints', `run-${runId}`));
    assert.deepEqual(files, ['step-00000001.ckpt'], 'the old checkpoint only: no temp file, no torn one');
    assert.equal(latestCheckpoint(project.db, runId)!.step, 1);
    fs.rmSync(filler);
    tf.dispose([...weights, ...big].map((w) => w.tensor));
  } finally {
    project.close();
  }
});
