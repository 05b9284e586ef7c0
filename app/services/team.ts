/**
 * Label as a team: invitations, who is connected, which images are leased to whom, the overlap
 * setting, agreement and the review queue. Everything runs in the host's one process, so leases
 * and presence live in memory; votes and invitations are kept in the project.
 */
import path from 'node:path';
import { UserError } from '../contract/errors.ts';
import type { ServerEvent } from '../contract/operations.ts';
import { ACTIVITY_MINUTES, authorOf, type Caller, type NewInvitation, type TeamStatus } from '../contract/team.ts';
import { addInvitation, hashToken, invitationsVersion, readInvitations, revokeInvitation } from '../store/invitations.ts';
import { listClasses } from '../store/labels.ts';
import type { Project } from '../store/project.ts';
import { readSetting, writeSetting } from '../store/settings.ts';
import { countDisagreements, disagreements, resolveDisagreement, sharedVotes, singleVoteImages, voteCountsSince, votesSince, voteTimes } from '../store/votes.ts';
import { classAgreements, labellerStats, pairAgreements } from './agreement.ts';
import type { Handlers } from './handlers.ts';
import { requireImages } from './images.ts';
import { requireClassId } from './labels.ts';
import type { Session } from './session.ts';

/** How long images handed out by the queue stay reserved for their labeller. */
export const LEASE_MS = 3 * 60_000;
const OVERLAP_SETTING = 'team.overlap';
const ACTIVITY_ROWS = 50;

