/**
 * "Start from a pretrained network…" as the studio drives it: weights.import with a file path,
 * then one-click training planned and run from the imported network.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { dispatch } from '../../app/services/dispatch.ts';
import { createHandlers, type Handlers } from '../../app/services/handlers.ts';
import { Session } from '../../app/services/session.ts';
import type { ServerEvent } from '../../app/contract/operations.ts';
import { succeeding, until, writeImage } from '../helpers.ts';

const TINY_RESNET = path.resolve(import.meta.dirname, '../fixtures/weights/tiny_resnet18.pth');

let root: string;
let session: Session;
let handlers: Handlers;
const events: ServerEvent[] = [];

const ok = succeeding(() => handlers);

before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'contrast-api-weights-'));
  for (let i = 0; i < 8; i++) {
    await writeImage(path.join(root, 'images', 'red', `r${i}.png`), { colour: [200, 40, 40], seed: i, format: 'png' });
    await writeImage(path.join(root, 'images', 'blue', `b${i}.png`), { colour: [40, 40, 200], seed: 50 + i, format: 'png' });
  }
  session = new Session({ dataDir: path.join(root, 'home') });
  session.onEvent((event) => events.push(event));
  handlers = createHandlers(session);
  await ok('projects.create', { dir: path.join(root, 'project') });
  await ok('import.start', { paths: [path.join(root, 'images')], labelsFromFolders: true });
  await until(() => events.some((e) => e.type === 'import.finished') && session.activeJob === null, 'the import', 300_000);
});

after(() => {
  session.dispose();
  fs.rmSync(root, { recursive: true, force: true });
});

it('refuses a relative path: the server cannot know which folder the user meant', async () => {
  const result = await dispatch(handlers, 'weights.import', { path: 'tiny_resnet18.pth' });
  assert.deepEqual(result, { status: 400, error: { code: 'bad_path', message: 'give the full path of the weights file (got "tiny_resnet18.pth")' } });
});

it('imports a network from a path, and one-click training fine-tunes and distils it', async () => {
  const imported = await ok('weights.import', { path: TINY_RESNET, imageSize: 32, name: 'Tiny ImageNet R18' });
  assert.deepEqual({ ...imported, sha256: imported.sha256.length }, {
    runId: 1,
    kind: 'pretrain',
    name: 'Tiny ImageNet R18',
    network: 'ResNet-18 ×0.0625, 32 px, ImageNet mean/std input',
    layout: 'torchvision',
    format: 'pytorch',
    keys: { mapped: 100, ignored: 22, outside: 0 },
    headLayers: [],
    sha256: 64,
  });
  const plan = await ok('pipeline.plan', { budgetMinutes: 0.5, fromRunId: imported.runId });
  assert.equal(plan.recipe, 'reuse-pretraining');
  assert.equal(plan.reason, 'fine-tunes and distils Tiny ImageNet R18 (run 1), the network chosen to start from');

  const { runId } = await ok('pipeline.start', { budgetMinutes: 0.5, fromRunId: imported.runId });
  await until(() => events.some((e) => e.type === 'job.finished' && e.runId === runId), 'the pipeline', 300_000);
  const { runs } = await ok('runs.list', {});
  const pipeline = runs.find((r) => r.id === runId)!;
  assert.equal(pipeline.status, 'done', pipeline.error ?? '');
  const [finetune, distill] = (pipeline.summary!.children as number[]).map((id) => runs.find((r) => r.id === id)!);
  assert.deepEqual([finetune.kind, finetune.parentId, distill.kind, distill.parentId], ['finetune', imported.runId, 'distill', finetune.id]);
  assert.equal((finetune.config.model as { padding?: string }).padding, 'torch', 'the imported network, padding and all, is what trains');
});
