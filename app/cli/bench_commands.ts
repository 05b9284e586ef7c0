/**
 * `contrast bench train|infer`: images per second of the engine's own SimCLR step (or
 * encoder forward pass) next to the same network and step in PyTorch on this machine, when
 * a Python with torch is available. The engine runs first, then PyTorch, never both at once.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.ts';
import { BACKEND_NAMES, initBackend, type BackendName } from '../engine/backend.ts';
import { defaultPretrainAugment } from '../engine/data_util.ts';
import { LarsOptimizer } from '../engine/lars_optimizer.ts';
import { buildPretrainModel } from '../engine/model.ts';
import { Rng } from '../engine/random.ts';
import { buildEncoder, type ModelConfig } from '../engine/resnet.ts';
import { pretrainStep } from '../engine/train_step.ts';
import { gpuBufferCounts } from '../engine/webgpu_backend.ts';
import { numberOption, printJson, stringOption, type Command, type Invocation } from './command.ts';

type Mode = 'train' | 'infer';

interface BenchConfig {
  mode: Mode;
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

const ARCH_DEPTH: Record<string, ModelConfig['depth']> = { resnet18: 18, resnet34: 34, resnet50: 50 };
const PYTHON_CANDIDATES = ['/usr/bin/python3', 'python3'];
const REFERENCE_SCRIPT = fileURLToPath(new URL('../../test/bench/reference/simclr_step.py', import.meta.url));
/** Temperature and learning rate only need plausible values: speed does not depend on them. */
const TEMPERATURE = 0.2;
const LEARNING_RATE = 0.3;

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

