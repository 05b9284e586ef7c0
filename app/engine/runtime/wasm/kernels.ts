/**
 * Kernels the TF.js wasm backend lacks or runs slowly, registered through the public
 * registerKernel API. Each one is rewritten as forward convolutions plus cheap layout
 * changes, because the wasm backend's forward Conv2D goes through XNNPACK and is by far
 * its fastest kernel; the model code stays backend-agnostic.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { heapKernels, interleavePhases } from './heap_kernels.ts';
import { FILTER_GRAD_CI_BLOCK, FILTER_GRAD_CO_BLOCK, FORWARD_CO_BLOCK, INPUT_GRAD_CI_BLOCK, address, backendSimd, type SimdKernels } from './simd.ts';
import { F2X2, F4X4, WINOGRAD_CHANNEL_BLOCK, type WinogradTile, winogradScratchBytes } from './winograd.ts';

type Attrs = Record<string, unknown>;
type Inputs = Record<string, tf.TensorInfo>;

/** Runs one of the wasm backend's own kernels on tensors that live in its memory. */
function runWasm(kernel: string, inputs: Inputs, attrs: Attrs, backend: BackendWasm): tf.TensorInfo {
  const config = tf.getKernel(kernel, 'wasm');
  if (!config) throw new Error(`wasm backend has no ${kernel} kernel`);
  return config.kernelFunc({ inputs, attrs: attrs as tf.NamedAttrMap, backend }) as tf.TensorInfo;
}

/** Releases intermediates created inside a kernel (outputs handed to the engine are kept). */
function release(backend: BackendWasm, ...infos: tf.TensorInfo[]): void {
  for (const info of infos) backend.disposeData(info.dataId);
}

function forwardConv(
  x: tf.TensorInfo,
  filter: tf.TensorInfo,
  pads: { top: number; bottom: number; left: number; right: number },
  dilations: [number, number],
  backend: BackendWasm,
): tf.TensorInfo {
  const pad = [[0, 0], [pads.top, pads.bottom], [pads.left, pads.right], [0, 0]];
  return runWasm('Conv2D', { x, filter }, { strides: [1, 1], pad, dilations, dataFormat: 'NHWC', dimRoundingMode: undefined }, backend);
}

type KernelArgs = { inputs: Inputs; attrs: Attrs; backend: BackendWasm };

/** The attributes both convolution gradients take, with the shape of what each one computes. */
interface GradientAttrs {
  strides: number | [number, number];
  pad: 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dataFormat: 'NHWC' | 'NCHW';
}
type FilterGradientAttrs = GradientAttrs & { filterShape: [number, number, number, number] };
type InputGradientAttrs = GradientAttrs & { inputShape: [number, number, number, number] };

function filterGradientInfo(x: tf.TensorInfo, attrs: Attrs): tf.backend_util.Conv2DInfo {
  const { strides, pad, dimRoundingMode, filterShape, dataFormat } = attrs as unknown as FilterGradientAttrs;
  if (dataFormat === 'NCHW') throw new Error('Conv2DBackpropFilter on wasm supports NHWC only');
  return tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number], filterShape, strides, 1, pad, dimRoundingMode, false, 'channelsLast');
}

/**
 * Filter gradient dW[kh,kw,ci,co] = sum over n,oh,ow of x[n, oh*s+kh-padTop, ow*s+kw-padLeft, ci] * dy[n,oh,ow,co].
 * Read with ci as the batch, n as the channel to reduce, and dy as a filter dilated by the
 * stride, that sum is a plain forward convolution whose output is the KHxKW filter grid.
 * The fallback when our SIMD kernel cannot run (no wasm SIMD).
 */
