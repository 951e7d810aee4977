// Decoding a few tokens per row through a dense LLaMA as a fixed list of kernel calls.
//
// The generic layer code (LlamaDecoderLayer.forwardInto_) builds a dozen tensors, views and
// shape checks per layer and step; for a small model that JavaScript is a fifth of a decoding
// step, and in a fresh process it runs unoptimised for most of the first generation. A plan
// resolves everything that does not change from one step to the next once — weight pointers,
// dimensions, scratch buffers — and a step is then the same kernels with the same arguments as
// the generic path, in the same order (so the same values, bit for bit), plus the position.
// The calls go into a kernel batch (Backend.batch: with worker threads, one job for the whole
// step); the next step on the same cache runs the same batch with the ids and the
// position-dependent arguments patched, so a step's JavaScript is a few dozen stores whatever
// the model's depth, and a fresh process has little of it to compile while it decodes.
// Left-padded rows (continuous batching) are the exception: the generic path masks the padding
// and runs composite attention; a plan runs the fused kernel row by row over each row's own keys
// (the same values to rounding, and what the row decoded alone computes).
//
// Used by LlamaForCausalLM.hidden for steps of T ≤ MAX_PLAN_TOKENS tokens (a decoding step, the
// chain of drafted tokens a speculative step verifies, a short prompt; one token per row with
// left padding or sliding-window layers), no token tree other than a chain, and no autograd,
// when every layer is the plain graph (fused q/k/v and gate/up rows, no biases, no q/k norms, a
// dense SwiGLU MLP); anything else takes the generic path.
import { Tensor, isQuantized } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { gatherQuantizedRows, quantizedMatmulInto } from '../tensor/ops.js';
import { unscoped } from '../tensor/storage.js';
import { IndexError, ShapeError } from '../tensor/errors.js';
import { H, alloc, release } from '../backend/heap.js';
import { backend } from '../backend/index.js';
import type { Backend, KernelBatch } from '../backend/kernels.js';
import type { KVCache } from './llama.js';

/** The weights of one decoder layer as the plan uses them. */
export interface PlanLayer {
  inNorm: Tensor;
  /** q, k and v rows as one ((Hq + 2·Hkv)·hd, D) matrix. */
  qkv: Tensor;
  o: Tensor;
  postNorm: Tensor;
  /** gate and up rows as one (2·I, D) matrix. */
  gu: Tensor;
  down: Tensor;
}

export interface PlanSpec {
  layers: PlanLayer[];
  embed: Tensor;
  D: number;
  Hq: number;
  Hkv: number;
  hd: number;
  I: number;
  eps: number;
  /** RoPE tables (positions, hd/2). */
  cos: Tensor;
  sin: Tensor;
}

/** The most new tokens per row a plan takes (speculative verification sizes; a prefill is longer). */
export const MAX_PLAN_TOKENS = 16;

/**
 * out (M, N) (+)= x (M, K) · wᵀ for M rows, as the generic ops compute it (`linear` and
 * `addLinearInPlace` fold (B, T) into M rows: one GEMM with w read transposed in place).
 */
function matmul(to: KernelBatch, out: number, x: number, w: Tensor, M: number, accumulate: boolean): void {
  const N = w.shape[0], K = w.shape[1]; // (not destructured: no iterator per call)
  if (isQuantized(w.dtype)) quantizedMatmulInto(out, x, w, M, K, N, accumulate, to);
  else to.add('sgemm', [x, w.ptr, out, M, N, K, K, 1, 1, K, N, 1, 0, 0, 0, accumulate ? 1 : 0], M * N * K);
}

