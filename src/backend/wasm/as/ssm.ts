// State-space-model kernels: depthwise causal conv1d and Mamba's selective scan, forward and
// backward (contracts: causal_conv1d_* / selective_scan_* in ../../kernels.ts; reference:
// ../../ref/ssm.ts).
//
// Both vectorise over four channels (the contiguous last dim of the (batch, time, channel)
// layout): a lane is a channel, so the scan's y = Σ_n h[n]·C[n] needs no horizontal sum and any
// N (1, 5, 16 …) runs at full width; a tail block of 1–3 channels is loaded zero-padded (zero u,
// dy and state keep the padding lanes at zero in every sum).
//
// causal conv1d: per (channel block, batch row) the weights are packed (K × 4 channels) and
// time is processed in tiles of TL outputs, whose K−1+TL inputs are first packed into scratch
// (zeros or `init` before time 0): the inner loop then reads contiguous v128s, four outputs at
// a time sharing each weight load (a sliding window of four input registers). With zero init
// the taps that only see the zero prefix are skipped (halving K = L convolutions). The backward
// gives dx the same form (reversed taps over dy, zero past L), dw[k] = Σ_l dy[l]·xx[l+k] four
// taps at a time, dbias = Σ dy; its work items are channel blocks (each walks every batch row,
// so dw/dbias need no cross-thread sum). Forward work items: (channel block, batch row).
//
// selective scan forward: work items (channel block, batch row); h (N × 4 channels) lives in
// scratch. Time goes in passes of TF steps: first dt (softplus) and dt·u for the pass, then all
// its exp(dt·A[n]) in one flat loop (vexpC: vmath's vexp with its constants read from a table,
// since V8 rebuilds a v128 constant from immediates at every use), then the recurrence
// h[n] = e·h[n] + dt·u·B[n], y += h[n]·C[n] (B, C broadcast to the four lanes; two partial sums).
//
// selective scan backward: work items (channel group, batch row) (group: a multiple of 4
// channels chosen by the op), so the dB/dC partial of (group, row) has one writer. Chunks of
// time are visited last to first; for each block of four channels of the group the chunk's
// states are recomputed from the forward's checkpoint (e = exp(dt·A) and h before/after each
// step kept in scratch records), then the chunk is walked backwards with the carried state
// gradient g (kept per block across chunks). dB/dC are accumulated lane-wise over the group's
// blocks for the chunk and summed across lanes once per (t, n); dA, dD and the bias gradient
// accumulate per block over time. Scratch (v128 slots): 13 + chunk·(5N + 3) + (group/4)·(4N + 2);
// the op keeps chunk·(5N + 3) ≤ 131072 and (group/4)·(4N + 2) ≤ 65536 (4 MiB in all).
//
// Measured (forward, Bt 8 × L 256 × Din 576 × N 16, one thread): vectorising over four channels
// 35 ms; over N (one channel at a time, h in registers for N = 16) 82 ms: the per-(t, channel)
// scalar work (softplus, gate, the horizontal sum of y) dominates there.
import { fma4, hsum4 } from './simd';
import { shareStart, loadN, storeN, vexp, vsigmoid, vsoftplusLow } from './vmath';
import { scratch } from './scratch';

const TL: i32 = 256; // conv outputs per time tile

