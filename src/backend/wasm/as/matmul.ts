// Batched matmul (see KERNEL_ARGS.sgemm in ../../kernels.ts).
//
// Paths:
//  - GEMV (M = 1, B stored transposed, A row contiguous: a decode step's x · Wᵀ): gemvRows
//    streams the weight rows in memory order (see the comment there);
//  - a few rows against B stored transposed (verifying speculative tokens, batched decoding):
//    gemmFewRows for 2–7 rows (every element bit for bit what gemvRows gives that row alone),
//    gemmRowsSmallM for 8;
//  - the blocked path (BLIS-style): pack a KC×NC panel of B into NR-wide strips and an MC×KC
//    block of A into MR-tall strips in this thread's scratch, then run a register-blocked
//    MR×NR micro-kernel (f32x4 accumulators) over the tiles; edge tiles go through a small
//    buffer so the micro-kernel never writes outside C;
//  - the small-M path (GEMV-like, M ≤ SMALL_M, the shapes the paths above do not take: A or B
//    strided along K): no packing; dot products along contiguous K when B is stored transposed
//    (sBk = 1), axpy along contiguous rows of B when sBn = 1.
// Work is split over threads by MR-row tiles of C (over batch×M) when there are enough,
// otherwise by NR-column strips.
import { fma4, hsum4, rowDot4, rowSum, rowTail } from './simd';
import { scratch, SCRATCH_BYTES } from './scratch';

// Micro-tile and cache blocking.
// 6×8 needs 15 xmm registers (12 accumulators, 2 B vectors, 1 broadcast) with fused multiply-add;
// a separate multiply and add needs one more (the product), so the plain-SIMD build uses 4×8.
const MR: i32 = ASC_FEATURE_RELAXED_SIMD ? 6 : 4;
const NR: i32 = 8;
const KC: i32 = 384;
const MC: i32 = 120;
const NC: i32 = 1536;
// Scratch layout (bytes): packed B panel, packed A block, edge tile, small-M row copies.
const PB_OFF: usize = 0;
const PA_OFF: usize = PB_OFF + <usize>(KC * NC * 4);
const TILE_OFF: usize = PA_OFF + <usize>(MC * KC * 4);
const ROWS_OFF: usize = TILE_OFF + <usize>(MR * NR * 4);
// gemmBlock uses the scratch below ROWS_OFF only: a caller may keep its own data above it (the
// Q8_0 kernels dequantise a weight panel there, see quant.ts).
export const GEMM_SCRATCH_END: usize = ROWS_OFF;
// gemmFewRows' packed blocks: rows4's first-pass sums wait at ROWS_OFF (64 bytes), the write-only
// slot of rows4 and rows2 follows (16 bytes), then the packed rows of A.
const PACK_OFF: usize = ROWS_OFF + 128;
const PACK_MAX: usize = <usize>SCRATCH_BYTES - PACK_OFF;
// The small-M path handles at most this many rows per matrix.
const SMALL_M: i32 = 4;
// The small-M path copies A rows with non-unit K stride into scratch: at most this K.
const ROWS_MAX_K: i32 = 32768;

// @ts-ignore: decorator
@inline function off(x: i32): usize { return (<usize>x) << 2; }

export function sgemm(
  a: usize, b: usize, c: usize, M: i32, N: i32, K: i32,
  sAm: i32, sAk: i32, sBk: i32, sBn: i32, ldc: i32,
  batch: i32, sAb: i32, sBb: i32, sCb: i32, beta: i32, tid: i32, nt: i32,
): void {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  if (K <= 0) {
    // C = 0 (or unchanged when beta = 1): split rows over threads.
    if (beta) return;
    const rows = batch * M;
    const r0 = <i32>((<i64>rows * tid) / nt), r1 = <i32>((<i64>rows * (tid + 1)) / nt);
    for (let r = r0; r < r1; r++) {
      const bt = r / M, m = r - bt * M;
      const cp = c + off(bt * sCb + m * ldc);
      for (let n = 0; n < N; n++) store<f32>(cp + off(n), 0);
    }
    return;
  }
  if (M == 1 && sBk == 1 && sAk == 1) {
    gemvRows(a, b, c, N, K, sBn, batch, sAb, sBb, sCb, beta, tid, nt);
    return;
  }
  if (M < ROWS_M && sBk == 1 && sAk == 1) {
    gemmFewRows(a, b, c, M, N, K, sAm, sBn, ldc, batch, sAb, sBb, sCb, beta, tid, nt);
    return;
  }
  if (M == ROWS_M && sBk == 1 && sAk == 1) {
    gemmRowsSmallM(a, b, c, M, N, K, sAm, sBn, ldc, batch, sAb, sBb, sCb, beta, tid, nt);
    return;
  }
  if (M <= SMALL_M && (sBk == 1 || sBn == 1) && (sAk == 1 || K <= ROWS_MAX_K)) {
    smallM(a, b, c, M, N, K, sAm, sAk, sBk, sBn, ldc, batch, sAb, sBb, sCb, beta, tid, nt);
    return;
  }
  const mt = (M + MR - 1) / MR;
  const rowUnits = batch * mt;
  if (nt == 1 || rowUnits >= 4 * nt || rowUnits * NR >= N * 2) {
    // Split MR-row tiles of all batches.
    const u0 = <i32>((<i64>rowUnits * tid) / nt), u1 = <i32>((<i64>rowUnits * (tid + 1)) / nt);
    let u = u0;
    while (u < u1) {
      const bt = u / mt;
      const uEnd = min(u1, (bt + 1) * mt);
      const m0 = (u - bt * mt) * MR, m1 = min(M, (uEnd - bt * mt) * MR);
      gemmBlock(a + off(bt * sAb), b + off(bt * sBb), c + off(bt * sCb), m0, m1, 0, N, K, sAm, sAk, sBk, sBn, ldc, beta);
      u = uEnd;
    }
  } else {
    // Split NR-column strips; every thread covers all rows of all batches.
    const ntl = (N + NR - 1) / NR;
    const n0 = min(N, <i32>((<i64>ntl * tid) / nt) * NR), n1 = min(N, <i32>((<i64>ntl * (tid + 1)) / nt) * NR);
    if (n0 >= n1) return;
    for (let bt = 0; bt < batch; bt++) {
      gemmBlock(a + off(bt * sAb), b + off(bt * sBb), c + off(bt * sCb), 0, M, n0, n1, K, sAm, sAk, sBk, sBn, ldc, beta);
    }
  }
}

