/**
 * SimCLR augmentations as batched tensor ops. Every random choice (crop box, flip, jitter
 * factors, blur sigma) is drawn per image from our seeded Rng in JavaScript, then applied to
 * the whole batch at once; no JavaScript loop touches pixels.
 *
 * Images go in as [N, H, W, 3], either float32 in [0, 1] or int32 pixel values 0–255 (what a
 * Uint8Array becomes in TF.js), and come out float32 in [0, 1].
 *
 * Pretraining view (SimCLR appendix A): random resized crop (area 8–100 %, aspect 3/4–4/3),
 * horizontal flip p = 0.5, colour jitter p = 0.8 (brightness, contrast, saturation 0.8·s,
 * hue 0.2·s, in a random order per batch), grayscale p = 0.2, Gaussian blur p = 0.5 (sigma
 * 0.1–2, kernel ≈ 10 % of the side; off for small images), then clipping to [0, 1].
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from './random.ts';
import { SMALL_IMAGE_MAX } from './resnet.ts';

export interface PretrainAugmentOptions {
  /** Colour jitter strength s. */
  strength: number;
  blur: boolean;
}

export const PRETRAIN_CROP_AREA: [number, number] = [0.08, 1];
/**
 * Milder than pretraining's so the labelled object usually stays in view. Half the image at least:
 * in the recipe study (docs/study/README.md) a labels-only network trained 30 epochs on 640
 * CIFAR-10 labels scored 37.3% held out with [0.5, 1] against 36.0% with [0.25, 1].
 */
export const FINETUNE_CROP_AREA: [number, number] = [0.5, 1];
const ASPECT_RATIO_RANGE: [number, number] = [3 / 4, 4 / 3];
const CROP_ATTEMPTS = 10;
const JITTER_PROBABILITY = 0.8;
const GRAYSCALE_PROBABILITY = 0.2;
const BLUR_PROBABILITY = 0.5;
const BLUR_SIGMA_RANGE: [number, number] = [0.1, 2];
/** ITU-R 601 luma, as tf.image.rgb_to_grayscale. */
const LUMA = [0.2989, 0.587, 0.114];

/** SimCLR's settings: full strength and blur for large images, half strength and no blur for CIFAR-sized ones. */
export function defaultPretrainAugment(imageSize: number): PretrainAugmentOptions {
  return imageSize <= SMALL_IMAGE_MAX ? { strength: 0.5, blur: false } : { strength: 1, blur: true };
}

/** float32 in [0, 1]; int32 input is read as 0–255 pixel values. */
export function toUnitFloat(images: tf.Tensor4D): tf.Tensor4D {
  if (images.shape[3] !== 3) throw new Error(`expected RGB images [N, H, W, 3], got shape ${images.shape}`);
  return tf.tidy(() => (images.dtype === 'float32' ? tf.clone(images) : tf.div(tf.cast(images, 'float32'), 255)));
}

/** One random view per image for contrastive pretraining; call twice for the two views. */
export function augmentPretrain(images: tf.Tensor4D, outSize: number, opts: PretrainAugmentOptions, rng: Rng): tf.Tensor4D {
  const n = images.shape[0];
  const boxes = sampleCropBoxes(n, images.shape[1], images.shape[2], PRETRAIN_CROP_AREA, rng);
  const flips = Array.from({ length: n }, () => rng.bernoulli(0.5));
  const jitter = sampleColorJitter(n, opts.strength, rng);
  const grays = Array.from({ length: n }, () => rng.bernoulli(GRAYSCALE_PROBABILITY));
  const sigmas = Array.from({ length: n }, () => (rng.bernoulli(BLUR_PROBABILITY) ? rng.uniform(...BLUR_SIGMA_RANGE) : 0));
  return tf.tidy(() => {
    let x = flipHorizontally(resizedCrops(images, boxes, outSize), flips);
    x = applyColorJitter(x, jitter);
    x = toGrayscale(x, grays);
    if (opts.blur) x = gaussianBlur(x, sigmas, blurKernelSize(outSize));
    return tf.clipByValue(x, 0, 1);
  });
}

