/**
 * The one contract between the studio UI and the core. Every front end (the browser through
 * HTTP + WebSocket, Electron through IPC) calls the same operations with the same inputs,
 * validated by the same valibot schemas, and receives the same outputs and events.
 *
 * No Node-only imports here: the renderer imports this file for its types and schemas.
 */
import * as v from 'valibot';
import type {
  ClassInfo,
  ClassProbability,
  FileProblem,
  ImportProgress,
  LabelChange,
  LabelSource,
  PredictProgress,
  ProjectCounts,
  RunKind,
  RunStatus,
  Stage,
  StageEpoch,
  StageProgress,
} from './domain.ts';
import type { NewInvitation, ReviewItem, TeamAgreement, TeamStatus } from './team.ts';

export type { ClassInfo, ClassProbability, FileProblem, ImportProgress, LabelChange, LabelSource, PredictProgress, ProjectCounts, RunKind, RunStatus, Stage, StageEpoch, StageProgress };

// ---- shared shapes ----

const id = v.pipe(v.number(), v.integer(), v.minValue(1));
/**
 * The most images one call may label or restore. Select-all in a 50,000-image project fits twice
 * over and takes about 0.3 s; a million ids held the server, and every tab, for 6 s.
 */
export const MAX_IMAGES_PER_CALL = 100_000;
const tooMany = (issue: { received: string }) =>
  `at most ${MAX_IMAGES_PER_CALL.toLocaleString('en')} images per call, got ${Number(issue.received).toLocaleString('en')}: label them in parts`;
const imageIds = v.pipe(v.array(id), v.minLength(1, 'select at least one image'), v.maxLength(MAX_IMAGES_PER_CALL, tooMany));
const className = v.pipe(v.string(), v.trim(), v.minLength(1, 'a class name cannot be empty'), v.maxLength(100));
const folder = v.pipe(v.string(), v.trim(), v.minLength(1, 'give a folder path'));

export const imageFilterSchema = v.variant('kind', [
  v.object({ kind: v.literal('all') }),
  v.object({ kind: v.literal('unlabelled') }),
  /** Without classId: every labelled image. */
  v.object({ kind: v.literal('labelled'), classId: v.optional(id) }),
  v.object({ kind: v.literal('predicted'), classId: v.optional(id) }),
  /** Latest prediction's confidence below `below` (0..1). */
  v.object({ kind: v.literal('lowConfidence'), below: v.pipe(v.number(), v.minValue(0), v.maxValue(1)) }),
  /** Labelled images whose latest prediction disagrees with the label. */
  v.object({ kind: v.literal('misclassified') }),
]);
export type ImageFilter = v.InferOutput<typeof imageFilterSchema>;

export const imageSortSchema = v.picklist(['import', 'confidence', 'uncertainty']);
export type ImageSort = v.InferOutput<typeof imageSortSchema>;

export const stageSchema = v.picklist(['pretrain', 'finetune', 'distill'] as const satisfies Stage[]);
export const presetSchema = v.picklist(['quick', 'balanced', 'best']);
export type Preset = v.InferOutput<typeof presetSchema>;

/** Expert overrides of a preset (epochs, batchSize, learningRate, imageSize, ...); the engine checks names and ranges. */
const advancedSchema = v.record(v.string(), v.union([v.number(), v.string(), v.boolean()]));

/** A wall-clock budget in minutes; the engine plans the run's steps to fit it. */
const budgetMinutes = v.pipe(v.number(), v.minValue(0.1), v.maxValue(7 * 24 * 60));

const trainRequest = v.object({
  stage: stageSchema,
  preset: presetSchema,
  budgetMinutes,
  advanced: v.optional(advancedSchema),
  /** Run to build on (a pretrain to continue or to fine-tune, a finetune for distill); default for finetune and distill: the latest done one. */
  parentRunId: v.optional(id),
});
export type TrainRequest = v.InferOutput<typeof trainRequest>;

/** The file extensions import, prediction and the desktop file dialog take as images (any case). */
export const IMAGE_FILE_EXTENSIONS = ['jpg', 'jpeg', 'png', 'webp', 'gif', 'bmp', 'tif', 'tiff', 'avif'] as const;

