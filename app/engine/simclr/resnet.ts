/**
 * ResNet encoders (He et al. 2016) as SimCLRv2 uses them: depth 18/34 (basic blocks) or 50
 * (bottleneck blocks), a width multiplier on the 64 base channels, and optional selective
 * kernels (Li et al. 2019). Built only from stock TF.js layers so `model.save()` output loads
 * with plain `tf.loadLayersModel`, and every layer has a fixed name (`stem_conv`,
 * `block2_1_conv1`, ...) so weights can be copied between models by name.
 *
 * The encoder takes float32 NHWC images in [0, 1] and returns globally average-pooled features.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from './random.ts';

export interface ModelConfig {
  depth: 18 | 34 | 50;
  /** Multiplier on the 64 base channels, e.g. 0.25 … 2. */
  width: number;
  /** Selective-kernel convolutions (with the ResNet-D stem and shortcuts that go with them). */
  sk: boolean;
  /** Square input side in pixels; ≤ 64 selects the small-image stem. */
  imageSize: number;
  /** Projection output size; 128 when absent. */
  projectionDim?: number;
  /** Which stem: absent, the 3x3 one up to SMALL_IMAGE_MAX px and the standard one above; an imported network keeps its own at any size. */
  stem?: 'small' | 'standard';
  /**
   * 'torch': pad the stem's max-pool and the SK shortcut's average pool as the PyTorch networks do
   * (symmetric 1 before the max-pool, 1 after the average pool, both then 'valid'), so an imported
   * network computes exactly what it computed there. Absent: our own layout, which saved models use.
   */
  padding?: 'torch';
  /** Per-channel mean and std the network divides its [0, 1] input by first (an imported network's training normalisation); absent: none. */
  inputNormalization?: { mean: number[]; std: number[] };
}

export const BN_MOMENTUM = 0.9;
export const BN_EPSILON = 1e-5;
/** Images up to this side use the 3x3 stride-1 stem without max-pool (CIFAR style). */
export const SMALL_IMAGE_MAX = 64;
/** SK attention bottleneck: channels / 16, but never narrower than this. */
const SK_RATIO = 1 / 16;
const SK_MIN_DIM = 32;

const BLOCKS_PER_GROUP: Record<ModelConfig['depth'], number[]> = {
  18: [2, 2, 2, 2],
  34: [3, 4, 6, 3],
  50: [3, 4, 6, 3],
};

/** Channels of the pooled feature vector the encoder outputs. */
export function encoderOutputWidth(cfg: ModelConfig): number {
  const last = channels(512, cfg.width);
  return cfg.depth === 50 ? 4 * last : last;
}

export function validateModelConfig(cfg: ModelConfig): void {
  if (!(cfg.depth in BLOCKS_PER_GROUP)) throw new RangeError(`ResNet depth must be 18, 34 or 50, got ${cfg.depth}`);
  if (!(cfg.width > 0 && cfg.width <= 4)) throw new RangeError(`width multiplier must be in (0, 4], got ${cfg.width}`);
  if (!(Number.isInteger(cfg.imageSize) && cfg.imageSize >= 8)) {
    throw new RangeError(`image size must be a whole number of pixels ≥ 8, got ${cfg.imageSize}`);
  }
  if (cfg.projectionDim !== undefined && !(Number.isInteger(cfg.projectionDim) && cfg.projectionDim >= 1)) {
    throw new RangeError(`projection size must be a positive whole number, got ${cfg.projectionDim}`);
  }
  const norm = cfg.inputNormalization;
  if (norm && !(norm.mean.length === 3 && norm.std.length === 3 && norm.std.every((s) => s > 0))) {
    throw new RangeError('input normalisation needs 3 means and 3 positive standard deviations');
  }
}

export function usesSmallStem(cfg: ModelConfig): boolean {
  return cfg.stem === undefined ? cfg.imageSize <= SMALL_IMAGE_MAX : cfg.stem === 'small';
}

/** Two configs build the same network (the same weights fit both, and both compute the same thing). */
export function sameArchitecture(a: ModelConfig, b: ModelConfig): boolean {
  const key = (c: ModelConfig) =>
    JSON.stringify([c.depth, c.width, c.sk, c.imageSize, c.projectionDim ?? null, usesSmallStem(c), c.padding ?? null, c.inputNormalization ?? null]);
  return key(a) === key(b);
}

