import { describe, expect, it } from 'vitest';
import { planCalls } from './try_it.ts';

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
