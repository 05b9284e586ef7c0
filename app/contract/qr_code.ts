/**
 * A QR code encoder for invitation links (ISO/IEC 18004): byte mode, error correction level M,
 * versions 1 to 10 (up to 213 bytes), the mask with the lowest penalty. Shared by the studio's
 * Invite teammates dialog (drawn as SVG) and `contrast invite` (drawn with block characters),
 * so it imports nothing. The matrix has no quiet zone; whoever draws it adds four light modules.
 */

/** Rows of modules, true for dark, without the quiet zone. */
export type QrMatrix = boolean[][];

/** Error correction level M for one version: codewords in all, EC codewords per block, data codewords of each block. */
interface VersionLayout {
  totalCodewords: number;
  ecPerBlock: number;
  blockSizes: number[];
}

/** ISO 18004 table 9, level M, versions 1–10. */
const LEVEL_M: VersionLayout[] = [
  { totalCodewords: 26, ecPerBlock: 10, blockSizes: [16] },
  { totalCodewords: 44, ecPerBlock: 16, blockSizes: [28] },
  { totalCodewords: 70, ecPerBlock: 26, blockSizes: [44] },
  { totalCodewords: 100, ecPerBlock: 18, blockSizes: [32, 32] },
  { totalCodewords: 134, ecPerBlock: 24, blockSizes: [43, 43] },
  { totalCodewords: 172, ecPerBlock: 16, blockSizes: [27, 27, 27, 27] },
  { totalCodewords: 196, ecPerBlock: 18, blockSizes: [31, 31, 31, 31] },
  { totalCodewords: 242, ecPerBlock: 22, blockSizes: [38, 38, 39, 39] },
  { totalCodewords: 292, ecPerBlock: 22, blockSizes: [36, 36, 36, 37, 37] },
  { totalCodewords: 346, ecPerBlock: 26, blockSizes: [43, 43, 43, 43, 44] },
];

/** Centres of the alignment patterns in each direction, versions 1–10 (annex E). */
const ALIGNMENT_CENTRES: number[][] = [[], [6, 18], [6, 22], [6, 26], [6, 30], [6, 34], [6, 22, 38], [6, 24, 42], [6, 26, 46], [6, 28, 50]];

const BYTE_MODE = 0b0100;
/** Level M's two bits in the format information. */
const LEVEL_M_BITS = 0b00;
const FORMAT_GENERATOR = 0b10100110111;
const FORMAT_XOR = 0b101010000010010;
const VERSION_GENERATOR = 0b1111100100101;

export const QR_MAX_BYTES = Math.floor((8 * dataCapacity(LEVEL_M.length) - 4 - charCountBits(LEVEL_M.length)) / 8);

/** The QR code of `text` (UTF-8 bytes), in the smallest version that holds it. */
export function encodeQr(text: string): QrMatrix {
  const bytes = new TextEncoder().encode(text);
  const version = LEVEL_M.findIndex((_, i) => charCountBits(i + 1) + 4 + 8 * bytes.length <= 8 * dataCapacity(i + 1)) + 1;
  if (version === 0) throw new Error(`a QR code of versions 1-10 holds at most ${QR_MAX_BYTES} bytes; this text has ${bytes.length}`);
  return encodeQrWithMask(text, version, bestMask(text, version));
}

/** One fixed version and mask (0–7): what the mask choice compares, and what tests pin down. */
export function encodeQrWithMask(text: string, version: number, mask: number): QrMatrix {
  const grid = new ModuleGrid(version);
  grid.drawFunctionPatterns();
  grid.placeData(interleave(version, dataCodewords(new TextEncoder().encode(text), version)));
  grid.applyMask(mask);
  grid.drawFormat(mask);
  return grid.modules;
}

function bestMask(text: string, version: number): number {
  let best = 0;
  let lowest = Infinity;
  for (let mask = 0; mask < 8; mask++) {
    const score = penalty(encodeQrWithMask(text, version, mask));
    if (score < lowest) [best, lowest] = [mask, score];
  }
  return best;
}

