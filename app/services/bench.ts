/**
 * Speed of the engine's own SimCLR step, labels-only classifier step or encoder forward pass next to the same network and
 * step in PyTorch on this machine, when a Python with torch is available. The engine runs first,
 * then PyTorch, never both at once. `contrast bench` reads its options and prints the figures.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend, type BackendName } from '../engine/runtime/backend.ts';
import { gpuBufferCounts } from '../engine/runtime/webgpu_backend.ts';
import { defaultPretrainAugment } from '../engine/simclr/data_util.ts';
import { LarsOptimizer } from '../engine/simclr/lars_optimizer.ts';
import { buildClassifier, buildPretrainModel } from '../engine/simclr/model.ts';
import { Rng } from '../engine/simclr/random.ts';
import { buildEncoder, type ModelConfig } from '../engine/simclr/resnet.ts';
import { SUPERVISED_MIXUP } from '../engine/stages/stage_config.ts';
import { classifierStep, pretrainStep } from '../engine/simclr/train_step.ts';

export type { BackendName };

export const BENCH_MODES = ['train', 'finetune', 'infer'] as const;
export type BenchMode = (typeof BENCH_MODES)[number];

export interface BenchConfig {
  mode: BenchMode;
  depth: ModelConfig['depth'];
  width: number;
  size: number;
  batch: number;
  warmup: number;
  steps: number;
  threads: number;
}

export interface EngineFigures {
  backend: BackendName;
  device: string;
  imagesPerSecond: number;
  medianStepSeconds: number;
  stepSeconds: number[];
  /** CPU time (all threads) per step: unlike wall time, barely affected by other processes. */
  medianCpuSeconds: number;
  peakRssMb: number;
  /** Live tensors after the first and the last timed step: equal when nothing leaks. */
  tensors: Growth;
  /** The same for the webgpu backend's GPU buffers in use, and those pooled for reuse; null on other backends. */
  gpuBuffers: { inUse: Growth; pooled: Growth } | null;
  bytesGrowth: number;
}

export interface Growth {
  first: number;
  last: number;
  growth: number;
}

function growth(counts: number[]): Growth {
  return { first: counts[0], last: counts.at(-1)!, growth: counts.at(-1)! - counts[0] };
}

export interface ReferenceFigures {
  torch: string;
  threads: number;
  imagesPerSecond: number;
  medianStepSeconds: number;
  stepSeconds: number[];
  medianCpuSeconds: number;
  peakRssMb: number;
}

const PYTHON_CANDIDATES = ['/usr/bin/python3', 'python3'];
const REFERENCE_SCRIPT = fileURLToPath(new URL('../../test/bench/reference/simclr_step.py', import.meta.url));
/** Temperature and learning rate only need plausible values: speed does not depend on them. */
const TEMPERATURE = 0.2;
const LEARNING_RATE = 0.3;
/** The labels-only network's step as one-click Train runs it: 10 classes, its mixup, no weight decay. */
const BENCH_CLASSES = 10;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function syntheticImages(batch: number, size: number): tf.Tensor4D {
  const rng = new Rng(1);
  const values = new Float32Array(batch * size * size * 3);
  for (let i = 0; i < values.length; i++) values[i] = rng.next();
  return tf.tensor4d(values, [batch, size, size, 3]);
}

/** A step ends once its result has been read back, so GPU work is timed in full. */
interface StepRunner {
  step: () => Promise<void>;
  dispose: () => void;
}

/** The engine's SimCLR pretraining step itself (train_step.ts): two views, forward, NT-Xent, backward, LARS. */
function trainStepRunner(cfg: BenchConfig, modelConfig: ModelConfig): StepRunner {
  const model = buildPretrainModel(modelConfig, 1);
  const optimizer = new LarsOptimizer({ weightDecay: 1e-6 });
  const images = syntheticImages(cfg.batch, cfg.size);
  const stepConfig = { imageSize: cfg.size, temperature: TEMPERATURE, learningRate: LEARNING_RATE, augment: defaultPretrainAugment(cfg.size) };
  const rng = new Rng(2);
  return {
    step: async () => { await pretrainStep(model, optimizer, images, stepConfig, rng); },
    dispose: () => { model.dispose(); images.dispose(); optimizer.dispose(); },
  };
}

/** The labels-only classifier step (train_step.ts): crop + flip, mixup, forward, cross-entropy, backward, LARS. */
function finetuneStepRunner(cfg: BenchConfig, modelConfig: ModelConfig): StepRunner {
  const model = buildClassifier(modelConfig, BENCH_CLASSES, 1);
  const optimizer = new LarsOptimizer({ weightDecay: 0 });
  const batch = { images: syntheticImages(cfg.batch, cfg.size), labels: Array.from({ length: cfg.batch }, (_, i) => i % BENCH_CLASSES) };
  const stepConfig = { imageSize: cfg.size, learningRate: LEARNING_RATE, mixup: SUPERVISED_MIXUP };
  const rng = new Rng(2);
  return {
    step: async () => { await classifierStep(model, optimizer, batch, stepConfig, rng); },
    dispose: () => { model.dispose(); batch.images.dispose(); optimizer.dispose(); },
  };
}

