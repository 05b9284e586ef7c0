/**
 * The ResNet key layouts an import understands, each a small grammar from our layer names
 * (stem_conv, block2_1_conv1, block2_1_shortcut_bn, head_dense1, ...) to the names the file uses:
 *
 * - torchvision: conv1 (7x7, or 3x3 for the small-image stem), bn1, layerG.B.convK / bnK,
 *   layerG.B.downsample.0 / .1, and, as our exported trainer writes them, the projection head
 *   head.layers.* and fc as a classifier's logits (an ImageNet fc is dropped);
 * - SimCLRv2 as converted to PyTorch (Separius/SimCLRv2-Pytorch): net.0.* (stem), net.G.blocks.B.net.*
 *   (the block's sequence of convs, BN-ReLUs and, with SK, the selective-kernel module),
 *   net.G.blocks.B.projection.*, fc (dropped), and the projection head head.layers.*;
 * - ours: the layer names themselves (`stem_conv/kernel`), from our TF.js export.
 *
 * Each layout also reads the network's shape (depth, width, SK, stem) from its keys' shapes.
 */
import { UserError } from '../../contract/errors.ts';
import type { ModelConfig } from '../simclr/resnet.ts';
import type { SourceTensor } from './source_tensors.ts';
import { convKernel, gateDifference, half, identity, linearKernel, pointwiseAsDense, type Transform } from './tensor_transforms.ts';

export type LayoutName = 'torchvision' | 'simclrv2' | 'contrast';

/** The network's shape as the keys show it; the image size is the import's choice. */
export type NetworkShape = Pick<ModelConfig, 'depth' | 'width' | 'sk' | 'stem' | 'projectionDim'>;

/** Where one of our weights lives in the file. */
export interface WeightSource {
  key: string;
  transform: Transform;
  /** In the projection head, which a file may lack (its layers then start from random weights). */
  inHead: boolean;
}

/** Keys under the network's prefix (or, with inHead, the head's), as a layout reads them. */
export interface KeyView {
  has(key: string, inHead?: boolean): boolean;
  shape(key: string, inHead?: boolean): number[];
}

export interface Layout {
  name: LayoutName;
  /** In messages: "a torchvision ResNet". */
  title: string;
  /** Keys that together mark this layout under some prefix. */
  markers: string[];
  /** The head is saved beside the encoder ({'resnet': …, 'head': …}) rather than inside it, under this name. */
  headBesideEncoder?: string;
  shapeOf(keys: KeyView): NetworkShape;
  /** The file key of weight `param` of our layer `layer` (its class decides the conversion); null: the layout has none. */
  source(layer: string, layerClass: string, param: string, shape: NetworkShape): WeightSource | null;
  /** Why a key the encoder does not use may be left out, or null when it is unknown. */
  ignorable(key: string): string | null;
}

const HEAD = 'head.';
const TORCH_BN: Record<string, string> = { gamma: 'weight', beta: 'bias', moving_mean: 'running_mean', moving_variance: 'running_var' };
const BN_COUNTER = 'batch-norm step counters';

/** A PyTorch module's parameter: `module.weight` for kernels, BN's four vectors by their torch names. */
function torchParam(module: string, layerClass: string, param: string, kernel: Transform, inHead = false): WeightSource | null {
  if (layerClass === 'BatchNormalization') return TORCH_BN[param] ? { key: `${module}.${TORCH_BN[param]}`, transform: identity, inHead } : null;
  return param === 'kernel' ? { key: `${module}.weight`, transform: kernel, inHead } : null;
}

function kernelFor(layerClass: string): Transform {
  return layerClass === 'Dense' ? linearKernel : convKernel;
}

const SUPPORTED_DEPTHS: Record<string, ModelConfig['depth']> = { '2,2,2,2 basic': 18, '3,4,6,3 basic': 34, '3,4,6,3 bottleneck': 50 };
const KNOWN_DEEPER: Record<string, string> = { '3,4,23,3 bottleneck': 'ResNet-101', '3,8,36,3 bottleneck': 'ResNet-152', '3,24,36,3 bottleneck': 'ResNet-200' };

