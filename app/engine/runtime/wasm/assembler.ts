/**
 * A small WebAssembly assembler: one function body at a time through Code's emitters, and a
 * module of such functions that imports the TF.js wasm backend's memory (assemble). Our
 * kernels (simd.ts, winograd.ts) are written with it, so no toolchain is needed.
 */

const I32 = 0x7f;
const V128 = 0x7b;

/** Read by each new Code; set once relaxed SIMD has been probed (end of this file). */
let fusedMultiplyAddEnabled = false;

function uleb(value: number): number[] {
  const bytes: number[] = [];
  let rest = value >>> 0;
  do {
    const low = rest & 0x7f;
    rest >>>= 7;
    bytes.push(rest ? low | 0x80 : low);
  } while (rest);
  return bytes;
}

function sleb(value: number): number[] {
  const bytes: number[] = [];
  let rest = value | 0;
  for (;;) {
    const low = rest & 0x7f;
    rest >>= 7;
    if ((rest === 0 && !(low & 0x40)) || (rest === -1 && low & 0x40)) {
      bytes.push(low);
      return bytes;
    }
    bytes.push(low | 0x80);
  }
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function name(text: string): number[] {
  const bytes = [...new TextEncoder().encode(text)];
  return [...uleb(bytes.length), ...bytes];
}

/** Builds one function body; every emitter returns `this` so code reads top to bottom. */
export class Code {
  readonly bytes: number[] = [];
  /** Whether multiplyAccumulate emits relaxed SIMD's fused multiply-add (see setFusedMultiplyAdd). */
  readonly fused = fusedMultiplyAddEnabled;

  private op(...bytes: number[]): this {
    this.bytes.push(...bytes);
    return this;
  }

  private simd(opcode: number, ...rest: number[]): this {
    return this.op(0xfd, ...uleb(opcode), ...rest);
  }

  get(local: number) { return this.op(0x20, ...uleb(local)); }
  set(local: number) { return this.op(0x21, ...uleb(local)); }
  tee(local: number) { return this.op(0x22, ...uleb(local)); }
  i32(value: number) { return this.op(0x41, ...sleb(value)); }
  add() { return this.op(0x6a); }
  sub() { return this.op(0x6b); }
  mul() { return this.op(0x6c); }
  divS() { return this.op(0x6d); }
  divU() { return this.op(0x6e); }
  ltS() { return this.op(0x48); }
  geS() { return this.op(0x4e); }
  leS() { return this.op(0x4c); }
  gtS() { return this.op(0x4a); }
  /** Unsigned compares, for byte addresses (a heap can pass 2 GiB). */
  ltU() { return this.op(0x49); }
  geU() { return this.op(0x4f); }
  or() { return this.op(0x72); }
  and() { return this.op(0x71); }
  select() { return this.op(0x1b); }
  /** A block whose end `br` jumps to (break). */
  block() { return this.op(0x02, 0x40); }
  /** A loop whose start `br` jumps to (continue). */
  loop() { return this.op(0x03, 0x40); }
  end() { return this.op(0x0b); }
  /** if ... end that leaves nothing on the stack. */
  ifThen() { return this.op(0x04, 0x40); }
  /** if ... else ... end whose branches each leave one v128. */
  ifVector() { return this.op(0x04, V128); }
  else() { return this.op(0x05); }
  br(depth: number) { return this.op(0x0c, ...uleb(depth)); }
  brIf(depth: number) { return this.op(0x0d, ...uleb(depth)); }
  /** Memory operands use 4-byte alignment hints: tensors are float arrays. */
  v128Load(offset = 0) { return this.simd(0x00, 2, ...uleb(offset)); }
  v128Store(offset = 0) { return this.simd(0x0b, 2, ...uleb(offset)); }
  load32Splat(offset = 0) { return this.simd(0x09, 2, ...uleb(offset)); }
  f32x4Splat() { return this.simd(0x13); }
  f32x4Add() { return this.simd(0xe4); }
  f32x4Sub() { return this.simd(0xe5); }
  f32x4Mul() { return this.simd(0xe6); }
  f32x4Neg() { return this.simd(0xe1); }
  /** Relaxed SIMD f32x4.relaxed_madd: a·b + c, fused where the CPU has FMA. */
  f32x4RelaxedMadd() { return this.simd(0x105); }

  /** acc = acc + a·b for three f32x4 locals: one fused multiply-add where enabled. */
  multiplyAccumulate(acc: number, a: number, b: number) {
    if (this.fused) return this.get(a).get(b).get(acc).f32x4RelaxedMadd().set(acc);
    return this.get(acc).get(a).get(b).f32x4Mul().f32x4Add().set(acc);
  }
  f32Const(value: number) {
    const bytes = new Uint8Array(new Float32Array([value]).buffer);
    return this.op(0x43, ...bytes);
  }

  /** local = local + step. */
  increment(local: number, step: number | (() => void)) {
    this.get(local);
    if (typeof step === 'number') this.i32(step);
    else step();
    return this.add().set(local);
  }

  /** for (local = start; local < limit; local += step) { body } with limit read each round. */
  forRange(local: number, start: () => void, limit: () => void, body: () => void, step: number | (() => void) = 1) {
    start();
    this.set(local).block();
    this.get(local);
    limit();
    this.geS().brIf(0).loop();
    body();
    this.increment(local, step);
    this.get(local);
    limit();
    this.ltS().brIf(0).end().end();
    return this;
  }
}

export interface FunctionSpec {
  exportName: string;
  params: number;
  i32Locals: number;
  v128Locals: number;
  code: Code;
}

/**
 * Hands out local indices for one function: parameters first, then up to `maxI32` i32
 * locals, then the v128 locals, as assemble declares them.
 */
export class Locals {
  private i32Count = 0;
  private v128Count = 0;

  constructor(readonly params: number, private readonly maxI32 = 96) {}

  i32(): number {
    if (this.i32Count === this.maxI32) throw new Error('out of i32 locals');
    return this.params + this.i32Count++;
  }

  v128(): number {
    return this.params + this.maxI32 + this.v128Count++;
  }

  spec(exportName: string, code: Code): FunctionSpec {
    return { exportName, params: this.params, i32Locals: this.maxI32, v128Locals: this.v128Count, code };
  }
}

export function assemble(functions: FunctionSpec[], sharedMemory: boolean): Uint8Array<ArrayBuffer> {
  const types = functions.map((f) => [0x60, ...vec(Array.from({ length: f.params }, () => [I32])), ...vec([])]);
  // Imported memory: shared memories must state a maximum, which TF.js's threaded build sets to 4 GiB.
  const limits = sharedMemory ? [0x03, ...uleb(1), ...uleb(65536)] : [0x00, ...uleb(1)];
  const imports = vec([[...name('env'), ...name('memory'), 0x02, ...limits]]);
  const bodies = functions.map((f) => {
    const locals = vec([[...uleb(f.i32Locals), I32], [...uleb(f.v128Locals), V128]]);
    const body = [...locals, ...f.code.bytes, 0x0b];
    return [...uleb(body.length), ...body];
  });
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(2, imports),
    ...section(3, vec(functions.map((_, i) => uleb(i)))),
    ...section(7, vec(functions.map((f, i) => [...name(f.exportName), 0x00, ...uleb(i)]))),
    ...section(10, vec(bodies)),
  ]);
}

