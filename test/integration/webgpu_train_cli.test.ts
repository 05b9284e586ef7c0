/**
 * `contrast pretrain --backend webgpu` end to end on a real Dawn adapter (the software one on a
 * machine without a GPU): the run records the adapter, finishes, and a run stopped with Ctrl-C
 * resumes to the same result as one that was never stopped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { probeWebGpu } from '../../app/engine/runtime/webgpu_backend.ts';
import { runCli, shapesProject, startCli } from './train_fixtures.ts';

const probe = await probeWebGpu(true);
const skip = probe.ok ? false : `no WebGPU adapter here: ${probe.reason}`;
if (skip) console.log(`# ${skip}`);

const ARGS = ['--backend', 'webgpu', '--size', '16', '--width', '0.125', '--batch', '16', '--epochs', '2', '--seed', '5'];

function finished(events: Record<string, unknown>[]): { status: string; error: unknown; summary: Record<string, number> } {
  const event = events.find((e) => e.event === 'finished');
  assert.ok(event, 'a finished event');
  return event as never;
}

test('pretraining on webgpu completes, and a run stopped with Ctrl-C resumes to the same weights\' loss', { skip }, async () => {
  const { project } = await shapesProject(16, 0);
  const straight = runCli(['pretrain', project, ...ARGS, '--json']);
  assert.equal(straight.code, 0, straight.stderr);
  const started = straight.events.find((e) => e.event === 'started') as { backend: string; device: string };
  assert.equal(started.backend, 'webgpu');
  assert.match(started.device, /^GPU \(.+\)$/);
  const done = finished(straight.events);
  assert.equal(done.status, 'done', String(done.error));
  assert.ok(Number.isFinite(done.summary.loss) && done.summary.loss > 0, `loss ${done.summary.loss}`);

  const stopped = startCli(['pretrain', project, ...ARGS], (event) => event.event === 'epoch');
  await stopped.reached;
  stopped.child.kill('SIGINT');
  assert.equal(await stopped.exited, 130, stopped.stderr());
  const runId = stopped.events.find((e) => e.event === 'created')!.runId as number;
  const resumed = runCli(['resume', project, String(runId), '--json']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.ok((resumed.events.find((e) => e.event === 'started')!.resumedFromStep as number) > 0);
  const resumedDone = finished(resumed.events);
  assert.equal(resumedDone.status, 'done', String(resumedDone.error));
  assert.equal(resumedDone.summary.steps, done.summary.steps);
  assert.equal(resumedDone.summary.loss, done.summary.loss, 'the same backend resumes exactly');
});