// @ts-ignore: decorator
@inline function fp(base: usize, i: i32): usize { return base + ((<usize>i) << 2); }
// @ts-ignore: decorator
@inline function vp(base: usize, i: i32): usize { return base + ((<usize>i) << 4); }
// The nl (1..4) floats at p, zero-padded.
// @ts-ignore: decorator
@inline function ld(p: usize, nl: i32): v128 { return nl == 4 ? v128.load(p) : loadN(p, nl, f32x4.splat(0)); }
// @ts-ignore: decorator
@inline function st(p: usize, v: v128, nl: i32): void { if (nl == 4) v128.store(p, v); else storeN(p, v, nl); }
// nl floats at stride s bytes, zero-padded.
// @ts-ignore: decorator
@inline function gather(p: usize, s: usize, nl: i32): v128 {
  let v = f32x4.splat(0);
  v = f32x4.replace_lane(v, 0, load<f32>(p));
  if (nl > 1) v = f32x4.replace_lane(v, 1, load<f32>(p + s));
  if (nl > 2) v = f32x4.replace_lane(v, 2, load<f32>(p + 2 * s));
  if (nl > 3) v = f32x4.replace_lane(v, 3, load<f32>(p + 3 * s));
  return v;
}
// @ts-ignore: decorator
@inline function scatter(p: usize, s: usize, v: v128, nl: i32): void {
  store<f32>(p, f32x4.extract_lane(v, 0));
  if (nl > 1) store<f32>(p + s, f32x4.extract_lane(v, 1));
  if (nl > 2) store<f32>(p + 2 * s, f32x4.extract_lane(v, 2));
  if (nl > 3) store<f32>(p + 3 * s, f32x4.extract_lane(v, 3));
}

// ---------------------------------------------------------------------------------------------
// causal conv1d

// wT[k] = w[c0 .. c0+nl, k] (K slots).
function packW(wT: usize, w: usize, c0: i32, nl: i32, K: i32): void {
  const s = (<usize>K) << 2;
  for (let k = 0; k < K; k++) v128.store(vp(wT, k), gather(fp(w, c0 * K + k), s, nl));
}

// xs[r] = xx[b, j0 + r, c0 .. c0+nl] for r < rows (xx = concat(init or zeros, x)), then three
// zero slots.
function packXX(xs: usize, x: usize, init: usize, b: i32, j0: i32, rows: i32, c0: i32, nl: i32, C: i32, K: i32, sXb: i32, sXl: i32): void {
  const z = f32x4.splat(0);
  for (let r = 0; r < rows; r++) {
    const j = j0 + r;
    let v = z;
    if (j < K - 1) { if (init) v = ld(fp(init, (b * (K - 1) + j) * C + c0), nl); }
    else v = ld(fp(x, b * sXb + (j - K + 1) * sXl + c0), nl);
    v128.store(vp(xs, r), v);
  }
  v128.store(vp(xs, rows), z); v128.store(vp(xs, rows + 1), z); v128.store(vp(xs, rows + 2), z);
}

// out[i] = Σ_{k0 ≤ k < k1} w[k]·xs[l + i + k] for i = 0..3 (w: K slots, reversed when rev).
// @ts-ignore: decorator
@inline function conv4(xs: usize, l: i32, w: usize, k0: i32, k1: i32, K: i32, rev: bool, init: v128, out: usize): void {
  let a0 = init, a1 = init, a2 = init, a3 = init;
  if (k0 < k1) {
    let p = vp(xs, l + k0);
    let x0 = v128.load(p), x1 = v128.load(p, 16), x2 = v128.load(p, 32);
    for (let k = k0; k < k1; k++) {
      const x3 = v128.load(p, 48);
      const wk = v128.load(vp(w, rev ? K - 1 - k : k));
      a0 = fma4(wk, x0, a0); a1 = fma4(wk, x1, a1); a2 = fma4(wk, x2, a2); a3 = fma4(wk, x3, a3);
      x0 = x1; x1 = x2; x2 = x3;
      p += 16;
    }
  }
  v128.store(out, a0); v128.store(out, a1, 16); v128.store(out, a2, 32); v128.store(out, a3, 48);
}

