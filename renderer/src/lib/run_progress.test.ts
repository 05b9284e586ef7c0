import { describe, expect, it } from 'vitest';
import { progressWords } from './run_progress.ts';

describe('run progress in words', () => {
  it('names the decoding phase, whose count is of images, not steps', () => {
    expect(progressWords({ phase: 'caching', step: 2526, totalSteps: 3150 })).toEqual({ phase: 'Decoding images', count: '2,526 / 3,150' });
  });

  it('counts optimizer steps only while training', () => {
    expect(progressWords({ phase: 'training', step: 40, totalSteps: 1200 })).toEqual({ phase: 'Training', count: 'step 40 / 1,200' });
  });

  it('counts images while predicting, and nothing while preparing or timing', () => {
    expect(progressWords({ phase: 'evaluating', step: 120, totalSteps: 200 })).toEqual({ phase: 'Predicting every image', count: '120 / 200' });
    expect(progressWords({ phase: 'preparing', step: 0, totalSteps: 0 }).count).toBeNull();
    expect(progressWords({ phase: 'measuring', step: 0, totalSteps: 1 }).count).toBeNull();
  });
});
