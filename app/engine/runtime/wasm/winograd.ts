/**
 * Winograd convolution F(m×m, 3×3) for 3×3 stride-1 convolutions, as WebAssembly SIMD kernels
 * (assembled with assembler.ts, run by simd.ts on the wasm backend's memory).
 *
 * Why: a direct 3×3 convolution costs 9 multiply-adds per output pixel and channel pair.
 * Winograd's minimal filtering computes an m×m output tile from an (m+2)×(m+2) input tile
 * with (m+2)² element-wise products in a transformed space, i.e. 4 (m = 2) or 2.25 (m = 4)
 * per output pixel: 2.25x or 4x fewer multiplications. In the notation of Lavin & Gray
 * ("Fast Algorithms for Convolutional Neural Networks", 2015), with g the 3×3 filter, d an
 * input tile and α = m + 2:
 *
 *   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
 *
 * Over channels the ⊙ becomes α² independent matrix products, M[e] = V[e] · U[e] with
 * V[e] = tiles × ci (transformed input) and U[e] = ci × co (transformed filter), which carry
 * nearly all the arithmetic. The kernels here work through the tiles in chunks small enough
 * that a chunk's transformed input and products stay in cache: transform the chunk's input
 * tiles, multiply, transform the products back into the output.
 *
 * The same machinery gives both gradients. The input gradient of a stride-1 convolution is a
 * forward convolution of dy with the filter flipped and transposed. The filter gradient
 * follows from differentiating Y above: dU[e] = Σ over tiles of V[e]ᵀ · (A dY Aᵀ)[e], then
 * dg = Gᵀ dU G.
 */
import { Code, Locals, type FunctionSpec } from './assembler.ts';

export interface WinogradTile {
  /** m: output pixels per tile side. */
  readonly output: number;
  /** α = m + 2: input pixels per tile side, and the side of the transformed tile. */
  readonly input: number;
  /** Bᵀ (α×α): input transform. */
  readonly inputTransform: number[][];
  /** G (α×3): filter transform. */
  readonly filterTransform: number[][];
  /** Aᵀ (m×α): output transform. */
  readonly outputTransform: number[][];
}