/** Fine-tuning and distillation view: milder random resized crop and horizontal flip only. */
export function augmentFinetune(images: tf.Tensor4D, outSize: number, rng: Rng): tf.Tensor4D {
  const n = images.shape[0];
  const boxes = sampleCropBoxes(n, images.shape[1], images.shape[2], FINETUNE_CROP_AREA, rng);
  const flips = Array.from({ length: n }, () => rng.bernoulli(0.5));
  return tf.tidy(() => tf.clipByValue(flipHorizontally(resizedCrops(images, boxes, outSize), flips), 0, 1));
}

/**
 * Evaluation view: the largest central square, resized to outSize. Slicing + resizeBilinear
 * rather than cropAndResize because the wasm CropAndResize kernel (tfjs 4.22) drops the x
 * offset when a box maps pixels 1:1, which a centre crop at the cached size does.
 */
export function centerResize(images: tf.Tensor4D, outSize: number): tf.Tensor4D {
  const [, height, width] = images.shape;
  const side = Math.min(height, width);
  const top = Math.floor((height - side) / 2);
  const left = Math.floor((width - side) / 2);
  return tf.tidy(() => {
    const square = tf.slice(toUnitFloat(images), [0, top, left, 0], [-1, side, side, 3]) as tf.Tensor4D;
    return tf.clipByValue(tf.image.resizeBilinear(square, [outSize, outSize], true), 0, 1);
  });
}

/** [y1, x1, y2, x2] in tf.image.cropAndResize's normalised coordinates (0 and 1 are the outer pixel centres). */
export type CropBox = [number, number, number, number];

function cropBox(top: number, left: number, cropHeight: number, cropWidth: number, height: number, width: number): CropBox {
  const norm = (v: number, size: number) => (size > 1 ? v / (size - 1) : 0);
  return [norm(top, height), norm(left, width), norm(top + cropHeight - 1, height), norm(left + cropWidth - 1, width)];
}

/**
 * Inception-style crops: area fraction uniform in `areaRange`, aspect ratio log-uniform in
 * [3/4, 4/3] (log so portrait and landscape are equally likely), position uniform. If no
 * sample fits in CROP_ATTEMPTS tries the whole image is used, as TF's sampler does.
 */
export function sampleCropBoxes(n: number, height: number, width: number, areaRange: [number, number], rng: Rng): CropBox[] {
  const boxes: CropBox[] = [];
  for (let i = 0; i < n; i++) {
    let box = cropBox(0, 0, height, width, height, width);
    for (let attempt = 0; attempt < CROP_ATTEMPTS; attempt++) {
      const area = rng.uniform(...areaRange) * height * width;
      const ratio = Math.exp(rng.uniform(Math.log(ASPECT_RATIO_RANGE[0]), Math.log(ASPECT_RATIO_RANGE[1])));
      const cropWidth = Math.sqrt(area * ratio);
      const cropHeight = Math.sqrt(area / ratio);
      if (cropWidth <= width && cropHeight <= height) {
        box = cropBox(rng.uniform(0, height - cropHeight), rng.uniform(0, width - cropWidth), cropHeight, cropWidth, height, width);
        break;
      }
    }
    boxes.push(box);
  }
  return boxes;
}

/** Crops box i out of image i and resizes it (bilinear) to outSize × outSize. */
export function resizedCrops(images: tf.Tensor4D, boxes: CropBox[], outSize: number): tf.Tensor4D {
  return tf.tidy(() => {
    const boxIndices = tf.tensor1d(boxes.map((_, i) => i), 'int32');
    return tf.image.cropAndResize(toUnitFloat(images), tf.tensor2d(boxes, [boxes.length, 4]), boxIndices, [outSize, outSize], 'bilinear');
  });
}

