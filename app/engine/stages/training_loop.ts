/**
 * The step loop every training stage shares: seeded data order, learning-rate schedule, metrics
 * (through the context's recorder), progress with ETA, checkpoints (each epoch, every few
 * minutes, and on cancel) and exact continuation from a checkpoint taken anywhere in an epoch.
 * Runs are planned in steps, so a time budget may end inside an epoch. A budgeted run re-plans its
 * step count from the pace it keeps (judging included), so it neither stops early when the steps
 * run faster than first measured nor overruns when they slow down; the deadline is the safety net.
 */
import * as tf from '@tensorflow/tfjs';
import type { LoopState } from '../data/checkpoint.ts';
import { epochOrder } from '../data/dataset.ts';
import { learningRateAt } from '../simclr/learning_rate.ts';
import { Rng } from '../simclr/random.ts';
import type { StageContext } from './stage_context.ts';

/** Even without an epoch ending, a run never loses more than this much work to a crash. */
const CHECKPOINT_EVERY_MS = 5 * 60_000;
const PROGRESS_EVERY_MS = 250;
/**
 * A budgeted run spends at most 1 / (1 + this) of its time judging epochs (batch-norm statistics,
 * validation, checkpoint): with a few labelled images an epoch is one or two steps, and judging each
 * one would take longer than training. Runs with a fixed epoch count judge every epoch.
 */
const TRAIN_TO_JUDGE_RATIO = 4;
/**
 * A run that keeps its last epoch (mixup) judges only to draw its validation curve and to end on a
 * score, so it spends at most 1 / (1 + this) judging: 5%, where 20% had cost it about a sixth of its steps.
 */
const CURVE_ONLY_TRAIN_TO_JUDGE_RATIO = 19;
/** Metric points logged per epoch (plus the last step), enough for smooth curves. */
const POINTS_PER_EPOCH = 20;
/** A budgeted run re-plans at each judged epoch and at least this often, for epochs of many steps. */
const REPLAN_EVERY_MS = 15_000;

export class Cancelled extends Error {
  constructor() {
    super('cancelled');
    this.name = 'Cancelled';
  }
}

export interface EpochResult {
  metrics: Record<string, number>;
  best: boolean;
}

export interface TrainingLoop {
  /** Number of examples the stage draws batches from (positions 0..count-1). */
  examples: number;
  batchSize: number;
  /** Optimizer steps of the whole run; need not be a whole number of epochs. */
  totalSteps: number;
  /** Wall-clock time (Date.now()) by which the loop must have stopped, when the run has a budget. */
  deadline?: number;
  /** Class of each example, when batches should draw every class equally often. */
  balancedLabels?: number[];
  peakLearningRate: number;
  warmupFraction: number;
  seed: number;
  /** Augmentation randomness; its state is checkpointed. */
  rng: Rng;
  /** One optimizer step on the examples at `positions`; returns scalar metrics such as loss. */
  step(positions: number[], learningRate: number, rng: Rng): Promise<Record<string, number>>;
  endEpoch?(epoch: number): Promise<EpochResult>;
  /** The run's model is its last epoch, whatever the judged ones scored, so judging can be rarer. */
  keepsLastEpoch?: boolean;
  save(state: LoopState, best: boolean): Promise<void>;
  /** Stage values kept in every checkpoint (best validation accuracy so far, ...). */
  extra(): Record<string, unknown>;
}

export function stepsPerEpoch(examples: number, batchSize: number): number {
  return Math.max(1, Math.floor(examples / batchSize));
}

/** Epochs a number of steps makes, to two decimals: what plans and summaries show. */
export function epochsOf(steps: number, perEpoch: number): number {
  return Math.round((steps / perEpoch) * 100) / 100;
}

/** Each epoch's order comes from its own generator, so a resumed run rebuilds it without replaying earlier epochs. */
function orderFor(loop: TrainingLoop, epoch: number): number[] {
  const rng = new Rng((loop.seed ^ Math.imul(epoch + 1, 0x9e3779b1)) >>> 0);
  return epochOrder(loop.examples, rng, loop.balancedLabels && { labels: loop.balancedLabels });
}

