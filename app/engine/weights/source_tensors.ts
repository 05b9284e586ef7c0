/**
 * Tensors as a checkpoint file holds them, before they become ours: a name, a shape, a stored
 * element type and a way to read the values (as float32) only when the import needs them.
 */
import { UserError } from '../../contract/errors.ts';

export type SourceDtype = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

export interface SourceTensor {
  shape: number[];
  dtype: SourceDtype;
  /** The values in row-major order of `shape`, as float32. */
  read(): Float32Array;
}

export const DTYPE_BYTES: Record<SourceDtype, number> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

export function elementCount(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function isFloating(dtype: SourceDtype): boolean {
  return dtype === 'float32' || dtype === 'float64' || dtype === 'float16' || dtype === 'bfloat16';
}

/** IEEE half precision to float: the stored bits widened, subnormals and infinities included. */
function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** `count` little-endian elements of `dtype` starting at byte `at` of `bytes`, as float32. */
export function decodeElements(bytes: Buffer, dtype: SourceDtype, count: number, at = 0): Float32Array {
  const out = new Float32Array(count);
  const size = DTYPE_BYTES[dtype];
  if (at + count * size > bytes.length) throw new UserError('a tensor in the file is shorter than its shape says', 'weights_damaged');
  if (dtype === 'float32') {
    // Copy through an aligned buffer: the bytes may start at any offset.
    new Uint8Array(out.buffer).set(bytes.subarray(at, at + count * 4));
    return out;
  }
  if (dtype === 'bfloat16') {
    // bfloat16 is the top half of a float32.
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) bits[i] = bytes.readUInt16LE(at + i * 2) << 16;
    return out;
  }
  for (let i = 0; i < count; i++) {
    const p = at + i * size;
    switch (dtype) {
      case 'float64': out[i] = bytes.readDoubleLE(p); break;
      case 'float16': out[i] = halfToFloat(bytes.readUInt16LE(p)); break;
      case 'int64': out[i] = Number(bytes.readBigInt64LE(p)); break;
      case 'int32': out[i] = bytes.readInt32LE(p); break;
      case 'int16': out[i] = bytes.readInt16LE(p); break;
      case 'int8': out[i] = bytes.readInt8(p); break;
      default: out[i] = bytes[p];
    }
  }
  return out;
}

/** "[64, 3, 7, 7]" */
export function shapeText(shape: number[]): string {
  return `[${shape.join(', ')}]`;
}