// C[m0:m1, n0:n1] (+)= A[m0:m1, :] · B[:, n0:n1] for one matrix of the batch.
export function gemmBlock(
  a: usize, b: usize, c: usize, m0: i32, m1: i32, n0: i32, n1: i32, K: i32,
  sAm: i32, sAk: i32, sBk: i32, sBn: i32, ldc: i32, beta: i32,
): void {
  const base = scratch();
  const pb = base + PB_OFF, pa = base + PA_OFF, tile = base + TILE_OFF;
  const ldcb = off(ldc);
  for (let jc = n0; jc < n1; jc += NC) {
    const nc = min(NC, n1 - jc);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = min(KC, K - pc);
      const accum = pc > 0 || beta != 0;
      packB(b + off(pc * sBk + jc * sBn), kc, nc, sBk, sBn, pb);
      for (let ic = m0; ic < m1; ic += MC) {
        const mc = min(MC, m1 - ic);
        packA(a + off(ic * sAm + pc * sAk), mc, kc, sAm, sAk, pa);
        for (let jr = 0; jr < nc; jr += NR) {
          const w = min(NR, nc - jr);
          const bp = pb + off(jr * kc);
          for (let ir = 0; ir < mc; ir += MR) {
            const h = min(MR, mc - ir);
            const ap = pa + off(ir * kc);
            const cp = c + off((ic + ir) * ldc + jc + jr);
            if (h == MR && w == NR) {
              kernel(ap, bp, kc, cp, ldcb, accum);
            } else {
              kernel(ap, bp, kc, tile, <usize>(NR * 4), false);
              for (let i = 0; i < h; i++) {
                const crow = cp + (<usize>i) * ldcb, trow = tile + off(i * NR);
                if (accum) for (let j = 0; j < w; j++) store<f32>(crow + off(j), load<f32>(crow + off(j)) + load<f32>(trow + off(j)));
                else for (let j = 0; j < w; j++) store<f32>(crow + off(j), load<f32>(trow + off(j)));
              }
            }
          }
        }
      }
    }
  }
}

// Pack B[0:kc, 0:nc] (element (k,n) at b + 4·(k·sBk + n·sBn)) into NR-wide strips:
// strip s holds kc rows of NR floats (zero-padded past nc).
function packB(b: usize, kc: i32, nc: i32, sBk: i32, sBn: i32, dst: usize): void {
  for (let j = 0; j < nc; j += NR) {
    const w = min(NR, nc - j);
    const src = b + off(j * sBn);
    let d = dst + off(j * kc);
    if (w == NR && sBn == 1) {
      const rs = off(sBk);
      let s = src;
      for (let k = 0; k < kc; k++) {
        v128.store(d, v128.load(s));
        v128.store(d, v128.load(s, 16), 16);
        s += rs; d += 32;
      }
    } else if (w == NR && sBk == 1) {
      // Rows of the strip are contiguous along k: transpose 4×4 blocks.
      const rs = off(sBn);
      let k = 0;
      for (; k + 4 <= kc; k += 4) {
        const s = src + off(k);
        transpose4(s, rs, d, 32);
        transpose4(s + 4 * rs, rs, d + 16, 32);
        d += 128;
      }
      for (; k < kc; k++) {
        for (let jj = 0; jj < NR; jj++) store<f32>(d + off(jj), load<f32>(src + off(jj * sBn + k)));
        d += 32;
      }
    } else {
      for (let k = 0; k < kc; k++) {
        const s = src + off(k * sBk);
        let jj = 0;
        for (; jj < w; jj++) store<f32>(d + off(jj), load<f32>(s + off(jj * sBn)));
        for (; jj < NR; jj++) store<f32>(d + off(jj), 0);
        d += 32;
      }
    }
  }
}

// Pack A[0:mc, 0:kc] (element (m,k) at a + 4·(m·sAm + k·sAk)) into MR-tall strips:
// strip s holds kc columns of MR floats (zero-padded past mc).
function packA(a: usize, mc: i32, kc: i32, sAm: i32, sAk: i32, dst: usize): void {
  const ds = <usize>(MR * 4);
  for (let i = 0; i < mc; i += MR) {
    const h = min(MR, mc - i);
    const src = a + off(i * sAm);
    let d = dst + off(i * kc);
    if (h == MR && sAm == 1) {
      const ks = off(sAk);
      let s = src;
      for (let k = 0; k < kc; k++) {
        v128.store(d, v128.load(s));
        if (MR == 6) v128.store64_lane(d, v128.load64_zero(s, 16), 0, 16);
        else for (let ii = 4; ii < MR; ii++) store<f32>(d + off(ii), load<f32>(s + off(ii)));
        s += ks; d += ds;
      }
    } else if (h == MR && sAk == 1) {
      const rs = off(sAm);
      let k = 0;
      for (; k + 4 <= kc; k += 4) {
        const s = src + off(k);
        transpose4(s, rs, d, ds);
        if (MR == 6) {
          const r4 = v128.load(s + 4 * rs), r5 = v128.load(s + 5 * rs);
          const lo = i32x4.shuffle(r4, r5, 0, 4, 1, 5), hi = i32x4.shuffle(r4, r5, 2, 6, 3, 7);
          v128.store64_lane(d, lo, 0, 16); v128.store64_lane(d + ds, lo, 1, 16);
          v128.store64_lane(d + 2 * ds, hi, 0, 16); v128.store64_lane(d + 3 * ds, hi, 1, 16);
        } else {
          for (let ii = 4; ii < MR; ii++) for (let kk = 0; kk < 4; kk++) store<f32>(d + <usize>kk * ds + off(ii), load<f32>(s + <usize>ii * rs + off(kk)));
        }
        d += 4 * ds;
      }
      for (; k < kc; k++) {
        for (let ii = 0; ii < MR; ii++) store<f32>(d + off(ii), load<f32>(src + off(ii * sAm + k)));
        d += ds;
      }
    } else {
      for (let k = 0; k < kc; k++) {
        const s = src + off(k * sAk);
        let ii = 0;
        for (; ii < h; ii++) store<f32>(d + off(ii), load<f32>(s + off(ii * sAm)));
        for (; ii < MR; ii++) store<f32>(d + off(ii), 0);
        d += ds;
      }
    }
  }
}

// Read 4 rows of 4 floats (row r at s + r·rs) and write them transposed: column c of the
// block goes to d + c·ds.
// @ts-ignore: decorator
@inline function transpose4(s: usize, rs: usize, d: usize, ds: usize): void {
  const r0 = v128.load(s), r1 = v128.load(s + rs), r2 = v128.load(s + 2 * rs), r3 = v128.load(s + 3 * rs);
  const t0 = i32x4.shuffle(r0, r1, 0, 4, 1, 5), t1 = i32x4.shuffle(r0, r1, 2, 6, 3, 7);
  const t2 = i32x4.shuffle(r2, r3, 0, 4, 1, 5), t3 = i32x4.shuffle(r2, r3, 2, 6, 3, 7);
  v128.store(d, i32x4.shuffle(t0, t2, 0, 1, 4, 5));
  v128.store(d + ds, i32x4.shuffle(t0, t2, 2, 3, 6, 7));
  v128.store(d + 2 * ds, i32x4.shuffle(t1, t3, 0, 1, 4, 5));
  v128.store(d + 3 * ds, i32x4.shuffle(t1, t3, 2, 3, 6, 7));
}


