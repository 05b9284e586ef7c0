/**
 * What a training run will do, decided before it is created: the parent it builds on, the
 * architecture, and every hyper-parameter with its default filled in. The result is stored as
 * the run's config, so a resumed or repeated run needs nothing but its row.
 */
import { UserError } from '../errors.ts';
import { ensureSplits, type Split } from '../store/labels.ts';
import type { Project } from '../store/project.ts';
import { createRun, getRun, latestDoneRun, requireRun, type Run, type RunKind } from '../store/runs.ts';
import type { BackendName } from './backend.ts';
import { trainingClasses } from './dataset.ts';
import type { ModelConfig } from './model.ts';
import { SMALL_IMAGE_MAX } from './resnet.ts';

export type TrainKind = 'pretrain' | 'finetune' | 'distill';
export type BackendChoice = 'auto' | BackendName;

export interface TrainConfig {
  /** The network this run trains (the student, for distillation). */
  model: ModelConfig;
  /** null: the largest batch up to DEFAULT_BATCH whose step fits in memory, chosen when the run starts. */
  batchSize: number | null;
  /** Exactly one of epochs and minutes is set; a time budget is turned into epochs when the run starts. */
  epochs: number | null;
  minutes: number | null;
  /** Peak learning rate, reached after warm-up; null: the stage's rate per √batch times √batch. */
  learningRate: number | null;
  /** Share of all steps spent warming the learning rate up from 0. */
  warmupFraction: number;
  weightDecay: number;
  seed: number;
  backend: BackendChoice;
  /** pretrain: NT-Xent temperature. */
  temperature?: number;
  /** finetune: draw every class equally often. */
  balanced?: boolean;
  /** finetune: start from random weights instead of a pretrain run (a baseline). */
  supervised?: boolean;
  /** distill: softmax temperature τ of teacher and student. */
  tau?: number;
  /** distill: weight of the cross-entropy on labelled training images, added to the distillation loss. */
  labelWeight?: number;
}

export interface EvaluateConfig {
  split: Exclude<Split, 'train'>;
  backend: BackendChoice;
}

/** What a front end may set; everything left out gets the stage's default. */
export interface TrainOptions {
  parentRunId?: number;
  depth?: number;
  width?: number;
  sk?: boolean;
  imageSize?: number;
  batchSize?: number;
  epochs?: number;
  minutes?: number;
  learningRate?: number;
  weightDecay?: number;
  seed?: number;
  backend?: BackendChoice;
  temperature?: number;
  balanced?: boolean;
  supervised?: boolean;
  tau?: number;
  labelWeight?: number;
}

const OPTION_TYPES: Record<Exclude<keyof TrainOptions, 'backend'>, 'number' | 'boolean'> = {
  parentRunId: 'number',
  depth: 'number',
  width: 'number',
  sk: 'boolean',
  imageSize: 'number',
  batchSize: 'number',
  epochs: 'number',
  minutes: 'number',
  learningRate: 'number',
  weightDecay: 'number',
  seed: 'number',
  temperature: 'number',
  balanced: 'boolean',
  supervised: 'boolean',
  tau: 'number',
  labelWeight: 'number',
};

/**
 * Reads expert settings that arrive as a loose record (the studio's "advanced" overrides),
 * refusing unknown names and wrong types; ranges are checked when the run is planned.
 */
export function parseTrainOptions(record: Record<string, unknown>): TrainOptions {
  const options: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(record)) {
    if (name === 'backend') {
      if (!['auto', 'wasm', 'cpu', 'tensorflow', 'webgpu'].includes(value as string)) {
        throw new UserError(`backend must be auto, wasm, cpu, tensorflow or webgpu, got ${JSON.stringify(value)}`, 'usage');
      }
    } else {
      const type = OPTION_TYPES[name as keyof typeof OPTION_TYPES];
      if (!type) throw new UserError(`unknown training setting "${name}" (known: ${[...Object.keys(OPTION_TYPES), 'backend'].join(', ')})`, 'usage');
      if (typeof value !== type) throw new UserError(`${name} must be a ${type}, got ${JSON.stringify(value)}`, 'usage');
    }
    options[name] = value;
  }
  return options as TrainOptions;
}

export const DEFAULT_MODEL: ModelConfig = { depth: 18, width: 0.5, sk: false, imageSize: 32 };
export const DEFAULT_BATCH = 128;
export const DEFAULT_EPOCHS: Record<TrainKind, number> = { pretrain: 100, finetune: 30, distill: 30 };

/**
 * Learning rate per √batch, as SimCLR scales it for LARS: 0.075·√B for pretraining. Fine-tuning
 * and distillation start from trained weights and take smaller steps.
 */
