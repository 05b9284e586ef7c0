/**
 * The TF.js → ONNX conversion checked against onnxruntime on random weights and inputs: every
 * supported layer in one small network, and the encoders the product builds. (Trained models on
 * real images: test/integration/onnx_export.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { UserError } from '../../app/contract/errors.ts';
import { onnxModelBytes } from '../../app/engine/export/onnx_export.ts';
import { samePads } from '../../app/engine/export/onnx_layers.ts';
import { buildClassifier, type ModelConfig } from '../../app/engine/simclr/model.ts';
import { readOnnx, type OnnxSummary } from '../integration/onnx_fixtures.ts';
import { mirrorAveraged } from '../mirror_average.ts';

/**
 * Random weights with BN statistics far from their initial 0/1, so a wrong fold, axis or
 * padding shows in the output (freshly built models have zero-gamma blocks and tiny logits).
 */
function randomiseWeights(model: tf.LayersModel, seed: number): void {
  for (const layer of model.layers) {
    if (layer.weights.length === 0) continue;
    const isBatchNorm = layer.getClassName() === 'BatchNormalization';
    layer.setWeights(
      layer.weights.map((w, i) => {
        const shape = w.shape as number[];
        if (isBatchNorm) return i === 1 || i === 2 ? tf.randomUniform(shape, -0.3, 0.3, 'float32', seed++) : tf.randomUniform(shape, 0.6, 1.4, 'float32', seed++);
        const fanIn = shape.slice(0, -1).reduce((a, b) => a * b, 1);
        return tf.randomNormal(shape, 0, 1 / Math.sqrt(fanIn), 'float32', seed++);
      }),
    );
  }
}

async function onnxProbabilities(bytes: Uint8Array, input: tf.Tensor4D): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes);
  const result = await session.run({ images: new ort.Tensor('float32', input.dataSync() as Float32Array, input.shape) });
  return result.probabilities.data as Float32Array;
}

const maxDifference = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((max, value, i) => Math.max(max, Math.abs(value - b[i])), 0);

/** onnxruntime on the export against TF.js averaging each image with its mirror image, as the studio predicts. */
async function compareWithOnnxRuntime(model: tf.LayersModel, batch: number): Promise<{ maxDiff: number; ops: string[]; onnxModel: OnnxSummary }> {
  const bytes = onnxModelBytes(model, { purpose: 'test' }, 'unit test');
  const shape = [batch, ...(model.inputs[0].shape.slice(1) as number[])] as [number, number, number, number];
  const input = tf.randomUniform(shape, 0, 1, 'float32', 11) as tf.Tensor4D;
  const expected = mirrorAveraged((images) => model.predict(images) as tf.Tensor, input).dataSync();
  const actual = await onnxProbabilities(bytes, input);
  assert.equal(actual.length, expected.length);
  const onnxModel = readOnnx(bytes);
  return { maxDiff: maxDifference(actual, expected), ops: onnxModel.nodes.map((n) => n.op), onnxModel };
}

function padsOf(onnxModel: OnnxSummary, node: string): number[] | undefined {
  return onnxModel.nodes.find((n) => n.name === node)?.pads;
}

test('TF "same" padding becomes explicit ONNX pads, the odd one at the bottom/right', () => {
  assert.deepEqual(samePads([36, 36], [3, 3], [2, 2]), [0, 0, 1, 1]); // standard stem's max-pool at 72 px
  assert.deepEqual(samePads([35, 35], [3, 3], [2, 2]), [1, 1, 1, 1]);
  assert.deepEqual(samePads([16, 16], [3, 3], [1, 1]), [1, 1, 1, 1]);
  assert.deepEqual(samePads([9, 10], [2, 2], [2, 2]), [0, 0, 1, 0]);
  assert.deepEqual(samePads([8, 8], [1, 1], [1, 1]), [0, 0, 0, 0]);
});

