import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import { after } from 'node:test';

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