export class DecodePlan {
  /** The residual stream (B, T, D): the embedding, updated in place by every layer. */
  readonly h: Tensor;
  private readonly x: Tensor;
  private readonly rstd: Tensor;
  private readonly qkv: Tensor;
  private readonly att: Tensor;
  private readonly lse: Tensor;
  private readonly gu: Tensor;
  private readonly act: Tensor;
  /**
   * With T > 1: att's contiguous copy as (B, T, Hq, hd), o_proj's input rows, and the copy
   * kernel's meta block for it (shape and strides, written once: the copy runs every layer).
   */
  private readonly attRows: Tensor | null = null;
  private copyMeta = 0;
  /**
   * A step's kernel calls, collected and then run as one batch (Backend.batch: with worker threads,
   * one job for the whole step instead of a post and a wait per kernel).
   */
  private calls: KernelBatch | null = null;
  /** The backend `calls` belongs to (a step runs on the backend current at the time). */
  private callsOf: Backend | null = null;

  /** The cache the batch's calls were recorded for (null: record them again), and its buffers then. */
  private recorded: KVCache | null = null;
  private recordedK: Tensor[] = [];
  private recordedV: Tensor[] = [];
  /** Per layer: the indexes of its rope_qkv and attention_fwd calls, and the cache's column stride. */
  private readonly ropeAt: number[] = [];
  private readonly attentionAt: number[] = [];
  private readonly columnStride: number[] = [];
  /** attention_fwd's work per key. */
  private readonly attentionWork: number;

  constructor(readonly s: PlanSpec, readonly B: number, readonly Tn: number) {
    const { D, Hq, Hkv, hd, I } = s, n = B * Tn;
    this.attentionWork = B * Hq * Tn * (2 * hd + 8) / (Tn > 1 ? 2 : 1);
    [this.h, this.x, this.rstd, this.qkv, this.att, this.lse, this.gu, this.act] = unscoped(() => [
      [B, Tn, D], [n, D], [n], [n, (Hq + 2 * Hkv) * hd], [B, Hq, Tn, hd], [B, Hq, Tn], [n, 2 * I], [n, I],
    ].map((shape) => T.empty(shape)));
    if (Tn > 1) {
      this.attRows = unscoped(() => T.empty([B, Tn, Hq, hd]));
      // copy's meta (as copyInto writes it): the shape, the destination's strides, then the strides
      // of att read as (B, T, Hq, hd) (a transposed view: no storage of its own).
      const src = T.transpose(this.att, 1, 2);
      const meta = [...src.shape, ...this.attRows.strides, ...src.strides];
      this.copyMeta = alloc(4 * meta.length);
      H.i32.set(meta, this.copyMeta >>> 2);
    }
  }

  private batch(): KernelBatch {
    const be = backend();
    if (be !== this.callsOf || !this.calls) {
      this.calls?.dispose();
      this.calls = be.batch();
      this.callsOf = be;
      this.recorded = null;
    }
    return this.calls;
  }

  private rowsOfAttention(to: KernelBatch): number {
    const rows = this.attRows!;
    to.add('copy', [rows.ptr, this.att.ptr, 4, this.copyMeta, rows.size], rows.size);
    return rows.ptr;
  }

