/**
 * Fills our network's weights from a file's tensors through its layout's grammar. Every encoder
 * weight must come from the file; each projection-head layer comes whole from the file or starts
 * from random weights. Keys the grammar does not produce and the layout cannot explain, keys that
 * are missing, and shapes that do not fit are all collected into one error that lists them.
 */
import type * as tf from '@tensorflow/tfjs';
import { UserError } from '../../contract/errors.ts';
import { stableWeightName } from '../simclr/model.ts';
import type { KeyView, NetworkShape, Recognized, WeightSource } from './network_layouts.ts';
import { shapeText, type SourceTensor } from './source_tensors.ts';

/** The input normalisation is built from the configuration, never read. */
const REBUILT_LAYERS = new Set(['input_norm']);
const LISTED = 12;

export interface MappingReport {
  /** File keys that became weights. */
  mapped: number;
  /** Keys left out on purpose, counted by reason. */
  ignored: Record<string, number>;
  /** Keys outside the network (an optimizer's state, a second model), left alone. */
  outside: number;
  /** Head layers taken from the file; the others start from random weights. */
  headLayers: string[];
}

interface Planned {
  weight: tf.LayerVariable;
  source: WeightSource;
  key: string;
}

export function keyView(tensors: Map<string, SourceTensor>, recognized: Recognized): KeyView {
  const full = (key: string, inHead = false) => (inHead ? recognized.headPrefix : recognized.prefix) + key;
  return {
    has: (key, inHead) => tensors.has(full(key, inHead)),
    shape: (key, inHead) => tensors.get(full(key, inHead))!.shape,
  };
}

function list(items: string[]): string {
  return items.slice(0, LISTED).join(', ') + (items.length > LISTED ? `, and ${items.length - LISTED} more` : '');
}

/** Each of our weights and the file key it comes from; head layers the file lacks are left out. */
function plan(model: tf.LayersModel, recognized: Recognized, shape: NetworkShape, tensors: Map<string, SourceTensor>, missing: string[]): Planned[] {
  const planned: Planned[] = [];
  for (const layer of model.layers) {
    if (layer.weights.length === 0 || REBUILT_LAYERS.has(layer.name)) continue;
    const sources = layer.weights.map((weight) => {
      const source = recognized.layout.source(layer.name, layer.getClassName(), stableWeightName(weight).split('/').pop()!, shape);
      return source && { weight, source, key: (source.inHead ? recognized.headPrefix : recognized.prefix) + source.key };
    });
    const present = sources.filter((s): s is Planned => s !== null && tensors.has(s.key));
    const inHead = sources.some((s) => s?.source.inHead) || layer.name.startsWith('head_');
    if (inHead && present.length === 0) continue;
    sources.forEach((s, i) => {
      if (!s) missing.push(`${stableWeightName(layer.weights[i])} (no key in ${recognized.layout.title})`);
      else if (!tensors.has(s.key)) missing.push(s.key);
    });
    planned.push(...present);
  }
  return planned;
}

function inScope(key: string, recognized: Recognized): boolean {
  const head = recognized.layout.headBesideEncoder;
  return key.startsWith(recognized.prefix) || (head !== undefined && key.startsWith(recognized.headPrefix + head));
}

/** What the file holds that the grammar did not use: ignorable by the layout's rules, outside the network, or unknown. */
function leftovers(tensors: Map<string, SourceTensor>, used: Set<string>, recognized: Recognized, report: MappingReport): string[] {
  const unknown: string[] = [];
  for (const key of tensors.keys()) {
    if (used.has(key)) continue;
    if (!inScope(key, recognized)) {
      report.outside++;
      continue;
    }
    const relative = key.startsWith(recognized.prefix) ? key.slice(recognized.prefix.length) : key.slice(recognized.headPrefix.length);
    const reason = recognized.layout.ignorable(relative);
    if (reason) report.ignored[reason] = (report.ignored[reason] ?? 0) + 1;
    else unknown.push(key);
  }
  return unknown;
}

/**
 * Our weights' values (by stable name) from the file, converted to our layout; throws one
 * UserError listing every missing, unknown and misshapen key. `what` names the network in messages.
 */
export function mapWeights(
  model: tf.LayersModel,
  recognized: Recognized,
  shape: NetworkShape,
  tensors: Map<string, SourceTensor>,
  what: string,
): { values: Map<string, Float32Array>; report: MappingReport } {
  const missing: string[] = [];
  const planned = plan(model, recognized, shape, tensors, missing);
  const report: MappingReport = { mapped: 0, ignored: {}, outside: 0, headLayers: [] };
  const used = new Set(planned.map((p) => p.key));
  const unknown = leftovers(tensors, used, recognized, report);
  const misshapen = planned
    .filter((p) => shapeText(tensors.get(p.key)!.shape) !== shapeText(p.source.transform.sourceShape(p.weight.shape as number[])))
    .map((p) => `${p.key} is ${shapeText(tensors.get(p.key)!.shape)}, needs ${shapeText(p.source.transform.sourceShape(p.weight.shape as number[]))}`);
  if (missing.length || unknown.length || misshapen.length) {
    const parts = [
      missing.length ? `${missing.length} missing (${list(missing)})` : '',
      unknown.length ? `${unknown.length} unknown (${list(unknown)})` : '',
      misshapen.length ? `${misshapen.length} with the wrong shape (${list(misshapen)})` : '',
    ].filter(Boolean);
    throw new UserError(`the file's keys do not fit ${what} in the layout of ${recognized.layout.title}: ${parts.join('; ')}`, 'weights_keys', { missing, unknown, misshapen });
  }
  const values = new Map<string, Float32Array>();
  for (const { weight, source, key } of planned) {
    const tensor = tensors.get(key)!;
    values.set(stableWeightName(weight), source.transform.apply(tensor.read(), tensor.shape));
  }
  report.mapped = used.size;
  report.headLayers = [...new Set(planned.filter((p) => p.weight.originalName.startsWith('head_')).map((p) => p.weight.originalName.split('/')[0]))];
  return { values, report };
}
