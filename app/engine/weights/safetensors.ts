/**
 * .safetensors (huggingface/safetensors): an 8-byte little-endian header length, a JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`, then the raw
 * little-endian tensor bytes, offsets counted from the end of the header. Nothing in it runs.
 */
import { UserError } from '../../contract/errors.ts';
import type { ByteReader } from './byte_reader.ts';
import { DTYPE_BYTES, decodeElements, elementCount, type SourceDtype, type SourceTensor } from './source_tensors.ts';

const DTYPES: Record<string, SourceDtype> = {
  F32: 'float32',
  F64: 'float64',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};
/** Headers are small (a line per tensor); a larger length means this is not a safetensors file. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

function damaged(reader: ByteReader, why: string): UserError {
  return new UserError(`${reader.file} is not a valid .safetensors file: ${why}`, 'weights_damaged', { file: reader.file });
}

function parseHeader(reader: ByteReader): { header: Record<string, unknown>; dataStart: number } {
  if (reader.size < 8) throw damaged(reader, 'it is shorter than its header length');
  const length = Number(reader.read(0, 8).readBigUInt64LE(0));
  if (length > MAX_HEADER_BYTES || 8 + length > reader.size) throw damaged(reader, `its header length (${length} bytes) does not fit the file`);
  try {
    const header = JSON.parse(reader.read(8, length).toString('utf8')) as unknown;
    if (header === null || typeof header !== 'object' || Array.isArray(header)) throw new Error('not an object');
    return { header: header as Record<string, unknown>, dataStart: 8 + length };
  } catch (error) {
    throw damaged(reader, `its header is not a JSON object (${(error as Error).message})`);
  }
}

function tensorOf(reader: ByteReader, name: string, value: unknown, dataStart: number): SourceTensor {
  const entry = value as Partial<HeaderEntry>;
  const dtype = DTYPES[entry?.dtype ?? ''];
  if (!dtype) throw new UserError(`${reader.file}: tensor ${name} has element type ${String(entry?.dtype)}, which is not read (F32, F16, BF16, F64 and integers are)`, 'weights_unsupported', { file: reader.file });
  const shape = entry.shape;
  const offsets = entry.data_offsets;
  if (!Array.isArray(shape) || !shape.every((n) => Number.isInteger(n) && n >= 0) || !Array.isArray(offsets) || offsets.length !== 2) {
    throw damaged(reader, `tensor ${name} has no valid shape and offsets`);
  }
  const [begin, end] = offsets;
  const count = elementCount(shape);
  if (end - begin !== count * DTYPE_BYTES[dtype] || dataStart + end > reader.size) throw damaged(reader, `tensor ${name}'s bytes do not match its shape ${JSON.stringify(shape)}`);
  return { shape, dtype, read: () => decodeElements(reader.read(dataStart + begin, end - begin), dtype, count) };
}

/** The tensors, and the header's string-to-string `__metadata__` (empty when there is none). */
export function readSafetensors(reader: ByteReader): { tensors: Map<string, SourceTensor>; metadata: Record<string, unknown> } {
  const { header, dataStart } = parseHeader(reader);
  const tensors = new Map<string, SourceTensor>();
  for (const [name, value] of Object.entries(header)) {
    if (name !== '__metadata__') tensors.set(name, tensorOf(reader, name, value, dataStart));
  }
  const metadata = header.__metadata__;
  return { tensors, metadata: metadata !== null && typeof metadata === 'object' ? (metadata as Record<string, unknown>) : {} };
}
