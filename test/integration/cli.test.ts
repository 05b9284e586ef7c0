import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { runCli, tempDir, writeImage } from '../helpers.ts';

test('contrast --help lists the commands; an unknown command or option is one clear line and exit 2', () => {
  const help = runCli(['--help']);
  assert.equal(help.code, 0);
  for (const name of ['init', 'import', 'label', 'classes', 'status', 'export-labels']) assert.match(help.stdout, new RegExp(`\\n  ${name} `));
  const unknown = runCli(['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /^contrast: unknown command "frobnicate"/);
  const badOption = runCli(['status', tempDir(), '--colour']);
  assert.equal(badOption.code, 2);
  assert.match(badOption.stderr, /Unknown option '--colour'/);
  assert.doesNotMatch(badOption.stderr, /at .*\.ts:\d+/, 'no stack trace');
});

test('user mistakes exit non-zero with one line and no stack trace', () => {
  const dir = tempDir();
  const missing = runCli(['status', path.join(dir, 'nope')]);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr.trim().split('\n').length, 1);
  assert.match(missing.stderr, /no project at .*contrast init/);
  assert.equal(runCli(['init', path.join(dir, 'p')]).code, 0);
  const noCsv = runCli(['label', path.join(dir, 'p'), '--csv', path.join(dir, 'missing.csv')]);
  assert.equal(noCsv.code, 1);
  assert.match(noCsv.stderr, /cannot read .*missing\.csv/);
  const badSplit = runCli(['import', path.join(dir, 'p'), dir, '--split', 'train']);
  assert.equal(badSplit.code, 2);
  assert.match(badSplit.stderr, /--split only takes "test"/);
  const badAction = runCli(['classes', path.join(dir, 'p'), 'explode', 'x']);
  assert.equal(badAction.code, 2);
});

test('import, label, classes, status and export-labels work together through the CLI with JSON output', async () => {
  const dir = tempDir();
  const project = path.join(dir, 'p');
  for (let i = 0; i < 6; i++) await writeImage(path.join(dir, 'train', i < 3 ? 'red' : 'blue', `${i}.jpg`), { seed: i, colour: i < 3 ? [220, 30, 30] : [30, 30, 220] });
  for (let i = 0; i < 2; i++) await writeImage(path.join(dir, 'holdout', 'red', `t${i}.jpg`), { seed: 100 + i });
  fs.writeFileSync(path.join(dir, 'unlabelled.jpg'), 'broken');
  assert.equal(runCli(['init', project]).code, 0);

  const imported = runCli(['import', project, path.join(dir, 'train'), path.join(dir, 'unlabelled.jpg'), '--labels-from-folders', '--json']);
  assert.equal(imported.code, 0, imported.stderr);
  const events = imported.stdout.trim().split('\n').map((line) => JSON.parse(line));
  const summary = events.at(-1);
  assert.equal(summary.event, 'summary');
  assert.deepEqual([summary.added, summary.errors, summary.duplicates], [6, 1, 0]);
  assert.ok(events.some((e) => e.event === 'progress' && e.phase === 'scanning'));
  assert.equal(runCli(['import', project, path.join(dir, 'holdout'), '--labels-from-folders', '--split', 'test']).code, 0);

  fs.writeFileSync(path.join(dir, 'relabel.csv'), 'path,class\ntrain/blue/5.jpg,purple\nghost.jpg,red\n');
  const labelled = runCli(['label', project, '--csv', path.join(dir, 'relabel.csv')]);
  assert.equal(labelled.code, 0);
  assert.match(labelled.stdout, /labelled 1 images/);
  assert.match(labelled.stderr, /1 paths are not images of this project:\n  ghost\.jpg/);

  assert.equal(runCli(['classes', project, 'rename', 'purple', 'violet']).code, 0);
  const merged = runCli(['classes', project, 'merge', 'violet', 'blue']);
  assert.match(merged.stdout, /merged "violet" into "blue" \(1 labels moved\)/);

  const status = JSON.parse(runCli(['status', project, '--json', '--errors']).stdout);
  assert.equal(status.images, 8);
  assert.equal(status.labelled, 8);
  assert.equal(status.importErrors, 1);
  assert.deepEqual(status.classes.map((c: { name: string; labels: number }) => [c.name, c.labels]), [['blue', 3], ['red', 5]]);
  assert.match(status.errorFiles[0].reason, /not an image/);
  const text = runCli(['status', project]);
  assert.match(text.stdout, /images: +8 \(8 labelled, 0 unlabelled\)/);
  assert.match(text.stdout, /import: +1 errors/);

  const csvOut = runCli(['export-labels', project, '--format', 'csv', '--out', path.join(dir, 'csv')]);
  assert.equal(csvOut.code, 0);
  const rows = fs.readFileSync(path.join(dir, 'csv', 'labels.csv'), 'utf8').trim().split('\n');
  assert.equal(rows.length, 9);
  assert.ok(rows.some((r) => r.endsWith('/holdout/red/t0.jpg,red,folder,')), 'test images exported with their class');
  assert.equal(runCli(['export-labels', project, '--format', 'folders', '--out', path.join(dir, 'folders')]).code, 0);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'folders')).sort(), ['blue', 'red']);
  assert.equal(fs.readdirSync(path.join(dir, 'folders', 'red')).length, 5);
});
