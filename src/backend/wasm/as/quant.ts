// Q8_0 weight kernels (contracts: q8_0_matmul, q8_0_rows in ../../kernels.ts; reference:
// ../../ref/quant.ts). A weight row of K values is K/32 blocks of 34 bytes (f16 scale d, 32 int8
// q); the weights stay in this layout in memory and are dequantised on the fly, so a decoding
// step reads 34 bytes per 32 weights instead of 128.
//
// Paths for out (M×N) = x (M×K) · Wᵀ:
//  - M < PANEL_M (decoding: one token, or a few sequences): the rows of x are first rounded to
//    Q8_0 blocks as llama.cpp's quantize_row_q8_0 does (per block dx = amax/127, qx =
//    nearest(x·127/amax)), into this thread's scratch; then each weight row is streamed in memory
//    order (as gemvRows streams f32 rows, matmul.ts) and every block's integer dot product Σ q·qx
//    (the weights sign-extended to i16, i32x4.dot_i16x8_s against qx kept as i16) is scaled by
//    d·dx into f32 accumulators: llama.cpp's vec_dot_q8_0_q8_0. With several rows of x (a
//    verification of speculative tokens, a decode batch) a weight block is loaded and
//    sign-extended once for up to 3 rows (rowsDotQ8), every row's result unchanged. Widening the int8 weights to f32
//    instead costs about twice the instructions per weight (i8x16 extended multiplies with
//    pairwise adds: 1.5×), and decoding on a busy machine is bound by them.
//  - M ≥ PANEL_M (prefill): a panel of weight rows is dequantised into scratch (f32(d)·q, as
//    ggml) and multiplied by matmul.ts's blocked GEMM (packing and register-blocked
//    micro-kernel): exact f32 products, the dequantisation O(N·K) per call amortised over M rows.
// Threads split the N weight rows (by whole panels on the panel path); every output element is
// computed the same way whatever the split.
import { fma4, rowSum } from './simd';
import { scratch, SCRATCH_BYTES } from './scratch';
import { gemmBlock, GEMM_SCRATCH_END } from './matmul';
import { shareStart } from './vmath';

const QBYTES: i32 = 34;
/**
 * Rows of x from which the panel path (dequantise, then blocked GEMM) takes over. Up to 8 rows
 * (speculative verification of 8 tokens) stay on the block-dot path: at 8 rows it measured 1.25×
 * faster than the panel (random stories15M-shape weights, 1 thread).
 */
const PANEL_M: i32 = 9;
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

// Round the row x (nb·32 f32) to Q8_0 blocks: qx (32 per block, in [−127, 127], stored as i16
// lanes ready for i32x4.dot_i16x8_s) at xq, f32 scales dx at ds.
// Per block: amax = max |x|, dx = amax/127, qx = nearest(x·(127/amax)) (ties to even, as
// llama.cpp's x86 quantize_row_q8_0; 0 when amax = 0). dx stays f32 (llama.cpp rounds it to f16).
// @ts-ignore: decorator
@inline function quantRow(x: usize, xq: usize, ds: usize, nb: i32): void {
  for (let b = 0; b < nb; b++) {
    const v0 = v128.load(x), v1 = v128.load(x, 16), v2 = v128.load(x, 32), v3 = v128.load(x, 48);
    const v4 = v128.load(x, 64), v5 = v128.load(x, 80), v6 = v128.load(x, 96), v7 = v128.load(x, 112);
    let m = f32x4.max(f32x4.max(f32x4.max(f32x4.abs(v0), f32x4.abs(v1)), f32x4.max(f32x4.abs(v2), f32x4.abs(v3))),
      f32x4.max(f32x4.max(f32x4.abs(v4), f32x4.abs(v5)), f32x4.max(f32x4.abs(v6), f32x4.abs(v7))));
    m = f32x4.max(m, v128.shuffle<f32>(m, m, 2, 3, 0, 1));
    const amax = max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1));
    store<f32>(ds, amax / 127);
    const id = f32x4.splat(amax > 0 ? <f32>127 / amax : 0);
    v128.store(xq, i16x8.narrow_i32x4_s(qi(v0, id), qi(v1, id)));
    v128.store(xq, i16x8.narrow_i32x4_s(qi(v2, id), qi(v3, id)), 16);
    v128.store(xq, i16x8.narrow_i32x4_s(qi(v4, id), qi(v5, id)), 32);
    v128.store(xq, i16x8.narrow_i32x4_s(qi(v6, id), qi(v7, id)), 48);
    x += 128; xq += 64; ds += 4;
  }
}

// nearest(v·id) as i32 lanes.
// @ts-ignore: decorator
@inline function qi(v: v128, id: v128): v128 { return i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v, id))); }

