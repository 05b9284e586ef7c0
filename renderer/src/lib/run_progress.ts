/** How the Train screen words a running job's progress: what it is doing, and a count in that phase's own unit. */
import type { ServerEvent } from '../../../app/contract/operations.ts';

type JobProgress = Extract<ServerEvent, { type: 'job.progress' }>;

export interface ProgressWords {
  phase: string;
  /** Null where the phase has nothing to count (preparing, timing). */
  count: string | null;
}

export function progressWords({ phase, step, totalSteps }: Pick<JobProgress, 'phase' | 'step' | 'totalSteps'>): ProgressWords {
  const done = `${step.toLocaleString('en')} / ${totalSteps.toLocaleString('en')}`;
  switch (phase) {
    case 'preparing':
      return { phase: 'Preparing…', count: null };
    // Steps here are images decoded into the training cache, not optimizer steps.
    case 'caching':
      return { phase: 'Decoding images', count: done };
    case 'measuring':
      return { phase: 'Timing a few steps to fit the budget…', count: null };
    case 'training':
      return { phase: 'Training', count: `step ${done}` };
    case 'evaluating':
      return { phase: 'Predicting every image', count: done };
    default:
      return { phase: String(phase), count: done }; // a phase newer than this screen
  }
}
