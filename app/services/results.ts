/**
 * Results: how good a model is on held-out labelled images (ground truth only, see
 * store/ground_truth.ts), the images behind a confusion cell, and the embedding map.
 */
import { UserError } from '../contract/errors.ts';
import type { Evaluation } from '../contract/operations.ts';
import { score } from '../engine/stages/metrics.ts';
import { embeddingLabels, imagesByIds, latestEmbeddingRunId } from '../store/gallery.ts';
import { heldOutPredictions } from '../store/ground_truth.ts';
import { listClasses } from '../store/labels.ts';
import type { Project } from '../store/project.ts';
import { getRun, requireRun } from '../store/runs.ts';
import { currentModelRunId, modelRun } from './current_model.ts';
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
  return { runId: run.id, kind: run.kind, split, images: rows.length, ...score(rows, classes), teacher };
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
