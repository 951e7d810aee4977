// Neural-network ops: softmax, cross-entropy, embedding, normalisation, rotary embeddings,
// attention, dropout, top-k. Fused kernels where they exist (backend/kernels.ts), composites of
// ops.ts otherwise; every op has its gradient.
import { H } from '../backend/heap.js';
import { Tensor, numel, isQuantized } from './tensor.js';
import type { Shape } from './tensor.js';
import { needsGrad, record } from './autograd.js';
import { DTypeError, IndexError, ShapeError, fmtShape } from './errors.js';
import { Generator, defaultGenerator } from './random.js';
import {
  add, contiguous, expand, full, gt, kernel, matmul, mul, normDim, permute, reshape, tensor, transpose, where, zeros, rand, sumTo,
  silu, slice, gatherQuantizedRows, requireF32,
} from './ops.js';

function moveLast(t: Tensor, d: number): Tensor {
  if (d === t.ndim - 1) return t;
  const dims = [...Array(t.ndim).keys()].filter((i) => i !== d);
  return permute(t, [...dims, d]);
}
function moveBack(t: Tensor, d: number): Tensor {
  if (d === t.ndim - 1) return t;
  const dims = [...Array(t.ndim - 1).keys()];
  dims.splice(d, 0, t.ndim - 1);
  return permute(t, dims);
}

function softmaxImpl(x: Tensor, dim: number, log: 0 | 1): Tensor {
  if (x.dtype !== 'f32') throw new DTypeError(log ? 'logSoftmax' : 'softmax', `expected f32, got ${x.dtype}`);
  const d = normDim('softmax', dim, x.ndim);
  const xl = contiguous(moveLast(x, d));
  const cols = x.ndim ? x.shape[d] : 1;
  const rows = cols ? xl.size / cols : 0;
  const y = Tensor.empty(xl.shape);
  if (y.size) kernel('softmax', [y.ptr, xl.ptr, rows, cols, log], y.size);
  if (needsGrad(xl)) {
    record(y, log ? 'logSoftmax' : 'softmax', [xl], (g) => {
      const gy = contiguous(g);
      const gx = Tensor.empty(xl.shape);
      if (gx.size) kernel('softmax_bwd', [gx.ptr, y.ptr, gy.ptr, rows, cols, log], gx.size);
      return [gx];
    });
  }
  return moveBack(y, d);
}
export function softmax(x: Tensor, dim = -1): Tensor { return softmaxImpl(x, dim, 0); }
export function logSoftmax(x: Tensor, dim = -1): Tensor { return softmaxImpl(x, dim, 1); }

export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (default −100, as PyTorch). */
  ignoreIndex?: number;
  /** Label smoothing ε in [0, 1]. */
  labelSmoothing?: number;
  reduction?: 'mean' | 'sum' | 'none';
}

