/**
 * Decodes Windows BMP files, which sharp's bundled libvips cannot read. Handles the uncompressed
 * forms cameras and tools write (1/4/8-bit palette, 16/24/32-bit, bit-field masks, top-down or
 * bottom-up); RLE-compressed files are refused with a reason.
 */
export interface RawImage {
  data: Buffer;
  width: number;
  height: number;
  channels: 3;
}

const BI_RGB = 0;
const BI_BITFIELDS = 3;

export function decodeBmp(bytes: Buffer): RawImage {
  if (bytes.length < 54 || bytes.toString('latin1', 0, 2) !== 'BM') throw new Error('not a BMP file');
  const pixelOffset = bytes.readUInt32LE(10);
  const headerSize = bytes.readUInt32LE(14);
  const width = bytes.readInt32LE(18);
  const rawHeight = bytes.readInt32LE(22);
  const bits = bytes.readUInt16LE(28);
  const compression = bytes.readUInt32LE(30);
  const height = Math.abs(rawHeight);
  if (width <= 0 || height === 0) throw new Error('BMP has no pixels');
  if (compression !== BI_RGB && compression !== BI_BITFIELDS) throw new Error('compressed BMP (RLE) is not supported');
  const rowBytes = Math.ceil((width * bits) / 32) * 4;
  if (pixelOffset + rowBytes * height > bytes.length) throw new Error('truncated BMP');
  const palette = bits <= 8 ? readPalette(bytes, 14 + headerSize, bits) : [];
  const masks = compression === BI_BITFIELDS ? readMasks(bytes, headerSize) : defaultMasks(bits);
  const out = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    const row = pixelOffset + (rawHeight > 0 ? height - 1 - y : y) * rowBytes;
    for (let x = 0; x < width; x++) {
      const rgb = bits <= 8 ? palette[paletteIndex(bytes, row, x, bits)] ?? [0, 0, 0] : maskedPixel(bytes, row, x, bits, masks);
      out.set(rgb, (y * width + x) * 3);
    }
  }
  return { data: out, width, height, channels: 3 };
}

function readPalette(bytes: Buffer, offset: number, bits: number): number[][] {
  const colours = [];
  for (let i = 0; i < 1 << bits && offset + i * 4 + 2 < bytes.length; i++) {
    const at = offset + i * 4;
    colours.push([bytes[at + 2], bytes[at + 1], bytes[at]]);
  }
  return colours;
}

function paletteIndex(bytes: Buffer, row: number, x: number, bits: number): number {
  const bitOffset = x * bits;
  const byte = bytes[row + (bitOffset >> 3)];
  return (byte >> (8 - bits - (bitOffset & 7))) & ((1 << bits) - 1);
}

type Masks = [number, number, number];

function defaultMasks(bits: number): Masks {
  return bits === 16 ? [0x7c00, 0x03e0, 0x001f] : [0xff0000, 0x00ff00, 0x0000ff];
}

function readMasks(bytes: Buffer, headerSize: number): Masks {
  const at = headerSize >= 52 ? 54 : 14 + headerSize; // V4/V5 headers hold the masks inside the header
  return [bytes.readUInt32LE(at), bytes.readUInt32LE(at + 4), bytes.readUInt32LE(at + 8)];
}

function maskedPixel(bytes: Buffer, row: number, x: number, bits: number, masks: Masks): number[] {
  const at = row + x * (bits / 8);
  const value = bits === 16 ? bytes.readUInt16LE(at) : bits === 24 ? bytes.readUIntLE(at, 3) : bytes.readUInt32LE(at);
  return masks.map((mask) => scaleMasked(value, mask));
}

function scaleMasked(value: number, mask: number): number {
  if (mask === 0) return 0;
  const shift = Math.log2(mask & -mask);
  const max = mask >>> shift;
  return Math.round((((value & mask) >>> shift) * 255) / max);
}
