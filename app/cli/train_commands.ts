import type { Stage } from '../contract/domain.ts';
import { UserError } from '../contract/errors.ts';
import type { RunInfo } from '../contract/operations.ts';
import { optionsForStage } from '../contract/train_options.ts';
import { exportModelOf } from '../services/exports.ts';
import { openModel, predictFolder } from '../services/folder_predictions.ts';
import { createOneClickRun, planOneClick } from '../services/pipeline.ts';
import type { Project } from '../services/projects.ts';
import { createEvaluation, createStageRun, requireResumable, runHere, runOf, runsOf, type JobEvent, type Run } from '../services/training.ts';
import { numberOption, printJson, stringOption, withProject, type CliIO, type Command, type Invocation } from './command.ts';
import { backendFlag, choice, trainFlagValues, trainFlags } from './train_flags.ts';
import { formatDuration, progressBar } from './progress.ts';

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

/** The number that says how good a run is, for listings and final lines. */
function keyMetric(run: Pick<RunInfo, 'kind' | 'summary'>): string {
  const summary = run.summary ?? {};
  const percent = (value: unknown) => (typeof value === 'number' ? `${(value * 100).toFixed(1)}%` : undefined);
  const imported = summary.imported as { name?: string } | undefined;
  if (run.kind === 'pretrain' && imported) return `imported ${imported.name}: ${summary.network}`;
  const trainer = summary.exportedTrainer as { valAccuracy?: number | null } | undefined;
  if (imported && trainer) return `imported ${imported.name} from the exported trainer: ${summary.network}${percent(trainer.valAccuracy) ? `, val accuracy there ${percent(trainer.valAccuracy)}` : ''}`;
  if (run.kind === 'pretrain') return percent(summary.top1) ? `contrastive top-1 ${percent(summary.top1)}` : '';
  if (run.kind === 'evaluate') return percent(summary.accuracy) ? `${summary.split} accuracy ${percent(summary.accuracy)}` : '';
  if (run.kind === 'pipeline') return (summary.choice as { reason?: string } | undefined)?.reason ?? '';
  return percent(summary.valAccuracy) ? `val accuracy ${percent(summary.valAccuracy)}` : '';
}

function describeProgress(event: Extract<JobEvent, { type: 'progress' }>): string {
  const m = event.metrics;
  const parts = [`epoch ${Math.min(Math.ceil(event.epochs), Math.floor(event.epoch) + 1)}/${Math.ceil(event.epochs)}`];
  if (event.stage) parts.unshift(event.stage);
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
  const job = runHere(project, runId);
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
    const run = runOf(project, runId);
    if (!json) io.out(`run ${runId} ${run.kind} done${keyMetric(run) ? `: ${keyMetric(run)}` : ''}\n`);
    return 0;
  } finally {
    process.off('SIGINT', onInterrupt);
  }
}

function trainCommand(stage: Stage, summary: string): Command {
  return {
    name: stage,
    args: '<project>',
    summary,
    options: { json: { type: 'boolean', help: 'print events as JSON lines' }, ...trainFlags(optionsForStage(stage)) },
    async run(call) {
      const flags = trainFlagValues(call, optionsForStage(stage));
      const json = Boolean(call.values.json);
      return withProject(call.positionals[0], async (project) => {
        const { runId, plan } = createStageRun(project, stage, flags);
        for (const warning of plan.warnings) call.io.err(`warning: ${warning}\n`);
        if (json) printJson(call.io, { event: 'created', runId, kind: stage, parentId: plan.parent?.id ?? null, config: plan.config });
        return follow(project, runId, call.io, json);
      });
    },
  };
}

const pretrain = trainCommand('pretrain', 'Self-supervised contrastive pretraining (SimCLR) on every image, labelled or not.');
const finetune = trainCommand('finetune', 'Fine-tune a pretrained network on the labelled training images; keeps the epoch best on validation.');
const distill = trainCommand('distill', 'Distil a fine-tuned teacher into a student (same or smaller network) through all images.');