/**
 * Cross-entropy of logits (..., V) against i32 class indices (...), as
 * torch.nn.functional.cross_entropy: 'mean' averages over the targets that are not ignored.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const ignore = opts.ignoreIndex ?? -100, eps = opts.labelSmoothing ?? 0, reduction = opts.reduction ?? 'mean';
  if (logits.dtype !== 'f32') throw new DTypeError('crossEntropy', `logits must be f32, got ${logits.dtype}`);
  if (targets.dtype !== 'i32') throw new DTypeError('crossEntropy', `targets must be i32 class indices, got ${targets.dtype}`);
  if (logits.ndim < 1 || logits.shape.slice(0, -1).join() !== targets.shape.join()) {
    throw new ShapeError('crossEntropy', `logits ${fmtShape(logits.shape)} and targets ${fmtShape(targets.shape)}: expected logits of shape [...targets.shape, V]`);
  }
  if (!(eps >= 0 && eps <= 1)) throw new ShapeError('crossEntropy', `labelSmoothing must be in [0, 1], got ${eps}`);
  const V = logits.shape[logits.ndim - 1];
  const rows = targets.size;
  const x = contiguous(logits), t = contiguous(targets);
  let count = 0;
  const tp = t.ptr >>> 2;
  for (let r = 0; r < rows; r++) {
    const v = H.i32[tp + r];
    if (v === ignore) continue;
    if (v < 0 || v >= V) throw new IndexError('crossEntropy', `target ${v} at position ${r} is outside [0, ${V}) (and is not ignoreIndex ${ignore})`);
    count++;
  }
  const loss = Tensor.empty(targets.shape), lse = Tensor.empty([rows]);
  if (rows) kernel('cross_entropy', [loss.ptr, lse.ptr, x.ptr, t.ptr, rows, V, ignore, eps], rows * V);
  let out: Tensor;
  if (reduction === 'none') out = loss;
  else {
    let s = 0;
    const lp = loss.ptr >>> 2;
    for (let r = 0; r < rows; r++) s += H.f32[lp + r];
    out = full([], reduction === 'mean' ? s / count : s);
  }
  if (needsGrad(x)) {
    record(out, 'crossEntropy', [x], (g) => {
      const gx = Tensor.empty(x.shape);
      const scale = reduction === 'none' ? 1 : reduction === 'mean' ? g.item() / count : g.item();
      if (rows) kernel('cross_entropy_bwd', [gx.ptr, x.ptr, lse.ptr, t.ptr, rows, V, ignore, eps, scale], rows * V);
      return [reduction === 'none' ? mul(gx, reshape(g, [...g.shape, 1])) : gx];
    });
  }
  return out;
}

function checkIndices(op: string, idx: Tensor, n: number): void {
  if (idx.dtype !== 'i32') throw new DTypeError(op, `indices must be i32, got ${idx.dtype}`);
  const p = idx.ptr >>> 2;
  for (let i = 0; i < idx.size; i++) {
    const v = H.i32[p + i];
    if (v < 0 || v >= n) throw new IndexError(op, `index ${v} at position ${i} is out of range [0, ${n})`);
  }
}

/** Rows of table (V, D) picked by i32 indices of any shape → (...indices.shape, D). */
export function embedding(table: Tensor, indices: Tensor): Tensor {
  if (table.ndim !== 2) throw new ShapeError('embedding', `table must be 2-d (V, D), got ${fmtShape(table.shape)}`);
  const [V, D] = table.shape;
  const idx = contiguous(indices);
  checkIndices('embedding', idx, V);
  if (isQuantized(table.dtype)) {
    // A quantised table (inference): the rows are dequantised as they are gathered.
    const out = Tensor.empty([...indices.shape, D]);
    gatherQuantizedRows(out, table, idx);
    return out;
  }
  const w = contiguous(table);
  const out = Tensor.empty([...indices.shape, D]);
  if (out.size) kernel('embedding', [out.ptr, w.ptr, idx.ptr, idx.size, D], out.size);
  if (needsGrad(w)) {
    record(out, 'embedding', [w], (g) => {
      const gy = contiguous(g);
      const gw = zeros(w.shape);
      if (gy.size) kernel('embedding_bwd', [gw.ptr, gy.ptr, idx.ptr, idx.size, D], gy.size);
      return [gw];
    });
  }
  return out;
}

/**
 * Scatter-add of rows: out (n, D) with out[idx[i]] += src[i] for every row i of src (M, D)
 * (torch's index_add along dim 0 into zeros; repeated indices accumulate). The reverse of
 * embedding's gather, on the same two kernels: its gradient is the gather of the output's.
 */
export function indexAddRows(src: Tensor, indices: Tensor, n: number): Tensor {
  if (src.ndim !== 2) throw new ShapeError('indexAddRows', `source must be 2-d (M, D), got ${fmtShape(src.shape)}`);
  const [M, D] = src.shape;
  const idx = contiguous(indices);
  if (idx.size !== M) throw new ShapeError('indexAddRows', `${idx.size} indices for ${M} rows`);
  checkIndices('indexAddRows', idx, n);
  const s = contiguous(src);
  const out = zeros([n, D]);
  if (s.size) kernel('embedding_bwd', [out.ptr, s.ptr, idx.ptr, M, D], s.size);
  if (needsGrad(s)) record(out, 'indexAddRows', [s], (g) => [embedding(g, idx)]);
  return out;
}

/** out[..., j] = x[..., idx[..., j]] along the last dimension (torch.take_along_dim / gather). */
export function gatherLast(x: Tensor, idx: Tensor): Tensor {
  const V = x.shape[x.ndim - 1];
  if (idx.ndim !== x.ndim || idx.shape.slice(0, -1).join() !== x.shape.slice(0, -1).join()) {
    throw new ShapeError('gatherLast', `indices ${fmtShape(idx.shape)} must match ${fmtShape(x.shape)} except in the last dimension`);
  }
  const ic = contiguous(idx);
  checkIndices('gatherLast', ic, V);
  const k = idx.shape[idx.ndim - 1];
  const flat = new Int32Array(ic.size);
  const p = ic.ptr >>> 2;
  for (let i = 0; i < flat.length; i++) flat[i] = Math.floor(i / k) * V + H.i32[p + i];
  const table = reshape(x, [x.size, 1]);
  return reshape(embedding(table, tensor(flat, [flat.length], 'i32')), idx.shape);
}

