/**
 * The networks of the three SimCLRv2 stages, all flat tf.LayersModels sharing layer names:
 *
 * - pretrain:   images → encoder → 3-layer projection head → [projection z, features h]
 * - classifier: images → encoder → head layer 1 (Dense-BN-ReLU) → Dense(numClasses)
 *               → [logits, embedding]. SimCLRv2 fine-tunes from the middle of the projection
 *               head (its first layer), training the whole network. Built from random weights
 *               it is also the supervised-only baseline; copyWeightsByName(pretrain, classifier)
 *               starts fine-tuning, and copying a classifier into a same-shaped classifier
 *               starts a distillation student.
 *
 * The embedding output (input of the logits layer) is what evaluation plots and searches.
 */
import * as tf from '@tensorflow/tfjs';
import { LayerFactory, applyEncoder, encoderOutputWidth, imageInput, type ModelConfig } from './resnet.ts';
import { runTrainingForward } from './training_forward.ts';

export type { ModelConfig } from './resnet.ts';

export const DEFAULT_PROJECTION_DIM = 128;
/** The reference initialises head and classifier Dense kernels with N(0, 0.01²). */
const HEAD_INIT_STDDEV = 0.01;

/** Dense (no bias, BN follows) → BN → optional ReLU, named head_dense{i}, head_bn{i}, head_relu{i}. */
function headLayer(f: LayerFactory, x: tf.SymbolicTensor, index: number, units: number, relu: boolean): tf.SymbolicTensor {
  const y = f.dense(x, `head_dense${index}`, units, { useBias: false, stddev: HEAD_INIT_STDDEV });
  const normalised = f.batchNorm(y, `head_bn${index}`);
  return relu ? f.relu(normalised, `head_relu${index}`) : normalised;
}

/** Pretraining network: outputs [projection (projectionDim), features (encoder width)]. */
export function buildPretrainModel(cfg: ModelConfig, seed?: number): tf.LayersModel {
  const f = new LayerFactory(seed);
  const input = imageInput(cfg);
  const features = applyEncoder(f, input, cfg);
  const hidden = encoderOutputWidth(cfg);
  let h = headLayer(f, features, 1, hidden, true);
  h = headLayer(f, h, 2, hidden, true);
  const projection = headLayer(f, h, 3, cfg.projectionDim ?? DEFAULT_PROJECTION_DIM, false);
  const model = tf.model({ inputs: input, outputs: [projection, features], name: 'simclr_pretrain' });
  freezeProjectionCenter(model);
  return model;
}

/**
 * The last projection BN has no centre in SimCLRv2 (a shift is irrelevant before L2
 * normalisation), but TF.js's BatchNormalization cannot train with center: false. So the
 * layer keeps a beta that starts at 0 and is never trained. Trainability is not saved with a
 * model, so a loaded pretrain model must be rebuilt with buildPretrainModel and filled with
 * copyWeightsByName to keep beta frozen.
 */
function freezeProjectionCenter(model: tf.LayersModel): void {
  const beta = model.getLayer('head_bn3').weights.find((w) => stableWeightName(w).endsWith('/beta'));
  if (!beta) throw new Error('head_bn3 has no beta weight');
  beta.trainable = false;
}

/** Classifier: outputs [logits (numClasses), embedding (encoder width)]. */
export function buildClassifier(cfg: ModelConfig, numClasses: number, seed?: number): tf.LayersModel {
  if (!(Number.isInteger(numClasses) && numClasses >= 2)) throw new RangeError(`a classifier needs at least 2 classes, got ${numClasses}`);
  const f = new LayerFactory(seed);
  const input = imageInput(cfg);
  const features = applyEncoder(f, input, cfg);
  const embedding = headLayer(f, features, 1, encoderOutputWidth(cfg), true);
  const logits = f.dense(embedding, 'logits', numClasses, { useBias: true, stddev: HEAD_INIT_STDDEV });
  return tf.model({ inputs: input, outputs: [logits, embedding], name: 'simclr_classifier' });
}

export type PretrainOutputs = { projection: tf.Tensor2D; features: tf.Tensor2D };
export type ClassifierOutputs = { logits: tf.Tensor2D; embedding: tf.Tensor2D };

/** training: BN uses batch statistics and updates its moving averages. */
export function runPretrainModel(model: tf.LayersModel, images: tf.Tensor4D, training: boolean): PretrainOutputs {
  const [projection, features] = runModel(model, images, training);
  return { projection, features };
}

export function runClassifier(model: tf.LayersModel, images: tf.Tensor4D, training: boolean): ClassifierOutputs {
  const [logits, embedding] = runModel(model, images, training);
  return { logits, embedding };
}

/**
 * A classifier's answer at inference: the class probabilities of each image and of its mirror image,
 * averaged (+0.15 to +1.25 points held out for the label study's networks, docs/engine.md), as log-probabilities
 * so they stand wherever logits do. The embedding is the image's own. Distillation's teacher runs one
 * view (runClassifier), since it runs every step.
 */
export function classifyImages(model: tf.LayersModel, images: tf.Tensor4D): ClassifierOutputs {
  const plain = runClassifier(model, images, false);
  const mirrored = runClassifier(model, tf.reverse(images, 2), false);
  const views = tf.stack([tf.logSoftmax(plain.logits), tf.logSoftmax(mirrored.logits)]);
  return { logits: tf.sub(tf.logSumExp(views, 0), Math.log(2)), embedding: plain.embedding };
}

/** Training runs the fused batch norms of training_forward.ts (far less memory held for the backward pass); inference is model.apply. */
function runModel(model: tf.LayersModel, images: tf.Tensor4D, training: boolean): tf.Tensor2D[] {
  return (training ? runTrainingForward(model, images) : model.apply(images, { training })) as tf.Tensor2D[];
}

/**
 * A weight's name without the process-wide suffix TF.js appends when another model already
 * used it (`stem_bn/gamma_1` → `stem_bn/gamma`): the key for optimiser slots and checkpoints.
 */
export function stableWeightName(weight: tf.LayerVariable): string {
  return weight.originalName;
}

/** Trainable variables keyed by stable name, for tf.variableGrads and the optimiser. */
export function namedTrainableVariables(model: tf.LayersModel): Record<string, tf.Variable> {
  const out: Record<string, tf.Variable> = {};
  for (const w of model.trainableWeights) out[stableWeightName(w)] = w.read() as tf.Variable;
  return out;
}

/**
 * Copies every weight (including BN moving statistics) of each layer of `to` that has a
 * namesake in `from`; layers only one model has are left alone (e.g. the projection head
 * when fine-tuning). Returns the names of the layers copied.
 */
export function copyWeightsByName(from: tf.LayersModel, to: tf.LayersModel): string[] {
  const source = new Map(from.layers.map((layer) => [layer.name, layer]));
  const copied: string[] = [];
  for (const target of to.layers) {
    const origin = source.get(target.name);
    if (!origin || target.weights.length === 0) continue;
    const values = origin.getWeights();
    const shapes = target.weights.map((w) => w.shape.join('x'));
    const sourceShapes = values.map((v) => v.shape.join('x'));
    if (shapes.join() !== sourceShapes.join()) {
      throw new RangeError(`cannot copy weights of layer ${target.name}: shapes ${sourceShapes.join(', ')} do not fit ${shapes.join(', ')} (different architecture)`);
    }
    target.setWeights(values);
    copied.push(target.name);
  }
  return copied;
}