export function filterGradientByConvolution({ inputs, attrs, backend }: KernelArgs): tf.TensorInfo {
  const { x, dy } = inputs;
  const info = filterGradientInfo(x, attrs);
  const [kh, kw] = [info.filterHeight, info.filterWidth];
  const [sh, sw] = [info.strideHeight, info.strideWidth];
  const [n, h, w, ci] = x.shape;
  const [, oh, ow] = dy.shape;
  // Input rows past the last one any output reads are cut instead of padded negatively.
  const bottom = kh + (oh - 1) * sh - h - info.padInfo.top;
  const right = kw + (ow - 1) * sw - w - info.padInfo.left;
  const used = bottom < 0 || right < 0
    ? runWasm('Slice', { x }, { begin: [0, 0, 0, 0], size: [n, h + Math.min(bottom, 0), w + Math.min(right, 0), ci] }, backend)
    : x;
  const xT = runWasm('Transpose', { x: used }, { perm: [3, 1, 2, 0] }, backend);
  const dyT = runWasm('Transpose', { x: dy }, { perm: [1, 2, 0, 3] }, backend);
  const grid = forwardConv(xT, dyT,
    { top: info.padInfo.top, left: info.padInfo.left, bottom: Math.max(bottom, 0), right: Math.max(right, 0) },
    [sh, sw], backend);
  const dw = runWasm('Transpose', { x: grid }, { perm: [1, 2, 0, 3] }, backend);
  release(backend, xT, dyT, grid);
  if (used !== x) release(backend, used);
  return dw;
}

function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}

/** Zero channels appended so the SIMD kernel's channel blocks divide the channel count. */
function padChannels(t: tf.TensorInfo, channels: number, backend: BackendWasm): tf.TensorInfo {
  const extra = channels - t.shape[3];
  if (extra === 0) return t;
  return runWasm('PadV2', { x: t }, { paddings: [[0, 0], [0, 0], [0, 0], [0, extra]], constantValue: 0 }, backend);
}

/** How 3x3 stride-1 convolutions run: Winograd F(2x2, 3x3) or F(4x4, 3x3), or direct like the others. */
export type ConvolutionAlgorithm = 'winograd2x2' | 'winograd4x4' | 'direct';
const ALGORITHMS: readonly ConvolutionAlgorithm[] = ['winograd2x2', 'winograd4x4', 'direct'];
/**
 * F(4x4) by default: 1.6x fewer multiplications than F(2x2), and its float32 error (up to 3e-5
 * of the largest output on ResNet layers, 1e-5 typical) moves a 200-step pretraining's loss
 * curve no more than rounding differences alone do (docs/performance.md, Accuracy).
 */
let winogradTile: WinogradTile | null = F4X4;

/** Chooses the algorithm for 3x3 stride-1 convolutions (tests and benchmarks compare them). */
export function setConvolutionAlgorithm(algorithm: ConvolutionAlgorithm): void {
  winogradTile = algorithm === 'winograd2x2' ? F2X2 : algorithm === 'winograd4x4' ? F4X4 : null;
}

export function convolutionAlgorithm(): ConvolutionAlgorithm {
  return winogradTile === F2X2 ? 'winograd2x2' : winogradTile === F4X4 ? 'winograd4x4' : 'direct';
}

/** CONTRAST_WASM_CONVOLUTION picks the algorithm for a whole process, e.g. `contrast bench train`. */
const fromEnvironment = process.env.CONTRAST_WASM_CONVOLUTION;
if (fromEnvironment) {
  if (!ALGORITHMS.includes(fromEnvironment as ConvolutionAlgorithm)) {
    throw new Error(`CONTRAST_WASM_CONVOLUTION must be one of ${ALGORITHMS.join(', ')}, not '${fromEnvironment}'`);
  }
  setConvolutionAlgorithm(fromEnvironment as ConvolutionAlgorithm);
}

/**
 * The Winograd tile for a convolution it covers: 3x3, stride 1, no dilation, and channel counts
 * the kernels block (the reduced side read 4 channels at a time, the other 8).
 */
function winogradFor(info: tf.backend_util.Conv2DInfo, quadChannels: number, blockChannels: number): WinogradTile | null {
  const covered = info.filterHeight === 3 && info.filterWidth === 3 && info.strideHeight === 1 && info.strideWidth === 1
    && info.dilationHeight === 1 && info.dilationWidth === 1 && quadChannels % 4 === 0 && blockChannels % WINOGRAD_CHANNEL_BLOCK === 0;
  return covered ? winogradTile : null;
}

