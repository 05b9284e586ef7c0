import type Database from 'better-sqlite3';
import { UserError } from '../contract/errors.ts';
import type { FileProblem, ImportProgress } from '../contract/domain.ts';
import { imageBySha, insertImage, isOriginalMissing, relinkImage } from '../store/images.ts';
import { HOST_NAME } from '../contract/team.ts';
import { classIdFor, setLabels } from '../store/labels.ts';
import { now, type Project } from '../store/project.ts';
import { fileProblems } from '../store/gallery.ts';
import { createImportBatch, fileRecorder, finishImportBatch, seenFiles } from '../store/import_batches.ts';
import { diskFullError, isDiskFull } from '../store/storage_errors.ts';
import { DecodeError, decodeForImport, type DecodedImage } from './decode.ts';
import { scanImages, type FoundFile } from './scan.ts';

export interface ImportOptions {
  /** Label each image with the name of the folder it sits in (below the import root). */
  labelsFromFolders?: boolean;
  /** Mark the imported images as a held-out test set. */
  testSet?: boolean;
  onProgress?: (progress: ImportProgress) => void;
  signal?: AbortSignal;
}


export interface ImportSummary extends ImportProgress {
  batchId: number;
  seconds: number;
  /** Duplicates and failures of this import, each with its reason. */
  problems: FileProblem[];
}

type Outcome = { file: FoundFile } & ({ decoded: DecodedImage } | { error: string });

const IN_FLIGHT = 16;
const FLUSH_EVERY = 256;
const PROGRESS_INTERVAL_MS = 100;

/**
 * Imports every image below `paths` into the project. Files already seen are skipped, so running
 * the same import again adds nothing and an import killed half-way finishes on the next run: each
 * group of results is written in one transaction.
 */
export async function importPaths(project: Project, paths: string[], options: ImportOptions = {}): Promise<ImportSummary> {
  if (paths.length === 0) throw new UserError('give at least one file or folder to import');
  const committed = { files: 0 };
  try {
    return await importInto(project, paths, options, committed);
  } catch (error) {
    if (!isDiskFull(error)) throw error;
    const kept = committed.files ? `the import stopped; the ${committed.files} files done before are kept` : 'the import stopped before writing anything';
    throw diskFullError(project.dir, kept, 'run the import again to finish it');
  }
}

