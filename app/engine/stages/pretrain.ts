/**
 * Stage 1: contrastive pretraining (SimCLR) on every image of the project, labelled or not.
 * Ends by storing every image's encoder features, the data map before any labels exist.
 */
import { defaultPretrainAugment } from '../simclr/data_util.ts';
import { writeFeatureEmbeddings } from '../data/inference.ts';
import { trainableRows } from '../data/dataset.ts';
import { LarsOptimizer } from '../simclr/lars_optimizer.ts';
import { estimateTrainingMemory } from '../runtime/memory.ts';
import { buildPretrainModel } from '../simclr/model.ts';
import { Rng } from '../simclr/random.ts';
import { checkpointSaver, chooseBatch, chooseSteps, effectiveBatch, lastMetric, openStageCache, resumeFromCheckpoint, trainConfig } from './stage_common.ts';
import { peakLearningRate } from './stage_config.ts';
import type { StageContext } from './stage_context.ts';
import { pretrainStep } from '../simclr/train_step.ts';
import { epochsOf, runTrainingLoop, stepsPerEpoch, type TrainingLoop } from './training_loop.ts';

export async function pretrain(ctx: StageContext): Promise<Record<string, unknown>> {
  const config = trainConfig(ctx);
  const imageSize = config.model.imageSize;
  const model = buildPretrainModel(config.model, config.seed);
  const optimizer = new LarsOptimizer({ weightDecay: config.weightDecay });
  try {
    // Two views of every image go through the network in each step.
    const requestedBatch = chooseBatch(ctx, (batch) => estimateTrainingMemory(model, 2 * batch));
    const cache = await openStageCache(ctx, imageSize);
    try {
      const augment = defaultPretrainAugment(imageSize);
      const rows = trainableRows(ctx.project, cache);
      const batchSize = effectiveBatch(ctx, requestedBatch, rows.length, 'images');
      const loop: TrainingLoop = {
        examples: rows.length,
        batchSize,
        totalSteps: 0,
        peakLearningRate: peakLearningRate('pretrain', config, batchSize),
        warmupFraction: config.warmupFraction,
        seed: config.seed,
        rng: new Rng(config.seed),
        async step(positions, learningRate, rng) {
          const images = cache.batch(positions.map((p) => rows[p]));
          try {
            return await pretrainStep(model, optimizer, images, { imageSize, temperature: config.temperature!, learningRate, augment }, rng);
          } finally {
            images.dispose();
          }
        },
        save: checkpointSaver(ctx, model, optimizer),
        extra: () => ({ totalSteps: loop.totalSteps }),
      };
      const resumed = resumeFromCheckpoint(ctx, model, optimizer);
      loop.totalSteps = await chooseSteps(ctx, model, loop, resumed, 0, cache.count);
      const final = await runTrainingLoop(ctx, loop, resumed);
      await writeFeatureEmbeddings(ctx, model, cache);
      return { epochs: epochsOf(final.step, stepsPerEpoch(loop.examples, loop.batchSize)), steps: final.step, images: rows.length, loss: lastMetric(ctx, 'epoch_loss'), top1: lastMetric(ctx, 'epoch_top1') };
    } finally {
      cache.close();
    }
  } finally {
    model.dispose();
    optimizer.dispose();
  }
}
