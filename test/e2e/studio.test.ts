/**
 * The studio in Chromium against `contrast serve` on a temporary project, as a user works:
 * import generated images, label by keyboard, train the three stages on tiny settings, read the
 * results, accept a prediction, export, reload and find everything still there. Screenshots of
 * each screen go to test-results/e2e/.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { openProject } from '../../app/store/project.ts';
import { closeStudio, openStudio, screenshot, tempDir, writeClassImages, type StudioPage } from './helpers.ts';

const colours: Record<string, [number, number, number]> = { blue: [50, 70, 210], green: [40, 180, 60], red: [200, 40, 40] };
/** Classes are listed by name, so keys 1–3 are blue, green, red. */
const keyOf: Record<string, string> = { blue: '1', green: '2', red: '3' };

let root: string;
let studio: StudioPage;
let page: Page;

before(async () => {
  root = tempDir('studio');
  await writeClassImages(path.join(root, 'images', 'labelled'), colours, 6);
  await writeClassImages(path.join(root, 'images', 'unlabelled'), colours, 10, 32, 99);
  openProject(path.join(root, 'project'), { create: true }).close();
  studio = await openStudio([path.join(root, 'project')], { CONTRAST_HOME: path.join(root, 'home') });
  page = studio.page;
});

after(() => closeStudio(studio ?? {}, root));

async function go(screen: string): Promise<void> {
  await page.click(`nav button[data-screen="${screen}"]`);
}

async function importFolder(folder: string, labelsFromFolders: boolean): Promise<void> {
  await go('import');
  await page.fill('input[name="folder"]', folder);
  await page.setChecked('input[name="labels-from-folders"]', labelsFromFolders);
  await page.click('form button[type="submit"]');
  await page.waitForSelector('[data-testid="import-summary"]', { timeout: 60_000 });
}

