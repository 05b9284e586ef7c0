import { test } from 'node:test';
import assert from 'node:assert/strict';
import { learningRateAt, peakLearningRate, type LearningRateSchedule } from '../../app/engine/simclr/learning_rate.ts';

function close(actual: number, expected: number): void {
  assert.ok(Math.abs(actual - expected) < 1e-12, `${actual} vs ${expected}`);
}

// Batch 256 with sqrt scaling: peak = 0.075·16 = 1.2. 10 warm-up steps of 110.
const schedule: LearningRateSchedule = { baseLearningRate: 0.075, batchSize: 256, scaling: 'sqrt', warmupSteps: 10, totalSteps: 110 };

test('peak rate follows sqrt or linear batch scaling', () => {
  close(peakLearningRate(schedule), 1.2);
  close(peakLearningRate({ ...schedule, batchSize: 64 }), 0.6);
  close(peakLearningRate({ ...schedule, baseLearningRate: 0.3, scaling: 'linear', batchSize: 512 }), 0.6);
});

test('linear warm-up then cosine decay to zero', () => {
  close(learningRateAt(0, schedule), 0);
  close(learningRateAt(5, schedule), 0.6); // mid-warm-up: half the peak
  close(learningRateAt(10, schedule), 1.2); // end of warm-up: the peak
  close(learningRateAt(35, schedule), 0.6 * (1 + Math.cos(Math.PI / 4))); // a quarter into the decay: 1.0242641
  close(learningRateAt(60, schedule), 0.6); // halfway through the decay: cos(π/2) = 0
  close(learningRateAt(110, schedule), 0);
  close(learningRateAt(200, schedule), 0);
});

test('no warm-up starts at the peak; an impossible schedule is refused', () => {
  close(learningRateAt(0, { ...schedule, warmupSteps: 0 }), 1.2);
  assert.throws(() => learningRateAt(0, { ...schedule, warmupSteps: 200 }), /bad schedule/);
  assert.throws(() => learningRateAt(0, { ...schedule, totalSteps: 0, warmupSteps: 0 }), /bad schedule/);
});