/** The largest image Try it accepts: a large phone or camera photo, not a whole folder in one file. */
export const MAX_TRY_IMAGE_BYTES = 20 * 1024 * 1024;
/** Why an image is refused for its size, in the same words wherever it is checked. */
export function tooLargeMessage(bytes: number): string {
  return `the file is ${(bytes / 2 ** 20).toFixed(1)} MB, above the ${MAX_TRY_IMAGE_BYTES / 2 ** 20} MB limit`;
}

/** Images per Try it call, which carries at most MAX_TRY_IMAGE_BYTES in all; the front end sends more in several calls. */
export const MAX_TRY_IMAGES_PER_CALL = 32;
/** Base64 characters of MAX_TRY_IMAGE_BYTES: what one call's images may add up to. */
export const MAX_TRY_BASE64 = base64Length(MAX_TRY_IMAGE_BYTES);

export function base64Length(bytes: number): number {
  return Math.ceil(bytes / 3) * 4;
}

/** An image's bytes sent to the core (an upload, a paste, or a file the desktop app read), as base64. */
const tryImageSchema = v.object({
  name: v.pipe(v.string(), v.trim(), v.minLength(1, 'an image needs a name'), v.maxLength(255)),
  data: v.pipe(
    v.string(),
    v.minLength(1, 'the image is empty'),
    v.maxLength(MAX_TRY_BASE64, `an image may be at most ${MAX_TRY_IMAGE_BYTES / 2 ** 20} MB`),
    v.regex(/^[A-Za-z0-9+/]+={0,2}$/, 'the image data is not base64'),
  ),
});
export type TryImage = v.InferOutput<typeof tryImageSchema>;

/** One tried image: its three most likely classes, or why it could not be read. */
export type TryOutResult = { name: string; top: ClassProbability[] } | { name: string; error: string };

/** Where a folder prediction puts copies or links of the images, one folder per predicted class. */
export const predictSortSchema = v.picklist(['none', 'copy', 'link']);
export type PredictSort = v.InferOutput<typeof predictSortSchema>;

export interface PredictSummary {
  runId: number;
  /** The folder holding predictions.csv (and the class folders when sorting). */
  outDir: string;
  csvPath: string;
  sort: PredictSort;
  predicted: number;
  errors: number;
  /** The first skipped files with their reasons; every one is in skipped.csv. */
  problems: { path: string; reason: string }[];
  /** Images per predicted class, most first. */
  byClass: { name: string; count: number }[];
  /** Ended by a cancel: the CSV holds the images predicted until then. */
  cancelled: boolean;
  seconds: number;
}

export interface ImageItem {
  id: number;
  labelClassId: number | null;
  labelSource: LabelSource | null;
  /** From the latest run with predictions; null before any model. */
  predictedClassId: number | null;
  confidence: number | null;
}

export interface ImagePage {
  total: number;
  offset: number;
  items: ImageItem[];
  /** The run whose predictions fill `predictedClassId`, or null. */
  predictionRunId: number | null;
}

export interface ImageDetail extends ImageItem {
  fileName: string;
  /** Where the original lies on the host's disk; null for guests, who never see paths. */
  path: string | null;
  width: number;
  height: number;
  format: string;
  size: number;
  split: 'train' | 'val' | 'test' | null;
  testSet: boolean;
  /** Probability per class of the latest prediction, most likely first. */
  probabilities: { classId: number; probability: number }[];
}

export interface JobInfo {
  kind: 'import' | 'predict' | RunKind;
  /** Run id for training jobs, import batch id for imports (0 until the batch row exists), 0 for folder predictions. */
  id: number;
  startedAt: string;
}

export interface BackendSummary {
  backend: string;
  device: string;
  /** Plain-language advice when a faster backend could be installed, else null. */
  hint: string | null;
  notes: string[];
}

export interface ProjectStatus {
  /** Null when no project is open (the Projects screen). */
  project:
    | (ProjectCounts & {
        /** The project folder; for a guest, only its name (guests never see paths). */
        dir: string;
        name: string;
        /** The current model (services/current_model.ts), whose predictions the studio shows. */
        predictionRunId: number | null;
        embeddingRunId: number | null;
      })
    | null;
  activeJob: JobInfo | null;
}

