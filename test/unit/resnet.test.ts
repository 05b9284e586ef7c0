import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../app/engine/runtime/backend.ts';
import { buildEncoder, countTrainableParams, encoderOutputWidth, type ModelConfig } from '../../app/engine/simclr/resnet.ts';

before(async () => {
  await initBackend('wasm');
});

const tiny: ModelConfig = { depth: 18, width: 0.125, sk: false, imageSize: 16 };

function gammaOf(model: tf.LayersModel, layerName: string): number[] {
  const gamma = model.getLayer(layerName).getWeights()[0];
  return Array.from(gamma.dataSync());
}

test('parameter counts match the published ResNets (no fc layer)', () => {
  const cases: Array<[ModelConfig['depth'], number]> = [[18, 11_176_512], [34, 21_284_672], [50, 23_508_032]];
  for (const [depth, expected] of cases) {
    const model = buildEncoder({ depth, width: 1, sk: false, imageSize: 224 });
    assert.equal(countTrainableParams(model), expected, `ResNet-${depth}`);
    model.dispose();
  }
});

test('ResNet-50 with selective kernels has the 35 M parameters the SimCLRv2 paper lists', () => {
  const model = buildEncoder({ depth: 50, width: 1, sk: true, imageSize: 224 });
  assert.equal(Math.round(countTrainableParams(model) / 1e6), 35);
  model.dispose();
});

test('width multiplier scales channels and the feature width', () => {
  assert.equal(encoderOutputWidth({ depth: 50, width: 2, sk: false, imageSize: 224 }), 4096);
  assert.equal(encoderOutputWidth({ depth: 18, width: 0.25, sk: false, imageSize: 32 }), 128);
  const model = buildEncoder({ depth: 18, width: 0.25, sk: false, imageSize: 32 });
  assert.deepEqual(model.outputs[0].shape, [null, 128]);
  assert.equal(model.getLayer('stem_conv').getWeights()[0].shape[3], 16);
  model.dispose();
});

test('small images get the 3x3 stride-1 stem without max-pool; large ones 7x7/2 + max-pool', () => {
  const small = buildEncoder(tiny);
  assert.deepEqual(small.getLayer('stem_conv').getWeights()[0].shape.slice(0, 2), [3, 3]);
  assert.throws(() => small.getLayer('stem_pool'));
  // No spatial reduction before block group 2 on small images.
  assert.deepEqual(small.getLayer('block1_2_out').outputShape, [null, 16, 16, 8]);
  small.dispose();

  const large = buildEncoder({ ...tiny, imageSize: 96 });
  assert.deepEqual(large.getLayer('stem_conv').getWeights()[0].shape.slice(0, 2), [7, 7]);
  assert.deepEqual(large.getLayer('stem_pool').outputShape, [null, 24, 24, 8]);
  large.dispose();
});

test('the last BN of every residual block starts with gamma = 0, the others with 1', () => {
  const basic = buildEncoder(tiny);
  assert.ok(gammaOf(basic, 'block3_2_bn2').every((g) => g === 0));
  assert.ok(gammaOf(basic, 'block3_2_bn1').every((g) => g === 1));
  assert.ok(gammaOf(basic, 'block2_1_shortcut_bn').every((g) => g === 1));
  basic.dispose();

  const bottleneck = buildEncoder({ ...tiny, depth: 50 });
  assert.ok(gammaOf(bottleneck, 'block1_1_bn3').every((g) => g === 0));
  assert.ok(gammaOf(bottleneck, 'block1_1_bn2').every((g) => g === 1));
  const bn = bottleneck.getLayer('block1_1_bn1').getConfig();
  assert.equal(bn.momentum, 0.9);
  assert.equal(bn.epsilon, 1e-5);
  bottleneck.dispose();
});

test('layer names are stable across builds and seeded builds are identical', () => {
  const a = buildEncoder({ ...tiny, sk: true }, 11);
  const b = buildEncoder({ ...tiny, sk: true }, 11);
  const c = buildEncoder({ ...tiny, sk: true }, 12);
  assert.deepEqual(a.layers.map((l) => l.name), b.layers.map((l) => l.name));
  for (const name of ['stem_conv', 'block2_1_conv2', 'block2_1_sk_gate', 'block2_1_shortcut_conv', 'encoder_pool']) {
    assert.ok(a.getLayer(name));
  }
  const kernel = (m: tf.LayersModel) => Array.from(m.getLayer('block2_1_conv2').getWeights()[0].dataSync());
  assert.deepEqual(kernel(a), kernel(b));
  assert.notDeepEqual(kernel(a), kernel(c));
  [a, b, c].forEach((m) => m.dispose());
});

test('an exported SK encoder loads with plain tf.loadLayersModel and computes the same features', async () => {
  const model = buildEncoder({ ...tiny, depth: 50, sk: true }, 3);
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler(async (artifacts) => {
    saved = artifacts;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved!));
  const images = tf.randomUniform([2, 16, 16, 3], 0, 1, 'float32', 5);
  const expected = model.predict(images) as tf.Tensor;
  const actual = loaded.predict(images) as tf.Tensor;
  assert.deepEqual(actual.shape, [2, 256]);
  assert.ok(tf.max(tf.abs(tf.sub(expected, actual))).dataSync()[0] < 1e-5);
  tf.dispose([images, expected, actual]);
  model.dispose();
  loaded.dispose();
});

test('bad configurations are refused with one clear message', () => {
  assert.throws(() => buildEncoder({ ...tiny, depth: 20 as 18 }), (e: unknown) => e instanceof RangeError && /depth must be 18, 34 or 50/.test(e.message));
  assert.throws(() => buildEncoder({ ...tiny, width: 0 }), RangeError);
  assert.throws(() => buildEncoder({ ...tiny, imageSize: 4 }), RangeError);
  assert.throws(() => buildEncoder({ ...tiny, projectionDim: 0 }), RangeError);
});
