/**
 * Read queries behind the studio's gallery, prediction browser and results: images joined with
 * their label and the latest prediction, filtered and sorted in SQL so 50,000 images page quickly.
 */
import type Database from 'better-sqlite3';
import fs from 'node:fs';
import path from 'node:path';
import { csvField } from './labels_csv.ts';
import type { FileProblem } from '../contract/domain.ts';
import type { EmbeddingPoint, ImageDetail, ImageFilter, ImageItem, ImageSort } from '../contract/operations.ts';

const withEntropy = new WeakSet<Database.Database>();

/** Registers entropy(probabilities) once per connection, so "most uncertain first" sorts in SQL. */
function registerEntropy(db: Database.Database): void {
  if (withEntropy.has(db)) return;
  db.function('entropy', { deterministic: true }, (blob: unknown) => (Buffer.isBuffer(blob) ? entropy(blob) : null));
  withEntropy.add(db);
}

/** Shannon entropy (nats) of a probability vector stored as float32 little-endian. */
export function entropy(blob: Buffer): number {
  let total = 0;
  for (let offset = 0; offset + 4 <= blob.length; offset += 4) {
    const p = blob.readFloatLE(offset);
    if (p > 0) total -= p * Math.log(p);
  }
  return total;
}

/** Unlabelled images outside the test set, with a run's probabilities where it predicted them. */
export function unlabelledCandidates(db: Database.Database, runId: number | null): { id: number; path: string; probabilities: Buffer | null }[] {
  return db
    .prepare(
      `SELECT i.id, i.path, p.probabilities FROM images i
       LEFT JOIN labels l ON l.image_id = i.id LEFT JOIN predictions p ON p.image_id = i.id AND p.run_id = ?
       WHERE l.image_id IS NULL AND i.test_set = 0 ORDER BY i.id`,
    )
    .all(runId) as { id: number; path: string; probabilities: Buffer | null }[];
}

/** Which of these images are still without a label: what the label queue checks before handing its ranked images out. */
export function stillUnlabelled(db: Database.Database, ids: number[]): Set<number> {
  const labelled = db.prepare('SELECT 1 FROM labels WHERE image_id = ?').pluck();
  return new Set(ids.filter((id) => labelled.get(id) === undefined));
}

/**
 * Finished classifier runs (fine-tune or distillation) that wrote predictions, oldest first.
 * Evaluation runs are left out: they predict only their held-out split, not every image.
 */
export function classifierRunsWithPredictions(db: Database.Database): number[] {
  return db
    .prepare(
      `SELECT r.id FROM runs r WHERE r.status = 'done' AND r.kind IN ('finetune', 'distill')
         AND EXISTS (SELECT 1 FROM predictions p WHERE p.run_id = r.id)
       ORDER BY r.finished_at, r.id`,
    )
    .pluck()
    .all() as number[];
}

export function latestEmbeddingRunId(db: Database.Database): number | null {
  const row = db
    .prepare(
      `SELECT r.id FROM runs r WHERE r.status = 'done' AND EXISTS (SELECT 1 FROM embeddings e WHERE e.run_id = r.id)
       ORDER BY r.finished_at DESC, r.id DESC LIMIT 1`,
    )
    .get() as { id: number } | undefined;
  return row?.id ?? null;
}

function filterClause(filter: ImageFilter): { sql: string; params: unknown[] } {
  switch (filter.kind) {
    case 'all':
      return { sql: '1', params: [] };
    case 'unlabelled':
      return { sql: 'l.image_id IS NULL', params: [] };
    case 'labelled':
      return filter.classId === undefined
        ? { sql: 'l.image_id IS NOT NULL', params: [] }
        : { sql: 'l.class_id = ?', params: [filter.classId] };
    case 'predicted':
      return filter.classId === undefined
        ? { sql: 'p.image_id IS NOT NULL', params: [] }
        : { sql: 'p.class_id = ?', params: [filter.classId] };
    case 'lowConfidence':
      return { sql: 'p.confidence < ?', params: [filter.below] };
    case 'misclassified':
      return { sql: 'l.class_id IS NOT NULL AND p.class_id IS NOT NULL AND l.class_id != p.class_id', params: [] };
  }
}

const orderBy: Record<ImageSort, string> = {
  import: 'i.id',
  confidence: 'p.confidence DESC NULLS LAST, i.id',
  uncertainty: 'entropy(p.probabilities) DESC NULLS LAST, i.id',
};

function imageQuery(db: Database.Database, columns: string, filter: ImageFilter, sort: ImageSort, runId: number | null) {
  registerEntropy(db);
  const where = filterClause(filter);
  const sql = `SELECT ${columns}
    FROM images i LEFT JOIN labels l ON l.image_id = i.id LEFT JOIN predictions p ON p.image_id = i.id AND p.run_id = ?
    WHERE ${where.sql} ORDER BY ${orderBy[sort]}`;
  return { sql, params: [runId, ...where.params] };
}

const itemColumns = `i.id, l.class_id AS labelClassId, l.source AS labelSource, p.class_id AS predictedClassId, p.confidence`;

export function listImageIds(db: Database.Database, filter: ImageFilter, sort: ImageSort, runId: number | null): number[] {
  const query = imageQuery(db, 'i.id', filter, sort, runId);
  return db.prepare(query.sql).pluck().all(...query.params) as number[];
}

