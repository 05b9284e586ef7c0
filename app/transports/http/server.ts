/**
 * The browser transport: POST /api/<operation> (JSON), a WebSocket at /api/events, images by id,
 * and the built renderer. Binds to 127.0.0.1 only. Every /api/ route needs the session token, in
 * the x-contrast-token header or the HttpOnly cookie that POST /api/session sets (for <img> tags
 * and the WebSocket), never in a URL, where it would leak into history and logs. Requests from
 * another origin (a web page's fetch, form or WebSocket), another Host (DNS rebinding) and POSTs
 * that are not JSON (a cross-site form can send text/plain without asking) are refused, so no other
 * site or local user can drive the project.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { UserError } from '../../contract/errors.ts';
import { mediaOf, uiFileType } from '../../services/images.ts';
import { SESSION_PATH } from '../../contract/operations.ts';
import { dispatch } from '../../services/dispatch.ts';
import type { Handlers } from '../../services/handlers.ts';
import type { Session } from '../../services/session.ts';

export const TOKEN_HEADER = 'x-contrast-token';
/** Room for the largest call, Try it's images: MAX_TRY_IMAGE_BYTES (20 MB) as base64, a third larger, plus its JSON. */
const MAX_BODY_BYTES = 32 * 1024 * 1024;
const HOST = '127.0.0.1';

export interface ServerOptions {
  session: Session;
  handlers: Handlers;
  /** Folder of the built renderer (index.html + assets). */
  staticDir: string;
  port?: number;
  token?: string;
}

export interface RunningServer {
  url: string;
  /** The URL to open: carries the token in the fragment, which browsers never send to servers or in Referer. */
  openUrl: string;
  port: number;
  token: string;
  close(): Promise<void>;
}

function securityHeaders(port: number): Record<string, string> {
  return {
    'Content-Security-Policy': [
      "default-src 'self'",
      "script-src 'self'",
      "style-src 'self'",
      "img-src 'self' data: blob:",
      `connect-src 'self' ws://${HOST}:${port} ws://localhost:${port}`,
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
  const authorised = (request: http.IncomingMessage) =>
    tokenMatches(request.headers[TOKEN_HEADER] as string | undefined) || tokenMatches(cookie(request, cookieName()));
  const ownOrigins = () => [`http://${HOST}:${port}`, `http://localhost:${port}`];
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
    for (const [name, value] of Object.entries(securityHeaders(port))) response.setHeader(name, value);
    if (!hostAllowed(request.headers.host)) return sendJson(response, 421, error('bad_host', 'unexpected Host header'));
    const url = new URL(request.url ?? '/', `http://${HOST}:${port}`);
    const pathname = decoded(url.pathname);
    if (pathname === null) return sendJson(response, 400, error('bad_path', 'the address is malformed: its %-escapes are not valid UTF-8'));
    if (!url.pathname.startsWith('/api/')) return serveStatic(options.staticDir, pathname, request, response);

    const foreign = foreignOrigin(request);
    if (foreign) return sendJson(response, 403, error('cross_origin', foreign));
    if (!authorised(request)) {
      const message = `missing or wrong session token: open the address printed by "contrast serve" (programs send it in the ${TOKEN_HEADER} header, never in the address)`;
      return sendJson(response, 401, error('unauthorized', message));
    }
    // Matched before decoding, so an encoded "/" or ".." can never pass for part of an id.
    const media = /^\/api\/(thumb|image)\/([^/]+)$/.exec(url.pathname);
    if (media) {
      if (request.method !== 'GET' && request.method !== 'HEAD') return sendJson(response, 405, error('bad_method', 'use GET'));
      return serveMedia(options.session, media[1] as 'thumb' | 'image', media[2], response);
    }
    if (request.method !== 'POST') return sendJson(response, 405, error('bad_method', 'operations are called with POST'));
    if (!isJson(request.headers['content-type'])) {
      return sendJson(response, 415, error('bad_content_type', 'operations take a JSON body: send Content-Type: application/json'));
    }
    if (pathname === SESSION_PATH) {
      response.setHeader('Set-Cookie', `${cookieName()}=${token}; Path=/api/; HttpOnly; SameSite=Strict`);
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
    const result = await dispatch(options.handlers, name, input);
    sendJson(response, result.status, 'value' in result ? result.value : { error: result.error });
  }

  /** Why a WebSocket upgrade is refused (status and reason), or null; the same rules as for requests. */
  const upgradeRefusal = (request: http.IncomingMessage): [number, string] | null => {
    if (!hostAllowed(request.headers.host)) return [421, 'Misdirected Request'];
    if (new URL(request.url ?? '/', `http://${HOST}`).pathname !== '/api/events') return [404, 'Not Found'];
    if (foreignOrigin(request)) return [403, 'Forbidden'];
    if (!authorised(request)) return [401, 'Unauthorized'];
    return null;
  };

  server.on('upgrade', (request, socket, head) => {
    const refusal = upgradeRefusal(request);
    if (refusal) {
      socket.end(`HTTP/1.1 ${refusal[0]} ${refusal[1]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    sockets.handleUpgrade(request, socket, head, (ws) => attachEvents(options.session, ws));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (failure: NodeJS.ErrnoException) => {
      if (failure.code === 'EADDRINUSE') reject(new UserError(`port ${options.port} is in use: choose another with --port, or leave it out for any free port`, 'port_in_use'));
      else if (failure.code === 'EACCES') reject(new UserError(`no permission to listen on port ${options.port}: choose one above 1023`));
      else reject(failure);
    });
    server.listen(options.port ?? 0, HOST, () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  const url = `http://${HOST}:${port}/`;
  return {
    url,
    openUrl: `${url}#token=${token}`,
    port,
    token,
    close: async () => {
      for (const client of sockets.clients) client.terminate();
      sockets.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
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

function attachEvents(session: Session, ws: WebSocket): void {
  const unsubscribe = session.onEvent((event) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(event));
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
