// Reference Q8_0 kernels (contracts: q8_0_matmul, q8_0_rows in ../kernels.ts), element by element
// and summed in f64 as the reference sgemm: weights dequantised as ggml's dequantize_row_q8_0
// (f32(d)·q in f32); for a few rows of x (decoding) x rounded to Q8_0 blocks first and the block
// products taken as exact integer dot products, as llama.cpp's vec_dot_q8_0_q8_0.
import { H } from '../heap.js';
import { shareOf } from '../kernels.js';
import { quantizeQ8_0, QUANTIZERS } from '../../io/dtypes.js';
import type { GgmlBlockDType } from '../../io/raw.js';
import { GGML_BF16, GGML_F16, GGML_QUANT, bf16ToF32, bf16ToF32Bits, halfToF32, halfToF32Bits, quantAt, quantById, scaleMinK4, valueAt } from './ggml_blocks.js';
import type { GgmlQuantName } from './ggml_blocks.js';

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

// ---- Q4_0, Q4_1, Q5_0, Q4_K, Q5_K, Q6_K (contracts: quant_matmul, quant_rows) -------------
// Weights dequantised value by value by ggml_blocks.ts (ggml's formulas). For a few rows of x
// (decoding) x is first rounded as llama.cpp's CPU path rounds it for that weight type: Q8_0
// blocks for the 32-value types (Q4_1 also uses each block's Σ qx, as its Q8_1 partner does),
// Q8_K blocks of 256 for the K types (quantize_row_q8_K: iscale = −127/max, the value of largest
// magnitude, first one on ties; qx = nearest(iscale·x) ≤ 127; dy = 1/iscale); every block then
// adds its exact integer sums times f32 scale products, as ggml's vec_dot_<type>_q8_<0|K>.

/** Rows of x rounded to Q8_K blocks: per 256 values qx (int8) and dy. */
function quantizeRowK(f: Float32Array, xb: number, K: number): { q: Int8Array; d: Float32Array } {
  const q = new Int8Array(K), d = new Float32Array(K / 256);
  for (let b = 0; b < K / 256; b++) {
    let amax = 0, max = 0;
    for (let j = 0; j < 256; j++) {
      const v = f[xb + b * 256 + j];
      if (Math.abs(v) > amax) { amax = Math.abs(v); max = v; }
    }
    if (!amax) continue; // d = 0, qx = 0
    const iscale = Math.fround(-127 / max);
    d[b] = Math.fround(1 / iscale);
    for (let j = 0; j < 256; j++) q[b * 256 + j] = Math.max(-127, Math.min(127, nearestEven(Math.fround(iscale * f[xb + b * 256 + j]))));
  }
  return { q, d };
}

/** Σ over one weight block (at byte o) against the rounded x (qx from index xo, scale dx): ggml's vec_dot for the type. */
function blockDot(type: GgmlQuantName, u8: Uint8Array, o: number, qx: Int8Array, xo: number, dx: number): number {
  const fr = Math.fround;
  const h = (p: number): number => halfToF32(u8[p] | (u8[p + 1] << 8));
  if (type === 'q4_0' || type === 'q5_0' || type === 'q4_1') {
    let isum = 0, xsum = 0;
    for (let j = 0; j < 32; j++) { isum += quantAt(type, u8, o, j) * qx[xo + j]; xsum += qx[xo + j]; }
    const s = fr(h(o) * dx) * isum;
    return type === 'q4_1' ? s + fr(h(o + 2) * dx) * xsum : s;
  }
  if (type === 'q6_k') {
    let isum = 0;
    for (let g = 0; g < 16; g++) {
      let t = 0;
      for (let j = 16 * g; j < 16 * g + 16; j++) t += quantAt(type, u8, o, j) * qx[xo + j];
      isum += ((u8[o + 192 + g] << 24) >> 24) * t;
    }
    return fr(h(o + 208) * dx) * isum;
  }
  let isum = 0, msum = 0; // q4_k, q5_k
  for (let g = 0; g < 8; g++) {
    const [sc, m] = scaleMinK4(u8, o + 4, g);
    let t = 0, xs = 0;
    for (let j = 32 * g; j < 32 * g + 32; j++) { t += quantAt(type, u8, o, j) * qx[xo + j]; xs += qx[xo + j]; }
    isum += sc * t;
    msum += m * xs;
  }
  return fr(h(o) * dx) * isum - fr(h(o + 2) * dx) * msum;
}

/** The types whose prefill (M ≥ Q8_PANEL_M) is an integer GEMM in the wasm kernel: x rounded for every M, as llama.cpp does. */
export const INT_PREFILL: ReadonlySet<number> = new Set([GGML_QUANT.q4_0.id, GGML_QUANT.q4_1.id, GGML_QUANT.q5_0.id, GGML_QUANT.q4_k.id, GGML_QUANT.q5_k.id, GGML_QUANT.q6_k.id]);

