/**
 * What one studio window works on: the open project (holding its writer lock), the job running
 * in it, and the listeners waiting for its events. Transports (HTTP, Electron IPC) share one.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../contract/errors.ts';
import { DB_FILE, openProject, type Project } from '../store/project.ts';
import { countProject } from '../store/status.ts';
import { openProjectFor } from './projects.ts';
import type { Launcher } from '../jobs/job.ts';
import type { JobInfo, RecentProject, ServerEvent } from '../contract/operations.ts';
import { TeamState } from './team.ts';
import { QueuePool } from './label_queue.ts';

export interface SessionOptions {
  /** Where the recent-projects list and the built sample project live. */
  dataDir?: string;
  /** How training jobs start their child process (Electron passes its utilityProcess). */
  launcher?: Launcher;
}

const MAX_RECENT = 12;
/** How long a stopping session waits for its job's last step and checkpoint. */
const JOB_STOP_WAIT_MS = 60_000;

export function defaultDataDir(): string {
  return process.env.CONTRAST_HOME || path.join(os.homedir(), '.contrast-studio');
}

export class Session {
  readonly dataDir: string;
  readonly launcher: Launcher | undefined;
  private current: Project | null = null;
  private readonly listeners = new Set<(event: ServerEvent) => void>();
  private job: (JobInfo & { cancel: () => void; ended: Promise<unknown> }) | null = null;
  /** Teammates' leases and connections, for the open project. */
  readonly team = new TeamState(
    () => this.current?.dir ?? null,
    () => this.emit({ type: 'team.changed' }),
  );

  /** The label queue's ranked images, for the open project. */
  readonly queue = new QueuePool();

  constructor(options: SessionOptions = {}) {
    this.dataDir = path.resolve(options.dataDir ?? defaultDataDir());
    this.launcher = options.launcher;
  }

  get project(): Project | null {
    return this.current;
  }

  requireProject(): Project {
    if (!this.current) throw new UserError('no project is open: create or open one first', 'no_project');
    return this.current;
  }

  /** Opens (or creates) a project, closing the one open before; remembers it among the recent ones. */
  open(dir: string, create = false): Project {
    if (this.current && this.current.dir === path.resolve(dir)) return this.current;
    if (this.job) throw new UserError(`a ${this.job.kind} job is running: wait for it or cancel it before switching projects`, 'busy');
    const next = openProjectFor(dir, { create });
    this.current?.close();
    this.current = next;
    this.team.reset();
    this.queue.invalidate();
    this.remember(next.dir);
    this.emit({ type: 'project.changed', dir: next.dir });
    return next;
  }

  close(): void {
    if (this.job) throw new UserError(`a ${this.job.kind} job is running: wait for it or cancel it first`, 'busy');
    this.current?.close();
    this.current = null;
    this.team.reset();
    this.queue.invalidate();
    this.emit({ type: 'project.changed', dir: null });
  }

  get activeJob(): JobInfo | null {
    if (!this.job) return null;
    const { cancel: _cancel, ended: _ended, ...info } = this.job;
    return info;
  }

  /** Claims the session's one job slot; the returned function frees it. */
  beginJob(info: JobInfo, cancel: () => void): () => void {
    if (this.job) throw new UserError(`a ${this.job.kind} job is already running: wait for it or cancel it`, 'busy');
    const job = { ...info, cancel, ended: Promise.resolve() as Promise<unknown> };
    this.job = job;
    return () => {
      if (this.job === job) this.job = null;
    };
  }

  /** Names the job holding the slot once its run exists (a training run is created after the slot is claimed). */
  setJobId(id: number): void {
    if (this.job) this.job.id = id;
  }

  /** How to cancel the job holding the slot once it has started, and when it has ended. */
  setJobCancel(cancel: () => void, ended: Promise<unknown>): void {
    if (this.job) Object.assign(this.job, { cancel, ended });
  }

  /** Frees the job slot if the job with this id still holds it. */
  finishJob(id: number): void {
    if (this.job?.id === id) this.job = null;
  }

  cancelJob(kind?: JobInfo['kind']): boolean {
    if (!this.job || (kind && this.job.kind !== kind)) return false;
    this.job.cancel();
    return true;
  }

  onEvent(listener: (event: ServerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: ServerEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        console.error('event listener failed:', error);
      }
    }
  }

  recentProjects(): RecentProject[] {
    return this.readRecent().map((entry) => {
      const exists = fs.existsSync(path.join(entry.dir, DB_FILE));
      return { ...entry, exists, ...(exists ? countsOf(entry.dir) : { images: null, labelled: null }) };
    });
  }

  /**
   * Ends the session (the server stopping, Ctrl-C): a running job is asked to stop after its
   * current step, which keeps a checkpoint, and given time to before the project closes under it.
   */
  async dispose(): Promise<void> {
    const job = this.job;
    if (job) {
      job.cancel();
      await Promise.race([job.ended, new Promise((resolve) => setTimeout(resolve, JOB_STOP_WAIT_MS).unref())]);
    }
    this.current?.close();
    this.current = null;
    this.listeners.clear();
  }

  private get recentFile(): string {
    return path.join(this.dataDir, 'recent.json');
  }

  private readRecent(): Omit<RecentProject, 'exists'>[] {
    try {
      const parsed = JSON.parse(fs.readFileSync(this.recentFile, 'utf8'));
      return Array.isArray(parsed) ? parsed.filter((e) => typeof e?.dir === 'string') : [];
    } catch {
      return []; // first start, or a list damaged by hand: start a fresh one
    }
  }

  private remember(dir: string): void {
    const entries = [
      { dir, name: path.basename(dir), openedAt: new Date().toISOString() },
      ...this.readRecent().filter((e) => e.dir !== dir),
    ].slice(0, MAX_RECENT);
    fs.mkdirSync(this.dataDir, { recursive: true });
    fs.writeFileSync(this.recentFile, JSON.stringify(entries, null, 2));
  }
}

function countsOf(dir: string): { images: number | null; labelled: number | null } {
  let project: Project | undefined;
  try {
    project = openProject(dir, { readonly: true });
    const counts = countProject(project.db);
    return { images: counts.images, labelled: counts.labelled };
  } catch {
    return { images: null, labelled: null }; // damaged or from a newer version: the list still shows it
  } finally {
    project?.close();
  }
}
