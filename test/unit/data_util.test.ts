import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../app/engine/runtime/backend.ts';
import {
  adjustHsv, applyColorJitter, augmentFinetune, augmentPretrain, blurKernelSize, centerResize, defaultPretrainAugment,
  flipHorizontally, gaussianBlur, resizedCrops, sampleColorJitter, sampleCropBoxes, toGrayscale, type ColorJitter,
} from '../../app/engine/simclr/data_util.ts';
import { Rng } from '../../app/engine/simclr/random.ts';

before(async () => {
  await initBackend('wasm');
});

/** A colourful, asymmetric test pattern: every pixel differs from its mirror image. */
function pattern(n: number, height = 16, width = 16): tf.Tensor4D {
  const values: number[] = [];
  for (let k = 0; k < n; k++) {
    for (let i = 0; i < height; i++) for (let j = 0; j < width; j++) for (let c = 0; c < 3; c++) values.push(((i * 16 + j * 3 + c * 50 + k * 7) % 97) / 96);
  }
  return tf.tensor4d(values, [n, height, width, 3]);
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

const noBlur = { strength: 0.5, blur: false };

test('pretraining views have the requested shape and stay in [0, 1]', () => {
  const images = pattern(4);
  const rng = new Rng(1);
  for (const opts of [noBlur, { strength: 1, blur: true }]) {
    const view = augmentPretrain(images, 20, opts, rng);
    assert.deepEqual(view.shape, [4, 20, 20, 3]);
    assert.equal(view.dtype, 'float32');
    assert.ok(tf.min(view).dataSync()[0] >= 0 && tf.max(view).dataSync()[0] <= 1);
    view.dispose();
  }
  images.dispose();
});

test('int32 pixel values 0–255 give the same views as float images in [0, 1]', () => {
  const floats = pattern(2);
  const bytes = tf.tidy(() => tf.cast(tf.round(tf.mul(floats, 255)), 'int32')) as tf.Tensor4D;
  const fromFloats = augmentPretrain(tf.div(tf.round(tf.mul(floats, 255)), 255) as tf.Tensor4D, 16, noBlur, new Rng(3));
  const fromBytes = augmentPretrain(bytes, 16, noBlur, new Rng(3));
  assert.ok(maxAbsDiff(fromFloats, fromBytes) < 1e-5);
  tf.dispose([floats, bytes, fromFloats, fromBytes]);
});

test('a batch of identical images gets a different view per image', () => {
  const one = pattern(1);
  const batch = tf.concat([one, one, one, one]) as tf.Tensor4D;
  for (const view of [augmentPretrain(batch, 16, noBlur, new Rng(5)), augmentFinetune(batch, 16, new Rng(5))]) {
    const views = tf.split(view, 4);
    for (let a = 0; a < 4; a++) for (let b = a + 1; b < 4; b++) assert.ok(maxAbsDiff(views[a], views[b]) > 1e-3, `views ${a} and ${b} are equal`);
    tf.dispose([view, ...views]);
  }
  tf.dispose([one, batch]);
});

test('same seed, same views; another seed, other views', () => {
  const images = pattern(3);
  const a = augmentPretrain(images, 16, { strength: 1, blur: true }, new Rng(9));
  const b = augmentPretrain(images, 16, { strength: 1, blur: true }, new Rng(9));
  const c = augmentPretrain(images, 16, { strength: 1, blur: true }, new Rng(10));
  assert.equal(maxAbsDiff(a, b), 0);
  assert.ok(maxAbsDiff(a, c) > 1e-3);
  tf.dispose([images, a, b, c]);
});

test('a forced flip matches tf.reverse and an unforced one leaves the image alone', () => {
  const images = pattern(2);
  const flipped = flipHorizontally(images, [true, false]);
  const [first, second] = tf.split(flipped, 2);
  const [original0, original1] = tf.split(images, 2);
  const reversed = tf.reverse(original0, 2);
  assert.equal(maxAbsDiff(first, reversed), 0);
  assert.equal(maxAbsDiff(second, original1), 0);
  tf.dispose([images, flipped, first, second, original0, original1, reversed]);
});

test('each image is cropped with its own box', () => {
  const images = pattern(2);
  // Image 0: its top-left 8x8 pixels; image 1: the whole image, both at 8x8.
  const crops = resizedCrops(images, [[0, 0, 7 / 15, 7 / 15], [0, 0, 1, 1]], 8);
  const [topLeft] = tf.split(crops, 2);
  const expected = tf.slice(images, [0, 0, 0, 0], [1, 8, 8, 3]);
  assert.ok(maxAbsDiff(topLeft, expected) < 1e-6);
  tf.dispose([images, crops, topLeft, expected]);
});

test('sampled crops cover 8–100 % of the image with aspect ratio 3/4–4/3', () => {
  const rng = new Rng(2);
  const boxes = sampleCropBoxes(500, 32, 48, [0.08, 1], rng);
  let smallest = 1;
  for (const [y1, x1, y2, x2] of boxes) {
    assert.ok(y1 >= 0 && x1 >= 0 && y2 <= 1 + 1e-9 && x2 <= 1 + 1e-9 && y1 < y2 && x1 < x2);
    const cropHeight = (y2 - y1) * 31 + 1;
    const cropWidth = (x2 - x1) * 47 + 1;
    const area = (cropHeight * cropWidth) / (32 * 48);
    assert.ok(area >= 0.08 - 1e-9 && area <= 1 + 1e-9, `area ${area}`);
    const ratio = cropWidth / cropHeight;
    assert.ok(ratio >= 0.75 - 1e-9 && ratio <= 4 / 3 + 1e-9, `ratio ${ratio}`);
    smallest = Math.min(smallest, area);
  }
  assert.ok(smallest < 0.15, 'small crops are actually sampled');
});

test('grayscale gives three equal channels holding the luma', () => {
  const images = tf.tensor4d([1, 0, 0, 0.2, 0.4, 0.6], [2, 1, 1, 3]);
  const gray = toGrayscale(images, [true, false]);
  const v = gray.dataSync();
  assert.ok(Math.abs(v[0] - 0.2989) < 1e-6 && v[0] === v[1] && v[1] === v[2]);
  assert.deepEqual(Array.from(v.slice(3)).map((x) => Math.round(x * 10) / 10), [0.2, 0.4, 0.6]);
  tf.dispose([images, gray]);
});

test('hue rotation by a third turns red into green; zero saturation gives grey at the same value', () => {
  const red = tf.tensor4d([1, 0, 0, 0.8, 0.2, 0.4], [2, 1, 1, 3]);
  const shifted = adjustHsv(red, [1, 0], [1 / 3, 0]);
  const v = Array.from(shifted.dataSync());
  [0, 1, 0, 0.8, 0.8, 0.8].forEach((e, i) => assert.ok(Math.abs(v[i] - e) < 1e-5, `${v} vs expected`));
  tf.dispose([red, shifted]);
});

test('HSV identity round-trips any image', () => {
  const images = pattern(2);
  const same = adjustHsv(images, [1, 1], [0, 0]);
  assert.ok(maxAbsDiff(images, same) < 1e-5);
  // A full turn of hue is also the identity (wrap-around).
  const turned = adjustHsv(images, [1, 1], [1, -1]);
  assert.ok(maxAbsDiff(images, turned) < 1e-5);
  tf.dispose([images, same, turned]);
});

test('brightness scales and zero contrast flattens each channel to its mean', () => {
  const images = tf.tensor4d([0.2, 0.4, 0.6, 0.4, 0.8, 1.0], [1, 1, 2, 3]);
  const identity = { brightness: [1], contrast: [1], saturation: [1], hue: [0] };
  const darker: ColorJitter = { ...identity, brightness: [0.5], order: ['brightness', 'contrast', 'saturation', 'hue'] };
  const flat: ColorJitter = { ...identity, contrast: [0], order: ['contrast', 'brightness', 'hue', 'saturation'] };
  const a = applyColorJitter(images, darker).dataSync();
  [0.1, 0.2, 0.3, 0.2, 0.4, 0.5].forEach((e, i) => assert.ok(Math.abs(a[i] - e) < 1e-6));
  const b = applyColorJitter(images, flat).dataSync();
  [0.3, 0.6, 0.8, 0.3, 0.6, 0.8].forEach((e, i) => assert.ok(Math.abs(b[i] - e) < 1e-5));
  images.dispose();
});

test('colour jitter hits about 80 % of images, within SimCLR ranges for strength s', () => {
  const jitter = sampleColorJitter(2000, 0.5, new Rng(4));
  const jittered = jitter.brightness.filter((b) => b !== 1).length;
  assert.ok(Math.abs(jittered / 2000 - 0.8) < 0.03);
  assert.ok(jitter.brightness.every((b) => b >= 0.6 && b <= 1.4));
  assert.ok(jitter.saturation.every((s) => s >= 0.6 && s <= 1.4));
  assert.ok(jitter.hue.every((h) => h >= -0.1 && h <= 0.1));
  assert.deepEqual([...jitter.order].sort(), ['brightness', 'contrast', 'hue', 'saturation']);
});

test('Gaussian blur: per-image sigma, constant images stay constant, sigma 0 is the identity', () => {
  assert.equal(blurKernelSize(224), 23);
  assert.equal(blurKernelSize(96), 9);
  assert.equal(blurKernelSize(16), 1);
  const impulse = tf.tidy(() => {
    const buffer = tf.buffer([3, 9, 9, 3]);
    for (let k = 0; k < 3; k++) for (let c = 0; c < 3; c++) buffer.set(1, k, 4, 4, c);
    return buffer.toTensor() as tf.Tensor4D;
  });
  const blurred = gaussianBlur(impulse, [1, 0, 2], 5);
  const [wide1, untouched, wide2] = tf.split(blurred, 3);
  const [impulse1] = tf.split(impulse, 3);
  assert.ok(maxAbsDiff(untouched, impulse1) < 1e-7);
  // Centre of a separable kernel is (g(0)/Σg)² with g(x) = exp(−x²/2σ²) over x = −2..2.
  const g = [-2, -1, 0, 1, 2].map((x) => Math.exp(-(x * x) / 2));
  const centre = (1 / g.reduce((a, b) => a + b)) ** 2;
  assert.ok(Math.abs(wide1.slice([0, 4, 4, 0], [1, 1, 1, 1]).dataSync()[0] - centre) < 1e-6);
  assert.ok(Math.abs(tf.sum(wide1).dataSync()[0] - 3) < 1e-5); // mass conserved, per channel 1
  assert.ok(wide2.slice([0, 4, 4, 0], [1, 1, 1, 1]).dataSync()[0] < centre); // larger sigma spreads more
  const constant = tf.fill([2, 9, 9, 3], 0.7) as tf.Tensor4D;
  const still = gaussianBlur(constant, [2, 0.5], 5);
  assert.ok(maxAbsDiff(still, constant) < 1e-6);
  tf.dispose([impulse, blurred, wide1, untouched, wide2, impulse1, constant, still]);
});

test('centerResize takes the central square', () => {
  const images = pattern(1, 8, 12);
  const out = centerResize(images, 8);
  const expected = tf.slice(images, [0, 0, 2, 0], [1, 8, 8, 3]);
  assert.ok(maxAbsDiff(out, expected) < 1e-6);
  tf.dispose([images, out, expected]);
});

test('defaults follow SimCLR: full strength and blur only for large images', () => {
  assert.deepEqual(defaultPretrainAugment(32), { strength: 0.5, blur: false });
  assert.deepEqual(defaultPretrainAugment(224), { strength: 1, blur: true });
});

test('augmentations leave no tensors behind', () => {
  const images = pattern(2);
  const rng = new Rng(8);
  const before = tf.memory().numTensors;
  tf.dispose([
    augmentPretrain(images, 16, { strength: 1, blur: true }, rng),
    augmentFinetune(images, 16, rng),
    centerResize(images, 16),
    gaussianBlur(images, [1, 1], 3),
  ]);
  assert.equal(tf.memory().numTensors, before);
  images.dispose();
});
