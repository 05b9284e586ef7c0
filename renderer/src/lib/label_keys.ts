/** What a key does in the labelling view; pure so the mapping is unit-tested. */

export type LabelAction =
  | { kind: 'label'; classIndex: number }
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

export function labelAction(event: KeyLike, classCount: number): LabelAction | null {
  if (event.altKey) return null;
  const command = event.ctrlKey || event.metaKey;
  if (command) return event.key.toLowerCase() === 'z' ? { kind: 'undo' } : null;
  if (/^[1-9]$/.test(event.key)) {
    const classIndex = Number(event.key) - 1;
    return classIndex < classCount ? { kind: 'label', classIndex } : null;
  }
  switch (event.key) {
    case 'ArrowRight':
    case ' ':
      return { kind: 'next' };
    case 'ArrowLeft':
      return { kind: 'previous' };
    case 'u':
    case 'U':
      return { kind: 'undo' };
    case 'n':
    case 'N':
      return { kind: 'newClass' };
    case 'a':
    case 'A':
      return { kind: 'accept' };
    case '0':
    case 'Backspace':
    case 'Delete':
      return { kind: 'clear' };
    case '?':
      return { kind: 'help' };
    default:
      return null;
  }
}

export const labelKeyHelp: [string, string][] = [
  ['1 – 9', 'label with that class and go to the next image'],
  ['0 / Backspace', 'remove the label'],
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

  get size(): number {
    return this.entries.length;
  }
}
