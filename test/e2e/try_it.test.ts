/**
 * Using the model in Chromium against `contrast serve`: on a project of the bundled CIFAR sample
 * with a tiny model trained through the CLI, three sample photos the project does not hold are
 * uploaded and dropped on the Try it screen; each shows its top three classes with the confidences
 * `contrast predict` gives the same files; one key press adds one to the project with a label, which
 * the project's counts show; a folder is predicted as a job; Export offers the model to export.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { closeStudio, openStudio, repoRoot, screenshot, tempDir, type StudioPage } from './helpers.ts';

const SAMPLE = path.join(repoRoot, 'resources', 'sample');
/** Kept out of the project, to be tried: one photo each of three classes. */
const TRIED = ['cat/0019.jpg', 'ship/0019.jpg', 'frog/0019.jpg'].map((file) => path.join(SAMPLE, file));
/** Classes are listed by name, so cat is the fourth and has key 4. */
const CAT_KEY = '4';

let root: string;
let projectDir: string;
let studio: StudioPage;
let page: Page;
/** `contrast predict`'s rows for the tried files: name → [class, confidence] × 3. */
const expected = new Map<string, [string, number][]>();

function contrast(args: string[]): string {
  const result = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'contrast.js'), ...args], { encoding: 'utf8' });
  assert.equal(result.status, 0, `contrast ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

async function api<T>(name: string, input: object = {}): Promise<T> {
  const response = await fetch(`${studio.served.origin}/api/${name}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-contrast-token': studio.served.token }, body: JSON.stringify(input) });
  assert.equal(response.status, 200, `${name}: ${await response.clone().text()}`);
  return (await response.json()) as T;
}

before(async () => {
  root = tempDir('try-it');
  const images = path.join(root, 'images');
  fs.cpSync(SAMPLE, images, { recursive: true, filter: (source) => !TRIED.includes(source) && !source.endsWith('README.md') });
  projectDir = path.join(root, 'project');
  contrast(['init', projectDir]);
  contrast(['import', projectDir, images, '--labels-from-folders']);
  contrast(['finetune', projectDir, '--supervised', '--width', '0.25', '--size', '32', '--epochs', '2', '--batch', '32', '--seed', '1']);
  const csv = path.join(root, 'expected.csv');
  contrast(['predict', projectDir, ...TRIED, '--out', csv]);
  for (const line of fs.readFileSync(csv, 'utf8').trim().split('\n').slice(1)) {
    const [file, ...columns] = line.split(',');
    expected.set(path.basename(path.dirname(file)) + '.jpg', [0, 2, 4].map((i) => [columns[i], Number(columns[i + 1])]));
  }
  studio = await openStudio([projectDir], { CONTRAST_HOME: path.join(root, 'home') });
  page = studio.page;
  await page.waitForSelector('nav button[data-screen="try"]:not([disabled])');
});

after(() => closeStudio(studio ?? {}, root));

/** Named by class, so the cards are told apart: cat.jpg, ship.jpg, frog.jpg. */
function triedAs(file: string): { name: string; mimeType: string; buffer: Buffer } {
  return { name: path.basename(path.dirname(file)) + '.jpg', mimeType: 'image/jpeg', buffer: fs.readFileSync(file) };
}

async function shownTop(name: string): Promise<[string, number][]> {
  return page.$$eval(`[data-testid="tryout"][data-name="${name}"] [data-testid="tryout-top"] li`, (items) =>
    items.map((li) => [li.getAttribute('data-class')!, Number(li.getAttribute('data-probability'))] as [string, number]),
  );
}

