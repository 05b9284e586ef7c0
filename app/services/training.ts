/**
 * Training: presets and expert settings turned into a run's plan, runs started, followed,
 * cancelled and resumed, and the runs' history. The studio calls the handlers; the CLI calls the
 * same functions and follows the job in its own process.
 */
import type { Stage } from '../contract/domain.ts';
import { UserError } from '../contract/errors.ts';
import type { BackendSummary, Preset, RunInfo, TrainPlan, TrainRequest } from '../contract/operations.ts';
import { formOptions, type BackendChoice, type TrainOptions } from '../contract/train_options.ts';
import { diagnoseBackends, type DoctorReport as BackendReport } from '../engine/runtime/backend.ts';
import { createEvaluateRun, createTrainingRun, planTrainingRun, type TrainPlan as EnginePlan } from '../engine/stages/stage_config.ts';
import type { JobEvent } from '../jobs/events.ts';
import { startJob, type Job, type Launcher } from '../jobs/job.ts';
import { imageCount, medianImageSide } from '../store/images.ts';
import { splitSize } from '../store/labels.ts';
import type { Project } from '../store/project.ts';
import { getRun, isResumable, listRuns, metricNames, metricSeries, processIsAlive, requireRun, runLineage, type Run } from '../store/runs.ts';
import { currentModel } from './current_model.ts';
import type { Handlers } from './handlers.ts';
import type { Session } from './session.ts';
import { parseTrainOptions } from './train_options.ts';

export { childProcessLauncher } from '../jobs/job.ts';
/** The WebGPU adapter in words, for `contrast doctor`. */
export { adapterDetails } from '../engine/runtime/webgpu_backend.ts';
export type { BackendChoice, BackendReport, Job, JobEvent, Launcher, Run, TrainOptions };

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

/** Image side to train at: the preset's, but never above the images' own size (upscaling adds cost, not detail). */
function imageSizeFor(project: Project, preset: Preset): number {
  const typical = medianImageSide(project.db);
  const wanted = presets[preset].imageSize;
  return typical ? Math.max(16, Math.min(wanted, Math.round(typical / 8) * 8)) : wanted;
}

/** The studio's request as engine options: the preset's network, the form's overrides, the budget. */
function toOptions(project: Project, request: TrainRequest): TrainOptions {
  const hasParent = request.stage !== 'pretrain';
  const allowed = formOptions(request.stage, hasParent);
  for (const key of Object.keys(request.advanced ?? {})) {
    if (!(allowed as string[]).includes(key)) throw new UserError(`"${key}" cannot be set for ${request.stage} (settable: ${allowed.join(', ')})`, 'bad_setting', { name: key });
  }
  const options = parseTrainOptions(request.stage, request.advanced ?? {});
  if (request.stage === 'pretrain') {
    const preset = presets[request.preset];
    options.depth ??= preset.depth;
    options.width ??= preset.width;
    options.imageSize ??= imageSizeFor(project, request.preset);
  }
  if (request.parentRunId !== undefined) options.parentRunId = request.parentRunId;
  // An epoch count replaces the time budget; otherwise the engine fits epochs to the budget.
  if (options.epochs === undefined) options.minutes = request.budgetMinutes;
  return options;
}

/**
 * The values the advanced form shows for each setting the user may change; null where the engine
 * decides when the run starts (epochs from the budget, batch from memory, rate from the batch, a random seed).
 */
function settingsOf(plan: EnginePlan, stage: Stage, options: TrainOptions): Record<string, Setting | null> {
  const values: Record<string, unknown> = { ...plan.config.model, ...(plan.config as unknown as Record<string, unknown>), seed: options.seed };
  const settings: Record<string, Setting | null> = {};
  for (const key of formOptions(stage, plan.parent !== null)) {
    const value = values[key];
    settings[key] = typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean' ? value : null;
  }
  return settings;
}

/**
 * Seconds the run should take: the budget when one is set; for a fixed epoch count, the step
 * time measured by an earlier run of the same stage and network, or null when there is none yet.
 */
