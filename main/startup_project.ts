/**
 * Which project a new studio window (or `npm start` in browser mode) opens: the one asked for,
 * else the most recent one that can still be opened, else a default project in the data
 * folder, created on first run. Plain Node: runs in the core process and in bin/start.js.
 */
import path from 'node:path';
import type { Session } from '../app/services/session.ts';

export const DEFAULT_PROJECT_NAME = 'default';

export function defaultProjectDir(dataDir: string): string {
  return path.join(dataDir, DEFAULT_PROJECT_NAME);
}

export interface StartupChoice {
  dir: string;
  /** Recent projects that could not be opened, with why (locked elsewhere, deleted, damaged). */
  skipped: string[];
}

/** Opens the startup project in `session`. A `requested` project that fails to open is an error, not a fallback. */
export function openStartupProject(session: Session, requested?: string): StartupChoice {
  if (requested) return { dir: session.open(requested).dir, skipped: [] };
  const skipped: string[] = [];
  for (const recent of session.recentProjects()) {
    if (!recent.exists) continue;
    try {
      return { dir: session.open(recent.dir).dir, skipped };
    } catch (error) {
      // Any failure (locked elsewhere, damaged, from a newer version) must not keep the app from starting.
      skipped.push(`${recent.dir}: ${(error as Error).message}`);
    }
  }
  return { dir: session.open(defaultProjectDir(session.dataDir), true).dir, skipped };
}

/**
 * The project folder named on the command line, if any: the first argument that is neither a
 * switch (Chromium's, Electron's, a test driver's) nor one of `notProjects` (the main script,
 * when a checkout runs `electron dist/main/app.main.mjs`). `args` excludes the executable.
 */
export function projectArgument(args: string[], cwd: string, notProjects: string[] = []): string | undefined {
  const skipped = new Set(notProjects.map((file) => path.resolve(file)));
  return args
    .filter((arg) => !arg.startsWith('-'))
    .map((arg) => path.resolve(cwd, arg))
    .find((file) => !skipped.has(file));
}
