/**
 * Gallery at 50,000 images: rows are inserted straight into SQLite with one tiny shared thumbnail
 * (importing 50k real files would take minutes), then Chromium opens the gallery and scrolls to the
 * end. Prints time to first thumbnails and the longest frame; a benchmark, so only the behaviour
 * (few DOM nodes, reaches the last image) is asserted.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { Browser } from 'playwright-core';
import { openProject } from '../../app/store/project.ts';
import { launchBrowser, newPage, screenshot, serve, tempDir, watchPage, type Served } from './helpers.ts';

const COUNT = 50_000;
let root: string;
let served: Served;
let browser: Browser;

async function seedProject(dir: string): Promise<void> {
  const thumbnail = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 90, g: 120, b: 170 } } }).webp().toBuffer();
  const project = openProject(dir, { create: true });
  const db = project.db;
  const batch = Number(db.prepare(`INSERT INTO import_batches (roots, options, started_at) VALUES ('[]', '{}', ?)`).run(new Date().toISOString()).lastInsertRowid);
  const insert = db.prepare(
    `INSERT INTO images (path, sha256, size, width, height, format, thumbnail, batch_id, test_set, created_at)
     VALUES (?, ?, 1000, 64, 64, 'webp', ?, ?, 0, ?)`,
  );
  const at = new Date().toISOString();
  db.transaction(() => {
    for (let i = 0; i < COUNT; i++) {
      insert.run(`/nowhere/${i}.webp`, createHash('sha256').update(String(i)).digest('hex'), thumbnail, batch, at);
    }
  })();
  project.close();
}

before(async () => {
  root = tempDir('perf');
  const dir = path.join(root, 'project');
  const started = performance.now();
  await seedProject(dir);
  console.log(`# seeded ${COUNT} images in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  served = await serve([dir], { CONTRAST_HOME: path.join(root, 'home') });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await served?.stop();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('gallery with 50,000 images', () => {
  it('shows the first thumbnails quickly and scrolls to the end with few DOM nodes', async () => {
    const page = await newPage(browser);
    const problems = watchPage(page);
    await page.goto(served.url.replace('#token=', '#/gallery&token='));
    const firstThumbMs = await page.waitForFunction(
      () => {
        const image = document.querySelector<HTMLImageElement>('[role="gridcell"] img');
        return image && image.complete && image.naturalWidth > 0 ? performance.now() : null;
      },
      undefined,
      { polling: 'raf', timeout: 60_000 },
    );
    const firstThumbnails = (await firstThumbMs.jsonValue()) as number;
    assert.match((await page.textContent('[data-testid="gallery-count"]'))!, /50,000 images/);

    // Scroll like a fast trackpad (3,000 px a frame) to the bottom, timing every frame.
    const scroll = await page.evaluate(
      () =>
        new Promise<{ frames: number; longest: number; median: number; maxCells: number; seconds: number }>((resolve) => {
          const viewport = document.querySelector<HTMLElement>('[data-testid="virtual-grid"]')!;
          const durations: number[] = [];
          let maxCells = 0;
          let last = performance.now();
          const started = last;
          const step = (now: number) => {
            durations.push(now - last);
            last = now;
            maxCells = Math.max(maxCells, viewport.querySelectorAll('[role="gridcell"]').length);
            if (viewport.scrollTop + viewport.clientHeight >= viewport.scrollHeight - 1) {
              const sorted = [...durations].sort((a, b) => a - b);
              resolve({
                frames: durations.length,
                longest: sorted.at(-1)!,
                median: sorted[Math.floor(sorted.length / 2)],
                maxCells,
                seconds: (performance.now() - started) / 1000,
              });
              return;
            }
            viewport.scrollTop += 3000;
            requestAnimationFrame(step);
          };
          requestAnimationFrame(step);
        }),
    );
    await page.waitForFunction(() => {
      const cells = [...document.querySelectorAll<HTMLElement>('[role="gridcell"]')];
      const lastImage = cells.at(-1)?.querySelector('img');
      return lastImage?.complete && lastImage.naturalWidth > 0;
    });
    const lastId = await page.evaluate(() => Math.max(...[...document.querySelectorAll<HTMLElement>('[role="gridcell"]')].map((c) => Number(c.dataset.id))));
    await screenshot(page, 'gallery-50k-end');

    console.log(`# gallery 50k: first thumbnails ${firstThumbnails.toFixed(0)} ms after navigation start`);
    console.log(
      `# gallery 50k: scrolled to the end in ${scroll.frames} frames (${scroll.seconds.toFixed(1)} s); ` +
        `median frame ${scroll.median.toFixed(1)} ms, longest frame ${scroll.longest.toFixed(1)} ms; at most ${scroll.maxCells} cells in the DOM`,
    );
    assert.equal(lastId, COUNT);
    assert.ok(scroll.maxCells < 200, `${scroll.maxCells} cells in the DOM`);
    assert.deepEqual(problems, []);
    await page.close();
  });
});
