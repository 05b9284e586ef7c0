import { describe, expect, it } from 'vitest';
import { fireEvent, render } from '@testing-library/svelte';
import ConfusionMatrix from './ConfusionMatrix.svelte';

const names = ['cat', 'dog', 'bird'];
const matrix = [
  [8, 2, 0],
  [1, 9, 0],
  [0, 3, 7],
];

describe('ConfusionMatrix', () => {
  it('shows each count with true classes as rows and their totals', () => {
    const { container } = render(ConfusionMatrix, { props: { names, matrix } });
    const rows = [...container.querySelectorAll('tbody tr')];
    expect(rows.map((row) => row.querySelector('th')!.textContent)).toEqual(names);
    expect(rows.map((row) => [...row.querySelectorAll('button')].map((b) => Number(b.textContent)))).toEqual(matrix);
    expect(rows.map((row) => Number(row.querySelector('td.total')!.textContent))).toEqual([10, 10, 10]);
  });

  it('marks the diagonal, disables empty cells and shades by share of the row', () => {
    const { container } = render(ConfusionMatrix, { props: { names, matrix } });
    const cell = (t: string, p: string) => container.querySelector<HTMLButtonElement>(`button[data-true="${t}"][data-predicted="${p}"]`)!;
    expect(cell('cat', 'cat').classList.contains('diagonal')).toBe(true);
    expect(cell('cat', 'dog').classList.contains('diagonal')).toBe(false);
    expect(cell('cat', 'bird').disabled).toBe(true);
    expect(cell('bird', 'dog').style.getPropertyValue('--share')).toBe('0.3');
    expect(cell('dog', 'dog').style.getPropertyValue('--share')).toBe('0.9');
  });

  it('reports the clicked cell as (true, predicted) indices', async () => {
    const clicked: [number, number][] = [];
    const { container } = render(ConfusionMatrix, { props: { names, matrix, onselect: (t: number, p: number) => clicked.push([t, p]) } });
    await fireEvent.click(container.querySelector('button[data-true="bird"][data-predicted="dog"]')!);
    expect(clicked).toEqual([[2, 1]]);
  });
});
