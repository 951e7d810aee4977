// Q8_0 weight kernels (contracts: q8_0_matmul, q8_0_rows in ../../kernels.ts; reference:
// ../../ref/quant.ts). A weight row of K values is K/32 blocks of 34 bytes (f16 scale d, 32 int8
// q); the weights stay in this layout in memory and are dequantised on the fly, so a decoding
// step reads 34 bytes per 32 weights instead of 128.
//
// Paths for out (M×N) = x (M×K) · Wᵀ:
//  - M = 1 (decoding one token): gemvQ8 streams the weight rows in memory order as gemvRows does
//    (matmul.ts): per block the 32 int8 are widened to f32 (i8 → i16 → i32 → f32) and multiplied
//    with x by f32x4 multiply-adds, and the block's partial sums scaled by d into the row's
//    accumulators. The activations stay f32 (llama.cpp instead rounds them to Q8_0 blocks and
//    takes integer dot products: its results differ from the f32 reference by that rounding).
//  - 2 ≤ M < PANEL_M (batched decoding): each weight row is dequantised once into this thread's
//    scratch (stays in L1) and dotted with the M rows of x.
//  - M ≥ PANEL_M (prefill): a panel of weight rows is dequantised into scratch and multiplied by
//    matmul.ts's blocked GEMM (packing and register-blocked micro-kernel), so the dequantisation
//    costs O(N·K) per call, amortised over the M rows.
// Threads split the N weight rows (by whole panels on the panel path); every output element is
// computed the same way whatever the split.
import { fma4, rowDot4, rowSum } from './simd';
import { scratch, SCRATCH_BYTES } from './scratch';
import { gemmBlock, GEMM_SCRATCH_END } from './matmul';
import { shareStart } from './vmath';

const QBYTES: i32 = 34;
/** Rows of x from which the panel path (dequantise, then blocked GEMM) takes over. */
const PANEL_M: i32 = 8;
/** Most weight rows dequantised into one panel (a multiple of the GEMM's 8-wide strips). */
const PANEL_ROWS: i32 = 64;

// @ts-ignore: decorator
@inline function off(x: i32): usize { return (<usize>x) << 2; }

// IEEE half bits → f32, exact: the half's exponent and mantissa moved into an f32 and rescaled by
// 2^112 (which also turns subnormal halves into the right normal floats); inf and NaN kept.
// @ts-ignore: decorator
@inline function h2f(h: u32): f32 {
  const s = (h & 0x8000) << 16, em = h & 0x7fff;
  if (em >= 0x7c00) return reinterpret<f32>(s | 0x7f800000 | ((em & 0x3ff) << 13));
  return reinterpret<f32>(s | (em << 13)) * reinterpret<f32>(<u32>0x77800000);
}

// Lanes 4j…4j+3 of a block's 16 int8 (a v128) as f32.
// @ts-ignore: decorator
@inline function lo(v: v128): v128 { return f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(v)); }
// @ts-ignore: decorator
@inline function hi(v: v128): v128 { return f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(v)); }

// @ts-ignore: decorator
@inline function put(p: usize, v: f32, beta: i32): void {
  store<f32>(p, beta ? load<f32>(p) + v : v);
}

// Σ_k x[k]·W[row, k] for one Q8_0 row of nb blocks.
// @ts-ignore: decorator
@inline function rowDotQ8(x: usize, p: usize, nb: i32): f32 {
  let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const d = f32x4.splat(h2f(<u32>load<u16>(p)));
    const qa = v128.load(p, 2), qb = v128.load(p, 18);
    const a0 = i16x8.extend_low_i8x16_s(qa), a1 = i16x8.extend_high_i8x16_s(qa);
    const b0 = i16x8.extend_low_i8x16_s(qb), b1 = i16x8.extend_high_i8x16_s(qb);
    let s0 = f32x4.mul(lo(a0), v128.load(x));
    let s1 = f32x4.mul(hi(a0), v128.load(x, 16));
    s0 = fma4(lo(a1), v128.load(x, 32), s0);
    s1 = fma4(hi(a1), v128.load(x, 48), s1);
    s0 = fma4(lo(b0), v128.load(x, 64), s0);
    s1 = fma4(hi(b0), v128.load(x, 80), s1);
    s0 = fma4(lo(b1), v128.load(x, 96), s0);
    s1 = fma4(hi(b1), v128.load(x, 112), s1);
    acc0 = fma4(s0, d, acc0);
    acc1 = fma4(s1, d, acc1);
    p += QBYTES;
    x += 128;
  }
  return rowSum(f32x4.add(acc0, acc1));
}

