import { UserError } from '../errors.ts';
import type { BackendChoice, TrainKind, TrainOptions } from '../engine/stage_config.ts';
import { createEvaluateRun, createTrainingRun } from '../engine/stage_config.ts';
import { exportModel } from '../engine/export.ts';
import { predictFiles } from '../engine/predict.ts';
import type { JobEvent } from '../jobs/events.ts';
import { startJob } from '../jobs/job.ts';
import type { Project } from '../store/project.ts';
import { isResumable, listRuns, markInterruptedRuns, processIsAlive, requireRun, type Run } from '../store/runs.ts';
import { numberOption, printJson, stringOption, withProject, type CliIO, type Command, type Invocation, type OptionSpec } from './command.ts';
import { formatDuration, progressBar } from './progress.ts';

const ARCHITECTURES: Record<string, number> = { resnet18: 18, resnet34: 34, resnet50: 50 };
const BACKENDS = ['auto', 'wasm', 'cpu', 'tensorflow', 'webgpu'];

const commonOptions: OptionSpec = {
  arch: { type: 'string' },
  width: { type: 'string' },
  sk: { type: 'boolean' },
  size: { type: 'string' },
  batch: { type: 'string' },
  epochs: { type: 'string' },
  minutes: { type: 'string' },
  lr: { type: 'string' },
  'weight-decay': { type: 'string' },
  backend: { type: 'string' },
  seed: { type: 'string' },
  json: { type: 'boolean' },
};

const commonHelp: Record<string, string> = {
  from: 'run to build on (default: the latest finished run of the previous stage)',
  arch: 'resnet18 (default), resnet34 or resnet50',
  width: 'channel width multiplier (default 0.5)',
  sk: 'selective-kernel convolutions',
  size: 'image side in pixels the network sees (default 32)',
  batch: 'images per step (default 128)',
  epochs: 'passes over the data',
  minutes: 'time budget instead of --epochs: the epoch count is fitted to it',
  lr: 'peak learning rate (default scales with √batch)',
  'weight-decay': 'L2 weight decay',
  backend: 'auto (default), wasm, cpu, tensorflow or webgpu',
  seed: 'random seed, for repeatable runs',
  json: 'print events as JSON lines',
};

function choice(call: Invocation, name: string, allowed: string[]): string | undefined {
  const value = stringOption(call, name);
  if (value !== undefined && !allowed.includes(value)) throw new UserError(`--${name} must be one of ${allowed.join(', ')}, got "${value}"`, 'usage');
  return value;
}

function optionalNumber(call: Invocation, name: string, min: number, max = Infinity): number | undefined {
  return call.values[name] === undefined ? undefined : numberOption(call, name, 0, min, max);
}

function runIdOption(call: Invocation, name: string): number | undefined {
  const raw = call.values[name];
  if (raw === undefined) return undefined;
  const id = Number(raw);
  if (!Number.isInteger(id) || id < 1) throw new UserError(`--${name} must be a run id (a whole number), got "${raw}"`, 'usage');
  return id;
}

function requiredRunId(call: Invocation, name: string): number {
  const id = runIdOption(call, name);
  if (id === undefined) throw new UserError(`--${name} is required`, 'usage');
  return id;
}

function trainOptions(call: Invocation): TrainOptions {
  const arch = choice(call, 'arch', Object.keys(ARCHITECTURES));
  const flag = (name: string) => (call.values[name] === undefined ? undefined : Boolean(call.values[name]));
  return {
    parentRunId: runIdOption(call, 'from'),
    depth: arch === undefined ? undefined : ARCHITECTURES[arch],
    width: optionalNumber(call, 'width', 0, 4),
    sk: flag('sk'),
    imageSize: optionalNumber(call, 'size', 8, 1024),
    batchSize: optionalNumber(call, 'batch', 2, 8192),
    epochs: optionalNumber(call, 'epochs', 1, 100_000),
    minutes: optionalNumber(call, 'minutes', 0, 7 * 24 * 60),
    learningRate: optionalNumber(call, 'lr', 0),
    weightDecay: optionalNumber(call, 'weight-decay', 0),
    seed: optionalNumber(call, 'seed', 0, 2 ** 32 - 1),
    backend: choice(call, 'backend', BACKENDS) as BackendChoice | undefined,
    temperature: optionalNumber(call, 'temperature', 0),
    balanced: flag('balanced'),
    supervised: flag('supervised'),
    tau: optionalNumber(call, 'tau', 0),
    labelWeight: optionalNumber(call, 'label-weight', 0),
  };
}