function estimateSeconds(project: Project, plan: EnginePlan, stage: Stage): number | null {
  if (plan.config.minutes !== null) return plan.config.minutes * 60;
  const similar = listRuns(project.db)
    .filter((run) => run.kind === stage && JSON.stringify((run.config as { model?: unknown }).model) === JSON.stringify(plan.config.model))
    .map((run) => ({ secondsPerStep: run.summary?.measuredSecondsPerStep, batch: run.summary?.batchSize ?? (run.config as { batchSize?: number }).batchSize }))
    .filter((m): m is { secondsPerStep: number; batch: number } => typeof m.secondsPerStep === 'number' && typeof m.batch === 'number')
    .at(-1);
  if (!similar) return null;
  const images = stage === 'finetune' ? splitSize(project.db, 'train') : imageCount(project.db);
  return (similar.secondsPerStep / similar.batch) * images * (plan.config.epochs ?? 0);
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

/** Plans and records a queued run of one stage (the CLI's way in: options straight from flags). */
export function createStageRun(project: Project, stage: Stage, flags: Record<string, unknown>): { runId: number; plan: EnginePlan } {
  return createTrainingRun(project, stage, parseTrainOptions(stage, flags));
}

export function createEvaluation(project: Project, modelRunId: number, split: 'val' | 'test', backend: BackendChoice): number {
  return createEvaluateRun(project, modelRunId, split, backend);
}

/** A run that may be resumed, or a clear refusal. */
export function requireResumable(project: Project, runId: number): Run {
  const run = requireRun(project.db, runId);
  if (!isResumable(run.status)) throw new UserError(`run ${runId} is ${run.status}; only interrupted or cancelled runs can be resumed`, 'not_resumable', { runId, status: run.status });
  return run;
}

/** Runs a job in this process (the CLI follows it there). */
export function runHere(project: Project, runId: number): Job {
  return startJob(project, runId, { isolation: 'inline' });
}

export function runInfo(run: Run): RunInfo {
  const { pid: _pid, ...rest } = run;
  return { ...rest, resumable: isResumable(run.status) };
}

/**
 * Every run, as a read-only view tells it: a run whose process died still says 'running' in the
 * database until a writer opens the project, so it is shown as interrupted here too.
 */
export function runsOf(project: Project): RunInfo[] {
  return listRuns(project.db).map((run) => {
    const dead = run.status === 'running' && (run.pid === null || !processIsAlive(run.pid));
    return runInfo(dead ? { ...run, status: 'interrupted' } : run);
  });
}

export function runOf(project: Project, runId: number): Run {
  return requireRun(project.db, runId);
}

/**
 * Starts a job in the session's slot: the slot is claimed before `create` writes the run's row, so
 * a refused start (another job running) leaves no orphan run; the job then runs in a child process.
 */
export function startInChild(session: Session, kind: Run['kind'], create: () => number): number {
  const release = session.beginJob({ kind, id: 0, startedAt: new Date().toISOString() }, () => {});
  let runId: number;
  try {
    runId = create();
  } catch (error) {
    release();
    throw error;
  }
  session.setJobId(runId);
  runInChild(session, session.requireProject(), runId, release);
  return runId;
}

/** Starts a run in a child process, so training never blocks the server that answers the UI. */
function runInChild(session: Session, project: Project, runId: number, release: () => void): void {
  let job: Job;
  try {
    job = startJob(project, runId, { isolation: 'process', launcher: session.launcher });
  } catch (error) {
    release();
    throw error;
  }
  session.setJobCancel(() => job.cancel(), job.done);
  job.on('event', (event: JobEvent) => forward(session, event));
  void job.done.then(() => release());
}

function forward(session: Session, event: JobEvent): void {
  switch (event.type) {
    case 'started':
      session.emit({ type: 'job.started', runId: event.runId, kind: event.kind, backend: event.backend, device: event.device, resumedFromStep: event.resumedFromStep });
      break;
    case 'progress': {
      const { type: _type, ...progress } = event;
      session.emit({ type: 'job.progress', ...progress });
      break;
    }
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

/** Every backend this machine could train on, and why each is or is not usable (`contrast doctor`). */
export function backendReportOf(): Promise<BackendReport> {
  return diagnoseBackends();
}

type TrainingOperations = 'train.plan' | 'train.start' | 'train.cancel' | 'train.resume' | 'runs.list' | 'runs.get' | 'system.backend';

export function trainingHandlers(session: Session): Pick<Handlers, TrainingOperations> {
  const project = () => session.requireProject();
  return {
    async 'train.plan'(request) {
      return planRequest(project(), request);
    },
    async 'train.start'(request) {
      return { runId: startInChild(session, request.stage, () => createTrainingRun(project(), request.stage, toOptions(project(), request)).runId) };
    },
    async 'train.cancel'({ runId }) {
      const run = requireRun(project().db, runId);
      if (session.activeJob?.id === runId && session.activeJob.kind === run.kind) return { cancelled: session.cancelJob() };
      if (run.status === 'running') throw new UserError(`run ${runId} is running in another process; cancel it there`, 'busy', { runId });
      return { cancelled: false };
    },
    async 'train.resume'({ runId }) {
      const run = requireResumable(project(), runId);
      return { runId: startInChild(session, run.kind, () => run.id) };
    },
    async 'runs.list'() {
      const { db } = project();
      return { runs: listRuns(db).map(runInfo), current: currentModel(db) };
    },
    async 'runs.get'({ runId }) {
      const { db } = project();
      const run = requireRun(db, runId);
      const metrics = metricNames(db, runId).map((name) => ({
        name,
        points: metricSeries(db, runId, name).map((p) => [p.step, p.epoch, p.value] as [number, number, number]),
      }));
      return { run: runInfo(run), lineage: runLineage(db, runId).map(runInfo), metrics };
    },
    async 'system.backend'() {
      return backendSummary();
    },
  };
}
