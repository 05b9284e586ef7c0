/**
 * Using a trained model on images outside the project, on a real tiny model (trained through the
 * CLI on warm/cool shapes): folder prediction as a service, as the studio's job with its events
 * and as `contrast predict`; and Try it's predictions and "add to project" through the handlers.
 * Every figure in the CSV is checked against the classifier run independently on the same files.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { decodePixels } from '../../app/engine/data/dataset.ts';
import { runClassifier } from '../../app/engine/simclr/model.ts';
import { mirrorAveraged } from '../mirror_average.ts';
import { loadTrainedClassifier } from '../../app/engine/stages/stage_common.ts';
import { initBackend } from '../../app/engine/runtime/backend.ts';
import type { Output, ServerEvent } from '../../app/contract/operations.ts';
import { dispatch } from '../../app/services/dispatch.ts';
import { openModel, predictFolder, PREDICTIONS_CSV_HEADER } from '../../app/services/folder_predictions.ts';
import { createHandlers, type Handlers } from '../../app/services/handlers.ts';
import { Session } from '../../app/services/session.ts';
import { openProject } from '../../app/store/project.ts';
import { parseCsv } from '../../app/store/labels_csv.ts';
import { runCli, shapesProject, tempDir, writeShapeFolders } from './train_fixtures.ts';

const SIZE = 16;
let dir: string;
let projectDir: string;
let runId: number;
/** Fresh shape images the model never saw, in warm/ and cool/, plus broken files in broken/. */
let outside: string;
let goodFiles: string[];
const BROKEN = { 'broken/notes.jpg': 'not an image (unrecognised file content)', 'broken/cut.png': /^corrupt or truncated image/, 'broken/empty.png': 'empty file (0 bytes)' };

before(async () => {
  ({ dir, project: projectDir } = await shapesProject(30, 15));
  const trained = runCli(['finetune', projectDir, '--supervised', '--width', '0.125', '--size', String(SIZE), '--epochs', '3', '--batch', '16', '--seed', '2', '--json']);
  assert.equal(trained.code, 0, trained.stderr);
  runId = (trained.events.find((e) => e.event === 'finished') as { runId: number }).runId;
  outside = path.join(dir, 'outside');
  const written = await writeShapeFolders(outside, 12, 99);
  goodFiles = [...written.cool, ...written.warm]; // scan order: folders and names sorted
  fs.mkdirSync(path.join(outside, 'broken'));
  fs.writeFileSync(path.join(outside, 'broken/notes.jpg'), 'a text file named like a photo');
  fs.writeFileSync(path.join(outside, 'broken/cut.png'), fs.readFileSync(written.warm[0]).subarray(0, 60));
  fs.writeFileSync(path.join(outside, 'broken/empty.png'), '');
  await initBackend('auto');
});

/** What the run's classifier gives each file, computed here without the service: training's decode, one batch, averaged with the mirror images. */
async function expectedProbabilities(files: string[]): Promise<{ classes: string[]; rows: number[][] }> {
  const project = openProject(projectDir, { readonly: true });
  try {
    const { model, classes } = loadTrainedClassifier(project, runId);
    const pixels = Buffer.concat(await Promise.all(files.map((file) => decodePixels(file, SIZE))));
    const images = tf.div(tf.tensor4d(new Uint8Array(pixels), [files.length, SIZE, SIZE, 3], 'int32'), 255) as tf.Tensor4D;
    const probabilities = mirrorAveraged((views) => tf.softmax(runClassifier(model, views, false).logits), images);
    images.dispose();
    const rows = (await probabilities.array()) as number[][];
    probabilities.dispose();
    model.dispose();
    return { classes: classes.map((c) => c.name), rows };
  } finally {
    project.close();
  }
}

function readCsv(file: string): string[][] {
  const rows = parseCsv(fs.readFileSync(file, 'utf8'));
  assert.equal(rows[0].join(','), PREDICTIONS_CSV_HEADER);
  return rows.slice(1);
}

