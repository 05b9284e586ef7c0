/**
 * One-click training on the sample photos, through the CLI as a user runs it: the budget holds,
 * the kept model is current and predicts, a second Train reuses the pretraining, and a pipeline
 * killed mid-stage resumes where it stopped.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { CONTRAST_BIN, runCli, tempDir } from './train_fixtures.ts';

const SAMPLE = path.resolve(import.meta.dirname, '../../resources/sample');

function sampleProject(): string {
  const project = path.join(tempDir('contrast-pipeline-'), 'p');
  for (const args of [['init', project], ['import', project, SAMPLE, '--labels-from-folders']]) {
    const result = runCli(args);
    assert.equal(result.code, 0, result.stderr);
  }
  return project;
}

type RunRow = { id: number; kind: string; status: string; parentId: number | null; config: Record<string, unknown>; summary: Record<string, unknown> | null; finishedAt: string | null };

function runs(project: string): RunRow[] {
  return JSON.parse(runCli(['runs', project, '--json']).stdout) as RunRow[];
}

const project = sampleProject();

// 90 s is the shortest budget whose plan for the 200 sample images both trains on the labels and
// distils: from the reference figures, distillation gets ≈5.4 passes, past the 5 it needs to run.
test('a 90-second Train ends within its budget with a current model that predicts', () => {
  const started = performance.now();
  const result = runCli(['train', project, '--minutes', '1.5', '--seed', '1', '--json']);
  const seconds = (performance.now() - started) / 1000;
  assert.equal(result.code, 0, result.stderr);
  const plan = result.events.find((e) => e.event === 'plan')!;
  assert.equal(plan.recipe, 'labels-then-distil', '90 s is far too short for pretraining to pay');
  assert.match(String(plan.text), /^(decode images \d+ s, )?labels only \d+ s \(≈[\d.]+ epochs\), distil \d+ s/);
  // Generous: the machine is shared; the benchmark (npm run bench:labels) records the real spread.
  assert.ok(seconds > 60 && seconds < 135, `a 90 s budget took ${seconds.toFixed(1)} s`);
  const pipeline = runs(project).find((r) => r.kind === 'pipeline')!;
  assert.equal(pipeline.status, 'done');
  const children = pipeline.summary!.children as number[];
  assert.deepEqual(runs(project).filter((r) => r.config.pipelineRunId === pipeline.id).map((r) => r.id), children);
  assert.ok(children.includes(pipeline.summary!.currentModelRunId as number));

  const out = path.join(path.dirname(project), 'preds.csv');
  const predicted = runCli(['predict', project, path.join(SAMPLE, 'cat'), '--out', out]);
  assert.equal(predicted.code, 0, predicted.stderr);
  assert.equal(fs.readFileSync(out, 'utf8').trim().split('\n').length, 21, 'a header and the 20 cats, with the current model and no --run');
});

test('a second Train reuses the pretraining that saw these images instead of pretraining again', () => {
  const pretrain = runCli(['pretrain', project, '--epochs', '1', '--seed', '1', '--json']);
  assert.equal(pretrain.code, 0, pretrain.stderr);
  const pretrainId = pretrain.events.find((e) => e.event === 'created')!.runId as number;
  const result = runCli(['train', project, '--minutes', '0.5', '--seed', '2', '--json']);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.events.find((e) => e.event === 'plan')!.recipe, 'reuse-pretraining');
  const all = runs(project);
  assert.equal(all.filter((r) => r.kind === 'pretrain').length, 1, 'no second pretraining');
  const pipelineId = result.events.find((e) => e.event === 'created')!.runId as number;
  const finetune = all.find((r) => r.config.pipelineRunId === pipelineId && r.kind === 'finetune')!;
  assert.equal(finetune.parentId, pretrainId);
});

test('a pipeline killed mid-stage resumes from that stage and step', async () => {
  const child = spawn(process.execPath, [CONTRAST_BIN, 'train', project, '--minutes', '1', '--seed', '3', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let pipelineId = 0;
  let judgedEpoch = 0;
  await new Promise<void>((resolve, reject) => {
    let buffered = '';
    child.once('close', () => reject(new Error('the pipeline ended before it could be killed mid-stage')));
    child.stdout.on('data', (chunk) => {
      buffered += chunk;
      for (const line of buffered.split('\n').slice(0, -1)) {
        const event = JSON.parse(line);
        if (event.event === 'created') pipelineId = event.runId;
        if (event.event === 'epoch') judgedEpoch = event.epoch;
        // The step after a judged epoch comes after that epoch's checkpoint: stop there, as a power cut would.
        if (judgedEpoch > 0 && event.event === 'progress' && event.phase === 'training') resolve();
      }
      buffered = buffered.slice(buffered.lastIndexOf('\n') + 1);
    });
  });
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('close', resolve));
  const before = runs(project).filter((r) => r.config.pipelineRunId === pipelineId);
  assert.equal(before.at(-1)!.status, 'interrupted', 'killed mid-stage');
  assert.ok(before.slice(0, -1).every((r) => r.status === 'done'));

  const resumed = runCli(['resume', project, String(pipelineId), '--json']);
  assert.equal(resumed.code, 0, resumed.stderr);
  const after = runs(project).filter((r) => r.config.pipelineRunId === pipelineId);
  assert.deepEqual(after.slice(0, before.length).map((r) => r.id), before.map((r) => r.id), 'the interrupted stage went on; it was not started again');
  assert.deepEqual(after.map((r) => r.status), ['done', 'done']);
  const firstEpochAfterResume = resumed.events.find((e) => e.event === 'epoch')!;
  assert.ok((firstEpochAfterResume.epoch as number) > judgedEpoch, `the stage continued after its checkpoint at epoch ${judgedEpoch}, at epoch ${firstEpochAfterResume.epoch}`);
  assert.equal(runs(project).find((r) => r.id === pipelineId)!.status, 'done');
});

test('a Train after many new images continues the last pretraining from its weights', () => {
  const grown = path.join(tempDir('contrast-pipeline-grown-'), 'p');
  for (const args of [['init', grown], ['import', grown, path.join(SAMPLE, 'cat')]]) assert.equal(runCli(args).code, 0);
  const first = runCli(['pretrain', grown, '--epochs', '1', '--seed', '1', '--json']);
  assert.equal(first.code, 0, first.stderr);
  const firstId = first.events.find((e) => e.event === 'created')!.runId as number;
  const imported = runCli(['import', grown, SAMPLE, '--labels-from-folders']);
  assert.equal(imported.code, 0, imported.stderr);
  const result = runCli(['train', grown, '--minutes', '0.5', '--seed', '2', '--json']);
  assert.equal(result.code, 0, result.stderr);
  const plan = result.events.find((e) => e.event === 'plan')!;
  assert.equal(plan.recipe, 'continue-pretraining');
  assert.match(String(plan.reason), new RegExp(`continues pretraining run ${firstId} from its weights: it saw only 20 of the 2\\d\\d images`));
  const pipelineId = result.events.find((e) => e.event === 'created')!.runId as number;
  const continued = runs(grown).find((r) => r.config.pipelineRunId === pipelineId && r.kind === 'pretrain')!;
  assert.equal(continued.parentId, firstId);
  assert.equal(continued.status, 'done');
});
