/** IPC argument checks (the contract's valibot schemas) and the renderer's Api over the preload bridge. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError, operationNames, type ServerEvent } from '../../app/contract/operations.ts';
import { chooseFolderSchema, createIpcApi, operationChannel, validateCall, type ContrastBridge } from '../../main/preload_api.ts';
import * as v from 'valibot';

describe('validateCall', () => {
  test('passes valid input through, with the schema applied (trimmed names)', async () => {
    assert.deepEqual(await validateCall('classes.add', { name: '  heron ' }), { ok: true, input: { name: 'heron' } });
    assert.deepEqual(await validateCall('labels.set', { imageIds: [1, 2], classId: null }), {
      ok: true,
      input: { imageIds: [1, 2], classId: null },
    });
  });

  test('refuses wrong types, ranges and missing fields with the field named, like the HTTP server', async () => {
    const cases: [string, unknown, RegExp][] = [
      ['images.get', { imageId: 0 }, /^images\.get: imageId: /],
      ['images.get', { imageId: '3' }, /^images\.get: imageId: /],
      ['images.get', {}, /^images\.get: imageId: /],
      ['labels.set', { imageIds: [], classId: 1 }, /select at least one image/],
      ['classes.add', { name: '   ' }, /a class name cannot be empty/],
      ['images.list', { filter: { kind: 'everything' }, sort: 'import', offset: 0, limit: 10 }, /filter\.kind/],
      ['images.list', { filter: { kind: 'all' }, sort: 'import', offset: 0, limit: 100000 }, /limit/],
      ['projects.open', { dir: 42 }, /^projects\.open: dir: /],
    ];
    for (const [name, input, message] of cases) {
      const result = await validateCall(name, input);
      assert.equal(result.ok, false, `${name} ${JSON.stringify(input)}`);
      assert.equal(!result.ok && result.error.code, 'bad_input');
      assert.equal(!result.ok && result.status, 400);
      assert.match(!result.ok ? result.error.message : '', message);
    }
  });

  test('refuses names that are not operations, including inherited properties', async () => {
    for (const name of ['shell.exec', 'toString', '__proto__', 'constructor', '']) {
      const result = await validateCall(name, {});
      assert.deepEqual(result, { ok: false, status: 404, error: { code: 'unknown_operation', message: `unknown operation "${name}"` } });
    }
  });

  test('every operation has its own channel', () => {
    const channels = operationNames.map(operationChannel);
    assert.equal(new Set(channels).size, operationNames.length);
    assert.equal(operationChannel('labels.set'), 'contrast:op:labels.set');
  });

  test('the folder picker accepts a title and an optional button label only', () => {
    assert.equal(v.safeParse(chooseFolderSchema, { title: 'Import images' }).success, true);
    assert.equal(v.safeParse(chooseFolderSchema, { title: 3 }).success, false);
    assert.equal(v.safeParse(chooseFolderSchema, { title: 'x'.repeat(201) }).success, false);
  });
});

describe('createIpcApi', () => {
  function bridgeAnswering(result: unknown, seen: unknown[]): ContrastBridge {
    const listeners = new Set<(e: ServerEvent) => void>();
    const bridge: Record<string, unknown> = Object.fromEntries(
      operationNames.map((name) => [name, async (input: unknown) => (seen.push([name, input]), result)]),
    );
    bridge.onEvent = (listener: (e: ServerEvent) => void) => (listeners.add(listener), () => listeners.delete(listener));
    bridge.emit = (event: ServerEvent) => listeners.forEach((l) => l(event));
    return bridge as unknown as ContrastBridge;
  }

  test('returns the value of a successful call', async () => {
    const seen: unknown[] = [];
    const api = createIpcApi(bridgeAnswering({ ok: true, value: { classes: [] } }, seen));
    assert.deepEqual(await api.call('classes.list', {}), { classes: [] });
    assert.deepEqual(seen, [['classes.list', {}]]);
  });

  test('turns a failure envelope back into an ApiError with its code', async () => {
    const api = createIpcApi(
      bridgeAnswering({ ok: false, status: 409, error: { code: 'project_locked', message: 'project is open in another window' } }, []),
    );
    await assert.rejects(api.call('projects.open', { dir: '/p' }), (error: unknown) => {
      assert.ok(error instanceof ApiError);
      assert.equal(error.code, 'project_locked');
      assert.equal(error.message, 'project is open in another window');
      assert.equal(error.status, 409);
      return true;
    });
  });

  test('passes events through and unsubscribes', () => {
    const bridge = bridgeAnswering(null, []);
    const api = createIpcApi(bridge);
    const received: ServerEvent[] = [];
    const stop = api.onEvent((event) => received.push(event));
    (bridge as unknown as { emit(e: ServerEvent): void }).emit({ type: 'labels.changed' });
    stop();
    (bridge as unknown as { emit(e: ServerEvent): void }).emit({ type: 'labels.changed' });
    assert.deepEqual(received, [{ type: 'labels.changed' }]);
  });
});
