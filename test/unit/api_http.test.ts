import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import WebSocket from 'ws';
import { createHandlers } from '../../app/services/handlers.ts';
import { startServer, TOKEN_HEADER, type RunningServer } from '../../app/transports/http/server.ts';
import { Session } from '../../app/services/session.ts';
import type { ServerEvent } from '../../app/contract/operations.ts';
import { getThumbnail } from '../../app/store/images.ts';
import os from 'node:os';
import { serveImages, writeImage } from '../helpers.ts';

let server: RunningServer;
let session: Session;
let secretFile: string;
let root: string;

/** A raw request, so paths reach the server exactly as written (no client-side normalisation of ..). */
function request(
  method: string,
  rawPath: string,
  options: { token?: string | null; body?: string; host?: string } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  const headers: Record<string, string> = { host: options.host ?? `127.0.0.1:${server.port}` };
  const token = options.token === undefined ? server.token : options.token;
  if (token) headers[TOKEN_HEADER] = token;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.port, method, path: rawPath, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

async function call(operation: string, input: unknown, token?: string | null) {
  const response = await request('POST', `/api/${operation}`, { token, body: JSON.stringify(input) });
  return { status: response.status, json: JSON.parse(response.body.toString()) };
}

before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'contrast-api-'));
  const images = path.join(root, 'images');
  await writeImage(path.join(images, 'cat', 'a.png'), { colour: [200, 40, 40], seed: 1, format: 'png' });
  await writeImage(path.join(images, 'cat', 'b.png'), { colour: [200, 40, 40], seed: 2, format: 'png' });
  await writeImage(path.join(images, 'dog', 'c.jpg'), { colour: [40, 40, 200], seed: 3 });
  secretFile = path.join(root, 'secret.txt');
  fs.writeFileSync(secretFile, 'not for the browser');
  ({ session, server } = await serveImages(root, images));
});