/** The number that says how good a run is, for listings and final lines. */
function keyMetric(run: Pick<Run, 'kind' | 'summary'>): string {
  const summary = run.summary ?? {};
  const percent = (value: unknown) => (typeof value === 'number' ? `${(value * 100).toFixed(1)}%` : undefined);
  if (run.kind === 'pretrain') return percent(summary.top1) ? `contrastive top-1 ${percent(summary.top1)}` : '';
  if (run.kind === 'evaluate') return percent(summary.accuracy) ? `${summary.split} accuracy ${percent(summary.accuracy)}` : '';
  return percent(summary.valAccuracy) ? `val accuracy ${percent(summary.valAccuracy)}` : '';
}

function describeProgress(event: Extract<JobEvent, { type: 'progress' }>): string {
  const m = event.metrics;
  const parts = [`epoch ${Math.min(event.epochs, Math.floor(event.epoch) + 1)}/${event.epochs}`];
  if (m.loss !== undefined) parts.push(`loss ${m.loss.toFixed(3)}`);
  if (m.top1 !== undefined) parts.push(`top-1 ${(m.top1 * 100).toFixed(0)}%`);
  if (m.accuracy !== undefined) parts.push(`acc ${(m.accuracy * 100).toFixed(0)}%`);
  if (m.imagesPerSecond !== undefined) parts.push(`${m.imagesPerSecond.toFixed(0)} img/s`);
  parts.push(`ETA ${formatDuration(event.etaSeconds)}`);
  return parts.join(', ');
}

/** Shows a job's events: a progress bar on a terminal, JSON lines with --json, epoch lines otherwise. */
function reporter(io: CliIO, json: boolean) {
  const bar = progressBar(io, 'training');
  const cacheBar = progressBar(io, 'caching images');
  return (event: JobEvent) => {
    if (json) {
      const { type, ...rest } = event;
      printJson(io, { event: type, ...rest });
      return;
    }
    switch (event.type) {
      case 'started':
        io.err(`run ${event.runId} (${event.kind}) on ${event.device}${event.resumedFromStep !== null ? `, resuming at step ${event.resumedFromStep}` : ''}\n`);
        break;
      case 'progress':
        if (event.phase === 'caching') cacheBar.update(event.step, event.totalSteps, '');
        if (event.phase === 'training') {
          cacheBar.finish();
          bar.update(event.step, event.totalSteps, describeProgress(event));
        }
        break;
      case 'epoch':
        if (!io.tty) {
          const values = Object.entries(event.metrics).map(([name, value]) => `${name} ${value.toFixed(4)}`);
          io.err(`epoch ${event.epoch}/${event.epochs}: ${values.join(', ')}${event.best ? ' (best)' : ''}\n`);
        }
        break;
      case 'warning':
        bar.finish();
        io.err(`warning: ${event.message}\n`);
        break;
      case 'finished':
        cacheBar.finish();
        bar.finish();
        break;
    }
  };
}

/**
 * Runs a job in this process until it ends. Ctrl-C asks it to stop after the current step (it
 * keeps a checkpoint); a second Ctrl-C quits at once and leaves the run to be resumed.
 */
async function follow(project: Project, runId: number, io: CliIO, json: boolean): Promise<number> {
  const job = startJob(project, runId, { isolation: 'inline' });
  job.on('event', reporter(io, json));
  let interrupts = 0;
  const onInterrupt = () => {
    interrupts++;
    if (interrupts === 1) {
      io.err('\nstopping after the current step (Ctrl-C again to quit at once)…\n');
      job.cancel();
    } else {
      process.exit(130);
    }
  };
  process.on('SIGINT', onInterrupt);
  try {
    const finished = await job.done;
    if (finished.status === 'failed') throw new UserError(`run ${runId} failed: ${finished.error}`, 'run_failed');
    if (finished.status === 'cancelled') {
      io.err(`run ${runId} cancelled; its checkpoint is kept: continue with "contrast resume ${project.dir} ${runId}"\n`);
      return 130;
    }
    if (finished.status === 'interrupted') throw new UserError(finished.error ?? `run ${runId} was interrupted`, 'run_failed');
    const run = requireRun(project.db, runId);
    if (!json) io.out(`run ${runId} ${run.kind} done${keyMetric(run) ? `: ${keyMetric(run)}` : ''}\n`);
    return 0;
  } finally {
    process.off('SIGINT', onInterrupt);
  }
}

