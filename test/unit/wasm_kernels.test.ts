import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { initBackend } from '../../app/engine/runtime/backend.ts';
import { randomValues, relativeError, runKernelOn, type Shape4 } from '../kernel_checks.ts';
import { fusedMultiplyAdd, fusedMultiplyAddAvailable, setFusedMultiplyAdd } from '../../app/engine/runtime/wasm/assembler.ts';
import {
  convolutionAlgorithm, filterGradientByConvolution, inputGradientByPhases, setConvolutionAlgorithm,
} from '../../app/engine/runtime/wasm/kernels.ts';


/**
 * Runs `check` on the direct convolution kernels (Winograd, which would take the 3x3 stride-1
 * cases, has its own tests), once per kind of multiply-add the runtime offers: separate, and
 * fused where it has relaxed SIMD.
 */
async function onDirectKernels(check: (fused: boolean) => Promise<void>): Promise<void> {
  const [algorithmByDefault, fusedByDefault] = [convolutionAlgorithm(), fusedMultiplyAdd()];
  setConvolutionAlgorithm('direct');
  try {
    for (const fused of fusedMultiplyAddAvailable() ? [false, true] : [false]) {
      setFusedMultiplyAdd(fused);
      await check(fused);
    }
  } finally {
    setConvolutionAlgorithm(algorithmByDefault);
    setFusedMultiplyAdd(fusedByDefault);
  }
}

interface Case { batch: number; size: [number, number]; inC: number; outC: number; kernel: number; stride: number; pad: 'same' | 'valid' }

const cases: Case[] = [];
for (const kernel of [1, 3, 7]) {
  for (const stride of [1, 2]) {
    for (const pad of ['same', 'valid'] as const) {
      const i = cases.length;
      cases.push({ batch: i % 2 ? 17 : 1, size: [9 + (i % 3) * 2, 11 + (i % 2) * 2], inC: 1 + (i % 4), outC: 2 + (i % 3), kernel, stride, pad });
    }
  }
}
// An even size with stride 2 and 'valid' leaves trailing input rows unread, a separate code path.
cases.push({ batch: 3, size: [10, 8], inC: 3, outC: 4, kernel: 3, stride: 2, pad: 'valid' });
cases.push({ batch: 2, size: [32, 32], inC: 16, outC: 32, kernel: 3, stride: 2, pad: 'same' });
// Even kernels pad unevenly, and a kernel narrower than the stride leaves some phases empty.
cases.push({ batch: 2, size: [9, 12], inC: 2, outC: 3, kernel: 4, stride: 2, pad: 'same' });
cases.push({ batch: 2, size: [7, 7], inC: 2, outC: 3, kernel: 2, stride: 3, pad: 'same' });
cases.push({ batch: 2, size: [11, 10], inC: 2, outC: 3, kernel: 5, stride: 3, pad: 'valid' });

function label(c: Case): string {
  return `batch ${c.batch}, ${c.size.join('x')}x${c.inC} -> ${c.outC}, ${c.kernel}x${c.kernel} stride ${c.stride} ${c.pad}`;
}

function outputSize(c: Case): Shape4 {
  const out = (n: number) => (c.pad === 'same' ? Math.ceil(n / c.stride) : Math.ceil((n - c.kernel + 1) / c.stride));
  return [c.batch, out(c.size[0]), out(c.size[1]), c.outC];
}

test('wasm Conv2DBackpropFilter (SIMD kernel) matches the cpu backend', async () => {
  await initBackend('wasm');
  for (const [index, c] of cases.entries()) {
    const xShape: Shape4 = [c.batch, ...c.size, c.inC];
    const dyShape = outputSize(c);
    const inputs = {
      x: [xShape, randomValues(xShape.reduce((a, b) => a * b), index + 1)] as [Shape4, Float32Array],
      dy: [dyShape, randomValues(dyShape.reduce((a, b) => a * b), index + 101)] as [Shape4, Float32Array],
    };
    const attrs = { strides: [c.stride, c.stride], pad: c.pad, filterShape: [c.kernel, c.kernel, c.inC, c.outC], dataFormat: 'NHWC' };
    const expected = await runKernelOn('cpu', 'Conv2DBackpropFilter', inputs, attrs);
    await onDirectKernels(async (fused) => {
      const actual = await runKernelOn('wasm', 'Conv2DBackpropFilter', inputs, attrs);
      assert.deepEqual(actual.shape, expected.shape, label(c));
      assert.ok(relativeError(actual.values, expected.values) < 1e-4, `${label(c)}, fused ${fused}: error ${relativeError(actual.values, expected.values)}`);
    });
  }
});

