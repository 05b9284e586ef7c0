/**
 * The real desktop window, driven by Playwright's Electron support. Needs the optional Electron
 * binary; without it every test here is skipped with the reason.
 *
 *   node --import tsx --test test/e2e/electron_app.test.ts
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { _electron as electron, type ElectronApplication, type Page } from 'playwright-core';
import { operationNames } from '../../app/contract/operations.ts';
import { ensureRendererBuilt } from '../../app/transports/http/renderer_build.ts';
import { importPaths } from '../../app/media/import.ts';
import { addClass } from '../../app/store/labels.ts';
import { openProject } from '../../app/store/project.ts';
import { bundleDesktop, bundleDir, buildElectronSqlite, repoRoot } from '../../main/build_desktop.ts';
import { electronSqliteBinding, findElectron } from '../../main/native_binding.ts';

const installed = findElectron(repoRoot);
const skip = installed
  ? false
  : 'the Electron binary is not installed (optional dependency; `npm install electron` where downloads work) — desktop window tests skipped';

type Bridge = Record<string, (input: unknown) => Promise<{ ok: boolean; value?: any; error?: { code: string } }>>;

describe('desktop window', { skip }, () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'contrast-e2e-'));
  const projectDir = path.join(root, 'sample');
  const apps: ElectronApplication[] = [];
  let studio: Page;

  async function launch(name: string, project: string): Promise<{ app: ElectronApplication; page: Page }> {
    const app = await electron.launch({
      executablePath: installed!.executable,
      // Own profile per launch, so the single-instance lock of a developer's running studio is not involved.
      args: [path.join(bundleDir, 'app.main.mjs'), `--user-data-dir=${path.join(root, `profile-${name}`)}`, project],
      env: { ...process.env, CONTRAST_HOME: path.join(root, `data-${name}`) } as Record<string, string>,
    });
    apps.push(app);
    const page = await app.firstWindow();
    await page.waitForLoadState('domcontentloaded');
    return { app, page };
  }

  const call = (page: Page, name: string, input: unknown) =>
    page.evaluate(([n, i]) => (window as unknown as { contrastApi: Bridge }).contrastApi[n as string](i), [name, input] as const);

  before(async () => {
    await ensureRendererBuilt();
    await bundleDesktop();
    const binding = electronSqliteBinding({ packaged: false, resourcesPath: '', repoRoot, platform: process.platform, arch: process.arch });
    if (!fs.existsSync(binding)) await buildElectronSqlite(installed!.version);

    const images = path.join(root, 'images');
    fs.mkdirSync(images);
    for (const [i, colour] of ['#d00', '#0a0', '#00c'].entries()) {
      await sharp({ create: { width: 48, height: 48, channels: 3, background: colour } }).png().toFile(path.join(images, `${i}.png`));
    }
    const project = openProject(projectDir, { create: true });
    await importPaths(project, [images]);
    addClass(project.db, 'red');
    project.close();
  });

  after(async () => {
    await Promise.all(apps.map((app) => app.close().catch(() => {})));
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('opens the project from the command line in a locked-down window', async () => {
    const { page } = await launch('a', projectDir);
    studio = page;
    assert.match(page.url(), /^app:\/\/studio\//);
    assert.match(await page.title(), /sample|Contrast Studio/);
    const exposed = await page.evaluate(() => ({
      api: Object.keys((window as unknown as { contrastApi: object }).contrastApi).sort(),
      node: typeof (window as unknown as { require?: unknown }).require,
      process: typeof (window as unknown as { process?: unknown }).process,
    }));
    assert.deepEqual(exposed.api, [...operationNames, 'onEvent'].sort());
    assert.equal(exposed.node, 'undefined');
    assert.equal(exposed.process, 'undefined');
    const evalBlocked = await page.evaluate(() => {
      try {
        return eval('"ran"');
      } catch {
        return 'blocked';
      }
    });
    assert.equal(evalBlocked, 'blocked', 'the CSP forbids eval');

    const status = await call(page, 'project.status', {});
    assert.equal(status.value.project.dir, projectDir);
    assert.equal(status.value.project.images, 3);
  });

  test('labels one image, loads its thumbnail by id, refuses bad input', async () => {
    const target = studio;
    const ids = await call(target, 'images.ids', { filter: { kind: 'all' }, sort: 'import' });
    const classes = await call(target, 'classes.list', {});
    const red = classes.value.classes.find((c: { name: string }) => c.name === 'red');
    const labelled = await call(target, 'labels.set', { imageIds: [ids.value.ids[0]], classId: red.id });
    assert.equal(labelled.ok, true);
    const status = await call(target, 'project.status', {});
    assert.equal(status.value.project.labelled, 1);

    const thumbType = await target.evaluate(async (id) => (await (await fetch(`/api/thumb/${id}`)).blob()).type, ids.value.ids[0]);
    assert.equal(thumbType, 'image/webp');
    const unknown = await target.evaluate(async () => (await fetch('/api/thumb/999999')).status);
    assert.equal(unknown, 404);

    const bad = await call(target, 'labels.set', { imageIds: [], classId: red.id });
    assert.equal(bad.ok, false);
    assert.equal(bad.error!.code, 'bad_input');
  });

  test('a second app on the same project is told it is open elsewhere and opens its default project', async () => {
    const { page } = await launch('c', projectDir);
    const status = await call(page, 'project.status', {});
    assert.equal(status.value.project.dir, path.join(root, 'data-c', 'default'));
    const again = await call(page, 'projects.open', { dir: projectDir });
    assert.equal(again.ok, false);
    assert.equal(again.error!.code, 'project_locked');
  });
});