export interface RecentProject {
  dir: string;
  name: string;
  openedAt: string;
  exists: boolean;
  /** Null when the project is gone or could not be read. */
  images: number | null;
  labelled: number | null;
}

export interface ImportSummary extends ImportProgress {
  batchId: number;
  seconds: number;
}

export interface RunInfo {
  id: number;
  kind: RunKind;
  parentId: number | null;
  status: RunStatus;
  config: Record<string, unknown>;
  summary: Record<string, unknown> | null;
  backend: string | null;
  device: string | null;
  error: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  resumable: boolean;
}

export interface MetricSeries {
  name: string;
  /** [step, epoch, value] */
  points: [number, number, number][];
}

export interface RunDetail {
  run: RunInfo;
  lineage: RunInfo[];
  metrics: MetricSeries[];
}

export interface TrainPlan {
  stage: Stage;
  /** The run's full config as the engine will store it (the preset with the overrides applied). */
  config: Record<string, unknown>;
  /** The settings the advanced panel may override for this stage, with the values they would take; null: decided when the run starts. */
  settings: Record<string, number | string | boolean | null>;
  /** The time budget, or for a fixed epoch count an estimate from an earlier similar run; null when unknown. */
  estimateSeconds: number | null;
  parentRunId: number | null;
  /** Reasons the results may disappoint (too few labels, no pretrain yet, ...). */
  warnings: string[];
}

/** Which stages one-click training runs, chosen by its budget plan. */
export type PipelineRecipe = 'simclr' | 'reuse-pretraining' | 'continue-pretraining' | 'labels-then-distil' | 'labels-only';

/** One-click training's plan, shown before Start. */
export interface PipelinePlanView {
  /** e.g. "labels only 6 min (≈40 epochs), distil 4 min (≈1.2 epochs), predict and score 20 s". */
  text: string;
  /** Why these stages (pretraining would not pay off yet, a pretraining is reused, ...). */
  reason: string;
  recipe: PipelineRecipe;
  budgetSeconds: number;
  stages: { label: string; seconds: number; epochs: number }[];
}

/** A pretrained network imported as a pretrain run ("Start from a pretrained network…"). */
export interface ImportedWeights {
  runId: number;
  /** pretrain; finetune or distill for a classifier from the exported trainer. */
  kind: 'pretrain' | 'finetune' | 'distill';
  /** --name, or the file's name. */
  name: string;
  /** e.g. "ResNet-50 ×1, 224 px, ImageNet mean/std input". */
  network: string;
  layout: 'torchvision' | 'simclrv2' | 'contrast';
  format: 'pytorch' | 'safetensors' | 'tfjs';
  /** Keys that became weights, keys left out on purpose (BN counters, the ImageNet classifier), keys outside the network. */
  keys: { mapped: number; ignored: number; outside: number };
  /** Projection-head layers from the file; the others start from random weights. */
  headLayers: string[];
  sha256: string;
}

