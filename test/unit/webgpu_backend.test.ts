/**
 * The webgpu backend on a real Dawn adapter (on a machine without a GPU: Mesa's llvmpipe through
 * OpenGL ES, in compatibility mode). Every kernel training uses must give the cpu backend's answer,
 * and whole training steps wasm's (the cpu backend's for the ImageNet stem, see below).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { diagnoseBackends, initBackend, type BackendName } from '../../app/engine/runtime/backend.ts';
import { augmentFinetune, augmentPretrain, centerResize } from '../../app/engine/simclr/data_util.ts';
import { LarsOptimizer } from '../../app/engine/simclr/lars_optimizer.ts';
import { bufferLimitBytes, checkMemory, estimateTrainingMemory, fitsMemory } from '../../app/engine/runtime/memory.ts';
import { buildClassifier, buildPretrainModel, copyWeightsByName, type ModelConfig } from '../../app/engine/simclr/model.ts';
import { crossEntropy, distillationLoss, ntXentLoss } from '../../app/engine/simclr/objective.ts';
import { Rng } from '../../app/engine/simclr/random.ts';
import { classifierStep, distillStep, pretrainStep } from '../../app/engine/simclr/train_step.ts';
import { probeWebGpu } from '../../app/engine/runtime/webgpu_backend.ts';
import { CONTRAST_BIN } from '../integration/train_fixtures.ts';

const probe = await probeWebGpu(true);
const skip = probe.ok ? false : `no WebGPU adapter here: ${probe.reason}`;
if (skip) console.log(`# ${skip}`);

/** Largest |a − b| over the largest |b|: float32 kernels that sum in another order differ by ~1e-6. */
function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return diff / Math.max(scale, 1e-12);
}

function assertClose(actual: Record<string, ArrayLike<number>>, expected: Record<string, ArrayLike<number>>, tolerance: number): void {
  assert.deepEqual(Object.keys(actual), Object.keys(expected));
  for (const name of Object.keys(expected)) {
    const error = relativeError(actual[name], expected[name]);
    if (process.env.REPORT_ERRORS) console.log(`# ${name} ${error.toExponential(1)}`);
    assert.ok(error <= tolerance, `${name}: relative error ${error.toExponential(2)} over ${tolerance}`);
  }
}

async function values(tensors: Record<string, tf.Tensor>): Promise<Record<string, Float32Array>> {
  const out: Record<string, Float32Array> = {};
  for (const [name, t] of Object.entries(tensors)) out[name] = Float32Array.from(await t.data());
  tf.dispose(Object.values(tensors));
  return out;
}

/** Runs `compute` on each backend from the same JavaScript inputs; no tensor crosses backends. */
async function onEach<T>(backends: BackendName[], compute: () => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  for (const backend of backends) {
    await initBackend(backend);
    const before = tf.memory().numTensors;
    results.push(await compute());
    assert.equal(tf.memory().numTensors, before, `${backend}: tensors left behind`);
  }
  return results;
}

function uniform(shape: number[], seed: number, low = 0, high = 1): tf.Tensor {
  const rng = new Rng(seed);
  return tf.tensor(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.uniform(low, high)), shape);
}

test('the probe describes the adapter, and auto never trains on a software one', { skip }, async () => {
  assert.ok(probe.ok);
  const { adapter } = probe;
  assert.ok(adapter.limits.maxBufferSize >= 128 * 1024 ** 2 && adapter.limits.maxStorageBufferBindingSize >= 128 * 1024 ** 2, JSON.stringify(adapter.limits));
  assert.ok(adapter.limits.maxStorageBuffersPerShaderStage >= 4);
  const report = await diagnoseBackends();
  const webgpu = report.candidates.find((c) => c.backend === 'webgpu')!;
  assert.deepEqual(webgpu.adapter, adapter);
  if (adapter.software) {
    assert.equal(webgpu.usable, false);
    assert.match(webgpu.reason!, /only a software adapter .* used only with --backend webgpu/);
    assert.notEqual(report.recommended, 'webgpu');
  }
});

