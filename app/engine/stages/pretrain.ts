/**
 * Stage 1: contrastive pretraining (SimCLR) on every image of the project, labelled or not, from
 * random weights or continuing an earlier pretraining (after many new images). Ends by storing
 * every image's encoder features, the data map before any labels exist.
 */
import type * as tf from '@tensorflow/tfjs';
import { UserError } from '../../contract/errors.ts';
import { defaultPretrainAugment } from '../simclr/data_util.ts';
import { writeFeatureEmbeddings } from '../data/inference.ts';
import { trainableRows } from '../data/dataset.ts';
import { LarsOptimizer } from '../simclr/lars_optimizer.ts';
import { estimateTrainingMemory } from '../runtime/memory.ts';
import { buildPretrainModel } from '../simclr/model.ts';
import { chooseBatch, effectiveBatch, lastMetric, loadRunModel, openStageCache, stageLoop, trainConfig, trainFromCheckpoint } from './stage_common.ts';
import type { StageContext } from './stage_context.ts';
import { pretrainStep } from '../simclr/train_step.ts';

/** Starts from an earlier pretraining's weights, projection head included (its own checkpoint, if any, comes after). */
function continueFrom(ctx: StageContext, parentId: number, model: tf.LayersModel): void {
  try {
    loadRunModel(ctx.project, parentId, model);
  } catch (error) {
    model.dispose();
    if (error instanceof UserError) throw error;
    throw new UserError(`run ${parentId} cannot be continued: ${(error as Error).message} (an imported encoder has no projection head; fine-tune it instead)`, 'bad_setting', { name: 'parentRunId' });
  }
}

export async function pretrain(ctx: StageContext): Promise<Record<string, unknown>> {
  const config = trainConfig(ctx);
  const imageSize = config.model.imageSize;
  const model = buildPretrainModel(config.model, config.seed);
  if (ctx.run.parentId !== null) continueFrom(ctx, ctx.run.parentId, model);
  const optimizer = new LarsOptimizer({ weightDecay: config.weightDecay });
  try {
    // Two views of every image go through the network in each step.
    const requestedBatch = chooseBatch(ctx, (batch) => estimateTrainingMemory(model, 2 * batch));
    const cache = await openStageCache(ctx, imageSize);
    try {
      const augment = defaultPretrainAugment(imageSize);
      const rows = trainableRows(ctx.project, cache);
      const batchSize = effectiveBatch(ctx, requestedBatch, rows.length, 'images');
      const loop = stageLoop(ctx, 'pretrain', model, optimizer, {
        examples: rows.length,
        batchSize,
        async step(positions, learningRate, rng) {
          const images = cache.batch(positions.map((p) => rows[p]));
          try {
            return await pretrainStep(model, optimizer, images, { imageSize, temperature: config.temperature!, learningRate, augment }, rng);
          } finally {
            images.dispose();
          }
        },
      });
      const trained = await trainFromCheckpoint(ctx, model, optimizer, loop, { scoredPerEpoch: 0, predictedAtEnd: cache.count });
      await writeFeatureEmbeddings(ctx, model, cache);
      return { ...trained, images: rows.length, loss: lastMetric(ctx, 'epoch_loss'), top1: lastMetric(ctx, 'epoch_top1') };
    } finally {
      cache.close();
    }
  } finally {
    model.dispose();
    optimizer.dispose();
  }
}
