import { describe, expect, it } from 'vitest';
import { megabytes, planCalls } from './try_it.ts';

describe('planCalls', () => {
  it('packs images in order into calls within the image count and the byte total', () => {
    expect(planCalls([4, 4, 4, 4, 4], 2, 100)).toEqual([[0, 1], [2, 3], [4]]);
    expect(planCalls([60, 30, 20, 90, 10], 32, 100)).toEqual([[0, 1], [2], [3, 4]]);
  });

  it('sends an image as large as the limit in a call of its own', () => {
    expect(planCalls([10, 100, 10], 32, 100)).toEqual([[0], [1], [2]]);
  });

  it('plans nothing for no images', () => {
    expect(planCalls([], 32, 100)).toEqual([]);
  });
});

describe('megabytes', () => {
  it('speaks in MB with one decimal', () => {
    expect(megabytes(20 * 2 ** 20)).toBe('20.0 MB');
    expect(megabytes(1_500_000)).toBe('1.4 MB');
  });
});
