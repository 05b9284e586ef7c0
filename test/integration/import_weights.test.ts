/**
 * `contrast import-weights` against PyTorch itself: random-weight ResNets built by PyTorch 1.13
 * (test/reference/torch_weights.py: torchvision's resnet18/resnet50 at width 1, the same modules at
 * other widths, and the SimCLRv2 conversion's layout with and without selective kernels) are saved
 * as .pth and .safetensors, imported, and `contrast embed` must give PyTorch's features on 8 real
 * photos from resources/sample (PyTorch computing in float64) within 1e-4 relative. Then a network
 * imported at another size fine-tunes, and its fine-tuned model exports to ONNX with the padding
 * and input normalisation inside, and our own TF.js export imports back as the same encoder.
 *
 * Skipped, with the reason, where /usr/bin/python3 has no torch and torchvision (.ci/run installs them).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { decodePixels } from '../../app/engine/data/dataset.ts';
import { initBackend } from '../../app/engine/runtime/backend.ts';
import { runClassifier } from '../../app/engine/simclr/model.ts';
import { mirrorAveraged } from '../mirror_average.ts';
import { loadTrainedClassifier } from '../../app/engine/stages/stage_common.ts';
import { openProject } from '../../app/store/project.ts';
import { cliSucceeds, runCli, SAMPLE_IMAGES, sampleProject, TORCH_PYTHON, whyTorchCannotRun } from './train_fixtures.ts';

const REFERENCE = path.resolve(import.meta.dirname, '../reference/torch_weights.py');
/** The first photo of each of 8 classes. */
const PHOTOS = fs.readdirSync(SAMPLE_IMAGES).filter((name) => fs.statSync(path.join(SAMPLE_IMAGES, name)).isDirectory()).sort().slice(0, 8)
  .map((name) => path.join(SAMPLE_IMAGES, name, fs.readdirSync(path.join(SAMPLE_IMAGES, name)).sort()[0]));
const TOLERANCE = 1e-4;

const torchMissing = whyTorchCannotRun(['torch', 'torchvision'], 'python3-torch python3-torchvision');

interface Case {
  what: string;
  layout: 'torchvision' | 'simclrv2';
  depth: 18 | 50;
  width: number;
  sk: boolean;
  format: 'pth' | 'safetensors';
  /** Undefined: the import's default, 224. */
  size?: number;
}

const CASES: Case[] = [
  { what: 'torchvision resnet18, .pth, 224 px by default', layout: 'torchvision', depth: 18, width: 1, sk: false, format: 'pth' },
  { what: 'torchvision resnet50, .safetensors, 224 px by default', layout: 'torchvision', depth: 50, width: 1, sk: false, format: 'safetensors' },
  { what: 'torchvision-layout ResNet-18 ×0.5, .safetensors, 97 px', layout: 'torchvision', depth: 18, width: 0.5, sk: false, format: 'safetensors', size: 97 },
  { what: 'torchvision-layout ResNet-50 ×0.5, .pth, 64 px (the standard stem kept at a small size)', layout: 'torchvision', depth: 50, width: 0.5, sk: false, format: 'pth', size: 64 },
  { what: 'SimCLRv2-layout ResNet-50 ×0.25 with selective kernels, .pth, 96 px', layout: 'simclrv2', depth: 50, width: 0.25, sk: true, format: 'pth', size: 96 },
  { what: 'SimCLRv2-layout ResNet-50 ×0.25, .safetensors, 97 px', layout: 'simclrv2', depth: 50, width: 0.25, sk: false, format: 'safetensors', size: 97 },
];

let dir: string;
let projectDir: string;


/** The photos as the engine decodes them, for PyTorch to read. */
async function writePixels(file: string, size: number): Promise<void> {
  fs.writeFileSync(file, Buffer.concat(await Promise.all(PHOTOS.map((photo) => decodePixels(photo, size)))));
}