test('the filter gradient by forward convolution (the fallback without wasm SIMD) matches the cpu backend', async () => {
  await initBackend('wasm');
  for (const [index, c] of cases.entries()) {
    const xShape: Shape4 = [c.batch, ...c.size, c.inC];
    const dyShape = outputSize(c);
    const xValues = randomValues(xShape.reduce((a, b) => a * b), index + 1);
    const dyValues = randomValues(dyShape.reduce((a, b) => a * b), index + 101);
    const attrs = { strides: [c.stride, c.stride], pad: c.pad, filterShape: [c.kernel, c.kernel, c.inC, c.outC], dataFormat: 'NHWC' };
    const expected = await runKernelOn('cpu', 'Conv2DBackpropFilter', { x: [xShape, xValues], dy: [dyShape, dyValues] }, attrs);
    await tf.setBackend('wasm');
    const [x, dy] = [tf.tensor(xValues, xShape), tf.tensor(dyValues, dyShape)];
    const out = filterGradientByConvolution({ inputs: { x, dy }, attrs, backend: tf.backend() as BackendWasm });
    const actual = tf.engine().makeTensorFromTensorInfo(out);
    assert.deepEqual(actual.shape, expected.shape, label(c));
    assert.ok(relativeError(await actual.data(), expected.values) < 1e-4, label(c));
    tf.dispose([x, dy, actual]);
  }
});

test('the input gradient by stride-phase convolutions (the fallback without wasm SIMD) matches the cpu backend', async () => {
  await initBackend('wasm');
  for (const [index, c] of cases.entries()) {
    const xShape: Shape4 = [c.batch, ...c.size, c.inC];
    const filterShape: Shape4 = [c.kernel, c.kernel, c.inC, c.outC];
    const dyShape = outputSize(c);
    const dyValues = randomValues(dyShape.reduce((a, b) => a * b), index + 201);
    const filterValues = randomValues(filterShape.reduce((a, b) => a * b), index + 301);
    const attrs = { strides: [c.stride, c.stride], pad: c.pad, inputShape: xShape, dataFormat: 'NHWC' };
    const expected = await runKernelOn('cpu', 'Conv2DBackpropInput', { dy: [dyShape, dyValues], filter: [filterShape, filterValues] }, attrs);
    await tf.setBackend('wasm');
    const [dy, filter] = [tf.tensor(dyValues, dyShape), tf.tensor(filterValues, filterShape)];
    const actual = tf.engine().makeTensorFromTensorInfo(inputGradientByPhases({ inputs: { dy, filter }, attrs, backend: tf.backend() as BackendWasm }));
    assert.deepEqual(actual.shape, expected.shape, label(c));
    assert.ok(relativeError(await actual.data(), expected.values) < 1e-4, label(c));
    tf.dispose([dy, filter, actual]);
  }
});

