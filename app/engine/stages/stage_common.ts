/** Steps every training stage takes the same way: data, batch size, resume, saving, time budget. */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../../contract/errors.ts';
import type { Project } from '../../store/project.ts';
import { bestCheckpoint, latestCheckpoint, mergeSummary, modelCheckpoint, requireRun, type Run } from '../../store/runs.ts';
import {
  disposeCheckpoint,
  loadCheckpoint,
  modelWeights,
  restoreModelWeights,
  saveCheckpoint,
  type LoopState,
  type NamedTensor,
} from '../data/checkpoint.ts';
import { openPixelCache, type LabelledRows, type PixelCache } from '../data/dataset.ts';
import { PREDICTION_COST_PER_TRAINING_EXAMPLE, recalibrateBatchNorm, scoreClassifier, writeClassifierOutputs } from '../data/inference.ts';
import type { LarsOptimizer } from '../simclr/lars_optimizer.ts';
import type { Stage } from '../../contract/domain.ts';
import { Rng } from '../simclr/random.ts';
import { DEFAULT_BATCH, peakLearningRate, runClasses, type TrainConfig } from './stage_config.ts';
import { checkMemory, fitsMemory, type MemoryNeed } from '../runtime/memory.ts';
import { buildClassifier, type ModelConfig } from '../simclr/model.ts';
import type { StageContext } from './stage_context.ts';
import { epochsOf, measureStepSeconds, runTrainingLoop, stepsForBudget, stepsPerEpoch, type EpochResult, type TrainingLoop } from './training_loop.ts';

export function trainConfig(ctx: StageContext): TrainConfig {
  return ctx.run.config as unknown as TrainConfig;
}

/** Opens the pixel cache, reporting decoding progress and unreadable images. */
export async function openStageCache(ctx: StageContext, imageSize: number): Promise<PixelCache> {
  const cache = await openPixelCache(ctx.project, imageSize, {
    signal: ctx.signal,
    warn: ctx.warn,
    onProgress: ({ decoded, toDecode }) =>
      ctx.progress({ phase: 'caching', step: decoded, totalSteps: toDecode, epoch: 0, epochs: 0, metrics: {}, etaSeconds: null }),
  });
  if (cache.count < 2) {
    cache.close();
    throw new UserError(`only ${cache.count} image(s) could be read; training needs at least 2`, 'no_data');
  }
  return cache;
}

/** Automatic batches are halved down to this before a run is refused for lack of memory. */
const SMALLEST_AUTOMATIC_BATCH = 8;

/**
 * The batch size: the configured one, checked against memory, or by default the largest up to
 * DEFAULT_BATCH whose step fits in the backend's memory. `needFor` is the estimate for a batch.
 * The choice is kept in the summary, so a resumed run uses the same batch.
 */
export function chooseBatch(ctx: StageContext, needFor: (batch: number) => MemoryNeed): number {
  const recorded = ctx.run.summary?.batchSize;
  const fixed = trainConfig(ctx).batchSize ?? (typeof recorded === 'number' ? recorded : null);
  const backend = ctx.backend.backend;
  if (fixed !== null) {
    checkMemory(needFor(fixed), backend, fixed);
    return fixed;
  }
  let batch = DEFAULT_BATCH;
  while (batch > SMALLEST_AUTOMATIC_BATCH && !fitsMemory(needFor(batch), backend)) batch /= 2;
  checkMemory(needFor(batch), backend, batch);
  if (batch < DEFAULT_BATCH) ctx.warn(`batch size ${batch}: a batch of ${DEFAULT_BATCH} would not fit in the memory of the ${backend} backend`);
  mergeSummary(ctx.project.db, ctx.run.id, { batchSize: batch });
  return batch;
}

/** The batch size actually used: never more than the examples there are (batch norm needs at least 2). */
export function effectiveBatch(ctx: StageContext, requested: number, examples: number, what: string): number {
  if (examples < 2) throw new UserError(`${what}: ${examples} image(s) is too few to train on (need at least 2)`, 'no_data');
  if (requested <= examples) return requested;
  ctx.warn(`batch size lowered from ${requested} to ${examples}: there are only ${examples} ${what}`);
  return examples;
}

function slots(optimizer: LarsOptimizer): NamedTensor[] {
  return Object.entries(optimizer.getState()).map(([name, tensor]) => ({ name, tensor }));
}

/** Saves model, optimizer slots and loop state as the run's newest (and maybe best) checkpoint. */
export function checkpointSaver(ctx: StageContext, model: tf.LayersModel, optimizer: LarsOptimizer) {
  return async (state: LoopState, best: boolean) => {
    const optimizerSlots = slots(optimizer);
    try {
      await saveCheckpoint(ctx.project, { runId: ctx.run.id, weights: modelWeights(model), optimizer: optimizerSlots, state, isBest: best });
    } finally {
      tf.dispose(optimizerSlots.map((slot) => slot.tensor));
    }
  };
}

