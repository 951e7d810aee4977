// Fused causal / unmasked scaled-dot-product attention, forward and backward (contracts:
// attention_fwd / attention_bwd in ../../kernels.ts; reference: ../../ref/attention.ts).
//
// Forward (flash-attention's online softmax): each query row streams over its keys in blocks
// of BK; per block the scores are computed four keys at a time (four dot products whose
// partial sums are transposed and added), the running max m and sum l are updated, the
// accumulator is rescaled by e^{m_old − m_new} and p·V added. Nothing of size T·S exists.
// Work items are blocks of RB query rows of one (b, h), dealt round-robin to the threads
// (so that causal rows of every length are spread evenly).
//
// Backward (recompute P from the saved logsumexp): work items are (b, kv-head) groups, dealt
// round-robin; a group's thread owns its dK/dV rows and the dQ rows of the query heads that
// share the KV head, so no two threads write the same element (parallelism: B·Hkv groups).
// Per key block: for every query row that sees the block, p = e^{s − L}, dp = dO·v,
// ds = p·(dp − Δ) with Δ = dO·O; dQ += scale·Σ ds·k is added to the output; dV += p·dO and
// dK += ds·scale·q accumulate in scratch, RG rows at a time (one load/store of the dK/dV row
// per RG rows), and are written once per block.
//
// Scratch (per thread): scaled q rows, dO rows and accumulators padded to a multiple of 4 with
// zeros, block probabilities, and the dK/dV block accumulators: about (BK + RG)·(D4 + Dv4)
// floats. The ops layer keeps D + Dv ≤ 8192 so that this fits in SCRATCH_BYTES (4 MiB).
import { fma4, hsum4 } from './simd';
import { loadN, storeN, vexp, hsum64 } from './vmath';
import { scratch } from './scratch';
import { bf4, bfLo, bfHi, bfN } from './bf16';

const BK: i32 = 64; // keys per block
const RB: i32 = 8; // query rows per forward work item
const RG: i32 = 4; // query rows whose dK/dV updates are done together (backward)

// @ts-ignore: decorator
@inline function fp(base: usize, i: i32): usize { return base + ((<usize>i) << 2); }
// @ts-ignore: decorator
@inline function r4(n: i32): i32 { return (n + 3) & ~3; }

// [Σ a0, Σ a1, Σ a2, Σ a3]
// @ts-ignore: decorator
@inline function hsum4x4(a0: v128, a1: v128, a2: v128, a3: v128): v128 {
  const t0 = f32x4.add(f32x4.shuffle(a0, a1, 0, 4, 1, 5), f32x4.shuffle(a0, a1, 2, 6, 3, 7));
  const t1 = f32x4.add(f32x4.shuffle(a2, a3, 0, 4, 1, 5), f32x4.shuffle(a2, a3, 2, 6, 3, 7));
  return f32x4.add(f32x4.shuffle(t0, t1, 0, 1, 4, 5), f32x4.shuffle(t0, t1, 2, 3, 6, 7));
}

