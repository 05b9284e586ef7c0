/**
 * Kernels the TF.js wasm backend lacks or runs slowly, registered through the public
 * registerKernel API. Each one is rewritten as forward convolutions plus cheap layout
 * changes, because the wasm backend's forward Conv2D goes through XNNPACK and is by far
 * its fastest kernel; the model code stays backend-agnostic.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

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

/**
 * Filter gradient dW[kh,kw,ci,co] = sum over n,oh,ow of x[n, oh*s+kh-padTop, ow*s+kw-padLeft, ci] * dy[n,oh,ow,co].
 * Read with ci as the batch, n as the channel to reduce, and dy as a filter dilated by the
 * stride, that sum is a plain forward convolution whose output is the KHxKW filter grid.
 */
function conv2DBackpropFilter({ inputs, attrs, backend }: { inputs: Inputs; attrs: Attrs; backend: BackendWasm }): tf.TensorInfo {
  const { x, dy } = inputs;
  const { strides, pad, dimRoundingMode, filterShape, dataFormat } = attrs as {
    strides: number | [number, number];
    pad: 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
    filterShape: [number, number, number, number];
    dataFormat: 'NHWC' | 'NCHW';
  };
  if (dataFormat === 'NCHW') throw new Error('Conv2DBackpropFilter on wasm supports NHWC only');
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number], filterShape, strides, 1, pad, dimRoundingMode, false, 'channelsLast');
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
  if (dw.shape.join() !== [kh, kw, ci, dy.shape[3]].join()) throw new Error(`Conv2DBackpropFilter: got shape ${dw.shape}`);
  return dw;
}

const kernels: tf.KernelConfig[] = [
  { kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', kernelFunc: conv2DBackpropFilter as unknown as tf.KernelFunc },
];

/** Installs our wasm kernels, replacing the backend's own where it has a slower one. Idempotent. */
export function registerWasmKernels(): void {
  for (const config of kernels) {
    const existing = tf.getKernel(config.kernelName, 'wasm');
    if (existing?.kernelFunc === config.kernelFunc) continue;
    if (existing) tf.unregisterKernel(config.kernelName, 'wasm');
    tf.registerKernel(config);
  }
}
