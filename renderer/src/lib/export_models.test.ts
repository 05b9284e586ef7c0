import { describe, expect, it } from 'vitest';
import type { RunInfo } from '../../../app/contract/operations.ts';
import { classifierRuns, modelLabel } from './export_models.ts';

function run(id: number, kind: RunInfo['kind'], status: RunInfo['status'], summary: Record<string, unknown> | null = null): RunInfo {
  return { id, kind, status, summary, parentId: null, config: {}, backend: null, device: null, error: null, createdAt: '', startedAt: null, finishedAt: '2025-03-02T14:05:09.000Z', resumable: false };
}

describe('the models the Export screen offers', () => {
  it('are the finished fine-tunings and distillations, newest first', () => {
    const runs = [run(1, 'pretrain', 'done'), run(2, 'finetune', 'done'), run(3, 'distill', 'failed'), run(4, 'evaluate', 'done'), run(5, 'distill', 'done'), run(6, 'pipeline', 'done')];
    expect(classifierRuns(runs).map((r) => r.id)).toEqual([5, 2]);
  });

  it('are named by id, kind, validation accuracy and date, the current one marked', () => {
    expect(modelLabel(run(5, 'distill', 'done', { valAccuracy: 0.625 }), 5)).toBe('Run #5 · distill · 62.5% on validation · 2025-03-02 14:05 (current model)');
    expect(modelLabel(run(2, 'finetune', 'done'), 5)).toBe('Run #2 · finetune · no validation score · 2025-03-02 14:05');
  });
});
