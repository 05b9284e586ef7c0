/**
 * Stage 4: evaluation of a fine-tuned or distilled model. Predicts every image (class,
 * confidence, probabilities, penultimate embedding) and scores the labelled images of the chosen
 * split: top-1 accuracy, per-class precision/recall/F1 and the confusion matrix.
 */
import { score } from './metrics.ts';
import { scoredPredictions } from '../../store/ground_truth.ts';
import { writeClassifierOutputs } from '../data/inference.ts';
import { loadTrainedClassifier, openStageCache } from './stage_common.ts';
import type { EvaluateConfig } from './stage_config.ts';
import type { StageContext } from './stage_context.ts';

export async function evaluate(ctx: StageContext): Promise<Record<string, unknown>> {
  const { split } = ctx.run.config as unknown as EvaluateConfig;
  const { model, classes, architecture, run: modelRun } = loadTrainedClassifier(ctx.project, ctx.run.parentId!);
  try {
    const cache = await openStageCache(ctx, architecture.imageSize);
    try {
      await writeClassifierOutputs(ctx, model, cache, classes.map((c) => c.id));
    } finally {
      cache.close();
    }
  } finally {
    model.dispose();
  }
  const rows = scoredPredictions(ctx.project.db, ctx.run.id, split);
  return { split, modelRunId: modelRun.id, classes, images: rows.length, ...score(rows, classes) };
}