/** Puts model and optimizer back where the run's last checkpoint left them; null when it has none. */
export function resumeFromCheckpoint(ctx: StageContext, model: tf.LayersModel, optimizer: LarsOptimizer): LoopState | null {
  const row = latestCheckpoint(ctx.project.db, ctx.run.id);
  if (!row) return null;
  const saved = loadCheckpoint(ctx.project, row);
  try {
    restoreModelWeights(model, saved.weights);
    optimizer.setState(Object.fromEntries(saved.optimizer.map((slot) => [slot.name, slot.tensor])));
  } finally {
    disposeCheckpoint(saved);
  }
  return saved.state;
}

/** Loads the model a run produced (its best checkpoint, else its last) into `model`. */
export function loadRunModel(project: Project, runId: number, model: tf.LayersModel): void {
  const row = modelCheckpoint(project.db, runId);
  if (!row) throw new UserError(`run ${runId} has no saved model`, 'no_model');
  const saved = loadCheckpoint(project, row);
  try {
    restoreModelWeights(model, saved.weights);
  } finally {
    disposeCheckpoint(saved);
  }
}

/**
 * The run's step count: its epochs when fixed by the config, or — for a time budget — fitted to
 * the budget from a few timed steps, leaving time for each epoch's evaluation and the final
 * predictions. The count is kept in the summary and every checkpoint, so a resumed run keeps
 * it; a budgeted first attempt also gets a deadline, so slow steps cannot overrun it.
 */
export async function chooseSteps(
  ctx: StageContext,
  model: tf.LayersModel,
  loop: TrainingLoop,
  resumed: LoopState | null,
  evaluatedImagesPerEpoch: number,
  finalImages: number,
): Promise<number> {
  const config = trainConfig(ctx);
  const perEpoch = stepsPerEpoch(loop.examples, loop.batchSize);
  if (config.epochs !== null) return config.epochs * perEpoch;
  const kept = resumed?.extra?.totalSteps;
  if (typeof kept === 'number') return kept;
  ctx.progress({ phase: 'measuring', step: 0, totalSteps: 1, epoch: 0, epochs: 0, metrics: {}, etaSeconds: null });
  const secondsPerStep = await measureStepSeconds(model, loop);
  const forwardSecondsPerImage = (secondsPerStep / loop.batchSize) * PREDICTION_COST_PER_TRAINING_EXAMPLE;
  const finalSeconds = finalImages * forwardSecondsPerImage;
  const budgetEnds = ctx.startedAt + config.minutes! * 60_000;
  const steps = stepsForBudget({
    secondsLeft: (budgetEnds - Date.now()) / 1000 - finalSeconds,
    secondsPerStep,
    stepsPerEpoch: perEpoch,
    evaluationSecondsPerEpoch: evaluatedImagesPerEpoch * forwardSecondsPerImage,
  });
  loop.deadline = budgetEnds - finalSeconds * 1000;
  mergeSummary(ctx.project.db, ctx.run.id, { plannedSteps: steps, epochs: epochsOf(steps, perEpoch), measuredSecondsPerStep: secondsPerStep });
  return steps;
}

/** The newest value of a metric the run logged (e.g. the last epoch's mean loss). */
export function lastMetric(ctx: StageContext, name: string): number | undefined {
  return ctx.metrics.last(name);
}

/**
 * Ends each epoch of a classifier stage: batch-norm statistics measured afresh on `calibration` rows
 * (what inference and the saved checkpoint will use), then the validation score that picks the best
 * epoch. Without validation images every epoch counts as best, so the last one is kept.
 */
/**
 * Which judged epoch becomes the run's model. 'best' scores highest on validation. 'last' is the end of
 * the schedule: a mixup run's validation score swings by ±5 points between epochs on 80 images, so the
 * best of fifty swings picks noise (36.2% and 45.5% held out for best epochs 31 and 92, 45.4% and 46.8%
 * for the last epochs of the same two runs; docs/study).
 */
export type EpochKept = 'best' | 'last';

export function validationJudge(model: tf.LayersModel, cache: PixelCache, val: LabelledRows, calibration: number[], batchSize: number, kept: EpochKept = 'best') {
  const judge = {
    best: -1,
    kept,
    restore(resumed: LoopState | null) {
      if (typeof resumed?.extra?.bestAccuracy === 'number') judge.best = resumed.extra.bestAccuracy;
    },
    async endEpoch(): Promise<EpochResult> {
      recalibrateBatchNorm(model, cache, calibration, batchSize);
      if (val.rows.length === 0) return { metrics: {}, best: true };
      const score = await scoreClassifier(model, cache, val);
      const best = kept === 'last' || score.accuracy > judge.best;
      if (best) judge.best = score.accuracy;
      return { metrics: { valAccuracy: score.accuracy, valLoss: score.loss }, best };
    },
  };
  return judge;
}

export type ValidationJudge = ReturnType<typeof validationJudge>;

/**
 * A budgeted run re-plans its steps as it goes (training_loop.ts); each checkpoint keeps the newest
 * plan, and so does the summary, so what a resumed run will do and what the run says agree.
 */
