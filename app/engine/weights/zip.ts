/**
 * The few parts of the ZIP format a PyTorch checkpoint uses (torch.save writes a zip since 1.6):
 * the end-of-central-directory record (and its ZIP64 form, for files past 4 GiB), the central
 * directory, local headers, and stored or deflated entries. Entries are read on demand.
 */
import zlib from 'node:zlib';
import { UserError } from '../../contract/errors.ts';
import type { ByteReader } from './byte_reader.ts';

const END_OF_DIRECTORY = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_END_OF_DIRECTORY = 0x06064b50;
const DIRECTORY_ENTRY = 0x02014b50;
const LOCAL_HEADER = 0x04034b50;
const ZIP64_EXTRA = 0x0001;
/** The end record is 22 bytes plus a comment of at most 64 KiB. */
const END_SEARCH = 22 + 0xffff;
const STORED = 0;
const DEFLATED = 8;

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

/** The first four bytes of every zip file with at least one entry. */
export function looksLikeZip(reader: ByteReader): boolean {
  return reader.size >= 4 && reader.read(0, 4).readUInt32LE(0) === LOCAL_HEADER;
}

export class ZipArchive {
  private constructor(
    private readonly reader: ByteReader,
    readonly entries: Map<string, ZipEntry>,
  ) {}

  static open(reader: ByteReader): ZipArchive {
    const directory = locateDirectory(reader);
    return new ZipArchive(reader, readDirectory(reader, directory.offset, directory.size, directory.count));
  }

  /** An entry's bytes, inflated when deflated. */
  read(name: string): Buffer {
    const entry = this.entries.get(name);
    if (!entry) throw new UserError(`${this.reader.file} has no entry ${name}`, 'weights_damaged', { file: this.reader.file });
    return this.readRange(entry, 0, entry.size);
  }

  /** Bytes [start, start + length) of an entry: stored entries are read in place, deflated ones inflated first. */
  readRange(entry: ZipEntry, start: number, length: number): Buffer {
    if (start + length > entry.size) throw new UserError(`${this.reader.file}: ${entry.name} is shorter than its tensors say`, 'weights_damaged', { file: this.reader.file });
    const header = this.reader.read(entry.localHeaderOffset, 30);
    if (header.readUInt32LE(0) !== LOCAL_HEADER) throw new UserError(`${this.reader.file} is damaged: no local header for ${entry.name}`, 'weights_damaged', { file: this.reader.file });
    const dataStart = entry.localHeaderOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
    if (entry.method === STORED) return this.reader.read(dataStart + start, length);
    if (entry.method === DEFLATED) return zlib.inflateRawSync(this.reader.read(dataStart, entry.compressedSize)).subarray(start, start + length);
    throw new UserError(`${this.reader.file}: ${entry.name} uses zip compression method ${entry.method}; only stored and deflated entries are read`, 'weights_unsupported', { file: this.reader.file });
  }
}

function locateDirectory(reader: ByteReader): { offset: number; size: number; count: number } {
  const tailStart = Math.max(0, reader.size - END_SEARCH);
  const tail = reader.read(tailStart, reader.size - tailStart);
  let at = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === END_OF_DIRECTORY) {
      at = i;
      break;
    }
  }
  if (at < 0) throw new UserError(`${reader.file} is not a complete zip file (no central directory): truncated or damaged`, 'weights_damaged', { file: reader.file });
  const count = tail.readUInt16LE(at + 10);
  const size = tail.readUInt32LE(at + 12);
  const offset = tail.readUInt32LE(at + 16);
  if (count !== 0xffff && size !== 0xffffffff && offset !== 0xffffffff) return { offset, size, count };
  // ZIP64: the locator sits just before the end record and points at the 64-bit end record.
  const locatorAt = tailStart + at - 20;
  const locator = reader.read(locatorAt, 20);
  if (locator.readUInt32LE(0) !== ZIP64_LOCATOR) throw new UserError(`${reader.file} is damaged: its ZIP64 locator is missing`, 'weights_damaged', { file: reader.file });
  const record = reader.read(Number(locator.readBigUInt64LE(8)), 56);
  if (record.readUInt32LE(0) !== ZIP64_END_OF_DIRECTORY) throw new UserError(`${reader.file} is damaged: its ZIP64 end record is missing`, 'weights_damaged', { file: reader.file });
  return { count: Number(record.readBigUInt64LE(32)), size: Number(record.readBigUInt64LE(40)), offset: Number(record.readBigUInt64LE(48)) };
}

function readDirectory(reader: ByteReader, offset: number, size: number, count: number): Map<string, ZipEntry> {
  const bytes = reader.read(offset, size);
  const entries = new Map<string, ZipEntry>();
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + 46 > bytes.length || bytes.readUInt32LE(at) !== DIRECTORY_ENTRY) throw new UserError(`${reader.file} is damaged: its central directory is cut short`, 'weights_damaged', { file: reader.file });
    const flags = bytes.readUInt16LE(at + 8);
    const nameLength = bytes.readUInt16LE(at + 28);
    const extraLength = bytes.readUInt16LE(at + 30);
    const commentLength = bytes.readUInt16LE(at + 32);
    const name = bytes.toString('utf8', at + 46, at + 46 + nameLength);
    if (flags & 1) throw new UserError(`${reader.file} is encrypted (${name})`, 'weights_unsupported', { file: reader.file });
    const entry: ZipEntry = {
      name,
      method: bytes.readUInt16LE(at + 10),
      compressedSize: bytes.readUInt32LE(at + 20),
      size: bytes.readUInt32LE(at + 24),
      localHeaderOffset: bytes.readUInt32LE(at + 42),
    };
    applyZip64(entry, bytes.subarray(at + 46 + nameLength, at + 46 + nameLength + extraLength));
    entries.set(name, entry);
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** Fields set to 0xffffffff in the directory are in the ZIP64 extra field instead, in this order. */
function applyZip64(entry: ZipEntry, extra: Buffer): void {
  for (let at = 0; at + 4 <= extra.length; ) {
    const id = extra.readUInt16LE(at);
    const length = extra.readUInt16LE(at + 2);
    if (id === ZIP64_EXTRA) {
      let field = at + 4;
      const next = () => {
        const value = Number(extra.readBigUInt64LE(field));
        field += 8;
        return value;
      };
      if (entry.size === 0xffffffff) entry.size = next();
      if (entry.compressedSize === 0xffffffff) entry.compressedSize = next();
      if (entry.localHeaderOffset === 0xffffffff) entry.localHeaderOffset = next();
      return;
    }
    at += 4 + length;
  }
}
