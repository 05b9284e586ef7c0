/**
 * Our own WebAssembly SIMD kernels, assembled at startup and run directly on the TF.js wasm
 * backend's memory (imported, so no copies in or out).
 *
 * Why: the one convolution shape XNNPACK handles badly is the filter gradient. Whatever
 * operand plays XNNPACK's "filter" gets repacked on every call, and in the filter gradient
 * both operands are whole activations, so repacking cost more than the arithmetic. Our kernel
 * reads x and dy in their NHWC layout and keeps a 4x8 block of the result in registers.
 *
 * The module is written as bytes with our small assembler (assembler.ts; no toolchain needed).
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { simdThreads } from './threads.ts';
import { WasmPool } from './pool.ts';
import { Code, assemble, fusedMultiplyAdd, type FunctionSpec } from './assembler.ts';
import {
  type WinogradTile, winogradFilterCode, winogradFilterGradCode, winogradFilterGradOutputCode, winogradForwardCode, winogradScratchBytes,
} from './winograd.ts';

/** Channel blocking of the filter-gradient kernel: 4 input channels x 8 output channels. */
export const FILTER_GRAD_CI_BLOCK = 4;
export const FILTER_GRAD_CO_BLOCK = 8;

/**
 * Sets locals LO and HI to the output columns q whose tap q·sw + c − pl lies inside [0, w):
 * lo = max(0, ceil((pl − c)/sw)), and hi (exclusive) = floor((w − 1 + pl − c)/sw) + 1, or 0 when
 * that numerator is negative, then at most ow. Both convolution gradients skip the same taps.
 * (select pushes a, b, condition and yields a when the condition holds.)
 */
function validColumns(code: Code, local: { W: number; OW: number; SW: number; PL: number; C: number; LO: number; HI: number }): void {
  const { W, OW, SW, PL, C, LO, HI } = local;
  code.get(PL).get(C).sub().get(SW).add().i32(1).sub().get(SW).divS().set(LO);
  code.i32(0).get(LO).get(LO).i32(0).ltS().select().set(LO);
  code.get(W).i32(1).sub().get(PL).add().get(C).sub().set(HI);
  code.get(HI).get(SW).divS().i32(1).add().i32(0).get(HI).i32(0).geS().select().set(HI);
  code.get(HI).get(OW).get(HI).get(OW).ltS().select().set(HI);
}

/**
 * dw[a, c, i, j] += Σ over b, r, q of x[b, r·sh + a − pt, q·sw + c − pl, i] · dy[b, r, q, j],
 * skipping taps outside x; dw must start zeroed. Params are byte addresses of x, dy, dw, then
 * n, h, w, ci, oh, ow, co, kh, kw, sh, sw, pt, pl, chunkRows, and the range of input
 * channels to compute [ciStart, ciEnd) (how threads share the work). Requires ci % 4 == 0 and
 * co % 8 == 0. The output rows (over the whole batch) go in chunks of chunkRows, and each chunk
 * is swept for every tap and 4x8 channel block while its slice of x and dy is still in cache;
 * the 8 accumulators of a block stay in registers over the chunk.
 */
