/**
 * The job runner with real processes: a run in a forked job_process, cancel, one job per
 * project, and runs killed with SIGKILL or stopped with Ctrl-C that `contrast resume` finishes —
 * exactly as if they had never stopped.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createTrainingRun } from '../../app/engine/stages/stage_config.ts';
import type { JobEvent } from '../../app/jobs/events.ts';
import { forkLauncher, startJob, type Launcher } from '../../app/jobs/job.ts';
import { openProject, type Project } from '../../app/store/project.ts';
import { getRun, latestCheckpoint, readEmbeddings } from '../../app/store/runs.ts';
import { runCli, shapesProject, startCli } from './train_fixtures.ts';

const TINY = { imageSize: 16, width: 0.125, batchSize: 32 };
const TINY_ARGS = ['--size', '16', '--width', '0.125', '--batch', '32'];
let project: string;

before(async () => {
  ({ project } = await shapesProject(40, 10));
});

async function collect(events: AsyncIterable<JobEvent>): Promise<JobEvent[]> {
  const all: JobEvent[] = [];
  for await (const event of events) all.push(event);
  return all;
}

/** Opens the test project for one test, and always closes it. */
async function inOpenProject(work: (opened: Project) => Promise<void>): Promise<void> {
  const opened = openProject(project);
  try {
    await work(opened);
  } finally {
    opened.close();
  }
}

test('a run in a child process streams started → progress → epochs → finished and records its results', () =>
  inOpenProject(async (opened) => {
  const { runId } = createTrainingRun(opened, 'pretrain', { ...TINY, epochs: 2, seed: 1 });
  const job = startJob(opened, runId, { isolation: 'process' });
  const events = await collect(job);
  assert.equal(events[0].type, 'started');
  assert.equal(events.at(-1)!.type, 'finished');
  assert.ok(events.some((e) => e.type === 'progress' && e.phase === 'training' && e.metrics.loss > 0));
  assert.deepEqual(events.filter((e) => e.type === 'epoch').map((e) => (e as { epoch: number }).epoch), [1, 2]);
  const finished = await job.done;
  assert.equal(finished.status, 'done', finished.error ?? '');
  const run = getRun(opened.db, runId)!;
  assert.equal(run.status, 'done');
  assert.equal(run.pid, null);
  assert.ok(run.backend && run.device);
  assert.equal(readEmbeddings(opened.db, runId).length, 80, 'every image gets an embedding');
  assert.ok(fs.existsSync(path.join(opened.dir, latestCheckpoint(opened.db, runId)!.path)));
  }));

test('cancel stops a child-process run with its checkpoint kept; starting it again finishes it', () =>
  inOpenProject(async (opened) => {
  const { runId } = createTrainingRun(opened, 'pretrain', { ...TINY, epochs: 6, seed: 2 });
  const job = startJob(opened, runId, { isolation: 'process' });
  job.on('event', (event: JobEvent) => {
    if (event.type === 'epoch') job.cancel();
  });
  const cancelled = await job.done;
  assert.equal(cancelled.status, 'cancelled');
  assert.equal(getRun(opened.db, runId)!.status, 'cancelled');
  const checkpoint = latestCheckpoint(opened.db, runId)!;
  assert.ok(checkpoint.step > 0 && checkpoint.step < 6 * 2);

  const again = startJob(opened, runId);
  const events = await collect(again);
  assert.equal((events[0] as { resumedFromStep: number }).resumedFromStep, checkpoint.step);
  assert.equal((await again.done).status, 'done');
  }));