// Dot products of a (n floats, zero-padded to a multiple of 4) with the four rows b + r·bs
// (bs in bytes; rows are n floats, or n bf16 with `half`, not padded: the last n & 3 are loaded
// lane by lane).
// @ts-ignore: decorator
@inline function dot4(half: bool, a: usize, b: usize, bs: usize, n: i32): v128 {
  const z = f32x4.splat(0);
  let s0 = z, s1 = z, s2 = z, s3 = z;
  const b1 = b + bs, b2 = b1 + bs, b3 = b2 + bs;
  let o: usize = 0;
  if (half) {
    // o counts values: a at 4·o, the rows at 2·o.
    const end8 = <usize>(n & ~7);
    for (; o < end8; o += 8) {
      const x0 = v128.load(a + (o << 2)), x1 = v128.load(a + (o << 2), 16);
      const k0 = v128.load(b + (o << 1)), k1 = v128.load(b1 + (o << 1)), k2 = v128.load(b2 + (o << 1)), k3 = v128.load(b3 + (o << 1));
      s0 = fma4(x1, bfHi(k0), fma4(x0, bfLo(k0), s0));
      s1 = fma4(x1, bfHi(k1), fma4(x0, bfLo(k1), s1));
      s2 = fma4(x1, bfHi(k2), fma4(x0, bfLo(k2), s2));
      s3 = fma4(x1, bfHi(k3), fma4(x0, bfLo(k3), s3));
    }
    if (o + 4 <= <usize>n) {
      const x = v128.load(a + (o << 2));
      s0 = fma4(x, bf4(b + (o << 1)), s0);
      s1 = fma4(x, bf4(b1 + (o << 1)), s1);
      s2 = fma4(x, bf4(b2 + (o << 1)), s2);
      s3 = fma4(x, bf4(b3 + (o << 1)), s3);
      o += 4;
    }
    const t = n & 3;
    if (t) {
      const x = v128.load(a + (o << 2));
      s0 = fma4(x, bfN(b + (o << 1), t), s0);
      s1 = fma4(x, bfN(b1 + (o << 1), t), s1);
      s2 = fma4(x, bfN(b2 + (o << 1), t), s2);
      s3 = fma4(x, bfN(b3 + (o << 1), t), s3);
    }
    return hsum4x4(s0, s1, s2, s3);
  }
  const end = (<usize>(n & ~3)) << 2;
  for (; o < end; o += 16) {
    const x = v128.load(a + o);
    s0 = fma4(x, v128.load(b + o), s0);
    s1 = fma4(x, v128.load(b1 + o), s1);
    s2 = fma4(x, v128.load(b2 + o), s2);
    s3 = fma4(x, v128.load(b3 + o), s3);
  }
  const t = n & 3;
  if (t) {
    const x = v128.load(a + o);
    s0 = fma4(x, loadN(b + o, t, z), s0);
    s1 = fma4(x, loadN(b1 + o, t, z), s1);
    s2 = fma4(x, loadN(b2 + o, t, z), s2);
    s3 = fma4(x, loadN(b3 + o, t, z), s3);
  }
  return hsum4x4(s0, s1, s2, s3);
}

// One dot product, as dot4.
// @ts-ignore: decorator
@inline function dot1(half: bool, a: usize, b: usize, n: i32): f32 {
  const z = f32x4.splat(0);
  let s0 = z, s1 = z;
  let o: usize = 0;
  if (half) {
    const end8 = <usize>(n & ~7);
    for (; o < end8; o += 8) {
      const k = v128.load(b + (o << 1));
      s0 = fma4(v128.load(a + (o << 2)), bfLo(k), s0);
      s1 = fma4(v128.load(a + (o << 2), 16), bfHi(k), s1);
    }
    if (o + 4 <= <usize>n) { s0 = fma4(v128.load(a + (o << 2)), bf4(b + (o << 1)), s0); o += 4; }
    const t = n & 3;
    if (t) s1 = fma4(v128.load(a + (o << 2)), bfN(b + (o << 1), t), s1);
    return hsum4(f32x4.add(s0, s1));
  }
  const end = (<usize>(n & ~3)) << 2;
  for (; o + 16 < end; o += 32) {
    s0 = fma4(v128.load(a + o), v128.load(b + o), s0);
    s1 = fma4(v128.load(a + o, 16), v128.load(b + o, 16), s1);
  }
  if (o < end) { s0 = fma4(v128.load(a + o), v128.load(b + o), s0); o += 16; }
  const t = n & 3;
  if (t) s1 = fma4(v128.load(a + o), loadN(b + o, t, z), s1);
  return hsum4(f32x4.add(s0, s1));
}

// dst[0, r4(n)) = c·src[0, n), zero-padded.
function padRow(dst: usize, src: usize, n: i32, c: f32): void {
  const cv = f32x4.splat(c);
  let j = 0;
  for (; j + 4 <= n; j += 4) v128.store(fp(dst, j), f32x4.mul(cv, v128.load(fp(src, j))));
  if (j < n) v128.store(fp(dst, j), f32x4.mul(cv, loadN(fp(src, j), n - j, f32x4.splat(0))));
}

