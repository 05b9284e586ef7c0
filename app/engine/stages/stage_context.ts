/** What a stage gets from whoever runs it (the job executor), and what it reports back. */
import type { StageEpoch, StageProgress } from '../../contract/domain.ts';
import type { Project } from '../../store/project.ts';
import type { Run } from '../../store/runs.ts';
import type { BackendInfo } from '../runtime/backend.ts';

/** Where a stage's metric points go; the job executor stores them with the run. */
export interface MetricsRecorder {
  record(step: number, epoch: number, values: Record<string, number>): void;
  /** Drops points after `step`, so a resumed run's curves continue from its checkpoint. */
  forgetAfter(step: number): void;
  /** The newest value recorded under a name. */
  last(name: string): number | undefined;
}

export interface StageContext {
  project: Project;
  run: Run;
  signal: AbortSignal;
  backend: BackendInfo;
  /** When this attempt began (Date.now()); a time budget counts from here. */
  startedAt: number;
  metrics: MetricsRecorder;
  progress(progress: StageProgress): void;
  epochEnd(epoch: StageEpoch): void;
  /** Something the user should know that does not stop the run (skipped images, clamped batch). */
  warn(message: string): void;
}
