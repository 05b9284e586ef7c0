import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../app/engine/runtime/backend.ts';
import { randomValues, relativeError, runKernelOn, type Shape4 } from '../kernel_checks.ts';
import { fusedMultiplyAdd, fusedMultiplyAddAvailable, setFusedMultiplyAdd } from '../../app/engine/runtime/wasm/assembler.ts';
import { convolutionAlgorithm, setConvolutionAlgorithm, type ConvolutionAlgorithm } from '../../app/engine/runtime/wasm/kernels.ts';
import { LarsOptimizer } from '../../app/engine/simclr/lars_optimizer.ts';
import { buildPretrainModel, type ModelConfig } from '../../app/engine/simclr/model.ts';
import { Rng } from '../../app/engine/simclr/random.ts';
import { pretrainStep, type PretrainStepConfig } from '../../app/engine/simclr/train_step.ts';


interface Case { batch: number; size: [number, number]; inC: number; outC: number; pad: 'same' | 'valid' }

/** The 3x3 stride-1 layers of ResNet-18 (w0.25 to w1) and ResNet-50 on 32 px, plus odd sizes and 'valid'. */
const cases: Case[] = [
  { batch: 2, size: [32, 32], inC: 16, outC: 16, pad: 'same' },
  { batch: 2, size: [16, 16], inC: 64, outC: 64, pad: 'same' },
  { batch: 3, size: [8, 8], inC: 128, outC: 128, pad: 'same' },
  { batch: 4, size: [4, 4], inC: 256, outC: 256, pad: 'same' },
  { batch: 2, size: [4, 4], inC: 512, outC: 512, pad: 'same' },
  { batch: 3, size: [7, 9], inC: 12, outC: 24, pad: 'same' },
  { batch: 2, size: [11, 6], inC: 8, outC: 16, pad: 'valid' },
  { batch: 1, size: [5, 5], inC: 40, outC: 8, pad: 'same' },
];

function label(c: Case): string {
  return `batch ${c.batch}, ${c.size.join('x')}x${c.inC} -> ${c.outC}, 3x3 ${c.pad}`;
}

function outShape(c: Case): Shape4 {
  const out = (n: number) => (c.pad === 'same' ? n : n - 2);
  return [c.batch, out(c.size[0]), out(c.size[1]), c.outC];
}

/** Separate multiplies and adds, and fused multiply-adds where the runtime has relaxed SIMD. */
const multiplyAdds = fusedMultiplyAddAvailable() ? [false, true] : [false];

/** Float32 Winograd rounding grows with the transform's coefficients; the cpu reference is direct. */
const TOLERANCE: Record<Exclude<ConvolutionAlgorithm, 'direct'>, number> = { winograd2x2: 1e-5, winograd4x4: 1e-4 };

for (const algorithm of ['winograd2x2', 'winograd4x4'] as const) {
  test(`${algorithm}: wasm Conv2D, Conv2DBackpropInput and Conv2DBackpropFilter match the cpu backend on ResNet shapes`, async (t) => {
    await initBackend('wasm');
    const [algorithmByDefault, fusedByDefault] = [convolutionAlgorithm(), fusedMultiplyAdd()];
    setConvolutionAlgorithm(algorithm);
    const worst: Record<string, number> = {};
    try {
      for (const [index, c] of cases.entries()) {
        const xShape: Shape4 = [c.batch, ...c.size, c.inC];
        const filterShape: Shape4 = [3, 3, c.inC, c.outC];
        const dyShape = outShape(c);
        const x: [number[], Float32Array] = [xShape, randomValues(xShape.reduce((a, b) => a * b), index + 1)];
        const filter: [number[], Float32Array] = [filterShape, randomValues(filterShape.reduce((a, b) => a * b), index + 51)];
        const dy: [number[], Float32Array] = [dyShape, randomValues(dyShape.reduce((a, b) => a * b), index + 101)];
        const runs: Array<[string, Record<string, [number[], Float32Array]>, tf.NamedAttrMap]> = [
          ['Conv2D', { x, filter }, { strides: [1, 1], pad: c.pad, dilations: [1, 1], dataFormat: 'NHWC' }],
          ['Conv2DBackpropInput', { dy, filter }, { strides: [1, 1], pad: c.pad, inputShape: xShape, dataFormat: 'NHWC' }],
          ['Conv2DBackpropFilter', { x, dy }, { strides: [1, 1], pad: c.pad, filterShape, dataFormat: 'NHWC' }],
        ];
        for (const [kernel, inputs, attrs] of runs) {
          const expected = await runKernelOn('cpu', kernel, inputs, attrs);
          for (const fused of multiplyAdds) {
            setFusedMultiplyAdd(fused);
            const actual = await runKernelOn('wasm', kernel, inputs, attrs);
            const name = `${kernel}${fused ? ' (fused multiply-add)' : ''}`;
            assert.deepEqual(actual.shape, expected.shape, `${name} ${label(c)}`);
            const error = relativeError(actual.values, expected.values);
            worst[name] = Math.max(worst[name] ?? 0, error);
            assert.ok(error < TOLERANCE[algorithm], `${name} ${label(c)}: error ${error}`);
          }
        }
      }
      t.diagnostic(`largest relative error: ${Object.entries(worst).map(([kernel, error]) => `${kernel} ${error.toExponential(1)}`).join(', ')}`);
    } finally {
      setConvolutionAlgorithm(algorithmByDefault);
      setFusedMultiplyAdd(fusedByDefault);
    }
  });
}