function filterGradCode(): Code {
  const [X, DY, DW, N, H, W, CI, OH, OW, CO, KH, KW, SH, SW, PT, PL, CHUNK, CISTART, CIEND] = Array.from({ length: 19 }, (_, i) => i);
  const [A, C, I0, J0, F, F0, F1, B, R, IH, LO, HI, PX, PD, XSTEP, DYROW, END, OUT, TOTAL] = Array.from({ length: 19 }, (_, i) => 19 + i);
  const ACC = 38; // 8 accumulators, then 2 dy vectors and 1 splat
  const [B0, B1, AV] = [ACC + 8, ACC + 9, ACC + 10];
  const code = new Code();
  const get = (local: number) => () => code.get(local);
  const zero = () => code.i32(0);
  code.get(SW).get(CI).mul().i32(4).mul().set(XSTEP);
  code.get(CO).i32(4).mul().set(DYROW);
  code.get(N).get(OH).mul().set(TOTAL);
  code.forRange(F0, zero, get(TOTAL), () => {
    code.get(F0).get(CHUNK).add().tee(F1).get(TOTAL).get(F1).get(TOTAL).ltS().select().set(F1);
    code.forRange(A, zero, get(KH), () => {
      code.forRange(C, zero, get(KW), () => {
        validColumns(code, { W, OW, SW, PL, C, LO, HI });
        code.forRange(I0, get(CISTART), get(CIEND), () => {
          code.forRange(J0, zero, get(CO), () => {
            // out = dw + (((a·kw + c)·ci + i0)·co + j0)·4; row i of the block is co·4 bytes further.
            code.get(A).get(KW).mul().get(C).add().get(CI).mul().get(I0).add().get(CO).mul().get(J0).add().i32(4).mul().get(DW).add().set(OUT);
            for (let i = 0; i < 4; i++) {
              for (let j = 0; j < 2; j++) code.get(OUT).get(DYROW).i32(i).mul().add().v128Load(16 * j).set(ACC + 2 * i + j);
            }
            code.forRange(F, get(F0), get(F1), () => {
              code.get(F).get(OH).divU().tee(B).get(OH).mul().get(F).sub().i32(-1).mul().set(R);
              code.get(R).get(SH).mul().get(A).add().get(PT).sub().set(IH);
              code.block();
              code.get(IH).i32(0).ltS().get(IH).get(H).geS().or().brIf(0);
              // px = x + (((b·h + ih)·w + lo·sw + c − pl)·ci + i0)·4
              code.get(B).get(H).mul().get(IH).add().get(W).mul().get(LO).get(SW).mul().add().get(C).add().get(PL).sub()
                .get(CI).mul().get(I0).add().i32(4).mul().get(X).add().set(PX);
              // pd = dy + ((f·ow + lo)·co + j0)·4, end = row end at hi
              code.get(F).get(OW).mul().tee(END).get(LO).add().get(CO).mul().get(J0).add().i32(4).mul().get(DY).add().set(PD);
              code.get(END).get(HI).add().get(CO).mul().get(J0).add().i32(4).mul().get(DY).add().set(END);
              code.block().get(PD).get(END).geU().brIf(0).loop();
              code.get(PD).v128Load(0).set(B0).get(PD).v128Load(16).set(B1);
              for (let i = 0; i < 4; i++) {
                code.get(PX).load32Splat(4 * i).set(AV);
                for (let j = 0; j < 2; j++) {
                  code.multiplyAccumulate(ACC + 2 * i + j, AV, j ? B1 : B0);
                }
              }
              code.increment(PX, get(XSTEP)).increment(PD, get(DYROW));
              code.get(PD).get(END).ltU().brIf(0).end().end();
              code.end();
            });
            for (let i = 0; i < 4; i++) {
              for (let j = 0; j < 2; j++) code.get(OUT).get(DYROW).i32(i).mul().add().get(ACC + 2 * i + j).v128Store(16 * j);
            }
          }, FILTER_GRAD_CO_BLOCK);
        }, FILTER_GRAD_CI_BLOCK);
      });
    });
  }, get(CHUNK));
  return code;
}

/**
 * Per-channel partial sums over blocks of rows of a [rows, channels] matrix (channels % 4 == 0):
 * dst[b, c] = Σ src[r, c] for r in block b. Float32 sums over a few hundred rows are exact
 * enough; the caller adds the blocks in float64. Params: src, rows, channels, blockRows, dst.
 */
function blockColumnSumsCode(): Code {
  const [SRC, ROWS, CH, BLOCK, DST] = [0, 1, 2, 3, 4];
  const [R0, R1, C0, P, END, ROWBYTES, OUT] = [5, 6, 7, 8, 9, 10, 11];
  const ACC = 12;
  const code = new Code();
  const get = (local: number) => () => code.get(local);
  code.get(CH).i32(4).mul().set(ROWBYTES).get(DST).set(OUT);
  code.forRange(R0, () => code.i32(0), get(ROWS), () => {
    code.get(R0).get(BLOCK).add().tee(R1).get(ROWS).get(R1).get(ROWS).ltS().select().set(R1);
    code.forRange(C0, () => code.i32(0), get(CH), () => {
      code.f32Const(0).f32x4Splat().set(ACC);
      code.get(R0).get(CH).mul().get(C0).add().i32(4).mul().get(SRC).add().set(P);
      code.get(R1).get(CH).mul().get(C0).add().i32(4).mul().get(SRC).add().set(END);
      code.loop();
      code.get(ACC).get(P).v128Load().f32x4Add().set(ACC);
      code.increment(P, get(ROWBYTES));
      code.get(P).get(END).ltU().brIf(0).end();
      code.get(OUT).get(ACC).v128Store().increment(OUT, 16);
    }, 4);
  }, get(BLOCK));
  return code;
}

