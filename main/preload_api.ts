/**
 * The main process's side of the preload bridge (app/contract/bridge.ts): every call is checked
 * by the services' own dispatch() before it reaches the core.
 */
import { dispatch } from '../app/services/dispatch.ts';
import type { Handlers } from '../app/services/handlers.ts';
import type { IpcFailure } from '../app/contract/bridge.ts';

export * from '../app/contract/bridge.ts';

/** Every handler answers with its validated input: dispatch() then only checks the call. */
const echoHandlers = new Proxy({} as Handlers, { get: () => async (input: unknown) => input });

/**
 * Checks an operation's name and input before anything reaches the core, through the HTTP
 * server's own dispatch(), so both transports refuse bad input with the same code and message.
 */
export async function validateCall(name: string, input: unknown): Promise<{ ok: true; input: unknown } | IpcFailure> {
  const result = await dispatch(echoHandlers, name, input);
  return 'value' in result ? { ok: true, input: result.value } : { ok: false, status: result.status, error: result.error };
}

