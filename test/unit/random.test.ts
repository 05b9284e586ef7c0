import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../app/engine/simclr/random.ts';

test('same seed gives the same sequence, different seeds differ', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const c = new Rng(43);
  const seqA = Array.from({ length: 5 }, () => a.next());
  const seqB = Array.from({ length: 5 }, () => b.next());
  const seqC = Array.from({ length: 5 }, () => c.next());
  assert.deepEqual(seqA, seqB);
  assert.notDeepEqual(seqA, seqC);
});

test('values stay in range and are roughly uniform', () => {
  const rng = new Rng(7);
  let sum = 0;
  for (let i = 0; i < 10000; i++) {
    const u = rng.uniform(2, 5);
    assert.ok(u >= 2 && u < 5);
    sum += u;
  }
  assert.ok(Math.abs(sum / 10000 - 3.5) < 0.05);
  for (let i = 0; i < 1000; i++) {
    const k = rng.int(3);
    assert.ok(k === 0 || k === 1 || k === 2);
  }
  let heads = 0;
  for (let i = 0; i < 10000; i++) if (rng.bernoulli(0.2)) heads++;
  assert.ok(Math.abs(heads / 10000 - 0.2) < 0.02);
});

/** Sample mean and variance of n draws. */
function moments(n: number, draw: () => number): { mean: number; variance: number } {
  const xs = Array.from({ length: n }, draw);
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  return { mean, variance: xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1) };
}

test('normal, gamma and beta draws have their distributions\' mean and variance', () => {
  const rng = new Rng(11);
  const normal = moments(20000, () => rng.normal());
  assert.ok(Math.abs(normal.mean) < 0.03 && Math.abs(normal.variance - 1) < 0.04, JSON.stringify(normal));
  // Gamma(k, 1): mean k, variance k; the shape below 1 takes the boosted path.
  for (const shape of [0.4, 1, 3.5]) {
    const g = moments(20000, () => rng.gamma(shape));
    assert.ok(Math.abs(g.mean - shape) < 0.04 * shape + 0.02, `gamma(${shape}) mean ${g.mean}`);
    assert.ok(Math.abs(g.variance - shape) < 0.1 * shape, `gamma(${shape}) variance ${g.variance}`);
  }
  // Beta(a, a): mean 1/2, variance 1 / (4(2a + 1)): 0.1389 at a = 0.4, 1/12 at a = 1.
  for (const [a, variance] of [[0.4, 0.25 / 1.8], [1, 1 / 12]]) {
    const b = moments(20000, () => rng.beta(a, a));
    assert.ok(Math.abs(b.mean - 0.5) < 0.01 && Math.abs(b.variance - variance) < 0.005, `beta(${a}) ${JSON.stringify(b)}`);
  }
  assert.throws(() => rng.gamma(0), /positive/);
});

test('state round-trips so a resumed run continues the same sequence', () => {
  const rng = new Rng(5);
  rng.next();
  const saved = rng.getState();
  const expected = [rng.next(), rng.next()];
  const resumed = new Rng(0).setState(saved);
  assert.deepEqual([resumed.next(), resumed.next()], expected);
});

test('shuffled is a permutation and leaves the input alone', () => {
  const items = [1, 2, 3, 4, 5, 6];
  const out = new Rng(1).shuffled(items);
  assert.deepEqual(items, [1, 2, 3, 4, 5, 6]);
  assert.deepEqual([...out].sort(), items);
  assert.notDeepEqual(out, items);
});