/**
 * The two batch-norm gradient sums per block of rows: Σ dy and Σ dy·(x − mean).
 * Params: dy, x, mean, rows, channels, blockRows, dstSumDy, dstSumDyCentred.
 */
function blockGradSumsCode(): Code {
  const [DY, X, MEAN, ROWS, CH, BLOCK, DST1, DST2] = [0, 1, 2, 3, 4, 5, 6, 7];
  const [R0, R1, C0, PD, PX, END, ROWBYTES, OUT] = [8, 9, 10, 11, 12, 13, 14, 15];
  const [SUM1, SUM2, M, G] = [16, 17, 18, 19];
  const code = new Code();
  const get = (local: number) => () => code.get(local);
  code.get(CH).i32(4).mul().set(ROWBYTES).i32(0).set(OUT);
  code.forRange(R0, () => code.i32(0), get(ROWS), () => {
    code.get(R0).get(BLOCK).add().tee(R1).get(ROWS).get(R1).get(ROWS).ltS().select().set(R1);
    code.forRange(C0, () => code.i32(0), get(CH), () => {
      code.f32Const(0).f32x4Splat().tee(SUM1).set(SUM2);
      code.get(C0).i32(4).mul().get(MEAN).add().v128Load().set(M);
      code.get(R0).get(CH).mul().get(C0).add().i32(4).mul().tee(PD).get(X).add().set(PX);
      code.get(PD).get(DY).add().set(PD);
      code.get(R1).get(CH).mul().get(C0).add().i32(4).mul().get(DY).add().set(END);
      code.loop();
      code.get(PD).v128Load().tee(G).get(SUM1).f32x4Add().set(SUM1);
      code.get(G).get(PX).v128Load().get(M).f32x4Sub().f32x4Mul().get(SUM2).f32x4Add().set(SUM2);
      code.increment(PD, get(ROWBYTES)).increment(PX, get(ROWBYTES));
      code.get(PD).get(END).ltU().brIf(0).end();
      code.get(OUT).get(DST1).add().get(SUM1).v128Store();
      code.get(OUT).get(DST2).add().get(SUM2).v128Store();
      code.increment(OUT, 16);
    }, 4);
  }, get(BLOCK));
  return code;
}

/** y[r, c] = x[r, c]·a[c] + b[c] (channels % 4 == 0). Params: x, rows, channels, a, b, y. */
function channelAffineCode(): Code {
  const [X, ROWS, CH, A, B, Y] = [0, 1, 2, 3, 4, 5];
  const [P, Q, END, C0, ROWEND] = [6, 7, 8, 9, 10];
  const code = new Code();
  code.get(X).set(P).get(Y).set(Q);
  code.get(ROWS).get(CH).mul().i32(4).mul().get(X).add().set(END);
  code.block().get(P).get(END).geU().brIf(0).loop();
  code.get(P).get(CH).i32(4).mul().add().set(ROWEND).i32(0).set(C0);
  code.loop();
  code.get(Q).get(P).v128Load().get(C0).get(A).add().v128Load().f32x4Mul().get(C0).get(B).add().v128Load().f32x4Add().v128Store();
  code.increment(P, 16).increment(Q, 16).increment(C0, 16);
  code.get(P).get(ROWEND).ltU().brIf(0).end();
  code.get(P).get(END).ltU().brIf(0).end().end();
  return code;
}

/** Input-channel block of the input-gradient kernel. */
export const INPUT_GRAD_CI_BLOCK = 8;

/**
 * dx[b, r·sh + a − pt, q·sw + c − pl, :] += W[a, c, :, :] · dy[b, r, q, :] for every tap inside
 * dx (the scatter form of a transposed convolution, so strided layers cost no zero-stuffing
 * and no phase split); dx must start zeroed. Specialised for `co` and `ci` (ci % 8 == 0) so
 * pixel and row offsets are constants. wT is the filter as [kh, kw, co, ci]. Params: byte
 * addresses of dy, wT, dx, then n, h, w, oh, ow, kh, kw, sh, sw, pt, pl. Per 4 pixels of a dy
 * row and 8 input channels, 8 accumulators stay in registers over the co reduction.
 */
