/**
 * `contrast export-trainer` end to end on the CPU: the folder for the sample project (200 CIFAR-10
 * photos from resources/sample), its training program run by torchrun with 2 processes on the gloo
 * backend for a tiny budget (killed once with SIGKILL mid-pretraining and restarted, which must
 * continue from the checkpoint), its weights imported back, and the app's predictions on 50 photos
 * must be the program's own: the same top-1 class and probabilities within 1e-4.
 *
 * Skipped, with the reason, where /usr/bin/python3 has no torch (.ci/run installs python3-torch).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { decodePixels } from '../../app/engine/data/dataset.ts';
import { cliSucceeds, runCli, SAMPLE_IMAGES, sampleProject, TORCH_PYTHON, whyTorchCannotRun } from './train_fixtures.ts';

const TOLERANCE = 1e-4;
const COMPARED = 50;

const torchMissing = whyTorchCannotRun(['torch', 'numpy'], 'python3-torch');

/**
 * torchrun as `python3 -m torch.distributed.run`, so it need not be on PATH. --redirects 1 --tee 1:
 * Debian's torch 1.13 on Python 3.11 cannot parse the default "0" (Python 3.11 no longer iterates
 * IntFlag's zero member), so stdout goes to a log file and is teed back to the console.
 */
function torchrunArgs(trainer: string, out: string, extra: string[]): string[] {
  return ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', '--redirects', '1', '--tee', '1', path.join(trainer, 'train.py'),
    '--out', out, '--epochs', '1', '--batch', '32', '--threads', '1', ...extra];
}

let dir: string;
let projectDir: string;


before(() => {
  ({ dir, projectDir } = sampleProject('contrast-export-trainer-'));
});

