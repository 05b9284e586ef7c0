/**
 * Try it: a model (default: the current one) on images the user drops, pastes or picks, which
 * arrive as bytes (an upload, or files the desktop app's main process read), and turning one
 * into a labelled image of the project. Added images are copied into the project's own added/
 * folder, since the bytes have no file the project could keep pointing at.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../contract/errors.ts';
import { MAX_TRY_IMAGE_BYTES, tooLargeMessage, type TryImage, type TryOutResult } from '../contract/operations.ts';
import { imagePixels, topClasses } from '../engine/data/predict.ts';
import { sniffFormat } from '../media/decode.ts';
import { IMAGE_EXTENSIONS } from '../media/scan.ts';
import { imageBySha, isOriginalMissing } from '../store/images.ts';
import { listClasses, setLabels } from '../store/labels.ts';
import type { Project } from '../store/project.ts';
import { openModel, uniqueFileName } from './folder_predictions.ts';
import type { Handlers } from './handlers.ts';
import { importFiles } from './imports.ts';
import { HOST_NAME } from '../contract/team.ts';
import { requireClassId } from './labels.ts';
import type { Session } from './session.ts';

/** The project's folder for images added from Try it. */
export const ADDED_FOLDER = 'added';

/** An image's bytes, or why they are refused: too large, or not an image whatever the name says. */
function imageBytes(image: TryImage): { bytes: Buffer; format: string } | { error: string } {
  const bytes = Buffer.from(image.data, 'base64');
  if (bytes.length > MAX_TRY_IMAGE_BYTES) return { error: tooLargeMessage(bytes.length) };
  const format = sniffFormat(bytes);
  if (!format) return { error: 'not an image (unrecognised file content)' };
  return { bytes, format };
}

/** The top three classes of each image, in the order given; an image that cannot be read gets its reason instead. */
export async function tryImages(project: Project, images: TryImage[], runId?: number): Promise<{ runId: number; results: TryOutResult[] }> {
  const predictor = await openModel(project, runId);
  try {
    const prepared = await Promise.all(
      images.map(async (image) => {
        const read = imageBytes(image);
        return 'error' in read ? read : imagePixels(read.bytes, predictor.imageSize);
      }),
    );
    const readable = prepared.flatMap((outcome) => ('pixels' in outcome ? [outcome.pixels] : []));
    const rows = readable.length ? await predictor.probabilities(readable) : [];
    let next = 0;
    const results = prepared.map((outcome, i): TryOutResult => {
      const name = images[i].name;
      return 'pixels' in outcome ? { name, top: topClasses(rows[next++], predictor.classes) } : { name, error: outcome.error };
    });
    return { runId: predictor.runId, results };
  } finally {
    predictor.dispose();
  }
}

const EXTENSION_OF_FORMAT: Record<string, string> = { jpeg: '.jpg', png: '.png', gif: '.gif', webp: '.webp', bmp: '.bmp', tiff: '.tif', avif: '.avif' };

/**
 * A safe file name for an added image: the base name only (a name from a browser may hold any
 * characters), without those file systems refuse, and with an image extension, since import
 * finds images by their extension.
 */
export function addedFileName(given: string, format: string): string {
  const base = given.split(/[\\/]/).pop()!.replace(/[:*?"<>|\u0000-\u001f]/g, '_').replace(/^[\s.]+|[\s.]+$/g, '');
  const stem = base.slice(0, 100) || 'image';
  return IMAGE_EXTENSIONS.has(path.extname(stem).toLowerCase()) ? stem : `${stem}${EXTENSION_OF_FORMAT[format] ?? '.img'}`;
}

/** Writes the bytes under a name no file in `dir` has yet; 'wx' so a file appearing meanwhile is never overwritten. */
async function writeNewFile(dir: string, name: string, bytes: Buffer): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  const taken = new Set(await fs.readdir(dir));
  for (;;) {
    const file = path.join(dir, uniqueFileName(name, taken));
    try {
      await fs.writeFile(file, bytes, { flag: 'wx' });
      return file;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      taken.add(path.basename(file));
    }
  }
}

/**
 * Makes a tried image a labelled image of the project: copied into added/, imported like any
 * file, then labelled by a person. An image the project already has is labelled where it is.
 */
export async function addTriedImage(project: Project, image: TryImage, classId: number): Promise<{ imageId: number; added: boolean; path: string }> {
  requireClassId(project, classId);
  const read = imageBytes(image);
  if ('error' in read) throw new UserError(`${image.name}: ${read.error}`, 'not_an_image', { name: image.name });
  const sha256 = createHash('sha256').update(read.bytes).digest('hex');
  const known = imageBySha(project.db, sha256);
  if (known && !isOriginalMissing(known.path)) {
    setLabels(project.db, [known.id], classId, 'human', HOST_NAME);
    return { imageId: known.id, added: false, path: known.path };
  }
  const file = await writeNewFile(path.join(project.dir, ADDED_FOLDER), addedFileName(image.name, read.format), read.bytes);
  const summary = await importFiles(project, [file]);
  const imported = imageBySha(project.db, sha256);
  if (summary.errors > 0 || !imported) {
    await fs.rm(file, { force: true });
    throw new UserError(`${image.name}: ${summary.problems[0]?.reason ?? 'it could not be imported'}`, 'not_an_image', { name: image.name });
  }
  setLabels(project.db, [imported.id], classId, 'human', HOST_NAME);
  return { imageId: imported.id, added: true, path: file };
}

export function tryItHandlers(session: Session): Pick<Handlers, 'tryIt.predict' | 'tryIt.add'> {
  return {
    async 'tryIt.predict'({ images, runId }) {
      return tryImages(session.requireProject(), images, runId);
    },
    async 'tryIt.add'({ image, classId }) {
      const project = session.requireProject();
      const added = await addTriedImage(project, image, classId);
      session.emit({ type: 'labels.changed' });
      return { ...added, classes: listClasses(project.db) };
    },
  };
}
