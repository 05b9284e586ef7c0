/**
 * Our own TF.js export (`contrast export`): model.json (topology + weights manifest) and its
 * weight files, whose concatenated bytes hold the listed weights one after another. The folder's
 * labels.json records the network's configuration, which says what the weights alone cannot
 * (the padding and normalisation an imported network was built with).
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../contract/errors.ts';
import type { ModelConfig } from '../simclr/resnet.ts';
import { ByteReader } from './byte_reader.ts';
import { DTYPE_BYTES, decodeElements, elementCount, type SourceDtype, type SourceTensor } from './source_tensors.ts';

interface WeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: unknown;
}

interface TopologyLayer {
  name?: string;
  config?: { batch_input_shape?: (number | null)[] };
}

interface ModelJson {
  modelTopology?: { model_config?: { config?: { layers?: TopologyLayer[] } }; config?: { layers?: TopologyLayer[] } };
  weightsManifest?: { paths: string[]; weights: WeightSpec[] }[];
}

/** Byte ranges over several files, as if they were one. */
class Shards {
  private readonly readers: ByteReader[];

  constructor(files: string[]) {
    this.readers = files.map((file) => ByteReader.open(file));
  }

  get size(): number {
    return this.readers.reduce((sum, r) => sum + r.size, 0);
  }

  read(offset: number, length: number): Buffer {
    const parts: Buffer[] = [];
    let start = offset;
    let left = length;
    for (const reader of this.readers) {
      if (left === 0) break;
      if (start >= reader.size) {
        start -= reader.size;
        continue;
      }
      const n = Math.min(left, reader.size - start);
      parts.push(reader.read(start, n));
      left -= n;
      start = 0;
    }
    if (left > 0) throw new UserError('the TF.js weight files are shorter than model.json says', 'weights_damaged');
    return Buffer.concat(parts);
  }

  close(): void {
    for (const reader of this.readers) reader.close();
  }
}

function readJson<T>(file: string): T {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch (error) {
    throw new UserError(`cannot read ${file}: ${(error as Error).message}`, 'weights_unreadable', { file });
  }
}

function topologyLayers(model: ModelJson): TopologyLayer[] {
  const topology = model.modelTopology;
  return topology?.model_config?.config?.layers ?? topology?.config?.layers ?? [];
}

/** The side of the square input the model was saved with ([null, size, size, 3]). */
function inputSize(layers: TopologyLayer[]): number | null {
  const shape = layers.find((layer) => layer.config?.batch_input_shape)?.config?.batch_input_shape;
  return typeof shape?.[1] === 'number' ? shape[1] : null;
}

export interface TfjsModelContents {
  tensors: Map<string, SourceTensor>;
  /** From labels.json beside model.json, when there is one. */
  architecture: ModelConfig | null;
  /** The layers of the topology, e.g. to tell PyTorch padding (`stem_pool_pad`) from ours. */
  layers: string[];
  inputSize: number | null;
  /** model.json and its weight files, in order. */
  files: string[];
  close(): void;
}

export function readTfjsModel(modelJsonFile: string): TfjsModelContents {
  const model = readJson<ModelJson>(modelJsonFile);
  if (!Array.isArray(model.weightsManifest)) throw new UserError(`${modelJsonFile} is not a TF.js layers model (no weightsManifest)`, 'weights_unsupported', { file: modelJsonFile });
  const dir = path.dirname(modelJsonFile);
  const tensors = new Map<string, SourceTensor>();
  const opened: Shards[] = [];
  const close = () => opened.forEach((shards) => shards.close());
  try {
    for (const group of model.weightsManifest) opened.push(readGroup(modelJsonFile, group, tensors));
  } catch (error) {
    close();
    throw error;
  }
  const labelsFile = path.join(dir, 'labels.json');
  const architecture = fs.existsSync(labelsFile) ? (readJson<{ architecture?: ModelConfig }>(labelsFile).architecture ?? null) : null;
  const layers = topologyLayers(model);
  const files = [modelJsonFile, ...model.weightsManifest.flatMap((group) => group.paths.map((p) => path.resolve(dir, p)))];
  return { tensors, architecture, layers: layers.map((layer) => layer.name ?? ''), inputSize: inputSize(layers), files, close };
}

/** One manifest group: its weights lie one after another in its files, taken as one. */
function readGroup(modelJsonFile: string, group: { paths: string[]; weights: WeightSpec[] }, tensors: Map<string, SourceTensor>): Shards {
  const shards = new Shards(group.paths.map((p) => path.resolve(path.dirname(modelJsonFile), p)));
  try {
    let offset = 0;
    for (const spec of group.weights) {
      if (spec.quantization) throw new UserError(`${modelJsonFile}: weight ${spec.name} is quantized; only float32 weights are read`, 'weights_unsupported', { file: modelJsonFile });
      const dtype = (spec.dtype === 'int32' ? 'int32' : spec.dtype === 'float32' ? 'float32' : null) as SourceDtype | null;
      if (!dtype) throw new UserError(`${modelJsonFile}: weight ${spec.name} has type ${spec.dtype}`, 'weights_unsupported', { file: modelJsonFile });
      const count = elementCount(spec.shape);
      const at = offset;
      tensors.set(spec.name, { shape: spec.shape, dtype, read: () => decodeElements(shards.read(at, count * DTYPE_BYTES[dtype]), dtype, count) });
      offset += count * DTYPE_BYTES[dtype];
    }
    if (offset > shards.size) throw new UserError(`${modelJsonFile}: the weight files hold ${shards.size} bytes, the manifest lists ${offset}`, 'weights_damaged', { file: modelJsonFile });
    return shards;
  } catch (error) {
    shards.close();
    throw error;
  }
}