function channels(base: number, width: number): number {
  return Math.max(1, Math.round(base * width));
}

/**
 * Creates layers with the shared settings. With a seed, every initialiser gets its own seed
 * drawn in build order, so two builds with the same seed have identical weights.
 */
export class LayerFactory {
  private readonly rng: Rng | null;

  constructor(seed?: number) {
    this.rng = seed === undefined ? null : new Rng(seed);
  }

  private seed(): number | undefined {
    return this.rng?.seed();
  }

  /** Convolution without bias (a BN follows). Strided convs pad symmetrically like TF's reference ResNet. */
  conv(x: tf.SymbolicTensor, name: string, filters: number, kernelSize: number, strides = 1): tf.SymbolicTensor {
    let input = x;
    if (strides > 1) {
      const before = Math.floor((kernelSize - 1) / 2);
      const padding: [[number, number], [number, number]] = [[before, kernelSize - 1 - before], [before, kernelSize - 1 - before]];
      input = tf.layers.zeroPadding2d({ padding, name: `${name}_pad` }).apply(input) as tf.SymbolicTensor;
    }
    return tf.layers.conv2d({
      name,
      filters,
      kernelSize,
      strides,
      padding: strides > 1 ? 'valid' : 'same',
      useBias: false,
      // A BN follows every conv, so only the fan-in scaling matters, not the gain.
      kernelInitializer: tf.initializers.varianceScaling({ scale: 1, mode: 'fanIn', distribution: 'truncatedNormal', seed: this.seed() }),
    }).apply(input) as tf.SymbolicTensor;
  }

  /** zeroGamma: the last BN of a residual branch starts at 0 so each block begins as the identity. */
  batchNorm(x: tf.SymbolicTensor, name: string, zeroGamma = false): tf.SymbolicTensor {
    return tf.layers.batchNormalization({
      name,
      axis: -1,
      momentum: BN_MOMENTUM,
      epsilon: BN_EPSILON,
      gammaInitializer: zeroGamma ? 'zeros' : 'ones',
    }).apply(x) as tf.SymbolicTensor;
  }

  relu(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
    return tf.layers.activation({ activation: 'relu', name }).apply(x) as tf.SymbolicTensor;
  }

  convBn(x: tf.SymbolicTensor, name: string, filters: number, kernelSize: number, strides: number, suffix: string, relu: boolean, zeroGamma = false): tf.SymbolicTensor {
    let y = this.conv(x, `${name}_conv${suffix}`, filters, kernelSize, strides);
    y = this.batchNorm(y, `${name}_bn${suffix}`, zeroGamma);
    return relu ? this.relu(y, `${name}_relu${suffix}`) : y;
  }

  dense(x: tf.SymbolicTensor, name: string, units: number, opts: { useBias: boolean; activation?: 'sigmoid'; stddev?: number }): tf.SymbolicTensor {
    return tf.layers.dense({
      name,
      units,
      useBias: opts.useBias,
      activation: opts.activation,
      kernelInitializer: opts.stddev === undefined
        ? tf.initializers.varianceScaling({ scale: 1, mode: 'fanIn', distribution: 'truncatedNormal', seed: this.seed() })
        : tf.initializers.randomNormal({ mean: 0, stddev: opts.stddev, seed: this.seed() }),
    }).apply(x) as tf.SymbolicTensor;
  }

