/**
 * The desktop core process, driven the way the Electron main process drives it but started as
 * a plain Node child (no Electron here): calls, media by id, startup project, lock conflicts.
 */
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { importPaths } from '../../app/media/import.ts';
import { getThumbnail } from '../../app/store/images.ts';
import { openProject } from '../../app/store/project.ts';
import type { CoreToMain, MainToCore } from '../../main/core_messages.ts';

const hostEntry = path.resolve(import.meta.dirname, '../../main/core_host.utility.ts');
/** Every core started, so a failed test never leaves one holding a project lock. */
const started: ChildProcess[] = [];

class CoreClient {
  readonly child: ChildProcess;
  readonly events: unknown[] = [];
  private nextId = 1;
  private readonly waiting = new Map<number, (message: CoreToMain) => void>();
  readonly ready: Promise<void>;

  /** args: the job entry and the built studio page, as the main process passes them. */
  constructor(dataDir: string, args: string[] = [], env: NodeJS.ProcessEnv = {}) {
    this.child = fork(hostEntry, args, {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, CONTRAST_HOME: dataDir, ...env },
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    started.push(this.child);
    let markReady: () => void;
    this.ready = new Promise((resolve) => (markReady = resolve));
    this.child.on('message', (message: CoreToMain) => {
      if (message.type === 'ready') markReady();
      else if (message.type === 'event') this.events.push(message.event);
      else this.waiting.get(message.id)?.(message);
    });
  }

  request(message: Omit<MainToCore & { id: number }, 'id'>): Promise<CoreToMain> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.child.send({ ...message, id });
    });
  }

  async call(name: string, input: unknown) {
    const reply = await this.request({ type: 'call', name, input } as never);
    assert.equal(reply.type, 'reply');
    return (reply as Extract<CoreToMain, { type: 'reply' }>).result;
  }

  async media(media: 'thumb' | 'image', imageId: number) {
    const reply = await this.request({ type: 'media', media, imageId } as never);
    assert.equal(reply.type, 'media-reply');
    return (reply as Extract<CoreToMain, { type: 'media-reply' }>).reply;
  }

  async startup(requested?: string) {
    const reply = await this.request({ type: 'startup', requested } as never);
    return (reply as Extract<CoreToMain, { type: 'reply' }>).result;
  }

  shutdown(): Promise<number | null> {
    return new Promise((resolve) => {
      this.child.once('exit', (code) => resolve(code));
      this.child.send({ type: 'shutdown' } satisfies MainToCore);
    });
  }
}

