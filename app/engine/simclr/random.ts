/**
 * Seeded pseudo-random numbers for everything the engine decides in JavaScript (crop boxes,
 * flips, jitter factors, initialiser seeds), so a run with the same seed repeats exactly.
 * mulberry32: one 32-bit word of state, which makes the generator trivial to checkpoint.
 */
export class Rng {
  private word: number;

  constructor(seed: number) {
    this.word = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.word = (this.word + 0x6d2b79f5) >>> 0;
    let t = this.word;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform in [low, high). */
  uniform(low: number, high: number): number {
    return low + (high - low) * this.next();
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** True with probability p. */
  bernoulli(p: number): boolean {
    return this.next() < p;
  }

  /** Standard normal (Box–Muller; 1 − u keeps the logarithm finite). */
  normal(): number {
    return Math.sqrt(-2 * Math.log(1 - this.next())) * Math.cos(2 * Math.PI * this.next());
  }

  /**
   * Gamma(shape, 1) by Marsaglia and Tsang's squeeze; a shape below 1 draws Gamma(shape + 1) and
   * scales it by u^(1/shape), the standard boost.
   */
  gamma(shape: number): number {
    if (!(shape > 0)) throw new Error(`gamma shape must be positive, got ${shape}`);
    if (shape < 1) return this.gamma(shape + 1) * Math.pow(1 - this.next(), 1 / shape);
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      const x = this.normal();
      const v = (1 + c * x) ** 3;
      if (v <= 0) continue;
      const u = 1 - this.next();
      if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
    }
  }

  /**
   * Beta(a, b), as the share of one gamma draw in the sum of two. Tiny shapes can underflow both
   * draws to 0; Beta then tends to Bernoulli(a / (a + b)), which is what it returns.
   */
  beta(a: number, b: number): number {
    const x = this.gamma(a);
    const sum = x + this.gamma(b);
    if (sum > 0) return x / sum;
    return this.bernoulli(a / (a + b)) ? 1 : 0;
  }

  /** A fresh 32-bit seed, e.g. for a TF.js initialiser or a child generator. */
  seed(): number {
    return Math.floor(this.next() * 4294967296) >>> 0;
  }

  /** Fisher–Yates shuffle of a copy of `items`. */
  shuffled<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }

  /** The whole generator state, for checkpoints; `new Rng(0).setState(s)` resumes the sequence. */
  getState(): number {
    return this.word;
  }

  setState(state: number): this {
    this.word = state >>> 0;
    return this;
  }
}