// @ts-ignore: decorator
@inline function kernel(ap: usize, bp: usize, kc: i32, cp: usize, ldcb: usize, accum: bool): void {
  if (MR == 6) kern6x8(ap, bp, kc, cp, ldcb, accum);
  else kern4x8(ap, bp, kc, cp, ldcb, accum);
}

function kern6x8(ap: usize, bp: usize, kc: i32, cp: usize, ldcb: usize, accum: bool): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  let c40 = f32x4.splat(0), c41 = f32x4.splat(0);
  let c50 = f32x4.splat(0), c51 = f32x4.splat(0);
  for (let k = 0; k < kc; k++) {
    const b0 = v128.load(bp), b1 = v128.load(bp, 16);
    let x = v128.load32_splat(ap);
    c00 = fma4(x, b0, c00); c01 = fma4(x, b1, c01);
    x = v128.load32_splat(ap, 4);
    c10 = fma4(x, b0, c10); c11 = fma4(x, b1, c11);
    x = v128.load32_splat(ap, 8);
    c20 = fma4(x, b0, c20); c21 = fma4(x, b1, c21);
    x = v128.load32_splat(ap, 12);
    c30 = fma4(x, b0, c30); c31 = fma4(x, b1, c31);
    x = v128.load32_splat(ap, 16);
    c40 = fma4(x, b0, c40); c41 = fma4(x, b1, c41);
    x = v128.load32_splat(ap, 20);
    c50 = fma4(x, b0, c50); c51 = fma4(x, b1, c51);
    ap += 24; bp += 32;
  }
  let p = cp;
  if (accum) {
    v128.store(p, f32x4.add(v128.load(p), c00)); v128.store(p, f32x4.add(v128.load(p, 16), c01), 16); p += ldcb;
    v128.store(p, f32x4.add(v128.load(p), c10)); v128.store(p, f32x4.add(v128.load(p, 16), c11), 16); p += ldcb;
    v128.store(p, f32x4.add(v128.load(p), c20)); v128.store(p, f32x4.add(v128.load(p, 16), c21), 16); p += ldcb;
    v128.store(p, f32x4.add(v128.load(p), c30)); v128.store(p, f32x4.add(v128.load(p, 16), c31), 16); p += ldcb;
    v128.store(p, f32x4.add(v128.load(p), c40)); v128.store(p, f32x4.add(v128.load(p, 16), c41), 16); p += ldcb;
    v128.store(p, f32x4.add(v128.load(p), c50)); v128.store(p, f32x4.add(v128.load(p, 16), c51), 16);
  } else {
    v128.store(p, c00); v128.store(p, c01, 16); p += ldcb;
    v128.store(p, c10); v128.store(p, c11, 16); p += ldcb;
    v128.store(p, c20); v128.store(p, c21, 16); p += ldcb;
    v128.store(p, c30); v128.store(p, c31, 16); p += ldcb;
    v128.store(p, c40); v128.store(p, c41, 16); p += ldcb;
    v128.store(p, c50); v128.store(p, c51, 16);
  }
}

// MR×NR micro-kernel: C[0:MR, 0:NR] (+)= Apanel (kc×MR) · Bpanel (kc×NR).
function kern4x8(ap: usize, bp: usize, kc: i32, cp: usize, ldcb: usize, accum: bool): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  for (let k = 0; k < kc; k++) {
    const b0 = v128.load(bp), b1 = v128.load(bp, 16);
    let x = v128.load32_splat(ap);
    c00 = fma4(x, b0, c00); c01 = fma4(x, b1, c01);
    x = v128.load32_splat(ap, 4);
    c10 = fma4(x, b0, c10); c11 = fma4(x, b1, c11);
    x = v128.load32_splat(ap, 8);
    c20 = fma4(x, b0, c20); c21 = fma4(x, b1, c21);
    x = v128.load32_splat(ap, 12);
    c30 = fma4(x, b0, c30); c31 = fma4(x, b1, c31);
    ap += 16; bp += 32;
  }
  let p = cp;
  if (accum) {
    v128.store(p, f32x4.add(v128.load(p), c00)); v128.store(p, f32x4.add(v128.load(p, 16), c01), 16); p += ldcb;
    v128.store(p, f32x4.add(v128.load(p), c10)); v128.store(p, f32x4.add(v128.load(p, 16), c11), 16); p += ldcb;
    v128.store(p, f32x4.add(v128.load(p), c20)); v128.store(p, f32x4.add(v128.load(p, 16), c21), 16); p += ldcb;
    v128.store(p, f32x4.add(v128.load(p), c30)); v128.store(p, f32x4.add(v128.load(p, 16), c31), 16);
  } else {
    v128.store(p, c00); v128.store(p, c01, 16); p += ldcb;
    v128.store(p, c10); v128.store(p, c11, 16); p += ldcb;
    v128.store(p, c20); v128.store(p, c21, 16); p += ldcb;
    v128.store(p, c30); v128.store(p, c31, 16);
  }
}

// ---- GEMV with weight rows contiguous along k (decoding one token: x · Wᵀ) ----
//
// The weight rows are read one after another, in memory order, each to the end before the next
// begins: one sequential stream that the hardware prefetcher follows at full memory bandwidth
// (several rows read side by side, as dotCols does, are several streams and reach about half of
// it when the weights come from DRAM, as they do for a model larger than the cache). Each row is
// reduced and stored as soon as it is done: keeping several rows' partial sums live (a 4-row
// group reduced with one transpose-add) needs more than the 16 vector registers V8 allocates on
// x86-64, and the spills cut the streaming rate by a third (measured: 21 → 30 GB/s for a 73 MB
// matrix on one thread). Four accumulators per row hide the FMA latency. Every sum is computed
// in the same order whatever the thread split. Threads take contiguous ranges of rows over
// (batch, N).

function gemvRows(
  a: usize, b: usize, c: usize, N: i32, K: i32, sBn: i32,
  batch: i32, sAb: i32, sBb: i32, sCb: i32, beta: i32, tid: i32, nt: i32,
): void {
  const units = batch * N;
  const u0 = <i32>((<i64>units * tid) / nt), u1 = <i32>((<i64>units * (tid + 1)) / nt);
  const tail = (K & 3) != 0;
  for (let u = u0; u < u1; u++) {
    const bt = u / N;
    const n = u - bt * N;
    const x = a + off(bt * sAb);
    const w = b + off(bt * sBb + n * sBn);
    let r = rowSum(rowDot4(x, w, K));
    if (tail) r += rowTail(x, w, K);
    put(c + off(bt * sCb + n), r, beta);
  }
}