// dst (nb·32 f32) = the Q8_0 row at p dequantised: f32(d)·q, one rounding, as ggml.
// @ts-ignore: decorator
@inline function dequantRow(dst: usize, p: usize, nb: i32): void {
  for (let b = 0; b < nb; b++) {
    const d = f32x4.splat(h2f(<u32>load<u16>(p)));
    const qa = v128.load(p, 2), qb = v128.load(p, 18);
    const a0 = i16x8.extend_low_i8x16_s(qa), a1 = i16x8.extend_high_i8x16_s(qa);
    const b0 = i16x8.extend_low_i8x16_s(qb), b1 = i16x8.extend_high_i8x16_s(qb);
    v128.store(dst, f32x4.mul(lo(a0), d));
    v128.store(dst, f32x4.mul(hi(a0), d), 16);
    v128.store(dst, f32x4.mul(lo(a1), d), 32);
    v128.store(dst, f32x4.mul(hi(a1), d), 48);
    v128.store(dst, f32x4.mul(lo(b0), d), 64);
    v128.store(dst, f32x4.mul(hi(b0), d), 80);
    v128.store(dst, f32x4.mul(lo(b1), d), 96);
    v128.store(dst, f32x4.mul(hi(b1), d), 112);
    p += QBYTES;
    dst += 128;
  }
}

export function q8_0_matmul(out: usize, x: usize, w: usize, M: i32, N: i32, K: i32, ldx: i32, ldo: i32, beta: i32, tid: i32, nt: i32): void {
  if (M <= 0 || N <= 0) return;
  const nb = K >> 5;
  const rowBytes = <usize>(nb * QBYTES);
  const buf = scratch() + GEMM_SCRATCH_END;
  const room = <i32>((<usize>SCRATCH_BYTES - GEMM_SCRATCH_END) >> 2); // f32 slots above the GEMM's scratch
  let rows = min(PANEL_ROWS, room / max(K, 1));
  if (rows >= 8) rows &= ~7;
  if (M >= PANEL_M && rows >= 1) {
    const panels = (N + rows - 1) / rows;
    const p0 = shareStart(panels, tid, nt, 1), p1 = shareStart(panels, tid + 1, nt, 1);
    for (let pi = p0; pi < p1; pi++) {
      const n0 = pi * rows, r = min(rows, N - n0);
      for (let j = 0; j < r; j++) dequantRow(buf + off(j * K), w + <usize>(n0 + j) * rowBytes, nb);
      gemmBlock(x, buf, out + off(n0), 0, M, 0, r, K, ldx, 1, 1, K, ldo, beta);
    }
    return;
  }
  const n0 = shareStart(N, tid, nt, 1), n1 = shareStart(N, tid + 1, nt, 1);
  if (M == 1 || K > room) {
    for (let n = n0; n < n1; n++) {
      for (let m = 0; m < M; m++) put(out + off(m * ldo + n), rowDotQ8(x + off(m * ldx), w + <usize>n * rowBytes, nb), beta);
    }
    return;
  }
  for (let n = n0; n < n1; n++) {
    dequantRow(buf, w + <usize>n * rowBytes, nb);
    for (let m = 0; m < M; m++) put(out + off(m * ldo + n), rowSum(rowDot4(x + off(m * ldx), buf, K)), beta);
  }
}

export function q8_0_rows(out: usize, w: usize, idx: usize, n: i32, K: i32, tid: i32, nt: i32): void {
  const nb = K >> 5;
  const rowBytes = <usize>(nb * QBYTES);
  const i0 = shareStart(n, tid, nt, 1), i1 = shareStart(n, tid + 1, nt, 1);
  for (let i = i0; i < i1; i++) dequantRow(out + <usize>i * off(K), w + <usize>load<i32>(idx + off(i)) * rowBytes, nb);
}
