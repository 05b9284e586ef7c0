/**
 * Ground truth: which labels count when a model is trained or scored. A label accepted from the
 * model's own suggestion is not truth (scoring against it would grade the model by its own
 * guesses), so every query that trains or scores goes through these functions and nothing else.
 */
import type Database from 'better-sqlite3';
import type { Split } from '../contract/domain.ts';

/** The SQL condition on a labels row `l` that makes it ground truth. */
const IS_TRUTH = "l.source != 'suggestion'";

export interface TruthClass {
  id: number;
  name: string;
}

export interface LabelledPrediction {
  imageId: number;
  labelClassId: number;
  predictedClassId: number;
}

/** Classes with at least one true label in the training split, in id order. */
export function trainingClasses(db: Database.Database): TruthClass[] {
  return db
    .prepare(
      `SELECT DISTINCT c.id, c.name FROM classes c JOIN labels l ON l.class_id = c.id JOIN splits s ON s.image_id = l.image_id
       WHERE s.split = 'train' AND ${IS_TRUTH} ORDER BY c.id`,
    )
    .all() as TruthClass[];
}

/** Images of one split with their true class, in id order. */
export function truthLabels(db: Database.Database, split: Split): { imageId: number; classId: number }[] {
  return db
    .prepare(
      `SELECT l.image_id AS imageId, l.class_id AS classId FROM labels l JOIN splits s ON s.image_id = l.image_id
       WHERE s.split = ? AND ${IS_TRUTH} ORDER BY l.image_id`,
    )
    .all(split) as { imageId: number; classId: number }[];
}

/** A run's predictions for the truly labelled images of one split. */
export function scoredPredictions(db: Database.Database, runId: number, split: Split): LabelledPrediction[] {
  return db
    .prepare(
      `SELECT p.image_id AS imageId, l.class_id AS labelClassId, p.class_id AS predictedClassId
       FROM predictions p JOIN labels l ON l.image_id = p.image_id JOIN splits s ON s.image_id = p.image_id
       WHERE p.run_id = ? AND s.split = ? AND ${IS_TRUTH} ORDER BY p.image_id`,
    )
    .all(runId, split) as LabelledPrediction[];
}

/** Held-out predictions to score a run by: the test split when it has any, else validation. */
export function heldOutPredictions(db: Database.Database, runId: number): { split: 'test' | 'val'; rows: LabelledPrediction[] } {
  const test = scoredPredictions(db, runId, 'test');
  if (test.length > 0) return { split: 'test', rows: test };
  return { split: 'val', rows: scoredPredictions(db, runId, 'val') };
}

/** An image as a training program outside the app needs it: content, true label and split. */
export interface ManifestImage {
  id: number;
  path: string;
  sha256: string;
  /** The true label's class name (a suggestion accepted from the model is not one), or null. */
  label: string | null;
  /** The labelled split, or 'test' for any image imported as a test set, or null. */
  split: 'train' | 'val' | 'test' | null;
}

/** Every image with its true label and split, in id order (the pixel cache's rows). */
export function manifestImages(db: Database.Database): ManifestImage[] {
  return db
    .prepare(
      `SELECT i.id, i.path, i.sha256, c.name AS label,
              CASE WHEN i.test_set = 1 THEN 'test' WHEN c.name IS NULL THEN NULL ELSE s.split END AS split
       FROM images i
       LEFT JOIN labels l ON l.image_id = i.id AND ${IS_TRUTH}
       LEFT JOIN classes c ON c.id = l.class_id
       LEFT JOIN splits s ON s.image_id = i.id
       ORDER BY i.id`,
    )
    .all() as ManifestImage[];
}
