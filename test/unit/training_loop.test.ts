/**
 * The shared step loop under a time budget: a run whose steps turn out faster than first measured
 * takes more steps and still ends at its deadline, one whose steps slow down takes fewer, and the
 * learning rate's cosine decay ends where the run ends either way.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { StageContext } from '../../app/engine/stages/stage_context.ts';
import { runTrainingLoop, stepsLeftAtPace, type TrainingLoop } from '../../app/engine/stages/training_loop.ts';
import { Rng } from '../../app/engine/simclr/random.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function context(warnings: string[]): StageContext {
  const recorder = { record() {}, forgetAfter() {}, last: () => undefined };
  return {
    signal: new AbortController().signal,
    metrics: recorder,
    progress() {},
    epochEnd() {},
    warn: (message: string) => warnings.push(message),
  } as unknown as StageContext;
}

/** A loop whose every step sleeps `stepMs` and records the learning rate it was given. */
function sleepingLoop(options: { plannedSteps: number; stepMs: (step: number) => number; budgetMs: number; judgeMs: number }) {
  const rates: number[] = [];
  const loop: TrainingLoop = {
    examples: 40,
    batchSize: 8,
    totalSteps: options.plannedSteps,
    deadline: Date.now() + options.budgetMs,
    peakLearningRate: 1,
    warmupFraction: 0.1,
    seed: 1,
    rng: new Rng(1),
    async step(_positions, learningRate) {
      await sleep(options.stepMs(rates.length));
      rates.push(learningRate);
      return { loss: 1 };
    },
    async endEpoch() {
      await sleep(options.judgeMs);
      return { metrics: {}, best: true };
    },
    async save() {},
    extra: () => ({}),
  };
  return { loop, rates };
}

test('the steps a budget still holds come from the pace kept, keeping one judging back', () => {
  assert.equal(stepsLeftAtPace({ msToDeadline: 10_000, msPerStep: 100, lastJudgingMs: 500 }), 95);
  assert.equal(stepsLeftAtPace({ msToDeadline: 300, msPerStep: 100, lastJudgingMs: 500 }), 0);
});

test('steps faster than first measured: the run takes more of them and ends at its deadline', async () => {
  const warnings: string[] = [];
  const { loop, rates } = sleepingLoop({ plannedSteps: 10, stepMs: () => 10, budgetMs: 2000, judgeMs: 15 });
  const started = Date.now();
  const end = await runTrainingLoop(context(warnings), loop, null);
  const seconds = (Date.now() - started) / 1000;
  assert.ok(end.step > 60, `re-planned past the 10 steps first planned, took ${end.step}`);
  assert.equal(loop.totalSteps, end.step, 'the checkpointed plan is the step count reached');
  assert.ok(seconds > 1.7 && seconds < 2.3, `a 2 s budget took ${seconds.toFixed(2)} s`);
  assert.ok(rates.at(-1)! < 0.05, `the cosine decay ends with the run (last rate ${rates.at(-1)})`);
  assert.ok(Math.max(...rates) > 0.95, 'the peak is reached after the warm-up of the first plan');
  assert.deepEqual(warnings, []);
});

test('steps that slow down: the run takes fewer and still ends by its deadline', async () => {
  const { loop, rates } = sleepingLoop({ plannedSteps: 200, stepMs: (step) => (step < 10 ? 5 : 40), budgetMs: 2000, judgeMs: 5 });
  const started = Date.now();
  const end = await runTrainingLoop(context([]), loop, null);
  const seconds = (Date.now() - started) / 1000;
  assert.ok(end.step < 80, `re-planned below the 200 steps first planned, took ${end.step}`);
  assert.ok(seconds < 2.2, `a 2 s budget took ${seconds.toFixed(2)} s`);
  assert.ok(rates.at(-1)! < 0.2, `the decay ends near the end of the run (last rate ${rates.at(-1)})`);
});

test('a run that keeps its last epoch judges for its curve only: a twentieth of its time, not a fifth', async () => {
  const judgedShare = async (keepsLastEpoch: boolean) => {
    const { loop } = sleepingLoop({ plannedSteps: 10, stepMs: () => 10, budgetMs: 3000, judgeMs: 50 });
    let judgings = 0;
    const judge = loop.endEpoch!;
    loop.endEpoch = async (epoch) => { judgings++; return judge(epoch); };
    loop.keepsLastEpoch = keepsLastEpoch;
    await runTrainingLoop(context([]), loop, null);
    return (judgings * 50) / 3000;
  };
  const best = await judgedShare(false);
  const last = await judgedShare(true);
  assert.ok(best > 0.13 && best < 0.27, `keeping the best epoch: ${(best * 100).toFixed(0)}% of the time judging`);
  assert.ok(last > 0.02 && last < 0.09, `keeping the last epoch: ${(last * 100).toFixed(0)}% of the time judging`);
});