async function measureEngine(cfg: BenchConfig, backend: 'auto' | BackendName, profile: boolean): Promise<EngineFigures & { kernels?: KernelTime[] }> {
  const info = await initBackend(backend, { wasmThreads: cfg.threads });
  const modelConfig: ModelConfig = { depth: cfg.depth, width: cfg.width, sk: false, imageSize: cfg.size };
  const runner = cfg.mode === 'train' ? trainStepRunner(cfg, modelConfig) : inferStepRunner(cfg, modelConfig);
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
function measureReference(cfg: BenchConfig): { figures: ReferenceFigures } | { skipped: string } {
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

function readConfig(mode: Mode, call: Invocation): BenchConfig {
  const arch = stringOption(call, 'arch') ?? 'resnet18';
  const depth = ARCH_DEPTH[arch];
  if (!depth) throw new UserError(`--arch must be one of ${Object.keys(ARCH_DEPTH).join(', ')}, got "${arch}"`, 'usage');
  return {
    mode,
    depth,
    width: numberOption(call, 'width', 1, 0.0625, 4),
    size: Math.round(numberOption(call, 'size', 32, 8, 512)),
    batch: Math.round(numberOption(call, 'batch', 64, 2, 4096)),
    warmup: Math.round(numberOption(call, 'warmup', 2, 0, 100)),
    steps: Math.round(numberOption(call, 'steps', 5, 1, 1000)),
    threads: Math.round(numberOption(call, 'threads', availableParallelism(), 1, 64)),
  };
}

function readBackend(call: Invocation): 'auto' | BackendName {
  const backend = stringOption(call, 'backend') ?? 'auto';
  if (!['auto', ...BACKEND_NAMES].includes(backend)) {
    throw new UserError(`--backend must be auto, ${BACKEND_NAMES.join(', ')}, got "${backend}"`, 'usage');
  }
  return backend as 'auto' | BackendName;
}

function describe(cfg: BenchConfig, engine: EngineFigures): string {
  const what = cfg.mode === 'train' ? `SimCLR train step, ${cfg.batch} images x 2 views` : `encoder forward, ${cfg.batch} images`;
  return `ResNet-${cfg.depth} width ${cfg.width}, ${cfg.size} px, ${what}; ${engine.backend}: ${engine.device}`;
}

function report(call: Invocation, cfg: BenchConfig, engine: EngineFigures & { kernels?: KernelTime[] }, reference: ReturnType<typeof measureReference>): void {
  const torch = 'figures' in reference ? reference.figures : null;
  const ratio = torch ? engine.imagesPerSecond / torch.imagesPerSecond : null;
  if (call.values.json) {
    printJson(call.io, {
      ...cfg, loadAverage: loadavg()[0], engine, pytorch: torch,
      ...('skipped' in reference ? { pytorchSkipped: reference.skipped } : {}),
      ratio, cpuTimeRatio: torch ? torch.medianCpuSeconds / engine.medianCpuSeconds : null,
    });
    return;
  }
  const line = (label: string, f: EngineFigures | ReferenceFigures, extra: string) =>
    `  ${label.padEnd(9)} ${f.imagesPerSecond.toFixed(1).padStart(8)} img/s  (median step ${f.medianStepSeconds.toFixed(3)} s, ` +
    `${f.medianCpuSeconds.toFixed(3)} CPU-s, peak RSS ${f.peakRssMb.toFixed(0)} MB${extra})\n`;
  call.io.out(`${describe(cfg, engine)}\n`);
  const { inUse, pooled } = engine.gpuBuffers ?? {};
  const buffers = inUse && pooled ? `, GPU buffers ${inUse.first} -> ${inUse.last} (+ ${pooled.first} -> ${pooled.last} pooled)` : '';
  call.io.out(line('engine', engine, `, tensors ${engine.tensors.first} -> ${engine.tensors.last}${buffers}`));
  if (torch) {
    call.io.out(line('pytorch', torch, `, torch ${torch.torch}, ${torch.threads} threads`));
    call.io.out(`  ratio engine/pytorch: ${ratio!.toFixed(2)} (by CPU time: ${(torch.medianCpuSeconds / engine.medianCpuSeconds).toFixed(2)})\n`);
  } else {
    call.io.out(`  pytorch   skipped: ${(reference as { skipped: string }).skipped}\n`);
  }
  call.io.out(`  load average ${loadavg()[0].toFixed(2)} on ${availableParallelism()} cores (other processes slow both figures)\n`);
  if (engine.kernels) {
    const total = engine.kernels.reduce((sum, k) => sum + k.ms, 0);
    call.io.out(`  kernel time of one step: ${total.toFixed(0)} ms\n`);
    for (const k of engine.kernels.slice(0, 20)) call.io.out(`    ${k.kernel.padEnd(26)} ${k.ms.toFixed(1).padStart(8)} ms ${String(k.calls).padStart(5)} calls\n`);
  }
  if (engine.tensors.growth !== 0) call.io.out(`  WARNING: ${engine.tensors.growth} tensors leaked over ${cfg.steps} steps\n`);
  if (inUse?.growth) call.io.out(`  WARNING: ${inUse.growth} GPU buffers leaked over ${cfg.steps} steps\n`);
}

const bench: Command = {
  name: 'bench',
  args: '<train|infer>',
  summary: 'Measure training (SimCLR step) or inference speed of the engine next to PyTorch on this machine.',
  options: {
    arch: { type: 'string' }, width: { type: 'string' }, size: { type: 'string' }, batch: { type: 'string' },
    steps: { type: 'string' }, warmup: { type: 'string' }, backend: { type: 'string' }, threads: { type: 'string' },
    json: { type: 'boolean' }, profile: { type: 'boolean' },
  },
  optionHelp: {
    arch: 'resnet18 (default), resnet34 or resnet50',
    width: 'width multiplier on 64 base channels (default 1)',
    size: 'image side in pixels (default 32)',
    batch: 'images per step; a train step sees each in two views (default 64)',
    steps: 'timed steps after warm-up; the median is reported (default 5)',
    warmup: 'untimed steps first (default 2)',
    backend: `auto (default), ${BACKEND_NAMES.join(', ')}`,
    threads: 'threads for wasm and for PyTorch (default: all cores)',
    json: 'print one JSON object with both figures and their ratio',
    profile: 'also time each kernel of one extra engine step (tf.profile)',
  },
  minArgs: 1,
  maxArgs: 1,
  async run(call) {
    const mode = call.positionals[0];
    if (mode !== 'train' && mode !== 'infer') throw new UserError(`bench what? expected "train" or "infer", got "${mode}"`, 'usage');
    const cfg = readConfig(mode, call);
    const engine = await measureEngine(cfg, readBackend(call), Boolean(call.values.profile));
    const reference = measureReference(cfg);
    report(call, cfg, engine, reference);
    return engine.tensors.growth === 0 && !engine.gpuBuffers?.inUse.growth ? 0 : 1;
  },
};

export const benchCommands: Command[] = [bench];
