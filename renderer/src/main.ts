import { mount } from 'svelte';
import { mediaPath } from '../../app/contract/operations.ts';
import { BRIDGE_KEY, DESKTOP_KEY, createIpcApi, type ContrastBridge, type ContrastDesktop } from '../../app/contract/bridge.ts';
import App from './App.svelte';
import { HttpApi, takeToken } from './lib/api_http.ts';
import { studio, type Backend } from './lib/studio.svelte.ts';
import './app.css';

/** Electron's preload defines the bridge; a browser tab talks to `contrast serve` over HTTP. */
function pickBackend(): Backend | string {
  const globals = window as unknown as Record<string, unknown>;
  const bridge = globals[BRIDGE_KEY] as ContrastBridge | undefined;
  if (bridge) {
    const desktop = globals[DESKTOP_KEY] as ContrastDesktop | undefined;
    return {
      api: createIpcApi(bridge),
      // The desktop shell answers the same /api/thumb and /api/image paths on its own origin.
      mediaUrl: (kind, imageId, key) => `${mediaPath(kind, imageId)}?p=${key}`,
      chooseFolder: desktop ? (title) => desktop.chooseFolder({ title }) : undefined,
      chooseImages: desktop ? (title) => desktop.chooseImages({ title }) : undefined,
    };
  }
  const token = takeToken(location, history, sessionStorage);
  if (!token) return 'This page needs the address printed by "contrast serve" (it ends with #token=…). Open that address again.';
  const api = new HttpApi(token, location.origin);
  return {
    api,
    mediaUrl: (kind, imageId, key) => api.mediaUrl(kind, imageId, key),
    onConnection: (listener) => api.onConnection(listener),
  };
}

const backend = pickBackend();
const target = document.getElementById('app')!;
if (typeof backend === 'string') {
  const message = document.createElement('p');
  message.className = 'fatal';
  message.textContent = backend;
  target.append(message);
} else {
  studio.start(backend);
  mount(App, { target });
}
