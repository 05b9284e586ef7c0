/**
 * What a training run will do, decided before it is created: the parent it builds on, the
 * architecture, and every hyper-parameter with its default filled in. The result is stored as
 * the run's config, so a resumed or repeated run needs nothing but its row.
 */
import type { RunKind, Split, Stage } from '../../contract/domain.ts';
import { UserError } from '../../contract/errors.ts';
import type { BackendChoice, TrainOptions } from '../../contract/train_options.ts';
import { ensureSplits, splitSize } from '../../store/labels.ts';
import { imageCount } from '../../store/images.ts';
import type { Project } from '../../store/project.ts';
import { createRun, getRun, latestDoneRun, requireRun, type Run } from '../../store/runs.ts';
import { trainingClasses } from '../../store/ground_truth.ts';
import type { ModelConfig } from '../simclr/model.ts';
import { SMALL_IMAGE_MAX } from '../simclr/resnet.ts';

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
  /** finetune: mixup's α (0: off). */
  mixup?: number;
  /** distill: softmax temperature τ of teacher and student. */
  tau?: number;
  /** distill: weight of the cross-entropy on labelled training images, added to the distillation loss. */
  labelWeight?: number;
  /** Set by one-click training: the pipeline run this stage belongs to. */
  pipelineRunId?: number;
  /** Classifiers of a pipeline skip predicting every image: the pipeline does it once, for the model it keeps. */
  deferOutputs?: boolean;
}

/** What only the pipeline sets on the runs it starts. */
export type PipelineMembership = Pick<TrainConfig, 'pipelineRunId' | 'deferOutputs'>;

export interface EvaluateConfig {
  split: Exclude<Split, 'train'>;
  backend: BackendChoice;
}

export const DEFAULT_MODEL: ModelConfig = { depth: 18, width: 0.5, sk: false, imageSize: 32 };
export const DEFAULT_BATCH = 128;
export const DEFAULT_EPOCHS: Record<Stage, number> = { pretrain: 100, finetune: 30, distill: 30 };

/**
 * Learning rate per √batch, as SimCLR scales it for LARS: 0.075·√B for pretraining. Fine-tuning
 * and distillation start from trained weights and take smaller steps.
 */
const LR_PER_SQRT_BATCH: Record<Stage, number> = { pretrain: 0.075, finetune: 0.05, distill: 0.05 };
const WARMUP_FRACTION: Record<Stage, number> = { pretrain: 0.1, finetune: 0, distill: 0.1 };
/**
 * Mixup's α for a network trained on the labels alone: 45.3% held out against 39.7% without, same seed
 * and budget (docs/study). A fine-tune from pretraining keeps SimCLRv2's plain cross-entropy: unmeasured.
 */
export const SUPERVISED_MIXUP = 1;
const WEIGHT_DECAY: Record<Stage, number> = { pretrain: 1e-6, finetune: 0, distill: 1e-6 };

/** The peak learning rate of a run that trains with `batchSize` images per step. */
export function peakLearningRate(kind: Stage, config: TrainConfig, batchSize: number): number {
  return config.learningRate ?? LR_PER_SQRT_BATCH[kind] * Math.sqrt(batchSize);
}

export interface TrainPlan {
  kind: Stage;
  parent: Run | null;
  config: TrainConfig;
  /** Reasons the results may disappoint; the run can still start. */
  warnings: string[];
}

function requireDoneParent(project: Project, id: number, kinds: RunKind[], role: string): Run {
  const run = requireRun(project.db, id);
  if (!kinds.includes(run.kind)) throw new UserError(`run ${id} is a ${run.kind} run; ${role} must be a ${kinds.join(' or ')} run`);
  if (run.status !== 'done') throw new UserError(`run ${id} is ${run.status}; ${role} must be a finished run`);
  return run;
}

function findParent(project: Project, kind: Stage, options: TrainOptions): Run | null {
  if (kind === 'pretrain') {
    return options.parentRunId === undefined ? null : requireDoneParent(project, options.parentRunId, ['pretrain'], 'the pretraining to continue');
  }
  if (kind === 'finetune') {
    if (options.supervised) {
      if (options.parentRunId !== undefined) throw new UserError('a labels-only (supervised) run trains from random weights: it takes no parent run', 'bad_setting', { name: 'parentRunId' });
      return null;
    }
    if (options.parentRunId !== undefined) return requireDoneParent(project, options.parentRunId, ['pretrain'], 'the run to fine-tune');
    const latest = latestDoneRun(project.db, ['pretrain']);
    if (!latest) throw new UserError('no finished pretrain run to fine-tune', 'no_parent', { stage: kind, needs: 'pretrain' });
    return latest;
  }
  if (options.parentRunId !== undefined) return requireDoneParent(project, options.parentRunId, ['finetune', 'distill'], 'the teacher');
  const teacher = latestDoneRun(project.db, ['finetune', 'distill']);
  if (!teacher) throw new UserError('distillation needs a teacher', 'no_parent', { stage: kind, needs: 'finetune' });
  return teacher;
}

