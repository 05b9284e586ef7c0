/**
 * Forward passes over cached images without training: validation accuracy during fine-tuning,
 * and the predictions and embeddings a finished run writes for every image of the project.
 */
import * as tf from '@tensorflow/tfjs';
import { clearRunOutputs, writeEmbeddings, writePredictions, type Prediction } from '../../store/runs.ts';
import type { LabelledRows, PixelCache } from './dataset.ts';
import { classifyImages, runPretrainModel } from '../simclr/model.ts';
import type { StageContext } from '../stages/stage_context.ts';

export const INFERENCE_BATCH = 256;

/**
 * What predicting one image costs beside one training example: two forward passes (the image and
 * its mirror image, classifyImages), each about a quarter of a training step (no backward pass, no
 * optimiser). Measured in the label study: 8,000 images predicted and stored in 36 s after training
 * steps of 1.14 s per 128 examples, a ratio of 0.50.
 */
export const PREDICTION_COST_PER_TRAINING_EXAMPLE = 1 / 2;

/**
 * Images per forward pass at this size: 256 at 32 px, and the same number of pixels above it
 * (5 at 224 px), since a pass keeps every layer's output until it ends.
 */
export function inferenceBatch(imageSize: number): number {
  return Math.max(1, Math.floor(INFERENCE_BATCH * (32 / Math.max(32, imageSize)) ** 2));
}

async function forEachBatch(rows: number[], imageSize: number, work: (batch: number[], done: number) => Promise<void>): Promise<void> {
  const size = inferenceBatch(imageSize);
  for (let start = 0; start < rows.length; start += size) {
    const batch = rows.slice(start, start + size);
    await work(batch, start + batch.length);
  }
}

/** Batches averaged to set batch-norm statistics: enough for a stable mean, cheap beside an epoch. */
const CALIBRATION_BATCHES = 16;

type BatchNormLayer = tf.layers.Layer & { momentum: number };

/**
 * Sets every batch-norm layer's moving mean and variance to their average over forward passes in
 * training mode on the given rows (a momentum of 1 - 1/k on the k-th batch makes the layers' own
 * update a running mean). With momentum 0.9 alone, a run of a few dozen steps leaves the averages
 * near their starting values and inference-mode predictions near chance.
 */
export function recalibrateBatchNorm(model: tf.LayersModel, cache: PixelCache, rows: number[], batchSize: number): void {
  const layers = model.layers.filter((layer) => layer.getClassName() === 'BatchNormalization') as BatchNormLayer[];
  const momenta = layers.map((layer) => layer.momentum);
  const size = Math.max(2, batchSize);
  const count = Math.min(CALIBRATION_BATCHES, Math.ceil(rows.length / size));
  const total = Math.min(rows.length, count * size);
  try {
    for (let k = 0; k < count; k++) {
      // Rows are in import order, often one class after another: each batch takes every
      // count-th of `total` picks spread over all rows, so every batch sees the whole set.
      const positions: number[] = [];
      for (let j = k; j < total; j += count) positions.push(rows[Math.floor((j * rows.length) / total)]);
      if (positions.length < 2) break; // one image has no variance to measure
      for (const layer of layers) layer.momentum = 1 - 1 / (k + 1);
      tf.tidy(() => {
        model.apply(cache.batch(positions), { training: true });
      });
    }
  } finally {
    layers.forEach((layer, i) => (layer.momentum = momenta[i]));
  }
}

/** Top-1 accuracy and mean cross-entropy of a classifier on labelled rows. */
export async function scoreClassifier(model: tf.LayersModel, cache: PixelCache, set: LabelledRows): Promise<{ accuracy: number; loss: number }> {
  let correct = 0;
  let lossSum = 0;
  await forEachBatch(
    set.rows.map((_, i) => i),
    cache.imageSize,
    async (positions) => {
      const [hits, losses] = tf.tidy(() => {
        const images = cache.batch(positions.map((p) => set.rows[p]));
        const { logits } = classifyImages(model, images);
        const labels = tf.tensor1d(positions.map((p) => set.labels[p]), 'int32');
        const logProbabilities = tf.logSoftmax(logits);
        const picked = tf.sum(tf.mul(logProbabilities, tf.oneHot(labels, logits.shape[1])), 1);
        return [tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'float32')), tf.neg(tf.sum(picked))];
      });
      correct += (await hits.data())[0];
      lossSum += (await losses.data())[0];
      tf.dispose([hits, losses]);
    },
  );
  const n = Math.max(1, set.rows.length);
  return { accuracy: correct / n, loss: lossSum / n };
}

function allRows(cache: PixelCache): number[] {
  return cache.imageIds.map((_, row) => row);
}

/**
 * Predicts every cached image and stores class, confidence, probabilities (in `classIds` order)
 * and the penultimate embedding under `runId` (the model's run; a pipeline writes them for the
 * model it chose), replacing what an earlier attempt wrote.
 */
export async function writeClassifierOutputs(
  ctx: StageContext,
  model: tf.LayersModel,
  cache: PixelCache,
  classIds: number[],
  runId = ctx.run.id,
): Promise<void> {
  clearRunOutputs(ctx.project.db, runId);
  await forEachBatch(allRows(cache), cache.imageSize, async (rows, done) => {
    ctx.signal.throwIfAborted();
    const [probabilities, embedding] = tf.tidy(() => {
      const outputs = classifyImages(model, cache.batch(rows));
      return [tf.softmax(outputs.logits), outputs.embedding];
    });
    const probabilityRows = (await probabilities.array()) as number[][];
    const embeddingRows = (await embedding.array()) as number[][];
    tf.dispose([probabilities, embedding]);
    const predictions: Prediction[] = rows.map((row, i) => {
      const p = probabilityRows[i];
      const best = p.indexOf(Math.max(...p));
      return { imageId: cache.imageIds[row], classId: classIds[best], confidence: p[best], probabilities: Float32Array.from(p) };
    });
    writePredictions(ctx.project.db, runId, predictions);
    writeEmbeddings(
      ctx.project.db,
      runId,
      rows.map((row, i) => ({ imageId: cache.imageIds[row], vector: Float32Array.from(embeddingRows[i]) })),
    );
    ctx.progress({ phase: 'evaluating', step: done, totalSteps: cache.count, epoch: 0, epochs: 0, metrics: {}, etaSeconds: null });
  });
}

/** Stores the encoder features of every cached image (a pretrain run's map of the data before any labels). */
export async function writeFeatureEmbeddings(ctx: StageContext, model: tf.LayersModel, cache: PixelCache): Promise<void> {
  clearRunOutputs(ctx.project.db, ctx.run.id);
  await forEachBatch(allRows(cache), cache.imageSize, async (rows, done) => {
    ctx.signal.throwIfAborted();
    const features = tf.tidy(() => runPretrainModel(model, cache.batch(rows), false).features);
    const vectors = (await features.array()) as number[][];
    features.dispose();
    writeEmbeddings(
      ctx.project.db,
      ctx.run.id,
      rows.map((row, i) => ({ imageId: cache.imageIds[row], vector: Float32Array.from(vectors[i]) })),
    );
    ctx.progress({ phase: 'evaluating', step: done, totalSteps: cache.count, epoch: 0, epochs: 0, metrics: {}, etaSeconds: null });
  });
}