/** Checks each CSV row against the independent computation: class, six-decimal confidence, the runner-up; two classes leave the third empty. */
async function assertCsvMatches(rows: string[][], files: string[]): Promise<void> {
  assert.deepEqual(rows.map((r) => r[0]), files, 'one row per readable file, in scan order');
  const expected = await expectedProbabilities(files);
  rows.forEach(([, first, firstP, second, secondP, third, thirdP], i) => {
    const p = expected.rows[i];
    const best = p[0] >= p[1] ? 0 : 1;
    assert.equal(first, expected.classes[best], `top class of ${files[i]}`);
    assert.ok(Math.abs(Number(firstP) - p[best]) < 1e-5, `${firstP} vs ${p[best]}`);
    assert.equal(second, expected.classes[1 - best]);
    assert.ok(Math.abs(Number(secondP) - p[1 - best]) < 1e-5);
    assert.ok(Math.abs(Number(firstP) + Number(secondP) - 1) < 2e-6, 'the probabilities add up');
    assert.deepEqual([third, thirdP], ['', '']);
  });
}

describe('folder prediction', () => {
  it('writes every readable image with its top classes, copies each into its class folder, reports each broken file', async () => {
    const project = openProject(projectDir, { readonly: true });
    const model = await openModel(project);
    const out = path.join(dir, 'copy-run');
    const progress: string[] = [];
    try {
      const result = await predictFolder(model, { paths: [outside], csvFile: path.join(out, 'predictions.csv'), sortInto: { mode: 'copy', dir: out }, batchSize: 5, onProgress: (p) => progress.push(p.phase) });
      assert.equal(result.runId, runId, 'the current model is the one run');
      assert.equal(result.predicted, goodFiles.length);
      assert.equal(result.cancelled, false);
      const rows = readCsv(path.join(out, 'predictions.csv'));
      await assertCsvMatches(rows, goodFiles);

      assert.deepEqual(result.problems.map((p) => path.relative(outside, p.path)).sort(), Object.keys(BROKEN).sort());
      for (const problem of result.problems) {
        const reason = BROKEN[path.relative(outside, problem.path) as keyof typeof BROKEN];
        if (typeof reason === 'string') assert.equal(problem.reason, reason);
        else assert.match(problem.reason, reason);
      }

      const predictedAs = new Map(rows.map((r) => [r[0], r[1]]));
      for (const { name, count } of result.byClass) {
        const copies = fs.readdirSync(path.join(out, name)).sort();
        const expected = [...predictedAs].filter(([, c]) => c === name).map(([file]) => path.basename(file)).sort();
        assert.deepEqual(copies, expected, `the images predicted ${name}`);
        assert.equal(count, copies.length);
        for (const copy of copies) {
          const source = goodFiles.find((f) => path.basename(f) === copy)!;
          assert.ok(fs.readFileSync(path.join(out, name, copy)).equals(fs.readFileSync(source)), 'a byte-for-byte copy');
        }
      }
      assert.equal(result.byClass.reduce((sum, c) => sum + c.count, 0), goodFiles.length);
      assert.deepEqual([progress[0], progress.at(-1)], ['scanning', 'done']);
    } finally {
      model.dispose();
      project.close();
    }
  });

  it('a cancel ends it before the next batch, keeping the predictions made until then', async () => {
    const project = openProject(projectDir, { readonly: true });
    const model = await openModel(project);
    const controller = new AbortController();
    const csvFile = path.join(dir, 'cancelled.csv');
    try {
      const result = await predictFolder(model, {
        paths: [outside],
        csvFile,
        batchSize: 4,
        signal: controller.signal,
        onProgress: (p) => p.phase === 'predicting' && controller.abort(),
      });
      assert.equal(result.cancelled, true);
      assert.equal(result.predicted, 0, 'cancelled as prediction began: no batch ran');
      assert.deepEqual(readCsv(csvFile), []);
    } finally {
      model.dispose();
      project.close();
    }
  });

  it('contrast predict links the images into class folders and lists what it skipped', async () => {
    const csv = path.join(dir, 'cli.csv');
    const links = path.join(dir, 'links');
    const result = runCli(['predict', projectDir, outside, '--out', csv, '--link-to', links]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`wrote ${goodFiles.length} prediction\\(s\\) to ${csv}`));
    for (const broken of Object.keys(BROKEN)) assert.match(result.stderr, new RegExp(`skipped ${path.join(outside, broken)}: `));
    const rows = readCsv(csv);
    await assertCsvMatches(rows, goodFiles);
    for (const [file, predicted] of rows) {
      const link = path.join(links, predicted, path.basename(file));
      assert.equal(fs.readlinkSync(link), file, 'a symbolic link to the original');
    }
  });
});

