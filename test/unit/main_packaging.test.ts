/**
 * What packaging relies on, checked without Electron: the bundles build and the core bundle runs
 * on its own (no tsx), the preload is self-contained, and electron-builder.yml passes
 * electron-builder's own schema and points at the files the build makes.
 */
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { bundleDesktop, repoRoot } from '../../main/build_desktop.ts';
import type { CoreToMain } from '../../main/core_messages.ts';
import { electronNativeDir } from '../../main/native_binding.ts';

const require = createRequire(import.meta.url);

describe('desktop bundles', () => {
  // Inside the checkout, so bare imports resolve from its node_modules as they will in the app.
  const outDir = path.join(repoRoot, 'dist', `bundle-test-${process.pid}`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'contrast-bundle-'));
  let child: ChildProcess | undefined;
  before(() => bundleDesktop(outDir));
  after(() => {
    if (child?.exitCode === null) child.kill(); // a failed assertion must not leave the core running

    fs.rmSync(outDir, { recursive: true, force: true });
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('the preload needs nothing but electron; the core bundle needs no electron at all', () => {
    const preload = fs.readFileSync(path.join(outDir, 'api.preload.cjs'), 'utf8');
    assert.deepEqual([...new Set(preload.match(/require\("[^"]+"\)/g))], ['require("electron")']);
    assert.match(preload, /contrastApi/);
    const core = fs.readFileSync(path.join(outDir, 'core_host.utility.mjs'), 'utf8');
    assert.doesNotMatch(core, /from "electron"/);
    assert.doesNotMatch(core, /from "[^"]+\.ts"/, 'every local TypeScript import is bundled');
    assert.match(core, /from "better-sqlite3"/, 'native addons stay external');
    const main = fs.readFileSync(path.join(outDir, 'app.main.mjs'), 'utf8');
    assert.match(main, /from "electron"/);
  });

  test('the bundled core runs in plain Node and opens the default project', async () => {
    const core = fork(path.join(outDir, 'core_host.utility.mjs'), [], {
      env: { ...process.env, CONTRAST_HOME: dataDir },
      execArgv: [],
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    child = core;
    const next = (type: string) =>
      new Promise<CoreToMain>((resolve) => {
        const listener = (message: CoreToMain) => {
          if (message.type !== type) return;
          core.off('message', listener);
          resolve(message);
        };
        core.on('message', listener);
      });
    await next('ready');
    core.send({ type: 'startup', id: 1 });
    const started = await next('reply');
    assert.deepEqual(started, { type: 'reply', id: 1, result: { ok: true, value: { dir: path.join(dataDir, 'default'), skipped: [] } } });
    core.send({ type: 'call', id: 2, name: 'project.status', input: {} });
    const status = (await next('reply')) as Extract<CoreToMain, { type: 'reply' }>;
    assert.equal(status.result.ok && (status.result.value as { project: { images: number } }).project.images, 0);
    const exited = new Promise((resolve) => core.once('exit', resolve));
    core.send({ type: 'shutdown' });
    assert.equal(await exited, 0);
  });
});

describe('electron-builder.yml', () => {
  test("passes electron-builder's schema", async () => {
    const { getConfig, validateConfiguration } = require('app-builder-lib/out/util/config/config');
    const { DebugLogger } = require('builder-util');
    const config = await getConfig(repoRoot, null, null);
    await validateConfiguration(config, new DebugLogger(false));
    assert.equal(config.productName, 'Contrast Studio');
  });

  test('starts the bundled main process and ships the Electron build of better-sqlite3, never rebuilding node_modules', async () => {
    const { getConfig } = require('app-builder-lib/out/util/config/config');
    const config = await getConfig(repoRoot, null, null);
    assert.equal(config.extraMetadata.main, 'dist/main/app.main.mjs');
    assert.equal(config.npmRebuild, false);
    assert.equal(config.electronFuses.runAsNode, true, 'jobs start as ELECTRON_RUN_AS_NODE children');
    const native = config.extraResources.find((entry: { to: string }) => entry.to === 'native');
    const expanded = native.from.replace('${platform}', 'linux').replace('${arch}', 'x64');
    assert.equal(path.join(repoRoot, expanded), electronNativeDir(repoRoot, 'linux', 'x64'));
    for (const unpacked of ['node_modules/@tensorflow/tfjs-node/**', 'node_modules/sharp/**', 'node_modules/@img/**', 'node_modules/webgpu/**']) {
      assert.ok(config.asarUnpack.includes(unpacked), unpacked);
    }
    assert.deepEqual(config.mac.target, [{ target: 'dmg', arch: ['x64', 'arm64'] }]);
    assert.deepEqual(config.linux.target, ['AppImage', 'deb']);
    assert.equal(config.win.target[0].target, 'nsis');
  });

  test('the icon is a 512x512 PNG and the beforePack hook loads', async () => {
    const { getConfig } = require('app-builder-lib/out/util/config/config');
    const config = await getConfig(repoRoot, null, null);
    for (const platform of ['mac', 'win', 'linux']) {
      const meta = await sharp(path.join(repoRoot, config[platform].icon)).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], ['png', 512, 512], platform);
    }
    const hook = await import(path.join(repoRoot, config.beforePack));
    assert.equal(typeof hook.default, 'function');
  });
});
