/**
 * Answers app:// requests with web Responses (what Electron's protocol.handle expects). No
 * electron import: the tests call it with real files and a real core's media replies.
 */
import fs from 'node:fs';
import type { MediaReply } from './core_messages.ts';
import { routeAppRequest, type MediaKind } from './protocol_paths.ts';
import { CONTENT_SECURITY_POLICY } from './security.ts';

export type MediaSource = (media: MediaKind, imageId: number) => Promise<MediaReply>;

const COMMON_HEADERS = {
  'Content-Security-Policy': CONTENT_SECURITY_POLICY,
  'X-Content-Type-Options': 'nosniff',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

export async function serveAppRequest(requestUrl: string, rendererDir: string, readMedia: MediaSource): Promise<Response> {
  const route = routeAppRequest(requestUrl, rendererDir);
  if (route.kind === 'refused') return textResponse(route.status, route.reason);
  if (route.kind === 'media') {
    const reply = await readMedia(route.media, route.imageId);
    if (!reply.ok) return textResponse(reply.status, reply.error.message);
    return new Response(reply.body as Uint8Array<ArrayBuffer>, {
      headers: { ...COMMON_HEADERS, 'Content-Type': reply.contentType, 'Cache-Control': 'private, max-age=3600' },
    });
  }
  let body: Uint8Array<ArrayBuffer>;
  try {
    body = (await fs.promises.readFile(route.file)) as Uint8Array<ArrayBuffer>;
  } catch {
    return textResponse(404, 'not found');
  }
  return new Response(body, { headers: { ...COMMON_HEADERS, 'Content-Type': route.mimeType, 'Cache-Control': 'no-cache' } });
}

function textResponse(status: number, message: string): Response {
  return new Response(message, { status, headers: { ...COMMON_HEADERS, 'Content-Type': 'text/plain; charset=utf-8' } });
}
