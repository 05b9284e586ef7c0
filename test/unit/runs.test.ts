import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { openProject, type Project } from '../../app/store/project.ts';
import { tempDir } from '../integration/train_fixtures.ts';
import { parseTrainOptions, planTrainingRun } from '../../app/engine/stage_config.ts';
import {
  addCheckpoint,
  appendMetrics,
  bestCheckpoint,
  childRuns,
  clearRunOutputs,
  createRun,
  finishRun,
  getRun,
  isResumable,
  latestCheckpoint,
  latestDoneRun,
  markInterruptedRuns,
  markRunning,
  mergeSummary,
  metricSeries,
  modelCheckpoint,
  readEmbeddings,
  readPredictions,
  requireRun,
  runLineage,
  truncateMetricsAfter,
  writeEmbeddings,
  writePredictions,
} from '../../app/store/runs.ts';

function tempProject(): Project {
  return openProject(tempDir('runs-test-'), { create: true });
}

const where = { pid: process.pid, backend: 'cpu', device: 'test cpu' };

test('a run goes queued → running → done and keeps its config, backend and summary', () => {
  const project = tempProject();
  const id = createRun(project.db, 'pretrain', null, { epochs: 3, imageSize: 32 });
  assert.equal(getRun(project.db, id)!.status, 'queued');
  markRunning(project.db, id, where);
  const running = getRun(project.db, id)!;
  assert.equal(running.status, 'running');
  assert.equal(running.pid, process.pid);
  assert.equal(running.backend, 'cpu');
  assert.ok(running.startedAt);
  finishRun(project.db, id, 'done', { summary: { loss: 1.5 } });
  const done = getRun(project.db, id)!;
  assert.deepEqual(done.config, { epochs: 3, imageSize: 32 });
  assert.deepEqual(done.summary, { loss: 1.5 });
  assert.equal(done.status, 'done');
  assert.equal(done.pid, null);
  assert.ok(done.finishedAt);
  project.close();
});

test('illegal status changes throw and leave the run as it was', () => {
  const project = tempProject();
  const id = createRun(project.db, 'pretrain', null, {});
  assert.throws(() => finishRun(project.db, id, 'done'), /cannot go from queued to done/);
  markRunning(project.db, id, where);
  finishRun(project.db, id, 'failed', { error: 'boom' });
  assert.throws(() => markRunning(project.db, id, where), /cannot go from failed to running/);
  const run = getRun(project.db, id)!;
  assert.equal(run.status, 'failed');
  assert.equal(run.error, 'boom');
  project.close();
});

test('only interrupted and cancelled runs are resumable', () => {
  assert.deepEqual(
    (['queued', 'running', 'done', 'failed', 'cancelled', 'interrupted'] as const).filter(isResumable),
    ['cancelled', 'interrupted'],
  );
});

test('a cancelled run can run again and keeps its first start time', () => {
  const project = tempProject();
  const id = createRun(project.db, 'finetune', null, {});
  markRunning(project.db, id, where);
  const firstStart = getRun(project.db, id)!.startedAt;
  finishRun(project.db, id, 'cancelled');
  markRunning(project.db, id, where);
  const resumed = getRun(project.db, id)!;
  assert.equal(resumed.status, 'running');
  assert.equal(resumed.startedAt, firstStart);
  assert.equal(resumed.finishedAt, null);
  project.close();
});

test('requireRun names the missing id in a user error', () => {
  const project = tempProject();
  assert.throws(() => requireRun(project.db, 42), { name: 'UserError', message: /no run 42/ });
  project.close();
});

test('a running run whose process died is marked interrupted; a live one is left alone', () => {
  const project = tempProject();
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  const deadPid = Number(dead.stdout.toString());
  const crashed = createRun(project.db, 'pretrain', null, {});
  markRunning(project.db, crashed, { ...where, pid: deadPid });
  const live = createRun(project.db, 'pretrain', null, {});
  markRunning(project.db, live, where);
  assert.deepEqual(markInterruptedRuns(project.db), [crashed]);
  assert.equal(getRun(project.db, crashed)!.status, 'interrupted');
  assert.equal(getRun(project.db, live)!.status, 'running');
  project.close();
});