test('wasm Conv2DBackpropInput (SIMD kernel) matches the cpu backend', async () => {
  await initBackend('wasm');
  for (const [index, c] of cases.entries()) {
    const xShape: Shape4 = [c.batch, ...c.size, c.inC];
    const filterShape: Shape4 = [c.kernel, c.kernel, c.inC, c.outC];
    const dyShape = outputSize(c);
    const inputs = {
      dy: [dyShape, randomValues(dyShape.reduce((a, b) => a * b), index + 201)] as [Shape4, Float32Array],
      filter: [filterShape, randomValues(filterShape.reduce((a, b) => a * b), index + 301)] as [Shape4, Float32Array],
    };
    const attrs = { strides: [c.stride, c.stride], pad: c.pad, inputShape: xShape, dataFormat: 'NHWC' };
    const expected = await runKernelOn('cpu', 'Conv2DBackpropInput', inputs, attrs);
    await onDirectKernels(async (fused) => {
      const actual = await runKernelOn('wasm', 'Conv2DBackpropInput', inputs, attrs);
      assert.deepEqual(actual.shape, expected.shape, label(c));
      assert.ok(relativeError(actual.values, expected.values) < 1e-4, `${label(c)}, fused ${fused}: error ${relativeError(actual.values, expected.values)}`);
    });
  }
});

test('wasm Conv2D and FusedConv2D (SIMD kernel, XNNPACK with bias or activation) match the cpu backend', async () => {
  await initBackend('wasm');
  for (const [index, c] of cases.entries()) {
    // Output channel counts that are multiples of 8 take our kernel; the others the backend's.
    const outC = index % 2 ? c.outC : 8 * (1 + (index % 3));
    const xShape: Shape4 = [c.batch, ...c.size, c.inC];
    const filterShape: Shape4 = [c.kernel, c.kernel, c.inC, outC];
    const inputs = {
      x: [xShape, randomValues(xShape.reduce((a, b) => a * b), index + 901)] as [Shape4, Float32Array],
      filter: [filterShape, randomValues(filterShape.reduce((a, b) => a * b), index + 951)] as [Shape4, Float32Array],
    };
    const attrs = { strides: [c.stride, c.stride], pad: c.pad, dilations: [1, 1], dataFormat: 'NHWC' };
    for (const [kernel, extra] of [['Conv2D', {}], ['FusedConv2D', { activation: 'linear' }], ['FusedConv2D', { activation: 'relu' }]] as const) {
      const expected = await runKernelOn('cpu', kernel, inputs, { ...attrs, ...extra });
      await onDirectKernels(async (fused) => {
        const actual = await runKernelOn('wasm', kernel, inputs, { ...attrs, ...extra });
        assert.deepEqual(actual.shape, expected.shape, `${kernel} ${label(c)}`);
        assert.ok(relativeError(actual.values, expected.values) < 1e-5, `${kernel} ${label(c)}, fused ${fused}`);
      });
    }
  }
});

test('wasm BatchMatMul matches the cpu backend with and without transposes, batched or not', async () => {
  await initBackend('wasm');
  for (const [aShape, bShape] of [[[1, 7, 5], [1, 5, 6]], [[7, 5], [5, 6]], [[3, 7, 5], [3, 5, 6]]]) {
    for (const transposeA of [false, true]) {
      for (const transposeB of [false, true]) {
        const swap = (shape: number[], yes: boolean) => (yes ? [...shape.slice(0, -2), shape.at(-1)!, shape.at(-2)!] : shape);
        const [as, bs] = [swap(aShape, transposeA), swap(bShape, transposeB)];
        const inputs = {
          a: [as, randomValues(as.reduce((p, q) => p * q, 1), 870)] as [number[], Float32Array],
          b: [bs, randomValues(bs.reduce((p, q) => p * q, 1), 871)] as [number[], Float32Array],
        };
        const expected = await runKernelOn('cpu', 'BatchMatMul', inputs, { transposeA, transposeB });
        const actual = await runKernelOn('wasm', 'BatchMatMul', inputs, { transposeA, transposeB });
        assert.deepEqual(actual.shape, expected.shape, `${as} x ${bs}`);
        assert.ok(relativeError(actual.values, expected.values) < 1e-5, `${as} ${transposeA} x ${bs} ${transposeB}`);
      }
    }
  }
});

