/**
 * Memory-bound wasm kernels rewritten in JavaScript on the wasm heap. The backend's own
 * Tile walks every output element through generic index arithmetic, and its Sum/Mean over
 * leading axes (batch-norm statistics and gradients: NHWC reduced over N, H, W) first
 * transposes the whole tensor. Block copies and one streaming pass are several times faster.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { BATCH_NORM_GRAD_SUMS } from '../../simclr/batch_norm_sums.ts';
import { address, backendSimd } from './simd.ts';

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

/** Rows per float32 partial sum in the SIMD kernels; the partials are then added in float64. */
const SUM_BLOCK_ROWS = 256;

function addBlocks(partials: TypedArray, blocks: number, columns: number, offset = 0): Float64Array {
  const sums = new Float64Array(columns);
  for (let b = 0; b < blocks; b++) {
    for (let c = 0; c < columns; c++) sums[c] += partials[offset + b * columns + c];
  }
  return sums;
}

/** Column sums of x seen as a [rows, columns] matrix, in float64 (~1e6 float32 terms lose digits). */
function sumRows(backend: BackendWasm, x: tf.TensorInfo, rows: number, columns: number): Float64Array {
  const simd = columns % 4 === 0 ? backendSimd(backend) : null;
  if (simd) {
    const blocks = Math.ceil(rows / SUM_BLOCK_ROWS);
    const partials = backend.makeOutput([blocks, columns], 'float32');
    simd.blockColumnSums(address(backend, x), rows, columns, SUM_BLOCK_ROWS, address(backend, partials));
    const sums = addBlocks(heapView(backend, partials), blocks, columns);
    backend.disposeData(partials.dataId);
    return sums;
  }
  const src = heapView(backend, x);
  const sums = new Float64Array(columns);
  for (let row = 0, offset = 0; row < rows; row++, offset += columns) {
    for (let c = 0; c < columns; c++) sums[c] += src[offset + c];
  }
  return sums;
}

