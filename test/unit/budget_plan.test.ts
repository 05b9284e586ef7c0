import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PRETRAIN_PAYS_AFTER_EPOCHS, describePlan, planPipeline, secondsForNextStage, type ProjectFigures } from '../../app/engine/stages/budget_plan.ts';

const SPEED = { pretrain: 0.045, finetune: 0.016, distill: 0.021, forward: 0.004, decode: 0.001 };

function figures(overrides: Partial<ProjectFigures> = {}): ProjectFigures {
  return { images: 8000, labelledTrain: 640, validation: 160, uncachedImages: 8000, secondsPerImage: SPEED, lastPretrain: null, ...overrides };
}

const total = (plan: ReturnType<typeof planPipeline>) => plan.decodeSeconds + plan.finishSeconds + plan.stages.reduce((sum, s) => sum + s.seconds, 0);

test('an hour on 8,000 images trains on the labels, then distils through every image', () => {
  const plan = planPipeline(60, figures());
  assert.equal(plan.recipe, 'labels-then-distil');
  assert.deepEqual(plan.stages.map((s) => [s.stage, s.supervised]), [['finetune', true], ['distill', false]]);
  // 8,000 decodes at 1 ms, and a forward pass over every image at 4 ms plus 8 s.
  assert.equal(plan.decodeSeconds, 8);
  assert.equal(plan.finishSeconds, 40);
  assert.ok(Math.abs(total(plan) - 3600) < 1e-6, `the parts add up to the budget, got ${total(plan)}`);
  // 60% of (3600 − 8 − 40 − 2·8) s for the labels: 2121.6 s / (640 · 0.016 s) ≈ 207.2 epochs;
  // 40% for distillation: 1414.4 s / (8000 · 0.021 s) ≈ 8.4 passes, past the 5 it needs.
  assert.equal(plan.stages[0].epochs, 207.2);
  assert.equal(plan.stages[1].epochs, 8.4);
  assert.match(plan.reason, /pretraining would get only ≈5\.\d passes/);
});

test('when distillation would not get five passes over the images, every minute goes to the labels', () => {
  const plan = planPipeline(5, figures());
  assert.equal(plan.recipe, 'labels-only');
  assert.deepEqual(plan.stages.map((s) => [s.stage, s.supervised]), [['finetune', true]]);
  assert.ok(Math.abs(total(plan) - 300) < 1e-6);
  assert.match(plan.reason, /distillation \(≈0\.\d passes, it pays off after about 5\)/);
  // Half an hour buys it ≈4.1 passes: still too few (45.0% held out against 49.05% on the labels alone).
  assert.equal(planPipeline(30, figures()).recipe, 'labels-only');
});

test('a budget that buys enough passes pretrains, and the split follows the recipe', () => {
  const fast = { ...SPEED, pretrain: 0.0005 };
  const plan = planPipeline(60, figures({ images: 2000, uncachedImages: 0, secondsPerImage: fast }));
  assert.equal(plan.recipe, 'simclr');
  assert.deepEqual(plan.stages.map((s) => s.stage), ['pretrain', 'finetune', 'distill']);
  assert.ok(plan.stages[0].epochs >= PRETRAIN_PAYS_AFTER_EPOCHS);
  assert.equal(plan.decodeSeconds, 0, 'cached pixels are not decoded again');
  const [pretrain, finetune, distill] = plan.stages.map((s) => s.seconds - 8);
  assert.ok(Math.abs(pretrain / finetune - 4) < 1e-9 && Math.abs(distill / finetune - 25 / 15) < 1e-9);
});

test('a second Train after new labels reuses a pretraining that saw most of the images', () => {
  const reused = planPipeline(10, figures({ lastPretrain: { runId: 7, images: 7000 } }));
  assert.equal(reused.recipe, 'reuse-pretraining');
  assert.equal(reused.basePretrainRunId, 7);
  assert.deepEqual(reused.stages.map((s) => [s.stage, s.supervised]), [['finetune', false], ['distill', false]]);
  assert.match(reused.reason, /reuses pretraining run 7, which saw 7000 of the 8000 images/);
});

test('a second Train after many new images continues the last pretraining from its weights, then fine-tunes and distils', () => {
  const stale = planPipeline(10, figures({ lastPretrain: { runId: 7, images: 4000 } }));
  assert.equal(stale.recipe, 'continue-pretraining', 'half the images are new: that pretraining is not reused as it is');
  assert.equal(stale.basePretrainRunId, 7);
  assert.deepEqual(stale.stages.map((s) => s.stage), ['pretrain', 'finetune', 'distill']);
  assert.match(stale.reason, /continues pretraining run 7 from its weights: it saw only 4000 of the 8000 images/);
  // 600 s less 8 s of decoding, 40 s of predictions and 3 × 8 s of stage overhead, shared 40:20:40.
  assert.deepEqual(stale.stages.map((s) => Math.round(s.seconds - 8)), [211, 106, 211]);
});

test('a pipeline told to start from a network (an imported one, which saw none of these images) fine-tunes and distils it', () => {
  const plan = planPipeline(10, figures({ lastPretrain: { runId: 3, images: 0, chosen: 'resnet50.pth (run 3)' } }));
  assert.equal(plan.recipe, 'reuse-pretraining');
  assert.equal(plan.basePretrainRunId, 3);
  assert.deepEqual(plan.stages.map((s) => [s.stage, s.supervised]), [['finetune', false], ['distill', false]]);
  assert.equal(plan.reason, 'fine-tunes and distils resnet50.pth (run 3), the network chosen to start from');
});

test('time a stage overran is taken from the stages after it, in their planned proportion', () => {
  const plan = planPipeline(60, figures());
  const second = plan.stages[1].seconds;
  assert.ok(Math.abs(secondsForNextStage(plan, 1, second + plan.finishSeconds) - second) < 1e-9, 'on schedule: as planned');
  assert.ok(Math.abs(secondsForNextStage(plan, 1, second / 2 + plan.finishSeconds) - second / 2) < 1e-9, 'behind: what is left');
  assert.equal(secondsForNextStage(plan, 1, 0), 8, 'never less than the stage overhead');
});

test('the plan reads as one line with minutes and epochs', () => {
  assert.equal(
    describePlan(planPipeline(60, figures())),
    'decode images 8 s, labels only 35 min (≈207.2 epochs), distil 24 min (≈8.4 epochs), predict and score 40 s',
  );
});
