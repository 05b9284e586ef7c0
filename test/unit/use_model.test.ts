/**
 * The pure parts of using a model on outside images: the top classes, the CSV rows of
 * `contrast predict`, folder and file names that cannot escape their folder, and the pixels of
 * an upload, which must be those training decodes from the same file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { decodePixels, pixelsFromBytes } from '../../app/engine/data/dataset.ts';
import { imagePixels, topClasses } from '../../app/engine/data/predict.ts';
import { classFolderName, PREDICTIONS_CSV_HEADER, predictionCsvRow, skippedCsv, uniqueFileName } from '../../app/services/folder_predictions.ts';
import { addedFileName } from '../../app/services/try_it.ts';
import { tempDir } from '../integration/train_fixtures.ts';

const classes = [
  { id: 11, name: 'cat' },
  { id: 12, name: 'dog' },
  { id: 13, name: 'ship' },
  { id: 14, name: 'frog' },
];

test('topClasses: the three most likely, most likely first, a tie kept in class order', () => {
  assert.deepEqual(topClasses([0.1, 0.4, 0.1, 0.4], classes), [
    { classId: 12, name: 'dog', probability: 0.4 },
    { classId: 14, name: 'frog', probability: 0.4 },
    { classId: 11, name: 'cat', probability: 0.1 },
  ]);
  assert.deepEqual(topClasses([0.3, 0.7], classes.slice(0, 2)).map((c) => c.name), ['dog', 'cat'], 'two classes give two');
});

test('predictionCsvRow: six-decimal confidences, quoted paths and names, empty columns below three classes', () => {
  const top = topClasses([0.05, 0.8123456, 0.1, 0.0376544], classes);
  assert.equal(PREDICTIONS_CSV_HEADER, 'path,predicted,confidence,second,second_confidence,third,third_confidence');
  assert.equal(predictionCsvRow({ path: '/a/b.jpg', top }), '/a/b.jpg,dog,0.812346,ship,0.100000,cat,0.050000');
  assert.equal(
    predictionCsvRow({ path: '/a/"odd", name.jpg', top: [{ classId: 1, name: 'a,b', probability: 1 }] }),
    '"/a/""odd"", name.jpg","a,b",1.000000,,,,',
  );
  assert.equal(skippedCsv([{ path: '/x,y.jpg', reason: 'not an image' }]), 'path,reason\n"/x,y.jpg",not an image\n');
});

test('classFolderName: separators and reserved characters become _, names that mean a folder are replaced', () => {
  assert.equal(classFolderName('cat'), 'cat');
  assert.equal(classFolderName('../../etc'), '_.._etc');
  assert.equal(classFolderName('a/b\\c:d'), 'a_b_c_d');
  assert.equal(classFolderName('..'), '_');
  assert.equal(classFolderName(' . '), '_');
  assert.equal(classFolderName('x'.repeat(300)).length, 100);
});

test('uniqueFileName: a number before the extension until the name is free', () => {
  assert.equal(uniqueFileName('a.jpg', new Set()), 'a.jpg');
  assert.equal(uniqueFileName('a.jpg', new Set(['a.jpg', 'a-2.jpg'])), 'a-3.jpg');
  assert.equal(uniqueFileName('README', new Set(['README'])), 'README-2');
});

test('addedFileName: the base name only, safe characters, an image extension from the content', () => {
  assert.equal(addedFileName('holiday.JPG', 'jpeg'), 'holiday.JPG');
  assert.equal(addedFileName('../../evil.png', 'png'), 'evil.png');
  assert.equal(addedFileName('C:\\Users\\me\\shot.webp', 'webp'), 'shot.webp');
  assert.equal(addedFileName('image', 'jpeg'), 'image.jpg', 'a pasted image without extension');
  assert.equal(addedFileName('notes.txt', 'png'), 'notes.txt.png', 'import finds images by extension');
  assert.equal(addedFileName('...', 'gif'), 'image.gif');
  assert.equal(addedFileName('a<b>|c?.tiff', 'tiff'), 'a_b__c_.tiff');
});

test('pixels of uploaded bytes are exactly the pixels training decodes from the file', async () => {
  const dir = tempDir('contrast-pixels-');
  const sample = path.resolve(import.meta.dirname, '../../resources/sample/cat');
  const files = fs.readdirSync(sample).slice(0, 5).map((name) => path.join(sample, name));
  // A PNG with alpha, a JPEG turned by EXIF orientation 6 and a non-square WebP: each step of the preprocessing matters.
  const rgba = Buffer.alloc(40 * 30 * 4, 0).map((_, i) => (i * 37) % 256);
  await sharp(rgba, { raw: { width: 40, height: 30, channels: 4 } }).png().toFile(path.join(dir, 'alpha.png'));
  await sharp(rgba, { raw: { width: 40, height: 30, channels: 4 } }).jpeg().withMetadata({ orientation: 6 }).toFile(path.join(dir, 'rotated.jpg'));
  await sharp(rgba, { raw: { width: 40, height: 30, channels: 4 } }).webp({ lossless: true }).toFile(path.join(dir, 'wide.webp'));
  files.push(...['alpha.png', 'rotated.jpg', 'wide.webp'].map((name) => path.join(dir, name)));
  for (const file of files) {
    const fromFile = await decodePixels(file, 24);
    assert.equal(fromFile.length, 24 * 24 * 3);
    assert.ok(fromFile.equals(await pixelsFromBytes(fs.readFileSync(file), 24)), `same pixels for ${path.basename(file)}`);
  }
});

test('imagePixels: content that is not an image, or a broken one, gives a reason instead of pixels', async () => {
  assert.deepEqual(await imagePixels(Buffer.from('hello, not a picture'), 16), { error: 'not an image (unrecognised file content)' });
  const jpeg = fs.readFileSync(path.resolve(import.meta.dirname, '../../resources/sample/dog', fs.readdirSync(path.resolve(import.meta.dirname, '../../resources/sample/dog'))[0]));
  const broken = await imagePixels(jpeg.subarray(0, 300), 16);
  assert.ok('error' in broken && /^corrupt or truncated image/.test(broken.error), JSON.stringify(broken));
  const whole = await imagePixels(jpeg, 16);
  assert.ok('pixels' in whole && whole.pixels.length === 16 * 16 * 3);
});
