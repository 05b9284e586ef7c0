/**
 * Training-mode forward pass of a stock tf.LayersModel that runs each batch normalisation, with
 * the ReLU (and residual Add) after it, as one op with its own gradient.
 *
 * tf.layers builds a training BN as moments (Mean, Sub, Square, Mean) + FusedBatchNorm, and
 * TF.js's tape keeps every one of those intermediates, and every intermediate gradient, until
 * the whole backward pass ends: at ResNet-18 w0.5 b128 that was ~4 GB of peak RSS. The fused op
 * computes its statistics in a tidy, keeps only its input and output (the tensors the
 * neighbouring convolutions keep anyway) and hands the tape one gradient per input. The models
 * themselves stay stock layers (saving, ONNX export and weight import walk them by class); only
 * how a training step runs them changes. Layers that are not fused run through layer.apply.
 */
import * as tf from '@tensorflow/tfjs';
import { batchNormGradientSums } from './batch_norm_sums.ts';

type Layer = tf.layers.Layer;

/** The BN layer's weights and settings, read from the stock layer. */
interface NormWeights {
  gamma: tf.LayerVariable;
  beta: tf.LayerVariable;
  movingMean: tf.LayerVariable;
  movingVariance: tf.LayerVariable;
  momentum: number;
  epsilon: number;
}

type Step =
  | { kind: 'layer'; layer: Layer; inputs: number[]; outputs: number[] }
  /** BN of `input`, then + `skip` when given, then ReLU when `relu`. */
  | { kind: 'norm'; norm: NormWeights; input: number; skip: number | null; relu: boolean; output: number };

interface Plan {
  input: number;
  steps: Step[];
  outputs: number[];
}

const plans = new WeakMap<tf.LayersModel, Plan | null>();

/**
 * The model's outputs in training mode (BN on batch statistics, moving averages updated as
 * tf.layers updates them), in model.outputs order. Models whose graph this does not plan
 * (a layer used more than once, several inputs) run through model.apply.
 */
export function runTrainingForward(model: tf.LayersModel, images: tf.Tensor): tf.Tensor[] {
  const plan = planFor(model);
  if (!plan) {
    const out = model.apply(images, { training: true });
    return Array.isArray(out) ? out as tf.Tensor[] : [out as tf.Tensor];
  }
  const run: Run = { values: new Map([[plan.input, images]]), producedAt: new Map([[plan.input, -1]]), release: new GradientRelease() };
  plan.steps.forEach((step, index) => runStep(step, index, run));
  return plan.outputs.map((id) => valueOf(run.values, id));
}

/** Whether runTrainingForward fuses this model's batch norms (false: it falls back to model.apply). */
export function fusesBatchNorms(model: tf.LayersModel): boolean {
  return planFor(model)?.steps.some((step) => step.kind === 'norm') ?? false;
}

/** Planned once per model: the graph of a built model does not change. */
function planFor(model: tf.LayersModel): Plan | null {
  if (!plans.has(model)) plans.set(model, planModel(model));
  return plans.get(model)!;
}

/** A planned tensor; missing means the plan ran a step before its input (a bug, so it stops loudly). */
function valueOf(values: Map<number, tf.Tensor>, id: number): tf.Tensor {
  const value = values.get(id);
  if (!value) throw new Error(`training forward: symbolic tensor ${id} is used before it is computed`);
  return value;
}

/** One forward pass: the tensors so far, the step that made each, and what frees gradients in its backward pass. */
interface Run {
  values: Map<number, tf.Tensor>;
  producedAt: Map<number, number>;
  release: GradientRelease;
}

function runStep(step: Step, index: number, run: Run): void {
  const { values, producedAt } = run;
  if (step.kind === 'norm') {
    const place: OpPlace = { step: index, inputFrom: producedAt.get(step.input)!, skipFrom: step.skip === null ? -1 : producedAt.get(step.skip)!, release: run.release };
    const skip = step.skip === null ? null : valueOf(values, step.skip);
    values.set(step.output, fusedBatchNorm(valueOf(values, step.input), step.norm, skip, step.relu, place));
    producedAt.set(step.output, index);
    return;
  }
  const inputs = step.inputs.map((id) => valueOf(values, id));
  const out = step.layer.apply(inputs.length === 1 ? inputs[0] : inputs, { training: true });
  const outs = Array.isArray(out) ? out : [out];
  step.outputs.forEach((id, i) => {
    values.set(id, outs[i] as tf.Tensor);
    producedAt.set(id, index);
  });
}

/**
 * Frees gradients the tape no longer needs. TF.js keeps every gradient it computes until the
 * whole backward pass ends; the tape runs the steps in reverse, so once it reaches step k every
 * later step has had its backward, and a gradient of a tensor that a later step made (the input
 * gradient a fused op handed to the convolution before it) is dead. A gradient that the tape
 * has already added into another is disposed twice, which TF.js ignores.
 */
class GradientRelease {
  private pending: { grad: tf.Tensor; producer: number }[] = [];

  /** `grad` is the gradient of a tensor made by step `producer`. */
  handOut(grad: tf.Tensor, producer: number): void {
    this.pending.push({ grad, producer });
  }

