/**
 * The desktop shell's security policy as plain data and functions (no electron import), so
 * node:test can check it. The Electron glue applies these to every window and request.
 */

/** The UI is served from this privileged scheme, never from file://. */
export const APP_SCHEME = 'app';
export const APP_HOST = 'studio';
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;
export const APP_ENTRY_URL = `${APP_ORIGIN}/index.html`;

/**
 * Scripts and styles only from the app's own files, the same policy `contrast serve` sends, so
 * the UI behaves alike in both. Images come from the app origin (thumbnails by id) or are drawn
 * locally (data:/blob: canvases exported as images).
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "font-src 'self'",
  "connect-src 'self'",
  "worker-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Electron's BrowserWindow webPreferences, following Electron's security checklist. */
export function secureWebPreferences(preloadPath: string) {
  return {
    preload: preloadPath,
    contextIsolation: true,
    sandbox: true,
    nodeIntegration: false,
    nodeIntegrationInWorker: false,
    nodeIntegrationInSubFrames: false,
    webSecurity: true,
    allowRunningInsecureContent: false,
    experimentalFeatures: false,
    webviewTag: false,
    // A file dropped on the window must not replace the studio with that file.
    navigateOnDragDrop: false,
    safeDialogs: true,
  } as const;
}

export type NavigationAction = 'allow' | 'open-external' | 'deny';

/**
 * What to do when the page tries to go to `url`: in-app navigation stays, web links open in
 * the user's browser, anything else (file:, javascript:, other schemes) is refused. New windows
 * are never opened inside the app, not even for app URLs.
 */
export function navigationAction(url: string, kind: 'navigate' | 'new-window'): NavigationAction {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'deny';
  }
  if (isAppOrigin(parsed)) return kind === 'navigate' ? 'allow' : 'deny';
  if ((parsed.protocol === 'https:' || parsed.protocol === 'http:') && !parsed.username && !parsed.password) {
    return 'open-external';
  }
  return 'deny';
}

/** IPC is answered only for the app's own top-level page, never for a frame from elsewhere. */
export function isTrustedSender(frameUrl: string | undefined, isTopFrame: boolean): boolean {
  if (!frameUrl || !isTopFrame) return false;
  try {
    return isAppOrigin(new URL(frameUrl));
  } catch {
    return false;
  }
}

function isAppOrigin(url: URL): boolean {
  return url.protocol === `${APP_SCHEME}:` && url.host.toLowerCase() === APP_HOST;
}
