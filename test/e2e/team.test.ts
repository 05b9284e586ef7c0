/**
 * Label as a team in Chromium: `contrast serve --team` shared on loopback (CONTRAST_TEAM_ADDRESS),
 * the host and two invited guests in three browser contexts. The guests label 200 images at the
 * same time through the Label screen; every image gets one label, from the guest who pressed it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { encodeQr } from '../../app/contract/qr_code.ts';
import { HOST_STOPPED_MESSAGE, REVOKED_MESSAGE } from '../../app/contract/team.ts';
import { runCli } from '../helpers.ts';
import { launchBrowser, screenshot, serve, tempDir, watchPage, writeClassImages, type Served } from './helpers.ts';

const IMAGES = 200;
let root: string;
let projectDir: string;
let env: NodeJS.ProcessEnv;
let served: Served;
let browser: Browser;
const contexts: BrowserContext[] = [];

async function hostCall(operation: string, input: unknown) {
  const response = await fetch(`${served.origin}/api/${operation}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-contrast-token': served.token }, body: JSON.stringify(input) });
  assert.equal(response.status, 200, `${operation}: ${await response.clone().text()}`);
  return response.json();
}

function invite(name: string): string {
  const result = runCli(['invite', projectDir, '--name', name, '--json'], { env });
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout).url;
}

async function openAs(url: string): Promise<{ page: Page; problems: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  contexts.push(context);
  const page = await context.newPage();
  await page.addInitScript('globalThis.__name = (target) => target;');
  const problems = watchPage(page);
  await page.goto(url);
  return { page, problems };
}

/** Labels with one key until no image is left for this guest; returns how many it labelled. */
async function labelAll(page: Page, key: string, remaining: () => Promise<number>): Promise<number> {
  const stage = page.getByTestId('label-stage');
  let pressed = 0;
  while ((await remaining()) > 0) {
    const current = await stage.getAttribute('data-image-id');
    if (!current) {
      // End of this guest's batch: ask for more (the other guest's images stay leased to them).
      await page.getByRole('button', { name: 'Refresh queue' }).click();
      await page.waitForTimeout(200);
      continue;
    }
    await page.keyboard.press(key);
    pressed++;
    await page.waitForFunction((before) => document.querySelector('[data-testid="label-stage"]')?.getAttribute('data-image-id') !== before, current, { timeout: 10_000 });
  }
  return pressed;
}

before(async () => {
  root = tempDir('team');
  projectDir = path.join(root, 'project');
  env = { CONTRAST_HOME: path.join(root, 'home'), CONTRAST_TEAM_ADDRESS: '127.0.0.1' };
  await writeClassImages(path.join(root, 'images'), { red: [220, 40, 40], blue: [40, 40, 220] }, IMAGES / 2, 24);
  assert.equal(runCli(['init', projectDir], { env }).code, 0);
  const imported = runCli(['import', projectDir, path.join(root, 'images')], { env });
  assert.equal(imported.code, 0, imported.stderr);
  served = await serve([projectDir, '--team'], env);
  await hostCall('classes.add', { name: 'red' });
  await hostCall('classes.add', { name: 'blue' });
  browser = await launchBrowser();
});

