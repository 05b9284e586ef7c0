import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../app/engine/runtime/backend.ts';
import { crossEntropy, distillationLoss, ntXentLoss } from '../../app/engine/simclr/objective.ts';

before(async () => {
  await initBackend('wasm');
});

function close(actual: number, expected: number, tolerance = 1e-5): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${actual} is not within ${tolerance} of ${expected}`);
}

function closeArrays(actual: ArrayLike<number>, expected: number[], tolerance = 1e-5): void {
  assert.equal(actual.length, expected.length);
  expected.forEach((e, i) => close(actual[i], e, tolerance));
}

/*
 * Hand-computed case, N = 2, τ = 1: view 1 = (1,0), (0,1); view 2 = (1,0), (0,1).
 * Every anchor has cosine 1 with its positive and 0 with its two negatives, so each anchor's
 * loss is −1 + ln(e + 1 + 1) = ln(e + 2) − 1 = 0.5514447.
 * Gradient for a = (1,0) (u = normalised vectors, p = 1/(e+2) = 0.2119416, the softmax weight
 * of each negative, and 1 − e/(e+2) = 2p):
 *   as anchor:            Σ_k softmax_k u_k − u_pos = (−2p, 2p)
 *   as positive of (1,0)': −2p·(1,0)             = (−2p, 0)
 *   as negative of (0,1) and (0,1)': 2·p·(0,1)   = (0, 2p)
 *   sum / 4 anchors = (−p, p); the normalisation removes the radial part: (0, p).
 * By symmetry (0,1) gets (p, 0) in both views.
 */
test('NT-Xent value and gradient match the hand-computed N=2 case', () => {
  const z1 = tf.tensor2d([[1, 0], [0, 1]]);
  const z2 = tf.tensor2d([[1, 0], [0, 1]]);
  const p = 1 / (Math.E + 2);
  const { loss, top1 } = ntXentLoss(z1, z2, 1);
  close(loss.dataSync()[0], Math.log(Math.E + 2) - 1);
  close(loss.dataSync()[0], 0.5514447);
  assert.equal(top1.dataSync()[0], 1);
  const [g1, g2] = tf.grads((a: tf.Tensor, b: tf.Tensor) => ntXentLoss(a as tf.Tensor2D, b as tf.Tensor2D, 1).loss)([z1, z2]);
  closeArrays(g1.dataSync(), [0, p, p, 0]);
  closeArrays(g2.dataSync(), [0, 0.2119416, 0.2119416, 0]);
  tf.dispose([z1, z2, loss, top1, g1, g2]);
});

/*
 * Positives swapped: view 2 = (0,1), (1,0). Each anchor's positive is orthogonal (cosine 0),
 * and one negative is identical (cosine 1). With τ = 0.5: loss = −0 + ln(1 + 1 + e²) = 2.2395448,
 * and no anchor's nearest sample is its positive.
 */
test('NT-Xent with temperature 0.5 and misplaced positives', () => {
  const z1 = tf.tensor2d([[1, 0], [0, 1]]);
  const z2 = tf.tensor2d([[0, 3], [2, 0]]); // lengths do not matter: projections are normalised
  const { loss, top1 } = ntXentLoss(z1, z2, 0.5);
  close(loss.dataSync()[0], Math.log(2 + Math.exp(2)));
  close(loss.dataSync()[0], 2.2395448);
  assert.equal(top1.dataSync()[0], 0);
  tf.dispose([z1, z2, loss, top1]);
});

test('NT-Xent gradient agrees with finite differences on an uneven batch', () => {
  const values = [0.3, -1.2, 0.5, 0.9, 0.1, -0.4, -0.7, 0.8, 0.2, 1.1, -0.3, 0.6, 0.4, 0.4, -0.9, -0.2, 0.7, 0.3];
  const lossAt = (v: number[]) => tf.tidy(() => {
    const z = tf.tensor2d(v, [6, 3]);
    const [a, b] = tf.split(z, 2, 0) as tf.Tensor2D[];
    return ntXentLoss(a, b, 0.2).loss.dataSync()[0];
  });
  const z = tf.tensor2d(values, [6, 3]);
  const grad = tf.grad((x: tf.Tensor) => {
    const [a, b] = tf.split(x, 2, 0) as tf.Tensor2D[];
    return ntXentLoss(a, b, 0.2).loss;
  })(z);
  const analytic = grad.dataSync();
  const eps = 1e-2;
  values.forEach((_, i) => {
    const plus = values.slice();
    const minus = values.slice();
    plus[i] += eps;
    minus[i] -= eps;
    close(analytic[i], (lossAt(plus) - lossAt(minus)) / (2 * eps), 2e-3);
  });
  tf.dispose([z, grad]);
});

test('cross-entropy of a hand-computed case', () => {
  // softmax([0, ln 3]) = (1/4, 3/4); label 1 → −ln(3/4) = 0.2876821.
  const logits = tf.tensor2d([[0, Math.log(3)], [0, 0]]);
  const labels = tf.tensor2d([[0, 1], [1, 0]]);
  const loss = crossEntropy(logits, labels);
  close(loss.dataSync()[0], (-Math.log(0.75) + Math.log(2)) / 2);
  tf.dispose([logits, labels, loss]);
});

test('distillation at τ = 1 from a confident teacher equals cross-entropy with its labels', () => {
  const student = tf.tensor2d([[0.2, -1, 0.5], [1.5, 0.3, -0.2]]);
  const oneHot = tf.tensor2d([[0, 0, 1], [1, 0, 0]]);
  const teacher = tf.mul(oneHot, 1000) as tf.Tensor2D;
  const distilled = distillationLoss(student, teacher, 1);
  const hard = crossEntropy(student, oneHot);
  close(distilled.dataSync()[0], hard.dataSync()[0]);
  tf.dispose([student, oneHot, teacher, distilled, hard]);
});

test('distillation uses the tempered teacher distribution', () => {
  // τ = 2: teacher softmax([ln 3, 0]) = (3/4, 1/4); a uniform student costs ln 2,
  // a student that matches the teacher costs the teacher's entropy 0.5623351.
  const teacher = tf.tensor2d([[2 * Math.log(3), 0]]);
  const uniform = tf.tensor2d([[0, 0]]);
  const loss = distillationLoss(uniform, teacher, 2);
  close(loss.dataSync()[0], Math.log(2));
  const matched = distillationLoss(teacher, teacher, 2);
  close(matched.dataSync()[0], 0.5623351);
  tf.dispose([teacher, uniform, loss, matched]);
});

test('losses leave no tensors behind', () => {
  const z1 = tf.randomNormal([4, 8]) as tf.Tensor2D;
  const z2 = tf.randomNormal([4, 8]) as tf.Tensor2D;
  const before = tf.memory().numTensors;
  const { loss, top1 } = ntXentLoss(z1, z2, 0.1);
  const distill = distillationLoss(z1, z2, 1);
  assert.equal(tf.memory().numTensors, before + 3);
  tf.dispose([z1, z2, loss, top1, distill]);
});
