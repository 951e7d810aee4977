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
//    (An integer GEMM as Q4_0's, intPrefill below, measured no faster for Q8_0: its signed 8-bit
//    weights cannot be the unsigned operand of the 8-bit dot, and the i16 dots run at the f32
//    GEMM's rate, 19.8 against 20.2 GMAC/s at M = 97.)
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

// The 65,536 halves' f32 values (h2f of every bit pattern, 256 KiB in the shared memory), as
// llama.cpp's ggml_table_f32_f16: a block's scale in the dot-product loops is one load instead of
// eight integer and float instructions (decoding is bound by instructions, not by memory). One
// table per backend, filled by the thread that creates it; every thread's instance points at it.
let halfTable: usize = 0;
export const HALF_TABLE_BYTES: i32 = 65536 * 4;
export function setHalfTable(ptr: usize, fill: i32): void {
  halfTable = ptr;
  if (fill) for (let h: u32 = 0; h < 65536; h++) store<f32>(ptr + (<usize>h << 2), h2f(h));
}

// A half's value from the table (exact, as h2f).
// @ts-ignore: decorator
@inline function h2fTab(h: u32): f32 {
  return load<f32>(halfTable + (<usize>h << 2));
}

// Σ_b d_b·dx_b·(Σ_j q[b,j]·qx[b,j]) for one Q8_0 weight row of nb blocks against a quantised x row.
// Even blocks accumulate into acc0, odd ones into acc1. Every address is a base pointer plus a
// constant offset (V8 folds a load's constant offset into the x86 address, not an added constant:
// each `p + 18` cost a lea), the half table's address a local (a global is re-read from the
// instance at every use), and each block's accumulator is stored to a scratch slot nobody reads
// (sink): the next block's loads come after that store, so TurboFan cannot schedule the loads of
// several blocks first, which ran out of registers and kept an accumulator on the stack (its
// store-to-load latency then in the loop's dependency chain).
// @ts-ignore: decorator
@inline function rowDotQ8(xq: usize, ds: usize, p: usize, nb: i32, sink: usize): f32 {
  const tab = halfTable;
  let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0);
  let b = 0;
  for (; b + 2 <= nb; b += 2) {
    acc0 = fma4(f32x4.convert_i32x4_s(q8Block(v128.load(p, 2), v128.load(p, 18), v128.load(xq), v128.load(xq, 16), v128.load(xq, 32), v128.load(xq, 48))),
      f32x4.mul(v128.load32_splat(tab + (<usize>load<u16>(p) << 2)), v128.load32_splat(ds)), acc0);
    v128.store(sink, acc0);
    acc1 = fma4(f32x4.convert_i32x4_s(q8Block(v128.load(p, 36), v128.load(p, 52), v128.load(xq, 64), v128.load(xq, 80), v128.load(xq, 96), v128.load(xq, 112))),
      f32x4.mul(v128.load32_splat(tab + (<usize>load<u16>(p, 34) << 2)), v128.load32_splat(ds, 4)), acc1);
    v128.store(sink, acc1);
    p += 2 * QBYTES; xq += 128; ds += 8;
  }
  if (b < nb) {
    acc0 = fma4(f32x4.convert_i32x4_s(q8Block(v128.load(p, 2), v128.load(p, 18), v128.load(xq), v128.load(xq, 16), v128.load(xq, 32), v128.load(xq, 48))),
      f32x4.mul(v128.load32_splat(tab + (<usize>load<u16>(p) << 2)), v128.load32_splat(ds)), acc0);
  }
  return rowSum(f32x4.add(acc0, acc1));
}

// Σ_j w[j]·qx[j] over one Q8_0 block: its 32 int8 weights (wa, wb) sign-extended to i16 against
// its 32 i16 activations (x0…x3), i32x4.dot_i16x8_s (x86's pmaddwd), as four i32 lanes.
// @ts-ignore: decorator
@inline function q8Block(wa: v128, wb: v128, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(wa), x0), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(wa), x1)),
    i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(wb), x2), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(wb), x3)));
}

// dst (nb·32 f32) = the Q8_0 row at p dequantised: f32(d)·q, one rounding, as ggml.
// @ts-ignore: decorator
@inline function dequantRow(dst: usize, p: usize, nb: i32): void {
  for (let b = 0; b < nb; b++) {
    const d = f32x4.splat(h2fTab(<u32>load<u16>(p)));
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
  if (panelMatmul(T_Q8_0, out, x, w, M, N, K, ldx, ldo, beta, tid, nt)) return;
  const buf = scratch() + GEMM_SCRATCH_END;
  const room = <i32>((<usize>SCRATCH_BYTES - GEMM_SCRATCH_END) >> 2); // f32 slots above the GEMM's scratch
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
    else if (m + 1 == M) put(out + off(m * ldo + n), rowDotQ8(xq + <usize>m * xs, ds + <usize>m * dsS, row, nb, scratch()), beta);
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
    let d = h2fTab(<u32>load<u16>(p));
    a00 = fma4(f32x4.convert_i32x4_s(blockDot(w0, w1, w2, w3, q0 + x)), f32x4.splat(d * load<f32>(d0 + sc)), a00);
    a10 = fma4(f32x4.convert_i32x4_s(blockDot(w0, w1, w2, w3, q1 + x)), f32x4.splat(d * load<f32>(d1 + sc)), a10);
    if (R == 3) a20 = fma4(f32x4.convert_i32x4_s(blockDot(w0, w1, w2, w3, q2 + x)), f32x4.splat(d * load<f32>(d2 + sc)), a20);
    wa = v128.load(p, 36); wb = v128.load(p, 52);
    w0 = i16x8.extend_low_i8x16_s(wa); w1 = i16x8.extend_high_i8x16_s(wa);
    w2 = i16x8.extend_low_i8x16_s(wb); w3 = i16x8.extend_high_i8x16_s(wb);
    d = h2fTab(<u32>load<u16>(p, 34));
    a01 = fma4(f32x4.convert_i32x4_s(blockDot(w0, w1, w2, w3, q0 + x + 64)), f32x4.splat(d * load<f32>(d0 + sc, 4)), a01);
    a11 = fma4(f32x4.convert_i32x4_s(blockDot(w0, w1, w2, w3, q1 + x + 64)), f32x4.splat(d * load<f32>(d1 + sc, 4)), a11);
    if (R == 3) a21 = fma4(f32x4.convert_i32x4_s(blockDot(w0, w1, w2, w3, q2 + x + 64)), f32x4.splat(d * load<f32>(d2 + sc, 4)), a21);
    p += 2 * QBYTES; x += 128; sc += 8;
  }
  if (b < nb) {
    const wa = v128.load(p, 2), wb = v128.load(p, 18);
    const w0 = i16x8.extend_low_i8x16_s(wa), w1 = i16x8.extend_high_i8x16_s(wa);
    const w2 = i16x8.extend_low_i8x16_s(wb), w3 = i16x8.extend_high_i8x16_s(wb);
    const d = h2fTab(<u32>load<u16>(p));
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

// ---- Q4_0, Q4_1, Q5_0 (blocks of 32), Q4_K, Q5_K, Q6_K (blocks of 256) ---------------------
// Contracts: quant_matmul, quant_rows in ../../kernels.ts, `type` the ggml type id; layouts and
// reference values in ../../ref/ggml_blocks.ts. Same paths as Q8_0's:
//  - M < PANEL_M (decoding): x rounded as llama.cpp's CPU path rounds it for the type (Q8_0 blocks
//    for the 32-value types, Q8_K blocks of 256 for the K types) into this thread's scratch, as
//    i16 lanes with their f32 scales and, for the types with a min (Q4_1, Q4_K, Q5_K), the sum of
//    each 32 qx; each weight block's quants are unpacked to int8 lanes (nibbles masked and
//    shifted, fifth/sixth bits spread from qh) and dotted with i32x4.dot_i16x8_s (on the relaxed
//    build: i16x8.relaxed_dot_i8x16_i7x16_s, below); the K types scale each sub-block's lanes by
//    its integer scale (i32x4.mul; on the relaxed build i32x4.dot_i16x8_s on the i16 dots) and
//    convert once per super-block: ggml's vec_dot_<type>_q8_<0|K> with its integer sums exact.
//    Block scales (f16) are read through the table (h2fTab).
//  - M ≥ PANEL_M (prefill): panels of weight rows dequantised into scratch as ggml does, then
//    matmul.ts's blocked GEMM (exact f32 products); Q4_0, Q4_1, Q5_0, Q4_K, Q5_K and Q6_K instead:
//    an integer GEMM on x rounded to Q8_0 / Q8_K blocks (intPrefill, intPrefillK, intPrefill6, below).
const T_Q4_0: i32 = 2, T_Q4_1: i32 = 3, T_Q5_0: i32 = 6, T_Q4_K: i32 = 12, T_Q5_K: i32 = 13, T_Q6_K: i32 = 14;

// @ts-ignore: decorator
@inline function typeBlock(t: i32): i32 { return t >= T_Q4_K ? 256 : 32; }
// @ts-ignore: decorator
@inline function typeBytes(t: i32): i32 {
  return t == T_Q4_0 ? 18 : t == T_Q4_1 ? 20 : t == T_Q5_0 ? 22 : t == T_Q4_K ? 144 : t == T_Q5_K ? 176 : 210;
}
// @ts-ignore: decorator
@inline function hasMin(t: i32): bool { return t == T_Q4_1 || t == T_Q4_K || t == T_Q5_K; }

// @ts-ignore: decorator
@inline function half(p: usize): f32 { return h2fTab(<u32>load<u16>(p)); }

// The sum of an i32x4's four lanes.
// @ts-ignore: decorator
@inline function lanesSum(v: v128): i32 { return i32x4.extract_lane(v, 0) + i32x4.extract_lane(v, 1) + i32x4.extract_lane(v, 2) + i32x4.extract_lane(v, 3); }

// n bytes (a multiple of 16) from src to dst, or zeros when !keep (a tile's rows past the last).
// @ts-ignore: decorator
@inline function copyOrZero(dst: usize, src: usize, n: i32, keep: bool): void {
  for (let j = 0; j < n; j += 16) v128.store(dst + <usize>j, keep ? v128.load(src + <usize>j) : i8x16.splat(0));
}

// Round the row x (nb·256 f32) to Q8_K blocks (quantize_row_q8_K): per block the value of
// largest magnitude `max` (the first one on ties), iscale = −127/max, qx = nearest(iscale·x)
// (ties to even, clamped to ±127) as i16 lanes at xq, dy = 1/iscale at ds (0 and qx = 0 when the
// block is all zeros).
// @ts-ignore: decorator
@inline function quantRowK(x: usize, xq: usize, ds: usize, nb: i32): void {
  for (let b = 0; b < nb; b++) {
    let m = f32x4.splat(0);
    for (let j = 0; j < 256; j += 4) m = f32x4.max(m, f32x4.abs(v128.load(x + off(j))));
    m = f32x4.max(m, v128.shuffle<f32>(m, m, 2, 3, 0, 1));
    const amax = max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1));
    if (amax == 0) {
      for (let j = 0; j < 256; j += 8) v128.store(xq + <usize>(2 * j), i16x8.splat(0));
      store<f32>(ds, 0);
    } else {
      let mx: f32 = 0;
      for (let j = 0; j < 256; j++) {
        const v = load<f32>(x + off(j));
        if (abs(v) == amax) { mx = v; break; }
      }
      const iscale: f32 = <f32>-127 / mx;
      store<f32>(ds, <f32>1 / iscale);
      const id = f32x4.splat(iscale), lo = i32x4.splat(-127), hi = i32x4.splat(127);
      for (let j = 0; j < 256; j += 8) {
        const a = i32x4.max_s(i32x4.min_s(qi(v128.load(x + off(j)), id), hi), lo);
        const c = i32x4.max_s(i32x4.min_s(qi(v128.load(x + off(j), 16), id), hi), lo);
        v128.store(xq + <usize>(2 * j), i16x8.narrow_i32x4_s(a, c));
      }
    }
    x += 1024; xq += 512; ds += 4;
  }
}

// ss[i] (i32) = Σ of the 32 qx of sub-block i, for nsub sub-blocks of xq.
// @ts-ignore: decorator
@inline function subSums(xq: usize, ss: usize, nsub: i32): void {
  const one = i16x8.splat(1);
  for (let i = 0; i < nsub; i++) {
    let s = i32x4.dot_i16x8_s(v128.load(xq), one);
    s = i32x4.add(s, i32x4.dot_i16x8_s(v128.load(xq, 16), one));
    s = i32x4.add(s, i32x4.dot_i16x8_s(v128.load(xq, 32), one));
    s = i32x4.add(s, i32x4.dot_i16x8_s(v128.load(xq, 48), one));
    store<i32>(ss, lanesSum(s));
    xq += 64; ss += 4;
  }
}

// Σ_j q[j]·qx[j] over 16 signed int8 lanes q and 16 i16 activations at xq, as four i32 lanes.
// @ts-ignore: decorator
@inline function dotS(q: v128, xq: usize): v128 {
  return i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(q), v128.load(xq)), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(q), v128.load(xq, 16)));
}

// The high nibble of each byte: i8x16.shr_u(v, 4) without its per-use mask (x86 has no byte shift,
// and V8 builds the mask anew at every i8x16 shift); mask = i8x16.splat(0x0f). The other byte shifts
// below are 16-bit shifts for the same reason, each followed by a mask that drops the bits that
// cross from the neighbouring byte (or, for i16x8.shl by 4 of values below 16, with none to drop).
// @ts-ignore: decorator
@inline function hi4(v: v128, mask: v128): v128 { return v128.and(i16x8.shr_u(v, 4), mask); }