/** F(2×2, 3×3) on the points 0, 1, −1: 16 products per 4 outputs; as exact as direct convolution. */
export const F2X2: WinogradTile = {
  output: 2,
  input: 4,
  inputTransform: [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
  filterTransform: [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
  outputTransform: [[1, 1, 1, 0], [0, 1, -1, -1]],
};

/** F(4×4, 3×3) on the points 0, ±1, ±2: 36 products per 16 outputs; coefficients up to 8 cost some float32 digits. */
export const F4X4: WinogradTile = {
  output: 4,
  input: 6,
  inputTransform: [
    [4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1],
  ],
  filterTransform: [
    [1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1],
  ],
  outputTransform: [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
};

/** Output channels (forward) per register block of the matrix products: two f32x4. */
export const WINOGRAD_CHANNEL_BLOCK = 8;
/** Tiles per register block of the forward matrix product. */
const GEMM_TILES = 4;
/** Bytes of one chunk's transformed input and products (or dy) together: about half of a 1 MB L2. */
const CHUNK_BYTES = 512 * 1024;

/**
 * Tiles per chunk: as many as fit CHUNK_BYTES, but at least ci·co/(ci + co), so that reading
 * the transformed filter once per chunk (α²·ci·co floats, megabytes on wide layers) costs no
 * more than the chunk's own transformed tiles do; a multiple of the register block, so a
 * block never runs past the scratch.
 */
export function winogradChunk(tile: WinogradTile, inChannels: number, outChannels: number): number {
  const perTile = tile.input * tile.input * (inChannels + outChannels) * 4;
  const tiles = Math.max(CHUNK_BYTES / perTile, (inChannels * outChannels) / (inChannels + outChannels));
  return Math.max(GEMM_TILES, Math.ceil(tiles / GEMM_TILES) * GEMM_TILES);
}

/** Scratch bytes one thread needs for its chunk (transformed input, then products or transformed dy). */
export function winogradScratchBytes(tile: WinogradTile, inChannels: number, outChannels: number): number {
  return tile.input * tile.input * winogradChunk(tile, inChannels, outChannels) * (inChannels + outChannels) * 4;
}

const transpose = (matrix: number[][]): number[][] => matrix[0].map((_, j) => matrix.map((row) => row[j]));

function grid(locals: Locals, rows: number, columns: number): number[][] {
  return Array.from({ length: rows }, () => Array.from({ length: columns }, () => locals.v128()));
}

/**
 * f32x4 locals holding 0 and each coefficient magnitude other than 0 and 1, splatted once at
 * the start of the function rather than inside its loops.
 */
function hoistConstants(code: Code, locals: Locals, matrices: number[][][]): Map<number, number> {
  const constants = new Map<number, number>();
  for (const value of [0, ...matrices.flat(2).map(Math.abs)]) {
    if (value === 1 || constants.has(value)) continue;
    const local = locals.v128();
    code.f32Const(value).f32x4Splat().set(local);
    constants.set(value, local);
  }
  return constants;
}

/** Pushes Σ coefficient · local over the terms; ±1 are adds and subtracts, zeros are skipped. */
function combine(code: Code, constants: Map<number, number>, terms: Array<[number, number]>): void {
  // A positive term first avoids negating the first value.
  const used = terms.filter(([c]) => c !== 0).sort(([a], [b]) => Number(b > 0) - Number(a > 0));
  if (used.length === 0) {
    code.get(constants.get(0)!);
    return;
  }
  used.forEach(([coefficient, local], index) => {
    code.get(local);
    const magnitude = Math.abs(coefficient);
    if (magnitude !== 1) code.get(constants.get(magnitude)!).f32x4Mul();
    if (index === 0) {
      if (coefficient < 0) code.f32x4Neg();
    } else if (coefficient > 0) {
      code.f32x4Add();
    } else {
      code.f32x4Sub();
    }
  });
}

/**
 * L · X · Lᵀ for a k×k tile X of f32x4 locals and an r×k matrix L: first down the columns
 * into `temp` (r×k locals), then each of the r×r results is handed to `emit` as a function
 * that pushes it, so the caller decides where it goes.
 */
function transform2D(code: Code, constants: Map<number, number>, matrix: number[][], input: number[][], temp: number[][],
  emit: (i: number, j: number, push: () => void) => void): void {
  const k = matrix[0].length;
  matrix.forEach((row, i) => {
    for (let column = 0; column < k; column++) {
      combine(code, constants, row.map((c, a) => [c, input[a][column]] as [number, number]));
      code.set(temp[i][column]);
    }
  });
  matrix.forEach((_, i) => matrix.forEach((row, j) => emit(i, j, () => combine(code, constants, row.map((c, column) => [c, temp[i][column]] as [number, number])))));
}

/** Where a chunk's tiles are: the locals every tile loop of a kernel shares. */
interface TileLoop {
  code: Code;
  locals: Locals;
  constants: Map<number, number>;
  tile: WinogradTile;
  chunk: number;
  /** Tiles per image and per tile row. */
  perImage: number;
  tilesWide: number;
  /** First tile of the chunk, tiles in it. */
  first: number;
  count: number;
}

/**
 * Loops t over the chunk's tiles with image b and tile row and column set for each; `body`
 * emits the work of one tile.
 */
function forEachTile(loop: TileLoop, body: (t: number, image: number, tileRow: number, tileColumn: number) => void): void {
  const { code, locals } = loop;
  const [t, image, tileRow, tileColumn, rest] = [locals.i32(), locals.i32(), locals.i32(), locals.i32(), locals.i32()];
  code.forRange(t, () => code.i32(0), () => code.get(loop.count), () => {
    code.get(loop.first).get(t).add().tee(rest).get(loop.perImage).divU().tee(image).get(loop.perImage).mul().set(tileColumn);
    code.get(rest).get(tileColumn).sub().tee(rest).get(loop.tilesWide).divU().tee(tileRow).get(loop.tilesWide).mul().set(tileColumn);
    code.get(rest).get(tileColumn).sub().set(tileColumn);
    body(t, image, tileRow, tileColumn);
  });
}

/** An NHWC tensor that tiles are read from or written to. */
interface TensorTiles {
  address: number;
  height: number;
  width: number;
  channels: number;
}

/**
 * Reads each k×k tile (k = matrix columns) of `source` whose top-left pixel is (row, column),
 * zero outside the tensor, transforms it by L·X·Lᵀ and stores the r×r result per 4 channels
 * at scratch[e][t][c] (e = i·r + j, chunk rows per e). Tiles wholly inside skip the checks.
 */
function gatherTiles(loop: TileLoop, matrix: number[][], source: TensorTiles, scratch: number,
  origin: (tileRow: number, tileColumn: number) => { row: () => void; column: () => void }): void {
  const { code, locals, constants, chunk } = loop;
  const k = matrix[0].length;
  const r = matrix.length;
  const channelBytes = source.channels * 4;
  const [row0, column0, base, dst, q, interior, rowBytes] = Array.from({ length: 7 }, () => locals.i32());
  const rowPointers = Array.from({ length: k }, () => locals.i32());
  const rowInside = Array.from({ length: k }, () => locals.i32());
  const columnInside = Array.from({ length: k }, () => locals.i32());
  const values = grid(locals, k, k);
  const temp = grid(locals, r, k);
  code.get(source.width).i32(channelBytes).mul().set(rowBytes);
  forEachTile(loop, (t, image, tileRow, tileColumn) => {
    const { row, column } = origin(tileRow, tileColumn);
    row();
    code.set(row0);
    column();
    code.set(column0);
    code.get(image).get(source.height).mul().get(row0).add().get(source.width).mul().get(column0).add().i32(channelBytes).mul().get(source.address).add().set(base);
    rowPointers.forEach((pointer, i) => code.get(base).get(rowBytes).i32(i).mul().add().set(pointer));
    code.get(t).i32(channelBytes).mul().get(scratch).add().set(dst);
    code.get(row0).i32(0).geS().get(row0).i32(k).add().get(source.height).leS().and()
      .get(column0).i32(0).geS().and().get(column0).i32(k).add().get(source.width).leS().and().set(interior);
    const quads = (checked: boolean) => {
      code.forRange(q, () => code.i32(0), () => code.i32(channelBytes), () => {
        values.forEach((line, i) => line.forEach((value, j) => {
          if (checked) {
            // Explicit address arithmetic: an out-of-tensor address may wrap, and is never loaded.
            code.get(rowInside[i]).get(columnInside[j]).and().ifVector();
            code.get(rowPointers[i]).get(q).add().i32(j * channelBytes).add().v128Load();
            code.else().get(constants.get(0)!).end();
          } else {
            code.get(rowPointers[i]).get(q).add().v128Load(j * channelBytes);
          }
          code.set(value);
        }));
        transform2D(code, constants, matrix, values, temp, (i, j, push) => {
          code.get(dst).get(q).add();
          push();
          code.v128Store((i * r + j) * chunk * channelBytes);
        });
      }, 16);
    };
    code.get(interior).ifThen();
    quads(false);
    code.else();
    rowInside.forEach((inside, i) => code.get(row0).i32(i).add().get(source.height).ltU().set(inside));
    columnInside.forEach((inside, j) => code.get(column0).i32(j).add().get(source.width).ltU().set(inside));
    quads(true);
    code.end();
  });
}

/**
 * Reads each tile's α×α products per 4 channels from scratch[e][t][c], transforms them by
 * Aᵀ·M·A and writes the m×m outputs into `target` at tile row·m, column·m, dropping those
 * past its edge.
 */
function scatterTiles(loop: TileLoop, target: TensorTiles, scratch: number): void {
  const { code, locals, constants, chunk, tile } = loop;
  const m = tile.output;
  const alpha = tile.input;
  const channelBytes = target.channels * 4;
  const [row0, column0, base, src, q, interior, rowBytes] = Array.from({ length: 7 }, () => locals.i32());
  const rowPointers = Array.from({ length: m }, () => locals.i32());
  const rowInside = Array.from({ length: m }, () => locals.i32());
  const columnInside = Array.from({ length: m }, () => locals.i32());
  const values = grid(locals, alpha, alpha);
  const temp = grid(locals, m, alpha);
  code.get(target.width).i32(channelBytes).mul().set(rowBytes);
  forEachTile(loop, (t, image, tileRow, tileColumn) => {
    code.get(tileRow).i32(m).mul().set(row0).get(tileColumn).i32(m).mul().set(column0);
    code.get(image).get(target.height).mul().get(row0).add().get(target.width).mul().get(column0).add().i32(channelBytes).mul().get(target.address).add().set(base);
    rowPointers.forEach((pointer, i) => code.get(base).get(rowBytes).i32(i).mul().add().set(pointer));
    code.get(t).i32(channelBytes).mul().get(scratch).add().set(src);
    code.get(row0).i32(m).add().get(target.height).leS().get(column0).i32(m).add().get(target.width).leS().and().set(interior);
    const quads = (checked: boolean) => {
      code.forRange(q, () => code.i32(0), () => code.i32(channelBytes), () => {
        values.forEach((line, i) => line.forEach((value, j) => code.get(src).get(q).add().v128Load((i * alpha + j) * chunk * channelBytes).set(value)));
        transform2D(code, constants, tile.outputTransform, values, temp, (i, j, push) => {
          if (checked) code.get(rowInside[i]).get(columnInside[j]).and().ifThen();
          code.get(rowPointers[i]).get(q).add();
          push();
          code.v128Store(j * channelBytes);
          if (checked) code.end();
        });
      }, 16);
    };
    code.get(interior).ifThen();
    quads(false);
    code.else();
    rowInside.forEach((inside, i) => code.get(row0).i32(i).add().get(target.height).ltS().set(inside));
    columnInside.forEach((inside, j) => code.get(column0).i32(j).add().get(target.width).ltS().set(inside));
    quads(true);
    code.end();
  });
}

/**
 * The chunk loop shared by the forward and filter-gradient kernels: chunks of `chunk` tiles
 * from tileStart to tileEnd, `body` emitting the work of one chunk.
 */
function forEachChunk(code: Code, locals: Locals, chunk: number, tileStart: number, tileEnd: number, first: number, count: number, body: () => void): void {
  code.forRange(first, () => code.get(tileStart), () => code.get(tileEnd), () => {
    // count = min(chunk, tileEnd − first)
    code.i32(chunk).get(tileEnd).get(first).sub().tee(count).get(count).i32(chunk).gtS().select().set(count);
    body();
  }, chunk);
}

/**
 * Forward convolution by F(m×m, 3×3), specialised for ci, co (co % 8 == 0, ci % 4 == 0).
 * Params (byte addresses, then sizes): x (NHWC), U (the transformed filter [α²][ci][co]), y,
 * scratch (this thread's winogradScratchBytes), h, w, oh, ow, pt, pl, tile rows and columns
 * per image, and the range of tiles [tileStart, tileEnd) over the batch (how threads share
 * the work). Output tile (R, C) of image b covers y rows R·m.., read from x rows R·m − pt...
 */
export function winogradForwardCode(tile: WinogradTile, ci: number, co: number): FunctionSpec {
  const [X, U, Y, SCRATCH, H, W, OH, OW, PT, PL, TH, TW, TSTART, TEND] = Array.from({ length: 14 }, (_, i) => i);
  const locals = new Locals(14);
  const code = new Code();
  const chunk = winogradChunk(tile, ci, co);
  const alpha = tile.input;
  const constants = hoistConstants(code, locals, [tile.inputTransform, tile.outputTransform]);
  const [first, count, perImage, products, e, j0, t, pv, pu, pend, out, ve, me, ue] = Array.from({ length: 14 }, () => locals.i32());
  const acc = grid(locals, GEMM_TILES, 2);
  const [w0, w1, splat] = [locals.v128(), locals.v128(), locals.v128()];
  code.get(TH).get(TW).mul().set(perImage);
  code.get(SCRATCH).i32(alpha * alpha * chunk * ci * 4).add().set(products);
  const loop: TileLoop = { code, locals, constants, tile, chunk, perImage, tilesWide: TW, first, count };
  forEachChunk(code, locals, chunk, TSTART, TEND, first, count, () => {
    gatherTiles(loop, tile.inputTransform, { address: X, height: H, width: W, channels: ci }, SCRATCH, (tileRow, tileColumn) => ({
      row: () => code.get(tileRow).i32(tile.output).mul().get(PT).sub(),
      column: () => code.get(tileColumn).i32(tile.output).mul().get(PL).sub(),
    }));
    // M[e] = V[e] · U[e]: 4 tiles x 8 output channels in registers over the ci reduction;
    // the 8-channel column of U[e] is reused from L1 across the chunk's tiles.
    code.forRange(e, () => code.i32(0), () => code.i32(alpha * alpha), () => {
      code.get(e).i32(chunk * ci * 4).mul().get(SCRATCH).add().set(ve);
      code.get(e).i32(chunk * co * 4).mul().get(products).add().set(me);
      code.get(e).i32(ci * co * 4).mul().get(U).add().set(ue);
      code.forRange(j0, () => code.i32(0), () => code.i32(co * 4), () => {
        code.forRange(t, () => code.i32(0), () => code.get(count), () => {
          acc.flat().forEach((a) => code.get(constants.get(0)!).set(a));
          code.get(t).i32(ci * 4).mul().get(ve).add().tee(pv).i32(ci * 4).add().set(pend);
          code.get(ue).get(j0).add().set(pu);
          code.loop();
          code.get(pu).v128Load(0).set(w0).get(pu).v128Load(16).set(w1);
          acc.forEach(([a0, a1], p) => {
            code.get(pv).load32Splat(p * ci * 4).set(splat);
            code.multiplyAccumulate(a0, splat, w0);
            code.multiplyAccumulate(a1, splat, w1);
          });
          code.increment(pv, 4).increment(pu, co * 4);
          code.get(pv).get(pend).ltU().brIf(0).end();
          code.get(t).i32(co * 4).mul().get(me).add().get(j0).add().set(out);
          acc.forEach(([a0, a1], p) => {
            code.get(out).get(a0).v128Store(p * co * 4);
            code.get(out).get(a1).v128Store(p * co * 4 + 16);
          });
        }, GEMM_TILES);
      }, WINOGRAD_CHANNEL_BLOCK * 4);
    });
    scatterTiles(loop, { address: Y, height: OH, width: OW, channels: co }, products);
  });
  return locals.spec('run', code);
}

/**
 * This thread's share of the filter gradient in the transformed space, dU[e] = Σ over its
 * tiles of V[e]ᵀ · Z[e], with V the transformed input tiles and Z = A dY Aᵀ the transformed
 * dy tiles; written (not accumulated) to `du` as [α²][ci][co]. Specialised for ci % 4 == 0,
 * co % 8 == 0. Params: x, dy, du, scratch, h, w, oh, ow, pt, pl, tile rows and columns per
 * image, tileStart, tileEnd.
 */
export function winogradFilterGradCode(tile: WinogradTile, ci: number, co: number): FunctionSpec {
  const [X, DY, DU, SCRATCH, H, W, OH, OW, PT, PL, TH, TW, TSTART, TEND] = Array.from({ length: 14 }, (_, i) => i);
  const locals = new Locals(14);
  const code = new Code();
  const chunk = winogradChunk(tile, ci, co);
  const alpha = tile.input;
  const dyTransform = transpose(tile.outputTransform);
  const constants = hoistConstants(code, locals, [tile.inputTransform, dyTransform]);
  const [first, count, perImage, transformedDy, e, i0, j0, pv, pz, pend, out, ve, ze, de, p] = Array.from({ length: 15 }, () => locals.i32());
  const acc = grid(locals, 4, 2);
  const [z0, z1, splat] = [locals.v128(), locals.v128(), locals.v128()];
  code.get(TH).get(TW).mul().set(perImage);
  code.get(SCRATCH).i32(alpha * alpha * chunk * ci * 4).add().set(transformedDy);
  // Byte offsets, not addresses, in the loop: the signed compare would stop at a 2 GiB heap.
  code.forRange(p, () => code.i32(0), () => code.i32(alpha * alpha * ci * co * 4), () => {
    code.get(DU).get(p).add().get(constants.get(0)!).v128Store();
  }, 16);
  const loop: TileLoop = { code, locals, constants, tile, chunk, perImage, tilesWide: TW, first, count };
  forEachChunk(code, locals, chunk, TSTART, TEND, first, count, () => {
    gatherTiles(loop, tile.inputTransform, { address: X, height: H, width: W, channels: ci }, SCRATCH, (tileRow, tileColumn) => ({
      row: () => code.get(tileRow).i32(tile.output).mul().get(PT).sub(),
      column: () => code.get(tileColumn).i32(tile.output).mul().get(PL).sub(),
    }));
    gatherTiles(loop, dyTransform, { address: DY, height: OH, width: OW, channels: co }, transformedDy, (tileRow, tileColumn) => ({
      row: () => code.get(tileRow).i32(tile.output).mul(),
      column: () => code.get(tileColumn).i32(tile.output).mul(),
    }));
    // dU[e][i0..i0+4][j0..j0+8] += Σ_t V[e][t][i] · Z[e][t][j], 8 accumulators over the chunk.
    code.forRange(e, () => code.i32(0), () => code.i32(alpha * alpha), () => {
      code.get(e).i32(chunk * ci * 4).mul().get(SCRATCH).add().set(ve);
      code.get(e).i32(chunk * co * 4).mul().get(transformedDy).add().set(ze);
      code.get(e).i32(ci * co * 4).mul().get(DU).add().set(de);
      code.forRange(i0, () => code.i32(0), () => code.i32(ci * 4), () => {
        code.forRange(j0, () => code.i32(0), () => code.i32(co * 4), () => {
          // Row i of the block is ci index i0/4 + i: i0·co + i·co·4 bytes into dU[e].
          code.get(i0).i32(co).mul().get(de).add().get(j0).add().set(out);
          acc.forEach(([a0, a1], i) => {
            code.get(out).v128Load(i * co * 4).set(a0).get(out).v128Load(i * co * 4 + 16).set(a1);
          });
          code.get(ve).get(i0).add().set(pv);
          code.get(ze).get(j0).add().tee(pz).get(count).i32(co * 4).mul().add().set(pend);
          code.loop();
          code.get(pz).v128Load(0).set(z0).get(pz).v128Load(16).set(z1);
          acc.forEach(([a0, a1], i) => {
            code.get(pv).load32Splat(4 * i).set(splat);
            code.multiplyAccumulate(a0, splat, z0);
            code.multiplyAccumulate(a1, splat, z1);
          });
          code.increment(pv, ci * 4).increment(pz, co * 4);
          code.get(pz).get(pend).ltU().brIf(0).end();
          acc.forEach(([a0, a1], i) => {
            code.get(out).get(a0).v128Store(i * co * 4).get(out).get(a1).v128Store(i * co * 4 + 16);
          });
        }, WINOGRAD_CHANNEL_BLOCK * 4);
      }, 16);
    });
  });
  return locals.spec('run', code);
}

/**
 * The transformed filter U[e] = G g Gᵀ per (k, j) pair of a [3][3][K][J] filter (J % 4 == 0),
 * written as [α²][K][J]; `flip` reads g rotated by 180° (the input gradient's filter).
 * Params: src, dst, K·J·4 (bytes per tap), and the byte range [start, end) of one tap's
 * K·J block to transform.
 */
export function winogradFilterCode(tile: WinogradTile, flip: boolean): FunctionSpec {
  const [SRC, DST, TAP, START, END] = [0, 1, 2, 3, 4];
  const locals = new Locals(5);
  const code = new Code();
  const alpha = tile.input;
  const constants = hoistConstants(code, locals, [tile.filterTransform]);
  const offsets = Array.from({ length: alpha * alpha }, () => locals.i32());
  const p = locals.i32();
  const g = grid(locals, 3, 3);
  const temp = grid(locals, alpha, 3);
  offsets.forEach((offset, e) => code.get(TAP).i32(e).mul().set(offset));
  code.forRange(p, () => code.get(START), () => code.get(END), () => {
    g.forEach((line, a) => line.forEach((value, c) => {
      const tap = flip ? (2 - a) * 3 + (2 - c) : a * 3 + c;
      code.get(SRC).get(p).add().get(offsets[tap]).add().v128Load().set(value);
    }));
    transform2D(code, constants, tile.filterTransform, g, temp, (i, j, push) => {
      code.get(DST).get(p).add().get(offsets[i * alpha + j]).add();
      push();
      code.v128Store();
    });
  }, 16);
  return locals.spec('run', code);
}

/**
 * The filter gradient dg = Gᵀ (Σ over parts of dU) G for every (ci, co) pair, from the
 * threads' parts [parts][α²][ci][co] into dw as [3][3][ci][co]. Params: du, parts, bytes per
 * part, dw, ci·co·4 (bytes per tap), and the byte range [start, end) of one tap to compute.
 */
export function winogradFilterGradOutputCode(tile: WinogradTile): FunctionSpec {
  const [DU, PARTS, PART_BYTES, DW, TAP, START, END] = [0, 1, 2, 3, 4, 5, 6];
  const locals = new Locals(7);
  const code = new Code();
  const alpha = tile.input;
  const back = transpose(tile.filterTransform);
  const constants = hoistConstants(code, locals, [back]);
  const offsets = Array.from({ length: alpha * alpha }, () => locals.i32());
  const [p, part, pointer] = [locals.i32(), locals.i32(), locals.i32()];
  const sums = grid(locals, alpha, alpha);
  const temp = grid(locals, 3, alpha);
  offsets.forEach((offset, e) => code.get(TAP).i32(e).mul().set(offset));
  code.forRange(p, () => code.get(START), () => code.get(END), () => {
    sums.flat().forEach((sum) => code.get(constants.get(0)!).set(sum));
    code.forRange(part, () => code.i32(0), () => code.get(PARTS), () => {
      code.get(part).get(PART_BYTES).mul().get(DU).add().get(p).add().set(pointer);
      sums.flat().forEach((sum, e) => code.get(sum).get(pointer).get(offsets[e]).add().v128Load().f32x4Add().set(sum));
    });
    transform2D(code, constants, back, sums, temp, (a, c, push) => {
      code.get(DW).get(p).add().get(offsets[a * 3 + c]).add();
      push();
      code.v128Store();
    });
  }, 16);
  return locals.spec('run', code);
}
