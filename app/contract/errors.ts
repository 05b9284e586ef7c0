/**
 * A mistake the user can fix (missing project, bad argument, bad CSV). `code` is stable for
 * programs and `values` holds what the message speaks of, so each front end can word the advice
 * for its own users (a flag on the command line, a button in the studio); the message itself is
 * plain and front-end neutral. Anything that is not a UserError is a bug and is shown in full.
 */
export class UserError extends Error {
  constructor(
    message: string,
    readonly code = 'user_error',
    readonly values: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'UserError';
  }
}
