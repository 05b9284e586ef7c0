/**
 * "Start from a pretrained network…" in the studio's Train screen, in Chromium against
 * `contrast serve`: a typed file path is imported as a run, and one-click Train then plans to
 * fine-tune and distil it.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { openProject } from '../../app/store/project.ts';
import { closeStudio, openStudio, screenshot, tempDir, writeClassImages, type StudioPage } from './helpers.ts';

const TINY_RESNET = path.join(import.meta.dirname, '../fixtures/weights/tiny_resnet18.pth');

let root: string;
let studio: StudioPage;
let page: Page;

before(async () => {
  root = tempDir('pretrained');
  await writeClassImages(path.join(root, 'images'), { blue: [50, 70, 210], red: [200, 40, 40] }, 6);
  openProject(path.join(root, 'project'), { create: true }).close();
  studio = await openStudio([path.join(root, 'project')], { CONTRAST_HOME: path.join(root, 'home') });
  page = studio.page;
});

after(() => closeStudio(studio ?? {}, root));

it('imports a weights file by its path, and Train then starts from it', async () => {
  await page.click('nav button[data-screen="import"]');
  await page.fill('input[name="folder"]', path.join(root, 'images'));
  await page.setChecked('input[name="labels-from-folders"]', true);
  await page.click('form button[type="submit"]');
  await page.waitForSelector('[data-testid="import-summary"]', { timeout: 60_000 });

  await page.click('nav button[data-screen="train"]');
  await page.click('[data-testid="pretrained-import"] summary');
  await page.fill('input[name="weights-path"]', TINY_RESNET);
  await page.fill('input[name="weights-size"]', '32');
  await page.fill('input[name="weights-name"]', 'Tiny R18');
  await page.click('[data-testid="import-weights"]');
  const result = await page.waitForSelector('[data-testid="pretrained-result"]', { timeout: 60_000 });
  assert.match((await result.textContent())!.replace(/\s+/g, ' '), /Imported as run #1: Tiny R18, ResNet-18 ×0\.0625, 32 px, ImageNet mean\/std input \(100 weights\)/);
  assert.equal(await page.inputValue('select[name="one-click-from"]'), '1');
  await page.waitForFunction(() => /fine-tunes and distils Tiny R18 \(run 1\)/.test(document.querySelector('[data-testid="one-click-plan"]')?.textContent ?? ''));
  await screenshot(page, 'train-pretrained-import');
  assert.deepEqual(studio.problems, []);
});
