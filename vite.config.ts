import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: `${here}renderer`,
  // Relative asset URLs, so the same build loads over http://127.0.0.1 and from Electron's file/app protocol.
  base: './',
  plugins: [svelte({ configFile: false })],
  build: {
    outDir: `${here}dist/renderer`,
    emptyOutDir: true,
    // The polyfill would be an inline script, which the strict CSP forbids.
    modulePreload: { polyfill: false },
    // Never inline assets as data: URLs into scripts; keep everything a plain file.
    assetsInlineLimit: 0,
    target: 'chrome120',
  },
});