test('contrast doctor prints the adapter: names, level, software or hardware, and its buffer limits, and nothing on stderr', { skip }, () => {
  // A real process: Dawn's and the drivers' warnings go straight to file descriptor 2.
  const doctor = spawnSync(process.execPath, [CONTRAST_BIN, 'doctor'], { encoding: 'utf8' });
  assert.equal(doctor.status, 0, doctor.stderr);
  assert.equal(doctor.stderr, '');
  const printed = doctor.stdout;
  assert.match(printed, /^(ok|no) {3}webgpu {5}webgpu \(Dawn\) .*\n {16}vendor .*, architecture .*, device .*\n {16}description: .*\n/m);
  assert.match(printed, /\n {16}(software \(CPU-emulated\)|hardware) adapter, (core|compatibility \(lower limits, fewer features\)) level, through Dawn's .* backend\n/);
  assert.match(printed, /\n {16}limits: maxBufferSize \d+ MB, maxStorageBufferBindingSize \d+ MB, maxStorageBuffersPerShaderStage \d+\n/);
});

test('augmentations, losses, batch-norm gradients and a LARS update give the cpu backend\'s values', { skip }, async () => {
  const augmentations = () => {
    const images = uniform([3, 72, 72, 3], 1) as tf.Tensor4D;
    return {
      pretrainView: augmentPretrain(images, 72, { strength: 1, blur: true }, new Rng(2)),
      finetuneView: augmentFinetune(images, 32, new Rng(3)),
      evaluationView: centerResize(images, 40),
    };
  };
  const losses = () => {
    const [z1, z2] = [uniform([6, 8], 4, -1, 1), uniform([6, 8], 5, -1, 1)];
    const teacher = uniform([6, 5], 6, -2, 2);
    const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 0], 'int32'), 5);
    const contrastive = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) => ntXentLoss(a as tf.Tensor2D, b as tf.Tensor2D, 0.5).loss)([z1, z2]);
    const distilled = tf.valueAndGrad((s: tf.Tensor) => distillationLoss(s as tf.Tensor2D, teacher as tf.Tensor2D, 2))(z1.slice([0, 0], [6, 5]));
    const supervised = tf.valueAndGrad((s: tf.Tensor) => crossEntropy(s as tf.Tensor2D, labels as tf.Tensor2D))(z2.slice([0, 0], [6, 5]));
    return {
      contrastive: contrastive.value, contrastiveGradZ1: contrastive.grads[0], contrastiveGradZ2: contrastive.grads[1],
      distill: distilled.value, distillGrad: distilled.grad, crossEntropy: supervised.value, crossEntropyGrad: supervised.grad,
    };
  };
  // Batch norm as tf.layers runs it in training: moments, then FusedBatchNorm (batch_norm.ts's gradients).
  const batchNorm = () => {
    const dy = uniform([4, 5, 5, 6], 10, -1, 1);
    const [dx, dGamma, dBeta] = tf.grads((input: tf.Tensor, scale: tf.Tensor, offset: tf.Tensor) => {
      const { mean, variance } = tf.moments(input, [0, 1, 2]);
      return tf.sum(tf.mul(tf.batchNorm(input, mean, variance, offset, scale, 1e-5), dy));
    })([uniform([4, 5, 5, 6], 7, -2, 3), uniform([6], 8, 0.5, 1.5), uniform([6], 9, -0.5, 0.5)]);
    return { batchNormGradX: dx, batchNormGradGamma: dGamma, batchNormGradBeta: dBeta };
  };
  const larsUpdate = async () => {
    const variables = tf.tidy(() => ({ 'conv/kernel': tf.variable(uniform([3, 3, 4, 8], 11, -1, 1)), 'conv/bias': tf.variable(uniform([8], 12, -1, 1)) }));
    const lars = new LarsOptimizer({ weightDecay: 1e-4 });
    for (let i = 0; i < 2; i++) {
      const grads = tf.tidy(() => ({ 'conv/kernel': uniform([3, 3, 4, 8], 13 + i, -1, 1), 'conv/bias': uniform([8], 15 + i, -1, 1) }));
      lars.applyGradients(grads, variables, 0.5);
      tf.dispose(Object.values(grads));
    }
    lars.dispose();
    return values(variables);
  };
  const compute = async () => {
    // Small tensors made in JavaScript would otherwise run on TF.js's CPU kernels inside the webgpu backend.
    if (tf.getBackend() === 'webgpu') tf.env().set('WEBGPU_CPU_FORWARD', false);
    try {
      return {
        views: await values(tf.tidy(augmentations)),
        rest: { ...(await values(tf.tidy(losses))), ...(await values(tf.tidy(batchNorm))), ...(await larsUpdate()) },
      };
    } finally {
      if (tf.getBackend() === 'webgpu') tf.env().set('WEBGPU_CPU_FORWARD', true);
    }
  };
  const [cpu, webgpu] = await onEach(['cpu', 'webgpu'], compute);
  // Hue goes through floor() and a crop through bilinear weights: a rounding difference moves a pixel by more.
  assertClose(webgpu.views, cpu.views, 5e-5);
  assertClose(webgpu.rest, cpu.rest, 2e-6);
});

