import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { diagnoseBackends, explainNativeFailure, initBackend } from '../../app/engine/runtime/backend.ts';
import { probeWebGpu } from '../../app/engine/runtime/webgpu_backend.ts';
import { UserError } from '../../app/contract/errors.ts';

function installed(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

test('forcing wasm activates it, registers the filter-gradient kernel, and is idempotent', async () => {
  const first = await initBackend('wasm');
  assert.equal(first.backend, 'wasm');
  assert.equal(tf.getBackend(), 'wasm');
  assert.match(first.device, /^CPU \(wasm/);
  assert.ok(tf.getKernel('Conv2DBackpropFilter', 'wasm'), 'Conv2DBackpropFilter registered for wasm');
  const second = await initBackend('wasm');
  assert.deepEqual(second, first);
});

test('wasm runs our kernels on every core (at most 8) through the threaded build', async () => {
  const { device } = await initBackend('wasm');
  const expected = Math.min(availableParallelism(), 8);
  assert.equal(device, `CPU (wasm SIMD, ${expected} thread${expected === 1 ? '' : 's'})`);
});

test('forcing cpu works and a later auto call picks a fast backend again', async () => {
  assert.equal((await initBackend('cpu')).backend, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
  const auto = await initBackend('auto');
  assert.notEqual(auto.backend, 'cpu');
});

test('auto explains why each faster backend was skipped', { skip: installed('@tensorflow/tfjs-node') }, async () => {
  await initBackend('cpu');
  const info = await initBackend('auto');
  const hardwareWebGpu = (await probeWebGpu(false)).ok;
  assert.equal(info.backend, hardwareWebGpu ? 'webgpu' : 'wasm');
  assert.ok(info.notes.includes('@tensorflow/tfjs-node-gpu not installed'), info.notes.join('; '));
  if (hardwareWebGpu) return;
  assert.ok(info.notes.some((note) => /webgpu|adapter/.test(note)), info.notes.join('; '));
  assert.ok(info.notes.includes('@tensorflow/tfjs-node not installed'), info.notes.join('; '));
});

test('forcing an absent native backend is a UserError naming the missing package', { skip: installed('@tensorflow/tfjs-node') }, async () => {
  await assert.rejects(initBackend('tensorflow'), (error: unknown) => {
    assert.ok(error instanceof UserError);
    assert.match(error.message, /backend "tensorflow" is not available: .*tfjs-node not installed/);
    return true;
  });
});

test('native load failures become actionable reasons', () => {
  const missingCuda = new Error('libcudart.so.11.0: cannot open shared object file: No such file or directory');
  assert.equal(explainNativeFailure('@tensorflow/tfjs-node-gpu', missingCuda),
    'libcudart.so.11.0 missing: @tensorflow/tfjs-node-gpu 4.x needs CUDA 11.2 and cuDNN 8.1 on the library path');
  const notInstalled = Object.assign(new Error("Cannot find package '@tensorflow/tfjs-node'"), { code: 'ERR_MODULE_NOT_FOUND' });
  assert.equal(explainNativeFailure('@tensorflow/tfjs-node', notInstalled), '@tensorflow/tfjs-node not installed');
  const brokenBinding = new Error('libtensorflow.so.2: cannot open shared object file');
  assert.match(explainNativeFailure('@tensorflow/tfjs-node', brokenBinding), /^libtensorflow\.so\.2 could not be loaded: reinstall/);
});

test('diagnoseBackends lists every candidate without switching the active backend', async () => {
  await initBackend('wasm');
  const report = await diagnoseBackends();
  assert.deepEqual(report.candidates.map((c) => c.package),
    ['@tensorflow/tfjs-node-gpu', 'webgpu (Dawn)', '@tensorflow/tfjs-node', '@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs (built in)']);
  const wasm = report.candidates.find((c) => c.backend === 'wasm')!;
  assert.equal(wasm.usable, true);
  for (const c of report.candidates) assert.ok(c.usable || c.reason, `${c.package} has a reason`);
  assert.ok(report.notes.some((n) => n.startsWith('wasm SIMD: ')));
  assert.equal(tf.getBackend(), 'wasm');
});

test('contrast doctor lists every candidate and the backend training will use', async () => {
  const { main } = await import('../../app/cli.ts');
  const out: string[] = [];
  const code = await main(['doctor', '--json'], { out: (t) => out.push(t), err: () => {}, tty: false });
  assert.equal(code, 0);
  const report = JSON.parse(out.join(''));
  assert.equal(report.candidates.length, 5);
  assert.ok(['tensorflow', 'webgpu', 'wasm', 'cpu'].includes(report.recommended));
  const text: string[] = [];
  await main(['doctor'], { out: (t) => text.push(t), err: () => {}, tty: false });
  assert.match(text.join(''), /training will use: (tensorflow|webgpu|wasm|cpu)\n$/);
});