/** The k largest values along the last dimension and their indices (i32), largest first. */
export function topk(x: Tensor, k: number): { values: Tensor; indices: Tensor } {
  const V = x.shape[x.ndim - 1];
  if (!Number.isInteger(k) || k < 0 || k > V) throw new ShapeError('topk', `k = ${k} is not in [0, ${V}] for ${fmtShape(x.shape)}`);
  const d = contiguous(x).data();
  const rows = V ? d.length / V : 0;
  const out = new Int32Array(rows * k);
  const order = Array.from({ length: V }, (_, i) => i);
  for (let r = 0; r < rows; r++) {
    const base = r * V;
    order.sort((a, b) => {
      const va = d[base + a], vb = d[base + b];
      if (Number.isNaN(va)) return Number.isNaN(vb) ? a - b : -1;
      if (Number.isNaN(vb)) return 1;
      return vb - va || a - b;
    });
    for (let j = 0; j < k; j++) out[r * k + j] = order[j];
    for (let i = 0; i < V; i++) order[i] = i;
  }
  const indices = tensor(out, [...x.shape.slice(0, -1), k], 'i32');
  return { values: gatherLast(x, indices), indices };
}

/** RMSNorm over the last dimension: x / sqrt(mean(x²) + eps) · weight (LLaMA). */
export function rmsNorm(x: Tensor, weight: Tensor, eps = 1e-6): Tensor {
  const D = x.shape[x.ndim - 1];
  if (weight.ndim !== 1 || weight.shape[0] !== D) throw new ShapeError('rmsNorm', `weight ${fmtShape(weight.shape)} does not match last dimension of ${fmtShape(x.shape)}`);
  const xc = contiguous(x), w = contiguous(weight);
  const rows = D ? xc.size / D : 0;
  const out = Tensor.empty(x.shape), rstd = Tensor.empty([rows]);
  if (out.size) kernel('rmsnorm', [out.ptr, rstd.ptr, xc.ptr, w.ptr, rows, D, eps], out.size);
  if (needsGrad(xc, w)) {
    record(out, 'rmsNorm', [xc, w], (g) => {
      const gy = contiguous(g);
      let gx: Tensor | null = null, gw: Tensor | null = null;
      if (xc.requiresGrad) {
        gx = Tensor.empty(x.shape);
        if (gx.size) kernel('rmsnorm_bwd', [gx.ptr, xc.ptr, w.ptr, rstd.ptr, gy.ptr, rows, D], gx.size);
      }
      if (w.requiresGrad) {
        gw = Tensor.empty([D]);
        kernel('rmsnorm_bwd_w', [gw.ptr, xc.ptr, rstd.ptr, gy.ptr, rows, D], rows * D);
      }
      return [gx, gw];
    });
  }
  return out;
}

/** LayerNorm over the last dimension with optional weight and bias. */
export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps = 1e-5): Tensor {
  const D = x.shape[x.ndim - 1];
  for (const [n, p] of [['weight', weight], ['bias', bias]] as const) {
    if (p && (p.ndim !== 1 || p.shape[0] !== D)) throw new ShapeError('layerNorm', `${n} ${fmtShape(p.shape)} does not match last dimension of ${fmtShape(x.shape)}`);
  }
  const xc = contiguous(x), w = weight ? contiguous(weight) : null, b = bias ? contiguous(bias) : null;
  const rows = D ? xc.size / D : 0;
  const out = Tensor.empty(x.shape), mean = Tensor.empty([rows]), rstd = Tensor.empty([rows]);
  if (out.size) kernel('layernorm', [out.ptr, mean.ptr, rstd.ptr, xc.ptr, w ? w.ptr : 0, b ? b.ptr : 0, rows, D, eps], out.size);
  const inputs = [xc, w, b].filter((t): t is Tensor => t !== null);
  if (needsGrad(...inputs)) {
    record(out, 'layerNorm', inputs, (g) => {
      const gy = contiguous(g);
      const gx = Tensor.empty(x.shape);
      if (gx.size) kernel('layernorm_bwd', [gx.ptr, xc.ptr, w ? w.ptr : 0, mean.ptr, rstd.ptr, gy.ptr, rows, D], gx.size);
      const gw = w ? Tensor.empty([D]) : null, gb = b ? Tensor.empty([D]) : null;
      if (gw || gb) kernel('layernorm_bwd_wb', [gw ? gw.ptr : 0, gb ? gb.ptr : 0, xc.ptr, mean.ptr, rstd.ptr, gy.ptr, rows, D], rows * D);
      const res: (Tensor | null)[] = [gx];
      if (w) res.push(gw);
      if (b) res.push(gb);
      return res;
    });
  }
  return out;
}

