/** What the kernel tests share: reproducible inputs, one kernel run on a named backend, and its error. */
import * as tf from '@tensorflow/tfjs';

export type Shape4 = [number, number, number, number];

/** Deterministic pseudo-random values in [−0.5, 0.5), so a failure can be reproduced. */
export function randomValues(size: number, seed: number): Float32Array {
  const values = new Float32Array(size);
  let state = seed >>> 0;
  for (let i = 0; i < size; i++) {
    state = (state * 1664525 + 1013904223) >>> 0;
    values[i] = state / 2 ** 32 - 0.5;
  }
  return values;
}

/** Runs one kernel on a named backend with the same input values, returning plain numbers. */
export async function runKernelOn(backend: string, kernel: string, inputs: Record<string, [number[], Float32Array]>, attrs: tf.NamedAttrMap) {
  await tf.setBackend(backend);
  const tensors = Object.fromEntries(Object.entries(inputs).map(([name, [shape, values]]) => [name, tf.tensor(values, shape)]));
  const out = tf.engine().runKernel(kernel, tensors, attrs) as tf.Tensor;
  const result = { shape: out.shape, values: await out.data() };
  tf.dispose([out, ...Object.values(tensors)]);
  return result;
}

/** Largest absolute difference over the largest magnitude of the reference (at least 1). */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let maxDiff = 0;
  let magnitude = 1;
  for (let i = 0; i < expected.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(actual[i] - expected[i]));
    magnitude = Math.max(magnitude, Math.abs(expected[i]));
  }
  return maxDiff / magnitude;
}