function columnSums(backend: BackendWasm, x: tf.TensorInfo, reducedAxes: number, keepDims: boolean, scale: number): tf.TensorInfo {
  const keptShape = x.shape.slice(reducedAxes);
  const columns = keptShape.reduce((a, b) => a * b, 1);
  const rows = x.shape.slice(0, reducedAxes).reduce((a, b) => a * b, 1);
  const sums = sumRows(backend, x, rows, columns);
  const outShape = keepDims ? [...new Array<number>(reducedAxes).fill(1), ...keptShape] : keptShape;
  const out = backend.makeOutput(outShape, 'float32');
  const dst = heapView(backend, out);
  for (let c = 0; c < columns; c++) dst[c] = sums[c] * scale;
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

/**
 * Identity shares the input's buffer, as the cpu backend does, instead of copying it. TF.js
 * calls it (through clone) for every tensor saved for the backward pass, so the wasm copy cost
 * a full pass per saved activation. Sharing is safe: no kernel writes into its inputs, and
 * variables take new buffers on assign.
 */
function identity(args: Args, builtin: tf.KernelFunc): tf.TensorInfo {
  const { x } = args.inputs;
  if (x.dtype === 'string') return builtin(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  args.backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/** A cast to the same dtype shares the buffer (see identity); real conversions go to the backend. */
function cast(args: Args, builtin: tf.KernelFunc): tf.TensorInfo {
  return args.inputs.x.dtype === args.attrs.dtype ? identity(args, builtin) : builtin(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
}

/**
 * Copies `length` elements; TypedArray.set costs ~100 ns per call, so short runs (splitting
 * or joining RGB channels, one float each) are copied element by element.
 */
function copyRun(dst: TypedArray, to: number, src: TypedArray, from: number, length: number): void {
  if (length >= 64) {
    dst.set(src.subarray(from, from + length), to);
    return;
  }
  for (let i = 0; i < length; i++) dst[to + i] = src[from + i];
}

/** Concat/SplitV along `axis` see tensors as [outer, inner] blocks: prod(shape[:axis]) rows. */
function outerSize(shape: number[], axis: number): number {
  return shape.slice(0, axis).reduce((a, b) => a * b, 1);
}

function concat(args: Args & { inputs: tf.TensorInfo[] }, builtin: tf.KernelFunc): tf.TensorInfo {
  const parts = (args.inputs as tf.TensorInfo[]).filter((t) => t.shape.every((size) => size > 0));
  if (parts.length < 2 || parts[0].dtype === 'string') return builtin(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  const axis = tf.util.parseAxisParam(args.attrs.axis as number, parts[0].shape)[0];
  const outShape = tf.backend_util.computeOutShape(parts.map((t) => t.shape), axis);
  const out = args.backend.makeOutput(outShape, parts[0].dtype);
  const dst = heapView(args.backend, out);
  const rows = outerSize(outShape, axis);
  const widths = parts.map((t) => t.shape.slice(axis).reduce((a, b) => a * b, 1));
  const rowWidth = widths.reduce((a, b) => a + b, 0);
  parts.forEach((part, i) => {
    const src = heapView(args.backend, part);
    const offset = widths.slice(0, i).reduce((a, b) => a + b, 0);
    for (let row = 0; row < rows; row++) copyRun(dst, row * rowWidth + offset, src, row * widths[i], widths[i]);
  });
  return out;
}

function splitV(args: Args, builtin: tf.KernelFunc): tf.TensorInfo[] {
  const { x } = args.inputs;
  if (x.dtype === 'string') return builtin(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo[];
  const axis = tf.util.parseAxisParam(args.attrs.axis as number, x.shape)[0];
  const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, args.attrs.numOrSizeSplits as number | number[], axis);
  const rows = outerSize(x.shape, axis);
  const inner = x.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const rowWidth = x.shape[axis] * inner;
  const outs = sizes.map((size) => args.backend.makeOutput(x.shape.map((d, i) => (i === axis ? size : d)), x.dtype));
  // Views only now: the allocations above may have grown the heap.
  const src = heapView(args.backend, x);
  let offset = 0;
  outs.forEach((out, i) => {
    const dst = heapView(args.backend, out);
    const width = sizes[i] * inner;
    for (let row = 0; row < rows; row++) copyRun(dst, row * width, src, row * rowWidth + offset, width);
    offset += width;
  });
  return outs;
}

/**
 * Slice as copies of the longest contiguous runs. The backend's version first copies the whole
 * input out of the heap, then moves single elements (padding gradients slice big activations).
 */
function slice(args: Args, builtin: tf.KernelFunc): tf.TensorInfo {
  const { x } = args.inputs;
  if (x.dtype === 'string') return builtin(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  const [begin, size] = tf.slice_util.parseSliceParams(x as tf.Tensor, args.attrs.begin as number[], args.attrs.size as number[]);
  const out = args.backend.makeOutput(size, x.dtype);
  if (size.some((d) => d === 0)) return out;
  const src = heapView(args.backend, x);
  const dst = heapView(args.backend, out);
  const inStrides = strides(x.shape);
  // Trailing axes taken whole, plus the first partial one, are one contiguous run.
  let axis = x.shape.length - 1;
  let run = 1;
  while (axis > 0 && begin[axis] === 0 && size[axis] === x.shape[axis]) run *= size[axis--];
  run *= size[axis];
  let written = 0;
  const copy = (level: number, offset: number): void => {
    if (level === axis) {
      copyRun(dst, written, src, offset + begin[axis] * inStrides[axis], run);
      written += run;
      return;
    }
    for (let i = 0; i < size[level]; i++) copy(level + 1, offset + (begin[level] + i) * inStrides[level]);
  };
  copy(0, 0);
  return out;
}

/** Reverse (the augmentations' horizontal flip) as copies of the runs of trailing axes it keeps in order. */
function reverse(args: Args, builtin: tf.KernelFunc): tf.TensorInfo {
  const { x } = args.inputs;
  if (x.dtype === 'string' || x.shape.length === 0) return builtin(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  const flipped = new Set(tf.util.parseAxisParam(args.attrs.dims as number | number[], x.shape));
  const out = args.backend.makeOutput(x.shape, x.dtype);
  if (x.shape.some((d) => d === 0)) return out;
  const src = heapView(args.backend, x);
  const dst = heapView(args.backend, out);
  const sizes = strides(x.shape);
  let axis = x.shape.length - 1;
  while (axis >= 0 && !flipped.has(axis)) axis--;
  if (axis < 0) {
    dst.set(src);
    return out;
  }
  const run = sizes[axis];
  const copy = (level: number, from: number, to: number): void => {
    for (let i = 0; i < x.shape[level]; i++) {
      const source = from + (flipped.has(level) ? x.shape[level] - 1 - i : i) * sizes[level];
      if (level === axis) copyRun(dst, to + i * run, src, source, run);
      else copy(level + 1, source, to + i * sizes[level]);
    }
  };
  copy(0, 0, 0);
  return out;
}

/** Kernels replacing the backend's own; each falls back to the original for cases it does not cover. */
export function heapKernels(builtin: (name: string) => tf.KernelFunc | undefined): Array<[string, tf.KernelFunc]> {
  return [
    ['Tile', tile as unknown as tf.KernelFunc],
    ['Identity', ((args: Args) => identity(args, builtin('Identity')!)) as unknown as tf.KernelFunc],
    ['Cast', ((args: Args) => cast(args, builtin('Cast')!)) as unknown as tf.KernelFunc],
    ['Slice', ((args: Args) => slice(args, builtin('Slice')!)) as unknown as tf.KernelFunc],
    ['Reverse', ((args: Args) => reverse(args, builtin('Reverse')!)) as unknown as tf.KernelFunc],
    ['FusedBatchNorm', ((args: Args) => fusedBatchNorm(args, builtin('FusedBatchNorm')!)) as unknown as tf.KernelFunc],
    ['Concat', ((args: Args & { inputs: tf.TensorInfo[] }) => concat(args, builtin('Concat')!)) as unknown as tf.KernelFunc],
    ['SplitV', ((args: Args) => splitV(args, builtin('SplitV')!)) as unknown as tf.KernelFunc],
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
  const simd = channels % 4 === 0 ? backendSimd(backend) : null;
  let sumDy: Float64Array;
  let sumDyCentred: Float64Array;
  if (simd) {
    const blocks = Math.ceil(rows / SUM_BLOCK_ROWS);
    const partials = backend.makeOutput([2, blocks, channels], 'float32');
    const base = address(backend, partials);
    simd.blockGradSums(address(backend, dy), address(backend, x), address(backend, mean), rows, channels, SUM_BLOCK_ROWS,
      base, base + 4 * blocks * channels);
    const values = heapView(backend, partials);
    sumDy = addBlocks(values, blocks, channels);
    sumDyCentred = addBlocks(values, blocks, channels, blocks * channels);
    backend.disposeData(partials.dataId);
  } else {
    const [dyValues, xValues, meanValues] = [dy, x, mean].map((t) => heapView(backend, t));
    sumDy = new Float64Array(channels);
    sumDyCentred = new Float64Array(channels);
    for (let row = 0, offset = 0; row < rows; row++, offset += channels) {
      for (let c = 0; c < channels; c++) {
        const g = dyValues[offset + c];
        sumDy[c] += g;
        sumDyCentred[c] += g * (xValues[offset + c] - meanValues[c]);
      }
    }
  }
  const out = backend.makeOutput([2, channels], 'float32');
  const sums = heapView(backend, out);
  sums.set(sumDy, 0);
  sums.set(sumDyCentred, channels);
  return out;
}

/**
 * Batch-norm forward, y = x·a + b per channel with a = scale/√(variance + ε) and
 * b = offset − mean·a folded in JavaScript: one SIMD pass instead of the backend's
 * broadcasting loop. Other shapes go to the backend's kernel.
 */
function fusedBatchNorm(args: Args, builtin: tf.KernelFunc): tf.TensorInfo {
  const { backend } = args;
  const { x, mean, variance, offset, scale } = args.inputs;
  const channels = x.shape[x.shape.length - 1];
  const perChannel = (t: tf.TensorInfo | undefined) => !t || (t.shape.reduce((a, b) => a * b, 1) === channels && t.shape.at(-1) === channels);
  const simd = channels % 4 === 0 && x.dtype === 'float32' && [mean, variance, offset, scale].every(perChannel) ? backendSimd(backend) : null;
  if (!simd) return builtin(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  const epsilon = args.attrs.varianceEpsilon as number;
  const [m, v] = [heapView(backend, mean), heapView(backend, variance)];
  const [o, s] = [offset ? heapView(backend, offset) : null, scale ? heapView(backend, scale) : null];
  const coefficients = new Float32Array(2 * channels);
  for (let c = 0; c < channels; c++) {
    const a = (s ? s[c] : 1) / Math.sqrt(v[c] + epsilon);
    coefficients[c] = a;
    coefficients[channels + c] = (o ? o[c] : 0) - m[c] * a;
  }
  const folded = backend.makeOutput([2, channels], 'float32', undefined, coefficients);
  const out = backend.makeOutput(x.shape, 'float32');
  const base = address(backend, folded);
  simd.channelAffine(address(backend, x), x.shape.reduce((a, b) => a * b, 1) / channels, channels, base, base + 4 * channels, address(backend, out));
  backend.disposeData(folded.dataId);
  return out;
}
