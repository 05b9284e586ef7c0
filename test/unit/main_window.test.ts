/** Window placement memory, the application menu, and command-line project arguments. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildMenuTemplate, type MenuItemTemplate } from '../../main/menu_template.ts';
import { projectArgument } from '../../main/startup_project.ts';
import { DEFAULT_SIZE, placeWindow, readWindowState, writeWindowState, type Rectangle } from '../../main/window_state.ts';

const laptop: Rectangle = { x: 0, y: 25, width: 1440, height: 875 };
const external: Rectangle = { x: 1440, y: 0, width: 2560, height: 1440 };

describe('window state', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'contrast-window-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('round-trips through the state file', () => {
    const file = path.join(dir, 'nested', 'window-state.json');
    const state = { bounds: { x: 100, y: 80, width: 1300, height: 850 }, maximized: true };
    writeWindowState(file, state);
    assert.deepEqual(readWindowState(file), state);
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['window-state.json'], 'no temporary file left behind');
  });

  test('a missing, damaged or nonsensical file means default placement', () => {
    assert.equal(readWindowState(path.join(dir, 'absent.json')), null);
    for (const [name, text] of [['broken', '{"bounds": {"x": 1'], ['null', 'null'], ['nan', '{"bounds":{"x":"a","y":0,"width":9,"height":9}}']]) {
      const file = path.join(dir, `${name}.json`);
      fs.writeFileSync(file, text);
      assert.equal(readWindowState(file), null, name);
    }
  });

  test('puts the window back where it was when that is on a screen', () => {
    const saved = { bounds: { x: 1600, y: 100, width: 1200, height: 900 }, maximized: false };
    assert.deepEqual(placeWindow(saved, [laptop, external], 0), { bounds: saved.bounds, maximized: false });
  });

  test('a window left on an unplugged monitor comes back at the default position, fitted to the screen', () => {
    const saved = { bounds: { x: 1600, y: 100, width: 2000, height: 1200 }, maximized: false };
    assert.deepEqual(placeWindow(saved, [laptop], 0), { bounds: { width: 1440, height: 875 }, maximized: false });
  });

  test('further windows cascade and only the first one is maximised', () => {
    const saved = { bounds: { x: 100, y: 100, width: 1000, height: 700 }, maximized: true };
    assert.deepEqual(placeWindow(saved, [laptop], 0), { bounds: saved.bounds, maximized: true });
    assert.deepEqual(placeWindow(saved, [laptop], 2), { bounds: { x: 156, y: 156, width: 1000, height: 700 }, maximized: false });
  });

  test('never restores a window smaller than usable; no saved state means the default size', () => {
    const tiny = { bounds: { x: 10, y: 40, width: 50, height: 20 }, maximized: false };
    assert.deepEqual(placeWindow(tiny, [laptop], 0).bounds, { x: 10, y: 40, width: 640, height: 480 });
    assert.deepEqual(placeWindow(null, [laptop], 0), { bounds: DEFAULT_SIZE, maximized: false });
  });
});

describe('application menu', () => {
  const actions = { newProject: () => {}, openProject: () => {}, openSample: () => {} };
  const labels = (items: MenuItemTemplate[]) => items.map((item) => item.label ?? item.role ?? item.type);

  test('macOS: app menu first, recent documents in File, close instead of quit', () => {
    const menu = buildMenuTemplate('darwin', actions);
    assert.deepEqual(labels(menu), ['appMenu', 'File', 'editMenu', 'viewMenu', 'windowMenu']);
    assert.deepEqual(labels(menu[1].submenu!), ['New Project…', 'Open Project…', 'Open Recent', 'Open Sample Project', 'separator', 'close']);
  });

  test('Windows and Linux: quit in File, About under Help', () => {
    for (const platform of ['win32', 'linux'] as const) {
      const menu = buildMenuTemplate(platform, actions);
      assert.deepEqual(labels(menu), ['File', 'editMenu', 'viewMenu', 'windowMenu', 'help']);
      assert.deepEqual(labels(menu[0].submenu!), ['New Project…', 'Open Project…', 'Open Sample Project', 'separator', 'quit']);
      assert.deepEqual(labels(menu[4].submenu!), ['about']);
    }
  });

  test('menu items call their actions', () => {
    const called: string[] = [];
    const menu = buildMenuTemplate('linux', {
      newProject: () => called.push('new'),
      openProject: () => called.push('open'),
      openSample: () => called.push('sample'),
    });
    for (const item of menu[0].submenu!) item.click?.();
    assert.deepEqual(called, ['new', 'open', 'sample']);
    assert.equal(menu[0].submenu![0].accelerator, 'CmdOrCtrl+N');
  });
});

describe('projectArgument', () => {
  test('the first argument that is not a switch or the main script, resolved against the cwd', () => {
    assert.equal(projectArgument(['birds'], '/home/ana'), '/home/ana/birds');
    const script = '/repo/dist/main/app.main.mjs';
    // Playwright and Chromium put switches before and after the script.
    assert.equal(projectArgument(['--inspect=0', '--remote-debugging-port=0', script, '--user-data-dir=/tmp/p', '/data/cats'], '/repo', [script]), '/data/cats');
    assert.equal(projectArgument(['dist/main/app.main.mjs', 'cats'], '/repo', [script]), '/repo/cats');
    assert.equal(projectArgument([script], '/repo', [script]), undefined);
    assert.equal(projectArgument(['--original-process-start-time=1'], '/'), undefined);
  });
});