// Σ_j w[j]·qx[j] over 16 int8 weights at p and 16 i16 activations at xq, as four i32 lanes: the
// weights sign-extended to i16, then i32x4.dot_i16x8_s (x86's pmaddwd).
// @ts-ignore: decorator
@inline function dot16(p: usize, xq: usize): v128 {
  const w = v128.load(p);
  return i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w), v128.load(xq)), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w), v128.load(xq, 16)));
}

// A finite half's value (h2f without the inf/NaN case, cheaper in the hot loop: the loaders refuse
// non-finite scales unless told to allow them; such a scale reads as a large finite number here).
// @ts-ignore: decorator
@inline function h2fFinite(h: u32): f32 {
  return reinterpret<f32>(((h & 0x8000) << 16) | ((h & 0x7fff) << 13)) * reinterpret<f32>(<u32>0x77800000);
}

// Σ_b d_b·dx_b·(Σ_j q[b,j]·qx[b,j]) for one Q8_0 weight row of nb blocks against a quantised x row.
// @ts-ignore: decorator
@inline function rowDotQ8(xq: usize, ds: usize, p: usize, nb: i32): f32 {
  let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0);
  let b = 0;
  for (; b + 2 <= nb; b += 2) {
    const s0 = i32x4.add(dot16(p + 2, xq), dot16(p + 18, xq + 32));
    const s1 = i32x4.add(dot16(p + 36, xq + 64), dot16(p + 52, xq + 96));
    acc0 = fma4(f32x4.convert_i32x4_s(s0), f32x4.splat(h2fFinite(<u32>load<u16>(p)) * load<f32>(ds)), acc0);
    acc1 = fma4(f32x4.convert_i32x4_s(s1), f32x4.splat(h2fFinite(<u32>load<u16>(p, 34)) * load<f32>(ds, 4)), acc1);
    p += 2 * QBYTES; xq += 128; ds += 8;
  }
  if (b < nb) {
    const s0 = i32x4.add(dot16(p + 2, xq), dot16(p + 18, xq + 32));
    acc0 = fma4(f32x4.convert_i32x4_s(s0), f32x4.splat(h2fFinite(<u32>load<u16>(p)) * load<f32>(ds)), acc0);
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
  // Quantised rows of x: M·K i16, then M·nb f32 scales (each thread quantises all of x: M·K is
  // small beside N·K).
  const xq = buf, ds = buf + <usize>M * <usize>K * 2;
  if (<i64>M * <i64>(2 * K + 4 * nb) > <i64>room * 4) unreachable(); // ops keeps K ≤ 131072
  for (let m = 0; m < M; m++) quantRow(x + off(m * ldx), xq + <usize>(m * K * 2), ds + off(m * nb), nb);
  const n0 = shareStart(N, tid, nt, 1), n1 = shareStart(N, tid + 1, nt, 1);
  const xs = <usize>(K * 2), dsS = off(nb);
  for (let n = n0; n < n1; n++) {
    const row = w + <usize>n * rowBytes;
    // Rows of x in blocks of 3 (then 2, or 1) share each weight block's sign extension.
    let m = 0;
    for (; m + 3 <= M; m += 3) rowsDotQ8(3, xq + <usize>m * xs, xs, ds + <usize>m * dsS, dsS, row, nb, out + off(m * ldo + n), off(ldo), beta);
    if (m + 2 == M) rowsDotQ8(2, xq + <usize>m * xs, xs, ds + <usize>m * dsS, dsS, row, nb, out + off(m * ldo + n), off(ldo), beta);
    else if (m + 1 == M) put(out + off(m * ldo + n), rowDotQ8(xq + <usize>m * xs, ds + <usize>m * dsS, row, nb), beta);
  }
}