// acc[0, len) += Σ_{j<n} w[j]·x_j, x_j = the len floats (bf16 with `half`) at xp + j·xs (xs in
// bytes); acc is padded to r4(len). Columns in strips of 16 (four registers) then 4, keys
// innermost.
// @ts-ignore: decorator
@inline function axpyRowsT(half: bool, acc: usize, w: usize, xp: usize, xs: usize, n: i32, len: i32): void {
  const z = f32x4.splat(0);
  let c = 0;
  for (; c + 16 <= len; c += 16) {
    const a = fp(acc, c);
    let r0 = v128.load(a), r1 = v128.load(a, 16), r2 = v128.load(a, 32), r3 = v128.load(a, 48);
    let x = half ? xp + ((<usize>c) << 1) : fp(xp, c);
    for (let j = 0; j < n; j++, x += xs) {
      const p = v128.load32_splat(fp(w, j));
      if (half) {
        const v0 = v128.load(x), v1 = v128.load(x, 16);
        r0 = fma4(p, bfLo(v0), r0);
        r1 = fma4(p, bfHi(v0), r1);
        r2 = fma4(p, bfLo(v1), r2);
        r3 = fma4(p, bfHi(v1), r3);
      } else {
        r0 = fma4(p, v128.load(x), r0);
        r1 = fma4(p, v128.load(x, 16), r1);
        r2 = fma4(p, v128.load(x, 32), r2);
        r3 = fma4(p, v128.load(x, 48), r3);
      }
    }
    v128.store(a, r0); v128.store(a, r1, 16); v128.store(a, r2, 32); v128.store(a, r3, 48);
  }
  for (; c + 4 <= len; c += 4) {
    const a = fp(acc, c);
    let r0 = v128.load(a);
    let x = half ? xp + ((<usize>c) << 1) : fp(xp, c);
    for (let j = 0; j < n; j++, x += xs) r0 = fma4(v128.load32_splat(fp(w, j)), half ? bf4(x) : v128.load(x), r0);
    v128.store(a, r0);
  }
  if (c < len) {
    const t = len - c, a = fp(acc, c);
    let r0 = v128.load(a);
    let x = half ? xp + ((<usize>c) << 1) : fp(xp, c);
    for (let j = 0; j < n; j++, x += xs) r0 = fma4(v128.load32_splat(fp(w, j)), half ? bfN(x, t) : loadN(x, t, z), r0);
    v128.store(a, r0);
  }
}
function axpyRows(acc: usize, w: usize, xp: usize, xs: usize, n: i32, len: i32): void { axpyRowsT(false, acc, w, xp, xs, n, len); }
function axpyRowsH(acc: usize, w: usize, xp: usize, xs: usize, n: i32, len: i32): void { axpyRowsT(true, acc, w, xp, xs, n, len); }

// y[0, n4) += c·x[0, n4) (both padded).
// @ts-ignore: decorator
@inline function axpyPadded(y: usize, x: usize, c: f32, n4: i32): void {
  const cv = f32x4.splat(c);
  for (let j = 0; j < n4; j += 4) v128.store(fp(y, j), fma4(cv, v128.load(fp(x, j)), v128.load(fp(y, j))));
}

// @ts-ignore: decorator
@inline function keysSeen(i: i32, T: i32, S: i32, causal: i32): i32 {
  if (!causal) return S;
  const n = S - T + i + 1;
  return n < 0 ? 0 : n > S ? S : n;
}

// ---------------------------------------------------------------------------------------------
// forward

