/**
 * ONNX exports of models trained on real photos (the 200 CIFAR-10 JPEGs in resources/sample),
 * run by onnxruntime-node on 100 of them: the probabilities must match the studio's own predict
 * path and `contrast predict`, and the export folder must describe itself correctly, down to a
 * README whose JavaScript example runs.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { initBackend } from '../../app/engine/runtime/backend.ts';
import { decodePixels } from '../../app/engine/data/dataset.ts';
import { runClassifier } from '../../app/engine/simclr/model.ts';
import { mirrorAveraged } from '../mirror_average.ts';
import { loadTrainedClassifier } from '../../app/engine/stages/stage_common.ts';
import { openProject, type Project } from '../../app/store/project.ts';
import { readOnnx } from './onnx_fixtures.ts';
import { runCli, tempDir } from './train_fixtures.ts';

const SAMPLE = path.resolve(import.meta.dirname, '../../resources/sample');
const NODE_MODULES = path.resolve(import.meta.dirname, '../../node_modules');
const CLASS_FOLDERS = fs.readdirSync(SAMPLE).filter((name) => fs.statSync(path.join(SAMPLE, name)).isDirectory()).sort();
/** The first 10 images of each of the 10 classes. */
const CHECKED = CLASS_FOLDERS.flatMap((name) => fs.readdirSync(path.join(SAMPLE, name)).sort().slice(0, 10).map((file) => path.join(SAMPLE, name, file)));

interface Trained {
  what: string;
  args: string[];
  size: number;
  runId: number;
  summary: { classes: { name: string }[]; valAccuracy: number; valImages: number; trainImages: number };
  exportDir: string;
  csv: string;
}

const MODELS: Omit<Trained, 'runId' | 'summary' | 'exportDir' | 'csv'>[] = [
  { what: 'small-stem ResNet-18 width 0.25 at 32 px', args: ['--size', '32'], size: 32 },
  // 72 px: the stem's 7x7/2 conv gives 36x36, where the 3x3/2 "same" max-pool pads only bottom/right.
  { what: 'standard-stem ResNet-18 (7x7/2 conv, max-pool) at 72 px', args: ['--size', '72'], size: 72 },
  // 18 px: feature maps of 9x9 and 5x5, so the strided SK shortcuts' 2x2 "same" average pools pad unevenly.
  { what: 'selective-kernel ResNet-18 at 18 px', args: ['--size', '18', '--sk'], size: 18 },
];

let dir: string;
let projectDir: string;
let project: Project;
const trained: Trained[] = [];

function cli(args: string[]): Record<string, unknown>[] {
  const result = runCli(args);
  assert.equal(result.code, 0, `contrast ${args.join(' ')}: ${result.stderr}`);
  return result.events;
}

before(async () => {
  dir = tempDir('contrast-onnx-');
  projectDir = path.join(dir, 'project');
  cli(['init', projectDir]);
  cli(['import', projectDir, SAMPLE, '--labels-from-folders']);
  for (const model of MODELS) {
    const events = cli(['finetune', projectDir, '--supervised', '--width', '0.25', ...model.args, '--epochs', '2', '--batch', '32', '--seed', '1', '--json']);
    const finished = events.find((e) => e.event === 'finished') as { runId: number; summary: Trained['summary'] };
    const exportDir = path.join(dir, `export-${finished.runId}`);
    cli(['export', projectDir, '--run', String(finished.runId), '--out', exportDir]);
    const csv = path.join(dir, `predictions-${finished.runId}.csv`);
    cli(['predict', projectDir, '--run', String(finished.runId), ...CHECKED, '--out', csv]);
    trained.push({ ...model, runId: finished.runId, summary: finished.summary, exportDir, csv });
  }
  project = openProject(projectDir, { readonly: true });
  await initBackend('auto');
});

after(() => project?.close());

/** Pixels as an outside program would feed model.onnx: decoded as the studio decodes them, divided by 255. */
async function onnxInput(files: string[], size: number): Promise<ort.Tensor> {
  const pixels = Buffer.concat(await Promise.all(files.map((file) => decodePixels(file, size))));
  return new ort.Tensor('float32', Float32Array.from(pixels, (v) => v / 255), [files.length, size, size, 3]);
}