test('every supported layer converts: onnxruntime gives what TF.js gives, batch norms and paddings folded', async (t) => {
  await tf.setBackend('cpu');
  const images = tf.input({ shape: [9, 10, 3], name: 'images' });
  let x = tf.layers.conv2d({ name: 'c1', filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }).apply(images) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'after_relu' }).apply(x) as tf.SymbolicTensor; // cannot fold: a ReLU is in between
  x = tf.layers.reLU({ name: 'capped', maxValue: 0.5 }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.zeroPadding2d({ name: 'pad', padding: [[1, 0], [0, 2]] }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ name: 'c2', filters: 6, kernelSize: 2, useBias: false }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'bn2' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.averagePooling2d({ name: 'avg', poolSize: 2, strides: 2, padding: 'same' }).apply(x) as tf.SymbolicTensor;
  const features = tf.layers.maxPooling2d({ name: 'max', poolSize: 3, strides: 1, padding: 'same' }).apply(x) as tf.SymbolicTensor;
  let gate = tf.layers.globalAveragePooling2d({ name: 'squeeze' }).apply(features) as tf.SymbolicTensor;
  gate = tf.layers.dense({ name: 'gate', units: 6, activation: 'sigmoid' }).apply(gate) as tf.SymbolicTensor;
  gate = tf.layers.reshape({ name: 'gate_map', targetShape: [1, 1, 6] }).apply(gate) as tf.SymbolicTensor;
  let y = tf.layers.multiply({ name: 'gated' }).apply([features, gate]) as tf.SymbolicTensor;
  y = tf.layers.rescaling({ name: 'rescaled', scale: 2, offset: -0.5 }).apply(y) as tf.SymbolicTensor;
  y = tf.layers.add({ name: 'sum' }).apply([y, features, x]) as tf.SymbolicTensor;
  y = tf.layers.activation({ name: 'squash', activation: 'tanh' }).apply(y) as tf.SymbolicTensor;
  y = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(y) as tf.SymbolicTensor;
  y = tf.layers.dense({ name: 'logits', units: 3, useBias: false }).apply(y) as tf.SymbolicTensor;
  y = tf.layers.batchNormalization({ name: 'logits_bn' }).apply(y) as tf.SymbolicTensor;
  const probabilities = tf.layers.activation({ name: 'probabilities', activation: 'softmax' }).apply(y) as tf.SymbolicTensor;
  const model = tf.model({ inputs: images, outputs: probabilities });
  randomiseWeights(model, 1);

  const { maxDiff, ops, onnxModel } = await compareWithOnnxRuntime(model, 5);
  t.diagnostic(`max |onnxruntime - TF.js| = ${maxDiff.toExponential(2)}`);
  assert.ok(maxDiff < 1e-6, `max |onnxruntime - TF.js| = ${maxDiff}`);
  assert.equal(ops.filter((op) => op === 'BatchNormalization').length, 1, 'only the batch norm after a ReLU stays');
  assert.ok(!ops.includes('Pad'), 'the zero padding moved into the convolution after it');
  assert.deepEqual(padsOf(onnxModel, 'c1/preactivation'), [1, 0, 1, 1], '9x10 input, 3x3 stride 2: one extra column on the right');
  assert.deepEqual(padsOf(onnxModel, 'c2'), [1, 0, 0, 2], 'ZeroPadding2D [[1,0],[0,2]] as the conv pads');
  assert.deepEqual(padsOf(onnxModel, 'avg'), [0, 0, 1, 0], 'odd height: the extra row at the bottom');
  for (const op of ['Slice', 'Concat', 'ReduceMean', 'Clip', 'Sum', 'Mul', 'Reshape', 'Sigmoid', 'Tanh', 'Softmax', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'Gemm']) {
    assert.ok(ops.includes(op), `${op} in ${ops.join(' ')}`);
  }
});