export function causal_conv1d_fwd(y: usize, x: usize, w: usize, bias: usize, init: usize,
  B: i32, L: i32, C: i32, K: i32, sXb: i32, sXl: i32, tid: i32, nt: i32): void {
  const nb = (C + 3) >> 2;
  const s = shareStart(B * nb, tid, nt, 1), e = shareStart(B * nb, tid + 1, nt, 1);
  const wT = scratch(), out = vp(wT, K), xs = vp(out, 4);
  let last = -1;
  for (let it = s; it < e; it++) {
    const blk = it / B, b = it % B, c0 = blk << 2, nl = min(4, C - c0);
    if (blk != last) { packW(wT, w, c0, nl, K); last = blk; }
    const bv = bias ? ld(fp(bias, c0), nl) : f32x4.splat(0);
    for (let l0 = 0; l0 < L; l0 += TL) {
      const n = min(TL, L - l0);
      packXX(xs, x, init, b, l0, n + K - 1, c0, nl, C, K, sXb, sXl);
      for (let l = 0; l < n; l += 4) {
        // With zero init, taps k < K−1−(l0+l+3) see only the zero prefix for all four outputs.
        const k0 = init ? 0 : max(0, K - 1 - (l0 + l + 3));
        conv4(xs, l, wT, k0, K, K, false, bv, out);
        const m = min(4, n - l);
        for (let i = 0; i < m; i++) st(fp(y, (b * L + l0 + l + i) * C + c0), v128.load(vp(out, i)), nl);
      }
    }
  }
}

export function causal_conv1d_bwd(dx: usize, dw: usize, dbias: usize, dy: usize, x: usize, w: usize, init: usize,
  B: i32, L: i32, C: i32, K: i32, sXb: i32, sXl: i32, tid: i32, nt: i32): void {
  const nb = (C + 3) >> 2;
  const s = shareStart(nb, tid, nt, 1), e = shareStart(nb, tid + 1, nt, 1);
  const z = f32x4.splat(0);
  // Scratch: wT (K), dwacc (K + 3), out (4), dys (TL + K + 2), xs (TL + K + 2).
  const wT = scratch(), dwacc = vp(wT, K), out = vp(dwacc, K + 3), dys = vp(out, 4), xs = vp(dys, TL + K + 2);
  for (let blk = s; blk < e; blk++) {
    const c0 = blk << 2, nl = min(4, C - c0);
    packW(wT, w, c0, nl, K);
    for (let k = 0; k < K + 3; k++) v128.store(vp(dwacc, k), z);
    let db = z;
    for (let b = 0; b < B; b++) {
      for (let l0 = 0; l0 < L; l0 += TL) {
        const n = min(TL, L - l0), span = n + K - 1;
        // dys[r] = dy[b, l0 + r] (zero from L on), r < span + 3.
        for (let r = 0; r < span + 3; r++) {
          const l = l0 + r;
          v128.store(vp(dys, r), l < L ? ld(fp(dy, (b * L + l) * C + c0), nl) : z);
        }
        for (let r = 0; r < n; r++) db = f32x4.add(db, v128.load(vp(dys, r)));
        if (dx) {
          // dx[l0+j] = Σ_m w[K−1−m]·dy[l0+j+m]; taps past L see zeros.
          for (let j = 0; j < n; j += 4) {
            conv4(dys, j, wT, 0, min(K, L - l0 - j), K, true, z, out);
            const m = min(4, n - j);
            for (let i = 0; i < m; i++) st(fp(dx, (b * L + l0 + j + i) * C + c0), v128.load(vp(out, i)), nl);
          }
        }
        if (dw) {
          packXX(xs, x, init, b, l0, span, c0, nl, C, K, sXb, sXl);
          // dw[k+i] += Σ_{j<n} dy[l0+j]·xx[l0+j+k+i], four taps at a time.
          for (let k = 0; k < K; k += 4) {
            const j0 = init ? 0 : min(n, max(0, K - 1 - (l0 + k + 3)));
            let a0 = z, a1 = z, a2 = z, a3 = z;
            if (j0 < n) {
              let p = vp(xs, j0 + k), q = vp(dys, j0);
              let x0 = v128.load(p), x1 = v128.load(p, 16), x2 = v128.load(p, 32);
              for (let j = j0; j < n; j++) {
                const x3 = v128.load(p, 48), d = v128.load(q);
                a0 = fma4(d, x0, a0); a1 = fma4(d, x1, a1); a2 = fma4(d, x2, a2); a3 = fma4(d, x3, a3);
                x0 = x1; x1 = x2; x2 = x3;
                p += 16; q += 16;
              }
            }
            const o = vp(dwacc, k);
            v128.store(o, f32x4.add(v128.load(o), a0));
            v128.store(o, f32x4.add(v128.load(o, 16), a1), 16);
            v128.store(o, f32x4.add(v128.load(o, 32), a2), 32);
            v128.store(o, f32x4.add(v128.load(o, 48), a3), 48);
          }
        }
      }
    }
    if (dw) {
      const sk = (<usize>K) << 2;
      for (let k = 0; k < K; k++) scatter(fp(dw, c0 * K + k), sk, v128.load(vp(dwacc, k)), nl);
    }
    if (dbias) st(fp(dbias, c0), db, nl);
  }
}