function inputGradCode(co: number, ci: number): Code {
  const [DY, WT, DX, N, H, W, OH, OW, KH, KW, SH, SW, PT, PL] = Array.from({ length: 14 }, (_, i) => i);
  const [B, R, A, C, IH, LO, HI, I0, Q, PW, PD, PEND, ROWDY, ROWDX, WTAP, OUT] = Array.from({ length: 16 }, (_, i) => 14 + i);
  const ACC = 30;
  const [W0, W1, D] = [ACC + 8, ACC + 9, ACC + 10];
  const code = new Code();
  const get = (local: number) => () => code.get(local);
  const zero = () => code.i32(0);
  /** The co reduction for `pixels` consecutive dy pixels starting at column Q. */
  const reduce = (pixels: number) => {
    for (let k = 0; k < 2 * pixels; k++) code.f32Const(0).f32x4Splat().set(ACC + k);
    code.get(WTAP).get(I0).add().set(PW);
    code.get(ROWDY).get(Q).i32(co * 4).mul().add().tee(PD).i32(co * 4).add().set(PEND);
    code.loop();
    code.get(PW).v128Load(0).set(W0).get(PW).v128Load(16).set(W1);
    for (let p = 0; p < pixels; p++) {
      code.get(PD).load32Splat(p * co * 4).set(D);
      for (let j = 0; j < 2; j++) code.multiplyAccumulate(ACC + 2 * p + j, D, j ? W1 : W0);
    }
    code.increment(PW, ci * 4).increment(PD, 4);
    code.get(PD).get(PEND).ltU().brIf(0).end();
    // out = rowDx + (q·sw + c − pl)·ci·4 + i0, then sw·ci·4 bytes per pixel.
    code.get(Q).get(SW).mul().get(C).add().get(PL).sub().i32(ci * 4).mul().get(ROWDX).add().get(I0).add().set(OUT);
    for (let p = 0; p < pixels; p++) {
      for (let j = 0; j < 2; j++) code.get(OUT).get(OUT).v128Load(16 * j).get(ACC + 2 * p + j).f32x4Add().v128Store(16 * j);
      if (p < pixels - 1) code.increment(OUT, () => code.get(SW).i32(ci * 4).mul());
    }
  };
  code.forRange(B, zero, get(N), () => {
    code.forRange(R, zero, get(OH), () => {
      code.get(B).get(OH).mul().get(R).add().get(OW).mul().i32(co * 4).mul().get(DY).add().set(ROWDY);
      code.forRange(A, zero, get(KH), () => {
        code.get(R).get(SH).mul().get(A).add().get(PT).sub().set(IH);
        code.block();
        code.get(IH).i32(0).ltS().get(IH).get(H).geS().or().brIf(0);
        code.get(B).get(H).mul().get(IH).add().get(W).mul().i32(ci * 4).mul().get(DX).add().set(ROWDX);
        code.forRange(C, zero, get(KW), () => {
          validColumns(code, { W, OW, SW, PL, C, LO, HI });
          code.get(A).get(KW).mul().get(C).add().i32(co * ci * 4).mul().get(WT).add().set(WTAP);
          code.forRange(I0, zero, () => code.i32(ci * 4), () => {
            code.get(LO).set(Q);
            code.block().loop();
            code.get(Q).i32(4).add().get(HI).gtS().brIf(1);
            reduce(4);
            code.increment(Q, 4).br(0).end().end();
            code.block().loop();
            code.get(Q).get(HI).geS().brIf(1);
            reduce(1);
            code.increment(Q, 1).br(0).end().end();
          }, INPUT_GRAD_CI_BLOCK * 4);
        });
        code.end();
      });
    });
  });
  return code;
}

/** Output-channel block of the forward convolution kernel. */
export const FORWARD_CO_BLOCK = 8;

