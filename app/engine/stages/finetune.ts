/**
 * Stage 2: fine-tune a pretrained network (or, with `supervised`, a randomly initialised one)
 * on the labelled training split. Each epoch is scored on the validation split and the best
 * epoch's checkpoint is the run's model. Ends by predicting every image.
 */
import type * as tf from '@tensorflow/tfjs';
import { UserError } from '../../contract/errors.ts';
import { mergeSummary } from '../../store/runs.ts';
import { labelledRows } from '../data/dataset.ts';
import { trainingClasses } from '../../store/ground_truth.ts';
import { LarsOptimizer } from '../simclr/lars_optimizer.ts';
import { estimateTrainingMemory } from '../runtime/memory.ts';
import { buildClassifier, buildPretrainModel, copyWeightsByName, type ModelConfig } from '../simclr/model.ts';
import { chooseBatch, effectiveBatch, lastMetric, loadRunModel, openStageCache, stageLoop, trainClassifier, trainConfig, validationJudge } from './stage_common.ts';
import type { StageContext } from './stage_context.ts';
import { classifierStep } from '../simclr/train_step.ts';

/** Classes fixed when the run first starts, so a resumed run keeps its logit order. */
export function runClassList(ctx: StageContext): { id: number; name: string }[] {
  const recorded = ctx.run.summary?.classes as { id: number; name: string }[] | undefined;
  if (recorded) return recorded;
  const classes = trainingClasses(ctx.project.db);
  if (classes.length < 2) {
    throw new UserError(`fine-tuning needs labelled images of at least 2 classes in the training split; found ${classes.length}`, 'no_labels');
  }
  mergeSummary(ctx.project.db, ctx.run.id, { classes });
  return classes;
}

function initialClassifier(ctx: StageContext, model: ModelConfig, numClasses: number, seed: number): tf.LayersModel {
  const classifier = buildClassifier(model, numClasses, seed);
  if (ctx.run.parentId === null) return classifier; // supervised baseline: random weights
  const pretrained = buildPretrainModel(model);
  try {
    loadRunModel(ctx.project, ctx.run.parentId, pretrained);
    copyWeightsByName(pretrained, classifier);
  } finally {
    pretrained.dispose();
  }
  return classifier;
}

export async function finetune(ctx: StageContext): Promise<Record<string, unknown>> {
  const config = trainConfig(ctx);
  const classes = runClassList(ctx);
  const model = initialClassifier(ctx, config.model, classes.length, config.seed);
  const optimizer = new LarsOptimizer({ weightDecay: config.weightDecay });
  try {
    const requestedBatch = chooseBatch(ctx, (batch) => estimateTrainingMemory(model, batch));
    const cache = await openStageCache(ctx, config.model.imageSize);
    try {
      const train = labelledRows(ctx.project, cache, 'train', classes);
      const val = labelledRows(ctx.project, cache, 'val', classes);
      const batchSize = effectiveBatch(ctx, requestedBatch, train.rows.length, 'labelled training images');
      const judge = validationJudge(model, cache, val, train.rows, batchSize, config.mixup ? 'last' : 'best');
      const loop = stageLoop(ctx, 'finetune', model, optimizer, {
        examples: train.rows.length,
        batchSize,
        balancedLabels: config.balanced ? train.labels : undefined,
        async step(positions, learningRate, rng) {
          const images = cache.batch(positions.map((p) => train.rows[p]));
          try {
            const labels = positions.map((p) => train.labels[p]);
            return await classifierStep(model, optimizer, { images, labels }, { imageSize: config.model.imageSize, learningRate, mixup: config.mixup }, rng);
          } finally {
            images.dispose();
          }
        },
      }, judge);
      const trained = await trainClassifier(ctx, model, optimizer, loop, judge, { cache, val, classes });
      return {
        ...trained,
        trainImages: train.rows.length,
        valImages: val.rows.length,
        trainAccuracy: lastMetric(ctx, 'epoch_accuracy'),
      };
    } finally {
      cache.close();
    }
  } finally {
    model.dispose();
    optimizer.dispose();
  }
}
