// Reference kernels for state-space models (contracts: causal_conv1d_* and selective_scan_* in
// ../kernels.ts): plain loops in f64, one channel at a time, the selective scan written as
// mamba-minimal's sequential loop. Obviously correct, not fast.
import { H } from '../heap.js';

/** xx[b, j, c] of concat(init or zeros, x) along time (j < K−1 + L). */
function xxAt(x: number, init: number, b: number, j: number, c: number, L: number, C: number, K: number, sXb: number, sXl: number): number {
  const f = H.f32;
  if (j < K - 1) return init ? f[(init >>> 2) + (b * (K - 1) + j) * C + c] : 0;
  return f[(x >>> 2) + b * sXb + (j - (K - 1)) * sXl + c];
}

export function causal_conv1d_fwd(y: number, x: number, w: number, bias: number, init: number,
  B: number, L: number, C: number, K: number, sXb: number, sXl: number): void {
  const f = H.f32;
  for (let b = 0; b < B; b++) for (let l = 0; l < L; l++) for (let c = 0; c < C; c++) {
    let s = bias ? f[(bias >>> 2) + c] : 0;
    for (let k = 0; k < K; k++) s += f[(w >>> 2) + c * K + k] * xxAt(x, init, b, l + k, c, L, C, K, sXb, sXl);
    f[(y >>> 2) + (b * L + l) * C + c] = s;
  }
}

export function causal_conv1d_bwd(dx: number, dw: number, dbias: number, dy: number, x: number, w: number, init: number,
  B: number, L: number, C: number, K: number, sXb: number, sXl: number): void {
  const f = H.f32;
  const g = (b: number, l: number, c: number): number => f[(dy >>> 2) + (b * L + l) * C + c];
  for (let c = 0; c < C; c++) {
    // y[l] uses xx[l + k]: x[j] = xx[j + K − 1] reaches y[j + K − 1 − k].
    if (dx) for (let b = 0; b < B; b++) for (let j = 0; j < L; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        const l = j + K - 1 - k;
        if (l < L) s += f[(w >>> 2) + c * K + k] * g(b, l, c);
      }
      f[(dx >>> 2) + (b * L + j) * C + c] = s;
    }
    if (dw) for (let k = 0; k < K; k++) {
      let s = 0;
      for (let b = 0; b < B; b++) for (let l = 0; l < L; l++) s += g(b, l, c) * xxAt(x, init, b, l + k, c, L, C, K, sXb, sXl);
      f[(dw >>> 2) + c * K + k] = s;
    }
    if (dbias) {
      let s = 0;
      for (let b = 0; b < B; b++) for (let l = 0; l < L; l++) s += g(b, l, c);
      f[(dbias >>> 2) + c] = s;
    }
  }
}

/** softplus with PyTorch's threshold (x > 20 → x). */
function softplus(x: number): number { return x > 20 ? x : Math.log1p(Math.exp(x)); }
function sigmoid(x: number): number { return 1 / (1 + Math.exp(-x)); }

/** Strided element accessors of the scan's inputs (meta layout in KERNEL_ARGS). */
function scanViews(meta: number) {
  const m = H.i32, o = meta >>> 2;
  const [sUb, sUl, sDb, sDl, sZb, sZl, sBb, sBl, sCb, sCl] = Array.from({ length: 10 }, (_, i) => m[o + i]);
  return { sUb, sUl, sDb, sDl, sZb, sZl, sBb, sBl, sCb, sCl };
}

export function selective_scan_fwd(y: number, ckpt: number, state: number, u: number, delta: number, A: number, Bm: number, Cm: number,
  D: number, z: number, dbias: number, Bt: number, L: number, Din: number, N: number, softplusOn: number, chunk: number, meta: number): void {
  const f = H.f32, s = scanViews(meta), nChunks = Math.ceil(L / chunk);
  const h = new Float64Array(N);
  for (let b = 0; b < Bt; b++) for (let d = 0; d < Din; d++) {
    for (let n = 0; n < N; n++) h[n] = state ? f[(state >>> 2) + (b * Din + d) * N + n] : 0;
    for (let t = 0; t < L; t++) {
      if (ckpt && t % chunk === 0) {
        for (let n = 0; n < N; n++) f[(ckpt >>> 2) + ((b * nChunks + t / chunk) * Din + d) * N + n] = h[n];
      }
      let dt = f[(delta >>> 2) + b * s.sDb + t * s.sDl + d] + (dbias ? f[(dbias >>> 2) + d] : 0);
      if (softplusOn) dt = softplus(dt);
      const ut = f[(u >>> 2) + b * s.sUb + t * s.sUl + d];
      let yt = 0;
      for (let n = 0; n < N; n++) {
        h[n] = Math.exp(dt * f[(A >>> 2) + d * N + n]) * h[n] + dt * ut * f[(Bm >>> 2) + b * s.sBb + t * s.sBl + n];
        yt += h[n] * f[(Cm >>> 2) + b * s.sCb + t * s.sCl + n];
      }
      if (D) yt += f[(D >>> 2) + d] * ut;
      if (z) {
        const zt = f[(z >>> 2) + b * s.sZb + t * s.sZl + d];
        yt *= zt * sigmoid(zt);
      }
      f[(y >>> 2) + (b * L + t) * Din + d] = yt;
    }
    if (state) for (let n = 0; n < N; n++) f[(state >>> 2) + (b * Din + d) * N + n] = h[n];
  }
}

