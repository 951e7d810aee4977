// Reference kernels for fused scaled-dot-product attention (contracts: attention_fwd and
// attention_bwd in ../kernels.ts). Plain f64 arithmetic, one query row at a time, the whole
// score row materialised: obviously correct, not fast.
import { H } from '../heap.js';
import { bf16ToF32 } from './ggml_blocks.js';

/** Keys seen by query row i: causal puts query i at position S−T+i. */
function keysSeen(i: number, T: number, S: number, causal: number): number {
  return causal ? Math.min(S, Math.max(0, S - T + i + 1)) : S;
}

export function attention_fwd(
  o: number, lse: number, q: number, k: number, v: number,
  B: number, Hq: number, Hkv: number, T: number, S: number, D: number, Dv: number,
  sQb: number, sQh: number, sQt: number, sKb: number, sKh: number, sKs: number, sVb: number, sVh: number, sVs: number,
  scale: number, causal: number, kvHalf: number,
): void {
  const f = H.f32, G = Hq / Hkv;
  const s = new Float64Array(S), acc = new Float64Array(Dv);
  // Keys and values: f32, or bf16 (kvHalf) at 2-byte elements.
  const kv: (i: number) => number = kvHalf ? (i) => bf16ToF32(H.u16[i]) : (i) => f[i];
  const sh = kvHalf ? 1 : 2;
  for (let b = 0; b < B; b++) for (let h = 0; h < Hq; h++) {
    const kh = Math.floor(h / G);
    const K = (k >>> sh) + b * sKb + kh * sKh, V = (v >>> sh) + b * sVb + kh * sVh;
    for (let i = 0; i < T; i++) {
      const Q = (q >>> 2) + b * sQb + h * sQh + i * sQt, row = (b * Hq + h) * T + i, O = (o >>> 2) + row * Dv;
      const n = keysSeen(i, T, S, causal);
      let m = -Infinity;
      for (let j = 0; j < n; j++) {
        let d = 0;
        for (let c = 0; c < D; c++) d += f[Q + c] * kv(K + j * sKs + c);
        s[j] = d * scale;
        m = Math.max(m, s[j]);
      }
      let l = 0;
      acc.fill(0);
      for (let j = 0; j < n; j++) {
        const p = Math.exp(s[j] - m);
        l += p;
        for (let c = 0; c < Dv; c++) acc[c] += p * kv(V + j * sVs + c);
      }
      for (let c = 0; c < Dv; c++) f[O + c] = n ? acc[c] / l : 0;
      f[(lse >>> 2) + row] = n ? m + Math.log(l) : -Infinity;
    }
  }
}

export function attention_bwd(
  dq: number, dk: number, dv: number, q: number, k: number, v: number, o: number, lse: number, dout: number,
  B: number, Hq: number, Hkv: number, T: number, S: number, D: number, Dv: number,
  sQb: number, sQh: number, sQt: number, sKb: number, sKh: number, sKs: number, sVb: number, sVh: number, sVs: number,
  scale: number, causal: number,
): void {
  const f = H.f32, G = Hq / Hkv;
  const gk = new Float64Array(S * D), gv = new Float64Array(S * Dv), gq = new Float64Array(D);
  for (let b = 0; b < B; b++) for (let kh = 0; kh < Hkv; kh++) {
    gk.fill(0); gv.fill(0);
    const K = (k >>> 2) + b * sKb + kh * sKh, V = (v >>> 2) + b * sVb + kh * sVh;
    for (let h = kh * G; h < (kh + 1) * G; h++) for (let i = 0; i < T; i++) {
      const Q = (q >>> 2) + b * sQb + h * sQh + i * sQt, row = (b * Hq + h) * T + i;
      const O = (o >>> 2) + row * Dv, dO = (dout >>> 2) + row * Dv, L = f[(lse >>> 2) + row];
      const n = keysSeen(i, T, S, causal);
      // Δ = Σ_c dO·O = Σ_j P_j·dP_j
      let delta = 0;
      for (let c = 0; c < Dv; c++) delta += f[dO + c] * f[O + c];
      gq.fill(0);
      for (let j = 0; j < n; j++) {
        let sj = 0, dp = 0;
        for (let c = 0; c < D; c++) sj += f[Q + c] * f[K + j * sKs + c];
        for (let c = 0; c < Dv; c++) dp += f[dO + c] * f[V + j * sVs + c];
        const p = Math.exp(sj * scale - L), ds = p * (dp - delta) * scale;
        for (let c = 0; c < Dv; c++) gv[j * Dv + c] += p * f[dO + c];
        for (let c = 0; c < D; c++) { gk[j * D + c] += ds * f[Q + c]; gq[c] += ds * f[K + j * sKs + c]; }
      }
      for (let c = 0; c < D; c++) f[(dq >>> 2) + row * D + c] = gq[c];
    }
    const base = b * Hkv + kh;
    for (let x = 0; x < S * D; x++) f[(dk >>> 2) + base * S * D + x] = gk[x];
    for (let x = 0; x < S * Dv; x++) f[(dv >>> 2) + base * S * Dv + x] = gv[x];
  }
}
