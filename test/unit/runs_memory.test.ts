import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../app/engine/runtime/backend.ts';
import { defaultPretrainAugment } from '../../app/engine/simclr/data_util.ts';
import { LarsOptimizer } from '../../app/engine/simclr/lars_optimizer.ts';
import { inferenceBatch } from '../../app/engine/data/inference.ts';
import { checkMemory, estimateTrainingBytes, memoryLimitBytes } from '../../app/engine/runtime/memory.ts';
import { buildPretrainModel } from '../../app/engine/simclr/model.ts';
import { Rng } from '../../app/engine/simclr/random.ts';
import { pretrainStep } from '../../app/engine/simclr/train_step.ts';

test('the memory estimate of a pretraining step covers its measured peak without doubling it', async () => {
  await initBackend('wasm');
  const imageSize = 32;
  const batch = 8;
  const model = buildPretrainModel({ depth: 18, width: 0.25, sk: false, imageSize }, 1);
  const optimizer = new LarsOptimizer({ weightDecay: 1e-6 });
  const images = tf.randomUniform([batch, imageSize, imageSize, 3]) as tf.Tensor4D;
  const step = () =>
    pretrainStep(model, optimizer, images, { imageSize, temperature: 0.5, learningRate: 0.1, augment: defaultPretrainAugment(imageSize) }, new Rng(1));
  await step(); // creates the momentum slots, which the estimate counts
  const resident = tf.memory().numBytes;
  const { peakBytes } = await tf.profile(async () => {
    await step();
  });
  const measured = resident + peakBytes;
  const estimate = estimateTrainingBytes(model, 2 * batch);
  assert.ok(estimate >= measured, `estimate ${estimate} below measured ${measured}`);
  assert.ok(estimate <= 2 * measured, `estimate ${estimate} more than twice measured ${measured}`);
  images.dispose();
  optimizer.dispose();
  model.dispose();
});

test('a configuration over the limit is refused with the need, the limit and a batch that fits', () => {
  const limit = memoryLimitBytes('wasm');
  assert.doesNotThrow(() => checkMemory({ bytes: limit, largestBufferBytes: 0 }, 'wasm', 128));
  assert.throws(() => checkMemory({ bytes: limit * 4, largestBufferBytes: 0 }, 'wasm', 128), {
    name: 'UserError',
    message: /needs about [\d.]+ GB to train at batch 128, more than the [\d.]+ GB available to the wasm backend; use --batch 32 or less, or a smaller --size, --width or --arch$/,
  });
  assert.ok(memoryLimitBytes('wasm') <= 4 * 1024 ** 3, 'wasm32 cannot address more than 4 GiB');
});

test('forward passes hold as many pixels at 224 px as at 32 px: 256 images become 5', () => {
  assert.deepEqual([16, 32, 64, 96, 224, 1024].map(inferenceBatch), [256, 256, 64, 28, 5, 1]);
});
