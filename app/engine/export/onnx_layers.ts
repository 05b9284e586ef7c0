/**
 * Translates a tf.LayersModel into an ONNX graph layer by layer, by each layer's class name and
 * config, so any network built from the supported layers converts (not only today's ResNets).
 *
 * Layout: TF.js is channels-last; ONNX's Conv and pooling are channels-first. The graph takes the
 * NHWC input the TF.js model takes, transposes it to NCHW once, and every 4-D value inside is
 * NCHW. Values of other ranks keep TF.js's layout. Shapes below are always TF.js's (NHWC).
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../../contract/errors.ts';
import { float, int, ints, type OnnxAttribute, OnnxGraph } from './onnx_graph.ts';

type Shape = (number | null)[];

/** A TF.js tensor as an ONNX value: its name in the graph and its TF.js (NHWC) shape. */
interface Value {
  name: string;
  shape: Shape;
}

type Layer = tf.layers.Layer;
type Config = Record<string, unknown>;
type Converter = (graph: OnnxGraph, layer: Layer, inputs: Value[], outputShape: Shape) => string;

const NHWC_TO_NCHW = [0, 3, 1, 2];
const NCHW_TO_NHWC = [0, 2, 3, 1];

function config(layer: Layer): Config {
  return layer.getConfig() as Config;
}

function fail(layer: Layer, why: string): never {
  throw new UserError(`cannot export layer ${layer.name} (${layer.getClassName()}) to ONNX: ${why}`, 'unsupported_layer');
}

function pair(value: unknown): [number, number] {
  return Array.isArray(value) ? [value[0], value[1]] : [value as number, value as number];
}

/** The layer's weight whose name ends in `/suffix` (kernel, bias, gamma, …), as float32 values. */
function weight(layer: Layer, suffix: string): { values: Float32Array; shape: number[] } | undefined {
  const variable = layer.weights.find((w) => w.originalName.endsWith(`/${suffix}`));
  if (!variable) return undefined;
  return { values: Float32Array.from(variable.read().dataSync() as Float32Array), shape: variable.shape as number[] };
}

function requireWeight(layer: Layer, suffix: string): { values: Float32Array; shape: number[] } {
  return weight(layer, suffix) ?? fail(layer, `it has no ${suffix} weight`);
}

function requireChannelsLast(layer: Layer): void {
  const format = config(layer).dataFormat;
  if (format !== undefined && format !== 'channelsLast') fail(layer, `data format ${String(format)} (only channelsLast)`);
}

function requireRank(layer: Layer, input: Value, rank: number): void {
  if (input.shape.length !== rank) fail(layer, `its input has rank ${input.shape.length}, expected ${rank}`);
}

/** Spatial size [height, width] of an NHWC shape; known, since the model's input size is fixed. */
function spatial(layer: Layer, shape: Shape): [number, number] {
  const [, h, w] = shape;
  if (typeof h !== 'number' || typeof w !== 'number') fail(layer, 'its input size is not fixed');
  return [h, w];
}

/**
 * ONNX pads [top, left, bottom, right] that reproduce TF "same" padding: the output is
 * ceil(input / stride), and when the total padding is odd the extra row/column goes at the
 * bottom/right. Written out rather than left to auto_pad, so every runtime reads the same numbers.
 */
export function samePads(input: [number, number], kernel: [number, number], strides: [number, number], dilations: [number, number] = [1, 1]): number[] {
  const totals = input.map((size, i) => {
    const out = Math.ceil(size / strides[i]);
    return Math.max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size, 0);
  });
  const before = totals.map((total) => Math.floor(total / 2));
  return [...before, ...totals.map((total, i) => total - before[i])];
}

function paddingPads(layer: Layer, input: Value, kernel: [number, number], strides: [number, number], dilations: [number, number] = [1, 1]): number[] {
  const padding = config(layer).padding;
  if (padding === 'valid') return [0, 0, 0, 0];
  if (padding === 'same') return samePads(spatial(layer, input.shape), kernel, strides, dilations);
  return fail(layer, `padding ${String(padding)}`);
}

