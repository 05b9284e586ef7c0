import { describe, expect, it } from 'vitest';
import { render } from '@testing-library/svelte';
import LineChart from './LineChart.svelte';

const tickLabels = (container: HTMLElement) => [...container.querySelectorAll('text.tick')].slice(0, 3).map((t) => t.textContent);

describe('LineChart', () => {
  it('labels the top, middle and bottom of the range and shows the last value', () => {
    const { container } = render(LineChart, { props: { title: 'Loss', points: [[1, 4], [2, 3], [3, 2]] } });
    expect(tickLabels(container)).toEqual(['4', '3', '2']);
    expect(container.querySelector('figcaption b')!.textContent).toBe('2');
    expect(container.querySelector('path')!.getAttribute('d')!.match(/[ML]/g)).toHaveLength(3);
  });

  it('adds decimals until the ticks differ when the series barely moves', () => {
    const { container } = render(LineChart, { props: { title: 'Loss', points: [[1, 2.309], [2, 2.301]] } });
    expect(tickLabels(container)).toEqual(['2.309', '2.305', '2.301']);
  });

  it('says so when there is nothing to draw yet', () => {
    const { container } = render(LineChart, { props: { title: 'Loss', points: [] } });
    expect(container.textContent).toContain('no data yet');
    expect(container.querySelector('path')).toBeNull();
  });
});
