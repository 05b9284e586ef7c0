/**
 * Runs the TF.js wasm backend with XNNPACK on several threads under Node.
 *
 * TF.js ships a threaded SIMD build but never uses it in Node (tfjs issue #3830): its loader
 * hands Emscripten blob: URLs, which Node's worker_threads cannot start, and the C++ side
 * halves the reported core count (assuming hyper-threading), which leaves one thread on a
 * 2-core machine. We start the same shipped build ourselves with a worker script on disk
 * and report the core count we want, then register it as the 'wasm' backend so every wasm
 * kernel (and ours in wasm_kernels.ts) runs on it unchanged. What we need from it is the
 * shared memory, on which our own kernels run on several threads (wasm_pool.ts).
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { BackendWasm, setThreadsCount } from '@tensorflow/tfjs-backend-wasm';

const require = createRequire(import.meta.url);

type WasmModule = ConstructorParameters<typeof BackendWasm>[0];
type ModuleFactory = (config: Record<string, unknown>) => Promise<WasmModule & Record<string, unknown>>;

interface EmscriptenThreads {
  PThread: { runningWorkers: Array<{ unref(): void }> };
}

interface EmscriptenImports {
  env: Record<string, unknown>;
}

function wasmOutFolder(): string {
  return join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')), '..', 'wasm-out');
}

/**
 * Emscripten starts each pthread from a script path. The package only carries the script
 * as a string (meant for a blob: URL), so it is written once to the temp folder under a
 * name derived from its content; concurrent processes write identical files.
 */
function workerScriptPath(): string {
  const { wasmWorkerContents } = require(join(wasmOutFolder(), 'tfjs-backend-wasm-threaded-simd.worker.js')) as { wasmWorkerContents: string };
  // The string is stored with its newlines unescaped inside string literals, as TF.js fixes before use.
  const script = wasmWorkerContents.replace(/\n/g, '\\n');
  const hash = createHash('sha256').update(script).digest('hex').slice(0, 16);
  const path = join(tmpdir(), `contrast-studio-wasm-worker-${hash}.cjs`);
  if (!existsSync(path)) {
    const partial = `${path}.${process.pid}.tmp`;
    writeFileSync(partial, script);
    renameSync(partial, path);
  }
  return path;
}

async function instantiateThreaded(threads: number): Promise<WasmModule> {
  const folder = wasmOutFolder();
  const gluePath = join(folder, 'tfjs-backend-wasm-threaded-simd.js');
  const factory = require(gluePath) as ModuleFactory;
  const binary = readFileSync(join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')), 'tfjs-backend-wasm-threaded-simd.wasm'));
  const workerPath = workerScriptPath();
  const wasm = await factory({
    mainScriptUrlOrBlob: gluePath,
    locateFile: (path: string) => (path.endsWith('.worker.js') ? workerPath : join(folder, path)),
    instantiateWasm: (imports: EmscriptenImports, receive: (instance: WebAssembly.Instance, module: WebAssembly.Module) => void) => {
      // The C++ side uses half the logical cores; report twice what we want.
      imports.env.emscripten_num_logical_cores = () => 2 * threads;
      WebAssembly.instantiate(binary, imports as unknown as WebAssembly.Imports)
        .then(({ instance, module }) => receive(instance, module));
      return {};
    },
  });
  // The same C entry points TF.js binds after its own instantiation.
  const cwrap = wasm.cwrap as (name: string, ret: string | null, args: string[]) => unknown;
  (wasm as unknown as { tfjs: Record<string, unknown> }).tfjs = {
    init: cwrap('init', null, []),
    initWithThreadsCount: cwrap('init_with_threads_count', null, ['number']),
    getThreadsCount: cwrap('get_threads_count', 'number', []),
    registerTensor: cwrap('register_tensor', null, ['number', 'number', 'number']),
    disposeData: cwrap('dispose_data', null, ['number']),
    dispose: cwrap('dispose', null, []),
  };
  return wasm;
}

/** True when this Node can run the threaded build at all. */
export function threadsAvailable(): boolean {
  return typeof SharedArrayBuffer === 'function' && typeof Atomics === 'object';
}

const XNNPACK_THREADS = 1;
let threadedFailure: string | null = null;
let kernelThreads = 1;

/** Threads our own SIMD kernels use (wasm_pool.ts): all requested when the threaded build runs. */
export function simdThreads(): number {
  return kernelThreads;
}

/** Why the threaded build could not start, if it was tried and failed. */
export function threadedWasmFailure(): string | null {
  return threadedFailure;
}

/**
 * Replaces the registered 'wasm' backend factory with one that starts the threaded build,
 * with `threads` threads for our kernels, falling back to the package's own single-threaded factory if that
 * fails. Takes effect when the wasm backend is next initialised.
 */
export function registerThreadedWasmBackend(threads: number): void {
  const singleThreaded = tf.findBackendFactory('wasm');
  if (!singleThreaded) throw new Error('@tensorflow/tfjs-backend-wasm must be imported first');
  tf.removeBackend('wasm');
  tf.registerBackend('wasm', async () => {
    try {
      // XNNPACK only runs the element-wise ops now, which are memory-bound: its spinning thread
      // pool cost more than it gained whenever other processes share the cores. Our kernels
      // (all convolutions) get the threads instead.
      setThreadsCount(XNNPACK_THREADS);
      const wasm = await instantiateThreaded(XNNPACK_THREADS);
      const backend = new BackendWasm(wasm);
      kernelThreads = threads;
      // The pool threads block between kernels; unreferenced, they no longer keep Node from exiting.
      for (const worker of (wasm as unknown as EmscriptenThreads).PThread.runningWorkers) worker.unref();
      return backend;
    } catch (error) {
      threadedFailure = String((error as Error)?.message ?? error).split('\n')[0];
      kernelThreads = 1;
      setThreadsCount(1);
      return singleThreaded();
    }
  }, 2);
}