export interface ClassMetrics {
  classId: number;
  name: string;
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

export interface Evaluation {
  runId: number;
  kind: RunKind;
  split: string;
  accuracy: number;
  images: number;
  perClass: ClassMetrics[];
  /** confusion[t][p]: images of true class classIds[t] predicted as classIds[p]. */
  classIds: number[];
  confusion: number[][];
  /** For a distilled student: its teacher's evaluation on the same images. */
  teacher: { runId: number; accuracy: number; perClass: ClassMetrics[] } | null;
  /** 95% Wilson interval of the accuracy: with few images it is wide, and two models inside each other's intervals cannot be told apart. */
  interval: { low: number; high: number };
  /** What always answering the most common class would score on these images. */
  chance: number;
  /** The model the studio uses, and why (it may be another run than this one). */
  current: { runId: number; reason: string } | null;
  /** What to label next, most useful first. */
  advice: string[];
}

export interface EmbeddingPoint {
  imageId: number;
  x: number;
  y: number;
  labelClassId: number | null;
  predictedClassId: number | null;
}

export interface ExportResult {
  path: string;
  count: number;
  /** Files that could not be written (an original moved or deleted since import), at most the first 100. */
  skipped?: string[];
}

export interface LabelQueue {
  /** 'uncertainty': least sure predictions spread over embedding clusters; 'diverse': stratified sample before any model. */
  strategy: 'uncertainty' | 'diverse';
  runId: number | null;
  items: ImageItem[];
}

// ---- operations ----

/**
 * Operations marked `guest: true` may be called by a guest (an invited teammate): browse, label,
 * undo their own labels, the queue and the current model's suggestions. Every other operation is
 * the host's alone, and dispatch refuses it to a guest whatever the UI shows.
 */
const guest = true;
/** A teammate's name, as invitations and labels carry it. */
export const guestNameSchema = v.pipe(
  v.string(),
  v.trim(),
  v.minLength(1, 'give the teammate a name'),
  v.maxLength(40, 'a name is at most 40 characters'),
  v.regex(/^[\p{L}\p{N}][\p{L}\p{N} ._-]*$/u, 'a name may hold letters, digits, spaces, dots, dashes and underscores'),
);

export const operations = {
  // projects
  'project.status': { input: v.object({}), output: {} as ProjectStatus, guest },
  'projects.recent': { input: v.object({}), output: {} as { projects: RecentProject[] } },
  'projects.create': { input: v.object({ dir: folder }), output: {} as ProjectStatus },
  'projects.open': { input: v.object({ dir: folder }), output: {} as ProjectStatus },
  /** Builds (once) and opens the bundled sample project of CIFAR images. */
  'projects.openSample': { input: v.object({}), output: {} as ProjectStatus },
  'projects.close': { input: v.object({}), output: {} as ProjectStatus },

  // import
  'import.start': {
    input: v.object({
      paths: v.pipe(v.array(folder), v.minLength(1, 'give at least one folder or file')),
      labelsFromFolders: v.optional(v.boolean()),
      testSet: v.optional(v.boolean()),
    }),
    output: {} as { started: true },
  },
  'import.cancel': { input: v.object({}), output: {} as { cancelled: boolean } },
  'import.problems': {
    input: v.object({ status: v.optional(v.picklist(['duplicate', 'error'])), batchId: v.optional(id) }),
    output: {} as { problems: FileProblem[] },
  },

  // images
  'images.list': {
    input: v.object({
      filter: imageFilterSchema,
      sort: imageSortSchema,
      offset: v.pipe(v.number(), v.integer(), v.minValue(0)),
      limit: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(5000)),
    }),
    output: {} as ImagePage,
    guest,
  },
  /** Every id matching a filter in display order: the gallery places thumbnails by id before item details load. */
  'images.ids': { input: v.object({ filter: imageFilterSchema, sort: imageSortSchema }), output: {} as { ids: number[] }, guest },
  'images.get': { input: v.object({ imageId: id }), output: {} as ImageDetail, guest },