test('wasm Tile matches the cpu backend, including leading, inner and repeated axes', async () => {
  await initBackend('wasm');
  const shapes: Array<[number[], number[]]> = [
    [[1, 1, 1, 5], [3, 4, 2, 1]], [[2, 3, 1], [1, 2, 3]], [[3], [4]], [[2, 1, 3, 1], [1, 5, 1, 2]], [[2, 2], [1, 1]],
  ];
  for (const [index, [shape, reps]] of shapes.entries()) {
    const inputs = { x: [shape, randomValues(shape.reduce((a, b) => a * b, 1), index + 401)] as [number[], Float32Array] };
    const expected = await runKernelOn('cpu', 'Tile', inputs, { reps });
    const actual = await runKernelOn('wasm', 'Tile', inputs, { reps });
    assert.deepEqual(actual.shape, expected.shape);
    assert.deepEqual(Array.from(actual.values), Array.from(expected.values), `tile ${shape} by ${reps}`);
  }
});

test('wasm Sum and Mean match the cpu backend over leading, inner and mixed axes', async () => {
  await initBackend('wasm');
  const shape = [5, 3, 4, 6];
  const inputs = { x: [shape, randomValues(360, 501)] as [number[], Float32Array] };
  for (const kernel of ['Sum', 'Mean']) {
    for (const axis of [[0, 1, 2], [0], [1, 0], [3], [1, 2], -4, [0, 1, 2, 3]]) {
      for (const keepDims of [false, true]) {
        const expected = await runKernelOn('cpu', kernel, inputs, { axis, keepDims });
        const actual = await runKernelOn('wasm', kernel, inputs, { axis, keepDims });
        assert.deepEqual(actual.shape, expected.shape, `${kernel} ${axis} ${keepDims}`);
        assert.ok(relativeError(actual.values, expected.values) < 1e-5, `${kernel} over ${axis}`);
      }
    }
  }
});

test('wasm FusedBatchNorm matches the cpu backend, with and without scale and offset', async () => {
  for (const shape of [[3, 5, 4, 8], [7, 6], [2, 3, 3, 12]]) {
    const channels = shape.at(-1)!;
    const size = shape.reduce((a, b) => a * b, 1);
    const perChannel = (seed: number, offset: number) => [[channels], randomValues(channels, seed).map((v) => v + offset)] as [number[], Float32Array];
    const full = { x: [shape, randomValues(size, 700)] as [number[], Float32Array], mean: perChannel(701, 0), variance: perChannel(702, 1), offset: perChannel(703, 0), scale: perChannel(704, 1) };
    const bare = { x: full.x, mean: full.mean, variance: full.variance };
    for (const inputs of [full, bare, { ...bare, scale: full.scale }]) {
      await initBackend('wasm');
      const expected = await runKernelOn('cpu', 'FusedBatchNorm', inputs, { varianceEpsilon: 1e-3 });
      const actual = await runKernelOn('wasm', 'FusedBatchNorm', inputs, { varianceEpsilon: 1e-3 });
      assert.deepEqual(actual.shape, expected.shape);
      assert.ok(relativeError(actual.values, expected.values) < 1e-5, `${shape} with ${Object.keys(inputs)}`);
    }
  }
});

test('wasm Slice matches the cpu backend for whole, leading, inner and scalar-run slices', async () => {
  await initBackend('wasm');
  const shape = [4, 6, 5, 70];
  const inputs = { x: [shape, randomValues(4 * 6 * 5 * 70, 800)] as [number[], Float32Array] };
  const slices: Array<[number[], number[]]> = [
    [[0, 0, 0, 0], [4, 6, 5, 70]], [[1, 0, 0, 0], [2, 6, 5, 70]], [[0, 1, 1, 0], [4, 4, 3, 70]],
    [[0, 0, 0, 3], [4, 6, 5, 2]], [[3, 5, 4, 69], [1, 1, 1, 1]], [[1, 2, 0, 0], [-1, -1, -1, -1]], [[0, 0, 0, 0], [4, 6, 0, 70]],
  ];
  for (const [begin, size] of slices) {
    const expected = await runKernelOn('cpu', 'Slice', inputs, { begin, size });
    const actual = await runKernelOn('wasm', 'Slice', inputs, { begin, size });
    assert.deepEqual(actual.shape, expected.shape, `${begin} ${size}`);
    assert.deepEqual(Array.from(actual.values), Array.from(expected.values), `${begin} ${size}`);
  }
});

