import fs from 'node:fs';
import type Database from 'better-sqlite3';
import { fsPath } from '../file_paths.ts';

export interface ImageRecord {
  path: string;
  sha256: string;
  size: number;
  width: number;
  height: number;
  format: string;
  thumbnail: Buffer;
  batchId: number | null;
  testSet: boolean;
}

export function insertImage(db: Database.Database, image: ImageRecord, createdAt: string): number {
  const result = db
    .prepare(
      `INSERT INTO images (path, sha256, size, width, height, format, thumbnail, batch_id, test_set, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    .run(image.path, image.sha256, image.size, image.width, image.height, image.format, image.thumbnail,
      image.batchId, image.testSet ? 1 : 0, createdAt);
  return Number(result.lastInsertRowid);
}

export function imageBySha(db: Database.Database, sha256: string): { id: number; path: string } | undefined {
  return db.prepare('SELECT id, path FROM images WHERE sha256 = ?').get(sha256) as { id: number; path: string } | undefined;
}

/** Whether an image's original file is gone from where it was imported (moved or deleted). */
export function isOriginalMissing(storedPath: string): boolean {
  return !fs.existsSync(fsPath(storedPath));
}

/**
 * Points an image at the new place of its moved original. Labels, splits and predictions key on
 * the image's id, so they follow; the record of the old path goes.
 */
export function relinkImage(db: Database.Database, imageId: number, oldPath: string, newPath: string): void {
  db.prepare('UPDATE images SET path = ? WHERE id = ?').run(newPath, imageId);
  db.prepare('DELETE FROM files WHERE path = ?').run(oldPath);
}

export function imageIdByPath(db: Database.Database, path: string): number | undefined {
  const row = db.prepare('SELECT id FROM images WHERE path = ?').get(path) as { id: number } | undefined;
  return row?.id;
}

export function getThumbnail(db: Database.Database, imageId: number): Buffer | undefined {
  const row = db.prepare('SELECT thumbnail FROM images WHERE id = ?').get(imageId) as { thumbnail: Buffer } | undefined;
  return row?.thumbnail;
}

/**
 * The original file of a known image, ready for `fs` (a Buffer where its name is not UTF-8); the
 * only way a path reaches a front end's image server.
 */
export function getImagePath(db: Database.Database, imageId: number): string | Buffer | undefined {
  const row = db.prepare('SELECT path FROM images WHERE id = ?').get(imageId) as { path: string } | undefined;
  return row && fsPath(row.path);
}

export interface FileProblem {
  path: string;
  status: 'duplicate' | 'error';
  reason: string;
}

export function listFileProblems(db: Database.Database, status?: 'duplicate' | 'error'): FileProblem[] {
  const rows = db
    .prepare(
      `SELECT f.path, f.status, COALESCE(f.error, 'same content as ' || i.path) AS reason
       FROM files f LEFT JOIN images i ON i.id = f.image_id
       WHERE f.status != 'imported' AND (? IS NULL OR f.status = ?) ORDER BY f.path`,
    )
    .all(status ?? null, status ?? null);
  return rows as FileProblem[];
}