/** ONNX's Softmax axis for TF.js's last axis of a value of this rank. */
function lastAxis(rank: number): number {
  return rank === 4 ? 1 : -1;
}

/** Appends the node for a TF.js activation name (also the `activation` of Conv2D and Dense). */
function activation(graph: OnnxGraph, layer: Layer, name: string, x: string, rank: number, output: string): string {
  switch (name) {
    case 'linear':
      return x;
    case 'relu':
      return graph.addNode('Relu', [x], output);
    case 'sigmoid':
      return graph.addNode('Sigmoid', [x], output);
    case 'tanh':
      return graph.addNode('Tanh', [x], output);
    case 'softmax':
      return graph.addNode('Softmax', [x], output, { axis: int(lastAxis(rank)) });
    default:
      return fail(layer, `activation ${name}`);
  }
}

/** The layer's own activation after its main node, which then gets an intermediate name. */
function withActivation(graph: OnnxGraph, layer: Layer, rank: number, main: (output: string) => string): string {
  const name = String(config(layer).activation ?? 'linear');
  if (name === 'linear') return main(layer.name);
  return activation(graph, layer, name, main(`${layer.name}/preactivation`), rank, layer.name);
}

/** HWIO (TF.js) → OIHW (ONNX) */
function oihw(kernel: Float32Array, [kh, kw, ci, co]: number[]): Float32Array {
  const out = new Float32Array(kernel.length);
  for (let h = 0; h < kh; h++)
    for (let w = 0; w < kw; w++)
      for (let i = 0; i < ci; i++)
        for (let o = 0; o < co; o++) out[((o * ci + i) * kh + h) * kw + w] = kernel[((h * kw + w) * ci + i) * co + o];
  return out;
}

function scalar(graph: OnnxGraph, name: string, value: number): string {
  return graph.addInitializer(name, [], Float32Array.of(value));
}

function int64s(graph: OnnxGraph, name: string, values: number[]): string {
  return graph.addInitializer(name, [values.length], BigInt64Array.from(values.map(BigInt)));
}

/** A value in TF.js's layout (4-D values are stored NCHW), for layers whose meaning depends on the memory order. */
function toTfLayout(graph: OnnxGraph, value: Value, name: string): string {
  return value.shape.length === 4 ? graph.addNode('Transpose', [value.name], name, { perm: ints(NCHW_TO_NHWC) }) : value.name;
}