describe('core host process', () => {
  let root: string;
  let projectDir: string;
  let imageFile: string;
  let imageId: number;
  let storedThumbnail: Buffer;

  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'contrast-core-host-'));
    projectDir = path.join(root, 'birds');
    const images = path.join(root, 'images');
    fs.mkdirSync(images);
    imageFile = path.join(images, 'red.png');
    await sharp({ create: { width: 40, height: 30, channels: 3, background: '#c00' } }).png().toFile(imageFile);
    const project = openProject(projectDir, { create: true });
    await importPaths(project, [images]);
    imageId = project.db.prepare('SELECT id FROM images').pluck().get() as number;
    storedThumbnail = getThumbnail(project.db, imageId)!;
    project.close();
  });

  after(() => {
    for (const child of started) if (child.exitCode === null) child.kill();
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('opens a requested project, answers operations, serves images only by known id', async () => {
    const core = new CoreClient(path.join(root, 'data-a'));
    await core.ready;
    const opened = await core.startup(projectDir);
    assert.deepEqual(opened, { ok: true, value: { dir: projectDir, skipped: [] } });
    assert.deepEqual(core.events, [{ type: 'project.changed', dir: projectDir }]);

    const status = await core.call('project.status', {});
    assert.equal(status.ok, true);
    assert.equal((status as { value: { project: { images: number } } }).value.project.images, 1);

    const bad = await core.call('images.get', { imageId: -3 });
    assert.equal(bad.ok, false);
    assert.equal((bad as { error: { code: string } }).error.code, 'bad_input');

    const thumb = await core.media('thumb', imageId);
    assert.ok(thumb.ok);
    assert.deepEqual(Buffer.from(thumb.body), storedThumbnail);
    assert.match(thumb.contentType, /^image\/(webp|png|jpeg)$/);
    const original = await core.media('image', imageId);
    assert.ok(original.ok);
    assert.equal(original.contentType, 'image/png');
    assert.deepEqual(Buffer.from(original.body), fs.readFileSync(imageFile));

    const unknown = await core.media('image', imageId + 1000);
    assert.deepEqual(unknown, { ok: false, status: 404, error: { code: 'not_found', message: `no image ${imageId + 1000} in this project` } });
    assert.equal(await core.shutdown(), 0);
    assert.equal(fs.existsSync(path.join(projectDir, 'project.lock')), false, 'shutdown releases the writer lock');
  });

  test('shares the open project over HTTP only once the host starts sharing, beside the window\'s IPC', async () => {
    const page = path.join(root, 'studio-page');
    fs.mkdirSync(page, { recursive: true });
    fs.writeFileSync(path.join(page, 'index.html'), '<!doctype html><title>studio</title>');
    // The LAN listener on loopback, so the test reaches it (see CONTRAST_TEAM_ADDRESS in the README).
    const core = new CoreClient(path.join(root, 'data-team'), ['', page], { CONTRAST_TEAM_ADDRESS: '127.0.0.1' });
    await core.ready;
    await core.startup(projectDir);
    const early = await core.call('team.invite', { name: 'Ana' });
    assert.deepEqual(early.ok ? null : early.error.code, 'not_sharing', 'nothing listens before sharing starts, so there is no link to give');

    const shared = await core.call('team.share', { on: true });
    const sharingUrl = (shared as { value: { sharingUrl: string } }).value.sharingUrl;
    assert.match(sharingUrl, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const ana = (await core.call('team.invite', { name: 'Ana' })) as { value: { url: string; token: string } };
    assert.equal(ana.value.url, `${sharingUrl}#token=${ana.value.token}`);
    const asAna = () =>
      fetch(`${sharingUrl}api/team.me`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-contrast-token': ana.value.token }, body: '{}' });
    const me = await asAna();
    assert.deepEqual([me.status, await me.json()], [200, { role: 'guest', name: 'Ana' }]);
    const page200 = await fetch(sharingUrl);
    assert.deepEqual([page200.status, await page200.text()], [200, '<!doctype html><title>studio</title>']);

    await core.call('team.share', { on: false });
    assert.equal((await asAna()).status, 401);
    assert.equal(await core.shutdown(), 0);
  });

  test('an original swapped for a link to another file is refused, as contrast serve refuses it', async () => {
    const secret = path.join(root, 'shadow');
    fs.writeFileSync(secret, 'root:$6$secret:19000:0:99999:7:::\n');
    const kept = fs.readFileSync(imageFile);
    fs.rmSync(imageFile);
    fs.symlinkSync(secret, imageFile);
    const core = new CoreClient(path.join(root, 'data-swap'));
    try {
      await core.ready;
      await core.startup(projectDir);
      const reply = await core.media('image', imageId);
      assert.equal(reply.ok, false);
      assert.deepEqual(!reply.ok && [reply.status, reply.error.code], [409, 'file_changed']);
    } finally {
      await core.shutdown();
      fs.rmSync(imageFile);
      fs.writeFileSync(imageFile, kept);
    }
  });

  test('a second core on the same project gets the lock message; without a request it falls back', async () => {
    const dataDir = path.join(root, 'data-b');
    const first = new CoreClient(dataDir);
    const second = new CoreClient(dataDir);
    await Promise.all([first.ready, second.ready]);
    assert.equal((await first.startup(projectDir)).ok, true);

    const refused = await second.startup(projectDir);
    assert.equal(refused.ok, false);
    assert.equal((refused as { error: { code: string } }).error.code, 'project_locked');
    assert.match((refused as { error: { message: string } }).error.message, /project is open in another window/);

    // The recent list now names the locked project first: startup skips it and opens the default one.
    const fallback = await second.startup();
    assert.ok(fallback.ok);
    const choice = fallback.value as { dir: string; skipped: string[] };
    assert.equal(choice.dir, path.join(dataDir, 'default'));
    assert.equal(choice.skipped.length, 1);
    assert.match(choice.skipped[0], /birds: project is open in another window/);
    assert.equal(fs.existsSync(path.join(dataDir, 'default', 'project.db')), true);

    await Promise.all([first.shutdown(), second.shutdown()]);
  });

  test('a core whose parent disappears releases its lock', async () => {
    const core = new CoreClient(path.join(root, 'data-c'));
    await core.ready;
    assert.equal((await core.startup(projectDir)).ok, true);
    const exited = new Promise((resolve) => core.child.once('exit', resolve));
    core.child.disconnect();
    await exited;
    assert.equal(fs.existsSync(path.join(projectDir, 'project.lock')), false);
  });
});
