/**
 * The Train screen's side of the core: presets turned into engine options, plans with an
 * estimate, and training jobs run in a child process whose events become ServerEvents.
 */
import { UserError } from '../errors.ts';
import { diagnoseBackends } from '../engine/backend.ts';
import { createTrainingRun, planTrainingRun, type TrainKind, type TrainOptions, type TrainPlan as EnginePlan } from '../engine/stage_config.ts';
import { startJob, type Launcher } from '../jobs/job.ts';
import type { JobEvent } from '../jobs/events.ts';
import type { Project } from '../store/project.ts';
import { getRun, isResumable, listRuns, requireRun } from '../store/runs.ts';
import type { BackendSummary, Preset, TrainPlan, TrainRequest } from './contract.ts';
import type { Session } from './session.ts';

type Setting = number | string | boolean;

/**
 * The network each preset pretrains. Fine-tuning keeps its pretrain run's network and a student
 * defaults to its teacher's; the engine picks the largest batch that fits in memory.
 */
const presets: Record<Preset, { depth: 18 | 34 | 50; width: number; imageSize: number }> = {
  quick: { depth: 18, width: 0.5, imageSize: 32 },
  balanced: { depth: 18, width: 1, imageSize: 64 },
  best: { depth: 50, width: 1, imageSize: 96 },
};

/** Options a user may override per stage (others are fixed by the parent run). */
const editable: Record<TrainKind, (keyof TrainOptions)[]> = {
  pretrain: ['depth', 'width', 'sk', 'imageSize', 'batchSize', 'epochs', 'learningRate', 'weightDecay', 'temperature', 'seed', 'backend'],
  finetune: ['batchSize', 'epochs', 'learningRate', 'weightDecay', 'balanced', 'seed', 'backend'],
  distill: ['depth', 'width', 'sk', 'batchSize', 'epochs', 'learningRate', 'weightDecay', 'tau', 'labelWeight', 'seed', 'backend'],
};

/** Image side to train at: the preset's, but never above the images' own size (upscaling adds cost, not detail). */
function imageSizeFor(project: Project, preset: Preset): number {
  const typical = project.db.prepare('SELECT MAX(width, height) AS side FROM images ORDER BY side LIMIT 1 OFFSET (SELECT COUNT(*) / 2 FROM images)').pluck().get() as
    | number
    | undefined;
  const wanted = presets[preset].imageSize;
  return typical ? Math.max(16, Math.min(wanted, Math.round(typical / 8) * 8)) : wanted;
}

function toOptions(project: Project, request: TrainRequest): TrainOptions {
  const preset = presets[request.preset];
  const options: TrainOptions = {};
  if (request.stage === 'pretrain') Object.assign(options, { depth: preset.depth, width: preset.width, imageSize: imageSizeFor(project, request.preset) });
  if (request.parentRunId !== undefined) options.parentRunId = request.parentRunId;
  for (const [key, value] of Object.entries(request.advanced ?? {})) {
    if (!editable[request.stage].includes(key as keyof TrainOptions)) {
      throw new UserError(`"${key}" cannot be set for ${request.stage} (settable: ${editable[request.stage].join(', ')})`);
    }
    (options as Record<string, Setting>)[key] = value;
  }
  // An epoch count replaces the time budget; otherwise the engine fits epochs to the budget.
  if (options.epochs === undefined) options.minutes = request.budgetMinutes;
  return options;
}

/**
 * The values the advanced panel shows for each setting the user may change; null where the engine
 * decides when the run starts (epochs from the budget, batch from memory, rate from the batch, a random seed).
 */
function settingsOf(plan: EnginePlan, kind: TrainKind, options: TrainOptions): Record<string, Setting | null> {
  const values: Record<string, unknown> = { ...plan.config.model, ...(plan.config as unknown as Record<string, unknown>), seed: options.seed };
  const settings: Record<string, Setting | null> = {};
  for (const key of editable[kind]) {
    const value = values[key];
    settings[key] = typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean' ? value : null;
  }
  return settings;
}

/**
 * Seconds the run should take: the budget when one is set; for a fixed epoch count, the step
 * time measured by an earlier run of the same stage and network, or null when there is none yet.
 */
function estimateSeconds(project: Project, plan: EnginePlan, kind: TrainKind): number | null {
  if (plan.config.minutes !== null) return plan.config.minutes * 60;
  const similar = listRuns(project.db)
    .filter((run) => run.kind === kind && JSON.stringify((run.config as { model?: unknown }).model) === JSON.stringify(plan.config.model))
    .map((run) => ({ secondsPerStep: run.summary?.measuredSecondsPerStep, batch: run.summary?.batchSize ?? (run.config as { batchSize?: number }).batchSize }))
    .filter((m): m is { secondsPerStep: number; batch: number } => typeof m.secondsPerStep === 'number' && typeof m.batch === 'number')
    .at(-1);
  if (!similar) return null;
  const images = project.db
    .prepare(kind === 'finetune' ? `SELECT COUNT(*) FROM splits WHERE split = 'train'` : 'SELECT COUNT(*) FROM images')
    .pluck()
    .get() as number;
  const perImage = similar.secondsPerStep / similar.batch;
  return perImage * images * (plan.config.epochs ?? 0);
}

