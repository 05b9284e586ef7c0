/**
 * How one-click training spends a time budget: which stages run, and how many seconds each gets,
 * from the project's own figures (image counts, measured seconds per image of each stage).
 *
 * Contrastive pretraining pays for itself only after many passes over the images; with fewer,
 * the minutes buy more accuracy as labels-only training followed by self-distillation through
 * every image (the unlabelled ones included). A pretraining that already ran on (nearly) these
 * images costs nothing to reuse, so a second Train after new labels fine-tunes and distils only;
 * after many new images it continues that pretraining from its weights instead of starting over.
 */
import type { Stage } from '../../contract/domain.ts';
import type { PipelineRecipe } from '../../contract/operations.ts';

/** Passes over the images below which pretraining buys less than the same minutes spent on labels (see docs/study.md). */
export const PRETRAIN_PAYS_AFTER_EPOCHS = 40;
/**
 * Passes over every image below which distillation costs more than it gives, so shorter ones are
 * dropped and their minutes go to the labels. No distillation measured so far has paid
 * (docs/study/README.md): half a pass (5 minutes) left the student 3 points behind its teacher on
 * validation, and 4.1 passes after 17 minutes on the labels (30 minutes) scored 45.0% held out where
 * 30 minutes on the labels alone scored 49.05%. Where above 5 passes it starts to pay is not measured.
 */
export const DISTIL_PAYS_AFTER_EPOCHS = 5;
/** A pretraining that saw at least this share of today's images is reused as it is. */
export const REUSE_PRETRAIN_COVERAGE = 0.8;
/** Time a stage spends outside its steps: building the model, measuring steps, batch-norm statistics. */
const STAGE_OVERHEAD_SECONDS = 8;

export interface ProjectFigures {
  images: number;
  labelledTrain: number;
  validation: number;
  /** Images without pixels in the cache at the network's size yet (decoded once, then reused). */
  uncachedImages: number;
  /** Seconds per image for one training example of each stage, a prediction, and a decode. */
  secondsPerImage: { pretrain: number; finetune: number; distill: number; forward: number; decode: number };
  /**
   * The newest finished pretraining at this network and size, and how many images it saw; or the
   * one the pipeline was told to start from (`chosen` names it), reused whatever it saw.
   */
  lastPretrain: { runId: number; images: number; chosen?: string } | null;
}

export type Recipe = PipelineRecipe;

export interface StagePlan {
  stage: Stage;
  /** A fine-tune from random weights: the labels-only network. */
  supervised: boolean;
  seconds: number;
  /** Passes over the stage's examples these seconds buy (a fraction is fine). */
  epochs: number;
}

export interface PipelinePlan {
  recipe: Recipe;
  /** Why this recipe, in one sentence for the plan shown before Start. */
  reason: string;
  budgetSeconds: number;
  decodeSeconds: number;
  stages: StagePlan[];
  /** Predicting every image with the chosen model and scoring it, after training. */
  finishSeconds: number;
  /** The pretraining the plan builds on: reused as it is, or continued from its weights. */
  basePretrainRunId: number | null;
}

/** Shares of the training time by stage, per recipe. */
const SHARES: Record<Recipe, { stage: Stage; supervised: boolean; share: number }[]> = {
  simclr: [
    { stage: 'pretrain', supervised: false, share: 0.6 },
    { stage: 'finetune', supervised: false, share: 0.15 },
    { stage: 'distill', supervised: false, share: 0.25 },
  ],
  'reuse-pretraining': [
    { stage: 'finetune', supervised: false, share: 0.4 },
    { stage: 'distill', supervised: false, share: 0.6 },
  ],
  // Starting from trained weights, the pretraining needs fewer passes than from scratch.
  'continue-pretraining': [
    { stage: 'pretrain', supervised: false, share: 0.4 },
    { stage: 'finetune', supervised: false, share: 0.2 },
    { stage: 'distill', supervised: false, share: 0.4 },
  ],
  'labels-then-distil': [
    { stage: 'finetune', supervised: true, share: 0.6 },
    { stage: 'distill', supervised: false, share: 0.4 },
  ],
  'labels-only': [{ stage: 'finetune', supervised: true, share: 1 }],
};

function examplesOf(stage: Stage, figures: ProjectFigures): number {
  return stage === 'finetune' ? figures.labelledTrain : figures.images;
}

