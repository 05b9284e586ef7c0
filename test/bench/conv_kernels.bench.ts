/**
 * Times the wasm convolution kernels on ResNet-18's 3x3 stride-1 layers (32 px input, one
 * training step's batch of views), by algorithm: direct, Winograd F(2x2, 3x3), F(4x4, 3x3);
 * a '+fma' suffix compiles them with relaxed SIMD's fused multiply-add (Node 20 needs
 * --experimental-wasm-relaxed-simd). Prints, per kernel over several calls, the median wall time
 * and the least CPU time of this process (other processes only ever add to it: cache misses,
 * lower clocks), which is the steadier figure on a shared machine.
 *
 *   node [--experimental-wasm-relaxed-simd] --import tsx test/bench/conv_kernels.bench.ts [--width 0.5] [--views 256]
 *        [--threads 1] [--rounds 5] [--algorithms direct,winograd4x4,winograd4x4+fma] [--sizes 32,16,8,4]
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../app/engine/runtime/backend.ts';
import { setFusedMultiplyAdd } from '../../app/engine/runtime/wasm/assembler.ts';
import { setConvolutionAlgorithm, type ConvolutionAlgorithm } from '../../app/engine/runtime/wasm/kernels.ts';

const { values } = parseArgs({ options: {
  width: { type: 'string', default: '0.5' }, views: { type: 'string', default: '256' },
  threads: { type: 'string', default: '1' }, rounds: { type: 'string', default: '5' },
  algorithms: { type: 'string', default: 'direct,winograd2x2,winograd4x4' },
  sizes: { type: 'string', default: '32,16,8,4' },
} });
const width = Number(values.width);
const views = Number(values.views);
const rounds = Number(values.rounds);
await initBackend('wasm', { wasmThreads: Number(values.threads) });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function time(run: () => tf.Tensor): { wall: number; cpu: number } {
  run().dispose(); // compiles the specialised kernels
  const walls: number[] = [];
  const cpus: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const [start, cpu] = [performance.now(), process.cpuUsage()];
    run().dispose();
    walls.push(performance.now() - start);
    const used = process.cpuUsage(cpu);
    cpus.push((used.user + used.system) / 1000);
  }
  return { wall: median(walls), cpu: Math.min(...cpus) };
}

const sizes = values.sizes.split(',').map(Number);
const layers = [[32, 64], [16, 128], [8, 256], [4, 512]].filter(([size]) => sizes.includes(size)).map(([size, channels]) => [size, Math.round(channels * width)]);
const algorithms = values.algorithms.split(',');
console.log(`ResNet-18 w${width} 3x3 stride-1 layers, ${views} views, ${values.threads} thread(s), ${rounds} calls: median wall ms (least CPU ms)`);
console.log(['layer', 'kernel', ...algorithms].join('\t'));
for (const [size, channels] of layers) {
  const x = tf.randomUniform([views, size, size, channels], -1, 1) as tf.Tensor4D;
  const w = tf.randomUniform([3, 3, channels, channels], -0.1, 0.1) as tf.Tensor4D;
  const dy = tf.randomUniform([views, size, size, channels], -1, 1) as tf.Tensor4D;
  const kernels: Array<[string, () => tf.Tensor]> = [
    ['forward', () => tf.conv2d(x, w, 1, 'same')],
    ['input grad', () => tf.conv2dTranspose(dy, w, x.shape, 1, 'same')],
    ['filter grad', () => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: [1, 1], pad: 'same', filterShape: w.shape, dataFormat: 'NHWC' }) as tf.Tensor],
  ];
  for (const [name, run] of kernels) {
    const cells = algorithms.map((variant) => {
      const [algorithm, fma] = variant.split('+');
      setConvolutionAlgorithm(algorithm as ConvolutionAlgorithm);
      setFusedMultiplyAdd(fma === 'fma');
      const { wall, cpu } = time(run);
      return `${wall.toFixed(1)} (${cpu.toFixed(0)})`;
    });
    console.log([`${size}x${size}x${channels}`, name, ...cells].join('\t'));
  }
  tf.dispose([x, w, dy]);
}
