import type Database from 'better-sqlite3';
import type { ProjectCounts, RunStatus } from '../contract/domain.ts';
import { isOriginalMissing } from './images.ts';
import { listClasses } from './labels.ts';

/**
 * Every count a project reports, in one pass of small queries. Missing originals take a stat of
 * every file, so they are counted only when asked for (`contrast status`), not on every refresh.
 */
export function countProject(db: Database.Database, options: { checkOriginals?: boolean } = {}): ProjectCounts {
  const count = (sql: string) => db.prepare(sql).pluck().get() as number;
  const images = count('SELECT COUNT(*) FROM images');
  const labelled = count('SELECT COUNT(*) FROM labels');
  const splitRows = db.prepare('SELECT split, COUNT(*) AS n FROM splits GROUP BY split').all() as { split: string; n: number }[];
  const runRows = db.prepare('SELECT status, COUNT(*) AS n FROM runs GROUP BY status').all() as { status: RunStatus; n: number }[];
  const splits = { train: 0, val: 0, test: 0 };
  for (const row of splitRows) splits[row.split as keyof typeof splits] = row.n;
  return {
    images,
    labelled,
    unlabelled: images - labelled,
    testImages: count('SELECT COUNT(*) FROM images WHERE test_set = 1'),
    duplicates: count("SELECT COUNT(*) FROM files WHERE status = 'duplicate'"),
    importErrors: count("SELECT COUNT(*) FROM files WHERE status = 'error'"),
    missingOriginals: options.checkOriginals ? countMissingOriginals(db) : null,
    classes: listClasses(db),
    splits,
    runs: { total: runRows.reduce((sum, r) => sum + r.n, 0), byStatus: Object.fromEntries(runRows.map((r) => [r.status, r.n])) },
  };
}

function countMissingOriginals(db: Database.Database): number {
  let missing = 0;
  for (const path of db.prepare('SELECT path FROM images').pluck().iterate() as Iterable<string>) {
    if (isOriginalMissing(path)) missing++;
  }
  return missing;
}
