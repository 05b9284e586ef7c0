/**
 * The arithmetic of the virtual thumbnail grid and its selection, kept free of the DOM so it is
 * unit-tested: which rows are on screen, where a cell sits, what a click, shift-click,
 * ctrl/cmd-click, drag or arrow key does to the selection.
 */

export interface GridLayout {
  columns: number;
  /** Width and height of one cell including its gap. */
  pitch: number;
  rows: number;
  totalHeight: number;
  count: number;
}

export function gridLayout(width: number, cellSize: number, gap: number, count: number): GridLayout {
  const pitch = cellSize + gap;
  const columns = Math.max(1, Math.floor((width + gap) / pitch));
  const rows = Math.ceil(count / columns);
  return { columns, pitch, rows, totalHeight: rows * pitch, count };
}

/** Indices [first, end) of the cells in the rows that intersect the viewport, plus `overscan` rows each side. */
export function visibleRange(layout: GridLayout, scrollTop: number, viewportHeight: number, overscan = 2): { first: number; end: number } {
  if (layout.count === 0) return { first: 0, end: 0 };
  const firstRow = Math.max(0, Math.floor(scrollTop / layout.pitch) - overscan);
  const lastRow = Math.min(layout.rows - 1, Math.floor((scrollTop + viewportHeight) / layout.pitch) + overscan);
  return { first: firstRow * layout.columns, end: Math.min(layout.count, (lastRow + 1) * layout.columns) };
}

export function cellPosition(layout: GridLayout, index: number): { x: number; y: number } {
  return { x: (index % layout.columns) * layout.pitch, y: Math.floor(index / layout.columns) * layout.pitch };
}

/** The cell under a point in content coordinates, or null past the last cell. */
export function indexAt(layout: GridLayout, x: number, y: number): number | null {
  if (x < 0 || y < 0) return null;
  const column = Math.min(layout.columns - 1, Math.floor(x / layout.pitch));
  const index = Math.floor(y / layout.pitch) * layout.columns + column;
  return index < layout.count ? index : null;
}

/** The scrollTop that brings a cell fully into view, or the current one when it already is. */
export function scrollToShow(layout: GridLayout, index: number, scrollTop: number, viewportHeight: number): number {
  const { y } = cellPosition(layout, index);
  if (y < scrollTop) return y;
  if (y + layout.pitch > scrollTop + viewportHeight) return y + layout.pitch - viewportHeight;
  return scrollTop;
}

export interface Selection {
  /** Selected image ids. */
  ids: Set<number>;
  /** Index where the last plain or ctrl click happened; shift-click extends from here. */
  anchor: number | null;
  /** Index of the keyboard cursor. */
  cursor: number | null;
}

export const emptySelection = (): Selection => ({ ids: new Set(), anchor: null, cursor: null });

export interface Modifiers {
  shift: boolean;
  /** Ctrl on Windows/Linux, Cmd on macOS. */
  toggle: boolean;
}

function range(ids: number[], from: number, to: number): number[] {
  const [low, high] = from <= to ? [from, to] : [to, from];
  return ids.slice(low, high + 1);
}

export function clickSelect(selection: Selection, ids: number[], index: number, modifiers: Modifiers): Selection {
  const id = ids[index];
  if (modifiers.shift && selection.anchor !== null) {
    const base = modifiers.toggle ? new Set(selection.ids) : new Set<number>();
    for (const each of range(ids, selection.anchor, index)) base.add(each);
    return { ids: base, anchor: selection.anchor, cursor: index };
  }
  if (modifiers.toggle) {
    const next = new Set(selection.ids);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    return { ids: next, anchor: index, cursor: index };
  }
  return { ids: new Set([id]), anchor: index, cursor: index };
}

/** Drag selection: every cell in the rectangle of rows and columns spanned by the two cells. */
export function rectangleSelect(base: Set<number>, ids: number[], layout: GridLayout, from: number, to: number): Set<number> {
  const next = new Set(base);
  const [row0, row1] = [Math.floor(from / layout.columns), Math.floor(to / layout.columns)].sort((a, b) => a - b);
  const [col0, col1] = [from % layout.columns, to % layout.columns].sort((a, b) => a - b);
  for (let row = row0; row <= row1; row++) {
    for (let column = col0; column <= col1; column++) {
      const index = row * layout.columns + column;
      if (index < ids.length) next.add(ids[index]);
    }
  }
  return next;
}

const moves: Record<string, (layout: GridLayout) => number> = {
  ArrowLeft: () => -1,
  ArrowRight: () => 1,
  ArrowUp: (layout) => -layout.columns,
  ArrowDown: (layout) => layout.columns,
  PageUp: (layout) => -layout.columns * 5,
  PageDown: (layout) => layout.columns * 5,
};

/** Arrow keys move the cursor (and select it); with shift they extend the selection from the anchor. */
export function keyboardMove(selection: Selection, ids: number[], layout: GridLayout, key: string, shift: boolean): Selection | null {
  if (ids.length === 0) return null;
  let target: number;
  if (key === 'Home') target = 0;
  else if (key === 'End') target = ids.length - 1;
  else if (moves[key]) target = (selection.cursor ?? -1) + (selection.cursor === null ? 1 : moves[key](layout));
  else return null;
  target = Math.max(0, Math.min(ids.length - 1, target));
  if (shift) {
    const anchor = selection.anchor ?? target;
    return { ids: new Set(range(ids, anchor, target)), anchor, cursor: target };
  }
  return { ids: new Set([ids[target]]), anchor: target, cursor: target };
}
