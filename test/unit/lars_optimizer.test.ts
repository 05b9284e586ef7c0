import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../app/engine/runtime/backend.ts';
import { LarsOptimizer, isExcludedFromLars } from '../../app/engine/simclr/lars_optimizer.ts';

before(async () => {
  await initBackend('wasm');
});

function closeArrays(actual: ArrayLike<number>, expected: number[], tolerance = 1e-6): void {
  assert.equal(actual.length, expected.length);
  expected.forEach((e, i) => assert.ok(Math.abs(actual[i] - e) <= tolerance, `[${i}] ${actual[i]} vs ${e}`));
}

test('BN parameters and biases are excluded by name, kernels are not', () => {
  assert.ok(isExcludedFromLars('stem_bn/gamma'));
  assert.ok(isExcludedFromLars('head_bn1/beta'));
  assert.ok(isExcludedFromLars('logits/bias'));
  assert.ok(isExcludedFromLars('logits/kernel'));
  assert.ok(!isExcludedFromLars('stem_conv/kernel'));
  assert.ok(!isExcludedFromLars('head_dense1/kernel'));
});

/*
 * Kernel w = (3, 4), g = (0.3, 0.4) each step, λ = 0.1, η = 0.001, m = 0.9, α = 2.
 * Step 1: g + λw = (0.6, 0.8), ‖·‖ = 1, ‖w‖ = 5 → α' = 2·0.001·5/1 = 0.01
 *         v = (0.006, 0.008), w = (2.994, 3.992)
 * Step 2: g + λw = (0.5994, 0.7992), ‖·‖ = 0.999, ‖w‖ = 4.99 → α' = 0.00998999
 *         v = 0.9·(0.006, 0.008) + α'·(0.5994, 0.7992) = (0.011388, 0.015184)
 *         w = (2.982612, 3.976816)
 * Excluded BN gamma b = (1, −2), g = (0.5, 0.5): plain momentum SGD, no decay.
 * Step 1: v = (1, 1), b = (0, −3). Step 2: v = (1.9, 1.9), b = (−1.9, −4.9).
 */
test('two LARS steps match hand-computed values, with an excluded variable', () => {
  const variables = { 'dense/kernel': tf.variable(tf.tensor1d([3, 4])), 'bn/gamma': tf.variable(tf.tensor1d([1, -2])) };
  const grads = { 'dense/kernel': tf.tensor1d([0.3, 0.4]), 'bn/gamma': tf.tensor1d([0.5, 0.5]) };
  const optimizer = new LarsOptimizer({ weightDecay: 0.1 });
  optimizer.applyGradients(grads, variables, 2);
  closeArrays(variables['dense/kernel'].dataSync(), [2.994, 3.992]);
  closeArrays(variables['bn/gamma'].dataSync(), [0, -3]);
  optimizer.applyGradients(grads, variables, 2);
  closeArrays(variables['dense/kernel'].dataSync(), [2.982612, 3.976816]);
  closeArrays(variables['bn/gamma'].dataSync(), [-1.9, -4.9]);
  optimizer.dispose();
  tf.dispose([...Object.values(variables), ...Object.values(grads)]);
});

test('a zero weight falls back to the plain learning rate instead of a zero trust ratio', () => {
  const variables = { 'dense/kernel': tf.variable(tf.zeros([2])) };
  const grads = { 'dense/kernel': tf.tensor1d([1, -1]) };
  const optimizer = new LarsOptimizer({ weightDecay: 1e-4 });
  optimizer.applyGradients(grads, variables, 0.5);
  closeArrays(variables['dense/kernel'].dataSync(), [-0.5, 0.5]);
  optimizer.dispose();
  tf.dispose([...Object.values(variables), ...Object.values(grads)]);
});

test('saved momentum slots resume the same trajectory and updates leak no tensors', () => {
  const grads = { 'dense/kernel': tf.tensor1d([0.3, -0.1]) };
  const first = { 'dense/kernel': tf.variable(tf.tensor1d([1, 2])) };
  const optimizer = new LarsOptimizer({ weightDecay: 1e-4 });
  optimizer.applyGradients(grads, first, 1);
  const before = tf.memory().numTensors;
  optimizer.applyGradients(grads, first, 1);
  optimizer.applyGradients(grads, first, 1);
  assert.equal(tf.memory().numTensors, before);

  const state = optimizer.getState();
  const resumedWeights = { 'dense/kernel': tf.variable(first['dense/kernel'].clone()) };
  const resumed = new LarsOptimizer({ weightDecay: 1e-4 });
  resumed.setState(state);
  tf.dispose(Object.values(state));
  optimizer.applyGradients(grads, first, 1);
  resumed.applyGradients(grads, resumedWeights, 1);
  closeArrays(resumedWeights['dense/kernel'].dataSync(), Array.from(first['dense/kernel'].dataSync()), 0);

  optimizer.dispose();
  resumed.dispose();
  tf.dispose([...Object.values(first), ...Object.values(resumedWeights), ...Object.values(grads)]);
});

test('a gradient for an unknown variable is a bug and says which', () => {
  const optimizer = new LarsOptimizer({ weightDecay: 0 });
  const grads = { 'nope/kernel': tf.tensor1d([1]) };
  assert.throws(() => optimizer.applyGradients(grads, {}, 1), /nope\/kernel/);
  tf.dispose(Object.values(grads));
});
