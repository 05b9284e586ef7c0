/**
 * The studio on the bundled sample (ten CIFAR-10 classes, 200 images, 50 labelled) in a 1280×800
 * window, walked through as in issue #11 (the studio's part of it).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import type { Page, Request } from 'playwright-core';
import { closeStudio, openStudio, repoRoot, screenshot, tempDir, type StudioPage } from './helpers.ts';

const classNames = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

let home: string;
let studio: StudioPage;
let page: Page;

before(async () => {
  home = tempDir('sample');
  studio = await openStudio([], { CONTRAST_HOME: home }, { width: 1280, height: 800 });
  page = studio.page;
  await page.click('text=Open the sample project');
  await page.waitForSelector('[role="gridcell"] img', { timeout: 120_000 });
});

after(() => closeStudio(studio ?? {}, home));

async function go(screen: string): Promise<void> {
  await page.click(`nav button[data-screen="${screen}"]`);
}

async function labelledCount(): Promise<number> {
  return Number(/· (\d+) labelled/.exec((await page.textContent('.sidebar .project'))!)![1]);
}

async function waitForLabelled(count: number): Promise<void> {
  await page.waitForFunction((n) => document.querySelector('.sidebar .project')?.textContent?.includes(`· ${n} labelled`), count);
}

async function waitForGalleryCount(count: number): Promise<void> {
  await page.waitForFunction((n) => new RegExp(`^${n} images`).test(document.querySelector('[data-testid="gallery-count"]')?.textContent ?? ''), count);
}

/** The Label screen's "Labels per class" count for one class. */
async function waitForClassLabels(name: string, count: number): Promise<void> {
  await page.waitForFunction(
    ([className, n]) =>
      [...document.querySelectorAll('.counts tr')].find((row) => row.textContent?.includes(className))?.querySelector('td.num')?.textContent === String(n),
    [name, count] as const,
  );
}

async function buttonKeys(): Promise<string[]> {
  return page.$$eval('.side .class-button', (buttons) => buttons.map((b) => `${(b as HTMLElement).dataset.class}:${b.querySelector('kbd')?.textContent ?? ''}`));
}

/** Boxes of the shown screen whose content is wider than they are: cut off, or scrolling sideways. */
function overflowing(selector = 'main.content, main.content > *, .dialog'): Promise<string[]> {
  return page.$$eval(selector, (elements) =>
    elements.filter((e) => e.scrollWidth > e.clientWidth).map((e) => `${e.tagName.toLowerCase()}.${e.classList[0]}: ${e.scrollWidth} px wide in ${e.clientWidth} px`),
  );
}

