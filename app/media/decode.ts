import type { ImageRecord } from '../store/images.ts';
import fs, { constants as fsConstants, type FileHandle } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { fsPath } from '../store/file_paths.ts';
import { decodeBmp } from './bmp.ts';
import { describeFsError, NOT_A_REGULAR_FILE } from './scan.ts';

/** Larger images are refused: decoding them could exhaust memory (decompression bombs). */
export const MAX_PIXELS = 100_000_000;
/**
 * Larger files are refused before any of them is read: each file is read whole into memory (16 at a
 * time), and no image we would accept is this big: a 100-megapixel (MAX_PIXELS) photo compresses to
 * a few tens of MB, and even an uncompressed 8-bit RGB bitmap of 85 megapixels fits.
 */
export const MAX_FILE_BYTES = 256 * 1024 * 1024;
/** Enough of a file's start for sniffFormat. */
const SNIFF_BYTES = 16;
export const THUMBNAIL_SIZE = 128;
const SMALL_FILE_BYTES = 48 * 1024;

/** What decoding a file gives: the image record but for where it came from. */
export type DecodedImage = Omit<ImageRecord, 'path' | 'batchId' | 'testSet'>;

export class DecodeError extends Error {}

/**
 * Reads, hashes and validates one image (`file` as the store keeps paths, file_paths.ts) and makes
 * its thumbnail; throws DecodeError with a reason a user can read.
 */
export async function decodeForImport(file: string): Promise<DecodedImage> {
  const bytes = await readImageFile(file);
  const format = sniffFormat(bytes);
  if (!format) throw new DecodeError('not an image (unrecognised file content)');
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const small = await decodeSmallAsOwnThumbnail(bytes, format);
  if (small) return { sha256, size: bytes.length, format, ...small };
  // One decode both validates the whole file and yields the thumbnail; small images come out at
  // their own size, so only larger ones need a second look at the header for their dimensions.
  let result;
  try {
    result = await openImage(bytes, format)
      .rotate()
      .resize(THUMBNAIL_SIZE, THUMBNAIL_SIZE, { fit: 'inside', withoutEnlargement: true })
      .webp({ quality: 80 })
      .toBuffer({ resolveWithObject: true });
  } catch (error) {
    throw new DecodeError(await describeDecodeFailure(bytes, format, error));
  }
  const fitsThumbnail = result.info.width < THUMBNAIL_SIZE && result.info.height < THUMBNAIL_SIZE;
  const { width, height } = fitsThumbnail ? result.info : await orientedSize(bytes, format);
  return { sha256, size: bytes.length, width, height, format, thumbnail: result.data };
}

/**
 * The whole file, once what was opened is known to be a regular file of at most MAX_FILE_BYTES that
 * starts like an image. The checks are on the opened file itself, since the path may have been
 * swapped for something else since the scan looked at it.
 */
export async function readImageFile(file: string): Promise<Buffer> {
  let handle: FileHandle;
  try {
    // Non-blocking, or opening a FIFO would wait for a writer forever; no effect on regular files.
    handle = await fs.open(fsPath(file), fsConstants.O_RDONLY | (fsConstants.O_NONBLOCK ?? 0));
  } catch (error) {
    throw new DecodeError(describeFsError(error));
  }
  try {
    const stat = await handle.stat();
    const size = stat.size;
    if (!stat.isFile()) throw new DecodeError(NOT_A_REGULAR_FILE);
    if (size === 0) throw new DecodeError('empty file (0 bytes)');
    if (size > MAX_FILE_BYTES) throw new DecodeError(`file is ${formatBytes(size)}, above the ${formatBytes(MAX_FILE_BYTES)} limit for an image`);
    if (!sniffFormat(await readAt(handle, Math.min(size, SNIFF_BYTES)))) throw new DecodeError('not an image (unrecognised file content)');
    return await readAt(handle, size);
  } catch (error) {
    throw error instanceof DecodeError ? error : new DecodeError(describeFsError(error));
  } finally {
    await handle.close();
  }
}

