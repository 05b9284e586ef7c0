/**
 * `contrast serve` comes back at the same address: its port and token are kept in the data
 * folder's server.json (readable by this user only, as it holds the token), so a tab left open
 * across a restart reconnects by itself instead of retrying a dead address forever.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../contract/errors.ts';
import { startServer, type RunningServer, type ServerOptions } from './server.ts';

export const SERVER_FILE = 'server.json';

export interface ServerAddress {
  port: number;
  token: string;
}

export interface StartedServer {
  server: RunningServer;
  /** The port of the last run when it was taken and another had to be chosen; null otherwise. */
  movedFrom: number | null;
}

/**
 * Starts the server at the last run's port and token. An explicit `port` must be free; the
 * remembered one may be taken (another program, a second `contrast serve`): then any free port.
 */
export async function startAtSavedAddress(dataDir: string, options: Omit<ServerOptions, 'token'>): Promise<StartedServer> {
  const saved = readServerAddress(dataDir);
  const token = saved?.token;
  let server: RunningServer;
  let movedFrom: number | null = null;
  if (options.port || !saved) {
    server = await startServer({ ...options, token });
  } else {
    try {
      server = await startServer({ ...options, port: saved.port, token });
    } catch (error) {
      if (!(error instanceof UserError && error.code === 'port_in_use')) throw error;
      server = await startServer({ ...options, port: 0, token });
      movedFrom = saved.port;
    }
  }
  writeServerAddress(dataDir, { port: server.port, token: server.token });
  return { server, movedFrom };
}

export function readServerAddress(dataDir: string): ServerAddress | null {
  try {
    const { port, token } = JSON.parse(fs.readFileSync(path.join(dataDir, SERVER_FILE), 'utf8'));
    if (!Number.isInteger(port) || port < 1 || port > 65535) return null;
    if (typeof token !== 'string' || !/^[A-Za-z0-9_-]{32,}$/.test(token)) return null;
    return { port, token };
  } catch {
    return null; // first run, or a file damaged by hand: a new address and token
  }
}

/** Written through a temporary file created 0600, so the token is never readable by others, not even briefly. */
function writeServerAddress(dataDir: string, address: ServerAddress): void {
  fs.mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, SERVER_FILE);
  const temp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(temp, JSON.stringify(address, null, 2) + '\n', { mode: 0o600 });
  fs.renameSync(temp, file);
}