const convert: Record<string, Converter> = {
  Conv2D(graph, layer, [x]) {
    requireRank(layer, x, 4);
    requireChannelsLast(layer);
    const cfg = config(layer);
    const kernel = requireWeight(layer, 'kernel');
    const [kh, kw] = kernel.shape;
    const strides = pair(cfg.strides);
    const dilations = pair(cfg.dilationRate ?? 1);
    const inputs = [x.name, graph.addInitializer(`${layer.name}/kernel`, [kernel.shape[3], kernel.shape[2], kh, kw], oihw(kernel.values, kernel.shape))];
    const bias = cfg.useBias ? requireWeight(layer, 'bias') : undefined;
    if (bias) inputs.push(graph.addInitializer(`${layer.name}/bias`, bias.shape, bias.values));
    const attributes: Record<string, OnnxAttribute> = {
      kernel_shape: ints([kh, kw]),
      strides: ints(strides),
      dilations: ints(dilations),
      pads: ints(paddingPads(layer, x, [kh, kw], strides, dilations)),
    };
    return withActivation(graph, layer, 4, (output) => graph.addNode('Conv', inputs, output, attributes));
  },

  BatchNormalization(graph, layer, [x]) {
    const cfg = config(layer);
    const rank = x.shape.length;
    if (!(rank === 2 || rank === 4) || !(cfg.axis === -1 || cfg.axis === rank - 1)) fail(layer, 'only the channel (last) axis is supported');
    const mean = requireWeight(layer, 'moving_mean');
    const channels = mean.values.length;
    const gamma = weight(layer, 'gamma')?.values ?? new Float32Array(channels).fill(1);
    const beta = weight(layer, 'beta')?.values ?? new Float32Array(channels);
    const inputs = [
      x.name,
      graph.addInitializer(`${layer.name}/gamma`, [channels], gamma),
      graph.addInitializer(`${layer.name}/beta`, [channels], beta),
      graph.addInitializer(`${layer.name}/moving_mean`, [channels], mean.values),
      graph.addInitializer(`${layer.name}/moving_variance`, [channels], requireWeight(layer, 'moving_variance').values),
    ];
    return graph.addNode('BatchNormalization', inputs, layer.name, { epsilon: float(cfg.epsilon as number) });
  },

  Activation(graph, layer, [x]) {
    const name = String(config(layer).activation);
    return name === 'linear' ? graph.addNode('Identity', [x.name], layer.name) : activation(graph, layer, name, x.name, x.shape.length, layer.name);
  },

  ReLU(graph, layer, [x]) {
    const maxValue = config(layer).maxValue;
    if (maxValue === null || maxValue === undefined) return graph.addNode('Relu', [x.name], layer.name);
    return graph.addNode('Clip', [x.name, scalar(graph, `${layer.name}/min`, 0), scalar(graph, `${layer.name}/max`, maxValue as number)], layer.name);
  },

  Add(graph, layer, inputs) {
    return graph.addNode(inputs.length === 2 ? 'Add' : 'Sum', inputs.map((v) => v.name), layer.name);
  },

  Multiply(graph, layer, inputs) {
    let product = inputs[0].name;
    inputs.slice(1).forEach((v, i) => {
      product = graph.addNode('Mul', [product, v.name], i === inputs.length - 2 ? layer.name : `${layer.name}/partial`);
    });
    return product;
  },

  ZeroPadding2D(graph, layer, [x]) {
    requireRank(layer, x, 4);
    requireChannelsLast(layer);
    const [[top, bottom], [left, right]] = config(layer).padding as [[number, number], [number, number]];
    // NCHW: [n, c, top, left] before, [n, c, bottom, right] after.
    return graph.addNode('Pad', [x.name, int64s(graph, `${layer.name}/pads`, [0, 0, top, left, 0, 0, bottom, right])], layer.name);
  },

  MaxPooling2D(graph, layer, [x]) {
    return pool(graph, layer, x, 'MaxPool', {});
  },

  AveragePooling2D(graph, layer, [x]) {
    // TF.js averages over the pixels inside the image only, never the padding.
    return pool(graph, layer, x, 'AveragePool', { count_include_pad: int(0) });
  },

  GlobalAveragePooling2D(graph, layer, [x]) {
    requireRank(layer, x, 4);
    requireChannelsLast(layer);
    const pooled = graph.addNode('GlobalAveragePool', [x.name], `${layer.name}/pooled`);
    return graph.addNode('Flatten', [pooled], layer.name, { axis: int(1) });
  },

  Dense(graph, layer, [x]) {
    requireRank(layer, x, 2);
    const kernel = requireWeight(layer, 'kernel');
    const inputs = [x.name, graph.addInitializer(`${layer.name}/kernel`, kernel.shape, kernel.values)];
    const bias = config(layer).useBias ? requireWeight(layer, 'bias') : undefined;
    if (bias) inputs.push(graph.addInitializer(`${layer.name}/bias`, bias.shape, bias.values));
    return withActivation(graph, layer, 2, (output) => graph.addNode('Gemm', inputs, output));
  },

  Reshape(graph, layer, [x], outputShape) {
    const target = config(layer).targetShape as number[];
    // 0 keeps the batch dimension; the rest is TF.js's target shape, applied in TF.js's layout.
    const inputs = [toTfLayout(graph, x, `${layer.name}/nhwc_input`), int64s(graph, `${layer.name}/shape`, [0, ...target])];
    if (outputShape.length !== 4) return graph.addNode('Reshape', inputs, layer.name);
    const reshaped = graph.addNode('Reshape', inputs, `${layer.name}/nhwc`);
    return graph.addNode('Transpose', [reshaped], layer.name, { perm: ints(NHWC_TO_NCHW) });
  },

  Rescaling(graph, layer, [x]) {
    const { scale, offset } = config(layer) as { scale: number; offset: number };
    const scaled = graph.addNode('Mul', [x.name, scalar(graph, `${layer.name}/scale`, scale)], `${layer.name}/scaled`);
    return graph.addNode('Add', [scaled, scalar(graph, `${layer.name}/offset`, offset)], layer.name);
  },
};

