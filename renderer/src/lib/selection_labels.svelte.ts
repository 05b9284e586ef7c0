/**
 * Labelling a gallery selection: labels, removals and accepted predictions, each kept for undo with
 * an Undo button in its message. A change to many images waits in `pending` for the user to confirm.
 */
import type { LabelChange } from '../../../app/contract/operations.ts';
import { count } from './format.ts';
import { UndoStack } from './label_keys.ts';
import { studio } from './studio.svelte.ts';

/** A change to more images than this asks first: one key after a select-all must not relabel thousands. */
export const CONFIRM_ABOVE = 50;

export interface PendingChange {
  title: string;
  message: string;
  confirm: string;
  apply: () => Promise<void>;
}

interface Done {
  changes: LabelChange[];
  toastId: number;
}

export class SelectionLabels {
  pending: PendingChange | null = $state(null);
  private readonly done = new UndoStack<Done>();

  /** Gives the images a class, or removes their labels (null). */
  label(imageIds: number[], classId: number | null): void {
    if (imageIds.length === 0) {
      studio.notify('info', 'Select images first (click, Shift+click, Ctrl/Cmd+click or drag).');
      return;
    }
    const images = count(imageIds.length, 'image');
    const selected = count(imageIds.length, 'selected image');
    const name = studio.classes.find((c) => c.id === classId)?.name;
    const apply = async () => {
      const result = await studio.attempt('labels.set', { imageIds, classId });
      if (result) this.remember(result.changes, classId === null ? `Removed ${count(result.changes.length, 'label')}.` : `Labelled ${count(result.changes.length, 'image')} “${name}”.`);
    };
    if (classId === null) this.askIfMany(imageIds, { title: `Remove the labels of ${images}?`, message: `All ${selected} become unlabelled.`, confirm: 'Remove labels', apply });
    else this.askIfMany(imageIds, { title: `Label ${images} “${name}”?`, message: `All ${selected} get this label, replacing any they had.`, confirm: `Label ${images}`, apply });
  }

  acceptPredictions(imageIds: number[]): void {
    if (imageIds.length === 0) {
      studio.notify('info', 'Select images first.');
      return;
    }
    this.askIfMany(imageIds, {
      title: `Accept ${count(imageIds.length, 'prediction')}?`,
      message: `The model's prediction becomes the label of all ${count(imageIds.length, 'selected image')}.`,
      confirm: 'Accept predictions',
      apply: async () => {
        const result = await studio.attempt('predictions.accept', { imageIds });
        if (result) this.remember(result.changes, `Accepted ${count(result.changes.length, 'prediction')} as labels.`);
      },
    });
  }

  confirm(): void {
    const change = this.pending;
    this.pending = null;
    void change?.apply();
  }

  cancel(): void {
    this.pending = null;
  }

  undoLast(): void {
    const latest = this.done.latest;
    if (latest) void this.undo(latest);
    else studio.notify('info', 'Nothing to undo.');
  }

  private askIfMany(imageIds: number[], change: PendingChange): void {
    if (imageIds.length > CONFIRM_ABOVE) this.pending = change;
    else void change.apply();
  }

  /** Keeps a change for undo and says what it did, with an Undo button for that very change. */
  private remember(changes: LabelChange[], text: string): void {
    const entry: Done = { changes, toastId: 0 };
    entry.toastId = studio.notify('success', text, { label: 'Undo', run: () => void this.undo(entry) });
    this.done.push(entry);
  }

  private async undo(entry: Done): Promise<void> {
    if (!this.done.remove(entry)) return; // undone already (by key, or a second click)
    studio.dismiss(entry.toastId);
    const result = await studio.attempt('labels.restore', {
      changes: entry.changes.map((c) => ({ imageId: c.imageId, classId: c.previousClassId })),
    });
    if (result) studio.notify('info', `Undid labelling of ${count(entry.changes.length, 'image')}.`);
  }
}