// One query row: o[0, Dv) and its logsumexp. kp/vp: the KV head's first key/value row;
// ks/vs: their row strides in bytes; n keys (f32, or bf16 with `half`).
// @ts-ignore: decorator
@inline function fwdRowT(half: bool, orow: usize, lsep: usize, qrow: usize, kp: usize, ks: usize, vp: usize, vs: usize, n: i32, D: i32, Dv: i32, scale: f32): void {
  const qs = scratch(), acc = fp(qs, r4(D)), sb = fp(acc, r4(Dv));
  if (n == 0) {
    for (let c = 0; c < Dv; c++) store<f32>(fp(orow, c), 0);
    store<f32>(lsep, -Infinity);
    return;
  }
  padRow(qs, qrow, D, scale);
  memory.fill(acc, 0, (<usize>r4(Dv)) << 2);
  let m: f32 = -Infinity, l: f64 = 0;
  for (let j0 = 0; j0 < n; j0 += BK) {
    const nb = min(BK, n - j0);
    const kb = kp + <usize>j0 * ks, vb = vp + <usize>j0 * vs;
    // Scores of the block and their max.
    let mv = f32x4.splat(-Infinity), j = 0;
    for (; j + 4 <= nb; j += 4) {
      const s = dot4(half, qs, kb + <usize>j * ks, ks, D);
      v128.store(fp(sb, j), s);
      mv = f32x4.max(mv, s);
    }
    for (; j < nb; j++) {
      const s = dot1(half, qs, kb + <usize>j * ks, D);
      store<f32>(fp(sb, j), s);
      mv = f32x4.max(mv, f32x4.splat(s));
    }
    mv = f32x4.max(mv, f32x4.shuffle(mv, mv, 2, 3, 0, 1));
    mv = f32x4.max(mv, f32x4.shuffle(mv, mv, 1, 0, 3, 2));
    const mNew = max(m, f32x4.extract_lane(mv, 0));
    // p = e^{s − m_new} in place; l = l·e^{m − m_new} + Σ p.
    const mn = f32x4.splat(mNew);
    let ps = f32x4.splat(0);
    j = 0;
    for (; j + 4 <= nb; j += 4) {
      const p = vexp(f32x4.sub(v128.load(fp(sb, j)), mn));
      v128.store(fp(sb, j), p);
      ps = f32x4.add(ps, p);
    }
    if (j < nb) {
      const p = vexp(f32x4.sub(loadN(fp(sb, j), nb - j, f32x4.splat(-Infinity)), mn));
      storeN(fp(sb, j), p, nb - j);
      ps = f32x4.add(ps, p);
    }
    if (m != mNew) {
      const corr = f32x4.extract_lane(vexp(f32x4.splat(m - mNew)), 0);
      l *= <f64>corr;
      const cv = f32x4.splat(corr);
      for (let c = 0; c < Dv; c += 4) v128.store(fp(acc, c), f32x4.mul(cv, v128.load(fp(acc, c))));
      m = mNew;
    }
    l += hsum64(ps);
    if (half) axpyRowsH(acc, sb, vb, vs, nb, Dv);
    else axpyRows(acc, sb, vb, vs, nb, Dv);
  }
  const inv = f32x4.splat(<f32>(1.0 / l));
  let c = 0;
  for (; c + 4 <= Dv; c += 4) v128.store(fp(orow, c), f32x4.mul(inv, v128.load(fp(acc, c))));
  if (c < Dv) storeN(fp(orow, c), f32x4.mul(inv, v128.load(fp(acc, c))), Dv - c);
  store<f32>(lsep, <f32>(<f64>m + Math.log(l)));
}
function fwdRow(orow: usize, lsep: usize, qrow: usize, kp: usize, ks: usize, vp: usize, vs: usize, n: i32, D: i32, Dv: i32, scale: f32): void {
  fwdRowT(false, orow, lsep, qrow, kp, ks, vp, vs, n, D, Dv, scale);
}
function fwdRowH(orow: usize, lsep: usize, qrow: usize, kp: usize, ks: usize, vp: usize, vs: usize, n: i32, D: i32, Dv: i32, scale: f32): void {
  fwdRowT(true, orow, lsep, qrow, kp, ks, vp, vs, n, D, Dv, scale);
}