after(async () => {
  for (const context of contexts) await context.close().catch(() => {});
  await browser?.close();
  await served?.stop();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('label as a team', () => {
  it('two guests label 200 images at once: each image once, each label under the name of who pressed it', async () => {
    const host = await openAs(served.url);
    const ana = await openAs(invite('Ana'));
    const ben = await openAs(invite('Ben'));
    for (const [guest, name] of [[ana, 'Ana'], [ben, 'Ben']] as const) {
      await guest.page.getByTestId('guest-name').filter({ hasText: name }).waitFor();
      await guest.page.getByTestId('label-stage').and(guest.page.locator('[data-image-id]:not([data-image-id=""])')).waitFor();
      assert.deepEqual(await guest.page.locator('nav button.nav').evaluateAll((buttons) => buttons.map((b) => b.getAttribute('data-screen'))), ['gallery', 'label'], 'a guest is offered browsing and labelling only');
      assert.equal(await guest.page.getByRole('button', { name: /New class|Classes…/ }).count(), 0, 'classes are the host\'s to change');
    }

    await screenshot(ana.page, 'team-guest-label');
    const unlabelled = async () => (await hostCall('project.status', {})).project.unlabelled as number;
    // Keys follow the class order (blue, red): Ana presses 1, Ben 2.
    const [byAna, byBen] = await Promise.all([labelAll(ana.page, '1', unlabelled), labelAll(ben.page, '2', unlabelled)]);
    assert.ok(byAna > 20 && byBen > 20, `both labelled a share (Ana ${byAna}, Ben ${byBen})`);

    assert.deepEqual([...ana.problems, ...ben.problems], [], 'no call failed while labelling');
    const db = new Database(path.join(projectDir, 'project.db'), { readonly: true });
    const blue = db.prepare("SELECT id FROM classes WHERE name = 'blue'").pluck().get();
    const red = db.prepare("SELECT id FROM classes WHERE name = 'red'").pluck().get();
    assert.equal(db.prepare('SELECT COUNT(*) FROM labels').pluck().get(), IMAGES);
    assert.equal(db.prepare('SELECT COUNT(*) FROM label_votes').pluck().get(), IMAGES, 'no image was labelled twice');
    assert.deepEqual(db.prepare('SELECT author, class_id AS classId, COUNT(*) AS n FROM labels GROUP BY author, class_id ORDER BY author').all(), [
      { author: 'Ana', classId: blue, n: byAna },
      { author: 'Ben', classId: red, n: byBen },
    ]);
    db.close();

    // The host sees who is connected and what each did.
    await host.page.getByTestId('invite-teammates').click();
    for (const [name, count] of [['Ana', byAna], ['Ben', byBen]] as const) {
      const row = host.page.locator(`[data-testid="teammate"][data-name="${name}"]`);
      await row.filter({ hasText: 'yes' }).filter({ hasText: String(count) }).waitFor();
    }
    // A link made in the dialog comes with its QR code: the modules the encoder gives for that URL.
    await host.page.getByTestId('invite-name').fill('Cy');
    await host.page.getByRole('button', { name: 'Make a link' }).click();
    const cyUrl = await host.page.getByTestId('new-link').locator('code').innerText();
    assert.match(cyUrl, /^http:\/\/127\.0\.0\.1:\d+\/#token=/);
    const drawn = (await host.page.getByTestId('invite-qr').locator('path').getAttribute('d'))!;
    const quietZone = 4;
    const drawnDark = [...drawn.matchAll(/M(\d+) (\d+)/g)].map((m) => `${Number(m[2]) - quietZone},${Number(m[1]) - quietZone}`);
    const expectedDark = encodeQr(cyUrl).flatMap((row, r) => row.flatMap((dark, c) => (dark ? [`${r},${c}`] : [])));
    assert.deepEqual(drawnDark, expectedDark);
    await screenshot(host.page, 'team-invite-dialog');
    await host.page.keyboard.press('Escape');
    await host.page.locator('button[data-screen="results"]').click();
    await host.page.locator('[data-testid="labeller"][data-author="Ana"]').filter({ hasText: String(byAna) }).waitFor();
    await screenshot(host.page, 'team-results');

    // Guests' own calls for what is the host's are refused by the server, whatever the page shows.
    const refused = await ana.page.evaluate(async () => {
      const statuses: Record<string, number> = {};
      for (const [name, input] of [['import.start', { paths: ['/'] }], ['train.start', { stage: 'finetune', preset: 'quick', budgetMinutes: 1 }], ['export.labels', { format: 'csv' }], ['import.problems', {}]] as const) {
        statuses[name] = (await fetch(`/api/${name}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(input) })).status;
      }
      return statuses;
    });
    assert.deepEqual(refused, { 'import.start': 403, 'train.start': 403, 'export.labels': 403, 'import.problems': 403 });
    assert.deepEqual(host.problems, []);
    assert.deepEqual(ben.problems, []);
    // Only the refusals asked for above: the page logs each as a failed load too.
    assert.deepEqual(ana.problems.filter((p) => !/HTTP 403 \/api\/(import|train|export)|status of 403/.test(p)), []);

    // A revoked link stops at once: its open page is told so.
    assert.equal(runCli(['invite', projectDir, '--revoke', 'Ben'], { env }).code, 0);
    await ben.page.locator('#connection-problem').filter({ hasText: REVOKED_MESSAGE }).waitFor({ timeout: 5000 });

    // The host quitting: the guest is told, and what they confirmed is in the project.
    await served.stop();
    await ana.page.getByTestId('connection-lost').filter({ hasText: HOST_STOPPED_MESSAGE }).waitFor({ timeout: 10_000 });
    const after = new Database(path.join(projectDir, 'project.db'), { readonly: true });
    assert.equal(after.prepare("SELECT COUNT(*) FROM labels WHERE author = 'Ana'").pluck().get(), byAna);
    after.close();
  });
});
