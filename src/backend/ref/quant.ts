// Reference Q8_0 kernels (contracts: q8_0_matmul, q8_0_rows in ../kernels.ts), element by element
// and summed in f64 as the reference sgemm: weights dequantised as ggml's dequantize_row_q8_0
// (f32(d)·q in f32); for a few rows of x (decoding) x rounded to Q8_0 blocks first and the block
// products taken as exact integer dot products, as llama.cpp's vec_dot_q8_0_q8_0.
import { H } from '../heap.js';
import { shareOf } from '../kernels.js';

const BLOCK = 32, BYTES = 34;

/** IEEE half bits → the f32 value (exact: subnormals, ±inf and NaN included). */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >>> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Element k of the Q8_0 row starting at byte `row`: f32(d)·q rounded to f32. */
function q8At(u8: Uint8Array, row: number, k: number): number {
  const b = row + Math.floor(k / BLOCK) * BYTES;
  const d = f16ToF32(u8[b] | (u8[b + 1] << 8));
  const q = (u8[b + 2 + (k % BLOCK)] << 24) >> 24;
  return Math.fround(d * q);
}

/** Rows of x from which q8_0_matmul multiplies exact f32 products (below: x rounded to Q8_0 blocks first). */
export const Q8_PANEL_M = 9;

/** Ties to even, as wasm's f32x4.nearest. */
function nearestEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * The K values of row m of x rounded to Q8_0 blocks as llama.cpp's quantize_row_q8_0 (x86):
 * per block dx = amax/127 (kept f32), qx = nearest-even(x·(127/amax)).
 */
function quantizeRow(f: Float32Array, xb: number, K: number): { q: Int8Array; d: Float32Array } {
  const q = new Int8Array(K), d = new Float32Array(K / BLOCK);
  for (let b = 0; b < K / BLOCK; b++) {
    let amax = 0;
    for (let j = 0; j < BLOCK; j++) amax = Math.max(amax, Math.abs(f[xb + b * BLOCK + j]));
    d[b] = Math.fround(amax / 127);
    const id = amax > 0 ? Math.fround(127 / amax) : 0;
    for (let j = 0; j < BLOCK; j++) q[b * BLOCK + j] = Math.max(-128, Math.min(127, nearestEven(Math.fround(f[xb + b * BLOCK + j] * id))));
  }
  return { q, d };
}

export function q8_0_matmul(out: number, x: number, w: number, M: number, N: number, K: number, ldx: number, ldo: number, beta: number, tid: number, nt: number): void {
  const f = H.f32, u8 = H.u8, rowBytes = (K / BLOCK) * BYTES;
  const [n0, n1] = shareOf(N, tid, nt);
  // A few rows (decoding): llama.cpp's vec_dot_q8_0_q8_0, Σ_b f32(d·dx)·(Σ_j q·qx) with exact integer dots.
  const xq = M < Q8_PANEL_M ? Array.from({ length: M }, (_, m) => quantizeRow(f, (x >>> 2) + m * ldx, K)) : null;
  for (let n = n0; n < n1; n++) {
    const row = w + n * rowBytes;
    for (let m = 0; m < M; m++) {
      let s = 0;
      const xb = (x >>> 2) + m * ldx;
      if (xq) {
        for (let b = 0; b < K / BLOCK; b++) {
          const o = row + b * BYTES;
          let isum = 0;
          for (let j = 0; j < BLOCK; j++) isum += ((u8[o + 2 + j] << 24) >> 24) * xq[m].q[b * BLOCK + j];
          s += Math.fround(f16ToF32(u8[o] | (u8[o + 1] << 8)) * xq[m].d[b]) * isum;
        }
      } else for (let k = 0; k < K; k++) s += f[xb + k] * q8At(u8, row, k);
      const oi = (out >>> 2) + m * ldo + n;
      f[oi] = beta ? f[oi] + s : s;
    }
  }
}

export function q8_0_rows(out: number, w: number, idx: number, n: number, K: number, tid: number, nt: number): void {
  const f = H.f32, u8 = H.u8, rowBytes = (K / BLOCK) * BYTES;
  const [i0, i1] = shareOf(n, tid, nt);
  for (let i = i0; i < i1; i++) {
    const row = w + H.i32[(idx >>> 2) + i] * rowBytes;
    for (let k = 0; k < K; k++) f[(out >>> 2) + i * K + k] = q8At(u8, row, k);
  }
}
