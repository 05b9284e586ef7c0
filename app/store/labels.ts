import type { ClassInfo, LabelChange, LabelSource, Split } from '../contract/domain.ts';
import type Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { UserError } from '../contract/errors.ts';
import { now } from './project.ts';


export function listClasses(db: Database.Database): ClassInfo[] {
  return db
    .prepare(
      `SELECT c.id, c.name, COUNT(l.image_id) AS labels
       FROM classes c LEFT JOIN labels l ON l.class_id = c.id GROUP BY c.id ORDER BY c.name COLLATE NOCASE`,
    )
    .all() as ClassInfo[];
}

/** Device names Windows reserves in every folder, with or without an extension ("CON", "com1.txt"). */
const WINDOWS_RESERVED = /^(con|prn|aux|nul|com[1-9]|lpt[1-9])(\..*)?$/i;

/**
 * A class name is also a folder name (export by folders, import by folders) and a spreadsheet
 * cell, so names that would escape the export folder, break on another OS or hide characters are
 * refused wherever a class is created or renamed.
 */
function validClassName(name: string): string {
  const trimmed = name.trim();
  // JSON quoting shows a control character as \u0000 instead of printing it.
  const refuse = (why: string) => new UserError(`${JSON.stringify(trimmed.slice(0, 100))} cannot be a class name: ${why}`, 'bad_class_name');
  if (!trimmed) throw new UserError('a class name cannot be empty', 'bad_class_name');
  if (trimmed.length > 100) throw refuse('a class name is at most 100 characters');
  if (trimmed === '.' || trimmed === '..') throw refuse('it names a folder itself or its parent');
  if (/[/\\]/.test(trimmed)) throw refuse('it contains / or \\, which separate folders');
  if (/[\u0000-\u001f\u007f]/.test(trimmed)) throw refuse('it contains a control character (such as NUL, tab or a line break)');
  if (WINDOWS_RESERVED.test(trimmed)) throw refuse('Windows reserves this name for a device');
  if (trimmed.endsWith('.')) throw refuse('Windows drops a trailing dot from folder names');
  return trimmed;
}

export function findClass(db: Database.Database, name: string): ClassInfo | undefined {
  return db
    .prepare(
      `SELECT c.id, c.name, (SELECT COUNT(*) FROM labels l WHERE l.class_id = c.id) AS labels
       FROM classes c WHERE c.name = ? COLLATE NOCASE`,
    )
    .get(name.trim()) as ClassInfo | undefined;
}

function requireClass(db: Database.Database, name: string): ClassInfo {
  const found = findClass(db, name);
  if (!found) throw new UserError(`no class named "${name}"`);
  return found;
}

export function addClass(db: Database.Database, name: string): number {
  const clean = validClassName(name);
  if (findClass(db, clean)) throw new UserError(`class "${clean}" already exists`);
  return Number(db.prepare('INSERT INTO classes (name, created_at) VALUES (?, ?)').run(clean, now()).lastInsertRowid);
}

/** The id of the named class, creating it when it is new (import by folder, CSV labels). */
export function classIdFor(db: Database.Database, name: string): number {
  return findClass(db, name)?.id ?? addClass(db, name);
}

export function renameClass(db: Database.Database, from: string, to: string): void {
  const source = requireClass(db, from);
  const clean = validClassName(to);
  const clash = findClass(db, clean);
  if (clash && clash.id !== source.id) throw new UserError(`class "${clash.name}" already exists (merge instead)`);
  db.prepare('UPDATE classes SET name = ? WHERE id = ?').run(clean, source.id);
}

/** Moves every label of `from` to `into` and removes `from`; returns how many labels moved. */
export function mergeClasses(db: Database.Database, from: string, into: string): number {
  const source = requireClass(db, from);
  const target = requireClass(db, into);
  if (source.id === target.id) throw new UserError('cannot merge a class into itself');
  return db.transaction(() => {
    const moved = db.prepare('UPDATE labels SET class_id = ? WHERE class_id = ?').run(target.id, source.id).changes;
    db.prepare('UPDATE label_votes SET class_id = ? WHERE class_id = ?').run(target.id, source.id);
    db.prepare('UPDATE label_reviews SET class_id = ? WHERE class_id = ?').run(target.id, source.id);
    db.prepare('DELETE FROM classes WHERE id = ?').run(source.id);
    return moved;
  })();
}

/** Deletes a class and its labels; returns how many labels went with it. */
export function deleteClass(db: Database.Database, name: string): number {
  const target = requireClass(db, name);
  return db.transaction(() => {
    const removed = db.prepare('DELETE FROM labels WHERE class_id = ?').run(target.id).changes;
    db.prepare('DELETE FROM splits WHERE image_id NOT IN (SELECT image_id FROM labels)').run();
    db.prepare('DELETE FROM classes WHERE id = ?').run(target.id);
    return removed;
  })();
}

