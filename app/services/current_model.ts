/**
 * Which model is "the current model": the one the studio's predictions, suggestions, Results
 * and Export use when no run is named, and `contrast predict`/`export` without --run. One rule,
 * here. The newest training decides where to look: after one-click training, the model that
 * pipeline kept (the best of its classifiers on validation); after a stage run by hand, the
 * best on validation of that classifier and the teachers it descends from, so a distillation
 * that came out worse than its teacher does not replace it. Only models that predicted every
 * image qualify, since the studio shows their predictions.
 */
import type Database from 'better-sqlite3';
import { UserError } from '../contract/errors.ts';
import { classifierRunsWithPredictions } from '../store/gallery.ts';
import { listRuns, requireRun, runLineage, type Run } from '../store/runs.ts';

export interface CurrentModel {
  runId: number;
  /** Why this one, for Results. */
  reason: string;
}

export function currentModel(db: Database.Database): CurrentModel | null {
  const finished = classifierRunsWithPredictions(db);
  const withPredictions = new Set(finished);
  const runs = new Map(listRuns(db).map((r) => [r.id, r]));
  const newestPipeline = [...runs.values()].filter((r) => r.kind === 'pipeline' && r.status === 'done').at(-1);
  const handMade = finished.map((id) => runs.get(id)!).filter((r) => r.config.pipelineRunId === undefined).at(-1);
  const pipelineChoice = newestPipeline?.summary?.choice as { runId: number; reason: string } | undefined;
  if (pipelineChoice && withPredictions.has(pipelineChoice.runId) && (!handMade || finishedAfter(newestPipeline!, handMade))) {
    return { runId: pipelineChoice.runId, reason: `one-click training (run ${newestPipeline!.id}) ${pipelineChoice.reason}` };
  }
  if (!handMade) return null;
  return bestOfLineage(db, handMade, withPredictions);
}

function finishedAfter(a: Run, b: Run): boolean {
  return (a.finishedAt ?? '') > (b.finishedAt ?? '') || ((a.finishedAt ?? '') === (b.finishedAt ?? '') && a.id > b.id);
}

function valAccuracy(run: Run): number | null {
  return typeof run.summary?.valAccuracy === 'number' ? run.summary.valAccuracy : null;
}

function bestOfLineage(db: Database.Database, newest: Run, eligible: Set<number>): CurrentModel {
  const lineage = [newest, ...runLineage(db, newest.id).filter((r) => r.id !== newest.id)].filter((r) => eligible.has(r.id));
  const scored = lineage.filter((r) => valAccuracy(r) !== null);
  if (scored.length === 0) return { runId: newest.id, reason: `the newest trained model (run ${newest.id}); there are no validation images to compare by` };
  const best = scored.reduce((a, b) => (valAccuracy(b)! > valAccuracy(a)! ? b : a));
  const percent = (r: Run) => `${(valAccuracy(r)! * 100).toFixed(1)}%`;
  const reason =
    best.id === newest.id
      ? `the newest trained model (run ${best.id}, ${percent(best)} on validation)`
      : `run ${best.id} (${percent(best)} on validation) is better than its descendant run ${newest.id} (${percent(newest)})`;
  return { runId: best.id, reason };
}

export function currentModelRunId(db: Database.Database): number | null {
  return currentModel(db)?.runId ?? null;
}

/** The run a request names, or the current model; refuses when there is none yet. */
export function modelRun(db: Database.Database, runId?: number): Run {
  const id = runId ?? currentModelRunId(db);
  if (!id) throw new UserError('there is no trained model yet', 'no_model');
  return requireRun(db, id);
}
