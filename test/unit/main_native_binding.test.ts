/**
 * Native-build selection: the Electron build of better-sqlite3 is picked through an environment
 * variable the store honours, and Electron is detected without ever requiring (downloading) it.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SQLITE_BINDING_ENV as STORE_BINDING_ENV } from '../../app/store/project.ts';
import { SQLITE_BINDING_ENV, electronNativeDir, electronSqliteBinding, findElectron } from '../../main/native_binding.ts';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'contrast-native-'));
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

describe('better-sqlite3 binding selection', () => {
  test('the desktop shell and the store agree on the variable name', () => {
    assert.equal(SQLITE_BINDING_ENV, STORE_BINDING_ENV);
  });

  test('installed app: resources/native; checkout: dist/electron-native/<platform>-<arch>', () => {
    const where = { resourcesPath: '/opt/Contrast Studio/resources', repoRoot: '/src/contrast', platform: 'linux', arch: 'x64' };
    assert.equal(electronSqliteBinding({ ...where, packaged: true }), '/opt/Contrast Studio/resources/native/better_sqlite3.node');
    assert.equal(electronSqliteBinding({ ...where, packaged: false }), '/src/contrast/dist/electron-native/linux-x64/better_sqlite3.node');
    assert.equal(electronNativeDir('/r', 'darwin', 'arm64'), '/r/dist/electron-native/darwin-arm64');
  });

  test('openProject loads the addon named by the variable, and only that one', () => {
    const nodeBuild = createRequire(import.meta.url).resolve('better-sqlite3/build/Release/better_sqlite3.node');
    const copy = path.join(scratch, 'elsewhere', 'better_sqlite3.node');
    fs.mkdirSync(path.dirname(copy));
    fs.copyFileSync(nodeBuild, copy);
    const script = `
      import { openProject } from ${JSON.stringify(path.resolve(import.meta.dirname, '../../app/store/project.ts'))};
      const project = openProject(process.argv[1], { create: true });
      console.log(project.db.pragma('user_version', { simple: true }) > 0 ? 'opened' : 'no schema');
      project.close();`;
    const run = (binding: string) =>
      execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, path.join(scratch, 'p')], {
        env: { ...process.env, [SQLITE_BINDING_ENV]: binding },
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      }).trim();
    assert.equal(run(copy), 'opened');
    assert.throws(() => run(path.join(scratch, 'missing', 'better_sqlite3.node')), /Cannot find module .*missing/);
  });
});

describe('findElectron', () => {
  function fakeRepo(name: string, electron: { pathTxt?: string; binary?: string } | null): string {
    const repo = path.join(scratch, name);
    fs.mkdirSync(repo, { recursive: true });
    fs.writeFileSync(path.join(repo, 'package.json'), '{"name":"fake","type":"module"}');
    if (!electron) return repo;
    const pkg = path.join(repo, 'node_modules', 'electron');
    fs.mkdirSync(path.join(pkg, 'dist'), { recursive: true });
    fs.writeFileSync(path.join(pkg, 'package.json'), '{"name":"electron","version":"45.5.0","main":"index.js"}');
    // Requiring the package would run this and start a download: findElectron must never do that.
    fs.writeFileSync(path.join(pkg, 'index.js'), 'throw new Error("index.js was required")');
    if (electron.pathTxt) fs.writeFileSync(path.join(pkg, 'path.txt'), electron.pathTxt);
    if (electron.binary) fs.writeFileSync(path.join(pkg, 'dist', electron.binary), '');
    return repo;
  }

  test('absent package, or package whose binary download never finished: not installed', () => {
    assert.equal(findElectron(fakeRepo('none', null), {}), null);
    assert.equal(findElectron(fakeRepo('no-path-txt', {}), {}), null);
    assert.equal(findElectron(fakeRepo('no-binary', { pathTxt: 'electron' }), {}), null);
  });

  test('package with its binary: the executable and version, without loading index.js', () => {
    const repo = fakeRepo('installed', { pathTxt: 'electron', binary: 'electron' });
    assert.deepEqual(findElectron(repo, {}), {
      executable: path.join(repo, 'node_modules', 'electron', 'dist', 'electron'),
      version: '45.5.0',
    });
  });

  test("honours Electron's ELECTRON_OVERRIDE_DIST_PATH", () => {
    const repo = fakeRepo('override', { pathTxt: 'Electron.app/Contents/MacOS/Electron' });
    const dist = path.join(scratch, 'custom-dist');
    fs.mkdirSync(path.join(dist, 'Electron.app', 'Contents', 'MacOS'), { recursive: true });
    fs.writeFileSync(path.join(dist, 'Electron.app', 'Contents', 'MacOS', 'Electron'), '');
    assert.equal(findElectron(repo, { ELECTRON_OVERRIDE_DIST_PATH: dist })?.executable, path.join(dist, 'Electron.app/Contents/MacOS/Electron'));
  });
});