/** The statements that write one image's final label, prepared once per batch. */
export function labelWriter(db: Database.Database) {
  const previous = db.prepare('SELECT class_id FROM labels WHERE image_id = ?').pluck();
  const upsert = db.prepare(
    `INSERT INTO labels (image_id, class_id, source, author, created_at) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT(image_id) DO UPDATE SET class_id = excluded.class_id, source = excluded.source,
       author = excluded.author, created_at = excluded.created_at`,
  );
  const remove = db.prepare('DELETE FROM labels WHERE image_id = ?');
  const removeSplit = db.prepare("DELETE FROM splits WHERE image_id = ? AND split != 'test'");
  return {
    previous: (imageId: number) => (previous.get(imageId) as number | undefined) ?? null,
    write(imageId: number, classId: number | null, source: LabelSource, author: string, at: string): void {
      if (classId === null) {
        remove.run(imageId);
        removeSplit.run(imageId);
      } else {
        upsert.run(imageId, classId, source, author, at);
      }
    },
  };
}

/** Labels images with one class (or removes their labels when classId is null). */
export function setLabels(
  db: Database.Database,
  imageIds: number[],
  classId: number | null,
  source: LabelSource,
  author: string,
): LabelChange[] {
  const writer = labelWriter(db);
  const at = now();
  return db.transaction(() =>
    imageIds.map((imageId) => {
      const previousClassId = writer.previous(imageId);
      writer.write(imageId, classId, source, author, at);
      return { imageId, previousClassId };
    }),
  )();
}

/** Gives each image its own class (or none); one setLabels per class, as one call per image is 10x slower. */
export function setEachLabel(
  db: Database.Database,
  entries: { imageId: number; classId: number | null }[],
  source: LabelSource,
  author: string,
): LabelChange[] {
  // The last entry for an image wins, as if they were applied one by one.
  const classOf = new Map(entries.map((entry) => [entry.imageId, entry.classId]));
  const byClass = new Map<number | null, number[]>();
  for (const [imageId, classId] of classOf) {
    const group = byClass.get(classId);
    if (group) group.push(imageId);
    else byClass.set(classId, [imageId]);
  }
  return db.transaction(() => [...byClass].flatMap(([classId, imageIds]) => setLabels(db, imageIds, classId, source, author)))();
}

/** A number in [0, 1) fixed by the image's content, so split decisions never depend on import order. */
function stableFraction(sha256: string): number {
  return createHash('sha256').update(`split:${sha256}`).digest().readUInt32BE(0) / 2 ** 32;
}

/**
 * How many of a class's `labelled` images validation holds: a tenth, so training keeps 90% of the few
 * labels there are (the PyTorch reference the label study compares with trains on all of them), but at
 * least one from five labels on, so every class is scored and models can be compared.
 */
export function validationShare(labelled: number, fraction = 0.1): number {
  return Math.max(labelled >= 5 ? 1 : 0, Math.floor(fraction * labelled));
}

/**
 * Gives every labelled image without a split one. Images imported as a test set go to test; the rest
 * are split train/val per class, filling val up to `validationShare` of that class. Existing assignments
 * never move, so a model's validation images stay the same as labels are added.
 */
export function ensureSplits(db: Database.Database, valFraction = 0.1): void {
  const pending = db
    .prepare(
      `SELECT l.image_id AS imageId, l.class_id AS classId, i.sha256, i.test_set AS testSet
       FROM labels l JOIN images i ON i.id = l.image_id
       WHERE l.image_id NOT IN (SELECT image_id FROM splits)`,
    )
    .all() as { imageId: number; classId: number; sha256: string; testSet: number }[];
  if (pending.length === 0) return;
  const counts = db.prepare(
    `SELECT SUM(s.split = 'val') AS val, SUM(s.split = 'train') AS train
     FROM splits s JOIN labels l ON l.image_id = s.image_id WHERE l.class_id = ?`,
  );
  const insert = db.prepare('INSERT INTO splits (image_id, split) VALUES (?, ?)');
  pending.sort((a, b) => stableFraction(a.sha256) - stableFraction(b.sha256));
  db.transaction(() => {
    const tally = new Map<number, { val: number; train: number }>();
    for (const image of pending) {
      if (image.testSet) {
        insert.run(image.imageId, 'test');
        continue;
      }
      let current = tally.get(image.classId);
      if (!current) {
        const row = counts.get(image.classId) as { val: number | null; train: number | null };
        current = { val: row.val ?? 0, train: row.train ?? 0 };
        tally.set(image.classId, current);
      }
      const toVal = current.val < validationShare(current.val + current.train + 1, valFraction);
      insert.run(image.imageId, toVal ? 'val' : 'train');
      if (toVal) current.val++;
      else current.train++;
    }
  })();
}

/** How many labelled images a split holds. */
export function splitSize(db: Database.Database, split: Split): number {
  return db.prepare('SELECT COUNT(*) FROM splits WHERE split = ?').pluck().get(split) as number;
}

export interface LabelledImage {
  imageId: number;
  classId: number;
  path: string;
}

export function labelledImages(db: Database.Database, split?: Split): LabelledImage[] {
  return db
    .prepare(
      `SELECT l.image_id AS imageId, l.class_id AS classId, i.path
       FROM labels l JOIN images i ON i.id = l.image_id LEFT JOIN splits s ON s.image_id = l.image_id
       WHERE ? IS NULL OR s.split = ? ORDER BY l.image_id`,
    )
    .all(split ?? null, split ?? null) as LabelledImage[];
}
