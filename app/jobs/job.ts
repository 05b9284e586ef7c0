/**
 * The job runner: runs one training run at a time per project, either in this process (the CLI)
 * or in a child process (the studio, so training never blocks its event loop), and turns what the
 * run reports into events a CLI, the HTTP server or Electron can follow.
 *
 *   const job = startJob(project, runId, { isolation: 'process' });
 *   for await (const event of job) show(event);   // or job.on('event', show)
 *   job.cancel();                                  // stops after the current step, keeps a checkpoint
 *   const finished = await job.done;               // the 'finished' event
 */
import type { RunKind } from '../contract/domain.ts';
import { EventEmitter } from 'node:events';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { UserError } from '../contract/errors.ts';
import { LOCK_TOKEN_ENV, type Project } from '../store/project.ts';
import { finishRun, markInterruptedRuns, requireRun } from '../store/runs.ts';
import type { FinishedEvent, JobEvent, ParentMessage } from './events.ts';
import { executeRun } from './execute.ts';

/** A started child process as the runner sees it; Electron's utilityProcess fits this too. */
export interface JobChannel {
  send(message: ParentMessage): void;
  onMessage(listener: (event: JobEvent) => void): void;
  /** Called once when the process is gone, whatever the reason. */
  onExit(listener: (code: number | null) => void): void;
}

/** Starts job_process.ts with these arguments and environment (its lock token included). */
export type Launcher = (entry: string, args: string[], env: NodeJS.ProcessEnv) => JobChannel;

export interface JobOptions {
  /** 'inline' runs in this process; 'process' forks job_process.ts. */
  isolation?: 'inline' | 'process';
  launcher?: Launcher;
}

export const JOB_PROCESS_ENTRY = fileURLToPath(new URL('./job_process.ts', import.meta.url));

export class Job extends EventEmitter implements AsyncIterable<JobEvent> {
  readonly done: Promise<FinishedEvent>;
  private readonly history: JobEvent[] = [];
  private finished: FinishedEvent | null = null;
  private resolveDone!: (event: FinishedEvent) => void;
  private cancelHandler: () => void = () => {};

  constructor(
    readonly runId: number,
    readonly kind: RunKind,
  ) {
    super();
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  /** Stops the run after its current step; it saves a checkpoint and ends 'cancelled'. */
  cancel(): void {
    if (!this.finished) this.cancelHandler();
  }

  get isFinished(): boolean {
    return this.finished !== null;
  }

  /** @internal used by startJob */
  setCancelHandler(handler: () => void): void {
    this.cancelHandler = handler;
  }

  /** @internal used by startJob */
  report(event: JobEvent): void {
    if (this.finished) return;
    this.history.push(event);
    this.emit('event', event);
    if (event.type === 'finished') {
      this.finished = event;
      this.resolveDone(event);
    }
  }

  /** Every event from the start (late iterators catch up), ending after 'finished'. */
  async *[Symbol.asyncIterator](): AsyncIterator<JobEvent> {
    let seen = 0;
    while (true) {
      while (seen < this.history.length) {
        const event = this.history[seen++];
        yield event;
        if (event.type === 'finished') return;
      }
      await new Promise((resolve) => this.once('event', resolve));
    }
  }
}

const active = new Map<string, Job>();

/** The job running in a project, if any. */
export function activeJob(project: Project): Job | undefined {
  return active.get(project.dir);
}

/**
 * Starts a queued run, or continues an interrupted or cancelled one from its last checkpoint.
 * Throws a UserError when the project already has a running job.
 */
export function startJob(project: Project, runId: number, options: JobOptions = {}): Job {
  if (!project.lockToken) throw new Error('jobs need the project open for writing, not read-only');
  const running = active.get(project.dir);
  if (running) throw new UserError(`run ${running.runId} (${running.kind}) is still running: wait for it or cancel it`, 'busy');
  markInterruptedRuns(project.db);
  const run = requireRun(project.db, runId);
  if (!['queued', 'interrupted', 'cancelled'].includes(run.status)) {
    throw new UserError(`run ${runId} is ${run.status}; only queued, interrupted or cancelled runs can be started`, 'not_resumable');
  }
  const job = new Job(runId, run.kind);
  active.set(project.dir, job);
  job.done.then(() => active.delete(project.dir));
  if ((options.isolation ?? 'inline') === 'inline') runInline(project, job);
  else runInProcess(project, job, options.launcher ?? forkLauncher);
  return job;
}

function runInline(project: Project, job: Job): void {
  const controller = new AbortController();
  job.setCancelHandler(() => controller.abort());
  // Deferred so a caller can attach listeners before the first event.
  setImmediate(() => {
    executeRun(project, job.runId, { signal: controller.signal, emit: (event) => job.report(event) }).catch((error) => {
      job.report(failure(job, error));
    });
  });
}

function runInProcess(project: Project, job: Job, launch: Launcher): void {
  const channel = launch(JOB_PROCESS_ENTRY, [project.dir, String(job.runId)], {
    ...process.env,
    [LOCK_TOKEN_ENV]: project.lockToken!,
  });
  job.setCancelHandler(() => channel.send({ type: 'cancel' }));
  channel.onMessage((event) => job.report(event));
  channel.onExit((code) => {
    if (!job.isFinished) job.report(afterSilentExit(project, job, code));
  });
}

/** How a run ended when its process exited without reporting it (killed, out of memory, failed to start). */
function afterSilentExit(project: Project, job: Job, code: number | null): FinishedEvent {
  const how = `the training process exited unexpectedly (code ${code})`;
  if (!project.db.open) return { type: 'finished', runId: job.runId, kind: job.kind, status: 'interrupted', error: `${how}; resume the run to continue`, summary: null };
  markInterruptedRuns(project.db);
  let run = requireRun(project.db, job.runId);
  if (run.status === 'queued') {
    finishRun(project.db, job.runId, 'failed', { error: `${how} before the run started` });
    run = requireRun(project.db, job.runId);
  }
  const error =
    run.status === 'interrupted' ? `${how}; resume the run to continue from its last checkpoint` : run.status === 'failed' ? run.error : null;
  return { type: 'finished', runId: job.runId, kind: job.kind, status: run.status as FinishedEvent['status'], error, summary: run.summary };
}

function failure(job: Job, error: unknown): FinishedEvent {
  return { type: 'finished', runId: job.runId, kind: job.kind, status: 'failed', error: String((error as Error)?.message ?? error), summary: null };
}

/**
 * Starts a job entry with Node's child_process.fork and speaks JobEvents over its IPC channel.
 * `entry` replaces the TypeScript entry the runner names (the desktop app runs a bundle of it).
 */
export function childProcessLauncher(options: { entry?: string; execArgv: string[]; env?: NodeJS.ProcessEnv }): Launcher {
  return (typescriptEntry, args, env) => {
    const child = fork(options.entry ?? typescriptEntry, args, {
      env: { ...env, ...options.env },
      execArgv: options.execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    return {
      send: (message) => {
        if (child.connected) child.send(message);
      },
      onMessage: (listener) => child.on('message', (message) => listener(message as JobEvent)),
      // 'close', not 'exit': it comes after the last message, so a finished child is never mistaken for a crash.
      onExit: (listener) => child.once('close', (code) => listener(code)),
    };
  };
}

/** Runs the TypeScript entry through tsx, like bin/contrast.js does. */
export const forkLauncher = childProcessLauncher({ execArgv: ['--import', 'tsx'] });