/**
 * The rate at each step for a run of `totalSteps`. Warm-up keeps the length first planned, so a
 * re-plan moves only where the cosine decay ends.
 */
function schedule(loop: TrainingLoop, warmupSteps: number, totalSteps: number) {
  // The loop is given the peak rate already scaled for its batch, so the schedule takes it as is.
  const warmup = Math.min(warmupSteps, totalSteps);
  return (step: number) =>
    learningRateAt(step, { baseLearningRate: loop.peakLearningRate, batchSize: 1, scaling: 'sqrt', warmupSteps: warmup, totalSteps });
}

/**
 * Steps a budgeted run can still take before its deadline at the pace kept so far (wall time per
 * step since the loop began, epoch judging included), keeping back one judging for the last epoch.
 */
export function stepsLeftAtPace(options: { msToDeadline: number; msPerStep: number; lastJudgingMs: number }): number {
  return Math.max(0, Math.floor((options.msToDeadline - options.lastJudgingMs) / options.msPerStep));
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

/** Runs the loop from `start` (a checkpoint's state) or from step 0; returns the final state. */
export async function runTrainingLoop(ctx: StageContext, loop: TrainingLoop, start: LoopState | null): Promise<LoopState> {
  const perEpoch = stepsPerEpoch(loop.examples, loop.batchSize);
  let totalSteps = loop.totalSteps;
  let epochs = epochsOf(totalSteps, perEpoch);
  const warmupSteps = Math.round(loop.warmupFraction * totalSteps);
  let rateAt = schedule(loop, warmupSteps, totalSteps);
  const logEvery = Math.max(1, Math.floor(perEpoch / POINTS_PER_EPOCH));
  let step = start?.step ?? 0;
  if (start) {
    loop.rng.setState(start.rng);
    ctx.metrics.forgetAfter(step);
  }
  const state = (): LoopState => ({ step, epoch: Math.floor(step / perEpoch), rng: loop.rng.getState(), extra: loop.extra() });
  const speed = { started: performance.now(), steps: 0 };
  const secondsPerStep = () => (performance.now() - speed.started) / 1000 / Math.max(1, speed.steps);
  let lastProgress = 0;
  let lastSave = performance.now();
  let sums: Record<string, number> = {};
  let counted = 0;
  const judging = { lastEnded: performance.now(), lastMs: 0 };
  const trainToJudge = loop.keepsLastEpoch ? CURVE_ONLY_TRAIN_TO_JUDGE_RATIO : TRAIN_TO_JUDGE_RATIO;
  const judgeDue = () => loop.deadline === undefined || performance.now() - judging.lastEnded >= trainToJudge * judging.lastMs;
  let lastReplan = performance.now();
  const replan = () => {
    lastReplan = performance.now();
    if (loop.deadline === undefined || speed.steps === 0) return;
    const msPerStep = (performance.now() - speed.started) / speed.steps;
    const planned = step + Math.max(1, stepsLeftAtPace({ msToDeadline: loop.deadline - Date.now(), msPerStep, lastJudgingMs: judging.lastMs }));
    if (planned === totalSteps) return;
    totalSteps = loop.totalSteps = planned;
    epochs = epochsOf(totalSteps, perEpoch);
    rateAt = schedule(loop, warmupSteps, totalSteps);
  };

  const endEpoch = async (epoch: number) => {
    const started = performance.now();
    const means = Object.fromEntries(Object.entries(sums).map(([name, sum]) => [`epoch_${name}`, sum / Math.max(1, counted)]));
    const result = loop.endEpoch ? await loop.endEpoch(Math.ceil(epoch)) : { metrics: {}, best: false };
    const epochMetrics = { ...means, ...result.metrics };
    ctx.metrics.record(step, epoch, epochMetrics);
    ctx.epochEnd({ epoch: Math.ceil(epoch), epochs: Math.ceil(epochs), metrics: epochMetrics, best: result.best });
    await loop.save(state(), result.best);
    lastSave = performance.now();
    sums = {};
    counted = 0;
    judging.lastEnded = performance.now();
    judging.lastMs = judging.lastEnded - started;
  };

  while (step < totalSteps) {
    await nextTurn(); // lets a cancel request (signal, IPC message) arrive between steps
    if (ctx.signal.aborted) {
      await loop.save(state(), false);
      throw new Cancelled();
    }
    if (loop.deadline !== undefined && speed.steps > 0 && Date.now() + secondsPerStep() * 1000 > loop.deadline) {
      ctx.warn(`stopped at step ${step} of ${totalSteps}: the time budget is spent (steps ran slower than measured)`);
      totalSteps = step;
      break;
    }
    const epoch = Math.floor(step / perEpoch);
    const position = step - epoch * perEpoch;
    const order = orderFor(loop, epoch);
    const learningRate = rateAt(step);
    const values = await loop.step(order.slice(position * loop.batchSize, (position + 1) * loop.batchSize), learningRate, loop.rng);
    step++;
    speed.steps++;
    counted++;
    for (const [name, value] of Object.entries(values)) sums[name] = (sums[name] ?? 0) + value;
    const metrics = { ...values, lr: learningRate, imagesPerSecond: loop.batchSize / secondsPerStep() };
    if (step % logEvery === 0 || step === totalSteps) ctx.metrics.record(step, step / perEpoch, metrics);
    if (performance.now() - lastProgress > PROGRESS_EVERY_MS || step === totalSteps) {
      lastProgress = performance.now();
      const etaSeconds = (totalSteps - step) * secondsPerStep();
      ctx.progress({ phase: 'training', step, totalSteps, epoch: step / perEpoch, epochs, metrics, etaSeconds });
    }
    const epochDone = step % perEpoch === 0;
    if ((epochDone && judgeDue()) || step === totalSteps) {
      await endEpoch(step / perEpoch);
      if (step < totalSteps) replan();
    } else {
      if (performance.now() - lastSave > CHECKPOINT_EVERY_MS) {
        await loop.save(state(), false);
        lastSave = performance.now();
      }
      if (performance.now() - lastReplan > REPLAN_EVERY_MS) replan();
    }
  }
  // Stopped by the deadline inside an epoch: judge and keep the weights reached.
  if (counted > 0) await endEpoch(step / perEpoch);
  return state();
}

/**
 * Seconds one training step takes, measured on a few steps at learning rate 0 with a throwaway
 * generator, so the model's weights and the run's randomness are untouched. Batch-norm moving
 * statistics do move in training mode, so they are put back afterwards.
 */
export async function measureStepSeconds(model: tf.LayersModel, loop: TrainingLoop, timedSteps = 3): Promise<number> {
  const frozen = model.weights.filter((w) => !w.trainable);
  const saved = frozen.map((w) => tf.clone(w.read()));
  const rng = new Rng(loop.seed);
  const batch = () => Array.from({ length: loop.batchSize }, (_, i) => i % loop.examples);
  await loop.step(batch(), 0, rng); // the first step also compiles kernels; not representative
  const started = performance.now();
  for (let i = 0; i < timedSteps; i++) await loop.step(batch(), 0, rng);
  const seconds = (performance.now() - started) / 1000 / timedSteps;
  frozen.forEach((w, i) => w.write(saved[i]));
  tf.dispose(saved);
  return seconds;
}

/** Steps that fit what is left of a time budget, given the cost of one step and of each epoch's evaluation. */
export function stepsForBudget(options: {
  secondsLeft: number;
  secondsPerStep: number;
  stepsPerEpoch: number;
  evaluationSecondsPerEpoch: number;
}): number {
  const perStep = options.secondsPerStep + options.evaluationSecondsPerEpoch / options.stepsPerEpoch;
  return Math.max(1, Math.floor(options.secondsLeft / perStep));
}
