/**
 * An ONNX graph while it is being built: nodes in execution order, weights as typed arrays, and
 * unique value names. Kept apart from the protobuf encoding so conversion and the folding passes
 * work on plain objects.
 */

export type OnnxAttribute = { kind: 'int'; value: number } | { kind: 'ints'; value: number[] } | { kind: 'float'; value: number };

export const int = (value: number): OnnxAttribute => ({ kind: 'int', value });
export const ints = (value: number[]): OnnxAttribute => ({ kind: 'ints', value });
export const float = (value: number): OnnxAttribute => ({ kind: 'float', value });

export interface OnnxNode {
  name: string;
  op: string;
  inputs: string[];
  outputs: string[];
  attributes: Record<string, OnnxAttribute>;
}

export interface OnnxInitializer {
  name: string;
  dims: number[];
  data: Float32Array | BigInt64Array;
}

/** A graph input or output: float32, the first dimension the batch (any size). */
export interface OnnxValueInfo {
  name: string;
  shape: number[];
}

export class OnnxGraph {
  readonly nodes: OnnxNode[] = [];
  readonly initializers = new Map<string, OnnxInitializer>();
  readonly inputs: OnnxValueInfo[] = [];
  readonly outputs: OnnxValueInfo[] = [];
  private readonly used: Set<string>;

  /** The graph's input and output names are set aside, so no inner value takes them. */
  constructor(readonly inputName: string, readonly outputName: string) {
    this.used = new Set([inputName, outputName]);
  }

  /** `base` itself the first time, then `base_1`, `base_2`, … */
  uniqueName(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }

  addInput(shape: number[]): string {
    this.inputs.push({ name: this.inputName, shape });
    return this.inputName;
  }

  addInitializer(base: string, dims: number[], data: Float32Array | BigInt64Array): string {
    const name = this.uniqueName(base);
    this.initializers.set(name, { name, dims, data });
    return name;
  }

  /** Adds a one-output node and returns the name of its output. */
  addNode(op: string, inputs: string[], output: string, attributes: Record<string, OnnxAttribute> = {}): string {
    const name = this.uniqueName(output);
    this.nodes.push({ name, op, inputs, outputs: [name], attributes });
    return name;
  }

  /** Renames the value `from` (an output of some node) to the graph's output. */
  markOutput(from: string, shape: number[]): void {
    const rename = (value: string) => (value === from ? this.outputName : value);
    for (const node of this.nodes) {
      node.outputs = node.outputs.map(rename);
      node.inputs = node.inputs.map(rename);
    }
    this.outputs.push({ name: this.outputName, shape });
  }

  /** Nodes that read `value`. */
  consumers(value: string): OnnxNode[] {
    return this.nodes.filter((node) => node.inputs.includes(value));
  }

  producer(value: string): OnnxNode | undefined {
    return this.nodes.find((node) => node.outputs.includes(value));
  }

  isGraphOutput(value: string): boolean {
    return this.outputs.some((output) => output.name === value);
  }

  removeNode(node: OnnxNode): void {
    this.nodes.splice(this.nodes.indexOf(node), 1);
  }

  /** Drops weights no node reads any more (after folding). */
  pruneInitializers(): void {
    const read = new Set(this.nodes.flatMap((node) => node.inputs));
    for (const name of [...this.initializers.keys()]) if (!read.has(name)) this.initializers.delete(name);
  }
}
