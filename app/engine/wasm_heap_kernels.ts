/**
 * Memory-bound wasm kernels rewritten in JavaScript on the wasm heap. The backend's own
 * Tile walks every output element through generic index arithmetic, and its Sum/Mean over
 * leading axes (batch-norm statistics and gradients: NHWC reduced over N, H, W) first
 * transposes the whole tensor. Block copies and one streaming pass are several times faster.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { BATCH_NORM_GRAD_SUMS } from './batch_norm.ts';

type Args = { inputs: Record<string, tf.TensorInfo>; attrs: Record<string, unknown>; backend: BackendWasm };
type TypedArray = Float32Array | Int32Array | Uint8Array;

function heapView(backend: BackendWasm, info: tf.TensorInfo): TypedArray {
  return backend.typedArrayFromHeap(info as Parameters<BackendWasm['typedArrayFromHeap']>[0]) as TypedArray;
}

/** Row-major strides, with 1 for the last axis (tf.util.computeStrides omits it). */
function strides(shape: number[]): number[] {
  const result = new Array<number>(shape.length).fill(1);
  for (let axis = shape.length - 2; axis >= 0; axis--) result[axis] = result[axis + 1] * shape[axis + 1];
  return result;
}

/** Repeats dst[start, start+block) until it fills `total` elements, doubling each copy. */
function replicate(dst: TypedArray, start: number, block: number, total: number): void {
  for (let filled = block; filled < total;) {
    const length = Math.min(filled, total - filled);
    dst.copyWithin(start + filled, start, start + length);
    filled += length;
  }
}

export function tile({ inputs, attrs, backend }: Args): tf.TensorInfo {
  const { x } = inputs;
  const reps = attrs.reps as number[];
  const outShape = x.shape.map((size, axis) => size * reps[axis]);
  const out = backend.makeOutput(outShape, x.dtype);
  if (outShape.some((size) => size === 0)) return out;
  // Views only after makeOutput: allocating can grow (and so detach) the heap.
  const src = heapView(backend, x);
  const dst = heapView(backend, out);
  const inStrides = strides(x.shape);
  const outStrides = strides(outShape);
  const last = x.shape.length - 1;
  const place = (axis: number, srcOffset: number, dstOffset: number): void => {
    const size = x.shape[axis];
    if (axis === last) {
      dst.set(src.subarray(srcOffset, srcOffset + size), dstOffset);
    } else {
      for (let i = 0; i < size; i++) place(axis + 1, srcOffset + i * inStrides[axis], dstOffset + i * outStrides[axis]);
    }
    const block = size * outStrides[axis];
    replicate(dst, dstOffset, block, block * reps[axis]);
  };
  if (x.shape.length === 0) dst[0] = src[0];
  else place(0, 0, 0);
  return out;
}

/** The reduced axes are exactly 0..k-1, so the input is a [rows, columns] matrix reduced over rows. */
function leadingAxes(axis: number | number[], rank: number): number | null {
  const axes = [...new Set((Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + rank : a)))].sort((a, b) => a - b);
  if (axes.length === 0 || axes.length === rank || axes.some((a, i) => a !== i)) return null;
  return axes.length;
}

function columnSums(backend: BackendWasm, x: tf.TensorInfo, reducedAxes: number, keepDims: boolean, scale: number): tf.TensorInfo {
  const keptShape = x.shape.slice(reducedAxes);
  const columns = keptShape.reduce((a, b) => a * b, 1);
  const rows = x.shape.slice(0, reducedAxes).reduce((a, b) => a * b, 1);
  const outShape = keepDims ? [...new Array<number>(reducedAxes).fill(1), ...keptShape] : keptShape;
  const out = backend.makeOutput(outShape, 'float32');
  const src = heapView(backend, x);
  const dst = heapView(backend, out);
  // Float64 accumulators: summing ~1e6 float32 values in float32 would lose digits.
  const acc = new Float64Array(columns);
  for (let row = 0, offset = 0; row < rows; row++, offset += columns) {
    for (let c = 0; c < columns; c++) acc[c] += src[offset + c];
  }
  for (let c = 0; c < columns; c++) dst[c] = acc[c] * scale;
  return out;
}