const cifarStemSk: ModelConfig = { depth: 18, width: 0.125, sk: true, imageSize: 16, projectionDim: 16 };
const cifarStem: ModelConfig = { ...cifarStemSk, sk: false };
/** Above 64 px the encoder starts with the 7x7 stride-2 conv and a max pool. */
const imagenetStem: ModelConfig = { depth: 18, width: 0.0625, sk: false, imageSize: 72, projectionDim: 16 };

/** Every weight (BN moving statistics included) and the LARS momentum, by stable name. */
async function modelState(model: tf.LayersModel, optimizer: LarsOptimizer): Promise<Record<string, Float32Array>> {
  const tensors: Record<string, tf.Tensor> = {};
  model.weights.forEach((w, i) => (tensors[`${i} ${w.originalName}`] = tf.clone(w.read())));
  for (const [name, slot] of Object.entries(optimizer.getState())) tensors[`momentum ${name}`] = slot;
  return values(tensors);
}

async function pretrainOnce(cfg: ModelConfig): Promise<{ loss: number; top1: number; state: Record<string, Float32Array> }> {
  const model = buildPretrainModel(cfg, 3);
  const optimizer = new LarsOptimizer({ weightDecay: 1e-4 });
  const images = uniform([4, cfg.imageSize, cfg.imageSize, 3], 1) as tf.Tensor4D;
  const stepConfig = { imageSize: cfg.imageSize, temperature: 0.2, learningRate: 0.3, augment: { strength: 0.5, blur: cfg.imageSize > 64 } };
  const { loss, top1 } = await pretrainStep(model, optimizer, images, stepConfig, new Rng(5));
  const state = await modelState(model, optimizer);
  tf.dispose([images]);
  optimizer.dispose();
  model.dispose();
  return { loss, top1, state };
}

/** Weights after one step: a loss, its gradients through the whole network, and the update. */
const STEP_TOLERANCE = 2e-4;

test('a pretrain step (CIFAR stem, selective kernels) gives wasm\'s loss and updated weights', { skip }, async () => {
  const [wasm, webgpu] = await onEach(['wasm', 'webgpu'], () => pretrainOnce(cifarStemSk));
  assert.ok(Math.abs(webgpu.loss - wasm.loss) <= 1e-5 * wasm.loss, `loss ${webgpu.loss} vs ${wasm.loss}`);
  assert.equal(webgpu.top1, wasm.top1);
  assertClose(webgpu.state, wasm.state, STEP_TOLERANCE);
});

// Against cpu, not wasm: tfjs-backend-wasm 4.22's MaxPoolGrad is wrong for 'same' padding.
test('a pretrain step (ImageNet stem, blur) gives the cpu backend\'s loss and updated weights', { skip }, async () => {
  const [cpu, webgpu] = await onEach(['cpu', 'webgpu'], () => pretrainOnce(imagenetStem));
  assert.ok(Math.abs(webgpu.loss - cpu.loss) <= 1e-5 * cpu.loss, `loss ${webgpu.loss} vs ${cpu.loss}`);
  assertClose(webgpu.state, cpu.state, STEP_TOLERANCE);
});

