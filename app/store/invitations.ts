/**
 * Invitations to label as a team, kept in the project folder's team.json rather than in SQLite:
 * `contrast invite` must be able to add or revoke one while `contrast serve` holds the project's
 * writer lock, and the server notices the file change at once. Only a hash of each token is kept,
 * so the file (readable by this user only) cannot be turned back into working links.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { UserError } from '../contract/errors.ts';
import { HOST_NAME } from '../contract/team.ts';
import { now } from './project.ts';

export const INVITATIONS_FILE = 'team.json';

export interface StoredInvitation {
  name: string;
  tokenHash: string;
  createdAt: string;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function readInvitations(projectDir: string): StoredInvitation[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(path.join(projectDir, INVITATIONS_FILE), 'utf8'));
  } catch {
    return []; // none made yet, or a file damaged by hand: no guest gets in
  }
  const list = (parsed as { invitations?: unknown })?.invitations;
  if (!Array.isArray(list)) return [];
  return list.filter((entry): entry is StoredInvitation => typeof entry?.name === 'string' && /^[0-9a-f]{64}$/.test(entry?.tokenHash) && typeof entry?.createdAt === 'string');
}

/** Changes whenever the invitations do, so a server re-reads them only then: each write renames a new file into place. */
export function invitationsVersion(projectDir: string): string {
  const stat = fs.statSync(path.join(projectDir, INVITATIONS_FILE), { throwIfNoEntry: false });
  return stat ? `${stat.ino}:${stat.mtimeMs}:${stat.size}` : 'none';
}

/** Makes a new link for `name`, replacing any earlier one; returns its token, which is kept nowhere. */
export function addInvitation(projectDir: string, name: string): string {
  if (name.toLowerCase() === HOST_NAME) throw new UserError(`"${name}" is the host's own name: pick another for the teammate`, 'bad_name', { name });
  const token = randomBytes(24).toString('base64url');
  const others = readInvitations(projectDir).filter((entry) => !sameName(entry.name, name));
  writeInvitations(projectDir, [...others, { name, tokenHash: hashToken(token), createdAt: now() }]);
  return token;
}

/** Removes the invitation of `name`; false when there was none. */
export function revokeInvitation(projectDir: string, name: string): boolean {
  const all = readInvitations(projectDir);
  const kept = all.filter((entry) => !sameName(entry.name, name));
  if (kept.length === all.length) return false;
  writeInvitations(projectDir, kept);
  return true;
}

/** Names are compared as people read them: "Ana" and "ana" are one teammate. */
function sameName(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/** Through a temporary file created 0600 and renamed, so a reader never sees half a file. */
function writeInvitations(projectDir: string, invitations: StoredInvitation[]): void {
  const file = path.join(projectDir, INVITATIONS_FILE);
  const temp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(temp, JSON.stringify({ invitations }, null, 2) + '\n', { mode: 0o600 });
  fs.renameSync(temp, file);
}
