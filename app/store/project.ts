import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { UserError } from '../contract/errors.ts';
import { shortenPath } from './file_paths.ts';
import { checkSchemaVersion, migrate } from './migrations.ts';
import { diskFullError, isDiskFull } from './storage_errors.ts';

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
  try {
    return openAt(root, dir, options);
  } catch (error) {
    throw explainOpenFailure(error, root);
  }
}

function openAt(root: string, dir: string, options: OpenOptions): Project {
  if (!isProjectDir(root)) {
    if (!options.create) throw new UserError(`no project at ${shortenPath(root)}`, 'no_project', { dir: shortenPath(dir) });
    prepareNewProjectFolder(root);
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

/** What a project folder holds, or what another process creating the same project has made so far. */
const PROJECT_ENTRY = /^(checkpoints|exports|cache|project\.db(-wal|-shm|-journal)?|project\.lock.*)$/;
/** Left by file managers in folders they have shown. */
const FILE_MANAGER_LITTER = new Set(['.DS_Store', 'Thumbs.db', 'desktop.ini']);

/** A new project goes into a new or empty folder, never among the user's files (the pictures it is about, say). */
function prepareNewProjectFolder(root: string): void {
  if (fs.existsSync(root) && !fs.statSync(root).isDirectory()) throw new UserError(`${shortenPath(root)} is a file, not a folder`);
  const others = fs.existsSync(root) ? fs.readdirSync(root).filter((name) => !PROJECT_ENTRY.test(name) && !FILE_MANAGER_LITTER.has(name)) : [];
  if (others.length > 0) {
    const example = `"${shortenPath(others[0], 60)}"${others.length > 1 ? ` and ${others.length - 1} more` : ''}`;
    throw new UserError(
      `${shortenPath(root)} already holds files (${example}): pick an empty folder for the new project, or a new folder's name`,
      'folder_not_empty',
    );
  }
  fs.mkdirSync(root, { recursive: true });
}

/** A failure of the file system or of SQLite as one line that says what to do; anything else unchanged. */
function explainOpenFailure(error: unknown, root: string): unknown {
  if (error instanceof UserError) return error;
  const code = String((error as { code?: unknown } | null)?.code);
  if (isDiskFull(error)) return diskFullError(root, 'the project was not opened (nothing in it changed)', 'open it again');
  if (code === 'ENAMETOOLONG') {
    return new UserError(`the path is too long for the file system (${root.length} characters): ${shortenPath(root)}; pick a shorter one`, 'path_too_long');
  }
  if (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT')) {
    return new UserError(
      `${shortenPath(path.join(root, DB_FILE))} is damaged or is not a Contrast Studio project (${(error as Error).message}); ` +
        'it was left as it is: restore it from a backup, or move it away and create a new project',
      'project_corrupt',
    );
  }
  return error;
}

function connect(root: string, readonly: boolean): Database.Database {
  const nativeBinding = process.env[SQLITE_BINDING_ENV] || undefined;
  const db = new Database(path.join(root, DB_FILE), { readonly: readonly && isProjectDir(root), nativeBinding });
  try {
    db.pragma('busy_timeout = 10000');
    db.pragma('foreign_keys = ON');
    if (db.readonly) checkSchemaVersion(db);
    else {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      migrate(db);
    }
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

/**
 * A lock file that cannot be read was left torn (a crash or a full disk while an older version,
 * which created the file before writing it, was writing it) or is being written by such a version
 * right now. Only one older than this is taken as abandoned: no writer spends seconds on it.
 */
const UNREADABLE_LOCK_GRACE_MS = 10_000;

type LockState = { kind: 'held'; holder: LockInfo } | { kind: 'unreadable'; ageMs: number } | { kind: 'absent' };

function acquireLock(root: string): { token: string; owned: boolean } {
  const lockPath = path.join(root, LOCK_FILE);
  const inherited = process.env[LOCK_TOKEN_ENV];
  for (let attempt = 0; attempt < 3; attempt++) {
    const info: LockInfo = { pid: process.pid, host: os.hostname(), token: randomUUID(), since: new Date().toISOString() };
    if (createLockFile(lockPath, info)) return { token: info.token, owned: true };
    const state = inspectLock(lockPath);
    if (state.kind === 'held' && inherited && state.holder.token === inherited) return { token: inherited, owned: false };
    if (state.kind === 'held' && !isAbandoned(state)) {
      throw new UserError(
        `project is open in another window (process ${state.holder.pid} since ${state.holder.since}); close it there first`,
        'project_locked',
      );
    }
    if (state.kind === 'unreadable' && !isAbandoned(state)) {
      throw new UserError('project is being opened by another window or command; try again in a moment', 'project_locked');
    }
    if (state.kind !== 'absent') removeAbandonedLock(lockPath);
  }
  throw new UserError(`could not lock ${shortenPath(root)}: another process keeps taking the lock`, 'project_locked');
}

/**
 * Creates the lock file with its content in one step, so no other process can ever read it
 * empty: the content goes to a temporary file first, which is then hard-linked to the lock's
 * name (failing with EEXIST if a lock exists). False when another process holds the lock.
 */
function createLockFile(lockPath: string, info: LockInfo): boolean {
  const temp = `${lockPath}.${info.token}.tmp`;
  try {
    fs.writeFileSync(temp, JSON.stringify(info), { flag: 'wx' });
    fs.linkSync(temp, lockPath);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    if (HARD_LINKS_UNSUPPORTED.has((error as NodeJS.ErrnoException).code!)) return createLockFileInPlace(lockPath, info);
    throw error;
  } finally {
    fs.rmSync(temp, { force: true });
  }
}

/** What link() fails with on file systems without hard links (FAT and exFAT drives, some network shares). */
const HARD_LINKS_UNSUPPORTED = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/**
 * Without hard links the lock is created exclusively and then written: another process may see it
 * empty for a moment, which it takes as held (UNREADABLE_LOCK_GRACE_MS), so this is still safe.
 */
function createLockFileInPlace(lockPath: string, info: LockInfo): boolean {
  let fd: number;
  try {
    fd = fs.openSync(lockPath, 'wx');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    fs.writeSync(fd, JSON.stringify(info));
  } catch (error) {
    fs.rmSync(lockPath, { force: true }); // ours, half-written: never leave a torn lock
    throw error;
  } finally {
    fs.closeSync(fd);
  }
  return true;
}

function inspectLock(file: string): LockState {
  let text: string;
  let mtimeMs: number;
  try {
    mtimeMs = fs.statSync(file).mtimeMs;
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'absent' };
    throw error;
  }
  const holder = parseLock(text);
  return holder ? { kind: 'held', holder } : { kind: 'unreadable', ageMs: Date.now() - mtimeMs };
}

function parseLock(text: string): LockInfo | null {
  try {
    const info = JSON.parse(text) as LockInfo;
    return typeof info?.pid === 'number' && typeof info.token === 'string' ? info : null;
  } catch {
    return null;
  }
}

function isAbandoned(state: LockState): boolean {
  if (state.kind === 'held') return !isAlive(state.holder);
  return state.kind === 'unreadable' && state.ageMs > UNREADABLE_LOCK_GRACE_MS;
}

/**
 * Deletes the lock file if it is abandoned. Another process may have replaced the abandoned lock
 * with its own live one since we looked, so the file is first moved aside (atomically: whatever
 * is there at that instant) and judged again; a live lock is put back instead of deleted. (Should
 * a third process take the lock in the instant it is aside, the put-back replaces that one and
 * both think they hold it: that needs three processes opening the project within microseconds of
 * finding a dead one's lock.)
 */
function removeAbandonedLock(lockPath: string): void {
  const aside = `${lockPath}.${randomUUID()}.abandoned`;
  try {
    fs.renameSync(lockPath, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return; // another process removed it first
    throw error;
  }
  try {
    if (isAbandoned(inspectLock(aside))) fs.rmSync(aside);
    else fs.renameSync(aside, lockPath);
  } catch (error) {
    fs.rmSync(aside, { force: true });
    throw error;
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
  const state = inspectLock(lockPath);
  if (state.kind === 'held' && state.holder.token === token) fs.rmSync(lockPath, { force: true });
}

export function now(): string {
  return new Date().toISOString();
}