/**
 * Whether this engine runs WebAssembly relaxed SIMD (Node >= 22 and Electron's Node; Node 20
 * with --experimental-wasm-relaxed-simd): a one-instruction module with f32x4.relaxed_madd
 * validates only there.
 */
function relaxedSimdAvailable(): boolean {
  const probe = new Code();
  probe.get(0).get(0).get(0).f32x4RelaxedMadd().set(0);
  return WebAssembly.validate(assemble([{ exportName: 'probe', params: 0, i32Locals: 0, v128Locals: 1, code: probe }], false));
}

const relaxedSimd = relaxedSimdAvailable();
fusedMultiplyAddEnabled = relaxedSimd;

/** True when the runtime has relaxed SIMD, so kernels can use fused multiply-adds. */
export function fusedMultiplyAddAvailable(): boolean {
  return relaxedSimd;
}

/** Whether kernels compiled from now on use fused multiply-adds (default: where available). */
export function fusedMultiplyAdd(): boolean {
  return fusedMultiplyAddEnabled;
}

/** Chooses fused multiply-adds or separate multiplies and adds (tests and benchmarks compare them). */
export function setFusedMultiplyAdd(enabled: boolean): void {
  if (enabled && !relaxedSimd) throw new Error('this runtime has no WebAssembly relaxed SIMD');
  fusedMultiplyAddEnabled = enabled;
}
