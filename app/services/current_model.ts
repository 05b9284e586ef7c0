/**
 * Which model is "the current model": the one the studio's predictions, suggestions, Results
 * and Export use when no run is named, and `contrast predict`/`export` without --run. One rule,
 * here: the newest finished classifier (fine-tune or distillation) that wrote predictions.
 */
import type Database from 'better-sqlite3';
import { UserError } from '../contract/errors.ts';
import { latestPredictionRunId } from '../store/gallery.ts';
import { requireRun, type Run } from '../store/runs.ts';

export function currentModelRunId(db: Database.Database): number | null {
  return latestPredictionRunId(db);
}

/** The run a request names, or the current model; refuses when there is none yet. */
export function modelRun(db: Database.Database, runId?: number): Run {
  const id = runId ?? currentModelRunId(db);
  if (!id) throw new UserError('there is no trained model yet', 'no_model');
  return requireRun(db, id);
}