describe('studio workflow in the browser', () => {
  it('imports a labelled and an unlabelled folder with progress and a summary', async () => {
    await page.waitForSelector('input[name="folder"]'); // an empty project opens on Import
    await screenshot(page, '01-import-empty');
    await importFolder(path.join(root, 'images', 'labelled'), true);
    assert.match(await page.textContent('[data-testid="import-summary"]') ?? '', /Imported 18 new images/);
    await importFolder(path.join(root, 'images', 'unlabelled'), false);
    assert.match(await page.textContent('[data-testid="import-summary"]') ?? '', /Imported 30 new images/);
    await screenshot(page, '02-import-done');
  });

  it('shows every image in the gallery and filters the unlabelled ones', async () => {
    await go('gallery');
    await page.waitForSelector('[role="gridcell"] img');
    assert.match((await page.textContent('[data-testid="gallery-count"]'))!, /^48 images/);
    await page.selectOption('select[name="filter"]', 'unlabelled');
    await page.waitForFunction(() => /^30 images/.test(document.querySelector('[data-testid="gallery-count"]')?.textContent ?? ''));
    await page.selectOption('select[name="filter"]', 'all');
    await page.waitForFunction(() => /^48 images/.test(document.querySelector('[data-testid="gallery-count"]')?.textContent ?? ''));
    await screenshot(page, '03-gallery');
  });

  it('labels ten images by keyboard, each next image shown within milliseconds, and undoes with u', async () => {
    await go('label');
    await page.waitForSelector('[data-testid="label-image"]');
    const switchTimes: number[] = [];
    const labelled: string[] = [];
    for (let i = 0; i < 10; i++) {
      const stage = page.locator('[data-testid="label-stage"]');
      const imageId = await stage.getAttribute('data-image-id');
      const name = await page.textContent(`[data-testid="file-name"][data-image-id="${imageId}"]`, { timeout: 5000 }).catch(async (e) => {
        await screenshot(page, 'failed-label');
        throw e;
      });
      const colour = /^(\w+)-/.exec(name!)![1];
      const switches = Number(await stage.getAttribute('data-switches'));
      await page.keyboard.press(keyOf[colour]);
      await page.waitForFunction(
        ([before, count]) => {
          const element = document.querySelector<HTMLElement>('[data-testid="label-stage"]')!;
          return element.dataset.imageId !== before && Number(element.dataset.switches) > count;
        },
        [imageId, switches] as const,
      );
      switchTimes.push(Number(await stage.getAttribute('data-switch-ms')));
      labelled.push(name!);
    }
    const sorted = [...switchTimes].sort((a, b) => a - b);
    console.log(`# labeller: next image shown ${sorted[Math.floor(sorted.length / 2)].toFixed(1)} ms (median) / ${sorted.at(-1)!.toFixed(1)} ms (max) after the keypress, over ${sorted.length} labels`);
    await screenshot(page, '04-label');

    // u goes back to the last image and removes the label it just got.
    const before = await page.locator('[data-testid="label-stage"]').getAttribute('data-image-id');
    await page.keyboard.press('u');
    await page.waitForFunction((id) => document.querySelector<HTMLElement>('[data-testid="label-stage"]')!.dataset.imageId !== id, before);
    await page.waitForSelector('[data-testid="current-label"] >> text=unlabelled');
    const undoneId = await page.locator('[data-testid="label-stage"]').getAttribute('data-image-id');
    assert.equal(await page.textContent(`[data-testid="file-name"][data-image-id="${undoneId}"]`), labelled.at(-1));
    await page.keyboard.press(keyOf[/^(\w+)-/.exec(labelled.at(-1)!)![1]]);
    await page.waitForFunction(() => document.querySelector('.sidebar .project')?.textContent?.includes('28 labelled'));
  });

  it('adds, renames and deletes a class, confirming how many labels it affects', async () => {
    await go('gallery');
    await page.click('text=Classes…');
    await page.fill('input[name="new-class"]', 'purple');
    await page.click('.dialog button[type="submit"]');
    await page.waitForSelector('.dialog td >> text=purple');
    const row = page.locator('.dialog tr', { hasText: 'purple' });
    await row.locator('text=Rename').click();
    await page.fill('.dialog input[aria-label="New name"]', 'violet');
    await page.click('.dialog button[type="submit"]');
    await page.waitForSelector('.dialog td >> text=violet');
    await page.locator('.dialog tr', { hasText: 'violet' }).locator('text=Delete…').click();
    assert.match((await page.textContent('.dialog .notice'))!, /removes the class and\s+0 labels/);
    await screenshot(page, '05-classes-delete');
    await page.click('.dialog button.danger.solid');
    await page.waitForSelector('.dialog td >> text=violet', { state: 'detached' });
    await page.keyboard.press('Escape');
  });

  async function trainStage(stage: string, settings: Record<string, string>): Promise<void> {
    await page.$eval('details.step-by-step', (details) => ((details as HTMLDetailsElement).open = true));
    await page.click(`button[data-stage="${stage}"]`);
    await page.waitForSelector(`details.advanced[data-stage="${stage}"]`);
    await page.$eval('details.advanced', (details) => ((details as HTMLDetailsElement).open = true));
    for (const [name, value] of Object.entries(settings)) {
      const input = page.locator(`[name="adv-${name}"]`);
      await input.waitFor({ timeout: 5000 }).catch(async (error) => {
        await screenshot(page, `failed-${stage}-${name}`);
        throw error;
      });
      await input.fill(value);
      await input.press('Tab');
    }
    await page.waitForFunction(() => /minutes|about|measured/i.test(document.querySelector('[data-testid="estimate"]')?.textContent ?? ''));
    await page.click('[data-testid="start-training"]');
    await page.waitForSelector(`button[data-stage="${stage}"] .badge.good`, { timeout: 180_000 });
  }

  it('trains pretrain, fine-tune and distil on tiny settings with live charts', async () => {
    await go('train');
    await page.waitForSelector('[data-testid="device"] b');
    assert.match((await page.textContent('[data-testid="device"]'))!, /Runs on CPU/);
    await screenshot(page, '06-train');
    const started = performance.now();
    await trainStage('pretrain', { epochs: '2', batchSize: '16', width: '0.125', imageSize: '16' });
    await trainStage('finetune', { epochs: '4', batchSize: '16' });
    await page.waitForSelector('[data-chart="Validation accuracy (per epoch)"]');
    await trainStage('distill', { epochs: '2', batchSize: '16', width: '0.125' });
    console.log(`# three tiny stages trained through the UI in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    await page.waitForSelector('[data-chart="Loss"] path');
    await screenshot(page, '07-train-done');
  });

  it('shows accuracy, the confusion matrix with its images, teacher vs student and the embedding map', async () => {
    await go('results');
    await page.waitForSelector('[data-testid="accuracy"]');
    assert.match((await page.textContent('[data-testid="accuracy"]'))!, /^\d+\.\d%$/);
    await page.waitForSelector('[data-testid="teacher-student"]');
    const cell = page.locator('table.matrix button:not([disabled])').first();
    const count = Number(await cell.textContent());
    await cell.click();
    await page.waitForSelector('[data-testid="cell-images"] .thumb img');
    assert.equal(await page.locator('[data-testid="cell-images"] .thumb').count(), count);
    await page.waitForSelector('canvas[aria-label="Embedding map"]');
    assert.ok(Number(await page.getAttribute('canvas[aria-label="Embedding map"]', 'data-points')) >= 48);
    await screenshot(page, '08-results');
    await page.locator('canvas[aria-label="Embedding map"]').scrollIntoViewIfNeeded();
    await screenshot(page, '08-results-map');
  });

  it('accepts a prediction as a label with one key in the prediction browser', async () => {
    await page.selectOption('.browser-card select[name="filter"]', 'unlabelled');
    await page.waitForSelector('.browser-card [role="gridcell"] .chip.prediction');
    const labelledBefore = Number(/(\d+) labelled/.exec((await page.textContent('.sidebar .project'))!)![1]);
    await page.click('.browser-card [role="gridcell"]');
    await page.keyboard.press('a');
    await page.waitForSelector('[data-kind="success"] >> text=Accepted 1 prediction');
    await page.waitForFunction((before) => document.querySelector('.sidebar .project')?.textContent?.includes(`${before + 1} labelled`), labelledBefore);
  });

  it('exports the labels as CSV and names the file', async () => {
    await go('export');
    await page.click('text=Labels as CSV');
    const notice = await page.waitForSelector('[data-testid="export-labels-csv"]');
    const file = /to (\/\S+labels\.csv)/.exec((await notice.textContent())!)![1];
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
    assert.equal(lines[0], 'path,class,source,split');
    assert.equal(lines.length, 1 + 29);
    await page.click('text=Predictions as CSV');
    assert.match((await (await page.waitForSelector('[data-testid="export-predictions"]')).textContent())!, /Saved 48 predictions to \/\S+\.csv/);
    await page.click('button:has-text("Export run #")'); // the current model, chosen by default
    const model = /to (\/\S+)/.exec((await (await page.waitForSelector('[data-testid="export-model"]', { timeout: 60_000 })).textContent())!)![1];
    assert.ok(fs.existsSync(path.join(model, 'model.json')));
    await screenshot(page, '09-export');
  });

  it('finds everything still there after a reload', async () => {
    await page.reload();
    await page.waitForSelector('.sidebar .project');
    assert.match((await page.textContent('.sidebar .project'))!, /48 images · 29 labelled/);
    await go('gallery');
    await page.selectOption('select[name="filter"]', 'unlabelled');
    await page.waitForFunction(() => /^19 images/.test(document.querySelector('[data-testid="gallery-count"]')?.textContent ?? ''));
    await go('train');
    await page.waitForSelector('details.step-by-step');
    await page.$eval('details.step-by-step', (details) => ((details as HTMLDetailsElement).open = true));
    await page.waitForSelector('button[data-stage="distill"] .badge.good');
    await go('results');
    await page.waitForSelector('[data-testid="accuracy"]');
    await go('projects');
    await page.waitForSelector('text=Recent projects');
    await screenshot(page, '10-projects');
    assert.deepEqual(studio.problems, []);
  });

  it('trains in one click within its budget, and Results name the model it kept', async () => {
    await go('train');
    await page.fill('input[name="one-click-minutes"]', '0.5');
    await page.waitForFunction(() => /labels only \d+ s/.test(document.querySelector('[data-testid="one-click-plan"]')?.textContent ?? ''));
    const started = performance.now();
    await page.click('[data-testid="start-one-click"]');
    await page.waitForSelector('[data-testid="run-progress"] b');
    assert.match((await page.textContent('[data-testid="run-progress"] b'))!, /^(labels only|distil|predict)/);
    await page.waitForSelector('[data-testid="run-panel"] h2 .badge.good', { timeout: 180_000 });
    const seconds = (performance.now() - started) / 1000;
    assert.ok(seconds < 75, `a 30 s budget took ${seconds.toFixed(0)} s`);
    await go('results');
    await page.waitForSelector('[data-testid="current-model"] b');
    assert.match((await page.textContent('[data-testid="current-model"]'))!, /one-click training \(run \d+\) kept the/);
    assert.match((await page.textContent('[data-testid="interval"]'))!, /^95% interval \d+\.\d%–\d+\.\d% · chance \d+\.\d%$/);
    assert.deepEqual(studio.problems, []);
  });
});
