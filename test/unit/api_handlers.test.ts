import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { dispatch } from '../../app/services/dispatch.ts';
import { createHandlers, type Handlers } from '../../app/services/handlers.ts';
import { Session } from '../../app/services/session.ts';
import { SAMPLE_LABELS_PER_CLASS } from '../../app/services/sample_project.ts';
import type { ServerEvent } from '../../app/contract/operations.ts';
import { createRun, finishRun, markRunning, writeEmbeddings, writePredictions } from '../../app/store/runs.ts';
import { succeeding, writeImage } from '../helpers.ts';

let root: string;
let session: Session;
let handlers: Handlers;
const events: ServerEvent[] = [];
let cat: number;
let dog: number;
/** Image ids by file name (a0..a5 red "cat", b0..b5 blue "dog", u0..u7 unlabelled). */
const idOf = new Map<string, number>();

const ok = succeeding(() => handlers);

function finishedRun(kind: 'finetune' | 'distill' | 'pretrain', parentId: number | null, classes: number[]): number {
  const db = session.requireProject().db;
  const runId = createRun(db, kind, parentId, { preset: 'test' });
  markRunning(db, runId, { pid: process.pid, backend: 'cpu', device: 'test' });
  finishRun(db, runId, 'done', { summary: { classes } });
  return runId;
}

/** probabilities over [cat, dog] */
function predict(runId: number, rows: [string, number, number][]): void {
  writePredictions(
    session.requireProject().db,
    runId,
    rows.map(([name, pCat, pDog]) => ({
      imageId: idOf.get(name)!,
      classId: pCat >= pDog ? cat : dog,
      confidence: Math.max(pCat, pDog),
      probabilities: new Float32Array([pCat, pDog]),
    })),
  );
}

before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'contrast-handlers-'));
  const images = path.join(root, 'images');
  for (let i = 0; i < 6; i++) {
    await writeImage(path.join(images, 'labelled', 'cat', `a${i}.png`), { colour: [200, 40, 40], seed: i, format: 'png' });
    await writeImage(path.join(images, 'labelled', 'dog', `b${i}.png`), { colour: [40, 40, 200], seed: 10 + i, format: 'png' });
  }
  for (let i = 0; i < 8; i++) {
    await writeImage(path.join(images, 'unsorted', i < 4 ? 'one' : 'two', `u${i}.png`), { colour: [90, 160, 60], seed: 20 + i, format: 'png' });
  }
  session = new Session({ dataDir: path.join(root, 'home') });
  session.onEvent((event) => events.push(event));
  handlers = createHandlers(session);
  await ok('projects.create', { dir: path.join(root, 'project') });

  await ok('import.start', { paths: [path.join(images, 'labelled')], labelsFromFolders: true });
  await waitFor('import.finished');
  await ok('import.start', { paths: [path.join(images, 'unsorted')] });
  await waitFor('import.finished', 2);

  const db = session.requireProject().db;
  for (const row of db.prepare('SELECT id, path FROM images').all() as { id: number; path: string }[]) {
    idOf.set(path.basename(row.path, '.png'), row.id);
  }
  const classes = (await ok('classes.list', {})).classes;
  cat = classes.find((c) => c.name === 'cat')!.id;
  dog = classes.find((c) => c.name === 'dog')!.id;
  // Fixed splits, so the scores below are known: a4, a5, b4, b5 are validation images.
  const split = db.prepare('INSERT INTO splits (image_id, split) VALUES (?, ?)');
  for (const name of ['a0', 'a1', 'a2', 'a3', 'b0', 'b1', 'b2', 'b3']) split.run(idOf.get(name), 'train');
  for (const name of ['a4', 'a5', 'b4', 'b5']) split.run(idOf.get(name), 'val');
});

after(() => {
  session.dispose();
  fs.rmSync(root, { recursive: true, force: true });
});

