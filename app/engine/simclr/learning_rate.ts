/**
 * SimCLR's learning-rate schedule: a peak rate scaled with the batch size, reached by linear
 * warm-up from 0, then cosine decay to 0 at the last step.
 *
 * "sqrt" scaling (base·√batch) is SimCLRv2's choice: it suits small batches better than
 * "linear" scaling (base·batch/256), which is kept for the supervised-style settings of SimCLR v1.
 */

/** SimCLRv2 pretraining: 0.075·√batch with LARS. */
export const PRETRAIN_BASE_LEARNING_RATE = 0.075;
/** SimCLRv2 fine-tuning: 0.005·√batch (0.16 at batch 1024) with LARS. */
export const FINETUNE_BASE_LEARNING_RATE = 0.005;

export type LearningRateScaling = 'sqrt' | 'linear';

export interface LearningRateSchedule {
  baseLearningRate: number;
  batchSize: number;
  scaling: LearningRateScaling;
  warmupSteps: number;
  totalSteps: number;
}

export function peakLearningRate(s: LearningRateSchedule): number {
  return s.scaling === 'sqrt' ? s.baseLearningRate * Math.sqrt(s.batchSize) : (s.baseLearningRate * s.batchSize) / 256;
}

/**
 * The rate for the update made at `step` (0-based). Warm-up is linear from 0 at step 0 to the
 * peak at `warmupSteps`; cosine decay then reaches 0 at `totalSteps`. Steps past the end get 0.
 */
export function learningRateAt(step: number, s: LearningRateSchedule): number {
  if (!(s.totalSteps > 0 && s.warmupSteps >= 0 && s.warmupSteps <= s.totalSteps)) {
    throw new Error(`bad schedule: ${s.warmupSteps} warm-up steps of ${s.totalSteps}`);
  }
  const peak = peakLearningRate(s);
  if (step < s.warmupSteps) return (peak * step) / s.warmupSteps;
  const decaySteps = s.totalSteps - s.warmupSteps;
  if (decaySteps === 0) return peak;
  const progress = Math.min(1, (step - s.warmupSteps) / decaySteps);
  return 0.5 * peak * (1 + Math.cos(Math.PI * progress));
}
