/**
 * Issue #11 item 2 and 6: Ctrl-C during training stops after the current step with a checkpoint
 * (no crash on a closed database), opening a project marks runs of dead processes interrupted,
 * resume continues at the checkpoint's step with the curves continuing, and a refused start
 * leaves no orphan run.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { ServerEvent } from '../../app/contract/operations.ts';
import { dispatch } from '../../app/services/dispatch.ts';
import { createHandlers, type Handlers } from '../../app/services/handlers.ts';
import { openProjectFor } from '../../app/services/projects.ts';
import { Session } from '../../app/services/session.ts';
import { openProject } from '../../app/store/project.ts';
import { latestCheckpoint, listRuns, markRunning, metricSeries, requireRun } from '../../app/store/runs.ts';
import { until } from '../helpers.ts';
import { runCli, shapesProject, tempDir } from './train_fixtures.ts';

let project: string;
const events: ServerEvent[] = [];
const errors: unknown[] = [];
const onError = (error: unknown) => errors.push(error);

before(async () => {
  ({ project } = await shapesProject(40, 20));
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
});
after(() => {
  process.off('uncaughtException', onError);
  process.off('unhandledRejection', onError);
});

async function call(handlers: Handlers, name: string, input: unknown) {
  return dispatch(handlers, name, input);
}

const request = { stage: 'pretrain', preset: 'quick', budgetMinutes: 5, advanced: { epochs: 40, batchSize: 16, width: 0.125, imageSize: 16, seed: 1 } };

test('Ctrl-C while a job trains: the job stops after its step with a checkpoint, nothing throws, and the run resumes', async () => {
  const session = new Session({ dataDir: tempDir('contrast-home-') });
  session.onEvent((event) => events.push(event));
  const handlers = createHandlers(session);
  assert.equal((await call(handlers, 'projects.open', { dir: project })).status, 200);
  const started = await call(handlers, 'train.start', request);
  assert.equal(started.status, 200);
  const runId = (started as { value: { runId: number } }).value.runId;
  await until(() => events.some((e) => e.type === 'job.epoch' && e.runId === runId && e.epoch >= 2), 'two epochs', 180_000);

  // What a terminal's Ctrl-C does to `npm start`: the job process gets SIGINT, the server disposes its session.
  const pid = requireRun(session.requireProject().db, runId).pid!;
  process.kill(pid, 'SIGINT');
  await session.dispose();
  assert.deepEqual(errors, [], 'no uncaught error (the old code hit a closed database in markInterruptedRuns)');

  const reopened = openProject(project, { readonly: true });
  const run = requireRun(reopened.db, runId);
  const checkpoint = latestCheckpoint(reopened.db, runId);
  reopened.close();
  assert.ok(run.status === 'cancelled' || run.status === 'interrupted', `run is ${run.status}`);
  assert.ok(checkpoint && checkpoint.step >= 2 * 2, 'a checkpoint at or after the last finished epoch');

  const resumed = runCli(['resume', project, String(runId), '--json']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal(resumed.events.find((e) => e.event === 'started')!.resumedFromStep, checkpoint!.step);
  const done = openProject(project, { readonly: true });
  const steps = metricSeries(done.db, runId, 'loss').map((p) => p.step);
  done.close();
  assert.deepEqual(steps, [...steps].sort((a, b) => a - b), 'the loss curve continues instead of starting over');
  assert.equal(new Set(steps).size, steps.length, 'no step logged twice');
});

test('opening a project marks a run whose process is gone as interrupted, so status and runs agree', () => {
  const opened = openProject(project);
  const id = listRuns(opened.db).at(-1)!.id;
  opened.db.prepare("UPDATE runs SET status = 'queued' WHERE id = ?").run(id);
  markRunning(opened.db, id, { pid: 2 ** 22 + 12345, backend: 'cpu', device: 'gone' });
  opened.close();
  const again = openProjectFor(project);
  assert.equal(requireRun(again.db, id).status, 'interrupted');
  again.close();
  const status = JSON.parse(runCli(['status', project, '--json']).stdout);
  const runs = JSON.parse(runCli(['runs', project, '--json']).stdout) as { id: number; status: string }[];
  assert.equal(runs.find((r) => r.id === id)!.status, 'interrupted');
  assert.equal(status.runs.byStatus.running ?? 0, 0);
});

test('a start refused because a job is running creates no run', async () => {
  const session = new Session({ dataDir: tempDir('contrast-home-') });
  const handlers = createHandlers(session);
  await call(handlers, 'projects.open', { dir: project });
  const before = listRuns(session.requireProject().db).length;
  const release = session.beginJob({ kind: 'import', id: 0, startedAt: new Date().toISOString() }, () => {});
  const refused = await call(handlers, 'train.start', request);
  assert.equal(refused.status, 409);
  assert.equal(listRuns(session.requireProject().db).length, before, 'no queued orphan run');
  release();
  await session.dispose();
  assert.ok(fs.existsSync(path.join(project, 'project.db')));
});
