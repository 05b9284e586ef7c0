/**
 * A studio window's core: the project session (store, writer lock, jobs) and the operation
 * handlers, in their own process so a crash here never takes the window down with it.
 *
 * Runs as an Electron utility process (messages through process.parentPort, events straight
 * to the renderer through a transferred MessagePort) or as a plain Node child started with
 * fork(..., { serialization: 'advanced' }) (messages and events through the IPC channel),
 * which is how the tests drive it without Electron.
 */
import type { ServerEvent } from '../app/contract/operations.ts';
import { dispatch, failure } from '../app/services/dispatch.ts';
import { createHandlers } from '../app/services/handlers.ts';
import { Session } from '../app/services/session.ts';
import { mediaOf } from '../app/services/images.ts';
import type { SharingControl } from '../app/services/team.ts';
import { UserError } from '../app/contract/errors.ts';
import { startServer, type RunningServer } from '../app/transports/http/server.ts';
import type { CoreToMain, MainToCore, MediaReply } from './core_messages.ts';
import { bundledJobLauncher } from './job_launcher.ts';
import type { IpcResult } from './preload_api.ts';
import { openStartupProject } from './startup_project.ts';

/** The part of Electron's MessagePortMain this file uses. */
interface EventPort {
  postMessage(message: unknown): void;
  on(event: 'close', listener: () => void): void;
  start(): void;
}

interface ParentChannel {
  send(message: CoreToMain): void;
  onMessage(listener: (message: MainToCore, ports: EventPort[]) => void): void;
}

function parentChannel(): ParentChannel {
  const parentPort = (process as { parentPort?: NodeJS.EventEmitter & { postMessage(m: unknown): void } }).parentPort;
  if (parentPort) {
    return {
      send: (message) => parentPort.postMessage(message),
      onMessage: (listener) => parentPort.on('message', (event: { data: MainToCore; ports: EventPort[] }) => listener(event.data, event.ports)),
    };
  }
  if (process.send) {
    return {
      send: (message) => process.send!(message),
      onMessage: (listener) => process.on('message', (message) => listener(message as MainToCore, [])),
    };
  }
  throw new Error('the core host runs as an Electron utility process or a forked Node child, not on its own');
}

const parent = parentChannel();
// The Electron main process names the bundled job entry; without it (tests) jobs start the
// runner's default way, from the TypeScript entry through tsx.
const jobEntry = process.argv[2];
// The built studio page, which teammates load over HTTP once the host shares the project.
const rendererDir = process.argv[3];
const session = new Session({ launcher: jobEntry ? bundledJobLauncher(jobEntry) : undefined });
const handlers = createHandlers(session);
let served: RunningServer | null = null;
if (rendererDir) session.team.sharing = shareOnDemand(rendererDir);
const eventPorts = new Set<EventPort>();

session.onEvent((event: ServerEvent) => {
  if (eventPorts.size === 0 || event.type === 'project.changed') parent.send({ type: 'event', event });
  for (const port of eventPorts) port.postMessage(event);
});

parent.onMessage((message, ports) => {
  switch (message.type) {
    case 'call':
      void dispatch(handlers, message.name, message.input).then((result) => {
        const reply: IpcResult<unknown> = 'value' in result ? { ok: true, value: result.value } : { ok: false, status: result.status, error: result.error };
        parent.send({ type: 'reply', id: message.id, result: reply });
      });
      return;
    case 'media':
      void readMedia(message.media, message.imageId).then((reply) => parent.send({ type: 'media-reply', id: message.id, reply }));
      return;
    case 'startup':
      parent.send({ type: 'reply', id: message.id, result: startup(message.requested) });
      return;
    case 'events-port':
      for (const port of ports) {
        eventPorts.add(port);
        port.on('close', () => eventPorts.delete(port));
        port.start();
      }
      return;
    case 'shutdown':
      shutdown();
  }
});

/**
 * "Invite teammates" in the desktop app: the window talks to this process over IPC, so nothing
 * listens until the host starts sharing. Then the same HTTP transport as `contrast serve`
 * starts here, on this session, and guests reach it on the LAN address while the host keeps IPC.
 */
function shareOnDemand(staticDir: string): SharingControl {
  const control: SharingControl = {
    get lanUrl() {
      if (!served) throw new UserError('share the project first (Invite teammates → Start sharing)', 'not_sharing');
      return served.sharing.lanUrl;
    },
    get active() {
      return served?.sharing.active ?? false;
    },
    async start() {
      served ??= await startServer({ session, handlers, staticDir });
      session.team.sharing = control; // startServer installed its own; this one stays in charge
      await served.sharing.start();
    },
    async stop() {
      await served?.sharing.stop();
    },
  };
  return control;
}

/** Releases the project's writer lock, stops a running job and any sharing before the process goes. */
function shutdown(): never {
  void served?.close();
  session.dispose();
  process.exit(0);
}
// A forked Node child outlives a parent that died without saying goodbye; a utility process does not.
process.on('disconnect', shutdown);

function startup(requested: string | undefined): IpcResult<unknown> {
  try {
    return { ok: true, value: openStartupProject(session, requested) };
  } catch (error) {
    return { ok: false, ...failure('startup', error) };
  }
}

/** Images by id only, checked as contrast serve checks them (app/media/serve_original.ts); never a path from the page. */
async function readMedia(kind: 'thumb' | 'image', imageId: number): Promise<MediaReply> {
  const project = session.project;
  if (!project) return { ok: false, status: 409, error: { code: 'no_project', message: 'no project is open' } };
  return mediaOf(project, kind, imageId);
}

parent.send({ type: 'ready' });