test('lineage walks parents oldest first; latestDoneRun picks the last finished run of the kinds asked', () => {
  const project = tempProject();
  const pretrain = createRun(project.db, 'pretrain', null, {});
  const finetune = createRun(project.db, 'finetune', pretrain, {});
  const distill = createRun(project.db, 'distill', finetune, {});
  assert.deepEqual(runLineage(project.db, distill).map((r) => r.id), [pretrain, finetune, distill]);
  assert.deepEqual(childRuns(project.db, pretrain).map((r) => r.id), [finetune]);
  assert.equal(latestDoneRun(project.db, ['finetune']), undefined);
  for (const id of [pretrain, finetune, distill]) {
    markRunning(project.db, id, where);
    finishRun(project.db, id, 'done');
  }
  assert.equal(latestDoneRun(project.db, ['finetune'])!.id, finetune);
  assert.equal(latestDoneRun(project.db, ['finetune', 'distill'])!.id, distill);
  project.close();
});

test('metrics append per step, skip non-finite values and truncate after a checkpoint step', () => {
  const project = tempProject();
  const id = createRun(project.db, 'pretrain', null, {});
  appendMetrics(project.db, id, 1, 0.1, { loss: 4, lr: 0.1 });
  appendMetrics(project.db, id, 2, 0.2, { loss: 3, lr: Number.NaN });
  appendMetrics(project.db, id, 3, 0.3, { loss: 2 });
  assert.deepEqual(metricSeries(project.db, id, 'loss').map((p) => p.value), [4, 3, 2]);
  assert.deepEqual(metricSeries(project.db, id, 'lr').map((p) => p.step), [1]);
  truncateMetricsAfter(project.db, id, 2);
  assert.deepEqual(metricSeries(project.db, id, 'loss').map((p) => p.step), [1, 2]);
  project.close();
});

test('summary entries merge instead of replacing each other', () => {
  const project = tempProject();
  const id = createRun(project.db, 'finetune', null, {});
  mergeSummary(project.db, id, { classes: [{ id: 1, name: 'a' }] });
  mergeSummary(project.db, id, { bestEpoch: 2 });
  assert.deepEqual(getRun(project.db, id)!.summary, { classes: [{ id: 1, name: 'a' }], bestEpoch: 2 });
  project.close();
});

test('only one checkpoint of a run is best; modelCheckpoint prefers it over the latest', () => {
  const project = tempProject();
  const id = createRun(project.db, 'finetune', null, {});
  addCheckpoint(project.db, { runId: id, epoch: 1, step: 10, path: 'a', isBest: true });
  addCheckpoint(project.db, { runId: id, epoch: 2, step: 20, path: 'b', isBest: true });
  addCheckpoint(project.db, { runId: id, epoch: 3, step: 30, path: 'c' });
  assert.equal(bestCheckpoint(project.db, id)!.path, 'b');
  assert.equal(latestCheckpoint(project.db, id)!.path, 'c');
  assert.equal(modelCheckpoint(project.db, id)!.path, 'b');
  const pretrain = createRun(project.db, 'pretrain', null, {});
  addCheckpoint(project.db, { runId: pretrain, epoch: 1, step: 5, path: 'p' });
  assert.equal(modelCheckpoint(project.db, pretrain)!.path, 'p');
  project.close();
});