// C[m, n] (+)= A[m, :] · B[n, :] for M = ROWS_M (8), B's rows contiguous (sBk = 1), A's rows too.
// Threads take pairs of weight rows; each pair is read from memory once and stays in L1 while
// every group of 4 A rows is multiplied with it (4×2 register block: 8 accumulators, 6 loads
// per 8 fused multiply-adds; the groups of A rows are read from a chunk-interleaved copy in
// scratch, packRows, so that their loads need one pointer). Its sums are ordered otherwise than
// gemvRows': at 8 rows it ran 1.1–1.4× faster than gemmFewRows' blocks of 3 (two weight rows
// side by side cost little when each is used 8 times), so it keeps M = 8.
function gemmRowsSmallM(
  a: usize, b: usize, c: usize, M: i32, N: i32, K: i32, sAm: i32, sBn: i32, ldc: i32,
  batch: i32, sAb: i32, sBb: i32, sCb: i32, beta: i32, tid: i32, nt: i32,
): void {
  const pairs = (N + 1) >> 1;
  const units = batch * pairs;
  const u0 = <i32>((<i64>units * tid) / nt), u1 = <i32>((<i64>units * (tid + 1)) / nt);
  const K4 = K & ~3;
  const block = off(4 * K4); // bytes of one packed group of 4 rows
  const packed = scratch() + PACK_OFF;
  const packOk = <usize>(M >> 2) * block <= PACK_MAX;
  let lastBt = -1;
  for (let u = u0; u < u1; u++) {
    const bt = u / pairs;
    const n = (u - bt * pairs) << 1;
    const ab = a + off(bt * sAb), cb = c + off(bt * sCb);
    const w0 = b + off(bt * sBb + n * sBn);
    const two = n + 1 < N;
    const w1 = two ? w0 + off(sBn) : w0;
    if (packOk && bt != lastBt) {
      for (let m = 0; m + 4 <= M; m += 4) packRows(ab + off(m * sAm), sAm, 4, K, packed + <usize>(m >> 2) * block);
      lastBt = bt;
    }
    let m = 0;
    for (; m + 4 <= M; m += 4) {
      const x0 = ab + off(m * sAm), x1 = x0 + off(sAm), x2 = x1 + off(sAm), x3 = x2 + off(sAm);
      let s00 = f32x4.splat(0), s01 = f32x4.splat(0), s10 = f32x4.splat(0), s11 = f32x4.splat(0);
      let s20 = f32x4.splat(0), s21 = f32x4.splat(0), s30 = f32x4.splat(0), s31 = f32x4.splat(0);
      if (packOk) {
        let xq = packed + <usize>(m >> 2) * block, wa = w0, wb = w1;
        for (const we = w0 + off(K4); wa < we; wa += 16, wb += 16, xq += 64) {
          const v0 = v128.load(wa), v1 = v128.load(wb);
          const y0 = v128.load(xq), y1 = v128.load(xq, 16);
          s00 = fma4(y0, v0, s00); s01 = fma4(y0, v1, s01);
          s10 = fma4(y1, v0, s10); s11 = fma4(y1, v1, s11);
          const y2 = v128.load(xq, 32), y3 = v128.load(xq, 48);
          s20 = fma4(y2, v0, s20); s21 = fma4(y2, v1, s21);
          s30 = fma4(y3, v0, s30); s31 = fma4(y3, v1, s31);
        }
      } else {
        for (let o: usize = 0, e = off(K4); o < e; o += 16) {
          const v0 = v128.load(w0 + o), v1 = v128.load(w1 + o);
          const y0 = v128.load(x0 + o), y1 = v128.load(x1 + o);
          s00 = fma4(y0, v0, s00); s01 = fma4(y0, v1, s01);
          s10 = fma4(y1, v0, s10); s11 = fma4(y1, v1, s11);
          const y2 = v128.load(x2 + o), y3 = v128.load(x3 + o);
          s20 = fma4(y2, v0, s20); s21 = fma4(y2, v1, s21);
          s30 = fma4(y3, v0, s30); s31 = fma4(y3, v1, s31);
        }
      }
      putRow(cb + off(m * ldc + n), hsum4(s00) + rowTail(x0, w0, K), hsum4(s01) + rowTail(x0, w1, K), two, beta);
      putRow(cb + off((m + 1) * ldc + n), hsum4(s10) + rowTail(x1, w0, K), hsum4(s11) + rowTail(x1, w1, K), two, beta);
      putRow(cb + off((m + 2) * ldc + n), hsum4(s20) + rowTail(x2, w0, K), hsum4(s21) + rowTail(x2, w1, K), two, beta);
      putRow(cb + off((m + 3) * ldc + n), hsum4(s30) + rowTail(x3, w0, K), hsum4(s31) + rowTail(x3, w1, K), two, beta);
    }
    for (; m < M; m++) {
      const x = ab + off(m * sAm);
      let s0 = f32x4.splat(0), s1 = f32x4.splat(0);
      for (let o: usize = 0, e = off(K4); o < e; o += 16) {
        const y = v128.load(x + o);
        s0 = fma4(y, v128.load(w0 + o), s0);
        s1 = fma4(y, v128.load(w1 + o), s1);
      }
      putRow(cb + off(m * ldc + n), hsum4(s0) + rowTail(x, w0, K), hsum4(s1) + rowTail(x, w1, K), two, beta);
    }
  }
}

// @ts-ignore: decorator
@inline function putRow(cp: usize, r0: f32, r1: f32, two: bool, beta: i32): void {
  put(cp, r0, beta);
  if (two) put(cp + 4, r1, beta);
}

// ---- a few rows against contiguous weight rows (speculative verification, batched decoding) ----

// gemmFewRows takes M < ROWS_M rows; gemmRowsSmallM takes M = ROWS_M.
const ROWS_M: i32 = 8;

