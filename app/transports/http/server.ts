/**
 * The browser transport: POST /api/<operation> (JSON), a WebSocket at /api/events, images by id,
 * and the built renderer. Binds to 127.0.0.1 only. Every /api/ route needs the session token, in
 * the x-contrast-token header or the HttpOnly cookie that POST /api/session sets (for <img> tags
 * and the WebSocket), never in a URL, where it would leak into history and logs. Requests from
 * another origin (a web page's fetch, form or WebSocket), another Host (DNS rebinding) and POSTs
 * that are not JSON (a cross-site form can send text/plain without asking) are refused, so no other
 * site or local user can drive the project.
 *
 * Sharing with teammates (contrast serve --team, or the studio's Invite teammates) adds a listener
 * on the LAN address. Guests then come in with their own invitation tokens, each answered as that
 * guest (services/dispatch.ts refuses them what is the host's), rate-limited per token, and their
 * WebSockets close the moment their invitation is revoked. The host's token works from this
 * machine only, never over the network.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { UserError } from '../../contract/errors.ts';
import { HOST_CALLER, REVOKED_CLOSE_CODE, type Caller } from '../../contract/team.ts';
import { mediaOf, uiFileType } from '../../services/images.ts';
import { SESSION_PATH, type ServerEvent } from '../../contract/operations.ts';
import { eventForGuest, type SharingControl } from '../../services/team.ts';
import { lanAddress } from './lan_address.ts';
import { RateLimiter } from './rate_limit.ts';
import { dispatch } from '../../services/dispatch.ts';
import type { Handlers } from '../../services/handlers.ts';
import type { Session } from '../../services/session.ts';

export const TOKEN_HEADER = 'x-contrast-token';
/** Room for the largest call, Try it's images: MAX_TRY_IMAGE_BYTES (20 MB) as base64, a third larger, plus its JSON. */
const MAX_BODY_BYTES = 32 * 1024 * 1024;
const HOST = '127.0.0.1';
/** How often open guest WebSockets are checked against the invitations, so a revoked one closes at once. */
const REVOCATION_CHECK_MS = 250;

export interface ServerOptions {
  session: Session;
  handlers: Handlers;
  /** Folder of the built renderer (index.html + assets). */
  staticDir: string;
  port?: number;
  token?: string;
  /** Share with teammates from the start (contrast serve --team). */
  team?: boolean;
  /** Operations one guest link may call: a burst, then so many a second. */
  guestCallLimit?: { burst: number; perSecond: number };
}

/**
 * A labelling tab makes a few calls per keypress (the label, details of the next images, the
 * status); this leaves room for several times a fast labeller and stops a runaway script.
 */
const GUEST_CALL_LIMIT = { burst: 300, perSecond: 100 };

export interface RunningServer {
  url: string;
  /** The URL to open: carries the token in the fragment, which browsers never send to servers or in Referer. */
  openUrl: string;
  port: number;
  token: string;
  /** Switches the teammates' listener on and off; also what the team operations use. */
  sharing: SharingControl;
  close(): Promise<void>;
}

