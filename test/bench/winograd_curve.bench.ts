/**
 * Loss curves of the same SimCLR pretraining (same weights, batches and augmentations) with
 * the direct and the Winograd convolution kernels on wasm, on CIFAR-10 images. Float rounding
 * makes the runs part after a few steps (as the cpu and wasm backends do), so the curves are
 * compared by their means over windows of steps, beside the spread of the loss within a window.
 * 'direct+fma' (fused multiply-adds, Node 20 with --experimental-wasm-relaxed-simd) is the
 * control: the same algorithm with other rounding, so its gap to 'direct' is what rounding
 * alone does to the curve.
 *
 *   node [--experimental-wasm-relaxed-simd] --import tsx test/bench/winograd_curve.bench.ts [--steps 200] [--batch 64]
 *        [--width 0.25] [--algorithms direct,direct+fma,winograd2x2,winograd4x4] [--window 20] [--threads 1]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../app/engine/runtime/backend.ts';
import { setFusedMultiplyAdd } from '../../app/engine/runtime/wasm/assembler.ts';
import { setConvolutionAlgorithm, type ConvolutionAlgorithm } from '../../app/engine/runtime/wasm/kernels.ts';
import { defaultPretrainAugment } from '../../app/engine/simclr/data_util.ts';
import { LarsOptimizer } from '../../app/engine/simclr/lars_optimizer.ts';
import { buildPretrainModel } from '../../app/engine/simclr/model.ts';
import { Rng } from '../../app/engine/simclr/random.ts';
import { pretrainStep } from '../../app/engine/simclr/train_step.ts';

const { values } = parseArgs({ options: {
  steps: { type: 'string', default: '200' }, batch: { type: 'string', default: '64' }, width: { type: 'string', default: '0.25' },
  algorithms: { type: 'string', default: 'direct,winograd2x2,winograd4x4' }, window: { type: 'string', default: '20' },
  threads: { type: 'string', default: '1' },
  archive: { type: 'string', default: path.resolve(import.meta.dirname, '../../../shared/datasets/cifar10-train.tar.gz') },
} });
const [steps, batch, width, window] = [values.steps, values.batch, values.width, values.window].map(Number);
const algorithms = values.algorithms.split(',');

/** The CIFAR-10 training JPEGs, unpacked once into the temp folder (as bench:import does). */
function cifarFiles(count: number): string[] {
  const train = path.join(os.tmpdir(), 'cifar', 'train');
  if (!fs.existsSync(train)) {
    fs.mkdirSync(path.dirname(train), { recursive: true });
    execFileSync('tar', ['xzf', values.archive, '-C', path.dirname(train)]);
  }
  const classes = fs.readdirSync(train).sort();
  const perClass = classes.map((c) => fs.readdirSync(path.join(train, c)).sort().map((f) => path.join(train, c, f)));
  // Round-robin over the classes, so every batch mixes them.
  return Array.from({ length: count }, (_, i) => perClass[i % classes.length][Math.floor(i / classes.length)]);
}

async function decode(files: string[]): Promise<Float32Array> {
  const pixels = new Float32Array(files.length * 32 * 32 * 3);
  for (const [i, file] of files.entries()) {
    const { data } = await sharp(file).resize(32, 32).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    for (let j = 0; j < data.length; j++) pixels[i * data.length + j] = data[j] / 255;
  }
  return pixels;
}

await initBackend('wasm', { wasmThreads: Number(values.threads) });
const pool = 16 * batch;
const pixels = await decode(cifarFiles(pool));
const stepConfig = { imageSize: 32, temperature: 0.2, learningRate: 0.3, augment: defaultPretrainAugment(32) };

const curves: Record<string, number[]> = {};
for (const variant of algorithms) {
  const [algorithm, fma] = variant.split('+');
  setConvolutionAlgorithm(algorithm as ConvolutionAlgorithm);
  setFusedMultiplyAdd(fma === 'fma');
  const model = buildPretrainModel({ depth: 18, width, sk: false, imageSize: 32, projectionDim: 64 }, 1);
  const optimizer = new LarsOptimizer({ weightDecay: 1e-6 });
  const rng = new Rng(2);
  const started = performance.now();
  curves[variant] = [];
  for (let step = 0; step < steps; step++) {
    const first = (step * batch) % pool;
    const images = tf.tensor4d(pixels.subarray(first * 3072, (first + batch) * 3072), [batch, 32, 32, 3]);
    curves[variant].push((await pretrainStep(model, optimizer, images, stepConfig, rng)).loss);
    images.dispose();
  }
  console.log(`${variant}: ${steps} steps in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  optimizer.dispose();
  model.dispose();
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const spread = (xs: number[]) => Math.sqrt(mean(xs.map((x) => (x - mean(xs)) ** 2)));
console.log(`ResNet-18 w${width}, batch ${batch}, CIFAR-10 32 px: mean loss per ${window} steps (standard deviation within the window)`);
console.log(['steps', ...algorithms].join('\t'));
for (let start = 0; start < steps; start += window) {
  const cells = algorithms.map((a) => {
    const part = curves[a].slice(start, start + window);
    return `${mean(part).toFixed(3)} (${spread(part).toFixed(3)})`;
  });
  console.log([`${start + 1}-${Math.min(steps, start + window)}`, ...cells].join('\t'));
}
const reference = curves[algorithms[0]];
for (const a of algorithms.slice(1)) {
  const gaps = [];
  for (let start = 0; start < steps; start += window) gaps.push(Math.abs(mean(curves[a].slice(start, start + window)) - mean(reference.slice(start, start + window))));
  console.log(`${a} vs ${algorithms[0]}: largest gap between window means ${Math.max(...gaps).toFixed(3)}, last window ${gaps.at(-1)!.toFixed(3)}`);
}
