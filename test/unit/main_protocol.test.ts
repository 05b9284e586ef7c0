/** The app:// protocol: which requests reach which files or images, and what is refused. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { serveAppRequest } from '../../main/app_protocol.ts';
import type { MediaReply } from '../../main/core_messages.ts';
import { sniffImageType } from '../../app/media/mime.ts';
import { routeAppRequest } from '../../main/protocol_paths.ts';
import { CONTENT_SECURITY_POLICY } from '../../main/security.ts';

const root = '/opt/studio/dist/renderer';

function refusal(url: string, pathApi = path.posix) {
  const route = routeAppRequest(url, pathApi === path.win32 ? 'C:\\studio\\renderer' : root, pathApi);
  assert.equal(route.kind, 'refused', `${url} should be refused, got ${JSON.stringify(route)}`);
  return route as Extract<typeof route, { kind: 'refused' }>;
}

describe('routeAppRequest', () => {
  test('maps UI paths to files under the renderer folder with their content type', () => {
    assert.deepEqual(routeAppRequest('app://studio/', root, path.posix), {
      kind: 'file',
      file: `${root}/index.html`,
      mimeType: 'text/html; charset=utf-8',
    });
    assert.deepEqual(routeAppRequest('app://studio/assets/index-3f2a.js?v=1#x', root, path.posix), {
      kind: 'file',
      file: `${root}/assets/index-3f2a.js`,
      mimeType: 'text/javascript; charset=utf-8',
    });
    const spaced = routeAppRequest('app://studio/assets/my%20font.woff2', root, path.posix);
    assert.equal(spaced.kind === 'file' && spaced.file, `${root}/assets/my font.woff2`);
  });

  test('dot segments are resolved by the URL parser and can never climb out', () => {
    for (const url of ['app://studio/../../etc/passwd.js', 'app://studio/assets/%2e%2e/%2E%2E/etc/passwd.js', 'app://studio/a/../../../etc/passwd.js']) {
      const route = routeAppRequest(url, root, path.posix);
      assert.equal(route.kind === 'file' && route.file, `${root}/etc/passwd.js`, url);
    }
  });

  test('refuses encoded separators, backslashes, NUL, drive letters and absolute paths', () => {
    assert.equal(refusal('app://studio/assets%2f..%2f..%2fetc%2fpasswd.js').status, 400);
    assert.equal(refusal('app://studio/assets%5C..%5Csecret.js').status, 400);
    assert.equal(refusal('app://studio/index.html%00.png').status, 400);
    assert.equal(refusal('app://studio/..\\..\\secret.js').status, 400);
    assert.equal(refusal('app://studio//etc/passwd.js').status, 403);
    assert.equal(refusal('app://studio/C:/Windows/win.ini', path.win32).status, 403);
    assert.equal(refusal('app://studio/C:secret.js', path.win32).status, 403);
    assert.equal(refusal('app://studio/%E0%A4%A.js').status, 400);
  });

  test('refuses other origins and schemes, and files that are not UI assets', () => {
    assert.equal(refusal('app://evil/index.html').status, 403);
    assert.equal(refusal('file:///opt/studio/dist/renderer/index.html').status, 403);
    assert.equal(refusal('not a url').status, 400);
    assert.equal(refusal('app://studio/project.db').status, 404);
  });

  test('media routes take a positive integer id and nothing else', () => {
    assert.deepEqual(routeAppRequest('app://studio/api/thumb/42', root), { kind: 'media', media: 'thumb', imageId: 42 });
    assert.deepEqual(routeAppRequest('app://studio/api/image/7?token=x', root), { kind: 'media', media: 'image', imageId: 7 });
    for (const bad of ['/api/thumb/0', '/api/thumb/-1', '/api/thumb/1.5', '/api/thumb/..%2f1', '/api/image/12/extra', '/api/file/1', '/api/labels.set']) {
      assert.equal(refusal(`app://studio${bad}`).status, 404, bad);
    }
  });
});

describe('serveAppRequest', () => {
  let rendererDir: string;
  before(() => {
    rendererDir = fs.mkdtempSync(path.join(os.tmpdir(), 'contrast-renderer-'));
    fs.mkdirSync(path.join(rendererDir, 'assets'));
    fs.writeFileSync(path.join(rendererDir, 'index.html'), '<!doctype html><title>studio</title>');
    fs.writeFileSync(path.join(rendererDir, 'assets', 'app.js'), 'console.log(1)');
    fs.writeFileSync(path.join(path.dirname(rendererDir), 'outside-secret.js'), 'secret');
  });
  after(() => {
    fs.rmSync(rendererDir, { recursive: true, force: true });
    fs.rmSync(path.join(path.dirname(rendererDir), 'outside-secret.js'), { force: true });
  });

  const noMedia = async (): Promise<MediaReply> => assert.fail('no media request expected');

  test('serves UI files with the CSP header', async () => {
    const response = await serveAppRequest('app://studio/', rendererDir, noMedia);
    assert.equal(response.status, 200);
    assert.equal(await response.text(), '<!doctype html><title>studio</title>');
    assert.equal(response.headers.get('content-security-policy'), CONTENT_SECURITY_POLICY);
    assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
    const script = await serveAppRequest('app://studio/assets/app.js', rendererDir, noMedia);
    assert.equal(script.headers.get('content-type'), 'text/javascript; charset=utf-8');
  });

  test('a sibling of the renderer folder stays out of reach', async () => {
    const name = 'outside-secret.js';
    for (const url of [`app://studio/../${name}`, `app://studio/%2e%2e/${name}`, `app://studio/..%2f${name}`]) {
      const response = await serveAppRequest(url, rendererDir, noMedia);
      assert.notEqual(response.status, 200, url);
      assert.notEqual(await response.text(), 'secret', url);
    }
  });

  test('missing files are 404, and media comes from the core by id', async () => {
    assert.equal((await serveAppRequest('app://studio/assets/gone.js', rendererDir, noMedia)).status, 404);
    const png = await sharp({ create: { width: 2, height: 2, channels: 3, background: '#00f' } }).png().toBuffer();
    const asked: unknown[] = [];
    const media = async (kind: string, id: number): Promise<MediaReply> => {
      asked.push([kind, id]);
      return id === 5
        ? { ok: true, contentType: 'image/png', body: png }
        : { ok: false, status: 404, error: { code: 'not_found', message: `no image ${id} in this project` } };
    };
    const found = await serveAppRequest('app://studio/api/image/5', rendererDir, media);
    assert.equal(found.status, 200);
    assert.equal(found.headers.get('content-type'), 'image/png');
    assert.deepEqual(Buffer.from(await found.arrayBuffer()), png);
    const unknown = await serveAppRequest('app://studio/api/thumb/6', rendererDir, media);
    assert.equal(unknown.status, 404);
    assert.equal(await unknown.text(), 'no image 6 in this project');
    assert.deepEqual(asked, [['image', 5], ['thumb', 6]]);
  });
});

test('sniffImageType reads real encoder output, not file names', async () => {
  const image = sharp({ create: { width: 3, height: 3, channels: 3, background: '#888' } });
  assert.equal(sniffImageType(await image.clone().jpeg().toBuffer()), 'image/jpeg');
  assert.equal(sniffImageType(await image.clone().png().toBuffer()), 'image/png');
  assert.equal(sniffImageType(await image.clone().webp().toBuffer()), 'image/webp');
  assert.equal(sniffImageType(await image.clone().gif().toBuffer()), 'image/gif');
  assert.equal(sniffImageType(await image.clone().tiff().toBuffer()), 'application/octet-stream');
  assert.equal(sniffImageType(Buffer.from('<svg/>')), 'application/octet-stream');
});
