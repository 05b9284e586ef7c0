/**
 * What a running job reports. The same objects travel in-process (inline jobs), as child-process
 * messages (job_process.ts) and, mapped to the API's ServerEvents, to the UI.
 */
import type { RunKind, RunStatus, StageEpoch, StageProgress } from '../contract/domain.ts';

export interface StartedEvent {
  type: 'started';
  runId: number;
  kind: RunKind;
  backend: string;
  device: string;
  /** Why faster backends were skipped. */
  notes: string[];
  /** The step a resumed run continues from; null for a fresh start. */
  resumedFromStep: number | null;
}

export interface ProgressEvent extends StageProgress {
  type: 'progress';
  runId: number;
  kind: RunKind;
}

export interface EpochEvent extends StageEpoch {
  type: 'epoch';
  runId: number;
  kind: RunKind;
}

export interface WarningEvent {
  type: 'warning';
  runId: number;
  message: string;
}

export interface FinishedEvent {
  type: 'finished';
  runId: number;
  kind: RunKind;
  /** 'interrupted' when the job's process died without reporting. */
  status: Exclude<RunStatus, 'queued' | 'running'>;
  error: string | null;
  summary: Record<string, unknown> | null;
}

export type JobEvent = StartedEvent | ProgressEvent | EpochEvent | WarningEvent | FinishedEvent;

/** Messages a job's parent sends its child process. */
export type ParentMessage = { type: 'cancel' };