// rowDotQ8 for R (2 or 3, a constant after inlining) quantised rows of x (at xq + r·xs, scales at
// ds + r·dsS) against one Q8_0 weight row, each result bit for bit rowDotQ8's for that row alone
// (the integer sums are exact in any order; each row's float accumulators take the same values in
// the same order): a block's weights are loaded and sign-extended to i16 once for all R rows.
// Results at o + r·ldob.
// @ts-ignore: decorator
@inline function rowsDotQ8(R: i32, xq: usize, xs: usize, ds: usize, dsS: usize, p: usize, nb: i32, o: usize, ldob: usize, beta: i32): void {
  const q0 = xq, q1 = xq + xs, q2 = q1 + xs;
  const d0 = ds, d1 = ds + dsS, d2 = d1 + dsS;
  let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a10 = f32x4.splat(0), a11 = f32x4.splat(0), a20 = f32x4.splat(0), a21 = f32x4.splat(0);
  let x: usize = 0, sc: usize = 0; // byte offsets into the xq rows and the scale rows
  let b = 0;
  for (; b + 2 <= nb; b += 2) {
    // Even blocks into a?0, odd ones into a?1, as rowDotQ8.
    let wa = v128.load(p, 2), wb = v128.load(p, 18);
    let w0 = i16x8.extend_low_i8x16_s(wa), w1 = i16x8.extend_high_i8x16_s(wa);
    let w2 = i16x8.extend_low_i8x16_s(wb), w3 = i16x8.extend_high_i8x16_s(wb);
    let d = h2fFinite(<u32>load<u16>(p));
    a00 = fma4(f32x4.convert_i32x4_s(blockDot(w0, w1, w2, w3, q0 + x)), f32x4.splat(d * load<f32>(d0 + sc)), a00);
    a10 = fma4(f32x4.convert_i32x4_s(blockDot(w0, w1, w2, w3, q1 + x)), f32x4.splat(d * load<f32>(d1 + sc)), a10);
    if (R == 3) a20 = fma4(f32x4.convert_i32x4_s(blockDot(w0, w1, w2, w3, q2 + x)), f32x4.splat(d * load<f32>(d2 + sc)), a20);
    wa = v128.load(p, 36); wb = v128.load(p, 52);
    w0 = i16x8.extend_low_i8x16_s(wa); w1 = i16x8.extend_high_i8x16_s(wa);
    w2 = i16x8.extend_low_i8x16_s(wb); w3 = i16x8.extend_high_i8x16_s(wb);
    d = h2fFinite(<u32>load<u16>(p, 34));
    a01 = fma4(f32x4.convert_i32x4_s(blockDot(w0, w1, w2, w3, q0 + x + 64)), f32x4.splat(d * load<f32>(d0 + sc, 4)), a01);
    a11 = fma4(f32x4.convert_i32x4_s(blockDot(w0, w1, w2, w3, q1 + x + 64)), f32x4.splat(d * load<f32>(d1 + sc, 4)), a11);
    if (R == 3) a21 = fma4(f32x4.convert_i32x4_s(blockDot(w0, w1, w2, w3, q2 + x + 64)), f32x4.splat(d * load<f32>(d2 + sc, 4)), a21);
    p += 2 * QBYTES; x += 128; sc += 8;
  }
  if (b < nb) {
    const wa = v128.load(p, 2), wb = v128.load(p, 18);
    const w0 = i16x8.extend_low_i8x16_s(wa), w1 = i16x8.extend_high_i8x16_s(wa);
    const w2 = i16x8.extend_low_i8x16_s(wb), w3 = i16x8.extend_high_i8x16_s(wb);
    const d = h2fFinite(<u32>load<u16>(p));
    a00 = fma4(f32x4.convert_i32x4_s(blockDot(w0, w1, w2, w3, q0 + x)), f32x4.splat(d * load<f32>(d0 + sc)), a00);
    a10 = fma4(f32x4.convert_i32x4_s(blockDot(w0, w1, w2, w3, q1 + x)), f32x4.splat(d * load<f32>(d1 + sc)), a10);
    if (R == 3) a20 = fma4(f32x4.convert_i32x4_s(blockDot(w0, w1, w2, w3, q2 + x)), f32x4.splat(d * load<f32>(d2 + sc)), a20);
  }
  put(o, rowSum(f32x4.add(a00, a01)), beta);
  put(o + ldob, rowSum(f32x4.add(a10, a11)), beta);
  if (R == 3) put(o + 2 * ldob, rowSum(f32x4.add(a20, a21)), beta);
}

// Σ_j w[j]·qx[j] over one block of 32 (weights already as four i16x8) against qx at q, as i32x4.
// @ts-ignore: decorator
@inline function blockDot(w0: v128, w1: v128, w2: v128, w3: v128, q: usize): v128 {
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(w0, v128.load(q)), i32x4.dot_i16x8_s(w1, v128.load(q, 16))),
    i32x4.add(i32x4.dot_i16x8_s(w2, v128.load(q, 32)), i32x4.dot_i16x8_s(w3, v128.load(q, 48))));
}

export function q8_0_rows(out: usize, w: usize, idx: usize, n: i32, K: i32, tid: i32, nt: i32): void {
  const nb = K >> 5;
  const rowBytes = <usize>(nb * QBYTES);
  const i0 = shareStart(n, tid, nt, 1), i1 = shareStart(n, tid + 1, nt, 1);
  for (let i = i0; i < i1; i++) dequantRow(out + <usize>i * off(K), w + <usize>load<i32>(idx + off(i)) * rowBytes, nb);
}