describe('Try it in the browser', () => {
  it('opens with g y and names the current model', async () => {
    await page.keyboard.press('g');
    await page.keyboard.press('y');
    await page.waitForFunction(() => document.querySelector('[data-testid="try-model"]')?.textContent?.includes(':'));
    assert.match((await page.textContent('[data-testid="try-model"]'))!, /^\s*Predictions from the current model, run #1: the newest trained model \(run 1, [\d.]+% on validation\)/);
  });

  it('shows the top three classes of two uploaded and one dropped photo, as contrast predict gives them', async () => {
    const [cat, ship, frog] = TRIED.map(triedAs);
    await page.setInputFiles('input[name="try-images"]', [cat, ship]);
    await page.evaluate(
      ({ name, base64 }) => {
        const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, { type: 'image/jpeg' }));
        document.querySelector('[data-testid="try-drop"]')!.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
      },
      { name: frog.name, base64: frog.buffer.toString('base64') },
    );
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="tryout"][data-state="ready"]').length === 3, null, { timeout: 30_000 });
    for (const name of ['cat.jpg', 'ship.jpg', 'frog.jpg']) {
      const shown = await shownTop(name);
      const wanted = expected.get(name)!;
      assert.deepEqual(shown.map(([c]) => c), wanted.map(([c]) => c), `${name}: the same three classes in the same order`);
      shown.forEach(([, p], i) => assert.ok(Math.abs(p - wanted[i][1]) < 1e-5, `${name}: ${p} vs ${wanted[i][1]}`));
      const percentages = await page.$$eval(`[data-testid="tryout"][data-name="${name}"] [data-testid="tryout-top"] .num`, (cells) => cells.map((c) => c.textContent));
      assert.deepEqual(percentages, wanted.map(([, p]) => `${(p * 100).toFixed(1)}%`));
    }
    await screenshot(page, 'try-it');
  });

  it('adds the selected photo to the project with one key press, and the project counts it', async () => {
    const before = await api<{ project: { images: number; labelled: number; classes: { name: string; labels: number }[] } }>('project.status');
    await page.click('[data-testid="tryout"][data-name="cat.jpg"] button.pick');
    await page.keyboard.press(CAT_KEY);
    await page.waitForSelector('[data-testid="tryout"][data-name="cat.jpg"][data-state="added"]');
    assert.match((await page.textContent('[data-testid="tryout"][data-name="cat.jpg"] [data-testid="tryout-added"]'))!, /Added to the project, labelled “cat” \(image #\d+\)/);
    const after = await api<typeof before>('project.status');
    assert.equal(after.project.images, before.project.images + 1);
    assert.equal(after.project.labelled, before.project.labelled + 1);
    const labels = (status: typeof before, name: string) => status.project.classes.find((c) => c.name === name)!.labels;
    assert.equal(labels(after, 'cat'), labels(before, 'cat') + 1);
    assert.equal(labels(after, 'ship'), labels(before, 'ship'));
    assert.ok(fs.readFileSync(path.join(projectDir, 'added', 'cat.jpg')).equals(fs.readFileSync(TRIED[0])), 'a copy in the project’s added/ folder');
    await page.waitForFunction((n) => document.querySelector('.sidebar .project')?.textContent?.includes(`${n} images`), after.project.images);
  });

  it('predicts a folder as a job and sums up what it wrote', async () => {
    const folder = path.join(root, 'to-predict');
    fs.mkdirSync(folder);
    for (const file of TRIED) fs.copyFileSync(file, path.join(folder, triedAs(file).name));
    fs.writeFileSync(path.join(folder, 'notes.jpg'), 'not a photo');
    await page.fill('input[name="predict-folder"]', folder);
    await page.check('input[name="sort"][value="copy"]');
    await page.click('button:has-text("Predict the folder")');
    await page.waitForSelector('[data-testid="predict-summary"]', { timeout: 30_000 });
    const summary = (await page.textContent('[data-testid="predict-summary"]'))!;
    assert.match(summary, /Predicted 3 images in/);
    assert.match(summary, /1 file skipped/);
    const csv = /written to\s+(\S+predictions\.csv)/.exec(summary)![1];
    const rows = fs.readFileSync(csv, 'utf8').trim().split('\n').slice(1).map((line) => line.split(','));
    for (const [file, predicted] of rows) assert.deepEqual([predicted], [expected.get(path.basename(file))![0][0]], file);
    await screenshot(page, 'try-it-folder');
  });

  it('lets Export pick the model, the current one by default', async () => {
    await page.click('nav button[data-screen="export"]');
    await page.waitForSelector('select[name="export-run"]');
    assert.equal(await page.inputValue('select[name="export-run"]'), '1');
    assert.match((await page.textContent('[data-testid="export-model-default"]'))!, /The default is the current model, run #1:/);
    await page.click('button:has-text("Export run #1")');
    await page.waitForSelector('[data-testid="export-model"]', { timeout: 60_000 });
    assert.ok(fs.existsSync(path.join(projectDir, 'exports', 'model-run1', 'model.onnx')));
  });

  it('shows no console error, CSP violation or failed request', () => {
    assert.deepEqual(studio.problems, []);
  });
});
