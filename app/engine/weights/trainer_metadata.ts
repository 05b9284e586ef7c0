/**
 * What the exported trainer (`contrast export-trainer`, simclr_trainer.py) writes into the
 * metadata of each .safetensors it produces, under the key `contrast`: which stage made the
 * weights, the network as the app describes it, the classes in logit order (classifiers), and the
 * project and settings the training came from. Other tools' metadata is left alone.
 */
import { UserError } from '../../contract/errors.ts';
import type { Stage } from '../../contract/domain.ts';
import type { ModelConfig } from '../simclr/resnet.ts';

export const TRAINER_FORMAT = 'contrast-trainer/1';
export const TRAINER_METADATA_KEY = 'contrast';

export interface TrainerMetadata {
  format: typeof TRAINER_FORMAT;
  stage: Stage;
  model: ModelConfig;
  /** Class names in logit order; null for pretraining. */
  classes: string[] | null;
  project: { name: string; path: string };
  config: Record<string, unknown>;
  fromRun: { id: number; kind: Stage } | null;
  steps: number;
  epochs: number;
  valAccuracy: number | null;
  processes: number;
  device: string;
  torch: string;
}

const STAGES: Stage[] = ['pretrain', 'finetune', 'distill'];

function refused(file: string, why: string): UserError {
  return new UserError(`${file} says it comes from Contrast Studio's exported trainer, but ${why}`, 'weights_damaged', { file });
}

/** The trainer's record, or null when the file has none (a file from anywhere else). */
export function parseTrainerMetadata(metadata: Record<string, unknown>, file: string): TrainerMetadata | null {
  const text = metadata[TRAINER_METADATA_KEY];
  if (typeof text !== 'string') return null;
  let value: Partial<TrainerMetadata>;
  try {
    value = JSON.parse(text) as Partial<TrainerMetadata>;
  } catch {
    throw refused(file, 'its record is not JSON');
  }
  if (value.format !== TRAINER_FORMAT) return null;
  if (!STAGES.includes(value.stage as Stage)) throw refused(file, `its stage is ${String(value.stage)}`);
  if (typeof value.model !== 'object' || value.model === null) throw refused(file, 'it does not describe its network');
  const classifier = value.stage !== 'pretrain';
  const classes = value.classes;
  if (classifier && !(Array.isArray(classes) && classes.length >= 2 && classes.every((c) => typeof c === 'string'))) {
    throw refused(file, 'a classifier must name its classes (at least 2)');
  }
  return { ...(value as TrainerMetadata), classes: classifier ? classes! : null };
}