async function waitFor(type: ServerEvent['type'], count = 1): Promise<void> {
  for (let waited = 0; events.filter((e) => e.type === type).length < count; waited += 20) {
    if (waited > 30_000) assert.fail(`no ${type} event`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('API handlers on a real project', () => {
  it('imports in the background, reporting progress and a summary', async () => {
    const finished = events.filter((e) => e.type === 'import.finished');
    assert.equal(finished.length, 2);
    const first = finished[0] as Extract<ServerEvent, { type: 'import.finished' }>;
    assert.equal(first.error, null);
    assert.equal(first.summary!.added, 12);
    assert.ok(events.some((e) => e.type === 'import.progress'));
    const status = await ok('project.status', {});
    assert.equal(status.project!.images, 20);
    assert.equal(status.project!.labelled, 12);
    assert.equal(status.activeJob, null);
  });

  it('skips files already imported when the same folder is imported again', async () => {
    const before = events.length;
    await ok('import.start', { paths: [path.join(root, 'images', 'labelled', 'cat')] });
    await waitFor('import.finished', 3);
    const again = events.slice(before).find((e) => e.type === 'import.finished') as Extract<ServerEvent, { type: 'import.finished' }>;
    assert.equal(again.summary!.added, 0);
    assert.equal(again.summary!.alreadyKnown, 6);
  });

  it('refuses an import of a folder that does not exist, with its path', async () => {
    const result = await dispatch(handlers, 'import.start', { paths: [path.join(root, 'nowhere')] });
    assert.ok('error' in result);
    assert.equal(result.status, 404);
    assert.match(result.error.message, /no such file or folder: .*nowhere/);
  });

  it('before any model, queues a varied sample of unlabelled images, alternating folders', async () => {
    const queue = await ok('queue.next', { limit: 6 });
    assert.equal(queue.strategy, 'diverse');
    assert.equal(queue.items.length, 6);
    const names = queue.items.map((item) => [...idOf].find(([, id]) => id === item.id)![0]);
    assert.ok(names.every((name) => name.startsWith('u')), names.join());
    const folders = names.map((name) => (Number(name.slice(1)) < 4 ? 1 : 2));
    for (let i = 1; i < folders.length; i++) assert.notEqual(folders[i], folders[i - 1], `folders ${folders.join()}`);
  });

  it('labels, undoes and accepts predictions, returning the previous class of each image', async () => {
    const set = await ok('labels.set', { imageIds: [idOf.get('u0')!, idOf.get('a0')!], classId: dog });
    assert.deepEqual(set.changes, [
      { imageId: idOf.get('u0'), previousClassId: null },
      { imageId: idOf.get('a0'), previousClassId: cat },
    ]);
    assert.equal(set.classes.find((c) => c.id === dog)!.labels, 8);
    const undone = await ok('labels.restore', { changes: set.changes.map((c) => ({ imageId: c.imageId, classId: c.previousClassId })) });
    assert.equal(undone.classes.find((c) => c.id === dog)!.labels, 6);
    assert.equal(undone.classes.find((c) => c.id === cat)!.labels, 6);
    assert.equal((await ok('images.get', { imageId: idOf.get('u0')! })).labelClassId, null);
  });

  it('scores a run on its validation images and opens the images behind a confusion cell', async () => {
    const teacher = finishedRun('finetune', null, [cat, dog]);
    predict(teacher, [['a4', 0.9, 0.1], ['a5', 0.4, 0.6], ['b4', 0.3, 0.7], ['b5', 0.2, 0.8], ['u1', 0.5, 0.5], ['u2', 0.95, 0.05]]);
    const evaluation = await ok('results.evaluation', { runId: teacher });
    assert.equal(evaluation.split, 'val');
    assert.equal(evaluation.images, 4);
    assert.equal(evaluation.accuracy, 0.75);
    assert.deepEqual(evaluation.classIds, [cat, dog]);
    assert.deepEqual(evaluation.confusion, [[1, 1], [0, 2]]);
    const catMetrics = evaluation.perClass.find((c) => c.classId === cat)!;
    assert.equal(catMetrics.precision, 1);
    assert.equal(catMetrics.recall, 0.5);
    assert.ok(Math.abs(catMetrics.f1 - 2 / 3) < 1e-9);
    assert.equal(evaluation.teacher, null);

    const cell = await ok('results.cellImages', { runId: teacher, trueClassId: cat, predictedClassId: dog });
    assert.deepEqual(cell.items.map((i) => i.id), [idOf.get('a5')]);
    assert.equal(cell.items[0].confidence, 0.6);

    const student = finishedRun('distill', teacher, [cat, dog]);
    predict(student, [['a4', 0.8, 0.2], ['a5', 0.7, 0.3], ['b4', 0.1, 0.9], ['b5', 0.45, 0.55]]);
    const distilled = await ok('results.evaluation', {});
    assert.equal(distilled.runId, student, 'the latest run with predictions is the default');
    assert.equal(distilled.accuracy, 1);
    assert.equal(distilled.teacher!.runId, teacher);
    assert.equal(distilled.teacher!.accuracy, 0.75);
  });

  it('filters and sorts the gallery by label, prediction and uncertainty', async () => {
    const teacher = finishedRun('finetune', null, [cat, dog]);
    predict(teacher, [['a4', 0.9, 0.1], ['a5', 0.4, 0.6], ['b4', 0.3, 0.7], ['u1', 0.5, 0.5], ['u2', 0.99, 0.01], ['u3', 0.7, 0.3]]);
    const ids = async (filter: object, sort = 'import') => (await ok('images.ids', { filter, sort })).ids;
    assert.equal((await ids({ kind: 'all' })).length, 20);
    assert.equal((await ids({ kind: 'unlabelled' })).length, 8);
    assert.deepEqual(await ids({ kind: 'labelled', classId: dog }), ['b0', 'b1', 'b2', 'b3', 'b4', 'b5'].map((n) => idOf.get(n)!).sort((a, b) => a - b));
    assert.deepEqual(await ids({ kind: 'misclassified' }), [idOf.get('a5')]);
    assert.deepEqual(await ids({ kind: 'lowConfidence', below: 0.65 }), ['a5', 'u1'].map((n) => idOf.get(n)).sort((a, b) => a! - b!));
    assert.deepEqual((await ids({ kind: 'predicted' }, 'uncertainty')).slice(0, 2), [idOf.get('u1'), idOf.get('a5')]);
    assert.equal((await ids({ kind: 'predicted' }, 'confidence'))[0], idOf.get('u2'));

    const page = await ok('images.list', { filter: { kind: 'predicted', classId: dog }, sort: 'import', offset: 1, limit: 1 });
    assert.equal(page.total, 2);
    assert.equal(page.predictionRunId, teacher);
    // a5 (a cat) and b4 (a dog) are both predicted dog; the page holds the later-imported one.
    const second = [['a5', cat], ['b4', dog]].map(([name, label]) => ({ id: idOf.get(name as string)!, label: label as number })).sort((x, y) => x.id - y.id)[1];
    assert.deepEqual(page.items, [{ id: second.id, labelClassId: second.label, labelSource: 'folder', predictedClassId: dog, confidence: page.items[0].confidence }]);

    const detail = await ok('images.get', { imageId: idOf.get('u3')! });
    assert.equal(detail.fileName, 'u3.png');
    assert.deepEqual(detail.probabilities.map((p) => p.classId), [cat, dog]);
    assert.ok(Math.abs(detail.probabilities[0].probability - 0.7) < 1e-6);
  });

  it('with a model, queues the least certain unlabelled images first', async () => {
    const teacher = finishedRun('finetune', null, [cat, dog]);
    predict(teacher, [['u0', 0.97, 0.03], ['u1', 0.52, 0.48], ['u2', 0.8, 0.2], ['u3', 0.99, 0.01], ['a0', 0.5, 0.5]]);
    const pretrain = finishedRun('pretrain', null, []);
    writeEmbeddings(
      session.requireProject().db,
      pretrain,
      [...idOf.values()].map((id) => ({ imageId: id, vector: new Float32Array([Math.sin(id), Math.cos(id), id % 3]) })),
    );
    const queue = await ok('queue.next', { limit: 3 });
    assert.equal(queue.strategy, 'uncertainty');
    assert.equal(queue.runId, teacher);
    assert.equal(queue.items[0].id, idOf.get('u1'), 'the most uncertain comes first');
    assert.ok(!queue.items.some((item) => item.id === idOf.get('a0')), 'labelled images are never queued');
    assert.equal(new Set(queue.items.map((i) => i.id)).size, 3);
  });

  it('accepts a prediction as a label, marked as an accepted suggestion', async () => {
    const accepted = await ok('predictions.accept', { imageIds: [idOf.get('u2')!] });
    assert.deepEqual(accepted.changes, [{ imageId: idOf.get('u2'), previousClassId: null }]);
    const detail = await ok('images.get', { imageId: idOf.get('u2')! });
    assert.equal(detail.labelClassId, cat);
    assert.equal(detail.labelSource, 'suggestion');
  });

  it('maps the latest embeddings to 2-D with each point’s label and prediction', async () => {
    const map = await ok('results.embeddingMap', {});
    assert.equal(map.points.length, 20);
    const u2 = map.points.find((p) => p.imageId === idOf.get('u2'))!;
    assert.equal(u2.labelClassId, cat);
    assert.ok(map.points.every((p) => Number.isFinite(p.x) && Number.isFinite(p.y)));
    assert.ok(fs.existsSync(path.join(root, 'project', 'cache', `embedding-map-${map.runId}.json`)));
    assert.deepEqual((await ok('results.embeddingMap', {})).points, map.points, 'served from the cache');
  });

  it('renames, merges and deletes classes, reporting how many labels each affected', async () => {
    const added = await ok('classes.add', { name: '  fox ' });
    assert.ok(added.classes.some((c) => c.name === 'fox'));
    const duplicate = await dispatch(handlers, 'classes.add', { name: 'FOX' });
    assert.ok('error' in duplicate && duplicate.status === 400 && /already exists/.test(duplicate.error.message));
    await ok('labels.set', { imageIds: [idOf.get('u5')!, idOf.get('u6')!], classId: added.classId });
    await ok('classes.rename', { classId: added.classId, name: 'wolf' });
    const merged = await ok('classes.merge', { classId: added.classId, intoClassId: dog });
    assert.equal(merged.moved, 2);
    assert.ok(!merged.classes.some((c) => c.name === 'wolf'));
    const deleted = await ok('classes.delete', { classId: dog });
    assert.equal(deleted.removed, 8);
    assert.deepEqual(deleted.classes.map((c) => c.name), ['cat']);
  });

  it('exports labels as CSV and as class folders inside the project', async () => {
    const csv = await ok('export.labels', { format: 'csv' });
    assert.ok(csv.path.startsWith(path.join(root, 'project', 'exports')));
    const lines = fs.readFileSync(csv.path, 'utf8').trim().split('\n');
    assert.equal(lines.length, csv.count + 1);
    const folders = await ok('export.labels', { format: 'folders' });
    assert.equal(fs.readdirSync(path.join(folders.path, 'cat')).length, folders.count);
    assert.deepEqual(folders.skipped, []);
  });

  it('names the labelled files a folder export had to skip', async () => {
    const moved = path.join(root, 'images', 'labelled', 'cat', 'a0.png');
    fs.renameSync(moved, `${moved}.away`);
    try {
      const folders = await ok('export.labels', { format: 'folders' });
      assert.deepEqual(folders.skipped, [moved]);
      assert.ok(folders.count > 0, 'the other files are still written');
    } finally {
      fs.renameSync(`${moved}.away`, moved);
    }
  });

  it('lists recent projects with their counts', async () => {
    const recent = await ok('projects.recent', {});
    assert.equal(recent.projects[0].dir, path.join(root, 'project'));
    assert.equal(recent.projects[0].images, 20);
    assert.equal(recent.projects[0].exists, true);
  });

  it('builds the sample project once, mostly unlabelled, and opens it', async () => {
    const status = await ok('projects.openSample', {});
    assert.equal(status.project!.dir, path.join(root, 'home', 'sample-project'));
    assert.equal(status.project!.images, 200);
    assert.equal(status.project!.classes.length, 10);
    assert.equal(status.project!.labelled, 10 * SAMPLE_LABELS_PER_CLASS);
    const again = await ok('projects.openSample', {});
    assert.equal(again.project!.labelled, 10 * SAMPLE_LABELS_PER_CLASS);
    assert.equal((await ok('projects.recent', {})).projects.length, 2);
  });

  it('refuses a relative project folder instead of creating it wherever the server runs', async () => {
    const result = await dispatch(handlers, 'projects.create', { dir: 'my-project' });
    assert.ok('error' in result);
    assert.equal(result.status, 400);
    assert.match(result.error.message, /full path/);
    assert.equal(fs.existsSync('my-project'), false);
  });

  it('answers "no project" clearly once the project is closed', async () => {
    await ok('projects.close', {});
    const result = await dispatch(handlers, 'images.ids', { filter: { kind: 'all' }, sort: 'import' });
    assert.ok('error' in result);
    assert.equal(result.status, 409);
    assert.match(result.error.message, /no project is open/);
  });
});