function securityHeaders(port: number, teamHost: string | null): Record<string, string> {
  return {
    'Content-Security-Policy': [
      "default-src 'self'",
      "script-src 'self'",
      "style-src 'self'",
      "img-src 'self' data: blob:",
      `connect-src 'self' ws://${HOST}:${port} ws://localhost:${port}${teamHost ? ` ws://${teamHost}:${port}` : ''}`,
      "font-src 'self'",
      "object-src 'none'",
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join('; '),
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-origin',
    'X-Frame-Options': 'DENY',
  };
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const token = options.token ?? randomBytes(24).toString('base64url');
  const server = http.createServer();
  const sockets = new WebSocketServer({ noServer: true });
  let port = 0;
  // Cookies are scoped by host, not port: the port in the name keeps two servers' cookies apart.
  const cookieName = () => `contrast-token-${port}`;

  const tokenMatches = (given: string | null | undefined): boolean => {
    if (!given) return false;
    const a = Buffer.from(given);
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
  };
  let teamHost: string | null = null;
  let lanServer: http.Server | null = null;
  const callLimit = options.guestCallLimit ?? GUEST_CALL_LIMIT;
  const operationLimits = new RateLimiter(callLimit.burst, callLimit.perSecond);
  const mediaLimits = new RateLimiter(1000, 500);
  const guestSockets = new Map<WebSocket, { token: string; name: string }>();

  /** Who is behind a request: the host (its token, from this machine only), a guest while sharing, or nobody. */
  const identify = (request: http.IncomingMessage): { caller: Caller; token: string } | null => {
    for (const given of [request.headers[TOKEN_HEADER] as string | undefined, cookie(request, cookieName())]) {
      if (!given) continue;
      if (tokenMatches(given)) return isLoopback(request.socket.remoteAddress) ? { caller: HOST_CALLER, token: given } : null;
      const name = teamHost ? options.session.team.guestFor(given) : null;
      if (name) return { caller: { role: 'guest', name }, token: given };
    }
    return null;
  };
  const ownOrigins = () => [`http://${HOST}:${port}`, `http://localhost:${port}`, ...(teamHost ? [`http://${teamHost}:${port}`] : [])];
  // A page on another site could reach 127.0.0.1 through DNS rebinding; it would carry its own Host.
  const hostAllowed = (host: string | undefined) => ownOrigins().includes(`http://${host}`);
  /** Why a request comes from somewhere other than our own page, or null. Clients without a browser send neither header. */
  const foreignOrigin = (request: http.IncomingMessage): string | null => {
    const origin = request.headers.origin;
    if (origin !== undefined && !ownOrigins().includes(origin)) return `requests from ${origin.slice(0, 100)} are refused: only the studio's own page may call it`;
    const site = request.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') return `${site} requests are refused: only the studio's own page may call it`;
    return null;
  };

  server.on('request', (request, response) => {
    handleRequest(request, response).catch((error) => {
      console.error('request failed:', error);
      if (!response.headersSent) sendJson(response, 500, { error: { code: 'internal', message: String(error?.message ?? error) } });
      else response.destroy();
    });
  });

  async function handleRequest(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    for (const [name, value] of Object.entries(securityHeaders(port, teamHost))) response.setHeader(name, value);
    if (!hostAllowed(request.headers.host)) return sendJson(response, 421, error('bad_host', 'unexpected Host header'));
    const url = new URL(request.url ?? '/', `http://${HOST}:${port}`);
    const pathname = decoded(url.pathname);
    if (pathname === null) return sendJson(response, 400, error('bad_path', 'the address is malformed: its %-escapes are not valid UTF-8'));
    if (!url.pathname.startsWith('/api/')) return serveStatic(options.staticDir, pathname, request, response);

    const foreign = foreignOrigin(request);
    if (foreign) return sendJson(response, 403, error('cross_origin', foreign));
    const who = identify(request);
    if (!who) {
      const message = `missing or wrong session token: open the address printed by "contrast serve" (programs send it in the ${TOKEN_HEADER} header, never in the address)`;
      return sendJson(response, 401, error('unauthorized', message));
    }
    // Matched before decoding, so an encoded "/" or ".." can never pass for part of an id.
    const media = /^\/api\/(thumb|image)\/([^/]+)$/.exec(url.pathname);
    if (who.caller.role === 'guest') {
      options.session.team.seen(who.caller.name);
      if (!(media ? mediaLimits : operationLimits).take(who.token)) {
        response.setHeader('Retry-After', '1');
        return sendJson(response, 429, error('rate_limited', 'too many requests from this link: slow down a little'));
      }
    }
    if (media) {
      if (request.method !== 'GET' && request.method !== 'HEAD') return sendJson(response, 405, error('bad_method', 'use GET'));
      return serveMedia(options.session, media[1] as 'thumb' | 'image', media[2], response);
    }
    if (request.method !== 'POST') return sendJson(response, 405, error('bad_method', 'operations are called with POST'));
    if (!isJson(request.headers['content-type'])) {
      return sendJson(response, 415, error('bad_content_type', 'operations take a JSON body: send Content-Type: application/json'));
    }
    if (pathname === SESSION_PATH) {
      response.setHeader('Set-Cookie', `${cookieName()}=${who.token}; Path=/api/; HttpOnly; SameSite=Strict`);
      return sendJson(response, 200, { ok: true });
    }
    const name = pathname.slice('/api/'.length);
    let body: string;
    try {
      body = await readBody(request);
    } catch (failure) {
      if (!(failure instanceof UserError)) throw failure;
      response.setHeader('Connection', 'close');
      return sendJson(response, 413, error(failure.code, `${name}: ${failure.message}`));
    }
    let input: unknown;
    try {
      input = JSON.parse(body || '{}');
    } catch (failure) {
      return sendJson(response, 400, error('bad_json', `${name}: the request body is not valid JSON (${(failure as Error).message})`));
    }
    const result = await dispatch(options.handlers, name, input, who.caller);
    sendJson(response, result.status, 'value' in result ? result.value : { error: result.error });
  }

  /** Why a WebSocket upgrade is refused (status and reason), or null; the same rules as for requests. */
  const upgradeRefusal = (request: http.IncomingMessage): [number, string] | null => {
    if (!hostAllowed(request.headers.host)) return [421, 'Misdirected Request'];
    if (new URL(request.url ?? '/', `http://${HOST}`).pathname !== '/api/events') return [404, 'Not Found'];
    if (foreignOrigin(request)) return [403, 'Forbidden'];
    if (!identify(request)) return [401, 'Unauthorized'];
    return null;
  };

  const onUpgrade = (request: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const refusal = upgradeRefusal(request);
    const who = refusal ? null : identify(request);
    if (!who) {
      const [status, reason] = refusal ?? [401, 'Unauthorized'];
      socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    sockets.handleUpgrade(request, socket, head, (ws) => {
      if (who.caller.role === 'host') return attachEvents(options.session, ws, (event) => event);
      const name = who.caller.name;
      guestSockets.set(ws, { token: who.token, name });
      options.session.team.socketOpened(name);
      ws.on('close', () => {
        guestSockets.delete(ws);
        options.session.team.socketClosed(name);
      });
      attachEvents(options.session, ws, eventForGuest);
    });
  };
  server.on('upgrade', onUpgrade);

  /** Closes every guest socket whose invitation was revoked (or whose sharing stopped) since it opened. */
  const closeRevoked = () => {
    for (const [ws, { token: given, name }] of guestSockets) {
      if (teamHost && options.session.team.guestFor(given) === name) continue;
      guestSockets.delete(ws);
      ws.close(REVOKED_CLOSE_CODE, 'invitation revoked');
      setTimeout(() => ws.terminate(), 1000).unref();
    }
  };
  const revocationTimer = setInterval(closeRevoked, REVOCATION_CHECK_MS);
  revocationTimer.unref();

  await listen(server, options.port ?? 0, HOST, options.port);
  port = (server.address() as AddressInfo).port;

  const sharing: SharingControl = {
    get lanUrl() {
      return `http://${teamHost ?? lanAddress()}:${port}/`;
    },
    get active() {
      return teamHost !== null;
    },
    async start() {
      if (teamHost) return;
      const address = lanAddress();
      // On loopback (tests, CONTRAST_TEAM_ADDRESS=127.0.0.1) the host's own listener serves guests too.
      if (address !== HOST) {
        const listener = http.createServer();
        listener.on('request', (request, response) => server.emit('request', request, response));
        listener.on('upgrade', onUpgrade);
        await listen(listener, port, address, port);
        lanServer = listener;
      }
      teamHost = address;
    },
    async stop() {
      teamHost = null;
      closeRevoked();
      const listener = lanServer;
      lanServer = null;
      if (listener) {
        listener.closeAllConnections();
        await new Promise<void>((resolve) => listener.close(() => resolve()));
      }
    },
  };
  options.session.team.sharing = sharing;
  if (options.team) await sharing.start();

  const url = `http://${HOST}:${port}/`;
  return {
    url,
    openUrl: `${url}#token=${token}`,
    port,
    token,
    sharing,
    close: async () => {
      clearInterval(revocationTimer);
      await sharing.stop();
      if (options.session.team.sharing === sharing) options.session.team.sharing = null;
      for (const client of sockets.clients) client.terminate();
      sockets.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function listen(server: http.Server, port: number, host: string, asked: number | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', (failure: NodeJS.ErrnoException) => {
      if (failure.code === 'EADDRINUSE') reject(new UserError(`port ${asked} is in use: choose another with --port, or leave it out for any free port`, 'port_in_use'));
      else if (failure.code === 'EACCES') reject(new UserError(`no permission to listen on port ${asked}: choose one above 1023`));
      else if (failure.code === 'EADDRNOTAVAIL') reject(new UserError(`this machine has no address ${host} to listen on`, 'no_network'));
      else reject(failure);
    });
    server.listen(port, host, () => resolve());
  });
}

function isLoopback(address: string | undefined): boolean {
  return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1';
}

/** A URL path with its %-escapes decoded, or null when they are not valid UTF-8. */
function decoded(urlPath: string): string | null {
  try {
    return decodeURIComponent(urlPath);
  } catch {
    return null;
  }
}

function cookie(request: http.IncomingMessage, name: string): string | undefined {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return value.join('=');
  }
  return undefined;
}