/** Builds, saves and runs the network in PyTorch; returns its float64 features and its own float32 error. */
async function torchReference(c: Case, prefix: string): Promise<{ features: Float32Array; torchFloat32Error: number[] }> {
  const size = c.size ?? 224;
  const pixels = `${prefix}.pixels.bin`;
  await writePixels(pixels, size);
  const result = spawnSync(TORCH_PYTHON, [REFERENCE, c.layout, String(c.depth), String(c.width), c.sk ? '1' : '0', prefix, pixels, String(PHOTOS.length), String(size)], { encoding: 'utf8', timeout: 600_000 });
  assert.equal(result.status, 0, result.stderr);
  const bytes = fs.readFileSync(`${prefix}.features.bin`);
  return { features: new Float32Array(new Uint8Array(bytes).buffer), torchFloat32Error: JSON.parse(result.stdout).torchFloat32Error };
}

function readFeaturesCsv(file: string): { paths: string[]; rows: number[][] } {
  const [header, ...lines] = fs.readFileSync(file, 'utf8').trim().split('\n');
  assert.match(header, /^path,f0,f1,/);
  return { paths: lines.map((line) => line.split(',')[0]), rows: lines.map((line) => line.split(',').slice(1).map(Number)) };
}

/** Per image: the largest difference over the largest reference value. */
function relativeErrors(rows: number[][], reference: Float32Array): number[] {
  const width = reference.length / rows.length;
  assert.equal(rows[0].length, width, 'feature width');
  return rows.map((row, n) => {
    const ref = reference.subarray(n * width, (n + 1) * width);
    return Math.max(...row.map((v, j) => Math.abs(v - ref[j]))) / Math.max(...Array.from(ref, Math.abs));
  });
}

function importWeights(file: string, args: string[] = []): { runId: number; network: string; layout: string; headLayers: string[] } {
  return JSON.parse(cliSucceeds(['import-weights', projectDir, file, '--json', ...args]));
}

before(() => {
  ({ dir, projectDir } = sampleProject('contrast-import-weights-'));
});