async function importInto(project: Project, paths: string[], options: ImportOptions, committed: { files: number }): Promise<ImportSummary> {
  const started = performance.now();
  options.onProgress?.(snapshot('scanning', { total: 0, alreadyKnown: 0, processed: 0, added: 0, relinked: 0, duplicates: 0, errors: 0 }, started));

  const { files, problems: scanProblems } = await scanImages(paths);
  const batchId = createBatch(project.db, paths, options);
  const writer = new ResultWriter(project.db, batchId, options, committed);
  const todo = unseenFiles(project.db, files);
  const tally = () => ({ total: files.length + scanProblems.length, alreadyKnown: files.length - todo.length, ...writer.counts });
  for (const problem of scanProblems) writer.add({ file: { path: problem.path, size: 0, mtimeMs: 0, folderLabel: null }, error: problem.reason });

  let next = 0;
  let lastReport = 0;
  // Decodes finish in any order; results are handed on in scan order so image ids (and with them
  // the data order of seeded training runs) are the same for every import of the same files.
  const finished = new Map<number, Outcome>();
  let written = 0;
  let failed = false;
  const worker = async () => {
    while (next < todo.length && !options.signal?.aborted && !failed) {
      const index = next++;
      const outcome = await unlessAborted(decodeOutcome(todo[index]), options.signal);
      if (outcome === ABORTED) return;
      finished.set(index, outcome);
      try {
        for (; finished.has(written); written++) {
          writer.add(finished.get(written)!);
          finished.delete(written);
        }
      } catch (error) {
        failed = true; // the other workers stop too, rather than decode for a writer that cannot write
        throw error;
      }
      if (options.onProgress && performance.now() - lastReport > PROGRESS_INTERVAL_MS) {
        lastReport = performance.now();
        options.onProgress(snapshot('importing', tally(), started));
      }
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  writer.flush();
  if (options.signal?.aborted) {
    throw new UserError(`import cancelled after ${writer.counts.processed} files; run it again to finish`, 'cancelled');
  }
  finishImportBatch(project.db, batchId);
  const summary = snapshot('done', tally(), started);
  options.onProgress?.(summary);
  return { ...summary, batchId, seconds: (performance.now() - started) / 1000, problems: fileProblems(project.db, undefined, batchId, -1) };
}

interface Tally {
  total: number;
  alreadyKnown: number;
  processed: number;
  added: number;
  relinked: number;
  duplicates: number;
  errors: number;
}

function snapshot(phase: ImportProgress['phase'], tally: Tally, started: number): ImportProgress {
  const seconds = (performance.now() - started) / 1000;
  const done = tally.alreadyKnown + tally.processed;
  const imagesPerSecond = seconds > 0 ? tally.processed / seconds : 0;
  return {
    phase,
    total: tally.total,
    done,
    added: tally.added,
    relinked: tally.relinked,
    duplicates: tally.duplicates,
    errors: tally.errors,
    alreadyKnown: tally.alreadyKnown,
    imagesPerSecond,
    etaSeconds: imagesPerSecond > 0 ? (tally.total - done) / imagesPerSecond : null,
  };
}

const ABORTED = Symbol('aborted');

/**
 * The work's result, or ABORTED as soon as the signal fires: a cancelled import does not wait for
 * the reads and decodes still running (a file on a hung network share may never answer); their
 * results are dropped, and the next import does those files again.
 */
function unlessAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T | typeof ABORTED> {
  if (!signal) return work;
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve(ABORTED);
    const settle = <V>(finish: (value: V) => void) => (value: V) => {
      signal.removeEventListener('abort', onAbort);
      finish(value);
    };
    work.then(settle(resolve), settle(reject));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

async function decodeOutcome(file: FoundFile): Promise<Outcome> {
  try {
    return { file, decoded: await decodeForImport(file.path) };
  } catch (error) {
    if (error instanceof DecodeError) return { file, error: error.message };
    throw error;
  }
}

function createBatch(db: Database.Database, paths: string[], options: ImportOptions): number {
  const settings = { labelsFromFolders: Boolean(options.labelsFromFolders), testSet: Boolean(options.testSet) };
  return createImportBatch(db, paths, settings);
}

/** Files not imported before; a file that failed before is tried again once it has changed. */
function unseenFiles(db: Database.Database, files: FoundFile[]): FoundFile[] {
  const known = seenFiles(db);
  return files.filter((file) => {
    const seen = known.get(file.path);
    if (!seen) return true;
    return seen.status === 'error' && (seen.size !== file.size || seen.mtime_ms !== file.mtimeMs);
  });
}

/** Collects decode results and writes them in transactions of FLUSH_EVERY files. */
class ResultWriter {
  readonly counts = { processed: 0, added: 0, relinked: 0, duplicates: 0, errors: 0 };
  private pending: Outcome[] = [];
  private readonly recordFile;
  private readonly classIds = new Map<string, number>();

  constructor(
    private readonly db: Database.Database,
    private readonly batchId: number,
    private readonly options: ImportOptions,
    /** Files whose results are committed, for a message should a later write fail. */
    private readonly committed: { files: number },
  ) {
    this.recordFile = fileRecorder(db, batchId);
  }

  add(outcome: Outcome): void {
    this.pending.push(outcome);
    if (this.pending.length >= FLUSH_EVERY) this.flush();
  }

  flush(): void {
    const outcomes = this.pending;
    this.pending = [];
    this.db.transaction(() => outcomes.forEach((outcome) => this.write(outcome)))();
    this.committed.files += outcomes.length;
  }

  private write(outcome: Outcome): void {
    const { file } = outcome;
    this.counts.processed++;
    if ('error' in outcome) {
      this.counts.errors++;
      this.recordFile(file, 'error', null, outcome.error);
      return;
    }
    const existing = imageBySha(this.db, outcome.decoded.sha256);
    if (existing && isOriginalMissing(existing.path)) {
      relinkImage(this.db, existing.id, existing.path, file.path);
      this.counts.relinked++;
      this.recordFile(file, 'imported', existing.id, null);
      return;
    }
    if (existing) {
      this.counts.duplicates++;
      this.recordFile(file, 'duplicate', existing.id, null);
      return;
    }
    const at = now();
    const imageId = insertImage(this.db, { ...outcome.decoded, path: file.path, batchId: this.batchId, testSet: Boolean(this.options.testSet) }, at);
    this.recordFile(file, 'imported', imageId, null);
    if (this.options.labelsFromFolders && file.folderLabel) {
      setLabels(this.db, [imageId], this.classId(file.folderLabel), 'folder', HOST_NAME);
    }
    this.counts.added++;
  }

  private classId(name: string): number {
    let id = this.classIds.get(name);
    if (id === undefined) this.classIds.set(name, (id = classIdFor(this.db, name)));
    return id;
  }
}
