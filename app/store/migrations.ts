import type Database from 'better-sqlite3';
import { UserError } from '../contract/errors.ts';

/**
 * Forward-only schema migrations. Entry i brings the schema from version i to i+1;
 * PRAGMA user_version records how many have run. Never edit an entry that has shipped:
 * append a new one.
 */
export const migrations: string[] = [
  `
  CREATE TABLE import_batches (
    id INTEGER PRIMARY KEY,
    roots TEXT NOT NULL,              -- JSON array of the paths given to import
    options TEXT NOT NULL,            -- JSON of the import options
    started_at TEXT NOT NULL,
    finished_at TEXT
  );

  -- Usable images only; files that failed or were duplicates live in files.
  CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    format TEXT NOT NULL,
    thumbnail BLOB NOT NULL,
    batch_id INTEGER REFERENCES import_batches(id),
    test_set INTEGER NOT NULL DEFAULT 0,  -- imported with --split test
    created_at TEXT NOT NULL
  );

  -- Every file an import has looked at, so a second import skips what it already saw.
  CREATE TABLE files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ms REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('imported', 'duplicate', 'error')),
    image_id INTEGER REFERENCES images(id) ON DELETE SET NULL,
    error TEXT,
    batch_id INTEGER REFERENCES import_batches(id)
  );
  CREATE INDEX files_status ON files(status);

  CREATE TABLE classes (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_at TEXT NOT NULL
  );

  CREATE TABLE labels (
    image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    class_id INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    source TEXT NOT NULL CHECK (source IN ('human', 'folder', 'suggestion')),
    author TEXT NOT NULL,
    created_at TEXT NOT NULL
  );
  CREATE INDEX labels_class ON labels(class_id);

  -- Assigned once per labelled image and never moved, so splits are stable across runs.
  CREATE TABLE splits (
    image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    split TEXT NOT NULL CHECK (split IN ('train', 'val', 'test'))
  );

  CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('pretrain', 'finetune', 'distill', 'evaluate')),
    parent_id INTEGER REFERENCES runs(id),
    config TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled', 'interrupted')),
    backend TEXT,
    device TEXT,
    error TEXT,
    summary TEXT,                     -- JSON of the key results
    pid INTEGER,                      -- process running it, to tell a crash from a live run
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
  );

  CREATE TABLE metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    epoch REAL NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL
  );
  CREATE INDEX metrics_run ON metrics(run_id, name, step);

  CREATE TABLE checkpoints (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    step INTEGER NOT NULL,
    path TEXT NOT NULL,               -- relative to the project folder
    is_best INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
  );

  CREATE TABLE predictions (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    class_id INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    confidence REAL NOT NULL,
    probabilities BLOB NOT NULL,      -- float32, one per class in the run's class order
    PRIMARY KEY (run_id, image_id)
  );

  CREATE TABLE embeddings (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    vector BLOB NOT NULL,             -- float32
    PRIMARY KEY (run_id, image_id)
  );

  CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  `,
  // One-click training: a 'pipeline' run owns the stage runs it starts. SQLite cannot change a
  // CHECK in place, so the table is rebuilt (with foreign keys off, see migrate()).
  `
  CREATE TABLE runs_next (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('pretrain', 'finetune', 'distill', 'evaluate', 'pipeline')),
    parent_id INTEGER REFERENCES runs(id),
    config TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled', 'interrupted')),
    backend TEXT,
    device TEXT,
    error TEXT,
    summary TEXT,
    pid INTEGER,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
  );
  INSERT INTO runs_next SELECT id, kind, parent_id, config, status, backend, device, error, summary, pid, created_at, started_at, finished_at FROM runs;
  DROP TABLE runs;
  ALTER TABLE runs_next RENAME TO runs;
  `,
  // Label as a team. labels keeps the final label of each image; label_votes keeps what each
  // person chose, so agreement can be measured and a settled disagreement keeps both votes.
  // Labels made before teams existed were all made at the host's machine: they become the host's.
  `
  CREATE TABLE label_votes (
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    author TEXT NOT NULL,
    class_id INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    source TEXT NOT NULL CHECK (source IN ('human', 'suggestion')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (image_id, author)
  );
  CREATE INDEX label_votes_time ON label_votes(created_at);

  -- A disagreement the host settled: the class chosen, and when (a later vote reopens it).
  CREATE TABLE label_reviews (
    image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    class_id INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    resolved_at TEXT NOT NULL
  );

  UPDATE labels SET author = 'host';
  INSERT INTO label_votes (image_id, author, class_id, source, created_at)
    SELECT image_id, 'host', class_id, source, created_at FROM labels WHERE source IN ('human', 'suggestion');
  `,
];

/** Refuses a project written by a newer version, whose tables this build would misread or damage; returns its version. */
export function checkSchemaVersion(db: Database.Database): number {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > migrations.length) {
    throw new UserError(
      `this project was written by a newer Contrast Studio (schema ${current}, this build knows ${migrations.length}); ` +
        'update the app to open it (the project was not changed)',
      'project_too_new',
    );
  }
  return current;
}

export function migrate(db: Database.Database): number {
  const current = checkSchemaVersion(db);
  if (current === migrations.length) return current;
  // Off while tables are rebuilt, or dropping one would cascade into the rows that point at it;
  // the check afterwards proves every reference still resolves.
  db.pragma('foreign_keys = OFF');
  try {
    for (let version = current; version < migrations.length; version++) {
      db.transaction(() => {
        db.exec(migrations[version]);
        const broken = db.pragma('foreign_key_check') as unknown[];
        if (broken.length > 0) throw new Error(`migration ${version + 1} left ${broken.length} broken references`);
        db.pragma(`user_version = ${version + 1}`);
      })();
    }
  } finally {
    db.pragma('foreign_keys = ON');
  }
  return migrations.length;
}
