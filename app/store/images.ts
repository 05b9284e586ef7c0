import fs from 'node:fs';
import type Database from 'better-sqlite3';
import { fsPath } from './file_paths.ts';

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

export function imageCount(db: Database.Database): number {
  return db.prepare('SELECT COUNT(*) FROM images').pluck().get() as number;
}

/** Every image's id, path and content hash, in id order (the pixel cache's rows). */
export function imageFiles(db: Database.Database): { id: number; path: string; sha256: string }[] {
  return db.prepare('SELECT id, path, sha256 FROM images ORDER BY id').all() as { id: number; path: string; sha256: string }[];
}

/** Images imported as a held-out test set: never trained on, not even unlabelled. */
export function testSetImageIds(db: Database.Database): Set<number> {
  return new Set(db.prepare('SELECT id FROM images WHERE test_set = 1').pluck().all() as number[]);
}

/** Every image's id and path, in path order. */
export function imagePaths(db: Database.Database): { id: number; path: string }[] {
  return db.prepare('SELECT id, path FROM images ORDER BY path').all() as { id: number; path: string }[];
}

/** The median of each image's longer side, or undefined for an empty project. */
export function medianImageSide(db: Database.Database): number | undefined {
  return db.prepare('SELECT MAX(width, height) AS side FROM images ORDER BY side LIMIT 1 OFFSET (SELECT COUNT(*) / 2 FROM images)').pluck().get() as
    | number
    | undefined;
}

export function getThumbnail(db: Database.Database, imageId: number): Buffer | undefined {
  const row = db.prepare('SELECT thumbnail FROM images WHERE id = ?').get(imageId) as { thumbnail: Buffer } | undefined;
  return row?.thumbnail;
}

/** What import recorded of an image's original file (its path as the store keeps it); the only way a path reaches a front end's image server. */
export function getOriginal(db: Database.Database, imageId: number): Pick<ImageRecord, 'path' | 'size' | 'sha256'> | undefined {
  return db.prepare('SELECT path, size, sha256 FROM images WHERE id = ?').get(imageId) as Pick<ImageRecord, 'path' | 'size' | 'sha256'> | undefined;
}
