/** The gallery's filter menu: each entry a string key for the <select>, decoded into the contract's filter. */
import type { ClassInfo, ImageFilter } from '../../../app/contract/operations.ts';

export const LOW_CONFIDENCE = 0.6;

export interface FilterOption {
  key: string;
  label: string;
}

export function filterOptions(classes: ClassInfo[], hasPredictions: boolean): FilterOption[] {
  const options: FilterOption[] = [
    { key: 'all', label: 'All images' },
    { key: 'unlabelled', label: 'Unlabelled' },
    { key: 'labelled', label: 'Labelled (any class)' },
    ...classes.map((c) => ({ key: `labelled:${c.id}`, label: `Labelled: ${c.name} (${c.labels})` })),
  ];
  if (hasPredictions) {
    options.push(
      ...classes.map((c) => ({ key: `predicted:${c.id}`, label: `Predicted: ${c.name}` })),
      { key: 'lowConfidence', label: `Low confidence (< ${LOW_CONFIDENCE * 100}%)` },
      { key: 'misclassified', label: 'Errors (prediction ≠ label)' },
    );
  }
  return options;
}

export function filterFromKey(key: string): ImageFilter {
  const [kind, raw] = key.split(':');
  const classId = raw === undefined ? undefined : Number(raw);
  switch (kind) {
    case 'unlabelled':
      return { kind: 'unlabelled' };
    case 'labelled':
      return { kind: 'labelled', classId };
    case 'predicted':
      return { kind: 'predicted', classId };
    case 'lowConfidence':
      return { kind: 'lowConfidence', below: LOW_CONFIDENCE };
    case 'misclassified':
      return { kind: 'misclassified' };
    default:
      return { kind: 'all' };
  }
}