// C[m, n] (+)= A[m, :] · B[n, :] for 2 ≤ M < ROWS_M, B's rows contiguous (sBk = 1), A's rows too.
// Every element is computed exactly as gemvRows computes it for one row (rowDot4's four
// accumulators over 16-float strides, the 4-float tail into the first, (s0 + s1) + (s2 + s3),
// rowSum, then the scalar tail): verifying T tokens in one call gives the logits of T plain
// decoding steps bit for bit. Weight rows are streamed one at a time in memory order, as gemvRows
// does (two rows read side by side measured slower here, and slower still for blocks of rows of
// A: the weights then come from L3 as two streams); each stays in L1 while the rows of A are
// multiplied with it: the first 4 rows as one block (rows4), then 2 (rows2) or 3 (fewRows) or
// a last single row through rowDot4. rows4 and rows2 run 8 independent FMA chains and read the
// rows of A from a copy in this thread's scratch, interleaved chunk by chunk (packRows), so that
// every load of their inner loops is a constant offset from one pointer.
function gemmFewRows(
  a: usize, b: usize, c: usize, M: i32, N: i32, K: i32, sAm: i32, sBn: i32, ldc: i32,
  batch: i32, sAb: i32, sBb: i32, sCb: i32, beta: i32, tid: i32, nt: i32,
): void {
  const units = batch * N;
  const u0 = <i32>((<i64>units * tid) / nt), u1 = <i32>((<i64>units * (tid + 1)) / nt);
  const ldcb = off(ldc);
  const tail = (K & 3) != 0;
  // The packed blocks: 4 rows, then 2, of K & ~3 floats each (without the room: the plain blocks).
  const packOk = off(6 * (K & ~3)) <= PACK_MAX;
  const m4 = packOk && M >= 4 ? 4 : 0;
  const two = packOk && M - m4 == 2;
  const p4 = scratch() + PACK_OFF, p2 = p4 + off(4 * (K & ~3));
  let lastBt = -1;
  for (let u = u0; u < u1; u++) {
    const bt = u / N;
    const n = u - bt * N;
    const x = a + off(bt * sAb);
    const w = b + off(bt * sBb + n * sBn);
    const cp = c + off(bt * sCb + n);
    if (bt != lastBt) {
      if (m4) packRows(x, sAm, 4, K, p4);
      if (two) packRows(x + off(m4 * sAm), sAm, 2, K, p2);
      lastBt = bt;
    }
    let m = 0;
    if (m4) {
      rows4(p4, x, sAm, w, K, cp, ldcb, beta);
      m = 4;
    }
    if (two) {
      rows2(p2, x + off(m * sAm), sAm, w, K, cp + <usize>m * ldcb, ldcb, beta);
      continue;
    }
    for (; m + 3 <= M; m += 3) fewRows(3, x + off(m * sAm), sAm, w, K, cp + <usize>m * ldcb, ldcb, beta);
    if (m + 2 == M) {
      fewRows(2, x + off(m * sAm), sAm, w, K, cp + <usize>m * ldcb, ldcb, beta);
    } else if (m + 1 == M) {
      const xm = x + off(m * sAm);
      let v = rowSum(rowDot4(xm, w, K));
      if (tail) v += rowTail(xm, w, K);
      put(cp + <usize>m * ldcb, v, beta);
    }
  }
}

// R rows of A (row stride sAm), their K & ~3 first elements, into dst chunk by chunk:
// dst[16·(R·c + r)] = the 4 floats of row r at 4c.
function packRows(x: usize, sAm: i32, R: i32, K: i32, dst: usize): void {
  const chunks = K >> 2;
  const step = <usize>R << 4;
  for (let r = 0; r < R; r++) {
    const src = x + off(r * sAm);
    let d = dst + (<usize>r << 4);
    for (let i = 0; i < chunks; i++, d += step) v128.store(d, v128.load(src + (<usize>i << 4)));
  }
}

// The engine (V8) schedules every load of a loop iteration before its multiply-adds, so a loop
// with 8 accumulators and 10 loads per iteration would not fit its 15 vector registers (such
// blocks spilled accumulators to the stack and ran 1.5–2× slower). In rows4 and rows2 a store
// of the first group's sums to a scratch slot (`sink`, never read) in the middle of an
// iteration orders the next group's loads after that group's multiply-adds (memory operations
// keep their order): 13 vector registers live at most. The sums are those of rowDot4.

// Rows 2 of A (packed at p by packRows with R = 2; x is the first row unpacked, for the scalar
// tail) against the weight row w, rowDot4's four accumulators in one pass: C[0] at cp, C[1] at
// cp + ldcb.
// @ts-ignore: decorator
@inline function rows2(p: usize, x: usize, sAm: i32, w: usize, K: i32, cp: usize, ldcb: usize, beta: i32): void {
  const e16 = off(K & ~15), e4 = off(K & ~3);
  const tail = (K & 3) != 0;
  const sink = scratch() + ROWS_OFF + 64;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
  let wq = w, xq = p;
  for (const we = w + e16; wq < we; wq += 64, xq += 128) {
    let v = v128.load(wq);
    a0 = fma4(v128.load(xq), v, a0); b0 = fma4(v128.load(xq, 16), v, b0);
    v128.store(sink, f32x4.add(a0, b0));
    v = v128.load(wq, 16);
    a1 = fma4(v128.load(xq, 32), v, a1); b1 = fma4(v128.load(xq, 48), v, b1);
    v128.store(sink, f32x4.add(a1, b1));
    v = v128.load(wq, 32);
    a2 = fma4(v128.load(xq, 64), v, a2); b2 = fma4(v128.load(xq, 80), v, b2);
    v128.store(sink, f32x4.add(a2, b2));
    v = v128.load(wq, 48);
    a3 = fma4(v128.load(xq, 96), v, a3); b3 = fma4(v128.load(xq, 112), v, b3);
  }
  for (const we4 = w + e4; wq < we4; wq += 16, xq += 32) {
    const v = v128.load(wq);
    a0 = fma4(v128.load(xq), v, a0); b0 = fma4(v128.load(xq, 16), v, b0);
  }
  finishRow(x, w, K, tail, f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), cp, beta);
  finishRow(x + off(sAm), w, K, tail, f32x4.add(f32x4.add(b0, b1), f32x4.add(b2, b3)), cp + ldcb, beta);
}

// Rows 0–3 of A (packed at p by packRows with R = 4; x is the first row unpacked, for the scalar
// tails) against the weight row w: C[r] at cp + r·ldcb. Accumulators 0–1 of the 4 rows in one pass
// over the weight row (8 chains), 2–3 in a second (from L1), as fewRows does for 3 rows.
// @ts-ignore: decorator
@inline function rows4(p: usize, x: usize, sAm: i32, w: usize, K: i32, cp: usize, ldcb: usize, beta: i32): void {
  const e16 = off(K & ~15), e4 = off(K & ~3);
  const tail = (K & 3) != 0;
  const stash = scratch() + ROWS_OFF, sink = stash + 64;
  {
    // Accumulators 0 (a?0) and 1 (a?1): chunks at 0 and 16 bytes of every 64; the 4-float tail into 0.
    let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a10 = f32x4.splat(0), a11 = f32x4.splat(0);
    let a20 = f32x4.splat(0), a21 = f32x4.splat(0), a30 = f32x4.splat(0), a31 = f32x4.splat(0);
    let wq = w, xq = p;
    for (const we = w + e16; wq < we; wq += 64, xq += 256) {
      let v = v128.load(wq);
      a00 = fma4(v128.load(xq), v, a00); a10 = fma4(v128.load(xq, 16), v, a10);
      a20 = fma4(v128.load(xq, 32), v, a20); a30 = fma4(v128.load(xq, 48), v, a30);
      v128.store(sink, f32x4.add(f32x4.add(a00, a10), f32x4.add(a20, a30)));
      v = v128.load(wq, 16);
      a01 = fma4(v128.load(xq, 64), v, a01); a11 = fma4(v128.load(xq, 80), v, a11);
      a21 = fma4(v128.load(xq, 96), v, a21); a31 = fma4(v128.load(xq, 112), v, a31);
    }
    for (const we4 = w + e4; wq < we4; wq += 16, xq += 64) {
      const v = v128.load(wq);
      a00 = fma4(v128.load(xq), v, a00); a10 = fma4(v128.load(xq, 16), v, a10);
      a20 = fma4(v128.load(xq, 32), v, a20); a30 = fma4(v128.load(xq, 48), v, a30);
    }
    v128.store(stash, f32x4.add(a00, a01)); v128.store(stash, f32x4.add(a10, a11), 16);
    v128.store(stash, f32x4.add(a20, a21), 32); v128.store(stash, f32x4.add(a30, a31), 48);
  }
  // Accumulators 2 and 3: chunks at 32 and 48 bytes of every 64.
  let a02 = f32x4.splat(0), a03 = f32x4.splat(0), a12 = f32x4.splat(0), a13 = f32x4.splat(0);
  let a22 = f32x4.splat(0), a23 = f32x4.splat(0), a32 = f32x4.splat(0), a33 = f32x4.splat(0);
  let wq = w + 32, xq = p + 128;
  for (const we = w + e16; wq < we; wq += 64, xq += 256) {
    let v = v128.load(wq);
    a02 = fma4(v128.load(xq), v, a02); a12 = fma4(v128.load(xq, 16), v, a12);
    a22 = fma4(v128.load(xq, 32), v, a22); a32 = fma4(v128.load(xq, 48), v, a32);
    v128.store(sink, f32x4.add(f32x4.add(a02, a12), f32x4.add(a22, a32)));
    v = v128.load(wq, 16);
    a03 = fma4(v128.load(xq, 64), v, a03); a13 = fma4(v128.load(xq, 80), v, a13);
    a23 = fma4(v128.load(xq, 96), v, a23); a33 = fma4(v128.load(xq, 112), v, a33);
  }
  const x1 = x + off(sAm), x2 = x1 + off(sAm), x3 = x2 + off(sAm);
  finishRow(x, w, K, tail, f32x4.add(v128.load(stash), f32x4.add(a02, a03)), cp, beta);
  finishRow(x1, w, K, tail, f32x4.add(v128.load(stash, 16), f32x4.add(a12, a13)), cp + ldcb, beta);
  finishRow(x2, w, K, tail, f32x4.add(v128.load(stash, 32), f32x4.add(a22, a23)), cp + 2 * ldcb, beta);
  finishRow(x3, w, K, tail, f32x4.add(v128.load(stash, 48), f32x4.add(a32, a33)), cp + 3 * ldcb, beta);
}

