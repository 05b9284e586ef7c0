/// <reference types="@webgpu/types" />
/**
 * The `webgpu` backend: @tensorflow/tfjs-backend-webgpu on a GPU reached through Dawn's Node
 * bindings (the optional `webgpu` package, prebuilt dawn.node for Windows, macOS and Linux).
 * TF.js's own factory for this backend needs a browser's navigator.gpu, so we find the adapter
 * ourselves (Vulkan/Metal/D3D12 first, then OpenGL ES, in core or compatibility mode), describe
 * it for `contrast doctor`, and register a factory that builds the backend on that adapter.
 *
 * The adapters are listed in a short-lived child process: while enumerating, Dawn and the
 * drivers print warnings on stderr, which would otherwise land in the output of every command
 * that merely considers this backend. Dawn is loaded into this process only to train on it.
 *
 * A software adapter (llvmpipe, SwiftShader) trains slower than our wasm kernels, so it is
 * only used when asked for by name; `initBackend('auto')` skips it.
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { UserError } from '../../contract/errors.ts';

const execFileAsync = promisify(execFile);

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

/** What the survey prints for each Dawn backend that offers an adapter. */
interface SurveyedAdapter {
  dawnBackend: DawnBackend;
  featureLevel: FeatureLevel;
  info: { vendor: string; architecture: string; description: string; device: string; isFallbackAdapter?: boolean };
  limits: AdapterLimits;
}

const PACKAGE = 'webgpu';
const SOFTWARE_RENDERERS = /llvmpipe|lavapipe|softpipe|swiftshader|basic render driver/i;
/** Below every backend we ship, so TF.js never initialises this one on its own. */
const REGISTRY_PRIORITY = -1;
/** Dawn starts in well under a second; a driver that hangs must not hold up every command. */
const SURVEY_TIMEOUT_MS = 30_000;
const DAWN_BACKENDS: DawnBackend[] = process.platform === 'linux' ? ['default', 'opengles'] : ['default'];

/**
 * Run by `node --input-type=module -e` with the webgpu package's path and the Dawn backends to try;
 * prints one JSON line. Core level first: compatibility mode (OpenGL ES, D3D11) lacks features and
 * has lower limits.
 */
const SURVEY_SCRIPT = `
const [entry, ...backends] = process.argv.slice(1);
const { create } = await import(entry);
const found = [];
for (const dawnBackend of backends) {
  try {
    const gpu = create(dawnBackend === 'opengles' ? ['backend=opengles'] : []);
    for (const featureLevel of ['core', 'compatibility']) {
      const adapter = await gpu.requestAdapter({ featureLevel, powerPreference: 'high-performance' });
      if (!adapter) continue;
      const { vendor, architecture, description, device, isFallbackAdapter } = adapter.info;
      const { maxBufferSize, maxStorageBufferBindingSize, maxStorageBuffersPerShaderStage } = adapter.limits;
      found.push({ dawnBackend, featureLevel, info: { vendor, architecture, description, device, isFallbackAdapter },
        limits: { maxBufferSize, maxStorageBufferBindingSize, maxStorageBuffersPerShaderStage } });
      break;
    }
  } catch {}
}
process.stdout.write(JSON.stringify(found) + '\\n');
process.exit(0);
`;

let surveyed: Promise<{ best?: AdapterReport; reason?: string }> | undefined;
let registeredOn: AdapterReport | undefined;
/** The first device error since the last read (out of memory, a buffer over a limit): that read's values are garbage. */
let deviceError: string | undefined;
/** Set once the device is gone (driver reset, GPU removed): every read after it fails. */
let deviceLost: string | undefined;

/** Dawn's OpenGL ES backend needs an EGL display; surfaceless works without a window system. */
function eglEnvironment(): Record<string, string> {
  return process.env.EGL_PLATFORM ? {} : { EGL_PLATFORM: 'surfaceless' };
}

function isSoftware(info: SurveyedAdapter['info']): boolean {
  const text = `${info.vendor} ${info.architecture} ${info.description} ${info.device}`;
  return Boolean(info.isFallbackAdapter) || SOFTWARE_RENDERERS.test(text);
}

function describeAdapter({ dawnBackend, featureLevel, info, limits }: SurveyedAdapter): AdapterReport {
  const { vendor, architecture, description, device } = info;
  return { vendor, architecture, description, device, featureLevel, software: isSoftware(info), dawnBackend, limits };
}

