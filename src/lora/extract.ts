// A LoRA from a fully fine-tuned model: for each target layer, the weight delta
// ΔW = W_tuned − W_base (out, in) is factored by a truncated SVD, ΔW ≈ U_k Σ_k V_kᵀ, and
// stored as B = U_k √Σ_k (out, k), A = √Σ_k V_kᵀ (k, in) with lora_alpha = k (scale 1). The
// relative Frobenius error of rank k is √(Σ_{i>k} σᵢ²) / √(Σ σᵢ²) (Eckart–Young), reported for
// every rank asked for.
import type { Module } from '../nn/module.js';
import { LoraError } from '../nn/lora.js';
import type { LoRALinear } from '../nn/lora.js';
import { copyInto, tensor } from '../tensor/ops.js';
import { scope } from '../tensor/storage.js';
import { applyLora, linearLayers, selectTargets } from './model.js';
import type { LoraSpec } from './model.js';

/** Thin SVD of a row-major m×n matrix by one-sided Jacobi (Hestenes) in f64: values descending. */
export function svd(a: ArrayLike<number>, m: number, n: number): { U: Float64Array[]; S: Float64Array; V: Float64Array[] } {
  if (m < n) {
    const t = new Float64Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j];
    const r = svd(t, n, m);
    return { U: r.V, S: r.S, V: r.U };
  }
  // columns of A (each length m) and of V (each length n)
  const cols = Array.from({ length: n }, (_, j) => { const c = new Float64Array(m); for (let i = 0; i < m; i++) c[i] = a[i * n + j]; return c; });
  const V = Array.from({ length: n }, (_, j) => { const c = new Float64Array(n); c[j] = 1; return c; });
  const eps = 1e-15;
  for (let sweep = 0; sweep < 60; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const cp = cols[p], cq = cols[q];
        let alpha = 0, beta = 0, gamma = 0;
        for (let i = 0; i < m; i++) { alpha += cp[i] * cp[i]; beta += cq[i] * cq[i]; gamma += cp[i] * cq[i]; }
        if (Math.abs(gamma) <= eps * Math.sqrt(alpha * beta) || gamma === 0) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t), s = c * t;
        for (let i = 0; i < m; i++) { const x = cp[i], y = cq[i]; cp[i] = c * x - s * y; cq[i] = s * x + c * y; }
        const vp = V[p], vq = V[q];
        for (let i = 0; i < n; i++) { const x = vp[i], y = vq[i]; vp[i] = c * x - s * y; vq[i] = s * x + c * y; }
      }
    }
    if (!rotated) break;
  }
  const sv = cols.map((c) => Math.sqrt(c.reduce((s, x) => s + x * x, 0)));
  const order = sv.map((_, i) => i).sort((i, j) => sv[j] - sv[i]);
  const S = Float64Array.from(order.map((i) => sv[i]));
  const U = order.map((i) => { const c = cols[i], s = sv[i]; return s > 0 ? c.map((x) => x / s) : c; });
  return { U, S, V: order.map((i) => V[i]) };
}

export interface ExtractedLayer { name: string; out: number; in: number; A: Float32Array; B: Float32Array; singularValues: Float64Array }

export interface ExtractResult {
  spec: LoraSpec;
  layers: ExtractedLayer[];
  /** Relative Frobenius error ‖ΔW − ΔW_k‖ / ‖ΔW‖ over all target layers together, per rank. */
  errors: { rank: number; relativeError: number }[];
}

/**
 * Extract a rank-`rank` LoRA of the delta between two models with the same architecture, on
 * the target layers (default all q/k/v/o/gate/up/down projections). `ranks` lists the ranks
 * whose reconstruction error is reported (default 1, 2, 4, … up to the full rank).
 */
export function extractLora(base: Module, tuned: Module, opts: { rank: number; targets?: string[] | string; ranks?: number[] }): ExtractResult {
  const targets = opts.targets ?? [...new Set(linearLayers(base).map((l) => l.key))].filter((k) => k !== 'lm_head');
  const sel = selectTargets(base, targets);
  const tunedLayers = new Map(linearLayers(tuned).map((l) => [l.name, l.layer]));
  const maxRank = Math.min(...sel.map((t) => Math.min(t.layer.inFeatures, t.layer.outFeatures)));
  if (!Number.isInteger(opts.rank) || opts.rank < 1 || opts.rank > maxRank) throw new LoraError(`rank ${opts.rank} must be an integer in [1, ${maxRank}] (the smallest dimension of the target layers)`);
  const layers: ExtractedLayer[] = [];
  const energies: Float64Array[] = [];
  for (const t of sel) {
    const other = tunedLayers.get(t.name);
    if (!other) throw new LoraError(`the fine-tuned model has no layer ${t.name}`);
    const [o, i] = [t.layer.outFeatures, t.layer.inFeatures];
    if (other.outFeatures !== o || other.inFeatures !== i) throw new LoraError(`${t.name}: the fine-tuned layer is ${other.outFeatures}×${other.inFeatures}, the base ${o}×${i}`);
    const wb = t.layer.weight.data(), wt = other.weight.data();
    const d = new Float64Array(o * i);
    for (let k = 0; k < d.length; k++) d[k] = wt[k] - wb[k];
    const { U, S, V } = svd(d, o, i);
    const k = opts.rank;
    const A = new Float32Array(k * i), B = new Float32Array(o * k);
    for (let r = 0; r < k; r++) {
      const sq = Math.sqrt(S[r]);
      for (let c = 0; c < i; c++) A[r * i + c] = sq * V[r][c];
      for (let row = 0; row < o; row++) B[row * k + r] = sq * U[r][row];
    }
    layers.push({ name: t.name, out: o, in: i, A, B, singularValues: S });
    energies.push(S.map((s) => s * s));
  }
  const full = Math.max(...energies.map((e) => e.length));
  const ranks = opts.ranks ?? (() => { const r: number[] = []; for (let x = 1; x < full; x *= 2) r.push(x); r.push(full); return [...new Set([...r, opts.rank])].sort((a, b) => a - b); })();
  const total = energies.reduce((s, e) => s + e.reduce((a, b) => a + b, 0), 0);
  const errors = ranks.map((rank) => {
    const tail = energies.reduce((s, e) => s + e.slice(Math.min(rank, e.length)).reduce((a, b) => a + b, 0), 0);
    return { rank, relativeError: total > 0 ? Math.sqrt(tail / total) : 0 };
  });
  const spec: LoraSpec = { r: opts.rank, lora_alpha: opts.rank, lora_dropout: 0, use_rslora: false, target_modules: Array.isArray(targets) ? targets : targets };
  return { spec, layers, errors };
}

/** Put an extracted LoRA on a model as adapter `name` (the model must be the base's architecture). */
export function addExtractedAdapter(model: Module, ex: ExtractResult, name = 'default'): void {
  const adapted = applyLora(model, ex.spec, name);
  const byName = new Map(ex.layers.map((l) => [l.name, l]));
  scope(() => {
    for (const t of adapted) {
      const l = byName.get(t.name);
      if (!l) throw new LoraError(`no extracted factors for ${t.name}`);
      const ad = (t.layer as LoRALinear).adapter(name)!;
      copyInto(ad.lora_A.weight, tensor(l.A, [ex.spec.r, l.in]));
      copyInto(ad.lora_B.weight, tensor(l.B, [l.out, ex.spec.r]));
    }
  });
}