async function onnxProbabilities(model: Trained, files: string[]): Promise<number[][]> {
  const session = await ort.InferenceSession.create(path.join(model.exportDir, 'model.onnx'));
  const { probabilities } = await session.run({ images: await onnxInput(files, model.size) });
  const flat = Array.from(probabilities.data as Float32Array);
  const classes = probabilities.dims[1];
  return files.map((_, i) => flat.slice(i * classes, (i + 1) * classes));
}

/** The studio's predict path: the run's classifier on the same decoded pixels, in inference mode, averaged with the mirror images. */
async function studioProbabilities(model: Trained, files: string[]): Promise<number[][]> {
  const { model: classifier } = loadTrainedClassifier(project, model.runId);
  try {
    const pixels = Buffer.concat(await Promise.all(files.map((file) => decodePixels(file, model.size))));
    const probabilities = tf.tidy(() => {
      const images = tf.div(tf.tensor4d(new Uint8Array(pixels), [files.length, model.size, model.size, 3], 'int32'), 255) as tf.Tensor4D;
      return mirrorAveraged((views) => tf.softmax(runClassifier(classifier, views, false).logits), images);
    });
    const rows = (await probabilities.array()) as number[][];
    probabilities.dispose();
    return rows;
  } finally {
    classifier.dispose();
  }
}

const argMax = (p: number[]) => p.indexOf(Math.max(...p));

for (const [index, model] of MODELS.entries()) {
  test(`onnxruntime on the ONNX export of a trained ${model.what} matches the studio's predictions on 100 real images`, async (t) => {
    const run = trained[index];
    const classes = run.summary.classes.map((c) => c.name);
    const fromOnnx = await onnxProbabilities(run, CHECKED);
    const fromStudio = await studioProbabilities(run, CHECKED);
    assert.equal(fromOnnx.length, 100);
    let maxDiff = 0;
    fromOnnx.forEach((p, i) => p.forEach((value, c) => (maxDiff = Math.max(maxDiff, Math.abs(value - fromStudio[i][c])))));
    t.diagnostic(`max |onnxruntime - studio| over 100 x ${classes.length} probabilities: ${maxDiff.toExponential(2)}`);
    assert.ok(maxDiff < 1e-4, `max difference ${maxDiff}`);

    const rows = fs.readFileSync(run.csv, 'utf8').trim().split('\n').slice(1).map((line) => line.split(','));
    assert.deepEqual(rows.map((r) => r[0]), CHECKED, '`contrast predict` rows in the order given');
    rows.forEach(([file, predicted, confidence], i) => {
      const best = argMax(fromOnnx[i]);
      assert.equal(classes[best], predicted, `top-1 of ${file}`);
      assert.equal(argMax(fromStudio[i]), best, `studio top-1 of ${file}`);
      assert.ok(Math.abs(Number(confidence) - fromOnnx[i][best]) < 1e-4, `${file}: confidence ${confidence} vs ${fromOnnx[i][best]}`);
    });
    assert.ok(new Set(rows.map((r) => r[1])).size >= 2, 'a trained model, not one answer for every image');
  });
}

