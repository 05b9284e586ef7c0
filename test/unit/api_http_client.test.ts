/**
 * The browser tab's client (renderer/src/lib/api_http.ts) against a real `contrast serve` server:
 * the token stays out of every URL, and a tab left open across a restart reconnects, or says the
 * studio moved. Node lacks a browser's cookie jar and Origin header, so `browserFor` adds them
 * to fetch and WebSocket the way a browser does for a page of that origin, and at the end it
 * closes the tab: the page's reconnect timers stop.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import WS from 'ws';
import { ApiError, type ServerEvent } from '../../app/contract/operations.ts';
import { createHandlers } from '../../app/services/handlers.ts';
import { startServer } from '../../app/transports/http/server.ts';
import { SERVER_FILE, startAtSavedAddress } from '../../app/transports/http/server_address.ts';
import { Session } from '../../app/services/session.ts';
import { importPaths } from '../../app/media/import.ts';
import { HttpApi, MOVED_MESSAGE, type ConnectionState } from '../../renderer/src/lib/api_http.ts';
import { tempDir, writeImage } from '../helpers.ts';

/** Gives fetch and WebSocket a browser's cookie jar and Origin; records every URL the page asks for. */
function browserFor(origin: string): { urls: string[]; cookies: Map<string, string> } {
  const cookies = new Map<string, string>();
  const urls: string[] = [];
  const cookieHeader = () => [...cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  const nodeFetch = globalThis.fetch;
  globalThis.fetch = async (input, init = {}) => {
    urls.push(String(input));
    const headers = new Headers(init.headers);
    headers.set('origin', origin);
    if (cookies.size > 0) headers.set('cookie', cookieHeader());
    const response = await nodeFetch(input, { ...init, headers });
    for (const line of response.headers.getSetCookie()) {
      const [name, value] = line.split(';')[0].split('=');
      cookies.set(name, value);
    }
    return response;
  };
  const nodeSetTimeout = globalThis.setTimeout;
  const timers = new Set<NodeJS.Timeout>();
  let tabClosed = false;
  globalThis.setTimeout = ((callback: () => void, ms?: number) => {
    // A closed tab runs nothing more; ws and fetch share this global, so they still get a timer.
    if (tabClosed) return nodeSetTimeout(() => {}, ms).unref();
    const timer = nodeSetTimeout(() => {
      timers.delete(timer);
      callback();
    }, ms);
    timers.add(timer);
    return timer;
  }) as typeof setTimeout;
  globalThis.WebSocket = class extends WS {
    constructor(url: string) {
      urls.push(url);
      super(url, { headers: { origin, cookie: cookieHeader() } });
    }
  } as unknown as typeof WebSocket;
  after(() => {
    tabClosed = true;
    for (const timer of timers) clearTimeout(timer);
    globalThis.fetch = nodeFetch;
  });
  return { urls, cookies };
}

/** The test's own timers, which closing the tab does not stop. */
const wait = globalThis.setTimeout;

function until<T>(what: string, check: () => T | undefined, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const poll = () => {
      const value = check();
      if (value !== undefined) resolve(value);
      else if (Date.now() > deadline) reject(new Error(`timed out waiting for ${what}`));
      else wait(poll, 50);
    };
    poll();
  });
}

describe('the browser tab client', { timeout: 60_000 }, async () => {
  const root = tempDir('contrast-client-');
  await writeImage(path.join(root, 'images', 'a.png'), { format: 'png' });
  const dataDir = path.join(root, 'home');
  const session = new Session({ dataDir });
  await importPaths(session.open(path.join(root, 'project'), true), [path.join(root, 'images')]);
  const options = { session, handlers: createHandlers(session), staticDir: root };
  let { server } = await startAtSavedAddress(dataDir, options);
  const origin = `http://127.0.0.1:${server.port}`;
  const browser = browserFor(origin);
  const states: ConnectionState[] = [];
  const problems: (string | null)[] = [];
  const events: ServerEvent[] = [];
  const api = new HttpApi(server.token, origin, (problem) => problems.push(problem));
  api.onConnection((state) => states.push(state));
  api.onEvent((event) => events.push(event));
  after(async () => {
    await server.close();
    session.dispose();
  });

  test('calls, images and events work with the token in no URL at all', async () => {
    const status = await api.call('project.status', {});
    assert.equal(status.project?.images, 1);
    await until('the event socket', () => (states.at(-1) === 'open' ? true : undefined));
    const image = await fetch(api.mediaUrl('image', 1, 'key'));
    assert.equal(image.status, 200);
    assert.deepEqual(Buffer.from(await image.arrayBuffer()), fs.readFileSync(path.join(root, 'images', 'a.png')));
    await api.call('classes.add', { name: 'heron' });
    await until('labels.changed', () => events.find((event) => event.type === 'labels.changed'));
    assert.deepEqual(browser.urls.filter((url) => url.includes(server.token)), []);
    assert.equal(browser.cookies.get(`contrast-token-${server.port}`), server.token, 'the cookie carries it instead');
  });

  test('a server restarted for the same data folder comes back at the same address, and the tab reconnects', async () => {
    const { port, token } = server;
    await server.close();
    await until('the tab to notice', () => (states.at(-1) === 'lost' ? true : undefined));
    ({ server } = await startAtSavedAddress(dataDir, options));
    assert.deepEqual([server.port, server.token], [port, token]);
    await until('the tab to reconnect', () => (states.at(-1) === 'open' ? true : undefined));
    assert.equal(problems.at(-1) ?? null, null);
    assert.equal((await api.call('project.status', {})).project?.images, 1);
  });

  test('a server back with another token: the tab says the studio moved instead of retrying in silence', async () => {
    const { port } = server;
    await server.close();
    fs.rmSync(path.join(dataDir, SERVER_FILE));
    server = await startServer({ ...options, port });
    await until('the moved message', () => (problems.at(-1) === MOVED_MESSAGE ? true : undefined));
    await assert.rejects(api.call('project.status', {}), (error: ApiError) => error.code === 'moved' && error.message === MOVED_MESSAGE);
  });
});
