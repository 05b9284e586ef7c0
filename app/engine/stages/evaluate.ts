/**
 * Stage 4: evaluation of a fine-tuned or distilled model. Predicts every image (class,
 * confidence, probabilities, penultimate embedding) and scores the labelled images of the chosen
 * split: top-1 accuracy, per-class precision/recall/F1 and the confusion matrix.
 */
import { score } from './metrics.ts';
import type { LabelledPrediction } from '../../store/gallery.ts';
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
  const rows = ctx.project.db
    .prepare(
      `SELECT p.image_id AS imageId, l.class_id AS labelClassId, p.class_id AS predictedClassId
       FROM predictions p JOIN labels l ON l.image_id = p.image_id JOIN splits s ON s.image_id = p.image_id
       WHERE p.run_id = ? AND s.split = ? AND l.source != 'suggestion' ORDER BY p.image_id`,
    )
    .all(ctx.run.id, split) as LabelledPrediction[];
  return { split, modelRunId: modelRun.id, classes, images: rows.length, ...score(rows, classes) };
}