function isJson(contentType: string | undefined): boolean {
  return contentType?.split(';')[0].trim().toLowerCase() === 'application/json';
}

/** Forwards the session's events to one socket, as `view` shows them to its caller (null: not for them). */
function attachEvents(session: Session, ws: WebSocket, view: (event: ServerEvent) => ServerEvent | null): void {
  const unsubscribe = session.onEvent((event) => {
    const shown = view(event);
    if (shown && ws.readyState === ws.OPEN) ws.send(JSON.stringify(shown));
  });
  ws.on('close', unsubscribe);
  ws.on('error', unsubscribe);
}

function error(code: string, message: string) {
  return { error: { code, message } };
}

function sendJson(response: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
  response.end(text);
}

async function readBody(request: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new UserError(`the request body is over ${MAX_BODY_BYTES / 2 ** 20} MB: send fewer images per call`, 'too_large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Images are looked up by id only; a path never comes from the client. */
async function serveMedia(session: Session, kind: 'thumb' | 'image', rawId: string, response: http.ServerResponse): Promise<void> {
  const project = session.project;
  if (!project) return sendJson(response, 409, error('no_project', 'no project is open'));
  if (!/^[1-9]\d{0,15}$/.test(rawId)) return sendJson(response, 400, error('bad_input', `"${rawId.slice(0, 40)}" is not an image id`));
  const media = await mediaOf(project, kind, Number(rawId));
  if (!media.ok) return sendJson(response, media.status, { error: media.error });
  response.writeHead(200, { 'Content-Type': media.contentType, 'Content-Length': media.body.length, 'Cache-Control': 'private, max-age=3600' });
  response.end(media.body);
}

async function serveStatic(root: string, pathname: string, request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
  if (request.method !== 'GET' && request.method !== 'HEAD') return sendJson(response, 405, error('bad_method', 'use GET'));
  const relative = pathname === '/' ? '/index.html' : pathname;
  const file = path.resolve(root, '.' + relative);
  const type = uiFileType(path.extname(file));
  if (!file.startsWith(path.resolve(root) + path.sep) || !type) return sendJson(response, 404, error('not_found', 'not found'));
  let bytes: Buffer;
  try {
    bytes = await fs.promises.readFile(file);
  } catch {
    return sendJson(response, 404, error('not_found', `not found: ${relative.slice(0, 200)}`));
  }
  const hashed = relative.startsWith('/assets/');
  response.writeHead(200, {
    'Content-Type': type,
    'Content-Length': bytes.length,
    'Cache-Control': hashed ? 'public, max-age=31536000, immutable' : 'no-cache',
  });
  response.end(request.method === 'HEAD' ? undefined : bytes);
}
