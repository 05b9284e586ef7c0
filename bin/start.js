#!/usr/bin/env node
// `npm start`: the desktop window when Electron is installed, else the studio in a browser.
import { register } from 'tsx/esm/api';

register();
const { start } = await import('../main/launch.ts');
process.exitCode = await start(process.argv.slice(2));