function trainCommand(kind: TrainKind, summary: string, extra: OptionSpec, extraHelp: Record<string, string>): Command {
  const withParent: OptionSpec = kind === 'pretrain' ? {} : { from: { type: 'string' } };
  return {
    name: kind,
    args: '<project>',
    summary,
    options: { ...withParent, ...commonOptions, ...extra },
    optionHelp: { ...commonHelp, ...extraHelp },
    minArgs: 1,
    maxArgs: 1,
    async run(call) {
      const options = trainOptions(call);
      const json = Boolean(call.values.json);
      return withProject(call.positionals[0], async (project) => {
        const { runId, plan } = createTrainingRun(project, kind, options);
        for (const warning of plan.warnings) call.io.err(`warning: ${warning}\n`);
        if (json) printJson(call.io, { event: 'created', runId, kind, parentId: plan.parent?.id ?? null, config: plan.config });
        return follow(project, runId, call.io, json);
      });
    },
  };
}

const pretrain = trainCommand(
  'pretrain',
  'Self-supervised contrastive pretraining (SimCLR) on every image, labelled or not.',
  { temperature: { type: 'string' } },
  { temperature: 'NT-Xent temperature (default 0.5 up to 64 px, else 0.1)' },
);

const finetune = trainCommand(
  'finetune',
  'Fine-tune a pretrained network on the labelled training images; keeps the epoch best on validation.',
  { balanced: { type: 'boolean' }, supervised: { type: 'boolean' } },
  { balanced: 'draw every class equally often', supervised: 'train from random weights instead (a baseline to compare with)' },
);

const distill = trainCommand(
  'distill',
  'Distil a fine-tuned teacher into a student (same or smaller network) through all images.',
  { tau: { type: 'string' }, 'label-weight': { type: 'string' } },
  { tau: 'softmax temperature of teacher and student (default 1)', 'label-weight': 'weight of an extra cross-entropy on labelled images (default 0)' },
);

const evaluate: Command = {
  name: 'evaluate',
  args: '<project>',
  summary: 'Score a fine-tuned or distilled model on the val or test split; stores predictions for every image.',
  options: { run: { type: 'string' }, split: { type: 'string' }, backend: { type: 'string' }, json: { type: 'boolean' } },
  optionHelp: { run: 'the finetune or distill run to evaluate (required)', split: 'val (default) or test', backend: commonHelp.backend, json: commonHelp.json },
  minArgs: 1,
  maxArgs: 1,
  async run(call) {
    const modelRunId = requiredRunId(call, 'run');
    const split = (choice(call, 'split', ['val', 'test']) ?? 'val') as 'val' | 'test';
    const backend = (choice(call, 'backend', BACKENDS) ?? 'auto') as BackendChoice;
    const json = Boolean(call.values.json);
    return withProject(call.positionals[0], async (project) => {
      const runId = createEvaluateRun(project, modelRunId, split, backend);
      const code = await follow(project, runId, call.io, json);
      if (code === 0 && !json) printEvaluation(call.io, requireRun(project.db, runId));
      return code;
    });
  },
};

interface EvaluationSummary {
  perClass: { name: string; precision: number; recall: number; f1: number; support: number }[];
  classIds: number[];
  classes: { id: number; name: string }[];
  confusion: number[][];
}

function printEvaluation(io: CliIO, run: Run): void {
  const summary = run.summary as unknown as EvaluationSummary;
  const width = Math.max(5, ...summary.perClass.map((c) => c.name.length));
  io.out(`${'class'.padEnd(width)}  precision  recall     f1  support\n`);
  for (const c of summary.perClass) {
    io.out(`${c.name.padEnd(width)}  ${c.precision.toFixed(3).padStart(9)}  ${c.recall.toFixed(3).padStart(6)}  ${c.f1.toFixed(3).padStart(5)}  ${String(c.support).padStart(7)}\n`);
  }
  io.out(`confusion (rows: true class, columns: predicted, order as above):\n`);
  for (const row of summary.confusion) io.out(`  ${row.map((n) => String(n).padStart(5)).join('')}\n`);
}

