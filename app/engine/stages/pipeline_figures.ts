/**
 * The project's own figures that one-click training plans with: image and label counts, what
 * the pixel cache already holds, and seconds per image of each stage, measured by earlier runs
 * of the same network where there are any, else scaled from this machine class's reference.
 */
import { truthLabels } from '../../store/ground_truth.ts';
import { imageCount } from '../../store/images.ts';
import { ensureSplits } from '../../store/labels.ts';
import { PREDICTION_COST_PER_TRAINING_EXAMPLE } from '../data/inference.ts';
import type { Project } from '../../store/project.ts';
import { listRuns, type Run } from '../../store/runs.ts';
import { cachedImageCount } from '../data/dataset.ts';
import type { ModelConfig } from '../simclr/model.ts';
import { sameArchitecture } from '../simclr/resnet.ts';
import type { ProjectFigures } from './budget_plan.ts';
import type { TrainConfig } from './stage_config.ts';

/**
 * Seconds per image of ResNet-18 width 0.5 at 32 px on a 2-core machine with the wasm backend
 * (contrast bench train, docs/performance.md): used until a run of this project has measured its own.
 */
const REFERENCE_SECONDS_PER_IMAGE = { pretrain: 0.045, finetune: 0.016, distill: 0.021, forward: 0.004, decode: 0.001 };
const DEPTH_COST: Record<ModelConfig['depth'], number> = { 18: 1, 34: 2, 50: 2.3 };

function relativeCost(model: ModelConfig): number {
  return (model.width / 0.5) ** 2 * (model.imageSize / 32) ** 2 * DEPTH_COST[model.depth] * (model.sk ? 1.5 : 1);
}

function sameModel(run: Run, model: ModelConfig): boolean {
  const m = (run.config as unknown as TrainConfig).model;
  return m !== undefined && sameArchitecture(m, model);
}

/** Seconds per training example an earlier run of this kind and network measured, if any. */
function measured(runs: Run[], kind: 'pretrain' | 'finetune' | 'distill', model: ModelConfig): number | undefined {
  const run = runs.filter((r) => r.kind === kind && sameModel(r, model) && typeof r.summary?.measuredSecondsPerStep === 'number').at(-1);
  const batch = run?.summary?.batchSize ?? (run?.config as { batchSize?: number } | undefined)?.batchSize;
  return run && typeof batch === 'number' ? (run.summary!.measuredSecondsPerStep as number) / batch : undefined;
}

/** How a pipeline told to start from a run names it in its plan: an imported network by its name. */
function chosenName(run: Run): string {
  const imported = (run.config as { imported?: { name?: string } }).imported;
  return imported?.name ? `${imported.name} (run ${run.id})` : `pretraining run ${run.id}`;
}

/** `fromRunId`: the pretraining the pipeline was told to start from, which it then reuses whatever images it saw. */
export function projectFigures(project: Project, model: ModelConfig, fromRunId?: number): ProjectFigures {
  ensureSplits(project.db);
  const runs = listRuns(project.db);
  const cost = relativeCost(model);
  const scaled = (kind: keyof typeof REFERENCE_SECONDS_PER_IMAGE) => REFERENCE_SECONDS_PER_IMAGE[kind] * cost;
  const finetune = measured(runs, 'finetune', model) ?? scaled('finetune');
  const images = imageCount(project.db);
  const chosen = fromRunId === undefined ? undefined : runs.find((r) => r.id === fromRunId);
  const lastPretrain = chosen ?? runs.filter((r) => r.kind === 'pretrain' && r.status === 'done' && sameModel(r, model)).at(-1);
  return {
    images,
    labelledTrain: truthLabels(project.db, 'train').length,
    validation: truthLabels(project.db, 'val').length,
    uncachedImages: images - cachedImageCount(project, model.imageSize),
    secondsPerImage: {
      pretrain: measured(runs, 'pretrain', model) ?? scaled('pretrain'),
      finetune,
      distill: measured(runs, 'distill', model) ?? scaled('distill'),
      forward: finetune * PREDICTION_COST_PER_TRAINING_EXAMPLE,
      decode: REFERENCE_SECONDS_PER_IMAGE.decode,
    },
    lastPretrain: lastPretrain ? { runId: lastPretrain.id, images: Number(lastPretrain.summary?.images ?? 0), ...(chosen ? { chosen: chosenName(chosen) } : {}) } : null,
  };
}