// ---------------------------------------------------------------------------------------------
// selective scan

// dt = delta + bias, through PyTorch's softplus (threshold 20) when sp.
// @ts-ignore: decorator
@inline function deltaT(raw: v128, sp: i32): v128 {
  return sp ? v128.bitselect(raw, vsoftplusLow(raw), f32x4.gt(raw, f32x4.splat(20.0))) : raw;
}

// The constants of vmath's vexp, stored in scratch by expTable: V8 rebuilds every v128 constant
// from immediates at each use (three instructions), and vexp has thirteen, so the exp loops below
// read them from memory instead.
const EXP_SLOTS: i32 = 13;
function expTable(c: usize): void {
  v128.store(c, f32x4.splat(89.0)); v128.store(c, f32x4.splat(-104.0), 16);
  v128.store(c, f32x4.splat(1.44269504088896341), 32); v128.store(c, f32x4.splat(12582912.0), 48);
  v128.store(c, f32x4.splat(0.693359375), 64); v128.store(c, f32x4.splat(-2.12194440e-4), 80);
  v128.store(c, f32x4.splat(1.9875691500e-4), 96); v128.store(c, f32x4.splat(1.3981999507e-3), 112);
  v128.store(c, f32x4.splat(8.3334519073e-3), 128); v128.store(c, f32x4.splat(4.1665795894e-2), 144);
  v128.store(c, f32x4.splat(1.6666665459e-1), 160); v128.store(c, f32x4.splat(5.0000001201e-1), 176);
  v128.store(c, i32x4.splat(127), 192);
}
// vmath's vexp, operation for operation (the same results), constants from the table at c.
// @ts-ignore: decorator
@inline function vexpC(x: v128, c: usize): v128 {
  const xc = f32x4.pmax(f32x4.pmin(x, v128.load(c)), v128.load(c, 16));
  const t = fma4(xc, v128.load(c, 32), v128.load(c, 48));
  const n = f32x4.sub(t, v128.load(c, 48));
  let r = f32x4.sub(xc, f32x4.mul(n, v128.load(c, 64)));
  r = f32x4.sub(r, f32x4.mul(n, v128.load(c, 80)));
  let p = fma4(v128.load(c, 96), r, v128.load(c, 112));
  p = fma4(p, r, v128.load(c, 128));
  p = fma4(p, r, v128.load(c, 144));
  p = fma4(p, r, v128.load(c, 160));
  p = fma4(p, r, v128.load(c, 176));
  const y = f32x4.add(fma4(f32x4.mul(p, r), r, r), f32x4.splat(1.0));
  const ni = i32x4.sub(t, v128.load(c, 48));
  const n1 = i32x4.shr_s(ni, 1), n2 = i32x4.sub(ni, n1);
  const s1 = i32x4.shl(i32x4.add(n1, v128.load(c, 192)), 23);
  const s2 = i32x4.shl(i32x4.add(n2, v128.load(c, 192)), 23);
  return f32x4.mul(f32x4.mul(y, s1), s2);
}

