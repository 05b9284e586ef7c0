import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../app/engine/runtime/backend.ts';
import { buildClassifier, buildPretrainModel, copyWeightsByName, namedTrainableVariables, type ModelConfig } from '../../app/engine/simclr/model.ts';
import { Rng } from '../../app/engine/simclr/random.ts';
import { fusesBatchNorms, runTrainingForward } from '../../app/engine/simclr/training_forward.ts';

const tiny: ModelConfig = { depth: 18, width: 0.125, sk: false, imageSize: 16, projectionDim: 16 };
const BATCH = 8;

/**
 * Gives every BN random gamma, beta and moving statistics: the built models start with zero
 * gammas at the end of each residual branch, which would zero most gradients and test little.
 */
function randomiseBatchNorms(model: tf.LayersModel, rng: Rng): void {
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const values = layer.getWeights().map((w, i) => {
      const low = i === 1 || i === 2 ? -0.5 : 0.5; // beta and moving mean around 0, gamma and moving variance around 1
      return tf.tensor(Array.from({ length: w.size }, () => rng.uniform(low, low + 1)), w.shape);
    });
    layer.setWeights(values);
    tf.dispose(values);
  }
}

/** Two same-weighted copies of a network. */
function twins(build: () => tf.LayersModel): [tf.LayersModel, tf.LayersModel] {
  const stock = build();
  randomiseBatchNorms(stock, new Rng(7));
  const fused = build();
  copyWeightsByName(stock, fused);
  return [stock, fused];
}

/** A loss that weights every output element differently, so every gradient is distinct. */
function lossOf(outputs: tf.Tensor[], weights: tf.Tensor[]): tf.Scalar {
  return tf.addN(outputs.map((out, i) => tf.sum(tf.mul(tf.tanh(out), weights[i])))) as tf.Scalar;
}

interface StepResult {
  outputs: Float32Array[];
  loss: number;
  grads: Record<string, Float32Array>;
  movingStatistics: Record<string, Float32Array>;
}

/** One forward + backward; BN moving statistics read after it. */
function step(model: tf.LayersModel, images: tf.Tensor4D, weights: tf.Tensor[], forward: (m: tf.LayersModel, x: tf.Tensor4D) => tf.Tensor[]): StepResult {
  const variables = namedTrainableVariables(model);
  const stable = new Map(Object.entries(variables).map(([name, v]) => [v.name, name]));
  let outputs: Float32Array[] = [];
  const { value, grads } = tf.variableGrads(() => {
    const outs = forward(model, images);
    outputs = outs.map((t) => t.dataSync() as Float32Array);
    return lossOf(outs, weights);
  }, Object.values(variables));
  const named: Record<string, Float32Array> = {};
  for (const [name, grad] of Object.entries(grads)) named[stable.get(name)!] = grad.dataSync() as Float32Array;
  const movingStatistics: Record<string, Float32Array> = {};
  for (const w of model.weights) if (/moving_/.test(w.originalName)) movingStatistics[w.originalName] = w.read().dataSync() as Float32Array;
  const loss = value.dataSync()[0];
  tf.dispose([value, ...Object.values(grads)]);
  return { outputs, loss, grads: named, movingStatistics };
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let magnitude = 0;
  let maxDiff = 0;
  for (let i = 0; i < expected.length; i++) {
    magnitude = Math.max(magnitude, Math.abs(expected[i]));
    maxDiff = Math.max(maxDiff, Math.abs(actual[i] - expected[i]));
  }
  assert.ok(magnitude > 0, `${what}: all zero, tests nothing`);
  assert.ok(maxDiff / magnitude < 1e-4, `${what}: relative error ${maxDiff / magnitude}`);
}

const stockForward = (model: tf.LayersModel, x: tf.Tensor4D) => model.apply(x, { training: true }) as tf.Tensor[];

function assertSameStep(stock: StepResult, fused: StepResult): void {
  stock.outputs.forEach((out, i) => assertClose(fused.outputs[i], out, `output ${i}`));
  assertClose([fused.loss], [stock.loss], 'loss');
  assert.deepEqual(Object.keys(fused.grads).sort(), Object.keys(stock.grads).sort());
  for (const name of Object.keys(stock.grads)) assertClose(fused.grads[name], stock.grads[name], `gradient of ${name}`);
  for (const name of Object.keys(stock.movingStatistics)) assertClose(fused.movingStatistics[name], stock.movingStatistics[name], name);
}

const networks: [string, () => tf.LayersModel][] = [
  ['ResNet-18 classifier', () => buildClassifier(tiny, 3, 1)],
  ['ResNet-18 pretrain model', () => buildPretrainModel(tiny, 1)],
  ['ResNet-50 (bottleneck) classifier', () => buildClassifier({ ...tiny, depth: 50 }, 3, 1)],
  ['selective-kernel pretrain model', () => buildPretrainModel({ ...tiny, sk: true }, 1)],
];

for (const backend of ['cpu', 'wasm'] as const) {
  for (const [what, build] of networks) {
    test(`${backend}: ${what}: fused batch norms give stock outputs, loss, gradients and moving statistics`, async () => {
      await initBackend(backend);
      const [stock, fused] = twins(build);
      assert.ok(fusesBatchNorms(fused));
      const rng = new Rng(3);
      const images = tf.tensor4d(Array.from({ length: BATCH * 16 * 16 * 3 }, () => rng.uniform(0, 1)), [BATCH, 16, 16, 3]);
      const weights = stock.outputs.map((o) => tf.tensor(Array.from({ length: BATCH * (o.shape[1] as number) }, () => rng.uniform(-1, 1)), [BATCH, o.shape[1] as number]));
      assertSameStep(step(stock, images, weights, stockForward), step(fused, images, weights, runTrainingForward));
      tf.dispose([images, ...weights]);
      stock.dispose();
      fused.dispose();
    });
  }

  test(`${backend}: fused training steps leave the tensor count unchanged`, async () => {
    await initBackend(backend);
    const model = buildPretrainModel(tiny, 1);
    const images = tf.randomUniform([BATCH, 16, 16, 3]) as tf.Tensor4D;
    const weights = model.outputs.map((o) => tf.ones([BATCH, o.shape[1] as number]));
    step(model, images, weights, runTrainingForward);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step(model, images, weights, runTrainingForward);
    assert.equal(tf.memory().numTensors, before);
    tf.dispose([images, ...weights]);
    model.dispose();
  });
}

test('a model that uses a layer twice is not planned: it runs through model.apply', async () => {
  await initBackend('cpu');
  const input = tf.input({ shape: [4] });
  const dense = tf.layers.dense({ units: 4, name: 'shared_dense' });
  const bn = tf.layers.batchNormalization({ name: 'shared_bn' });
  const once = bn.apply(dense.apply(input)) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: dense.apply(once) as tf.SymbolicTensor });
  assert.equal(fusesBatchNorms(model), false);
  const x = tf.tensor2d([[1, 2, 3, 4], [0, 1, 0, 1], [2, 2, 1, 0]]);
  const [viaExecutor] = runTrainingForward(model, x);
  const viaApply = model.apply(x, { training: true }) as tf.Tensor;
  assertClose(viaExecutor.dataSync(), viaApply.dataSync(), 'outputs');
  tf.dispose([x, viaExecutor, viaApply]);
  model.dispose();
});