test('a fine-tune step and a distillation step give wasm\'s losses and updated weights', { skip }, async () => {
  const compute = async () => {
    const teacher = buildClassifier(cifarStem, 3, 5);
    const pretrain = buildPretrainModel(cifarStem, 4);
    copyWeightsByName(pretrain, teacher);
    pretrain.dispose();
    const images = uniform([6, 16, 16, 3], 6) as tf.Tensor4D;
    const labels = [0, 1, 2, 0, 1, 2];
    const finetuner = new LarsOptimizer({ weightDecay: 0 });
    const finetune = await classifierStep(teacher, finetuner, { images, labels }, { imageSize: 16, learningRate: 0.3 }, new Rng(8));
    const teacherState = await modelState(teacher, finetuner);

    const student = buildClassifier(cifarStem, 3, 21);
    const distiller = new LarsOptimizer({ weightDecay: 1e-4 });
    const few = { images: tf.slice(images, 0, 3) as tf.Tensor4D, labels: labels.slice(0, 3) };
    const distillConfig = { imageSize: 16, learningRate: 0.1, temperature: 2, labelWeight: 0.5 };
    const distill = await distillStep(student, teacher, distiller, images, distillConfig, new Rng(9), few);
    const studentState = await modelState(student, distiller);
    tf.dispose([images, few.images]);
    [finetuner, distiller].forEach((o) => o.dispose());
    [teacher, student].forEach((m) => m.dispose());
    return { finetune, distill, teacherState, studentState };
  };
  const [wasm, webgpu] = await onEach(['wasm', 'webgpu'], compute);
  assert.ok(Math.abs(webgpu.finetune.loss - wasm.finetune.loss) <= 1e-5 * wasm.finetune.loss, `fine-tune loss ${webgpu.finetune.loss} vs ${wasm.finetune.loss}`);
  assert.equal(webgpu.finetune.accuracy, wasm.finetune.accuracy);
  for (const part of ['loss', 'distillLoss', 'labelledLoss'] as const) {
    const [gpu, reference] = [webgpu.distill[part]!, wasm.distill[part]!];
    assert.ok(Math.abs(gpu - reference) <= 1e-5 * reference, `distillation ${part} ${gpu} vs ${reference}`);
  }
  assertClose(webgpu.teacherState, wasm.teacherState, STEP_TOLERANCE);
  assertClose(webgpu.studentState, wasm.studentState, STEP_TOLERANCE);
});

test('a batch whose layer output exceeds the adapter\'s buffer limit is refused before training', { skip }, async () => {
  await initBackend('webgpu');
  const limit = bufferLimitBytes('webgpu');
  assert.equal(limit, Math.min(probe.ok ? probe.adapter.limits.maxBufferSize : 0, probe.ok ? probe.adapter.limits.maxStorageBufferBindingSize : 0));
  const model = buildPretrainModel({ depth: 18, width: 1, sk: false, imageSize: 32 }, 1);
  // The largest tensor: block2's zero-padded input (for its strided conv), 34·34·64 floats per image.
  const perImage = 34 * 34 * 64 * 4;
  const batch = 2 * Math.ceil(limit / perImage);
  const need = estimateTrainingMemory(model, 2 * batch);
  assert.equal(need.largestBufferBytes, 2 * batch * perImage);
  const fitting = Math.floor(limit / (2 * perImage));
  assert.throws(() => checkMemory({ ...need, bytes: 0 }, 'webgpu', batch), {
    name: 'UserError',
    message: new RegExp(`at batch ${batch} one layer's output is \\d+ MB, more than the \\d+ MB the GPU adapter binds as one buffer .*use --batch ${fitting} or less`),
  });
  // What chooseBatch's halving asks of each smaller batch (the total is left out: it depends on this machine's RAM).
  const bufferOnly = (images: number) => ({ ...estimateTrainingMemory(model, images), bytes: 0 });
  assert.equal(fitsMemory(bufferOnly(2 * fitting), 'webgpu'), true);
  assert.equal(fitsMemory(bufferOnly(2 * fitting + 2), 'webgpu'), false);
  assert.equal(bufferLimitBytes('wasm'), Infinity);
  model.dispose();
});

test('a tensor over the adapter\'s limits becomes a UserError when read, and the device keeps working', { skip }, async () => {
  await initBackend('webgpu');
  const limit = bufferLimitBytes('webgpu');
  const tooLarge = tf.fill([Math.floor(limit / 4) + 1024], 1.5);
  const sum = tf.sum(tooLarge);
  await assert.rejects(sum.data(), { name: 'UserError', message: /the GPU refused the step \(.*\); use a smaller --batch/ });
  tf.dispose([tooLarge, sum]);
  const fine = tf.sum(tf.fill([1000], 2));
  assert.equal((await fine.data())[0], 2000);
  fine.dispose();
});