export function selective_scan_bwd(du: number, ddelta: number, dz: number, dA: number, dD: number, ddbias: number, dB: number, dC: number,
  dy: number, ckpt: number, u: number, delta: number, A: number, Bm: number, Cm: number, D: number, z: number, dbias: number,
  Bt: number, L: number, Din: number, N: number, softplusOn: number, chunk: number, group: number, meta: number): void {
  const f = H.f32, s = scanViews(meta), nChunks = Math.ceil(L / chunk), G = Math.ceil(Din / group);
  // hs[t·N + n]: the state after step t − 1 (hs[0..N) = h0 from the first checkpoint).
  const hs = new Float64Array((L + 1) * N), dts = new Float64Array(L), g = new Float64Array(N);
  const gB = new Float64Array(G * Bt * L * N), gC = new Float64Array(G * Bt * L * N);
  for (let b = 0; b < Bt; b++) for (let d = 0; d < Din; d++) {
    const grp = Math.floor(d / group);
    const Ad = (n: number): number => f[(A >>> 2) + d * N + n];
    const Bv = (t: number, n: number): number => f[(Bm >>> 2) + b * s.sBb + t * s.sBl + n];
    const Cv = (t: number, n: number): number => f[(Cm >>> 2) + b * s.sCb + t * s.sCl + n];
    const uv = (t: number): number => f[(u >>> 2) + b * s.sUb + t * s.sUl + d];
    const raw = (t: number): number => f[(delta >>> 2) + b * s.sDb + t * s.sDl + d] + (dbias ? f[(dbias >>> 2) + d] : 0);
    // Forward again, keeping every state.
    for (let n = 0; n < N; n++) hs[n] = ckpt ? f[(ckpt >>> 2) + ((b * nChunks) * Din + d) * N + n] : 0;
    for (let t = 0; t < L; t++) {
      const dt = softplusOn ? softplus(raw(t)) : raw(t);
      dts[t] = dt;
      for (let n = 0; n < N; n++) hs[(t + 1) * N + n] = Math.exp(dt * Ad(n)) * hs[t * N + n] + dt * uv(t) * Bv(t, n);
    }
    // Reverse: g[n] = ∂loss/∂h_t[n] (through every later step).
    g.fill(0);
    const sA = new Float64Array(N);
    let sD = 0, sBias = 0;
    for (let t = L - 1; t >= 0; t--) {
      const dt = dts[t], ut = uv(t), gy0 = f[(dy >>> 2) + (b * L + t) * Din + d];
      let gy = gy0;
      if (z) {
        const zt = f[(z >>> 2) + b * s.sZb + t * s.sZl + d], sg = sigmoid(zt);
        let yt = D ? f[(D >>> 2) + d] * ut : 0;
        for (let n = 0; n < N; n++) yt += hs[(t + 1) * N + n] * Cv(t, n);
        if (dz) f[(dz >>> 2) + (b * L + t) * Din + d] = gy0 * yt * sg * (1 + zt * (1 - sg));
        gy = gy0 * zt * sg;
      }
      let gu = D ? gy * f[(D >>> 2) + d] : 0, gdt = 0;
      sD += gy * ut;
      for (let n = 0; n < N; n++) {
        const hPrev = hs[t * N + n], hNow = hs[(t + 1) * N + n], a = Math.exp(dt * Ad(n));
        const gh = g[n] + gy * Cv(t, n);
        gC[((grp * Bt + b) * L + t) * N + n] += gy * hNow;
        gB[((grp * Bt + b) * L + t) * N + n] += gh * dt * ut;
        gdt += gh * (ut * Bv(t, n) + hPrev * a * Ad(n));
        gu += gh * dt * Bv(t, n);
        sA[n] += gh * hPrev * a * dt;
        g[n] = gh * a;
      }
      const r = raw(t);
      const gDelta = softplusOn ? (r > 20 ? gdt : gdt * sigmoid(r)) : gdt;
      sBias += gDelta;
      if (du) f[(du >>> 2) + (b * L + t) * Din + d] = gu;
      if (ddelta) f[(ddelta >>> 2) + (b * L + t) * Din + d] = gDelta;
    }
    if (dA) for (let n = 0; n < N; n++) f[(dA >>> 2) + (b * Din + d) * N + n] = sA[n];
    if (dD) f[(dD >>> 2) + b * Din + d] = sD;
    if (ddbias) f[(ddbias >>> 2) + b * Din + d] = sBias;
  }
  if (dB) for (let i = 0; i < gB.length; i++) f[(dB >>> 2) + i] = gB[i];
  if (dC) for (let i = 0; i < gC.length; i++) f[(dC >>> 2) + i] = gC[i];
}