export interface RopeOptions {
  /** rope_theta (default 10000). */
  theta?: number;
  /** Linear rope_scaling factor: positions are divided by it. */
  scaling?: number;
  /** Position of the first row (KV-cache decoding). */
  offset?: number;
}

/** cos/sin tables (T, D/2) for positions offset … offset+T−1: angle = pos/scaling · θ^(−2i/D). */
export function ropeTables(T: number, headDim: number, opts: RopeOptions = {}): { cos: Tensor; sin: Tensor } {
  if (headDim % 2) throw new ShapeError('ropeTables', `head dimension ${headDim} must be even`);
  const theta = opts.theta ?? 10000, scaling = opts.scaling ?? 1, offset = opts.offset ?? 0;
  const half = headDim / 2;
  const c = new Float32Array(T * half), s = new Float32Array(T * half);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const invFreq = 1 / Math.pow(theta, (2 * i) / headDim);
      const a = ((t + offset) / scaling) * invFreq;
      c[t * half + i] = Math.cos(a);
      s[t * half + i] = Math.sin(a);
    }
  }
  return { cos: tensor(c, [T, half]), sin: tensor(s, [T, half]) };
}

/**
 * Rotary position embedding of x, whose dimension `seqDim` is the sequence (length T) and whose
 * last dimension is the head dimension D; cos/sin are (T, D/2) from ropeTables. layout 'half'
 * rotates pairs (i, i + D/2) as Hugging Face LLaMA does; 'interleaved' rotates (2i, 2i+1) as
 * Meta's original code and GGUF/llama.cpp's default do.
 */
export function rope(x: Tensor, cos: Tensor, sin: Tensor, opts: { seqDim?: number; layout?: 'half' | 'interleaved' } = {}): Tensor {
  const sd = normDim('rope', opts.seqDim ?? x.ndim - 2, x.ndim);
  const D = x.shape[x.ndim - 1], T = x.shape[sd];
  if (sd === x.ndim - 1) throw new ShapeError('rope', 'the sequence dimension cannot be the last (head) dimension');
  if (D % 2) throw new ShapeError('rope', `head dimension ${D} must be even`);
  if (cos.shape.join() !== `${T},${D / 2}` || sin.shape.join() !== cos.shape.join()) {
    throw new ShapeError('rope', `cos/sin tables ${fmtShape(cos.shape)}/${fmtShape(sin.shape)} do not match (T, D/2) = (${T}, ${D / 2}) for x ${fmtShape(x.shape)}`);
  }
  const outer = numel(x.shape.slice(0, sd)), inner = numel(x.shape.slice(sd + 1, -1));
  const il = opts.layout === 'interleaved' ? 1 : 0;
  const xc = contiguous(x), c = contiguous(cos), s = contiguous(sin);
  const out = Tensor.empty(x.shape);
  if (out.size) kernel('rope', [out.ptr, xc.ptr, c.ptr, s.ptr, outer, T, inner, D, il, 1], out.size);
  if (needsGrad(xc)) {
    record(out, 'rope', [xc], (g) => {
      const gy = contiguous(g);
      const gx = Tensor.empty(x.shape);
      if (gx.size) kernel('rope', [gx.ptr, gy.ptr, c.ptr, s.ptr, outer, T, inner, D, il, -1], gx.size);
      return [gx];
    });
  }
  return out;
}

