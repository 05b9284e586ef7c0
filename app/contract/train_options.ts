/**
 * Every training setting a person may choose, defined once. The services parse and range-check
 * requests against it, the CLI derives its flags and help from it and the studio its advanced
 * form, so a new hyper-parameter is one entry here (plus its use in the engine).
 */
import type { Stage } from './domain.ts';

export const BACKEND_CHOICES = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

/** The CLI spells architectures by name; the options store the depth. */
export const ARCHITECTURES = { resnet18: 18, resnet34: 34, resnet50: 50 } as const;

interface Common {
  /** The CLI flag, without the dashes. */
  flag: string;
  /** A short label for the studio's form. */
  label: string;
  /** One line for `--help` and the form's tooltip. */
  help: string;
  /** The stages this setting applies to. */
  stages: readonly Stage[];
  /** Stages in which the parent run fixes this setting (a fine-tune keeps its pretraining's network). */
  fixedByParent?: readonly Stage[];
  /** False for settings the studio asks for elsewhere (the budget, the run to build on). */
  inForm?: false;
}

export type OptionDefinition =
  | (Common & { type: 'number'; min: number; max: number; integer?: boolean; exclusiveMin?: boolean })
  | (Common & { type: 'boolean' })
  | (Common & { type: 'choice'; choices: readonly string[] });

const ALL: readonly Stage[] = ['pretrain', 'finetune', 'distill'];

export const TRAIN_OPTIONS = {
  parentRunId: { flag: 'from', label: 'from run', help: 'run to build on: a pretraining to continue, a pretraining to fine-tune, a teacher to distil (default for fine-tune and distil: the latest finished run of the previous stage)', stages: ['pretrain', 'finetune', 'distill'], inForm: false, type: 'number', min: 1, max: Number.MAX_SAFE_INTEGER, integer: true },
  /** Given by name (resnet18) or depth (18); stored as the depth. */
  depth: { flag: 'arch', label: 'network', help: 'resnet18 (default), resnet34 or resnet50', stages: ['pretrain', 'finetune', 'distill'], fixedByParent: ['finetune'], type: 'choice', choices: Object.keys(ARCHITECTURES) },
  width: { flag: 'width', label: 'width', help: 'channel width multiplier (default 0.5)', stages: ['pretrain', 'finetune', 'distill'], fixedByParent: ['finetune'], type: 'number', min: 0, max: 4, exclusiveMin: true },
  sk: { flag: 'sk', label: 'selective kernels', help: 'selective-kernel convolutions', stages: ['pretrain', 'finetune', 'distill'], fixedByParent: ['finetune'], type: 'boolean' },
  imageSize: { flag: 'size', label: 'image size', help: 'image side in pixels the network sees (default 32)', stages: ALL, fixedByParent: ['finetune', 'distill'], type: 'number', min: 8, max: 1024, integer: true },
  batchSize: { flag: 'batch', label: 'batch size', help: 'images per step (default: the largest up to 128 that fits in memory)', stages: ALL, type: 'number', min: 2, max: 8192, integer: true },
  epochs: { flag: 'epochs', label: 'epochs', help: 'passes over the data (replaces the time budget)', stages: ALL, type: 'number', min: 1, max: 100_000, integer: true },
  minutes: { flag: 'minutes', label: 'minutes', help: 'time budget instead of --epochs: the epoch count is fitted to it', stages: ALL, inForm: false, type: 'number', min: 0, max: 7 * 24 * 60, exclusiveMin: true },
  learningRate: { flag: 'lr', label: 'learning rate', help: 'peak learning rate (default scales with √batch)', stages: ALL, type: 'number', min: 0, max: 1000, exclusiveMin: true },
  weightDecay: { flag: 'weight-decay', label: 'weight decay', help: 'L2 weight decay', stages: ALL, type: 'number', min: 0, max: 1 },
  seed: { flag: 'seed', label: 'seed', help: 'random seed, for repeatable runs', stages: ALL, type: 'number', min: 0, max: 2 ** 32 - 1, integer: true },
  backend: { flag: 'backend', label: 'backend', help: 'auto (default), tensorflow, webgpu, wasm or cpu', stages: ALL, type: 'choice', choices: BACKEND_CHOICES },
  temperature: { flag: 'temperature', label: 'temperature', help: 'NT-Xent temperature (default 0.5 up to 64 px, else 0.1)', stages: ['pretrain'], type: 'number', min: 0, max: 100, exclusiveMin: true },
  balanced: { flag: 'balanced', label: 'balanced classes', help: 'draw every class equally often', stages: ['finetune'], type: 'boolean' },
  supervised: { flag: 'supervised', label: 'labels only', help: 'train from random weights instead (a baseline to compare with)', stages: ['finetune'], type: 'boolean' },
  mixup: { flag: 'mixup', label: 'mixup α', help: 'blend labelled images and their labels in pairs, share ~ Beta(α, α) (default 1 with --supervised, else 0: off)', stages: ['finetune'], type: 'number', min: 0, max: 10 },
  tau: { flag: 'tau', label: 'τ', help: 'softmax temperature of teacher and student (default 1)', stages: ['distill'], type: 'number', min: 0, max: 100, exclusiveMin: true },
  labelWeight: { flag: 'label-weight', label: 'label weight', help: 'weight of an extra cross-entropy on labelled images (default 0)', stages: ['distill'], type: 'number', min: 0, max: 100 },
} as const satisfies Record<string, OptionDefinition>;

export type TrainOptionName = keyof typeof TRAIN_OPTIONS;

/** What a front end may set; everything left out gets the stage's default. */
export interface TrainOptions {
  parentRunId?: number;
  depth?: 18 | 34 | 50;
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
  mixup?: number;
  tau?: number;
  labelWeight?: number;
}

/** The names a stage accepts, in definition order. */
export function optionsForStage(stage: Stage): TrainOptionName[] {
  return (Object.keys(TRAIN_OPTIONS) as TrainOptionName[]).filter((name) => (TRAIN_OPTIONS[name].stages as readonly Stage[]).includes(stage));
}

/** The settings the studio's form offers for a stage; a run with a parent cannot change what the parent fixed. */
export function formOptions(stage: Stage, hasParent: boolean): TrainOptionName[] {
  return optionsForStage(stage).filter((name) => {
    const definition: OptionDefinition = TRAIN_OPTIONS[name];
    return definition.inForm !== false && !(hasParent && definition.fixedByParent?.includes(stage));
  });
}

/** The rule a number must keep, in words, for error messages in every front end. */
export function describeRange(definition: Extract<OptionDefinition, { type: 'number' }>): string {
  const kind = definition.integer ? 'a whole number' : 'a number';
  const low = definition.exclusiveMin ? `above ${definition.min}` : `from ${definition.min}`;
  return `${kind} ${low} to ${definition.max}`;
}