// Q5_0/Q5_K: 16 lanes holding 0x10 where bit `bit` of the matching qh byte (Q5_K, at p) or bit
// (lane + shift) of the 32-bit qh (Q5_0) is set.
// @ts-ignore: decorator
@inline function bits16(qh: u32): v128 {
  const v = i8x16.swizzle(i32x4.splat(qh), i8x16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
  const sel = v128.and(v, i8x16(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128));
  return v128.and(i8x16.ne(sel, i8x16.splat(0)), i8x16.splat(0x10));
}

// Σ q·qx of one 32-value block at p against 32 i16 activations at xq, as four i32 lanes.
// @ts-ignore: decorator
@inline function block32(t: i32, p: usize, xq: usize): v128 {
  const mask = i8x16.splat(0x0f);
  let lo: v128, hi: v128;
  if (t == T_Q4_0) {
    const v = v128.load(p, 2);
    lo = i8x16.sub(v128.and(v, mask), i8x16.splat(8));
    hi = i8x16.sub(hi4(v, mask), i8x16.splat(8));
  } else if (t == T_Q4_1) {
    const v = v128.load(p, 4);
    lo = v128.and(v, mask);
    hi = hi4(v, mask);
  } else {
    const v = v128.load(p, 6), qh = load<u32>(p, 2);
    lo = i8x16.sub(v128.or(v128.and(v, mask), bits16(qh & 0xffff)), i8x16.splat(16));
    hi = i8x16.sub(v128.or(hi4(v, mask), bits16(qh >> 16)), i8x16.splat(16));
  }
  return i32x4.add(dotS(lo, xq), dotS(hi, xq + 32));
}

// ---- the relaxed build: quants as the unsigned operand of an 8-bit dot product ----
// Where the engine has relaxed SIMD, a block's Σ (q − o)·qx is computed as Σ q·qx − o·Σ qx: the
// quants q as stored (0…63, before the type's offset o: 8 for Q4_0, 16 for Q5_0, 32 for Q6_K, 0
// for the types with a min) are the unsigned 7-bit operand of i16x8.relaxed_dot_i8x16_i7x16_s
// (x86's pmaddubsw), qx (int8) the signed one, and the Σ qx that o multiplies are computed once
// per row of x (prepX8 for the 32-value types; Q6_K's per chunk of 16, Q4_K/Q5_K's per 32 for
// their mins, in quant_matmul).
// Both operands stay in memory order: the i32 lanes (extadd_pairwise of the i16 dots) hold
// positions 4j…4j+3 of each 16, where the plain build's dotS holds 2j, 2j+1, 8+2j, 9+2j (a swizzle
// of both operands that kept dotS's lanes cost two shuffles per block; the builds' results differ
// in their last bits anyway, as fma4 is fused on this build only). (i16 lanes hold at most
// 2 · 2 · 31 · 127 or 2 · 63 · 127: no saturation. The fused i32x4.relaxed_dot_i8x16_i7x16_add_s
// is not used: V8 11.3 returns twice the dot and drops the addend.)

/** The offset o of a 32-value type's quants as 2^shift, or −1 for the types without one (prepX8's s is then not written). */
// @ts-ignore: decorator
@inline function offsetShift(t: i32): i32 { return t == T_Q4_0 ? 3 : t == T_Q5_0 ? 4 : -1; }

// From the rounded row (nc chunks of 16 i16 qx at xq): x8 (16 int8 per chunk) and, when
// shift ≥ 0, s (per chunk, i32x4: Σ qx over each lane group of 4 positions, times 2^shift). With
// `pair` (the 32-value types) the two chunks of a block share one s, their sum, at the first
// chunk's place: a block then subtracts its offset with one load.
// @ts-ignore: decorator
@inline function prepX8(xq: usize, x8: usize, s: usize, nc: i32, shift: i32, pair: bool): void {
  for (let c = 0; c < nc; c++) {
    const q = i8x16.narrow_i16x8_s(v128.load(xq), v128.load(xq, 16));
    v128.store(x8, q);
    if (shift >= 0) {
      const v = i32x4.shl(i32x4.extadd_pairwise_i16x8_s(i16x8.extadd_pairwise_i8x16_s(q)), shift);
      if (pair && (c & 1)) v128.store(s - 16, i32x4.add(v128.load(s - 16), v));
      else v128.store(s, v);
    }
    xq += 32; x8 += 16; s += 16;
  }
}

// Σ u·qx over one chunk of 16 quants u (unsigned, natural order) and 16 prepared qx at x8: i16x8.
// @ts-ignore: decorator
@inline function dotU(u: v128, x8: usize): v128 { return i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x8), u); }

// block32 on the relaxed build: x8 and s (prepX8) of the same block.
// @ts-ignore: decorator
@inline function block32R(t: i32, p: usize, x8: usize, s: usize): v128 {
  const mask = i8x16.splat(0x0f);
  let lo: v128, hi: v128;
  if (t == T_Q4_0 || t == T_Q4_1) {
    const v = t == T_Q4_0 ? v128.load(p, 2) : v128.load(p, 4);
    lo = v128.and(v, mask);
    hi = hi4(v, mask);
  } else {
    const v = v128.load(p, 6), qh = load<u32>(p, 2);
    lo = v128.or(v128.and(v, mask), bits16(qh & 0xffff));
    hi = v128.or(hi4(v, mask), bits16(qh >> 16));
  }
  const d = i32x4.extadd_pairwise_i16x8_s(i16x8.add(dotU(lo, x8), dotU(hi, x8 + 16)));
  return t == T_Q4_1 ? d : i32x4.sub(d, v128.load(s));
}

// One weight row (nb blocks at p) against the rounded x: 32-value types; two blocks per step
// into two accumulators.
// @ts-ignore: decorator
@inline function rowDot32(t: i32, xq: usize, ds: usize, ss: usize, p: usize, nb: i32): f32 {
  const bytes = <usize>typeBytes(t);
  let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0);
  let mins: f32 = 0;
  // the relaxed build's prepared x (see prepX8; quant_matmul lays it out after ss)
  let x8 = ss + off(nb), xs = x8 + <usize>(32 * nb);
  let b = 0;
  for (; b + 2 <= nb; b += 2) {
    const s0 = ASC_FEATURE_RELAXED_SIMD ? block32R(t, p, x8, xs) : block32(t, p, xq);
    const s1 = ASC_FEATURE_RELAXED_SIMD ? block32R(t, p + bytes, x8 + 32, xs + 32) : block32(t, p + bytes, xq + 64);
    const dx0 = load<f32>(ds), dx1 = load<f32>(ds, 4);
    acc0 = fma4(f32x4.convert_i32x4_s(s0), f32x4.splat(h2fTab(<u32>load<u16>(p)) * dx0), acc0);
    acc1 = fma4(f32x4.convert_i32x4_s(s1), f32x4.splat(h2fTab(<u32>load<u16>(p + bytes)) * dx1), acc1);
    if (t == T_Q4_1) mins += h2fTab(<u32>load<u16>(p, 2)) * dx0 * <f32>load<i32>(ss) + h2fTab(<u32>load<u16>(p + bytes, 2)) * dx1 * <f32>load<i32>(ss, 4);
    p += 2 * bytes; xq += 128; ds += 8; ss += 8; x8 += 64; xs += 64;
  }
  if (b < nb) {
    const dx = load<f32>(ds);
    const s0 = ASC_FEATURE_RELAXED_SIMD ? block32R(t, p, x8, xs) : block32(t, p, xq);
    acc0 = fma4(f32x4.convert_i32x4_s(s0), f32x4.splat(h2fTab(<u32>load<u16>(p)) * dx), acc0);
    if (t == T_Q4_1) mins += h2fTab(<u32>load<u16>(p, 2)) * dx * <f32>load<i32>(ss);
  }
  return rowSum(f32x4.add(acc0, acc1)) + mins;
}

// rowDot32 for Q4_0 on the relaxed build, the same sums in the same order (even blocks into
// acc0, odd ones into acc1; each block's integer sum exact): four blocks a step with every address
// a base pointer plus a constant offset, the half table's address in a local, and pairs of i16
// lanes summed by i32x4.dot_i16x8_s with a hoisted vector of ones (V8 builds extadd_pairwise's
// constant anew at each use), each block's accumulator stored to an unread scratch slot (sink: see
// rowDotQ8). x8 and s as prepX8 lays them out (x8 at x8, s 32·nb bytes above).
function rowDotQ4_0R(ds: usize, x8: usize, p: usize, nb: i32): f32 {
  const tab = halfTable, sink = scratch();
  const mask = i8x16.splat(0x0f), ones = i16x8.splat(1);
  let xs = x8 + <usize>(32 * nb);
  let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0);
  let b = 0;
  for (; b + 4 <= nb; b += 4) {
    acc0 = fma4(f32x4.convert_i32x4_s(q4Block(v128.load(p, 2), v128.load(x8), v128.load(x8, 16), v128.load(xs), mask, ones)),
      f32x4.mul(v128.load32_splat(tab + (<usize>load<u16>(p) << 2)), v128.load32_splat(ds)), acc0);
    v128.store(sink, acc0);
    acc1 = fma4(f32x4.convert_i32x4_s(q4Block(v128.load(p, 20), v128.load(x8, 32), v128.load(x8, 48), v128.load(xs, 32), mask, ones)),
      f32x4.mul(v128.load32_splat(tab + (<usize>load<u16>(p, 18) << 2)), v128.load32_splat(ds, 4)), acc1);
    v128.store(sink, acc1);
    acc0 = fma4(f32x4.convert_i32x4_s(q4Block(v128.load(p, 38), v128.load(x8, 64), v128.load(x8, 80), v128.load(xs, 64), mask, ones)),
      f32x4.mul(v128.load32_splat(tab + (<usize>load<u16>(p, 36) << 2)), v128.load32_splat(ds, 8)), acc0);
    v128.store(sink, acc0);
    acc1 = fma4(f32x4.convert_i32x4_s(q4Block(v128.load(p, 56), v128.load(x8, 96), v128.load(x8, 112), v128.load(xs, 96), mask, ones)),
      f32x4.mul(v128.load32_splat(tab + (<usize>load<u16>(p, 54) << 2)), v128.load32_splat(ds, 12)), acc1);
    v128.store(sink, acc1);
    p += 72; x8 += 128; xs += 128; ds += 16;
  }
  for (; b < nb; b++) {
    const v = fma4(f32x4.convert_i32x4_s(q4Block(v128.load(p, 2), v128.load(x8), v128.load(x8, 16), v128.load(xs), mask, ones)),
      f32x4.mul(v128.load32_splat(tab + (<usize>load<u16>(p) << 2)), v128.load32_splat(ds)), (b & 1) ? acc1 : acc0);
    if (b & 1) acc1 = v; else acc0 = v;
    p += 18; x8 += 32; xs += 32; ds += 4;
  }
  return rowSum(f32x4.add(acc0, acc1));
}

// One Q4_0 block on the relaxed build: Σ q·qx − 8·Σ qx as four i32 lanes, from its 16 bytes of
// nibbles w, its prepared x8 halves xa, xb and its offset sums s (see block32R).
// @ts-ignore: decorator
@inline function q4Block(w: v128, xa: v128, xb: v128, s: v128, mask: v128, ones: v128): v128 {
  const d = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(xa, v128.and(w, mask)), i16x8.relaxed_dot_i8x16_i7x16_s(xb, hi4(w, mask)));
  return i32x4.sub(i32x4.dot_i16x8_s(d, ones), s);
}

// Q4_K/Q5_K's 8 six-bit scales (scalesK) and mins (minsK) of the 12 bytes at s, byte j of the
// result for sub-block j (get_scale_min_k4 on whole words: bytes 0–3 hold sub-blocks 0–3's low
// six bits, bytes 8–11 the low four of 4–7 and the top two bits of 4–7 sit in bytes 0–7).
// @ts-ignore: decorator
@inline function scalesK(s: usize): u64 {
  const a = load<u32>(s), c = load<u32>(s, 8);
  return <u64>(a & 0x3f3f3f3f) | (<u64>((c & 0x0f0f0f0f) | (((a >> 6) & 0x03030303) << 4)) << 32);
}
// @ts-ignore: decorator
@inline function minsK(s: usize): u64 {
  const b = load<u32>(s, 4), c = load<u32>(s, 8);
  return <u64>(b & 0x3f3f3f3f) | (<u64>(((c >> 4) & 0x0f0f0f0f) | (((b >> 6) & 0x03030303) << 4)) << 32);
}

// Q6_K: 16 six-bit quants of a chunk, as stored (before the offset 32): the low (or, with `high`,
// the high) nibbles of the 16 bytes l, with bits shift…shift + 1 of the matching bytes of h above
// them. mask = i8x16.splat(0x0f), three = i8x16.splat(3); shift is a constant after inlining.
// @ts-ignore: decorator
@inline function q6Quants(l: v128, h: v128, shift: i32, high: bool, mask: v128, three: v128): v128 {
  const hs = shift == 0 ? h : i16x8.shr_u(h, shift);
  return v128.or(high ? hi4(l, mask) : v128.and(l, mask), i16x8.shl(v128.and(hs, three), 4));
}

// Q4_K/Q5_K: 16 quants of a sub-block, as stored (before the min): the low (or, with `high`, the
// high) nibbles of the 16 bytes v, and for Q5_K the fifth bit, bit `bit` of the matching bytes of h.
// mask = i8x16.splat(0x0f), one = i8x16.splat(1).
// @ts-ignore: decorator
@inline function kQuants(t: i32, v: v128, h: v128, bit: i32, high: bool, mask: v128, one: v128): v128 {
  const q = high ? hi4(v, mask) : v128.and(v, mask);
  return t == T_Q5_K ? v128.or(q, i16x8.shl(v128.and(i16x8.shr_u(h, bit), one), 4)) : q;
}

// Q4_K/Q5_K: sub-blocks 2g and 2g + 1 of the super-block whose quants are at qs (Q5_K's fifth
// bits in hA, hB), against the rounded x (xq, or x8 on the relaxed build): Σ sc_j · Σ q·qx over
// the two, as i32x4 lanes (get_scale_min_k4's 6-bit scales in scs). g is a constant after inlining.
// @ts-ignore: decorator
@inline function kPair(t: i32, g: i32, qs: usize, hA: v128, hB: v128, xq: usize, x8: usize, scs: u64, mask: v128): v128 {
  const v0 = v128.load(qs + <usize>(32 * g)), v1 = v128.load(qs + <usize>(32 * g), 16), one = i8x16.splat(1);
  const a0 = kQuants(t, v0, hA, 2 * g, false, mask, one), a1 = kQuants(t, v1, hB, 2 * g, false, mask, one);
  const b0 = kQuants(t, v0, hA, 2 * g + 1, true, mask, one), b1 = kQuants(t, v1, hB, 2 * g + 1, true, mask, one);
  const sh = <u64>(16 * g);
  const sc0 = <i32>((scs >> sh) & 0xff), sc1 = <i32>((scs >> (sh + 8)) & 0xff);
  if (ASC_FEATURE_RELAXED_SIMD) {
    // The i16 dots (each lane at most 2 · 2 · 31 · 127) times the sub-block's scale, pairs of
    // lanes summed, in one i32x4.dot_i16x8_s (extadd_pairwise, then i32x4.mul, in one).
    const y = x8 + <usize>(64 * g);
    return i32x4.add(
      i32x4.dot_i16x8_s(i16x8.add(dotU(a0, y), dotU(a1, y + 16)), i16x8.splat(<i16>sc0)),
      i32x4.dot_i16x8_s(i16x8.add(dotU(b0, y + 32), dotU(b1, y + 48)), i16x8.splat(<i16>sc1)));
  }
  const x = xq + <usize>(128 * g);
  const d0 = i32x4.add(dotS(a0, x), dotS(a1, x + 32)), d1 = i32x4.add(dotS(b0, x + 64), dotS(b1, x + 96));
  return i32x4.add(i32x4.mul(d0, i32x4.splat(sc0)), i32x4.mul(d1, i32x4.splat(sc1)));
}

