/**
 * The attacks of issue #11 against a real `contrast serve` server on 127.0.0.1: a hostile web
 * page (cross-origin POSTs and WebSockets, tokens in URLs, DNS rebinding), a swapped symlink,
 * hostile class names in exports, huge but valid requests, a malformed address, and a restart.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { MAX_IMAGES_PER_CALL } from '../../app/contract/operations.ts';
import { createHandlers } from '../../app/services/handlers.ts';
import { TOKEN_HEADER, startServer, type RunningServer } from '../../app/transports/http/server.ts';
import { SERVER_FILE, startAtSavedAddress } from '../../app/transports/http/server_address.ts';
import { Session } from '../../app/services/session.ts';
import { insertImage } from '../../app/store/images.ts';
import { applyLabelCsv } from '../../app/store/labels_csv.ts';
import { createRun, finishRun, markRunning, writePredictions } from '../../app/store/runs.ts';
import { serveImages, tempDir, writeImage } from '../helpers.ts';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The body as JSON, checked field by field by each test. */
  json: () => any;
}

/** A raw request: headers exactly as a browser (or an attacker) would send them, nothing added. */
function send(port: number, method: string, rawPath: string, headers: Record<string, string> = {}, body?: string | Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port, method, path: rawPath, headers: { host: `127.0.0.1:${port}`, ...headers } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () => {
        const bytes = Buffer.concat(chunks);
        resolve({ status: response.statusCode!, headers: response.headers, body: bytes, json: () => JSON.parse(bytes.toString()) });
      });
    });
    request.on('error', reject);
    request.end(body);
  });
}