const ENCODERS: [string, ModelConfig][] = [
  ['small stem', { depth: 18, width: 0.25, sk: false, imageSize: 16 }],
  ['standard stem with max-pool (asymmetric pads at 72 px)', { depth: 18, width: 0.25, sk: false, imageSize: 72 }],
  ['selective kernels, odd feature maps at 18 px', { depth: 18, width: 0.25, sk: true, imageSize: 18 }],
  ['ResNet-50 bottlenecks, deep SK stem', { depth: 50, width: 0.125, sk: true, imageSize: 66 }],
];

for (const [what, cfg] of ENCODERS) {
  test(`the product's classifier converts: ${what}`, async (t) => {
    await tf.setBackend('cpu');
    const classifier = buildClassifier(cfg, 4, 3);
    const probabilities = tf.layers.activation({ activation: 'softmax' }).apply(classifier.outputs[0]) as tf.SymbolicTensor;
    const model = tf.model({ inputs: classifier.inputs, outputs: probabilities });
    randomiseWeights(model, 2);
    const { maxDiff, ops, onnxModel } = await compareWithOnnxRuntime(model, 3);
    t.diagnostic(`max |onnxruntime - TF.js| = ${maxDiff.toExponential(2)}`);
    assert.ok(maxDiff < 1e-5, `max |onnxruntime - TF.js| = ${maxDiff}`);
    assert.ok(!ops.includes('BatchNormalization'), 'every batch norm folded');
    assert.ok(!ops.includes('Pad'), 'every padding folded');
    assert.equal(onnxModel.opset, 13);
    assert.deepEqual(onnxModel.inputDims, ['batch', cfg.imageSize, cfg.imageSize, 3]);
    assert.deepEqual(onnxModel.outputDims, ['batch', 4]);
    if (cfg.imageSize > 64) assert.deepEqual(padsOf(onnxModel, 'stem_pool'), cfg.imageSize === 72 ? [0, 0, 1, 1] : [1, 1, 1, 1]);
    classifier.dispose();
  });
}

test('the export answers the same for an image and its mirror image, and not what one view alone gives', async () => {
  await tf.setBackend('cpu');
  const classifier = buildClassifier({ depth: 18, width: 0.25, sk: false, imageSize: 16 }, 4, 5);
  const model = tf.model({ inputs: classifier.inputs, outputs: tf.layers.activation({ activation: 'softmax' }).apply(classifier.outputs[0]) as tf.SymbolicTensor });
  randomiseWeights(model, 3);
  const bytes = onnxModelBytes(model, {}, '');
  const images = tf.randomUniform([2, 16, 16, 3], 0, 1, 'float32', 12) as tf.Tensor4D;
  const plain = await onnxProbabilities(bytes, images);
  const mirrored = await onnxProbabilities(bytes, tf.reverse(images, 2));
  assert.ok(maxDifference(plain, mirrored) < 1e-6, 'mirror-invariant');
  assert.ok(maxDifference(plain, (model.predict(images) as tf.Tensor).dataSync()) > 1e-3, 'not the one-view answer');
  classifier.dispose();
});

test('layers ONNX export does not know are refused, all named in one message', () => {
  const images = tf.input({ shape: [8, 8, 3], name: 'images' });
  let x = tf.layers.conv2dTranspose({ name: 'upsample', filters: 2, kernelSize: 2 }).apply(images) as tf.SymbolicTensor;
  x = tf.layers.flatten({ name: 'flat' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.dense({ name: 'out', units: 2 }).apply(x) as tf.SymbolicTensor;
  const model = tf.model({ inputs: images, outputs: x });
  assert.throws(
    () => onnxModelBytes(model, {}, ''),
    (error: unknown) =>
      error instanceof UserError &&
      error.code === 'unsupported_layer' &&
      /unsupported layer\(s\) upsample \(Conv2DTranspose\), flat \(Flatten\); supported: InputLayer, Conv2D, /.test(error.message),
  );
});