/** How the transport serving guests is switched on and off; set by `contrast serve`, absent in the desktop app. */
export interface SharingControl {
  /** The address guests would reach: the machine's LAN address and the server's port. */
  readonly lanUrl: string;
  readonly active: boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export class TeamState {
  sharing: SharingControl | null = null;
  private leases = new Map<number, { holder: string; until: number }>();
  private presence = new Map<string, { sockets: number; lastSeen: number }>();
  private guestsByHash = new Map<string, string>();
  private readVersion: string | null = null;

  constructor(
    private readonly projectDir: () => string | null,
    private readonly changed: () => void,
  ) {}

  /** The teammate an invitation token names in the open project, or null (unknown, revoked, no project). */
  guestFor(token: string): string | null {
    const dir = this.projectDir();
    if (!dir) return null;
    const version = `${dir}|${invitationsVersion(dir)}`;
    if (version !== this.readVersion) {
      this.guestsByHash = new Map(readInvitations(dir).map((entry) => [entry.tokenHash, entry.name]));
      this.readVersion = version;
    }
    return this.guestsByHash.get(hashToken(token)) ?? null;
  }

  /** The images leased to anyone but `holder` that are still reserved. */
  leasedToOthers(holder: string, at = Date.now()): Set<number> {
    const taken = new Set<number>();
    for (const [imageId, lease] of this.leases) {
      if (lease.until <= at) this.leases.delete(imageId);
      else if (lease.holder !== holder) taken.add(imageId);
    }
    return taken;
  }

  lease(imageIds: number[], holder: string, at = Date.now()): void {
    for (const imageId of imageIds) this.leases.set(imageId, { holder, until: at + LEASE_MS });
  }

  /** A labelled image needs no reservation any more. */
  release(imageIds: number[], holder: string): void {
    for (const imageId of imageIds) if (this.leases.get(imageId)?.holder === holder) this.leases.delete(imageId);
  }

  seen(name: string): void {
    const entry = this.presence.get(name) ?? { sockets: 0, lastSeen: 0 };
    entry.lastSeen = Date.now();
    this.presence.set(name, entry);
  }

  socketOpened(name: string): void {
    this.seen(name);
    this.presence.get(name)!.sockets++;
    this.changed();
  }

  socketClosed(name: string): void {
    const entry = this.presence.get(name);
    if (entry) entry.sockets = Math.max(0, entry.sockets - 1);
    this.changed();
  }

  presenceOf(name: string): { connected: boolean; lastSeenAt: string | null } {
    const entry = this.presence.get(name);
    return { connected: (entry?.sockets ?? 0) > 0, lastSeenAt: entry ? new Date(entry.lastSeen).toISOString() : null };
  }

  /** A new project: nothing leased, nobody known. */
  reset(): void {
    this.leases.clear();
    this.presence.clear();
    this.readVersion = null;
  }
}

export function overlapOf(project: Project): number {
  return Number(readSetting(project.db, OVERLAP_SETTING) ?? 0) || 0;
}

/**
 * Images a second person should label too: with overlap f, a fixed fraction f of images (by a
 * hash of the id, so the same ones whatever the order of labelling) is shown to two people.
 */
export function secondOpinionImages(project: Project, holder: string): number[] {
  const overlap = overlapOf(project);
  if (overlap <= 0) return [];
  return singleVoteImages(project.db, holder).filter((imageId) => overlapFraction(imageId) < overlap);
}

function overlapFraction(imageId: number): number {
  return (Math.imul(imageId, 2654435761) >>> 0) / 2 ** 32;
}

/** Makes a personal link for a teammate; the token is returned once and kept only as a hash. */
export function inviteTeammate(project: Project, name: string, baseUrl: string): NewInvitation {
  const token = addInvitation(project.dir, name);
  return { name, token, url: `${baseUrl}#token=${token}` };
}

export function revokeTeammate(project: Project, name: string): boolean {
  return revokeInvitation(project.dir, name);
}

export function teamStatus(session: Session): TeamStatus {
  const project = session.requireProject();
  const since = new Date(Date.now() - ACTIVITY_MINUTES * 60_000).toISOString();
  const recent = voteCountsSince(project.db, since);
  return {
    sharingUrl: session.team.sharing?.active ? session.team.sharing.lanUrl : null,
    overlap: overlapOf(project),
    invitations: readInvitations(project.dir).map((entry) => ({
      name: entry.name,
      createdAt: entry.createdAt,
      ...session.team.presenceOf(entry.name),
      recentLabels: recent.get(entry.name) ?? 0,
    })),
    activity: votesSince(project.db, since, ACTIVITY_ROWS),
  };
}

type TeamOperations = 'team.me' | 'team.status' | 'team.share' | 'team.invite' | 'team.revoke' | 'team.setOverlap' | 'team.agreement' | 'review.list' | 'review.resolve';

export function teamHandlers(session: Session): Pick<Handlers, TeamOperations> {
  const project = () => session.requireProject();
  const sharing = () => {
    if (!session.team.sharing) throw new UserError('sharing with teammates needs the studio served by "contrast serve"', 'not_available');
    return session.team.sharing;
  };
  const changed = () => session.emit({ type: 'team.changed' });
  return {
    async 'team.me'(_input, caller: Caller) {
      return { role: caller.role, name: authorOf(caller) };
    },
    async 'team.status'() {
      return teamStatus(session);
    },
    async 'team.share'({ on }) {
      if (on) await sharing().start();
      else await sharing().stop();
      changed();
      return teamStatus(session);
    },
    async 'team.invite'({ name }) {
      const invitation = inviteTeammate(project(), name, sharing().lanUrl);
      changed();
      return invitation;
    },
    async 'team.revoke'({ name }) {
      const revoked = revokeTeammate(project(), name);
      changed();
      return { revoked };
    },
    async 'team.setOverlap'({ fraction }) {
      writeSetting(project().db, OVERLAP_SETTING, String(fraction));
      changed();
      return teamStatus(session);
    },
    async 'team.agreement'() {
      const { db } = project();
      const shared = sharedVotes(db);
      return { pairs: pairAgreements(shared), perClass: classAgreements(shared), labellers: labellerStats(voteTimes(db), shared), reviewCount: countDisagreements(db) };
    },
    async 'review.list'({ limit }) {
      return { items: disagreements(project().db, limit ?? 100) };
    },
    async 'review.resolve'({ imageId, classId }) {
      requireImages(project(), [imageId]);
      requireClassId(project(), classId);
      resolveDisagreement(project().db, imageId, classId);
      session.emit({ type: 'labels.changed' });
      return { classes: listClasses(project().db) };
    },
  };
}

/**
 * What a guest's WebSocket carries: label changes, the project's name and finished training (so
 * new suggestions show), never a path, an import or a host's error message.
 */
export function eventForGuest(event: ServerEvent): ServerEvent | null {
  switch (event.type) {
    case 'labels.changed':
      return event;
    case 'project.changed':
      return { type: 'project.changed', dir: event.dir === null ? null : path.basename(event.dir) };
    case 'job.finished':
      return { ...event, error: null };
    default:
      return null;
  }
}