/** Mirrors left–right the images whose flag is set. */
export function flipHorizontally(images: tf.Tensor4D, flips: boolean[]): tf.Tensor4D {
  return tf.tidy(() => tf.where(perImageMask(flips, images.shape), tf.reverse(images, 2), images));
}

function perImageMask(flags: boolean[], shape: number[]): tf.Tensor {
  return tf.broadcastTo(tf.tensor4d(flags.map(Number), [flags.length, 1, 1, 1]).cast('bool'), shape);
}

function perImage(values: number[]): tf.Tensor4D {
  return tf.tensor4d(values, [values.length, 1, 1, 1]);
}

/** Per-image jitter factors; images not jittered get identity factors. */
export interface ColorJitter {
  brightness: number[];
  contrast: number[];
  saturation: number[];
  hue: number[];
  order: Array<'brightness' | 'contrast' | 'saturation' | 'hue'>;
}

export function sampleColorJitter(n: number, strength: number, rng: Rng): ColorJitter {
  const b = 0.8 * strength;
  const c = 0.8 * strength;
  const s = 0.8 * strength;
  const h = 0.2 * strength;
  const jitter: ColorJitter = { brightness: [], contrast: [], saturation: [], hue: [], order: rng.shuffled(['brightness', 'contrast', 'saturation', 'hue'] as const) };
  for (let i = 0; i < n; i++) {
    const on = rng.bernoulli(JITTER_PROBABILITY);
    // SimCLRv2's brightness is multiplicative.
    jitter.brightness.push(on ? rng.uniform(Math.max(0, 1 - b), 1 + b) : 1);
    jitter.contrast.push(on ? rng.uniform(Math.max(0, 1 - c), 1 + c) : 1);
    jitter.saturation.push(on ? rng.uniform(Math.max(0, 1 - s), 1 + s) : 1);
    jitter.hue.push(on ? rng.uniform(-h, h) : 0);
  }
  return jitter;
}

/** Applies the four jitter operations in `order`, clipping to [0, 1] after each as SimCLR does. */
export function applyColorJitter(images: tf.Tensor4D, jitter: ColorJitter): tf.Tensor4D {
  return tf.tidy(() => {
    let x = images;
    for (const op of jitter.order) {
      if (op === 'brightness') x = tf.mul(x, perImage(jitter.brightness));
      else if (op === 'contrast') x = adjustContrast(x, jitter.contrast);
      else if (op === 'saturation') x = adjustHsv(x, jitter.saturation, jitter.hue.map(() => 0));
      else x = adjustHsv(x, jitter.saturation.map(() => 1), jitter.hue);
      x = tf.clipByValue(x, 0, 1);
    }
    return x;
  });
}

/** (x − mean) · factor + mean, with the mean per image and channel, like tf.image.adjust_contrast. */
function adjustContrast(images: tf.Tensor4D, factors: number[]): tf.Tensor4D {
  return tf.tidy(() => {
    const mean = tf.mean(images, [1, 2], true);
    return tf.add(tf.mul(tf.sub(images, mean), perImage(factors)), mean);
  });
}

/**
 * Scales saturation and rotates hue (in turns, i.e. 1 = 360°) per image through HSV, like
 * tf.image.adjust_saturation / adjust_hue.
 */
