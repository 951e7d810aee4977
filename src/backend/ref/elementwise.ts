// Reference elementwise, reduction and copy kernels (see KERNEL_ARGS for the contracts).
import { H } from '../heap.js';
import { BinaryOp, ReduceOp, UnaryOp } from '../kernels.js';

/** erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7, below f32 resolution near 1). */
export function erf(x: number): number {
  const s = x < 0 ? -1 : 1;
  const ax = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * ax);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-ax * ax);
  return s * y;
}

/** Offsets of element `i` (row-major over shape) under each stride set. */
function stridedOffsets(i: number, ndim: number, meta: number, nsets: number, out: number[]): void {
  const m = H.i32, base = meta >>> 2;
  for (let s = 0; s < nsets; s++) out[s] = 0;
  for (let d = ndim - 1; d >= 0; d--) {
    const size = m[base + d];
    const idx = i % size;
    i = (i - idx) / size;
    for (let s = 0; s < nsets; s++) out[s] += idx * m[base + (s + 1) * ndim + d];
  }
}

export function copy(dst: number, src: number, ndim: number, meta: number, n: number): void {
  const v = H.i32, d0 = dst >>> 2, s0 = src >>> 2, off = [0, 0];
  for (let i = 0; i < n; i++) {
    stridedOffsets(i, ndim, meta, 2, off);
    v[d0 + off[0]] = v[s0 + off[1]];
  }
}

export function binaryScalar(op: number, x: number, y: number): number {
  switch (op) {
    case BinaryOp.ADD: return x + y;
    case BinaryOp.SUB: return x - y;
    case BinaryOp.MUL: return x * y;
    case BinaryOp.DIV: return x / y;
    case BinaryOp.POW: return Math.pow(x, y);
    case BinaryOp.MAX: return x > y || Number.isNaN(x) ? x : y;
    case BinaryOp.MIN: return x < y || Number.isNaN(x) ? x : y;
    case BinaryOp.EQ: return x === y ? 1 : 0;
    case BinaryOp.GT: return x > y ? 1 : 0;
    case BinaryOp.LT: return x < y ? 1 : 0;
    case BinaryOp.GE: return x >= y ? 1 : 0;
    case BinaryOp.LE: return x <= y ? 1 : 0;
  }
  throw new Error(`binary: unknown op ${op}`);
}

export function binary(op: number, out: number, a: number, b: number, ndim: number, meta: number, n: number): void {
  const f = H.f32, o0 = out >>> 2, a0 = a >>> 2, b0 = b >>> 2, off = [0, 0];
  for (let i = 0; i < n; i++) {
    stridedOffsets(i, ndim, meta, 2, off);
    f[o0 + i] = binaryScalar(op, f[a0 + off[0]], f[b0 + off[1]]);
  }
}