/**
 * Forward convolution y[b, r, q, :] = Σ over a, c, k of x[b, r·sh + a − pt, q·sw + c − pl, k] ·
 * W[a, c, k, :], taps outside x skipped, W as [kh, kw, ci, co]. Specialised for ci, co
 * (co % 8 == 0) and sw so every pixel, tap and channel offset is a constant. Output blocks of
 * 4 pixels x 8 channels whose taps all lie inside the row use 8 register accumulators across
 * all taps; border pixels go one at a time with a check per tap. y is written, not
 * accumulated. Params: byte addresses of x, W, y, then n, h, w, oh, ow, kh, kw, sh, pt, pl.
 */
function forwardConvCode(ci: number, co: number, sw: number): Code {
  const [X, WT, Y, N, H, W, OH, OW, KH, KW, SH, PT, PL] = Array.from({ length: 13 }, (_, i) => i);
  const [B, R, J0, Q, A, C, IH, PX, PW, PEND, ROWY, QLO, QHI, IW] = Array.from({ length: 14 }, (_, i) => 13 + i);
  const ACC = 27;
  const [W0, W1, D] = [ACC + 8, ACC + 9, ACC + 10];
  const code = new Code();
  const get = (local: number) => () => code.get(local);
  const zero = () => code.i32(0);
  /** Accumulates tap (a, c) for `pixels` outputs from column Q; PX points at x for pixel 0. */
  const reduceTap = (pixels: number) => {
    code.get(A).get(KW).mul().get(C).add().i32(ci * co * 4).mul().get(WT).add().get(J0).add().set(PW);
    code.get(PX).i32(ci * 4).add().set(PEND);
    code.loop();
    code.get(PW).v128Load(0).set(W0).get(PW).v128Load(16).set(W1);
    for (let p = 0; p < pixels; p++) {
      code.get(PX).load32Splat(p * sw * ci * 4).set(D);
      for (let j = 0; j < 2; j++) code.multiplyAccumulate(ACC + 2 * p + j, D, j ? W1 : W0);
    }
    code.increment(PX, 4).increment(PW, co * 4);
    code.get(PX).get(PEND).ltU().brIf(0).end();
  };
  /** `pixels` outputs from column Q over every tap; `checked` skips taps outside the row (1 pixel only). */
  const outputs = (pixels: number, checked: boolean) => {
    for (let k = 0; k < 2 * pixels; k++) code.f32Const(0).f32x4Splat().set(ACC + k);
    code.forRange(A, zero, get(KH), () => {
      code.get(R).get(SH).mul().get(A).add().get(PT).sub().set(IH);
      code.block();
      code.get(IH).i32(0).ltS().get(IH).get(H).geS().or().brIf(0);
      code.forRange(C, zero, get(KW), () => {
        code.get(Q).i32(sw).mul().get(C).add().get(PL).sub().set(IW);
        code.block();
        if (checked) code.get(IW).i32(0).ltS().get(IW).get(W).geS().or().brIf(0);
        code.get(B).get(H).mul().get(IH).add().get(W).mul().get(IW).add().i32(ci * 4).mul().get(X).add().set(PX);
        reduceTap(pixels);
        code.end();
      });
      code.end();
    });
    code.get(ROWY).get(Q).i32(co * 4).mul().add().get(J0).add().set(PX);
    for (let p = 0; p < pixels; p++) {
      for (let j = 0; j < 2; j++) code.get(PX).get(ACC + 2 * p + j).v128Store(p * co * 4 + 16 * j);
    }
  };
  // Columns whose taps all lie inside the row: q·sw − pl ≥ 0 and q·sw + kw − 1 − pl ≤ w − 1.
  code.get(PL).i32(sw - 1).add().i32(sw).divS().set(QLO);
  code.get(W).get(KW).sub().get(PL).add().set(QHI);
  code.get(QHI).i32(sw).divS().i32(1).add().i32(0).get(QHI).i32(0).geS().select().set(QHI);
  code.forRange(B, zero, get(N), () => {
    code.forRange(R, zero, get(OH), () => {
      code.get(B).get(OH).mul().get(R).add().get(OW).mul().i32(co * 4).mul().get(Y).add().set(ROWY);
      code.forRange(J0, zero, () => code.i32(co * 4), () => {
        code.i32(0).set(Q);
        code.block().loop();
        code.get(Q).get(OW).geS().brIf(1);
        code.block().block();
        // A full interior block of 4 when q ≥ qlo and q + 4 ≤ min(qhi, ow); else one checked pixel.
        code.get(Q).get(QLO).ltS().get(Q).i32(4).add().get(QHI).gtS().or().get(Q).i32(4).add().get(OW).gtS().or().brIf(0);
        outputs(4, false);
        code.increment(Q, 4).br(1);
        code.end();
        outputs(1, true);
        code.increment(Q, 1);
        code.end();
        code.br(0).end().end();
      }, FORWARD_CO_BLOCK * 4);
    });
  });
  return code;
}

