import { beforeEach, describe, expect, it } from 'vitest';
import type { Api } from '../../../app/contract/operations.ts';
import { CONFIRM_ABOVE, SelectionLabels } from './selection_labels.svelte.ts';
import { studio } from './studio.svelte.ts';

/** A transport that records each call and answers labels.set as if every image was unlabelled. */
function recordingApi(calls: [string, unknown][]): Api {
  return {
    async call(name, input) {
      calls.push([name, input]);
      const imageIds = (input as { imageIds?: number[] }).imageIds ?? [];
      return { changes: imageIds.map((imageId) => ({ imageId, previousClassId: null })) } as never;
    },
    onEvent: () => () => {},
  };
}

const ids = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('labelling a selection', () => {
  let calls: [string, unknown][];
  beforeEach(() => {
    calls = [];
    studio.start({ api: recordingApi(calls), mediaUrl: () => '' });
    studio.toasts = [];
    studio.status = { project: { dir: '/p', classes: [{ id: 7, name: 'deer', labels: 0 }] } } as never;
  });

  it(`labels up to ${CONFIRM_ABOVE} images at once, and asks first above that`, async () => {
    const labels = new SelectionLabels();
    labels.label(ids(CONFIRM_ABOVE), 7);
    await settle();
    expect(labels.pending).toBeNull();
    expect(calls).toEqual([['labels.set', { imageIds: ids(CONFIRM_ABOVE), classId: 7 }]]);

    labels.label(ids(CONFIRM_ABOVE + 1), 7);
    await settle();
    expect(labels.pending?.title).toBe('Label 51 images “deer”?');
    expect(calls).toHaveLength(1);
    labels.confirm();
    await settle();
    expect(labels.pending).toBeNull();
    expect(calls.at(-1)).toEqual(['labels.set', { imageIds: ids(CONFIRM_ABOVE + 1), classId: 7 }]);
  });

  it('changes nothing when the question is cancelled', async () => {
    const labels = new SelectionLabels();
    labels.acceptPredictions(ids(200));
    labels.cancel();
    await settle();
    expect(calls).toEqual([]);
  });

  it('undoes a change once from its toast, and dismisses the toast', async () => {
    const labels = new SelectionLabels();
    labels.label(ids(3), 7);
    await settle();
    const toast = studio.toasts.find((t) => t.action)!;
    expect(toast.text).toBe('Labelled 3 images “deer”.');
    toast.action!.run();
    toast.action!.run();
    await settle();
    expect(calls.filter(([name]) => name === 'labels.restore')).toEqual([
      ['labels.restore', { changes: ids(3).map((imageId) => ({ imageId, classId: null })) }],
    ]);
    expect(studio.toasts.some((t) => t.id === toast.id)).toBe(false);
    labels.undoLast();
    expect(studio.toasts.at(-1)?.text).toBe('Nothing to undo.');
  });
});
