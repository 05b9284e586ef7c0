import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import { after } from 'node:test';
import assert from 'node:assert/strict';
import type { Output } from '../app/contract/operations.ts';
import { dispatch } from '../app/services/dispatch.ts';
import { createHandlers, type Handlers } from '../app/services/handlers.ts';
import { importPaths } from '../app/media/import.ts';
import { Session } from '../app/services/session.ts';
import { startServer, type RunningServer } from '../app/transports/http/server.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
export const CLI = path.join(ROOT, 'bin', 'contrast.js');

/** A fresh temporary folder, removed when the test file ends. */
export function tempDir(prefix = 'contrast-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes a solid-colour image with a little per-file noise so every file has distinct content. */
export async function writeImage(
  file: string,
  options: { width?: number; height?: number; colour?: [number, number, number]; seed?: number; format?: 'jpeg' | 'png' | 'webp' } = {},
): Promise<void> {
  const { width = 32, height = 32, colour = [200, 40, 40], seed = 0, format = 'jpeg' } = options;
  const pixels = Buffer.alloc(width * height * 3);
  let state = seed * 2654435761 + 1;
  for (let i = 0; i < pixels.length; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    pixels[i] = Math.max(0, Math.min(255, colour[i % 3] + ((state >>> 16) % 41) - 20));
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await sharp(pixels, { raw: { width, height, channels: 3 } })[format]().toFile(file);
}

/** Runs the CLI in a child process, as a user would. */
export function runCli(args: string[], options: { env?: NodeJS.ProcessEnv; timeout?: number } = {}) {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...options.env },
    timeout: options.timeout ?? 120_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr, signal: result.signal };
}

/** Waits until `check` holds, looking every 25 ms; fails the test after `ms`. */
export async function until(check: () => boolean, what: string, ms = 120_000): Promise<void> {
  for (const started = Date.now(); !check(); ) {
    if (Date.now() - started > ms) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Calls an operation through dispatch, as a transport would, failing the test unless it succeeds. */
export function succeeding(handlers: () => Handlers) {
  return async <N extends keyof Handlers>(name: N, input: unknown): Promise<Output<N>> => {
    const result = await dispatch(handlers(), name, input);
    if (!('value' in result)) assert.fail(`${name} failed: ${result.error.message}`);
    return result.value as Output<N>;
  };
}

/**
 * The browser transport on a project of the images under `images` (labelled by folder), with a
 * stand-in UI page: project, home and UI go under `root`.
 */
export async function serveImages(root: string, images: string): Promise<{ session: Session; server: RunningServer }> {
  const staticDir = path.join(root, 'ui');
  fs.mkdirSync(staticDir);
  fs.writeFileSync(path.join(staticDir, 'index.html'), '<!doctype html><title>ui</title>');
  const session = new Session({ dataDir: path.join(root, 'home') });
  await importPaths(session.open(path.join(root, 'project'), true), [images], { labelsFromFolders: true });
  return { session, server: await startServer({ session, handlers: createHandlers(session), staticDir }) };
}
