/**
 * `npm start` without the Electron binary (as on these machines): one line saying so, then the
 * studio served to the browser on the last or default project.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BROWSER_NOTICE } from '../../main/launch.ts';
import { findElectron } from '../../main/native_binding.ts';
import { repoRoot } from '../../main/build_desktop.ts';

const startScript = path.join(repoRoot, 'bin', 'start.js');
const electronInstalled = findElectron(repoRoot) !== null;
const skip = electronInstalled ? 'Electron is installed here: npm start would open a window (see test/e2e/electron_app.test.ts)' : false;

function startStudio(dataDir: string, args: string[] = []): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [startScript, ...args], {
    cwd: repoRoot,
    env: { ...process.env, CONTRAST_HOME: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout!.on('data', (chunk) => (text += chunk));
  child.stderr!.on('data', (chunk) => (text += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => text, exited };
}

function waitForUrl(run: ReturnType<typeof startStudio>): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const url = /running at (http:\/\/127\.0\.0\.1:\d+\/#token=[\w-]+)/.exec(run.output())?.[1];
      if (url) resolve(url);
    };
    run.child.stdout!.on('data', check);
    void run.exited.then((code) => reject(new Error(`npm start exited (${code}) before serving:\n${run.output()}`)));
  });
}

describe('npm start without Electron', { skip }, () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'contrast-start-'));
  after(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  test('says so in one line, then serves the default project, created on first run', { timeout: 180_000 }, async () => {
    const run = startStudio(dataDir);
    try {
      const openUrl = await waitForUrl(run);
      const stdoutLines = run.output().split('\n').filter((line) => line.includes('Electron'));
      assert.deepEqual(stdoutLines, [BROWSER_NOTICE]);

      const page = await fetch(openUrl);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<html/i);

      const token = new URL(openUrl).hash.slice('#token='.length);
      const status = await fetch(new URL('/api/project.status', openUrl), {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-contrast-token': token },
        body: '{}',
      });
      const body = (await status.json()) as { project: { dir: string; images: number } };
      assert.equal(body.project.dir, path.join(dataDir, 'default'));
      assert.equal(body.project.images, 0);
    } finally {
      run.child.kill('SIGTERM');
      await run.exited;
    }
    assert.equal(fs.existsSync(path.join(dataDir, 'default', 'project.lock')), false, 'stopping serve releases the project');
  });

  test('a project named on the command line that does not exist is one clear error', async () => {
    const missing = path.join(dataDir, 'no-such-project');
    const run = startStudio(dataDir, [missing]);
    assert.equal(await run.exited, 1);
    assert.equal(run.output().trim(), `${BROWSER_NOTICE}\ncontrast: no project at ${missing} (create one with: contrast init ${missing})`);
  });
});