export function listImages(
  db: Database.Database,
  filter: ImageFilter,
  sort: ImageSort,
  runId: number | null,
  offset: number,
  limit: number,
): { total: number; items: ImageItem[] } {
  const query = imageQuery(db, itemColumns, filter, sort, runId);
  const items = db.prepare(`${query.sql} LIMIT ? OFFSET ?`).all(...query.params, limit, offset) as ImageItem[];
  const where = filterClause(filter);
  const total = db
    .prepare(
      `SELECT COUNT(*) FROM images i LEFT JOIN labels l ON l.image_id = i.id
       LEFT JOIN predictions p ON p.image_id = i.id AND p.run_id = ? WHERE ${where.sql}`,
    )
    .pluck()
    .get(runId, ...where.params) as number;
  return { total, items };
}

/** Items for known ids, in the order given (ids the project no longer has are left out). */
export function imagesByIds(db: Database.Database, ids: number[], runId: number | null): ImageItem[] {
  const statement = db.prepare(
    `SELECT ${itemColumns} FROM images i LEFT JOIN labels l ON l.image_id = i.id
     LEFT JOIN predictions p ON p.image_id = i.id AND p.run_id = ? WHERE i.id = ?`,
  );
  return ids.map((id) => statement.get(runId, id) as ImageItem | undefined).filter((item) => item !== undefined);
}

/** An ImageDetail as SQLite returns it: a 0/1 test flag and the raw probability vector. */
interface DetailRow extends Omit<ImageDetail, 'fileName' | 'testSet' | 'probabilities' | 'path'> {
  path: string;
  testSet: number;
  probabilities: Buffer | null;
}

/**
 * One image with its label, split and the latest prediction's probabilities. `classOrder` is
 * the prediction run's class ids in probability order (its summary's class list).
 */
export function imageDetail(
  db: Database.Database,
  imageId: number,
  runId: number | null,
  classOrder: number[],
): ImageDetail | undefined {
  const row = db
    .prepare(
      `SELECT ${itemColumns}, i.path, i.width, i.height, i.format, i.size, s.split, i.test_set AS testSet, p.probabilities
       FROM images i LEFT JOIN labels l ON l.image_id = i.id LEFT JOIN splits s ON s.image_id = i.id
       LEFT JOIN predictions p ON p.image_id = i.id AND p.run_id = ? WHERE i.id = ?`,
    )
    .get(runId, imageId) as DetailRow | undefined;
  if (!row) return undefined;
  const { probabilities, testSet, ...rest } = row;
  return {
    ...rest,
    fileName: path.basename(row.path),
    testSet: Boolean(testSet),
    probabilities: probabilities ? rankedProbabilities(probabilities, classOrder) : [],
  };
}

function rankedProbabilities(blob: Buffer, classOrder: number[]): { classId: number; probability: number }[] {
  const ranked: { classId: number; probability: number }[] = [];
  for (let index = 0; index < classOrder.length && (index + 1) * 4 <= blob.length; index++) {
    ranked.push({ classId: classOrder[index], probability: blob.readFloatLE(index * 4) });
  }
  return ranked.sort((a, b) => b.probability - a.probability);
}

/** Files imports skipped, by path; `limit` keeps a page bounded for the studio (-1: all of them). */
export function fileProblems(db: Database.Database, status?: 'duplicate' | 'error', batchId?: number, limit = 10_000): FileProblem[] {
  return db
    .prepare(
      `SELECT f.path, f.status, COALESCE(f.error, 'same content as ' || i.path) AS reason
       FROM files f LEFT JOIN images i ON i.id = f.image_id
       WHERE f.status != 'imported' AND (@status IS NULL OR f.status = @status) AND (@batchId IS NULL OR f.batch_id = @batchId)
       ORDER BY f.path LIMIT @limit`,
    )
    .all({ status: status ?? null, batchId: batchId ?? null, limit }) as FileProblem[];
}

/** Label and latest prediction of every image that has an embedding in `embeddingRunId`. */
export function embeddingLabels(
  db: Database.Database,
  embeddingRunId: number,
  predictionRunId: number | null,
): Map<number, Pick<EmbeddingPoint, 'labelClassId' | 'predictedClassId'>> {
  const rows = db
    .prepare(
      `SELECT e.image_id AS imageId, l.class_id AS labelClassId, p.class_id AS predictedClassId
       FROM embeddings e LEFT JOIN labels l ON l.image_id = e.image_id
       LEFT JOIN predictions p ON p.image_id = e.image_id AND p.run_id = ? WHERE e.run_id = ?`,
    )
    .all(predictionRunId, embeddingRunId) as { imageId: number; labelClassId: number | null; predictedClassId: number | null }[];
  return new Map(rows.map((row) => [row.imageId, { labelClassId: row.labelClassId, predictedClassId: row.predictedClassId }]));
}

/** Writes path,predicted,confidence,label for every image a run predicted; returns how many rows. */
export function writePredictionsCsv(db: Database.Database, runId: number, file: string): number {
  const rows = db
    .prepare(
      `SELECT i.path, pc.name AS predicted, p.confidence, lc.name AS label
       FROM predictions p JOIN images i ON i.id = p.image_id JOIN classes pc ON pc.id = p.class_id
       LEFT JOIN labels l ON l.image_id = p.image_id LEFT JOIN classes lc ON lc.id = l.class_id
       WHERE p.run_id = ? ORDER BY i.id`,
    )
    .all(runId) as { path: string; predicted: string; confidence: number; label: string | null }[];
  const lines = ['path,predicted,confidence,label'];
  for (const row of rows) lines.push([row.path, row.predicted, row.confidence.toFixed(4), row.label ?? ''].map(csvField).join(','));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return rows.length;
}
