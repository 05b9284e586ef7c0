/** Shared pieces of the browser tests: generated images, a `contrast serve` process, Chromium. */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { chromium, type Browser, type Page } from 'playwright-core';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const resultsDir = path.join(repoRoot, 'test-results', 'e2e');

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `contrast-${prefix}-`));
}

/** A colour per class plus per-image noise, so classes are learnable and no two files are identical. */
export async function writeClassImages(
  root: string,
  classes: Record<string, [number, number, number]>,
  perClass: number,
  size = 32,
  seed = 7,
): Promise<void> {
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (const [name, rgb] of Object.entries(classes)) {
    const dir = path.join(root, name);
    fs.mkdirSync(dir, { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const pixels = Buffer.alloc(size * size * 3);
      for (let p = 0; p < size * size; p++) {
        for (let c = 0; c < 3; c++) pixels[p * 3 + c] = Math.max(0, Math.min(255, rgb[c] + Math.round((random() - 0.5) * 120)));
      }
      await sharp(pixels, { raw: { width: size, height: size, channels: 3 } }).png().toFile(path.join(dir, `${name}-${String(i).padStart(3, '0')}.png`));
    }
  }
}

export interface Served {
  url: string;
  origin: string;
  token: string;
  child: ChildProcess;
  output: () => string;
  stop(): Promise<void>;
}

/** Starts `contrast serve` and resolves once it prints its address. */
export function serve(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Served> {
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'contrast.js'), 'serve', ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start within 90 s:\n${output}`)), 90_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code}:\n${output}`));
    });
    const check = () => {
      const match = /(http:\/\/127\.0\.0\.1:\d+)\/#token=([\w-]+)/.exec(output);
      if (!match) return;
      clearTimeout(timer);
      child.stdout!.off('data', check);
      resolve({ url: `${match[1]}/#token=${match[2]}`, origin: match[1], token: match[2], child, output: () => output, stop });
    };
    child.stdout!.on('data', check);
  });
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
}

/**
 * A page ready for page.evaluate of functions written in these tests: tsx compiles them with
 * esbuild's keepNames, which wraps named functions in a __name() helper the page does not have.
 */
export async function newPage(browser: Browser, viewport = { width: 1360, height: 860 }): Promise<Page> {
  const page = await browser.newPage({ viewport });
  await page.addInitScript('globalThis.__name = (target) => target;');
  return page;
}

/** Collects console errors and CSP violations, which must stay empty. */
export function watchPage(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()} ${new URL(response.url()).pathname}`);
  });
  return problems;
}

export async function screenshot(page: Page, name: string): Promise<void> {
  fs.mkdirSync(resultsDir, { recursive: true });
  await page.screenshot({ path: path.join(resultsDir, `${name}.png`) });
}

export interface StudioPage {
  served: Served;
  browser: Browser;
  page: Page;
  /** What `watchPage` collects; must stay empty. */
  problems: string[];
}

/** `contrast serve` with these arguments, and a Chromium page on it, watched for problems. */
export async function openStudio(args: string[], env: NodeJS.ProcessEnv, viewport?: { width: number; height: number }): Promise<StudioPage> {
  const served = await serve(args, env);
  const browser = await launchBrowser().catch(async (error) => {
    await served.stop(); // the caller never gets it to stop
    throw error;
  });
  const page = await newPage(browser, viewport);
  const problems = watchPage(page);
  await page.goto(served.url);
  return { served, browser, page, problems };
}

/** Closes what `openStudio` opened (as far as it got) and removes the test's folder. */
export async function closeStudio(studio: { browser?: Browser; served?: Served }, folder?: string): Promise<void> {
  await studio.browser?.close();
  await studio.served?.stop();
  if (folder) fs.rmSync(folder, { recursive: true, force: true });
}
