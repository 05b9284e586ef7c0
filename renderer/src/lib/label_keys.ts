/** What a key does in the labelling view and the gallery; pure so the mapping is unit-tested. */

export type LabelAction =
  | { kind: 'label'; classId: number }
  | { kind: 'clear' }
  | { kind: 'next' }
  | { kind: 'previous' }
  | { kind: 'undo' }
  | { kind: 'newClass' }
  | { kind: 'accept' }
  | { kind: 'help' };

export interface KeyLike {
  key: string;
  ctrlKey?: boolean;
  metaKey?: boolean;
  altKey?: boolean;
}

/**
 * Keys that label, in the order classes receive them: 1–9, 0, then the letters no other shortcut
 * uses. Left out: a (accept), n (new class), u (undo), and g with the screen letters p i l t r y e
 * that follow it, since "g l" must switch screens even when the gallery grid sees the keys first.
 */
export const CLASS_KEYS: readonly string[] = [...'1234567890', ...'bcdfhjkmoqsvwxz'];

/** Which key labels with which class, both ways. */
export interface ClassKeys {
  keyOf: Map<number, string>;
  classOf: Map<string, number>;
}

/**
 * Keys for the classes in their order: a key the user chose (`chosen`, by class id) stays with its
 * class; every other class takes the first key nobody holds. Classes past the last key get none.
 */
export function assignClassKeys(classIds: number[], chosen: Record<number, string> = {}): ClassKeys {
  const keyOf = new Map<number, string>();
  const classOf = new Map<string, number>();
  const give = (classId: number, key: string) => {
    keyOf.set(classId, key);
    classOf.set(key, classId);
  };
  for (const classId of classIds) {
    const key = chosen[classId];
    if (key !== undefined && CLASS_KEYS.includes(key) && !classOf.has(key)) give(classId, key);
  }
  const free = CLASS_KEYS.filter((key) => !classOf.has(key));
  for (const classId of classIds) {
    if (!keyOf.has(classId) && free.length > 0) give(classId, free.shift()!);
  }
  return { keyOf, classOf };
}

/**
 * The keys to keep after giving `key` to a class: the class that held it takes the class's old key
 * (a swap), and every other class keeps its key, so choosing one key never moves the rest.
 */
export function chooseClassKey(current: ClassKeys, classId: number, key: string): Record<number, string> {
  const chosen: Record<number, string> = Object.fromEntries(current.keyOf);
  const holder = current.classOf.get(key);
  const previous = current.keyOf.get(classId);
  if (holder !== undefined && holder !== classId) {
    if (previous === undefined) delete chosen[holder];
    else chosen[holder] = previous;
  }
  chosen[classId] = key;
  return chosen;
}

/** The labeller's and gallery's shortcuts other than class keys; letters in either case. */
const ACTION_KEYS = new Map<string, Exclude<LabelAction, { kind: 'label' }>['kind']>([
  ['ArrowRight', 'next'],
  [' ', 'next'],
  ['ArrowLeft', 'previous'],
  ['u', 'undo'],
  ['n', 'newClass'],
  ['a', 'accept'],
  ['Backspace', 'clear'],
  ['Delete', 'clear'],
  ['?', 'help'],
]);

export function labelAction(event: KeyLike, keys: ClassKeys): LabelAction | null {
  if (event.altKey) return null;
  const command = event.ctrlKey || event.metaKey;
  if (command) return event.key.toLowerCase() === 'z' ? { kind: 'undo' } : null;
  const classId = keys.classOf.get(event.key.toLowerCase());
  if (classId !== undefined) return { kind: 'label', classId };
  const kind = ACTION_KEYS.get(event.key.length === 1 ? event.key.toLowerCase() : event.key);
  return kind ? { kind } : null;
}

/** Keys typed into a field are text, never shortcuts. */
export function typingIn(target: EventTarget | null): boolean {
  return Boolean((target as HTMLElement | null)?.closest?.('input, textarea, select, [contenteditable="true"]'));
}

export const labelKeyHelp: [string, string][] = [
  ['1 – 9, 0, b, c, d …', 'label with that class (the key on its button) and go to the next image'],
  ['Backspace / Delete', 'remove the label'],
  ['a', 'accept the model’s prediction as the label'],
  ['→ / Space', 'next image'],
  ['←', 'previous image'],
  ['u / Ctrl+Z', 'undo the last labelling'],
  ['n', 'new class'],
  ['?', 'show or hide these keys'],
];

/** Labelling steps to undo, newest last; each remembers where it happened so undo returns there. */
export class UndoStack<T> {
  private readonly entries: T[] = [];

  constructor(private readonly limit = 500) {}

  push(entry: T): void {
    this.entries.push(entry);
    if (this.entries.length > this.limit) this.entries.shift();
  }

  pop(): T | undefined {
    return this.entries.pop();
  }

  /** Takes out one entry wherever it is (undone from its toast); false when it is no longer here. */
  remove(entry: T): boolean {
    const index = this.entries.lastIndexOf(entry);
    if (index >= 0) this.entries.splice(index, 1);
    return index >= 0;
  }

  get latest(): T | undefined {
    return this.entries.at(-1);
  }

  get size(): number {
    return this.entries.length;
  }
}