  // labels and classes
  'labels.set': {
    input: v.object({ imageIds, classId: v.nullable(id) }),
    output: {} as { changes: LabelChange[]; classes: ClassInfo[] },
    guest,
  },
  /** Puts labels back as they were (undo): each image gets its own class or none. */
  'labels.restore': {
    input: v.object({
      changes: v.pipe(v.array(v.object({ imageId: id, classId: v.nullable(id) })), v.minLength(1), v.maxLength(MAX_IMAGES_PER_CALL, tooMany)),
    }),
    output: {} as { classes: ClassInfo[] },
    guest,
  },
  /** Labels images with their latest predicted class. */
  'predictions.accept': {
    input: v.object({ imageIds }),
    output: {} as { changes: LabelChange[]; classes: ClassInfo[] },
    guest,
  },
  'classes.list': { input: v.object({}), output: {} as { classes: ClassInfo[] }, guest },
  'classes.add': { input: v.object({ name: className }), output: {} as { classId: number; classes: ClassInfo[] } },
  'classes.rename': { input: v.object({ classId: id, name: className }), output: {} as { classes: ClassInfo[] } },
  'classes.merge': { input: v.object({ classId: id, intoClassId: id }), output: {} as { moved: number; classes: ClassInfo[] } },
  'classes.delete': { input: v.object({ classId: id }), output: {} as { removed: number; classes: ClassInfo[] } },
  'queue.next': {
    input: v.object({ limit: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(500)) }),
    output: {} as LabelQueue,
    guest,
  },

  // training
  /** One click: every stage in order, within the minutes given. */
  /** fromRunId: a finished pretrain run (an imported network) to fine-tune and distil, instead of the plan's choice. */
  'pipeline.plan': { input: v.object({ budgetMinutes, fromRunId: v.optional(id) }), output: {} as PipelinePlanView },
  'pipeline.start': { input: v.object({ budgetMinutes, fromRunId: v.optional(id) }), output: {} as { runId: number } },
  /** Imports a pretrained ResNet file (.safetensors, PyTorch .pth/.pt, our TF.js model.json) as a finished pretrain run. */
  'weights.import': {
    input: v.object({
      path: v.pipe(v.string(), v.trim(), v.minLength(1, 'give the path of a weights file')),
      arch: v.optional(v.picklist(['resnet18', 'resnet34', 'resnet50'])),
      imageSize: v.optional(v.pipe(v.number(), v.integer(), v.minValue(8), v.maxValue(1024))),
      name: v.optional(v.pipe(v.string(), v.trim(), v.minLength(1), v.maxLength(100))),
    }),
    output: {} as ImportedWeights,
  },
  'train.plan': { input: trainRequest, output: {} as TrainPlan },
  'train.start': { input: trainRequest, output: {} as { runId: number } },
  'train.cancel': { input: v.object({ runId: id }), output: {} as { cancelled: boolean } },
  'train.resume': { input: v.object({ runId: id }), output: {} as { runId: number } },
  /** Every run, and which classifier is the current model (services/current_model.ts) and why. */
  'runs.list': { input: v.object({}), output: {} as { runs: RunInfo[]; current: { runId: number; reason: string } | null } },
  'runs.get': { input: v.object({ runId: id }), output: {} as RunDetail },
  'system.backend': { input: v.object({}), output: {} as BackendSummary },

  // results
  'results.evaluation': { input: v.object({ runId: v.optional(id) }), output: {} as Evaluation },
  /** The images behind one confusion matrix cell. */
  'results.cellImages': {
    input: v.object({ runId: id, trueClassId: id, predictedClassId: id }),
    output: {} as { items: ImageItem[] },
  },
  'results.embeddingMap': {
    input: v.object({ runId: v.optional(id) }),
    output: {} as { runId: number; points: EmbeddingPoint[] },
  },

  // use the model
  /** The top classes of images the user tries, from the current model unless a run is named; a bad image is reported in its own result. */
  'tryIt.predict': {
    input: v.object({
      images: v.pipe(
        v.array(tryImageSchema),
        v.minLength(1, 'give at least one image'),
        v.maxLength(MAX_TRY_IMAGES_PER_CALL),
        v.check((images) => images.reduce((sum, image) => sum + image.data.length, 0) <= MAX_TRY_BASE64, `the images of one call may add up to at most ${MAX_TRY_IMAGE_BYTES / 2 ** 20} MB`),
      ),
      runId: v.optional(id),
    }),
    output: {} as { runId: number; results: TryOutResult[] },
  },
  /** Copies a tried image into the project's added/ folder, imports it and labels it; an image already in the project is only labelled. */
  'tryIt.add': {
    input: v.object({ image: tryImageSchema, classId: id }),
    output: {} as { imageId: number; added: boolean; path: string; classes: ClassInfo[] },
  },
  /** Predicts every image below a folder as a job: predictions.csv, optionally the images sorted into class folders. */
  'predict.start': {
    input: v.object({ folder, runId: v.optional(id), sort: v.optional(predictSortSchema) }),
    output: {} as { started: true; outDir: string },
  },
  'predict.cancel': { input: v.object({}), output: {} as { cancelled: boolean } },

  // export
  /** `withAuthor`: the CSV gets an author column (host or the teammate's name). */
  'export.labels': { input: v.object({ format: v.picklist(['csv', 'folders']), withAuthor: v.optional(v.boolean()) }), output: {} as ExportResult },

  // label as a team
  /** Who this caller is: the host, or the teammate an invitation names. */
  'team.me': { input: v.object({}), output: {} as { role: 'host' | 'guest'; name: string }, guest },
  'team.status': { input: v.object({}), output: {} as TeamStatus },
  /** Starts or stops serving the labelling part of the studio on the local network. */
  'team.share': { input: v.object({ on: v.boolean() }), output: {} as TeamStatus },
  /** A personal link for one teammate; inviting a name again replaces its old link. */
  'team.invite': { input: v.object({ name: guestNameSchema }), output: {} as NewInvitation },
  /** The link stops working at once, its open connections included. */
  'team.revoke': { input: v.object({ name: guestNameSchema }), output: {} as { revoked: boolean } },
  'team.setOverlap': { input: v.object({ fraction: v.pipe(v.number(), v.minValue(0), v.maxValue(0.5)) }), output: {} as TeamStatus },
  'team.agreement': { input: v.object({}), output: {} as TeamAgreement },
  /** Images whose labellers disagree, for the host to settle. */
  'review.list': { input: v.object({ limit: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(500))) }), output: {} as { items: ReviewItem[] } },
  /** The host's final label for a disputed image; every vote stays in its history. */
  'review.resolve': { input: v.object({ imageId: id, classId: id }), output: {} as { classes: ClassInfo[] } },
  'export.predictions': { input: v.object({ runId: v.optional(id) }), output: {} as ExportResult },
  'export.model': { input: v.object({ runId: v.optional(id) }), output: {} as ExportResult },
} as const;