export interface SimdKernels {
  /** dims: n, h, w, ci, oh, ow, co, kh, kw, sh, sw, pt, pl, chunkRows. */
  filterGrad(x: number, dy: number, dw: number, dims: number[]): void;
  blockColumnSums(src: number, rows: number, channels: number, blockRows: number, dst: number): void;
  blockGradSums(dy: number, x: number, mean: number, rows: number, channels: number, blockRows: number, sumDy: number, sumDyCentred: number): void;
  channelAffine(x: number, rows: number, channels: number, a: number, b: number, y: number): void;
  /** dims: n, h, w, oh, ow, kh, kw, sh, sw, pt, pl; ci must be a multiple of INPUT_GRAD_CI_BLOCK. */
  inputGrad(co: number, ci: number, dy: number, wT: number, dx: number, dims: number[]): void;
  /** dims: n, h, w, oh, ow, kh, kw, sh, pt, pl; co must be a multiple of FORWARD_CO_BLOCK. */
  forwardConv(ci: number, co: number, sw: number, x: number, w: number, y: number, dims: number[]): void;
  /** The most threads a call uses: Winograd scratch and partial sums are sized for this many. */
  readonly threads: number;
  /** U = G g Gᵀ of a [3][3][k][j] filter (j % 4 == 0) into [α²][k][j]; `flip` rotates g by 180°. */
  winogradFilter(tile: WinogradTile, flip: boolean, filter: number, u: number, k: number, j: number): void;
  /**
   * y = x * g by Winograd from U (winogradFilter); dims: n, h, w, oh, ow, pt, pl. scratch holds
   * `threads` x winogradScratchBytes(tile, ci, co).
   */
  winogradForward(tile: WinogradTile, ci: number, co: number, x: number, u: number, y: number, scratch: number, dims: number[]): void;
  /**
   * The filter gradient in the transformed space, one [α²][ci][co] part per thread used into
   * `parts` (room for `threads`); returns how many parts it wrote. dims as for winogradForward.
   */
  winogradFilterGrad(tile: WinogradTile, ci: number, co: number, x: number, dy: number, parts: number, scratch: number, dims: number[]): number;
  /** dw = Gᵀ (Σ parts) G as [3][3][ci][co]. */
  winogradFilterGradOutput(tile: WinogradTile, parts: number, count: number, ci: number, co: number, dw: number): void;
}

function backendMemory(backend: BackendWasm): WebAssembly.Memory {
  // The threaded build exposes its shared memory as wasmMemory, the plain build as the module's export.
  const module = backend.wasm as unknown as { wasmMemory?: WebAssembly.Memory; asm?: { memory?: WebAssembly.Memory } };
  const memory = module.wasmMemory ?? module.asm?.memory;
  if (!memory) throw new Error('cannot find the wasm backend\'s memory');
  return memory;
}

const instances = new WeakMap<WebAssembly.Memory, SimdKernels>();
const unavailable = new WeakSet<BackendWasm>();

/**
 * Our kernels on this backend's memory, or null where they cannot run (an engine without
 * wasm SIMD); callers then use the backend's own kernels. They use as many threads as the
 * backend's XNNPACK pool when its memory is shared (the threaded build), else one.
 */
export function backendSimd(backend: BackendWasm): SimdKernels | null {
  if (unavailable.has(backend)) return null;
  try {
    const memory = backendMemory(backend);
    let kernels = instances.get(memory);
    if (!kernels) {
      kernels = simdKernels(memory, simdThreads());
      instances.set(memory, kernels);
    }
    return kernels;
  } catch {
    unavailable.add(backend);
    return null;
  }
}

/** The byte address of a tensor in the backend's memory, for our kernels. */
export function address(backend: BackendWasm, t: { dataId: object }): number {
  return backend.dataIdMap.get(t.dataId)!.memoryOffset;
}

