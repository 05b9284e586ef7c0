import { describe, expect, it } from 'vitest';
import { assignClassKeys, chooseClassKey, CLASS_KEYS, labelAction, UndoStack } from './label_keys.ts';

const ids = (n: number) => Array.from({ length: n }, (_, i) => 101 + i);

describe('class keys', () => {
  it('gives classes 1–9, then 0, then letters no other shortcut uses', () => {
    const { keyOf } = assignClassKeys(ids(14));
    expect([...keyOf.values()]).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '0', 'b', 'c', 'd', 'f']);
    expect(CLASS_KEYS).toHaveLength(25);
    for (const reserved of ['a', 'g', 'n', 'u', 'p', 'i', 'l', 't', 'r', 'y', 'e']) expect(CLASS_KEYS).not.toContain(reserved);
  });

  it('leaves classes past the last key without one', () => {
    const { keyOf } = assignClassKeys(ids(28));
    expect(keyOf.size).toBe(25);
    expect(keyOf.get(101 + 24)).toBe('z');
    expect(keyOf.has(101 + 25)).toBe(false);
  });

  it('keeps a chosen key with its class and gives the others the first free keys', () => {
    const { keyOf, classOf } = assignClassKeys(ids(4), { 103: '1', 104: 'x' });
    expect(Object.fromEntries(keyOf)).toEqual({ 101: '2', 102: '3', 103: '1', 104: 'x' });
    expect(classOf.get('x')).toBe(104);
  });

  it('ignores chosen keys that are reserved, unknown or taken twice', () => {
    const { keyOf } = assignClassKeys(ids(3), { 101: 'u', 102: '7', 103: '7', 999: '1' });
    expect(Object.fromEntries(keyOf)).toEqual({ 101: '1', 102: '7', 103: '2' });
  });

  it('swaps keys when the chosen key is taken, and moves no other class', () => {
    const keys = assignClassKeys(ids(4));
    const chosen = chooseClassKey(keys, 104, '2');
    expect(chosen).toEqual({ 101: '1', 102: '4', 103: '3', 104: '2' });
    expect(Object.fromEntries(assignClassKeys(ids(5), chosen).keyOf)).toEqual({ 101: '1', 102: '4', 103: '3', 104: '2', 105: '5' });
  });

  it('gives the key of a class without one to it, and the former holder the next free key', () => {
    const keys = assignClassKeys(ids(27));
    const chosen = chooseClassKey(keys, 127, '1');
    expect(chosen[127]).toBe('1');
    expect(chosen[101]).toBeUndefined();
    expect(assignClassKeys(ids(27), chosen).keyOf.has(101)).toBe(false); // all 25 keys are held
    expect(assignClassKeys(ids(27).filter((id) => id !== 125), chosen).keyOf.get(101)).toBe('z');
  });
});

describe('labelling keys', () => {
  const twelve = assignClassKeys(ids(12));

  it('maps each class key to its class, 0 and letters included', () => {
    expect(labelAction({ key: '1' }, twelve)).toEqual({ kind: 'label', classId: 101 });
    expect(labelAction({ key: '9' }, twelve)).toEqual({ kind: 'label', classId: 109 });
    expect(labelAction({ key: '0' }, twelve)).toEqual({ kind: 'label', classId: 110 });
    expect(labelAction({ key: 'c' }, twelve)).toEqual({ kind: 'label', classId: 112 });
    expect(labelAction({ key: 'C' }, twelve)).toEqual({ kind: 'label', classId: 112 });
    expect(labelAction({ key: '4' }, assignClassKeys(ids(3)))).toBeNull();
    expect(labelAction({ key: '0' }, assignClassKeys(ids(3)))).toBeNull();
  });

  it('maps navigation, undo, new class, accept, clear and help', () => {
    expect(labelAction({ key: 'ArrowRight' }, twelve)).toEqual({ kind: 'next' });
    expect(labelAction({ key: ' ' }, twelve)).toEqual({ kind: 'next' });
    expect(labelAction({ key: 'ArrowLeft' }, twelve)).toEqual({ kind: 'previous' });
    expect(labelAction({ key: 'u' }, twelve)).toEqual({ kind: 'undo' });
    expect(labelAction({ key: 'z', ctrlKey: true }, twelve)).toEqual({ kind: 'undo' });
    expect(labelAction({ key: 'z', metaKey: true }, twelve)).toEqual({ kind: 'undo' });
    expect(labelAction({ key: 'n' }, twelve)).toEqual({ kind: 'newClass' });
    expect(labelAction({ key: 'a' }, twelve)).toEqual({ kind: 'accept' });
    expect(labelAction({ key: 'Backspace' }, twelve)).toEqual({ kind: 'clear' });
    expect(labelAction({ key: 'Delete' }, twelve)).toEqual({ kind: 'clear' });
    expect(labelAction({ key: '?' }, twelve)).toEqual({ kind: 'help' });
  });

  it('leaves browser and system shortcuts alone', () => {
    expect(labelAction({ key: '1', altKey: true }, twelve)).toBeNull();
    expect(labelAction({ key: 'r', ctrlKey: true }, twelve)).toBeNull();
    expect(labelAction({ key: '1', ctrlKey: true }, twelve)).toBeNull();
    expect(labelAction({ key: 'x' }, twelve)).toBeNull();
  });
});

describe('undo stack', () => {
  it('returns the newest entry first and forgets the oldest past its limit', () => {
    const stack = new UndoStack<number>(3);
    [1, 2, 3, 4].forEach((n) => stack.push(n));
    expect(stack.size).toBe(3);
    expect([stack.pop(), stack.pop(), stack.pop(), stack.pop()]).toEqual([4, 3, 2, undefined]);
  });

  it('takes out an entry from the middle once', () => {
    const stack = new UndoStack<number>();
    [1, 2, 3].forEach((n) => stack.push(n));
    expect([stack.remove(2), stack.remove(2)]).toEqual([true, false]);
    expect(stack.latest).toBe(3);
    expect([stack.pop(), stack.pop(), stack.pop()]).toEqual([3, 1, undefined]);
  });
});
