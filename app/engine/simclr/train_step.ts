/**
 * One optimisation step of each SimCLRv2 stage: augment, forward in training mode (BN uses
 * batch statistics and updates its moving averages), loss, gradients, LARS update. Each step
 * disposes everything it creates and returns plain numbers once its loss has been read. The read
 * is asynchronous: the webgpu backend cannot read GPU memory synchronously under Node.
 */
import * as tf from '@tensorflow/tfjs';
import { augmentFinetune, augmentPretrain, type PretrainAugmentOptions } from './data_util.ts';
import type { LarsOptimizer } from './lars_optimizer.ts';
import { namedTrainableVariables, runClassifier, runPretrainModel } from './model.ts';
import { crossEntropy, distillationLoss, ntXentLoss } from './objective.ts';
import type { Rng } from './random.ts';

export interface PretrainStepConfig {
  /** Side of the augmented views fed to the model (the model's imageSize). */
  imageSize: number;
  temperature: number;
  learningRate: number;
  augment: PretrainAugmentOptions;
}

export interface ClassifierStepConfig {
  imageSize: number;
  learningRate: number;
  /** Mixup's α: views and targets blended in pairs with a share drawn from Beta(α, α); 0 or absent: off. */
  mixup?: number;
}

export interface DistillStepConfig {
  imageSize: number;
  learningRate: number;
  /** τ of the teacher and student softmax. */
  temperature: number;
  /** Weight of the cross-entropy on the labelled batch, when one is given. */
  labelWeight: number;
}

export interface LabelledBatch {
  images: tf.Tensor4D;
  /** Class index per image, 0 … numClasses − 1. */
  labels: ArrayLike<number>;
}

/**
 * Computes gradients of `loss` for every trainable variable of `model` and applies them.
 * `loss` may tf.keep() extra tensors (metrics) it wants to outlive the step.
 */
async function minimise(model: tf.LayersModel, optimizer: LarsOptimizer, learningRate: number, loss: () => tf.Scalar): Promise<number> {
  const variables = namedTrainableVariables(model);
  const stableName = new Map(Object.entries(variables).map(([name, v]) => [v.name, name]));
  const { value, grads } = tf.variableGrads(loss, Object.values(variables));
  const named: Record<string, tf.Tensor> = {};
  for (const [variableName, grad] of Object.entries(grads)) named[stableName.get(variableName)!] = grad;
  optimizer.applyGradients(named, variables, learningRate);
  tf.dispose(Object.values(grads));
  return readAndDispose(value);
}

async function readAndDispose(t: tf.Tensor): Promise<number> {
  const v = (await t.data())[0];
  t.dispose();
  return v;
}

/** Contrastive pretraining: two views per image, both in one forward pass so BN sees all 2N. */
export async function pretrainStep(model: tf.LayersModel, optimizer: LarsOptimizer, images: tf.Tensor4D, cfg: PretrainStepConfig, rng: Rng): Promise<{ loss: number; top1: number }> {
  const views = tf.tidy(() => tf.concat([
    augmentPretrain(images, cfg.imageSize, cfg.augment, rng),
    augmentPretrain(images, cfg.imageSize, cfg.augment, rng),
  ]) as tf.Tensor4D);
  let top1: tf.Scalar | undefined;
  const loss = await minimise(model, optimizer, cfg.learningRate, () => {
    const { projection } = runPretrainModel(model, views, true);
    const [z1, z2] = tf.split(projection, 2) as tf.Tensor2D[];
    const result = ntXentLoss(z1, z2, cfg.temperature);
    top1 = tf.keep(result.top1);
    return result.loss;
  });
  views.dispose();
  return { loss, top1: await readAndDispose(top1!) };
}

function oneHotLabels(labels: ArrayLike<number>, numClasses: number): tf.Tensor2D {
  for (const label of Array.from(labels)) {
    if (!(Number.isInteger(label) && label >= 0 && label < numClasses)) throw new Error(`label ${label} is outside 0…${numClasses - 1}`);
  }
  return tf.tidy(() => tf.oneHot(tf.tensor1d(Array.from(labels), 'int32'), numClasses) as tf.Tensor2D);
}

function accuracy(logits: tf.Tensor2D, targets: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.cast(tf.equal(tf.argMax(logits, 1), tf.argMax(targets, 1)), 'float32')) as tf.Scalar);
}

function numClassesOf(classifier: tf.LayersModel): number {
  return classifier.outputs[0].shape[1] as number;
}