function dataCapacity(version: number): number {
  return LEVEL_M[version - 1].blockSizes.reduce((sum, size) => sum + size, 0);
}

function charCountBits(version: number): number {
  return version <= 9 ? 8 : 16;
}

/** Mode, count, the bytes, the terminator and padding up to the version's data capacity. */
function dataCodewords(bytes: Uint8Array, version: number): number[] {
  const bits: number[] = [];
  const push = (value: number, length: number) => {
    for (let i = length - 1; i >= 0; i--) bits.push((value >>> i) & 1);
  };
  push(BYTE_MODE, 4);
  push(bytes.length, charCountBits(version));
  for (const byte of bytes) push(byte, 8);
  const capacityBits = 8 * dataCapacity(version);
  push(0, Math.min(4, capacityBits - bits.length));
  push(0, (8 - (bits.length % 8)) % 8);
  const codewords: number[] = [];
  for (let i = 0; i < bits.length; i += 8) codewords.push(bits.slice(i, i + 8).reduce((value, bit) => (value << 1) | bit, 0));
  // The standard's alternating pad codewords.
  for (let pad = 0; codewords.length < capacityBits / 8; pad++) codewords.push(pad % 2 === 0 ? 0xec : 0x11);
  return codewords;
}

/** Splits the data into the version's blocks, adds each block's error correction and interleaves them column-wise. */
function interleave(version: number, data: number[]): number[] {
  const { ecPerBlock, blockSizes } = LEVEL_M[version - 1];
  const blocks: number[][] = [];
  let start = 0;
  for (const size of blockSizes) {
    blocks.push(data.slice(start, start + size));
    start += size;
  }
  const corrections = blocks.map((block) => reedSolomonRemainder(block, ecPerBlock));
  const out: number[] = [];
  for (let i = 0; i < Math.max(...blockSizes); i++) for (const block of blocks) if (i < block.length) out.push(block[i]);
  for (let i = 0; i < ecPerBlock; i++) for (const correction of corrections) out.push(correction[i]);
  return out;
}

/** GF(256) with the field polynomial x^8 + x^4 + x^3 + x^2 + 1, as exp/log tables. */
const GF_EXP = new Uint8Array(512);
const GF_LOG = new Uint8Array(256);
{
  let value = 1;
  for (let power = 0; power < 255; power++) {
    GF_EXP[power] = value;
    GF_LOG[value] = power;
    value <<= 1;
    if (value & 0x100) value ^= 0x11d;
  }
  for (let power = 255; power < 512; power++) GF_EXP[power] = GF_EXP[power - 255];
}

function gfMultiply(a: number, b: number): number {
  return a === 0 || b === 0 ? 0 : GF_EXP[GF_LOG[a] + GF_LOG[b]];
}

/** The generator polynomial (x - α^0)…(x - α^(degree-1)), highest coefficient (always 1) left out. */
function generatorPolynomial(degree: number): number[] {
  let coefficients = [1];
  for (let root = 0; root < degree; root++) {
    const next = new Array<number>(coefficients.length + 1).fill(0);
    coefficients.forEach((c, i) => {
      next[i] ^= c;
      next[i + 1] ^= gfMultiply(c, GF_EXP[root]);
    });
    coefficients = next;
  }
  return coefficients.slice(1);
}

/** The error correction codewords: the remainder of data·x^degree divided by the generator. */
export function reedSolomonRemainder(data: number[], degree: number): number[] {
  const generator = generatorPolynomial(degree);
  const remainder = new Array<number>(degree).fill(0);
  for (const codeword of data) {
    const factor = codeword ^ remainder.shift()!;
    remainder.push(0);
    generator.forEach((g, i) => (remainder[i] ^= gfMultiply(g, factor)));
  }
  return remainder;
}

/** The remainder of value·x^(degree of generator) divided by the generator over GF(2), for the BCH-coded format and version bits. */
function bchRemainder(value: number, generator: number): number {
  const degree = 31 - Math.clz32(generator);
  let remainder = value << degree;
  for (let bit = 31 - Math.clz32(remainder); bit >= degree; bit--) if ((remainder >>> bit) & 1) remainder ^= generator << (bit - degree);
  return remainder;
}

