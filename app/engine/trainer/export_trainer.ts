/**
 * `contrast export-trainer`: a folder that trains the project's SimCLRv2 stages on a GPU cluster
 * with PyTorch DistributedDataParallel, launched by torchrun, and whose weights come back with
 * `contrast import-weights`. It holds:
 *
 * - manifest.json: every image (path relative to the images' common folder, SHA-256, true label,
 *   split, its row in the pixels file), the classes in logit order, each stage's settings;
 * - pixels-<size>.u8: the app's own decoded pixels (what the pixel cache holds: EXIF-rotated,
 *   centre-cropped, RGB), one uint8 row of size×size×3 per image, so the program sees exactly
 *   what the app sees and needs no image decoder that could round differently;
 * - train.py: the training program (simclr_trainer.py beside this file);
 * - README.md: the commands for one GPU, one node, several nodes and Slurm;
 * - images/ (with copyImages): the originals under their relative paths.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../contract/errors.ts';
import type { Stage } from '../../contract/domain.ts';
import type { TrainOptions } from '../../contract/train_options.ts';
import { fsPath } from '../../store/file_paths.ts';
import { manifestImages, trainingClasses, type ManifestImage } from '../../store/ground_truth.ts';
import { ensureSplits } from '../../store/labels.ts';
import type { Project } from '../../store/project.ts';
import { openPixelCache, type PixelCache } from '../data/dataset.ts';
import { trainerStageConfigs, type TrainConfig } from '../stages/stage_config.ts';
import { TRAINER_FORMAT } from '../weights/trainer_metadata.ts';
import { trainerReadme } from './trainer_readme.ts';

const PROGRAM = new URL('./simclr_trainer.py', import.meta.url);

export interface TrainerExportRequest {
  outDir: string;
  copyImages: boolean;
  /** Take the settings from this run (and the runs it descends from). */
  runId?: number;
  /** The network, when no run is given. */
  options: Pick<TrainOptions, 'depth' | 'width' | 'imageSize' | 'seed'>;
  warn?: (message: string) => void;
}

export interface TrainerExport {
  dir: string;
  images: number;
  /** Images the program trains or predicts on: those the app could decode. */
  withPixels: number;
  labelled: number;
  classes: string[];
  imageSize: number;
  copiedImages: number;
  fromRun: { id: number; kind: Stage } | null;
  network: TrainConfig['model'];
}

export interface ManifestEntry {
  path: string;
  sha256: string;
  label: string | null;
  split: ManifestImage['split'];
  /** Row in the pixels file; null when the app could not decode the image. */
  pixelRow: number | null;
}

/** A new or empty folder, made here; anything else is one coded error. */
function prepareOutDir(dir: string): void {
  const unwritable = (error: unknown) =>
    new UserError(`cannot write to ${dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, 'out_unwritable', { path: dir });
  let stat: fs.Stats | undefined;
  try {
    stat = fs.statSync(dir, { throwIfNoEntry: false });
  } catch (error) {
    throw unwritable(error); // a file where a folder of the path should be, or no permission to look
  }
  if (stat && !stat.isDirectory()) throw new UserError(`${dir} is a file, not a folder`, 'out_not_folder', { path: dir });
  if (stat && fs.readdirSync(dir).length > 0) throw new UserError(`${dir} is not empty: give a new or empty folder for the trainer`, 'out_not_empty', { path: dir });
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (error) {
    throw unwritable(error);
  }
}

/** The deepest folder holding every image, so the manifest's paths say where each sits beside the others. */
function commonFolder(paths: string[]): string {
  if (paths.length === 0) return '';
  let common = path.dirname(paths[0]);
  for (const file of paths) {
    while (common !== path.dirname(common) && path.relative(common, file).startsWith('..')) common = path.dirname(common);
  }
  return common;
}

/** Stored paths that are not UTF-8 are file:// URLs; their text is still a faithful, unique name. */
function relativeName(root: string, stored: string): string {
  return path.relative(root, stored).split(path.sep).join('/');
}

/** Writes each decodable image's cached row, in manifest order; returns each image's row (or null). */
function writePixels(file: string, images: ManifestImage[], cache: PixelCache): (number | null)[] {
  const fd = fs.openSync(file, 'w');
  let written = 0;
  try {
    return images.map((image) => {
      const row = cache.rowOf(image.id);
      if (row === undefined) return null;
      fs.writeSync(fd, cache.readRows([row]));
      return written++;
    });
  } finally {
    fs.closeSync(fd);
  }
}

function copyOriginals(dir: string, entries: ManifestEntry[], images: ManifestImage[], warn?: (message: string) => void): number {
  let copied = 0;
  const missing: string[] = [];
  entries.forEach((entry, i) => {
    const target = path.join(dir, 'images', ...entry.path.split('/'));
    try {
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.copyFileSync(fsPath(images[i].path), target);
      copied++;
    } catch {
      missing.push(images[i].path);
    }
  });
  if (missing.length > 0) warn?.(`${missing.length} original(s) could not be copied, e.g. ${missing[0]}; their pixels are in the folder all the same`);
  return copied;
}

export async function exportTrainer(project: Project, request: TrainerExportRequest): Promise<TrainerExport> {
  const { stages, fromRun } = trainerStageConfigs(project, { ...request.options, runId: request.runId });
  const imageSize = stages.pretrain.model.imageSize;
  prepareOutDir(request.outDir);
  ensureSplits(project.db);
  const cache = await openPixelCache(project, imageSize, { warn: request.warn });
  try {
    const images = manifestImages(project.db);
    const root = commonFolder(images.map((image) => image.path));
    const pixelsFile = `pixels-${imageSize}.u8`;
    const rows = writePixels(path.join(request.outDir, pixelsFile), images, cache);
    const entries: ManifestEntry[] = images.map((image, i) => ({
      path: relativeName(root, image.path),
      sha256: image.sha256,
      label: image.label,
      split: image.split,
      pixelRow: rows[i],
    }));
    const classes = trainingClasses(project.db).map((c) => c.name);
    const withPixels = rows.filter((row) => row !== null).length;
    const copiedImages = request.copyImages ? copyOriginals(request.outDir, entries, images, request.warn) : 0;
    const manifest = {
      format: TRAINER_FORMAT,
      project: { name: path.basename(project.dir), path: project.dir },
      exportedAt: new Date().toISOString(),
      root,
      imagesCopied: request.copyImages,
      classes,
      pixels: { file: pixelsFile, imageSize, rows: withPixels, layout: 'uint8 RGB, row-major [rows, size, size, 3], the app\'s decoding' },
      fromRun,
      stages,
      images: entries,
    };
    fs.writeFileSync(path.join(request.outDir, 'manifest.json'), JSON.stringify(manifest, null, 1));
    fs.copyFileSync(PROGRAM, path.join(request.outDir, 'train.py'));
    const result: TrainerExport = {
      dir: request.outDir,
      images: images.length,
      withPixels,
      labelled: entries.filter((e) => e.label !== null).length,
      classes,
      imageSize,
      copiedImages,
      fromRun,
      network: stages.pretrain.model,
    };
    fs.writeFileSync(path.join(request.outDir, 'README.md'), trainerReadme(result, stages));
    return result;
  } finally {
    cache.close();
  }
}