test('bad output folders and projects are one coded line each, exit 1', () => {
  const missing = runCli(['export-trainer', path.join(dir, 'no-such-project'), '--out', path.join(dir, 'x')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^contrast export-trainer: .*no-such-project/);
  const full = path.join(dir, 'full');
  fs.mkdirSync(full);
  fs.writeFileSync(path.join(full, 'notes.txt'), 'mine');
  const notEmpty = runCli(['export-trainer', projectDir, '--out', full]);
  assert.equal(notEmpty.code, 1);
  assert.match(notEmpty.stderr, /is not empty: give a new or empty folder/);
  const underFile = runCli(['export-trainer', projectDir, '--out', path.join(full, 'notes.txt', 'trainer')]);
  assert.equal(underFile.code, 1);
  assert.match(underFile.stderr, /cannot write to .*notes\.txt\/trainer: ENOTDIR/);
  assert.equal(runCli(['export-trainer', projectDir]).code, 2, '--out is required');
  assert.deepEqual(fs.readdirSync(full), ['notes.txt'], 'nothing written into a folder that was refused');
});

test('the folder holds every image with its hash, label, split and the app\'s own pixels, and the originals when asked', async () => {
  const trainer = path.join(dir, 'copied');
  const exported = JSON.parse(cliSucceeds(['export-trainer', projectDir, '--out', trainer, '--copy-images', '--seed', '5', '--json']));
  assert.equal(exported.images, 200);
  assert.equal(exported.copiedImages, 200);
  assert.equal(exported.classes.length, 10);
  const manifest = JSON.parse(fs.readFileSync(path.join(trainer, 'manifest.json'), 'utf8'));
  assert.equal(manifest.root, SAMPLE_IMAGES);
  assert.equal(manifest.stages.pretrain.seed, 5);
  assert.equal(manifest.stages.pretrain.temperature, 0.5);
  assert.deepEqual(manifest.stages.finetune.model, { depth: 18, width: 0.5, sk: false, imageSize: 32 });
  const splits = new Set(manifest.images.map((image: { split: string }) => image.split));
  assert.deepEqual([...splits].sort(), ['train', 'val']);
  const pixels = fs.readFileSync(path.join(trainer, 'pixels-32.u8'));
  assert.equal(pixels.length, 200 * 32 * 32 * 3);
  for (const image of manifest.images.slice(0, 5)) {
    const original = path.join(SAMPLE_IMAGES, image.path);
    assert.equal(image.label, path.dirname(image.path));
    assert.equal(crypto.createHash('sha256').update(fs.readFileSync(original)).digest('hex'), image.sha256);
    assert.deepEqual(fs.readFileSync(path.join(trainer, 'images', image.path)), fs.readFileSync(original));
    const row = pixels.subarray(image.pixelRow * 3072, (image.pixelRow + 1) * 3072);
    assert.deepEqual(row, await decodePixels(original, 32), `${image.path}: the program reads the app's decoding`);
  }
  const readme = fs.readFileSync(path.join(trainer, 'README.md'), 'utf8');
  for (const command of ['--nproc_per_node=8', '--nnodes=4', '--rdzv_backend=c10d', 'srun torchrun', 'contrast import-weights']) assert.ok(readme.includes(command), command);
});

/** Starts torchrun in its own process group and kills the whole group once the pretraining checkpoint exists. */
async function killAfterFirstCheckpoint(trainer: string, out: string): Promise<void> {
  const child = spawn(TORCH_PYTHON, torchrunArgs(trainer, out, ['--checkpoint-steps', '1']), { detached: true, stdio: 'ignore' });
  const checkpoint = path.join(out, 'checkpoints', 'pretrain.pt');
  const started = Date.now();
  while (!fs.existsSync(checkpoint)) {
    assert.ok(Date.now() - started < 120_000, 'no pretraining checkpoint within 2 minutes');
    assert.equal(child.exitCode, null, 'the program ended before its first checkpoint');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const exited = new Promise((resolve) => child.once('exit', resolve));
  process.kill(-child.pid!, 'SIGKILL');
  await exited;
}

function readProgramPredictions(file: string): Map<string, { predicted: string; probabilities: Map<string, number> }> {
  const [header, ...lines] = fs.readFileSync(file, 'utf8').trim().split('\n');
  const classes = header.split(',').slice(2);
  return new Map(lines.map((line) => {
    const [relative, predicted, ...values] = line.split(',');
    return [path.join(SAMPLE_IMAGES, relative), { predicted, probabilities: new Map(classes.map((name, i) => [name, Number(values[i])])) }];
  }));
}

test('torchrun with 2 processes trains, survives a SIGKILL, and the imported classifiers predict what the program predicts', { skip: torchMissing, timeout: 300_000 }, async (t) => {
  const trainer = path.join(dir, 'trainer');
  cliSucceeds(['export-trainer', projectDir, '--out', trainer, '--seed', '11']);
  const out = path.join(dir, 'output');
  await killAfterFirstCheckpoint(trainer, out);
  assert.ok(!fs.existsSync(path.join(out, 'pretrain.safetensors')), 'killed before pretraining finished');

  const run = spawnSync(TORCH_PYTHON, torchrunArgs(trainer, out, []), { encoding: 'utf8', timeout: 240_000 });
  assert.equal(run.status, 0, run.stderr);
  const resumed = /pretrain: resumed from .* at step (\d+) of (\d+)/.exec(run.stdout);
  assert.ok(resumed, `the restart continues from the checkpoint:\n${run.stdout}`);
  assert.ok(Number(resumed[1]) >= 1 && Number(resumed[1]) < Number(resumed[2]));
  t.diagnostic(`resumed at step ${resumed[1]} of ${resumed[2]}`);

  const photos = [...readProgramPredictions(path.join(out, 'finetune-predictions.csv')).keys()].filter((_, i) => i % 4 === 0).slice(0, COMPARED);
  for (const stage of ['finetune', 'distill']) {
    const imported = JSON.parse(cliSucceeds(['import-weights', projectDir, path.join(out, `${stage}.safetensors`), '--json']));
    assert.equal(imported.kind, stage);
    assert.equal(imported.layout, 'torchvision');
    assert.equal(imported.network, 'ResNet-18 ×0.5, 32 px');
    const runs = JSON.parse(cliSucceeds(['runs', projectDir, '--json'])) as { id: number; summary: Record<string, any> }[];
    const summary = runs.find((r) => r.id === imported.runId)!.summary;
    assert.equal(summary.exportedTrainer.stage, stage);
    assert.equal(summary.exportedTrainer.project.path, projectDir);
    assert.equal(summary.exportedTrainer.config.seed, 11);
    assert.equal(summary.exportedTrainer.processes, 2);
    assert.equal(summary.classes.length, 10);

    const csv = path.join(dir, `${stage}-app.csv`);
    cliSucceeds(['predict', projectDir, ...photos, '--run', String(imported.runId), '--out', csv]);
    const program = readProgramPredictions(path.join(out, `${stage}-predictions.csv`));
    const rows = fs.readFileSync(csv, 'utf8').trim().split('\n').slice(1).map((line) => line.split(','));
    assert.equal(rows.length, COMPARED);
    let worst = 0;
    for (const [file, top, p1, second, p2, third, p3] of rows) {
      const theirs = program.get(file)!;
      assert.equal(top, theirs.predicted, `${file}: top-1 class`);
      for (const [name, probability] of [[top, p1], [second, p2], [third, p3]]) {
        worst = Math.max(worst, Math.abs(Number(probability) - theirs.probabilities.get(name)!));
      }
    }
    t.diagnostic(`${stage}: largest probability difference ${worst.toExponential(2)} (the app's CSV rounds to 6 decimals)`);
    assert.ok(worst < TOLERANCE, `${stage}: probabilities differ by ${worst}`);
  }

  const other = path.join(dir, 'other-project');
  cliSucceeds(['init', other]);
  const foreign = runCli(['import-weights', other, path.join(out, 'finetune.safetensors')]);
  assert.equal(foreign.code, 1);
  assert.match(foreign.stderr, /the classifier's classes "airplane", "automobile", .* are not in this project/);
  assert.match(cliSucceeds(['runs', other]), /no runs yet/, 'a refused classifier leaves no run');
});
