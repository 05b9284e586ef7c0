/**
 * Chooses where TF.js runs: libtensorflow on a CUDA GPU, WebGPU on a hardware adapter,
 * libtensorflow on the CPU, the wasm backend (XNNPACK) or the plain JS cpu backend. The native
 * packages are optional dependencies that are often absent or broken (wrong CUDA), so each is
 * probed with a dynamic import and every failure is turned into a reason the user can act on.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../../contract/errors.ts';
import { registerBatchNormGradients } from './batch_norm.ts';
import { fusedMultiplyAddAvailable } from './wasm/assembler.ts';
import { registerWasmKernels } from './wasm/kernels.ts';
import { registerThreadedWasmBackend, simdThreads, threadedWasmFailure, threadsAvailable } from './wasm/threads.ts';
import { adapterName, probeWebGpu, type AdapterReport } from './webgpu_backend.ts';

export const BACKEND_NAMES = ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export interface BackendInfo {
  backend: BackendName;
  /** Human-readable, e.g. 'CUDA GPU', 'CPU (libtensorflow)', 'CPU (wasm SIMD, 1 thread)'. */
  device: string;
  notes: string[];
}

export interface BackendCandidate {
  /** What `--backend` would select; tfjs-node-gpu and tfjs-node both provide 'tensorflow'. */
  backend: BackendName;
  package: string;
  found: boolean;
  usable: boolean;
  device?: string;
  /** Why it is not usable, or a caveat when it is. */
  reason?: string;
  /** The adapter Dawn found (webgpu only), whether or not it is used. */
  adapter?: AdapterReport;
}

export interface DoctorReport {
  candidates: BackendCandidate[];
  /** What `initBackend('auto')` picks. */
  recommended: BackendName;
  notes: string[];
}

export interface BackendOptions {
  /**
   * Threads for the wasm backend's convolutions (default: every core, at most 8). Read when the wasm backend
   * is first initialised in this process; later calls cannot change it.
   */
  wasmThreads?: number;
}

const require = createRequire(import.meta.url);
/** More threads than this mostly add worker memory: the kernels split batches of ~128 images. */
const MAX_DEFAULT_THREADS = 8;
let wasmThreads = Math.min(availableParallelism(), MAX_DEFAULT_THREADS);
let threadedRegistered = false;

interface Probe {
  ok: boolean;
  device?: string;
  reason?: string;
  adapter?: AdapterReport;
}

/** tfjs-node's backend object has isUsingGpuDevice(); it is not in the public type. */
interface NodeBackendLike {
  isUsingGpuDevice?: () => boolean;
}

/** Turns a native package's load error into a reason the user can act on. */
export function explainNativeFailure(pkg: string, error: unknown): string {
  const message = String((error as Error)?.message ?? error);
  if ((error as { code?: string })?.code === 'ERR_MODULE_NOT_FOUND' || /Cannot find (module|package) '@tensorflow\/tfjs-node/.test(message)) {
    return `${pkg} not installed`;
  }
  const missingLib = /(lib[\w.+-]+\.so[\w.]*)/.exec(message)?.[1];
  if (missingLib && /cud|cublas|cufft|curand|cusolver|cusparse/.test(missingLib)) {
    return `${missingLib} missing: ${pkg} 4.x needs CUDA 11.2 and cuDNN 8.1 on the library path`;
  }
  if (missingLib) return `${missingLib} could not be loaded: reinstall ${pkg} (its native binding is missing or built for another platform)`;
  return `${pkg} failed to load: ${message.split('\n')[0]}`;
}

/** Loads a native package; it registers the 'tensorflow' backend as a side effect. */
async function loadNative(pkg: '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node'): Promise<Probe> {
  try {
    await import(pkg);
  } catch (error) {
    return { ok: false, reason: explainNativeFailure(pkg, error) };
  }
  if (!tf.findBackend('tensorflow')) return { ok: false, reason: `${pkg} loaded but registered no 'tensorflow' backend` };
  return { ok: true };
}

async function probeGpu(): Promise<Probe> {
  const loaded = await loadNative('@tensorflow/tfjs-node-gpu');
  if (!loaded.ok) return loaded;
  const nodeBackend = tf.findBackend('tensorflow') as NodeBackendLike | null;
  if (!nodeBackend?.isUsingGpuDevice?.()) {
    return { ok: false, reason: 'tfjs-node-gpu loaded but sees no CUDA GPU (check the driver and CUDA_VISIBLE_DEVICES)' };
  }
  return { ok: true, device: 'CUDA GPU' };
}

async function probeNodeCpu(): Promise<Probe> {
  const loaded = await loadNative('@tensorflow/tfjs-node');
  return loaded.ok ? { ok: true, device: 'CPU (libtensorflow)' } : loaded;
}

function wasmDistFolder(): string {
  return dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
}

/** The flag is registered by the wasm package, so ask only after importing it. */
async function simdSupported(): Promise<boolean> {
  return Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
}

