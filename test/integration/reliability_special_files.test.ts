import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import sharp from 'sharp';
import { importPaths } from '../../app/media/import.ts';
import { decodeForImport } from '../../app/media/decode.ts';
import { openProject } from '../../app/store/project.ts';
import { tempDir } from '../helpers.ts';

const SAMPLE = path.resolve(import.meta.dirname, '../../resources/sample');
const POSIX_ONLY = { skip: process.platform === 'win32' && 'FIFOs and /dev/zero are POSIX', timeout: 60_000 };

const mkfifo = (file: string) => execFileSync('mkfifo', [file]);
/** A file of `bytes` zeros that takes no disk space. */
const sparseFile = (file: string, bytes: number) => {
  fs.writeFileSync(file, '');
  fs.truncateSync(file, bytes);
};
const peakRssBytes = () => process.resourceUsage().maxRSS * 1024;

// First in this file, so the process's peak memory so far is the test runner's own.
test('FIFOs, links to /dev/zero and huge files are each reported and never read; the good images are imported', POSIX_ONLY, async () => {
  const dir = tempDir();
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  const good = fs.readdirSync(path.join(SAMPLE, 'cat')).sort().slice(0, 10);
  for (const name of good) fs.copyFileSync(path.join(SAMPLE, 'cat', name), path.join(src, name));
  mkfifo(path.join(dir, 'x.jpg'));
  fs.symlinkSync('/dev/zero', path.join(dir, 'z.jpg'));
  mkfifo(path.join(src, 'fifo.jpg'));
  fs.symlinkSync('/dev/zero', path.join(src, 'zero.png'));
  sparseFile(path.join(src, 'huge.jpg'), 1.5 * 2 ** 30);
  sparseFile(path.join(src, 'zeros.jpg'), 200 * 2 ** 20); // below the size limit: refused from its first bytes

  const project = openProject(path.join(dir, 'p'), { create: true });
  const peakBefore = peakRssBytes();
  const summary = await importPaths(project, [path.join(dir, 'x.jpg'), path.join(dir, 'z.jpg'), src]);
  const peakGrowth = peakRssBytes() - peakBefore;

  assert.equal(summary.added, good.length);
  const reasons = Object.fromEntries(summary.problems.map((p) => [path.relative(dir, p.path), p.reason]));
  assert.deepEqual(reasons, {
    'x.jpg': 'not a regular file',
    'z.jpg': 'not a regular file',
    'src/fifo.jpg': 'not a regular file',
    'src/zero.png': 'not a regular file',
    'src/huge.jpg': 'file is 1.5 GiB, above the 256 MiB limit for an image',
    'src/zeros.jpg': 'not an image (unrecognised file content)',
  });
  assert.ok(peakGrowth < 100 * 2 ** 20, `peak memory grew by ${(peakGrowth / 2 ** 20).toFixed(0)} MiB`);
  project.close();
});

test('a path swapped for a FIFO after the scan is refused when opened, not waited on', POSIX_ONLY, async () => {
  const fifo = path.join(tempDir(), 'swapped.jpg');
  mkfifo(fifo);
  await assert.rejects(decodeForImport(fifo), { message: 'not a regular file' });
});

test('a cancelled import ends at once, without waiting for the files still being read and decoded', { timeout: 120_000 }, async () => {
  const dir = tempDir();
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  // Large PNGs (no shrink-on-load) take a while each to decode into a thumbnail.
  const big = path.join(src, 'big-00.png');
  await sharp({ create: { width: 8000, height: 8000, channels: 3, background: { r: 10, g: 200, b: 30 } } }).png({ compressionLevel: 1 }).toFile(big);
  for (let i = 1; i < 16; i++) fs.copyFileSync(big, path.join(src, `big-${String(i).padStart(2, '0')}.png`));
  const decodeStarted = performance.now();
  await decodeForImport(big);
  const oneDecodeMs = performance.now() - decodeStarted;

  const project = openProject(path.join(dir, 'p'), { create: true });
  const controller = new AbortController();
  let cancelledAt = 0;
  const importing = importPaths(project, [src], {
    signal: controller.signal,
    onProgress: (p) => {
      if (p.phase !== 'importing' || cancelledAt) return;
      // The first file is done, the other 15 are being read and decoded.
      cancelledAt = performance.now();
      controller.abort();
    },
  });
  await assert.rejects(importing, { code: 'cancelled' });
  const waitedMs = performance.now() - cancelledAt;
  assert.ok(waitedMs < oneDecodeMs / 2, `ended ${waitedMs.toFixed(0)} ms after the cancel; one decode takes ${oneDecodeMs.toFixed(0)} ms`);
  project.close();
});