// One weight row of K-type super-blocks against the Q8_K-rounded x.
// @ts-ignore: decorator
@inline function rowDotK(t: i32, xq: usize, ds: usize, ss: usize, p: usize, nb: i32): f32 {
  const sink = scratch(); // (the GEMM's scratch, unused while decoding)
  const bytes = <usize>typeBytes(t);
  const mask = i8x16.splat(0x0f), three = i8x16.splat(3), k32 = i8x16.splat(32);
  let acc = f32x4.splat(0), macc = f32x4.splat(0);
  let mins: f32 = 0;
  // the relaxed build's prepared x (see prepX8; quant_matmul lays it out after ss): x8, then per
  // super-block 256 bytes at xs (Q6_K: the 16 chunk sums as i16; Q4_K/Q5_K: the 8 sub-block sums)
  let x8 = ss + off(8 * nb), xs = x8 + <usize>(256 * nb);
  for (let b = 0; b < nb; b++) {
    let isum = i32x4.splat(0);
    const dy = load<f32>(ds);
    if (t == T_Q6_K) {
      for (let h = 0; h < 2; h++) {
        const ql = p + <usize>(64 * h), qh = p + 128 + <usize>(32 * h), sc = p + 192 + <usize>(8 * h);
        const x = xq + <usize>(256 * h), y = x8 + <usize>(128 * h);
        const l0 = v128.load(ql), l1 = v128.load(ql, 16), l2 = v128.load(ql, 32), l3 = v128.load(ql, 48);
        const h0 = v128.load(qh), h1 = v128.load(qh, 16);
        // the six-bit quants before the offset 32
        const u0 = q6Quants(l0, h0, 0, false, mask, three), u1 = q6Quants(l1, h1, 0, false, mask, three);
        const u2 = q6Quants(l2, h0, 2, false, mask, three), u3 = q6Quants(l3, h1, 2, false, mask, three);
        const u4 = q6Quants(l0, h0, 4, true, mask, three), u5 = q6Quants(l1, h1, 4, true, mask, three);
        const u6 = q6Quants(l2, h0, 6, true, mask, three), u7 = q6Quants(l3, h1, 6, true, mask, three);
        if (ASC_FEATURE_RELAXED_SIMD) {
          // Σ sc_j · Σ u·qx over the chunk (i16 dots times the scale, pairs summed, in one
          // i32x4.dot_i16x8_s); the offset 32 comes off once per super-block below.
          isum = i32x4.add(isum, i32x4.dot_i16x8_s(dotU(u0, y), i16x8.splat(<i16>load<i8>(sc))));
          isum = i32x4.add(isum, i32x4.dot_i16x8_s(dotU(u1, y + 16), i16x8.splat(<i16>load<i8>(sc, 1))));
          isum = i32x4.add(isum, i32x4.dot_i16x8_s(dotU(u2, y + 32), i16x8.splat(<i16>load<i8>(sc, 2))));
          isum = i32x4.add(isum, i32x4.dot_i16x8_s(dotU(u3, y + 48), i16x8.splat(<i16>load<i8>(sc, 3))));
          v128.store(sink, isum); // (see the Q4_K/Q5_K branch below)
          isum = i32x4.add(isum, i32x4.dot_i16x8_s(dotU(u4, y + 64), i16x8.splat(<i16>load<i8>(sc, 4))));
          isum = i32x4.add(isum, i32x4.dot_i16x8_s(dotU(u5, y + 80), i16x8.splat(<i16>load<i8>(sc, 5))));
          isum = i32x4.add(isum, i32x4.dot_i16x8_s(dotU(u6, y + 96), i16x8.splat(<i16>load<i8>(sc, 6))));
          isum = i32x4.add(isum, i32x4.dot_i16x8_s(dotU(u7, y + 112), i16x8.splat(<i16>load<i8>(sc, 7))));
          v128.store(sink, isum);
        } else {
          isum = i32x4.add(isum, i32x4.mul(dotS(i8x16.sub(u0, k32), x), i32x4.splat(<i32>load<i8>(sc))));
          isum = i32x4.add(isum, i32x4.mul(dotS(i8x16.sub(u1, k32), x + 32), i32x4.splat(<i32>load<i8>(sc, 1))));
          isum = i32x4.add(isum, i32x4.mul(dotS(i8x16.sub(u2, k32), x + 64), i32x4.splat(<i32>load<i8>(sc, 2))));
          isum = i32x4.add(isum, i32x4.mul(dotS(i8x16.sub(u3, k32), x + 96), i32x4.splat(<i32>load<i8>(sc, 3))));
          isum = i32x4.add(isum, i32x4.mul(dotS(i8x16.sub(u4, k32), x + 128), i32x4.splat(<i32>load<i8>(sc, 4))));
          isum = i32x4.add(isum, i32x4.mul(dotS(i8x16.sub(u5, k32), x + 160), i32x4.splat(<i32>load<i8>(sc, 5))));
          isum = i32x4.add(isum, i32x4.mul(dotS(i8x16.sub(u6, k32), x + 192), i32x4.splat(<i32>load<i8>(sc, 6))));
          isum = i32x4.add(isum, i32x4.mul(dotS(i8x16.sub(u7, k32), x + 224), i32x4.splat(<i32>load<i8>(sc, 7))));
        }
      }
      if (ASC_FEATURE_RELAXED_SIMD) {
        // 32 · Σ_j sc_j · Σ qx over chunk j: the 16 scales against the 16 chunk sums (i16, at xs).
        const scv = v128.load(p, 192);
        const o = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(scv), v128.load(xs)), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(scv), v128.load(xs, 16)));
        isum = i32x4.sub(isum, i32x4.shl(o, 5));
      }
      acc = fma4(f32x4.convert_i32x4_s(isum), f32x4.splat(h2fTab(<u32>load<u16>(p, 208)) * dy), acc);
    } else {
      const s = p + 4, qs = p + (t == T_Q4_K ? 16 : 48);
      const scs = scalesK(s), mns = minsK(s);
      let hA = i8x16.splat(0), hB = i8x16.splat(0);
      if (t == T_Q5_K) { hA = v128.load(p, 16); hB = v128.load(p, 32); }
      // the four pairs of sub-blocks, unrolled (a loop kept the masks and scales in memory)
      // Each pair's sum is stored to a scratch slot nobody reads (sink): the next pair's loads
      // come after that store, so TurboFan cannot schedule all 24 loads of a super-block first
      // (it did, and spilled most of them to the stack).
      isum = kPair(t, 0, qs, hA, hB, xq, x8, scs, mask);
      v128.store(sink, isum);
      isum = i32x4.add(isum, kPair(t, 1, qs, hA, hB, xq, x8, scs, mask));
      v128.store(sink, isum);
      isum = i32x4.add(isum, kPair(t, 2, qs, hA, hB, xq, x8, scs, mask));
      v128.store(sink, isum);
      isum = i32x4.add(isum, kPair(t, 3, qs, hA, hB, xq, x8, scs, mask));
      acc = fma4(f32x4.convert_i32x4_s(isum), f32x4.splat(h2fTab(<u32>load<u16>(p)) * dy), acc);
      const dm = h2fTab(<u32>load<u16>(p, 2)) * dy;
      if (ASC_FEATURE_RELAXED_SIMD) {
        // Σ_j m_j · Σ qx over sub-block j: the 8 mins and the 8 sums (i16, at xs) in one dot.
        const mv = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(i64x2.splat(<i64>mns)), v128.load(xs));
        macc = fma4(f32x4.convert_i32x4_s(mv), f32x4.splat(dm), macc);
      } else {
        let msum: i32 = 0;
        for (let j = 0; j < 8; j++) msum += <i32>((mns >> (<u64>(8 * j))) & 0xff) * load<i32>(ss + <usize>(4 * j));
        mins += dm * <f32>msum;
      }
    }
    p += bytes; xq += 512; ds += 4; ss += 32; x8 += 256; xs += 256;
  }
  return rowSum(acc) - (mins + rowSum(macc));
}

// dst (16 f32) = q (16 signed int8 lanes)·d − m, each product and difference rounded to f32.
// @ts-ignore: decorator
@inline function put16(dst: usize, q: v128, d: v128, m: v128): void {
  const a = i16x8.extend_low_i8x16_s(q), b = i16x8.extend_high_i8x16_s(q);
  v128.store(dst, f32x4.sub(f32x4.mul(lo(a), d), m));
  v128.store(dst, f32x4.sub(f32x4.mul(hi(a), d), m), 16);
  v128.store(dst, f32x4.sub(f32x4.mul(lo(b), d), m), 32);
  v128.store(dst, f32x4.sub(f32x4.mul(hi(b), d), m), 48);
}

// dst (nb·block f32) = the row at p dequantised as ggml's dequantize_row_<type>.
// @ts-ignore: decorator
@inline function dequantRowT(t: i32, dst: usize, p: usize, nb: i32): void {
  const bytes = <usize>typeBytes(t);
  const mask = i8x16.splat(0x0f), three = i8x16.splat(3), k32 = i8x16.splat(32), zero = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    if (t == T_Q4_0 || t == T_Q4_1 || t == T_Q5_0) {
      const d = f32x4.splat(half(p));
      let m = zero, lo: v128, hi: v128;
      if (t == T_Q4_0) {
        const v = v128.load(p, 2);
        lo = i8x16.sub(v128.and(v, mask), i8x16.splat(8)); hi = i8x16.sub(hi4(v, mask), i8x16.splat(8));
      } else if (t == T_Q4_1) {
        const v = v128.load(p, 4);
        lo = v128.and(v, mask); hi = hi4(v, mask);
        m = f32x4.splat(-half(p + 2)); // q·d + m = q·d − (−m), the same rounding
      } else {
        const v = v128.load(p, 6), qh = load<u32>(p, 2);
        lo = i8x16.sub(v128.or(v128.and(v, mask), bits16(qh & 0xffff)), i8x16.splat(16));
        hi = i8x16.sub(v128.or(hi4(v, mask), bits16(qh >> 16)), i8x16.splat(16));
      }
      put16(dst, lo, d, m); put16(dst + 64, hi, d, m);
      dst += 128;
    } else if (t == T_Q6_K) {
      const d = half(p + 208);
      for (let h = 0; h < 2; h++) {
        const ql = p + <usize>(64 * h), qh = p + 128 + <usize>(32 * h), sc = p + 192 + <usize>(8 * h);
        const l0 = v128.load(ql), l1 = v128.load(ql, 16), l2 = v128.load(ql, 32), l3 = v128.load(ql, 48);
        const h0 = v128.load(qh), h1 = v128.load(qh, 16);
        put16(dst, i8x16.sub(q6Quants(l0, h0, 0, false, mask, three), k32), f32x4.splat(d * <f32>load<i8>(sc)), zero);
        put16(dst + 64, i8x16.sub(q6Quants(l1, h1, 0, false, mask, three), k32), f32x4.splat(d * <f32>load<i8>(sc, 1)), zero);
        put16(dst + 128, i8x16.sub(q6Quants(l2, h0, 2, false, mask, three), k32), f32x4.splat(d * <f32>load<i8>(sc, 2)), zero);
        put16(dst + 192, i8x16.sub(q6Quants(l3, h1, 2, false, mask, three), k32), f32x4.splat(d * <f32>load<i8>(sc, 3)), zero);
        put16(dst + 256, i8x16.sub(q6Quants(l0, h0, 4, true, mask, three), k32), f32x4.splat(d * <f32>load<i8>(sc, 4)), zero);
        put16(dst + 320, i8x16.sub(q6Quants(l1, h1, 4, true, mask, three), k32), f32x4.splat(d * <f32>load<i8>(sc, 5)), zero);
        put16(dst + 384, i8x16.sub(q6Quants(l2, h0, 6, true, mask, three), k32), f32x4.splat(d * <f32>load<i8>(sc, 6)), zero);
        put16(dst + 448, i8x16.sub(q6Quants(l3, h1, 6, true, mask, three), k32), f32x4.splat(d * <f32>load<i8>(sc, 7)), zero);
        dst += 512;
      }
    } else {
      const d = half(p), dmin = half(p + 2), s = p + 4, qs = p + (t == T_Q4_K ? 16 : 48);
      const scs = scalesK(s), mns = minsK(s);
      let hA = i8x16.splat(0), hB = i8x16.splat(0);
      if (t == T_Q5_K) { hA = v128.load(p, 16); hB = v128.load(p, 32); }
      const one = i8x16.splat(1);
      for (let g = 0; g < 4; g++) {
        const v0 = v128.load(qs + <usize>(32 * g)), v1 = v128.load(qs + <usize>(32 * g), 16);
        const a0 = kQuants(t, v0, hA, 2 * g, false, mask, one), a1 = kQuants(t, v1, hB, 2 * g, false, mask, one);
        const b0 = kQuants(t, v0, hA, 2 * g + 1, true, mask, one), b1 = kQuants(t, v1, hB, 2 * g + 1, true, mask, one);
        const sh = <u64>(16 * g);
        const sc0 = <i32>((scs >> sh) & 0xff), sc1 = <i32>((scs >> (sh + 8)) & 0xff);
        const m0 = <i32>((mns >> sh) & 0xff), m1 = <i32>((mns >> (sh + 8)) & 0xff);
        const da = f32x4.splat(d * <f32>sc0), ma = f32x4.splat(dmin * <f32>m0);
        const db = f32x4.splat(d * <f32>sc1), mb = f32x4.splat(dmin * <f32>m1);
        put16(dst, a0, da, ma); put16(dst + 64, a1, da, ma);
        put16(dst + 128, b0, db, mb); put16(dst + 192, b1, db, mb);
        dst += 256;
      }
    }
    p += bytes;
  }
}

// One specialised copy of the row kernels per type (t a constant after inlining: the type tests
// fold away; with t a runtime value they cost Q4_0 decoding 1.6× the time of Q8_0's).
function dqQ4_0(dst: usize, p: usize, nb: i32): void { dequantRowT(T_Q4_0, dst, p, nb); }
function dqQ4_1(dst: usize, p: usize, nb: i32): void { dequantRowT(T_Q4_1, dst, p, nb); }
function dqQ5_0(dst: usize, p: usize, nb: i32): void { dequantRowT(T_Q5_0, dst, p, nb); }
function dqQ4_K(dst: usize, p: usize, nb: i32): void { dequantRowT(T_Q4_K, dst, p, nb); }
function dqQ5_K(dst: usize, p: usize, nb: i32): void { dequantRowT(T_Q5_K, dst, p, nb); }
function dqQ6_K(dst: usize, p: usize, nb: i32): void { dequantRowT(T_Q6_K, dst, p, nb); }
function dequantRow2(t: i32, dst: usize, p: usize, nb: i32): void {
  if (t == T_Q4_0) dqQ4_0(dst, p, nb);
  else if (t == T_Q4_1) dqQ4_1(dst, p, nb);
  else if (t == T_Q5_0) dqQ5_0(dst, p, nb);
  else if (t == T_Q4_K) dqQ4_K(dst, p, nb);
  else if (t == T_Q5_K) dqQ5_K(dst, p, nb);
  else dqQ6_K(dst, p, nb);
}
function dotQ4_0(xq: usize, ds: usize, ss: usize, p: usize, nb: i32): f32 {
  if (ASC_FEATURE_RELAXED_SIMD) return rowDotQ4_0R(ds, ss + off(nb), p, nb);
  return rowDot32(T_Q4_0, xq, ds, ss, p, nb);
}
function dotQ4_1(xq: usize, ds: usize, ss: usize, p: usize, nb: i32): f32 { return rowDot32(T_Q4_1, xq, ds, ss, p, nb); }
function dotQ5_0(xq: usize, ds: usize, ss: usize, p: usize, nb: i32): f32 { return rowDot32(T_Q5_0, xq, ds, ss, p, nb); }
function dotQ4_K(xq: usize, ds: usize, ss: usize, p: usize, nb: i32): f32 { return rowDotK(T_Q4_K, xq, ds, ss, p, nb); }
function dotQ5_K(xq: usize, ds: usize, ss: usize, p: usize, nb: i32): f32 { return rowDotK(T_Q5_K, xq, ds, ss, p, nb); }
function dotQ6_K(xq: usize, ds: usize, ss: usize, p: usize, nb: i32): f32 { return rowDotK(T_Q6_K, xq, ds, ss, p, nb); }
function rowDot(t: i32, xq: usize, ds: usize, ss: usize, p: usize, nb: i32): f32 {
  if (t == T_Q4_0) return dotQ4_0(xq, ds, ss, p, nb);
  if (t == T_Q4_1) return dotQ4_1(xq, ds, ss, p, nb);
  if (t == T_Q5_0) return dotQ5_0(xq, ds, ss, p, nb);
  if (t == T_Q4_K) return dotQ4_K(xq, ds, ss, p, nb);
  if (t == T_Q5_K) return dotQ5_K(xq, ds, ss, p, nb);
  return dotQ6_K(xq, ds, ss, p, nb);
}