/** The 15 format bits for level M and a mask, BCH-coded and XORed so they are never all light. */
export function formatBits(mask: number): number {
  const value = (LEVEL_M_BITS << 3) | mask;
  return ((value << 10) | bchRemainder(value, FORMAT_GENERATOR)) ^ FORMAT_XOR;
}

function versionBits(version: number): number {
  return (version << 12) | bchRemainder(version, VERSION_GENERATOR);
}

const MASKS: ((row: number, column: number) => boolean)[] = [
  (r, c) => (r + c) % 2 === 0,
  (r) => r % 2 === 0,
  (_, c) => c % 3 === 0,
  (r, c) => (r + c) % 3 === 0,
  (r, c) => (Math.floor(r / 2) + Math.floor(c / 3)) % 2 === 0,
  (r, c) => ((r * c) % 2) + ((r * c) % 3) === 0,
  (r, c) => (((r * c) % 2) + ((r * c) % 3)) % 2 === 0,
  (r, c) => (((r + c) % 2) + ((r * c) % 3)) % 2 === 0,
];

/** The symbol being drawn: its modules, and which of them are function patterns that data and masks leave alone. */
class ModuleGrid {
  readonly size: number;
  readonly modules: QrMatrix;
  private readonly reserved: boolean[][];

  constructor(private readonly version: number) {
    this.size = 17 + 4 * version;
    this.modules = Array.from({ length: this.size }, () => new Array<boolean>(this.size).fill(false));
    this.reserved = Array.from({ length: this.size }, () => new Array<boolean>(this.size).fill(false));
  }

  private set(row: number, column: number, dark: boolean): void {
    this.modules[row][column] = dark;
    this.reserved[row][column] = true;
  }

  drawFunctionPatterns(): void {
    const last = this.size - 1;
    for (const [row, column] of [[3, 3], [3, last - 3], [last - 3, 3]]) this.drawFinder(row, column);
    // Alignment patterns are left out only where they would cover a finder; on the timing lines they agree with them.
    const centres = ALIGNMENT_CENTRES[this.version - 1];
    for (const row of centres) {
      for (const column of centres) if (!this.reserved[row][column]) this.drawAlignment(row, column);
    }
    for (let i = 8; i < this.size - 8; i++) {
      this.set(6, i, i % 2 === 0);
      this.set(i, 6, i % 2 === 0);
    }
    this.drawFormat(0); // reserves the format areas; the chosen mask's bits are drawn over them
    this.drawVersion();
  }

  /** A 7×7 finder with its light separator, clipped at the symbol's edges. */
  private drawFinder(centreRow: number, centreColumn: number): void {
    for (let dr = -4; dr <= 4; dr++) {
      for (let dc = -4; dc <= 4; dc++) {
        const row = centreRow + dr;
        const column = centreColumn + dc;
        if (row < 0 || column < 0 || row >= this.size || column >= this.size) continue;
        const ring = Math.max(Math.abs(dr), Math.abs(dc));
        this.set(row, column, ring !== 2 && ring !== 4);
      }
    }
  }

  private drawAlignment(centreRow: number, centreColumn: number): void {
    for (let dr = -2; dr <= 2; dr++) {
      for (let dc = -2; dc <= 2; dc++) this.set(centreRow + dr, centreColumn + dc, Math.max(Math.abs(dr), Math.abs(dc)) !== 1);
    }
  }

