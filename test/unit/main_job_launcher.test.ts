/**
 * The desktop's job launcher: the job runner starts the bundled job entry in a child process,
 * which joins the parent's project lock and reports back over IPC until it exits.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startJob } from '../../app/jobs/job.ts';
import { openProject } from '../../app/store/project.ts';
import { createRun, getRun } from '../../app/store/runs.ts';
import { bundleDesktop, repoRoot } from '../../main/build_desktop.ts';
import { bundledJobLauncher } from '../../main/job_launcher.ts';

const outDir = path.join(repoRoot, 'dist', `job-bundle-test-${process.pid}`);
const projectDir = fs.mkdtempSync(path.join(os.tmpdir(), 'contrast-job-launcher-'));

before(() => bundleDesktop(outDir));
after(() => {
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.rmSync(projectDir, { recursive: true, force: true });
});

test('a run started through the bundled job entry reports its end from the child and frees the slot', async () => {
  const project = openProject(projectDir, { create: true });
  try {
    // A backend that does not exist fails the run at once, inside the child, without training.
    const runId = createRun(project.db, 'pretrain', null, { backend: 'no-such-backend' });
    const job = startJob(project, runId, { isolation: 'process', launcher: bundledJobLauncher(path.join(outDir, 'job_process.mjs')) });
    const finished = await job.done;
    assert.equal(finished.status, 'failed');
    assert.equal(finished.runId, runId);
    assert.ok(finished.error, 'the failure carries its reason');
    assert.doesNotMatch(finished.error!, /exited unexpectedly/, 'the child reported the failure itself');
    assert.equal(getRun(project.db, runId)!.status, 'failed', 'the child wrote the outcome through the shared lock');
  } finally {
    project.close();
  }
});