/**
 * Mixup (Zhang et al. 2018): every view becomes λ·itself + (1 − λ)·a partner's view from the same
 * batch, and its target the same blend of the two labels. Each view draws its own λ ~ Beta(α, α):
 * one λ for the whole batch makes every step's gradient as noisy as its single draw, which a run of a
 * few hundred steps does not average out. On a few hundred labels a network otherwise learns them by
 * heart long before the budget ends.
 */
export function mixPairs(views: tf.Tensor4D, targets: tf.Tensor2D, alpha: number, rng: Rng): { views: tf.Tensor4D; targets: tf.Tensor2D } {
  const n = views.shape[0];
  const shares = Array.from({ length: n }, () => rng.beta(alpha, alpha));
  const partners = rng.shuffled(Array.from({ length: n }, (_, i) => i));
  return tf.tidy(() => {
    const order = tf.tensor1d(partners, 'int32');
    const blend = <T extends tf.Tensor>(x: T) => {
      const share = tf.tensor(shares, [n, ...x.shape.slice(1).map(() => 1)]);
      return tf.add(tf.mul(x, share), tf.mul(tf.gather(x, order), tf.sub(1, share))) as T;
    };
    return { views: blend(views), targets: blend(targets) };
  });
}

/**
 * Supervised step (fine-tuning, or the supervised-only baseline): crop + flip, optionally mixup,
 * cross-entropy. With mixup the accuracy is against each blend's larger share.
 */
export async function classifierStep(model: tf.LayersModel, optimizer: LarsOptimizer, batch: LabelledBatch, cfg: ClassifierStepConfig, rng: Rng): Promise<{ loss: number; accuracy: number }> {
  let targets = oneHotLabels(batch.labels, numClassesOf(model));
  let views = augmentFinetune(batch.images, cfg.imageSize, rng);
  if (cfg.mixup) {
    const mixed = mixPairs(views, targets, cfg.mixup, rng);
    tf.dispose([views, targets]);
    ({ views, targets } = mixed);
  }
  let correct: tf.Scalar | undefined;
  const loss = await minimise(model, optimizer, cfg.learningRate, () => {
    const { logits } = runClassifier(model, views, true);
    correct = tf.keep(accuracy(logits, targets));
    return crossEntropy(logits, targets);
  });
  tf.dispose([views, targets]);
  return { loss, accuracy: await readAndDispose(correct!) };
}

/**
 * Distillation through unlabelled images: the student matches the fixed teacher's tempered
 * predictions on the same augmented view (teacher BN in inference mode). With a labelled
 * batch, labelWeight × its cross-entropy is added; both batches share one student forward pass.
 */
export async function distillStep(
  student: tf.LayersModel, teacher: tf.LayersModel, optimizer: LarsOptimizer, unlabelled: tf.Tensor4D,
  cfg: DistillStepConfig, rng: Rng, labelled?: LabelledBatch,
): Promise<{ loss: number; distillLoss: number; labelledLoss: number | null }> {
  const n = unlabelled.shape[0];
  const targets = labelled ? oneHotLabels(labelled.labels, numClassesOf(student)) : null;
  const views = tf.tidy(() => {
    const u = augmentFinetune(unlabelled, cfg.imageSize, rng);
    return labelled ? tf.concat([u, augmentFinetune(labelled.images, cfg.imageSize, rng)]) as tf.Tensor4D : u;
  });
  const teacherLogits = tf.tidy(() => runClassifier(teacher, tf.slice(views, 0, n) as tf.Tensor4D, false).logits);
  let distillPart: tf.Scalar | undefined;
  let labelledPart: tf.Scalar | undefined;
  const loss = await minimise(student, optimizer, cfg.learningRate, () => {
    const { logits } = runClassifier(student, views, true);
    const distill = distillationLoss(tf.slice(logits, 0, n), teacherLogits, cfg.temperature);
    // A copy: without labels `distill` is also the loss value, which minimise disposes.
    distillPart = tf.keep(tf.clone(distill));
    if (!targets) return distill;
    const supervised = crossEntropy(tf.slice(logits, n), targets);
    labelledPart = tf.keep(supervised);
    return tf.add(distill, tf.mul(supervised, cfg.labelWeight)) as tf.Scalar;
  });
  tf.dispose([views, teacherLogits, ...(targets ? [targets] : [])]);
  return { loss, distillLoss: await readAndDispose(distillPart!), labelledLoss: labelledPart ? await readAndDispose(labelledPart) : null };
}