test('predictions and embeddings round-trip their float32 vectors exactly', () => {
  const project = tempProject();
  const insertImage = project.db.prepare(
    `INSERT INTO images (path, sha256, size, width, height, format, thumbnail, created_at) VALUES (?, ?, 1, 1, 1, 'png', x'00', 'now')`,
  );
  const image = Number(insertImage.run('/a.png', 'sha-a').lastInsertRowid);
  const classId = Number(project.db.prepare(`INSERT INTO classes (name, created_at) VALUES ('cat', 'now')`).run().lastInsertRowid);
  const id = createRun(project.db, 'evaluate', null, {});
  const probabilities = new Float32Array([0.1, 0.7, 0.2]);
  writePredictions(project.db, id, [{ imageId: image, classId, confidence: 0.7, probabilities }]);
  writeEmbeddings(project.db, id, [{ imageId: image, vector: new Float32Array([1.5, -2.25, 1e-7]) }]);
  const [prediction] = readPredictions(project.db, id);
  assert.equal(prediction.classId, classId);
  assert.deepEqual(Array.from(prediction.probabilities), Array.from(probabilities));
  assert.deepEqual(Array.from(readEmbeddings(project.db, id)[0].vector), Array.from(new Float32Array([1.5, -2.25, 1e-7])));
  clearRunOutputs(project.db, id);
  assert.equal(readPredictions(project.db, id).length, 0);
  assert.equal(readEmbeddings(project.db, id).length, 0);
  project.close();
});

test('expert settings from a loose record are checked by name and type', () => {
  assert.deepEqual(parseTrainOptions({ epochs: 3, balanced: true, backend: 'wasm' }), { epochs: 3, balanced: true, backend: 'wasm' });
  assert.throws(() => parseTrainOptions({ epoch: 3 }), { name: 'UserError', message: /unknown training setting "epoch" \(known: parentRunId, depth/ });
  assert.throws(() => parseTrainOptions({ batchSize: '64' }), { name: 'UserError', message: 'batchSize must be a number, got "64"' });
  assert.throws(() => parseTrainOptions({ backend: 'gpu' }), { name: 'UserError', message: /backend must be auto, wasm, cpu, tensorflow or webgpu, got "gpu"/ });
});

test('planning fills every default, inherits the parent architecture and refuses changes to it', () => {
  const project = tempProject();
  const insertImage = project.db.prepare(
    `INSERT INTO images (path, sha256, size, width, height, format, thumbnail, created_at) VALUES (?, ?, 1, 1, 1, 'png', x'00', 'now')`,
  );
  for (let i = 0; i < 4; i++) insertImage.run(`/${i}.png`, `sha-${i}`);
  const pretrain = planTrainingRun(project, 'pretrain', { seed: 9, imageSize: 48 });
  assert.deepEqual(pretrain.config, {
    model: { depth: 18, width: 0.5, sk: false, imageSize: 48 },
    batchSize: null,
    epochs: 100,
    minutes: null,
    learningRate: null,
    warmupFraction: 0.1,
    weightDecay: 1e-6,
    seed: 9,
    backend: 'auto',
    temperature: 0.5,
  });
  assert.equal(planTrainingRun(project, 'pretrain', { imageSize: 96 }).config.temperature, 0.1);
  const parent = createRun(project.db, 'pretrain', null, pretrain.config);
  markRunning(project.db, parent, where);
  finishRun(project.db, parent, 'done');
  const labelled = project.db.prepare(`INSERT INTO classes (name, created_at) VALUES (?, 'now')`);
  const [a, b] = [labelled.run('a').lastInsertRowid, labelled.run('b').lastInsertRowid];
  const label = project.db.prepare(`INSERT INTO labels (image_id, class_id, source, author, created_at) VALUES (?, ?, 'human', 't', 'now')`);
  [1, 2].forEach((id) => label.run(id, a));
  [3, 4].forEach((id) => label.run(id, b));
  const finetune = planTrainingRun(project, 'finetune', { minutes: 5 });
  assert.equal(finetune.parent!.id, parent);
  assert.deepEqual(finetune.config.model, pretrain.config.model);
  assert.equal(finetune.config.epochs, null);
  assert.equal(finetune.config.minutes, 5);
  assert.throws(() => planTrainingRun(project, 'finetune', { width: 1 }), /width is fixed by run \d+ \(0.5\); a finetune run cannot change it/);
  assert.throws(() => planTrainingRun(project, 'finetune', { tau: 2 }), /tau does not apply to finetune/);
  project.close();
});