// R rows of A (2 or 3, a constant after inlining) from x (row stride sAm) against the weight row w:
// C[r] at cp + r·ldcb. The first pass's sums s0 + s1 wait in this thread's scratch (kept in
// registers across the second pass, they too made the engine spill).
// @ts-ignore: decorator
@inline function fewRows(R: i32, x: usize, sAm: i32, w: usize, K: i32, cp: usize, ldcb: usize, beta: i32): void {
  const x0 = x, x1 = x0 + off(sAm), x2 = x1 + off(sAm);
  const e16 = off(K & ~15), e4 = off(K & ~3);
  const tail = (K & 3) != 0;
  const stash = scratch() + ROWS_OFF;
  {
    // Accumulators 0 (a?0) and 1 (a?1): chunks at 0 and 16 bytes of every 64; the 4-float tail into 0.
    let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a10 = f32x4.splat(0), a11 = f32x4.splat(0);
    let a20 = f32x4.splat(0), a21 = f32x4.splat(0);
    for (let o: usize = 0; o < e16; o += 64) {
      let v = v128.load(w + o);
      a00 = fma4(v128.load(x0 + o), v, a00); a10 = fma4(v128.load(x1 + o), v, a10);
      if (R == 3) a20 = fma4(v128.load(x2 + o), v, a20);
      v = v128.load(w + o, 16);
      a01 = fma4(v128.load(x0 + o, 16), v, a01); a11 = fma4(v128.load(x1 + o, 16), v, a11);
      if (R == 3) a21 = fma4(v128.load(x2 + o, 16), v, a21);
    }
    for (let o = e16; o < e4; o += 16) {
      const v = v128.load(w + o);
      a00 = fma4(v128.load(x0 + o), v, a00); a10 = fma4(v128.load(x1 + o), v, a10);
      if (R == 3) a20 = fma4(v128.load(x2 + o), v, a20);
    }
    v128.store(stash, f32x4.add(a00, a01)); v128.store(stash, f32x4.add(a10, a11), 16);
    if (R == 3) v128.store(stash, f32x4.add(a20, a21), 32);
  }
  // Accumulators 2 and 3: chunks at 32 and 48 bytes of every 64.
  let a02 = f32x4.splat(0), a03 = f32x4.splat(0), a12 = f32x4.splat(0), a13 = f32x4.splat(0);
  let a22 = f32x4.splat(0), a23 = f32x4.splat(0);
  for (let o: usize = 32; o < e16; o += 64) {
    let v = v128.load(w + o);
    a02 = fma4(v128.load(x0 + o), v, a02); a12 = fma4(v128.load(x1 + o), v, a12);
    if (R == 3) a22 = fma4(v128.load(x2 + o), v, a22);
    v = v128.load(w + o, 16);
    a03 = fma4(v128.load(x0 + o, 16), v, a03); a13 = fma4(v128.load(x1 + o, 16), v, a13);
    if (R == 3) a23 = fma4(v128.load(x2 + o, 16), v, a23);
  }
  finishRow(x0, w, K, tail, f32x4.add(v128.load(stash), f32x4.add(a02, a03)), cp, beta);
  finishRow(x1, w, K, tail, f32x4.add(v128.load(stash, 16), f32x4.add(a12, a13)), cp + ldcb, beta);
  if (R == 3) finishRow(x2, w, K, tail, f32x4.add(v128.load(stash, 32), f32x4.add(a22, a23)), cp + 2 * ldcb, beta);
}

// One element as gemvRows finishes it: rowSum of the accumulators, then the scalar tail.
// @ts-ignore: decorator
@inline function finishRow(x: usize, w: usize, K: i32, tail: bool, s: v128, cp: usize, beta: i32): void {
  let r = rowSum(s);
  if (tail) r += rowTail(x, w, K);
  put(cp, r, beta);
}

// ---- small-M path (GEMV and a few rows) ----

// Columns per work unit in the small-M path.
const SN: i32 = 48;

function smallM(
  a: usize, b: usize, c: usize, M: i32, N: i32, K: i32,
  sAm: i32, sAk: i32, sBk: i32, sBn: i32, ldc: i32,
  batch: i32, sAb: i32, sBb: i32, sCb: i32, beta: i32, tid: i32, nt: i32,
): void {
  const nu = (N + SN - 1) / SN;
  const units = batch * nu;
  const u0 = <i32>((<i64>units * tid) / nt), u1 = <i32>((<i64>units * (tid + 1)) / nt);
  const rows = scratch() + ROWS_OFF;
  let lastBt = -1;
  for (let u = u0; u < u1; u++) {
    const bt = u / nu;
    const n0 = (u - bt * nu) * SN, n1 = min(N, n0 + SN);
    let ab = a + off(bt * sAb);
    let sam = sAm;
    if (sAk != 1 && sBk == 1) {
      // Dot products want contiguous A rows: copy them once per batch.
      if (bt != lastBt) {
        for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) store<f32>(rows + off(m * K + k), load<f32>(ab + off(m * sAm + k * sAk)));
        lastBt = bt;
      }
      ab = rows; sam = K;
    }
    const bb = b + off(bt * sBb), cb = c + off(bt * sCb);
    if (sBk == 1) dotCols(ab, sam, bb, sBn, cb, ldc, M, n0, n1, K, beta);
    else axpyRows(ab, sam, sAk, bb, sBk, cb, ldc, M, n0, n1, K, beta);
  }
}

