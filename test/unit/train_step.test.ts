import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../app/engine/runtime/backend.ts';
import { LarsOptimizer } from '../../app/engine/simclr/lars_optimizer.ts';
import { buildClassifier, buildPretrainModel, copyWeightsByName, type ModelConfig } from '../../app/engine/simclr/model.ts';
import { Rng } from '../../app/engine/simclr/random.ts';
import { classifierStep, distillStep, mixPairs, pretrainStep, type PretrainStepConfig } from '../../app/engine/simclr/train_step.ts';

before(async () => {
  await initBackend('wasm');
});

const tiny: ModelConfig = { depth: 18, width: 0.125, sk: false, imageSize: 16, projectionDim: 16 };
const tinySk: ModelConfig = { ...tiny, sk: true };
const pretrainCfg: PretrainStepConfig = { imageSize: 16, temperature: 0.2, learningRate: 0.3, augment: { strength: 0.5, blur: false } };

/** Eight distinct images: coloured stripes whose frequency and colour depend on the class. */
function images(n: number, seed: number): { images: tf.Tensor4D; labels: number[] } {
  const rng = new Rng(seed);
  const labels = Array.from({ length: n }, (_, i) => i % 2);
  const values: number[] = [];
  for (const label of labels) {
    const phase = rng.uniform(0, 6);
    for (let i = 0; i < 16; i++) {
      for (let j = 0; j < 16; j++) {
        const stripe = 0.5 + 0.5 * Math.sin((label === 0 ? i : j) * 1.3 + phase);
        values.push(stripe, label === 0 ? 0.2 : 0.8 * stripe, rng.uniform(0, 0.3));
      }
    }
  }
  return { images: tf.tensor4d(values, [n, 16, 16, 3]), labels };
}

test('pretraining steps leak no tensors, update BN statistics and keep the projection beta frozen', async () => {
  const model = buildPretrainModel(tinySk, 1);
  const optimizer = new LarsOptimizer({ weightDecay: 1e-4 });
  const batch = images(4, 1);
  const rng = new Rng(2);
  const first = await pretrainStep(model, optimizer, batch.images, pretrainCfg, rng); // creates the momentum slots
  assert.ok(Number.isFinite(first.loss) && first.top1 >= 0 && first.top1 <= 1);
  const movingMean = () => Array.from(model.getLayer('stem_bn').getWeights()[2].dataSync());
  const meanBefore = movingMean();
  const stemBefore = Array.from(model.getLayer('stem_conv').getWeights()[0].dataSync());

  const tensorsBefore = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) await pretrainStep(model, optimizer, batch.images, pretrainCfg, rng);
  assert.equal(tf.memory().numTensors, tensorsBefore);

  assert.notDeepEqual(movingMean(), meanBefore);
  assert.notDeepEqual(Array.from(model.getLayer('stem_conv').getWeights()[0].dataSync()), stemBefore);
  const projectionBeta = model.getLayer('head_bn3').getWeights()[1];
  assert.ok(Array.from(projectionBeta.dataSync()).every((b) => b === 0));
  batch.images.dispose();
  optimizer.dispose();
  model.dispose();
});

test('pretraining is repeatable with the same seeds', async () => {
  const run = async () => {
    const model = buildPretrainModel(tiny, 7);
    const optimizer = new LarsOptimizer({ weightDecay: 1e-4 });
    const batch = images(4, 3);
    const rng = new Rng(11);
    const losses: number[] = [];
    for (let i = 0; i < 2; i++) losses.push((await pretrainStep(model, optimizer, batch.images, pretrainCfg, rng)).loss);
    batch.images.dispose();
    optimizer.dispose();
    model.dispose();
    return losses;
  };
  assert.deepEqual(await run(), await run());
});