export function quant_matmul(out: usize, x: usize, w: usize, M: i32, N: i32, K: i32, ldx: i32, ldo: i32, beta: i32, type: i32, tid: i32, nt: i32): void {
  if (M <= 0 || N <= 0) return;
  if (type == T_F16) { halfMatmul(false, out, x, w, M, N, K, ldx, ldo, beta, tid, nt); return; }
  if (type == T_BF16) { halfMatmul(true, out, x, w, M, N, K, ldx, ldo, beta, tid, nt); return; }
  const QB = typeBlock(type);
  const nb = K / QB;
  const rowBytes = <usize>(nb * typeBytes(type));
  if (M >= PANEL_M) {
    if (type == T_Q4_0 || type == T_Q5_0 || type == T_Q4_1) { intPrefill(type, out, x, w, M, N, K, ldx, ldo, beta, tid, nt); return; }
    if (type == T_Q4_K || type == T_Q5_K) { intPrefillK(type, out, x, w, M, N, K, ldx, ldo, beta, tid, nt); return; }
    if (type == T_Q6_K) { intPrefill6(out, x, w, M, N, K, ldx, ldo, beta, tid, nt); return; }
  }
  if (panelMatmul(type, out, x, w, M, N, K, ldx, ldo, beta, tid, nt)) return;
  const buf = scratch() + GEMM_SCRATCH_END;
  const room = <i32>((<usize>SCRATCH_BYTES - GEMM_SCRATCH_END) >> 2);
  // Per row of x: K i16 qx, nb f32 scales, K/32 i32 sub-block sums, then on the relaxed build
  // prepX8's K int8 and K/16 i32x4 sums; as many rows at a time as fit.
  const per = 2 * K + 4 * nb + 4 * (K >> 5) + (ASC_FEATURE_RELAXED_SIMD ? 2 * K : 0);
  const mc = max(1, min(M, (room * 4) / per));
  if (per > room * 4) unreachable(); // ops keeps K ≤ 131072
  const n0 = shareStart(N, tid, nt, 1), n1 = shareStart(N, tid + 1, nt, 1);
  for (let m0 = 0; m0 < M; m0 += mc) {
    const mr = min(mc, M - m0);
    for (let m = 0; m < mr; m++) {
      const xq = buf + <usize>(m * per), ds = xq + <usize>(2 * K), ss = ds + off(nb);
      if (QB == 256) quantRowK(x + off((m0 + m) * ldx), xq, ds, nb);
      else quantRow(x + off((m0 + m) * ldx), xq, ds, nb);
      if (hasMin(type)) subSums(xq, ss, K >> 5);
      if (ASC_FEATURE_RELAXED_SIMD) {
        const x8 = ss + off(K >> 5);
        prepX8(xq, x8, x8 + <usize>K, K >> 4, offsetShift(type), QB == 32);
        // Q4_K/Q5_K: each super-block's 8 sub-block sums as i16 (|Σ| ≤ 32 · 127)
        if (QB == 256 && hasMin(type)) for (let b = 0; b < nb; b++) v128.store(x8 + <usize>(K + 256 * b), i16x8.narrow_i32x4_s(v128.load(ss + <usize>(32 * b)), v128.load(ss + <usize>(32 * b + 16))));
        // Q6_K: each super-block's 16 chunk sums (16 values each) as i16
        if (type == T_Q6_K) for (let c = 0; c < (K >> 4); c++) {
          const q = v128.load(x8 + <usize>(16 * c));
          const v = i32x4.extadd_pairwise_i16x8_s(i16x8.extadd_pairwise_i8x16_s(q));
          store<i16>(x8 + <usize>(K + 256 * (c >> 4) + 2 * (c & 15)), <i16>lanesSum(v));
        }
      }
    }
    for (let n = n0; n < n1; n++) {
      const row = w + <usize>n * rowBytes;
      for (let m = 0; m < mr; m++) {
        const xq = buf + <usize>(m * per), ds = xq + <usize>(2 * K), ss = ds + off(nb);
        const v = rowDot(type, xq, ds, ss, row, nb);
        put(out + off((m0 + m) * ldo + n), v, beta);
      }
    }
  }
}

export function quant_rows(out: usize, w: usize, idx: usize, n: i32, K: i32, type: i32, tid: i32, nt: i32): void {
  const rowBytes = rowBytesOf(type, K);
  const i0 = shareStart(n, tid, nt, 1), i1 = shareStart(n, tid + 1, nt, 1);
  for (let i = i0; i < i1; i++) widenRow(type, out + <usize>i * off(K), w + <usize>load<i32>(idx + off(i)) * rowBytes, K);
}

// ---- what every weight type shares ----------------------------------------------------------
// (Q8_0's own kernels, q8_0_matmul and q8_0_rows, and the generic ones take the same panel path.)

// Bytes of one weight row of K values of type t.
// @ts-ignore: decorator
@inline function rowBytesOf(t: i32, K: i32): usize {
  if (t == T_F16 || t == T_BF16) return <usize>(2 * K);
  if (t == T_Q8_0) return <usize>((K >> 5) * QBYTES);
  return <usize>((K / typeBlock(t)) * typeBytes(t));
}

// dst (K f32) = the weight row of type t at p, widened as ggml dequantises it.
function widenRow(t: i32, dst: usize, p: usize, K: i32): void {
  if (t == T_F16 || t == T_BF16) halfRow(t == T_BF16, dst, p, K);
  else if (t == T_Q8_0) dequantRow(dst, p, K >> 5);
  else dequantRow2(t, dst, p, K / typeBlock(t));
}

/**
 * The prefill path of every weight type: with M ≥ PANEL_M rows of x, panels of up to PANEL_ROWS
 * weight rows are widened to f32 in this thread's scratch (widenRow) and multiplied by the
 * blocked f32 GEMM; threads split the panels. False (nothing done) when x has fewer rows or
 * scratch holds no row: the caller's decoding path then runs.
 */
function panelMatmul(t: i32, out: usize, x: usize, w: usize, M: i32, N: i32, K: i32, ldx: i32, ldo: i32, beta: i32, tid: i32, nt: i32): bool {
  const buf = scratch() + GEMM_SCRATCH_END;
  const room = <i32>((<usize>SCRATCH_BYTES - GEMM_SCRATCH_END) >> 2); // f32 slots above the GEMM's scratch
  let rows = min(PANEL_ROWS, room / max(K, 1));
  if (rows >= 8) rows &= ~7;
  if (M < PANEL_M || rows < 1) return false;
  const rowBytes = rowBytesOf(t, K);
  const panels = (N + rows - 1) / rows;
  const p0 = shareStart(panels, tid, nt, 1), p1 = shareStart(panels, tid + 1, nt, 1);
  for (let pi = p0; pi < p1; pi++) {
    const n0 = pi * rows, r = min(rows, N - n0);
    for (let j = 0; j < r; j++) widenRow(t, buf + off(j * K), w + <usize>(n0 + j) * rowBytes, K);
    gemmBlock(x, buf, out + off(n0), 0, M, 0, r, K, ldx, 1, 1, K, ldo, beta);
  }
  return true;
}

// ---- Q4_0 (and Q5_0, Q4_1) prefill: an integer GEMM ---------------------------------------------
// With M ≥ PANEL_M rows of x (a prompt), Q4_0 takes llama.cpp's path for every M: x
// rounded to Q8_0 blocks (quantRow), each block's products summed exactly in integers, scaled by
// f32(d)·dx. A 128-bit f32 GEMM on the dequantised weights reaches ~27 GMAC/s here; the same
// multiply-adds as integer dots run up to 1.8× faster (bench/simd_ceiling.mjs, q4tile), the
// unpacking of each weight row paid once for all rows of x.
//  - x, mc rows at a time (a multiple of 4; zero rows pad the last 4): each row rounded, then laid
//    out in tiles of 4 rows, per block the 4 rows' 32 quants, their scales dx (f32x4) and their
//    offsets 8·Σ qx (i32x4). Two forms: `narrow` (the relaxed build: int8 quants, 128 bytes a
//    block, against the nibbles as bytes 0…15, the unsigned operand of the 8-bit dot, then minus
//    the offsets) and `wide` (the SIMD128 build: i16 quants, 256 bytes, against the weights as
//    q − 8 in i16 with i32x4.dot_i16x8_s; no offsets);
//  - per weight row of this thread's share: its blocks unpacked into scratch, its scales d as
//    f32; then for each tile, per block, the 4 rows' integer sums (one i32x4 each, their lanes
//    added across by a transposition into one i32x4 of the 4 rows' sums), converted, times dx·d
//    and added in f32, block after block.
// The integer sum of each (row, block) is exact, so both forms and both builds give the same
// results; the f32 sum runs in block order (ref/quant.ts: the same formula, its own rounding).
const INTP_OFF: usize = 64; // past the unread slot (sink) at the start of scratch

// Rows of x laid out per pass of the integer prefills: a multiple of 4 (M rounded up, or as many
// tiles of tileBytes as fit in scratch beside `used` bytes).
// @ts-ignore: decorator
@inline function tileChunk(M: i32, used: i32, tileBytes: i32): i32 {
  const room = <i32>(<usize>SCRATCH_BYTES - INTP_OFF) - used;
  if (room < tileBytes) unreachable(); // ops keeps K ≤ 131072
  return min((M + 3) & ~3, (room / tileBytes) << 2);
}

// A tile's 4 results (rows m … m + 3 of one output column at o) put, the rows before mEnd only.
// @ts-ignore: decorator
@inline function putTile(o: usize, v: v128, m: i32, mEnd: i32, ldo: i32, beta: i32): void {
  put(o + off(m * ldo), f32x4.extract_lane(v, 0), beta);
  if (m + 1 < mEnd) put(o + off((m + 1) * ldo), f32x4.extract_lane(v, 1), beta);
  if (m + 2 < mEnd) put(o + off((m + 2) * ldo), f32x4.extract_lane(v, 2), beta);
  if (m + 3 < mEnd) put(o + off((m + 3) * ldo), f32x4.extract_lane(v, 3), beta);
}

// @ts-ignore: decorator
@inline function tileSum(s0: v128, s1: v128, s2: v128, s3: v128): v128 {
  const t0 = i32x4.add(v128.shuffle<i32>(s0, s1, 0, 4, 1, 5), v128.shuffle<i32>(s0, s1, 2, 6, 3, 7));
  const t1 = i32x4.add(v128.shuffle<i32>(s2, s3, 0, 4, 1, 5), v128.shuffle<i32>(s2, s3, 2, 6, 3, 7));
  return i32x4.add(v128.shuffle<i32>(t0, t1, 0, 1, 4, 5), v128.shuffle<i32>(t0, t1, 2, 3, 6, 7));
}

// Σ over one block of the four i16 weight vectors w0…w3 against 32 i16 quants at q, as i32x4.
// @ts-ignore: decorator
@inline function dot32w(q: usize, w0: v128, w1: v128, w2: v128, w3: v128): v128 {
  return i32x4.add(i32x4.add(i32x4.dot_i16x8_s(v128.load(q), w0), i32x4.dot_i16x8_s(v128.load(q, 16), w1)),
    i32x4.add(i32x4.dot_i16x8_s(v128.load(q, 32), w2), i32x4.dot_i16x8_s(v128.load(q, 48), w3)));
}

// One unpacked weight row (at wu, its f32 scales at wd) against one tile of 4 rows of x (quants at
// xt, scales at dt, offsets at ot): the 4 rows' results as f32x4. With `mn` (Q4_1) ot holds the
// 4 rows' Σ qx, not subtracted but added times dx·m (the blocks' mins m, f32, at wd + 4·nb), as
// ggml's vec_dot_q4_1_q8_1.
// @ts-ignore: decorator
@inline function tileRowT(wide: bool, mn: bool, wu: usize, wd: usize, xt: usize, dt: usize, ot: usize, nb: i32): v128 {
  let wm = wd + <usize>(4 * nb);
  let acc = f32x4.splat(0);
  const ones = i16x8.splat(1);
  for (let b = 0; b < nb; b++) {
    let S: v128;
    if (ASC_FEATURE_RELAXED_SIMD && !wide) {
      const w0 = v128.load(wu), w1 = v128.load(wu, 16);
      const s0 = i32x4.dot_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xt), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xt, 16), w1)), ones);
      const s1 = i32x4.dot_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xt, 32), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xt, 48), w1)), ones);
      const s2 = i32x4.dot_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xt, 64), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xt, 80), w1)), ones);
      const s3 = i32x4.dot_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xt, 96), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xt, 112), w1)), ones);
      S = tileSum(s0, s1, s2, s3);
      if (!mn) S = i32x4.sub(S, v128.load(ot));
      wu += 32; xt += 128;
    } else {
      const w0 = v128.load(wu), w1 = v128.load(wu, 16), w2 = v128.load(wu, 32), w3 = v128.load(wu, 48);
      S = tileSum(dot32w(xt, w0, w1, w2, w3), dot32w(xt + 64, w0, w1, w2, w3), dot32w(xt + 128, w0, w1, w2, w3), dot32w(xt + 192, w0, w1, w2, w3));
      wu += 64; xt += 256;
    }
    const dx = v128.load(dt);
    acc = fma4(f32x4.convert_i32x4_s(S), f32x4.mul(dx, v128.load32_splat(wd)), acc);
    if (mn) acc = fma4(f32x4.convert_i32x4_s(v128.load(ot)), f32x4.mul(dx, v128.load32_splat(wm)), acc);
    dt += 16; wd += 4; wm += 4; ot += 16;
  }
  return acc;
}
function tileRowNarrow(wu: usize, wd: usize, xt: usize, dt: usize, ot: usize, nb: i32): v128 { return tileRowT(false, false, wu, wd, xt, dt, ot, nb); }
function tileRowWide(wu: usize, wd: usize, xt: usize, dt: usize, ot: usize, nb: i32): v128 { return tileRowT(true, false, wu, wd, xt, dt, ot, nb); }
function tileRowNarrowMin(wu: usize, wd: usize, xt: usize, dt: usize, ot: usize, nb: i32): v128 { return tileRowT(false, true, wu, wd, xt, dt, ot, nb); }
function tileRowWideMin(wu: usize, wd: usize, xt: usize, dt: usize, ot: usize, nb: i32): v128 { return tileRowT(true, true, wu, wd, xt, dt, ot, nb); }

