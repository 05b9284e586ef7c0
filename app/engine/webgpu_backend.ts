/// <reference types="@webgpu/types" />
/**
 * The `webgpu` backend: @tensorflow/tfjs-backend-webgpu on a GPU reached through Dawn's Node
 * bindings (the optional `webgpu` package, prebuilt dawn.node for Windows, macOS and Linux).
 * TF.js's own factory for this backend needs a browser's navigator.gpu, so we find the adapter
 * ourselves (Vulkan/Metal/D3D12 first, then OpenGL ES, in core or compatibility mode), describe
 * it for `contrast doctor`, and register a factory that builds the backend on that adapter.
 *
 * A software adapter (llvmpipe, SwiftShader) trains slower than our wasm kernels, so it is
 * only used when asked for by name; `initBackend('auto')` skips it.
 */
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { UserError } from '../errors.ts';

export type FeatureLevel = 'core' | 'compatibility';

export interface AdapterLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  maxStorageBuffersPerShaderStage: number;
}

export interface AdapterReport {
  vendor: string;
  architecture: string;
  description: string;
  /** Dawn's device name, e.g. 'llvmpipe-llvm-15-0-6-256-bits-'. */
  device: string;
  featureLevel: FeatureLevel;
  software: boolean;
  /** The Dawn backend it came through: 'default' (Vulkan, Metal or D3D12) or 'opengles'. */
  dawnBackend: DawnBackend;
  limits: AdapterLimits;
}

export type WebGpuProbe = { ok: true; adapter: AdapterReport } | { ok: false; reason: string; adapter?: AdapterReport };

type DawnBackend = 'default' | 'opengles';
type DawnModule = { create(options: string[]): GPU; globals: Record<string, unknown> };

/** GPUAdapter.info (and isFallbackAdapter) are newer than the @webgpu/types that TF.js 4.22 brings. */
type InfoAdapter = GPUAdapter & { info: GPUAdapterInfo & { isFallbackAdapter?: boolean } };

interface FoundAdapter {
  gpu: GPU;
  adapter: InfoAdapter;
  report: AdapterReport;
}

const PACKAGE = 'webgpu';
const SOFTWARE_RENDERERS = /llvmpipe|lavapipe|softpipe|swiftshader|basic render driver/i;
/** Below every backend we ship, so TF.js never initialises this one on its own. */
const REGISTRY_PRIORITY = -1;

let found: Promise<{ best?: FoundAdapter; reason?: string }> | undefined;
let registeredOn: FoundAdapter | undefined;
/** The first device error since the last read (out of memory, a buffer over a limit): that read's values are garbage. */
let deviceError: string | undefined;
/** Set once the device is gone (driver reset, GPU removed): every read after it fails. */
let deviceLost: string | undefined;

/** Dawn's OpenGL ES backend needs an EGL display; surfaceless works without a window system. */
function dawnOptions(backend: DawnBackend): string[] {
  if (backend === 'default') return [];
  process.env.EGL_PLATFORM ??= 'surfaceless';
  return ['backend=opengles'];
}

function isSoftware(info: InfoAdapter['info']): boolean {
  const text = `${info.vendor} ${info.architecture} ${info.description} ${info.device}`;
  return Boolean(info.isFallbackAdapter) || SOFTWARE_RENDERERS.test(text);
}

function describeAdapter(adapter: InfoAdapter, featureLevel: FeatureLevel, dawnBackend: DawnBackend): AdapterReport {
  const { info, limits } = adapter;
  return {
    vendor: info.vendor,
    architecture: info.architecture,
    description: info.description,
    device: info.device,
    featureLevel,
    software: isSoftware(info),
    dawnBackend,
    limits: {
      maxBufferSize: limits.maxBufferSize,
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage,
    },
  };
}

/** Core first: compatibility mode (OpenGL ES, D3D11) lacks features and has lower limits. */
async function requestAdapter(gpu: GPU, dawnBackend: DawnBackend): Promise<FoundAdapter | undefined> {
  for (const featureLevel of ['core', 'compatibility'] as FeatureLevel[]) {
    const adapter = (await gpu.requestAdapter({ featureLevel, powerPreference: 'high-performance' } as GPURequestAdapterOptions)) as InfoAdapter | null;
    if (adapter) return { gpu, adapter, report: describeAdapter(adapter, featureLevel, dawnBackend) };
  }
  return undefined;
}

/** Hardware before software, then core before compatibility. */
function rank(candidate: FoundAdapter): number {
  return (candidate.report.software ? 2 : 0) + (candidate.report.featureLevel === 'core' ? 0 : 1);
}

async function loadDawn(): Promise<DawnModule | string> {
  try {
    return (await import(PACKAGE)) as DawnModule;
  } catch (error) {
    const message = String((error as Error)?.message ?? error);
    if ((error as { code?: string })?.code === 'ERR_MODULE_NOT_FOUND' || message.includes(`'${PACKAGE}'`)) return `${PACKAGE} not installed`;
    return `${PACKAGE} (dawn.node) failed to load: ${message.split('\n')[0]}`;
  }
}

async function searchAdapters(): Promise<{ best?: FoundAdapter; reason?: string }> {
  const dawn = await loadDawn();
  if (typeof dawn === 'string') return { reason: dawn };
  // The backend's shaders refer to GPUBufferUsage and friends as globals, as in a browser.
  Object.assign(globalThis, dawn.globals);
  const candidates: FoundAdapter[] = [];
  const backends: DawnBackend[] = process.platform === 'linux' ? ['default', 'opengles'] : ['default'];
  for (const backend of backends) {
    try {
      const candidate = await requestAdapter(dawn.create(dawnOptions(backend)), backend);
      if (candidate) candidates.push(candidate);
    } catch {
      // A backend Dawn cannot start here (no Vulkan loader, no EGL) simply offers no adapter.
    }
  }
  if (candidates.length === 0) return { reason: 'Dawn found no GPU adapter (no Vulkan, Metal, D3D12 or OpenGL ES driver)' };
  return { best: candidates.sort((a, b) => rank(a) - rank(b))[0] };
}

