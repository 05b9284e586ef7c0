/**
 * What `npm start` (bin/start.js) does, in plain Node: with Electron installed, build the UI,
 * the desktop bundles and the Electron build of better-sqlite3 when missing, then open the
 * desktop window; without it, say so in one line and serve the studio to the browser instead.
 */
import { cliMessage } from '../app/cli/error_words.ts';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { main as contrastCli } from '../app/cli.ts';
import { ensureRendererBuilt } from '../app/transports/http/renderer_build.ts';
import { Session } from '../app/services/session.ts';
import { UserError } from '../app/contract/errors.ts';
import { bundleDesktop, bundleDir, buildElectronSqlite, repoRoot } from './build_desktop.ts';
import { electronSqliteBinding, findElectron } from './native_binding.ts';
import { openStartupProject, projectArgument } from './startup_project.ts';

export const BROWSER_NOTICE =
  'Electron is not installed (it is an optional dependency), so Contrast Studio opens in your browser instead.';

export async function start(argv: string[]): Promise<number> {
  const requested = projectArgument(argv, process.cwd());
  const electron = findElectron(repoRoot);
  if (!electron) {
    console.log(BROWSER_NOTICE);
    return serveInBrowser(requested);
  }
  await ensureRendererBuilt((line) => process.stderr.write(line));
  await bundleDesktop();
  const binding = electronSqliteBinding({ packaged: false, resourcesPath: '', repoRoot, platform: process.platform, arch: process.arch });
  if (!fs.existsSync(binding)) {
    console.log(`building better-sqlite3 for Electron ${electron.version} (once)...`);
    await buildElectronSqlite(electron.version);
  }
  const child = spawn(electron.executable, [path.join(bundleDir, 'app.main.mjs'), ...(requested ? [requested] : [])], {
    stdio: 'inherit',
  });
  return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
}

/** `contrast serve` on the requested project, else the last one that opens, else the default project. */
async function serveInBrowser(requested: string | undefined): Promise<number> {
  const session = new Session();
  let dir: string;
  try {
    dir = openStartupProject(session, requested).dir;
  } catch (error) {
    if (!(error instanceof UserError)) throw error;
    console.error(`contrast: ${cliMessage(error)}`);
    return 1;
  } finally {
    session.dispose(); // serve opens it again, in its own session
  }
  return contrastCli(['serve', dir]);
}
