import { describe, expect, it } from 'vitest';
import { fireEvent, render } from '@testing-library/svelte';
import { tick } from 'svelte';
import VirtualGrid from './VirtualGrid.svelte';
import { emptySelection, type Selection } from '../lib/grid.ts';

const ids = Array.from({ length: 50_000 }, (_, i) => i + 1);
const thumbUrl = (id: number) => `/api/thumb/${id}`;

async function renderGrid(props: Record<string, unknown> = {}) {
  let selection: Selection = emptySelection();
  const ranges: [number, number][] = [];
  const result = render(VirtualGrid, {
    props: {
      ids,
      selection,
      thumbUrl,
      onrange: (first: number, end: number) => ranges.push([first, end]),
      ...props,
    },
  });
  await tick();
  await new Promise((resolve) => setTimeout(resolve, 0)); // the ResizeObserver reports the size
  await tick();
  return { ...result, ranges, viewport: result.getByTestId('virtual-grid') };
}

function cells(container: HTMLElement): HTMLElement[] {
  return [...container.querySelectorAll<HTMLElement>('[role="gridcell"]')];
}

describe('VirtualGrid', () => {
  it('keeps only the visible rows of 50,000 images in the DOM', async () => {
    const { container, ranges } = await renderGrid();
    const shown = cells(container);
    // 800 px wide → 5 columns of 134 px; 600 px tall → 5 rows in view + 2 overscan below.
    expect(shown.length).toBe(5 * 7);
    expect(shown[0].dataset.id).toBe('1');
    expect(shown[0].querySelector('img')!.getAttribute('src')).toBe('/api/thumb/1');
    expect(ranges.at(-1)).toEqual([0, 35]);
  });

  it('renders the rows at the scroll position after scrolling to the end', async () => {
    const { container, viewport } = await renderGrid();
    viewport.scrollTop = 10_000 * 134 - 600;
    await fireEvent.scroll(viewport);
    const shown = cells(container);
    const shownIds = shown.map((cell) => Number(cell.dataset.id));
    expect(shownIds).toContain(50_000);
    expect(Math.min(...shownIds)).toBeGreaterThan(49_900);
    expect(shown.length).toBeLessThan(60);
  });

  it('selects with click, ctrl-click and shift-click on cells', async () => {
    const { container, viewport } = await renderGrid();
    // jsdom's getBoundingClientRect is all zeros, so client coordinates are content coordinates.
    const at = (index: number) => ({ clientX: (index % 5) * 134 + 6 + 10, clientY: Math.floor(index / 5) * 134 + 6 + 10, button: 0 });
    await fireEvent.mouseDown(viewport, at(1));
    await fireEvent.mouseUp(window);
    await fireEvent.mouseDown(viewport, { ...at(7), ctrlKey: true });
    await fireEvent.mouseUp(window);
    let selected = cells(container).filter((cell) => cell.getAttribute('aria-selected') === 'true').map((cell) => Number(cell.dataset.id));
    expect(selected).toEqual([2, 8]);
    await fireEvent.mouseDown(viewport, { ...at(9), shiftKey: true });
    await fireEvent.mouseUp(window);
    selected = cells(container).filter((cell) => cell.getAttribute('aria-selected') === 'true').map((cell) => Number(cell.dataset.id));
    expect(selected).toEqual([8, 9, 10]);
  });

  it('drag selects a rectangle and Ctrl+A selects everything', async () => {
    const { container, viewport } = await renderGrid();
    const at = (index: number) => ({ clientX: (index % 5) * 134 + 16, clientY: Math.floor(index / 5) * 134 + 16, button: 0 });
    await fireEvent.mouseDown(viewport, at(0));
    await fireEvent.mouseMove(window, at(6));
    await fireEvent.mouseUp(window);
    const selected = cells(container).filter((cell) => cell.getAttribute('aria-selected') === 'true').map((cell) => Number(cell.dataset.id));
    expect(selected).toEqual([1, 2, 6, 7]);
    await fireEvent.keyDown(viewport, { key: 'a', ctrlKey: true });
    expect(cells(container).every((cell) => cell.getAttribute('aria-selected') === 'true')).toBe(true);
    expect(container.textContent).not.toContain('undefined');
  });

  it('passes unhandled keys to the parent and opens the cursor image on Enter', async () => {
    const keys: string[] = [];
    const opened: number[] = [];
    const { viewport } = await renderGrid({ onkey: (e: KeyboardEvent) => (keys.push(e.key), true), onopen: (i: number) => opened.push(i) });
    await fireEvent.keyDown(viewport, { key: 'ArrowRight' });
    await fireEvent.keyDown(viewport, { key: 'ArrowDown' });
    await fireEvent.keyDown(viewport, { key: 'Enter' });
    await fireEvent.keyDown(viewport, { key: '3' });
    expect(opened).toEqual([5]);
    expect(keys).toEqual(['3']);
  });

  it('keeps its place when the same list reloads and goes to the top for another filter', async () => {
    const { viewport, rerender } = await renderGrid({ resetKey: 'unlabelled' });
    viewport.scrollTop = 5000;
    await fireEvent.scroll(viewport);
    await rerender({ ids: ids.slice(10), resetKey: 'unlabelled' });
    expect(viewport.scrollTop).toBe(5000);
    await rerender({ ids: ids.slice(20), resetKey: 'labelled' });
    expect(viewport.scrollTop).toBe(0);
  });

  it('shows the label and prediction of loaded items', async () => {
    const classes = [{ id: 1, name: 'cat', labels: 1 }, { id: 2, name: 'dog', labels: 0 }];
    const itemFor = (id: number) =>
      id === 1 ? { id, labelClassId: 1, labelSource: 'human' as const, predictedClassId: 2, confidence: 0.61 } : undefined;
    const { container } = await renderGrid({ classes, itemFor, showPredictions: true });
    const first = cells(container)[0];
    expect(first.querySelector('.chip.label')!.textContent!.trim()).toBe('cat');
    const prediction = first.querySelector('.chip.prediction')!;
    expect(prediction.textContent!.trim()).toBe('dog 61%');
    expect(prediction.classList.contains('wrong')).toBe(true);
    expect(cells(container)[1].querySelector('.chip')).toBeNull();
  });
});
