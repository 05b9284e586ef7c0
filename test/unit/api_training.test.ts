/**
 * Training through the API as the studio drives it: a plan with its settings, a job in a child
 * process reporting job.* events, cancel keeping the run resumable, and resume finishing it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { dispatch } from '../../app/services/dispatch.ts';
import { createHandlers, type Handlers } from '../../app/services/handlers.ts';
import { Session } from '../../app/services/session.ts';
import type { ServerEvent } from '../../app/contract/operations.ts';
import { succeeding, until, writeImage } from '../helpers.ts';

let root: string;
let session: Session;
let handlers: Handlers;
const events: ServerEvent[] = [];
/** Tiny enough that a few epochs take seconds on one core. */
const tiny = { batchSize: 8, width: 0.125, imageSize: 16 };

const ok = succeeding(() => handlers);

const finished = (runId: number) =>
  events.find((e): e is Extract<ServerEvent, { type: 'job.finished' }> => e.type === 'job.finished' && e.runId === runId);

before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'contrast-training-'));
  for (let i = 0; i < 8; i++) {
    await writeImage(path.join(root, 'images', 'labelled', 'red', `r${i}.png`), { colour: [200, 40, 40], seed: i, format: 'png' });
    await writeImage(path.join(root, 'images', 'labelled', 'blue', `b${i}.png`), { colour: [40, 40, 200], seed: 50 + i, format: 'png' });
    if (i < 4) await writeImage(path.join(root, 'images', 'unsorted', `u${i}.png`), { colour: [120, 40, 160], seed: 90 + i, format: 'png' });
  }
  session = new Session({ dataDir: path.join(root, 'home') });
  session.onEvent((event) => events.push(event));
  handlers = createHandlers(session);
  await ok('projects.create', { dir: path.join(root, 'project') });
  await ok('import.start', { paths: [path.join(root, 'images', 'labelled')], labelsFromFolders: true });
  await until(() => events.some((e) => e.type === 'import.finished') && session.activeJob === null, 'the import');
  await ok('import.start', { paths: [path.join(root, 'images', 'unsorted')] });
  await until(() => events.filter((e) => e.type === 'import.finished').length === 2 && session.activeJob === null, 'the second import');
});

