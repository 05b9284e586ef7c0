/**
 * What an image goes through before an exported model sees it: exactly what decodePixels
 * (app/engine/dataset.ts) and the predict path do, stated for people and programs elsewhere.
 */

export const ONNX_INPUT = 'images';
export const ONNX_OUTPUT = 'probabilities';

export interface Preprocessing {
  /** Side of the square input in pixels. */
  size: number;
  layout: 'NHWC';
  channels: 'RGB';
  dtype: 'float32';
  /** The steps from an image file to the input, in order, in words. */
  steps: string[];
  resize: { fit: 'cover'; position: 'centre'; kernel: 'lanczos3'; library: 'sharp (libvips)' };
  /** input = (pixel · scale - mean) / std, per channel, pixel in 0…255. */
  scale: number;
  mean: [number, number, number];
  std: [number, number, number];
}

export function preprocessingFor(size: number): Preprocessing {
  return {
    size,
    layout: 'NHWC',
    channels: 'RGB',
    dtype: 'float32',
    steps: [
      'apply the EXIF orientation',
      `scale the image so its shorter side is ${size} px (Lanczos-3), then keep the centred ${size}x${size} square`,
      'drop any alpha channel and convert to 8-bit sRGB',
      'divide each 0-255 value by 255 (no mean or std normalisation)',
    ],
    resize: { fit: 'cover', position: 'centre', kernel: 'lanczos3', library: 'sharp (libvips)' },
    scale: 1 / 255,
    mean: [0, 0, 0],
    std: [1, 1, 1],
  };
}
