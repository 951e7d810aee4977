// Reference Q8_0 kernels (contracts: q8_0_matmul, q8_0_rows in ../kernels.ts): every weight
// dequantised element by element as ggml's dequantize_row_q8_0 does (f32(d)·q in f32), products
// summed in f64 as the reference sgemm does.
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

export function q8_0_matmul(out: number, x: number, w: number, M: number, N: number, K: number, ldx: number, ldo: number, beta: number, tid: number, nt: number): void {
  const f = H.f32, u8 = H.u8, rowBytes = (K / BLOCK) * BYTES;
  const [n0, n1] = shareOf(N, tid, nt);
  for (let n = n0; n < n1; n++) {
    const row = w + n * rowBytes;
    for (let m = 0; m < M; m++) {
      let s = 0;
      const xb = (x >>> 2) + m * ldx;
      for (let k = 0; k < K; k++) s += f[xb + k] * q8At(u8, row, k);
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