function budgetedSaver(ctx: StageContext, save: TrainingLoop['save'], current: () => TrainingLoop): TrainingLoop['save'] {
  if (trainConfig(ctx).minutes === null) return save;
  return async (state, best) => {
    const { totalSteps, examples, batchSize } = current();
    mergeSummary(ctx.project.db, ctx.run.id, { plannedSteps: totalSteps, epochs: epochsOf(totalSteps, stepsPerEpoch(examples, batchSize)) });
    await save(state, best);
  };
}

/** What a stage itself decides about its loop; the rest comes from the run's settings. */
export type StageLoopParts = Pick<TrainingLoop, 'examples' | 'batchSize' | 'step' | 'balancedLabels'>;

/**
 * A stage's training loop: the learning-rate schedule and seed from the run's settings, checkpoints
 * of its model and optimizer, and for a classifier the judge that scores each epoch on validation.
 */
export function stageLoop(ctx: StageContext, stage: Stage, model: tf.LayersModel, optimizer: LarsOptimizer, parts: StageLoopParts, judge?: ValidationJudge): TrainingLoop {
  const config = trainConfig(ctx);
  const loop: TrainingLoop = {
    ...parts,
    totalSteps: 0,
    peakLearningRate: peakLearningRate(stage, config, parts.batchSize),
    warmupFraction: config.warmupFraction,
    seed: config.seed,
    rng: new Rng(config.seed),
    endEpoch: judge?.endEpoch,
    keepsLastEpoch: judge?.kept === 'last',
    save: budgetedSaver(ctx, checkpointSaver(ctx, model, optimizer), () => loop),
    extra: () => ({ totalSteps: loop.totalSteps, ...(judge ? { bestAccuracy: judge.best } : {}) }),
  };
  return loop;
}

/**
 * Trains from the run's last checkpoint, if any, to its planned step count (see `chooseSteps`, which
 * the images scored each epoch and predicted at the end take time from). Returns where it ended.
 */
export async function trainFromCheckpoint(
  ctx: StageContext,
  model: tf.LayersModel,
  optimizer: LarsOptimizer,
  loop: TrainingLoop,
  images: { scoredPerEpoch: number; predictedAtEnd: number },
  judge?: ValidationJudge,
): Promise<{ steps: number; epochs: number }> {
  const resumed = resumeFromCheckpoint(ctx, model, optimizer);
  judge?.restore(resumed);
  loop.totalSteps = await chooseSteps(ctx, model, loop, resumed, images.scoredPerEpoch, images.predictedAtEnd);
  const { step } = await runTrainingLoop(ctx, loop, resumed);
  return { steps: step, epochs: epochsOf(step, stepsPerEpoch(loop.examples, loop.batchSize)) };
}

/**
 * A classifier stage from its checkpoint to its best epoch: trained, that epoch loaded (not
 * necessarily the last), and its predictions for every image written unless the pipeline
 * predicts later, for the model it keeps.
 */
export async function trainClassifier(
  ctx: StageContext,
  model: tf.LayersModel,
  optimizer: LarsOptimizer,
  loop: TrainingLoop,
  judge: ValidationJudge,
  data: { cache: PixelCache; val: LabelledRows; classes: { id: number; name: string }[] },
) {
  const { cache, val, classes } = data;
  const deferOutputs = trainConfig(ctx).deferOutputs;
  const trained = await trainFromCheckpoint(ctx, model, optimizer, loop, { scoredPerEpoch: val.rows.length, predictedAtEnd: deferOutputs ? 0 : cache.count }, judge);
  loadRunModel(ctx.project, ctx.run.id, model);
  if (!deferOutputs) await writeClassifierOutputs(ctx, model, cache, classes.map((c) => c.id));
  return {
    classes,
    ...trained,
    valAccuracy: val.rows.length > 0 ? judge.best : undefined,
    bestEpoch: bestCheckpoint(ctx.project.db, ctx.run.id)?.epoch,
  };
}

/** A finished fine-tune or distillation as a ready classifier, with its classes in logit order. */
export function loadTrainedClassifier(project: Project, runId: number): {
  model: tf.LayersModel;
  classes: { id: number; name: string }[];
  architecture: ModelConfig;
  run: Run;
} {
  const run = requireRun(project.db, runId);
  if (run.kind !== 'finetune' && run.kind !== 'distill') {
    throw new UserError(`run ${runId} is a ${run.kind} run; use a finetune or distill run, which has a classifier`, 'no_model');
  }
  if (run.status !== 'done') throw new UserError(`run ${runId} is ${run.status}, not done: it has no finished model`, 'no_model');
  const architecture = (run.config as unknown as TrainConfig).model;
  const classes = runClasses(project, runId);
  const model = buildClassifier(architecture, classes.length);
  try {
    loadRunModel(project, runId, model);
  } catch (error) {
    model.dispose();
    throw error;
  }
  return { model, classes, architecture, run };
}