const STEP_RUNNERS: Record<BenchMode, (cfg: BenchConfig, modelConfig: ModelConfig) => StepRunner> = {
  train: trainStepRunner,
  finetune: finetuneStepRunner,
  infer: inferStepRunner,
};

function inferStepRunner(cfg: BenchConfig, modelConfig: ModelConfig): StepRunner {
  const model = buildEncoder(modelConfig, 1);
  const images = syntheticImages(cfg.batch, cfg.size);
  const step = async () => {
    const features = model.apply(images, { training: false }) as tf.Tensor;
    await features.data();
    features.dispose();
  };
  return { step, dispose: () => { model.dispose(); images.dispose(); } };
}

export interface KernelTime {
  kernel: string;
  calls: number;
  ms: number;
}

/** Kernel time of one step by kernel name, largest first (tf.profile). */
async function profileStep(step: () => Promise<void>): Promise<KernelTime[]> {
  const profile = await tf.profile(step);
  const byKernel = new Map<string, KernelTime>();
  for (const k of profile.kernels) {
    const entry = byKernel.get(k.name) ?? { kernel: k.name, calls: 0, ms: 0 };
    entry.calls++;
    entry.ms += k.kernelTimeMs as number;
    byKernel.set(k.name, entry);
  }
  return [...byKernel.values()].sort((a, b) => b.ms - a.ms);
}

export async function measureEngine(cfg: BenchConfig, backend: 'auto' | BackendName, profile: boolean): Promise<EngineFigures & { kernels?: KernelTime[] }> {
  const info = await initBackend(backend, { wasmThreads: cfg.threads });
  const modelConfig: ModelConfig = { depth: cfg.depth, width: cfg.width, sk: false, imageSize: cfg.size };
  const runner = STEP_RUNNERS[cfg.mode](cfg, modelConfig);
  try {
    for (let i = 0; i < cfg.warmup; i++) await runner.step();
    const stepSeconds: number[] = [];
    const cpuSeconds: number[] = [];
    const tensorCounts: number[] = [];
    const buffersInUse: number[] = [];
    const buffersPooled: number[] = [];
    const bytes: number[] = [];
    for (let i = 0; i < cfg.steps; i++) {
      const start = performance.now();
      const cpuStart = process.cpuUsage();
      await runner.step();
      stepSeconds.push((performance.now() - start) / 1000);
      const cpu = process.cpuUsage(cpuStart);
      cpuSeconds.push((cpu.user + cpu.system) / 1e6);
      tensorCounts.push(tf.memory().numTensors);
      const buffers = gpuBufferCounts();
      if (buffers) {
        buffersInUse.push(buffers.inUse);
        buffersPooled.push(buffers.pooled);
      }
      bytes.push(tf.memory().numBytes);
    }
    const medianStepSeconds = median(stepSeconds);
    const kernels = profile ? await profileStep(runner.step) : undefined;
    return {
      ...(kernels ? { kernels } : {}),
      backend: info.backend,
      device: info.device,
      imagesPerSecond: cfg.batch / medianStepSeconds,
      medianStepSeconds,
      stepSeconds,
      medianCpuSeconds: median(cpuSeconds),
      peakRssMb: process.resourceUsage().maxRSS / 1024,
      tensors: growth(tensorCounts),
      gpuBuffers: buffersInUse.length ? { inUse: growth(buffersInUse), pooled: growth(buffersPooled) } : null,
      bytesGrowth: bytes.at(-1)! - bytes[0],
    };
  } finally {
    runner.dispose();
  }
}

function findTorchPython(): string | null {
  for (const python of PYTHON_CANDIDATES) {
    const probe = spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 });
    if (probe.status === 0) return python;
  }
  return null;
}

/** Runs the PyTorch reference, or says why it could not. */
export function measureReference(cfg: BenchConfig): { figures: ReferenceFigures } | { skipped: string } {
  if (cfg.depth === 50) return { skipped: 'the PyTorch reference has basic blocks only (resnet18, resnet34)' };
  if (!existsSync(REFERENCE_SCRIPT)) return { skipped: `reference script not found at ${REFERENCE_SCRIPT}` };
  const python = findTorchPython();
  if (!python) return { skipped: `no Python with torch (tried ${PYTHON_CANDIDATES.join(', ')})` };
  const args = [REFERENCE_SCRIPT, '--mode', cfg.mode, '--depth', String(cfg.depth), '--width', String(cfg.width), '--size', String(cfg.size),
    '--batch', String(cfg.batch), '--warmup', String(cfg.warmup), '--steps', String(cfg.steps), '--threads', String(cfg.threads)];
  const run = spawnSync(python, args, { encoding: 'utf8', maxBuffer: 16 << 20 });
  if (run.status !== 0) return { skipped: `PyTorch reference failed: ${(run.stderr || run.stdout).trim().split('\n').at(-1)}` };
  const result = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { torch: string; threads: number; seconds: number[]; cpuSeconds: number[]; peakRssMb: number };
  const medianStepSeconds = median(result.seconds);
  return {
    figures: {
      torch: result.torch, threads: result.threads, imagesPerSecond: cfg.batch / medianStepSeconds,
      medianStepSeconds, stepSeconds: result.seconds, medianCpuSeconds: median(result.cpuSeconds), peakRssMb: result.peakRssMb,
    },
  };
}