test('a child process killed mid-run ends its job as interrupted; one that dies before starting fails its run', () =>
  inOpenProject(async (opened) => {
  const { runId } = createTrainingRun(opened, 'pretrain', { ...TINY, epochs: 6, seed: 4 });
  const job = startJob(opened, runId, { isolation: 'process' });
  job.on('event', (event: JobEvent) => {
    if (event.type === 'epoch') process.kill(getRun(opened.db, runId)!.pid!, 'SIGKILL');
  });
  const killed = await job.done;
  assert.equal(killed.status, 'interrupted');
  assert.match(killed.error!, /exited unexpectedly.*resume the run/);
  assert.equal(getRun(opened.db, runId)!.status, 'interrupted');

  const crashing = path.join(path.dirname(project), 'crash.mjs');
  fs.writeFileSync(crashing, 'process.exit(3);\n');
  const queued = createTrainingRun(opened, 'pretrain', { ...TINY, epochs: 1, seed: 4 }).runId;
  const launcher: Launcher = (_entry, args, env) => forkLauncher(crashing, args, env);
  const failed = await startJob(opened, queued, { isolation: 'process', launcher }).done;
  assert.equal(failed.status, 'failed');
  assert.equal(getRun(opened.db, queued)!.error, 'the training process exited unexpectedly (code 3) before the run started');
  }));

test('a project runs one job at a time', () =>
  inOpenProject(async (opened) => {
  const first = createTrainingRun(opened, 'pretrain', { ...TINY, epochs: 3, seed: 3 }).runId;
  const second = createTrainingRun(opened, 'pretrain', { ...TINY, epochs: 1, seed: 3 }).runId;
  const job = startJob(opened, first);
  assert.throws(() => startJob(opened, second), { name: 'UserError', message: new RegExp(`run ${first} \\(pretrain\\) is still running`) });
  job.cancel();
  assert.equal((await job.done).status, 'cancelled');
  assert.equal((await startJob(opened, second).done).status, 'done');
  }));

function finalSummary(events: Record<string, unknown>[]): Record<string, unknown> {
  const finished = events.find((e) => e.event === 'finished')!;
  assert.equal(finished.status, 'done', String(finished.error));
  return finished.summary as Record<string, unknown>;
}

test('a run killed with SIGKILL mid-training resumes from its checkpoint and ends exactly like an uninterrupted run', async () => {
  const args = ['pretrain', project, ...TINY_ARGS, '--epochs', '5', '--seed', '11'];
  const killed = startCli(args, (event) => event.event === 'epoch' && event.epoch === 2);
  await killed.reached;
  killed.child.kill('SIGKILL');
  await killed.exited;
  const runId = killed.events.find((e) => e.event === 'created')!.runId as number;
  const listed = runCli(['runs', project, '--json']).events[0] as unknown as { id: number; status: string }[];
  assert.equal(listed.find((r) => r.id === runId)!.status, 'interrupted');

  const resumed = runCli(['resume', project, String(runId), '--json']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.ok((resumed.events.find((e) => e.event === 'started')!.resumedFromStep as number) >= 2);
  const resumedSummary = finalSummary(resumed.events);

  const straight = runCli([...args, '--json']);
  assert.equal(straight.code, 0, straight.stderr);
  const straightSummary = finalSummary(straight.events);
  assert.equal(resumedSummary.loss, straightSummary.loss);
  assert.equal(resumedSummary.top1, straightSummary.top1);
  assert.equal(resumedSummary.steps, straightSummary.steps);
});

test('Ctrl-C cancels cleanly: exit 130, run cancelled with its checkpoint, and resume finishes it', async () => {
  const stopped = startCli(['pretrain', project, ...TINY_ARGS, '--epochs', '6', '--seed', '12'], (event) => event.event === 'epoch');
  await stopped.reached;
  stopped.child.kill('SIGINT');
  assert.equal(await stopped.exited, 130);
  assert.match(stopped.stderr(), /cancelled; its checkpoint is kept: continue with "contrast resume .* \d+"/);
  const runId = stopped.events.find((e) => e.event === 'created')!.runId as number;
  const opened = openProject(project, { readonly: true });
  try {
    assert.equal(getRun(opened.db, runId)!.status, 'cancelled');
    assert.ok(latestCheckpoint(opened.db, runId));
  } finally {
    opened.close();
  }
  const resumed = runCli(['resume', project, String(runId), '--json']);
  assert.equal(resumed.code, 0, resumed.stderr);
  finalSummary(resumed.events);
});