const LR_PER_SQRT_BATCH: Record<TrainKind, number> = { pretrain: 0.075, finetune: 0.05, distill: 0.05 };
const WARMUP_FRACTION: Record<TrainKind, number> = { pretrain: 0.1, finetune: 0, distill: 0.1 };
const WEIGHT_DECAY: Record<TrainKind, number> = { pretrain: 1e-6, finetune: 0, distill: 1e-6 };

/** The peak learning rate of a run that trains with `batchSize` images per step. */
export function peakLearningRate(kind: TrainKind, config: TrainConfig, batchSize: number): number {
  return config.learningRate ?? LR_PER_SQRT_BATCH[kind] * Math.sqrt(batchSize);
}

export interface TrainPlan {
  kind: TrainKind;
  parent: Run | null;
  config: TrainConfig;
  /** Reasons the results may disappoint; the run can still start. */
  warnings: string[];
}

function check(value: number | undefined, name: string, ok: (v: number) => boolean, rule: string): void {
  if (value !== undefined && !(Number.isFinite(value) && ok(value))) throw new UserError(`${name} must be ${rule}, got ${value}`, 'usage');
}

function validate(options: TrainOptions): void {
  check(options.depth, 'depth', (v) => [18, 34, 50].includes(v), '18, 34 or 50 (resnet18, resnet34, resnet50)');
  check(options.width, 'width', (v) => v > 0 && v <= 4, 'in (0, 4]');
  check(options.imageSize, 'image size', (v) => Number.isInteger(v) && v >= 8 && v <= 1024, 'a whole number of pixels from 8 to 1024');
  check(options.batchSize, 'batch size', (v) => Number.isInteger(v) && v >= 2 && v <= 8192, 'a whole number from 2 to 8192');
  check(options.epochs, 'epochs', (v) => Number.isInteger(v) && v >= 1, 'a whole number ≥ 1');
  check(options.minutes, 'minutes', (v) => v > 0, 'positive');
  check(options.learningRate, 'learning rate', (v) => v > 0, 'positive');
  check(options.weightDecay, 'weight decay', (v) => v >= 0, '≥ 0');
  check(options.seed, 'seed', (v) => Number.isInteger(v) && v >= 0 && v < 2 ** 32, 'a whole number from 0 to 4294967295');
  check(options.temperature, 'temperature', (v) => v > 0, 'positive');
  check(options.tau, 'tau', (v) => v > 0, 'positive');
  check(options.labelWeight, 'label weight', (v) => v >= 0, '≥ 0');
  if (options.epochs !== undefined && options.minutes !== undefined) throw new UserError('give either epochs or minutes, not both', 'usage');
}

function requireDoneParent(project: Project, id: number, kinds: RunKind[], role: string): Run {
  const run = requireRun(project.db, id);
  if (!kinds.includes(run.kind)) throw new UserError(`run ${id} is a ${run.kind} run; ${role} must be a ${kinds.join(' or ')} run`);
  if (run.status !== 'done') throw new UserError(`run ${id} is ${run.status}; ${role} must be a finished run`);
  return run;
}

function findParent(project: Project, kind: TrainKind, options: TrainOptions): Run | null {
  if (kind === 'pretrain') {
    if (options.parentRunId !== undefined) throw new UserError('pretraining starts from scratch: it takes no parent run', 'usage');
    return null;
  }
  if (kind === 'finetune') {
    if (options.supervised) {
      if (options.parentRunId !== undefined) throw new UserError('--supervised trains from random weights: it takes no parent run', 'usage');
      return null;
    }
    if (options.parentRunId !== undefined) return requireDoneParent(project, options.parentRunId, ['pretrain'], 'the run to fine-tune');
    const latest = latestDoneRun(project.db, ['pretrain']);
    if (!latest) throw new UserError('no finished pretrain run to fine-tune: run "contrast pretrain" first, or use --supervised', 'no_parent');
    return latest;
  }
  if (options.parentRunId !== undefined) return requireDoneParent(project, options.parentRunId, ['finetune', 'distill'], 'the teacher');
  const teacher = latestDoneRun(project.db, ['finetune', 'distill']);
  if (!teacher) throw new UserError('distillation needs a teacher: fine-tune a model first ("contrast finetune")', 'no_parent');
  return teacher;
}