function runJavascriptExample(exportDir: string, readme: string, photo: string): string {
  const example = /```js\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(example, 'README has a JavaScript example');
  fs.writeFileSync(path.join(exportDir, 'predict.mjs'), example);
  fs.copyFileSync(photo, path.join(exportDir, 'photo.jpg'));
  fs.symlinkSync(NODE_MODULES, path.join(exportDir, 'node_modules'));
  const result = spawnSync(process.execPath, ['predict.mjs'], { cwd: exportDir, encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout.trim();
}

test('the export folder describes itself: labels.json, ONNX metadata and a README whose example runs', async () => {
  const run = trained[1];
  const size = run.size;
  assert.deepEqual(fs.readdirSync(run.exportDir).sort(), ['README.md', 'labels.json', 'model.json', 'model.onnx', 'weights.bin']);
  const runRecord = (cli(['runs', projectDir, '--json'])[0] as unknown as { id: number; finishedAt: string }[]).find((r) => r.id === run.runId)!;
  const classes = run.summary.classes.map((c) => c.name);
  assert.deepEqual(classes, CLASS_FOLDERS);

  const labels = JSON.parse(fs.readFileSync(path.join(run.exportDir, 'labels.json'), 'utf8'));
  assert.deepEqual(labels.classes, classes);
  assert.equal(labels.runId, run.runId);
  assert.equal(labels.kind, 'finetune');
  assert.deepEqual(labels.metrics, { valAccuracy: run.summary.valAccuracy, valImages: 20, trainImages: 180, epochs: 2 });
  assert.equal(labels.trainedAt, runRecord.finishedAt);
  assert.ok(Date.now() - Date.parse(labels.exportedAt) < 10 * 60_000, `exported at ${labels.exportedAt}`);
  assert.deepEqual(labels.architecture, { depth: 18, width: 0.25, sk: false, imageSize: size });
  assert.equal(labels.input.name, 'images');
  assert.deepEqual(labels.input.shape, [null, size, size, 3]);
  const preprocessing = labels.input.preprocessing;
  assert.equal(preprocessing.size, size);
  assert.equal(preprocessing.scale, 1 / 255);
  assert.deepEqual([preprocessing.mean, preprocessing.std], [[0, 0, 0], [1, 1, 1]]);
  assert.deepEqual(preprocessing.resize, { fit: 'cover', position: 'centre', kernel: 'lanczos3', library: 'sharp (libvips)' });
  assert.equal(preprocessing.layout, 'NHWC');

  const onnxModel = readOnnx(fs.readFileSync(path.join(run.exportDir, 'model.onnx')));
  const metadata = onnxModel.metadata;
  assert.deepEqual(JSON.parse(metadata.classes), classes);
  assert.deepEqual(JSON.parse(metadata.preprocessing), preprocessing);
  assert.deepEqual(JSON.parse(metadata.metrics), labels.metrics);
  assert.deepEqual([metadata.input_name, metadata.input_layout, metadata.output_name, metadata.run_id, metadata.run_kind], ['images', 'NHWC', 'probabilities', String(run.runId), 'finetune']);
  assert.equal(onnxModel.opset, 13);
  assert.deepEqual(onnxModel.inputDims, ['batch', size, size, 3]);
  assert.deepEqual(onnxModel.outputDims, ['batch', 10]);
  assert.deepEqual(onnxModel.nodes.find((n) => n.op === 'MaxPool')?.pads, [0, 0, 1, 1], 'the stem max-pool pads 36x36 on the bottom/right only');
  assert.ok(!onnxModel.nodes.some((n) => n.op === 'BatchNormalization'), 'batch norms folded into the layers before them');

  const readme = fs.readFileSync(path.join(run.exportDir, 'README.md'), 'utf8');
  assert.match(readme, new RegExp(`^# Image classifier: run ${run.runId} \\(finetune\\)`));
  assert.ok(readme.includes(`| validation accuracy | ${(100 * run.summary.valAccuracy).toFixed(1)}% on 20 images |`));
  assert.ok(readme.includes(`| run | ${run.runId} (finetune), finished ${runRecord.finishedAt} |`));
  assert.ok(readme.includes(classes.map((name, i) => `${i}. ${name}`).join('\n')), 'classes listed in output order');
  assert.ok(readme.includes(`scale the image so its shorter side is ${size} px (Lanczos-3), then keep the centred ${size}x${size} square`));
  assert.ok(readme.includes(`ImageOps.fit(image, (${size}, ${size}), Image.Resampling.LANCZOS)`), 'the Python example resizes to the input size');
  assert.ok(readme.includes('session.run(["probabilities"], {"images": images})'));
  assert.ok(readme.includes('average `model.predict(x)` and `model.predict(tf.reverse(x, 2))`'), 'says how to match the studio with the TF.js model');

  const photo = CHECKED[37];
  const [printedClass, printedProbability] = runJavascriptExample(run.exportDir, readme, photo).split(' ');
  const [expected] = await onnxProbabilities(run, [photo]);
  assert.equal(printedClass, classes[argMax(expected)]);
  assert.ok(Math.abs(Number(printedProbability) - Math.max(...expected)) < 1e-6, `${printedProbability} vs ${Math.max(...expected)}`);
});