/** Looks for an adapter once per process; `forced` accepts a software one. */
export async function probeWebGpu(forced: boolean): Promise<WebGpuProbe> {
  found ??= searchAdapters();
  const { best, reason } = await found;
  if (!best) return { ok: false, reason: reason! };
  if (best.report.software && !forced) {
    return { ok: false, adapter: best.report, reason: `only a software adapter (${adapterName(best.report)}): slower than wasm, used only with --backend webgpu` };
  }
  registerOn(best);
  return { ok: true, adapter: best.report };
}

/** e.g. 'llvmpipe-llvm-15-0-6-256-bits- (OpenGL ES 3.2 Mesa 22.3.6), compatibility, software'. */
export function adapterName(report: AdapterReport): string {
  const name = [report.vendor, report.architecture, report.device].filter(Boolean).join(' ') || 'unnamed adapter';
  const description = report.description.replace(/^OpenGL version /, '');
  return `${name}${description ? ` (${description})` : ''}, ${report.featureLevel}${report.software ? ', software' : ''}`;
}

const mib = (bytes: number) => `${Math.round(bytes / 1024 ** 2)} MB`;

/** What `contrast doctor` prints about the adapter, one line each. */
export function adapterDetails(report: AdapterReport): string[] {
  const { limits } = report;
  const level = report.featureLevel === 'core' ? 'core' : 'compatibility (lower limits, fewer features)';
  return [
    `vendor ${report.vendor || '(none)'}, architecture ${report.architecture || '(none)'}, device ${report.device || '(none)'}`,
    `description: ${report.description || '(none)'}`,
    `${report.software ? 'software (CPU-emulated)' : 'hardware'} adapter, ${level} level, through Dawn's ${report.dawnBackend === 'opengles' ? 'OpenGL ES' : 'native (Vulkan, Metal or D3D12)'} backend`,
    `limits: maxBufferSize ${mib(limits.maxBufferSize)}, maxStorageBufferBindingSize ${mib(limits.maxStorageBufferBindingSize)}, ` +
      `maxStorageBuffersPerShaderStage ${limits.maxStorageBuffersPerShaderStage}`,
  ];
}

/** Every limit at the adapter's maximum: the defaults (4 storage buffers per stage in compatibility mode) are too low for TF.js's kernels. */
function adapterLimits(adapter: GPUAdapter): Record<string, number> {
  const limits: Record<string, number> = {};
  for (const key in adapter.limits) {
    const value = (adapter.limits as unknown as Record<string, unknown>)[key];
    if (typeof value === 'number') limits[key] = value;
  }
  return limits;
}

/**
 * WebGPUBackend refuses to start without navigator.gpu. Set only now, after the package has been
 * imported: seeing it at import time, the package would register its own factory for a browser.
 */
function exposeGpu(gpu: GPU): void {
  const holder = (globalThis as { navigator?: object }).navigator;
  if (holder) Object.defineProperty(holder, 'gpu', { value: gpu, configurable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
}

function registerOn(candidate: FoundAdapter): void {
  if (registeredOn) return;
  registeredOn = candidate;
  tf.registerBackend('webgpu', async () => {
    const { WebGPUBackend } = await import('@tensorflow/tfjs-backend-webgpu');
    const device = await candidate.adapter.requestDevice({ requiredLimits: adapterLimits(candidate.adapter) });
    exposeGpu(candidate.gpu);
    device.addEventListener('uncapturederror', (event) => {
      deviceError ??= (event as GPUUncapturedErrorEvent).error.message;
    });
    void device.lost.then((lost) => {
      deviceLost = `the GPU device was lost: ${lost.message}`;
    });
    return guardReads(new WebGPUBackend(device, candidate.adapter.info));
  }, REGISTRY_PRIORITY);
}

/**
 * Dawn reports a failed allocation or an oversized binding as an event and carries on with
 * invalid buffers, so a step would return zeros. Every step ends in a read, which is where such
 * an error becomes a UserError instead.
 */
function guardReads<B extends tf.KernelBackend>(backend: B): B {
  const read = backend.read.bind(backend);
  const lostError = () => new UserError(`${deviceLost}; resume the run once the GPU is back`, 'gpu_lost');
  backend.read = async (dataId) => {
    const values = await read(dataId).catch((error: unknown) => {
      throw deviceLost ? lostError() : error;
    });
    if (deviceLost) throw lostError();
    const error = deviceError;
    deviceError = undefined;
    if (error) throw new UserError(`the GPU refused the step (${error.split('\n')[0]}); use a smaller --batch, --size or --width`, 'out_of_memory');
    return values;
  };
  return backend;
}

/** The largest single buffer the active webgpu device accepts, or null before one is found. */
export function webGpuBufferLimitBytes(): number | null {
  if (!registeredOn) return null;
  const { maxBufferSize, maxStorageBufferBindingSize } = registeredOn.report.limits;
  return Math.min(maxBufferSize, maxStorageBufferBindingSize);
}

/**
 * GPU buffers of the active webgpu backend: in use by live tensors, and freed ones it keeps for
 * reuse (a cache that fills over the first few steps, then stays); null on other backends.
 */
export function gpuBufferCounts(): { inUse: number; pooled: number } | null {
  if (tf.getBackend() !== 'webgpu') return null;
  const { bufferManager } = tf.backend() as WebGPUBackend;
  return { inUse: bufferManager.getNumUsedBuffers(), pooled: bufferManager.getNumFreeBuffers() };
}
