import type Database from 'better-sqlite3';

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

export function imageIdBySha(db: Database.Database, sha256: string): number | undefined {
  const row = db.prepare('SELECT id FROM images WHERE sha256 = ?').get(sha256) as { id: number } | undefined;
  return row?.id;
}

export function imageIdByPath(db: Database.Database, path: string): number | undefined {
  const row = db.prepare('SELECT id FROM images WHERE path = ?').get(path) as { id: number } | undefined;
  return row?.id;
}

export function getThumbnail(db: Database.Database, imageId: number): Buffer | undefined {
  const row = db.prepare('SELECT thumbnail FROM images WHERE id = ?').get(imageId) as { thumbnail: Buffer } | undefined;
  return row?.thumbnail;
}

/** What import recorded of an image's original file; the only way a path reaches a front end's image server. */
export function getOriginal(db: Database.Database, imageId: number): Pick<ImageRecord, 'path' | 'size' | 'sha256'> | undefined {
  return db.prepare('SELECT path, size, sha256 FROM images WHERE id = ?').get(imageId) as Pick<ImageRecord, 'path' | 'size' | 'sha256'> | undefined;
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