// @ts-ignore: decorator
@inline function put(cp: usize, v: f32, beta: i32): void {
  store<f32>(cp, beta ? load<f32>(cp) + v : v);
}

// C[m, n] = dot(A[m, 0:K], B[0:K, n]) with A rows and B columns contiguous along k.
function dotCols(a: usize, sAm: i32, b: usize, sBn: i32, c: usize, ldc: i32, M: i32, n0: i32, n1: i32, K: i32, beta: i32): void {
  const K4 = K & ~3;
  let m = 0;
  for (; m + 2 <= M; m += 2) {
    const a0 = a + off(m * sAm), a1 = a0 + off(sAm);
    const c0 = c + off(m * ldc), c1 = c0 + off(ldc);
    let n = n0;
    for (; n + 4 <= n1; n += 4) {
      const b0 = b + off(n * sBn), b1 = b0 + off(sBn), b2 = b1 + off(sBn), b3 = b2 + off(sBn);
      let s00 = f32x4.splat(0), s01 = f32x4.splat(0), s02 = f32x4.splat(0), s03 = f32x4.splat(0);
      let s10 = f32x4.splat(0), s11 = f32x4.splat(0), s12 = f32x4.splat(0), s13 = f32x4.splat(0);
      for (let k = 0; k < K4; k += 4) {
        const o = off(k);
        const x0 = v128.load(a0 + o), x1 = v128.load(a1 + o);
        let y = v128.load(b0 + o); s00 = fma4(x0, y, s00); s10 = fma4(x1, y, s10);
        y = v128.load(b1 + o); s01 = fma4(x0, y, s01); s11 = fma4(x1, y, s11);
        y = v128.load(b2 + o); s02 = fma4(x0, y, s02); s12 = fma4(x1, y, s12);
        y = v128.load(b3 + o); s03 = fma4(x0, y, s03); s13 = fma4(x1, y, s13);
      }
      let r00 = hsum4(s00), r01 = hsum4(s01), r02 = hsum4(s02), r03 = hsum4(s03);
      let r10 = hsum4(s10), r11 = hsum4(s11), r12 = hsum4(s12), r13 = hsum4(s13);
      for (let k = K4; k < K; k++) {
        const o = off(k);
        const x0 = load<f32>(a0 + o), x1 = load<f32>(a1 + o);
        const y0 = load<f32>(b0 + o), y1 = load<f32>(b1 + o), y2 = load<f32>(b2 + o), y3 = load<f32>(b3 + o);
        r00 += x0 * y0; r01 += x0 * y1; r02 += x0 * y2; r03 += x0 * y3;
        r10 += x1 * y0; r11 += x1 * y1; r12 += x1 * y2; r13 += x1 * y3;
      }
      put(c0 + off(n), r00, beta); put(c0 + off(n + 1), r01, beta); put(c0 + off(n + 2), r02, beta); put(c0 + off(n + 3), r03, beta);
      put(c1 + off(n), r10, beta); put(c1 + off(n + 1), r11, beta); put(c1 + off(n + 2), r12, beta); put(c1 + off(n + 3), r13, beta);
    }
    for (; n < n1; n++) {
      const b0 = b + off(n * sBn);
      let s0 = f32x4.splat(0), s1 = f32x4.splat(0);
      for (let k = 0; k < K4; k += 4) {
        const o = off(k);
        const y = v128.load(b0 + o);
        s0 = fma4(v128.load(a0 + o), y, s0); s1 = fma4(v128.load(a1 + o), y, s1);
      }
      let r0 = hsum4(s0), r1 = hsum4(s1);
      for (let k = K4; k < K; k++) {
        const y = load<f32>(b0 + off(k));
        r0 += load<f32>(a0 + off(k)) * y; r1 += load<f32>(a1 + off(k)) * y;
      }
      put(c0 + off(n), r0, beta); put(c1 + off(n), r1, beta);
    }
  }
  for (; m < M; m++) {
    const a0 = a + off(m * sAm);
    const c0 = c + off(m * ldc);
    let n = n0;
    for (; n + 6 <= n1; n += 6) {
      const sb = off(sBn);
      const b0 = b + off(n * sBn), b1 = b0 + sb, b2 = b1 + sb, b3 = b2 + sb, b4 = b3 + sb, b5 = b4 + sb;
      let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
      let s4 = f32x4.splat(0), s5 = f32x4.splat(0);
      for (let k = 0; k < K4; k += 4) {
        const o = off(k);
        const x = v128.load(a0 + o);
        s0 = fma4(x, v128.load(b0 + o), s0);
        s1 = fma4(x, v128.load(b1 + o), s1);
        s2 = fma4(x, v128.load(b2 + o), s2);
        s3 = fma4(x, v128.load(b3 + o), s3);
        s4 = fma4(x, v128.load(b4 + o), s4);
        s5 = fma4(x, v128.load(b5 + o), s5);
      }
      let r0 = hsum4(s0), r1 = hsum4(s1), r2 = hsum4(s2), r3 = hsum4(s3);
      let r4 = hsum4(s4), r5 = hsum4(s5);
      for (let k = K4; k < K; k++) {
        const o = off(k);
        const x = load<f32>(a0 + o);
        r0 += x * load<f32>(b0 + o); r1 += x * load<f32>(b1 + o); r2 += x * load<f32>(b2 + o); r3 += x * load<f32>(b3 + o);
        r4 += x * load<f32>(b4 + o); r5 += x * load<f32>(b5 + o);
      }
      const cp = c0 + off(n);
      put(cp, r0, beta); put(cp + 4, r1, beta); put(cp + 8, r2, beta); put(cp + 12, r3, beta);
      put(cp + 16, r4, beta); put(cp + 20, r5, beta);
    }
    for (; n + 4 <= n1; n += 4) {
      const b0 = b + off(n * sBn), b1 = b0 + off(sBn), b2 = b1 + off(sBn), b3 = b2 + off(sBn);
      let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
      for (let k = 0; k < K4; k += 4) {
        const o = off(k);
        const x = v128.load(a0 + o);
        s0 = fma4(x, v128.load(b0 + o), s0);
        s1 = fma4(x, v128.load(b1 + o), s1);
        s2 = fma4(x, v128.load(b2 + o), s2);
        s3 = fma4(x, v128.load(b3 + o), s3);
      }
      let r0 = hsum4(s0), r1 = hsum4(s1), r2 = hsum4(s2), r3 = hsum4(s3);
      for (let k = K4; k < K; k++) {
        const o = off(k);
        const x = load<f32>(a0 + o);
        r0 += x * load<f32>(b0 + o); r1 += x * load<f32>(b1 + o); r2 += x * load<f32>(b2 + o); r3 += x * load<f32>(b3 + o);
      }
      put(c0 + off(n), r0, beta); put(c0 + off(n + 1), r1, beta); put(c0 + off(n + 2), r2, beta); put(c0 + off(n + 3), r3, beta);
    }
    for (; n < n1; n++) {
      const b0 = b + off(n * sBn);
      let s0 = f32x4.splat(0);
      for (let k = 0; k < K4; k += 4) s0 = fma4(v128.load(a0 + off(k)), v128.load(b0 + off(k)), s0);
      let r0 = hsum4(s0);
      for (let k = K4; k < K; k++) r0 += load<f32>(a0 + off(k)) * load<f32>(b0 + off(k));
      put(c0 + off(n), r0, beta);
    }
  }
}

