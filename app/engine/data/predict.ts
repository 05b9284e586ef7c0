/**
 * A trained classifier on images that need not belong to the project: files on disk (`contrast
 * predict`, folder prediction) and uploaded bytes (the studio's Try it). Pixels are prepared
 * exactly as for training (`pixelsFromBytes`), so a file predicts here as it would in the project.
 */
import fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import type { ScanProblem } from '../../media/scan.ts';
import { describeDecodeFailure, readImageFile, sniffFormat, DecodeError } from '../../media/decode.ts';
import type { Project } from '../../store/project.ts';
import type { ClassProbability } from '../../contract/domain.ts';
import type { BackendChoice } from '../../contract/train_options.ts';
import { initBackend } from '../runtime/backend.ts';
import { pixelsFromBytes } from './dataset.ts';
import { classifyImages } from '../simclr/model.ts';
import { loadTrainedClassifier } from '../stages/stage_common.ts';

export type { ClassProbability };

/** Writes a file through a temporary name, so a crash never leaves half a file under the real one. */
export function writeFileAtomically(file: string, contents: string | Buffer): void {
  const temp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(temp, contents);
  fs.renameSync(temp, file);
}

export interface Predictor {
  readonly runId: number;
  /** The classes in the order of every probability vector. */
  readonly classes: { id: number; name: string }[];
  readonly imageSize: number;
  /** Class probabilities of images given as model pixels (`pixelsFromBytes` at `imageSize`). */
  probabilities(pixels: Buffer[]): Promise<number[][]>;
  dispose(): void;
}

/** Loads a finished finetune or distill run's classifier for inference. */
export async function openPredictor(project: Project, runId: number, backend: BackendChoice = 'auto'): Promise<Predictor> {
  await initBackend(backend);
  const { model, classes, architecture } = loadTrainedClassifier(project, runId);
  const size = architecture.imageSize;
  return {
    runId,
    classes,
    imageSize: size,
    async probabilities(pixels) {
      const result = tf.tidy(() => {
        const bytes = new Uint8Array(Buffer.concat(pixels));
        const images = tf.div(tf.tensor4d(bytes, [pixels.length, size, size, 3], 'int32'), 255) as tf.Tensor4D;
        return tf.softmax(classifyImages(model, images).logits);
      });
      try {
        return (await result.array()) as number[][];
      } finally {
        result.dispose();
      }
    },
    dispose: () => model.dispose(),
  };
}

/** The `k` most likely classes, most likely first (ties keep class order). */
export function topClasses(probabilities: number[], classes: { id: number; name: string }[], k = 3): ClassProbability[] {
  return probabilities
    .map((probability, index) => ({ classId: classes[index].id, name: classes[index].name, probability, index }))
    .sort((a, b) => b.probability - a.probability || a.index - b.index)
    .slice(0, k)
    .map(({ index: _index, ...entry }) => entry);
}

/**
 * Model pixels of an image's bytes, or why they cannot be had: the content must be an image
 * whatever the name says, and decode whole within the media layer's limits.
 */
export async function imagePixels(bytes: Buffer, imageSize: number): Promise<{ pixels: Buffer } | { error: string }> {
  const format = sniffFormat(bytes);
  if (!format) return { error: 'not an image (unrecognised file content)' };
  try {
    return { pixels: await pixelsFromBytes(bytes, imageSize) };
  } catch (error) {
    return { error: await describeDecodeFailure(bytes, format, error) };
  }
}

export interface FilePrediction {
  path: string;
  top: ClassProbability[];
}

export interface PredictFilesOptions {
  /** Images per forward pass. */
  batchSize: number;
  /** Checked between batches: a cancelled prediction ends after the batch it is in. */
  signal?: AbortSignal;
  /** Each batch's predictions and unreadable files, in the order of `files`. */
  onBatch(predictions: FilePrediction[], problems: ScanProblem[]): void | Promise<void>;
}

/**
 * Files read and decoded ahead of the model, as a number of batches and at most this many bytes of
 * files (a single file is always allowed). Reading takes several trips through the event loop,
 * which the forward pass blocks while it runs, so files start well before their batch is due.
 */
const BATCHES_AHEAD = 4;
const MAX_BYTES_AHEAD = 256 * 2 ** 20;

/**
 * Predicts files (paths as the store keeps them, with their sizes from the scan) in batches. While
 * the model runs on one batch, the files of the next few are read and decoded (sharp works on its
 * own threads), since the two would otherwise wait for each other. A file that cannot be read or
 * decoded is reported with its reason and never stops the others.
 */
export async function predictFiles(predictor: Predictor, files: { path: string; size: number }[], options: PredictFilesOptions): Promise<{ cancelled: boolean }> {
  const ahead: { path: string; size: number; outcome: Promise<{ pixels: Buffer } | { error: string }> }[] = [];
  let next = 0;
  let bytesAhead = 0;
  const readAhead = () => {
    while (next < files.length && ahead.length < BATCHES_AHEAD * options.batchSize && (ahead.length === 0 || bytesAhead + files[next].size <= MAX_BYTES_AHEAD)) {
      const file = files[next++];
      ahead.push({ ...file, outcome: decodeFile(file.path, predictor.imageSize) });
      bytesAhead += file.size;
    }
  };
  // A cancel does not wait for reads still running (a file on a hung network share may never answer).
  const cancelled = new Promise<null>((resolve) => options.signal?.addEventListener('abort', () => resolve(null), { once: true }));
  for (readAhead(); ahead.length > 0; readAhead()) {
    const batch = ahead.splice(0, options.batchSize);
    bytesAhead -= batch.reduce((sum, file) => sum + file.size, 0);
    readAhead(); // before this batch's forward pass, which the next files' reads and decodes overlap
    const outcomes = await Promise.race([Promise.all(batch.map(async ({ path, outcome }) => ({ path, ...(await outcome) }))), cancelled]);
    if (!outcomes || options.signal?.aborted) return { cancelled: true };
    const decoded = outcomes.flatMap((o) => ('pixels' in o ? [o] : []));
    const problems = outcomes.flatMap((o) => ('error' in o ? [{ path: o.path, reason: o.error }] : []));
    const rows = decoded.length ? await predictor.probabilities(decoded.map((d) => d.pixels)) : [];
    await options.onBatch(decoded.map((d, i) => ({ path: d.path, top: topClasses(rows[i], predictor.classes) })), problems);
  }
  return { cancelled: false };
}

/** Read with import's checks (a regular file, within the size limit, starting like an image), then decoded. */
async function decodeFile(file: string, imageSize: number): Promise<{ pixels: Buffer } | { error: string }> {
  try {
    return await imagePixels(await readImageFile(file), imageSize);
  } catch (error) {
    if (error instanceof DecodeError) return { error: error.message };
    return { error: String((error as Error).message ?? error) };
  }
}
