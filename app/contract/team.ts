/**
 * Label as a team: who is calling (the host at the machine, or a guest through an invitation)
 * and the shapes the team operations answer with. No Node imports: the renderer reads these too.
 */

/** The author name of every label the host sets (studio, command line, import). Guests cannot take it. */
export const HOST_NAME = 'host';

/** Who makes a call. The transport decides from the token; the services decide what each may do. */
export type Caller = { role: 'host' } | { role: 'guest'; name: string };
export const HOST_CALLER: Caller = { role: 'host' };

export function authorOf(caller: Caller): string {
  return caller.role === 'host' ? HOST_NAME : caller.name;
}

/** Shown to guests when the host's studio stops answering. */
export const HOST_STOPPED_MESSAGE = 'The host stopped sharing. Every label you confirmed is saved; open your link again when the host shares again.';

export interface Invitation {
  name: string;
  createdAt: string;
  /** Open WebSockets of this guest right now. */
  connected: boolean;
  lastSeenAt: string | null;
  /** Labels this guest set in the last ACTIVITY_MINUTES minutes. */
  recentLabels: number;
}

export interface NewInvitation {
  name: string;
  /** The personal link: the token travels in the fragment, which browsers never send to servers. */
  url: string;
  token: string;
}

export interface TeamActivity {
  author: string;
  imageId: number;
  classId: number;
  at: string;
}

export interface TeamStatus {
  /** The address guests reach, or null while the studio listens on 127.0.0.1 only. */
  sharingUrl: string | null;
  /** Fraction of images handed to a second labeller, 0..0.5. */
  overlap: number;
  invitations: Invitation[];
  /** The latest labels of everyone, newest first, from the last ACTIVITY_MINUTES minutes. */
  activity: TeamActivity[];
}

export const ACTIVITY_MINUTES = 10;

/** WebSocket close code telling a guest tab its invitation is gone (4000-4999 are the application's). */
export const REVOKED_CLOSE_CODE = 4003;
export const REVOKED_MESSAGE = 'The host revoked this link: ask them for a new one. Every label you confirmed is saved.';

/** Cohen's κ between two labellers over the images both labelled. */
export interface PairAgreement {
  a: string;
  b: string;
  images: number;
  /** Fraction of shared images given the same class. */
  observed: number;
  /** Null when chance agreement is 1 (both used one class only), where κ is undefined. */
  kappa: number | null;
}

/** Specific agreement for one class: of the votes for it on images with two or more votes, how many were matched by the other labeller. */
export interface ClassAgreement {
  classId: number;
  agreement: number;
  votes: number;
}

export interface LabellerStats {
  author: string;
  labels: number;
  /** Labels per minute of active time (gaps over five minutes are breaks and do not count). */
  perMinute: number;
  /** Of this labeller's votes on images that more than one person labelled, the fraction that match the final label; null when none. */
  agreementWithFinal: number | null;
}

export interface TeamAgreement {
  pairs: PairAgreement[];
  perClass: ClassAgreement[];
  labellers: LabellerStats[];
  /** Images waiting for the host to settle a disagreement. */
  reviewCount: number;
}

export interface ReviewItem {
  imageId: number;
  labelClassId: number | null;
  votes: { author: string; classId: number }[];
}
