/**
 * How a stored tensor becomes one of our weights. PyTorch keeps conv kernels as OIHW and Linear
 * weights as [out, in]; TF.js wants HWIO and [in, out]. The SimCLRv2 layout also stores both
 * selective-kernel branches in one conv (halves along the output axis) and their mixing as two
 * logits per channel, which our single sigmoid gate expresses as the difference of the halves.
 */
export interface Transform {
  /** The stored shape that becomes a weight of `target` shape. */
  sourceShape(target: number[]): number[];
  apply(values: Float32Array, source: number[]): Float32Array;
}

export const identity: Transform = {
  sourceShape: (target) => target,
  apply: (values) => values,
};

/** OIHW → HWIO. */
export const convKernel: Transform = {
  sourceShape: ([h, w, i, o]) => [o, i, h, w],
  apply(values, [o, i, h, w]) {
    const out = new Float32Array(values.length);
    for (let oo = 0; oo < o; oo++) {
      for (let ii = 0; ii < i; ii++) {
        for (let y = 0; y < h; y++) {
          for (let x = 0; x < w; x++) out[((y * w + x) * i + ii) * o + oo] = values[((oo * i + ii) * h + y) * w + x];
        }
      }
    }
    return out;
  },
};

function transpose2d(values: Float32Array, rows: number, columns: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < columns; c++) out[c * rows + r] = values[r * columns + c];
  return out;
}

/** Linear [out, in] → Dense [in, out]. */
export const linearKernel: Transform = {
  sourceShape: ([i, o]) => [o, i],
  apply: (values, [o, i]) => transpose2d(values, o, i),
};

/** A 1x1 conv on a pooled 1x1 map is a Dense layer: [out, in, 1, 1] → [in, out]. */
export const pointwiseAsDense: Transform = {
  sourceShape: ([i, o]) => [o, i, 1, 1],
  apply: (values, [o, i]) => transpose2d(values, o, i),
};

/** One half (along the first, output axis) of a tensor holding two branches, then `inner`. */
export function half(part: 0 | 1, inner: Transform): Transform {
  return {
    sourceShape(target) {
      const [first, ...rest] = inner.sourceShape(target);
      return [2 * first, ...rest];
    },
    apply(values, [first, ...rest]) {
      const size = values.length / 2;
      return inner.apply(values.slice(part * size, (part + 1) * size), [first / 2, ...rest]);
    },
  };
}

/**
 * softmax over two logits (a, b) is sigmoid(a − b), so the pair of 1x1 convs [2C, mid, 1, 1]
 * that make the two branch logits become one Dense [mid, C] of their difference.
 */
export const gateDifference: Transform = {
  sourceShape: ([mid, c]) => [2 * c, mid, 1, 1],
  apply(values, [twoC, mid]) {
    const c = twoC / 2;
    const difference = new Float32Array(c * mid);
    for (let k = 0; k < c * mid; k++) difference[k] = values[k] - values[c * mid + k];
    return transpose2d(difference, c, mid);
  },
};
