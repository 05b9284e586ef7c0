/**
 * `contrast import-weights`: a pretrained ResNet from a file becomes a finished `pretrain` run
 * whose checkpoint holds it, so fine-tuning, one-click training and distillation build on it like
 * on a pretraining of our own. The network is read, recognised and converted completely before
 * anything is recorded, so a refused file leaves no run behind.
 *
 * The image size is chosen here (`imageSize`, default 224 for ImageNet networks, or the size our
 * own export was saved with) and is part of the run's network from then on: every run built on
 * it trains and predicts at that size. The input normalisation the network was trained with
 * (ImageNet mean/std for torchvision ResNets, none for SimCLRv2's) is built into the network.
 *
 * Weights from our exported trainer (simclr_trainer.py) say in their metadata which stage made
 * them, the network and, for a classifier, its classes: a pretraining comes back as a pretrain run,
 * a fine-tuned or distilled classifier as a finished finetune or distill run that predicts, exports
 * and teaches like one trained here, its classes matched to the project's by name.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../../contract/errors.ts';
import type { Project } from '../../store/project.ts';
import { findClass } from '../../store/labels.ts';
import { createRun, finishRun, markRunning } from '../../store/runs.ts';
import { saveCheckpoint } from '../data/checkpoint.ts';
import { buildClassifier, buildPretrainModel, stableWeightName } from '../simclr/model.ts';
import { validateModelConfig, type ModelConfig } from '../simclr/resnet.ts';
import { openCheckpoint, type CheckpointFile, type WeightsFormat } from './checkpoint_file.ts';
import { recognizeNetwork, type LayoutName, type NetworkShape, type Recognized } from './network_layouts.ts';
import type { TrainerMetadata } from './trainer_metadata.ts';
import { keyView, mapWeights, type MappingReport } from './weight_mapping.ts';

/** The normalisation torchvision's ImageNet models are trained with (and timm's, MoCo's, DINO's). */
export const IMAGENET_NORMALIZATION = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
/** The size ImageNet networks are trained at. */
export const IMAGENET_SIZE = 224;

export interface ImportRequest {
  file: string;
  /** When given, the file must hold this network. */
  depth?: ModelConfig['depth'];
  imageSize?: number;
  name?: string;
}

/** Where an imported run's network came from; kept in its config and summary. */
export interface ImportedSource {
  name: string;
  file: string;
  path: string;
  format: WeightsFormat;
  layout: LayoutName;
  sha256: string;
  bytes: number;
}

export interface ImportedNetwork {
  runId: number;
  /** pretrain, or the stage of a classifier from our exported trainer. */
  kind: TrainerMetadata['stage'];
  model: ModelConfig;
  source: ImportedSource;
  report: MappingReport;
}

/** How the network wants its [0, 1] pixels scaled, in words. */
function inputScaling(model: ModelConfig): string {
  const norm = model.inputNormalization;
  if (!norm) return '[0, 1]';
  return JSON.stringify(norm) === JSON.stringify(IMAGENET_NORMALIZATION) ? 'ImageNet mean/std' : `mean ${norm.mean.join('/')}, std ${norm.std.join('/')}`;
}

/** "ResNet-50 ×1 SK, 224 px, ImageNet mean/std input" */
export function describeNetwork(model: ModelConfig): string {
  const parts = [`ResNet-${model.depth} ×${model.width}${model.sk ? ' SK' : ''}`, `${model.imageSize} px`];
  if (model.inputNormalization) parts.push(`${inputScaling(model)} input`);
  return parts.join(', ');
}

function fingerprint(files: string[]): { sha256: string; bytes: number } {
  const hash = crypto.createHash('sha256');
  let bytes = 0;
  for (const file of files) {
    const fd = fs.openSync(file, 'r');
    try {
      const chunk = Buffer.allocUnsafe(1 << 20);
      for (let n; (n = fs.readSync(fd, chunk, 0, chunk.length, null)) > 0; bytes += n) hash.update(chunk.subarray(0, n));
    } finally {
      fs.closeSync(fd);
    }
  }
  return { sha256: hash.digest('hex'), bytes };
}