/** A float32 scratch tensor of at least `bytes` bytes, released by the caller. */
function scratch(backend: BackendWasm, bytes: number): tf.TensorInfo {
  return backend.makeOutput([Math.ceil(bytes / 4)], 'float32');
}

/**
 * y = x * w by Winograd: w[kh, kw, ci, co] transformed once per call (the weights change every
 * step), then x tile by tile. `flip` takes w rotated by 180° (the input gradient's filter).
 */
function convolveByWinograd(backend: BackendWasm, simd: SimdKernels, tile: WinogradTile, x: tf.TensorInfo, w: tf.TensorInfo, flip: boolean,
  out: { shape: [number, number, number, number]; top: number; left: number }): tf.TensorInfo {
  const [n, h, width, ci] = x.shape;
  const co = w.shape[3];
  const u = backend.makeOutput([tile.input * tile.input, ci, co], 'float32');
  simd.winogradFilter(tile, flip, address(backend, w), address(backend, u), ci, co);
  const y = backend.makeOutput(out.shape, 'float32');
  const work = scratch(backend, simd.threads * winogradScratchBytes(tile, ci, co));
  simd.winogradForward(tile, ci, co, address(backend, x), address(backend, u), address(backend, y), address(backend, work),
    [n, h, width, out.shape[1], out.shape[2], out.top, out.left]);
  release(backend, u, work);
  return y;
}

/** dW of a 3x3 stride-1 convolution by Winograd (see winograd.ts). */
function filterGradientByWinograd(backend: BackendWasm, simd: SimdKernels, tile: WinogradTile, x: tf.TensorInfo, dy: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo): tf.TensorInfo {
  const [n, h, w, ci] = x.shape;
  const [, oh, ow, co] = dy.shape;
  const transformedSize = tile.input * tile.input * ci * co;
  const parts = backend.makeOutput([simd.threads, transformedSize], 'float32');
  const work = scratch(backend, simd.threads * winogradScratchBytes(tile, ci, co));
  const count = simd.winogradFilterGrad(tile, ci, co, address(backend, x), address(backend, dy), address(backend, parts), address(backend, work),
    [n, h, w, oh, ow, info.padInfo.top, info.padInfo.left]);
  const dw = backend.makeOutput([3, 3, ci, co], 'float32');
  simd.winogradFilterGradOutput(tile, address(backend, parts), count, ci, co, address(backend, dw));
  release(backend, parts, work);
  return dw;
}

/** Output pixels per cache-resident chunk of the filter-gradient kernel (x and dy slices ~100 KB). */
const FILTER_GRAD_CHUNK_PIXELS = 256;

/** The filter gradient by our SIMD kernel on x and dy as they are (wasm_simd.ts). */
function filterGradientBySimd({ inputs, attrs, backend }: KernelArgs, simd: SimdKernels): tf.TensorInfo {
  const { x, dy } = inputs;
  const info = filterGradientInfo(x, attrs);
  const [n, h, w, ci] = x.shape;
  const [, oh, ow, co] = dy.shape;
  const [kh, kw] = [info.filterHeight, info.filterWidth];
  const paddedX = padChannels(x, roundUp(ci, FILTER_GRAD_CI_BLOCK), backend);
  const paddedDy = padChannels(dy, roundUp(co, FILTER_GRAD_CO_BLOCK), backend);
  const [ciBlocks, coBlocks] = [paddedX.shape[3], paddedDy.shape[3]];
  const grid = backend.makeOutput([kh, kw, ciBlocks, coBlocks], 'float32');
  // The kernel accumulates into the grid chunk by chunk; fresh heap memory is not zeroed.
  (backend.typedArrayFromHeap(grid) as Float32Array).fill(0);
  simd.filterGrad(address(backend, paddedX), address(backend, paddedDy), address(backend, grid),
    [n, h, w, ciBlocks, oh, ow, coBlocks, kh, kw, info.strideHeight, info.strideWidth, info.padInfo.top, info.padInfo.left,
      Math.max(1, Math.floor(FILTER_GRAD_CHUNK_PIXELS / ow))]);
  if (paddedX !== x) release(backend, paddedX);
  if (paddedDy !== dy) release(backend, paddedDy);
  if (ciBlocks === ci && coBlocks === co) return grid;
  const dw = runWasm('Slice', { x: grid }, { begin: [0, 0, 0, 0], size: [kh, kw, ci, co] }, backend);
  release(backend, grid);
  return dw;
}