// out (M×N) = x · Wᵀ for a Q4_0, Q5_0 or Q4_1 (t) W, as described above. Q5_0's quants (0…31, the
// fifth bit from qh, offset 16) are unpacked the same way, its offsets 16·Σ qx; Q4_1's nibbles have
// no offset (both forms take them as stored) and its mins m come in through Σ qx (tileRowT's mn).
function intPrefill(t: i32, out: usize, x: usize, w: usize, M: i32, N: i32, K: i32, ldx: i32, ldo: i32, beta: i32, tid: i32, nt: i32): void {
  const nb = K >> 5, bytes = typeBytes(t), rowBytes = <usize>(nb * bytes), mn = t == T_Q4_1, shift = mn ? 0 : offsetShift(t);
  const wide = !ASC_FEATURE_RELAXED_SIMD;
  const qb = wide ? 64 : 32;                                 // bytes of one block's weights or of one row's quants
  const wBytes = (qb + 8) * nb;                              // one unpacked weight row, its scales (and Q4_1's mins)
  const rowTmp = 2 * K + 4 * nb;                             // one row of x rounded (quantRow's i16 and dx)
  const tileBytes = (4 * qb + 32) * nb;                      // quants, dx and offsets of 4 rows
  const base = scratch() + INTP_OFF;
  const wu = base, wd = wu + <usize>(qb * nb), tmp = wu + <usize>wBytes, tiles = tmp + <usize>rowTmp;
  const mc = tileChunk(M, wBytes + rowTmp, tileBytes);
  const n0 = shareStart(N, tid, nt, 1), n1 = shareStart(N, tid + 1, nt, 1);
  const mask = i8x16.splat(0x0f), o = i8x16.splat(t == T_Q4_0 ? 8 : t == T_Q5_0 ? 16 : 0), zero = i8x16.splat(0), ones = i16x8.splat(1);
  for (let m0 = 0; m0 < M; m0 += mc) {
    const mr = min(mc, M - m0), nTiles = (mr + 3) >> 2;
    // x's rows m0 … m0 + mr − 1 rounded and laid out in tiles (rows past mr: zeros).
    for (let r = 0; r < nTiles << 2; r++) {
      const xt = tiles + <usize>((r >> 2) * tileBytes), lane = r & 3;
      const dt = xt + <usize>(4 * qb * nb), ot = dt + <usize>(16 * nb);
      if (r < mr) quantRow(x + off((m0 + r) * ldx), tmp, tmp + <usize>(2 * K), nb);
      for (let b = 0; b < nb; b++) {
        const q = tmp + <usize>(64 * b);
        store<f32>(dt + <usize>(16 * b + 4 * lane), r < mr ? load<f32>(tmp + <usize>(2 * K + 4 * b)) : 0);
        if (!wide) {
          const a = r < mr ? i8x16.narrow_i16x8_s(v128.load(q), v128.load(q, 16)) : zero;
          const c = r < mr ? i8x16.narrow_i16x8_s(v128.load(q, 32), v128.load(q, 48)) : zero;
          v128.store(xt + <usize>(128 * b + 32 * lane), a);
          v128.store(xt + <usize>(128 * b + 32 * lane + 16), c);
          const sum = i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.extadd_pairwise_i8x16_s(a), i16x8.extadd_pairwise_i8x16_s(c)));
          store<i32>(ot + <usize>(16 * b + 4 * lane), lanesSum(sum) << shift);
        } else {
          copyOrZero(xt + <usize>(256 * b + 64 * lane), q, 64, r < mr);
          if (mn) {
            const sum = i32x4.add(i32x4.add(i32x4.dot_i16x8_s(v128.load(q), ones), i32x4.dot_i16x8_s(v128.load(q, 16), ones)),
              i32x4.add(i32x4.dot_i16x8_s(v128.load(q, 32), ones), i32x4.dot_i16x8_s(v128.load(q, 48), ones)));
            store<i32>(ot + <usize>(16 * b + 4 * lane), r < mr ? lanesSum(sum) : 0);
          }
        }
      }
    }
    for (let n = n0; n < n1; n++) {
      // The weight row unpacked (the low nibbles are values 0…15 of a block, the high ones 16…31).
      const p = w + <usize>n * rowBytes;
      for (let b = 0; b < nb; b++) {
        const pb = p + <usize>(bytes * b), ub = wu + <usize>(qb * b);
        store<f32>(wd + <usize>(4 * b), half(pb));
        if (mn) store<f32>(wd + <usize>(4 * (nb + b)), half(pb + 2));
        let lo: v128, hi: v128;
        if (t == T_Q4_0) { const v = v128.load(pb, 2); lo = v128.and(v, mask); hi = hi4(v, mask); }
        else if (t == T_Q4_1) { const v = v128.load(pb, 4); lo = v128.and(v, mask); hi = hi4(v, mask); }
        else {
          const v = v128.load(pb, 6), qh = load<u32>(pb, 2);
          lo = v128.or(v128.and(v, mask), bits16(qh & 0xffff)); hi = v128.or(hi4(v, mask), bits16(qh >> 16));
        }
        if (!wide) { v128.store(ub, lo); v128.store(ub, hi, 16); }
        else {
          const l = i8x16.sub(lo, o), h = i8x16.sub(hi, o);
          v128.store(ub, i16x8.extend_low_i8x16_s(l)); v128.store(ub, i16x8.extend_high_i8x16_s(l), 16);
          v128.store(ub, i16x8.extend_low_i8x16_s(h), 32); v128.store(ub, i16x8.extend_high_i8x16_s(h), 48);
        }
      }
      for (let ti = 0; ti < nTiles; ti++) {
        const xt = tiles + <usize>(ti * tileBytes), dt = xt + <usize>(4 * qb * nb), ot = dt + <usize>(16 * nb);
        const v = mn ? (wide ? tileRowWideMin(wu, wd, xt, dt, ot, nb) : tileRowNarrowMin(wu, wd, xt, dt, ot, nb))
          : (wide ? tileRowWide(wu, wd, xt, dt, ot, nb) : tileRowNarrow(wu, wd, xt, dt, ot, nb));
        putTile(out + off(n), v, m0 + 4 * ti, m0 + mr, ldo, beta);
      }
    }
  }
}

// ---- Q4_K (and Q5_K) prefill: the same integer GEMM on super-blocks --------------------------
// As intPrefill, with x rounded to Q8_K blocks (quantRowK, one scale dx per 256) and, per
// super-block of a weight row, its 8 sub-blocks' nibbles unpacked in x's order, their 6-bit
// scales sc_j as i16 and their mins m_j as pairs: the 4 rows' Σ_j sc_j·Σ q·qx (i32, exact) are
// transposed into one vector, the 4 rows' Σ_j m_j·Σ qx come from one i16 dot per pair of
// sub-blocks (the sums X_j of 4 rows laid out pair by pair), and f32 adds d·dx·A − dmin·dx·B
// super-block after super-block. `narrow` (relaxed build): int8 x against the nibbles as bytes;
// `wide` (SIMD128 build): i16 x against i16 nibbles, times the scale.
// @ts-ignore: decorator
@inline function tileRowKT(wide: bool, wu: usize, xt: usize, nb: i32): v128 {
  // per super-block of the unpacked row: nibbles (narrow 256, wide 512 bytes), 8 scales (i16,
  // 16 bytes), 4 mins pairs (64 bytes), d and dmin (f32); of the tile: quants (narrow 1024, wide
  // 2048 bytes), dx (f32x4), the pairs of X (64 bytes)
  const qw = wide ? 512 : 256, wsb = qw + 88, xsb = 4 * qw + 80;
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const w = wu + <usize>(b * wsb), x = xt + <usize>(b * xsb), sc = w + <usize>qw, mn = sc + 16, dd = mn + 64;
    let a0 = i32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
    for (let j = 0; j < 8; j++) {
      if (ASC_FEATURE_RELAXED_SIMD && !wide) {
        const s = v128.load16_splat(sc + <usize>(2 * j));
        const w0 = v128.load(w + <usize>(32 * j)), w1 = v128.load(w + <usize>(32 * j), 16), xj = x + <usize>(32 * j);
        a0 = i32x4.add(a0, i32x4.dot_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xj), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xj, 16), w1)), s));
        a1 = i32x4.add(a1, i32x4.dot_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xj, 256), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xj, 272), w1)), s));
        a2 = i32x4.add(a2, i32x4.dot_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xj, 512), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xj, 528), w1)), s));
        a3 = i32x4.add(a3, i32x4.dot_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xj, 768), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xj, 784), w1)), s));
      } else {
        const s = i32x4.splat(<i32>load<i16>(sc + <usize>(2 * j)));
        const wj = w + <usize>(64 * j), xj = x + <usize>(64 * j);
        const w0 = v128.load(wj), w1 = v128.load(wj, 16), w2 = v128.load(wj, 32), w3 = v128.load(wj, 48);
        a0 = i32x4.add(a0, i32x4.mul(dot32w(xj, w0, w1, w2, w3), s));
        a1 = i32x4.add(a1, i32x4.mul(dot32w(xj + 512, w0, w1, w2, w3), s));
        a2 = i32x4.add(a2, i32x4.mul(dot32w(xj + 1024, w0, w1, w2, w3), s));
        a3 = i32x4.add(a3, i32x4.mul(dot32w(xj + 1536, w0, w1, w2, w3), s));
      }
    }
    const A = tileSum(a0, a1, a2, a3);
    const xs = x + <usize>(4 * qw + 16);
    const B = i32x4.add(i32x4.add(i32x4.dot_i16x8_s(v128.load(xs), v128.load(mn)), i32x4.dot_i16x8_s(v128.load(xs, 16), v128.load(mn, 16))),
      i32x4.add(i32x4.dot_i16x8_s(v128.load(xs, 32), v128.load(mn, 32)), i32x4.dot_i16x8_s(v128.load(xs, 48), v128.load(mn, 48))));
    const dx = v128.load(x + <usize>(4 * qw));
    acc = fma4(f32x4.convert_i32x4_s(A), f32x4.mul(dx, v128.load32_splat(dd)), acc);
    acc = fma4(f32x4.convert_i32x4_s(B), f32x4.neg(f32x4.mul(dx, v128.load32_splat(dd + 4))), acc);
  }
  return acc;
}
function tileRowKNarrow(wu: usize, xt: usize, nb: i32): v128 { return tileRowKT(false, wu, xt, nb); }
function tileRowKWide(wu: usize, xt: usize, nb: i32): v128 { return tileRowKT(true, wu, xt, nb); }

// out (M×N) = x · Wᵀ for a Q4_K or Q5_K (t) W, as described above. Q5_K's quants (0…31, the fifth
// bit from qh) are unpacked the same way; its i16 dots stay below 2 · 2 · 31 · 127.
function intPrefillK(t: i32, out: usize, x: usize, w: usize, M: i32, N: i32, K: i32, ldx: i32, ldo: i32, beta: i32, tid: i32, nt: i32): void {
  const bytes = typeBytes(t), qsOff = t == T_Q5_K ? 48 : 16;
  const nb = K >> 8, rowBytes = <usize>(nb * bytes);
  const wide = !ASC_FEATURE_RELAXED_SIMD;
  const qw = wide ? 512 : 256, wsb = qw + 88, xsb = 4 * qw + 80;
  const wBytes = wsb * nb, rowTmp = 2 * K + 4 * nb + 32 * nb, tileBytes = xsb * nb;
  const base = scratch() + INTP_OFF;
  const wu = base, tmp = wu + <usize>wBytes, tiles = tmp + <usize>rowTmp;
  const mc = tileChunk(M, wBytes + rowTmp, tileBytes);
  const n0 = shareStart(N, tid, nt, 1), n1 = shareStart(N, tid + 1, nt, 1);
  const mask = i8x16.splat(0x0f), zero = i8x16.splat(0), one = i8x16.splat(1);
  const xq = tmp, ds = tmp + <usize>(2 * K), ss = ds + <usize>(4 * nb);
  for (let m0 = 0; m0 < M; m0 += mc) {
    const mr = min(mc, M - m0), nTiles = (mr + 3) >> 2;
    for (let r = 0; r < nTiles << 2; r++) {
      const xt = tiles + <usize>((r >> 2) * tileBytes), lane = r & 3;
      if (r < mr) { quantRowK(x + off((m0 + r) * ldx), xq, ds, nb); subSums(xq, ss, K >> 5); }
      for (let b = 0; b < nb; b++) {
        const xb = xt + <usize>(b * xsb), q = xq + <usize>(512 * b);
        store<f32>(xb + <usize>(4 * qw + 4 * lane), r < mr ? load<f32>(ds + <usize>(4 * b)) : 0);
        // X_j pairs: at pair p, lanes (2·lane, 2·lane + 1) = X_2p, X_2p+1 of this row
        for (let p = 0; p < 4; p++) for (let h = 0; h < 2; h++) {
          store<i16>(xb + <usize>(4 * qw + 16 + 16 * p + 4 * lane + 2 * h), r < mr ? <i16>load<i32>(ss + <usize>(32 * b + 8 * p + 4 * h)) : 0);
        }
        if (!wide) {
          for (let c = 0; c < 256; c += 16) v128.store(xb + <usize>(256 * lane + c), r < mr ? i8x16.narrow_i16x8_s(v128.load(q + <usize>(2 * c)), v128.load(q + <usize>(2 * c), 16)) : zero);
        } else {
          copyOrZero(xb + <usize>(512 * lane), q, 512, r < mr);
        }
      }
    }
    for (let n = n0; n < n1; n++) {
      const p = w + <usize>n * rowBytes;
      for (let b = 0; b < nb; b++) {
        const pb = p + <usize>(bytes * b), ub = wu + <usize>(b * wsb);
        const scs = scalesK(pb + 4), mns = minsK(pb + 4);
        let hA = zero, hB = zero;
        if (t == T_Q5_K) { hA = v128.load(pb, 16); hB = v128.load(pb, 32); }
        for (let g = 0; g < 4; g++) {
          const v0 = v128.load(pb + <usize>(qsOff + 32 * g)), v1 = v128.load(pb + <usize>(qsOff + 32 * g), 16);
          const lo0 = kQuants(t, v0, hA, 2 * g, false, mask, one), lo1 = kQuants(t, v1, hB, 2 * g, false, mask, one);
          const hi0 = kQuants(t, v0, hA, 2 * g + 1, true, mask, one), hi1 = kQuants(t, v1, hB, 2 * g + 1, true, mask, one);
          if (!wide) {
            v128.store(ub + <usize>(64 * g), lo0); v128.store(ub + <usize>(64 * g), lo1, 16);
            v128.store(ub + <usize>(64 * g), hi0, 32); v128.store(ub + <usize>(64 * g), hi1, 48);
          } else {
            const u = ub + <usize>(128 * g);
            v128.store(u, i16x8.extend_low_i8x16_u(lo0)); v128.store(u, i16x8.extend_high_i8x16_u(lo0), 16);
            v128.store(u, i16x8.extend_low_i8x16_u(lo1), 32); v128.store(u, i16x8.extend_high_i8x16_u(lo1), 48);
            v128.store(u, i16x8.extend_low_i8x16_u(hi0), 64); v128.store(u, i16x8.extend_high_i8x16_u(hi0), 80);
            v128.store(u, i16x8.extend_low_i8x16_u(hi1), 96); v128.store(u, i16x8.extend_high_i8x16_u(hi1), 112);
          }
        }
        const sc = ub + <usize>qw, mn = sc + 16;
        for (let j = 0; j < 8; j++) store<i16>(sc + <usize>(2 * j), <i16>((scs >> (<u64>(8 * j))) & 0xff));
        for (let q = 0; q < 4; q++) for (let r = 0; r < 4; r++) {
          store<i16>(mn + <usize>(16 * q + 4 * r), <i16>((mns >> (<u64>(16 * q))) & 0xff));
          store<i16>(mn + <usize>(16 * q + 4 * r + 2), <i16>((mns >> (<u64>(16 * q + 8))) & 0xff));
        }
        store<f32>(mn + 64, half(pb));
        store<f32>(mn + 68, half(pb + 2));
      }
      for (let ti = 0; ti < nTiles; ti++) {
        const xt = tiles + <usize>(ti * tileBytes);
        putTile(out + off(n), wide ? tileRowKWide(wu, xt, nb) : tileRowKNarrow(wu, xt, nb), m0 + 4 * ti, m0 + mr, ldo, beta);
      }
    }
  }
}

