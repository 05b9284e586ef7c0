/**
 * Keeps dist/renderer in step with renderer/ sources: `contrast serve` rebuilds the UI when any
 * source is newer than the last build, so a checkout never serves a stale or missing UI.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const rendererDist = path.join(repoRoot, 'dist', 'renderer');
const sources = [path.join(repoRoot, 'renderer'), path.join(repoRoot, 'app', 'contract'), path.join(repoRoot, 'vite.config.ts')];

function newestMtime(entry: string): number {
  const stat = fs.statSync(entry, { throwIfNoEntry: false });
  if (!stat) return 0;
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs;
  for (const child of fs.readdirSync(entry)) {
    if (child !== 'node_modules') newest = Math.max(newest, newestMtime(path.join(entry, child)));
  }
  return newest;
}

export function rendererIsStale(): boolean {
  const built = fs.statSync(path.join(rendererDist, 'index.html'), { throwIfNoEntry: false });
  if (!built) return true;
  return Math.max(...sources.map(newestMtime)) > built.mtimeMs;
}

/** Builds the renderer with Vite when it is missing or older than its sources; returns the folder to serve. */
export async function ensureRendererBuilt(log: (line: string) => void = () => {}): Promise<string> {
  const hasSources = fs.existsSync(path.join(repoRoot, 'renderer', 'index.html'));
  if (hasSources && rendererIsStale()) {
    log('building the studio UI (vite build)...\n');
    const { build } = await import('vite');
    await build({ configFile: path.join(repoRoot, 'vite.config.ts'), logLevel: 'warn' });
  }
  if (!fs.existsSync(path.join(rendererDist, 'index.html'))) {
    throw new Error(`the studio UI is not built and its sources are missing (${rendererDist})`);
  }
  return rendererDist;
}
