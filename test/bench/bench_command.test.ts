import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '../../app/cli.ts';
import { probeWebGpu } from '../../app/engine/runtime/webgpu_backend.ts';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t), tty: false }, out, err };
}

test('bench train --json reports both sides, the ratio, and no tensor growth', async () => {
  const { io, out } = capture();
  const code = await main(['bench', 'train', '--width', '0.0625', '--size', '16', '--batch', '4', '--steps', '2', '--warmup', '1', '--threads', '1', '--json'], io);
  assert.equal(code, 0);
  const report = JSON.parse(out.join(''));
  assert.equal(report.mode, 'train');
  assert.equal(report.batch, 4);
  assert.equal(report.engine.stepSeconds.length, 2);
  assert.ok(report.engine.imagesPerSecond > 0);
  assert.equal(report.engine.tensors.growth, 0);
  assert.ok(report.engine.peakRssMb > 0);
  if (report.pytorch) {
    assert.equal(report.pytorch.stepSeconds.length, 2);
    assert.equal(report.ratio, report.engine.imagesPerSecond / report.pytorch.imagesPerSecond);
  } else {
    assert.match(report.pytorchSkipped, /torch|reference/);
    assert.equal(report.ratio, null);
  }
});

const webgpu = await probeWebGpu(true);

test('bench train --backend webgpu names the adapter and holds tensors and GPU buffers steady', { skip: webgpu.ok ? false : `no WebGPU adapter: ${webgpu.reason}` }, async () => {
  const { io, out } = capture();
  const code = await main(['bench', 'train', '--backend', 'webgpu', '--width', '0.0625', '--size', '16', '--batch', '4', '--steps', '3', '--warmup', '2', '--json'], io);
  assert.equal(code, 0);
  const report = JSON.parse(out.join(''));
  assert.equal(report.engine.backend, 'webgpu');
  assert.match(report.engine.device, /^GPU \(.+\)$/);
  assert.ok(report.engine.imagesPerSecond > 0);
  assert.equal(report.engine.tensors.growth, 0);
  assert.equal(report.engine.gpuBuffers.inUse.growth, 0);
  assert.ok(report.engine.gpuBuffers.inUse.last >= report.engine.tensors.last * 0.5, 'most live tensors sit in GPU buffers');
});

test('bench infer prints a readable summary', async () => {
  const { io, out } = capture();
  const code = await main(['bench', 'infer', '--width', '0.0625', '--size', '16', '--batch', '4', '--steps', '2', '--warmup', '1', '--threads', '1'], io);
  assert.equal(code, 0);
  const text = out.join('');
  assert.match(text, /ResNet-18 width 0.0625, 16 px, encoder forward, 4 images/);
  assert.match(text, /engine +[\d.]+ img\/s/);
  assert.match(text, /pytorch +([\d.]+ img\/s|skipped: )/);
});

test('bench finetune times the labels-only classifier step next to the same step in PyTorch, leaking nothing', async () => {
  const { io, out } = capture();
  const code = await main(['bench', 'finetune', '--width', '0.0625', '--size', '16', '--batch', '8', '--steps', '2', '--warmup', '1', '--threads', '1', '--json'], io);
  assert.equal(code, 0);
  const result = JSON.parse(out.join(''));
  assert.equal(result.mode, 'finetune');
  assert.ok(result.engine.imagesPerSecond > 0);
  assert.equal(result.engine.tensors.growth, 0);
  assert.ok(result.pytorch === null ? /torch/.test(result.pytorchSkipped) : result.pytorch.imagesPerSecond > 0, JSON.stringify(result.pytorchSkipped));
});

test('bench rejects an unknown mode, architecture or backend with a usage error', async () => {
  for (const [args, message] of [
    [['bench', 'fly'], /expected one of train, finetune, infer, got "fly"/],
    [['bench', 'train', '--arch', 'vgg'], /--arch must be one of resnet18, resnet34, resnet50, got "vgg"/],
    [['bench', 'train', '--backend', 'gpu'], /--backend must be one of auto, tensorflow, webgpu, wasm, cpu, got "gpu"/],
    [['bench', 'train', '--batch', '1'], /--batch must be a number between 2 and 4096/],
  ] as const) {
    const { io, err } = capture();
    assert.equal(await main([...args], io), 2, args.join(' '));
    assert.match(err.join(''), message);
  }
});
