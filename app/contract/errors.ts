/**
 * A mistake the user can fix (missing project, bad argument, bad CSV). Front ends show its
 * message as one line, without a stack trace; anything else is a bug and is shown in full.
 */
export class UserError extends Error {
  constructor(message: string, readonly code = 'user_error') {
    super(message);
    this.name = 'UserError';
  }
}