const evaluate: Command = {
  name: 'evaluate',
  args: '<project>',
  summary: 'Score a fine-tuned or distilled model on the val or test split; stores predictions for every image.',
  options: {
    run: { type: 'string', help: 'the finetune or distill run to evaluate (required)' },
    split: { type: 'string', help: 'val (default) or test' },
    ...trainFlags(['backend']),
    json: { type: 'boolean', help: 'print events as JSON lines' },
  },
  async run(call) {
    const modelRunId = requiredRunId(call, 'run');
    const split = (choice(call, 'split', ['val', 'test']) ?? 'val') as 'val' | 'test';
    const backend = backendFlag(call) ?? 'auto';
    const json = Boolean(call.values.json);
    return withProject(call.positionals[0], async (project) => {
      const runId = createEvaluation(project, modelRunId, split, backend);
      const code = await follow(project, runId, call.io, json);
      if (code === 0 && !json) printEvaluation(call.io, runOf(project, runId));
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
  options: {
    json: { type: 'boolean', help: 'print events as JSON lines' },
  },
  async run(call) {
    const runId = Number(call.positionals[1]);
    if (!Number.isInteger(runId) || runId < 1) throw new UserError(`run must be a run id (a whole number), got "${call.positionals[1]}"`, 'usage');
    return withProject(call.positionals[0], async (project) => {
      requireResumable(project, runId);
      return follow(project, runId, call.io, Boolean(call.values.json));
    });
  },
};

const runs: Command = {
  name: 'runs',
  args: '<project>',
  summary: 'List the training and evaluation runs: id, kind, parent, status and key metric.',
  options: {
    json: { type: 'boolean', help: 'print the runs as one JSON array' },
  },
  async run(call) {
    return withProject(
      call.positionals[0],
      async (project) => {
        const all = runsOf(project);
        if (call.values.json) {
          printJson(call.io, all.map((run) => ({ ...run, keyMetric: keyMetric(run) })));
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
  summary:
    'Classify image files or folders with a trained model (default: the current one) and write a CSV: path, the predicted class and its confidence, and the next two classes with theirs. Unreadable files are listed and skipped.',
  options: {
    run: { type: 'string', help: 'the finetune or distill run whose model to use (default: the current model)' },
    out: { type: 'string', help: 'CSV file to write (required)' },
    'copy-to': { type: 'string', help: 'also copy each image into <folder>/<predicted class>/' },
    'link-to': { type: 'string', help: 'also link each image (a symbolic link) into <folder>/<predicted class>/' },
    ...trainFlags(['backend']),
    json: { type: 'boolean', help: 'print progress and the summary as JSON lines' },
  },
  async run(call) {
    const runId = runIdOption(call, 'run');
    const out = stringOption(call, 'out');
    if (!out) throw new UserError('--out is required: the CSV file to write', 'usage');
    const backend = backendFlag(call) ?? 'auto';
    const sortInto = sortOption(call);
    const json = Boolean(call.values.json);
    const [dir, ...paths] = call.positionals;
    const bar = progressBar(call.io, 'predicting');
    const result = await withProject(
      dir,
      async (project) => {
        const model = await openModel(project, runId, backend);
        try {
          return await predictFolder(model, {
            paths,
            csvFile: out,
            sortInto,
            onProgress: (p) => {
              if (json) printJson(call.io, { event: 'progress', ...p });
              else if (p.phase === 'predicting') bar.update(p.done, p.total, `${p.imagesPerSecond.toFixed(0)} img/s, ETA ${formatDuration(p.etaSeconds)}`);
            },
          });
        } finally {
          model.dispose();
        }
      },
      true,
    );
    bar.finish();
    if (json) return printJson(call.io, { event: 'summary', csvFile: out, ...result });
    for (const problem of result.problems) call.io.err(`skipped ${problem.path}: ${problem.reason}\n`);
    const rate = result.seconds > 0 ? ` in ${result.seconds.toFixed(1)}s (${(result.predicted / result.seconds).toFixed(0)} images/s)` : '';
    call.io.out(`wrote ${result.predicted} prediction(s) to ${out}${rate}\n`);
    if (sortInto) call.io.out(`${sortInto.mode === 'copy' ? 'copied' : 'linked'} them into ${sortInto.dir}/<class>/: ${result.byClass.map((c) => `${c.name} ${c.count}`).join(', ')}\n`);
  },
};

function sortOption(call: Invocation): { mode: 'copy' | 'link'; dir: string } | undefined {
  const copyTo = stringOption(call, 'copy-to');
  const linkTo = stringOption(call, 'link-to');
  if (copyTo && linkTo) throw new UserError('give --copy-to or --link-to, not both', 'usage');
  if (copyTo) return { mode: 'copy', dir: copyTo };
  if (linkTo) return { mode: 'link', dir: linkTo };
  return undefined;
}

const exportCommand: Command = {
  name: 'export',
  args: '<project>',
  summary: 'Export a trained model as a folder: model.onnx, a TF.js layers model (model.json + weights.bin), labels.json and a README.md.',
  options: {
    run: { type: 'string', help: 'the finetune or distill run to export (default: the current model)' },
    out: { type: 'string', help: 'folder to write (required)' },
  },
  async run(call) {
    const out = stringOption(call, 'out');
    if (!out) throw new UserError('--out is required: the folder to write the model into', 'usage');
    const written = await withProject(call.positionals[0], (project) => exportModelOf(project, out, runIdOption(call, 'run')), true);
    call.io.out(`exported run ${written.runId} to ${written.path}\n`);
  },
};

const train: Command = {
  name: 'train',
  args: '<project>',
  summary: 'One click: the stages the budget allows (pretrain, fine-tune or labels only, distil), then the best model on validation becomes the current one; all within --minutes.',
  options: {
    minutes: { type: 'string', help: 'the time budget, decoding and predicting included (required)' },
    from: { type: 'string', help: 'a finished pretrain run to fine-tune and distil, e.g. an imported network (default: the plan chooses)' },
    ...trainFlags(['seed']),
    ...trainFlags(['backend']),
    json: { type: 'boolean', help: 'print the plan and events as JSON lines' },
  },
  async run(call) {
    if (call.values.minutes === undefined) throw new UserError('--minutes is required: the time budget', 'usage');
    const minutes = numberOption(call, 'minutes', 0, 0.1, 7 * 24 * 60);
    const seed = call.values.seed === undefined ? undefined : numberOption(call, 'seed', 0, 0, 2 ** 32 - 1);
    const backend = backendFlag(call);
    const json = Boolean(call.values.json);
    const fromRunId = runIdOption(call, 'from');
    return withProject(call.positionals[0], async (project) => {
      const plan = planOneClick(project, minutes, fromRunId);
      if (json) printJson(call.io, { event: 'plan', ...plan });
      else call.io.err(`plan: ${plan.text}\n      ${plan.reason}\n`);
      const runId = createOneClickRun(project, minutes, { seed, backend, fromRunId });
      if (json) printJson(call.io, { event: 'created', runId, kind: 'pipeline' });
      return follow(project, runId, call.io, json);
    });
  },
};

export const trainCommands: Command[] = [train, pretrain, finetune, distill, evaluate, resume, runs, predict, exportCommand];