  /**
   * Selective-kernel 3x3 conv: two 3x3 branches (conv-BN-ReLU each) mixed per channel by
   * weights computed from their pooled sum. The reference softmaxes two logits per channel;
   * softmax over two logits is sigmoid(a0 - a1), so one sigmoid Dense gives the same
   * family of mixings with stock layers: out = g·A + (1 - g)·B.
   */
  selectiveKernel(x: tf.SymbolicTensor, name: string, filters: number, strides: number): tf.SymbolicTensor {
    const a = this.convBn(x, name, filters, 3, strides, '_a', true);
    const b = this.convBn(x, name, filters, 3, strides, '_b', true);
    const sum = tf.layers.add({ name: `${name}_sum` }).apply([a, b]) as tf.SymbolicTensor;
    let z = tf.layers.globalAveragePooling2d({ name: `${name}_squeeze` }).apply(sum) as tf.SymbolicTensor;
    z = this.dense(z, `${name}_fc`, Math.max(Math.floor(filters * SK_RATIO), SK_MIN_DIM), { useBias: false });
    z = this.batchNorm(z, `${name}_fc_bn`);
    z = this.relu(z, `${name}_fc_relu`);
    const gateFlat = this.dense(z, `${name}_gate`, filters, { useBias: false, activation: 'sigmoid' });
    const gate = tf.layers.reshape({ targetShape: [1, 1, filters], name: `${name}_gate_map` }).apply(gateFlat) as tf.SymbolicTensor;
    const inverse = tf.layers.rescaling({ scale: -1, offset: 1, name: `${name}_gate_inverse` }).apply(gate) as tf.SymbolicTensor;
    const mixA = tf.layers.multiply({ name: `${name}_mix_a` }).apply([a, gate]) as tf.SymbolicTensor;
    const mixB = tf.layers.multiply({ name: `${name}_mix_b` }).apply([b, inverse]) as tf.SymbolicTensor;
    return tf.layers.add({ name: `${name}_mix` }).apply([mixA, mixB]) as tf.SymbolicTensor;
  }
}

/** Identity, or a projection (1x1 conv + BN) when the block changes shape. SK models use ResNet-D's avg-pool-then-conv. */
function shortcut(f: LayerFactory, x: tf.SymbolicTensor, name: string, outChannels: number, strides: number, cfg: ModelConfig): tf.SymbolicTensor {
  const inChannels = x.shape[3];
  if (strides === 1 && inChannels === outChannels) return x;
  let s = x;
  let convStrides = strides;
  if (cfg.sk && cfg.padding === 'torch') {
    // The SimCLRv2 PyTorch layout pools 2x2 in every projection shortcut, stride 1 included,
    // over its input padded by one zero row and column at the bottom/right.
    s = tf.layers.zeroPadding2d({ padding: [[0, 1], [0, 1]], name: `${name}_shortcut_pad` }).apply(s) as tf.SymbolicTensor;
    s = tf.layers.averagePooling2d({ poolSize: 2, strides, padding: 'valid', name: `${name}_shortcut_pool` }).apply(s) as tf.SymbolicTensor;
    convStrides = 1;
  } else if (cfg.sk && strides > 1) {
    // Pooling before the 1x1 conv uses every input pixel instead of skipping 3 of 4.
    s = tf.layers.averagePooling2d({ poolSize: 2, strides, padding: 'same', name: `${name}_shortcut_pool` }).apply(s) as tf.SymbolicTensor;
    convStrides = 1;
  }
  s = f.conv(s, `${name}_shortcut_conv`, outChannels, 1, convStrides);
  return f.batchNorm(s, `${name}_shortcut_bn`);
}

function basicBlock(f: LayerFactory, x: tf.SymbolicTensor, name: string, filters: number, strides: number, cfg: ModelConfig): tf.SymbolicTensor {
  const skip = shortcut(f, x, name, filters, strides, cfg);
  let y = cfg.sk ? f.selectiveKernel(x, `${name}_sk`, filters, strides) : f.convBn(x, name, filters, 3, strides, '1', true);
  y = f.convBn(y, name, filters, 3, 1, '2', false, true);
  const sum = tf.layers.add({ name: `${name}_add` }).apply([y, skip]) as tf.SymbolicTensor;
  return f.relu(sum, `${name}_out`);
}

/** Stride sits on the 3x3 conv (ResNet v1.5), as in the SimCLR reference. */
function bottleneckBlock(f: LayerFactory, x: tf.SymbolicTensor, name: string, filters: number, strides: number, cfg: ModelConfig): tf.SymbolicTensor {
  const skip = shortcut(f, x, name, 4 * filters, strides, cfg);
  let y = f.convBn(x, name, filters, 1, 1, '1', true);
  y = cfg.sk ? f.selectiveKernel(y, `${name}_sk`, filters, strides) : f.convBn(y, name, filters, 3, strides, '2', true);
  y = f.convBn(y, name, 4 * filters, 1, 1, '3', false, true);
  const sum = tf.layers.add({ name: `${name}_add` }).apply([y, skip]) as tf.SymbolicTensor;
  return f.relu(sum, `${name}_out`);
}

