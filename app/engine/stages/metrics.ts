/** Accuracy, per-class precision/recall/F1 and the confusion matrix from labelled predictions. */
import type { ClassMetrics } from '../../contract/operations.ts';
import type { LabelledPrediction } from '../../store/ground_truth.ts';

export interface Scores {
  accuracy: number;
  perClass: ClassMetrics[];
  classIds: number[];
  confusion: number[][];
}

export function score(rows: LabelledPrediction[], classes: { id: number; name: string }[]): Scores {
  const classIds = classes.map((c) => c.id);
  const index = new Map(classIds.map((id, i) => [id, i]));
  const confusion = classIds.map(() => classIds.map(() => 0));
  let correct = 0;
  for (const row of rows) {
    const t = index.get(row.labelClassId);
    const p = index.get(row.predictedClassId);
    if (row.labelClassId === row.predictedClassId) correct++;
    if (t !== undefined && p !== undefined) confusion[t][p]++;
  }
  const perClass = classes.map((c, i) => {
    const truePositives = confusion[i][i];
    const predicted = confusion.reduce((sum, row) => sum + row[i], 0);
    const support = confusion[i].reduce((sum, n) => sum + n, 0);
    const precision = predicted ? truePositives / predicted : 0;
    const recall = support ? truePositives / support : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    return { classId: c.id, name: c.name, precision, recall, f1, support };
  });
  return { accuracy: rows.length ? correct / rows.length : 0, perClass, classIds, confusion };
}

/** z for a two-sided 95% interval. */
const Z95 = 1.959964;

/**
 * Wilson score interval (95%) of an accuracy measured on `n` images: honest at small n and near
 * 0 or 1, where the plain ±1.96·√(p(1−p)/n) interval is not.
 */
export function wilsonInterval(accuracy: number, n: number): { low: number; high: number } {
  if (n === 0) return { low: 0, high: 1 };
  const z2 = Z95 * Z95;
  const centre = (accuracy + z2 / (2 * n)) / (1 + z2 / n);
  const half = (Z95 / (1 + z2 / n)) * Math.sqrt((accuracy * (1 - accuracy)) / n + z2 / (4 * n * n));
  return { low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}
