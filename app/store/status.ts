import type Database from 'better-sqlite3';
import { isOriginalMissing } from './images.ts';
import { listClasses, type ClassInfo } from './labels.ts';

export interface ProjectStatus {
  images: number;
  labelled: number;
  unlabelled: number;
  importErrors: number;
  duplicatesSkipped: number;
  /** Images whose original file is no longer where it was imported from. */
  missingOriginals: number;
  classes: ClassInfo[];
  splits: { train: number; val: number; test: number };
  runs: { total: number; byStatus: Record<string, number> };
}

export function projectStatus(db: Database.Database): ProjectStatus {
  const count = (sql: string) => (db.prepare(sql).get() as { n: number }).n;
  const images = count('SELECT COUNT(*) AS n FROM images');
  const labelled = count('SELECT COUNT(*) AS n FROM labels');
  const splitRows = db.prepare('SELECT split, COUNT(*) AS n FROM splits GROUP BY split').all() as { split: string; n: number }[];
  const runRows = db.prepare('SELECT status, COUNT(*) AS n FROM runs GROUP BY status').all() as { status: string; n: number }[];
  const splits = { train: 0, val: 0, test: 0 };
  for (const row of splitRows) splits[row.split as keyof typeof splits] = row.n;
  return {
    images,
    labelled,
    unlabelled: images - labelled,
    importErrors: count("SELECT COUNT(*) AS n FROM files WHERE status = 'error'"),
    duplicatesSkipped: count("SELECT COUNT(*) AS n FROM files WHERE status = 'duplicate'"),
    missingOriginals: countMissingOriginals(db),
    classes: listClasses(db),
    splits,
    runs: { total: runRows.reduce((sum, r) => sum + r.n, 0), byStatus: Object.fromEntries(runRows.map((r) => [r.status, r.n])) },
  };
}

function countMissingOriginals(db: Database.Database): number {
  let missing = 0;
  for (const { path } of db.prepare('SELECT path FROM images').iterate() as Iterable<{ path: string }>) {
    if (isOriginalMissing(path)) missing++;
  }
  return missing;
}
