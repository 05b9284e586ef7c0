/**
 * Which native builds the desktop app uses, and whether Electron is installed at all. No
 * electron import: `npm start` and the tests run this in plain Node.
 *
 * better-sqlite3 is compiled against one ABI. node_modules keeps the Node build (tests, CLI,
 * browser mode); the app loads a separate Electron build through better-sqlite3's
 * `nativeBinding` option, so `npm test` and `npm start` never rebuild each other's copy.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/** Read by app/store/project.ts; set by the Electron main process for its core and job processes. */
export const SQLITE_BINDING_ENV = 'CONTRAST_SQLITE_BINDING';
export const SQLITE_BINDING_FILE = 'better_sqlite3.node';

/** Where the Electron-ABI build for one platform and architecture lives in a checkout. */
export function electronNativeDir(repoRoot: string, platform: string, arch: string): string {
  return path.join(repoRoot, 'dist', 'electron-native', `${platform}-${arch}`);
}

/**
 * The Electron build of better-sqlite3: inside the installed app electron-builder copies it to
 * resources/native (electron-builder.yml extraResources); from a checkout it is under dist/.
 */
export function electronSqliteBinding(where: {
  packaged: boolean;
  resourcesPath: string;
  repoRoot: string;
  platform: string;
  arch: string;
}): string {
  if (where.packaged) return path.join(where.resourcesPath, 'native', SQLITE_BINDING_FILE);
  return path.join(electronNativeDir(where.repoRoot, where.platform, where.arch), SQLITE_BINDING_FILE);
}

export interface InstalledElectron {
  executable: string;
  version: string;
}

/**
 * The Electron executable if the optional `electron` package AND its binary are installed.
 * Never requires 'electron': its index.js starts a download when the binary is missing.
 */
export function findElectron(repoRoot: string, env: NodeJS.ProcessEnv = process.env): InstalledElectron | null {
  let packageDir: string;
  try {
    packageDir = path.dirname(createRequire(path.join(repoRoot, 'package.json')).resolve('electron/package.json'));
  } catch {
    return null;
  }
  const version = (JSON.parse(fs.readFileSync(path.join(packageDir, 'package.json'), 'utf8')) as { version: string }).version;
  const pathFile = path.join(packageDir, 'path.txt');
  if (!fs.existsSync(pathFile)) return null; // package present but its download never finished
  const relative = fs.readFileSync(pathFile, 'utf8').trim();
  // Electron's own override for a binary kept outside node_modules, honoured the same way.
  const distDir = env.ELECTRON_OVERRIDE_DIST_PATH || path.join(packageDir, 'dist');
  const executable = path.join(distDir, relative);
  return fs.existsSync(executable) ? { executable, version } : null;
}
