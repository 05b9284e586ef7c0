import { UserError } from '../contract/errors.ts';
import { shortenPath } from './file_paths.ts';

/** A write failed for want of space: ENOSPC from Node's fs, SQLITE_FULL from SQLite. */
export function isDiskFull(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ENOSPC' || code === 'SQLITE_FULL';
}

/** One line for a full disk: where, what became of the user's data, what to do. */
export function diskFullError(dir: string, consequence: string, retry: string): UserError {
  return new UserError(`the disk holding ${shortenPath(dir)} is full: ${consequence}; free some space, then ${retry}`, 'disk_full');
}