  /** Both copies of the format bits (bit 14 first along each path), and the dark module beside the lower-left finder. */
  drawFormat(mask: number): void {
    const bits = formatBits(mask);
    const bit = (i: number) => ((bits >>> i) & 1) === 1;
    const last = this.size - 1;
    // Around the top-left finder: down column 8 (skipping the timing row), then left along row 8.
    for (let i = 0; i <= 5; i++) this.set(i, 8, bit(i));
    this.set(7, 8, bit(6));
    this.set(8, 8, bit(7));
    this.set(8, 7, bit(8));
    for (let i = 9; i < 15; i++) this.set(8, 14 - i, bit(i));
    // Split between the other two finders: row 8 on the right, column 8 at the bottom.
    for (let i = 0; i < 8; i++) this.set(8, last - i, bit(i));
    for (let i = 8; i < 15; i++) this.set(last - 14 + i, 8, bit(i));
    this.set(last - 7, 8, true);
  }

  /** Versions 7 and up carry their number in two 6×3 blocks beside the top-right and lower-left finders. */
  private drawVersion(): void {
    if (this.version < 7) return;
    const bits = versionBits(this.version);
    for (let i = 0; i < 18; i++) {
      const dark = ((bits >>> i) & 1) === 1;
      const near = Math.floor(i / 3);
      const far = this.size - 11 + (i % 3);
      this.set(near, far, dark);
      this.set(far, near, dark);
    }
  }

  /** Codewords in the zigzag order: two-column strips from the right, up then down, skipping the vertical timing column. */
  placeData(codewords: number[]): void {
    let index = 0;
    const totalBits = codewords.length * 8;
    for (let right = this.size - 1; right >= 1; right -= 2) {
      if (right === 6) right = 5;
      const upward = ((this.size - 1 - right) >> 1) % 2 === 0;
      for (let step = 0; step < this.size; step++) {
        const row = upward ? this.size - 1 - step : step;
        for (const column of [right, right - 1]) {
          if (this.reserved[row][column]) continue;
          // Remainder bits past the last codeword stay light.
          this.modules[row][column] = index < totalBits && ((codewords[index >> 3] >>> (7 - (index & 7))) & 1) === 1;
          index++;
        }
      }
    }
  }

  applyMask(mask: number): void {
    const flips = MASKS[mask];
    for (let row = 0; row < this.size; row++) {
      for (let column = 0; column < this.size; column++) if (!this.reserved[row][column] && flips(row, column)) this.modules[row][column] = !this.modules[row][column];
    }
  }
}

/**
 * The standard's four penalty rules summed: runs of five or more, 2×2 blocks, finder-like
 * 1:1:3:1:1 patterns with four light modules on one side (each side counted), and the share of dark
 * modules away from half.
 */
export function penalty(modules: QrMatrix): number {
  const size = modules.length;
  const columns = modules.map((_, c) => modules.map((row) => row[c]));
  let score = 0;
  for (const line of [...modules, ...columns]) score += runPenalty(line) + finderPenalty(line);
  let dark = 0;
  for (let r = 0; r < size; r++) {
    for (let c = 0; c < size; c++) {
      if (modules[r][c]) dark++;
      if (r + 1 < size && c + 1 < size) {
        const colour = modules[r][c];
        if (modules[r][c + 1] === colour && modules[r + 1][c] === colour && modules[r + 1][c + 1] === colour) score += 3;
      }
    }
  }
  score += 10 * Math.floor(Math.abs((dark * 100) / (size * size) - 50) / 5);
  return score;
}

function runPenalty(line: boolean[]): number {
  let score = 0;
  let run = 1;
  for (let i = 1; i <= line.length; i++) {
    if (i < line.length && line[i] === line[i - 1]) run++;
    else {
      if (run >= 5) score += run - 2;
      run = 1;
    }
  }
  return score;
}

const FINDER_LIKE = [true, false, true, true, true, false, true];

function finderPenalty(line: boolean[]): number {
  let score = 0;
  const lightAt = (from: number) => from >= 0 && from + 4 <= line.length && line.slice(from, from + 4).every((dark) => !dark);
  for (let start = 0; start + FINDER_LIKE.length <= line.length; start++) {
    if (!FINDER_LIKE.every((dark, i) => line[start + i] === dark)) continue;
    if (lightAt(start - 4)) score += 40;
    if (lightAt(start + FINDER_LIKE.length)) score += 40;
  }
  return score;
}
