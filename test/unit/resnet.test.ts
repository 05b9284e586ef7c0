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

test("PyTorch padding and an input normalisation are opt-in: our own networks keep exactly their layers", () => {
  const layerNames = (cfg: ModelConfig) => {
    const model = buildEncoder(cfg);
    const names = model.layers.map((l) => l.name);
    model.dispose();
    return names;
  };
  const ours = { depth: 50, width: 0.125, sk: true, imageSize: 72 } as const;
  const plain = layerNames(ours);
  assert.deepEqual(plain.filter((name) => name === 'input_norm' || /_(pool|shortcut)_pad$/.test(name)), []);
  const torch = layerNames({ ...ours, padding: 'torch', inputNormalization: { mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.5] } });
  // The SimCLRv2 layout pools in every projection shortcut, the first block's stride-1 one too.
  assert.deepEqual(torch.filter((name) => !plain.includes(name)), ['input_norm', 'stem_pool_pad', 'block1_1_shortcut_pad', 'block1_1_shortcut_pool', 'block2_1_shortcut_pad', 'block3_1_shortcut_pad', 'block4_1_shortcut_pad']);
});

test('the PyTorch max-pool pads one pixel on every side where "same" pads only bottom/right, and the input normalisation is (x - mean) / std', () => {
  const cfg: ModelConfig = { depth: 18, width: 0.125, sk: false, imageSize: 36, stem: 'standard', padding: 'torch', inputNormalization: { mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.5] } };
  const model = buildEncoder(cfg, 1);
  // 36 px → 18x18 after the 7x7/2 conv: PyTorch's pool windows start one pixel before the map.
  assert.deepEqual(model.getLayer('stem_pool_pad').outputShape, [null, 20, 20, 8]);
  assert.deepEqual(model.getLayer('stem_pool').outputShape, [null, 9, 9, 8]);
  const normalise = tf.model({ inputs: model.inputs, outputs: model.getLayer('input_norm').output as tf.SymbolicTensor });
  const pixel = tf.tensor4d([0.9, 0.4, 0.8], [1, 1, 1, 3]);
  const padded = tf.pad(pixel, [[0, 0], [0, 35], [0, 35], [0, 0]]);
  const out = (normalise.predict(padded) as tf.Tensor).slice([0, 0, 0, 0], [1, 1, 1, 3]);
  assert.deepEqual(Array.from(out.dataSync()).map((v) => Number(v.toFixed(5))), [2, 0, 1]);
  assert.equal(model.getLayer('input_norm').trainableWeights.length, 0, 'the normalisation is never trained');
  tf.dispose([pixel, padded, out]);
  model.dispose();
});

test('an imported network keeps its standard stem at any size', () => {
  const model = buildEncoder({ ...tiny, imageSize: 32, stem: 'standard' });
  assert.deepEqual(model.getLayer('stem_conv').getWeights()[0].shape.slice(0, 2), [7, 7]);
  assert.ok(model.getLayer('stem_pool'));
  model.dispose();
});
