/** Which runs the Export screen offers as models, and how each is named; pure so it is unit-tested. */
import type { RunInfo } from '../../../app/contract/operations.ts';
import { percent } from './format.ts';

/** Finished fine-tunings and distillations, the runs that hold a classifier, newest first. */
export function classifierRuns(runs: RunInfo[]): RunInfo[] {
  return runs.filter((run) => (run.kind === 'finetune' || run.kind === 'distill') && run.status === 'done').sort((a, b) => b.id - a.id);
}

/** e.g. "Run #7 · distill · 62.5% on validation · 2025-03-02 14:05 (current model)". */
export function modelLabel(run: RunInfo, currentRunId: number | null): string {
  const accuracy = typeof run.summary?.valAccuracy === 'number' ? `${percent(run.summary.valAccuracy)} on validation` : 'no validation score';
  const finished = run.finishedAt ? run.finishedAt.slice(0, 16).replace('T', ' ') : null;
  const parts = [`Run #${run.id}`, run.kind, accuracy, ...(finished ? [finished] : [])];
  return parts.join(' · ') + (run.id === currentRunId ? ' (current model)' : '');
}
