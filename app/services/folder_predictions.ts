/**
 * Predicting folders of images with a trained model (default: the current one): the studio's
 * "Predict a folder" job and `contrast predict` are this one service. It writes predictions.csv
 * (path, the top class and its confidence, the next two with theirs) and can copy or link each
 * image into a folder named after its predicted class. Bad files are reported one by one, as
 * import reports them, and never stop the rest.
 */
import { statSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { ClassProbability, PredictProgress } from '../contract/domain.ts';
import { UserError } from '../contract/errors.ts';
import type { PredictSummary } from '../contract/operations.ts';
import type { BackendChoice } from '../contract/train_options.ts';
import { inferenceBatch } from '../engine/data/inference.ts';
import { openPredictor, predictFiles, writeFileAtomically, type FilePrediction, type Predictor } from '../engine/data/predict.ts';
import { scanImages, type ScanProblem } from '../media/scan.ts';
import { fsPath } from '../store/file_paths.ts';
import { csvField } from '../store/labels_csv.ts';
import type { Project } from '../store/project.ts';
import { modelRun } from './current_model.ts';
import { timestamp } from './exports.ts';
import type { Handlers } from './handlers.ts';
import { requireAbsolute } from './projects.ts';
import type { Session } from './session.ts';

/** The first three columns are what `contrast predict` always wrote, so readers of those keep working. */
export const PREDICTIONS_CSV_HEADER = 'path,predicted,confidence,second,second_confidence,third,third_confidence';
/** Images per forward pass: large enough for the engine's full speed, small enough that progress and cancel answer within a second or two. */
export const PREDICT_BATCH = 64;
const PROGRESS_INTERVAL_MS = 100;
const CSV_NAME = 'predictions.csv';
const SKIPPED_NAME = 'skipped.csv';
/** Skipped files listed in the finished event; skipped.csv has them all. */
const PROBLEMS_IN_SUMMARY = 100;

export interface FolderPredictionRequest {
  /** Files and folders (searched recursively) to predict. */
  paths: string[];
  csvFile: string;
  /** Copy or link each image into `dir/<predicted class>/`. */
  sortInto?: { mode: 'copy' | 'link'; dir: string };
  batchSize?: number;
  signal?: AbortSignal;
  onProgress?: (progress: PredictProgress) => void;
}

export interface FolderPredictionResult {
  runId: number;
  predicted: number;
  /** Every file skipped (or predicted but not copied or linked), with its reason: what the scan found first, then as met. */
  problems: ScanProblem[];
  byClass: { name: string; count: number }[];
  cancelled: boolean;
  seconds: number;
}

/** The model (default: the current one) loaded for predicting; the caller disposes it. */
export function openModel(project: Project, runId?: number, backend?: BackendChoice): Promise<Predictor> {
  return openPredictor(project, modelRun(project.db, runId).id, backend);
}

export async function predictFolder(predictor: Predictor, request: FolderPredictionRequest): Promise<FolderPredictionResult> {
  const started = performance.now();
  const tally = { total: 0, done: 0, errors: 0, predicted: 0 };
  const report = throttledProgress(request.onProgress, started);
  report('scanning', tally, true);
  await fs.mkdir(path.dirname(request.csvFile), { recursive: true });
  const { files, problems } = await scanImages(request.paths);
  Object.assign(tally, { total: files.length + problems.length, done: problems.length, errors: problems.length });
  const lines = [PREDICTIONS_CSV_HEADER];
  const sorter = request.sortInto ? new ClassFolders(request.sortInto.dir, request.sortInto.mode, filesBeside(request.csvFile, request.sortInto.dir)) : null;
  const byClass = new Map<string, number>();
  const predictingFrom = { at: performance.now(), done: tally.done };
  report('predicting', tally, true, predictingFrom);
  const { cancelled } = await predictFiles(predictor, files, {
    batchSize: request.batchSize ?? Math.min(PREDICT_BATCH, inferenceBatch(predictor.imageSize)),
    signal: request.signal,
    onBatch: async (predictions, unreadable) => {
      for (const prediction of predictions) {
        lines.push(predictionCsvRow(prediction));
        byClass.set(prediction.top[0].name, (byClass.get(prediction.top[0].name) ?? 0) + 1);
      }
      const unplaced = sorter ? await sorter.place(predictions) : [];
      problems.push(...unreadable, ...unplaced);
      tally.predicted += predictions.length;
      tally.done += predictions.length + unreadable.length;
      tally.errors += unreadable.length + unplaced.length;
      report('predicting', tally, false, predictingFrom);
    },
  });
  writeFileAtomically(request.csvFile, lines.join('\n') + '\n');
  report('done', tally, true, predictingFrom);
  return {
    runId: predictor.runId,
    predicted: tally.predicted,
    problems,
    byClass: [...byClass].map(([name, count]) => ({ name, count })).sort((a, b) => b.count - a.count || a.name.localeCompare(b.name)),
    cancelled,
    seconds: (performance.now() - started) / 1000,
  };
}

/** The names of our own files in the folder the class folders go into, so no class takes one. */
function filesBeside(csvFile: string, sortDir: string): string[] {
  return path.dirname(path.resolve(csvFile)) === path.resolve(sortDir) ? [path.basename(csvFile), SKIPPED_NAME] : [];
}

/** One CSV row: the path as found on disk (as the store writes paths), then the top three classes with six-decimal confidences. */
export function predictionCsvRow(prediction: FilePrediction): string {
  const classes = [0, 1, 2].flatMap((rank) => classColumns(prediction.top[rank]));
  return [prediction.path, ...classes].map(csvField).join(',');
}

function classColumns(entry: ClassProbability | undefined): string[] {
  return entry ? [entry.name, entry.probability.toFixed(6)] : ['', ''];
}

/** Skipped files as CSV (path,reason), for the list a long run leaves behind. */
export function skippedCsv(problems: ScanProblem[]): string {
  return ['path,reason', ...problems.map((p) => [p.path, p.reason].map(csvField).join(','))].join('\n') + '\n';
}

/**
 * A folder name for a class: the characters no file system takes in a name become "_", and
 * names that mean something else ("", ".", "..") are replaced, so a class can never write
 * outside its folder.
 */
export function classFolderName(className: string): string {
  const cleaned = className.replace(/[\\/:*?"<>|\u0000-\u001f]/g, '_').replace(/^[\s.]+|[\s.]+$/g, '').slice(0, 100);
  return cleaned === '' ? '_' : cleaned;
}

/** `name`, or `name-2`, `name-3`, … (before the extension): the first that `taken` does not hold. */
export function uniqueFileName(name: string, taken: Set<string>): string {
  const extension = path.extname(name);
  const stem = name.slice(0, name.length - extension.length);
  let candidate = name;
  for (let n = 2; taken.has(candidate); n++) candidate = `${stem}-${n}${extension}`;
  return candidate;
}

/** Copies or links predicted images into one folder per class; a file that cannot be placed is reported, not fatal. */
class ClassFolders {
  private readonly folders = new Map<string, { dir: string; names: Set<string> }>();
  private readonly folderNames: Set<string>;

  constructor(
    private readonly root: string,
    private readonly mode: 'copy' | 'link',
    reserved: string[],
  ) {
    this.folderNames = new Set(reserved);
  }

  async place(predictions: FilePrediction[]): Promise<ScanProblem[]> {
    const problems: ScanProblem[] = [];
    for (const prediction of predictions) {
      const folder = await this.folderOf(prediction.top[0].name);
      const name = uniqueFileName(path.basename(prediction.path), folder.names);
      folder.names.add(name);
      const source = fsPath(prediction.path);
      const target = path.join(folder.dir, name);
      try {
        if (this.mode === 'copy') await fs.copyFile(source, target, fs.constants.COPYFILE_EXCL);
        else await fs.symlink(typeof source === 'string' ? path.resolve(source) : source, target);
      } catch (error) {
        problems.push({ path: prediction.path, reason: `predicted, but not ${this.mode === 'copy' ? 'copied' : 'linked'}: ${(error as Error).message}` });
      }
    }
    return problems;
  }

  private async folderOf(className: string) {
    let folder = this.folders.get(className);
    if (!folder) {
      // Two classes whose names clean to the same folder name ("a/b", "a_b") get folders of their own.
      const name = uniqueFileName(classFolderName(className), this.folderNames);
      this.folderNames.add(name);
      folder = { dir: path.join(this.root, name), names: new Set() };
      await fs.mkdir(folder.dir, { recursive: true });
      this.folders.set(className, folder);
    }
    return folder;
  }
}

type Tally = { total: number; done: number; errors: number; predicted: number };

/** Progress at most every PROGRESS_INTERVAL_MS (phase changes always); speed counts only the predicting phase. */
function throttledProgress(listener: ((progress: PredictProgress) => void) | undefined, started: number) {
  let last = -Infinity;
  return (phase: PredictProgress['phase'], tally: Tally, always: boolean, since?: { at: number; done: number }) => {
    if (!listener || (!always && performance.now() - last < PROGRESS_INTERVAL_MS)) return;
    last = performance.now();
    const seconds = (performance.now() - (since?.at ?? started)) / 1000;
    const imagesPerSecond = since && seconds > 0 ? (tally.done - since.done) / seconds : 0;
    const etaSeconds = imagesPerSecond > 0 ? (tally.total - tally.done) / imagesPerSecond : null;
    listener({ phase, total: tally.total, done: tally.done, errors: tally.errors, imagesPerSecond, etaSeconds });
  };
}

/** A new folder under the project's exports/ for one prediction, named after the folder predicted and the time. */
async function newOutputFolder(project: Project, predicted: string): Promise<string> {
  const base = path.join(project.exportsDir, `predictions-${classFolderName(path.basename(predicted))}-${timestamp()}`);
  for (let n = 1; ; n++) {
    const dir = n === 1 ? base : `${base}-${n}`;
    try {
      await fs.mkdir(dir, { recursive: false });
      return dir;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
}

function requireFolder(given: string): string {
  let isFolder = false;
  try {
    isFolder = statSync(requireAbsolute(given)).isDirectory();
  } catch {
    throw new UserError(`no such folder: ${given}`, 'not_found', { path: given });
  }
  if (!isFolder) throw new UserError(`not a folder: ${given}`, 'not_a_folder', { path: given });
  return given;
}

function summaryOf(result: FolderPredictionResult, outDir: string, csvPath: string, sort: PredictSummary['sort']): PredictSummary {
  const { problems, ...counts } = result;
  return { ...counts, outDir, csvPath, sort, errors: problems.length, problems: problems.slice(0, PROBLEMS_IN_SUMMARY) };
}

export function predictHandlers(session: Session): Pick<Handlers, 'predict.start' | 'predict.cancel'> {
  return {
    async 'predict.start'({ folder, runId, sort = 'none' }) {
      const project = session.requireProject();
      const root = requireFolder(folder);
      const controller = new AbortController();
      const release = session.beginJob({ kind: 'predict', id: 0, startedAt: new Date().toISOString() }, () => controller.abort());
      let predictor: Predictor | undefined;
      let outDir: string;
      try {
        predictor = await openModel(project, runId); // a run without a model is refused here, not in an event
        outDir = await newOutputFolder(project, root);
      } catch (error) {
        predictor?.dispose();
        release();
        throw error;
      }
      const csvPath = path.join(outDir, CSV_NAME);
      predictFolder(predictor, {
        paths: [root],
        csvFile: csvPath,
        sortInto: sort === 'none' ? undefined : { mode: sort, dir: outDir },
        signal: controller.signal,
        onProgress: (progress) => session.emit({ type: 'predict.progress', ...progress }),
      })
        .then(async (result) => {
          if (result.problems.length > 0) await fs.writeFile(path.join(outDir, SKIPPED_NAME), skippedCsv(result.problems));
          return { summary: summaryOf(result, outDir, csvPath, sort), error: null };
        })
        .catch((error) => {
          if (!(error instanceof UserError)) console.error('folder prediction failed:', error);
          return { summary: null, error: String(error?.message ?? error) };
        })
        .then((outcome) => {
          predictor.dispose();
          release(); // before the event, so whoever reloads on it finds the job slot free
          session.emit({ type: 'predict.finished', ...outcome });
        });
      return { started: true as const, outDir };
    },
    async 'predict.cancel'() {
      return { cancelled: session.cancelJob('predict') };
    },
  };
}
