/**
 * Images for the studio's two front ends, by id only: `contrast serve` answers /api/thumb/<id>
 * and /api/image/<id> with this, and so does the desktop core for app://studio/api/...
 *
 * An original is served only while it is still the file that was imported: a regular file of
 * the recorded size and SHA-256. The path may be a symbolic link (import follows links, so a
 * linked dataset is normal); what matters is what it points at. A file swapped for a link to
 * /etc/shadow, a FIFO, a device or any other content is refused, so the id of an image can never
 * read anything but that image.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import type Database from 'better-sqlite3';
import { fsPath } from '../store/file_paths.ts';
import { getOriginal, getThumbnail } from '../store/images.ts';
import { sniffImageType } from './mime.ts';

export type MediaKind = 'thumb' | 'image';

export type MediaResult =
  | { ok: true; contentType: string; body: Buffer }
  | { ok: false; status: number; error: { code: string; message: string } };

// O_NONBLOCK: opening a FIFO swapped in for the file returns at once instead of waiting for a writer.
const OPEN_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0);

export async function readMedia(db: Database.Database, kind: MediaKind, imageId: number): Promise<MediaResult> {
  if (kind === 'thumb') {
    const thumbnail = getThumbnail(db, imageId);
    return thumbnail ? { ok: true, contentType: sniffImageType(thumbnail), body: thumbnail } : unknownImage(imageId);
  }
  return readOriginal(db, imageId);
}

async function readOriginal(db: Database.Database, imageId: number): Promise<MediaResult> {
  const original = getOriginal(db, imageId);
  if (!original) return unknownImage(imageId);
  let file: fs.promises.FileHandle;
  try {
    file = await fs.promises.open(fsPath(original.path), OPEN_FLAGS);
  } catch {
    return refused(404, 'file_missing', `the file of image ${imageId} is gone: ${original.path}`);
  }
  const changed = (how: string) =>
    refused(409, 'file_changed', `the file of image ${imageId} is not the one imported (${how}), so it is not shown: ${original.path}`);
  try {
    // Every check is on the opened handle, so the path cannot be swapped between check and read.
    const stat = await file.stat();
    if (!stat.isFile()) return changed('it is no longer a regular file');
    if (stat.size !== original.size) return changed(`${stat.size} bytes instead of ${original.size}`);
    const body = await file.readFile();
    if (createHash('sha256').update(body).digest('hex') !== original.sha256) return changed('its content differs');
    return { ok: true, contentType: sniffImageType(body), body };
  } finally {
    await file.close();
  }
}

function unknownImage(imageId: number): MediaResult {
  return refused(404, 'not_found', `no image ${imageId} in this project`);
}

function refused(status: number, code: string, message: string): MediaResult {
  return { ok: false, status, error: { code, message } };
}
