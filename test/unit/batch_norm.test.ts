import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../app/engine/runtime/backend.ts';

function randomValues(size: number, seed: number, offset = 0): Float32Array {
  const values = new Float32Array(size);
  let state = seed >>> 0;
  for (let i = 0; i < size; i++) {
    state = (state * 1664525 + 1013904223) >>> 0;
    values[i] = offset + 2 * (state / 2 ** 32 - 0.5);
  }
  return values;
}

/** Closed-form training-mode batch-norm gradients in float64, channels last. */
function expectedGradients(x: Float32Array, dy: Float32Array, gamma: Float32Array, channels: number, epsilon: number) {
  const rows = x.length / channels;
  const dx = new Float64Array(x.length);
  const dGamma = new Float64Array(channels);
  const dBeta = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    let mean = 0;
    for (let i = 0; i < rows; i++) mean += x[i * channels + c] / rows;
    let variance = 0;
    for (let i = 0; i < rows; i++) variance += (x[i * channels + c] - mean) ** 2 / rows;
    const r = 1 / Math.sqrt(variance + epsilon);
    let meanDy = 0;
    let meanDyXhat = 0;
    for (let i = 0; i < rows; i++) {
      const xhat = (x[i * channels + c] - mean) * r;
      dBeta[c] += dy[i * channels + c];
      dGamma[c] += dy[i * channels + c] * xhat;
      meanDy += dy[i * channels + c] / rows;
      meanDyXhat += (dy[i * channels + c] * xhat) / rows;
    }
    for (let i = 0; i < rows; i++) {
      const xhat = (x[i * channels + c] - mean) * r;
      dx[i * channels + c] = gamma[c] * r * (dy[i * channels + c] - meanDy - xhat * meanDyXhat);
    }
  }
  return { dx, dGamma, dBeta };
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  let magnitude = 1;
  let maxDiff = 0;
  for (let i = 0; i < expected.length; i++) {
    magnitude = Math.max(magnitude, Math.abs(expected[i]));
    maxDiff = Math.max(maxDiff, Math.abs(actual[i] - expected[i]));
  }
  assert.ok(maxDiff / magnitude < 1e-4, `${what}: relative error ${maxDiff / magnitude}`);
}

for (const backend of ['cpu', 'wasm'] as const) {
  // Channel counts divisible by 4 take the wasm SIMD kernels, the others the plain paths.
  // The last shape is big enough for the SIMD kernels to split rows across threads.
  for (const shape of [[4, 5, 3, 6], [9, 7], [4, 5, 3, 8], [300, 12], [16, 32, 32, 16]]) {
    test(`${backend}: gradients of a stock tf.layers batch norm in training mode match the closed form, shape ${shape}`, async () => {
      await initBackend(backend);
      const channels = shape.at(-1)!;
      const size = shape.reduce((a, b) => a * b, 1);
      // A mean far from 0 checks that Σ dy·(x − mean) does not lose digits to cancellation.
      const xValues = randomValues(size, 1, 30);
      const dyValues = randomValues(size, 2);
      const gammaValues = randomValues(channels, 3, 1);
      const layer = tf.layers.batchNormalization({ axis: -1, epsilon: 1e-3, gammaInitializer: tf.initializers.constant({ value: 1 }) });
      layer.build(shape);
      layer.setWeights([tf.tensor1d(gammaValues), tf.zeros([channels]), tf.zeros([channels]), tf.ones([channels])]);
      const [gamma, beta] = layer.trainableWeights.map((w) => w.read() as tf.Variable);
      const x = tf.tensor(xValues, shape);
      const dy = tf.tensor(dyValues, shape);
      const f = (input: tf.Tensor) => tf.sum(tf.mul(layer.apply(input, { training: true }) as tf.Tensor, dy)) as tf.Scalar;
      const dx = tf.grad(f)(x);
      const { grads } = tf.variableGrads(() => f(x), [gamma, beta]);
      const expected = expectedGradients(xValues, dyValues, gammaValues, channels, 1e-3);
      assertClose(await dx.data(), expected.dx, 'dx');
      assertClose(await grads[gamma.name].data(), expected.dGamma, 'dgamma');
      assertClose(await grads[beta.name].data(), expected.dBeta, 'dbeta');
      tf.dispose([x, dy, dx, ...Object.values(grads)]);
    });
  }

  test(`${backend}: the gradient of mean spreads dy evenly over the reduced axes`, async () => {
    await initBackend(backend);
    const x = tf.tensor(randomValues(60, 4), [3, 4, 5]);
    const weights = tf.tensor(randomValues(4, 5), [1, 4, 1]);
    const g = tf.grad((input: tf.Tensor) => tf.sum(tf.mul(tf.mean(input, [0, 2], true), weights)))(x);
    const w = await weights.data();
    const expected = Array.from({ length: 60 }, (_, i) => w[Math.floor(i / 5) % 4] / 15);
    assertClose(await g.data(), expected, 'mean gradient');
    tf.dispose([x, weights, g]);
  });
}