// Steps t0 … t0+T−1 of one block of four channels (d0, nl lanes), first part: dts[i] = dt,
// dtus[i] = dt·u (and dsp[i] = softplus'(delta + bias) when dsp ≠ 0), then exp(dt·A[n]) in one
// flat loop, stored at ea + (i·N + n)·es (es in bytes); A[n] is at A4 + n·as.
// @ts-ignore: decorator
@inline function stepFactors(ea: usize, es: usize, dts: usize, dtus: usize, dsp: usize, ctab: usize, A4: usize, as: usize, u: usize, delta: usize, bias: v128,
  b: i32, t0: i32, T: i32, d0: i32, nl: i32, N: i32, sp: i32, sUb: i32, sUl: i32, sDb: i32, sDl: i32): void {
  for (let i = 0; i < T; i++) {
    const t = t0 + i;
    const raw = f32x4.add(ld(fp(delta, b * sDb + t * sDl + d0), nl), bias);
    const dt = deltaT(raw, sp);
    v128.store(vp(dts, i), dt);
    v128.store(vp(dtus, i), f32x4.mul(dt, ld(fp(u, b * sUb + t * sUl + d0), nl)));
    if (dsp) v128.store(vp(dsp, i), v128.bitselect(f32x4.splat(1.0), vsigmoid(raw), f32x4.gt(raw, f32x4.splat(20.0))));
  }
  let q = ea;
  for (let i = 0; i < T; i++) {
    const dt = v128.load(vp(dts, i));
    let a = A4;
    for (let n = 0; n < N; n++, q += es, a += as) v128.store(q, vexpC(f32x4.mul(dt, v128.load(a)), ctab));
  }
}

const TF: i32 = 64; // forward steps per pass of stepFactors

