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
