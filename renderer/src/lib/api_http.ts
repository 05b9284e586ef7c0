/**
 * The browser's Api: operations over POST /api/<name>, events over one WebSocket that reconnects
 * by itself. The session token arrives once in the URL fragment (#token=...) and is kept in
 * sessionStorage, so a reload of the tab still works but the token never shows in the address bar.
 * It travels only in a header: the tab trades it for an HttpOnly cookie (POST /api/session), which
 * its <img> tags and WebSocket carry, so no URL ever holds it.
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
} from '../../../app/api/contract.ts';

const TOKEN_KEY = 'contrast.token';
const TOKEN_HEADER = 'x-contrast-token';

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
type SessionOutcome = 'ok' | 'failed';

export class HttpApi implements Api {
  private readonly listeners = new Set<(event: ServerEvent) => void>();
  private readonly stateListeners = new Set<(state: ConnectionState) => void>();
  private socket: WebSocket | null = null;
  private connecting = false;
  private session: Promise<SessionOutcome> | null = null;
  private retryMs = 500;

  constructor(
    private readonly token: string,
    private readonly origin: string,
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
      throw new ApiError('offline', 'The studio server is not reachable. Is "contrast serve" still running?', 0);
    }
    const body = await response.json().catch(() => null);
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
      (response): SessionOutcome => (response.ok ? 'ok' : 'failed'),
      (): SessionOutcome => 'failed',
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
      else this.retryLater();
    });
  }

  private openSocket(): void {
    const socket = new WebSocket(`${this.origin.replace(/^http/, 'ws')}/api/events`);
    this.socket = socket;
    socket.onopen = () => {
      this.retryMs = 500;
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
    socket.onclose = () => {
      this.socket = null;
      // The server may come back as a new run, whose cookie must be set again.
      this.session = null;
      this.retryLater();
    };
  }

  private retryLater(): void {
    this.setState('lost');
    setTimeout(() => this.connect(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, 10_000);
  }
}
