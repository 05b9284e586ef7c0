import { describe, expect, it } from 'vitest';
import { cellPosition, clickSelect, emptySelection, gridLayout, indexAt, keyboardMove, rectangleSelect, scrollToShow, visibleRange } from './grid.ts';

const ids = Array.from({ length: 50_000 }, (_, i) => i + 1);

describe('grid layout', () => {
  it('fits whole cells into the width and counts rows', () => {
    const layout = gridLayout(700, 128, 6, 50_000);
    expect(layout.columns).toBe(5); // 5 × 134 = 670 ≤ 706 < 6 × 134
    expect(layout.pitch).toBe(134);
    expect(layout.rows).toBe(10_000);
    expect(layout.totalHeight).toBe(1_340_000);
  });

  it('keeps at least one column in a narrow window', () => {
    expect(gridLayout(50, 128, 6, 3).columns).toBe(1);
  });

  it('shows only the rows in view plus overscan', () => {
    const layout = gridLayout(700, 128, 6, 50_000);
    const range = visibleRange(layout, 134 * 100, 600, 2);
    // rows 98..106 (100 - 2 .. floor((13400 + 600) / 134) + 2)
    expect(range).toEqual({ first: 98 * 5, end: 107 * 5 });
    expect(range.end - range.first).toBeLessThan(60);
  });

  it('stops at the last cell at the bottom of a partial last row', () => {
    const layout = gridLayout(700, 128, 6, 12);
    expect(visibleRange(layout, 0, 600, 2)).toEqual({ first: 0, end: 12 });
    expect(visibleRange(gridLayout(700, 128, 6, 0), 0, 600)).toEqual({ first: 0, end: 0 });
  });

  it('maps points to cells and back', () => {
    const layout = gridLayout(700, 128, 6, 12);
    expect(cellPosition(layout, 7)).toEqual({ x: 2 * 134, y: 134 });
    expect(indexAt(layout, 2 * 134 + 5, 134 + 5)).toBe(7);
    expect(indexAt(layout, 5000, 10)).toBe(4); // right of the last column: clamps to it
    expect(indexAt(layout, 10, 3 * 134)).toBeNull(); // below the last row
    expect(indexAt(layout, 2 * 134, 2 * 134)).toBeNull(); // index 12 does not exist
  });

  it('scrolls just enough to show a cell', () => {
    const layout = gridLayout(700, 128, 6, 1000);
    expect(scrollToShow(layout, 0, 500, 600)).toBe(0);
    expect(scrollToShow(layout, 5 * 10, 0, 600)).toBe(10 * 134 + 134 - 600);
    expect(scrollToShow(layout, 5 * 2, 0, 600)).toBe(0);
  });
});

describe('selection', () => {
  const few = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21];

  it('a plain click selects one image and sets the anchor', () => {
    const s = clickSelect(emptySelection(), few, 3, { shift: false, toggle: false });
    expect([...s.ids]).toEqual([13]);
    expect(s.anchor).toBe(3);
  });

  it('shift-click selects the range from the anchor, either direction', () => {
    let s = clickSelect(emptySelection(), few, 5, { shift: false, toggle: false });
    s = clickSelect(s, few, 2, { shift: true, toggle: false });
    expect([...s.ids].sort()).toEqual([12, 13, 14, 15]);
    expect(s.anchor).toBe(5);
    s = clickSelect(s, few, 7, { shift: true, toggle: false });
    expect([...s.ids].sort()).toEqual([15, 16, 17]);
  });

  it('ctrl/cmd-click toggles one image and keeps the rest', () => {
    let s = clickSelect(emptySelection(), few, 1, { shift: false, toggle: false });
    s = clickSelect(s, few, 4, { shift: false, toggle: true });
    expect([...s.ids].sort()).toEqual([11, 14]);
    s = clickSelect(s, few, 1, { shift: false, toggle: true });
    expect([...s.ids]).toEqual([14]);
  });

  it('ctrl+shift-click adds a range to the selection', () => {
    let s = clickSelect(emptySelection(), few, 0, { shift: false, toggle: false });
    s = clickSelect(s, few, 8, { shift: false, toggle: true });
    s = clickSelect(s, few, 10, { shift: true, toggle: true });
    expect([...s.ids].sort()).toEqual([10, 18, 19, 20]);
  });

  it('dragging selects the rectangle of rows and columns between two cells', () => {
    const layout = gridLayout(700, 128, 6, few.length); // 5 columns
    // From row 0 col 3 to row 2 col 1: columns 1..3 of rows 0..2; index 11 (row 2, col 1) exists, 12 and 13 do not.
    const selected = rectangleSelect(new Set([99]), few, layout, 3, 11);
    expect([...selected].sort((a, b) => a - b)).toEqual([11, 12, 13, 16, 17, 18, 21, 99]);
  });

  it('arrow keys move by one cell or one row and clamp at the ends', () => {
    const layout = gridLayout(700, 128, 6, few.length);
    let s = keyboardMove(emptySelection(), few, layout, 'ArrowRight', false)!;
    expect(s.cursor).toBe(0);
    s = keyboardMove(s, few, layout, 'ArrowDown', false)!;
    expect(s.cursor).toBe(5);
    expect([...s.ids]).toEqual([15]);
    s = keyboardMove(s, few, layout, 'ArrowDown', true)!;
    expect(s.cursor).toBe(10);
    expect([...s.ids].sort()).toEqual([15, 16, 17, 18, 19, 20]);
    s = keyboardMove(s, few, layout, 'End', false)!;
    expect(s.cursor).toBe(11);
    expect(keyboardMove(s, few, layout, 'ArrowRight', false)!.cursor).toBe(11);
    expect(keyboardMove(s, few, layout, 'x', false)).toBeNull();
  });

  it('works on 50,000 ids without walking them for a plain click', () => {
    const s = clickSelect(emptySelection(), ids, 49_999, { shift: false, toggle: false });
    expect([...s.ids]).toEqual([50_000]);
  });
});