/** How the WebSocket handshake ended: 'open', or the HTTP status it was refused with. */
function upgrade(port: number, headers: Record<string, string>, query = ''): Promise<string> {
  return new Promise((resolve) => {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/api/events${query}`, { headers });
    socket.on('open', () => {
      socket.close();
      resolve('open');
    });
    socket.on('unexpected-response', (_request, response) => resolve(String(response.statusCode)));
    socket.on('error', (error) => resolve(error.message));
  });
}

describe('contrast serve against a hostile page, files and names', () => {
  let root: string;
  let session: Session;
  let server: RunningServer;
  let own: string;
  let token: Record<string, string>;
  let imageIdOf: (name: string) => number;
  const call = (operation: string, input: unknown) =>
    send(server.port, 'POST', `/api/${operation}`, { ...token, 'content-type': 'application/json' }, JSON.stringify(input));
  const classNames = async () => ((await call('classes.list', {})).json().classes as { name: string }[]).map((c) => c.name);

  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'contrast-security-'));
    const images = path.join(root, 'images');
    await writeImage(path.join(images, 'cat', 'a.png'), { seed: 1, format: 'png' });
    await writeImage(path.join(images, 'cat', 'b.jpg'), { seed: 2 });
    await writeImage(path.join(images, 'dog', 'c.jpg'), { seed: 3, colour: [40, 40, 200] });
    // A dataset of links is normal: import follows them, and the image must still be shown.
    await writeImage(path.join(root, 'elsewhere', 'd.jpg'), { seed: 4 });
    fs.symlinkSync(path.join(root, 'elsewhere', 'd.jpg'), path.join(images, 'dog', 'linked.jpg'));
    fs.writeFileSync(path.join(root, 'secret.txt'), 'root:$6$not-for-the-browser:19000:0:99999:7:::\n');
    ({ session, server } = await serveImages(root, images));
    own = `http://127.0.0.1:${server.port}`;
    token = { [TOKEN_HEADER]: server.token };
    imageIdOf = (name) => session.requireProject().db.prepare('SELECT id FROM images WHERE path LIKE ?').pluck().get(`%${name}`) as number;
  });

  after(async () => {
    await server?.close();
    session?.dispose();
    fs.rmSync(root, { recursive: true, force: true });
  });

  describe('a web page on another origin', () => {
    test('cannot create a class with a text/plain form POST carrying the token in the query (the probe of #11)', async () => {
      const reply = await send(server.port, 'POST', `/api/classes.add?token=${server.token}`, { origin: 'https://evil.com', 'content-type': 'text/plain' }, '{"name":"pwned"}');
      assert.equal(reply.status, 403);
      assert.equal(reply.json().error.code, 'cross_origin');
      assert.ok(!(await classNames()).includes('pwned'));
    });

    test('is refused even with the token in the header, and so is an opaque (null) origin', async () => {
      for (const origin of ['https://evil.com', 'null', `http://127.0.0.1:${server.port + 1}`]) {
        const reply = await send(server.port, 'POST', '/api/classes.add', { ...token, origin, 'content-type': 'application/json' }, '{"name":"pwned"}');
        assert.equal(reply.status, 403, origin);
      }
      assert.ok(!(await classNames()).includes('pwned'));
    });

    test('cannot open the event WebSocket, even with a valid token', async () => {
      assert.equal(await upgrade(server.port, { origin: 'https://evil.com', ...token }, `?token=${server.token}`), '403');
      assert.equal(await upgrade(server.port, { origin: own, ...token }), 'open');
    });

    test('on the same site (another port of 127.0.0.1) cannot load images with the session cookie', async () => {
      const cookie = await sessionCookie();
      const reply = await send(server.port, 'GET', `/api/image/${imageIdOf('a.png')}`, { cookie, 'sec-fetch-site': 'same-site' });
      assert.equal(reply.status, 403);
      assert.equal((await send(server.port, 'GET', `/api/image/${imageIdOf('a.png')}`, { cookie, 'sec-fetch-site': 'same-origin' })).status, 200);
    });

    test('cannot reach it through DNS rebinding: HTTP and WebSocket check the Host', async () => {
      const host = { host: `attacker.example:${server.port}` };
      assert.equal((await send(server.port, 'POST', '/api/project.status', { ...host, ...token, 'content-type': 'application/json' }, '{}')).status, 421);
      assert.equal(await upgrade(server.port, { ...host, origin: `http://attacker.example:${server.port}`, ...token }), '421');
    });
  });

  /** The studio page's way in: POST /api/session with the header token returns the cookie. */
  async function sessionCookie(): Promise<string> {
    const reply = await send(server.port, 'POST', '/api/session', { ...token, origin: own, 'content-type': 'application/json' }, '{}');
    assert.equal(reply.status, 200);
    const setCookie = reply.headers['set-cookie']![0];
    assert.match(setCookie, new RegExp(`^contrast-token-${server.port}=${server.token}; Path=/api/; HttpOnly; SameSite=Strict$`));
    return setCookie.split(';')[0];
  }

  describe('the token', () => {
    test('is never accepted in a URL: operations, images and the WebSocket', async () => {
      const operation = await send(server.port, 'POST', `/api/project.status?token=${server.token}`, { 'content-type': 'application/json' }, '{}');
      assert.equal(operation.status, 401);
      assert.equal((await send(server.port, 'GET', `/api/image/${imageIdOf('a.png')}?token=${server.token}`)).status, 401);
      assert.equal(await upgrade(server.port, { origin: own }, `?token=${server.token}`), '401');
    });

    test('travels in the HttpOnly SameSite=Strict cookie for images and the WebSocket', async () => {
      const cookie = await sessionCookie();
      const image = await send(server.port, 'GET', `/api/image/${imageIdOf('a.png')}`, { cookie });
      assert.equal(image.status, 200);
      assert.deepEqual(image.body, fs.readFileSync(path.join(root, 'images', 'cat', 'a.png')));
      assert.equal(await upgrade(server.port, { origin: own, cookie }), 'open');
      assert.equal((await send(server.port, 'GET', `/api/thumb/1`, { cookie: `contrast-token-${server.port}=wrong` })).status, 401);
    });

    test('is printed in the URL fragment only, which browsers never send', () => {
      assert.equal(server.openUrl, `${own}/#token=${server.token}`);
    });
  });

  test('operations take JSON only: a text/plain body (a form needs no preflight for it) is refused', async () => {
    const reply = await send(server.port, 'POST', '/api/classes.add', { ...token, 'content-type': 'text/plain' }, '{"name":"plain"}');
    assert.equal(reply.status, 415);
    assert.equal(reply.json().error.code, 'bad_content_type');
    assert.ok(!(await classNames()).includes('plain'));
  });

  test('a malformed %-escape is a 400 with a message, not a 500 "URI malformed"', async () => {
    for (const address of ['/api/%E0%A4%A', '/api/image/%E0%A4%A', '/%E0%A4%A']) {
      const reply = await send(server.port, 'POST', address, { ...token, 'content-type': 'application/json' }, '{}');
      assert.equal(reply.status, 400, address);
      assert.deepEqual(reply.json().error, { code: 'bad_path', message: 'the address is malformed: its %-escapes are not valid UTF-8' });
    }
  });

  describe('a swapped original', () => {
    const swapped = (name: string) => path.join(root, 'images', name);

    test('a link to /etc/shadow (here: a secret file) in place of an imported image is not served', async () => {
      const file = swapped('cat/a.png');
      const kept = fs.readFileSync(file);
      fs.rmSync(file);
      fs.symlinkSync(path.join(root, 'secret.txt'), file);
      try {
        const reply = await send(server.port, 'GET', `/api/image/${imageIdOf('a.png')}`, token);
        assert.equal(reply.status, 409);
        assert.equal(reply.json().error.code, 'file_changed');
        assert.doesNotMatch(reply.body.toString(), /not-for-the-browser/);
      } finally {
        fs.rmSync(file);
        fs.writeFileSync(file, kept);
      }
      assert.equal((await send(server.port, 'GET', `/api/image/${imageIdOf('a.png')}`, token)).status, 200);
    });

    test('other content of the very same size is refused by its SHA-256', async () => {
      const file = swapped('cat/b.jpg');
      const kept = fs.readFileSync(file);
      fs.writeFileSync(file, Buffer.alloc(kept.length, 0x41));
      try {
        const reply = await send(server.port, 'GET', `/api/image/${imageIdOf('b.jpg')}`, token);
        assert.equal(reply.status, 409);
        assert.match(reply.json().error.message, /not the one imported \(its content differs\)/);
      } finally {
        fs.writeFileSync(file, kept);
      }
    });

    test('a FIFO swapped in is refused at once instead of hanging the server', { timeout: 10_000 }, async () => {
      const file = swapped('dog/c.jpg');
      const kept = fs.readFileSync(file);
      fs.rmSync(file);
      execFileSync('mkfifo', [file]);
      try {
        const reply = await send(server.port, 'GET', `/api/image/${imageIdOf('c.jpg')}`, token);
        assert.equal(reply.status, 409);
        assert.match(reply.json().error.message, /no longer a regular file/);
      } finally {
        fs.rmSync(file);
        fs.writeFileSync(file, kept);
      }
    });

    test('an image imported through a link is still served: its target is what was imported', async () => {
      const reply = await send(server.port, 'GET', `/api/image/${imageIdOf('linked.jpg')}`, token);
      assert.equal(reply.status, 200);
      assert.deepEqual(reply.body, fs.readFileSync(path.join(root, 'elsewhere', 'd.jpg')));
    });
  });

  describe('hostile class names', () => {
    const refusedNames = ['=HYPERLINK("http:\\\\evil.example","open")', '..', '.', 'a/b', 'a\\b', 'a\u0000b', 'tab\there', 'line\nbreak', 'CON', 'nul', 'com1', 'LPT9', 'aux.txt', 'trailing.'];

    test('are refused when a class is created or renamed, with code bad_class_name', async () => {
      for (const name of refusedNames) {
        const added = await call('classes.add', { name });
        assert.equal(added.status, 400, JSON.stringify(name));
        assert.equal(added.json().error.code, 'bad_class_name', JSON.stringify(name));
      }
      const cat = (await call('classes.list', {})).json().classes as { id: number; name: string }[];
      const renamed = await call('classes.rename', { classId: cat.find((c) => c.name === 'cat')!.id, name: '..' });
      assert.equal(renamed.status, 400);
      assert.match(renamed.json().error.message, /^"\.\." cannot be a class name: it names a folder itself or its parent$/);
      assert.deepEqual(await classNames(), ['cat', 'dog']);
    });

    test('a class named like a formula is written as text in labels.csv and predictions CSV, and reads back unchanged', async () => {
      const db = session.requireProject().db;
      // The probe's own =HYPERLINK("http:\\evil.example",...) is refused for its backslashes; this one needs none.
      const formula = '=HYPERLINK(CONCAT("http:",CHAR(47),CHAR(47),"evil.example"),"open")';
      const added = await call('classes.add', { name: formula });
      assert.equal(added.status, 200);
      const formulaId = added.json().classId;
      const others = ['+1', '-x', '@sum'].map((name) => call('classes.add', { name }).then((r) => r.json().classId));
      const [plusId, minusId, atId] = await Promise.all(others);
      const ids = ['a.png', 'b.jpg', 'c.jpg', 'linked.jpg'].map(imageIdOf);
      for (const [index, classId] of [formulaId, plusId, minusId, atId].entries()) {
        assert.equal((await call('labels.set', { imageIds: [ids[index]], classId })).status, 200);
      }
      const exported = await call('export.labels', { format: 'csv' });
      assert.equal(exported.status, 200);
      const csv = fs.readFileSync(exported.json().path, 'utf8');
      const classColumn = csv.trim().split('\n').slice(1).map((line) => line.slice(line.indexOf(',') + 1).replace(/,human,.*$/, ''));
      assert.deepEqual(classColumn, [`"'=HYPERLINK(CONCAT(""http:"",CHAR(47),CHAR(47),""evil.example""),""open"")"`, "'+1", "'-x", "'@sum"]);

      const run = createRun(db, 'finetune', null, {});
      writePredictions(db, run, [{ imageId: ids[0], classId: formulaId, confidence: 0.9, probabilities: new Float32Array([0.9]) }]);
      markRunning(db, run, { pid: process.pid, backend: 'cpu', device: 'test' });
      finishRun(db, run, 'done');
      const predictions = await call('export.predictions', { runId: run });
      assert.equal(predictions.status, 200);
      const row = fs.readFileSync(predictions.json().path, 'utf8').trim().split('\n')[1];
      const quoted = `"'=HYPERLINK(CONCAT(""http:"",CHAR(47),CHAR(47),""evil.example""),""open"")"`;
      assert.ok(row.endsWith(`,${quoted},0.9000,${quoted}`), row);

      // Importing the exported CSV again gives the same classes, not new ones with a quote in front.
      applyLabelCsv(db, exported.json().path, 'test');
      assert.deepEqual((await classNames()).filter((name) => /^'/.test(name)), []);
    });

    test('folder export of a project made before names were checked never writes outside its folder', async () => {
      const db = session.requireProject().db;
      const exportsDir = session.requireProject().exportsDir;
      for (const legacy of ['..', '.']) {
        const classId = Number(db.prepare("INSERT INTO classes (name, created_at) VALUES (?, '2024-01-01')").run(legacy).lastInsertRowid);
        assert.equal((await call('labels.set', { imageIds: [imageIdOf('a.png')], classId })).status, 200);
        const before = fs.readdirSync(exportsDir);
        const reply = await call('export.labels', { format: 'folders' });
        assert.equal(reply.status, 400, legacy);
        assert.equal(reply.json().error.code, 'bad_class_name');
        assert.match(reply.json().error.message, new RegExp(`^class "${legacy.replace(/\./g, '\\.')}" cannot be a folder name: rename it`));
        const created = fs.readdirSync(exportsDir).filter((entry) => !before.includes(entry));
        assert.deepEqual(created.flatMap((dir) => fs.readdirSync(path.join(exportsDir, dir))), [], 'nothing written, not even inside');
        assert.deepEqual(fs.readdirSync(exportsDir).filter((entry) => /^\d+-a\.png$/.test(entry)), []);
        assert.deepEqual(fs.readdirSync(path.dirname(exportsDir)).filter((entry) => /^\d+-a\.png$/.test(entry)), []);
        db.prepare('DELETE FROM classes WHERE id = ?').run(classId);
      }
    });
  });

  describe('huge but valid requests', () => {
    test(`labels.set with a million ids is refused at once with a clear 400; the cap is ${MAX_IMAGES_PER_CALL}`, async () => {
      const imageIds = Array.from({ length: 1_000_000 }, (_, i) => i + 1);
      const reply = await call('labels.set', { imageIds, classId: null });
      assert.equal(reply.status, 400);
      assert.equal(reply.json().error.message, 'labels.set: imageIds: at most 100,000 images per call, got 1,000,000: label them in parts');
    });

    test('labels.restore with more changes than the cap is refused too', async () => {
      const changes = Array.from({ length: MAX_IMAGES_PER_CALL + 1 }, (_, i) => ({ imageId: i + 1, classId: null }));
      const reply = await call('labels.restore', { changes });
      assert.equal(reply.status, 400);
      assert.match(reply.json().error.message, /^labels\.restore: changes: at most 100,000 images per call, got 100,001/);
    });

    test('a body over 32 MB (room for the largest Try it upload) is a 413, not a JSON error', async () => {
      const reply = await send(server.port, 'POST', '/api/labels.set', { ...token, 'content-type': 'application/json' }, Buffer.alloc(33 * 2 ** 20, 0x20));
      assert.equal(reply.status, 413);
      assert.equal(reply.json().error.code, 'too_large');
    });
  });
});

describe('select-all in a 50,000-image project', () => {
  test('labels every image in one call, and undo puts every label back in one call', { timeout: 120_000 }, async () => {
    const root = tempDir('contrast-select-all-');
    const session = new Session({ dataDir: path.join(root, 'home') });
    const project = session.open(path.join(root, 'project'), true);
    const thumbnail = Buffer.from('tiny');
    project.db.transaction(() => {
      for (let i = 0; i < 50_000; i++) {
        insertImage(project.db, { path: `/data/${i}.jpg`, sha256: `sha-${i}`, size: 1, width: 1, height: 1, format: 'jpeg', thumbnail, batchId: null, testSet: false }, '2024-01-01');
      }
    })();
    const server = await startServer({ session, handlers: createHandlers(session), staticDir: root });
    try {
      const call = (operation: string, input: unknown) =>
        send(server.port, 'POST', `/api/${operation}`, { [TOKEN_HEADER]: server.token, 'content-type': 'application/json' }, JSON.stringify(input));
      const classId = (await call('classes.add', { name: 'deer' })).json().classId;
      const ids = (await call('images.ids', { filter: { kind: 'all' }, sort: 'import' })).json().ids as number[];
      assert.equal(ids.length, 50_000);
      const labelled = await call('labels.set', { imageIds: ids, classId });
      assert.equal(labelled.status, 200);
      const changes = labelled.json().changes as { imageId: number; previousClassId: number | null }[];
      assert.equal(changes.length, 50_000);
      const restored = await call('labels.restore', { changes: changes.map((c) => ({ imageId: c.imageId, classId: c.previousClassId })) });
      assert.equal(restored.status, 200);
      assert.equal(project.db.prepare('SELECT COUNT(*) FROM labels').pluck().get(), 0);
    } finally {
      await server.close();
      session.dispose();
    }
  });
});

describe('restarting contrast serve for the same data folder', () => {
  /** A fresh data folder and what `contrast serve` would start with on it. */
  const servedDataFolder = (prefix: string) => {
    const root = tempDir(prefix);
    const dataDir = path.join(root, 'home');
    const session = new Session({ dataDir });
    return { dataDir, options: { session, handlers: createHandlers(session), staticDir: root } };
  };

  test('keeps its port and token, so an open tab reconnects; server.json is private to the user', async () => {
    const { dataDir, options } = servedDataFolder('contrast-restart-');
    const first = await startAtSavedAddress(dataDir, options);
    assert.equal(first.movedFrom, null);
    const { port, token } = first.server;
    assert.equal(fs.statSync(path.join(dataDir, SERVER_FILE)).mode & 0o777, 0o600);
    await first.server.close();

    const second = await startAtSavedAddress(dataDir, options);
    try {
      assert.deepEqual([second.server.port, second.server.token, second.movedFrom], [port, token, null]);
      const reply = await send(port, 'POST', '/api/project.status', { [TOKEN_HEADER]: token, 'content-type': 'application/json' }, '{}');
      assert.equal(reply.status, 200);
      assert.equal(await upgrade(port, { origin: `http://127.0.0.1:${port}`, cookie: `contrast-token-${port}=${token}` }), 'open');
    } finally {
      await second.server.close();
    }
  });

  test('moves to a free port when its port is taken, says from where, and remembers the new one', async () => {
    const { dataDir, options } = servedDataFolder('contrast-moved-');
    const first = await startAtSavedAddress(dataDir, options);
    const { port, token } = first.server;
    await first.server.close();
    const squatter = net.createServer().listen(port, '127.0.0.1');
    await new Promise((resolve) => squatter.once('listening', resolve));
    try {
      const moved = await startAtSavedAddress(dataDir, options);
      assert.equal(moved.movedFrom, port);
      assert.notEqual(moved.server.port, port);
      assert.equal(moved.server.token, token);
      assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dataDir, SERVER_FILE), 'utf8')), { port: moved.server.port, token });
      await moved.server.close();
      await assert.rejects(startAtSavedAddress(dataDir, { ...options, port }), new RegExp(`port ${port} is in use`), 'a port asked for explicitly is not swapped');
    } finally {
      squatter.close();
    }
  });
});