/** The fallback implementation, exported so tests can check it where SIMD is available. */

function conv2DBackpropFilter(args: KernelArgs): tf.TensorInfo {
  const simd = backendSimd(args.backend);
  if (!simd) return filterGradientByConvolution(args);
  const { x, dy } = args.inputs;
  const info = filterGradientInfo(x, args.attrs);
  const tile = winogradFor(info, x.shape[3], dy.shape[3]);
  return tile ? filterGradientByWinograd(args.backend, simd, tile, x, dy, info) : filterGradientBySimd(args, simd);
}

/** Where one output phase of a strided transposed convolution reads, along one axis. */
interface Phase {
  /** Taps of the original filter that land on this phase: first one and count (step = stride). */
  firstTap: number;
  taps: number;
  padBefore: number;
  padAfter: number;
}

/**
 * Input rows h = q*stride + phase receive dy[q + c - j] * W[j*stride + b] for the taps
 * kh = j*stride + b congruent to phase + padBefore. Each phase is therefore an ordinary
 * stride-1 convolution of dy with a flipped, subsampled filter; computing the phases
 * separately skips the zero rows a zero-upsampled dy would multiply.
 */
function phaseOf(phase: number, stride: number, kernel: number, padBefore: number, outSize: number, phaseRows: number): Phase {
  const b = (phase + padBefore) % stride;
  const taps = b < kernel ? Math.ceil((kernel - b) / stride) : 0;
  const c = Math.floor((phase + padBefore) / stride);
  const before = taps - 1 - c;
  return { firstTap: b, taps, padBefore: before, padAfter: phaseRows - outSize - before + taps - 1 };
}

/** Cuts dy where a phase would need negative padding, so the convolution sees only real rows. */
function cropForPads(dy: tf.TensorInfo, rows: Phase, cols: Phase, backend: BackendWasm): { dy: tf.TensorInfo; cropped: boolean } {
  const [n, oh, ow, c] = dy.shape;
  const top = Math.max(0, -rows.padBefore);
  const left = Math.max(0, -cols.padBefore);
  const height = oh - top - Math.max(0, -rows.padAfter);
  const width = ow - left - Math.max(0, -cols.padAfter);
  if (top === 0 && left === 0 && height === oh && width === ow) return { dy, cropped: false };
  return { dy: runWasm('Slice', { x: dy }, { begin: [0, top, left, 0], size: [n, height, width, c] }, backend), cropped: true };
}

/** Null when no filter tap lands on this phase: its input gradient is zero. */
function phaseGradient(dy: tf.TensorInfo, flipped: tf.TensorInfo, rows: Phase, cols: Phase, strides: [number, number],
  backend: BackendWasm): tf.TensorInfo | null {
  if (rows.taps === 0 || cols.taps === 0) return null;
  const [kh, kw, co, ci] = flipped.shape;
  // flipped[u] = W[K-1-u], so taps firstTap, firstTap+s, ... of W read backwards from the end.
  const beginH = kh - 1 - rows.firstTap - (rows.taps - 1) * strides[0];
  const beginW = kw - 1 - cols.firstTap - (cols.taps - 1) * strides[1];
  const filter = runWasm('StridedSlice', { x: flipped }, {
    begin: [beginH, beginW, 0, 0], end: [beginH + (rows.taps - 1) * strides[0] + 1, beginW + (cols.taps - 1) * strides[1] + 1, co, ci],
    strides: [strides[0], strides[1], 1, 1], beginMask: 0, endMask: 0, ellipsisMask: 0, newAxisMask: 0, shrinkAxisMask: 0,
  }, backend);
  const { dy: used, cropped } = cropForPads(dy, rows, cols, backend);
  const out = forwardConv(used, filter, {
    top: Math.max(0, rows.padBefore), bottom: Math.max(0, rows.padAfter),
    left: Math.max(0, cols.padBefore), right: Math.max(0, cols.padAfter),
  }, [1, 1], backend);
  release(backend, filter);
  if (cropped) release(backend, used);
  return out;
}

