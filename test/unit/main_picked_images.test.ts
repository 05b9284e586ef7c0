/**
 * Try it's native picker, main-process side: the chosen files are read into names and bytes for the
 * page, and anything that is not a small regular file is refused with a reason, without reading it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { MAX_PICKED_IMAGES, readPickedImages } from '../../main/picked_images.ts';
import { tempDir } from '../integration/train_fixtures.ts';

const SAMPLE = path.resolve(import.meta.dirname, '../../resources/sample/bird');

test('a photo comes back as its name and bytes; an empty, missing, oversized or special file as a reason', async () => {
  const dir = tempDir('contrast-picked-');
  const photo = path.join(SAMPLE, fs.readdirSync(SAMPLE)[0]);
  const empty = path.join(dir, 'empty.png');
  fs.writeFileSync(empty, '');
  const huge = path.join(dir, 'huge.jpg');
  fs.writeFileSync(huge, '');
  fs.truncateSync(huge, 21 * 2 ** 20); // sparse: refused by its size, never read
  const fifo = path.join(dir, 'pipe.jpg');
  execFileSync('mkfifo', [fifo]);
  const [read, ...refused] = await readPickedImages([photo, empty, path.join(dir, 'gone.jpg'), huge, fifo, dir]);
  assert.deepEqual(read, { name: path.basename(photo), data: fs.readFileSync(photo).toString('base64') });
  assert.deepEqual(refused, [
    { name: 'empty.png', error: 'empty file (0 bytes)' },
    { name: 'gone.jpg', error: 'file not found' },
    { name: 'huge.jpg', error: 'the file is 21.0 MB, above the 20 MB limit' },
    { name: 'pipe.jpg', error: 'not a regular file' },
    { name: path.basename(dir), error: 'not a regular file' },
  ]);
});

test(`at most ${MAX_PICKED_IMAGES} images are read at a time`, async () => {
  const photo = path.join(SAMPLE, fs.readdirSync(SAMPLE)[0]);
  const results = await readPickedImages(Array.from({ length: MAX_PICKED_IMAGES + 2 }, () => photo));
  assert.equal(results.filter((r) => 'data' in r).length, MAX_PICKED_IMAGES);
  assert.match((results.at(-1) as { error: string }).error, /^not read: pick at most 100 images at a time/);
});