const resume: Command = {
  name: 'resume',
  args: '<project> <run>',
  summary: 'Continue an interrupted or cancelled run from its last checkpoint.',
  options: { json: { type: 'boolean' } },
  optionHelp: { json: commonHelp.json },
  minArgs: 2,
  maxArgs: 2,
  async run(call) {
    const runId = Number(call.positionals[1]);
    if (!Number.isInteger(runId) || runId < 1) throw new UserError(`run must be a run id (a whole number), got "${call.positionals[1]}"`, 'usage');
    return withProject(call.positionals[0], async (project) => {
      markInterruptedRuns(project.db);
      const run = requireRun(project.db, runId);
      if (!isResumable(run.status)) throw new UserError(`run ${runId} is ${run.status}; only interrupted or cancelled runs can be resumed`, 'not_resumable');
      return follow(project, runId, call.io, Boolean(call.values.json));
    });
  },
};

const runs: Command = {
  name: 'runs',
  args: '<project>',
  summary: 'List the training and evaluation runs: id, kind, parent, status and key metric.',
  options: { json: { type: 'boolean' } },
  optionHelp: { json: 'print the runs as one JSON array' },
  minArgs: 1,
  maxArgs: 1,
  async run(call) {
    return withProject(
      call.positionals[0],
      async (project) => {
        const all = listRuns(project.db).map((run) => ({
          ...run,
          // A run whose process died still says 'running' in a read-only view; show the truth.
          status: run.status === 'running' && (run.pid === null || !processIsAlive(run.pid)) ? 'interrupted' : run.status,
        }));
        if (call.values.json) {
          printJson(call.io, all.map(({ pid: _pid, ...run }) => ({ ...run, keyMetric: keyMetric(run) })));
          return;
        }
        if (all.length === 0) {
          call.io.out('no runs yet: start with "contrast pretrain <project>"\n');
          return;
        }
        call.io.out(`${'id'.padStart(4)}  ${'kind'.padEnd(8)}  ${'parent'.padStart(6)}  ${'status'.padEnd(11)}  metric\n`);
        for (const run of all) {
          const error = run.status === 'failed' && run.error ? run.error : keyMetric(run);
          call.io.out(`${String(run.id).padStart(4)}  ${run.kind.padEnd(8)}  ${String(run.parentId ?? '-').padStart(6)}  ${run.status.padEnd(11)}  ${error}\n`);
        }
      },
      true,
    );
  },
};

const predict: Command = {
  name: 'predict',
  args: '<project> <path...>',
  summary: 'Classify image files or folders with a trained model and write a CSV (path, predicted, confidence).',
  options: { run: { type: 'string' }, out: { type: 'string' }, backend: { type: 'string' } },
  optionHelp: { run: 'the finetune or distill run whose model to use (required)', out: 'CSV file to write (required)', backend: commonHelp.backend },
  minArgs: 2,
  async run(call) {
    const runId = requiredRunId(call, 'run');
    const out = stringOption(call, 'out');
    if (!out) throw new UserError('--out is required: the CSV file to write', 'usage');
    const backend = (choice(call, 'backend', BACKENDS) ?? 'auto') as BackendChoice;
    const [dir, ...paths] = call.positionals;
    const result = await withProject(dir, (project) => predictFiles(project, runId, paths, out, backend), true);
    for (const problem of result.problems) call.io.err(`skipped ${problem.path}: ${problem.reason}\n`);
    call.io.out(`wrote ${result.count} prediction(s) to ${out}\n`);
  },
};

const exportCommand: Command = {
  name: 'export',
  args: '<project>',
  summary: 'Export a trained model as a TF.js layers model (model.json + weights) with labels.json.',
  options: { run: { type: 'string' }, out: { type: 'string' } },
  optionHelp: { run: 'the finetune or distill run to export (required)', out: 'folder to write (required)' },
  minArgs: 1,
  maxArgs: 1,
  async run(call) {
    const runId = requiredRunId(call, 'run');
    const out = stringOption(call, 'out');
    if (!out) throw new UserError('--out is required: the folder to write the model into', 'usage');
    const written = await withProject(call.positionals[0], (project) => exportModel(project, runId, out), true);
    call.io.out(`exported run ${runId} to ${written}\n`);
  },
};

export const trainCommands: Command[] = [pretrain, finetune, distill, evaluate, resume, runs, predict, exportCommand];
