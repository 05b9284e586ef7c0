/**
 * Folding passes over a converted graph: an inference-mode batch norm is a per-channel affine
 * map, so it merges into the convolution or dense layer before it, and a zero padding merges
 * into the pads of the convolution after it. The result computes the same function with fewer
 * nodes and no batch-norm arithmetic at run time.
 */
import { ints, type OnnxGraph, type OnnxNode } from './onnx_graph.ts';

function floats(graph: OnnxGraph, name: string): Float32Array {
  const data = graph.initializers.get(name)?.data;
  if (!(data instanceof Float32Array)) throw new Error(`${name} is not a float32 weight`);
  return data;
}

/** A weight read by `node` alone, so rewriting it changes nothing else. */
function ownWeight(graph: OnnxGraph, node: OnnxNode, index: number): boolean {
  const name = node.inputs[index];
  return name !== undefined && graph.initializers.has(name) && graph.consumers(name).length === 1;
}

/** scale = γ / √(σ² + ε) and shift = β - μ·scale, computed in double precision. */
function batchNormAffine(graph: OnnxGraph, bn: OnnxNode): { scale: number[]; shift: number[] } {
  const [gamma, beta, mean, variance] = bn.inputs.slice(1).map((name) => floats(graph, name));
  const epsilon = bn.attributes.epsilon?.value as number;
  const scale = Array.from(gamma, (g, c) => g / Math.sqrt(variance[c] + epsilon));
  return { scale, shift: scale.map((s, c) => beta[c] - mean[c] * s) };
}

/**
 * Scales output channel `c` of the weights by scale[c] and sets the bias to bias·scale + shift.
 * `channelOf(i)` says which output channel weight element i feeds.
 */
function foldInto(graph: OnnxGraph, node: OnnxNode, affine: { scale: number[]; shift: number[] }, channelOf: (i: number) => number): void {
  const weights = floats(graph, node.inputs[1]);
  for (let i = 0; i < weights.length; i++) weights[i] *= affine.scale[channelOf(i)];
  const bias = node.inputs[2] === undefined ? undefined : floats(graph, node.inputs[2]);
  const folded = Float32Array.from(affine.shift, (shift, c) => (bias ? bias[c] : 0) * affine.scale[c] + shift);
  node.inputs[2] = graph.addInitializer(`${node.name}/folded_bias`, [folded.length], folded);
}

function isPlainGemm(node: OnnxNode): boolean {
  return !node.attributes.transA?.value && !node.attributes.transB?.value && node.attributes.alpha === undefined && node.attributes.beta === undefined;
}

/** Merges each BatchNormalization into the Conv or Gemm whose output only it reads. */
export function foldBatchNorms(graph: OnnxGraph): void {
  for (const bn of graph.nodes.filter((node) => node.op === 'BatchNormalization')) {
    const x = bn.inputs[0];
    const producer = graph.producer(x);
    if (!producer || graph.consumers(x).length !== 1 || graph.isGraphOutput(x)) continue;
    if (!bn.inputs.slice(1).every((name) => graph.initializers.has(name))) continue;
    if (!ownWeight(graph, producer, 1) || (producer.inputs[2] !== undefined && !ownWeight(graph, producer, 2))) continue;
    const affine = batchNormAffine(graph, bn);
    const channels = affine.scale.length;
    if (producer.op === 'Conv') {
      const perChannel = floats(graph, producer.inputs[1]).length / channels; // OIHW: output channel outermost
      foldInto(graph, producer, affine, (i) => Math.floor(i / perChannel));
    } else if (producer.op === 'Gemm' && isPlainGemm(producer)) {
      foldInto(graph, producer, affine, (i) => i % channels); // [in, out]: output channel innermost
    } else {
      continue;
    }
    producer.outputs = bn.outputs;
    graph.removeNode(bn);
  }
  graph.pruneInitializers();
}

/** Merges each zero Pad of the two spatial axes into the pads of the Conv that alone reads it. */
export function foldPads(graph: OnnxGraph): void {
  for (const pad of graph.nodes.filter((node) => node.op === 'Pad')) {
    const readers = graph.consumers(pad.outputs[0]);
    const pads = graph.initializers.get(pad.inputs[1])?.data;
    if (readers.length !== 1 || readers[0].op !== 'Conv' || !(pad.inputs.length === 2 && pads instanceof BigInt64Array)) continue;
    const [n0, c0, top, left, n1, c1, bottom, right] = Array.from(pads, Number);
    if (n0 || c0 || n1 || c1) continue;
    const conv = readers[0];
    const [t, l, b, r] = (conv.attributes.pads?.value as number[] | undefined) ?? [0, 0, 0, 0];
    conv.attributes.pads = ints([t + top, l + left, b + bottom, r + right]);
    conv.inputs[0] = pad.inputs[0];
    graph.removeNode(pad);
  }
  graph.pruneInitializers();
}