describe('the studio: Predict a folder as a job, and Try it', () => {
  let session: Session;
  let handlers: Handlers;
  const events: ServerEvent[] = [];

  before(() => {
    session = new Session({ dataDir: tempDir('contrast-home-') });
    handlers = createHandlers(session);
    session.open(projectDir);
    session.onEvent((event) => events.push(event));
  });
  after(() => session.dispose());

  async function call<N extends keyof Handlers>(name: N, input: unknown): Promise<Output<N>> {
    const result = await dispatch(handlers, name, input);
    if (!('value' in result)) assert.fail(`${name} failed: ${result.error.message}`);
    return result.value as Output<N>;
  }

  async function failure(name: keyof Handlers, input: unknown): Promise<{ code: string; message: string }> {
    const result = await dispatch(handlers, name, input);
    assert.ok(!('value' in result), `${name} should have failed`);
    return result.error;
  }

  function finished(): Promise<Extract<ServerEvent, { type: 'predict.finished' }>> {
    return new Promise((resolve) => {
      const stop = session.onEvent((event) => {
        if (event.type !== 'predict.finished') return;
        stop();
        resolve(event);
      });
    });
  }

  it('predict.start runs as the one job, with progress events, predictions.csv, class copies and skipped.csv', async () => {
    events.length = 0;
    const done = finished();
    const { outDir } = await call('predict.start', { folder: outside, sort: 'copy' });
    assert.equal(session.activeJob?.kind, 'predict');
    assert.equal((await failure('predict.start', { folder: outside })).code, 'busy', 'one job at a time');
    const { summary, error } = await done;
    assert.equal(error, null);
    assert.ok(summary);
    assert.equal(summary.outDir, outDir);
    assert.ok(outDir.startsWith(path.join(projectDir, 'exports', 'predictions-outside-')));
    assert.equal(summary.predicted, goodFiles.length);
    assert.equal(summary.errors, 3);
    assert.deepEqual(summary.problems.map((p) => path.basename(p.path)).sort(), ['cut.png', 'empty.png', 'notes.jpg']);
    await assertCsvMatches(readCsv(summary.csvPath), goodFiles);
    assert.deepEqual(fs.readdirSync(outDir).sort(), [...summary.byClass.map((c) => c.name), 'predictions.csv', 'skipped.csv'].sort());
    assert.equal(parseCsv(fs.readFileSync(path.join(outDir, 'skipped.csv'), 'utf8')).length, 1 + 3);
    const progress = events.filter((e) => e.type === 'predict.progress');
    assert.ok(progress.length >= 2);
    assert.deepEqual(progress.at(-1), { ...progress.at(-1), phase: 'done', total: goodFiles.length + 3, done: goodFiles.length + 3, errors: 3 });
    assert.equal(session.activeJob, null, 'the job slot is free again');
  });

  it('predict.cancel ends the job with a summary that says so', async () => {
    const done = finished();
    await call('predict.start', { folder: outside });
    assert.deepEqual(await call('predict.cancel', {}), { cancelled: true });
    const { summary } = await done;
    assert.equal(summary?.cancelled, true);
    assert.ok(summary!.predicted < goodFiles.length, `${summary!.predicted} predicted before the cancel`);
    assert.equal(session.activeJob, null);
  });

  it('predict.start refuses a missing folder or a file', async () => {
    assert.equal((await failure('predict.start', { folder: path.join(dir, 'nowhere') })).code, 'not_found');
    assert.equal((await failure('predict.start', { folder: goodFiles[0] })).code, 'not_a_folder');
  });

  it('tryIt.predict gives each image its classes, the same as the folder prediction, and a reason for a bad one', async () => {
    const files = [goodFiles[0], goodFiles.at(-1)!];
    const images = [...files.map((file) => ({ name: path.basename(file), data: fs.readFileSync(file).toString('base64') })), { name: 'notes.jpg', data: Buffer.from('just text').toString('base64') }];
    const { runId: used, results } = await call('tryIt.predict', { images });
    assert.equal(used, runId);
    const expected = await expectedProbabilities(files);
    files.forEach((file, i) => {
      const result = results[i];
      assert.ok('top' in result, JSON.stringify(result));
      assert.equal(result.name, path.basename(file));
      const best = expected.rows[i][0] >= expected.rows[i][1] ? 0 : 1;
      assert.equal(result.top[0].name, expected.classes[best]);
      assert.ok(Math.abs(result.top[0].probability - expected.rows[i][best]) < 1e-5);
      assert.equal(result.top.length, 2, 'two classes');
    });
    assert.deepEqual(results[2], { name: 'notes.jpg', error: 'not an image (unrecognised file content)' });
    const schema = await failure('tryIt.predict', { images: [{ name: 'x.jpg', data: 'not base64!' }] });
    assert.equal(schema.code, 'bad_input');
  });

  it('tryIt.add copies the image into added/, imports it and labels it; the same image again is only relabelled', async () => {
    const before = await call('project.status', {});
    const classes = before.project!.classes;
    const warm = classes.find((c) => c.name === 'warm')!;
    const cool = classes.find((c) => c.name === 'cool')!;
    const file = goodFiles.at(-1)!;
    const image = { name: `../sneaky/${path.basename(file)}`, data: fs.readFileSync(file).toString('base64') };
    const added = await call('tryIt.add', { image, classId: warm.id });
    assert.equal(added.added, true);
    assert.equal(added.path, path.join(projectDir, 'added', path.basename(file)), 'the base name only, in the project’s added/ folder');
    assert.ok(fs.readFileSync(added.path).equals(fs.readFileSync(file)));
    const after = await call('project.status', {});
    assert.equal(after.project!.images, before.project!.images + 1);
    assert.equal(after.project!.labelled, before.project!.labelled + 1);
    assert.equal(after.project!.classes.find((c) => c.id === warm.id)!.labels, warm.labels + 1);
    const detail = await call('images.get', { imageId: added.imageId });
    assert.deepEqual([detail.labelClassId, detail.labelSource, detail.path], [warm.id, 'human', added.path]);
    assert.ok(events.some((e) => e.type === 'labels.changed'));

    const again = await call('tryIt.add', { image, classId: cool.id });
    assert.deepEqual([again.added, again.imageId, again.path], [false, added.imageId, added.path]);
    assert.deepEqual(fs.readdirSync(path.join(projectDir, 'added')), [path.basename(file)], 'no second copy');
    const relabelled = await call('project.status', {});
    assert.equal(relabelled.project!.images, after.project!.images);
    assert.equal((await call('images.get', { imageId: added.imageId })).labelClassId, cool.id);

    const text = await failure('tryIt.add', { image: { name: 'x.png', data: Buffer.from('text').toString('base64') }, classId: warm.id });
    assert.equal(text.code, 'not_an_image');
    assert.equal((await failure('tryIt.add', { image, classId: 9999 })).code, 'not_found');
  });
});