export function where(out: number, cond: number, a: number, b: number, ndim: number, meta: number, n: number): void {
  const f = H.f32, off = [0, 0, 0];
  for (let i = 0; i < n; i++) {
    stridedOffsets(i, ndim, meta, 3, off);
    f[(out >>> 2) + i] = f[(cond >>> 2) + off[0]] !== 0 ? f[(a >>> 2) + off[1]] : f[(b >>> 2) + off[2]];
  }
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
function softplus(x: number): number { return x > 20 ? x : Math.log1p(Math.exp(x)); }
function sigmoid(x: number): number { return 1 / (1 + Math.exp(-x)); }

export function unaryScalar(op: number, x: number, alpha: number, beta: number): number {
  switch (op) {
    case UnaryOp.NEG: return -x;
    case UnaryOp.EXP: return Math.exp(x);
    case UnaryOp.LOG: return Math.log(x);
    case UnaryOp.SQRT: return Math.sqrt(x);
    case UnaryOp.RSQRT: return 1 / Math.sqrt(x);
    case UnaryOp.ABS: return Math.abs(x);
    case UnaryOp.TANH: return Math.tanh(x);
    case UnaryOp.SIGMOID: return sigmoid(x);
    case UnaryOp.SILU: return x * sigmoid(x);
    case UnaryOp.GELU: return 0.5 * x * (1 + erf(x / Math.SQRT2));
    case UnaryOp.GELU_TANH: return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
    case UnaryOp.RELU: return x > 0 ? x : 0;
    case UnaryOp.SOFTPLUS: return softplus(x);
    case UnaryOp.CLAMP: return x < alpha ? alpha : x > beta ? beta : x;
    case UnaryOp.POWS: return Math.pow(x, alpha);
    case UnaryOp.AFFINE: return x * alpha + beta;
    case UnaryOp.RDIV: return alpha / x;
    case UnaryOp.STEP: return x > alpha ? 1 : 0;
    case UnaryOp.SIN: return Math.sin(x);
    case UnaryOp.COS: return Math.cos(x);
  }
  throw new Error(`unary: unknown op ${op}`);
}

export function unary(op: number, out: number, a: number, n: number, alpha: number, beta: number): void {
  const f = H.f32, o0 = out >>> 2, a0 = a >>> 2;
  for (let i = 0; i < n; i++) f[o0 + i] = unaryScalar(op, f[a0 + i], alpha, beta);
}

/** d f(x) / dx given x and y = f(x). */
export function unaryDerivative(op: number, x: number, y: number, alpha: number, beta: number): number {
  switch (op) {
    case UnaryOp.NEG: return -1;
    case UnaryOp.EXP: return y;
    case UnaryOp.LOG: return 1 / x;
    case UnaryOp.SQRT: return 0.5 / y;
    case UnaryOp.RSQRT: return -0.5 * y * y * y;
    case UnaryOp.ABS: return x > 0 ? 1 : x < 0 ? -1 : 0;
    case UnaryOp.TANH: return 1 - y * y;
    case UnaryOp.SIGMOID: return y * (1 - y);
    case UnaryOp.SILU: { const s = sigmoid(x); return s * (1 + x * (1 - s)); }
    case UnaryOp.GELU: return 0.5 * (1 + erf(x / Math.SQRT2)) + x * Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
    case UnaryOp.GELU_TANH: {
      const u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
      const t = Math.tanh(u);
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
    }
    case UnaryOp.RELU: return x > 0 ? 1 : 0;
    case UnaryOp.SOFTPLUS: return sigmoid(x);
    case UnaryOp.CLAMP: return x >= alpha && x <= beta ? 1 : 0;
    case UnaryOp.POWS: return alpha === 0 ? 0 : alpha * Math.pow(x, alpha - 1);
    case UnaryOp.AFFINE: return alpha;
    case UnaryOp.RDIV: return -alpha / (x * x);
    case UnaryOp.STEP: return 0;
    case UnaryOp.SIN: return Math.cos(x);
    case UnaryOp.COS: return -Math.sin(x);
  }
  throw new Error(`unary_bwd: unknown op ${op}`);
}

export function unary_bwd(op: number, gx: number, x: number, y: number, gy: number, n: number, alpha: number, beta: number): void {
  const f = H.f32;
  for (let i = 0; i < n; i++) f[(gx >>> 2) + i] = f[(gy >>> 2) + i] * unaryDerivative(op, f[(x >>> 2) + i], f[(y >>> 2) + i], alpha, beta);
}

export function reduce(op: number, out: number, a: number, outer: number, r: number, inner: number): void {
  const f = H.f32, iv = H.i32;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      const at = (k: number) => f[(a >>> 2) + (o * r + k) * inner + j];
      const dst = (out >>> 2) + o * inner + j;
      if (op === ReduceOp.SUM) {
        let s = 0;
        for (let k = 0; k < r; k++) s += at(k);
        f[dst] = s;
      } else if (op === ReduceOp.MAX || op === ReduceOp.MIN || op === ReduceOp.ARGMAX || op === ReduceOp.ARGMIN) {
        const wantMax = op === ReduceOp.MAX || op === ReduceOp.ARGMAX;
        let best = at(0), bi = 0;
        for (let k = 1; k < r; k++) {
          const v = at(k);
          if (Number.isNaN(best)) break;
          if (Number.isNaN(v) || (wantMax ? v > best : v < best)) { best = v; bi = k; }
        }
        if (op === ReduceOp.ARGMAX || op === ReduceOp.ARGMIN) iv[dst] = bi;
        else f[dst] = best;
      } else if (op === ReduceOp.LOGSUMEXP) {
        let m = -Infinity;
        for (let k = 0; k < r; k++) m = Math.max(m, at(k));
        if (m === -Infinity) { f[dst] = -Infinity; continue; }
        let s = 0;
        for (let k = 0; k < r; k++) s += Math.exp(at(k) - m);
        f[dst] = m + Math.log(s);
      } else throw new Error(`reduce: unknown op ${op}`);
    }
  }
}

export function cumsum(out: number, a: number, outer: number, r: number, inner: number): void {
  const f = H.f32;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      let s = 0;
      for (let k = 0; k < r; k++) {
        const idx = (o * r + k) * inner + j;
        s += f[(a >>> 2) + idx];
        f[(out >>> 2) + idx] = s;
      }
    }
  }
}

export function fill(out: number, n: number, value: number): void {
  H.f32.fill(value, out >>> 2, (out >>> 2) + n);
}