/** Splits [0, total) into up to `parts` contiguous [start, end) ranges of whole multiples of `unit`. */
function split(total: number, parts: number, unit = 1): Array<[number, number]> {
  const units = Math.ceil(total / unit);
  const count = Math.max(1, Math.min(parts, units));
  return Array.from({ length: count }, (_, i) => [
    Math.min(total, Math.floor((units * i) / count) * unit),
    Math.min(total, Math.floor((units * (i + 1)) / count) * unit),
  ] as [number, number]).filter(([start, end]) => end > start);
}

/** Work below this many multiply-adds (or elements) is not worth waking other threads for. */
const PARALLEL_MIN_WORK = 1 << 18;

type Kernel = (...args: number[]) => void;

/** Kernels bound to one wasm memory, on `threads` threads when the memory is shared. */
function simdKernels(memory: WebAssembly.Memory, threads: number): SimdKernels {
  const shared = typeof SharedArrayBuffer === 'function' && memory.buffer instanceof SharedArrayBuffer;
  const pool = shared && threads > 1 ? new WasmPool(memory, threads - 1) : null;
  const instantiate = (module: WebAssembly.Module, exportName: string) => ({
    local: (new WebAssembly.Instance(module, { env: { memory } }).exports as Record<string, Kernel>)[exportName],
    index: pool ? pool.register(module, exportName) : -1,
  });
  /** Runs each share's argument list on its own thread (the first on this one). */
  const parallel = (kernel: { local: Kernel; index: number }, shares: number[][]) => {
    if (pool && shares.length > 1) pool.run(kernel.index, kernel.local, shares);
    else for (const args of shares) kernel.local(...args);
  };
  const threadsFor = (work: number) => (work >= PARALLEL_MIN_WORK ? threads : 1);

  const specialised = new Map<string, { local: Kernel; index: number }>();
  /**
   * Compiles a kernel once, on first use: specialised for some sizes where the key names them,
   * and with or without fused multiply-adds as currently chosen.
   */
  const specialise = (key: string, spec: () => Omit<FunctionSpec, 'exportName'>) => {
    const fullKey = `${key} fma=${fusedMultiplyAdd()}`;
    let kernel = specialised.get(fullKey);
    if (!kernel) {
      kernel = instantiate(new WebAssembly.Module(assemble([{ exportName: 'run', ...spec() }], shared)), 'run');
      specialised.set(fullKey, kernel);
    }
    return kernel;
  };
  const filterGrad = () => specialise('filterGrad', () => ({ params: 19, i32Locals: 19, v128Locals: 11, code: filterGradCode() }));
  const blockColumnSums = () => specialise('blockColumnSums', () => ({ params: 5, i32Locals: 7, v128Locals: 1, code: blockColumnSumsCode() }));
  const blockGradSums = () => specialise('blockGradSums', () => ({ params: 8, i32Locals: 8, v128Locals: 4, code: blockGradSumsCode() }));
  const channelAffine = () => specialise('channelAffine', () => ({ params: 6, i32Locals: 5, v128Locals: 0, code: channelAffineCode() }));

  return {
    threads,
    winogradFilter(tile, flip, filter, u, k, j) {
      const kernel = specialise(`winogradFilter ${tile.output} ${flip}`, () => winogradFilterCode(tile, flip));
      const tapBytes = 4 * k * j;
      parallel(kernel, split(tapBytes / 16, threadsFor(9 * k * j)).map(([start, end]) => [filter, u, tapBytes, 16 * start, 16 * end]));
    },
    winogradForward(tile, ci, co, x, u, y, scratch, dims) {
      const [n, h, w, oh, ow, pt, pl] = dims;
      const kernel = specialise(`winogradForward ${tile.output} ${ci} ${co}`, () => winogradForwardCode(tile, ci, co));
      const [tilesHigh, tilesWide] = [Math.ceil(oh / tile.output), Math.ceil(ow / tile.output)];
      const scratchBytes = winogradScratchBytes(tile, ci, co);
      parallel(kernel, split(n * tilesHigh * tilesWide, threadsFor(9 * n * oh * ow * ci * co)).map(([start, end], i) =>
        [x, u, y, scratch + i * scratchBytes, h, w, oh, ow, pt, pl, tilesHigh, tilesWide, start, end]));
    },
    winogradFilterGrad(tile, ci, co, x, dy, parts, scratch, dims) {
      const [n, h, w, oh, ow, pt, pl] = dims;
      const kernel = specialise(`winogradFilterGrad ${tile.output} ${ci} ${co}`, () => winogradFilterGradCode(tile, ci, co));
      const [tilesHigh, tilesWide] = [Math.ceil(oh / tile.output), Math.ceil(ow / tile.output)];
      const scratchBytes = winogradScratchBytes(tile, ci, co);
      const partBytes = 4 * tile.input * tile.input * ci * co;
      const shares = split(n * tilesHigh * tilesWide, threadsFor(9 * n * oh * ow * ci * co));
      parallel(kernel, shares.map(([start, end], i) =>
        [x, dy, parts + i * partBytes, scratch + i * scratchBytes, h, w, oh, ow, pt, pl, tilesHigh, tilesWide, start, end]));
      return shares.length;
    },
    winogradFilterGradOutput(tile, parts, count, ci, co, dw) {
      const kernel = specialise(`winogradFilterGradOutput ${tile.output}`, () => winogradFilterGradOutputCode(tile));
      const tapBytes = 4 * ci * co;
      parallel(kernel, split(tapBytes / 16, threadsFor(count * tile.input * tile.input * ci * co)).map(([start, end]) =>
        [parts, count, tile.input * tile.input * tapBytes, dw, tapBytes, 16 * start, 16 * end]));
    },
    filterGrad(x, dy, dw, dims) {
      const [n, , , ci, oh, ow, co, kh, kw] = dims;
      const work = n * oh * ow * ci * co * kh * kw;
      parallel(filterGrad(), split(ci, threadsFor(work), FILTER_GRAD_CI_BLOCK).map(([start, end]) => [x, dy, dw, ...dims, start, end]));
    },
    inputGrad(co, ci, dy, wT, dx, dims) {
      const [n, h, w, oh, ow, kh, kw, ...rest] = dims;
      const kernel = specialise(`inputGrad ${co} ${ci}`, () => ({ params: 14, i32Locals: 16, v128Locals: 11, code: inputGradCode(co, ci) }));
      const work = n * oh * ow * ci * co * kh * kw;
      parallel(kernel, split(n, threadsFor(work)).map(([start, end]) =>
        [dy + 4 * start * oh * ow * co, wT, dx + 4 * start * h * w * ci, end - start, h, w, oh, ow, kh, kw, ...rest]));
    },
    forwardConv(ci, co, sw, x, w, y, dims) {
      const [n, h, width, oh, ow, kh, kw, ...rest] = dims;
      const kernel = specialise(`forwardConv ${ci} ${co} ${sw}`, () => ({ params: 13, i32Locals: 14, v128Locals: 11, code: forwardConvCode(ci, co, sw) }));
      const work = n * oh * ow * ci * co * kh * kw;
      parallel(kernel, split(n, threadsFor(work)).map(([start, end]) =>
        [x + 4 * start * h * width * ci, w, y + 4 * start * oh * ow * co, end - start, h, width, oh, ow, kh, kw, ...rest]));
    },
    blockColumnSums(src, rows, channels, blockRows, dst) {
      parallel(blockColumnSums(), split(rows, threadsFor(rows * channels), blockRows).map(([start, end]) =>
        [src + 4 * start * channels, end - start, channels, blockRows, dst + (4 * start * channels) / blockRows]));
    },
    blockGradSums(dy, x, mean, rows, channels, blockRows, sumDy, sumDyCentred) {
      parallel(blockGradSums(), split(rows, threadsFor(rows * channels), blockRows).map(([start, end]) => {
        const [offset, blockOffset] = [4 * start * channels, (4 * start * channels) / blockRows];
        return [dy + offset, x + offset, mean, end - start, channels, blockRows, sumDy + blockOffset, sumDyCentred + blockOffset];
      }));
    },
    channelAffine(x, rows, channels, a, b, y) {
      parallel(channelAffine(), split(rows, threadsFor(rows * channels)).map(([start, end]) =>
        [x + 4 * start * channels, end - start, channels, a, b, y + 4 * start * channels]));
    },
  };
}
