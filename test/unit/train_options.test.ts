import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TRAIN_OPTIONS, formOptions, optionsForStage } from '../../app/contract/train_options.ts';
import { parseTrainOptions } from '../../app/services/train_options.ts';

test('expert settings from a loose record are checked by name, type, stage and range', () => {
  assert.deepEqual(parseTrainOptions('finetune', { epochs: 3, balanced: true, backend: 'wasm' }), { epochs: 3, balanced: true, backend: 'wasm' });
  assert.throws(() => parseTrainOptions('pretrain', { epoch: 3 }), { name: 'UserError', code: 'bad_setting', message: /unknown training setting "epoch" \(known: parentRunId, depth/ });
  assert.throws(() => parseTrainOptions('pretrain', { batchSize: '64' }), { name: 'UserError', message: 'batchSize must be a number, got "64"' });
  assert.throws(() => parseTrainOptions('pretrain', { backend: 'gpu' }), { name: 'UserError', message: /backend must be one of auto, tensorflow, webgpu, wasm, cpu, got "gpu"/ });
  assert.throws(() => parseTrainOptions('pretrain', { epochs: 0 }), { message: 'epochs must be a whole number from 1 to 100000, got 0' });
  assert.throws(() => parseTrainOptions('pretrain', { width: 0 }), { message: 'width must be a number above 0 to 4, got 0' });
  assert.throws(() => parseTrainOptions('pretrain', { batchSize: 2.5 }), { message: /batchSize must be a whole number from 2 to 8192/ });
  assert.throws(() => parseTrainOptions('finetune', { tau: 2 }), { code: 'bad_setting', message: /tau does not apply to finetune/ });
  assert.throws(() => parseTrainOptions('pretrain', { epochs: 3, minutes: 2 }), { message: 'give either epochs or minutes, not both' });
});

test('the network is given by name or depth and stored as the depth', () => {
  assert.deepEqual(parseTrainOptions('pretrain', { depth: 'resnet50' }), { depth: 50 });
  assert.deepEqual(parseTrainOptions('pretrain', { depth: 34 }), { depth: 34 });
  assert.throws(() => parseTrainOptions('pretrain', { depth: 'vgg16' }), { code: 'bad_setting', message: /depth must be one of resnet18, resnet34, resnet50/ });
});

test('one definition gives each stage its settings, the CLI its flags and the studio its form', () => {
  assert.deepEqual(optionsForStage('distill').filter((n) => ['tau', 'labelWeight', 'temperature'].includes(n)), ['tau', 'labelWeight']);
  assert.ok(!formOptions('finetune', true).includes('width'), 'a fine-tune keeps its pretraining network');
  assert.ok(formOptions('distill', true).includes('width'), 'a student may be narrower than its teacher');
  assert.ok(!formOptions('distill', true).includes('imageSize'), 'a student sees the teacher\'s image size');
  assert.ok(!formOptions('pretrain', false).includes('minutes'), 'the budget has its own field');
  assert.deepEqual(['pretrain', 'finetune', 'distill'].map((stage) => optionsForStage(stage as 'finetune').includes('mixup')), [false, true, false]);
  assert.deepEqual(parseTrainOptions('finetune', { mixup: 0.4 }), { mixup: 0.4 });
  assert.throws(() => parseTrainOptions('finetune', { mixup: -1 }), { code: 'bad_setting', message: /mixup must be a number from 0 to 10/ });
  const flags = Object.values(TRAIN_OPTIONS).map((o) => o.flag);
  assert.equal(new Set(flags).size, flags.length, 'every setting has its own flag');
});
