/**
 * Properties of the stages themselves, run in this process so TF.js memory can be watched:
 * no tensor leaks from epoch to epoch, seeded runs that repeat exactly, and a time budget that
 * becomes an epoch count a resumed run keeps.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import type { Stage } from '../../app/contract/domain.ts';
import type { TrainOptions } from '../../app/contract/train_options.ts';
import { createTrainingRun } from '../../app/engine/stages/stage_config.ts';
import type { FinishedEvent, JobEvent } from '../../app/jobs/events.ts';
import { startJob } from '../../app/jobs/job.ts';
import { openProject, type Project } from '../../app/store/project.ts';
import { getRun, metricSeries, readPredictions } from '../../app/store/runs.ts';
import { shapesProject } from './train_fixtures.ts';

const TINY: TrainOptions = { imageSize: 16, width: 0.125, batchSize: 16, backend: 'wasm' };
let project: Project;

before(async () => {
  project = openProject((await shapesProject(40, 15)).project);
});

after(() => project.close());

async function train(kind: Stage, options: TrainOptions, onEvent?: (event: JobEvent) => void): Promise<{ runId: number; finished: FinishedEvent }> {
  const { runId } = createTrainingRun(project, kind, { ...TINY, ...options });
  const job = startJob(project, runId);
  if (onEvent) job.on('event', onEvent);
  const finished = await job.done;
  assert.equal(finished.status, 'done', finished.error ?? '');
  return { runId, finished };
}

test('every stage holds the same number of tensors after its first and its third epoch', async () => {
  for (const kind of ['pretrain', 'finetune', 'distill'] as const) {
    const counts: number[] = [];
    await train(kind, { epochs: 3, seed: 1 }, (event) => {
      if (event.type === 'epoch') counts.push(tf.memory().numTensors);
    });
    assert.equal(counts.length, 3, kind);
    assert.equal(counts[2], counts[0], `${kind} tensors after epochs 1..3: ${counts.join(', ')}`);
  }
});

test('without --batch a run takes 128, or fewer when there are fewer images, and records it', async () => {
  const warnings: string[] = [];
  const { runId } = await train('pretrain', { batchSize: undefined, epochs: 1, seed: 2 }, (event) => {
    if (event.type === 'warning') warnings.push(event.message);
  });
  assert.equal(getRun(project.db, runId)!.summary!.batchSize, 128);
  assert.deepEqual(warnings, ['batch size lowered from 128 to 80: there are only 80 images']);
});

test('two runs with the same seed on one backend are identical, down to every probability', async () => {
  const first = await train('finetune', { supervised: true, epochs: 2, seed: 21 });
  const second = await train('finetune', { supervised: true, epochs: 2, seed: 21 });
  assert.equal(getRun(project.db, first.runId)!.config.mixup, 1, 'labels-only runs mix by default');
  const curve = (runId: number) => metricSeries(project.db, runId, 'loss').map((p) => p.value);
  assert.ok(curve(first.runId).length > 0);
  assert.deepEqual(curve(second.runId), curve(first.runId));
  const probabilities = (runId: number) => readPredictions(project.db, runId).map((p) => Array.from(p.probabilities));
  assert.equal(probabilities(first.runId).length, 80, 'a prediction for every image');
  assert.deepEqual(probabilities(second.runId), probabilities(first.runId));
  const other = await train('finetune', { supervised: true, epochs: 2, seed: 22 });
  assert.notDeepEqual(curve(other.runId), curve(first.runId), 'another seed gives another run');
});

test('a time budget is measured into a step count, which a resumed run keeps', async () => {
  const { runId } = createTrainingRun(project, 'pretrain', { ...TINY, minutes: 0.1, seed: 5 });
  assert.equal(getRun(project.db, runId)!.config.epochs, null);
  const first = startJob(project, runId);
  const phases = new Set<string>();
  first.on('event', (event: JobEvent) => {
    if (event.type === 'progress') phases.add(event.phase);
    if (event.type === 'epoch') first.cancel();
  });
  assert.equal((await first.done).status, 'cancelled');
  assert.ok(phases.has('measuring'));
  const planned = getRun(project.db, runId)!.summary!;
  const steps = planned.plannedSteps as number;
  const chosen = planned.epochs as number;
  assert.ok(Number.isInteger(steps) && steps >= 2, `a budget of 6 s fits several tiny steps, got ${steps} (${chosen} epochs)`);

  const resumed = startJob(project, runId);
  const epochs: number[] = [];
  resumed.on('event', (event: JobEvent) => {
    if (event.type === 'epoch') epochs.push(event.epochs);
    if (event.type === 'progress') assert.notEqual(event.phase, 'measuring', 'a resumed run does not measure again');
  });
  const finished = await resumed.done;
  assert.equal(finished.status, 'done');
  assert.ok(epochs.every((total) => total === Math.ceil(chosen)));
  assert.equal(finished.summary!.steps, steps, 'the resumed run ends at the planned step, not a whole epoch');
  assert.equal(finished.summary!.epochs, chosen);
});

test('batch-norm statistics are measured at each epoch end, so a short run from random weights predicts well', async () => {
  // One epoch is two steps: momentum-0.9 averages alone would still sit near their starting values.
  const { runId } = await train('finetune', { supervised: true, epochs: 1, seed: 5 });
  const summary = getRun(project.db, runId)!.summary!;
  assert.ok((summary.valAccuracy as number) >= 0.8, `validation accuracy ${summary.valAccuracy}`);
});

test('a mixup run keeps its last epoch; without mixup the best on validation is kept', async () => {
  const kept = async (mixup: number) => {
    const { runId } = await train('finetune', { supervised: true, epochs: 5, seed: 3, mixup });
    const scores = metricSeries(project.db, runId, 'valAccuracy').map((p) => p.value);
    assert.equal(scores.length, 5, 'every epoch is judged');
    const summary = getRun(project.db, runId)!.summary!;
    return { scores, bestEpoch: summary.bestEpoch, valAccuracy: summary.valAccuracy };
  };
  const mixed = await kept(1);
  assert.deepEqual([mixed.bestEpoch, mixed.valAccuracy], [5, mixed.scores[4]]);
  const plain = await kept(0);
  const top = Math.max(...plain.scores);
  assert.deepEqual([plain.bestEpoch, plain.valAccuracy], [plain.scores.indexOf(top) + 1, top]);
});
