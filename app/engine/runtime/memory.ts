/**
 * A training run's memory, estimated before it starts so an impossible configuration is refused
 * with a clear message instead of crashing the process minutes later. Weights cost three copies
 * (values, gradients, momentum); every layer output is kept per image for the backward pass.
 */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../../contract/errors.ts';
import type { BackendName } from './backend.ts';

/**
 * Bytes held per float of layer output while a step runs: the output itself, the intermediate
 * values TF.js keeps for its gradient, and the gradients flowing back. tf.profile's peak on
 * ResNet-18 pretraining steps (16 to 96 px, width 0.25 to 0.5) is 25 bytes; rounded up, and
 * checked in test/unit/runs_memory.test.ts.
 */
const BYTES_PER_ACTIVATION = 28;
/** wasm32 addresses at most 4 GiB, whatever the machine has. */
const WASM_LIMIT = 4 * 1024 ** 3;
/** Leave room for the OS, the app and the pixel cache's page cache. */
const SHARE_OF_RAM = 0.6;

function elements(shape: (number | null)[]): number {
  return shape.slice(1).reduce<number>((product, d) => product * (d ?? 1), 1);
}

/** Floats of layer output one image produces in a forward pass. */
export function activationsPerImage(model: tf.LayersModel): number {
  let total = 0;
  for (const layer of model.layers) {
    const shape = layer.outputShape;
    const shapes = Array.isArray(shape[0]) ? (shape as (number | null)[][]) : [shape as (number | null)[]];
    for (const s of shapes) total += elements(s);
  }
  return total;
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

export function memoryLimitBytes(backend: BackendName): number {
  const ram = os.totalmem() * SHARE_OF_RAM;
  return backend === 'wasm' ? Math.min(ram, WASM_LIMIT) : ram;
}

const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GB`;

/** Refuses a configuration whose estimate exceeds what the backend can use. */
export function checkMemory(needed: number, backend: BackendName, batchSize: number): void {
  const limit = memoryLimitBytes(backend);
  if (needed <= limit) return;
  const fitting = Math.floor((batchSize * limit) / needed);
  const remedies = [...(fitting >= 2 ? [`--batch ${fitting} or less`] : []), 'a smaller --size, --width or --arch'];
  throw new UserError(
    `this model needs about ${gib(needed)} to train at batch ${batchSize}, more than the ${gib(limit)} available to the ${backend} backend; ` +
      `use ${remedies.join(', or ')}`,
    'out_of_memory',
  );
}
