/**
 * Stage 3: distil a fine-tuned teacher into a student through every image of the project: the
 * student learns the teacher's tempered class probabilities on the same augmented view, plus an
 * optional weighted cross-entropy on labelled training images. A student of the teacher's
 * architecture starts as a copy of it (self-distillation); a smaller one starts from random weights.
 */
import { requireRun } from '../../store/runs.ts';
import { labelledRows, trainableRows, type LabelledRows, type PixelCache } from '../data/dataset.ts';
import { LarsOptimizer } from '../simclr/lars_optimizer.ts';
import { estimateTrainingMemory } from '../runtime/memory.ts';
import { buildClassifier, copyWeightsByName, type ModelConfig } from '../simclr/model.ts';
import { Rng } from '../simclr/random.ts';
import { chooseBatch, effectiveBatch, lastMetric, loadRunModel, openStageCache, stageLoop, trainClassifier, trainConfig, validationJudge } from './stage_common.ts';
import { runClasses, type TrainConfig } from './stage_config.ts';
import type { StageContext } from './stage_context.ts';
import { distillStep, type LabelledBatch } from '../simclr/train_step.ts';

function sameArchitecture(a: ModelConfig, b: ModelConfig): boolean {
  return a.depth === b.depth && a.width === b.width && a.sk === b.sk;
}

/** A random labelled batch for the optional cross-entropy term. */
function labelledBatch(cache: PixelCache, train: LabelledRows, size: number, rng: Rng): LabelledBatch {
  const picks = Array.from({ length: size }, () => rng.int(train.rows.length));
  return { images: cache.batch(picks.map((p) => train.rows[p])), labels: picks.map((p) => train.labels[p]) };
}

export async function distill(ctx: StageContext): Promise<Record<string, unknown>> {
  const config = trainConfig(ctx);
  const teacherRunId = ctx.run.parentId!;
  const teacherConfig = requireRun(ctx.project.db, teacherRunId).config as unknown as TrainConfig;
  const classes = runClasses(ctx.project, teacherRunId);
  const teacher = buildClassifier(teacherConfig.model, classes.length);
  const student = buildClassifier(config.model, classes.length, config.seed);
  const optimizer = new LarsOptimizer({ weightDecay: config.weightDecay });
  try {
    loadRunModel(ctx.project, teacherRunId, teacher);
    if (sameArchitecture(config.model, teacherConfig.model)) copyWeightsByName(teacher, student);
    // Unlabelled and (at most as many) labelled images go through the student in each step.
    const views = config.labelWeight! > 0 ? 2 : 1;
    const requestedBatch = chooseBatch(ctx, (batch) => estimateTrainingMemory(student, views * batch, teacher));
    const cache = await openStageCache(ctx, config.model.imageSize);
    try {
      const train = labelledRows(ctx.project, cache, 'train', classes);
      const val = labelledRows(ctx.project, cache, 'val', classes);
      const rows = trainableRows(ctx.project, cache);
      const batchSize = effectiveBatch(ctx, requestedBatch, rows.length, 'images');
      const useLabels = config.labelWeight! > 0 && train.rows.length > 0;
      const labelledSize = Math.min(batchSize, train.rows.length);
      // The student learns from every image, so its statistics are measured on every image too.
      const judge = validationJudge(student, cache, val, rows, batchSize);
      const loop = stageLoop(ctx, 'distill', student, optimizer, {
        examples: rows.length,
        batchSize,
        async step(positions, learningRate, rng) {
          const images = cache.batch(positions.map((p) => rows[p]));
          const labelled = useLabels ? labelledBatch(cache, train, labelledSize, rng) : undefined;
          try {
            const stepConfig = { imageSize: config.model.imageSize, learningRate, temperature: config.tau!, labelWeight: config.labelWeight! };
            const result = await distillStep(student, teacher, optimizer, images, stepConfig, rng, labelled);
            return { loss: result.loss, distillLoss: result.distillLoss, ...(result.labelledLoss === null ? {} : { labelledLoss: result.labelledLoss }) };
          } finally {
            images.dispose();
            labelled?.images.dispose();
          }
        },
      }, judge);
      const trained = await trainClassifier(ctx, student, optimizer, loop, judge, { cache, val, classes });
      return {
        ...trained,
        teacherRunId,
        images: rows.length,
        distillLoss: lastMetric(ctx, 'epoch_distillLoss'),
      };
    } finally {
      cache.close();
    }
  } finally {
    teacher.dispose();
    student.dispose();
    optimizer.dispose();
  }
}
