/**
 * Results: how good a model is on held-out labelled images (ground truth only, see
 * store/ground_truth.ts), the images behind a confusion cell, and the embedding map.
 */
import { UserError } from '../contract/errors.ts';
import type { Evaluation } from '../contract/operations.ts';
import { score, wilsonInterval } from '../engine/stages/metrics.ts';
import { embeddingLabels, imagesByIds, latestEmbeddingRunId } from '../store/gallery.ts';
import { heldOutPredictions } from '../store/ground_truth.ts';
import { listClasses } from '../store/labels.ts';
import type { Project } from '../store/project.ts';
import { getRun, requireRun } from '../store/runs.ts';
import { currentModel, currentModelRunId, modelRun } from './current_model.ts';
import { embeddingMap } from './embedding_map.ts';
import type { Handlers } from './handlers.ts';
import type { Session } from './session.ts';

/** Scores a model (default: the current one) on the test split, or validation when there is no test split. */
export function evaluationOf(project: Project, runId?: number): Evaluation {
  const run = modelRun(project.db, runId);
  const classes = listClasses(project.db);
  const { split, rows } = heldOutPredictions(project.db, run.id);
  if (rows.length === 0) throw new UserError(`run ${run.id} has no predictions for labelled ${split} images to score`, 'no_predictions', { runId: run.id, split });
  const teacherRun = run.kind === 'distill' && run.parentId ? getRun(project.db, run.parentId) : undefined;
  let teacher = null;
  if (teacherRun) {
    // Score the teacher on exactly the student's images, so the two numbers compare.
    const ids = new Set(rows.map((r) => r.imageId));
    const teacherRows = heldOutPredictions(project.db, teacherRun.id).rows.filter((r) => ids.has(r.imageId));
    if (teacherRows.length > 0) {
      const teacherScores = score(teacherRows, classes);
      teacher = { runId: teacherRun.id, accuracy: teacherScores.accuracy, perClass: teacherScores.perClass };
    }
  }
  const scores = score(rows, classes);
  const interval = wilsonInterval(scores.accuracy, rows.length);
  const chance = Math.max(...scores.perClass.map((c) => c.support)) / rows.length;
  return {
    runId: run.id,
    kind: run.kind,
    split,
    images: rows.length,
    ...scores,
    teacher,
    interval,
    chance,
    current: currentModel(project.db),
    advice: adviceFor(scores.perClass, interval, split),
  };
}

/** Below this many images per class, a split's per-class figures mean little. */
const FEW_PER_CLASS = 10;

function adviceFor(perClass: Evaluation['perClass'], interval: Evaluation['interval'], split: string): string[] {
  const advice: string[] = [];
  const thin = perClass.filter((c) => c.support < FEW_PER_CLASS).map((c) => c.name);
  const halfWidth = ((interval.high - interval.low) / 2) * 100;
  if (thin.length > 0 && halfWidth > 5) {
    advice.push(`accuracy is known only to about ±${halfWidth.toFixed(0)} points: label more ${split} images of ${thin.slice(0, 3).join(', ')}${thin.length > 3 ? ', …' : ''}`);
  }
  const weakest = [...perClass].filter((c) => c.support > 0).sort((a, b) => a.f1 - b.f1).slice(0, 2);
  if (weakest.length > 0) {
    advice.push(`the weakest classes are ${weakest.map((c) => `${c.name} (F1 ${c.f1.toFixed(2)})`).join(' and ')}: label more of them`);
  }
  advice.push('the Label screen offers the images the model is least sure of first: labelling those helps most');
  return advice;
}

export function resultHandlers(session: Session): Pick<Handlers, 'results.evaluation' | 'results.cellImages' | 'results.embeddingMap'> {
  const project = () => session.requireProject();
  return {
    async 'results.evaluation'({ runId }) {
      return evaluationOf(project(), runId);
    },
    async 'results.cellImages'({ runId, trueClassId, predictedClassId }) {
      const run = modelRun(project().db, runId);
      const ids = heldOutPredictions(project().db, run.id)
        .rows.filter((r) => r.labelClassId === trueClassId && r.predictedClassId === predictedClassId)
        .map((r) => r.imageId);
      return { items: imagesByIds(project().db, ids, run.id) };
    },
    async 'results.embeddingMap'({ runId }) {
      const { db } = project();
      const mapRunId = runId ?? latestEmbeddingRunId(db);
      if (!mapRunId) throw new UserError('no run has computed embeddings yet', 'no_embeddings');
      requireRun(db, mapRunId);
      const positions = await embeddingMap(project(), mapRunId);
      const labels = embeddingLabels(db, mapRunId, currentModelRunId(db));
      const points = positions.map((p) => ({ ...p, labelClassId: null, predictedClassId: null, ...labels.get(p.imageId) }));
      return { runId: mapRunId, points };
    },
  };
}
