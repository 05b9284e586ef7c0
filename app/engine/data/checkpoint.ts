/**
 * Checkpoints: a model's weights, the optimizer's slots and the loop position (step, epoch, RNG
 * state), in one file per save under checkpoints/run-<id>/. A save writes a temporary file, syncs
 * it and renames it into place before the database row points at it, so a kill at any instant
 * leaves either the previous checkpoint or the new one, never a torn file.
 */
import { diskFullError, isDiskFull } from '../../store/storage_errors.ts';
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Project } from '../../store/project.ts';
import { stableWeightName } from '../simclr/model.ts';
import { addCheckpoint, deleteCheckpointRow, listCheckpoints, type CheckpointRow } from '../../store/runs.ts';

const FORMAT = 'contrast-checkpoint-1';

/** Where the training loop stands; enough to continue exactly where it stopped. */
export interface LoopState {
  /** Optimizer steps taken so far. */
  step: number;
  /** Whole epochs finished so far. */
  epoch: number;
  /** Rng.getState() of the run's generator. */
  rng: number;
  /** Stage-specific values (best validation accuracy, epoch count chosen for a time budget, ...). */
  extra?: Record<string, unknown>;
}

export interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

interface TensorEntry {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
  offset: number;
  length: number;
}

interface Header {
  format: string;
  state: LoopState;
  weights: TensorEntry[];
  optimizer: TensorEntry[];
}

export interface LoadedCheckpoint {
  state: LoopState;
  /** Model weights by their layer-scoped names (stable across rebuilds of the same architecture). */
  weights: NamedTensor[];
  optimizer: NamedTensor[];
}

export function runCheckpointDir(project: Project, runId: number): string {
  return path.join(project.checkpointsDir, `run-${runId}`);
}

/** Every weight of a model, trainable or not (batch-norm moving statistics count), by stable name. */
export function modelWeights(model: tf.LayersModel): NamedTensor[] {
  return model.weights.map((variable) => ({ name: stableWeightName(variable), tensor: variable.read() }));
}

/** Sets a model's weights from a checkpoint, failing when the architecture does not match. */
export function restoreModelWeights(model: tf.LayersModel, saved: NamedTensor[]): void {
  const byName = new Map(saved.map((entry) => [entry.name, entry.tensor]));
  const values = model.weights.map((variable) => {
    const name = stableWeightName(variable);
    const tensor = byName.get(name);
    if (!tensor) throw new Error(`checkpoint has no weight ${name}: it was saved from another architecture`);
    if (!tf.util.arraysEqual(tensor.shape, variable.shape as number[])) {
      throw new Error(`checkpoint weight ${name} has shape [${tensor.shape}], the model expects [${variable.shape}]`);
    }
    return tensor;
  });
  model.setWeights(values);
}

async function pack(entries: NamedTensor[], start: number, chunks: Buffer[]): Promise<{ table: TensorEntry[]; end: number }> {
  const table: TensorEntry[] = [];
  let offset = start;
  for (const { name, tensor } of entries) {
    if (tensor.dtype !== 'float32' && tensor.dtype !== 'int32') throw new Error(`cannot checkpoint ${name} of dtype ${tensor.dtype}`);
    const data = (await tensor.data()) as Float32Array | Int32Array;
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    chunks.push(bytes);
    table.push({ name, shape: tensor.shape, dtype: tensor.dtype, offset, length: bytes.length });
    offset += bytes.length;
  }
  return { table, end: offset };
}

function writeAtomically(file: string, parts: Buffer[]): void {
  const temp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(temp, 'w');
  try {
    for (const part of parts) fs.writeSync(fd, part);
    fs.fsyncSync(fd);
  } catch (error) {
    fs.closeSync(fd);
    fs.rmSync(temp, { force: true }); // never leave a torn checkpoint behind
    throw error;
  }
  fs.closeSync(fd);
  fs.renameSync(temp, file);
  const dir = fs.openSync(path.dirname(file), 'r');
  try {
    fs.fsyncSync(dir); // make the rename itself durable before the database points at the file
  } finally {
    fs.closeSync(dir);
  }
}