// ---- Q6_K prefill: the same integer GEMM on Q6_K super-blocks --------------------------------
// As intPrefillK, x rounded to Q8_K blocks (quantRowK); per super-block of a weight row its 16
// chunks of 16 six-bit quants u (0…63; value d·sc_j·(u − 32)) and their int8 scales sc_j, unpacked
// once; per (row of x, super-block) the exact Σ_j sc_j·Σ (u − 32)·qx, then d·dx in f32 as Q4_K's
// (ggml's vec_dot_q6_K_q8_K). Two forms:
//  - narrow (relaxed build): u as bytes, the unsigned operand of the 8-bit dot against int8 qx. The
//    two chunks of each 32 values are interleaved by 8 bytes (the first vector holds values 0–7 of
//    chunk 2p and of chunk 2p + 1, the second values 8–15 of each), in x's tile the same way: the
//    sum of the two vectors' i16 dots (each lane at most 2 · 2 · 63 · 127) holds chunk 2p in lanes
//    0–3 and chunk 2p + 1 in 4–7, and one i32x4.dot_i16x8_s against (sc_2p ×4, sc_2p+1 ×4) scales
//    them and adds pairs. The offset comes off as Σ_j (−32·sc_j)·X_j, X_j = Σ qx over chunk j (i16
//    in the tile): two i16 dots per row and super-block.
//  - wide (SIMD128 build): the weights as i16 sc_j·(u − 32) (|·| ≤ 4096) against i16 qx: 32
//    i32x4.dot_i16x8_s per row and super-block (lanes ≤ 2 · 4096 · 127), no offset.
// @ts-ignore: decorator
@inline function tileRow6T(wide: bool, wu: usize, xt: usize, nb: i32): v128 {
  // per super-block of the unpacked row: narrow: quants (256 bytes), 8 scale vectors (i16, 128),
  // −32·sc_j (i16, 32), d (f32, 16 with padding); wide: weights (i16, 512), d (16). Of the tile:
  // narrow: 4 rows' int8 qx (1024), their X_j (i16, 128), dx (f32x4); wide: 4 rows' i16 qx (2048), dx.
  const wsb = wide ? 528 : 432, xsb = wide ? 2064 : 1168;
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const w = wu + <usize>(b * wsb), x = xt + <usize>(b * xsb);
    let a0 = i32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
    if (ASC_FEATURE_RELAXED_SIMD && !wide) {
      for (let p = 0; p < 8; p++) {
        const s = v128.load(w + <usize>(256 + 16 * p));
        const w0 = v128.load(w + <usize>(32 * p)), w1 = v128.load(w + <usize>(32 * p), 16), xp = x + <usize>(32 * p);
        a0 = i32x4.add(a0, i32x4.dot_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xp), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xp, 16), w1)), s));
        a1 = i32x4.add(a1, i32x4.dot_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xp, 256), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xp, 272), w1)), s));
        a2 = i32x4.add(a2, i32x4.dot_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xp, 512), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xp, 528), w1)), s));
        a3 = i32x4.add(a3, i32x4.dot_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xp, 768), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xp, 784), w1)), s));
      }
      const c0 = v128.load(w, 384), c1 = v128.load(w, 400), X = x + 1024;
      a0 = i32x4.add(a0, i32x4.add(i32x4.dot_i16x8_s(v128.load(X), c0), i32x4.dot_i16x8_s(v128.load(X, 16), c1)));
      a1 = i32x4.add(a1, i32x4.add(i32x4.dot_i16x8_s(v128.load(X, 32), c0), i32x4.dot_i16x8_s(v128.load(X, 48), c1)));
      a2 = i32x4.add(a2, i32x4.add(i32x4.dot_i16x8_s(v128.load(X, 64), c0), i32x4.dot_i16x8_s(v128.load(X, 80), c1)));
      a3 = i32x4.add(a3, i32x4.add(i32x4.dot_i16x8_s(v128.load(X, 96), c0), i32x4.dot_i16x8_s(v128.load(X, 112), c1)));
    } else {
      for (let j = 0; j < 16; j++) {
        const wj = w + <usize>(32 * j), xj = x + <usize>(32 * j);
        const w0 = v128.load(wj), w1 = v128.load(wj, 16);
        a0 = i32x4.add(a0, i32x4.add(i32x4.dot_i16x8_s(v128.load(xj), w0), i32x4.dot_i16x8_s(v128.load(xj, 16), w1)));
        a1 = i32x4.add(a1, i32x4.add(i32x4.dot_i16x8_s(v128.load(xj, 512), w0), i32x4.dot_i16x8_s(v128.load(xj, 528), w1)));
        a2 = i32x4.add(a2, i32x4.add(i32x4.dot_i16x8_s(v128.load(xj, 1024), w0), i32x4.dot_i16x8_s(v128.load(xj, 1040), w1)));
        a3 = i32x4.add(a3, i32x4.add(i32x4.dot_i16x8_s(v128.load(xj, 1536), w0), i32x4.dot_i16x8_s(v128.load(xj, 1552), w1)));
      }
    }
    const dx = v128.load(x + <usize>(wide ? 2048 : 1152));
    acc = fma4(f32x4.convert_i32x4_s(tileSum(a0, a1, a2, a3)), f32x4.mul(dx, v128.load32_splat(w + <usize>(wide ? 512 : 416))), acc);
  }
  return acc;
}
function tileRow6Narrow(wu: usize, xt: usize, nb: i32): v128 { return tileRow6T(false, wu, xt, nb); }
function tileRow6Wide(wu: usize, xt: usize, nb: i32): v128 { return tileRow6T(true, wu, xt, nb); }

// Two 16-byte vectors a, b interleaved by 8 bytes: (a's low half, b's low half) and (a's high half, b's high half).
// @ts-ignore: decorator
@inline function lows(a: v128, b: v128): v128 { return i8x16.shuffle(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23); }
// @ts-ignore: decorator
@inline function highs(a: v128, b: v128): v128 { return i8x16.shuffle(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31); }

// Chunks c and c + 1 of a Q6_K super-block unpacked at u (ua, ub their quants as stored, sc the
// address of sc_c): narrow, the interleaved bytes; wide, sc·(u − 32) as i16.
// @ts-ignore: decorator
@inline function put6(wide: bool, u: usize, ua: v128, ub: v128, sc: usize, k32: v128): void {
  if (!wide) { v128.store(u, lows(ua, ub)); v128.store(u, highs(ua, ub), 16); return; }
  const a = i8x16.sub(ua, k32), b = i8x16.sub(ub, k32);
  const sa = i16x8.splat(<i16>load<i8>(sc)), sb = i16x8.splat(<i16>load<i8>(sc, 1));
  v128.store(u, i16x8.mul(i16x8.extend_low_i8x16_s(a), sa)); v128.store(u, i16x8.mul(i16x8.extend_high_i8x16_s(a), sa), 16);
  v128.store(u, i16x8.mul(i16x8.extend_low_i8x16_s(b), sb), 32); v128.store(u, i16x8.mul(i16x8.extend_high_i8x16_s(b), sb), 48);
}

// out (M×N) = x · Wᵀ for a Q6_K W, as described above.
function intPrefill6(out: usize, x: usize, w: usize, M: i32, N: i32, K: i32, ldx: i32, ldo: i32, beta: i32, tid: i32, nt: i32): void {
  const bytes = typeBytes(T_Q6_K), nb = K >> 8, rowBytes = <usize>(nb * bytes);
  const wide = !ASC_FEATURE_RELAXED_SIMD;
  const wsb = wide ? 528 : 432, xsb = wide ? 2064 : 1168;
  const wBytes = wsb * nb, rowTmp = 2 * K + 4 * nb, tileBytes = xsb * nb;
  const base = scratch() + INTP_OFF;
  const wu = base, tmp = wu + <usize>wBytes, tiles = tmp + <usize>rowTmp;
  const mc = tileChunk(M, wBytes + rowTmp, tileBytes);
  const n0 = shareStart(N, tid, nt, 1), n1 = shareStart(N, tid + 1, nt, 1);
  const mask = i8x16.splat(0x0f), three = i8x16.splat(3), k32 = i8x16.splat(32), zero = i8x16.splat(0);
  const xq = tmp, ds = tmp + <usize>(2 * K);
  for (let m0 = 0; m0 < M; m0 += mc) {
    const mr = min(mc, M - m0), nTiles = (mr + 3) >> 2;
    // x's rows rounded and laid out in tiles of 4 (rows past mr: zeros)
    for (let r = 0; r < nTiles << 2; r++) {
      const xt = tiles + <usize>((r >> 2) * tileBytes), lane = r & 3;
      if (r < mr) quantRowK(x + off((m0 + r) * ldx), xq, ds, nb);
      for (let b = 0; b < nb; b++) {
        const xb = xt + <usize>(b * xsb), q = xq + <usize>(512 * b);
        store<f32>(xb + <usize>((wide ? 2048 : 1152) + 4 * lane), r < mr ? load<f32>(ds + <usize>(4 * b)) : 0);
        if (wide) {
          copyOrZero(xb + <usize>(512 * lane), q, 512, r < mr);
          continue;
        }
        for (let p = 0; p < 8; p++) {
          const qp = q + <usize>(64 * p);
          const a = r < mr ? i8x16.narrow_i16x8_s(v128.load(qp), v128.load(qp, 16)) : zero;
          const c = r < mr ? i8x16.narrow_i16x8_s(v128.load(qp, 32), v128.load(qp, 48)) : zero;
          v128.store(xb + <usize>(256 * lane + 32 * p), lows(a, c));
          v128.store(xb + <usize>(256 * lane + 32 * p + 16), highs(a, c));
          // X_2p, X_2p+1 (|·| ≤ 16 · 127)
          const sa = i32x4.extadd_pairwise_i16x8_s(i16x8.extadd_pairwise_i8x16_s(a)), sc = i32x4.extadd_pairwise_i16x8_s(i16x8.extadd_pairwise_i8x16_s(c));
          const X = xb + <usize>(1024 + 32 * lane + 4 * p);
          store<i16>(X, <i16>lanesSum(sa));
          store<i16>(X, <i16>lanesSum(sc), 2);
        }
      }
    }
    for (let n = n0; n < n1; n++) {
      const p = w + <usize>n * rowBytes;
      for (let b = 0; b < nb; b++) {
        const pb = p + <usize>(bytes * b), ub = wu + <usize>(b * wsb);
        for (let h = 0; h < 2; h++) {
          const ql = pb + <usize>(64 * h), qh = pb + 128 + <usize>(32 * h), sc = pb + 192 + <usize>(8 * h);
          const l0 = v128.load(ql), l1 = v128.load(ql, 16), l2 = v128.load(ql, 32), l3 = v128.load(ql, 48);
          const h0 = v128.load(qh), h1 = v128.load(qh, 16);
          // chunks 8h … 8h + 7 (values 128h + 16i …), their quants as stored
          const u = ub + <usize>((wide ? 256 : 128) * h);
          const cs = wide ? 64 : 32;
          put6(wide, u, q6Quants(l0, h0, 0, false, mask, three), q6Quants(l1, h1, 0, false, mask, three), sc, k32);
          put6(wide, u + <usize>cs, q6Quants(l2, h0, 2, false, mask, three), q6Quants(l3, h1, 2, false, mask, three), sc + 2, k32);
          put6(wide, u + <usize>(2 * cs), q6Quants(l0, h0, 4, true, mask, three), q6Quants(l1, h1, 4, true, mask, three), sc + 4, k32);
          put6(wide, u + <usize>(3 * cs), q6Quants(l2, h0, 6, true, mask, three), q6Quants(l3, h1, 6, true, mask, three), sc + 6, k32);
        }
        const d = half(pb + 208);
        if (wide) { store<f32>(ub + 512, d); continue; }
        for (let j = 0; j < 16; j++) {
          const s = <i16>load<i8>(pb + 192 + <usize>j);
          const sv = ub + <usize>(256 + 16 * (j >> 1) + 8 * (j & 1));
          store<i16>(sv, s); store<i16>(sv, s, 2); store<i16>(sv, s, 4); store<i16>(sv, s, 6);
          store<i16>(ub + <usize>(384 + 2 * j), <i16>(-32 * <i32>s));
        }
        store<f32>(ub + 416, d);
      }
      for (let ti = 0; ti < nTiles; ti++) {
        const xt = tiles + <usize>(ti * tileBytes);
        putTile(out + off(n), wide ? tileRow6Wide(wu, xt, nb) : tileRow6Narrow(wu, xt, nb), m0 + 4 * ti, m0 + mr, ldo, beta);
      }
    }
  }
}

// ---- F16 (ggml id 1), BF16 (30): 16-bit weights, any row length ---------------------------
// Contracts: quant_matmul, quant_rows; reference ../../ref/quant.ts (halfMatmul). The weights are
// widened to f32 exactly and x stays f32 (llama.cpp instead rounds x to f16/bf16 for these types):
//  - M < PANEL_M (decoding): each weight row is streamed once, 16 values at a time, widened in
//    registers and FMA'd into four f32x4 accumulators per row of x, two rows of x at a time
//    (rowsDotHalf: each row's sum in the one-row order); the K % 16 tail in scalar code.
//  - M ≥ PANEL_M (prefill): panels of weight rows widened into scratch, then the blocked GEMM.
// F16 → f32 in SIMD (wideLo/wideHi): exponent and mantissa moved up 13 bits into an f32, with the
// sign, times 2^112 (exact for normal and subnormal halves); BF16 → f32: a zero word below. The
// decoding path assumes finite weights (loaders keep an F16 matrix 16-bit only when every value is finite; an inf/NaN
// half would read as a large finite number there); the widening into panels and rows
// (halfRow) maps inf and NaN exactly.
const T_F16: i32 = 1, T_BF16: i32 = 30, T_Q8_0: i32 = 8;