  /**
   * Embed ids (B, T) and run every layer at positions cache.length…, appending to the cache;
   * returns h (before the final norm). `padLeft` (one token per row, no sliding window): row b's
   * first padLeft[b] positions are padding (continuous batching): its RoPE positions start after
   * them and its attention reads the keys from there on, row by row (the generic path masks them).
   */
  run(ids: Tensor, cache: KVCache, padLeft: readonly number[] | null = null): Tensor {
    const { s, B, Tn } = this, { D, Hq, Hkv, hd, I, eps } = s, n = B * Tn;
    const start = cache.length, end = start + Tn, win = cache.window;
    if (win !== null && Tn > 1) throw new ShapeError('DecodePlan', 'sliding-window layers take one token per row');
    if (padLeft && (Tn > 1 || win !== null)) throw new ShapeError('DecodePlan', 'left padding takes one token per row and no sliding window');
    if (padLeft && padLeft.length !== B) throw new ShapeError('LlamaForCausalLM', `padLeft has ${padLeft.length} entries for a batch of ${B}`);
    if (padLeft) for (let b = 0; b < B; b++) if (!(padLeft[b] >= 0 && padLeft[b] < end)) throw new ShapeError('LlamaForCausalLM', `row ${b} is all padding`);
    if (end > cache.maxLength) throw new ShapeError('KVCache', `cache of ${cache.maxLength} positions cannot hold ${end}`);
    if (end > s.cos.shape[0]) throw new ShapeError('LlamaForCausalLM', `position ${end - 1} is beyond the RoPE table of ${s.cos.shape[0]}`);
    // A rolling buffer drops what no later query sees when the new position does not fit.
    if (win !== null) cache.reserve(Tn);
    if (ids.dtype !== 'i32' || !ids.isContiguous()) ids = T.contiguous(ids);
    const V = s.embed.shape[0], ip = ids.ptr >>> 2;
    for (let i = 0; i < n; i++) {
      const v = H.i32[ip + i];
      if (!(v >= 0 && v < V)) throw new IndexError('embedding', `index ${v} at position ${i} is out of range [0, ${V})`);
    }
    const to = this.batch();
    // The calls of the last step serve again for the same cache at another position (no padding,
    // no rolling buffer): only the ids and what depends on the position change.
    if (padLeft || win !== null || cache !== this.recorded || !this.sameBuffers(cache)) this.record(to, ids, cache, padLeft);
    else this.patch(to, ids, cache);
    to.run();
    cache.length = end;
    return this.h;
  }

  /** Whether the cache still has the buffers the recorded calls point into. */
  private sameBuffers(cache: KVCache): boolean {
    const k = this.recordedK;
    for (let l = 0; l < k.length; l++) if (cache.k[l] !== k[l] || cache.v[l] !== this.recordedV[l]) return false;
    return true;
  }

  /**
   * The recorded calls at position cache.length with these ids: the embedding's ids, each layer's
   * rope_qkv (its cache columns and RoPE rows) and attention_fwd (its key count, and so its work),
   * as record() computes them for a cache without a rolling buffer (first column 0, every key).
   */
  private patch(to: KernelBatch, ids: Tensor, cache: KVCache): void {
    const { s, Tn } = this, start = cache.length, end = start + Tn, row = 4 * start * (s.hd / 2);
    to.set(0, 2, ids.ptr);
    const k = this.recordedK, v = this.recordedV, cos = s.cos.ptr + row, sin = s.sin.ptr + row;
    for (let l = 0; l < k.length; l++) {
      const r = this.ropeAt[l], at = this.attentionAt[l], col = 4 * start * this.columnStride[l];
      to.set(r, 1, k[l].ptr + col);
      to.set(r, 2, v[l].ptr + col);
      to.set(r, 3, cos);
      to.set(r, 4, sin);
      to.set(at, 9, end);
      to.setWork(at, this.attentionWork * end);
    }
  }