function chooseRecipe(trainingSeconds: number, figures: ProjectFigures): { recipe: Recipe; reason: string } {
  const last = figures.lastPretrain;
  if (last?.chosen) return { recipe: 'reuse-pretraining', reason: `fine-tunes and distils ${last.chosen}, the network chosen to start from` };
  if (last && last.images >= REUSE_PRETRAIN_COVERAGE * figures.images) {
    return { recipe: 'reuse-pretraining', reason: `reuses pretraining run ${last.runId}, which saw ${last.images} of the ${figures.images} images` };
  }
  if (last) {
    return { recipe: 'continue-pretraining', reason: `continues pretraining run ${last.runId} from its weights: it saw only ${last.images} of the ${figures.images} images` };
  }
  const pretrainSeconds = SHARES.simclr[0].share * trainingSeconds;
  const epochs = pretrainSeconds / (figures.images * figures.secondsPerImage.pretrain);
  if (epochs >= PRETRAIN_PAYS_AFTER_EPOCHS) {
    return { recipe: 'simclr', reason: `pretraining gets ≈${Math.floor(epochs)} passes over the images, enough to pay off` };
  }
  const distilSeconds = SHARES['labels-then-distil'][1].share * trainingSeconds;
  const distilEpochs = distilSeconds / (figures.images * figures.secondsPerImage.distill);
  if (distilEpochs < DISTIL_PAYS_AFTER_EPOCHS) {
    return {
      recipe: 'labels-only',
      reason: `in ${Math.round(trainingSeconds / 60)} minutes neither pretraining (≈${epochs.toFixed(1)} passes) nor distillation (≈${distilEpochs.toFixed(1)} passes, it pays off after about ${DISTIL_PAYS_AFTER_EPOCHS}) gets far enough over ${figures.images} images: all of it goes to the labels`,
    };
  }
  return {
    recipe: 'labels-then-distil',
    reason: `pretraining would get only ≈${epochs.toFixed(1)} passes over the images (it pays off after about ${PRETRAIN_PAYS_AFTER_EPOCHS}); the labels and then every image are a better use of ${Math.round(trainingSeconds / 60)} minutes`,
  };
}

export function planPipeline(budgetMinutes: number, figures: ProjectFigures): PipelinePlan {
  const budgetSeconds = budgetMinutes * 60;
  const decodeSeconds = figures.uncachedImages * figures.secondsPerImage.decode;
  const finishSeconds = figures.images * figures.secondsPerImage.forward + STAGE_OVERHEAD_SECONDS;
  const provisional = SHARES.simclr.length;
  const trainingSeconds = Math.max(0, budgetSeconds - decodeSeconds - finishSeconds - provisional * STAGE_OVERHEAD_SECONDS);
  const { recipe, reason } = chooseRecipe(trainingSeconds, figures);
  const shares = SHARES[recipe];
  const spendable = Math.max(0, budgetSeconds - decodeSeconds - finishSeconds - shares.length * STAGE_OVERHEAD_SECONDS);
  const stages = shares.map(({ stage, supervised, share }) => {
    const seconds = share * spendable;
    const epochs = seconds / (examplesOf(stage, figures) * figures.secondsPerImage[stage]);
    return { stage, supervised, seconds: seconds + STAGE_OVERHEAD_SECONDS, epochs: Math.round(epochs * 10) / 10 };
  });
  return {
    recipe,
    reason,
    budgetSeconds,
    decodeSeconds,
    stages,
    finishSeconds,
    basePretrainRunId: recipe === 'reuse-pretraining' || recipe === 'continue-pretraining' ? figures.lastPretrain!.runId : null,
  };
}

/**
 * The seconds the next stage may use: its planned share of what is left, so time one stage
 * saved or overran is shared out among the stages still to run.
 */
export function secondsForNextStage(plan: PipelinePlan, nextIndex: number, secondsLeft: number): number {
  const rest = plan.stages.slice(nextIndex);
  const planned = rest.reduce((sum, s) => sum + s.seconds, 0);
  const available = secondsLeft - plan.finishSeconds;
  return planned > 0 ? Math.max(STAGE_OVERHEAD_SECONDS, (available * rest[0].seconds) / planned) : 0;
}

function minutes(seconds: number): string {
  return seconds >= 90 ? `${Math.round(seconds / 60)} min` : `${Math.round(seconds)} s`;
}

/** The plan in one line, e.g. "labels only 6 min (≈40 epochs), distil 4 min (≈1.2 epochs), score 20 s". */
export function describePlan(plan: PipelinePlan): string {
  const names: Record<Stage, string> = { pretrain: 'pretrain', finetune: 'fine-tune', distill: 'distil' };
  const parts = plan.stages.map((s) => `${s.supervised ? 'labels only' : names[s.stage]} ${minutes(s.seconds)} (≈${s.epochs} epochs)`);
  if (plan.decodeSeconds >= 1) parts.unshift(`decode images ${minutes(plan.decodeSeconds)}`);
  parts.push(`predict and score ${minutes(plan.finishSeconds)}`);
  return parts.join(', ');
}
