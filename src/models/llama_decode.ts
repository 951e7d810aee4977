// Decoding one token per row through a dense LLaMA as a fixed list of kernel calls.
//
// The generic layer code (LlamaDecoderLayer.forwardInto_) builds a dozen tensors, views and
// shape checks per layer and step; for a small model that JavaScript is a fifth of a decoding
// step, and in a fresh process it runs unoptimised for most of the first generation. A plan
// resolves everything that does not change from one step to the next once — weight pointers,
// dimensions, scratch buffers — and a step is then the same kernels with the same arguments as
// the generic path, in the same order (so the same values, bit for bit), plus the position.
//
// Used by LlamaForCausalLM.hidden for T = 1 with a plain KV cache (no sliding window), no
// padding, no token tree and no autograd, when every layer is the plain graph (fused q/k/v and
// gate/up rows, no biases, no q/k norms, a dense SwiGLU MLP); anything else takes the generic path.
import { Tensor, isQuantized } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { kernel, gatherQuantizedRows, quantizedMatmulInto } from '../tensor/ops.js';
import { unscoped } from '../tensor/storage.js';
import { IndexError, ShapeError } from '../tensor/errors.js';
import { H } from '../backend/heap.js';
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


/**
 * out (M, N) (+)= x (M, K) · wᵀ as the generic ops compute it: `linear` of x (B, 1, K) for an f32
 * w is a batched matmul (M = 1, B batches), `addLinearInPlace` one of M = B rows; the quantised
 * kernels take M = B rows either way.
 */
function matmul(out: number, x: number, w: Tensor, B: number, accumulate: boolean): void {
  const [N, K] = w.shape;
  if (isQuantized(w.dtype)) { quantizedMatmulInto(out, x, w, B, K, N, accumulate); return; }
  if (accumulate) kernel('sgemm', [x, w.ptr, out, B, N, K, K, 1, 1, K, N, 1, 0, 0, 0, 1], B * N * K);
  else kernel('sgemm', [x, w.ptr, out, 1, N, K, K, 1, 1, K, N, B, B > 1 ? K : 0, 0, B > 1 ? N : 0, 0], B * N * K);
}

export class DecodePlan {
  /** The residual stream (B, 1, D): the embedding, updated in place by every layer. */
  readonly h: Tensor;
  private readonly x: Tensor;
  private readonly rstd: Tensor;
  private readonly qkv: Tensor;
  private readonly att: Tensor;
  private readonly lse: Tensor;
  private readonly gu: Tensor;
  private readonly act: Tensor;

  constructor(readonly s: PlanSpec, readonly B: number) {
    const { D, Hq, Hkv, hd, I } = s;
    [this.h, this.x, this.rstd, this.qkv, this.att, this.lse, this.gu, this.act] = unscoped(() => [
      [B, 1, D], [B, D], [B], [B, (Hq + 2 * Hkv) * hd], [B, Hq, hd], [B, Hq], [B, 2 * I], [B, I],
    ].map((shape) => T.empty(shape)));
  }

  /** Embed ids (B, 1) and run every layer at position cache.length, appending to the cache; returns h (before the final norm). */
  run(ids: Tensor, cache: KVCache): Tensor {
    const { s, B } = this, { D, Hq, Hkv, hd, I, eps } = s;
    const start = cache.length, S = start + 1;
    if (S > cache.k[0].shape[2]) throw new ShapeError('KVCache', `cache of ${cache.maxLength} positions cannot hold ${S}`);
    if (S > s.cos.shape[0]) throw new ShapeError('LlamaForCausalLM', `position ${start} is beyond the RoPE table of ${s.cos.shape[0]}`);
    if (ids.dtype !== 'i32' || !ids.isContiguous()) ids = T.contiguous(ids);
    const V = s.embed.shape[0], ip = ids.ptr >>> 2;
    for (let i = 0; i < B; i++) {
      const v = H.i32[ip + i];
      if (!(v >= 0 && v < V)) throw new IndexError('embedding', `index ${v} at position ${i} is out of range [0, ${V})`);
    }
    const h = this.h.ptr, x = this.x.ptr, rstd = this.rstd.ptr, qkv = this.qkv.ptr, att = this.att.ptr, lse = this.lse.ptr, gu = this.gu.ptr, act = this.act.ptr;
    if (isQuantized(s.embed.dtype)) gatherQuantizedRows(this.h, s.embed, ids);
    else kernel('embedding', [h, s.embed.ptr, ids.ptr, B, D], B * D);
    const half = hd / 2, cos = s.cos.ptr + 4 * start * half, sin = s.sin.ptr + 4 * start * half;
    const W = (Hq + 2 * Hkv) * hd, scale = 1 / Math.sqrt(hd);
    for (let l = 0; l < s.layers.length; l++) {
      const L = s.layers[l], kc = cache.k[l], vc = cache.v[l];
      const [sKb, sKh, sKs] = kc.strides;
      kernel('rmsnorm', [x, rstd, h, L.inNorm.ptr, B, D, eps], B * D);
      matmul(qkv, x, L.qkv, B, false);
      kernel('rope_qkv', [qkv, kc.ptr + 4 * start * sKs, vc.ptr + 4 * start * sKs, cos, sin, B, 1, Hq, Hkv, hd, sKb, sKh, sKs, 0], B * W);
      // q heads (B, Hq, 1, hd) strided in qkv; keys and values (B, Hkv, S, hd) of the cache.
      kernel('attention_fwd', [att, lse, qkv, kc.ptr, vc.ptr, B, Hq, Hkv, 1, S, hd, hd, W, hd, W, sKb, sKh, sKs, sKb, sKh, sKs, scale, 1],
        B * Hq * S * (2 * hd + 8));
      matmul(h, att, L.o, B, true);
      kernel('rmsnorm', [x, rstd, h, L.postNorm.ptr, B, D, eps], B * D);
      matmul(gu, x, L.gu, B, false);
      kernel('swiglu', [act, gu, B, I], B * I * 4);
      matmul(h, act, L.down, B, true);
    }
    cache.length = S;
    return this.h;
  }

  dispose(): void {
    for (const t of [this.h, this.x, this.rstd, this.qkv, this.att, this.lse, this.gu, this.act]) t.dispose();
  }
}
