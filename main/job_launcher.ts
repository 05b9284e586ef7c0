/**
 * How the desktop core starts a training job: the bundled job entry (the installed app has
 * neither the TypeScript sources nor tsx), run by the core's own binary as plain Node. In
 * Electron that is Electron's binary with ELECTRON_RUN_AS_NODE, so the job has Electron's ABI,
 * matching the better-sqlite3 build named in the environment it inherits. Plain Node code: the
 * tests run it with Node's binary, where the variable means nothing.
 */
import { childProcessLauncher, type Launcher } from '../app/services/training.ts';

export function bundledJobLauncher(bundledEntry: string): Launcher {
  return childProcessLauncher({ entry: bundledEntry, execArgv: [], env: { ELECTRON_RUN_AS_NODE: '1' } });
}
