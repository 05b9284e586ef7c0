import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { UserError } from '../contract/errors.ts';
import { migrate } from './migrations.ts';

export const DB_FILE = 'project.db';
const LOCK_FILE = 'project.lock';
/** A child process (a training job) started by the lock holder joins its lock through this. */
export const LOCK_TOKEN_ENV = 'CONTRAST_PROJECT_TOKEN';
/** The desktop app points this at an Electron-ABI build of better-sqlite3 (main/native_binding.ts). */
export const SQLITE_BINDING_ENV = 'CONTRAST_SQLITE_BINDING';

interface LockInfo {
  pid: number;
  host: string;
  token: string;
  since: string;
}

export interface OpenOptions {
  create?: boolean;
  /** Read without taking the writer lock (status, listing runs). */
  readonly?: boolean;
}

export class Project {
  readonly checkpointsDir: string;
  readonly exportsDir: string;
  readonly cacheDir: string;

  constructor(
    readonly dir: string,
    readonly db: Database.Database,
    /** Token of the writer lock this process holds or joined; null when read-only. */
    readonly lockToken: string | null,
    private readonly ownsLock: boolean,
  ) {
    this.checkpointsDir = path.join(dir, 'checkpoints');
    this.exportsDir = path.join(dir, 'exports');
    this.cacheDir = path.join(dir, 'cache');
  }

  close(): void {
    if (this.db.open) this.db.close();
    if (this.ownsLock) releaseLock(this.dir, this.lockToken!);
  }
}

export function isProjectDir(dir: string): boolean {
  return fs.existsSync(path.join(dir, DB_FILE));
}

export function openProject(dir: string, options: OpenOptions = {}): Project {
  const root = path.resolve(dir);
  if (!isProjectDir(root)) {
    if (!options.create) throw new UserError(`no project at ${root}`, 'no_project', { dir });
    if (fs.existsSync(root) && !fs.statSync(root).isDirectory()) throw new UserError(`${root} is a file, not a folder`);
    fs.mkdirSync(root, { recursive: true });
  }
  for (const sub of ['checkpoints', 'exports', 'cache']) fs.mkdirSync(path.join(root, sub), { recursive: true });

  if (options.readonly) return new Project(root, connect(root, true), null, false);
  const { token, owned } = acquireLock(root);
  try {
    return new Project(root, connect(root, false), token, owned);
  } catch (error) {
    if (owned) releaseLock(root, token);
    throw error;
  }
}

function connect(root: string, readonly: boolean): Database.Database {
  const nativeBinding = process.env[SQLITE_BINDING_ENV] || undefined;
  const db = new Database(path.join(root, DB_FILE), { readonly: readonly && isProjectDir(root), nativeBinding });
  db.pragma('busy_timeout = 10000');
  db.pragma('foreign_keys = ON');
  if (!db.readonly) {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    migrate(db);
  }
  return db;
}

function acquireLock(root: string): { token: string; owned: boolean } {
  const lockPath = path.join(root, LOCK_FILE);
  const inherited = process.env[LOCK_TOKEN_ENV];
  for (let attempt = 0; attempt < 3; attempt++) {
    const info: LockInfo = { pid: process.pid, host: os.hostname(), token: randomUUID(), since: new Date().toISOString() };
    try {
      fs.writeFileSync(lockPath, JSON.stringify(info), { flag: 'wx' });
      return { token: info.token, owned: true };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = readLock(lockPath);
    if (holder && inherited && holder.token === inherited) return { token: inherited, owned: false };
    if (holder && isAlive(holder)) {
      throw new UserError(
        `project is open in another window (process ${holder.pid} since ${holder.since}); close it there first`,
        'project_locked',
      );
    }
    fs.rmSync(lockPath, { force: true }); // left behind by a process that died
  }
  throw new UserError(`could not lock ${root}: another process keeps taking the lock`, 'project_locked');
}

function readLock(lockPath: string): LockInfo | null {
  try {
    return JSON.parse(fs.readFileSync(lockPath, 'utf8')) as LockInfo;
  } catch {
    return null; // half-written by a process killed mid-write: treat as stale
  }
}

function isAlive(lock: LockInfo): boolean {
  if (lock.host !== os.hostname()) return true; // can't check another machine's processes: assume it's live
  if (lock.pid === process.pid) return true;
  try {
    process.kill(lock.pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function releaseLock(root: string, token: string): void {
  const lockPath = path.join(root, LOCK_FILE);
  if (readLock(lockPath)?.token === token) fs.rmSync(lockPath, { force: true });
}

export function now(): string {
  return new Date().toISOString();
}