/** The architecture: a fine-tune keeps its pretrain run's; a student defaults to its teacher's but may be smaller. */
function modelFor(kind: Stage, parent: Run | null, options: TrainOptions): ModelConfig {
  const requested = { depth: options.depth, width: options.width, sk: options.sk, imageSize: options.imageSize };
  if (parent) {
    const inherited = (parent.config as unknown as TrainConfig).model;
    const mayChange = kind === 'distill' ? ['depth', 'width', 'sk'] : [];
    for (const [key, value] of Object.entries(requested)) {
      if (value === undefined || value === inherited[key as keyof ModelConfig]) continue;
      if (!mayChange.includes(key)) {
        throw new UserError(`${key} is fixed by run ${parent.id} (${inherited[key as keyof ModelConfig]}); a ${kind} run cannot change it`, 'bad_setting', { name: key });
      }
    }
    // The rest of the parent's network (an imported network's stem, padding and input normalisation) comes along.
    return {
      ...inherited,
      depth: (requested.depth ?? inherited.depth) as ModelConfig['depth'],
      width: requested.width ?? inherited.width,
      sk: requested.sk ?? inherited.sk,
    };
  }
  return {
    depth: (requested.depth ?? DEFAULT_MODEL.depth) as ModelConfig['depth'],
    width: requested.width ?? DEFAULT_MODEL.width,
    sk: requested.sk ?? DEFAULT_MODEL.sk,
    imageSize: requested.imageSize ?? DEFAULT_MODEL.imageSize,
  };
}

function checkData(project: Project, kind: Stage, warnings: string[]): void {
  const images = imageCount(project.db);
  if (images < 2) throw new UserError(`training needs images: the project has ${images}`, 'no_data', { images });
  if (kind === 'pretrain') return;
  ensureSplits(project.db);
  const classes = trainingClasses(project.db);
  if (kind === 'finetune' && classes.length < 2) {
    throw new UserError(
      `fine-tuning needs labelled images of at least 2 classes in the training split; found ${classes.length} class(es)`,
      'no_labels',
    );
  }
  if (kind === 'finetune' && splitSize(project.db, 'val') === 0) warnings.push('no labelled validation images: the best epoch cannot be chosen, the last one is kept');
}

/** Every setting of a `kind` run that trains `model`, the stage's defaults filled in where `options` are silent. */
function stageConfig(kind: Stage, model: ModelConfig, options: TrainOptions): TrainConfig {
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
  if (kind === 'finetune') {
    const supervised = options.supervised ?? false;
    Object.assign(config, { balanced: options.balanced ?? false, supervised, mixup: options.mixup ?? (supervised ? SUPERVISED_MIXUP : 0) });
  }
  if (kind === 'distill') Object.assign(config, { tau: options.tau ?? 1, labelWeight: options.labelWeight ?? 0 });
  return config;
}

export function planTrainingRun(project: Project, kind: Stage, options: TrainOptions = {}): TrainPlan {
  const warnings: string[] = [];
  const parent = findParent(project, kind, options);
  const model = modelFor(kind, parent, options);
  checkData(project, kind, warnings);
  const config = stageConfig(kind, model, options);
  const misplaced = (['temperature', 'balanced', 'supervised', 'mixup', 'tau', 'labelWeight'] as const).filter(
    (key) => options[key] !== undefined && config[key] === undefined,
  );
  if (misplaced.length > 0) throw new UserError(`${misplaced.join(', ')} does not apply to ${kind}`, 'bad_setting', { name: misplaced[0] });
  return { kind, parent, config, warnings };
}

/** Plans and records a queued run; returns its id. */
export function createTrainingRun(
  project: Project,
  kind: Stage,
  options: TrainOptions = {},
  membership: PipelineMembership = {},
): { runId: number; plan: TrainPlan } {
  const plan = planTrainingRun(project, kind, options);
  return { runId: createRun(project.db, kind, plan.parent?.id ?? null, { ...plan.config, ...membership }), plan };
}