// Lanes 0–3 (low) or 4–7 (high) of 8 halves/bf16s in v as f32x4. BF16: each value with a zero
// 16-bit word below it (punpcklwd/punpckhwd). F16 (finite): the f32 bits sign·2^31 + (h & 0x7fff)·2^13
// built 16 bits at a time — the high word h >> 3 (arithmetic) with bits 12–14 (copies of the sign)
// masked off, the low word h << 13 — interleaved, then times 2^112, which rebiases the exponent
// (and normalises subnormal halves) exactly, keeping the sign.
// @ts-ignore: decorator
@inline function wideLo(v: v128, bf: bool): v128 {
  if (bf) return i8x16.shuffle(i8x16.splat(0), v, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
  return f32x4.mul(i8x16.shuffle(i16x8.shl(v, 13), v128.and(i16x8.shr_s(v, 3), i16x8.splat(<i16>0x8fff)), 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23), f32x4.splat(reinterpret<f32>(<u32>0x77800000)));
}
// @ts-ignore: decorator
@inline function wideHi(v: v128, bf: bool): v128 {
  if (bf) return i8x16.shuffle(i8x16.splat(0), v, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
  return f32x4.mul(i8x16.shuffle(i16x8.shl(v, 13), v128.and(i16x8.shr_s(v, 3), i16x8.splat(<i16>0x8fff)), 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31), f32x4.splat(reinterpret<f32>(<u32>0x77800000)));
}
// Four sign-extended half bit patterns → f32, ±inf and NaN (exponent 31) included, exactly (payload
// kept, as a C cast): the finite rule above, the special lanes built directly.
// @ts-ignore: decorator
@inline function halfToF32x4Exact(e: v128): v128 {
  const em = v128.and(e, i32x4.splat(0x7fff));
  const special = v128.or(i32x4.splat(0x7f800000), i32x4.shl(v128.and(em, i32x4.splat(0x3ff)), 13));
  const mag = v128.bitselect(special, f32x4.mul(i32x4.shl(em, 13), f32x4.splat(reinterpret<f32>(<u32>0x77800000))), i32x4.ge_s(em, i32x4.splat(0x7c00)));
  return v128.or(mag, v128.and(e, i32x4.splat(0x80000000)));
}
// @ts-ignore: decorator
@inline function wide1(h: u32, bf: bool): f32 {
  return bf ? reinterpret<f32>(h << 16) : h2f(h);
}

// dst (K f32) = the 16-bit row at p widened exactly (inf and NaN included).
function halfRow(bf: bool, dst: usize, p: usize, K: i32): void {
  let k = 0;
  for (; k + 8 <= K; k += 8) {
    const v = v128.load(p + <usize>(2 * k));
    if (bf) {
      v128.store(dst + off(k), i32x4.shl(i32x4.extend_low_i16x8_u(v), 16));
      v128.store(dst + off(k), i32x4.shl(i32x4.extend_high_i16x8_u(v), 16), 16);
    } else {
      v128.store(dst + off(k), halfToF32x4Exact(i32x4.extend_low_i16x8_s(v)));
      v128.store(dst + off(k), halfToF32x4Exact(i32x4.extend_high_i16x8_s(v)), 16);
    }
  }
  for (; k < K; k++) store<f32>(dst + off(k), wide1(<u32>load<u16>(p + <usize>(2 * k)), bf));
}

// R (1 or 2, a constant after inlining) rows of x (at x + r·ldxb) against one 16-bit weight row at
// p: results at o + r·ldob. Every row's sum is taken in the same order whatever R (four f32x4
// chains over 16 values a step, their lanes added as rowSum does, then the tail), so a row's result
// is bit for bit the same decoded alone or beside another (speculative verification relies on it).
// @ts-ignore: decorator
@inline function rowsDotHalf(bf: bool, R: i32, x: usize, ldxb: usize, p: usize, K: i32, o: usize, ldob: usize, beta: i32): void {
  const x1 = x + ldxb;
  let a0 = f32x4.splat(0), b0 = f32x4.splat(0), c0 = f32x4.splat(0), d0 = f32x4.splat(0);
  let a1 = f32x4.splat(0), b1 = f32x4.splat(0), c1 = f32x4.splat(0), d1 = f32x4.splat(0);
  let k = 0;
  for (; k + 16 <= K; k += 16) {
    const va = v128.load(p), vb = v128.load(p, 16);
    const w0 = wideLo(va, bf), w1 = wideHi(va, bf), w2 = wideLo(vb, bf), w3 = wideHi(vb, bf);
    const xo = off(k);
    a0 = fma4(w0, v128.load(x + xo), a0); b0 = fma4(w1, v128.load(x + xo, 16), b0);
    c0 = fma4(w2, v128.load(x + xo, 32), c0); d0 = fma4(w3, v128.load(x + xo, 48), d0);
    if (R == 2) {
      a1 = fma4(w0, v128.load(x1 + xo), a1); b1 = fma4(w1, v128.load(x1 + xo, 16), b1);
      c1 = fma4(w2, v128.load(x1 + xo, 32), c1); d1 = fma4(w3, v128.load(x1 + xo, 48), d1);
    }
    p += 32;
  }
  let s0 = rowSum(f32x4.add(f32x4.add(a0, b0), f32x4.add(c0, d0))), s1: f32 = 0;
  if (R == 2) s1 = rowSum(f32x4.add(f32x4.add(a1, b1), f32x4.add(c1, d1)));
  for (; k < K; k++) {
    const w = wide1(<u32>load<u16>(p), bf);
    s0 += w * load<f32>(x + off(k));
    if (R == 2) s1 += w * load<f32>(x1 + off(k));
    p += 2;
  }
  put(o, s0, beta);
  if (R == 2) put(o + ldob, s1, beta);
}

// One copy per type and row count (bf and R constants after inlining).
function dotF16x1(x: usize, l: usize, p: usize, K: i32, o: usize, lo: usize, beta: i32): void { rowsDotHalf(false, 1, x, l, p, K, o, lo, beta); }
function dotF16x2(x: usize, l: usize, p: usize, K: i32, o: usize, lo: usize, beta: i32): void { rowsDotHalf(false, 2, x, l, p, K, o, lo, beta); }
function dotBF16x1(x: usize, l: usize, p: usize, K: i32, o: usize, lo: usize, beta: i32): void { rowsDotHalf(true, 1, x, l, p, K, o, lo, beta); }
function dotBF16x2(x: usize, l: usize, p: usize, K: i32, o: usize, lo: usize, beta: i32): void { rowsDotHalf(true, 2, x, l, p, K, o, lo, beta); }

function halfMatmul(bf: bool, out: usize, x: usize, w: usize, M: i32, N: i32, K: i32, ldx: i32, ldo: i32, beta: i32, tid: i32, nt: i32): void {
  if (panelMatmul(bf ? T_BF16 : T_F16, out, x, w, M, N, K, ldx, ldo, beta, tid, nt)) return;
  const rowBytes = <usize>(2 * K);
  const n0 = shareStart(N, tid, nt, 1), n1 = shareStart(N, tid + 1, nt, 1);
  const lx = off(ldx), lo = off(ldo);
  for (let n = n0; n < n1; n++) {
    const row = w + <usize>n * rowBytes;
    let m = 0;
    for (; m + 2 <= M; m += 2) {
      if (bf) dotBF16x2(x + <usize>m * lx, lx, row, K, out + off(m * ldo + n), lo, beta);
      else dotF16x2(x + <usize>m * lx, lx, row, K, out + off(m * ldo + n), lo, beta);
    }
    if (m + 1 == M) {
      if (bf) dotBF16x1(x + <usize>m * lx, lx, row, K, out + off(m * ldo + n), lo, beta);
      else dotF16x1(x + <usize>m * lx, lx, row, K, out + off(m * ldo + n), lo, beta);
    }
  }
}

// ---- quantising f32 to Q8_0 (contract: quantize_q8_0 in ../../kernels.ts) -----------------------

// The f16 bits of a finite or infinite f32 ≥ 0 (or NaN), rounded to nearest even: io/half.ts's
// f32ToF16Bits.
// @ts-ignore: decorator
@inline function f32ToHalfBits(x: f32): u32 {
  const b = reinterpret<u32>(x);
  const sign = (b >>> 16) & 0x8000, ex = <i32>((b >>> 23) & 0xff), mant = b & 0x7fffff;
  if (ex == 0xff) return mant != 0 ? sign | 0x7e00 | (mant >>> 13) : sign | 0x7c00;
  const e = ex - 112;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const full = mant | 0x800000, shift = <u32>(14 - e);
    let r = full >>> shift;
    const rem = full & ((<u32>1 << shift) - 1), half = <u32>1 << (shift - 1);
    if (rem > half || (rem == half && (r & 1) != 0)) r++;
    return sign | r;
  }
  let r = (<u32>e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (r & 1) != 0)) r++;
  return sign | r;
}

// roundf of four f32 (halfway cases away from zero) as i32: the truncation plus one step away from
// zero where the dropped fraction (exact in f32) is at least a half; NaN gives 0 (trunc_sat).
// @ts-ignore: decorator
@inline function roundAway(p: v128): v128 {
  const t = f32x4.trunc(p);
  const up = f32x4.ge(f32x4.abs(f32x4.sub(p, t)), f32x4.splat(0.5));
  const step = v128.or(v128.and(p, i32x4.splat(0x80000000)), f32x4.splat(1)); // ±1, p's sign
  return i32x4.trunc_sat_f32x4_s(f32x4.add(t, v128.and(up, step)));
}

// The 32 values at src times id, rounded, as 32 int8 at dst.
// @ts-ignore: decorator
@inline function storeRounded(dst: usize, src: usize, id: v128): void {
  const a = roundAway(f32x4.mul(v128.load(src), id)), b = roundAway(f32x4.mul(v128.load(src, 16), id));
  const c = roundAway(f32x4.mul(v128.load(src, 32), id)), d = roundAway(f32x4.mul(v128.load(src, 48), id));
  v128.store(dst, i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(a, b), i16x8.narrow_i32x4_s(c, d)));
}

export function quantize_q8_0(out: usize, x: usize, nb: i32, tid: i32, nt: i32): void {
  const b0 = shareStart(nb, tid, nt, 1), b1 = shareStart(nb, tid + 1, nt, 1);
  for (let b = b0; b < b1; b++) {
    const src = x + <usize>b * 128, dst = out + <usize>b * QBYTES;
    // amax as Math.max(0, |x0|, …): NaN spreads (f32x4.max propagates it)
    let m = f32x4.splat(0);
    for (let j = 0; j < 8; j++) m = f32x4.max(m, f32x4.abs(v128.load(src + (<usize>j << 4))));
    m = f32x4.max(m, v128.shuffle<f32>(m, m, 2, 3, 0, 1));
    const amax = max<f32>(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1));
    const d: f32 = amax / 127;
    const id: f32 = d != 0 ? <f32>1 / d : 0;
    store<u16>(dst, <u16>f32ToHalfBits(d));
    const idv = f32x4.splat(id);
    storeRounded(dst + 2, src, idv);
    storeRounded(dst + 18, src + 64, idv);
  }
}

// ---- quantising f32 to Q4_0, Q4_1, Q5_0, Q4_K, Q5_K, Q6_K (contract: quantize_blocks in ../../kernels.ts)
// Step by step io/quantize.ts's quantisers (ggml's quantize_row_<type>_ref): every operation in
// f32 as they round each one with Math.fround; their NaNs kept where JavaScript keeps them (a
// clamp of NaN is NaN, a NaN sum stays NaN) and stored as 0 where a typed array stores them.

// A value as a typed-array store or an integer operator sees it (ToInt32 of an integral f32):
// NaN, ±inf and magnitudes past 2^63 (multiples of 2^32 in f32) give 0.
// @ts-ignore: decorator
@inline function toInt(v: f32): i32 { return v != v || abs<f32>(v) >= <f32>9.2e18 ? 0 : <i32><i64>v; }
// @ts-ignore: decorator
@inline function clampf(v: f32, lo: f32, hi: f32): f32 { return max<f32>(lo, min<f32>(hi, v)); }
// JavaScript's `!d`: zero or NaN.
// @ts-ignore: decorator
@inline function falsy(d: f32): bool { return d == 0 || d != d; }
// @ts-ignore: decorator
@inline function storeHalf(p: usize, d: f32): void { store<u16>(p, <u16>f32ToHalfBits(d)); }

// Q4_0 (min 15, offset 8.5, 4 bits) and Q5_0 (min 31, offset 16.5, the fifth bits in qh).
function quantBlock40(t: i32, dst: usize, src: usize): void {
  let amax: f32 = 0, mx: f32 = 0;
  for (let j = 0; j < 32; j++) {
    const v = load<f32>(src + (<usize>j << 2));
    if (amax < abs<f32>(v)) { amax = abs<f32>(v); mx = v; }
  }
  const five = t == T_Q5_0, d: f32 = mx / (five ? <f32>-16 : <f32>-8), id: f32 = falsy(d) ? 0 : <f32>1 / d;
  const off: f32 = five ? 16.5 : 8.5, top: f32 = five ? 31 : 15, qs = dst + (five ? 6 : 2);
  storeHalf(dst, d);
  let qh: u32 = 0;
  for (let j = 0; j < 16; j++) {
    const q0 = toInt(min<f32>(top, trunc<f32>(load<f32>(src + (<usize>j << 2)) * id + off)));
    const q1 = toInt(min<f32>(top, trunc<f32>(load<f32>(src + (<usize>(j + 16) << 2)) * id + off)));
    store<u8>(qs + <usize>j, <u8>((q0 & 15) | ((q1 & 15) << 4)));
    qh |= <u32>(((q0 >> 4) << j) | ((q1 >> 4) << (j + 16)));
  }
  if (five) store<u32>(dst + 2, qh);
}

function quantBlock41(dst: usize, src: usize): void {
  let mn: f32 = Infinity, mx: f32 = -Infinity;
  for (let j = 0; j < 32; j++) {
    const v = load<f32>(src + (<usize>j << 2));
    if (v < mn) mn = v;
    if (v > mx) mx = v;
  }
  const d: f32 = (mx - mn) / 15, id: f32 = falsy(d) ? 0 : <f32>1 / d;
  storeHalf(dst, d);
  storeHalf(dst + 2, mn);
  for (let j = 0; j < 16; j++) {
    const q0 = toInt(min<f32>(15, trunc<f32>((load<f32>(src + (<usize>j << 2)) - mn) * id + 0.5)));
    const q1 = toInt(min<f32>(15, trunc<f32>((load<f32>(src + (<usize>(j + 16) << 2)) - mn) * id + 0.5)));
    store<u8>(dst + 4 + <usize>j, <u8>((q0 & 15) | ((q1 & 15) << 4)));
  }
}

// Four sub-blocks at once, one in each lane of a v128: each lane runs the scalar quantiser's
// operations in its order (lane-wise f32 arithmetic, min/max, nearest and comparisons are the
// scalar instructions' own), and where the scalar code branches, each lane keeps what its branch
// would have computed (bitselect). xT, wT: n v128 of the sub-blocks' values and weights, value i
// of the four in lanes 0…3 (see transpose4).

// @ts-ignore: decorator
@inline function sel(a: v128, b: v128, m: v128): v128 { return v128.bitselect(a, b, m); }
// @ts-ignore: decorator
@inline function clamp4(v: v128, lo: v128, hi: v128): v128 { return f32x4.max(lo, f32x4.min(hi, v)); }
// toInt of an integral value in i32's range, or NaN (0): the level stored as a byte.
// @ts-ignore: decorator
@inline function toInt4(v: v128): v128 { return i32x4.trunc_sat_f32x4_s(v); }
// The same level as an f32 (NaN → 0) for an integral value or NaN: v with its NaN lanes zeroed.
// @ts-ignore: decorator
@inline function level4(v: v128): v128 { return v128.and(v, f32x4.eq(v, v)); }

// The n values of four sub-blocks (each `stride` bytes after the last) into n v128 at dst.
function transpose4(dst: usize, src: usize, n: i32, stride: usize): void {
  for (let i = 0; i < n; i++) {
    const p = src + (<usize>i << 2);
    let v = f32x4.splat(load<f32>(p));
    v = f32x4.replace_lane(v, 1, load<f32>(p + stride));
    v = f32x4.replace_lane(v, 2, load<f32>(p + 2 * stride));
    v = f32x4.replace_lane(v, 3, load<f32>(p + 3 * stride));
    v128.store(dst + (<usize>i << 4), v);
  }
}

// The levels of four sub-blocks (n v128 of integral f32 at lt) as bytes: sub-block k's n bytes at L + k·n.
function untranspose4(L: usize, lt: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const v = toInt4(v128.load(lt + (<usize>i << 4)));
    store<u8>(L + <usize>i, <u8>i32x4.extract_lane(v, 0));
    store<u8>(L + <usize>(n + i), <u8>i32x4.extract_lane(v, 1));
    store<u8>(L + <usize>(2 * n + i), <u8>i32x4.extract_lane(v, 2));
    store<u8>(L + <usize>(3 * n + i), <u8>i32x4.extract_lane(v, 3));
  }
}