export function planRequest(project: Project, request: TrainRequest): TrainPlan {
  const options = toOptions(project, request);
  const plan = planTrainingRun(project, request.stage, options);
  return {
    stage: request.stage,
    config: plan.config as unknown as Record<string, unknown>,
    settings: settingsOf(plan, request.stage, options),
    estimateSeconds: estimateSeconds(project, plan, request.stage),
    parentRunId: plan.parent?.id ?? null,
    warnings: plan.warnings,
  };
}

export function startTraining(session: Session, request: TrainRequest, launcher?: Launcher): number {
  const project = session.requireProject();
  const { runId } = createTrainingRun(project, request.stage, toOptions(project, request));
  runJob(session, project, runId, launcher);
  return runId;
}

export function resumeTraining(session: Session, runId: number, launcher?: Launcher): number {
  const project = session.requireProject();
  const run = requireRun(project.db, runId);
  if (!isResumable(run.status)) throw new UserError(`run ${runId} is ${run.status}: only interrupted or cancelled runs can be resumed`, 'not_resumable');
  runJob(session, project, runId, launcher);
  return runId;
}

/** Runs in a child process, so training never blocks the server that answers the UI. */
function runJob(session: Session, project: Project, runId: number, launcher?: Launcher): void {
  const kind = requireRun(project.db, runId).kind;
  let cancel = () => {};
  const release = session.beginJob({ kind, id: runId, startedAt: new Date().toISOString() }, () => cancel());
  let job;
  try {
    job = startJob(project, runId, { isolation: 'process', launcher });
  } catch (error) {
    release();
    throw error;
  }
  cancel = () => job.cancel();
  job.on('event', (event: JobEvent) => forward(session, event));
  void job.done.then(() => release());
}

function forward(session: Session, event: JobEvent): void {
  switch (event.type) {
    case 'started':
      session.emit({ type: 'job.started', runId: event.runId, kind: event.kind, backend: event.backend, device: event.device, resumedFromStep: event.resumedFromStep });
      break;
    case 'progress':
      session.emit({
        type: 'job.progress',
        runId: event.runId,
        kind: event.kind,
        phase: event.phase,
        step: event.step,
        totalSteps: event.totalSteps,
        epoch: event.epoch,
        epochs: event.epochs,
        metrics: event.metrics,
        etaSeconds: event.etaSeconds,
      });
      break;
    case 'epoch':
      session.emit({ type: 'job.epoch', runId: event.runId, kind: event.kind, epoch: event.epoch, epochs: event.epochs, metrics: event.metrics, best: event.best });
      break;
    case 'warning':
      session.emit({ type: 'job.warning', runId: event.runId, message: event.message });
      break;
    case 'finished':
      // Free the slot first, so a UI reacting to the event can start the next stage at once.
      session.finishJob(event.runId);
      session.emit({ type: 'job.finished', runId: event.runId, kind: event.kind, status: event.status, error: event.error });
      if (getRun(session.requireProject().db, event.runId)?.status === 'done') session.emit({ type: 'labels.changed' });
      break;
  }
}

let backendReport: Promise<BackendSummary> | null = null;

/** What training will run on, and how to make it faster; probed once per process (loading native modules is slow). */
export function backendSummary(): Promise<BackendSummary> {
  backendReport ??= diagnoseBackends().then((report) => {
    const chosen = report.candidates.find((c) => c.usable && c.backend === report.recommended)!;
    const nativeMissing = report.candidates.some((c) => c.package === '@tensorflow/tfjs-node' && !c.found);
    const gpuBroken = report.candidates.find((c) => c.package === '@tensorflow/tfjs-node-gpu' && c.found && !c.usable);
    let hint: string | null = null;
    if (gpuBroken) hint = `A GPU build of TensorFlow is installed but unusable: ${gpuBroken.reason}.`;
    else if ((report.recommended === 'wasm' || report.recommended === 'cpu') && nativeMissing) {
      hint = 'Training runs on the CPU through WebAssembly. Installing @tensorflow/tfjs-node (npm install @tensorflow/tfjs-node) usually makes it several times faster; with an NVIDIA GPU and CUDA, @tensorflow/tfjs-node-gpu is faster still.';
    }
    return { backend: chosen.backend, device: chosen.device ?? chosen.package, hint, notes: report.notes };
  });
  return backendReport;
}
