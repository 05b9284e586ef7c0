/**
 * The whole pipeline through the CLI on a tiny two-class image set: pretrain → finetune →
 * distill → evaluate → predict → export, and the exported model loaded by plain TF.js over HTTP.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { decodePixels } from '../../app/engine/data/dataset.ts';
import { runCli, shapesProject } from './train_fixtures.ts';
import { mirrorAveraged } from '../mirror_average.ts';

const SEEDED = ['--seed', '3', '--json'];

function finished(events: Record<string, unknown>[]): Record<string, unknown> {
  const event = events.find((e) => e.event === 'finished');
  assert.ok(event, 'a finished event');
  return event;
}

/** Serves a folder over HTTP, the way a web page would fetch an exported model. */
async function serve(dir: string): Promise<{ url: string; close: () => void }> {
  const server = http.createServer((request, response) => {
    const file = path.join(dir, path.basename(new URL(request.url!, 'http://x').pathname));
    if (!fs.existsSync(file)) return void response.writeHead(404).end();
    response.writeHead(200).end(fs.readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, close: () => server.close() };
}

test('pretrain → finetune → distill → evaluate → predict → export through the CLI', async () => {
  const { dir, project } = await shapesProject(100, 40);

  const pretrain = runCli(['pretrain', project, '--size', '16', '--width', '0.125', '--batch', '64', '--epochs', '2', ...SEEDED]);
  assert.equal(pretrain.code, 0, pretrain.stderr);
  const pretrainRun = finished(pretrain.events);
  assert.equal(pretrainRun.status, 'done');
  assert.ok(pretrain.events.some((e) => e.event === 'progress' && e.phase === 'training'), 'training progress is reported');
  assert.equal(pretrain.events.filter((e) => e.event === 'epoch').length, 2);

  const finetune = runCli(['finetune', project, '--batch', '16', '--epochs', '10', ...SEEDED]);
  assert.equal(finetune.code, 0, finetune.stderr);
  const finetuneSummary = finished(finetune.events).summary as { valAccuracy: number; valImages: number; classes: { name: string }[] };
  assert.deepEqual(finetuneSummary.classes.map((c) => c.name).sort(), ['cool', 'warm']);
  assert.equal(finetuneSummary.valImages, 8, 'a tenth of each class\'s 40 labels');
  assert.ok(finetuneSummary.valAccuracy > 0.5, `fine-tuned val accuracy ${finetuneSummary.valAccuracy} beats chance`);
  const finetuneId = finished(finetune.events).runId as number;

  const distill = runCli(['distill', project, '--batch', '64', '--epochs', '1', ...SEEDED]);
  assert.equal(distill.code, 0, distill.stderr);
  const distillRun = finished(distill.events);
  assert.equal(distillRun.status, 'done');
  assert.equal((distill.events.find((e) => e.event === 'created') as { parentId: number }).parentId, finetuneId);

  const evaluate = runCli(['evaluate', project, '--run', String(finetuneId), '--json']);
  assert.equal(evaluate.code, 0, evaluate.stderr);
  const evaluation = finished(evaluate.events).summary as { accuracy: number; confusion: number[][]; perClass: unknown[]; images: number };
  assert.equal(evaluation.accuracy, finetuneSummary.valAccuracy, 'evaluation repeats the best epoch’s val accuracy');
  assert.equal(evaluation.confusion.flat().reduce((a, b) => a + b, 0), evaluation.images);
  assert.equal(evaluation.perClass.length, 2);

  const csv = path.join(dir, 'preds.csv');
  const warmFolder = path.join(dir, 'images', 'warm');
  const predict = runCli(['predict', project, '--run', String(finetuneId), warmFolder, '--out', csv]);
  assert.equal(predict.code, 0, predict.stderr);
  const rows = fs.readFileSync(csv, 'utf8').trim().split('\n');
  assert.equal(rows[0], 'path,predicted,confidence,second,second_confidence,third,third_confidence', 'the first three columns as before, then the runners-up');
  assert.equal(rows.length, 101);
  assert.ok(rows[1].startsWith(path.join(warmFolder, 'warm-000.png') + ','));

  const exportDir = path.join(dir, 'export');
  const exported = runCli(['export', project, '--run', String(finetuneId), '--out', exportDir]);
  assert.equal(exported.code, 0, exported.stderr);
  const labels = JSON.parse(fs.readFileSync(path.join(exportDir, 'labels.json'), 'utf8'));
  assert.deepEqual(labels.classes, finetuneSummary.classes.map((c) => c.name));
  const server = await serve(exportDir);
  try {
    await tf.setBackend('cpu');
    const model = await tf.loadLayersModel(`${server.url}/model.json`);
    const pixels = await decodePixels(path.join(warmFolder, 'warm-000.png'), 16);
    const image = tf.div(tf.tensor4d(new Uint8Array(pixels), [1, 16, 16, 3], 'int32'), 255) as tf.Tensor4D;
    // The bundle README's recipe for the studio's probabilities: average the image and its mirror image.
    const probabilities = (await mirrorAveraged((views) => model.predict(views) as tf.Tensor, image).data()) as Float32Array;
    assert.equal(probabilities.length, 2);
    assert.ok(Math.abs(probabilities[0] + probabilities[1] - 1) < 1e-5);
    const [, predicted, confidence] = rows[1].split(',');
    const best = probabilities[0] > probabilities[1] ? 0 : 1;
    assert.equal(labels.classes[best], predicted, 'the exported model predicts what the project’s model predicts');
    assert.equal(probabilities[best].toFixed(6), confidence);
  } finally {
    server.close();
  }

  const listing = runCli(['runs', project, '--json']);
  assert.equal(listing.code, 0, listing.stderr);
  const runs = listing.events[0] as unknown as { kind: string; status: string; parentId: number | null }[];
  assert.deepEqual(runs.map((r) => [r.kind, r.status]), [['pretrain', 'done'], ['finetune', 'done'], ['distill', 'done'], ['evaluate', 'done']]);
});
