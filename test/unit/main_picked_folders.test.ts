/**
 * Desktop IPC: the page may import from, or create a project in, only folders the native picker
 * returned in its window. Calls go through the main process's check to a real core (Session +
 * handlers + dispatch, in this process), as app.main.ts sends them to the window's core.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { ServerEvent } from '../../app/contract/operations.ts';
import { dispatch } from '../../app/services/dispatch.ts';
import { createHandlers } from '../../app/services/handlers.ts';
import { Session } from '../../app/services/session.ts';
import { checkedCall, PickedFolders } from '../../main/picked_folders.ts';
import type { IpcResult } from '../../main/preload_api.ts';
import { tempDir, writeImage } from '../helpers.ts';

describe('paths from a desktop page', () => {
  const root = tempDir('contrast-picked-');
  const session = new Session({ dataDir: path.join(root, 'home') });
  after(() => session.dispose());
  const handlers = createHandlers(session);
  const core = async (name: string, input: unknown): Promise<IpcResult<unknown>> => {
    const result = await dispatch(handlers, name, input);
    return 'value' in result ? { ok: true, value: result.value } : { ok: false, status: result.status, error: result.error };
  };
  const picked = new PickedFolders();

  test('projects.create in a folder nobody picked is refused before it reaches the core', async () => {
    const elsewhere = path.join(root, 'not-picked');
    const result = await checkedCall('projects.create', { dir: elsewhere }, picked, core);
    assert.equal(result.ok, false);
    assert.deepEqual(!result.ok && [result.status, result.error.code], [403, 'not_picked']);
    assert.match(!result.ok ? result.error.message : '', /Choose… button/);
    assert.equal(fs.existsSync(elsewhere), false, 'no project was created');
  });

  test('a picked folder, or one inside it, is accepted; ".." cannot climb out of it', async () => {
    const chosen = path.join(root, 'chosen');
    fs.mkdirSync(chosen);
    picked.remember(chosen);
    const created = await checkedCall('projects.create', { dir: path.join(chosen, 'birds') }, picked, core);
    assert.equal(created.ok, true);
    assert.equal(fs.existsSync(path.join(chosen, 'birds', 'project.db')), true);

    const climbing = await checkedCall('projects.create', { dir: path.join(chosen, '..', 'escaped') }, picked, core);
    assert.deepEqual(!climbing.ok && climbing.error.code, 'not_picked');
    const sibling = await checkedCall('projects.create', { dir: `${chosen}-sibling` }, picked, core);
    assert.deepEqual(!sibling.ok && sibling.error.code, 'not_picked', 'a folder sharing the prefix is not inside');
  });

  test('import.start takes only picked paths, every one of them', async () => {
    const images = path.join(root, 'images');
    await writeImage(path.join(images, 'a.jpg'));
    fs.mkdirSync(path.join(root, 'private'));
    const refused = await checkedCall('import.start', { paths: [images] }, picked, core);
    assert.deepEqual(!refused.ok && refused.error.code, 'not_picked');

    picked.remember(images);
    const mixed = await checkedCall('import.start', { paths: [images, path.join(root, 'private')] }, picked, core);
    assert.deepEqual(!mixed.ok && mixed.error.message.startsWith(`choose ${path.join(root, 'private')} `), true);

    const finished = new Promise<ServerEvent>((resolve) => session.onEvent((event) => event.type === 'import.finished' && resolve(event)));
    const started = await checkedCall('import.start', { paths: [images] }, picked, core);
    assert.deepEqual(started, { ok: true, value: { started: true } });
    const event = await finished;
    assert.equal(event.type === 'import.finished' && event.summary?.added, 1);
  });

  test('bad input is still refused by the contract first, and other operations pass unchanged', async () => {
    const bad = await checkedCall('projects.create', { dir: 42 }, picked, core);
    assert.deepEqual(!bad.ok && bad.error.code, 'bad_input');
    const status = await checkedCall('project.status', {}, picked, core);
    assert.equal(status.ok, true);
  });
});
