/**
 * Training pixels. Every image is decoded once at the training size and kept in
 * cache/pixels-<size>.bin, so epochs read raw RGB rows instead of re-decoding JPEGs. The file is
 * the rows, then a JSON index of which image each row holds, then the index's byte length; new
 * rows stream to disk as they are decoded (no size limit from memory) and the file is replaced by a
 * rename, so a crash never leaves an index that disagrees with its rows.
 */
import { truthLabels, type TruthClass } from '../../store/ground_truth.ts';
import { fsPath } from '../../store/file_paths.ts';
import { imageFiles, testSetImageIds } from '../../store/images.ts';
import fs from 'node:fs';
import path from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { openImage } from '../../media/decode.ts';
import * as tf from '@tensorflow/tfjs';
import type { Project } from '../../store/project.ts';
import type { Split } from '../../contract/domain.ts';
import type { Rng } from '../simclr/random.ts';

interface CacheIndex {
  imageSize: number;
  rows: { imageId: number; sha256: string }[];
}

interface ImageRow {
  id: number;
  path: string;
  sha256: string;
}

export interface CacheProgress {
  decoded: number;
  toDecode: number;
}

export interface CacheOptions {
  signal?: AbortSignal;
  onProgress?: (progress: CacheProgress) => void;
  /** Told about images that cannot be used (file gone or unreadable); they are skipped. */
  warn?: (message: string) => void;
}

const DECODE_CONCURRENCY = 4;

export function cachePath(project: Project, imageSize: number): string {
  return path.join(project.cacheDir, `pixels-${imageSize}.bin`);
}

/**
 * Cached RGB rows of every usable image at one size. Rows are numbered in image id order
 * (`imageIds[i]` is row i) whatever order the file holds them in, so a seeded run sees the same
 * data order however the cache was built.
 */
export class PixelCache {
  readonly rowBytes: number;
  readonly imageIds: number[];
  private readonly fileRows: number[];
  private readonly rowOfImage: Map<number, number>;

  constructor(
    readonly imageSize: number,
    index: CacheIndex,
    private readonly fd: number,
  ) {
    this.rowBytes = imageSize * imageSize * 3;
    const ordered = index.rows.map((row, fileRow) => ({ imageId: row.imageId, fileRow })).sort((a, b) => a.imageId - b.imageId);
    this.imageIds = ordered.map((entry) => entry.imageId);
    this.fileRows = ordered.map((entry) => entry.fileRow);
    this.rowOfImage = new Map(this.imageIds.map((id, row) => [id, row]));
  }

  get count(): number {
    return this.imageIds.length;
  }

  rowOf(imageId: number): number | undefined {
    return this.rowOfImage.get(imageId);
  }

  readRows(rows: ArrayLike<number>): Uint8Array {
    const out = new Uint8Array(rows.length * this.rowBytes);
    for (let i = 0; i < rows.length; i++) fs.readSync(this.fd, out, i * this.rowBytes, this.rowBytes, this.fileRows[rows[i]] * this.rowBytes);
    return out;
  }