test('wasm Reverse matches the cpu backend for inner, outer and several axes', async () => {
  await initBackend('wasm');
  const shape = [3, 4, 5, 70];
  const inputs = { x: [shape, randomValues(3 * 4 * 5 * 70, 850)] as [number[], Float32Array] };
  for (const dims of [[2], [3], [0], [1, 2], [0, 3], [], [-2]]) {
    const expected = await runKernelOn('cpu', 'Reverse', inputs, { dims });
    const actual = await runKernelOn('wasm', 'Reverse', inputs, { dims });
    assert.deepEqual(Array.from(actual.values), Array.from(expected.values), `reverse ${dims}`);
  }
});

test('wasm Concat and SplitV match the cpu backend along every axis, for short and long runs', async () => {
  const shapes = [[2, 3, 4, 1], [2, 3, 4, 2], [2, 3, 4, 70]];
  for (const axis of [0, 1, 2, 3]) {
    const parts = shapes.map((shape, i) => {
      const partShape = shape.map((d, a) => (a === axis ? d + i : a === 3 ? 3 : d));
      return tf.tensor(randomValues(partShape.reduce((p, q) => p * q, 1), 600 + i), partShape);
    });
    const run = async (backend: string) => {
      await tf.setBackend(backend);
      const copies = await Promise.all(parts.map(async (p) => tf.tensor(await p.data(), p.shape)));
      const joined = tf.concat(copies, axis);
      const pieces = tf.split(joined, [1, joined.shape[axis] - 3, 2], axis);
      const values = [await joined.data(), ...(await Promise.all(pieces.map((p) => p.data())))].map((v) => Array.from(v));
      const shapesOut = [joined.shape, ...pieces.map((p) => p.shape)];
      tf.dispose([...copies, joined, ...pieces]);
      return { values, shapesOut };
    };
    await initBackend('wasm');
    const expected = await run('cpu');
    const actual = await run('wasm');
    assert.deepEqual(actual, expected, `axis ${axis}`);
  }
});

test('wasm Identity and same-dtype Cast share the buffer safely; real casts still convert', async () => {
  await initBackend('wasm');
  const x = tf.tensor([1.5, -2.25, 3], [3]);
  const copy = tf.clone(x);
  const same = tf.cast(x, 'float32');
  x.dispose();
  assert.deepEqual(Array.from(await copy.data()), [1.5, -2.25, 3]);
  assert.deepEqual(Array.from(await same.data()), [1.5, -2.25, 3]);
  const ints = tf.cast(copy, 'int32');
  assert.equal(ints.dtype, 'int32');
  assert.deepEqual(Array.from(await ints.data()), [1, -2, 3]);
  tf.dispose([copy, same, ints]);
});

test('a conv net trains on wasm: gradients of a loss through conv2d match the cpu backend', async () => {
  const xShape: Shape4 = [5, 9, 9, 3];
  const filterShape: Shape4 = [3, 3, 3, 4];
  const x = randomValues(xShape.reduce((a, b) => a * b), 7);
  const f = randomValues(filterShape.reduce((a, b) => a * b), 8);
  const gradients = async (backend: string) => {
    await tf.setBackend(backend);
    const [xT, fT] = [tf.tensor4d(x, xShape), tf.tensor4d(f, filterShape)];
    const loss = (input: tf.Tensor4D, filter: tf.Tensor4D) => tf.conv2d(input, filter, 2, 'same').square().sum();
    const [dx, df] = tf.grads(loss as (...args: tf.Tensor[]) => tf.Tensor)([xT, fT]);
    const values = [await dx.data(), await df.data()];
    tf.dispose([xT, fT, dx, df]);
    return values;
  };
  const expected = await gradients('cpu');
  const actual = await gradients('wasm');
  assert.ok(relativeError(actual[0], expected[0]) < 1e-4, 'input gradient');
  assert.ok(relativeError(actual[1], expected[1]) < 1e-4, 'filter gradient');
});