/** The architecture: a fine-tune keeps its pretrain run's; a student defaults to its teacher's but may be smaller. */
function modelFor(kind: TrainKind, parent: Run | null, options: TrainOptions): ModelConfig {
  const requested = { depth: options.depth, width: options.width, sk: options.sk, imageSize: options.imageSize };
  if (parent) {
    const inherited = (parent.config as unknown as TrainConfig).model;
    const mayChange = kind === 'distill' ? ['depth', 'width', 'sk'] : [];
    for (const [key, value] of Object.entries(requested)) {
      if (value === undefined || value === inherited[key as keyof ModelConfig]) continue;
      if (!mayChange.includes(key)) {
        throw new UserError(`${key} is fixed by run ${parent.id} (${inherited[key as keyof ModelConfig]}); a ${kind} run cannot change it`, 'usage');
      }
    }
    return {
      depth: (requested.depth ?? inherited.depth) as ModelConfig['depth'],
      width: requested.width ?? inherited.width,
      sk: requested.sk ?? inherited.sk,
      imageSize: inherited.imageSize,
    };
  }
  return {
    depth: (requested.depth ?? DEFAULT_MODEL.depth) as ModelConfig['depth'],
    width: requested.width ?? DEFAULT_MODEL.width,
    sk: requested.sk ?? DEFAULT_MODEL.sk,
    imageSize: requested.imageSize ?? DEFAULT_MODEL.imageSize,
  };
}

function checkData(project: Project, kind: TrainKind, warnings: string[]): void {
  const images = project.db.prepare('SELECT COUNT(*) FROM images').pluck().get() as number;
  if (images < 2) throw new UserError(`training needs images: the project has ${images}; import some first ("contrast import")`, 'no_data');
  if (kind === 'pretrain') return;
  ensureSplits(project.db);
  const classes = trainingClasses(project);
  if (kind === 'finetune' && classes.length < 2) {
    throw new UserError(
      `fine-tuning needs labelled images of at least 2 classes in the training split; found ${classes.length} class(es) ("contrast label")`,
      'no_labels',
    );
  }
  const val = project.db.prepare(`SELECT COUNT(*) FROM splits WHERE split = 'val'`).pluck().get() as number;
  if (kind === 'finetune' && val === 0) warnings.push('no labelled validation images: the best epoch cannot be chosen, the last one is kept');
}

export function planTrainingRun(project: Project, kind: TrainKind, options: TrainOptions = {}): TrainPlan {
  validate(options);
  const warnings: string[] = [];
  const parent = findParent(project, kind, options);
  const model = modelFor(kind, parent, options);
  checkData(project, kind, warnings);
  const config: TrainConfig = {
    model,
    batchSize: options.batchSize ?? null,
    epochs: options.minutes === undefined ? (options.epochs ?? DEFAULT_EPOCHS[kind]) : null,
    minutes: options.minutes ?? null,
    learningRate: options.learningRate ?? null,
    warmupFraction: WARMUP_FRACTION[kind],
    weightDecay: options.weightDecay ?? WEIGHT_DECAY[kind],
    seed: options.seed ?? Math.floor(Math.random() * 2 ** 32),
    backend: options.backend ?? 'auto',
  };
  if (kind === 'pretrain') config.temperature = options.temperature ?? (model.imageSize <= SMALL_IMAGE_MAX ? 0.5 : 0.1);
  if (kind === 'finetune') Object.assign(config, { balanced: options.balanced ?? false, supervised: options.supervised ?? false });
  if (kind === 'distill') Object.assign(config, { tau: options.tau ?? 1, labelWeight: options.labelWeight ?? 0 });
  const misplaced = (['temperature', 'balanced', 'supervised', 'tau', 'labelWeight'] as const).filter(
    (key) => options[key] !== undefined && config[key] === undefined,
  );
  if (misplaced.length > 0) throw new UserError(`${misplaced.join(', ')} does not apply to ${kind}`, 'usage');
  return { kind, parent, config, warnings };
}

/** Plans and records a queued run; returns its id. */
export function createTrainingRun(project: Project, kind: TrainKind, options: TrainOptions = {}): { runId: number; plan: TrainPlan } {
  const plan = planTrainingRun(project, kind, options);
  return { runId: createRun(project.db, kind, plan.parent?.id ?? null, plan.config), plan };
}

/** Records a queued evaluation of a fine-tuned or distilled model on a held-out split. */
export function createEvaluateRun(project: Project, modelRunId: number, split: EvaluateConfig['split'], backend: BackendChoice = 'auto'): number {
  const model = requireDoneParent(project, modelRunId, ['finetune', 'distill'], 'the run to evaluate');
  ensureSplits(project.db);
  const labelled = project.db.prepare('SELECT COUNT(*) FROM splits WHERE split = ?').pluck().get(split) as number;
  if (labelled === 0) throw new UserError(`no labelled ${split} images to evaluate on`, 'no_labels');
  const config: EvaluateConfig = { split, backend };
  return createRun(project.db, 'evaluate', model.id, config);
}

/** The classes (id and name, in logit order) a classifier run learned. */
export function runClasses(project: Project, runId: number): { id: number; name: string }[] {
  const classes = getRun(project.db, runId)?.summary?.classes;
  if (!Array.isArray(classes)) throw new Error(`run ${runId} recorded no class list`);
  return classes as { id: number; name: string }[];
}
