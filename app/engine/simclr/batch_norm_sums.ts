/**
 * The two per-channel sums every batch-norm gradient needs, [Σ dy, Σ dy·(x − mean)]: through our
 * fused kernel where the backend registered one (the wasm heap kernels), else plain TF.js ops.
 * Both the stock-layer gradient (runtime/batch_norm.ts) and the fused training op use it.
 */
import * as tf from '@tensorflow/tfjs';

/** Our kernel for the two per-channel sums of the FusedBatchNorm gradient (wasm_heap_kernels.ts). */
export const BATCH_NORM_GRAD_SUMS = 'ContrastBatchNormGradSums';

/** Axes of x that batch-norm statistics reduce over: all but the last (channels). */
function leadingAxes(x: tf.Tensor): number[] {
  return Array.from({ length: x.rank - 1 }, (_, i) => i);
}

/** [Σ dy, Σ dy·(x − mean)] per channel, in one pass where the backend has our fused kernel. */
export function batchNormGradientSums(dy: tf.Tensor, x: tf.Tensor, mean: tf.Tensor): [tf.Tensor1D, tf.Tensor1D] {
  if (mean.rank === 1 && tf.getKernel(BATCH_NORM_GRAD_SUMS, tf.getBackend())) {
    const sums = tf.engine().runKernel(BATCH_NORM_GRAD_SUMS, { dy, x, mean }, {}) as tf.Tensor2D;
    const [sumDy, sumDyCentred] = tf.unstack(sums) as tf.Tensor1D[];
    return [sumDy, sumDyCentred];
  }
  const axes = leadingAxes(x);
  return [
    tf.reshape(tf.sum(dy, axes), [-1]) as tf.Tensor1D,
    tf.reshape(tf.sum(tf.mul(dy, tf.sub(x, mean)), axes), [-1]) as tf.Tensor1D,
  ];
}