export function selective_scan_fwd(y: usize, ckpt: usize, state: usize, u: usize, delta: usize, A: usize, Bm: usize, Cm: usize,
  D: usize, z: usize, dbias: usize, Bt: i32, L: i32, Din: i32, N: i32, sp: i32, chunk: i32, meta: usize, tid: i32, nt: i32): void {
  const sUb = load<i32>(meta), sUl = load<i32>(meta, 4), sDb = load<i32>(meta, 8), sDl = load<i32>(meta, 12);
  const sZb = load<i32>(meta, 16), sZl = load<i32>(meta, 20), sBb = load<i32>(meta, 24), sBl = load<i32>(meta, 28);
  const sCb = load<i32>(meta, 32), sCl = load<i32>(meta, 36);
  const nb = (Din + 3) >> 2, nChunks = (L + chunk - 1) / chunk;
  const s = shareStart(Bt * nb, tid, nt, 1), e = shareStart(Bt * nb, tid + 1, nt, 1);
  if (s >= e) return;
  // Scratch (v128 slots): exp table, A4 (N), h (N), dts, dtus (TF each), ea (TF·N).
  const ctab = scratch(), A4 = vp(ctab, EXP_SLOTS), h = vp(A4, N), dts = vp(h, N), dtus = vp(dts, TF), ea = vp(dtus, TF);
  expTable(ctab);
  const sN = (<usize>N) << 2, zero = f32x4.splat(0);
  let last = -1;
  for (let it = s; it < e; it++) {
    const blk = it / Bt, b = it % Bt, d0 = blk << 2, nl = min(4, Din - d0);
    if (blk != last) { for (let n = 0; n < N; n++) v128.store(vp(A4, n), gather(fp(A, d0 * N + n), sN, nl)); last = blk; }
    const Dv = D ? ld(fp(D, d0), nl) : zero, bias = dbias ? ld(fp(dbias, d0), nl) : zero;
    const st0 = fp(state, (b * Din + d0) * N);
    for (let n = 0; n < N; n++) v128.store(vp(h, n), state ? gather(fp(st0, n), sN, nl) : zero);
    for (let t0 = 0; t0 < L; t0 += TF) {
      const T = min(TF, L - t0);
      stepFactors(ea, 16, dts, dtus, 0, ctab, A4, 16, u, delta, bias, b, t0, T, d0, nl, N, sp, sUb, sUl, sDb, sDl);
      let q = ea;
      for (let i = 0; i < T; i++) {
        const t = t0 + i;
        if (ckpt && t % chunk == 0) {
          const cp = fp(ckpt, ((b * nChunks + t / chunk) * Din + d0) * N);
          for (let n = 0; n < N; n++) scatter(fp(cp, n), sN, v128.load(vp(h, n)), nl);
        }
        const dtu = v128.load(vp(dtus, i));
        const Bp = fp(Bm, b * sBb + t * sBl), Cp = fp(Cm, b * sCb + t * sCl);
        // Two partial sums over n (the chain of dependent adds is the bound otherwise).
        let acc = f32x4.mul(Dv, ld(fp(u, b * sUb + t * sUl + d0), nl)), acc2 = zero;
        let hp = h, n = 0;
        for (; n + 2 <= N; n += 2, q += 32, hp += 32) {
          const h0 = fma4(v128.load(q), v128.load(hp), f32x4.mul(dtu, v128.load32_splat(fp(Bp, n))));
          const h1 = fma4(v128.load(q, 16), v128.load(hp, 16), f32x4.mul(dtu, v128.load32_splat(fp(Bp, n + 1))));
          v128.store(hp, h0);
          v128.store(hp, h1, 16);
          acc = fma4(h0, v128.load32_splat(fp(Cp, n)), acc);
          acc2 = fma4(h1, v128.load32_splat(fp(Cp, n + 1)), acc2);
        }
        if (n < N) {
          const h0 = fma4(v128.load(q), v128.load(hp), f32x4.mul(dtu, v128.load32_splat(fp(Bp, n))));
          v128.store(hp, h0);
          acc = fma4(h0, v128.load32_splat(fp(Cp, n)), acc);
          q += 16;
        }
        acc = f32x4.add(acc, acc2);
        if (z) {
          const zv = ld(fp(z, b * sZb + t * sZl + d0), nl);
          acc = f32x4.mul(acc, f32x4.mul(zv, vsigmoid(zv)));
        }
        st(fp(y, (b * L + t) * Din + d0), acc, nl);
      }
    }
    if (state) for (let n = 0; n < N; n++) scatter(fp(st0, n), sN, v128.load(vp(h, n)), nl);
  }
}

// Backward records (v128 each): per (step i of the chunk, n) R_* at rec + (i·N + n)·REC:
// exp(dt·A[n]), h before and after the step, and the lane-wise dB, dC sums over the group's
// blocks; per (block, n) P_* at blk + n·PER: A[n], the carried state gradient g, dA, and the
// running h of the recomputation; after the N records the block's dD and bias-gradient sums.
// One record pointer each keeps the inner loops' address arithmetic small.
const R_EA: usize = 0, R_HP: usize = 16, R_HN: usize = 32, R_GC: usize = 48, R_GB: usize = 64, REC: usize = 80;
const P_A: usize = 0, P_G: usize = 16, P_GA: usize = 32, P_H: usize = 48, PER: usize = 64;