async function probeWasm(): Promise<Probe> {
  let wasmModule: typeof import('@tensorflow/tfjs-backend-wasm');
  try {
    wasmModule = await import('@tensorflow/tfjs-backend-wasm');
  } catch (error) {
    return { ok: false, reason: `@tensorflow/tfjs-backend-wasm failed to load: ${String((error as Error).message).split('\n')[0]}` };
  }
  const folder = wasmDistFolder();
  const simd = await simdSupported();
  const binary = simd ? 'tfjs-backend-wasm-simd.wasm' : 'tfjs-backend-wasm.wasm';
  if (!existsSync(join(folder, binary))) return { ok: false, reason: `${binary} missing from ${folder}` };
  // Local files only: without this the backend would try to fetch the binary over the network.
  wasmModule.setWasmPaths(folder + '/');
  if (simd && threadsAvailable() && !threadedRegistered && wasmThreads > 1 && !tf.engine().registry.wasm) {
    registerThreadedWasmBackend(wasmThreads);
    threadedRegistered = true;
  }
  return { ok: true, device: `CPU (wasm${simd ? ' SIMD' : ''})` };
}

/** Call only once the wasm backend is initialised: the thread count is known only then. */
async function wasmDevice(): Promise<string> {
  const threads = simdThreads();
  return `CPU (wasm${(await simdSupported()) ? ' SIMD' : ''}, ${threads} thread${threads === 1 ? '' : 's'})`;
}

/** `forced`: the user named this backend, so a software WebGPU adapter is acceptable. */
async function probeWebGpuBackend(forced: boolean): Promise<Probe> {
  const result = await probeWebGpu(forced);
  if (!result.ok) return { ok: false, reason: result.reason, adapter: result.adapter };
  return { ok: true, device: `GPU (${adapterName(result.adapter)})`, adapter: result.adapter };
}

/** In order of preference for 'auto'. */
const probes: Array<{ backend: BackendName; pkg: string; probe: (forced: boolean) => Promise<Probe> }> = [
  { backend: 'tensorflow', pkg: '@tensorflow/tfjs-node-gpu', probe: probeGpu },
  { backend: 'webgpu', pkg: 'webgpu (Dawn)', probe: probeWebGpuBackend },
  { backend: 'tensorflow', pkg: '@tensorflow/tfjs-node', probe: probeNodeCpu },
  { backend: 'wasm', pkg: '@tensorflow/tfjs-backend-wasm', probe: probeWasm },
  { backend: 'cpu', pkg: '@tensorflow/tfjs (built in)', probe: async () => ({ ok: true, device: 'CPU (plain JavaScript, slow)' }) },
];

/** Results of earlier calls, so a repeated call neither re-probes nor reloads anything. */
const chosen = new Map<'auto' | BackendName, BackendInfo>();

async function activate(backend: BackendName): Promise<void> {
  if (tf.getBackend() !== backend && !(await tf.setBackend(backend))) {
    throw new UserError(`the ${backend} backend failed to initialise`);
  }
  await tf.ready();
  if (backend === 'wasm') registerWasmKernels();
  registerBatchNormGradients();
}

/**
 * Picks and activates a backend. 'auto' tries CUDA, a hardware WebGPU adapter, native CPU,
 * wasm, then plain JS, and records in `notes` why each faster option was skipped.
 */
export async function initBackend(preferred: 'auto' | BackendName = 'auto', options: BackendOptions = {}): Promise<BackendInfo> {
  if (options.wasmThreads !== undefined) wasmThreads = options.wasmThreads;
  const earlier = chosen.get(preferred);
  if (earlier) {
    await activate(earlier.backend);
    return earlier;
  }
  const notes: string[] = [];
  for (const { backend, probe } of probes.filter((p) => preferred === 'auto' || p.backend === preferred)) {
    const result = await probe(preferred !== 'auto');
    if (!result.ok) {
      notes.push(result.reason!);
      continue;
    }
    await activate(backend);
    if (backend === 'wasm' && threadedWasmFailure()) notes.push(`wasm threads unavailable: ${threadedWasmFailure()}`);
    const device = backend === 'wasm' ? await wasmDevice() : result.device!;
    const info: BackendInfo = { backend, device, notes };
    chosen.set(preferred, info);
    return info;
  }
  throw new UserError(`backend "${preferred}" is not available: ${notes.join('; ')}`);
}

/** Probes every candidate without switching the active backend, for `contrast doctor`. */
export async function diagnoseBackends(): Promise<DoctorReport> {
  const candidates: BackendCandidate[] = [];
  for (const { backend, pkg, probe } of probes) {
    const result = await probe(false);
    const found = result.ok || !/not installed/.test(result.reason ?? '');
    candidates.push({ backend, package: pkg, found, usable: result.ok, device: result.device, reason: result.reason, adapter: result.adapter });
  }
  const recommended = candidates.find((c) => c.usable)!.backend;
  const wasmUsable = candidates.some((c) => c.backend === 'wasm' && c.usable);
  const notes = [
    `wasm SIMD: ${!wasmUsable ? 'unknown (wasm package unusable)' : (await simdSupported()) ? 'supported' : 'not supported (wasm runs several times slower)'}`,
    threadsAvailable()
      ? `wasm threads: ${threadedWasmFailure() ? `failed (${threadedWasmFailure()}), using 1` : `convolutions on up to ${wasmThreads} threads`}`
      : 'wasm threads: no SharedArrayBuffer in this Node, so everything runs on one core',
    fusedMultiplyAddAvailable()
      ? 'wasm relaxed SIMD: supported (convolutions use fused multiply-adds)'
      : 'wasm relaxed SIMD: not in this runtime (Node 20 needs --experimental-wasm-relaxed-simd; Node 22 and Electron have it), so convolutions multiply and add separately',
    `active backend: ${tf.getBackend() ?? 'none'}`,
  ];
  return { candidates, recommended, notes };
}
