/**
 * How the desktop core starts a training job: the bundled job entry (the installed app has
 * neither the TypeScript sources nor tsx), run by the core's own binary as plain Node. In
 * Electron that is Electron's binary with ELECTRON_RUN_AS_NODE, so the job has Electron's ABI,
 * matching the better-sqlite3 build named in the environment it inherits. Plain Node code: the
 * tests run it with Node's binary, where the variable means nothing.
 */
import { fork } from 'node:child_process';
import type { JobEvent } from '../app/jobs/events.ts';
import type { Launcher } from '../app/jobs/job.ts';

export function bundledJobLauncher(bundledEntry: string): Launcher {
  // The runner names its TypeScript entry; the bundle built from it stands in for it here.
  return (_typescriptEntry, args, env) => {
    const child = fork(bundledEntry, args, {
      env: { ...env, ELECTRON_RUN_AS_NODE: '1' },
      execArgv: [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    return {
      send: (message) => {
        if (child.connected) child.send(message);
      },
      onMessage: (listener) => child.on('message', (message) => listener(message as JobEvent)),
      // 'close' comes after the last message, so a job that finished is never taken for a crash.
      onExit: (listener) => child.once('close', (code) => listener(code)),
    };
  };
}
