/**
 * The current model: the best on validation of the newest training. A distillation that came out
 * worse than its teacher, by hand or inside one-click training, does not replace it.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { chooseModel } from '../../app/jobs/pipeline.ts';
import { currentModel } from '../../app/services/current_model.ts';
import { openProject, type Project } from '../../app/store/project.ts';
import { createRun, finishRun, markRunning, mergeSummary, requireRun, writePredictions } from '../../app/store/runs.ts';
import { addClass } from '../../app/store/labels.ts';
import { insertImage } from '../../app/store/images.ts';
import { tempDir } from '../integration/train_fixtures.ts';

const where = { pid: process.pid, backend: 'cpu', device: 'test cpu' };

function project(): Project {
  const opened = openProject(path.join(tempDir('contrast-current-'), 'p'), { create: true });
  const image = { path: '/a.png', sha256: 'a', size: 1, width: 1, height: 1, format: 'png', thumbnail: Buffer.alloc(1), batchId: null, testSet: false };
  insertImage(opened.db, image, 'now');
  addClass(opened.db, 'a');
  return opened;
}

/** A finished classifier run with a validation score and predictions for every image. */
function classifier(p: Project, kind: 'finetune' | 'distill', parentId: number | null, valAccuracy: number, config: object = {}): number {
  const id = createRun(p.db, kind, parentId, config);
  markRunning(p.db, id, where);
  finishRun(p.db, id, 'done', { summary: { valAccuracy, valImages: 46 } });
  writePredictions(p.db, id, [{ imageId: 1, classId: 1, confidence: 1, probabilities: new Float32Array([1]) }]);
  return id;
}

test('by hand: a student worse than its teacher leaves the teacher current, a better one replaces it', () => {
  const p = project();
  const teacher = classifier(p, 'finetune', null, 0.304);
  const worse = classifier(p, 'distill', teacher, 0.217);
  assert.equal(currentModel(p.db)?.runId, teacher);
  assert.match(currentModel(p.db)!.reason, new RegExp(`run ${teacher} \\(30\\.4% on validation\\) is better than its descendant run ${worse} \\(21\\.7%\\)`));
  const better = classifier(p, 'distill', teacher, 0.35);
  assert.equal(currentModel(p.db)?.runId, better);
  p.close();
});

test('one click: the pipeline keeps its best classifier, and that model is current', () => {
  const p = project();
  const pipeline = createRun(p.db, 'pipeline', null, { minutes: 5 });
  const labelsOnly = classifier(p, 'finetune', null, 0.36, { pipelineRunId: pipeline, supervised: true });
  const student = classifier(p, 'distill', labelsOnly, 0.31, { pipelineRunId: pipeline });
  const choice = chooseModel([requireRun(p.db, labelsOnly), requireRun(p.db, student)]);
  assert.equal(choice.runId, labelsOnly);
  assert.match(choice.reason, /^kept the labels-only network: 36\.0% on 46 validation images \(95% interval 23\.\d%–50\.\d%\) against distilled student 31\.0%$/);
  markRunning(p.db, pipeline, where);
  finishRun(p.db, pipeline, 'done');
  mergeSummary(p.db, pipeline, { choice });
  assert.equal(currentModel(p.db)?.runId, labelsOnly, 'the pipeline kept the labels-only network, not its newer student');
  const byHand = classifier(p, 'finetune', null, 0.1);
  assert.equal(currentModel(p.db)?.runId, byHand, 'a model trained by hand afterwards is the newest training');
  p.close();
});

test('one click: each candidate is named by its own run, whatever runs come before it', () => {
  const p = project();
  const pretrain = createRun(p.db, 'pretrain', null, {});
  const teacher = classifier(p, 'finetune', pretrain, 0.42);
  const student = classifier(p, 'distill', teacher, 0.40);
  const labelsOnly = classifier(p, 'finetune', null, 0.30, { supervised: true });
  const choice = chooseModel([pretrain, teacher, student, labelsOnly].map((id) => requireRun(p.db, id)));
  assert.equal(choice.runId, teacher);
  assert.deepEqual(choice.candidates.map((c) => c.role), ['fine-tuned teacher', 'distilled student', 'labels-only network']);
  assert.match(choice.reason, /^kept the fine-tuned teacher: 42\.0% on 46 validation images .* against distilled student 40\.0%, labels-only network 30\.0%$/);
  p.close();
});