function stem(f: LayerFactory, x: tf.SymbolicTensor, cfg: ModelConfig): tf.SymbolicTensor {
  const c = channels(64, cfg.width);
  if (usesSmallStem(cfg)) return f.convBn(x, 'stem', c, 3, 1, '', true);
  let y: tf.SymbolicTensor;
  if (cfg.sk) {
    // ResNet-D deep stem: three 3x3 convs see the same 7x7 field more cheaply.
    const half = channels(32, cfg.width);
    y = f.convBn(x, 'stem', half, 3, 2, '1', true);
    y = f.convBn(y, 'stem', half, 3, 1, '2', true);
    y = f.convBn(y, 'stem', c, 3, 1, '3', true);
  } else {
    y = f.convBn(x, 'stem', c, 7, 2, '', true);
  }
  if (cfg.padding !== 'torch') return tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'stem_pool' }).apply(y) as tf.SymbolicTensor;
  // PyTorch pads one on every side where 'same' pads only bottom/right on even sizes. Zeros are
  // as good as -inf here: the pool follows a ReLU, and every window holds a real pixel.
  y = tf.layers.zeroPadding2d({ padding: [[1, 1], [1, 1]], name: 'stem_pool_pad' }).apply(y) as tf.SymbolicTensor;
  return tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'valid', name: 'stem_pool' }).apply(y) as tf.SymbolicTensor;
}

/**
 * (x - mean) / std per channel, as a frozen 1x1 convolution: a stock layer every backend and the
 * ONNX export already handle, so the normalisation travels inside the network to every stage.
 */
function normalizeInput(x: tf.SymbolicTensor, norm: NonNullable<ModelConfig['inputNormalization']>): tf.SymbolicTensor {
  const kernel = tf.tidy(() => tf.reshape(tf.diag(tf.tensor1d(norm.std.map((s) => 1 / s))), [1, 1, 3, 3]));
  const bias = tf.tensor1d(norm.mean.map((m, i) => -m / norm.std[i]));
  const layer = tf.layers.conv2d({ name: 'input_norm', filters: 3, kernelSize: 1, useBias: true, trainable: false, weights: [kernel, bias] });
  const y = layer.apply(x) as tf.SymbolicTensor;
  tf.dispose([kernel, bias]);
  return y;
}

/** Wires the encoder onto `input` and returns the pooled features (shape [batch, encoderOutputWidth]). */
export function applyEncoder(f: LayerFactory, input: tf.SymbolicTensor, cfg: ModelConfig): tf.SymbolicTensor {
  validateModelConfig(cfg);
  const block = cfg.depth === 50 ? bottleneckBlock : basicBlock;
  let x = stem(f, cfg.inputNormalization ? normalizeInput(input, cfg.inputNormalization) : input, cfg);
  BLOCKS_PER_GROUP[cfg.depth].forEach((count, g) => {
    const filters = channels(64 * 2 ** g, cfg.width);
    for (let b = 0; b < count; b++) {
      const strides = g > 0 && b === 0 ? 2 : 1;
      x = block(f, x, `block${g + 1}_${b + 1}`, filters, strides, cfg);
    }
  });
  return tf.layers.globalAveragePooling2d({ name: 'encoder_pool' }).apply(x) as tf.SymbolicTensor;
}

export function imageInput(cfg: ModelConfig): tf.SymbolicTensor {
  return tf.input({ shape: [cfg.imageSize, cfg.imageSize, 3], name: 'images', dtype: 'float32' });
}

/** The encoder alone: images → pooled features. */
export function buildEncoder(cfg: ModelConfig, seed?: number): tf.LayersModel {
  const input = imageInput(cfg);
  return tf.model({ inputs: input, outputs: applyEncoder(new LayerFactory(seed), input, cfg), name: 'encoder' });
}

/** Trainable parameters (what papers count: conv kernels, BN gamma/beta; not BN moving statistics). */
export function countTrainableParams(model: tf.LayersModel): number {
  return model.trainableWeights.reduce((sum, w) => sum + (w.shape as number[]).reduce((a, b) => a * b, 1), 0);
}