after(() => {
  session.dispose();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('training through the API', () => {
  it('plans a preset with the settings the advanced panel may change', async () => {
    const plan = await ok('train.plan', { stage: 'pretrain', preset: 'quick', budgetMinutes: 3 });
    assert.equal(plan.estimateSeconds, 180);
    assert.equal(plan.settings.depth, 18);
    assert.equal(plan.settings.width, 0.5);
    assert.equal(plan.settings.imageSize, 32, 'never above the images’ own 32 px');
    assert.equal(plan.settings.epochs, null, 'fitted to the budget when the run starts');
    assert.equal(plan.settings.batchSize, null, 'the largest batch that fits, chosen when the run starts');
    assert.equal(plan.settings.seed, null, 'random unless given');
    const fixed = await ok('train.plan', { stage: 'pretrain', preset: 'quick', budgetMinutes: 3, advanced: { epochs: 4 } });
    assert.equal(fixed.config.epochs, 4);
    assert.equal(fixed.estimateSeconds, null, 'no earlier run to time it from');
  });

  it('refuses settings a stage does not have and stages without their parent, saying why', async () => {
    const wrongSetting = await dispatch(handlers, 'train.plan', { stage: 'finetune', preset: 'quick', budgetMinutes: 1, advanced: { imageSize: 64 } });
    assert.ok('error' in wrongSetting);
    assert.match(wrongSetting.error.message, /"imageSize" cannot be set for finetune/);
    const noParent = await dispatch(handlers, 'train.start', { stage: 'finetune', preset: 'quick', budgetMinutes: 1 });
    assert.ok('error' in noParent);
    assert.match(noParent.error.message, /no finished pretrain run/);
    assert.equal(session.activeJob, null);
  });

  it('cancels a running job, keeping the run resumable, and resumes it to the end', async () => {
    const { runId } = await ok('train.start', { stage: 'pretrain', preset: 'quick', budgetMinutes: 1, advanced: { ...tiny, epochs: 40 } });
    assert.equal((await ok('project.status', {})).activeJob?.id, runId);
    const busy = await dispatch(handlers, 'train.start', { stage: 'pretrain', preset: 'quick', budgetMinutes: 1 });
    assert.ok('error' in busy && busy.status === 409, 'one job at a time');

    await until(() => events.some((e) => e.type === 'job.progress' && e.runId === runId && e.phase === 'training'), 'training steps');
    assert.ok(events.some((e) => e.type === 'job.started' && e.runId === runId && /CPU/.test(e.device)));
    assert.deepEqual(await ok('train.cancel', { runId }), { cancelled: true });
    await until(() => finished(runId) !== undefined, 'the cancelled job to end');
    assert.equal(finished(runId)!.status, 'cancelled');
    const cancelled = (await ok('runs.list', {})).runs.find((r) => r.id === runId)!;
    assert.equal(cancelled.status, 'cancelled');
    assert.equal(cancelled.resumable, true);
    assert.equal(session.activeJob, null);

    // Resuming the whole 40 epochs would be slow: check it continues from its checkpoint, then stop it again.
    assert.deepEqual(await ok('train.resume', { runId }), { runId });
    await until(() => events.some((e) => e.type === 'job.started' && e.runId === runId && e.resumedFromStep !== null), 'the resumed start');
    const resumedFrom = events.filter((e) => e.type === 'job.started' && e.runId === runId).at(-1) as Extract<ServerEvent, { type: 'job.started' }>;
    assert.ok(resumedFrom.resumedFromStep! > 0, 'continues from its checkpoint, not from step 0');
    await ok('train.cancel', { runId });
    await until(() => events.filter((e) => e.type === 'job.finished' && e.runId === runId).length === 2, 'the second stop');
  });

  it('runs pretrain then fine-tune to the end, with metrics for the charts and predictions for the results', async () => {
    const pretrain = await ok('train.start', { stage: 'pretrain', preset: 'quick', budgetMinutes: 1, advanced: { ...tiny, epochs: 1 } });
    await until(() => finished(pretrain.runId) !== undefined, 'pretraining');
    assert.equal(finished(pretrain.runId)!.status, 'done');
    const finetune = await ok('train.start', { stage: 'finetune', preset: 'quick', budgetMinutes: 1, advanced: { batchSize: 8, epochs: 2 } });
    await until(() => finished(finetune.runId) !== undefined, 'fine-tuning');
    assert.equal(finished(finetune.runId)!.status, 'done', finished(finetune.runId)!.error ?? '');

    const detail = await ok('runs.get', { runId: finetune.runId });
    assert.deepEqual(detail.lineage.map((r) => r.id), [pretrain.runId, finetune.runId]);
    const names = detail.metrics.map((m) => m.name);
    for (const name of ['loss', 'lr', 'imagesPerSecond', 'valAccuracy']) assert.ok(names.includes(name), `${name} in ${names.join()}`);
    assert.ok(events.some((e) => e.type === 'job.epoch' && e.runId === finetune.runId && 'valAccuracy' in e.metrics));

    const status = await ok('project.status', {});
    assert.equal(status.project!.predictionRunId, finetune.runId);
    const evaluation = await ok('results.evaluation', {});
    assert.equal(evaluation.runId, finetune.runId);
    assert.equal(evaluation.confusion.flat().reduce((a, b) => a + b, 0), evaluation.images);
    const queue = await ok('queue.next', { limit: 5 });
    assert.equal(queue.strategy, 'uncertainty');
    assert.equal(queue.items.length, 4, 'every unlabelled image, none of the labelled');
    assert.ok(queue.items.every((item) => item.labelClassId === null && item.predictedClassId !== null));

    const backend = await ok('system.backend', {});
    assert.match(backend.device, /CPU/);
  });
});
