#!/usr/bin/env node
// Runs the TypeScript CLI directly through tsx, so an install needs no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../app/cli.ts');
process.exitCode = await main(process.argv.slice(2));