export function attention_fwd(
  o: usize, lse: usize, q: usize, k: usize, v: usize,
  B: i32, Hq: i32, Hkv: i32, T: i32, S: i32, D: i32, Dv: i32,
  sQb: i32, sQh: i32, sQt: i32, sKb: i32, sKh: i32, sKs: i32, sVb: i32, sVh: i32, sVs: i32,
  scale: f64, causal: i32, kvHalf: i32, tid: i32, nt: i32,
): void {
  const G = Hq / Hkv, nblk = (T + RB - 1) / RB;
  const items = B * Hq * nblk;
  const e = kvHalf ? 1 : 2; // log2 of the bytes of a key/value element
  const ks = (<usize>sKs) << e, vs = (<usize>sVs) << e;
  for (let it = tid; it < items; it += nt) {
    const bh = it / nblk, i0 = (it - bh * nblk) * RB;
    const b = bh / Hq, h = bh - b * Hq, kh = h / G;
    const kp = k + ((<usize>b * <usize>sKb + <usize>kh * <usize>sKh) << e);
    const vp = v + ((<usize>b * <usize>sVb + <usize>kh * <usize>sVh) << e);
    const qh = q + ((<usize>b * <usize>sQb + <usize>h * <usize>sQh) << 2);
    const i1 = min(T, i0 + RB);
    for (let i = i0; i < i1; i++) {
      const row = bh * T + i;
      const orow = o + (<usize>row * <usize>Dv << 2), qrow = qh + (<usize>i * <usize>sQt << 2);
      if (kvHalf) fwdRowH(orow, fp(lse, row), qrow, kp, ks, vp, vs, keysSeen(i, T, S, causal), D, Dv, <f32>scale);
      else fwdRow(orow, fp(lse, row), qrow, kp, ks, vp, vs, keysSeen(i, T, S, causal), D, Dv, <f32>scale);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// backward

// dst[0, n4) += Σ_{r<rg} w[r·BK]·x[r·xs, +n4): the dK/dV row update of one key from the rg
// (1…4) query rows of a group (x: their padded q or dO rows, xs floats apart).
// @ts-ignore: decorator
@inline function axpyGroup(dst: usize, w: usize, x: usize, xs: i32, rg: i32, n4: i32): void {
  const x1 = fp(x, xs), x2 = fp(x1, xs), x3 = fp(x2, xs);
  if (rg == 4) {
    const w0 = f32x4.splat(load<f32>(w)), w1 = f32x4.splat(load<f32>(fp(w, BK)));
    const w2 = f32x4.splat(load<f32>(fp(w, 2 * BK))), w3 = f32x4.splat(load<f32>(fp(w, 3 * BK)));
    for (let c = 0; c < n4; c += 4) {
      let a = v128.load(fp(dst, c));
      a = fma4(w0, v128.load(fp(x, c)), a);
      a = fma4(w1, v128.load(fp(x1, c)), a);
      a = fma4(w2, v128.load(fp(x2, c)), a);
      a = fma4(w3, v128.load(fp(x3, c)), a);
      v128.store(fp(dst, c), a);
    }
  } else {
    for (let r = 0; r < rg; r++) {
      const wr = f32x4.splat(load<f32>(fp(w, r * BK))), xr = fp(x, r * xs);
      for (let c = 0; c < n4; c += 4) v128.store(fp(dst, c), fma4(wr, v128.load(fp(xr, c)), v128.load(fp(dst, c))));
    }
  }
}

export function attention_bwd(
  dq: usize, dk: usize, dv: usize, q: usize, k: usize, v: usize, o: usize, lse: usize, dout: usize,
  B: i32, Hq: i32, Hkv: i32, T: i32, S: i32, D: i32, Dv: i32,
  sQb: i32, sQh: i32, sQt: i32, sKb: i32, sKh: i32, sKs: i32, sVb: i32, sVh: i32, sVs: i32,
  scale: f64, causal: i32, tid: i32, nt: i32,
): void {
  const G = Hq / Hkv, D4 = r4(D), Dv4 = r4(Dv);
  const ks = (<usize>sKs) << 2, vs = (<usize>sVs) << 2, sc = <f32>scale;
  // Scratch, for a group of up to RG query rows: qs (RG·D4) | dob (RG·Dv4) | dqa (D4) |
  // pb (RG·BK) | dsb (RG·BK) | dKb (BK·D4) | dVb (BK·Dv4)
  const qs = scratch(), dob = fp(qs, RG * D4), dqa = fp(dob, RG * Dv4), pb = fp(dqa, D4), dsb = fp(pb, RG * BK);
  const dKb = fp(dsb, RG * BK), dVb = fp(dKb, BK * D4);
  const z = f32x4.splat(0);
  for (let grp = tid; grp < B * Hkv; grp += nt) {
    const b = grp / Hkv, kh = grp - b * Hkv, h0 = kh * G;
    const kp = k + ((<usize>b * <usize>sKb + <usize>kh * <usize>sKh) << 2);
    const vp = v + ((<usize>b * <usize>sVb + <usize>kh * <usize>sVh) << 2);
    // The dQ rows of heads h0 … h0+G−1 are one contiguous block.
    const dq0 = dq + ((<usize>(b * Hq + h0) * <usize>T * <usize>D) << 2);
    memory.fill(dq0, 0, (<usize>G * <usize>T * <usize>D) << 2);
    for (let j0 = 0; j0 < S; j0 += BK) {
      const j1 = min(S, j0 + BK), nb = j1 - j0;
      const kb = kp + <usize>j0 * ks, vb = vp + <usize>j0 * vs;
      memory.fill(dKb, 0, (<usize>nb * <usize>D4) << 2);
      memory.fill(dVb, 0, (<usize>nb * <usize>Dv4) << 2);
      // Causal: row i sees key j0 iff S−T+i ≥ j0.
      const iStart = causal ? max(0, j0 - (S - T)) : 0;
      for (let h = h0; h < h0 + G; h++) {
        const qh = q + ((<usize>b * <usize>sQb + <usize>h * <usize>sQh) << 2);
        for (let i0 = iStart; i0 < T; i0 += RG) {
          const rg = min(RG, T - i0);
          // The group's rows see keys [j0, j0 + n_r); p and ds are zero beyond n_r up to nmax.
          let nmax = 0;
          for (let r = 0; r < rg; r++) {
            const i = i0 + r, n = min(j1, keysSeen(i, T, S, causal)) - j0;
            const row = (b * Hq + h) * T + i;
            const qr = fp(qs, r * D4), dr = fp(dob, r * Dv4), pr = fp(pb, r * BK), dsr = fp(dsb, r * BK);
            padRow(qr, qh + (<usize>i * <usize>sQt << 2), D, sc);
            padRow(dr, dout + (<usize>row * <usize>Dv << 2), Dv, 1);
            const delta = f32x4.splat(dot1(false, dr, o + (<usize>row * <usize>Dv << 2), Dv));
            const L = f32x4.splat(load<f32>(fp(lse, row)));
            let j = 0;
            for (; j + 4 <= n; j += 4) {
              const s = dot4(false, qr, kb + <usize>j * ks, ks, D);
              const dp = dot4(false, dr, vb + <usize>j * vs, vs, Dv);
              const p = vexp(f32x4.sub(s, L));
              v128.store(fp(pr, j), p);
              v128.store(fp(dsr, j), f32x4.mul(p, f32x4.sub(dp, delta)));
            }
            for (; j < n; j++) {
              const s = dot1(false, qr, kb + <usize>j * ks, D), dp = dot1(false, dr, vb + <usize>j * vs, Dv);
              const p = f32x4.extract_lane(vexp(f32x4.sub(f32x4.splat(s), L)), 0);
              store<f32>(fp(pr, j), p);
              store<f32>(fp(dsr, j), p * (dp - f32x4.extract_lane(delta, 0)));
            }
            for (; j < nb; j++) { store<f32>(fp(pr, j), 0); store<f32>(fp(dsr, j), 0); }
            if (n > nmax) nmax = n;
            if (n <= 0) continue;
            // dQ_i += scale·Σ ds_j·k_j
            memory.fill(dqa, 0, (<usize>D4) << 2);
            axpyRows(dqa, dsr, kb, ks, n, D);
            const dqr = dq + (<usize>row * <usize>D << 2), sv = f32x4.splat(sc);
            let c = 0;
            for (; c + 4 <= D; c += 4) v128.store(fp(dqr, c), fma4(sv, v128.load(fp(dqa, c)), v128.load(fp(dqr, c))));
            if (c < D) storeN(fp(dqr, c), fma4(sv, v128.load(fp(dqa, c)), loadN(fp(dqr, c), D - c, z)), D - c);
          }
          // dV_j += Σ_r p_rj·dO_r, dK_j += Σ_r ds_rj·(scale·q_r)
          for (let j = 0; j < nmax; j++) {
            axpyGroup(fp(dVb, j * Dv4), fp(pb, j), dob, Dv4, rg, Dv4);
            axpyGroup(fp(dKb, j * D4), fp(dsb, j), qs, D4, rg, D4);
          }
        }
      }
      // Write the block's dK/dV rows.
      const base = <usize>(b * Hkv + kh) * <usize>S;
      for (let jj = 0; jj < nb; jj++) {
        const dkr = dk + ((base + <usize>(j0 + jj)) * <usize>D << 2), dvr = dv + ((base + <usize>(j0 + jj)) * <usize>Dv << 2);
        const sk = fp(dKb, jj * D4), sv = fp(dVb, jj * Dv4);
        let c = 0;
        for (; c + 4 <= D; c += 4) v128.store(fp(dkr, c), v128.load(fp(sk, c)));
        if (c < D) storeN(fp(dkr, c), v128.load(fp(sk, c)), D - c);
        c = 0;
        for (; c + 4 <= Dv; c += 4) v128.store(fp(dvr, c), v128.load(fp(sv, c)));
        if (c < Dv) storeN(fp(dvr, c), v128.load(fp(sv, c)), Dv - c);
      }
    }
  }
}