  /** Adds a step's calls to an empty batch, and remembers where patch() finds them. */
  private record(to: KernelBatch, ids: Tensor, cache: KVCache, padLeft: readonly number[] | null): void {
    const { s, B, Tn } = this, { D, Hq, Hkv, hd, I, eps } = s, n = B * Tn;
    const start = cache.length, end = start + Tn, win = cache.window;
    const h = this.h.ptr, x = this.x.ptr, rstd = this.rstd.ptr, qkv = this.qkv.ptr, att = this.att.ptr, lse = this.lse.ptr, gu = this.gu.ptr, act = this.act.ptr;
    to.clear();
    this.recorded = null;
    if (isQuantized(s.embed.dtype)) gatherQuantizedRows(this.h, s.embed, ids, to);
    else to.add('embedding', [h, s.embed.ptr, ids.ptr, n, D], n * D);
    const half = hd / 2, cos = s.cos.ptr + 4 * start * half, sin = s.sin.ptr + 4 * start * half;
    const W = (Hq + 2 * Hkv) * hd, scale = 1 / Math.sqrt(hd);
    const kvHalf = cache.dtype === 'bf16' ? 1 : 0, e = kvHalf ? 2 : 1;
    for (let l = 0; l < s.layers.length; l++) {
      const L = s.layers[l], kc = cache.k[l], vc = cache.v[l];
      // Pointers step by kc's (f32) elements; the kernels' strides count stored values (two per
      // element of a bf16 cache's pair tensors).
      const [sKb, sKh, sKs] = kc.strides, kb = e * sKb, kh = e * sKh, ks = e * sKs;
      // Column a of this layer's buffer takes the new position; attention reads the keys from
      // column c on: the query's window on a sliding-window layer, else every key.
      const f = cache.firstOf(l), a = start - f, c = cache.windowed[l] ? Math.max(0, start - win! + 1) - f : 0, S = end - f - c;
      if (a + Tn > kc.shape[2]) throw new ShapeError('KVCache', `layer ${l}'s buffer of ${kc.shape[2]} columns cannot hold positions ${f}…${end - 1}`);
      to.add('rmsnorm', [x, rstd, h, L.inNorm.ptr, n, D, eps], n * D);
      matmul(to, qkv, x, L.qkv, n, false);
      if (padLeft) {
        // Row by row: row b's token is at position start − pad, its keys from column pad on.
        for (let b = 0; b < B; b++) {
          const p = padLeft[b], q = qkv + 4 * b * W, k = kc.ptr + 4 * b * sKb, v = vc.ptr + 4 * b * sKb, r = 4 * (start - p) * half;
          to.add('rope_qkv', [q, k + 4 * a * sKs, v + 4 * a * sKs, s.cos.ptr + r, s.sin.ptr + r, 1, 1, Hq, Hkv, hd, kb, kh, ks, 0, kvHalf], W);
          to.add('attention_fwd', [att + 4 * b * Hq * hd, lse + 4 * b * Hq, q, k + 4 * p * sKs, v + 4 * p * sKs, 1, Hq, Hkv, 1, end - p, hd, hd, W, hd, W, kb, kh, ks, kb, kh, ks, scale, 1, kvHalf],
            Hq * (end - p) * (2 * hd + 8));
        }
      } else {
        this.ropeAt[l] = to.length;
        this.columnStride[l] = sKs;
        to.add('rope_qkv', [qkv, kc.ptr + 4 * a * sKs, vc.ptr + 4 * a * sKs, cos, sin, B, Tn, Hq, Hkv, hd, kb, kh, ks, 0, kvHalf], n * W);
        // q heads (B, Hq, T, hd) strided in qkv; keys and values (B, Hkv, S, hd) of the cache.
        this.attentionAt[l] = to.length;
        to.add('attention_fwd', [att, lse, qkv, kc.ptr + 4 * c * sKs, vc.ptr + 4 * c * sKs, B, Hq, Hkv, Tn, S, hd, hd, Tn * W, hd, W, kb, kh, ks, kb, kh, ks, scale, 1, kvHalf],
          this.attentionWork * S);
      }
      // The attention output (B, Hq, T, hd) as rows (B·T, Hq·hd): with T > 1 a transposed copy.
      const o = Tn === 1 ? att : this.rowsOfAttention(to);
      matmul(to, h, o, L.o, n, true);
      to.add('rmsnorm', [x, rstd, h, L.postNorm.ptr, n, D, eps], n * D);
      matmul(to, gu, x, L.gu, n, false);
      to.add('swiglu', [act, gu, n, I], n * I * 4);
      matmul(to, h, act, L.down, n, true);
    }
    if (!padLeft && win === null) {
      this.recorded = cache;
      this.recordedK = cache.k.slice();
      this.recordedV = cache.v.slice();
    }
  }

  dispose(): void {
    for (const t of [this.h, this.x, this.rstd, this.qkv, this.att, this.lse, this.gu, this.act, this.attRows]) t?.dispose();
    if (this.copyMeta) release(this.copyMeta);
    this.calls?.dispose();
    this.calls = null;
    this.callsOf = null;
    this.recorded = null;
    this.copyMeta = 0;
  }
}
