/**
 * One-click training: runs the stages the budget plan chose, one after the other in this job,
 * each as its own resumable run, then keeps the best of the classifiers on validation and
 * predicts every image with it. The whole pipeline keeps to its budget: each stage gets its
 * share of what is left, so time one stage saved or overran is shared among the rest.
 */
import type { Stage } from '../contract/domain.ts';
import { UserError } from '../contract/errors.ts';
import { openPixelCache } from '../engine/data/dataset.ts';
import { writeClassifierOutputs } from '../engine/data/inference.ts';
import { planPipeline, secondsForNextStage, type PipelinePlan, type StagePlan } from '../engine/stages/budget_plan.ts';
import { wilsonInterval } from '../engine/stages/metrics.ts';
import { projectFigures } from '../engine/stages/pipeline_figures.ts';
import { loadTrainedClassifier } from '../engine/stages/stage_common.ts';
import { createTrainingRun, type PipelineConfig } from '../engine/stages/stage_config.ts';
import type { StageContext } from '../engine/stages/stage_context.ts';
import { Cancelled } from '../engine/stages/training_loop.ts';
import { mergeSummary, requireRun, type Run } from '../store/runs.ts';
import type { FinishedEvent, JobEvent } from './events.ts';

/** Runs one child run to its end in this process, its events going to `emit`. */
export type RunChild = (runId: number, emit: (event: JobEvent) => void) => Promise<FinishedEvent>;

export interface ModelChoice {
  runId: number;
  reason: string;
  candidates: { runId: number; role: string; valAccuracy: number | null }[];
}

interface PipelineSummary {
  plan?: PipelinePlan;
  /** The stage runs, by position in the plan. */
  children?: number[];
  /** Seconds of the budget spent by earlier attempts (a resumed pipeline has the rest). */
  spentSeconds?: number;
}

const STAGE_LABELS: Record<Stage, string> = { pretrain: 'pretrain', finetune: 'fine-tune', distill: 'distil' };

function labelOf(stage: StagePlan): string {
  return stage.supervised ? 'labels only' : STAGE_LABELS[stage.stage];
}

export async function executePipeline(ctx: StageContext, runChild: RunChild): Promise<Record<string, unknown>> {
  const config = ctx.run.config as unknown as PipelineConfig;
  const db = ctx.project.db;
  const saved = (ctx.run.summary ?? {}) as PipelineSummary;
  const plan = saved.plan ?? planPipeline(config.minutes, projectFigures(ctx.project, config.model, config.fromRunId));
  const children = saved.children ?? [];
  const deadline = ctx.startedAt + (plan.budgetSeconds - (saved.spentSeconds ?? 0)) * 1000;
  const remember = (values: PipelineSummary) => mergeSummary(db, ctx.run.id, { ...values });
  remember({ plan, children });

  for (let index = 0; index < plan.stages.length; index++) {
    const stage = plan.stages[index];
    const secondsLeft = (deadline - Date.now()) / 1000;
    const childId = children[index] ?? createStage(ctx, plan, index, children, secondsForNextStage(plan, index, secondsLeft));
    children[index] = childId;
    remember({ children });
    if (requireRun(db, childId).status === 'done') continue;
    const finished = await runChild(childId, forwardTo(ctx, labelOf(stage), index, plan, deadline));
    remember({ spentSeconds: (saved.spentSeconds ?? 0) + (Date.now() - ctx.startedAt) / 1000 });
    if (finished.status === 'cancelled' || ctx.signal.aborted) throw new Cancelled();
    if (finished.status !== 'done') throw new UserError(`the ${labelOf(stage)} step failed: ${finished.error}`, 'run_failed', { runId: childId });
  }

  const choice = chooseModel(children.map((id) => requireRun(db, id)));
  await predictEveryImage(ctx, choice.runId, deadline);
  return { plan, children, currentModelRunId: choice.runId, choice, wallSeconds: (saved.spentSeconds ?? 0) + (Date.now() - ctx.startedAt) / 1000 };
}