after(async () => {
  await server.close();
  session.dispose();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('HTTP transport', () => {
  it('listens on 127.0.0.1 only and prints a URL carrying the token in the fragment', () => {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.equal(server.openUrl, `${server.url}#token=${server.token}`);
    assert.ok(server.token.length >= 32);
  });

  it('says plainly when the port is taken', async () => {
    await assert.rejects(
      startServer({ session, handlers: createHandlers(session), staticDir: root, port: server.port }),
      (error: Error) => error.name === 'UserError' && new RegExp(`port ${server.port} is in use`).test(error.message),
    );
  });

  it('refuses every /api/ route without the session token (401)', async () => {
    const operation = await call('project.status', {}, null);
    assert.equal(operation.status, 401);
    assert.equal(operation.json.error.code, 'unauthorized');
    assert.match(operation.json.error.message, /token/);
    assert.equal((await call('project.status', {}, 'x'.repeat(server.token.length))).status, 401);
    assert.equal((await request('GET', '/api/thumb/1', { token: null })).status, 401);
    assert.equal((await request('GET', '/api/image/1', { token: 'wrong' })).status, 401);
  });

  it('answers an operation called with the token', async () => {
    const { status, json } = await call('project.status', {});
    assert.equal(status, 200);
    assert.equal(json.project.images, 3);
    assert.equal(json.project.labelled, 3);
    assert.deepEqual(json.project.classes.map((c: { name: string }) => c.name), ['cat', 'dog']);
  });

  it('rejects bad input with 400 and a message naming the field', async () => {
    const negative = await call('images.list', { filter: { kind: 'all' }, sort: 'import', offset: -1, limit: 10 });
    assert.equal(negative.status, 400);
    assert.equal(negative.json.error.code, 'bad_input');
    assert.match(negative.json.error.message, /^images\.list: offset: /);

    const badFilter = await call('images.list', { filter: { kind: 'everything' }, sort: 'import', offset: 0, limit: 10 });
    assert.equal(badFilter.status, 400);
    assert.match(badFilter.json.error.message, /filter\.kind/);

    const missing = await call('labels.set', { imageIds: [] , classId: 1 });
    assert.equal(missing.status, 400);
    assert.match(missing.json.error.message, /select at least one image/);

    const notJson = await request('POST', '/api/project.status', { body: '{nope' });
    assert.equal(notJson.status, 400);
    assert.match(JSON.parse(notJson.body.toString()).error.message, /not valid JSON/);
  });

  it('turns a user mistake in the core into a 4xx with its message, not a 500', async () => {
    const relative = await call('import.start', { paths: ['images'] });
    assert.equal(relative.status, 400);
    assert.match(relative.json.error.message, /full path/);
    const unknownClass = await call('labels.set', { imageIds: [1], classId: 999 });
    assert.equal(unknownClass.status, 404);
    assert.match(unknownClass.json.error.message, /no class with id 999/);
  });

  it('404s an unknown operation and 405s a GET of an operation', async () => {
    const unknown = await call('images.delete_everything', {});
    assert.equal(unknown.status, 404);
    assert.match(unknown.json.error.message, /unknown operation "images\.delete_everything"/);
    assert.equal((await request('GET', '/api/project.status')).status, 405);
  });

  it('serves a thumbnail by image id with its type, and 404s an unknown id', async () => {
    const thumb = await request('GET', '/api/thumb/1');
    assert.equal(thumb.status, 200);
    assert.match(String(thumb.headers['content-type']), /^image\/(webp|png|jpeg)$/);
    assert.deepEqual(thumb.body, getThumbnail(session.requireProject().db, 1));

    const jpegId = session.requireProject().db.prepare("SELECT id FROM images WHERE path LIKE '%c.jpg'").pluck().get();
    const original = await request('GET', `/api/image/${jpegId}`);
    assert.equal(original.status, 200);
    assert.equal(original.headers['content-type'], 'image/jpeg');

    const unknown = await request('GET', '/api/thumb/999');
    assert.equal(unknown.status, 404);
    assert.match(JSON.parse(unknown.body.toString()).error.message, /no image 999/);
  });

  it('refuses path traversal and anything that is not an image id', async () => {
    const attempts = [
      '/api/image/..%2f..%2f..%2fetc%2fpasswd',
      `/api/image/${encodeURIComponent(secretFile)}`,
      '/api/thumb/1%2f..%2f2',
      '/api/image/-1',
      '/api/image/1e3',
      '/api/image/0',
    ];
    for (const attempt of attempts) {
      const response = await request('GET', attempt);
      assert.ok([400, 404].includes(response.status), `${attempt} answered ${response.status}`);
      assert.ok(!response.body.toString().includes('not for the browser'), attempt);
    }
    for (const attempt of ['/../../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/..%2f..%2fsecret.txt', `/${encodeURIComponent(secretFile)}`]) {
      const response = await request('GET', attempt, { token: null });
      assert.equal(response.status, 404, attempt);
      assert.ok(!response.body.toString().includes('not for the browser'), attempt);
      assert.ok(!response.body.toString().includes('root:'), attempt);
    }
  });

  it('serves the UI with a strict content security policy', async () => {
    const page = await request('GET', '/', { token: null });
    assert.equal(page.status, 200);
    assert.match(page.body.toString(), /<title>ui<\/title>/);
    const csp = String(page.headers['content-security-policy']);
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
  });

  it('refuses requests addressed to another host name (DNS rebinding)', async () => {
    const response = await request('POST', '/api/project.status', { body: '{}', host: `attacker.example:${server.port}` });
    assert.equal(response.status, 421);
  });

  it('streams events over the WebSocket only with the token', async () => {
    const refused = new WebSocket(`ws://127.0.0.1:${server.port}/api/events`);
    const refusal = await new Promise<string>((resolve) => {
      refused.on('unexpected-response', (_req, res) => resolve(String(res.statusCode)));
      refused.on('error', (error) => resolve(error.message));
    });
    assert.match(refusal, /401/);

    const socket = new WebSocket(`ws://127.0.0.1:${server.port}/api/events`, { headers: { [TOKEN_HEADER]: server.token } });
    await new Promise((resolve, reject) => socket.on('open', resolve).on('error', reject));
    const received = new Promise<ServerEvent>((resolve) => socket.once('message', (data) => resolve(JSON.parse(String(data)))));
    const classes = (await call('classes.list', {})).json.classes as { id: number; name: string }[];
    const dog = classes.find((c) => c.name === 'dog')!;
    const catImage = session.requireProject().db.prepare("SELECT id FROM images WHERE path LIKE '%a.png'").pluck().get() as number;
    const labelled = await call('labels.set', { imageIds: [catImage], classId: dog.id });
    assert.equal(labelled.status, 200);
    assert.deepEqual(labelled.json.changes, [{ imageId: catImage, previousClassId: classes.find((c) => c.name === 'cat')!.id }]);
    assert.deepEqual(await received, { type: 'labels.changed' });
    socket.close();
  });
});
