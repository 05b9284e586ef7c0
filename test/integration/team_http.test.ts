/**
 * Label as a team over real HTTP and WebSockets: the studio shared on loopback (CONTRAST_TEAM_ADDRESS),
 * invitations made by the `contrast invite` command while the server runs, as a host would.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { createHandlers } from '../../app/services/handlers.ts';
import { Session } from '../../app/services/session.ts';
import { importPaths } from '../../app/media/import.ts';
import { REVOKED_CLOSE_CODE } from '../../app/contract/team.ts';
import { TOKEN_HEADER, type RunningServer } from '../../app/transports/http/server.ts';
import { startAtSavedAddress } from '../../app/transports/http/server_address.ts';
import { runCli, writeImage } from '../helpers.ts';

process.env.CONTRAST_TEAM_ADDRESS = '127.0.0.1';
let server: RunningServer;
let session: Session;
let home: string;
let projectDir: string;

async function call(operation: string, input: unknown, token: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${server.url}api/${operation}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', [TOKEN_HEADER]: token, ...headers },
    body: JSON.stringify(input),
  });
  return { status: response.status, json: await response.json() };
}

function invite(name: string): { name: string; url: string; token: string } {
  const result = runCli(['invite', projectDir, '--name', name, '--json'], { env: { CONTRAST_HOME: home, CONTRAST_TEAM_ADDRESS: '127.0.0.1' } });
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout);
}

function openSocket(token: string): Promise<WebSocket> {
  const ws = new WebSocket(`${server.url.replace('http', 'ws')}api/events`, { headers: { [TOKEN_HEADER]: token, origin: server.url.slice(0, -1) } });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_request, response) => reject(new Error(`HTTP ${response.statusCode}`)));
  });
}

// Made here, not with tempDir(), whose clean-up would run as soon as this before() hook ends.
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'contrast-team-'));

before(async () => {
  home = path.join(root, 'home');
  const images = path.join(root, 'images');
  for (let i = 0; i < 6; i++) await writeImage(path.join(images, `${i}.png`), { seed: i, format: 'png' });
  const staticDir = path.join(root, 'ui');
  fs.mkdirSync(staticDir);
  fs.writeFileSync(path.join(staticDir, 'index.html'), '<!doctype html><title>ui</title>');
  session = new Session({ dataDir: home });
  projectDir = path.join(root, 'project');
  await importPaths(session.open(projectDir, true), [images], {});
  ({ server } = await startAtSavedAddress(home, { session, handlers: createHandlers(session), staticDir, team: true, guestCallLimit: { burst: 60, perSecond: 1 } }));
  await call('classes.add', { name: 'cat' }, server.token);
});

after(async () => {
  await server.close();
  await session.dispose();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('label as a team over HTTP', () => {
  it('invites with a personal link that answers as that guest, and refuses what is the host\'s with 403', async () => {
    const ana = invite('Ana');
    assert.equal(ana.url, `${server.url}#token=${ana.token}`);
    assert.deepEqual((await call('team.me', {}, ana.token)).json, { role: 'guest', name: 'Ana' });
    const refused = [
      ['import.start', { paths: [projectDir] }],
      ['import.problems', {}],
      ['train.start', { stage: 'finetune', preset: 'quick', budgetMinutes: 1 }],
      ['pipeline.start', { budgetMinutes: 1 }],
      ['export.labels', { format: 'csv' }],
      ['export.model', {}],
      ['predict.start', { folder: projectDir }],
      ['projects.recent', {}],
      ['projects.open', { dir: projectDir }],
      ['classes.delete', { classId: 1 }],
      ['team.invite', { name: 'Eve' }],
      ['review.resolve', { imageId: 1, classId: 1 }],
    ] as const;
    for (const [name, input] of refused) {
      const response = await call(name, input, ana.token);
      assert.equal(response.status, 403, name);
      assert.equal(response.json.error.code, 'forbidden', name);
    }
    const detail = await call('images.get', { imageId: 1 }, ana.token);
    assert.equal(detail.status, 200);
    assert.equal(detail.json.path, null);
    assert.ok(!JSON.stringify((await call('project.status', {}, ana.token)).json).includes(path.dirname(projectDir)), 'no path in the status a guest sees');
  });

  it('records the guest as the author of their labels, and lets them undo only their own', async () => {
    const ben = invite('Ben');
    const set = await call('labels.set', { imageIds: [2], classId: 1 }, ben.token);
    assert.equal(set.status, 200);
    assert.equal(session.requireProject().db.prepare('SELECT author FROM labels WHERE image_id = 2').pluck().get(), 'Ben');
    await call('labels.set', { imageIds: [3], classId: 1 }, server.token);
    const notTheirs = await call('labels.restore', { changes: [{ imageId: 3, classId: null }] }, ben.token);
    assert.equal(notTheirs.status, 403);
    assert.equal((await call('labels.restore', { changes: [{ imageId: 2, classId: null }] }, ben.token)).status, 200);
  });

  it('refuses a revoked link at once, on HTTP and on its open WebSocket', async () => {
    const cy = invite('Cy');
    const ws = await openSocket(cy.token);
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    const revoke = runCli(['invite', projectDir, '--revoke', 'Cy'], { env: { CONTRAST_HOME: home } });
    assert.equal(revoke.code, 0, revoke.stderr);
    assert.equal((await call('images.ids', { filter: { kind: 'all' }, sort: 'import' }, cy.token)).status, 401);
    assert.equal(await closed, REVOKED_CLOSE_CODE);
    await assert.rejects(openSocket(cy.token), /HTTP 401/);
  });

  it('refuses cross-origin requests and WebSockets from a guest token too', async () => {
    const dee = invite('Dee');
    const response = await call('images.ids', { filter: { kind: 'all' }, sort: 'import' }, dee.token, { origin: 'http://evil.example' });
    assert.equal(response.status, 403);
    assert.equal(response.json.error.code, 'cross_origin');
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}api/events`, { headers: { [TOKEN_HEADER]: dee.token, origin: 'http://evil.example' } });
    const status = await new Promise<number>((resolve) => ws.once('unexpected-response', (_request, res) => resolve(res.statusCode!)));
    assert.equal(status, 403);
  });

  it('rate-limits each guest link, not the host', async () => {
    const eve = invite('Eve');
    const statuses = await Promise.all(Array.from({ length: 100 }, () => call('classes.list', {}, eve.token).then((r) => r.status)));
    assert.ok(statuses.includes(429), 'a burst past the limit is slowed down');
    assert.equal((await call('classes.list', {}, server.token)).status, 200);
  });

  it('refuses guest links once sharing stops, and takes them again when it starts', async () => {
    const fay = invite('Fay');
    await server.sharing.stop();
    assert.equal((await call('classes.list', {}, fay.token)).status, 401);
    await server.sharing.start();
    assert.equal((await call('classes.list', {}, fay.token)).status, 200);
  });
});
