/**
 * A TF.js classifier as an ONNX model (opset 13), encoded with the protobufjs module generated
 * from the official onnx.proto (the onnx-proto package). The input is the NHWC float32 batch the
 * TF.js model takes; the metadata says what it is and how to prepare images for it.
 */
import * as tf from '@tensorflow/tfjs';
import onnxProto from 'onnx-proto';
import type { onnx as Proto } from 'onnx-proto';
import { foldBatchNorms, foldPads } from './onnx_fold.ts';
import type { OnnxAttribute, OnnxGraph, OnnxInitializer, OnnxNode, OnnxValueInfo } from './onnx_graph.ts';
import { layersModelToOnnxGraph } from './onnx_layers.ts';
import { averageOverMirror } from './onnx_mirror.ts';
import { ONNX_INPUT, ONNX_OUTPUT } from './preprocessing.ts';

const { onnx } = onnxProto;

/** Opset 13 has every operator used here with today's semantics (Softmax over one axis, Pad's pads as an input). */
export const ONNX_OPSET = 13;
/** The IR version that introduced opset 13, so older runtimes read the file too. */
const IR_VERSION = 7;
const PRODUCER = 'Contrast Studio';

function attribute(name: string, value: OnnxAttribute): Proto.IAttributeProto {
  const type = onnx.AttributeProto.AttributeType;
  if (value.kind === 'int') return { name, type: type.INT, i: value.value };
  if (value.kind === 'ints') return { name, type: type.INTS, ints: value.value };
  return { name, type: type.FLOAT, f: value.value };
}

function node(n: OnnxNode): Proto.INodeProto {
  return {
    name: n.name,
    opType: n.op,
    input: n.inputs,
    output: n.outputs,
    attribute: Object.entries(n.attributes).map(([name, value]) => attribute(name, value)),
  };
}

/** Weights as raw little-endian bytes (ONNX's byte order, and that of every platform Node runs on here). */
function tensor(t: OnnxInitializer): Proto.ITensorProto {
  const type = onnx.TensorProto.DataType;
  return {
    name: t.name,
    dims: t.dims,
    dataType: t.data instanceof Float32Array ? type.FLOAT : type.INT64,
    rawData: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
  };
}

/** A float32 tensor whose unknown (-1) dimensions are the batch. */
function valueInfo(v: OnnxValueInfo): Proto.IValueInfoProto {
  const dim = v.shape.map((d) => (d < 0 ? { dimParam: 'batch' } : { dimValue: d }));
  return { name: v.name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim } } } };
}

function encode(graph: OnnxGraph, name: string, metadata: Record<string, string>, docString: string): Uint8Array {
  const model: Proto.IModelProto = {
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: PRODUCER,
    docString,
    graph: {
      name,
      node: graph.nodes.map(node),
      initializer: [...graph.initializers.values()].map(tensor),
      input: graph.inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
    },
    metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
  };
  return onnx.ModelProto.encode(model).finish();
}

/**
 * The serialized ONNX model of `model` (one NHWC float32 input, one [batch, classes] output of
 * probabilities), batch norms folded into the layers before them and zero paddings into the
 * convolutions after them, averaging each image with its mirror image as the studio does.
 */
export function onnxModelBytes(model: tf.LayersModel, metadata: Record<string, string>, docString: string): Uint8Array {
  const graph = layersModelToOnnxGraph(model, ONNX_INPUT, ONNX_OUTPUT);
  foldBatchNorms(graph);
  foldPads(graph);
  averageOverMirror(graph);
  return encode(graph, model.name, metadata, docString);
}