/** Up to `length` bytes from the start of the file (fewer if it shrank meanwhile). */
async function readAt(handle: FileHandle, length: number): Promise<Buffer> {
  const bytes = Buffer.allocUnsafe(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(bytes, filled, length - filled, filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return bytes.subarray(0, filled);
}

function formatBytes(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${Math.round(bytes / 2 ** 20)} MiB`;
}

/**
 * A JPEG or PNG no larger than a thumbnail and with no EXIF orientation is its own thumbnail: it
 * only needs a full decode to prove it is intact, which is about twice as fast as re-encoding it.
 * This is the common case for data sets of small images (CIFAR-style).
 */
async function decodeSmallAsOwnThumbnail(bytes: Buffer, format: string) {
  const candidate = bytes.length <= SMALL_FILE_BYTES && ((format === 'jpeg' && !hasExif(bytes)) || (format === 'png' && !bytes.includes('eXIf')));
  if (!candidate) return null;
  let info;
  try {
    ({ info } = await openImage(bytes, format).raw().toBuffer({ resolveWithObject: true }));
  } catch (error) {
    throw new DecodeError(await describeDecodeFailure(bytes, format, error));
  }
  if (info.width > THUMBNAIL_SIZE || info.height > THUMBNAIL_SIZE) return null;
  return { width: info.width, height: info.height, thumbnail: bytes };
}

/** Whether a JPEG carries an EXIF (APP1) segment, which may rotate it. */
function hasExif(jpeg: Buffer): boolean {
  let at = 2;
  while (at + 4 <= jpeg.length && jpeg[at] === 0xff) {
    const marker = jpeg[at + 1];
    if (marker === 0xda) return false; // start of scan: no more metadata segments
    if (marker === 0xe1 && jpeg.toString('latin1', at + 4, at + 8) === 'Exif') return true;
    at += 2 + jpeg.readUInt16BE(at + 2);
  }
  return false;
}

/** A sharp pipeline over the file's pixels; also used to decode images for training. */
export function openImage(bytes: Buffer, format = sniffFormat(bytes)): ReturnType<typeof sharp> {
  if (format !== 'bmp') return sharp(bytes, { limitInputPixels: MAX_PIXELS, failOn: 'truncated', sequentialRead: true });
  const { width, height } = bmpSize(bytes);
  if (width * height > MAX_PIXELS) throw new Error('Input image exceeds pixel limit');
  const raw = decodeBmp(bytes);
  return sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: raw.channels } });
}

function bmpSize(bytes: Buffer): { width: number; height: number } {
  return bytes.length >= 26 ? { width: Math.abs(bytes.readInt32LE(18)), height: Math.abs(bytes.readInt32LE(22)) } : { width: 0, height: 0 };
}

async function orientedSize(bytes: Buffer, format: string): Promise<{ width: number; height: number }> {
  if (format === 'bmp') return bmpSize(bytes);
  const meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  const swapped = (meta.orientation ?? 1) >= 5; // EXIF orientations 5-8 turn the image a quarter
  return swapped ? { width: meta.height!, height: meta.width! } : { width: meta.width!, height: meta.height! };
}

export async function describeDecodeFailure(bytes: Buffer, format: string, error: unknown): Promise<string> {
  const message = String((error as Error).message ?? error).split('\n')[0].trim();
  if (/pixel limit/i.test(message)) {
    const { width, height } = await orientedSize(bytes, format);
    return `image is ${width}x${height} pixels, above the limit of ${MAX_PIXELS / 1e6} megapixels`;
  }
  return `corrupt or truncated image (${message})`;
}

/** The image format from the file's first bytes, whatever its extension says. */
export function sniffFormat(bytes: Buffer): string | null {
  const ascii = (start: number, end: number) => bytes.subarray(start, end).toString('latin1');
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return 'jpeg';
  if (ascii(1, 4) === 'PNG') return 'png';
  if (ascii(0, 4) === 'GIF8') return 'gif';
  if (ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP') return 'webp';
  if (ascii(0, 2) === 'BM') return 'bmp';
  if (ascii(0, 4) === 'II*\0' || ascii(0, 4) === 'MM\0*') return 'tiff';
  if (ascii(4, 8) === 'ftyp' && /avi[fs]|heic|mif1/.test(ascii(8, 12))) return 'avif';
  return null;
}

/** Content type of a stored thumbnail (WebP, or a small original JPEG/PNG kept as it is). */
export function thumbnailMimeType(thumbnail: Buffer): string {
  return `image/${sniffFormat(thumbnail) ?? 'webp'}`;
}