test('the command line says in one line why a file is refused, exits 1 and records no run', () => {
  const fixtures = path.resolve(import.meta.dirname, '../fixtures/weights');
  const evil = runCli(['import-weights', projectDir, path.join(fixtures, 'evil.pth')]);
  assert.equal(evil.code, 1);
  assert.match(evil.stderr, /^contrast import-weights: the checkpoint's pickle asks for posix\.system; .* nothing in it was run\n$/);
  const notResnet = runCli(['import-weights', projectDir, path.join(fixtures, 'not_resnet.pth')]);
  assert.equal(notResnet.code, 1);
  assert.match(notResnet.stderr, /is not a ResNet this version reads: found 11 tensors/);
  const badSize = runCli(['import-weights', projectDir, path.join(fixtures, 'tiny_resnet18.pth'), '--size', '7']);
  assert.equal(badSize.code, 2);
  assert.match(cliSucceeds(['runs', projectDir]), /no runs yet/);
});

for (const c of CASES) {
  test(`${c.what}: contrast embed gives PyTorch's features within ${TOLERANCE} relative`, { skip: torchMissing }, async (t) => {
    const prefix = path.join(dir, `${c.layout}-${c.depth}-${c.width}-${c.sk ? 'sk' : 'plain'}`);
    const reference = await torchReference(c, prefix);
    const imported = importWeights(`${prefix}.${c.format}`, c.size ? ['--size', String(c.size)] : []);
    assert.equal(imported.layout, c.layout);
    assert.match(imported.network, new RegExp(`^ResNet-${c.depth} ×${c.width}${c.sk ? ' SK' : ''}, ${c.size ?? 224} px`));
    assert.equal(imported.headLayers.length, c.layout === 'simclrv2' ? 6 : 0, 'the SimCLRv2 projection head comes along');
    const csv = `${prefix}.csv`;
    cliSucceeds(['embed', projectDir, '--run', String(imported.runId), ...PHOTOS, '--out', csv]);
    const { paths, rows } = readFeaturesCsv(csv);
    assert.deepEqual(paths, PHOTOS);
    const errors = relativeErrors(rows, reference.features);
    t.diagnostic(`ours vs PyTorch float64: worst ${Math.max(...errors).toExponential(2)}; PyTorch float32 vs float64: worst ${Math.max(...reference.torchFloat32Error).toExponential(2)}`);
    errors.forEach((error, n) => assert.ok(error < TOLERANCE, `${PHOTOS[n]}: relative difference ${error}`));
  });
}

test('a network imported at another size fine-tunes; its classifier exports to ONNX with the padding and normalisation inside, and our export imports back', { skip: torchMissing, timeout: 900_000 }, async (t) => {
  const prefix = path.join(dir, 'torchvision-18-0.5-plain');
  if (!fs.existsSync(`${prefix}.pth`)) await torchReference(CASES[2], prefix);
  const imported = importWeights(`${prefix}.pth`, ['--size', '48', '--name', 'ImageNet R18 half']);
  assert.match(imported.network, /^ResNet-18 ×0\.5, 48 px, ImageNet mean\/std input$/);
  const finetuned = JSON.parse(cliSucceeds(['finetune', projectDir, '--from', String(imported.runId), '--epochs', '1', '--batch', '32', '--seed', '3', '--json']).trim().split('\n').at(-1)!);
  assert.equal(finetuned.event, 'finished');
  assert.equal(finetuned.status, 'done');
  assert.equal(typeof finetuned.summary.valAccuracy, 'number');

  const exportDir = path.join(dir, 'export');
  cliSucceeds(['export', projectDir, '--run', String(finetuned.runId), '--out', exportDir]);
  const labels = JSON.parse(fs.readFileSync(path.join(exportDir, 'labels.json'), 'utf8'));
  assert.equal(labels.architecture.padding, 'torch');
  assert.deepEqual(labels.architecture.inputNormalization.std, [0.229, 0.224, 0.225]);

  await initBackend('wasm');
  const project = openProject(projectDir, { readonly: true });
  const { model } = loadTrainedClassifier(project, finetuned.runId);
  project.close();
  const pixels = Float32Array.from(Buffer.concat(await Promise.all(PHOTOS.map((photo) => decodePixels(photo, 48)))), (v) => v / 255);
  const images = tf.tensor4d(pixels, [PHOTOS.length, 48, 48, 3]);
  const ours = tf.tidy(() => mirrorAveraged((views) => tf.softmax(runClassifier(model, views, false).logits), images).arraySync());
  images.dispose();
  model.dispose();
  const session = await ort.InferenceSession.create(path.join(exportDir, 'model.onnx'));
  const output = await session.run({ images: new ort.Tensor('float32', pixels, [PHOTOS.length, 48, 48, 3]) });
  const onnx = output.probabilities.data as Float32Array;
  const worst = Math.max(...ours.flat().map((p, i) => Math.abs(p - onnx[i])));
  t.diagnostic(`ONNX vs TF.js probabilities: largest difference ${worst.toExponential(2)}`);
  assert.ok(worst < 1e-5, `ONNX and TF.js differ by ${worst}`);

  const reimported = importWeights(exportDir);
  assert.equal(reimported.layout, 'contrast');
  assert.deepEqual(reimported.headLayers, ['head_dense1', 'head_bn1']);
  const [fromFinetune, fromExport] = [finetuned.runId, reimported.runId].map((runId) => {
    const csv = path.join(dir, `roundtrip-${runId}.csv`);
    cliSucceeds(['embed', projectDir, '--run', String(runId), ...PHOTOS, '--out', csv]);
    return readFeaturesCsv(csv).rows;
  });
  assert.deepEqual(fromExport, fromFinetune, 'the re-imported export computes exactly the fine-tuned encoder');
});
