import { describe, expect, it } from 'vitest';
import { labelAction, UndoStack } from './label_keys.ts';

describe('labelling keys', () => {
  it('maps 1–9 to the classes that exist', () => {
    expect(labelAction({ key: '1' }, 3)).toEqual({ kind: 'label', classIndex: 0 });
    expect(labelAction({ key: '3' }, 3)).toEqual({ kind: 'label', classIndex: 2 });
    expect(labelAction({ key: '4' }, 3)).toBeNull();
    expect(labelAction({ key: '9' }, 12)).toEqual({ kind: 'label', classIndex: 8 });
  });

  it('maps navigation, undo, new class, accept, clear and help', () => {
    expect(labelAction({ key: 'ArrowRight' }, 2)).toEqual({ kind: 'next' });
    expect(labelAction({ key: ' ' }, 2)).toEqual({ kind: 'next' });
    expect(labelAction({ key: 'ArrowLeft' }, 2)).toEqual({ kind: 'previous' });
    expect(labelAction({ key: 'u' }, 2)).toEqual({ kind: 'undo' });
    expect(labelAction({ key: 'z', ctrlKey: true }, 2)).toEqual({ kind: 'undo' });
    expect(labelAction({ key: 'z', metaKey: true }, 2)).toEqual({ kind: 'undo' });
    expect(labelAction({ key: 'n' }, 2)).toEqual({ kind: 'newClass' });
    expect(labelAction({ key: 'a' }, 2)).toEqual({ kind: 'accept' });
    expect(labelAction({ key: '0' }, 2)).toEqual({ kind: 'clear' });
    expect(labelAction({ key: 'Backspace' }, 2)).toEqual({ kind: 'clear' });
    expect(labelAction({ key: '?' }, 2)).toEqual({ kind: 'help' });
  });

  it('leaves browser and system shortcuts alone', () => {
    expect(labelAction({ key: '1', altKey: true }, 3)).toBeNull();
    expect(labelAction({ key: 'r', ctrlKey: true }, 3)).toBeNull();
    expect(labelAction({ key: '1', ctrlKey: true }, 3)).toBeNull();
    expect(labelAction({ key: 'x' }, 3)).toBeNull();
  });
});

describe('undo stack', () => {
  it('returns the newest entry first and forgets the oldest past its limit', () => {
    const stack = new UndoStack<number>(3);
    [1, 2, 3, 4].forEach((n) => stack.push(n));
    expect(stack.size).toBe(3);
    expect([stack.pop(), stack.pop(), stack.pop(), stack.pop()]).toEqual([4, 3, 2, undefined]);
  });
});