  /** The tape is at step `step`: frees the gradients of tensors made after it. */
  reached(step: number): void {
    const dead = this.pending.filter((p) => p.producer > step);
    this.pending = this.pending.filter((p) => p.producer <= step);
    for (const { grad } of dead) grad.dispose();
  }
}

/** Where a fused op stands in its forward pass: its step, the steps that made its input and skip. */
interface OpPlace {
  step: number;
  inputFrom: number;
  skipFrom: number;
  release: GradientRelease;
}

// ---------------------------------------------------------------- planning

type GraphNode = { inputTensors: tf.SymbolicTensor[]; outputTensors: tf.SymbolicTensor[] };

function onlyNode(layer: Layer): GraphNode | null {
  const nodes = (layer as unknown as { inboundNodes: GraphNode[] }).inboundNodes;
  return nodes.length === 1 ? nodes[0] : null;
}

function planModel(model: tf.LayersModel): Plan | null {
  if (model.inputs.length !== 1) return null;
  const nodes = new Map<Layer, GraphNode>();
  for (const layer of model.layers) {
    const node = onlyNode(layer);
    if (!node) return null;
    nodes.set(layer, node);
  }
  const consumers = new Map<number, Layer[]>();
  for (const [layer, node] of nodes) {
    for (const t of node.inputTensors) consumers.set(t.id, [...(consumers.get(t.id) ?? []), layer]);
  }
  const modelOutputs = new Set(model.outputs.map((t) => t.id));
  /** The one layer that consumes t, when t is no model output. */
  const soleConsumer = (t: tf.SymbolicTensor): Layer | null => {
    const users = consumers.get(t.id) ?? [];
    return users.length === 1 && !modelOutputs.has(t.id) ? users[0] : null;
  };
  const absorbed = new Set<Layer>();
  /** Fused BN + Add + ReLU steps, emitted where their Add stands (the skip exists by then). */
  const atAdd = new Map<Layer, Step>();
  const steps: Step[] = [];
  for (const layer of model.layers) {
    const node = nodes.get(layer)!;
    if (layer.getClassName() === 'InputLayer' || absorbed.has(layer)) continue;
    const deferred = atAdd.get(layer);
    if (deferred) {
      steps.push(deferred);
      continue;
    }
    const norm = layer.getClassName() === 'BatchNormalization' ? normWeights(layer) : null;
    if (!norm) {
      steps.push({ kind: 'layer', layer, inputs: node.inputTensors.map((t) => t.id), outputs: node.outputTensors.map((t) => t.id) });
      continue;
    }
    const input = node.inputTensors[0].id;
    const next = soleConsumer(node.outputTensors[0]);
    if (next && isRelu(next)) {
      absorbed.add(next);
      steps.push({ kind: 'norm', norm, input, skip: null, relu: true, output: nodes.get(next)!.outputTensors[0].id });
      continue;
    }
    // A projection block adds two BN outputs: the first BN to reach the Add takes it, the other stays alone.
    const residual = next && next.getClassName() === 'Add' && !atAdd.has(next) ? residualRelu(next, node.outputTensors[0], nodes, soleConsumer) : null;
    if (residual) {
      absorbed.add(residual.relu);
      atAdd.set(next!, { kind: 'norm', norm, input, skip: residual.skip, relu: true, output: nodes.get(residual.relu)!.outputTensors[0].id });
      continue;
    }
    steps.push({ kind: 'norm', norm, input, skip: null, relu: false, output: node.outputTensors[0].id });
  }
  return { input: model.inputs[0].id, steps, outputs: model.outputs.map((t) => t.id) };
}

function isRelu(layer: Layer): boolean {
  return layer.getClassName() === 'Activation' && layer.getConfig().activation === 'relu';
}

/** An Add of `normed` and one other tensor whose sum only a ReLU reads: that other tensor and the ReLU. */
function residualRelu(add: Layer, normed: tf.SymbolicTensor, nodes: Map<Layer, GraphNode>, soleConsumer: (t: tf.SymbolicTensor) => Layer | null): { skip: number; relu: Layer } | null {
  const node = nodes.get(add)!;
  if (node.inputTensors.length !== 2) return null;
  const other = node.inputTensors.find((t) => t.id !== normed.id);
  const relu = soleConsumer(node.outputTensors[0]);
  if (!other || !relu || !isRelu(relu)) return null;
  return { skip: other.id, relu };
}

/** The weights of a BN over the last axis with centre and scale (ours always); null for any other BN. */
function normWeights(layer: Layer): NormWeights | null {
  const config = layer.getConfig() as { axis: number | number[]; momentum: number; epsilon: number; center: boolean; scale: boolean };
  const axis = Array.isArray(config.axis) ? config.axis : [config.axis];
  const rank = layer.inputSpec?.[0]?.ndim ?? (layer as unknown as { batchInputShape?: number[] }).batchInputShape?.length;
  const lastAxis = axis.length === 1 && (axis[0] === -1 || (rank !== undefined && axis[0] === rank - 1));
  if (!lastAxis || !config.center || !config.scale) return null;
  const weight = (suffix: string) => layer.weights.find((w) => w.originalName.endsWith(`/${suffix}`));
  const [gamma, beta, movingMean, movingVariance] = ['gamma', 'beta', 'moving_mean', 'moving_variance'].map(weight);
  if (!gamma || !beta || !movingMean || !movingVariance) return null;
  return { gamma, beta, movingMean, movingVariance, momentum: config.momentum, epsilon: config.epsilon };
}