/** The depth whose block counts and block kind these are, or a refusal naming what was found. */
export function depthOf(blocks: number[], bottleneck: boolean): ModelConfig['depth'] {
  const key = `${blocks.join(',')} ${bottleneck ? 'bottleneck' : 'basic'}`;
  const depth = SUPPORTED_DEPTHS[key];
  if (depth) return depth;
  const what = KNOWN_DEEPER[key] ?? `a ResNet with ${blocks.join('/')} ${bottleneck ? 'bottleneck' : 'basic'} blocks`;
  throw new UserError(`the file holds ${what}; Contrast Studio builds ResNet-18, ResNet-34 and ResNet-50`, 'weights_unsupported_network', { found: what });
}

/** Blocks in each of the four groups: how many B have `keyOf(g, B)`. */
function blockCounts(keys: KeyView, keyOf: (group: number, block: number) => string): number[] {
  return [1, 2, 3, 4].map((g) => {
    let b = 0;
    while (keys.has(keyOf(g, b))) b++;
    return b;
  });
}

function widthFrom(stemChannels: number): number {
  return stemChannels / 64;
}

/**
 * head_dense{i} / head_bn{i} → head.layers.{3(i − 1)} / .{3(i − 1) + 1}: a Sequential of
 * Linear, BatchNorm1d, ReLU per layer, as the SimCLRv2 conversion and our exported trainer save it.
 */
function headModule(layer: string): { module: string; bn: boolean } | null {
  const head = /^head_(dense|bn)(\d)$/.exec(layer);
  return head && { module: `layers.${3 * (Number(head[2]) - 1) + (head[1] === 'bn' ? 1 : 0)}`, bn: head[1] === 'bn' };
}

const torchvision: Layout = {
  name: 'torchvision',
  title: 'a torchvision ResNet',
  markers: ['conv1.weight', 'layer1.0.conv1.weight'],
  shapeOf(keys) {
    const blocks = blockCounts(keys, (g, b) => `layer${g}.${b}.conv1.weight`);
    const stem = keys.shape('conv1.weight');
    const head = `${HEAD}layers.6.weight`;
    return {
      depth: depthOf(blocks, keys.has('layer1.0.conv3.weight')),
      width: widthFrom(stem[0]),
      sk: false,
      // A 3x3 conv1 is the small-image stem (stride 1, no max-pool), which our exported trainer uses up to 64 px.
      stem: stem[2] === 3 ? 'small' : 'standard',
      projectionDim: keys.has(head, true) ? keys.shape(head, true)[0] : undefined,
    };
  },
  source(layer, layerClass, param) {
    const kernel = kernelFor(layerClass);
    if (layer === 'stem_conv') return torchParam('conv1', layerClass, param, kernel);
    if (layer === 'stem_bn') return torchParam('bn1', layerClass, param, kernel);
    const block = /^block(\d)_(\d+)_(conv|bn)(\d)$/.exec(layer);
    if (block) return torchParam(`layer${block[1]}.${Number(block[2]) - 1}.${block[3]}${block[4]}`, layerClass, param, kernel);
    const shortcut = /^block(\d)_(\d+)_shortcut_(conv|bn)$/.exec(layer);
    if (shortcut) return torchParam(`layer${shortcut[1]}.${Number(shortcut[2]) - 1}.downsample.${shortcut[3] === 'conv' ? 0 : 1}`, layerClass, param, kernel);
    const head = headModule(layer);
    if (head) return torchParam(`${HEAD}${head.module}`, layerClass, param, linearKernel, true);
    // The classifier's logits are torchvision's fc; only a classifier being imported has this layer.
    if (layer === 'logits') return param === 'bias' ? { key: 'fc.bias', transform: identity, inHead: false } : torchParam('fc', layerClass, param, linearKernel);
    return null;
  },
  ignorable(key) {
    if (key.endsWith('.num_batches_tracked')) return BN_COUNTER;
    return key === 'fc.weight' || key === 'fc.bias' ? 'the ImageNet classifier (fine-tuning trains one for your classes)' : null;
  },
};

