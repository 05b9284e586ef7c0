/** Reads back an exported model.onnx (with the same generated protobuf module) as plain values tests can compare. */
import onnxProto from 'onnx-proto';
import type { onnx as Proto } from 'onnx-proto';

const { onnx } = onnxProto;

export interface OnnxSummary {
  opset: number;
  /** Per dimension: its size, or its symbolic name ('batch'). */
  inputDims: (number | string)[];
  outputDims: (number | string)[];
  nodes: { name: string; op: string; pads?: number[] }[];
  metadata: Record<string, string>;
}

function dims(value: Proto.IValueInfoProto): (number | string)[] {
  return (value.type?.tensorType?.shape?.dim ?? []).map((d) => d.dimParam || Number(d.dimValue));
}

export function readOnnx(bytes: Uint8Array): OnnxSummary {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph!;
  return {
    opset: Number(model.opsetImport[0].version),
    inputDims: dims(graph.input![0]),
    outputDims: dims(graph.output![0]),
    nodes: (graph.node ?? []).map((n) => {
      const pads = n.attribute?.find((a) => a.name === 'pads')?.ints?.map(Number);
      return { name: n.name!, op: n.opType!, ...(pads ? { pads } : {}) };
    }),
    metadata: Object.fromEntries(model.metadataProps.map((p) => [p.key!, p.value!])),
  };
}