function inputGradientInfo(filter: tf.TensorInfo, attrs: Attrs): tf.backend_util.Conv2DInfo {
  const { strides, pad, dimRoundingMode, inputShape } = attrs as unknown as InputGradientAttrs;
  return tf.backend_util.computeConv2DInfo(
    inputShape, filter.shape as [number, number, number, number], strides, 1, pad, dimRoundingMode, false, 'channelsLast');
}

/** The input gradient by our SIMD kernel, scattering W·dy straight into dx (wasm_simd.ts). */
function inputGradientBySimd({ inputs, attrs, backend }: KernelArgs, simd: SimdKernels): tf.TensorInfo {
  const { dy, filter } = inputs;
  const info = inputGradientInfo(filter, attrs);
  const [n, h, w, ci] = (attrs as unknown as InputGradientAttrs).inputShape;
  const [, oh, ow, co] = dy.shape;
  const paddedCi = roundUp(ci, INPUT_GRAD_CI_BLOCK);
  const transposed = runWasm('Transpose', { x: filter }, { perm: [0, 1, 3, 2] }, backend);
  const wT = padChannels(transposed, paddedCi, backend);
  if (wT !== transposed) release(backend, transposed);
  // On small maps most dy pixels reach past the border and would take the kernel's one-pixel
  // path; scattering into a zero-padded dx first makes every tap land, then the border is cut.
  const { top, left } = info.padInfo;
  const padFirst = ow <= SMALL_MAP && top + left + info.padInfo.bottom + info.padInfo.right > 0;
  const [paddedH, paddedW] = padFirst
    ? [Math.max(h + top, (oh - 1) * info.strideHeight + info.filterHeight), Math.max(w + left, (ow - 1) * info.strideWidth + info.filterWidth)]
    : [h, w];
  const dx = backend.makeOutput([n, paddedH, paddedW, paddedCi], 'float32');
  // The kernel accumulates into dx; fresh heap memory is not zeroed.
  (backend.typedArrayFromHeap(dx) as Float32Array).fill(0);
  simd.inputGrad(co, paddedCi, address(backend, dy), address(backend, wT), address(backend, dx),
    [n, paddedH, paddedW, oh, ow, info.filterHeight, info.filterWidth, info.strideHeight, info.strideWidth, padFirst ? 0 : top, padFirst ? 0 : left]);
  release(backend, wT);
  if (!padFirst && paddedCi === ci) return dx;
  const begin = padFirst ? [0, top, left, 0] : [0, 0, 0, 0];
  const cropped = runWasm('Slice', { x: dx }, { begin, size: [n, h, w, ci] }, backend);
  release(backend, dx);
  return cropped;
}

/**
 * Input gradient as forward convolutions of dy with the flipped, transposed filter, one per
 * stride phase, interleaved back on the heap: the fallback without wasm SIMD. Cases this
 * does not cover (unequal strides) go to the backend's own kernel.
 */