/** Our own export says how it was built; otherwise the layout decides padding and normalisation. */
function networkConfig(checkpoint: CheckpointFile, recognized: Recognized, shape: NetworkShape, imageSize: number | undefined): ModelConfig {
  const saved = checkpoint.hints.architecture;
  if (recognized.layout.name === 'contrast') {
    const padding = saved?.padding ?? (checkpoint.hints.layers.includes('stem_pool_pad') ? 'torch' : undefined);
    const base: ModelConfig = { ...saved, ...shape, imageSize: imageSize ?? saved?.imageSize ?? checkpoint.hints.inputSize ?? IMAGENET_SIZE };
    if (padding) base.padding = padding;
    const normalization = saved?.inputNormalization ?? normalizationFromWeights(checkpoint);
    if (normalization) base.inputNormalization = normalization;
    return withoutUndefined(base);
  }
  const trainer = checkpoint.hints.trainer;
  if (trainer) return trainerNetworkConfig(trainer, shape, imageSize);
  const model: ModelConfig = { ...shape, imageSize: imageSize ?? IMAGENET_SIZE, padding: 'torch' };
  if (recognized.layout.name === 'torchvision') model.inputNormalization = IMAGENET_NORMALIZATION;
  return withoutUndefined(model);
}

/**
 * The trainer computes what the app's own network computes (its padding, its normalisation), so
 * the network is the one it names; the shapes must agree with it, and the stem they show is kept.
 */
function trainerNetworkConfig(trainer: TrainerMetadata, shape: NetworkShape, imageSize: number | undefined): ModelConfig {
  const named = trainer.model;
  const differs = (['depth', 'width', 'sk'] as const).filter((key) => (named[key] ?? false) !== shape[key]);
  if (differs.length > 0) {
    const found = differs.map((key) => `${key} ${shape[key]} (the record says ${named[key]})`).join(', ');
    throw new UserError(`the file's tensors do not hold the network its record names: ${found}`, 'weights_keys', { differs });
  }
  return withoutUndefined({ ...named, stem: shape.stem, imageSize: imageSize ?? named.imageSize });
}

/** Our input_norm layer is a diagonal 1x1 conv: kernel 1/std, bias −mean/std. */
function normalizationFromWeights(checkpoint: CheckpointFile): ModelConfig['inputNormalization'] {
  const kernel = checkpoint.tensors.get('input_norm/kernel')?.read();
  const bias = checkpoint.tensors.get('input_norm/bias')?.read();
  if (!kernel || !bias) return undefined;
  const std = [0, 1, 2].map((c) => 1 / kernel[c * 3 + c]);
  return { mean: [0, 1, 2].map((c) => -bias[c] * std[c]), std };
}

function withoutUndefined(model: ModelConfig): ModelConfig {
  return Object.fromEntries(Object.entries(model).filter(([, value]) => value !== undefined)) as unknown as ModelConfig;
}

function checkRequest(request: ImportRequest, shape: NetworkShape, title: string): void {
  if (request.depth !== undefined && request.depth !== shape.depth) {
    throw new UserError(`the file holds ${title} of depth ${shape.depth} (ResNet-${shape.depth}), not the ResNet-${request.depth} asked for`, 'weights_wrong_network', { found: shape.depth });
  }
}

interface Converted {
  model: ModelConfig;
  /** The exported trainer's record, when the weights come from it. */
  trainer: TrainerMetadata | null;
  /** Every weight of the network (pretraining, or a trainer's classifier): from the file, or the random start of a head layer it lacks. */
  weights: { name: string; shape: number[]; values: Float32Array }[];
  report: MappingReport;
  source: Omit<ImportedSource, 'sha256' | 'bytes'>;
  files: string[];
}

function buildable(model: ModelConfig): void {
  try {
    validateModelConfig(model);
  } catch (error) {
    throw new UserError(`the file's network cannot be built: ${(error as Error).message}`, 'weights_unsupported_network');
  }
}

