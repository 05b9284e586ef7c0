/**
 * Runs one operation for a transport: checks the name, validates the input with the contract's
 * schema and turns failures into a status and a readable error body. HTTP and Electron IPC both
 * call this, so both reject the same bad input with the same message.
 */
import * as v from 'valibot';
import { UserError } from '../contract/errors.ts';
import { guestMayCall, operations, type ApiErrorBody, type OperationName } from '../contract/operations.ts';
import { HOST_CALLER, type Caller } from '../contract/team.ts';
import type { Handlers } from './handlers.ts';

export type DispatchResult = { status: 200; value: unknown } | { status: number; error: ApiErrorBody };

/** HTTP status for UserError codes that are not plain bad requests. */
const statusByCode: Record<string, number> = {
  not_found: 404,
  unknown_run: 404,
  unknown_operation: 404,
  no_project: 409,
  project_locked: 409,
  busy: 409,
  forbidden: 403,
  not_available: 501,
};

export function isOperationName(name: string): name is OperationName {
  return Object.hasOwn(operations, name);
}

/** `caller` is who the transport found behind the call: a guest may call only the operations marked for guests. */
export async function dispatch(handlers: Handlers, name: string, rawInput: unknown, caller: Caller = HOST_CALLER): Promise<DispatchResult> {
  if (!isOperationName(name)) {
    return { status: 404, error: { code: 'unknown_operation', message: `unknown operation "${name}"` } };
  }
  if (caller.role === 'guest' && !guestMayCall(name)) {
    return { status: 403, error: { code: 'forbidden', message: `${name} is for the host only: a teammate may browse and label` } };
  }
  const parsed = v.safeParse(operations[name].input, rawInput ?? {});
  if (!parsed.success) {
    return { status: 400, error: { code: 'bad_input', message: `${name}: ${describeIssues(parsed.issues)}` } };
  }
  try {
    const handler = handlers[name] as (input: unknown, caller: Caller) => Promise<unknown>;
    return { status: 200, value: await handler(parsed.output, caller) };
  } catch (error) {
    return failure(name, error);
  }
}

export function failure(name: string, error: unknown): { status: number; error: ApiErrorBody } {
  if (error instanceof UserError) {
    return { status: statusByCode[error.code] ?? 400, error: { code: error.code, message: error.message } };
  }
  console.error(`operation ${name} failed:`, error);
  const message = error instanceof Error ? error.message : String(error);
  return { status: 500, error: { code: 'internal', message: `${name} failed unexpectedly: ${message}` } };
}

function describeIssues(issues: [v.BaseIssue<unknown>, ...v.BaseIssue<unknown>[]]): string {
  return issues
    .slice(0, 3)
    .map((issue) => {
      const where = v.getDotPath(issue);
      return where ? `${where}: ${issue.message}` : issue.message;
    })
    .join('; ');
}