export function quant_matmul(out: number, x: number, w: number, M: number, N: number, K: number, ldx: number, ldo: number, beta: number, type: number, tid: number, nt: number): void {
  if (type === GGML_F16 || type === GGML_BF16) return halfMatmul(out, x, w, M, N, K, ldx, ldo, beta, type, tid, nt);
  const f = H.f32, u8 = H.u8;
  const t = quantById(type), nb = K / t.block, rowBytes = nb * t.bytes;
  const [n0, n1] = shareOf(N, tid, nt);
  const xq = M < Q8_PANEL_M || INT_PREFILL.has(type) ? Array.from({ length: M }, (_, m) => (t.block === 256 ? quantizeRowK : quantizeRow)(f, (x >>> 2) + m * ldx, K)) : null;
  for (let n = n0; n < n1; n++) {
    const row = w + n * rowBytes;
    for (let m = 0; m < M; m++) {
      let s = 0;
      if (xq) {
        for (let b = 0; b < nb; b++) s += blockDot(t.name, u8, row + b * t.bytes, xq[m].q, b * t.block, xq[m].d[b]);
      } else {
        const xb = (x >>> 2) + m * ldx;
        for (let k = 0; k < K; k++) s += f[xb + k] * valueAt(t.name, u8, row + Math.floor(k / t.block) * t.bytes, k % t.block);
      }
      const oi = (out >>> 2) + m * ldo + n;
      f[oi] = beta ? f[oi] + s : s;
    }
  }
}

export function quant_rows(out: number, w: number, idx: number, n: number, K: number, type: number, tid: number, nt: number): void {
  if (type === GGML_F16 || type === GGML_BF16) return halfRows(out, w, idx, n, K, type, tid, nt);
  const f = H.f32, u8 = H.u8;
  const t = quantById(type), rowBytes = (K / t.block) * t.bytes;
  const [i0, i1] = shareOf(n, tid, nt);
  for (let i = i0; i < i1; i++) {
    const row = w + H.i32[(idx >>> 2) + i] * rowBytes;
    for (let k = 0; k < K; k++) f[(out >>> 2) + i * K + k] = valueAt(t.name, u8, row + Math.floor(k / t.block) * t.bytes, k % t.block);
  }
}

// ---- F16, BF16 (ggml ids 1, 30; contracts: quant_matmul, quant_rows) -------------------------
// 16-bit weights widened to f32 exactly (halfToF32, or the BF16 bits as an f32's top half); x stays
// f32 for every M (no rounding of x: exact f32 products summed in f64, as the reference sgemm).

function halfMatmul(out: number, x: number, w: number, M: number, N: number, K: number, ldx: number, ldo: number, beta: number, type: number, tid: number, nt: number): void {
  const f = H.f32, u16 = H.u16, wide = type === GGML_F16 ? halfToF32 : bf16ToF32;
  const [n0, n1] = shareOf(N, tid, nt);
  for (let n = n0; n < n1; n++) {
    const row = (w >>> 1) + n * K;
    for (let m = 0; m < M; m++) {
      const xb = (x >>> 2) + m * ldx;
      let s = 0;
      for (let k = 0; k < K; k++) s += f[xb + k] * wide(u16[row + k]);
      const oi = (out >>> 2) + m * ldo + n;
      f[oi] = beta ? f[oi] + s : s;
    }
  }
}

/** Rows widened as bit patterns (inf and NaN payloads exact, as a C cast). */
function halfRows(out: number, w: number, idx: number, n: number, K: number, type: number, tid: number, nt: number): void {
  const i32 = H.i32, u16 = H.u16, bits = type === GGML_F16 ? halfToF32Bits : bf16ToF32Bits;
  const [i0, i1] = shareOf(n, tid, nt);
  for (let i = i0; i < i1; i++) {
    const row = (w >>> 1) + H.i32[(idx >>> 2) + i] * K;
    for (let k = 0; k < K; k++) i32[(out >>> 2) + i * K + k] = bits(u16[row + k]) | 0;
  }
}

/** quantize_q8_0 (contract in ../kernels.ts): io's quantizeQ8_0 on the share's blocks. */
export function quantize_q8_0(out: number, x: number, nb: number, tid: number, nt: number): void {
  const [b0, b1] = shareOf(nb, tid, nt);
  if (b1 <= b0) return;
  H.u8.set(quantizeQ8_0(H.f32.slice((x >>> 2) + b0 * BLOCK, (x >>> 2) + b1 * BLOCK)), out + b0 * BYTES);
}

/** quantize_blocks (contract in ../kernels.ts): io's quantiser of the type on the share's blocks. */
export function quantize_blocks(out: number, x: number, nb: number, type: number, tid: number, nt: number): void {
  const { name, block, bytes } = quantById(type);
  const [b0, b1] = shareOf(nb, tid, nt);
  if (b1 <= b0) return;
  H.u8.set(QUANTIZERS[name.toUpperCase() as GgmlBlockDType](H.f32.slice((x >>> 2) + b0 * block, (x >>> 2) + b1 * block)), out + b0 * bytes);
}
