/**
 * A stand-in ResNet-18 (CIFAR stem) built from raw ops, for measuring kernels before the
 * engine's own model exists. Batch norm uses tf.moments + tf.batchNorm, the same ops
 * tf.layers uses in training mode.
 */
import * as tf from '@tensorflow/tfjs';

export interface ToyResNet {
  variables: tf.Variable[];
  apply(images: tf.Tensor4D, training: boolean): tf.Tensor2D;
}

export type BatchNormFn = (x: tf.Tensor4D | tf.Tensor2D, gamma: tf.Variable, beta: tf.Variable) => tf.Tensor;

export function plainBatchNorm(x: tf.Tensor4D | tf.Tensor2D, gamma: tf.Variable, beta: tf.Variable): tf.Tensor {
  const axes = x.rank === 4 ? [0, 1, 2] : [0];
  const { mean, variance } = tf.moments(x, axes);
  return tf.batchNorm(x, mean, variance, beta, gamma, 1e-5);
}

export function buildToyResNet18(width: number, batchNorm: BatchNormFn = plainBatchNorm, seed = 1): ToyResNet {
  const variables: tf.Variable[] = [];
  let counter = seed;
  const conv = (k: number, cin: number, cout: number) => {
    const v = tf.variable(tf.randomNormal([k, k, cin, cout], 0, Math.sqrt(2 / (k * k * cin)), 'float32', counter++));
    variables.push(v);
    return v;
  };
  const bn = (c: number) => {
    const g = tf.variable(tf.ones([c]));
    const b = tf.variable(tf.zeros([c]));
    variables.push(g, b);
    return [g, b] as const;
  };
  const channels = [64, 128, 256, 512].map((c) => Math.max(1, Math.round(c * width)));
  const stem = { w: conv(3, 3, channels[0]), bn: bn(channels[0]) };
  type Block = { w1: tf.Variable; bn1: readonly [tf.Variable, tf.Variable]; w2: tf.Variable; bn2: readonly [tf.Variable, tf.Variable]; stride: number; proj?: { w: tf.Variable; bn: readonly [tf.Variable, tf.Variable] } };
  const blocks: Block[] = [];
  let cin = channels[0];
  channels.forEach((cout, stage) => {
    for (let i = 0; i < 2; i++) {
      const stride = stage > 0 && i === 0 ? 2 : 1;
      blocks.push({
        w1: conv(3, cin, cout), bn1: bn(cout), w2: conv(3, cout, cout), bn2: bn(cout), stride,
        proj: stride !== 1 || cin !== cout ? { w: conv(1, cin, cout), bn: bn(cout) } : undefined,
      });
      cin = cout;
    }
  });
  const norm = (x: tf.Tensor4D, p: readonly [tf.Variable, tf.Variable]) => batchNorm(x, p[0], p[1]) as tf.Tensor4D;
  return {
    variables,
    apply(images) {
      let x = tf.relu(norm(tf.conv2d(images, stem.w as tf.Tensor4D, 1, 'same'), stem.bn));
      for (const b of blocks) {
        const shortcut = b.proj ? norm(tf.conv2d(x, b.proj.w as tf.Tensor4D, b.stride, 'same'), b.proj.bn) : x;
        let y = tf.relu(norm(tf.conv2d(x, b.w1 as tf.Tensor4D, b.stride, 'same'), b.bn1));
        y = norm(tf.conv2d(y, b.w2 as tf.Tensor4D, 1, 'same'), b.bn2);
        x = tf.relu(tf.add(y, shortcut));
      }
      return tf.mean(x, [1, 2]) as tf.Tensor2D;
    },
  };
}
