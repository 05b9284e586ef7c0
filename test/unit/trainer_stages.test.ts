/**
 * Which settings the exported trainer takes: the defaults on the network asked for, or a run's own
 * config and its ancestors', each for its stage; an imported network is refused.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { importPaths } from '../../app/media/import.ts';
import { FINETUNE_CROP_AREA, PRETRAIN_CROP_AREA } from '../../app/engine/simclr/data_util.ts';
import { createTrainingRun, trainerStageConfigs } from '../../app/engine/stages/stage_config.ts';
import { importNetwork } from '../../app/engine/weights/import_network.ts';
import { openProject, type Project } from '../../app/store/project.ts';
import { writeImage } from '../helpers.ts';

const TINY_RESNET = path.resolve(import.meta.dirname, '../fixtures/weights/tiny_resnet18.pth');
let root: string;
let project: Project;

before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'contrast-trainer-stages-'));
  for (let i = 0; i < 4; i++) await writeImage(path.join(root, 'images', `i${i}.png`), { seed: i, format: 'png' });
  project = openProject(path.join(root, 'project'), { create: true });
  await importPaths(project, [path.join(root, 'images')]);
});

after(() => {
  project.close();
  fs.rmSync(root, { recursive: true, force: true });
});

it('without a run: every stage gets its defaults on the network asked for, with one seed', () => {
  const { stages, fromRun } = trainerStageConfigs(project, { depth: 34, width: 0.25, imageSize: 48, seed: 4 });
  assert.equal(fromRun, null);
  for (const config of Object.values(stages)) assert.deepEqual(config.model, { depth: 34, width: 0.25, sk: false, imageSize: 48 });
  assert.deepEqual([stages.pretrain.epochs, stages.finetune.epochs, stages.distill.epochs], [100, 30, 30]);
  assert.deepEqual([stages.pretrain.seed, stages.finetune.seed, stages.distill.seed], [4, 4, 4]);
  assert.equal(stages.pretrain.temperature, 0.5);
  assert.equal(stages.finetune.warmupFraction, 0);
  assert.equal(stages.distill.tau, 1);
});

it('from a run: its own config for its stage, the defaults on its network after it', () => {
  const { runId } = createTrainingRun(project, 'pretrain', { epochs: 7, batchSize: 64, width: 1, seed: 21, temperature: 0.2 });
  const { stages, fromRun } = trainerStageConfigs(project, { runId });
  assert.deepEqual(fromRun, { id: runId, kind: 'pretrain' });
  assert.deepEqual([stages.pretrain.epochs, stages.pretrain.batchSize, stages.pretrain.temperature], [7, 64, 0.2]);
  assert.equal(stages.finetune.model.width, 1);
  assert.equal(stages.finetune.epochs, 30);
  assert.equal(stages.distill.seed, 21, 'the run\'s seed for every stage');
});

it('an imported network is refused: the program trains from random weights', async () => {
  const imported = await importNetwork(project, { file: TINY_RESNET, imageSize: 32 });
  assert.throws(() => trainerStageConfigs(project, { runId: imported.runId }), (error: Error & { code?: string }) => error.code === 'trainer_imported_run');
});

it('the exported program crops as the app does, and a default fine-tune mixes no labels', () => {
  const program = fs.readFileSync(path.resolve(import.meta.dirname, '../../app/engine/trainer/simclr_trainer.py'), 'utf8');
  const area = (name: string) => {
    const found = new RegExp(`^${name} = \\(([\\d.]+), ([\\d.]+)\\)$`, 'm').exec(program);
    assert.ok(found, `${name} in simclr_trainer.py`);
    return [Number(found[1]), Number(found[2])];
  };
  assert.deepEqual(area('PRETRAIN_CROP_AREA'), PRETRAIN_CROP_AREA);
  assert.deepEqual(area('FINETUNE_CROP_AREA'), FINETUNE_CROP_AREA);
  const { stages } = trainerStageConfigs(project, { seed: 1 });
  assert.equal(stages.finetune.mixup, 0);
  assert.equal(stages.finetune.supervised, false);
});
