/** The SQL of an import: its batch row, the files it has seen before, and one row per file it looked at. */
import type Database from 'better-sqlite3';
import { now } from './project.ts';

export function createImportBatch(db: Database.Database, roots: string[], settings: Record<string, unknown>): number {
  return Number(
    db.prepare('INSERT INTO import_batches (roots, options, started_at) VALUES (?, ?, ?)').run(JSON.stringify(roots), JSON.stringify(settings), now()).lastInsertRowid,
  );
}

export function finishImportBatch(db: Database.Database, batchId: number): void {
  db.prepare('UPDATE import_batches SET finished_at = ? WHERE id = ?').run(now(), batchId);
}

export interface SeenFile {
  size: number;
  mtime_ms: number;
  status: string;
}

/** Every file an import has looked at before, by stored path. */
export function seenFiles(db: Database.Database): Map<string, SeenFile> {
  const known = new Map<string, SeenFile>();
  for (const row of db.prepare('SELECT path, size, mtime_ms, status FROM files').iterate() as Iterable<SeenFile & { path: string }>) {
    known.set(row.path, row);
  }
  return known;
}

export type FileStatus = 'imported' | 'duplicate' | 'error';

/** Records (or updates) what an import found a file to be. */
export function fileRecorder(db: Database.Database, batchId: number) {
  const upsert = db.prepare(
    `INSERT INTO files (path, size, mtime_ms, status, image_id, error, batch_id) VALUES (?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ms = excluded.mtime_ms, status = excluded.status,
       image_id = excluded.image_id, error = excluded.error, batch_id = excluded.batch_id`,
  );
  return (file: { path: string; size: number; mtimeMs: number }, status: FileStatus, imageId: number | null, error: string | null) =>
    upsert.run(file.path, file.size, file.mtimeMs, status, imageId, error, batchId);
}
