/**
 * Bad input to the training commands: one clear line on stderr, a non-zero exit, and nothing
 * half-written — no run row when the request itself is wrong, a failed run with its reason when
 * the run could only find out once started.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { openProject } from '../../app/store/project.ts';
import { listCheckpoints, listRuns, type Run } from '../../app/store/runs.ts';
import { runCli, shapesProject } from './train_fixtures.ts';

let project: string;

before(async () => {
  ({ project } = await shapesProject(10, 0));
});

function runs(): Run[] {
  const opened = openProject(project, { readonly: true });
  try {
    return listRuns(opened.db);
  } finally {
    opened.close();
  }
}

function failsWith(args: string[], code: number, message: RegExp): void {
  const before = runs().length;
  const result = runCli(args);
  assert.equal(result.code, code, `exit code of contrast ${args.join(' ')}\n${result.stderr}`);
  assert.match(errorLine(result.stderr), message);
  assert.equal(runs().length, before, 'no run was recorded');
}

/**
 * The one error line of a failed command. A usage error may add the usage line after it, and a run
 * that started says which device it was on first; anything else (a stack trace) fails the test.
 */
function errorLine(stderr: string): string {
  const lines = stderr.trim().split('\n').filter((line) => !/^run \d+ \(\w+\) on /.test(line) && !/^usage: contrast /.test(line));
  assert.equal(lines.length, 1, `one error line on stderr, got:\n${stderr}`);
  return lines[0];
}

test('an unknown run id is named, whichever command gets it', () => {
  failsWith(['finetune', project, '--from', '99'], 1, /^contrast finetune: no run 99 in this project/);
  failsWith(['distill', project, '--from', '99'], 1, /^contrast distill: no run 99 in this project/);
  failsWith(['evaluate', project, '--run', '99'], 1, /^contrast evaluate: no run 99 in this project/);
  failsWith(['resume', project, '99'], 1, /^contrast resume: no run 99 in this project/);
  failsWith(['predict', project, '--run', '99', project, '--out', path.join(project, 'x.csv')], 1, /^contrast predict: no run 99/);
  failsWith(['export', project, '--run', '99', '--out', path.join(project, 'x')], 1, /^contrast export: no run 99/);
  assert.ok(!fs.existsSync(path.join(project, 'x.csv')) && !fs.existsSync(path.join(project, 'x')));
});

test('fine-tuning without labels, or without a pretrain run, says what to do first', () => {
  failsWith(['finetune', project, '--supervised'], 1, /fine-tuning needs labelled images of at least 2 classes.*found 0/);
  failsWith(['finetune', project], 1, /no finished pretrain run to fine-tune: run "contrast pretrain" first, or use --supervised/);
});

test('distillation without a teacher says to fine-tune first', () => {
  failsWith(['distill', project], 1, /^contrast distill: distillation needs a teacher: fine-tune a model first/);
});

test('malformed options are usage errors (exit 2)', () => {
  failsWith(['pretrain', project, '--epochs', '0'], 2, /--epochs must be a number between 1 and 100000, got "0"/);
  failsWith(['pretrain', project, '--arch', 'vgg16'], 2, /--arch must be one of resnet18, resnet34, resnet50, got "vgg16"/);
  failsWith(['pretrain', project, '--epochs', '3', '--minutes', '1'], 2, /give either epochs or minutes, not both/);
  failsWith(['pretrain', project, '--balanced'], 2, /Unknown option '--balanced'/);
});

test('a model too large for memory is refused before training: the run fails with the reason, nothing else is written', () => {
  const result = runCli(['pretrain', project, '--width', '1', '--size', '1024', '--batch', '4096', '--epochs', '1']);
  assert.equal(result.code, 1);
  assert.match(errorLine(result.stderr), /^contrast pretrain: run \d+ failed: this model needs about [\d.]+ GB to train at batch 4096, more than the [\d.]+ GB available/);
  const run = runs().at(-1)!;
  assert.equal(run.status, 'failed');
  assert.match(run.error!, /needs about/);
  const opened = openProject(project, { readonly: true });
  try {
    assert.equal(listCheckpoints(opened.db, run.id).length, 0);
  } finally {
    opened.close();
  }
  assert.ok(!fs.existsSync(path.join(project, 'checkpoints', `run-${run.id}`)));
  assert.ok(!fs.existsSync(path.join(project, 'cache', 'pixels-1024.bin')), 'no image was decoded for a run that cannot start');

  const automatic = runCli(['pretrain', project, '--width', '1', '--size', '1024', '--epochs', '1']);
  assert.equal(automatic.code, 1);
  assert.match(errorLine(automatic.stderr), /needs about [\d.]+ GB to train at batch 8, .*use a smaller --size, --width or --arch$/);
});

test('a run of the wrong kind or state is refused by name', () => {
  const pretrain = runCli(['pretrain', project, '--size', '8', '--width', '0.125', '--batch', '8', '--epochs', '1', '--json']);
  assert.equal(pretrain.code, 0, pretrain.stderr);
  const id = pretrain.events.find((e) => e.event === 'created')!.runId as number;
  failsWith(['distill', project, '--from', String(id)], 1, new RegExp(`run ${id} is a pretrain run; the teacher must be a finetune or distill run`));
  failsWith(['evaluate', project, '--run', String(id)], 1, new RegExp(`run ${id} is a pretrain run; the run to evaluate must be a finetune or distill run`));
  failsWith(['export', project, '--run', String(id), '--out', path.join(project, 'x')], 1, new RegExp(`run ${id} is a pretrain run; use a finetune or distill run`));
  failsWith(['resume', project, String(id)], 1, new RegExp(`run ${id} is done; only interrupted or cancelled runs can be resumed`));
});
