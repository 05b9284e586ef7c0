/**
 * Worker threads that run our SIMD kernels (wasm_simd.ts) on the wasm backend's shared memory,
 * so they use every core like XNNPACK does. Only possible with TF.js's threaded build, whose
 * memory is a SharedArrayBuffer (wasm_threads.ts).
 *
 * A call hands each thread its own argument list (its share of the batch or of the channels)
 * through a shared control block and wakes the workers with Atomics; the calling thread does
 * the first share itself and then waits for the rest. Kernels are compiled on the main thread
 * and sent to the workers as WebAssembly.Module objects; a worker picks up modules it has not
 * seen synchronously (receiveMessageOnPort) when a call needs them.
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';

/** Control block: [generation, finished workers, failed flag, unused], then one slot per worker. */
const [GENERATION, FINISHED, FAILED] = [0, 1, 2];
const HEADER = 4;
/** Words per worker slot: the kernel to run, its argument count, its arguments. */
const SLOT = 64;
/** A kernel that never returns would otherwise hang training silently. */
const CALL_TIMEOUT_MS = 120_000;

// Runs inside each worker (CommonJS, eval'd); kept free of TypeScript syntax.
const WORKER_SOURCE = `
const { workerData, receiveMessageOnPort } = require('node:worker_threads');
const { memory, control, port, slot } = workerData;
const ctrl = new Int32Array(control);
const kernels = [];
let generation = 0;
for (;;) {
  Atomics.wait(ctrl, ${GENERATION}, generation);
  generation = Atomics.load(ctrl, ${GENERATION});
  const base = ${HEADER} + slot * ${SLOT};
  const index = ctrl[base];
  try {
    if (index >= 0) {
      while (kernels[index] === undefined) {
        const received = receiveMessageOnPort(port);
        if (!received) throw new Error('kernel ' + index + ' was never sent');
        const { module, exportName, index: at } = received.message;
        kernels[at] = new WebAssembly.Instance(module, { env: { memory } }).exports[exportName];
      }
      kernels[index](...ctrl.subarray(base + 2, base + 2 + ctrl[base + 1]));
    }
  } catch (error) {
    Atomics.store(ctrl, ${FAILED}, 1);
  }
  Atomics.add(ctrl, ${FINISHED}, 1);
  Atomics.notify(ctrl, ${FINISHED});
}
`;

export class WasmPool {
  private readonly control = new Int32Array(new SharedArrayBuffer(4 * (HEADER + SLOT * 64)));
  private readonly ports: MessagePort[] = [];
  private kernelCount = 0;

  constructor(memory: WebAssembly.Memory, readonly workers: number) {
    for (let slot = 0; slot < workers; slot++) {
      const { port1, port2 } = new MessageChannel();
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        // Plain Node is enough for the worker; no loaders from the parent's command line.
        execArgv: [],
        workerData: { memory, control: this.control.buffer, port: port2, slot },
        transferList: [port2],
      });
      // Idle workers block in Atomics.wait; they must not keep the process alive.
      worker.unref();
      this.ports.push(port1);
    }
  }

  /** Makes `exportName` of `module` callable on every worker; returns its index for run(). */
  register(module: WebAssembly.Module, exportName: string): number {
    const index = this.kernelCount++;
    for (const port of this.ports) port.postMessage({ module, exportName, index });
    return index;
  }

  /**
   * Runs shares[i + 1] on worker i (missing shares leave a worker idle) and shares[0] through
   * `local` on this thread, returning when all are done.
   */
  run(index: number, local: (...args: number[]) => void, shares: number[][]): void {
    const ctrl = this.control;
    for (let slot = 0; slot < this.workers; slot++) {
      const args = shares[slot + 1];
      const base = HEADER + slot * SLOT;
      ctrl[base] = args ? index : -1;
      ctrl[base + 1] = args?.length ?? 0;
      if (args) ctrl.set(args, base + 2);
    }
    Atomics.store(ctrl, FINISHED, 0);
    Atomics.store(ctrl, FAILED, 0);
    Atomics.add(ctrl, GENERATION, 1);
    Atomics.notify(ctrl, GENERATION);
    local(...shares[0]);
    const deadline = Date.now() + CALL_TIMEOUT_MS;
    for (let finished = Atomics.load(ctrl, FINISHED); finished < this.workers; finished = Atomics.load(ctrl, FINISHED)) {
      if (Date.now() > deadline) throw new Error('a wasm kernel worker did not finish');
      Atomics.wait(ctrl, FINISHED, finished, 1000);
    }
    if (Atomics.load(ctrl, FAILED)) throw new Error('a wasm kernel failed on a worker thread');
  }
}
