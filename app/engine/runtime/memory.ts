/**
 * A training run's memory, estimated before it starts so an impossible configuration is refused
 * with a clear message instead of crashing the process minutes later. Weights cost three copies
 * (values, gradients, momentum); every layer output is kept per image for the backward pass.
 */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../../contract/errors.ts';
import type { BackendName } from './backend.ts';
import { webGpuBufferLimitBytes } from './webgpu_backend.ts';

/** What a step needs: memory in all, and the largest single tensor (a GPU buffer on webgpu). */
export interface MemoryNeed {
  bytes: number;
  largestBufferBytes: number;
}

/**
 * Bytes held per float of layer output while a step runs: the output itself, what the fused batch
 * norms keep for their gradient (simclr/training_forward.ts), and the gradients flowing back, which
 * they free as the backward pass goes. tf.profile's peak on ResNet-18 pretraining steps (16 to 96
 * px, width 0.25 to 1) is 8–15 bytes (28 before the fused batch norms); 15 covers the largest, and
 * test/unit/runs_memory.test.ts checks the estimate stays between the peak and twice it.
 */
const BYTES_PER_ACTIVATION = 15;
/** wasm32 addresses at most 4 GiB, whatever the machine has. */
const WASM_LIMIT = 4 * 1024 ** 3;
/** Leave room for the OS, the app and the pixel cache's page cache. */
const SHARE_OF_RAM = 0.6;

function elements(shape: (number | null)[]): number {
  return shape.slice(1).reduce<number>((product, d) => product * (d ?? 1), 1);
}

function layerOutputSizes(model: tf.LayersModel): number[] {
  return model.layers.flatMap((layer) => {
    const shape = layer.outputShape;
    const shapes = Array.isArray(shape[0]) ? (shape as (number | null)[][]) : [shape as (number | null)[]];
    return shapes.map(elements);
  });
}

/** Floats of layer output one image produces in a forward pass. */
export function activationsPerImage(model: tf.LayersModel): number {
  return layerOutputSizes(model).reduce((a, b) => a + b, 0);
}

export function parameterCount(model: tf.LayersModel): number {
  return model.weights.reduce((sum, w) => sum + (w.shape as number[]).reduce((a, b) => a * b, 1), 0);
}

/** Bytes a training step needs with `imagesPerStep` images through `trained` and, forward only, `frozen`. */
export function estimateTrainingBytes(trained: tf.LayersModel, imagesPerStep: number, frozen?: tf.LayersModel): number {
  const weights = parameterCount(trained) * 4 * 3 + (frozen ? parameterCount(frozen) * 4 : 0);
  const activations = imagesPerStep * activationsPerImage(trained) * BYTES_PER_ACTIVATION;
  // A frozen teacher's outputs are released layer by layer; only the largest few live at once.
  const teacher = frozen ? imagesPerStep * activationsPerImage(frozen) * 4 * 0.25 : 0;
  return weights + activations + teacher;
}

/**
 * Estimate and largest tensor of a step. TF.js's webgpu kernels (implicit-GEMM convolutions, no
 * im2col) allocate nothing larger than a layer's output for the whole batch, or its gradient.
 */
export function estimateTrainingMemory(trained: tf.LayersModel, imagesPerStep: number, frozen?: tf.LayersModel): MemoryNeed {
  const largest = Math.max(...layerOutputSizes(trained), ...(frozen ? layerOutputSizes(frozen) : []));
  return { bytes: estimateTrainingBytes(trained, imagesPerStep, frozen), largestBufferBytes: imagesPerStep * largest * 4 };
}

/**
 * WebGPU does not say how much memory a GPU has, so webgpu is held to the RAM share too (what
 * integrated GPUs and the software adapter share); a discrete GPU that runs out is caught when the
 * step's result is read (webgpu_backend.ts).
 */
export function memoryLimitBytes(backend: BackendName): number {
  const ram = os.totalmem() * SHARE_OF_RAM;
  return backend === 'wasm' ? Math.min(ram, WASM_LIMIT) : ram;
}

const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GB`;
const mib = (bytes: number) => `${Math.round(bytes / 1024 ** 2)} MB`;

/** The largest buffer the backend can bind to a kernel: the adapter's limit on webgpu, none elsewhere. */
export function bufferLimitBytes(backend: BackendName): number {
  return backend === 'webgpu' ? webGpuBufferLimitBytes() ?? Infinity : Infinity;
}

export function fitsMemory(need: MemoryNeed, backend: BackendName): boolean {
  return need.bytes <= memoryLimitBytes(backend) && need.largestBufferBytes <= bufferLimitBytes(backend);
}

function remedies(fitting: number): string {
  return [...(fitting >= 2 ? [`--batch ${fitting} or less`] : []), 'a smaller --size, --width or --arch'].join(', or ');
}

/** Refuses a configuration whose estimate exceeds what the backend can use. */
export function checkMemory(need: MemoryNeed, backend: BackendName, batchSize: number): void {
  const limit = memoryLimitBytes(backend);
  if (need.bytes > limit) {
    throw new UserError(
      `this model needs about ${gib(need.bytes)} to train at batch ${batchSize}, more than the ${gib(limit)} available to the ${backend} backend; ` +
        `use ${remedies(Math.floor((batchSize * limit) / need.bytes))}`,
      'out_of_memory',
    );
  }
  const bufferLimit = bufferLimitBytes(backend);
  if (need.largestBufferBytes > bufferLimit) {
    throw new UserError(
      `at batch ${batchSize} one layer's output is ${mib(need.largestBufferBytes)}, more than the ${mib(bufferLimit)} the GPU adapter binds as one buffer ` +
        `(its maxStorageBufferBindingSize); use ${remedies(Math.floor((batchSize * bufferLimit) / need.largestBufferBytes))}`,
      'out_of_memory',
    );
  }
}