describe('the sample project at 1280×800', () => {
  it('gives the tenth class key 0 and lets the Classes dialog change a key, kept after a reload', async () => {
    await go('label');
    await page.waitForSelector('[data-testid="file-name"]');
    assert.deepEqual(await buttonKeys(), classNames.map((name, i) => `${name}:${(i + 1) % 10}`));
    await page.keyboard.press('0');
    await waitForClassLabels('truck', 6);

    await page.click('text=Classes…');
    await page.selectOption('select[aria-label="Key for truck"]', 'x');
    await page.keyboard.press('Escape');
    assert.equal((await buttonKeys()).at(-1), 'truck:x');
    await page.keyboard.press('x');
    await waitForClassLabels('truck', 7);

    // Taking a key another class holds swaps the two.
    await page.click('text=Classes…');
    await page.selectOption('select[aria-label="Key for truck"]', '1');
    assert.deepEqual(
      await page.$$eval('.dialog select', (selects) => selects.map((s) => (s as HTMLSelectElement).value)),
      ['x', '2', '3', '4', '5', '6', '7', '8', '9', '1'],
    );
    const clippedButtons = await page.$$eval('.dialog tbody button', (buttons) => {
      const dialog = document.querySelector('.dialog')!.getBoundingClientRect();
      return buttons.filter((b) => b.getBoundingClientRect().right > dialog.right).map((b) => b.textContent);
    });
    assert.deepEqual(clippedButtons, []);
    assert.deepEqual(await overflowing('.dialog'), []);
    await screenshot(page, 'sample-classes-dialog');
    await page.keyboard.press('Escape');

    await page.reload();
    await page.waitForSelector('[data-testid="file-name"]');
    assert.deepEqual((await buttonKeys()).filter((k) => /^(airplane|truck):/.test(k)), ['airplane:x', 'truck:1']);
  });

  it('labels a few images at once without asking, and undoes them with u', async () => {
    await go('gallery');
    await page.selectOption('select[name="filter"]', 'unlabelled');
    await waitForGalleryCount(148);
    const before = await labelledCount();
    await page.click('[role="gridcell"][data-index="0"]');
    await page.click('[role="gridcell"][data-index="2"]', { modifiers: ['Shift'] });
    await page.keyboard.press('5');
    await waitForLabelled(before + 3);
    assert.equal(await page.locator('.dialog').count(), 0, 'no confirmation for 3 images');
    await page.keyboard.press('u');
    await waitForLabelled(before);
    await waitForGalleryCount(148);
  });

  it('asks before labelling more than 50 images, and undoes with u, Ctrl+Z or the toast when the focus is on the page', async () => {
    const before = await labelledCount();
    await page.click('[role="gridcell"][data-index="0"]');
    await page.keyboard.press('Control+a');
    await page.keyboard.press('5');
    assert.match((await page.textContent('.dialog'))!, /Label 148 images “deer”\?/);
    await screenshot(page, 'sample-bulk-confirm');
    await page.keyboard.press('Escape');
    await page.waitForSelector('.dialog', { state: 'detached' });
    assert.equal(await labelledCount(), before);

    for (const undo of ['u', 'Control+z', 'the toast']) {
      await page.click('[role="gridcell"][data-index="0"]');
      await page.keyboard.press('Control+a');
      await page.keyboard.press('5');
      await page.click('.dialog button.primary');
      await waitForLabelled(before + 148);
      await page.waitForSelector('text=No images match this filter');
      assert.equal(await page.evaluate(() => document.activeElement === document.body), true, 'the emptied grid leaves the focus on the page');
      const toast = page.locator('.toast', { hasText: 'Labelled 148 images “deer”' }).last();
      if (undo === 'u') await screenshot(page, 'sample-bulk-undo-toast');
      if (undo === 'the toast') await toast.locator('button', { hasText: 'Undo' }).click();
      else {
        await toast.locator('button', { hasText: 'Undo' }).waitFor();
        await page.keyboard.press(undo);
      }
      await waitForLabelled(before);
      await waitForGalleryCount(148);
    }
    await page.waitForSelector('.toast >> text=Labelled 148 images', { state: 'detached' }); // an undone toast goes away
  });

  /** Trains one tiny run through the UI and counts the `runs.get` requests the Train screen sent meanwhile. */
  async function trainCountingRunFetches(stage: string, settings: Record<string, string>): Promise<number> {
    await page.$eval('details.step-by-step', (details) => ((details as HTMLDetailsElement).open = true));
    await page.click(`button[data-stage="${stage}"]`);
    await page.waitForSelector(`details.advanced[data-stage="${stage}"]`);
    await page.$eval('details.advanced', (details) => ((details as HTMLDetailsElement).open = true));
    for (const [name, value] of Object.entries(settings)) {
      await page.fill(`[name="adv-${name}"]`, value);
      await page.press(`[name="adv-${name}"]`, 'Tab');
    }
    await page.waitForFunction(() => /minutes|about|measured/i.test(document.querySelector('[data-testid="estimate"]')?.textContent ?? ''));
    let fetches = 0;
    const countRunFetch = (request: Request) => {
      if (new URL(request.url()).pathname === '/api/runs.get') fetches++;
    };
    page.on('request', countRunFetch);
    await page.click('[data-testid="start-training"]');
    await page.waitForSelector(`button[data-stage="${stage}"] .badge.good`, { timeout: 300_000 });
    await page.waitForTimeout(300); // the fetch after the run finished
    page.off('request', countRunFetch);
    return fetches;
  }

  it('fetches a training run once per state change, not on every progress event', async () => {
    await go('train');
    await page.waitForSelector('[data-testid="device"] b');
    const pretrainFetches = await trainCountingRunFetches('pretrain', { epochs: '1', batchSize: '32', width: '0.125', imageSize: '16' });
    const finetuneFetches = await trainCountingRunFetches('finetune', { epochs: '2', batchSize: '16' });
    console.log(`# runs.get while training: pretrain ${pretrainFetches}, fine-tune ${finetuneFetches}`);
    // Shown, started (queued → running), finished: at most one more for a start that raced the reply.
    assert.ok(pretrainFetches >= 2 && pretrainFetches <= 4, `pretrain: ${pretrainFetches} runs.get requests`);
    assert.ok(finetuneFetches >= 2 && finetuneFetches <= 4, `fine-tune: ${finetuneFetches} runs.get requests`);
  });

  it('shows whole class names as confusion-matrix headers', async () => {
    // A name longer than the sample's own, as real projects have.
    await go('gallery');
    await page.click('text=Classes…');
    await page.locator('.dialog tr', { hasText: 'automobile' }).locator('text=Rename').click();
    await page.fill('.dialog input[aria-label="New name"]', 'automobile or van');
    await page.click('.dialog button[type="submit"]');
    await page.waitForSelector('.dialog td >> text=automobile or van');
    await page.keyboard.press('Escape');
    await go('results');
    await page.waitForSelector('table.matrix');
    const heads = await page.$$eval('table.matrix th.column span, table.matrix th.rowhead', (elements) =>
      elements.map((e) => ({ name: e.textContent, cut: e.scrollWidth > e.clientWidth || e.scrollHeight > e.clientHeight })),
    );
    assert.deepEqual(heads.filter((h) => h.cut).map((h) => h.name), []);
    assert.equal(heads.filter((h) => h.name === 'automobile or van').length, 2, 'a column and a row head');
    await screenshot(page, 'sample-results');
  });

  it('fits every screen into the window without cutting anything off sideways', async () => {
    const ready: Record<string, () => Promise<unknown>> = {
      projects: () => page.waitForSelector('text=Recent projects'),
      import: () => page.waitForSelector('input[name="folder"]'),
      gallery: () => page.waitForSelector('[role="gridcell"] img'),
      // Eight images in, the strip of neighbours is at its widest (13 thumbnails).
      label: async () => {
        await page.waitForSelector('[data-testid="file-name"]');
        for (let i = 0; i < 8; i++) await page.keyboard.press('ArrowRight');
        await page.waitForFunction(() => document.querySelectorAll('.strip .thumb').length === 13);
      },
      train: () => page.waitForSelector('[data-testid="run-panel"]'),
      results: () => page.waitForSelector('table.matrix'),
      export: () => page.waitForSelector('text=Labels as CSV'),
    };
    for (const [screen, shown] of Object.entries(ready)) {
      await go(screen);
      await shown();
      await screenshot(page, `sample-1280-${screen}`);
      assert.deepEqual(await overflowing(), [], screen);
    }
  });

  it('forgets the previous project’s import summary after switching projects', async () => {
    await go('import');
    await page.fill('input[name="folder"]', path.join(repoRoot, 'resources', 'sample'));
    await page.setChecked('input[name="labels-from-folders"]', false);
    await page.click('form button[type="submit"]');
    await page.waitForSelector('[data-testid="import-summary"] >> text=Nothing new to import');
    await go('projects');
    await page.fill('input[name="new-project"]', path.join(home, 'second-project'));
    await page.press('input[name="new-project"]', 'Enter');
    await page.waitForFunction(() => document.querySelector('.sidebar .project .name')?.textContent === 'second-project');
    await page.waitForSelector('input[name="folder"]'); // a new project opens on Import
    await page.waitForSelector('[data-testid="import-summary"]', { state: 'detached', timeout: 5000 });
    assert.equal(await page.locator('[aria-label="Import progress"]').count(), 0);
  });

  it('saw no console errors, CSP violations or failed requests', () => {
    assert.deepEqual(studio.problems, []);
  });
});