/** Records a queued evaluation of a fine-tuned or distilled model on a held-out split. */
export function createEvaluateRun(project: Project, modelRunId: number, split: EvaluateConfig['split'], backend: BackendChoice = 'auto'): number {
  const model = requireDoneParent(project, modelRunId, ['finetune', 'distill'], 'the run to evaluate');
  ensureSplits(project.db);
  if (splitSize(project.db, split) === 0) throw new UserError(`no labelled ${split} images to evaluate on`, 'no_labels');
  const config: EvaluateConfig = { split, backend };
  return createRun(project.db, 'evaluate', model.id, config);
}

/** The classes (id and name, in logit order) a classifier run learned. */
export function runClasses(project: Project, runId: number): { id: number; name: string }[] {
  const classes = getRun(project.db, runId)?.summary?.classes;
  if (!Array.isArray(classes)) throw new Error(`run ${runId} recorded no class list`);
  return classes as { id: number; name: string }[];
}

/** One-click training: the budget and the network every stage of the pipeline trains. */
export interface PipelineConfig {
  minutes: number;
  model: ModelConfig;
  seed: number;
  backend: BackendChoice;
  /** The finished pretrain run (an imported network) to fine-tune and distil; its network is the pipeline's. */
  fromRunId?: number;
}

/** The network one-click training trains: ours by default, or that of the pretrain run it starts from. */
export function pipelineModel(project: Project, fromRunId?: number): ModelConfig {
  if (fromRunId === undefined) return DEFAULT_MODEL;
  return (requireDoneParent(project, fromRunId, ['pretrain'], 'the network to start from').config as unknown as TrainConfig).model;
}

/**
 * Checks the project can be trained end to end (images, labels of two classes) and records a
 * queued pipeline run; its stage runs are created as it goes.
 */
export function createPipelineRun(
  project: Project,
  options: { minutes: number; seed?: number; backend?: BackendChoice; fromRunId?: number },
): { runId: number; config: PipelineConfig } {
  const warnings: string[] = [];
  checkData(project, 'finetune', warnings);
  const config: PipelineConfig = {
    minutes: options.minutes,
    model: pipelineModel(project, options.fromRunId),
    seed: options.seed ?? Math.floor(Math.random() * 2 ** 32),
    backend: options.backend ?? 'auto',
  };
  if (options.fromRunId !== undefined) config.fromRunId = options.fromRunId;
  return { runId: createRun(project.db, 'pipeline', null, config), config };
}

/** The three stages' settings for a training program outside the app, and the run they were taken from. */
export interface TrainerStages {
  stages: Record<Stage, TrainConfig>;
  fromRun: { id: number; kind: Stage } | null;
}

const STAGE_ORDER: Stage[] = ['pretrain', 'finetune', 'distill'];

/**
 * The settings of pretraining, fine-tuning and distillation for the exported trainer. From a run,
 * that run's config and those of the runs it descends from, each for its own stage, and the
 * defaults on the run's network for the stages after it; otherwise the defaults, on the network
 * `options` ask for. An imported network is refused: the exported program trains from scratch.
 */
export function trainerStageConfigs(project: Project, options: TrainOptions & { runId?: number }): TrainerStages {
  const taken = new Map<Stage, TrainConfig>();
  let fromRun: TrainerStages['fromRun'] = null;
  if (options.runId !== undefined) {
    let run: Run | undefined = requireRun(project.db, options.runId);
    if (!(STAGE_ORDER as string[]).includes(run.kind)) {
      throw new UserError(`run ${run.id} is a ${run.kind} run; give a pretrain, finetune or distill run`, 'bad_setting', { name: 'runId' });
    }
    fromRun = { id: run.id, kind: run.kind as Stage };
    for (; run; run = run.parentId === null ? undefined : requireRun(project.db, run.parentId)) {
      const config = run.config as unknown as TrainConfig & { imported?: unknown };
      if (config.imported) {
        throw new UserError(`run ${run.id} is an imported network; the exported trainer trains from random weights, so start from a run trained in the app or from none`, 'trainer_imported_run', { runId: run.id });
      }
      taken.set(run.kind as Stage, config);
    }
  }
  const model = taken.get('pretrain')?.model ?? taken.get('finetune')?.model ?? modelFor('pretrain', null, options);
  const seed = options.seed ?? [...taken.values()][0]?.seed ?? Math.floor(Math.random() * 2 ** 32);
  const stages = Object.fromEntries(STAGE_ORDER.map((kind) => {
    const config = taken.get(kind) ?? stageConfig(kind, model, { seed });
    const { pipelineRunId: _pipeline, deferOutputs: _defer, ...own } = config;
    return [kind, own];
  })) as Record<Stage, TrainConfig>;
  return { stages, fromRun };
}