export function inputGradientByPhases(args: KernelArgs): tf.TensorInfo {
  const { inputs, attrs, backend } = args;
  const { dy, filter } = inputs;
  const info = inputGradientInfo(filter, attrs);
  const [sh, sw] = [info.strideHeight, info.strideWidth];
  if (sh !== sw) return builtin('Conv2DBackpropInput')!(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  const [n, h, w, ci] = (attrs as unknown as InputGradientAttrs).inputShape;
  const [, oh, ow] = dy.shape;
  const [qh, qw] = [Math.ceil(h / sh), Math.ceil(w / sw)];
  const transposed = runWasm('Transpose', { x: filter }, { perm: [0, 1, 3, 2] }, backend);
  const flipped = runWasm('Reverse', { x: transposed }, { dims: [0, 1] }, backend);
  release(backend, transposed);
  const phases: Array<tf.TensorInfo | null> = [];
  for (let a = 0; a < sh; a++) {
    for (let b = 0; b < sw; b++) {
      const rows = phaseOf(a, sh, info.filterHeight, info.padInfo.top, oh, qh);
      const cols = phaseOf(b, sw, info.filterWidth, info.padInfo.left, ow, qw);
      phases.push(phaseGradient(dy, flipped, rows, cols, [sh, sw], backend));
    }
  }
  release(backend, flipped);
  if (sh === 1 && qh === h && qw === w) return phases[0]!;
  const dx = interleavePhases(backend, phases, sh, [n, h, w, ci]);
  release(backend, ...phases.filter((p): p is tf.TensorInfo => p !== null));
  return dx;
}

/** The fallback implementation, exported so tests can check it where SIMD is available. */

function conv2DBackpropInput(args: KernelArgs): tf.TensorInfo {
  if ((args.attrs as unknown as InputGradientAttrs).dataFormat === 'NCHW') {
    return builtin('Conv2DBackpropInput')!(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  }
  const simd = backendSimd(args.backend);
  if (!simd) return inputGradientByPhases(args);
  const { dy, filter } = args.inputs;
  const info = inputGradientInfo(filter, args.attrs);
  const tile = winogradFor(info, dy.shape[3], filter.shape[2]);
  if (!tile) return inputGradientBySimd(args, simd);
  // dx is the forward convolution of dy with the filter transposed to [kh, kw, co, ci] and
  // rotated by 180°, padded by kernel − 1 − pad.
  const transposed = runWasm('Transpose', { x: filter }, { perm: [0, 1, 3, 2] }, args.backend);
  const dx = convolveByWinograd(args.backend, simd, tile, dy, transposed, true,
    { shape: (args.attrs as unknown as InputGradientAttrs).inputShape, top: 2 - info.padInfo.top, left: 2 - info.padInfo.left });
  release(args.backend, transposed);
  return dx;
}

/** Output width up to which the forward convolution pads its input first (see below). */
const SMALL_MAP = 8;

interface ForwardConvAttrs {
  strides: number | [number, number];
  pad: 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
  dilations: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dataFormat: 'NHWC' | 'NCHW';
  activation?: string;
}

/**
 * Conv2D, and FusedConv2D without bias or activation (how our ResNet's convolutions run:
 * a batch norm follows each), by our SIMD kernel; everything else by the backend's kernel.
 * Ours reads the filter as it is, where XNNPACK repacks a fresh one (every training step).
 */
function forwardConvolution(kernelName: 'Conv2D' | 'FusedConv2D') {
  return (args: KernelArgs): tf.TensorInfo => {
    const { inputs, attrs, backend } = args;
    const { x, filter } = inputs;
    const { strides, pad, dilations, dimRoundingMode, dataFormat, activation } = attrs as unknown as ForwardConvAttrs;
    const plain = !inputs.bias && !inputs.preluActivationWeights && (activation === undefined || activation === 'linear');
    const simd = plain && dataFormat !== 'NCHW' && x.dtype === 'float32' && filter.shape[3] % FORWARD_CO_BLOCK === 0 ? backendSimd(backend) : null;
    const info = simd && tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number],
      filter.shape as [number, number, number, number], strides, dilations, pad, dimRoundingMode, false, 'channelsLast');
    if (!simd || !info || info.dilationHeight !== 1 || info.dilationWidth !== 1) {
      return builtin(kernelName)!(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
    }
    const tile = winogradFor(info, x.shape[3], info.outChannels);
    if (tile) return convolveByWinograd(backend, simd, tile, x, filter, false, { shape: info.outShape, top: info.padInfo.top, left: info.padInfo.left });
    // On small maps most pixels touch the border and would take the kernel's one-pixel path;
    // padding x first makes every tap valid, so all pixels go in blocks of four.
    const { top, bottom, left, right } = info.padInfo;
    const padFirst = info.outWidth <= SMALL_MAP && top + bottom + left + right > 0;
    const input = padFirst ? runWasm('PadV2', { x }, { paddings: [[0, 0], [top, bottom], [left, right], [0, 0]], constantValue: 0 }, backend) : x;
    const y = backend.makeOutput(info.outShape, 'float32');
    const [n, h, w, ci] = input.shape;
    simd.forwardConv(ci, info.outChannels, info.strideWidth, address(backend, input), address(backend, filter), address(backend, y),
      [n, h, w, info.outHeight, info.outWidth, info.filterHeight, info.filterWidth, info.strideHeight, padFirst ? 0 : top, padFirst ? 0 : left]);
    if (padFirst) release(backend, input);
    return y;
  };
}

/**
 * The backend's BatchMatMul uses XNNPACK only without transposes and without a batch; with a
 * transpose (NT-Xent's z·zᵀ, every Dense layer's gradients) it falls back to a scalar triple
 * loop. Transposing the operand first keeps those products on XNNPACK.
 */
function batchMatMul(args: KernelArgs): tf.TensorInfo {
  const { inputs, attrs, backend } = args;
  const { a, b } = inputs;
  const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
  const single = (t: tf.TensorInfo) => t.shape.length <= 3 && t.shape.slice(0, -2).every((d) => d === 1);
  const original = builtin('BatchMatMul')!;
  if (!(transposeA || transposeB) || !single(a) || !single(b) || a.dtype !== 'float32' || b.dtype !== 'float32') {
    return original(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  }
  const swapLast = (t: tf.TensorInfo) => runWasm('Transpose', { x: t }, { perm: [...t.shape.keys()].map((i, _, all) => (i < all.length - 2 ? i : 2 * all.length - 3 - i)) }, backend);
  const a2 = transposeA ? swapLast(a) : a;
  const b2 = transposeB ? swapLast(b) : b;
  const out = original({ inputs: { a: a2, b: b2 }, attrs: { ...attrs, transposeA: false, transposeB: false }, backend } as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  if (a2 !== a) release(backend, a2);
  if (b2 !== b) release(backend, b2);
  return out;
}

/** The backend's own kernels we replace, kept for the cases ours hand back to them. */
const builtins = new Map<string, tf.KernelConfig>();

function builtin(name: string): tf.KernelFunc | undefined {
  return builtins.get(name)?.kernelFunc;
}

const kernels: Array<[string, tf.KernelFunc]> = [
  ['Conv2DBackpropFilter', conv2DBackpropFilter as unknown as tf.KernelFunc],
  ['Conv2DBackpropInput', conv2DBackpropInput as unknown as tf.KernelFunc],
  ['Conv2D', forwardConvolution('Conv2D') as unknown as tf.KernelFunc],
  ['BatchMatMul', batchMatMul as unknown as tf.KernelFunc],
  ['FusedConv2D', forwardConvolution('FusedConv2D') as unknown as tf.KernelFunc],
  ...heapKernels(builtin),
];

/** Installs our wasm kernels, replacing the backend's own where it has a slower one. Idempotent. */
export function registerWasmKernels(): void {
  for (const [kernelName, kernelFunc] of kernels) {
    const existing = tf.getKernel(kernelName, 'wasm');
    if (existing?.kernelFunc === kernelFunc) continue;
    if (existing) {
      builtins.set(kernelName, existing);
      tf.unregisterKernel(kernelName, 'wasm');
    }
    // Keeping the original setup lets the fallback work after the backend is re-created.
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc, setupFunc: existing?.setupFunc });
  }
}