const causalMasks = new Map<string, Tensor>();
/** Additive causal mask (T, S): query i (at position S−T+i) sees keys 0 … S−T+i. Cached. */
export function causalMask(T: number, S: number): Tensor {
  const key = `${T},${S}`;
  let m = causalMasks.get(key);
  if (!m || m.storage.freed) {
    const d = new Float32Array(T * S);
    for (let i = 0; i < T; i++) for (let j = 0; j < S; j++) d[i * S + j] = j > S - T + i ? -Infinity : 0;
    m = tensor(d, [T, S]).keep();
    causalMasks.set(key, m);
  }
  return m;
}

export interface AttentionOptions {
  causal?: boolean;
  /** Additive mask broadcastable to (B, Hq, T, S). */
  mask?: Tensor | null;
  /** Default 1/sqrt(D). */
  scale?: number;
  /**
   * k and v are bfloat16 pairs (toBf16Pairs' layout, a bf16 KV cache's: (B, Hkv, S, D/2) and
   * (B, Hkv, S, Dv/2)); inference only. The fused kernel reads them as stored; the composite path
   * widens them first.
   */
  kvBf16?: boolean;
}

/** Head dimensions (D + Dv) above which attention uses the composite (kernel scratch bound). */
export const MAX_FUSED_HEAD_DIMS = 8192;

function checkAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): void {
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4) throw new ShapeError('attention', `expected 4-d q, k, v (B, H, T, D); got ${fmtShape(q.shape)}, ${fmtShape(k.shape)}, ${fmtShape(v.shape)}`);
  const [B, Hq, T, D] = q.shape, [B2, Hkv, S, Dk] = k.shape, [B3, Hv, S2] = v.shape, D2 = opts.kvBf16 ? 2 * Dk : Dk;
  if (B2 !== B || B3 !== B || D2 !== D || Hv !== Hkv || S2 !== S || Hkv === 0 || Hq % Hkv !== 0) {
    throw new ShapeError('attention', `incompatible q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)} (need equal B, equal D for q/k, equal S for k/v, Hq a multiple of Hkv)`);
  }
  if (opts.causal && S < T) throw new ShapeError('attention', `causal attention needs at least as many keys (${S}) as queries (${T})`);
  for (const [n, t] of [['q', q], ['k', k], ['v', v]] as const) {
    if (t.dtype !== 'f32') throw new DTypeError('attention', `${n} must be f32, got ${t.dtype}`);
  }
}

/**
 * Scaled dot-product attention with grouped KV heads: q (B, Hq, T, D), k (B, Hkv, S, D),
 * v (B, Hkv, S, Dv), Hq a multiple of Hkv; query head h uses KV head ⌊h / (Hq/Hkv)⌋.
 * Returns (B, Hq, T, Dv). With causal and S > T (a KV cache), the queries are the last T positions.
 * Without an additive mask this runs the fused kernels (attention_fwd/_bwd: no (T, S) scores are
 * stored; q, k, v may be views strided in their first three dims, e.g. a slice of a KV cache);
 * with a mask it runs `attentionComposite`.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  checkAttention(q, k, v, opts);
  // bf16 pairs count two values an element (the kernel's strides count values).
  const e = opts.kvBf16 ? 2 : 1;
  if (opts.kvBf16 && needsGrad(q, k, v)) throw new Error('attention: bf16 keys and values (kvBf16) are inference only');
  if (opts.mask || q.shape[3] + e * v.shape[3] > MAX_FUSED_HEAD_DIMS) {
    return opts.kvBf16 ? attentionComposite(q, fromBf16Pairs(k), fromBf16Pairs(v), { ...opts, kvBf16: false }) : attentionComposite(q, k, v, opts);
  }
  const [B, Hq, T, D] = q.shape, [, Hkv, S] = k.shape, Dv = e * v.shape[3];
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const causal = opts.causal ? 1 : 0;
  // The kernels take strides for the first three dims; the last must be contiguous.
  const rows = (t: Tensor): Tensor => (t.shape[3] <= 1 || t.strides[3] === 1 ? t : contiguous(t));
  const qc = rows(q), kc = rows(k), vc = rows(v);
  const st = (t: Tensor, m: number): number[] => [m * t.strides[0], m * t.strides[1], m * t.strides[2]];
  const strides = [...st(qc, 1), ...st(kc, e), ...st(vc, e)];
  const o = Tensor.empty([B, Hq, T, Dv]), lse = Tensor.empty([B, Hq, T]);
  // Scores and products: T·S·(D + Dv) per head, about half of it when causal.
  const work = B * Hq * T * S * (D + Dv + 8) / (causal && T > 1 ? 2 : 1);
  if (o.size || lse.size) kernel('attention_fwd', [o.ptr, lse.ptr, qc.ptr, kc.ptr, vc.ptr, B, Hq, Hkv, T, S, D, Dv, ...strides, scale, causal, e - 1], work);
  if (needsGrad(qc, kc, vc)) {
    record(o, 'attention', [qc, kc, vc], (g) => {
      const dO = contiguous(g);
      const dq = Tensor.empty(q.shape), dk = Tensor.empty(k.shape), dv = Tensor.empty(v.shape);
      if (dq.size || dk.size || dv.size) {
        kernel('attention_bwd', [dq.ptr, dk.ptr, dv.ptr, qc.ptr, kc.ptr, vc.ptr, o.ptr, lse.ptr, dO.ptr, B, Hq, Hkv, T, S, D, Dv, ...strides, scale, causal], 2 * work);
      }
      return [qc.requiresGrad ? dq : null, kc.requiresGrad ? dk : null, vc.requiresGrad ? dv : null];
    });
  }
  return o;
}

/**
 * Attention as a composite of ops (matmul, additive masks, softmax, matmul): the fallback when
 * an additive mask is given, and the reference the fused kernels are tested against.
 */