function createStage(ctx: StageContext, plan: PipelinePlan, index: number, children: number[], seconds: number): number {
  const config = ctx.run.config as unknown as PipelineConfig;
  const stage = plan.stages[index];
  const previous = index > 0 ? children[index - 1] : plan.basePretrainRunId ?? undefined;
  const architecture = { depth: config.model.depth, width: config.model.width, sk: config.model.sk, imageSize: config.model.imageSize };
  // A first pretraining builds the network; one continuing an earlier pretraining, and every later stage, inherit it.
  const fresh = stage.supervised || (stage.stage === 'pretrain' && previous === undefined);
  const options = {
    minutes: seconds / 60,
    seed: config.seed,
    backend: config.backend,
    ...(fresh ? architecture : { parentRunId: previous }),
    ...(stage.supervised ? { supervised: true } : {}),
  };
  return createTrainingRun(ctx.project, stage.stage, options, { pipelineRunId: ctx.run.id, deferOutputs: stage.stage !== 'pretrain' }).runId;
}

/** A stage's events as the pipeline's own: one progress bar, whose ETA is the pipeline's deadline. */
function forwardTo(ctx: StageContext, label: string, index: number, plan: PipelinePlan, deadline: number) {
  return (event: JobEvent) => {
    if (event.type === 'progress') {
      const { type: _type, runId: _runId, kind: _kind, ...progress } = event;
      ctx.progress({ ...progress, stage: `${label} (${index + 1}/${plan.stages.length})`, etaSeconds: Math.max(0, (deadline - Date.now()) / 1000) });
    } else if (event.type === 'epoch') {
      const { type: _type, runId: _runId, kind: _kind, ...epoch } = event;
      ctx.epochEnd(epoch);
    } else if (event.type === 'warning') {
      ctx.warn(`${label}: ${event.message}`);
    }
  };
}

/**
 * The model to keep: the best on validation among the pipeline's classifiers. Ties go to the
 * later one (it learned from more images); without validation images, the last one is kept.
 * Each run's role comes from its own kind and config, so any list of runs can be judged.
 */
export function chooseModel(runs: Run[]): ModelChoice {
  const classifiers = runs.filter((run) => run.kind === 'finetune' || run.kind === 'distill');
  const candidates = classifiers.map((run) => ({
    runId: run.id,
    role: roleOf(run),
    valAccuracy: typeof run.summary?.valAccuracy === 'number' ? run.summary.valAccuracy : null,
    valImages: Number(run.summary?.valImages ?? 0),
  }));
  const scored = candidates.filter((c) => c.valAccuracy !== null);
  const last = candidates.at(-1)!;
  if (scored.length === 0) {
    return { runId: last.runId, reason: `kept the ${last.role}: there are no labelled validation images to compare by`, candidates };
  }
  const best = scored.reduce((a, b) => (b.valAccuracy! >= a.valAccuracy! ? b : a));
  const others = scored.filter((c) => c !== best).map((c) => `${c.role} ${percent(c.valAccuracy!)}`);
  const n = Math.max(...scored.map((c) => c.valImages));
  const interval = wilsonInterval(best.valAccuracy!, n);
  const reason =
    `kept the ${best.role}: ${percent(best.valAccuracy!)} on ${n} validation images (95% interval ${percent(interval.low)}–${percent(interval.high)})` +
    (others.length ? ` against ${others.join(', ')}` : '');
  return { runId: best.runId, reason, candidates: candidates.map(({ valImages: _n, ...c }) => c) };
}

function roleOf(run: Run): string {
  if (run.kind === 'distill') return 'distilled student';
  return run.config?.supervised === true ? 'labels-only network' : 'fine-tuned teacher';
}

function percent(value: number): string {
  return `${(value * 100).toFixed(1)}%`;
}

/** The bounded last phase: the kept model predicts every image, so the studio can show and suggest. */
async function predictEveryImage(ctx: StageContext, runId: number, deadline: number): Promise<void> {
  const { model, classes, architecture } = loadTrainedClassifier(ctx.project, runId);
  try {
    const cache = await openPixelCache(ctx.project, architecture.imageSize, { signal: ctx.signal, warn: ctx.warn });
    try {
      const progress = { ...ctx, progress: (p: Parameters<StageContext['progress']>[0]) => ctx.progress({ ...p, stage: 'predict', etaSeconds: Math.max(0, (deadline - Date.now()) / 1000) }) };
      await writeClassifierOutputs(progress, model, cache, classes.map((c) => c.id), runId);
    } finally {
      cache.close();
    }
  } finally {
    model.dispose();
  }
}
