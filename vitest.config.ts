import { defineConfig } from 'vitest/config';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { svelteTesting } from '@testing-library/svelte/vite';

// Component and UI-logic tests of the renderer (jsdom); the core's tests run under node:test.
export default defineConfig({
  plugins: [svelte({ configFile: false }), svelteTesting()],
  test: {
    include: ['renderer/**/*.test.ts'],
    environment: 'jsdom',
    setupFiles: ['renderer/test_setup.ts'],
  },
});