  /** A [n, size, size, 3] float32 batch scaled to [0, 1]. */
  batch(rows: ArrayLike<number>): tf.Tensor4D {
    const bytes = this.readRows(rows);
    const floats = new Float32Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) floats[i] = bytes[i] / 255;
    return tf.tensor4d(floats, [rows.length, this.imageSize, this.imageSize, 3]);
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/**
 * Decodes an image file (its path as the store keeps it) to size×size RGB, cropping the centre to
 * keep the aspect ratio. sharp takes a Buffer as image data, not as a path, so a name that is not
 * UTF-8 is read here first.
 */
export async function decodePixels(file: string, imageSize: number): Promise<Buffer> {
  const source = fsPath(file);
  return modelPixels(sharp(typeof source === 'string' ? source : fs.readFileSync(source)), imageSize);
}

/**
 * The same pixels from an image's bytes (an upload, or a file read with the media layer's checks),
 * opened as import opens them: with the pixel limit, and BMP decoded by our own reader.
 */
export function pixelsFromBytes(bytes: Buffer, imageSize: number): Promise<Buffer> {
  return modelPixels(openImage(bytes), imageSize);
}

/** The models' one preprocessing: EXIF rotation, the centred square at `imageSize`, RGB bytes. */
function modelPixels(image: Sharp, imageSize: number): Promise<Buffer> {
  return image.rotate().resize(imageSize, imageSize, { fit: 'cover' }).removeAlpha().toColourspace('srgb').raw().toBuffer();
}

function readIndex(fd: number): CacheIndex | undefined {
  try {
    const size = fs.fstatSync(fd).size;
    const length = Buffer.alloc(4);
    if (size < 4 || fs.readSync(fd, length, 0, 4, size - 4) < 4) return undefined;
    const json = Buffer.alloc(length.readUInt32LE(0));
    fs.readSync(fd, json, 0, json.length, size - 4 - json.length);
    return JSON.parse(json.toString('utf8')) as CacheIndex;
  } catch {
    return undefined; // unreadable cache: rebuild it
  }
}

function openIfExists(file: string): number | undefined {
  try {
    return fs.openSync(file, 'r');
  } catch {
    return undefined;
  }
}

const key = (imageId: number, sha256: string) => `${imageId}:${sha256}`;

/** How many of the project's images the cache at `imageSize` already holds (the rest must be decoded first). */
export function cachedImageCount(project: Project, imageSize: number): number {
  const fd = openIfExists(cachePath(project, imageSize));
  if (fd === undefined) return 0;
  try {
    const index = readIndex(fd);
    if (index?.imageSize !== imageSize) return 0;
    const cached = new Set(index.rows.map((row) => key(row.imageId, row.sha256)));
    return imageFiles(project.db).filter((image) => cached.has(key(image.id, image.sha256))).length;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Opens the pixel cache for `imageSize`, first decoding images the cache doesn't hold yet and
 * dropping rows of images that were removed from the project.
 */
export async function openPixelCache(project: Project, imageSize: number, options: CacheOptions = {}): Promise<PixelCache> {
  const file = cachePath(project, imageSize);
  const images: ImageRow[] = imageFiles(project.db);
  let fd = openIfExists(file);
  const index = fd === undefined ? undefined : readIndex(fd);
  const cachedRow = new Map<string, number>();
  if (index?.imageSize === imageSize) index.rows.forEach((row, i) => cachedRow.set(key(row.imageId, row.sha256), i));
  const kept = images.filter((image) => cachedRow.has(key(image.id, image.sha256)));
  const notCached = images.filter((image) => !cachedRow.has(key(image.id, image.sha256)));
  // Checked up front so a vanished file doesn't make every open rewrite the cache.
  const problems = notCached.filter((image) => !fs.existsSync(fsPath(image.path))).map((image) => ({ path: image.path, reason: 'file not found' }));
  const toDecode = notCached.filter((image) => fs.existsSync(fsPath(image.path)));
  if (toDecode.length > 0 || kept.length !== cachedRow.size) {
    const rebuilt = await rebuild(file, imageSize, { fd, cachedRow, kept }, toDecode, problems, options);
    if (fd !== undefined) fs.closeSync(fd);
    fd = rebuilt;
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 3).map((p) => `${p.path} (${p.reason})`).join(', ');
    options.warn?.(`skipped ${problems.length} image(s) that could not be read: ${shown}${problems.length > 3 ? ', …' : ''}`);
  }
  return new PixelCache(imageSize, readIndex(fd!)!, fd!);
}

/** Writes a new cache file (old rows still wanted, then newly decoded ones) and opens it. */
async function rebuild(
  file: string,
  imageSize: number,
  old: { fd: number | undefined; cachedRow: Map<string, number>; kept: ImageRow[] },
  toDecode: ImageRow[],
  problems: { path: string; reason: string }[],
  options: CacheOptions,
): Promise<number> {
  const rowBytes = imageSize * imageSize * 3;
  // Left by a process killed mid-rebuild; only the project's writer rebuilds, so none is in use.
  for (const name of fs.readdirSync(path.dirname(file))) {
    if (name.startsWith(`${path.basename(file)}.tmp-`)) fs.rmSync(path.join(path.dirname(file), name), { force: true });
  }
  const temp = `${file}.tmp-${process.pid}`;
  const out = fs.openSync(temp, 'w');
  const rows: CacheIndex['rows'] = [];
  try {
    const buffer = Buffer.alloc(rowBytes);
    for (const image of old.kept) {
      fs.readSync(old.fd!, buffer, 0, rowBytes, old.cachedRow.get(key(image.id, image.sha256))! * rowBytes);
      fs.writeSync(out, buffer);
      rows.push({ imageId: image.id, sha256: image.sha256 });
    }
    await decodeInto(out, rows, toDecode, imageSize, problems, options);
    const json = Buffer.from(JSON.stringify({ imageSize, rows } satisfies CacheIndex), 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32LE(json.length, 0);
    fs.writeSync(out, json);
    fs.writeSync(out, length);
    fs.fsyncSync(out);
  } catch (error) {
    fs.closeSync(out);
    fs.rmSync(temp, { force: true });
    throw error;
  }
  fs.closeSync(out);
  fs.renameSync(temp, file);
  return fs.openSync(file, 'r');
}

/** Decodes images in parallel, appending each row to `out` as it arrives and each failure to `problems`. */
async function decodeInto(
  out: number,
  rows: CacheIndex['rows'],
  images: ImageRow[],
  imageSize: number,
  problems: { path: string; reason: string }[],
  options: CacheOptions,
): Promise<void> {
  let next = 0;
  let decoded = 0;
  const worker = async () => {
    while (next < images.length) {
      options.signal?.throwIfAborted();
      const image = images[next++];
      try {
        fs.writeSync(out, await decodePixels(image.path, imageSize));
        rows.push({ imageId: image.id, sha256: image.sha256 });
      } catch (error) {
        problems.push({ path: image.path, reason: fs.existsSync(fsPath(image.path)) ? (error as Error).message : 'file not found' });
      }
      options.onProgress?.({ decoded: ++decoded, toDecode: images.length });
    }
  };
  await Promise.all(Array.from({ length: DECODE_CONCURRENCY }, worker));
}

/** Cache rows of the images unlabelled training may use: all but the held-out test set. */
export function trainableRows(project: Project, cache: PixelCache): number[] {
  const heldOut = testSetImageIds(project.db);
  return cache.imageIds.flatMap((id, row) => (heldOut.has(id) ? [] : [row]));
}

/** Cache rows and class indices (positions in `classes`) of the labelled images of one split. */
export interface LabelledRows {
  rows: number[];
  labels: number[];
}

export function labelledRows(project: Project, cache: PixelCache, split: Split, classes: TruthClass[]): LabelledRows {
  const classIndex = new Map(classes.map((c, index) => [c.id, index]));
  const labelled = truthLabels(project.db, split);
  const result: LabelledRows = { rows: [], labels: [] };
  for (const { imageId, classId } of labelled) {
    const row = cache.rowOf(imageId);
    const label = classIndex.get(classId);
    if (row === undefined || label === undefined) continue; // unreadable image, or a class newer than the model
    result.rows.push(row);
    result.labels.push(label);
  }
  return result;
}

/**
 * The order of one epoch's examples (positions into the set). With `balanced`, positions are drawn
 * with replacement so every class is equally likely, whatever its number of labels.
 */
export function epochOrder(count: number, rng: Rng, balanced?: { labels: number[] }): number[] {
  if (!balanced) return rng.shuffled(Array.from({ length: count }, (_, i) => i));
  const byClass = new Map<number, number[]>();
  balanced.labels.forEach((label, position) => {
    const members = byClass.get(label) ?? [];
    members.push(position);
    byClass.set(label, members);
  });
  const groups = [...byClass.values()];
  return Array.from({ length: count }, () => {
    const group = groups[rng.int(groups.length)];
    return group[rng.int(group.length)];
  });
}