/** Our layer in a SimCLRv2 block → its place in the block's `net` sequence, with and without SK. */
function simclrBlockModule(base: string, part: string, sk: boolean, layerClass: string, param: string): WeightSource | null {
  const kernel = kernelFor(layerClass);
  const plain: Record<string, string> = sk
    ? { conv1: 'net.0', bn1: 'net.1.0', conv3: 'net.3', bn3: 'net.4.0', shortcut_conv: 'projection.shortcut.2', shortcut_bn: 'projection.bn.0', sk_fc_bn: 'net.2.mixing_conv.1.0' }
    : { conv1: 'net.0', bn1: 'net.1.0', conv2: 'net.2', bn2: 'net.3.0', conv3: 'net.4', bn3: 'net.5.0', shortcut_conv: 'projection.shortcut', shortcut_bn: 'projection.bn.0' };
  if (plain[part]) return torchParam(`${base}.${plain[part]}`, layerClass, param, kernel);
  if (!sk) return null;
  const branch = /^sk_(conv|bn)_(a|b)$/.exec(part);
  if (branch) {
    const module = branch[1] === 'conv' ? `${base}.net.2.main_conv.0` : `${base}.net.2.main_conv.1.0`;
    const whole = torchParam(module, layerClass, param, kernel);
    return whole && { ...whole, transform: half(branch[2] === 'a' ? 0 : 1, whole.transform) };
  }
  if (part === 'sk_fc') return torchParam(`${base}.net.2.mixing_conv.0`, layerClass, param, pointwiseAsDense);
  if (part === 'sk_gate') return torchParam(`${base}.net.2.mixing_conv.2`, layerClass, param, gateDifference);
  return null;
}

const simclrv2: Layout = {
  name: 'simclrv2',
  title: 'a SimCLRv2 ResNet (PyTorch conversion)',
  markers: ['net.0.0.weight', 'net.1.blocks.0.net.0.weight'],
  headBesideEncoder: HEAD,
  shapeOf(keys) {
    const sk = keys.has('net.1.blocks.0.net.2.main_conv.0.weight');
    const blocks = blockCounts(keys, (g, b) => `net.${g}.blocks.${b}.net.0.weight`);
    const bottleneck = keys.has(`net.1.blocks.0.net.${sk ? 3 : 4}.weight`);
    const stemOut = keys.shape(sk ? 'net.0.4.weight' : 'net.0.0.weight')[0];
    const head = `${HEAD}layers.6.weight`;
    return { depth: depthOf(blocks, bottleneck), width: widthFrom(stemOut), sk, stem: 'standard', projectionDim: keys.has(head, true) ? keys.shape(head, true)[0] : undefined };
  },
  source(layer, layerClass, param, shape) {
    const kernel = kernelFor(layerClass);
    if (layer === 'stem_conv' || layer === 'stem_bn') return torchParam(layer === 'stem_conv' ? 'net.0.0' : 'net.0.1.0', layerClass, param, kernel);
    const deepStem = /^stem_(conv|bn)(\d)$/.exec(layer);
    if (deepStem) {
      const k = Number(deepStem[2]);
      return torchParam(deepStem[1] === 'conv' ? `net.0.${2 * (k - 1)}` : `net.0.${2 * k - 1}.0`, layerClass, param, kernel);
    }
    const block = /^block(\d)_(\d+)_(.+)$/.exec(layer);
    if (block) return simclrBlockModule(`net.${block[1]}.blocks.${Number(block[2]) - 1}`, block[3], shape.sk, layerClass, param);
    const head = headModule(layer);
    if (head) return torchParam(`${HEAD}${head.module}`, layerClass, param, linearKernel, true);
    return null;
  },
  ignorable(key) {
    if (key.endsWith('.num_batches_tracked')) return BN_COUNTER;
    return key === 'fc.weight' || key === 'fc.bias' ? 'the supervised ImageNet head (fine-tuning trains one for your classes)' : null;
  },
};

