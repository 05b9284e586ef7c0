/**
 * What each person chose for an image (label_votes) next to the image's final label (labels).
 * The host's choice is final at once; a guest's becomes the final label unless someone else's
 * label is already there, in which case a different choice is a disagreement for review.
 */
import type Database from 'better-sqlite3';
import type { LabelChange } from '../contract/domain.ts';
import { HOST_NAME, type ReviewItem, type TeamActivity } from '../contract/team.ts';
import { labelWriter } from './labels.ts';
import { now } from './project.ts';

export type VoteSource = 'human' | 'suggestion';

export interface VoteEntry {
  imageId: number;
  /** Null takes the vote back. */
  classId: number | null;
}

/**
 * Records one person's choices and updates the final labels. The changes returned undo it:
 * for the host, each image's label before; for a guest, their own vote before.
 */
export function castVotes(db: Database.Database, entries: VoteEntry[], author: string, source: VoteSource): LabelChange[] {
  const writer = labelWriter(db);
  const ownVote = db.prepare('SELECT class_id FROM label_votes WHERE image_id = ? AND author = ?').pluck();
  const labelAuthor = db.prepare('SELECT author FROM labels WHERE image_id = ?').pluck();
  const saveVote = db.prepare(
    `INSERT INTO label_votes (image_id, author, class_id, source, created_at) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT(image_id, author) DO UPDATE SET class_id = excluded.class_id, source = excluded.source, created_at = excluded.created_at`,
  );
  const dropVote = db.prepare('DELETE FROM label_votes WHERE image_id = ? AND author = ?');
  const earliestOther = db.prepare('SELECT class_id AS classId, author, source FROM label_votes WHERE image_id = ? AND author != ? ORDER BY created_at, author LIMIT 1');
  const at = now();
  const isHost = author === HOST_NAME;
  // The last entry for an image wins, as if they were applied one by one.
  const classOf = new Map(entries.map((entry) => [entry.imageId, entry.classId]));
  return db.transaction(() =>
    [...classOf].map(([imageId, classId]) => {
      const previousClassId = isHost ? writer.previous(imageId) : ((ownVote.get(imageId, author) as number | undefined) ?? null);
      if (classId === null) dropVote.run(imageId, author);
      else saveVote.run(imageId, author, classId, source, at);
      const labelledBy = labelAuthor.get(imageId) as string | undefined;
      if (isHost || labelledBy === undefined || labelledBy === author) {
        // Taking back a guest's label hands the image to the next person who voted on it, if any.
        const next = classId === null && !isHost ? (earliestOther.get(imageId, author) as { classId: number; author: string; source: VoteSource } | undefined) : undefined;
        if (next) writer.write(imageId, next.classId, next.source, next.author, at);
        else writer.write(imageId, classId, source, author, at);
      }
      return { imageId, previousClassId };
    }),
  )();
}

/** The images among `imageIds` this person has a vote on. */
export function votedBy(db: Database.Database, imageIds: number[], author: string): Set<number> {
  const has = db.prepare('SELECT 1 FROM label_votes WHERE image_id = ? AND author = ?').pluck();
  return new Set(imageIds.filter((imageId) => has.get(imageId, author) !== undefined));
}

/** Images with exactly one vote, cast by someone other than `author`, outside the test set: candidates for a second opinion. */
export function singleVoteImages(db: Database.Database, author: string): number[] {
  return db
    .prepare(
      `SELECT v.image_id FROM label_votes v JOIN images i ON i.id = v.image_id
       WHERE i.test_set = 0 GROUP BY v.image_id HAVING COUNT(*) = 1 AND MAX(v.author) != ? ORDER BY v.image_id`,
    )
    .pluck()
    .all(author) as number[];
}

/** Images whose votes name different classes and that the host has not settled since the last vote. */
const OPEN_DISAGREEMENTS = `
  SELECT v.image_id FROM label_votes v LEFT JOIN label_reviews r ON r.image_id = v.image_id
  GROUP BY v.image_id
  HAVING COUNT(DISTINCT v.class_id) > 1 AND (MAX(r.resolved_at) IS NULL OR MAX(v.created_at) > MAX(r.resolved_at))`;

export function countDisagreements(db: Database.Database): number {
  return db.prepare(`SELECT COUNT(*) FROM (${OPEN_DISAGREEMENTS})`).pluck().get() as number;
}

export function disagreements(db: Database.Database, limit: number): ReviewItem[] {
  const ids = db.prepare(`${OPEN_DISAGREEMENTS} ORDER BY v.image_id LIMIT ?`).pluck().all(limit) as number[];
  const votes = db.prepare('SELECT author, class_id AS classId FROM label_votes WHERE image_id = ? ORDER BY created_at, author');
  const label = db.prepare('SELECT class_id FROM labels WHERE image_id = ?').pluck();
  return ids.map((imageId) => ({
    imageId,
    labelClassId: (label.get(imageId) as number | undefined) ?? null,
    votes: votes.all(imageId) as { author: string; classId: number }[],
  }));
}

/** The host's final word on a disputed image; the votes stay as they are, its history. */
export function resolveDisagreement(db: Database.Database, imageId: number, classId: number): void {
  const at = now();
  db.transaction(() => {
    labelWriter(db).write(imageId, classId, 'human', HOST_NAME, at);
    db.prepare('INSERT INTO label_reviews (image_id, class_id, resolved_at) VALUES (?, ?, ?) ON CONFLICT(image_id) DO UPDATE SET class_id = excluded.class_id, resolved_at = excluded.resolved_at').run(imageId, classId, at);
  })();
}

export interface SharedVote {
  imageId: number;
  author: string;
  classId: number;
  /** The image's final label, or null when it has none. */
  finalClassId: number | null;
}

/** Every vote on images more than one person labelled: what agreement is measured on. */
export function sharedVotes(db: Database.Database): SharedVote[] {
  return db
    .prepare(
      `SELECT v.image_id AS imageId, v.author, v.class_id AS classId, l.class_id AS finalClassId
       FROM label_votes v LEFT JOIN labels l ON l.image_id = v.image_id
       WHERE v.image_id IN (SELECT image_id FROM label_votes GROUP BY image_id HAVING COUNT(*) > 1)
       ORDER BY v.image_id, v.author`,
    )
    .all() as SharedVote[];
}

/** Each person's vote times, oldest first: their counts and labelling pace. */
export function voteTimes(db: Database.Database): { author: string; createdAt: string }[] {
  return db.prepare('SELECT author, created_at AS createdAt FROM label_votes ORDER BY author, created_at').all() as { author: string; createdAt: string }[];
}

export function votesSince(db: Database.Database, since: string, limit: number): TeamActivity[] {
  return db
    .prepare('SELECT author, image_id AS imageId, class_id AS classId, created_at AS at FROM label_votes WHERE created_at >= ? ORDER BY created_at DESC LIMIT ?')
    .all(since, limit) as TeamActivity[];
}

export function voteCountsSince(db: Database.Database, since: string): Map<string, number> {
  const rows = db.prepare('SELECT author, COUNT(*) AS n FROM label_votes WHERE created_at >= ? GROUP BY author').all(since) as { author: string; n: number }[];
  return new Map(rows.map((row) => [row.author, row.n]));
}
