/**
 * Losses of the three SimCLRv2 stages. Every function is wrapped in tf.tidy and returns only
 * the tensors it documents; the caller disposes them.
 */
import * as tf from '@tensorflow/tfjs';

/** Added to self-similarities so exp() underflows to exactly 0 and a sample is never its own candidate. */
const SELF_MASK = 1e9;

export type ContrastiveResult = { loss: tf.Scalar; top1: tf.Scalar };

/**
 * NT-Xent (SimCLR eq. 1), averaged over all 2N anchors. z1[i] and z2[i] are projections of two
 * views of image i. Each anchor's positive is the other view of its image; the remaining
 * 2N − 2 samples of the batch are its negatives. Projections are L2-normalised here, so
 * similarities are cosines divided by `temperature`.
 *
 * top1 is the fraction of anchors whose most similar other sample is their positive.
 */
export function ntXentLoss(z1: tf.Tensor2D, z2: tf.Tensor2D, temperature: number): ContrastiveResult {
  if (z1.shape.join() !== z2.shape.join()) throw new Error(`views differ in shape: ${z1.shape} vs ${z2.shape}`);
  if (!(temperature > 0)) throw new Error(`temperature must be positive, got ${temperature}`);
  const n = z1.shape[0];
  return tf.tidy(() => {
    const z = l2Normalize(tf.concat([z1, z2], 0));
    const similarities = tf.div(tf.matMul(z, z, false, true), temperature);
    const logits = tf.sub(similarities, tf.mul(tf.eye(2 * n), SELF_MASK));
    // Anchor i in view 1 has its positive at i + N, anchor N + i at i.
    const positives = tf.tensor1d(Array.from({ length: 2 * n }, (_, i) => (i + n) % (2 * n)), 'int32');
    const targets = tf.oneHot(positives, 2 * n);
    const loss = tf.mean(tf.neg(tf.sum(tf.mul(targets, tf.logSoftmax(logits)), 1))) as tf.Scalar;
    const top1 = tf.mean(tf.cast(tf.equal(tf.argMax(logits, 1), positives), 'float32')) as tf.Scalar;
    return { loss, top1 };
  });
}

function l2Normalize(x: tf.Tensor2D): tf.Tensor2D {
  const squaredNorm = tf.sum(tf.square(x), 1, true);
  return tf.mul(x, tf.rsqrt(tf.maximum(squaredNorm, 1e-12)));
}

/** Mean cross-entropy of logits against one-hot (or any probability) targets. */
export function crossEntropy(logits: tf.Tensor2D, targets: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.neg(tf.sum(tf.mul(targets, tf.logSoftmax(logits)), 1))) as tf.Scalar);
}

/**
 * SimCLRv2 distillation: cross-entropy between the teacher's and the student's tempered
 * softmax, −Σ softmax(t/τ) · log softmax(s/τ), averaged over the batch. No τ² factor: SimCLRv2
 * distils with this loss alone (or plus a labelled term the caller weights), so the factor
 * would only rescale the learning rate. The teacher's logits come from a model whose
 * variables are not being trained, so no gradient reaches it.
 */
export function distillationLoss(studentLogits: tf.Tensor2D, teacherLogits: tf.Tensor2D, temperature: number): tf.Scalar {
  if (!(temperature > 0)) throw new Error(`temperature must be positive, got ${temperature}`);
  return tf.tidy(() => {
    const teacher = tf.softmax(tf.div(teacherLogits, temperature)) as tf.Tensor2D;
    return crossEntropy(tf.div(studentLogits, temperature), teacher);
  });
}