test('fine-tuning fits a small labelled set, then distillation moves a student towards it, without leaks', async () => {
  const pretrain = buildPretrainModel(tiny, 4);
  const teacher = buildClassifier(tiny, 2, 5);
  copyWeightsByName(pretrain, teacher);
  pretrain.dispose();
  const labelled = images(8, 6);
  const rng = new Rng(8);
  const finetuneCfg = { imageSize: 16, learningRate: 0.3 };
  const finetuner = new LarsOptimizer({ weightDecay: 0 });
  const first = await classifierStep(teacher, finetuner, labelled, finetuneCfg, rng);
  let tensorsBefore = tf.memory().numTensors;
  let last = first;
  // Long enough for a confident teacher (its BN moving averages must catch up too).
  for (let i = 0; i < 29; i++) last = await classifierStep(teacher, finetuner, labelled, finetuneCfg, rng);
  assert.equal(tf.memory().numTensors, tensorsBefore);
  assert.ok(last.loss < first.loss * 0.7, `fine-tuning loss went from ${first.loss} to ${last.loss}`);
  assert.ok(last.accuracy >= 0.75, `accuracy ${last.accuracy}`);
  finetuner.dispose();

  const student = buildClassifier(tiny, 2, 21);
  const distiller = new LarsOptimizer({ weightDecay: 1e-4 });
  const unlabelled = images(8, 9);
  const few = { images: tf.slice(labelled.images, 0, 4) as tf.Tensor4D, labels: labelled.labels.slice(0, 4) };
  const cfg = { imageSize: 16, learningRate: 0.1, temperature: 1, labelWeight: 0.5 };
  const plain = await distillStep(student, teacher, distiller, unlabelled.images, cfg, rng);
  assert.equal(plain.labelledLoss, null);
  assert.equal(plain.loss, plain.distillLoss);
  const withLabels = await distillStep(student, teacher, distiller, unlabelled.images, cfg, rng, few);
  assert.ok(withLabels.labelledLoss !== null);
  assert.ok(Math.abs(withLabels.loss - (withLabels.distillLoss + 0.5 * withLabels.labelledLoss!)) < 1e-5);
  tensorsBefore = tf.memory().numTensors;
  let distilled = withLabels;
  for (let i = 0; i < 12; i++) distilled = await distillStep(student, teacher, distiller, unlabelled.images, cfg, rng, few);
  assert.equal(tf.memory().numTensors, tensorsBefore);
  assert.ok(distilled.distillLoss < plain.distillLoss * 0.85, `distillation loss went from ${plain.distillLoss} to ${distilled.distillLoss}`);

  tf.dispose([labelled.images, unlabelled.images, few.images]);
  distiller.dispose();
  teacher.dispose();
  student.dispose();
});

test('labels outside the classifier\'s classes are refused', async () => {
  const classifier = buildClassifier(tiny, 2);
  const optimizer = new LarsOptimizer({ weightDecay: 0 });
  const batch = images(2, 1);
  await assert.rejects(() => classifierStep(classifier, optimizer, { images: batch.images, labels: [0, 2] }, { imageSize: 16, learningRate: 1 }, new Rng(1)), /label 2 is outside 0…1/);
  batch.images.dispose();
  optimizer.dispose();
  classifier.dispose();
});

test('mixup blends each view and its target with one partner, by a share drawn for that view', () => {
  // Three 1x1 images (one channel value each, repeated over RGB) of classes 0, 1, 2.
  const views = tf.tensor4d([0, 0, 0, 0.5, 0.5, 0.5, 1, 1, 1], [3, 1, 1, 3]);
  const targets = tf.oneHot(tf.tensor1d([0, 1, 2], 'int32'), 3) as tf.Tensor2D;
  const mixed = mixPairs(views, targets, 0.4, new Rng(3));
  // The same draws, replayed: one share per view, then the partner order.
  const replay = new Rng(3);
  const shares = [0, 1, 2].map(() => replay.beta(0.4, 0.4));
  const partners = replay.shuffled([0, 1, 2]);
  assert.notDeepEqual(partners, [0, 1, 2], 'seed 3 should pair at least one image with another');
  const pixel = [0, 0.5, 1];
  const expectedViews = pixel.flatMap((v, i) => Array(3).fill(shares[i] * v + (1 - shares[i]) * pixel[partners[i]]));
  const expectedTargets = [0, 1, 2].flatMap((i) => [0, 1, 2].map((c) => shares[i] * Number(c === i) + (1 - shares[i]) * Number(c === partners[i])));
  const close = (actual: Float32Array | Int32Array | Uint8Array, expected: number[]) =>
    expected.forEach((e, k) => assert.ok(Math.abs(actual[k] - e) < 1e-6, `element ${k}: ${actual[k]} vs ${e}`));
  close(mixed.views.dataSync(), expectedViews);
  close(mixed.targets.dataSync(), expectedTargets);
  tf.dispose([views, targets, mixed.views, mixed.targets]);
});
