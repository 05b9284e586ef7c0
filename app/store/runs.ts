import type { RunKind, RunStatus } from '../contract/domain.ts';
import type Database from 'better-sqlite3';
import { UserError } from '../contract/errors.ts';
import { now } from './project.ts';


export interface Run<Config = Record<string, unknown>> {
  id: number;
  kind: RunKind;
  parentId: number | null;
  config: Config;
  status: RunStatus;
  backend: string | null;
  device: string | null;
  error: string | null;
  summary: Record<string, unknown> | null;
  pid: number | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

/** Which statuses each status may move to; anything else is a bug in the caller. */
const transitions: Record<RunStatus, RunStatus[]> = {
  queued: ['running', 'failed', 'cancelled'],
  running: ['done', 'failed', 'cancelled', 'interrupted'],
  interrupted: ['running', 'failed'],
  cancelled: ['running', 'failed'],
  failed: [],
  done: [],
};

/** A run that `resume` can continue from its last checkpoint. */
export function isResumable(status: RunStatus): boolean {
  return status === 'interrupted' || status === 'cancelled';
}

interface RunRow {
  id: number;
  kind: RunKind;
  parent_id: number | null;
  config: string;
  status: RunStatus;
  backend: string | null;
  device: string | null;
  error: string | null;
  summary: string | null;
  pid: number | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

function toRun(row: RunRow): Run {
  return {
    id: row.id,
    kind: row.kind,
    parentId: row.parent_id,
    config: JSON.parse(row.config),
    status: row.status,
    backend: row.backend,
    device: row.device,
    error: row.error,
    summary: row.summary === null ? null : JSON.parse(row.summary),
    pid: row.pid,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  };
}

export function createRun(db: Database.Database, kind: RunKind, parentId: number | null, config: object): number {
  const result = db
    .prepare(`INSERT INTO runs (kind, parent_id, config, status, created_at) VALUES (?, ?, ?, 'queued', ?)`)
    .run(kind, parentId, JSON.stringify(config), now());
  return Number(result.lastInsertRowid);
}

export function getRun<Config = Record<string, unknown>>(db: Database.Database, id: number): Run<Config> | undefined {
  const row = db.prepare('SELECT * FROM runs WHERE id = ?').get(id) as RunRow | undefined;
  return row && (toRun(row) as Run<Config>);
}

export function requireRun<Config = Record<string, unknown>>(db: Database.Database, id: number): Run<Config> {
  const run = getRun<Config>(db, id);
  if (!run) throw new UserError(`no run ${id} in this project`, 'unknown_run', { runId: id });
  return run;
}

export function listRuns(db: Database.Database): Run[] {
  return (db.prepare('SELECT * FROM runs ORDER BY id').all() as RunRow[]).map(toRun);
}

export function latestDoneRun(db: Database.Database, kinds: RunKind[]): Run | undefined {
  const marks = kinds.map(() => '?').join(', ');
  const row = db
    .prepare(`SELECT * FROM runs WHERE status = 'done' AND kind IN (${marks}) ORDER BY finished_at DESC, id DESC LIMIT 1`)
    .get(...kinds) as RunRow | undefined;
  return row && toRun(row);
}

function setStatus(db: Database.Database, id: number, to: RunStatus, fields: Record<string, unknown>): void {
  db.transaction(() => {
    const run = requireRun(db, id);
    if (!transitions[run.status].includes(to)) throw new Error(`run ${id} cannot go from ${run.status} to ${to}`);
    const names = Object.keys(fields);
    const assignments = ['status = ?', ...names.map((name) => `${name} = ?`)].join(', ');
    db.prepare(`UPDATE runs SET ${assignments} WHERE id = ?`).run(to, ...Object.values(fields), id);
  })();
}

export function markRunning(db: Database.Database, id: number, where: { pid: number; backend: string; device: string }): void {
  const run = requireRun(db, id);
  setStatus(db, id, 'running', {
    pid: where.pid,
    backend: where.backend,
    device: where.device,
    error: null,
    finished_at: null,
    started_at: run.startedAt ?? now(),
  });
}

export function finishRun(
  db: Database.Database,
  id: number,
  status: 'done' | 'failed' | 'cancelled',
  outcome: { summary?: object; error?: string } = {},
): void {
  const fields: Record<string, unknown> = { finished_at: now(), pid: null, error: outcome.error ?? null };
  if (outcome.summary) fields.summary = JSON.stringify(outcome.summary);
  setStatus(db, id, status, fields);
}

/** Records results known before the run ends (class order, best epoch so far) so a crash keeps them. */
export function mergeSummary(db: Database.Database, id: number, values: Record<string, unknown>): void {
  db.transaction(() => {
    const current = requireRun(db, id).summary ?? {};
    db.prepare('UPDATE runs SET summary = ? WHERE id = ?').run(JSON.stringify({ ...current, ...values }), id);
  })();
}

/** Whether a process with this id exists on this machine (a run's pid outliving its process means a crash). */
export function processIsAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Marks runs left "running" by a process that no longer exists (killed, crashed, power loss); returns their ids. */
export function markInterruptedRuns(db: Database.Database): number[] {
  const running = db.prepare(`SELECT id, pid FROM runs WHERE status = 'running'`).all() as { id: number; pid: number | null }[];
  const dead = running.filter((run) => run.pid === null || !processIsAlive(run.pid)).map((run) => run.id);
  const mark = db.prepare(`UPDATE runs SET status = 'interrupted', pid = NULL WHERE id = ? AND status = 'running'`);
  db.transaction(() => dead.forEach((id) => mark.run(id)))();
  return dead;
}

/** The chain of runs that produced this one, oldest first (pretrain → finetune → distill → evaluate). */
/** The class ids of a classifier run's probability vectors, in order, from the summary it wrote. */
export function runClassIds(db: Database.Database, runId: number): number[] {
  const list = (getRun(db, runId)?.summary as { classes?: unknown } | null | undefined)?.classes;
  if (!Array.isArray(list)) return [];
  return list.map((entry) => (typeof entry === 'number' ? entry : Number((entry as { id?: unknown })?.id)));
}

export function runLineage(db: Database.Database, id: number): Run[] {
  const chain: Run[] = [];
  for (let run = getRun(db, id); run; run = run.parentId === null ? undefined : getRun(db, run.parentId)) {
    chain.unshift(run);
  }
  return chain;
}

// ---- metrics ----

export interface MetricPoint {
  step: number;
  epoch: number;
  value: number;
}

export function appendMetrics(db: Database.Database, runId: number, step: number, epoch: number, values: Record<string, number>): void {
  const insert = db.prepare('INSERT INTO metrics (run_id, step, epoch, name, value) VALUES (?, ?, ?, ?, ?)');
  db.transaction(() => {
    for (const [name, value] of Object.entries(values)) {
      if (Number.isFinite(value)) insert.run(runId, step, epoch, name, value);
    }
  })();
}

export function metricSeries(db: Database.Database, runId: number, name: string): MetricPoint[] {
  return db
    .prepare('SELECT step, epoch, value FROM metrics WHERE run_id = ? AND name = ? ORDER BY step, rowid')
    .all(runId, name) as MetricPoint[];
}

export function metricNames(db: Database.Database, runId: number): string[] {
  return (db.prepare('SELECT DISTINCT name FROM metrics WHERE run_id = ? ORDER BY name').all(runId) as { name: string }[]).map(
    (row) => row.name,
  );
}

/** Drops metrics logged after a checkpoint, so a resumed run's curves have no duplicate steps. */
export function truncateMetricsAfter(db: Database.Database, runId: number, step: number): void {
  db.prepare('DELETE FROM metrics WHERE run_id = ? AND step > ?').run(runId, step);
}

// ---- checkpoints ----

export interface CheckpointRow {
  id: number;
  runId: number;
  epoch: number;
  step: number;
  /** Relative to the project folder. */
  path: string;
  isBest: boolean;
  createdAt: string;
}

const checkpointColumns = 'id, run_id AS runId, epoch, step, path, is_best AS isBest, created_at AS createdAt';

function toCheckpoint(row: CheckpointRow | undefined): CheckpointRow | undefined {
  return row && { ...row, isBest: Boolean(row.isBest) };
}

export function addCheckpoint(
  db: Database.Database,
  checkpoint: { runId: number; epoch: number; step: number; path: string; isBest?: boolean },
): number {
  return db.transaction(() => {
    if (checkpoint.isBest) db.prepare('UPDATE checkpoints SET is_best = 0 WHERE run_id = ?').run(checkpoint.runId);
    const result = db
      .prepare('INSERT INTO checkpoints (run_id, epoch, step, path, is_best, created_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(checkpoint.runId, checkpoint.epoch, checkpoint.step, checkpoint.path, checkpoint.isBest ? 1 : 0, now());
    return Number(result.lastInsertRowid);
  })();
}

export function listCheckpoints(db: Database.Database, runId: number): CheckpointRow[] {
  const rows = db.prepare(`SELECT ${checkpointColumns} FROM checkpoints WHERE run_id = ? ORDER BY step, id`).all(runId);
  return (rows as CheckpointRow[]).map((row) => toCheckpoint(row)!);
}

export function latestCheckpoint(db: Database.Database, runId: number): CheckpointRow | undefined {
  const row = db.prepare(`SELECT ${checkpointColumns} FROM checkpoints WHERE run_id = ? ORDER BY step DESC, id DESC LIMIT 1`).get(runId);
  return toCheckpoint(row as CheckpointRow | undefined);
}

export function bestCheckpoint(db: Database.Database, runId: number): CheckpointRow | undefined {
  const row = db.prepare(`SELECT ${checkpointColumns} FROM checkpoints WHERE run_id = ? AND is_best = 1 LIMIT 1`).get(runId);
  return toCheckpoint(row as CheckpointRow | undefined);
}

/** The checkpoint a later stage should build on: the best one when the run kept one, else its last. */
export function modelCheckpoint(db: Database.Database, runId: number): CheckpointRow | undefined {
  return bestCheckpoint(db, runId) ?? latestCheckpoint(db, runId);
}

export function deleteCheckpointRow(db: Database.Database, id: number): void {
  db.prepare('DELETE FROM checkpoints WHERE id = ?').run(id);
}

// ---- predictions and embeddings ----

export interface Prediction {
  imageId: number;
  classId: number;
  confidence: number;
  /** One per class, in the order of the run's `classes` summary entry. */
  probabilities: Float32Array;
}

function toBlob(values: Float32Array): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

function fromBlob(blob: Buffer): Float32Array {
  // Copy: a Buffer from SQLite need not be 4-byte aligned.
  const bytes = new Uint8Array(blob);
  return new Float32Array(bytes.buffer, 0, bytes.byteLength / 4);
}

export function writePredictions(db: Database.Database, runId: number, predictions: Prediction[]): void {
  const insert = db.prepare(
    `INSERT OR REPLACE INTO predictions (run_id, image_id, class_id, confidence, probabilities) VALUES (?, ?, ?, ?, ?)`,
  );
  db.transaction(() => {
    for (const p of predictions) insert.run(runId, p.imageId, p.classId, p.confidence, toBlob(p.probabilities));
  })();
}

export function readPredictions(db: Database.Database, runId: number): Prediction[] {
  const rows = db
    .prepare(
      `SELECT image_id AS imageId, class_id AS classId, confidence, probabilities FROM predictions WHERE run_id = ? ORDER BY image_id`,
    )
    .all(runId) as (Omit<Prediction, 'probabilities'> & { probabilities: Buffer })[];
  return rows.map((row) => ({ ...row, probabilities: fromBlob(row.probabilities) }));
}

export function writeEmbeddings(db: Database.Database, runId: number, embeddings: { imageId: number; vector: Float32Array }[]): void {
  const insert = db.prepare('INSERT OR REPLACE INTO embeddings (run_id, image_id, vector) VALUES (?, ?, ?)');
  db.transaction(() => {
    for (const e of embeddings) insert.run(runId, e.imageId, toBlob(e.vector));
  })();
}

export function readEmbeddings(db: Database.Database, runId: number): { imageId: number; vector: Float32Array }[] {
  const rows = db.prepare('SELECT image_id AS imageId, vector FROM embeddings WHERE run_id = ? ORDER BY image_id').all(runId) as {
    imageId: number;
    vector: Buffer;
  }[];
  return rows.map((row) => ({ imageId: row.imageId, vector: fromBlob(row.vector) }));
}

/** Removes a half-written evaluation's rows before it starts again. */
export function clearRunOutputs(db: Database.Database, runId: number): void {
  db.transaction(() => {
    db.prepare('DELETE FROM predictions WHERE run_id = ?').run(runId);
    db.prepare('DELETE FROM embeddings WHERE run_id = ?').run(runId);
  })();
}
