/**
 * The project's domain words, shared by every room: the store keeps rows of them, the engine
 * reports them and every front end shows them. Types only, so the renderer bundles no Node code.
 */

/** Who or what set a label: a person, the folder an image was imported from, or an accepted model suggestion. */
export type LabelSource = 'human' | 'folder' | 'suggestion';
export type Split = 'train' | 'val' | 'test';

/** The training stages, in the order the pipeline runs them. */
export type Stage = 'pretrain' | 'finetune' | 'distill';
/** What a run did: one of the stages, an evaluation of a trained model, or one-click training of all stages. */
export type RunKind = Stage | 'evaluate' | 'pipeline';
export type RunStatus = 'queued' | 'running' | 'done' | 'failed' | 'cancelled' | 'interrupted';

export interface ClassInfo {
  id: number;
  name: string;
  /** How many images carry this label. */
  labels: number;
}

export interface LabelChange {
  imageId: number;
  previousClassId: number | null;
}

/** A file an import skipped, and why. */
export interface FileProblem {
  path: string;
  status: 'duplicate' | 'error';
  reason: string;
}

export interface ImportProgress {
  phase: 'scanning' | 'importing' | 'done';
  total: number;
  done: number;
  added: number;
  /** Known images found at a new place with their old file gone: moved, so re-linked, not duplicates. */
  relinked: number;
  duplicates: number;
  errors: number;
  alreadyKnown: number;
  imagesPerSecond: number;
  etaSeconds: number | null;
}

/** A class and how likely a model finds it for one image. */
export interface ClassProbability {
  classId: number;
  name: string;
  probability: number;
}

/** A folder prediction (the studio's Predict a folder, `contrast predict`) as it goes. */
export interface PredictProgress {
  phase: 'scanning' | 'predicting' | 'done';
  /** Image files found. */
  total: number;
  /** Files predicted or skipped so far. */
  done: number;
  /** Files that could not be read or decoded (or copied into their class folder), each reported and skipped. */
  errors: number;
  imagesPerSecond: number;
  etaSeconds: number | null;
}

export type StagePhase = 'preparing' | 'caching' | 'measuring' | 'training' | 'evaluating';

export interface StageProgress {
  phase: StagePhase;
  /** Optimizer steps (training) or items done (caching, evaluating). */
  step: number;
  totalSteps: number;
  /** Fractional epoch, e.g. 2.5 halfway through the third. */
  epoch: number;
  epochs: number;
  /** Latest values: loss, top1 (contrastive) or accuracy, lr, imagesPerSecond. */
  metrics: Record<string, number>;
  etaSeconds: number | null;
  /** One-click training: which step of the pipeline this is ('pretrain', 'labels only', 'fine-tune', 'distil', 'predict'). */
  stage?: string;
}

export interface StageEpoch {
  epoch: number;
  epochs: number;
  metrics: Record<string, number>;
  /** This epoch's model became the run's best checkpoint. */
  best: boolean;
}

/** A project's counts, computed once (services/status.ts) for the studio and the CLI alike. */
export interface ProjectCounts {
  images: number;
  labelled: number;
  unlabelled: number;
  testImages: number;
  duplicates: number;
  importErrors: number;
  /** Images whose original is no longer where it was imported from; null when not checked (it stats every file). */
  missingOriginals: number | null;
  classes: ClassInfo[];
  splits: { train: number; val: number; test: number };
  runs: { total: number; byStatus: Partial<Record<RunStatus, number>> };
}
