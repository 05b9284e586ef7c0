/**
 * Builds what the desktop app runs, in plain Node (no Electron needed to build):
 *   bundle  main, core and job entries → dist/main/*.mjs, preload → dist/main/api.preload.cjs
 *   native  better-sqlite3 for Electron → dist/electron-native/<platform>-<arch>/better_sqlite3.node
 *
 *   node --import tsx main/build_desktop.ts bundle
 *   node --import tsx main/build_desktop.ts native <electron version> [arch]
 *
 * Dependencies stay external (resolved from node_modules at run time, packaged by
 * electron-builder), so native addons such as tfjs-node are never bundled. Only the sandboxed
 * preload is self-contained: it cannot load anything but 'electron'.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { electronNativeDir, SQLITE_BINDING_FILE } from './native_binding.ts';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const bundleDir = path.join(repoRoot, 'dist', 'main');

const ELECTRON_NODE_TARGET = 'node22';
const ELECTRON_CHROME_TARGET = 'chrome140';

export async function bundleDesktop(outDir = bundleDir): Promise<void> {
  const common = { bundle: true, sourcemap: 'linked', logLevel: 'warning', absWorkingDir: repoRoot } as const;
  await Promise.all([
    esbuild.build({
      ...common,
      entryPoints: {
        'app.main': 'main/app.main.ts',
        'core_host.utility': 'main/core_host.utility.ts',
        job_process: 'app/jobs/job_process.ts',
      },
      outdir: outDir,
      outExtension: { '.js': '.mjs' },
      platform: 'node',
      format: 'esm',
      target: ELECTRON_NODE_TARGET,
      packages: 'external',
    }),
    esbuild.build({
      ...common,
      entryPoints: { 'api.preload': 'main/api.preload.ts' },
      outdir: outDir,
      outExtension: { '.js': '.cjs' },
      platform: 'browser',
      format: 'cjs',
      target: ELECTRON_CHROME_TARGET,
      external: ['electron'],
    }),
  ]);
}

/**
 * Compiles better-sqlite3 against Electron's ABI in a scratch copy, so node_modules keeps its
 * Node build for tests and the CLI. Needs the network once (Electron headers or a prebuilt).
 */
export async function buildElectronSqlite(electronVersion: string, arch: string = process.arch): Promise<string> {
  const targetDir = electronNativeDir(repoRoot, process.platform, arch);
  const scratch = path.join(targetDir, 'scratch');
  const source = path.join(repoRoot, 'node_modules', 'better-sqlite3');
  const copy = path.join(scratch, 'node_modules', 'better-sqlite3');
  fs.rmSync(scratch, { recursive: true, force: true });
  fs.cpSync(source, copy, { recursive: true, filter: (file) => file !== path.join(source, 'build') });
  const { version } = JSON.parse(fs.readFileSync(path.join(source, 'package.json'), 'utf8')) as { version: string };
  fs.writeFileSync(path.join(scratch, 'package.json'), JSON.stringify({ name: 'electron-native', private: true, dependencies: { 'better-sqlite3': version } }));

  const { rebuild } = await import('@electron/rebuild');
  await rebuild({ buildPath: scratch, electronVersion, arch, onlyModules: ['better-sqlite3'], force: true });
  const binding = path.join(targetDir, SQLITE_BINDING_FILE);
  fs.copyFileSync(path.join(copy, 'build', 'Release', SQLITE_BINDING_FILE), binding);
  fs.rmSync(scratch, { recursive: true, force: true });
  return binding;
}

async function cli(argv: string[]): Promise<void> {
  const [step, electronVersion, arch] = argv;
  if (step === 'bundle') return bundleDesktop();
  if (step === 'native' && electronVersion) {
    console.log(`built ${await buildElectronSqlite(electronVersion, arch)}`);
    return;
  }
  console.error('usage: node --import tsx main/build_desktop.ts bundle | native <electron version> [arch]');
  process.exitCode = 2;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await cli(process.argv.slice(2));
