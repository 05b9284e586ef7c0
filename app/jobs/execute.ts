/**
 * Runs one run row to its end in this process: picks the backend, marks the run running under
 * this pid, dispatches to its stage, and records how it ended (done with a summary, failed with
 * the reason, or cancelled with its checkpoint kept). Never leaves the row 'running' unless the
 * process itself dies, which markInterruptedRuns then detects.
 */
import type { RunKind } from '../contract/domain.ts';
import { UserError } from '../contract/errors.ts';
import { initBackend } from '../engine/runtime/backend.ts';
import { distill } from '../engine/stages/distill.ts';
import { evaluate } from '../engine/stages/evaluate.ts';
import { finetune } from '../engine/stages/finetune.ts';
import { pretrain } from '../engine/stages/pretrain.ts';
import type { BackendChoice } from '../contract/train_options.ts';
import type { StageContext } from '../engine/stages/stage_context.ts';
import { Cancelled } from '../engine/stages/training_loop.ts';
import type { Project } from '../store/project.ts';
import { appendMetrics, finishRun, getRun, latestCheckpoint, markRunning, metricSeries, requireRun, truncateMetricsAfter } from '../store/runs.ts';
import type { FinishedEvent, JobEvent } from './events.ts';
import { executePipeline } from './pipeline.ts';

type Stage = (ctx: StageContext) => Promise<Record<string, unknown>>;

const stages: Record<RunKind, Stage> = {
  pretrain,
  finetune,
  distill,
  evaluate,
  // The pipeline's stage runs go through this same executor, inside the pipeline's job.
  pipeline: (ctx) => executePipeline(ctx, (childId, emit) => executeRun(ctx.project, childId, { signal: ctx.signal, emit })),
};

export interface ExecuteOptions {
  signal: AbortSignal;
  emit: (event: JobEvent) => void;
}

export async function executeRun(project: Project, runId: number, options: ExecuteOptions): Promise<FinishedEvent> {
  const run = requireRun(project.db, runId);
  if (!['queued', 'interrupted', 'cancelled'].includes(run.status)) {
    throw new UserError(`run ${runId} is ${run.status}; only queued, interrupted or cancelled runs can be started`, 'not_resumable');
  }
  const { emit, signal } = options;
  const startedAt = Date.now();
  const finish = (status: FinishedEvent['status'], error: string | null): FinishedEvent => {
    const event: FinishedEvent = { type: 'finished', runId, kind: run.kind, status, error, summary: getRun(project.db, runId)!.summary };
    emit(event);
    return event;
  };

  let backend;
  try {
    backend = await initBackend((run.config.backend as BackendChoice | undefined) ?? 'auto');
  } catch (error) {
    const reason = (error as Error).message;
    finishRun(project.db, runId, 'failed', { error: reason });
    return finish('failed', reason);
  }
  markRunning(project.db, runId, { pid: process.pid, backend: backend.backend, device: backend.device });
  emit({
    type: 'started',
    runId,
    kind: run.kind,
    backend: backend.backend,
    device: backend.device,
    notes: backend.notes,
    resumedFromStep: latestCheckpoint(project.db, runId)?.step ?? null,
  });

  const ctx: StageContext = {
    project,
    run: requireRun(project.db, runId),
    signal,
    backend,
    startedAt,
    metrics: {
      record: (step, epoch, values) => appendMetrics(project.db, runId, step, epoch, values),
      forgetAfter: (step) => truncateMetricsAfter(project.db, runId, step),
      last: (name) => metricSeries(project.db, runId, name).at(-1)?.value,
    },
    progress: (progress) => emit({ type: 'progress', runId, kind: run.kind, ...progress }),
    epochEnd: (epoch) => emit({ type: 'epoch', runId, kind: run.kind, ...epoch }),
    warn: (message) => emit({ type: 'warning', runId, message }),
  };
  try {
    const summary = await stages[run.kind](ctx);
    finishRun(project.db, runId, 'done', { summary: { ...(getRun(project.db, runId)!.summary ?? {}), ...summary } });
    return finish('done', null);
  } catch (error) {
    if (error instanceof Cancelled || signal.aborted) {
      finishRun(project.db, runId, 'cancelled');
      return finish('cancelled', null);
    }
    const reason = error instanceof UserError ? error.message : `${(error as Error).message ?? error}`;
    // A full disk stops the run the way a cancel does: it keeps its last checkpoint and resumes once there is space.
    if (error instanceof UserError && error.code === 'disk_full') {
      finishRun(project.db, runId, 'cancelled', { error: reason });
      return finish('cancelled', reason);
    }
    if (!(error instanceof UserError)) console.error(error); // a bug: keep the stack for the report
    finishRun(project.db, runId, 'failed', { error: reason });
    return finish('failed', reason);
  }
}
