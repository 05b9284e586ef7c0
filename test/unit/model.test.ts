import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../app/engine/runtime/backend.ts';
import {
  buildClassifier, buildPretrainModel, classifyImages, copyWeightsByName, namedTrainableVariables, runClassifier, runPretrainModel,
  type ModelConfig,
} from '../../app/engine/simclr/model.ts';

before(async () => {
  await initBackend('wasm');
});

const tiny: ModelConfig = { depth: 18, width: 0.125, sk: false, imageSize: 16 };

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

test('pretrain model outputs the projection and the encoder features', () => {
  const model = buildPretrainModel({ ...tiny, projectionDim: 24 }, 1);
  const images = tf.randomUniform([3, 16, 16, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
  const { projection, features } = runPretrainModel(model, images, false);
  assert.deepEqual(projection.shape, [3, 24]);
  assert.deepEqual(features.shape, [3, 64]);
  // Hidden head layers are as wide as the encoder output.
  assert.deepEqual(model.getLayer('head_dense1').getWeights()[0].shape, [64, 64]);
  assert.deepEqual(model.getLayer('head_dense2').getWeights()[0].shape, [64, 64]);
  assert.deepEqual(model.getLayer('head_dense3').getWeights()[0].shape, [64, 24]);
  tf.dispose([images, projection, features]);
  model.dispose();
});

test('the last projection BN has no trainable centre; every other BN beta trains', () => {
  const model = buildPretrainModel(tiny);
  const names = Object.keys(namedTrainableVariables(model));
  assert.ok(!names.includes('head_bn3/beta'));
  assert.ok(names.includes('head_bn3/gamma'));
  assert.ok(names.includes('head_bn2/beta'));
  assert.ok(names.includes('stem_bn/beta'));
  model.dispose();
});

test('trainable variables are keyed by stable names even when a second model reuses the layer names', () => {
  const first = buildClassifier(tiny, 3);
  const second = buildClassifier(tiny, 3);
  const a = namedTrainableVariables(first);
  const b = namedTrainableVariables(second);
  assert.deepEqual(Object.keys(a), Object.keys(b));
  assert.ok('stem_conv/kernel' in b && 'logits/bias' in b);
  assert.notEqual(a['stem_conv/kernel'], b['stem_conv/kernel']);
  first.dispose();
  second.dispose();
});

test('classifier outputs logits and its penultimate embedding', () => {
  const model = buildClassifier(tiny, 5);
  const images = tf.zeros([2, 16, 16, 3]) as tf.Tensor4D;
  const { logits, embedding } = runClassifier(model, images, false);
  assert.deepEqual(logits.shape, [2, 5]);
  assert.deepEqual(embedding.shape, [2, 64]);
  tf.dispose([images, logits, embedding]);
  model.dispose();
  assert.throws(() => buildClassifier(tiny, 1), (e: unknown) => e instanceof RangeError && /at least 2 classes/.test(e.message));
});

test('copying a pretrain model into a classifier fine-tunes from the first head layer', () => {
  const pretrain = buildPretrainModel(tiny, 5);
  const images = tf.randomUniform([4, 16, 16, 3], 0, 1, 'float32', 9) as tf.Tensor4D;
  // Move BN statistics away from their initial values so copying them is observable.
  tf.dispose(runPretrainModel(pretrain, images, true));
  const classifier = buildClassifier(tiny, 3, 6);
  const copied = copyWeightsByName(pretrain, classifier);
  assert.ok(copied.includes('stem_conv') && copied.includes('head_bn1') && copied.includes('block4_2_bn2'));
  assert.ok(!copied.includes('logits') && !copied.includes('head_dense2'));

  const headHidden = tf.model({ inputs: pretrain.inputs, outputs: pretrain.getLayer('head_relu1').output as tf.SymbolicTensor });
  const expected = headHidden.predict(images) as tf.Tensor;
  const { logits, embedding } = runClassifier(classifier, images, false);
  assert.ok(maxAbsDiff(expected, embedding) < 1e-6);
  tf.dispose([images, expected, logits, embedding]);
  pretrain.dispose();
  classifier.dispose();
});

test('inference averages the probabilities of an image and its mirror image; the embedding is the image\'s own', () => {
  // A 1x2 one-channel image [a, b]; logits [2a, b], so the two views disagree.
  const input = tf.input({ shape: [1, 2, 1] });
  const flat = tf.layers.flatten().apply(input) as tf.SymbolicTensor;
  const logitsLayer = tf.layers.dense({ units: 2, useBias: false, weights: [tf.tensor2d([[2, 0], [0, 1]])] });
  const model = tf.model({ inputs: input, outputs: [logitsLayer.apply(flat) as tf.SymbolicTensor, flat] });
  const image = tf.tensor4d([1, 0], [1, 1, 2, 1]);
  const { logits, embedding } = classifyImages(model, image);
  // Image [1, 0]: logits [2, 0], softmax [0.8808, 0.1192]; mirror [0, 1]: logits [0, 1], softmax [0.2689, 0.7311].
  const softmax = tf.softmax(logits);
  const probabilities = softmax.dataSync();
  assert.ok(Math.abs(probabilities[0] - 0.57485) < 1e-4 && Math.abs(probabilities[1] - 0.42515) < 1e-4, `${probabilities}`);
  assert.deepEqual(Array.from(embedding.dataSync()), [1, 0]);
  tf.dispose([image, logits, embedding, softmax]);
  model.dispose();
});

test('copying between different architectures is refused', () => {
  const wide = buildClassifier({ ...tiny, width: 0.25 }, 3);
  const narrow = buildClassifier(tiny, 3);
  assert.throws(() => copyWeightsByName(wide, narrow), (e: unknown) => e instanceof RangeError && /stem_conv/.test(e.message));
  wide.dispose();
  narrow.dispose();
});

test('training mode uses batch statistics and updates BN moving averages; inference leaves them', () => {
  const model = buildClassifier(tiny, 2);
  const bn = model.getLayer('stem_bn');
  const movingMean = () => Array.from(bn.getWeights()[2].dataSync());
  const images = tf.randomUniform([4, 16, 16, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
  const before = movingMean();
  tf.dispose(runClassifier(model, images, false));
  assert.deepEqual(movingMean(), before);
  tf.dispose(runClassifier(model, images, true));
  const after = movingMean();
  assert.notDeepEqual(after, before);
  // Momentum 0.9: the moving mean moves a tenth of the way to the batch mean (it started at 0).
  const stemOut = tf.model({ inputs: model.inputs, outputs: model.getLayer('stem_conv').output as tf.SymbolicTensor });
  const batchMean = tf.tidy(() => tf.mean(stemOut.predict(images) as tf.Tensor, [0, 1, 2]).dataSync());
  after.forEach((m, i) => assert.ok(Math.abs(m - 0.1 * batchMean[i]) < 1e-5));
  images.dispose();
  model.dispose();
});
