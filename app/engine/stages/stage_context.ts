/** What a stage gets from whoever runs it (the job executor), and what it reports back. */
import type { Project } from '../../store/project.ts';
import type { Run } from '../../store/runs.ts';
import type { BackendInfo } from '../runtime/backend.ts';

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
}

/** End of an epoch: its mean training values and, for classifiers, validation accuracy. */
export interface StageEpoch {
  epoch: number;
  epochs: number;
  metrics: Record<string, number>;
  /** This epoch's model became the run's best checkpoint. */
  best: boolean;
}

export interface StageContext {
  project: Project;
  run: Run;
  signal: AbortSignal;
  backend: BackendInfo;
  /** When this attempt began (Date.now()); a time budget counts from here. */
  startedAt: number;
  progress(progress: StageProgress): void;
  epochEnd(epoch: StageEpoch): void;
  /** Something the user should know that does not stop the run (skipped images, clamped batch). */
  warn(message: string): void;
}
