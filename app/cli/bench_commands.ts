/**
 * `contrast bench train|finetune|infer`: images per second of the engine's own SimCLR step,
 * labels-only classifier step or encoder forward pass next to the same network and step in PyTorch on this machine, when
 * a Python with torch is available. The engine runs first, then PyTorch, never both at once.
 */
import { availableParallelism, loadavg } from 'node:os';
import { UserError } from '../contract/errors.ts';
import { ARCHITECTURES } from '../contract/train_options.ts';
import {
  BENCH_MODES,
  measureEngine,
  measureReference,
  type BenchConfig,
  type BenchMode,
  type EngineFigures,
  type KernelTime,
  type ReferenceFigures,
} from '../services/bench.ts';
import { numberOption, printJson, stringOption, type Command, type Invocation } from './command.ts';
import { backendFlag, trainFlags } from './train_flags.ts';

function readConfig(mode: BenchMode, call: Invocation): BenchConfig {
  const arch = stringOption(call, 'arch') ?? 'resnet18';
  const depth = ARCHITECTURES[arch as keyof typeof ARCHITECTURES];
  if (!depth) throw new UserError(`--arch must be one of ${Object.keys(ARCHITECTURES).join(', ')}, got "${arch}"`, 'usage');
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

function describe(cfg: BenchConfig, engine: EngineFigures): string {
  const what = {
    train: `SimCLR train step, ${cfg.batch} images x 2 views`,
    finetune: `labels-only classifier step (crop, flip, mixup), ${cfg.batch} images`,
    infer: `encoder forward, ${cfg.batch} images`,
  }[cfg.mode];
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
  args: '<train|finetune|infer>',
  summary: 'Measure training (SimCLR step or labels-only classifier step) or inference speed of the engine next to PyTorch on this machine.',
  options: {
    arch: { type: 'string', help: 'resnet18 (default), resnet34 or resnet50' },
    width: { type: 'string', help: 'width multiplier on 64 base channels (default 1)' },
    size: { type: 'string', help: 'image side in pixels (default 32)' },
    batch: { type: 'string', help: 'images per step; a train step sees each in two views, a finetune step one (default 64)' },
    steps: { type: 'string', help: 'timed steps after warm-up; the median is reported (default 5)' },
    warmup: { type: 'string', help: 'untimed steps first (default 2)' },
    ...trainFlags(['backend']),
    threads: { type: 'string', help: 'threads for wasm and for PyTorch (default: all cores)' },
    json: { type: 'boolean', help: 'print one JSON object with both figures and their ratio' },
    profile: { type: 'boolean', help: 'also time each kernel of one extra engine step (tf.profile)' },
  },
  async run(call) {
    const mode = call.positionals[0] as BenchMode;
    if (!BENCH_MODES.includes(mode)) throw new UserError(`bench what? expected one of ${BENCH_MODES.join(', ')}, got "${mode}"`, 'usage');
    const cfg = readConfig(mode, call);
    const engine = await measureEngine(cfg, (backendFlag(call) ?? 'auto'), Boolean(call.values.profile));
    const reference = measureReference(cfg);
    report(call, cfg, engine, reference);
    return engine.tensors.growth === 0 && !engine.gpuBuffers?.inUse.growth ? 0 : 1;
  },
};

export const benchCommands: Command[] = [bench];
