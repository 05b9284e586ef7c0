/**
 * The browser's Api: operations over POST /api/<name>, events over one WebSocket that reconnects
 * by itself. The session token arrives once in the URL fragment (#token=...) and is kept in
 * sessionStorage, so a reload of the tab still works but the token never shows in the address bar.
 * It travels only in a header: the tab trades it for an HttpOnly cookie (POST /api/session), which
 * its <img> tags and WebSocket carry, so no URL ever holds it.
 *
 * A restarted `contrast serve` comes back at the same address with the same token, and the tab
 * reconnects. When it cannot (the port was taken, the token changed), the tab says so.
 */
import {
  ApiError,
  SESSION_PATH,
  mediaPath,
  type Api,
  type Input,
  type OperationName,
  type Output,
  type ServerEvent,
} from '../../../app/contract/operations.ts';
import { REVOKED_CLOSE_CODE, REVOKED_MESSAGE } from '../../../app/contract/team.ts';

const TOKEN_KEY = 'contrast.token';
const TOKEN_HEADER = 'x-contrast-token';
/** How long the server may be unreachable before the tab says it may have moved. */
const MOVED_AFTER_MS = 20_000;
export const MOVED_MESSAGE =
  'The studio restarted at a new address, or with a new token: open the address "contrast serve" printed.';
export const UNREACHABLE_MESSAGE =
  'The studio server is not answering at this address. If it was restarted, it may be at a new address: open the one "contrast serve" printed.';

/** Reads the token from the fragment (and removes it from the address bar) or from an earlier visit. */
export function takeToken(location: Location, history: History, storage: Storage): string | null {
  const match = /(?:^#|[#&])token=([A-Za-z0-9_-]+)/.exec(location.hash);
  if (match) {
    storage.setItem(TOKEN_KEY, match[1]);
    const rest = location.hash.replace(/[#&]?token=[A-Za-z0-9_-]+/, '');
    history.replaceState(null, '', location.pathname + location.search + (rest ? (rest.startsWith('#') ? rest : `#${rest}`) : ''));
    return match[1];
  }
  return storage.getItem(TOKEN_KEY);
}

export type ConnectionState = 'connecting' | 'open' | 'lost';
/** 'refused': the server answers but no longer knows this token. */
type SessionOutcome = 'ok' | 'refused' | 'offline';

export class HttpApi implements Api {
  private readonly listeners = new Set<(event: ServerEvent) => void>();
  private readonly stateListeners = new Set<(state: ConnectionState) => void>();
  private socket: WebSocket | null = null;
  private connecting = false;
  private session: Promise<SessionOutcome> | null = null;
  private retryMs = 500;
  private lostSince: number | null = null;

  constructor(
    private readonly token: string,
    private readonly origin: string,
    /** Shows why the connection is gone for good (null: it is back). */
    private readonly showProblem: (message: string | null) => void = showBanner,
  ) {}

  async call<N extends OperationName>(name: N, input: Input<N>): Promise<Output<N>> {
    // The header alone authorises a call, but its answer may list images whose <img> tags need the cookie.
    await this.openSession();
    let response: Response;
    try {
      response = await fetch(`${this.origin}/api/${name}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [TOKEN_HEADER]: this.token },
        body: JSON.stringify(input),
      });
    } catch {
      throw new ApiError('offline', UNREACHABLE_MESSAGE, 0);
    }
    const body = await response.json().catch(() => null);
    if (response.status === 401) throw new ApiError('moved', MOVED_MESSAGE, 401);
    if (!response.ok) {
      const error = body?.error;
      throw new ApiError(error?.code ?? `http_${response.status}`, error?.message ?? `${name} failed (HTTP ${response.status})`, response.status);
    }
    return body as Output<N>;
  }

  onEvent(listener: (event: ServerEvent) => void): () => void {
    this.listeners.add(listener);
    this.connect();
    return () => this.listeners.delete(listener);
  }

  onConnection(listener: (state: ConnectionState) => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /** Carries no token: the session cookie authorises it. */
  mediaUrl(kind: 'thumb' | 'image', imageId: number, projectKey: string): string {
    return `${this.origin}${mediaPath(kind, imageId)}?p=${projectKey}`;
  }

  /** Sets the session cookie, once per server run; a failed attempt is tried again on the next call. */
  private openSession(): Promise<SessionOutcome> {
    this.session ??= fetch(`${this.origin}${SESSION_PATH}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [TOKEN_HEADER]: this.token },
      body: '{}',
      credentials: 'same-origin',
    }).then(
      (response): SessionOutcome => (response.ok ? 'ok' : response.status === 401 ? 'refused' : 'offline'),
      (): SessionOutcome => 'offline',
    );
    const session = this.session;
    void session.then((outcome) => {
      if (outcome !== 'ok' && this.session === session) this.session = null;
    });
    return session;
  }

  private setState(state: ConnectionState): void {
    for (const listener of this.stateListeners) listener(state);
  }

  private connect(): void {
    if (this.socket || this.connecting) return;
    this.connecting = true;
    this.setState('connecting');
    void this.openSession().then((outcome) => {
      this.connecting = false;
      if (outcome === 'ok') this.openSocket();
      else this.retryLater(outcome);
    });
  }

  private openSocket(): void {
    const socket = new WebSocket(`${this.origin.replace(/^http/, 'ws')}/api/events`);
    this.socket = socket;
    socket.onopen = () => {
      this.retryMs = 500;
      this.lostSince = null;
      this.showProblem(null);
      this.setState('open');
    };
    socket.onmessage = (message) => {
      let event: ServerEvent;
      try {
        event = JSON.parse(String(message.data));
      } catch {
        return; // not ours
      }
      for (const listener of this.listeners) listener(event);
    };
    socket.onclose = (event) => {
      this.socket = null;
      // A revoked invitation will not come back by retrying: say so and stay quiet.
      if (event.code === REVOKED_CLOSE_CODE) {
        this.setState('lost');
        return this.showProblem(REVOKED_MESSAGE);
      }
      // The server may come back as a new run: its cookie must be set again, or it may refuse our token.
      this.session = null;
      this.retryLater('offline');
    };
  }

  private retryLater(outcome: Exclude<SessionOutcome, 'ok'>): void {
    this.setState('lost');
    this.lostSince ??= Date.now();
    if (outcome === 'refused') this.showProblem(MOVED_MESSAGE);
    else if (Date.now() - this.lostSince >= MOVED_AFTER_MS) this.showProblem(UNREACHABLE_MESSAGE);
    setTimeout(() => this.connect(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, 10_000);
  }
}

/** A banner above the studio, for what its own "connection lost" notice cannot say. */
function showBanner(message: string | null): void {
  let banner = document.getElementById('connection-problem');
  if (!message) return banner?.remove();
  if (!banner) {
    banner = document.createElement('div');
    banner.id = 'connection-problem';
    banner.className = 'notice bad';
    banner.setAttribute('role', 'alert');
    Object.assign(banner.style, { position: 'fixed', top: '12px', left: '50%', transform: 'translateX(-50%)', zIndex: '1000', maxWidth: '640px', background: 'var(--panel-2)' });
    document.body.append(banner);
  }
  banner.textContent = message;
}