const contrast: Layout = {
  name: 'contrast',
  title: 'a Contrast Studio network',
  markers: ['block1_1_conv1/kernel'],
  shapeOf(keys) {
    const deepStem = keys.has('stem_conv1/kernel');
    const stem = keys.shape(deepStem ? 'stem_conv3/kernel' : 'stem_conv/kernel');
    const blocks = blockCounts(keys, (g, b) => `block${g}_${b + 1}_conv1/kernel`);
    const head = 'head_dense3/kernel';
    return {
      depth: depthOf(blocks, keys.has('block1_1_conv3/kernel')),
      width: widthFrom(stem[3]),
      sk: keys.has('block1_1_sk_conv_a/kernel'),
      stem: deepStem || stem[0] === 7 ? 'standard' : 'small',
      projectionDim: keys.has(head) ? keys.shape(head)[1] : undefined,
    };
  },
  source(layer, _layerClass, param) {
    return { key: `${layer}/${param}`, transform: identity, inHead: layer.startsWith('head_') };
  },
  ignorable(key) {
    if (key.startsWith('logits/')) return 'the exported classifier (fine-tuning trains one for your classes)';
    return key.startsWith('input_norm/') ? 'the input normalisation, rebuilt from the network\'s configuration' : null;
  },
};

export const LAYOUTS: Layout[] = [torchvision, simclrv2, contrast];

export interface Recognized {
  layout: Layout;
  /** Where the encoder's keys start ("", "resnet.", "module."). */
  prefix: string;
  /** Where the head's keys start: the same, or beside the encoder's for the SimCLRv2 conversion. */
  headPrefix: string;
}

/** "resnet." → "" : the SimCLRv2 conversion saves {'resnet': ..., 'head': ...}, so the head is a sibling. */
function parentOf(prefix: string): string {
  const trimmed = prefix.slice(0, -1);
  const dot = trimmed.lastIndexOf('.');
  return dot < 0 ? '' : trimmed.slice(0, dot + 1);
}

function describeFound(tensors: Map<string, SourceTensor>): string {
  const names = [...tensors.keys()];
  const sample = names.slice(0, 6).map((name) => `${name} [${tensors.get(name)!.shape.join(', ')}]`);
  return `${names.length} tensors${names.length ? `: ${sample.join(', ')}${names.length > sample.length ? ', …' : ''}` : ''}`;
}

/** Which layout the file uses and under which prefix; a refusal says what was found instead. */
export function recognizeNetwork(tensors: Map<string, SourceTensor>): Recognized {
  const found: Recognized[] = [];
  for (const layout of LAYOUTS) {
    for (const key of tensors.keys()) {
      if (!key.endsWith(layout.markers[0])) continue;
      const prefix = key.slice(0, key.length - layout.markers[0].length);
      if ((prefix === '' || prefix.endsWith('.')) && layout.markers.every((marker) => tensors.has(prefix + marker))) {
        found.push({ layout, prefix, headPrefix: layout.headBesideEncoder ? parentOf(prefix) : prefix });
      }
    }
  }
  if (found.length === 1) return found[0];
  if (found.length > 1) {
    const where = found.map((r) => `${r.layout.title} at "${r.prefix}"`).join(', ');
    throw new UserError(`the file holds more than one network (${where}); save the one to import on its own`, 'weights_ambiguous', { found: where });
  }
  const expected = LAYOUTS.map((l) => `${l.title} (${l.markers.join(' + ')})`).join(', ');
  throw new UserError(`the file is not a ResNet this version reads: found ${describeFound(tensors)}; expected the keys of ${expected}`, 'weights_not_resnet', {
    found: describeFound(tensors),
  });
}