export function adjustHsv(images: tf.Tensor4D, saturationFactors: number[], hueShifts: number[]): tf.Tensor4D {
  return tf.tidy(() => {
    const [r, g, b] = tf.split(images, 3, 3);
    const value = tf.maximum(tf.maximum(r, g), b);
    const chroma = tf.sub(value, tf.minimum(tf.minimum(r, g), b));
    const saturation = tf.div(chroma, tf.maximum(value, 1e-12));
    const safeChroma = tf.maximum(chroma, 1e-12);
    // Hue sector by which channel is the maximum; grey pixels (chroma 0) come out as hue 0.
    const sixths = tf.where(tf.equal(value, r), tf.div(tf.sub(g, b), safeChroma),
      tf.where(tf.equal(value, g), tf.add(tf.div(tf.sub(b, r), safeChroma), 2), tf.add(tf.div(tf.sub(r, g), safeChroma), 4)));
    const hue = fraction(tf.add(tf.div(sixths, 6), perImage(hueShifts)));
    const newSaturation = tf.clipByValue(tf.mul(saturation, perImage(saturationFactors)), 0, 1);
    // HSV → RGB: channel_n = V − V·S·clip(min(k, 4 − k), 0, 1), k = (n + 6H) mod 6, n = 5, 3, 1.
    const channel = (n: number) => {
      const k = tf.mul(fraction(tf.div(tf.add(tf.mul(hue, 6), n), 6)), 6);
      return tf.sub(value, tf.mul(tf.mul(value, newSaturation), tf.clipByValue(tf.minimum(k, tf.sub(4, k)), 0, 1)));
    };
    return tf.concat([channel(5), channel(3), channel(1)], 3) as tf.Tensor4D;
  });
}

function fraction(x: tf.Tensor): tf.Tensor {
  return tf.sub(x, tf.floor(x));
}

/** Replaces the flagged images by their luma, repeated in all three channels. */
export function toGrayscale(images: tf.Tensor4D, flags: boolean[]): tf.Tensor4D {
  return tf.tidy(() => {
    const luma = tf.sum(tf.mul(images, tf.tensor1d(LUMA)), 3, true);
    return tf.where(perImageMask(flags, images.shape), tf.tile(luma, [1, 1, 1, 3]), images) as tf.Tensor4D;
  });
}

/** SimCLR: kernel side = image side // 10, made odd; 1 means no blur. */
export function blurKernelSize(side: number): number {
  return 2 * Math.floor(Math.floor(side / 10) / 2) + 1;
}

/**
 * Separable Gaussian blur with a different sigma per image (sigma 0 leaves the image as is).
 * Batch and channels are folded into the channel axis of one depthwise convolution, so each
 * image gets its own kernel in a single op; edges are reflected so borders do not darken.
 */
export function gaussianBlur(images: tf.Tensor4D, sigmas: number[], kernelSize: number): tf.Tensor4D {
  const radius = (kernelSize - 1) / 2;
  if (radius < 1) return tf.clone(images);
  const [n, height, width, c] = images.shape;
  const taps: number[] = [];
  for (const sigma of sigmas) {
    const kernel = Array.from({ length: kernelSize }, (_, i) => (sigma > 0 ? Math.exp(-((i - radius) ** 2) / (2 * sigma * sigma)) : i === radius ? 1 : 0));
    const total = kernel.reduce((a, b) => a + b, 0);
    for (let ch = 0; ch < c; ch++) taps.push(...kernel.map((v) => v / total));
  }
  return tf.tidy(() => {
    // taps is [image·channel][tap]; depthwise filters want [tap][image·channel].
    const perChannel = tf.transpose(tf.tensor2d(taps, [n * c, kernelSize]));
    const folded = tf.reshape(tf.transpose(images, [1, 2, 0, 3]), [1, height, width, n * c]) as tf.Tensor4D;
    const padded = tf.mirrorPad(folded, [[0, 0], [radius, radius], [radius, radius], [0, 0]], 'reflect');
    const horizontal = tf.depthwiseConv2d(padded, tf.reshape(perChannel, [1, kernelSize, n * c, 1]) as tf.Tensor4D, 1, 'valid');
    const both = tf.depthwiseConv2d(horizontal, tf.reshape(perChannel, [kernelSize, 1, n * c, 1]) as tf.Tensor4D, 1, 'valid');
    return tf.transpose(tf.reshape(both, [height, width, n, c]), [2, 0, 1, 3]) as tf.Tensor4D;
  });
}