export type OperationName = keyof typeof operations;
export type Input<N extends OperationName> = v.InferOutput<(typeof operations)[N]['input']>;
export type Output<N extends OperationName> = (typeof operations)[N]['output'];
export const operationNames = Object.keys(operations) as OperationName[];

export function guestMayCall(name: OperationName): boolean {
  return 'guest' in operations[name] && operations[name].guest === true;
}

export type ServerEvent =
  | { type: 'job.started'; runId: number; kind: RunKind; backend: string; device: string; resumedFromStep: number | null }
  | ({ type: 'job.progress'; runId: number; kind: RunKind } & StageProgress)
  /** End of an epoch: mean training values and, for classifiers, validation accuracy. */
  | ({ type: 'job.epoch'; runId: number; kind: RunKind } & StageEpoch)
  | { type: 'job.warning'; runId: number; message: string }
  | { type: 'job.finished'; runId: number; kind: RunKind; status: RunStatus; error: string | null }
  | ({ type: 'import.progress' } & ImportProgress)
  /** summary is null when the import failed or was cancelled; error says why. */
  | { type: 'import.finished'; summary: ImportSummary | null; error: string | null }
  | ({ type: 'predict.progress' } & PredictProgress)
  /** summary is null when the prediction failed; error says why. A cancelled one has a summary. */
  | { type: 'predict.finished'; summary: PredictSummary | null; error: string | null }
  /** Labels or classes changed (by another window or a job); views reload what they show. */
  | { type: 'labels.changed' }
  | { type: 'project.changed'; dir: string | null }
  /** Invitations, connections or overlap changed (the host's Invite teammates dialog reloads). */
  | { type: 'team.changed' };

/** How an operation failed: `code` is stable for programs, `message` is one readable line for people. */
export interface ApiErrorBody {
  code: string;
  message: string;
}

export interface Api {
  call<N extends OperationName>(name: N, input: Input<N>): Promise<Output<N>>;
  onEvent(listener: (e: ServerEvent) => void): () => void;
}

/** Thrown by Api implementations when an operation fails, carrying the server's readable message. */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 500,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Where a browser tab trades its token for the cookie its <img> tags and WebSocket carry (contrast serve only). */
export const SESSION_PATH = '/api/session';

/** Server path of an image's thumbnail or original, always by id. */
export function mediaPath(kind: 'thumb' | 'image', imageId: number): string {
  return `/api/${kind}/${imageId}`;
}
