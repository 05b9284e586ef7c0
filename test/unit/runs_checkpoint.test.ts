import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { openProject } from '../../app/store/project.ts';
import { createRun, latestCheckpoint, listCheckpoints } from '../../app/store/runs.ts';
import {
  disposeCheckpoint,
  loadCheckpoint,
  modelWeights,
  restoreModelWeights,
  runCheckpointDir,
  saveCheckpoint,
} from '../../app/engine/data/checkpoint.ts';
import { LarsOptimizer } from '../../app/engine/simclr/lars_optimizer.ts';
import { buildClassifier } from '../../app/engine/simclr/model.ts';
import { Rng } from '../../app/engine/simclr/random.ts';
import { checkpointSaver, resumeFromCheckpoint } from '../../app/engine/stages/stage_common.ts';
import type { StageContext } from '../../app/engine/stages/stage_context.ts';
import { classifierStep } from '../../app/engine/simclr/train_step.ts';
import { tempDir } from '../integration/train_fixtures.ts';

await tf.setBackend('cpu');

function tinyModel(seed: number, units = 3): tf.LayersModel {
  const input = tf.input({ shape: [4, 4, 3] });
  let x = tf.layers.conv2d({ name: 'conv', filters: 2, kernelSize: 3, kernelInitializer: tf.initializers.glorotUniform({ seed }) }).apply(input);
  x = tf.layers.batchNormalization({ name: 'bn' }).apply(x);
  x = tf.layers.flatten({ name: 'flat' }).apply(x);
  const output = tf.layers.dense({ name: 'head', units, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }) }).apply(x);
  return tf.model({ inputs: input, outputs: output as tf.SymbolicTensor });
}

function newProject() {
  return openProject(path.join(tempDir('checkpoint-test-'), 'project'), { create: true });
}

test('save then load into a fresh model gives identical predictions, optimizer slots and loop state', async () => {
  const project = newProject();
  const runId = createRun(project.db, 'pretrain', null, {});
  const model = tinyModel(1);
  // Move the batch-norm statistics away from their initial values so non-trainable weights are tested too.
  const bnMean = model.getLayer('bn').weights.find((w) => w.name.includes('moving_mean'))!;
  bnMean.write(tf.tensor1d([0.25, -0.5]));
  const input = tf.randomUniform([5, 4, 4, 3], 0, 1, 'float32', 9);
  const expected = await (model.predict(input) as tf.Tensor).data();
  const slot = { name: 'conv/kernel/momentum', tensor: tf.tensor1d([1.5, 2.5]) };
  const row = await saveCheckpoint(project, {
    runId,
    weights: modelWeights(model),
    optimizer: [slot],
    state: { step: 12, epoch: 2, rng: 123456, extra: { best: 0.75 } },
  });
  assert.equal(row.step, 12);
  assert.ok(fs.existsSync(path.join(project.dir, row.path)));

  const fresh = tinyModel(99); // different initial weights, and suffixed variable names in this process
  const loaded = loadCheckpoint(project, row);
  restoreModelWeights(fresh, loaded.weights);
  assert.deepEqual(Array.from(await (fresh.predict(input) as tf.Tensor).data()), Array.from(expected));
  assert.deepEqual(loaded.state, { step: 12, epoch: 2, rng: 123456, extra: { best: 0.75 } });
  assert.equal(loaded.optimizer[0].name, 'conv/kernel/momentum');
  assert.deepEqual(Array.from(await loaded.optimizer[0].tensor.data()), [1.5, 2.5]);
  disposeCheckpoint(loaded);
  project.close();
});

test('a run keeps only its newest and its best checkpoint, and no stray files', async () => {
  const project = newProject();
  const runId = createRun(project.db, 'finetune', null, {});
  const model = tinyModel(2);
  const dir = runCheckpointDir(project, runId);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'step-00000099.ckpt.tmp-1'), 'left by a killed save');
  const save = (step: number, isBest: boolean) =>
    saveCheckpoint(project, { runId, weights: modelWeights(model), optimizer: [], state: { step, epoch: step, rng: 0 }, isBest });
  await save(1, true);
  await save(2, false);
  await save(3, true);
  await save(4, false);
  const rows = listCheckpoints(project.db, runId);
  assert.deepEqual(rows.map((r) => [r.step, r.isBest]), [[3, true], [4, false]]);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['step-00000003.ckpt', 'step-00000004.ckpt']);
  assert.equal(latestCheckpoint(project.db, runId)!.step, 4);
  project.close();
});

test('loading into another architecture fails naming the mismatched weight', async () => {
  const project = newProject();
  const runId = createRun(project.db, 'finetune', null, {});
  const row = await saveCheckpoint(project, { runId, weights: modelWeights(tinyModel(3)), optimizer: [], state: { step: 1, epoch: 1, rng: 0 } });
  const loaded = loadCheckpoint(project, row);
  assert.throws(() => restoreModelWeights(tinyModel(3, 5), loaded.weights), /head\/kernel has shape \[8,3\], the model expects \[8,5\]/);
  fs.rmSync(path.join(project.dir, row.path));
  assert.throws(() => loadCheckpoint(project, row), /checkpoint file .* of run \d+ is missing/);
  project.close();
});

test('a trained classifier and its LARS state survive save → load: same predictions, same next step', async () => {
  const project = newProject();
  const runId = createRun(project.db, 'finetune', null, {});
  // Only project and run are read when saving and resuming.
  const ctx = { project, run: { id: runId } } as unknown as StageContext;
  const config = { depth: 18, width: 0.125, sk: false, imageSize: 8 } as const;
  const images = tf.randomUniform([4, 8, 8, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
  const batch = { images, labels: [0, 1, 0, 1] };
  const step = (model: tf.LayersModel, optimizer: LarsOptimizer) =>
    classifierStep(model, optimizer, batch, { imageSize: 8, learningRate: 0.5 }, new Rng(9));

  const model = buildClassifier(config, 2, 1);
  const optimizer = new LarsOptimizer({ weightDecay: 1e-4 });
  await step(model, optimizer);
  await step(model, optimizer);
  await checkpointSaver(ctx, model, optimizer)({ step: 2, epoch: 1, rng: 77 }, false);
  const predictions = await (model.predict(images) as tf.Tensor[])[0].data();

  const fresh = buildClassifier(config, 2, 2);
  const freshOptimizer = new LarsOptimizer({ weightDecay: 1e-4 });
  const state = resumeFromCheckpoint(ctx, fresh, freshOptimizer);
  assert.deepEqual(state, { step: 2, epoch: 1, rng: 77 });
  assert.deepEqual(Array.from(await (fresh.predict(images) as tf.Tensor[])[0].data()), Array.from(predictions));

  const original = await step(model, optimizer);
  const resumed = await step(fresh, freshOptimizer);
  assert.equal(resumed.loss, original.loss);
  assert.deepEqual(
    Array.from(await fresh.getLayer('logits').getWeights()[0].data()),
    Array.from(await model.getLayer('logits').getWeights()[0].data()),
    'momentum slots were restored, so the next update is the same',
  );
  images.dispose();
  model.dispose();
  fresh.dispose();
  optimizer.dispose();
  freshOptimizer.dispose();
  project.close();
});