function reduction(kind: 'Sum' | 'Mean', builtin: () => tf.KernelFunc | undefined) {
  return (args: Args): tf.TensorInfo => {
    const { x } = args.inputs;
    const { axis, keepDims } = args.attrs as { axis: number | number[]; keepDims: boolean };
    const reducedAxes = leadingAxes(axis, x.shape.length);
    const rows = reducedAxes === null ? 0 : x.shape.slice(0, reducedAxes).reduce((a, b) => a * b, 1);
    if (reducedAxes === null || x.dtype !== 'float32' || rows === 0) {
      return builtin()!(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
    }
    return columnSums(args.backend, x, reducedAxes, keepDims, kind === 'Mean' ? 1 / rows : 1);
  };
}

/** Kernels replacing the backend's own; each falls back to the original for cases it does not cover. */
export function heapKernels(builtin: (name: string) => tf.KernelFunc | undefined): Array<[string, tf.KernelFunc]> {
  return [
    ['Tile', tile as unknown as tf.KernelFunc],
    ['Sum', reduction('Sum', () => builtin('Sum')) as unknown as tf.KernelFunc],
    ['Mean', reduction('Mean', () => builtin('Mean')) as unknown as tf.KernelFunc],
    [BATCH_NORM_GRAD_SUMS, batchNormGradSums as unknown as tf.KernelFunc],
  ];
}

/**
 * Interleaves the stride phases of an input gradient: out[n, q*s+a, p*s+b, c] =
 * phases[a*s+b][n, q, p, c], cropped to outShape; a null phase contributes zeros. This is
 * DepthToSpace after a channel Concat, which the wasm backend runs element by element
 * (~30 ns per element); direct copies are an order of magnitude faster.
 */
export function interleavePhases(backend: BackendWasm, phases: Array<tf.TensorInfo | null>, stride: number, outShape: number[]): tf.TensorInfo {
  const [n, height, width, channels] = outShape;
  const out = backend.makeOutput(outShape, 'float32');
  const dst = heapView(backend, out);
  for (let a = 0; a < stride; a++) {
    for (let b = 0; b < stride; b++) {
      const phase = phases[a * stride + b];
      const src = phase ? heapView(backend, phase) : null;
      const [qh, qw] = phase ? [phase.shape[1], phase.shape[2]] : [Math.ceil(height / stride), Math.ceil(width / stride)];
      for (let image = 0; image < n; image++) {
        for (let q = 0; q * stride + a < height; q++) {
          const rowStart = ((image * height + q * stride + a) * width + b) * channels;
          const srcRow = (image * qh + q) * qw * channels;
          for (let p = 0; p * stride + b < width; p++) {
            const to = rowStart + p * stride * channels;
            if (!src) {
              dst.fill(0, to, to + channels);
              continue;
            }
            const from = srcRow + p * channels;
            for (let c = 0; c < channels; c++) dst[to + c] = src[from + c];
          }
        }
      }
    }
  }
  return out;
}

/**
 * The two per-channel sums of the batch-norm gradient, [Σ dy, Σ dy·(x − mean)], in one pass
 * over dy and x (channels last). Subtracting the mean per element, in float64, avoids the
 * cancellation of Σ dy·x − mean·Σ dy.
 */
export function batchNormGradSums({ inputs, backend }: Args): tf.TensorInfo {
  const { dy, x, mean } = inputs;
  const channels = mean.shape[0];
  const rows = x.shape.reduce((a, b) => a * b, 1) / channels;
  const out = backend.makeOutput([2, channels], 'float32');
  const [dyValues, xValues, meanValues, sums] = [dy, x, mean, out].map((t) => heapView(backend, t));
  const sumDy = new Float64Array(channels);
  const sumDyCentred = new Float64Array(channels);
  const centre = Float64Array.from(meanValues);
  for (let row = 0, offset = 0; row < rows; row++, offset += channels) {
    for (let c = 0; c < channels; c++) {
      const g = dyValues[offset + c];
      sumDy[c] += g;
      sumDyCentred[c] += g * (xValues[offset + c] - centre[c]);
    }
  }
  sums.set(sumDy, 0);
  sums.set(sumDyCentred, channels);
  return out;
}