// make_qkx2_quants for four sub-blocks of 32 values (xT, wT): levels (integral f32) into lt, the scales
// returned and the mins (negated, as ggml returns them) stored at minOut; at is 512 bytes of scratch.
function makeQkx2x4(nmax: f32, xT: usize, wT: usize, lt: usize, at: usize, rmin: f32, rdelta: f32, nstep: i32, minOut: usize): v128 {
  let mn = v128.load(xT), mx = mn, sumW = v128.load(wT), sumX = f32x4.mul(sumW, mn);
  for (let i = 1; i < 32; i++) {
    const v = v128.load(xT + (<usize>i << 4)), wi = v128.load(wT + (<usize>i << 4));
    mn = sel(v, mn, f32x4.lt(v, mn));
    mx = sel(v, mx, f32x4.gt(v, mx));
    sumW = f32x4.add(sumW, wi);
    sumX = f32x4.add(sumX, f32x4.mul(wi, v));
  }
  const zero = f32x4.splat(0), top = f32x4.splat(nmax);
  mn = sel(zero, mn, f32x4.gt(mn, zero));
  // Where the scalar code returns at once (mx == mn: levels 0, scale 0, the min −mn), a lane
  // writes the same bytes: iscale = nmax / 0 = +inf (or NaN, all −inf) makes every level NaN,
  // stored as 0, and every trial's D NaN, so no trial replaces mn; the scale, 1 / iscale, is 0
  // or NaN, and a NaN scale is passed over by the block's largest scale and stored as 0.
  let iscale = f32x4.div(top, f32x4.sub(mx, mn)), scale = f32x4.div(f32x4.splat(1), iscale), best = zero;
  for (let i = 0; i < 32; i++) {
    const v = v128.load(xT + (<usize>i << 4));
    const q = level4(clamp4(f32x4.nearest(f32x4.mul(iscale, f32x4.sub(v, mn))), zero, top));
    v128.store(lt + (<usize>i << 4), q);
    const diff = f32x4.sub(f32x4.add(f32x4.mul(scale, q), mn), v);
    best = f32x4.add(best, f32x4.mul(v128.load(wT + (<usize>i << 4)), f32x4.mul(diff, diff)));
  }
  for (let is = 0; is <= nstep; is++) {
    iscale = f32x4.div(f32x4.splat(rmin + rdelta * <f32>is + nmax), f32x4.sub(mx, mn));
    let sumL = zero, sumL2 = zero, sumXL = zero;
    for (let i = 0; i < 32; i++) {
      const v = v128.load(xT + (<usize>i << 4));
      const l = clamp4(f32x4.nearest(f32x4.mul(iscale, f32x4.sub(v, mn))), zero, top); // NaN stays NaN in the sums
      v128.store(at + (<usize>i << 4), level4(l));
      const wl = f32x4.mul(v128.load(wT + (<usize>i << 4)), l);
      sumL = f32x4.add(sumL, wl);
      sumL2 = f32x4.add(sumL2, f32x4.mul(wl, l));
      sumXL = f32x4.add(sumXL, f32x4.mul(wl, v));
    }
    const D = f32x4.sub(f32x4.mul(sumW, sumL2), f32x4.mul(sumL, sumL));
    const pos = f32x4.gt(D, zero);
    if (!v128.any_true(pos)) continue;
    let thisScale = f32x4.div(f32x4.sub(f32x4.mul(sumW, sumXL), f32x4.mul(sumX, sumL)), D);
    let thisMin = f32x4.div(f32x4.sub(f32x4.mul(sumL2, sumX), f32x4.mul(sumL, sumXL)), D);
    const neg = f32x4.gt(thisMin, zero);
    thisScale = sel(f32x4.div(sumXL, sumL2), thisScale, neg);
    thisMin = sel(zero, thisMin, neg);
    let err = zero;
    for (let i = 0; i < 32; i++) {
      const diff = f32x4.sub(f32x4.add(f32x4.mul(thisScale, v128.load(at + (<usize>i << 4))), thisMin), v128.load(xT + (<usize>i << 4)));
      err = f32x4.add(err, f32x4.mul(v128.load(wT + (<usize>i << 4)), f32x4.mul(diff, diff)));
    }
    const better = v128.and(pos, f32x4.lt(err, best));
    if (!v128.any_true(better)) continue;
    for (let i = 0; i < 32; i++) {
      const p = lt + (<usize>i << 4);
      v128.store(p, sel(v128.load(at + (<usize>i << 4)), v128.load(p), better));
    }
    best = sel(err, best, better);
    scale = sel(thisScale, scale, better);
    mn = sel(thisMin, mn, better);
  }
  v128.store(minOut, f32x4.neg(mn));
  return scale;
}

// Q4_K (levels 0…15) and Q5_K (0…31): 8 sub-blocks of 32, 6-bit scales and mins. s: scratch.
function quantBlockK45(t: i32, dst: usize, src: usize, s: usize): void {
  const five = t == T_Q5_K, nmax: f32 = five ? 31 : 15;
  const L = s, scales = s + 416, mins = s + 448;
  const xT = s + 512, wT = s + 1024, lt = s + 1536, at = s + 2048;
  for (let g = 0; g < 8; g += 4) {
    // The four sub-blocks' weights: the root mean square of the sub-block plus |x|.
    transpose4(xT, src + (<usize>g << 7), 32, 128);
    let sumX2 = f32x4.splat(0);
    for (let l = 0; l < 32; l++) { const v = v128.load(xT + (<usize>l << 4)); sumX2 = f32x4.add(sumX2, f32x4.mul(v, v)); }
    const avX = f32x4.sqrt(f32x4.div(sumX2, f32x4.splat(32)));
    for (let l = 0; l < 32; l++) v128.store(wT + (<usize>l << 4), f32x4.add(avX, f32x4.abs(v128.load(xT + (<usize>l << 4)))));
    const sc = five ? makeQkx2x4(31, xT, wT, lt, at, -0.5, <f32>0.1, 15, mins + (<usize>g << 2))
      : makeQkx2x4(15, xT, wT, lt, at, -1, <f32>0.1, 20, mins + (<usize>g << 2));
    v128.store(scales + (<usize>g << 2), sc);
    untranspose4(L + (<usize>g << 5), lt, 32);
  }
  let maxScale: f32 = 0, maxMin: f32 = 0;
  for (let j = 0; j < 8; j++) {
    const sc = load<f32>(scales + (<usize>j << 2)), m = load<f32>(mins + (<usize>j << 2));
    if (sc > maxScale) maxScale = sc;
    if (m > maxMin) maxMin = m;
  }
  const invScale: f32 = maxScale > 0 ? <f32>63 / maxScale : 0, invMin: f32 = maxMin > 0 ? <f32>63 / maxMin : 0;
  const sb = dst + 4;
  for (let j = 0; j < 8; j++) {
    const ls = toInt(min<f32>(63, nearest<f32>(invScale * load<f32>(scales + (<usize>j << 2)))));
    const lm = toInt(min<f32>(63, nearest<f32>(invMin * load<f32>(mins + (<usize>j << 2)))));
    if (j < 4) { store<u8>(sb + <usize>j, <u8>ls); store<u8>(sb + <usize>(j + 4), <u8>lm); } else {
      store<u8>(sb + <usize>(j + 4), <u8>((ls & 0xf) | ((lm & 0xf) << 4)));
      store<u8>(sb + <usize>(j - 4), <u8>(<i32>load<u8>(sb + <usize>(j - 4)) | ((ls >> 4) << 6)));
      store<u8>(sb + <usize>j, <u8>(<i32>load<u8>(sb + <usize>j) | ((lm >> 4) << 6)));
    }
  }
  storeHalf(dst, maxScale / 63);
  storeHalf(dst + 2, maxMin / 63);
  const d0 = half(dst), m0 = half(dst + 2);
  for (let j = 0; j < 8; j++) {
    const b = <i32>load<u8>(sb + <usize>j), b4 = <i32>load<u8>(sb + <usize>(j + 4));
    const sc = j < 4 ? b & 63 : (<i32>load<u8>(sb + <usize>(j + 4)) & 0xf) | ((<i32>load<u8>(sb + <usize>(j - 4)) >> 6) << 4);
    const m = j < 4 ? b4 & 63 : (b4 >> 4) | ((b >> 6) << 4);
    const d: f32 = d0 * <f32>sc;
    if (falsy(d)) continue;
    const dm: f32 = m0 * <f32>m, xj = src + (<usize>j << 7), Lj = L + (<usize>j << 5);
    for (let i = 0; i < 32; i++) store<u8>(Lj + <usize>i, <u8>toInt(clampf(nearest<f32>((load<f32>(xj + (<usize>i << 2)) + dm) / d), 0, nmax)));
  }
  if (!five) {
    for (let j = 0, q = dst + 16; j < 256; j += 64, q += 32) {
      for (let l = 0; l < 32; l++) store<u8>(q + <usize>l, load<u8>(L + <usize>(j + l)) | (load<u8>(L + <usize>(j + l + 32)) << 4));
    }
  } else {
    const qh = dst + 16;
    memory.fill(qh, 0, 32);
    for (let j = 0, q = dst + 48, g = 0; j < 256; j += 64, q += 32, g++) {
      for (let l = 0; l < 32; l++) {
        const a = <u32>load<u8>(L + <usize>(j + l)), c = <u32>load<u8>(L + <usize>(j + l + 32));
        store<u8>(q + <usize>l, <u8>((a & 15) | ((c & 15) << 4)));
        store<u8>(qh + <usize>l, <u8>(<u32>load<u8>(qh + <usize>l) | ((a >> 4) << (2 * g)) | ((c >> 4) << (2 * g + 1))));
      }
    }
  }
}

// make_qx_quants with rmse_type 1 for four sub-blocks of 16 values (xT): levels + 32 (integral
// f32) into lt, the scales returned.
function makeQx16x4(xT: usize, lt: usize): v128 {
  const zero = f32x4.splat(0), lo = f32x4.splat(-32), hi = f32x4.splat(31), off = f32x4.splat(32);
  let mx = zero, amax = zero;
  for (let i = 0; i < 16; i++) {
    const v = v128.load(xT + (<usize>i << 4)), ax = f32x4.abs(v), more = f32x4.gt(ax, amax);
    amax = sel(ax, amax, more);
    mx = sel(v, mx, more);
  }
  // Lanes whose largest magnitude is below 1e-15 (compared in f64) return at once: levels 0, scale 0.
  let tiny = i32x4.splat(0);
  if (<f64>f32x4.extract_lane(amax, 0) < 1e-15) tiny = i32x4.replace_lane(tiny, 0, -1);
  if (<f64>f32x4.extract_lane(amax, 1) < 1e-15) tiny = i32x4.replace_lane(tiny, 1, -1);
  if (<f64>f32x4.extract_lane(amax, 2) < 1e-15) tiny = i32x4.replace_lane(tiny, 2, -1);
  if (<f64>f32x4.extract_lane(amax, 3) < 1e-15) tiny = i32x4.replace_lane(tiny, 3, -1);
  let iscale = f32x4.div(f32x4.splat(-32), mx), sumLX = zero, sumL2 = zero;
  for (let i = 0; i < 16; i++) {
    const v = v128.load(xT + (<usize>i << 4)), l = clamp4(f32x4.nearest(f32x4.mul(iscale, v)), lo, hi);
    v128.store(lt + (<usize>i << 4), level4(f32x4.add(l, off)));
    const w = f32x4.mul(v, v);
    sumLX = f32x4.add(sumLX, f32x4.mul(f32x4.mul(w, v), l));
    sumL2 = f32x4.add(sumL2, f32x4.mul(f32x4.mul(w, l), l));
  }
  const falsy2 = v128.or(f32x4.eq(sumL2, zero), f32x4.ne(sumL2, sumL2));
  let scale = sel(zero, f32x4.div(sumLX, sumL2), falsy2), best = f32x4.mul(scale, sumLX);
  for (let is = -9; is <= 9; is++) {
    if (is == 0) continue;
    iscale = f32x4.div(f32x4.splat(-(<f32>32 + <f32>0.1 * <f32>is)), mx);
    let sLX = zero, sL2 = zero;
    for (let i = 0; i < 16; i++) {
      const v = v128.load(xT + (<usize>i << 4)), l = clamp4(f32x4.nearest(f32x4.mul(iscale, v)), lo, hi), w = f32x4.mul(v, v);
      sLX = f32x4.add(sLX, f32x4.mul(f32x4.mul(w, v), l));
      sL2 = f32x4.add(sL2, f32x4.mul(f32x4.mul(w, l), l));
    }
    const better = v128.and(f32x4.gt(sL2, zero), f32x4.gt(f32x4.mul(sLX, sLX), f32x4.mul(best, sL2)));
    if (!v128.any_true(better)) continue;
    for (let i = 0; i < 16; i++) {
      const p = lt + (<usize>i << 4), l = clamp4(f32x4.nearest(f32x4.mul(iscale, v128.load(xT + (<usize>i << 4)))), lo, hi);
      v128.store(p, sel(level4(f32x4.add(off, l)), v128.load(p), better));
    }
    scale = sel(f32x4.div(sLX, sL2), scale, better);
    best = sel(f32x4.mul(scale, sLX), best, better);
  }
  if (v128.any_true(tiny)) for (let i = 0; i < 16; i++) {
    const p = lt + (<usize>i << 4);
    v128.store(p, v128.andnot(v128.load(p), tiny));
  }
  return sel(zero, scale, tiny);
}

function quantBlockQ6K(dst: usize, src: usize, s: usize): void {
  const L = s, scales = s + 256;
  const xT = s + 512, lt = s + 768;
  for (let g = 0; g < 16; g += 4) {
    transpose4(xT, src + (<usize>g << 6), 16, 64);
    v128.store(scales + (<usize>g << 2), makeQx16x4(xT, lt));
    untranspose4(L + (<usize>g << 4), lt, 16);
  }
  let maxScale: f32 = 0, maxAbs: f32 = 0;
  for (let ib = 0; ib < 16; ib++) {
    const sc = load<f32>(scales + (<usize>ib << 2));
    if (abs<f32>(sc) > maxAbs) { maxAbs = abs<f32>(sc); maxScale = sc; }
  }
  if (<f64>maxAbs < 1e-15) { memory.fill(dst, 0, 210); return; } // an all-zero block (d = 0)
  const iscale: f32 = <f32>-128 / maxScale;
  storeHalf(dst + 208, <f32>1 / iscale);
  for (let ib = 0; ib < 16; ib++) store<u8>(dst + 192 + <usize>ib, <u8>toInt(min<f32>(127, nearest<f32>(iscale * load<f32>(scales + (<usize>ib << 2))))));
  const d0 = half(dst + 208);
  for (let j = 0; j < 16; j++) {
    const d: f32 = d0 * <f32>load<i8>(dst + 192 + <usize>j);
    if (falsy(d)) continue;
    const xj = src + (<usize>j << 6), Lj = L + (<usize>j << 4);
    for (let i = 0; i < 16; i++) store<u8>(Lj + <usize>i, <u8>toInt(clampf(nearest<f32>(load<f32>(xj + (<usize>i << 2)) / d), -32, 31) + 32));
  }
  for (let j = 0, ql = dst, qh = dst + 128; j < 256; j += 128, ql += 64, qh += 32) {
    for (let l = 0; l < 32; l++) {
      const a = <u32>load<u8>(L + <usize>(j + l)), b = <u32>load<u8>(L + <usize>(j + l + 32));
      const c = <u32>load<u8>(L + <usize>(j + l + 64)), e = <u32>load<u8>(L + <usize>(j + l + 96));
      store<u8>(ql + <usize>l, <u8>((a & 0xf) | ((c & 0xf) << 4)));
      store<u8>(ql + <usize>(l + 32), <u8>((b & 0xf) | ((e & 0xf) << 4)));
      store<u8>(qh + <usize>l, <u8>((a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6)));
    }
  }
}

export function quantize_blocks(out: usize, x: usize, nb: i32, type: i32, tid: i32, nt: i32): void {
  const b0 = shareStart(nb, tid, nt, 1), b1 = shareStart(nb, tid + 1, nt, 1);
  const vals = <usize>typeBlock(type) << 2, bytes = <usize>typeBytes(type), s = scratch();
  for (let b = b0; b < b1; b++) {
    const src = x + <usize>b * vals, dst = out + <usize>b * bytes;
    if (type == T_Q4_0 || type == T_Q5_0) quantBlock40(type, dst, src);
    else if (type == T_Q4_1) quantBlock41(dst, src);
    else if (type == T_Q4_K || type == T_Q5_K) quantBlockK45(type, dst, src, s);
    else quantBlockQ6K(dst, src, s);
  }
}
