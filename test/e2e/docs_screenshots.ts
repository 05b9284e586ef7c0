/**
 * Screenshots for docs/ui.md: the bundled CIFAR sample opened and trained through the UI with the
 * Quick preset on short budgets (about 6 minutes on two cores). Not part of the test suite.
 *
 *   node --import tsx test/e2e/docs_screenshots.ts [pretrain-minutes] [finetune-minutes] [distill-minutes]
 *
 * Writes test-results/docs/*.png; copy the good ones into docs/screenshots/.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { launchBrowser, newPage, repoRoot, serve, tempDir } from './helpers.ts';

const [pretrainMinutes = '3', finetuneMinutes = '1', distillMinutes = '2'] = process.argv.slice(2);
const out = path.join(repoRoot, 'test-results', 'docs');
fs.mkdirSync(out, { recursive: true });

const home = tempDir('docs');
const served = await serve([], { CONTRAST_HOME: home });
const browser = await launchBrowser();
const page = await newPage(browser);

async function shot(name: string): Promise<void> {
  await page.evaluate(() => document.querySelectorAll('.toasts .toast button').forEach((b) => (b as HTMLButtonElement).click()));
  await page.waitForTimeout(150);
  await page.screenshot({ path: path.join(out, `${name}.png`) });
  console.log(`wrote ${name}.png`);
}

async function go(screen: string): Promise<void> {
  await page.click(`nav button[data-screen="${screen}"]`);
}

async function train(p: Page, stage: string, minutes: string, midShot?: string): Promise<void> {
  await p.$eval('details.step-by-step', (details) => ((details as HTMLDetailsElement).open = true));
  await p.click(`button[data-stage="${stage}"]`);
  await p.fill('input[name="budget"]', minutes);
  await p.waitForSelector(`details.advanced[data-stage="${stage}"]`);
  await p.click('[data-testid="start-training"]');
  if (midShot) {
    await p.waitForSelector('[data-chart="Loss"] path', { timeout: 600_000 });
    await p.waitForTimeout(20_000);
    await shot(midShot);
  }
  await p.waitForSelector(`button[data-stage="${stage}"] .badge.good`, { timeout: 1_800_000 });
}

try {
  await page.goto(served.url);
  await page.waitForSelector('text=Sample project');
  await page.click('text=Open the sample project');
  await page.waitForSelector('[role="gridcell"] img', { timeout: 120_000 });
  await page.waitForTimeout(500);
  await shot('gallery');

  await go('import');
  await page.fill('input[name="folder"]', path.join(repoRoot, 'resources', 'sample'));
  await page.setChecked('input[name="labels-from-folders"]', false);
  await page.click('form button[type="submit"]');
  await page.waitForSelector('[data-testid="import-summary"]');
  await go('import'); // the same folder again: everything is already known
  await shot('import');

  await go('label');
  await page.waitForSelector('[data-testid="file-name"]');
  await page.waitForTimeout(300);
  await shot('label');

  await go('train');
  await train(page, 'pretrain', pretrainMinutes, 'train-live');
  await train(page, 'finetune', finetuneMinutes);
  await train(page, 'distill', distillMinutes);
  await page.waitForSelector('[data-chart="Validation accuracy (per epoch)"]');
  await shot('train');

  await go('results');
  await page.waitForSelector('[data-testid="teacher-student"]', { timeout: 60_000 });
  await page.locator('table.matrix button:not([disabled])').nth(1).click();
  await page.waitForSelector('[data-testid="cell-images"] .thumb img');
  await page.waitForTimeout(300);
  await shot('results');
  const map = page.locator('canvas[aria-label="Embedding map"]');
  await map.waitFor({ timeout: 120_000 });
  await map.scrollIntoViewIfNeeded();
  const box = (await map.boundingBox())!;
  // Hover the point nearest the middle to show its thumbnail.
  for (let dx = 0; dx < 200; dx += 6) {
    await page.mouse.move(box.x + box.width / 2 + dx, box.y + box.height / 2);
    if (await page.locator('.map .tip').count()) break;
  }
  await shot('embedding-map');

  await go('gallery');
  await page.selectOption('select[name="filter"]', 'misclassified');
  await page.waitForTimeout(800);
  await shot('gallery-errors');

  await go('export');
  await page.click('text=Labels as CSV');
  await page.click('text=Export model (TF.js)');
  await page.waitForSelector('[data-testid="export-model"]', { timeout: 120_000 });
  await shot('export');

  await go('projects');
  await page.waitForSelector('text=Recent projects');
  await shot('projects');
} finally {
  await browser.close();
  await served.stop();
  fs.rmSync(home, { recursive: true, force: true });
}