export function attentionComposite(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  checkAttention(q, k, v, opts);
  const [B, Hq, T, D] = q.shape, [, Hkv, S] = k.shape;
  const G = Hq / Hkv, Dv = v.shape[3];
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  // Group the query heads that share a KV head: (B, Hkv, G·T, D).
  const qg = reshape(contiguous(q), [B, Hkv, G * T, D]);
  // Scale q (G·T·D values) rather than the scores (G·T·S).
  let scores = reshape(matmul(mul(qg, scale), transpose(k)), [B, Hq, T, S]);
  // A single query at the last position sees every key: no causal mask needed.
  if (opts.causal && !(T === 1)) scores = add(scores, causalMask(T, S));
  if (opts.mask) scores = add(scores, opts.mask);
  const p = softmaxImpl(scores, -1, 0);
  const out = matmul(reshape(p, [B, Hkv, G * T, S]), v);
  return reshape(out, [B, Hq, T, Dv]);
}

/** Inverted dropout: zero each element with probability p and scale the rest by 1/(1−p). */
export function dropout(x: Tensor, p: number, opts: { training?: boolean; generator?: Generator } = {}): Tensor {
  if (!(p >= 0 && p < 1)) throw new ShapeError('dropout', `p must be in [0, 1), got ${p}`);
  if (opts.training === false || p === 0) return x;
  const u = rand(x.shape, { generator: opts.generator ?? defaultGenerator });
  return where(gt(u, p), mul(x, 1 / (1 - p)), 0);
}

export { expand, sumTo, transpose, zeros };
export type { Shape };

/**
 * SwiGLU of a fused gate/up projection: silu(gu[…, :n]) ⊙ gu[…, n:] for gu (…, 2n), one kernel
 * (the same values as the composite); with autograd on, the composite of slice, silu and mul.
 */
export function swiglu(gu: Tensor): Tensor {
  const last = gu.ndim - 1;
  if (gu.ndim === 0 || gu.shape[last] % 2) throw new ShapeError('swiglu', `the last dimension of ${fmtShape(gu.shape)} must hold the gate and up halves (even)`);
  if (gu.dtype !== 'f32') throw new DTypeError('swiglu', `expected f32, got ${gu.dtype}`);
  const n = gu.shape[last] / 2;
  if (needsGrad(gu)) return mul(silu(slice(gu, last, 0, n)), slice(gu, last, n));
  const x = contiguous(gu);
  const out = Tensor.empty([...gu.shape.slice(0, -1), n]);
  if (out.size) kernel('swiglu', [out.ptr, x.ptr, out.size / n, n], out.size * 4);
  return out;
}

/**
 * f32 values (…, D), D even, as bfloat16 pairs: an f32 tensor (…, D/2) whose elements hold two
 * bf16 values each (low half first), rounded to nearest even (the bf16 KV cache's layout).
 */
export function toBf16Pairs(x: Tensor): Tensor {
  requireF32('toBf16Pairs', x);
  const D = x.shape[x.ndim - 1];
  if (x.ndim === 0 || D % 2) throw new ShapeError('toBf16Pairs', `the last dimension of ${fmtShape(x.shape)} must be even`);
  const c = contiguous(x), out = Tensor.empty([...x.shape.slice(0, -1), D / 2]);
  if (c.size) kernel('bf16_pack', [out.ptr, c.ptr, c.size], c.size);
  return out;
}

