/**
 * The studio's session in a real browser: the token leaves the address bar and is in no request
 * URL, thumbnails and the event socket work through the HttpOnly cookie, and a tab left open
 * across a restart of the server reconnects, or says that the studio moved.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { createHandlers } from '../../app/services/handlers.ts';
import { startServer, type RunningServer } from '../../app/transports/http/server.ts';
import { ensureRendererBuilt } from '../../app/transports/http/renderer_build.ts';
import { SERVER_FILE, startAtSavedAddress } from '../../app/transports/http/server_address.ts';
import { Session } from '../../app/services/session.ts';
import { importPaths } from '../../app/media/import.ts';
import { MOVED_MESSAGE } from '../../renderer/src/lib/api_http.ts';
import { launchBrowser, newPage, tempDir, watchPage, writeClassImages } from './helpers.ts';

const LOST = 'Connection to the server lost';

describe('the studio session in Chromium', () => {
  let root: string;
  let session: Session;
  let server: RunningServer;
  let browser: Browser;
  let page: Page;
  let options: Parameters<typeof startServer>[0];
  const requested: string[] = [];

  before(async () => {
    root = tempDir('session');
    await writeClassImages(path.join(root, 'images'), { cat: [200, 60, 60], dog: [60, 60, 200] }, 3);
    session = new Session({ dataDir: path.join(root, 'home') });
    await importPaths(session.open(path.join(root, 'project'), true), [path.join(root, 'images')], { labelsFromFolders: true });
    options = { session, handlers: createHandlers(session), staticDir: await ensureRendererBuilt() };
    ({ server } = await startAtSavedAddress(session.dataDir, options));
    browser = await launchBrowser();
    page = await newPage(browser);
    page.on('request', (request) => requested.push(request.url()));
    page.on('websocket', (socket) => requested.push(socket.url()));
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    session?.dispose();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('keeps the token out of the address bar and every URL; thumbnails and events work by cookie', async () => {
    const problems = watchPage(page);
    await page.goto(server.openUrl.replace('#token=', '#/gallery&token='));
    await page.waitForFunction(() => [...document.querySelectorAll('img')].filter((img) => img.naturalWidth > 0).length === 6);
    assert.equal(page.url(), `${server.url}#/gallery`);
    assert.deepEqual(requested.filter((url) => url.includes(server.token)), []);
    assert.ok(requested.some((url) => url.endsWith('/api/events')), 'the event socket was opened');
    const [cookie] = await page.context().cookies();
    assert.deepEqual([cookie.name, cookie.httpOnly, cookie.sameSite, cookie.path], [`contrast-token-${server.port}`, true, 'Strict', '/api/']);
    assert.equal(await page.getByText(LOST).count(), 0);
    assert.deepEqual(problems, []);
  });

  it('reconnects by itself to a server restarted at the same address', async () => {
    await server.close();
    await page.getByText(LOST).waitFor();
    ({ server } = await startAtSavedAddress(session.dataDir, options));
    await page.getByText(LOST).waitFor({ state: 'detached', timeout: 20_000 });
    assert.equal(await page.locator('[role=alert]').count(), 0);
  });

  it('says the studio moved when the server at its address no longer knows its token', async () => {
    const { port } = server;
    await server.close();
    fs.rmSync(path.join(session.dataDir, SERVER_FILE));
    server = await startServer({ ...options, port });
    await page.getByRole('alert').filter({ hasText: MOVED_MESSAGE }).waitFor({ timeout: 20_000 });
  });
});
