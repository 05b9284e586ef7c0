/**
 * Makes an exported graph answer as the studio does (classifyImages in engine/simclr/model.ts):
 * each image and its mirror image go through the network as one batch of 2N, and the two halves'
 * probabilities are averaged, so model.onnx gives the probabilities the studio shows.
 */
import { int, ints, type OnnxGraph } from './onnx_graph.ts';

/** Slice's `ends` for "through the first element" when stepping backwards. */
const BEFORE_FIRST = -(2n ** 63n);
/** The width axis of the NHWC input. */
const WIDTH_AXIS = 2n;

function int64(graph: OnnxGraph, name: string, values: bigint[]): string {
  return graph.addInitializer(name, [values.length], BigInt64Array.from(values));
}

/** Feeds the network [images; mirrored images] in place of the input. */
function mirrorInput(graph: OnnxGraph): void {
  const input = graph.inputName;
  const readers = graph.consumers(input);
  const slice = [int64(graph, 'mirror/starts', [-1n]), int64(graph, 'mirror/ends', [BEFORE_FIRST]), int64(graph, 'mirror/axes', [WIDTH_AXIS]), int64(graph, 'mirror/steps', [-1n])];
  const mirrored = graph.addNode('Slice', [input, ...slice], 'mirror/images');
  const both = graph.addNode('Concat', [input, mirrored], 'mirror/both', { axis: int(0) });
  for (const node of readers) node.inputs = node.inputs.map((value) => (value === input ? both : value));
}

/** Averages the two halves of the network's [2N, classes] output into the graph's [N, classes] output. */
function averageHalves(graph: OnnxGraph): void {
  const output = graph.outputName;
  const classes = graph.outputs[0].shape[1];
  const last = graph.producer(output)!;
  const views = graph.uniqueName(`${output}/views`);
  last.outputs = last.outputs.map((value) => (value === output ? views : value));
  const pairs = graph.addNode('Reshape', [views, int64(graph, 'mirror/pairs_shape', [2n, -1n, BigInt(classes)])], 'mirror/pairs');
  graph.nodes.push({ name: graph.uniqueName('mirror/mean'), op: 'ReduceMean', inputs: [pairs], outputs: [output], attributes: { axes: ints([0]), keepdims: int(0) } });
}

export function averageOverMirror(graph: OnnxGraph): void {
  if (graph.outputs.length !== 1 || graph.outputs[0].shape.length !== 2) throw new RangeError('mirror averaging needs one [batch, classes] output');
  mirrorInput(graph);
  averageHalves(graph);
}