export interface SaveRequest {
  runId: number;
  weights: NamedTensor[];
  optimizer: NamedTensor[];
  state: LoopState;
  /** The run's best model so far (finetune keeps its best validation epoch). */
  isBest?: boolean;
}

/**
 * Saves a checkpoint and records it, then deletes the run's older checkpoints except the best,
 * so a run keeps at most two files.
 */
export async function saveCheckpoint(project: Project, request: SaveRequest): Promise<CheckpointRow> {
  const dir = runCheckpointDir(project, request.runId);
  fs.mkdirSync(dir, { recursive: true });
  const data: Buffer[] = [];
  const weights = await pack(request.weights, 0, data);
  const optimizer = await pack(request.optimizer, weights.end, data);
  const header: Header = { format: FORMAT, state: request.state, weights: weights.table, optimizer: optimizer.table };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(json.length, 0);
  const fileName = `step-${String(request.state.step).padStart(8, '0')}.ckpt`;
  const file = path.join(dir, fileName);
  let id: number;
  try {
    writeAtomically(file, [length, json, ...data]);
    id = addCheckpoint(project.db, {
      runId: request.runId,
      epoch: request.state.epoch,
      step: request.state.step,
      path: path.relative(project.dir, file),
      isBest: request.isBest,
    });
  } catch (error) {
    if (!isDiskFull(error)) throw error;
    fs.rmSync(file, { force: true }); // written, but no row points at it
    throw diskFullError(project.dir, `the checkpoint at step ${request.state.step} was not written, the run keeps its last one`, 'resume the run');
  }
  pruneCheckpoints(project, request.runId, id);
  return listCheckpoints(project.db, request.runId).find((row) => row.id === id)!;
}

/** Keeps the newest and the best checkpoint; removes other rows and files no row points at. */
function pruneCheckpoints(project: Project, runId: number, newestId: number): void {
  const rows = listCheckpoints(project.db, runId);
  const keep = rows.filter((row) => row.id === newestId || row.isBest);
  for (const row of rows) if (!keep.includes(row)) deleteCheckpointRow(project.db, row.id);
  const wanted = new Set(keep.map((row) => path.resolve(project.dir, row.path)));
  const dir = runCheckpointDir(project, runId);
  for (const name of fs.readdirSync(dir)) {
    const file = path.join(dir, name);
    if (!wanted.has(file)) fs.rmSync(file, { force: true });
  }
}

export function loadCheckpoint(project: Project, row: CheckpointRow): LoadedCheckpoint {
  const file = path.resolve(project.dir, row.path);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch {
    throw new Error(`checkpoint file ${row.path} of run ${row.runId} is missing`);
  }
  const headerLength = bytes.readUInt32LE(0);
  const header = JSON.parse(bytes.subarray(4, 4 + headerLength).toString('utf8')) as Header;
  if (header.format !== FORMAT) throw new Error(`${row.path} is not a checkpoint this version can read`);
  const dataStart = 4 + headerLength;
  const unpack = (table: TensorEntry[]) =>
    table.map((entry) => {
      // Copy into a fresh, aligned buffer: typed arrays cannot view an unaligned offset.
      const slice = new Uint8Array(bytes.subarray(dataStart + entry.offset, dataStart + entry.offset + entry.length));
      const values = entry.dtype === 'int32' ? new Int32Array(slice.buffer) : new Float32Array(slice.buffer);
      return { name: entry.name, tensor: tf.tensor(values, entry.shape, entry.dtype) };
    });
  return { state: header.state, weights: unpack(header.weights), optimizer: unpack(header.optimizer) };
}

export function disposeCheckpoint(checkpoint: LoadedCheckpoint): void {
  for (const { tensor } of [...checkpoint.weights, ...checkpoint.optimizer]) tensor.dispose();
}