/** Hardware before software, then core before compatibility. */
function rank(report: AdapterReport): number {
  return (report.software ? 2 : 0) + (report.featureLevel === 'core' ? 0 : 1);
}

function resolveDawn(): string | null {
  try {
    return pathToFileURL(createRequire(import.meta.url).resolve(PACKAGE)).href;
  } catch {
    return null;
  }
}

async function runSurvey(entry: string): Promise<SurveyedAdapter[] | string> {
  try {
    const { stdout } = await execFileAsync(process.execPath, ['--input-type=module', '-e', SURVEY_SCRIPT, entry, ...DAWN_BACKENDS], {
      // Under Electron, execPath is Electron itself; this makes it plain Node, as for the job process.
      env: { ...process.env, ...eglEnvironment(), ELECTRON_RUN_AS_NODE: '1' },
      timeout: SURVEY_TIMEOUT_MS,
      maxBuffer: 1 << 20,
    });
    return JSON.parse(stdout.trim().split('\n').at(-1)!) as SurveyedAdapter[];
  } catch (error) {
    const { stderr, killed, message } = error as { stderr?: string; killed?: boolean; message: string };
    if (killed) return `the adapter search timed out after ${SURVEY_TIMEOUT_MS / 1000} s (a GPU driver hangs)`;
    return `${PACKAGE} (dawn.node) failed to load: ${(stderr?.trim().split('\n').at(-1) || message).split('\n')[0]}`;
  }
}

async function searchAdapters(): Promise<{ best?: AdapterReport; reason?: string }> {
  const entry = resolveDawn();
  if (!entry) return { reason: `${PACKAGE} not installed` };
  const adapters = await runSurvey(entry);
  if (typeof adapters === 'string') return { reason: adapters };
  if (adapters.length === 0) return { reason: 'Dawn found no GPU adapter (no Vulkan, Metal, D3D12 or OpenGL ES driver)' };
  return { best: adapters.map(describeAdapter).sort((a, b) => rank(a) - rank(b))[0] };
}

/** Looks for an adapter once per process; `forced` accepts a software one. */
export async function probeWebGpu(forced: boolean): Promise<WebGpuProbe> {
  surveyed ??= searchAdapters();
  const { best, reason } = await surveyed;
  if (!best) return { ok: false, reason: reason! };
  if (best.software && !forced) {
    return { ok: false, adapter: best, reason: `only a software adapter (${adapterName(best)}): slower than wasm, used only with --backend webgpu` };
  }
  registerOn(best);
  return { ok: true, adapter: best };
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

/** Opens, in this process, the adapter the survey found. */
async function openAdapter(report: AdapterReport): Promise<{ gpu: GPU; adapter: GPUAdapter & { info: GPUAdapterInfo } }> {
  const dawn = (await import(PACKAGE)) as DawnModule;
  // The backend's shaders refer to GPUBufferUsage and friends as globals, as in a browser.
  Object.assign(globalThis, dawn.globals);
  Object.assign(process.env, eglEnvironment());
  const gpu = dawn.create(report.dawnBackend === 'opengles' ? ['backend=opengles'] : []);
  const adapter = await gpu.requestAdapter({ featureLevel: report.featureLevel, powerPreference: 'high-performance' } as GPURequestAdapterOptions);
  if (!adapter) throw new Error(`Dawn no longer offers the adapter it found (${adapterName(report)})`);
  return { gpu, adapter: adapter as GPUAdapter & { info: GPUAdapterInfo } };
}

function registerOn(report: AdapterReport): void {
  if (registeredOn) return;
  registeredOn = report;
  tf.registerBackend('webgpu', async () => {
    const { WebGPUBackend } = await import('@tensorflow/tfjs-backend-webgpu');
    const { gpu, adapter } = await openAdapter(report);
    const device = await adapter.requestDevice({ requiredLimits: adapterLimits(adapter) });
    exposeGpu(gpu);
    device.addEventListener('uncapturederror', (event) => {
      deviceError ??= (event as GPUUncapturedErrorEvent).error.message;
    });
    void device.lost.then((lost) => {
      deviceLost = `the GPU device was lost: ${lost.message}`;
    });
    return guardReads(new WebGPUBackend(device, adapter.info));
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
  const { maxBufferSize, maxStorageBufferBindingSize } = registeredOn.limits;
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
