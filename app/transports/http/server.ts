/**
 * The browser transport: POST /api/<operation> (JSON), a WebSocket at /api/events, images by id,
 * and the built renderer. Binds to 127.0.0.1 only and requires a random per-launch token on every
 * /api/ route, so other local users' pages and processes cannot drive the project.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { UserError } from '../../contract/errors.ts';
import { originalPathOf, thumbnailOf } from '../../services/images.ts';
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

const mimeTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.json': 'application/json',
  '.map': 'application/json',
};

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

  const tokenMatches = (given: string | null | undefined): boolean => {
    if (!given) return false;
    const a = Buffer.from(given);
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
  };
  // A page on another site could reach 127.0.0.1 through DNS rebinding; it would carry its own Host.
  const hostAllowed = (host: string | undefined) => host === `${HOST}:${port}` || host === `localhost:${port}`;

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
    if (!url.pathname.startsWith('/api/')) return serveStatic(options.staticDir, url.pathname, request, response);

    const given = (request.headers[TOKEN_HEADER] as string | undefined) ?? url.searchParams.get('token');
    if (!tokenMatches(given)) {
      return sendJson(response, 401, error('unauthorized', 'missing or wrong session token: open the address printed by "contrast serve"'));
    }
    const media = /^\/api\/(thumb|image)\/([^/]+)$/.exec(url.pathname);
    if (media) {
      if (request.method !== 'GET' && request.method !== 'HEAD') return sendJson(response, 405, error('bad_method', 'use GET'));
      return serveMedia(options.session, media[1] as 'thumb' | 'image', media[2], response);
    }
    if (request.method !== 'POST') return sendJson(response, 405, error('bad_method', 'operations are called with POST'));
    const name = decodeURIComponent(url.pathname.slice('/api/'.length));
    let input: unknown;
    try {
      input = JSON.parse((await readBody(request)) || '{}');
    } catch (failure) {
      return sendJson(response, 400, error('bad_json', `${name}: the request body is not valid JSON (${(failure as Error).message})`));
    }
    const result = await dispatch(options.handlers, name, input);
    sendJson(response, result.status, 'value' in result ? result.value : { error: result.error });
  }

  server.on('upgrade', (request, socket, head) => {
    const url = new URL(request.url ?? '/', `http://${HOST}:${port}`);
    if (url.pathname !== '/api/events' || !hostAllowed(request.headers.host) || !tokenMatches(url.searchParams.get('token'))) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n');
      return;
    }
    sockets.handleUpgrade(request, socket, head, (ws) => attachEvents(options.session, ws));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (failure: NodeJS.ErrnoException) => {
      if (failure.code === 'EADDRINUSE') reject(new UserError(`port ${options.port} is in use: choose another with --port, or leave it out for any free port`));
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
    if (size > MAX_BODY_BYTES) throw new Error(`request body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function imageType(bytes: Buffer): string {
  if (bytes.subarray(0, 4).toString('latin1') === 'RIFF' && bytes.subarray(8, 12).toString('latin1') === 'WEBP') return 'image/webp';
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return 'image/jpeg';
  if (bytes.subarray(1, 4).toString('latin1') === 'PNG') return 'image/png';
  if (bytes.subarray(0, 3).toString('latin1') === 'GIF') return 'image/gif';
  return 'application/octet-stream';
}

/** Images are looked up by id only; a path never comes from the client. */
async function serveMedia(session: Session, kind: 'thumb' | 'image', rawId: string, response: http.ServerResponse): Promise<void> {
  const project = session.project;
  if (!project) return sendJson(response, 409, error('no_project', 'no project is open'));
  if (!/^[1-9]\d{0,15}$/.test(rawId)) return sendJson(response, 400, error('bad_input', `"${rawId}" is not an image id`));
  const imageId = Number(rawId);
  const cache = { 'Cache-Control': 'private, max-age=3600' };
  if (kind === 'thumb') {
    const thumbnail = thumbnailOf(project, imageId);
    if (!thumbnail) return sendJson(response, 404, error('not_found', `no image ${imageId} in this project`));
    response.writeHead(200, { 'Content-Type': imageType(thumbnail), 'Content-Length': thumbnail.length, ...cache });
    response.end(thumbnail);
    return;
  }
  const file = originalPathOf(project, imageId);
  if (!file) return sendJson(response, 404, error('not_found', `no image ${imageId} in this project`));
  let bytes: Buffer;
  try {
    bytes = await fs.promises.readFile(file);
  } catch {
    return sendJson(response, 404, error('file_missing', `the file of image ${imageId} is gone: ${file}`));
  }
  response.writeHead(200, { 'Content-Type': imageType(bytes), 'Content-Length': bytes.length, ...cache });
  response.end(bytes);
}

async function serveStatic(root: string, pathname: string, request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
  if (request.method !== 'GET' && request.method !== 'HEAD') return sendJson(response, 405, error('bad_method', 'use GET'));
  let relative: string;
  try {
    relative = decodeURIComponent(pathname);
  } catch {
    return sendJson(response, 400, error('bad_path', 'malformed path'));
  }
  if (relative === '/') relative = '/index.html';
  const file = path.resolve(root, '.' + relative);
  if (!file.startsWith(path.resolve(root) + path.sep)) return sendJson(response, 404, error('not_found', 'not found'));
  let bytes: Buffer;
  try {
    bytes = await fs.promises.readFile(file);
  } catch {
    return sendJson(response, 404, error('not_found', `not found: ${relative}`));
  }
  const hashed = relative.startsWith('/assets/');
  response.writeHead(200, {
    'Content-Type': mimeTypes[path.extname(file)] ?? 'application/octet-stream',
    'Content-Length': bytes.length,
    'Cache-Control': hashed ? 'public, max-age=31536000, immutable' : 'no-cache',
  });
  response.end(request.method === 'HEAD' ? undefined : bytes);
}