/** Reads, recognises and converts the file: everything an import can refuse, before anything is recorded. */
function convert(request: ImportRequest): Converted {
  const checkpoint = openCheckpoint(request.file);
  try {
    const recognized = recognizeNetwork(checkpoint.tensors);
    const shape = recognized.layout.shapeOf(keyView(checkpoint.tensors, recognized));
    checkRequest(request, shape, recognized.layout.title);
    const model = networkConfig(checkpoint, recognized, shape, request.imageSize);
    buildable(model);
    const trainer = checkpoint.hints.trainer;
    const network = trainer?.classes ? buildClassifier(model, trainer.classes.length, 0) : buildPretrainModel(model, 0);
    try {
      const { values, report } = mapWeights(network, recognized, shape, checkpoint.tensors, `a ${describeNetwork(model)}`);
      const weights = network.weights.map((w) => ({
        name: stableWeightName(w),
        shape: w.shape as number[],
        values: values.get(stableWeightName(w)) ?? (w.read().dataSync() as Float32Array),
      }));
      const file = checkpoint.file;
      // A TF.js export is a folder of files named alike: its folder says which one it is.
      const name = request.name ?? path.basename(checkpoint.format === 'tfjs' ? path.dirname(file) : file);
      const source = { name, file: path.basename(file), path: file, format: checkpoint.format, layout: recognized.layout.name };
      return { model, trainer, weights, report, source, files: checkpoint.files };
    } finally {
      network.dispose();
    }
  } finally {
    checkpoint.close();
  }
}

function headSummary(converted: Converted): string {
  if (converted.trainer?.classes) return `head layer 1 and the classifier (${converted.trainer.classes.length} classes) from the file`;
  const fromFile = converted.report.headLayers.filter((layer) => layer.startsWith('head_dense')).length;
  return fromFile ? `${fromFile} of 3 layers from the file${fromFile < 3 ? ', the others random' : ''}` : 'random (the file has no projection head)';
}

/** Where the trainer's weights come from: the project and settings it was exported with, and how it ran. */
function trainerSummary(trainer: TrainerMetadata): Record<string, unknown> {
  const { format, stage, project, config, fromRun, steps, epochs, valAccuracy, processes, device, torch } = trainer;
  return { format, stage, project, config, fromRun, steps, epochs, valAccuracy, processes, device, torch };
}

function importSummary(converted: Converted, source: ImportedSource, classes: ProjectClass[] | null): Record<string, unknown> {
  return {
    imported: source,
    network: describeNetwork(converted.model),
    keys: { mapped: converted.report.mapped, ignored: converted.report.ignored, outsideTheNetwork: converted.report.outside },
    head: headSummary(converted),
    inputScaling: inputScaling(converted.model),
    ...(converted.trainer ? { exportedTrainer: trainerSummary(converted.trainer) } : {}),
    ...(classes ? { classes } : {}),
  };
}

type ProjectClass = { id: number; name: string };

/** A classifier's classes in logit order, as the project's classes of the same names; a class the project lacks is refused. */
function projectClasses(project: Project, names: string[]): ProjectClass[] {
  const found = names.map((name) => ({ name, info: findClass(project.db, name) }));
  const missing = found.filter((c) => !c.info).map((c) => c.name);
  if (missing.length > 0) {
    throw new UserError(`the classifier's classes ${missing.map((n) => `"${n}"`).join(', ')} are not in this project; add them (contrast classes <project> add NAME) or import into the project it was trained for`, 'weights_unknown_classes', { missing });
  }
  return found.map((c) => ({ id: c.info!.id, name: c.name }));
}

async function writeCheckpoint(project: Project, runId: number, converted: Converted): Promise<void> {
  const weights = converted.weights.map((w) => ({ name: w.name, tensor: tf.tensor(w.values, w.shape) }));
  try {
    await saveCheckpoint(project, { runId, weights, optimizer: [], state: { step: 0, epoch: 0, rng: 0 } });
  } finally {
    tf.dispose(weights.map((w) => w.tensor));
  }
}

export async function importNetwork(project: Project, request: ImportRequest): Promise<ImportedNetwork> {
  await tf.ready();
  const converted = convert(request);
  const classes = converted.trainer?.classes ? projectClasses(project, converted.trainer.classes) : null;
  const source: ImportedSource = { ...converted.source, ...fingerprint(converted.files) };
  const kind = converted.trainer?.stage ?? 'pretrain';
  const runId = createRun(project.db, kind, null, { model: converted.model, imported: source });
  markRunning(project.db, runId, { pid: process.pid, backend: tf.getBackend(), device: 'weights import' });
  try {
    await writeCheckpoint(project, runId, converted);
  } catch (error) {
    finishRun(project.db, runId, 'failed', { error: (error as Error).message });
    throw error;
  }
  finishRun(project.db, runId, 'done', { summary: importSummary(converted, source, classes) });
  return { runId, kind, model: converted.model, source, report: converted.report };
}
