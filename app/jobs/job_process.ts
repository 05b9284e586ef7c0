/**
 * Child-process entry: runs one run of a project and streams its JobEvents to the parent.
 *
 *   args: <project dir> <run id>
 *   env:  CONTRAST_PROJECT_TOKEN = the parent's writer-lock token (the child joins that lock)
 *   child → parent: JobEvent objects (events.ts), the last one { type: 'finished', ... }
 *   parent → child: { type: 'cancel' }
 *
 * Works under Node's child_process.fork (process.send / 'message') and Electron's
 * utilityProcess (process.parentPort). If the parent goes away the run is cancelled, keeping its
 * checkpoint, rather than training on without anyone holding the project's lock.
 */
import os from 'node:os';
import { openProject } from '../store/project.ts';
import type { JobEvent, ParentMessage } from './events.ts';
import { executeRun } from './execute.ts';

interface ParentPort {
  postMessage(message: unknown): void;
  on(event: 'message', listener: (event: { data: unknown }) => void): void;
}

interface Transport {
  send(event: JobEvent): Promise<void>;
  onMessage(listener: (message: ParentMessage) => void): void;
  onParentGone(listener: () => void): void;
  close(): void;
}

function parentTransport(): Transport {
  const port = (process as unknown as { parentPort?: ParentPort }).parentPort;
  if (port) {
    return {
      send: async (event) => port.postMessage(event),
      onMessage: (listener) => port.on('message', (event) => listener(event.data as ParentMessage)),
      onParentGone: () => {}, // Electron ends utility processes together with the app
      close: () => process.exit(0),
    };
  }
  if (!process.send) throw new Error('job_process.ts must be started by a parent process (fork or utilityProcess)');
  return {
    send: (event) => new Promise((resolve) => (process.connected ? process.send!(event, undefined, {}, () => resolve()) : resolve())),
    onMessage: (listener) => process.on('message', (message) => listener(message as ParentMessage)),
    onParentGone: (listener) => process.on('disconnect', listener),
    close: () => process.disconnect(),
  };
}

/**
 * Training takes every core it is given; at a lower priority it still does, but the process that
 * answers the studio and teammates' label calls runs first whenever it has work. Set before the
 * engine starts its worker threads, which inherit it.
 */
const TRAINING_NICENESS = 10;

function yieldToTheServer(): void {
  try {
    os.setPriority(TRAINING_NICENESS);
  } catch {
    // A system that refuses the change trains at normal priority, as before.
  }
}

async function main(): Promise<void> {
  const [projectDir, runIdText] = process.argv.slice(2);
  yieldToTheServer();
  const transport = parentTransport();
  const controller = new AbortController();
  transport.onMessage((message) => {
    if (message?.type === 'cancel') controller.abort();
  });
  transport.onParentGone(() => controller.abort());
  // Ctrl-C in a terminal reaches the whole process group: stop after this step, keeping a checkpoint.
  process.on('SIGINT', () => controller.abort());

  const project = openProject(projectDir);
  let pending = Promise.resolve();
  const emit = (event: JobEvent) => {
    pending = pending.then(() => transport.send(event));
  };
  try {
    await executeRun(project, Number(runIdText), { signal: controller.signal, emit });
  } finally {
    await pending;
    project.close();
    transport.close();
  }
}

await main();
