/**
 * Messages between the Electron main process and a window's core process
 * (core_host.utility.ts). Types only, shared by both sides.
 */
import type { ApiErrorBody, ServerEvent } from '../app/contract/operations.ts';
import type { IpcResult } from './preload_api.ts';
import type { MediaKind } from './protocol_paths.ts';

export type MainToCore =
  | { type: 'call'; id: number; name: string; input: unknown }
  | { type: 'media'; id: number; media: MediaKind; imageId: number }
  /** Open the startup project (see startup_project.ts); `requested` comes from argv or the OS. */
  | { type: 'startup'; id: number; requested?: string }
  /** Carries a MessagePort in the transfer list: events go through it straight to the renderer. */
  | { type: 'events-port' }
  | { type: 'shutdown' };

export type MediaReply = { ok: true; contentType: string; body: Uint8Array } | { ok: false; status: number; error: ApiErrorBody };

export type CoreToMain =
  | { type: 'reply'; id: number; result: IpcResult<unknown> }
  | { type: 'media-reply'; id: number; reply: MediaReply }
  /**
   * Sent to the main process for project changes (it tracks which window shows which project)
   * and, when no events port is attached (a plain Node child in tests), for every event.
   */
  | { type: 'event'; event: ServerEvent }
  | { type: 'ready' };