/** The f32 values (…, 2·P) of bfloat16 pairs (…, P) (toBf16Pairs), exactly. */
export function fromBf16Pairs(p: Tensor): Tensor {
  requireF32('fromBf16Pairs', p);
  const c = contiguous(p), out = Tensor.empty([...p.shape.slice(0, -1), 2 * p.shape[p.ndim - 1]]);
  if (out.size) kernel('bf16_widen', [out.ptr, c.ptr, out.size], out.size);
  return out;
}

/**
 * Inference only (no autograd), in place: rotary embedding of the q and k heads of a fused q/k/v
 * projection qkv (B, T, (Hq + 2·Hkv)·D), contiguous, whose positions use the tables cos/sin
 * (T, D/2) (ropeTables); the q heads are rotated where they are, the rotated k heads and the v
 * heads go to the caches kCache/vCache (B, Hkv, L, D) at positions start … start+T−1. One kernel
 * instead of rope, two copies and their views. With `bf16` the caches hold bfloat16 pairs: f32
 * tensors (B, Hkv, L, D/2) whose 4 bytes are two bf16 values each (KVCache's bf16 layout); the
 * values are rounded to nearest even.
 */
export function ropeQkvToCache(qkv: Tensor, kCache: Tensor, vCache: Tensor, start: number, cos: Tensor, sin: Tensor,
  Hq: number, Hkv: number, opts: { layout?: 'half' | 'interleaved'; bf16?: boolean } = {}): void {
  if (needsGrad(qkv)) throw new Error('ropeQkvToCache: inference only (call it under noGrad)');
  for (const [n, t] of [['qkv', qkv], ['kCache', kCache], ['vCache', vCache], ['cos', cos], ['sin', sin]] as const) {
    if (t.dtype !== 'f32') throw new DTypeError('ropeQkvToCache', `${n} must be f32, got ${t.dtype}`);
  }
  if (kCache.ndim !== 4 || kCache.shape.join() !== vCache.shape.join() || kCache.strides.join() !== vCache.strides.join() || kCache.strides[3] !== 1) {
    throw new ShapeError('ropeQkvToCache', `caches ${fmtShape(kCache.shape)} / ${fmtShape(vCache.shape)} must be (B, Hkv, L, D) with equal layouts and contiguous rows`);
  }
  const [B, H2, L, D0] = kCache.shape, D = opts.bf16 ? 2 * D0 : D0;
  if (qkv.ndim !== 3 || qkv.shape[0] !== B || qkv.shape[2] !== (Hq + 2 * Hkv) * D || H2 !== Hkv || !qkv.isContiguous()) {
    throw new ShapeError('ropeQkvToCache', `qkv ${fmtShape(qkv.shape)} must be contiguous (${B}, T, ${(Hq + 2 * Hkv) * D}) for ${Hq} q heads and ${Hkv} k/v heads of ${D}`);
  }
  const T = qkv.shape[1];
  if (D % 2) throw new ShapeError('ropeQkvToCache', `head dimension ${D} must be even`);
  if (!Number.isInteger(start) || start < 0 || start + T > L) throw new ShapeError('ropeQkvToCache', `positions ${start}…${start + T - 1} do not fit a cache of ${L}`);
  if (cos.shape.join() !== `${T},${D / 2}` || sin.shape.join() !== cos.shape.join()) {
    throw new ShapeError('ropeQkvToCache', `cos/sin tables ${fmtShape(cos.shape)}/${fmtShape(sin.shape)} do not match (T, D/2) = (${T}, ${D / 2})`);
  }
  if (qkv.size === 0) return;
  const c = contiguous(cos), s = contiguous(sin);
  // (The kernel's bf16 strides count values: two per element of the pair tensors.)
  const [sKb, sKh, sKs] = kCache.strides, e = opts.bf16 ? 2 : 1;
  kernel('rope_qkv', [qkv.ptr, kCache.ptr + 4 * start * sKs, vCache.ptr + 4 * start * sKs, c.ptr, s.ptr, B, T, Hq, Hkv, D, e * sKb, e * sKh, e * sKs,
    opts.layout === 'interleaved' ? 1 : 0, opts.bf16 ? 1 : 0], qkv.size);
}