test('a short pretraining on wasm gives the same losses with Winograd as with the direct kernels', async (t) => {
  await initBackend('wasm');
  // Width 0.125 (8 to 64 channels) puts every 3x3 stride-1 layer but the stem on the Winograd kernels.
  const config: ModelConfig = { depth: 18, width: 0.125, sk: false, imageSize: 16, projectionDim: 16 };
  const stepConfig: PretrainStepConfig = { imageSize: 16, temperature: 0.2, learningRate: 0.3, augment: { strength: 0.5, blur: false } };
  // Eight images at this rate are chaotic past ~4 steps: from then on float rounding alone (the
  // cpu backend against wasm) moves the losses by percents, so longer runs compare curves (test/bench).
  const steps = 4;
  const losses = async (backend: 'cpu' | 'wasm', algorithm: ConvolutionAlgorithm) => {
    await tf.setBackend(backend);
    setConvolutionAlgorithm(algorithm);
    const model = buildPretrainModel(config, 7);
    const optimizer = new LarsOptimizer({ weightDecay: 1e-4 });
    const images = tf.tensor4d(randomValues(8 * 16 * 16 * 3, 5).map((v) => v + 0.5), [8, 16, 16, 3]);
    const rng = new Rng(11);
    const result: number[] = [];
    for (let i = 0; i < steps; i++) result.push((await pretrainStep(model, optimizer, images, stepConfig, rng)).loss);
    tf.dispose([images]);
    optimizer.dispose();
    model.dispose();
    return result;
  };
  const largestGap = (a: number[], b: number[]) => Math.max(...a.map((loss, i) => Math.abs(loss - b[i]) / b[i]));
  const algorithmByDefault = convolutionAlgorithm();
  try {
    const direct = await losses('wasm', 'direct');
    t.diagnostic(`direct: ${direct.map((l) => l.toFixed(5)).join(' ')}; the cpu backend differs by ${largestGap(await losses('cpu', 'direct'), direct).toExponential(1)}`);
    for (const algorithm of ['winograd2x2', 'winograd4x4'] as const) {
      const winograd = await losses('wasm', algorithm);
      t.diagnostic(`${algorithm}: ${winograd.map((l) => l.toFixed(5)).join(' ')}, relative gap ${largestGap(winograd, direct).toExponential(1)}`);
      assert.ok(largestGap(winograd, direct) < 2e-4, `${algorithm}: losses ${winograd} against ${direct}`);
    }
  } finally {
    setConvolutionAlgorithm(algorithmByDefault);
  }
});

test('on Node 20 with relaxed SIMD switched on by its flag, the fused multiply-add kernels pass the same checks', {
  skip: fusedMultiplyAddAvailable() ? 'this runtime has relaxed SIMD: the tests above checked both kinds of kernels' : false,
}, () => {
  const files = ['wasm_kernels.test.ts', 'wasm_winograd.test.ts'].map((name) => fileURLToPath(new URL(name, import.meta.url)));
  const child = spawnSync(process.execPath, [
    '--experimental-wasm-relaxed-simd', '--import', 'tsx', '--test', '--test-concurrency=1', '--test-name-pattern', 'Conv2D', ...files,
  ], {
    encoding: 'utf8',
    // The runner marks its own children with NODE_TEST_CONTEXT; a nested run must not inherit it, or it reports nothing.
    env: Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== 'NODE_TEST_CONTEXT')),
  });
  if (/bad option|unknown.*flag/i.test(child.stderr)) return; // a Node whose V8 no longer has the flag has relaxed SIMD on
  assert.equal(child.status, 0, child.stdout.slice(-4000) + child.stderr.slice(-2000));
  assert.match(child.stdout, /fused multiply-add/, 'the child process ran the fused kernels');
});
