/**
 * The native picker of Try it, main-process side: it reads the image files the user chose, so the
 * page receives their names and bytes and never their paths. Only regular files up to Try it's size
 * limit are read (opened without blocking, so a FIFO cannot hang the main process); what they hold
 * is checked by the core, as for any upload.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { PickedImage } from '../app/contract/bridge.ts';
import { IMAGE_FILE_EXTENSIONS, MAX_TRY_IMAGE_BYTES, tooLargeMessage } from '../app/contract/operations.ts';

/** More at once is a folder's work: the page holds every picked image in memory. */
export const MAX_PICKED_IMAGES = 100;

export const IMAGE_DIALOG_FILTERS = [{ name: 'Images', extensions: [...IMAGE_FILE_EXTENSIONS] }];

export function readPickedImages(files: string[]): Promise<PickedImage[]> {
  return Promise.all(
    files.map((file, index) =>
      index < MAX_PICKED_IMAGES ? readPicked(file) : { name: path.basename(file), error: `not read: pick at most ${MAX_PICKED_IMAGES} images at a time (Predict a folder takes any number)` },
    ),
  );
}

async function readPicked(file: string): Promise<PickedImage> {
  const name = path.basename(file);
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  } catch (error) {
    return { name, error: fsReason(error) };
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) return { name, error: 'not a regular file' };
    if (stat.size === 0) return { name, error: 'empty file (0 bytes)' };
    if (stat.size > MAX_TRY_IMAGE_BYTES) return { name, error: tooLargeMessage(stat.size) };
    const bytes = await handle.readFile();
    if (bytes.length > MAX_TRY_IMAGE_BYTES) return { name, error: tooLargeMessage(bytes.length) }; // it grew since the stat
    return { name, data: bytes.toString('base64') };
  } catch (error) {
    return { name, error: fsReason(error) };
  } finally {
    await handle.close();
  }
}

function fsReason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'file not found';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  return `could not be read (${code ?? (error as Error).message})`;
}