export function selective_scan_bwd(du: usize, ddelta: usize, dz: usize, dA: usize, dD: usize, ddbias: usize, dB: usize, dC: usize,
  dy: usize, ckpt: usize, u: usize, delta: usize, A: usize, Bm: usize, Cm: usize, D: usize, z: usize, dbias: usize,
  Bt: i32, L: i32, Din: i32, N: i32, sp: i32, chunk: i32, group: i32, meta: usize, tid: i32, nt: i32): void {
  const sUb = load<i32>(meta), sUl = load<i32>(meta, 4), sDb = load<i32>(meta, 8), sDl = load<i32>(meta, 12);
  const sZb = load<i32>(meta, 16), sZl = load<i32>(meta, 20), sBb = load<i32>(meta, 24), sBl = load<i32>(meta, 28);
  const sCb = load<i32>(meta, 32), sCl = load<i32>(meta, 36);
  const G = (Din + group - 1) / group, nChunks = (L + chunk - 1) / chunk;
  const s = shareStart(G * Bt, tid, nt, 1), e = shareStart(G * Bt, tid + 1, nt, 1);
  if (s >= e) return;
  const sN = (<usize>N) << 2, zero = f32x4.splat(0), one = f32x4.splat(1.0);
  // Scratch (v128 slots): exp table; dts, dsp, dtus (chunk each); records (chunk·N·5); per block
  // of the group: N·4 + 2.
  const blkBytes = (<usize>N) * PER + 32;
  const ctab = scratch(), dts = vp(ctab, EXP_SLOTS), dsp = vp(dts, chunk), dtus = vp(dsp, chunk), rec = vp(dtus, chunk);
  const blocks = rec + (<usize>chunk) * (<usize>N) * REC;
  expTable(ctab);
  for (let it = s; it < e; it++) {
    const grp = it / Bt, b = it % Bt;
    const dLo = grp * group, dHi = min(Din, dLo + group), nbg = (dHi - dLo + 3) >> 2;
    memory.fill(blocks, 0, (<usize>nbg) * blkBytes);
    for (let j = 0; j < nbg; j++) {
      const d0 = dLo + (j << 2), nl = min(4, dHi - d0), blk = blocks + (<usize>j) * blkBytes;
      for (let n = 0; n < N; n++) v128.store(blk + (<usize>n) * PER + P_A, gather(fp(A, d0 * N + n), sN, nl));
    }
    for (let c = nChunks - 1; c >= 0; c--) {
      const t0 = c * chunk, T = min(chunk, L - t0);
      for (let k = 0, r = rec; k < T * N; k++, r += REC) { v128.store(r + R_GC, zero); v128.store(r + R_GB, zero); }
      for (let j = 0; j < nbg; j++) {
        const d0 = dLo + (j << 2), nl = min(4, dHi - d0), blk = blocks + (<usize>j) * blkBytes;
        const Dv = D ? ld(fp(D, d0), nl) : zero, bias = dbias ? ld(fp(dbias, d0), nl) : zero;
        const cp = fp(ckpt, ((b * nChunks + c) * Din + d0) * N);
        for (let n = 0; n < N; n++) v128.store(blk + (<usize>n) * PER + P_H, ckpt ? gather(fp(cp, n), sN, nl) : zero);
        // Recompute the chunk's states.
        stepFactors(rec + R_EA, REC, dts, dtus, sp ? dsp : 0, ctab, blk + P_A, PER, u, delta, bias, b, t0, T, d0, nl, N, sp, sUb, sUl, sDb, sDl);
        let r = rec;
        for (let i = 0; i < T; i++) {
          const dtu = v128.load(vp(dtus, i)), Bp = fp(Bm, b * sBb + (t0 + i) * sBl);
          let p = blk;
          for (let n = 0; n < N; n++, r += REC, p += PER) {
            const hp = v128.load(p, P_H);
            const hn = fma4(v128.load(r, R_EA), hp, f32x4.mul(dtu, v128.load32_splat(fp(Bp, n))));
            v128.store(r, hp, R_HP);
            v128.store(r, hn, R_HN);
            v128.store(p, hn, P_H);
          }
        }
        // Walk the chunk backwards.
        let gD = v128.load(blk + (<usize>N) * PER), gBias = v128.load(blk + (<usize>N) * PER, 16);
        for (let i = T - 1; i >= 0; i--) {
          const t = t0 + i, row = (b * L + t) * Din + d0;
          const dt = v128.load(vp(dts, i)), dtu = v128.load(vp(dtus, i));
          const uv = ld(fp(u, b * sUb + t * sUl + d0), nl);
          const go = ld(fp(dy, row), nl);
          const Bp = fp(Bm, b * sBb + t * sBl), Cp = fp(Cm, b * sCb + t * sCl);
          const r0 = rec + (<usize>(i * N)) * REC;
          let gy = go;
          if (z) {
            // y before the gate, again from the states: Σ h·C + D·u.
            let yv = f32x4.mul(Dv, uv), r = r0;
            for (let n = 0; n < N; n++, r += REC) yv = fma4(v128.load(r, R_HN), v128.load32_splat(fp(Cp, n)), yv);
            const zv = ld(fp(z, b * sZb + t * sZl + d0), nl), sg = vsigmoid(zv);
            if (dz) st(fp(dz, row), f32x4.mul(f32x4.mul(go, yv), f32x4.mul(sg, fma4(zv, f32x4.sub(one, sg), one))), nl);
            gy = f32x4.mul(go, f32x4.mul(zv, sg));
          }
          gD = fma4(gy, uv, gD);
          let gdt = zero, gBs = zero, r = r0, p = blk;
          for (let n = 0; n < N; n++, r += REC, p += PER) {
            const Bn = v128.load32_splat(fp(Bp, n)), Cn = v128.load32_splat(fp(Cp, n));
            const gh = fma4(gy, Cn, v128.load(p, P_G));
            const a = v128.load(r, R_EA);
            const ha = f32x4.mul(v128.load(r, R_HP), a);
            v128.store(r, fma4(gy, v128.load(r, R_HN), v128.load(r, R_GC)), R_GC);
            v128.store(r, fma4(gh, dtu, v128.load(r, R_GB)), R_GB);
            gdt = fma4(gh, fma4(ha, v128.load(p, P_A), f32x4.mul(uv, Bn)), gdt);
            gBs = fma4(gh, Bn, gBs);
            v128.store(p, fma4(gh, f32x4.mul(ha, dt), v128.load(p, P_GA)), P_GA);
            v128.store(p, f32x4.mul(gh, a), P_G);
          }
          if (du) st(fp(du, row), fma4(gBs, dt, f32x4.mul(gy, Dv)), nl);
          const gDelta = sp ? f32x4.mul(gdt, v128.load(vp(dsp, i))) : gdt;
          gBias = f32x4.add(gBias, gDelta);
          if (ddelta) st(fp(ddelta, row), gDelta, nl);
        }
        v128.store(blk + (<usize>N) * PER, gD);
        v128.store(blk + (<usize>N) * PER, gBias, 16);
      }
      // The chunk's dB/dC partials: lanes summed.
      const part = ((grp * Bt + b) * L + t0) * N;
      if (dB) for (let k = 0, r = rec; k < T * N; k++, r += REC) store<f32>(fp(dB, part + k), hsum4(v128.load(r, R_GB)));
      if (dC) for (let k = 0, r = rec; k < T * N; k++, r += REC) store<f32>(fp(dC, part + k), hsum4(v128.load(r, R_GC)));
    }
    for (let j = 0; j < nbg; j++) {
      const d0 = dLo + (j << 2), nl = min(4, dHi - d0), blk = blocks + (<usize>j) * blkBytes;
      if (dA) for (let n = 0; n < N; n++) scatter(fp(dA, (b * Din + d0) * N + n), sN, v128.load(blk + (<usize>n) * PER, P_GA), nl);
      if (dD) st(fp(dD, b * Din + d0), v128.load(blk + (<usize>N) * PER), nl);
      if (ddbias) st(fp(ddbias, b * Din + d0), v128.load(blk + (<usize>N) * PER, 16), nl);
    }
  }
}
