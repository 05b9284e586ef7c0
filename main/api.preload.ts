/**
 * Preload of a studio window (sandboxed; bundled to CommonJS by main/build_desktop.ts). Exposes
 * one function per contract operation plus onEvent as window.contrastApi, and native folder and
 * image pickers as window.contrastDesktop. Nothing generic: the page cannot name an IPC channel.
 */
import { contextBridge, ipcRenderer } from 'electron';
import { operationNames, type ServerEvent } from '../app/contract/operations.ts';
import {
  BRIDGE_KEY,
  CHOOSE_FOLDER_CHANNEL,
  CHOOSE_IMAGES_CHANNEL,
  DESKTOP_KEY,
  EVENTS_PORT_CHANNEL,
  operationChannel,
  type ContrastBridge,
  type ContrastDesktop,
} from './preload_api.ts';

const listeners = new Set<(event: ServerEvent) => void>();
let eventsPort: MessagePort | null = null;

// The main process sends a fresh port after every page load; events then flow from the core
// process to this page without passing through the main process.
ipcRenderer.on(EVENTS_PORT_CHANNEL, (message) => {
  eventsPort?.close();
  eventsPort = message.ports[0];
  eventsPort.onmessage = (event: MessageEvent<ServerEvent>) => {
    for (const listener of listeners) listener(event.data);
  };
});

const bridge = Object.fromEntries(
  operationNames.map((name) => [name, (input: unknown) => ipcRenderer.invoke(operationChannel(name), input)]),
) as unknown as ContrastBridge;
bridge.onEvent = (listener) => {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
};

const desktop: ContrastDesktop = {
  chooseFolder: (options) => ipcRenderer.invoke(CHOOSE_FOLDER_CHANNEL, options),
  chooseImages: (options) => ipcRenderer.invoke(CHOOSE_IMAGES_CHANNEL, options),
};

contextBridge.exposeInMainWorld(BRIDGE_KEY, bridge);
contextBridge.exposeInMainWorld(DESKTOP_KEY, desktop);