function pool(graph: OnnxGraph, layer: Layer, x: Value, op: string, extra: Record<string, OnnxAttribute>): string {
  requireRank(layer, x, 4);
  requireChannelsLast(layer);
  const cfg = config(layer);
  const kernel = pair(cfg.poolSize);
  const strides = pair(cfg.strides ?? cfg.poolSize);
  return graph.addNode(op, [x.name], layer.name, {
    kernel_shape: ints(kernel),
    strides: ints(strides),
    pads: ints(paddingPads(layer, x, kernel, strides)),
    ...extra,
  });
}

const SUPPORTED_LAYERS = ['InputLayer', ...Object.keys(convert)];

function refuseUnsupported(model: tf.LayersModel): void {
  const unsupported = model.layers.filter((layer) => !SUPPORTED_LAYERS.includes(layer.getClassName()));
  if (unsupported.length === 0) return;
  const listed = unsupported.map((layer) => `${layer.name} (${layer.getClassName()})`).join(', ');
  throw new UserError(`cannot export to ONNX: unsupported layer(s) ${listed}; supported: ${SUPPORTED_LAYERS.join(', ')}`, 'unsupported_layer');
}

/**
 * The graph of a one-input, one-output model: input `inputName` [batch, …] exactly as the TF.js
 * model takes it, output `outputName` as the TF.js model gives it. Weights are copied, so the
 * model may be disposed afterwards.
 */
export function layersModelToOnnxGraph(model: tf.LayersModel, inputName: string, outputName: string): OnnxGraph {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new UserError(`cannot export to ONNX: the model has ${model.inputs.length} inputs and ${model.outputs.length} outputs, expected one of each`, 'unsupported_layer');
  }
  refuseUnsupported(model);
  const graph = new OnnxGraph(inputName, outputName);
  const values = new Map<number, Value>();
  for (const layer of model.layers) {
    if (layer.inboundNodes.length !== 1) fail(layer, 'it is used more than once (shared layers are not supported)');
    const [node] = layer.inboundNodes;
    const output = node.outputTensors[0];
    const shape = output.shape as Shape;
    let name: string;
    if (layer.getClassName() === 'InputLayer') {
      if (output.dtype !== 'float32') fail(layer, `input type ${output.dtype} (only float32)`);
      const input = graph.addInput(shape.map((d) => d ?? -1));
      name = shape.length === 4 ? graph.addNode('Transpose', [input], `${input}/nchw`, { perm: ints(NHWC_TO_NCHW) }) : input;
    } else {
      const inputs = node.inputTensors.map((tensor) => values.get(tensor.id) ?? fail(layer, `its input ${tensor.name} comes from outside the model`));
      name = convert[layer.getClassName()](graph, layer, inputs, shape);
    }
    values.set(output.id, { name, shape });
  }
  const result = values.get(model.outputs[0].id)!;
  const last = result.shape.length === 4 ? graph.addNode('Transpose', [result.name], `${result.name}/nhwc`, { perm: ints(NCHW_TO_NHWC) }) : result.name;
  graph.markOutput(last, result.shape.map((d) => d ?? -1));
  return graph;
}