// C[m, n0:n1] = Σ_k A[m, k] · B[k, n0:n1] with B rows contiguous along n.
function axpyRows(a: usize, sAm: i32, sAk: i32, b: usize, sBk: i32, c: usize, ldc: i32, M: i32, n0: i32, n1: i32, K: i32, beta: i32): void {
  const rsb = off(sBk), ksa = off(sAk);
  let m = 0;
  for (; m + 2 <= M; m += 2) {
    const a0 = a + off(m * sAm), a1 = a0 + off(sAm);
    const c0 = c + off(m * ldc), c1 = c0 + off(ldc);
    let n = n0;
    for (; n + 16 <= n1; n += 16) {
      let s00 = f32x4.splat(0), s01 = f32x4.splat(0), s02 = f32x4.splat(0), s03 = f32x4.splat(0);
      let s10 = f32x4.splat(0), s11 = f32x4.splat(0), s12 = f32x4.splat(0), s13 = f32x4.splat(0);
      let bp = b + off(n), p0 = a0, p1 = a1;
      for (let k = 0; k < K; k++) {
        const x0 = v128.load32_splat(p0), x1 = v128.load32_splat(p1);
        let y = v128.load(bp); s00 = fma4(x0, y, s00); s10 = fma4(x1, y, s10);
        y = v128.load(bp, 16); s01 = fma4(x0, y, s01); s11 = fma4(x1, y, s11);
        y = v128.load(bp, 32); s02 = fma4(x0, y, s02); s12 = fma4(x1, y, s12);
        y = v128.load(bp, 48); s03 = fma4(x0, y, s03); s13 = fma4(x1, y, s13);
        bp += rsb; p0 += ksa; p1 += ksa;
      }
      storeRow4(c0 + off(n), s00, s01, s02, s03, beta);
      storeRow4(c1 + off(n), s10, s11, s12, s13, beta);
    }
    for (; n + 4 <= n1; n += 4) {
      let s0 = f32x4.splat(0), s1 = f32x4.splat(0);
      let bp = b + off(n), p0 = a0, p1 = a1;
      for (let k = 0; k < K; k++) {
        const y = v128.load(bp);
        s0 = fma4(v128.load32_splat(p0), y, s0); s1 = fma4(v128.load32_splat(p1), y, s1);
        bp += rsb; p0 += ksa; p1 += ksa;
      }
      storeV(c0 + off(n), s0, beta); storeV(c1 + off(n), s1, beta);
    }
    for (; n < n1; n++) {
      let r0: f32 = 0, r1: f32 = 0;
      let bp = b + off(n), p0 = a0, p1 = a1;
      for (let k = 0; k < K; k++) {
        const y = load<f32>(bp);
        r0 += load<f32>(p0) * y; r1 += load<f32>(p1) * y;
        bp += rsb; p0 += ksa; p1 += ksa;
      }
      put(c0 + off(n), r0, beta); put(c1 + off(n), r1, beta);
    }
  }
  for (; m < M; m++) {
    const a0 = a + off(m * sAm);
    const c0 = c + off(m * ldc);
    let n = n0;
    for (; n + 24 <= n1; n += 24) {
      let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
      let s4 = f32x4.splat(0), s5 = f32x4.splat(0);
      let bp = b + off(n), p0 = a0;
      for (let k = 0; k < K; k++) {
        const x = v128.load32_splat(p0);
        s0 = fma4(x, v128.load(bp), s0);
        s1 = fma4(x, v128.load(bp, 16), s1);
        s2 = fma4(x, v128.load(bp, 32), s2);
        s3 = fma4(x, v128.load(bp, 48), s3);
        s4 = fma4(x, v128.load(bp, 64), s4);
        s5 = fma4(x, v128.load(bp, 80), s5);
        bp += rsb; p0 += ksa;
      }
      storeRow4(c0 + off(n), s0, s1, s2, s3, beta);
      storeV(c0 + off(n + 16), s4, beta); storeV(c0 + off(n + 20), s5, beta);
    }
    for (; n + 16 <= n1; n += 16) {
      let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
      let bp = b + off(n), p0 = a0;
      for (let k = 0; k < K; k++) {
        const x = v128.load32_splat(p0);
        s0 = fma4(x, v128.load(bp), s0);
        s1 = fma4(x, v128.load(bp, 16), s1);
        s2 = fma4(x, v128.load(bp, 32), s2);
        s3 = fma4(x, v128.load(bp, 48), s3);
        bp += rsb; p0 += ksa;
      }
      storeRow4(c0 + off(n), s0, s1, s2, s3, beta);
    }
    for (; n + 4 <= n1; n += 4) {
      let s0 = f32x4.splat(0);
      let bp = b + off(n), p0 = a0;
      for (let k = 0; k < K; k++) {
        s0 = fma4(v128.load32_splat(p0), v128.load(bp), s0);
        bp += rsb; p0 += ksa;
      }
      storeV(c0 + off(n), s0, beta);
    }
    for (; n < n1; n++) {
      let r0: f32 = 0;
      let bp = b + off(n), p0 = a0;
      for (let k = 0; k < K; k++) {
        r0 += load<f32>(p0) * load<f32>(bp);
        bp += rsb; p0 += ksa;
      }
      put(c0 + off(n), r0, beta);
    }
  }
}

// @ts-ignore: decorator
@inline function storeV(p: usize, v: v128, beta: i32): void {
  v128.store(p, beta ? f32x4.add(v128.load(p), v) : v);
}

// @ts-ignore: decorator
@inline function storeRow4(p: usize, v0: v128, v1: v128, v2: v128, v3: v128, beta: i32): void {
  if (beta) {
    v0 = f32x4.add(v128.load(p), v0); v1 = f32x4.add(v128.load(p, 16), v1);
    v2 = f32x4.add(v128.load(p, 32), v2); v3 = f32x4.add(v128.load(p, 48), v3);
  }
  v128.store(p, v0); v128.store(p, v1, 16); v128.store(p, v2, 32); v128.store(p, v3, 48);
}