// ---------------------------------------------------------------- the fused op

function leadingAxes(x: tf.Tensor): number[] {
  return Array.from({ length: x.rank - 1 }, (_, i) => i);
}

/** moving ← moving − (moving − batch)·(1 − momentum), as tf.layers' BatchNormalization does (variance not bias-corrected). */
function updateMovingAverage(variable: tf.LayerVariable, batch: tf.Tensor, momentum: number): void {
  tf.tidy(() => {
    const current = variable.read();
    variable.write(tf.sub(current, tf.mul(tf.sub(current, batch), 1 - momentum)));
  });
}

/**
 * relu?(BN(x) + skip?) with batch statistics, as one op. Gamma and beta are inputs of the op
 * so their gradients reach tf.variableGrads (variables read only inside it would get none).
 */
function fusedBatchNorm(x: tf.Tensor, norm: NormWeights, skip: tf.Tensor | null, relu: boolean, place: OpPlace): tf.Tensor {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [input, gamma, beta, residual] = args as tf.Tensor[];
    const [out, mean, variance] = tf.tidy(() => {
      const moments = tf.moments(input, leadingAxes(input));
      let y = tf.batchNorm(input, moments.mean, moments.variance, beta, gamma, norm.epsilon);
      if (residual) y = tf.add(y, residual);
      if (relu) y = tf.relu(y);
      return [y, moments.mean, moments.variance];
    });
    updateMovingAverage(norm.movingMean, mean, norm.momentum);
    updateMovingAverage(norm.movingVariance, variance, norm.momentum);
    save([input, gamma, mean, variance, out]);
    return {
      value: out,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        // First free what the steps after this one no longer need, so this op's temporaries do not stack on top of it.
        place.release.reached(place.step);
        return handOutGrads(dy as tf.Tensor, fusedBatchNormGrad(dy as tf.Tensor, saved, norm.epsilon, relu, residual !== undefined), place);
      },
    };
  });
  const inputs = [x, norm.gamma.read(), norm.beta.read(), ...(skip ? [skip] : [])];
  return op(...inputs);
}

/**
 * dy where the ReLU passed its input. Frees the mask and dy at once (only this op reads dy, see
 * GradientRelease): the backward pass peaks at the first layers, where each full-size
 * temporary adds straight to the peak.
 */
function masked(dy: tf.Tensor, out: tf.Tensor): tf.Tensor {
  const mask = tf.step(out);
  const g = tf.mul(dy, mask);
  tf.dispose([mask, dy]);
  return g;
}

/**
 * Frees this op's output gradient (only this op reads it) and hands out its input and skip
 * gradients for freeing once the tape has passed the steps that made those tensors.
 */
function handOutGrads(dy: tf.Tensor, grads: tf.Tensor[], place: OpPlace): tf.Tensor[] {
  if (!grads.includes(dy)) dy.dispose();
  place.release.handOut(grads[0], place.inputFrom);
  if (grads.length > 3) place.release.handOut(grads[3], place.skipFrom);
  return grads;
}

/**
 * Gradients of relu?(gamma·(x − mean)·r + beta + skip?) with r = 1/√(variance + ε) and batch
 * mean and variance: with g the gradient after the ReLU mask and n values per channel,
 * dx = gamma·r·(g − Σg/n − (x − mean)·r²·Σg(x − mean)/n), dgamma = r·Σg(x − mean), dbeta = Σg, dskip = g.
 */
function fusedBatchNormGrad(dy: tf.Tensor, saved: tf.Tensor[], epsilon: number, relu: boolean, hasSkip: boolean): tf.Tensor[] {
  const [x, gamma, mean, variance, out] = saved;
  return tf.tidy(() => {
    const g = relu ? masked(dy, out) : dy;
    const [sumG, sumGCentred] = batchNormGradientSums(g, x, mean);
    const n = x.size / mean.size;
    const r = tf.rsqrt(tf.add(variance, epsilon));
    const scaleR = tf.mul(gamma, r);
    // The two per-channel terms as one affine pass over x, which batchNorm scales by r itself:
    // (x − mean)·r·(−gamma·r·r·Σg(x−mean)/n) − gamma·r·Σg/n.
    const offset = tf.mul(tf.mul(scaleR, sumG), -1 / n);
    const scale = tf.mul(tf.mul(tf.mul(scaleR, r), sumGCentred), -1 / n);
    const centredTerm = tf.batchNorm(x, mean, variance, offset, scale, epsilon);
    const scaled = tf.mul(g, scaleR);
    const dx = tf.add(scaled, centredTerm);
    tf.dispose([scaled, centredTerm]);
    const grads = [dx, tf.mul(r, sumGCentred), sumG];
    return hasSkip ? [...grads, g] : grads;
  });
}
