// Sparse mixture-of-experts feed-forward block (Mixtral, Qwen2-MoE; Switch/GShard/ST-MoE training
// options): each token is routed to k of E SwiGLU experts.
//
//   p = softmax(router(x))                     // (N, E), f32
//   (w, e) = top-k(p)                          // (N, k); w renormalised to sum 1 when `renormalize`
//   y = Σ_j w_j · expert_{e_j}(x)  (+ sigmoid(shared_gate(x)) · shared_expert(x))
//
// Dispatch: the N·k assignments are grouped by expert (on the host, from the top-k indices), the
// tokens' rows gathered once into expert order (the embedding kernel), each expert runs its
// matmuls on its own contiguous rows, and the weighted rows are scatter-added back to their
// tokens (indexAddRows) — forward and backward. Inference on a few token rows (decoding) takes
// forwardInto_: the router's logits from one matmul, softmax and top-k on the host, then the
// chosen experts (and the shared expert) in two fused kernels that read only their weights and
// add the result into the residual stream (tensor/moe.ts). Training options: router jitter (HF Mixtral's: the block's input scaled by
// U(1 − j, 1 + j)), and a capacity factor: an expert takes at most ⌈cf · N · k / E⌉ assignments,
// in token order; the rest are dropped (they add nothing; the kept weights are not renormalised).
import { Tensor } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { embedding, gatherLast, indexAddRows, softmax } from '../tensor/nn.js';
import { isGradEnabled } from '../tensor/autograd.js';
import { ShapeError, NonFiniteError } from '../tensor/errors.js';
import { H } from '../backend/heap.js';
import { Generator, defaultGenerator } from '../tensor/random.js';
import { MAX_MOE_SLOTS, moeExpertsInto_ } from '../tensor/moe.js';
import type { MoeSlot } from '../tensor/moe.js';
import { Module } from './module.js';
import { Linear } from './layers.js';
import { fusedRows, plainLinear, shareStorage } from './fused.js';

/** A SwiGLU MLP, down(silu(gate(x)) · up(x)), its three linears named as the checkpoint names them. */
export class SwiGLU extends Module {
  private readonly _names: { gate: string; up: string; down: string };
  constructor(hidden: number, inner: number, names: { gate: string; up: string; down: string }, opts: { bias?: boolean; generator: Generator; std: number }) {
    super();
    this._names = names;
    const o = { bias: opts.bias ?? false, generator: opts.generator, std: opts.std };
    const self = this as unknown as Record<string, Linear>;
    self[names.gate] = new Linear(hidden, inner, o);
    self[names.up] = new Linear(hidden, inner, o);
    self[names.down] = new Linear(inner, hidden, o);
  }
  /** The layer in a role, read from its field each time (LoRA may have wrapped it since). */
  private part(role: 'gate' | 'up' | 'down'): Linear {
    return (this as unknown as Record<string, Linear>)[this._names[role]];
  }
  forward(x: Tensor): Tensor {
    return this.part('down').forward(T.mul(T.silu(this.part('gate').forward(x)), this.part('up').forward(x)));
  }
  /** The three weights, when the three layers are plain bias-free Linear layers (not wrapped by LoRA); else null. */
  plainWeights(): { gate: Tensor; up: Tensor; down: Tensor } | null {
    const gate = this.part('gate'), up = this.part('up'), down = this.part('down');
    return plainLinear(gate) && plainLinear(up) && plainLinear(down) ? { gate: gate.weight, up: up.weight, down: down.weight } : null;
  }
}

/** Token rows up to which inference runs the chosen experts directly (forwardInto_) instead of dispatching by expert. */
export const MOE_DECODE_ROWS = 4;
/** Tuning of the decoding path: router multiply-adds (rows · experts · hidden) up to which it computes the router's logits on the host rather than in a kernel. */
export const moeDecodeTuning = { hostRouterMacs: 8192 };

export interface MoeOptions {
  hidden: number;
  /** E, the experts. */
  experts: number;
  /** k, the experts each token goes to. */
  topK: number;
  /** Each expert's SwiGLU width. */
  expertSize: number;
  /** Scale the k routing weights to sum 1 (Mixtral always; Qwen2-MoE's norm_topk_prob). */
  renormalize: boolean;
  /** A shared expert of this width, with a sigmoid gate (Qwen2-MoE); null: none. */
  sharedExpertSize: number | null;
  /** The experts' layer names: Mixtral's w1/w3/w2, Qwen2-MoE's gate_proj/up_proj/down_proj. */
  expertNames: { gate: string; up: string; down: string };
  /** Training only: the block's input scaled by U(1 − jitter, 1 + jitter) (HF Mixtral's router_jitter_noise). */
  jitter: number;
  /** Training only: assignments per expert at most ⌈cf · N · k / E⌉, in token order (0: no limit). */
  capacityFactor: number;
  /** Names the block in errors (e.g. "model.layers.3.block_sparse_moe"). */
  name: string;
  generator: Generator;
  std: number;
}

/** What a block reports of a forward pass when asked (for the auxiliary losses and statistics). */
export interface RouterRecord {
  /** Router logits (N, E) of this forward pass, in the current scope. */
  logits: Tensor;
  /** Assignments per expert (before any dropping). */
  load: number[];
  /** Assignments dropped for capacity. */
  dropped: number;
}

export class SparseMoeBlock extends Module {
  /** The router (HF names it `gate` in both Mixtral and Qwen2-MoE). */
  gate: Linear;
  experts: SwiGLU[];
  shared_expert?: SwiGLU;
  shared_expert_gate?: Linear;
  private readonly _g: Generator;

  constructor(readonly o: MoeOptions) {
    super();
    if (!(Number.isInteger(o.topK) && o.topK >= 1 && o.topK <= o.experts)) {
      throw new ShapeError('SparseMoeBlock', `${o.name}: top-k ${o.topK} must be in [1, ${o.experts}] (the number of experts)`);
    }
    const g = o.generator;
    this.gate = new Linear(o.hidden, o.experts, { bias: false, generator: g, std: o.std });
    this.experts = Array.from({ length: o.experts }, () => new SwiGLU(o.hidden, o.expertSize, o.expertNames, { generator: g, std: o.std }));
    if (o.sharedExpertSize) {
      this.shared_expert = new SwiGLU(o.hidden, o.sharedExpertSize, o.expertNames, { generator: g, std: o.std });
      this.shared_expert_gate = new Linear(o.hidden, 1, { bias: false, generator: g, std: o.std });
      // The router's rows and the shared expert's gate row adjacent: one matmul when decoding.
      shareStorage([this.gate, this.shared_expert_gate]);
    }
    this._g = g ?? defaultGenerator;
  }

  /** x (B, T, D) → (B, T, D); `record`, when given, receives this pass's router logits and load. */
  forward(x: Tensor, record?: RouterRecord[]): Tensor {
    const { experts: E, topK: k, hidden: D } = this.o;
    const shape = x.shape, N = x.size / D;
    let xf = T.reshape(x, [N, D]);
    if (this.training && this.o.jitter > 0 && isGradEnabled()) {
      xf = T.mul(xf, T.rand([N, D], { generator: this._g, low: 1 - this.o.jitter, high: 1 + this.o.jitter }));
    }
    const logits = T.contiguous(this.gate.forward(xf)); // (N, E)
    const probs = softmax(logits, -1);
    const pd = H.f32.subarray(probs.ptr >>> 2, (probs.ptr >>> 2) + N * E);
    const chosen = new Int32Array(N * k);
    const load = new Array<number>(E).fill(0);
    for (let t = 0; t < N; t++) topK(pd, t * E, E, chosen, t * k, k, this.o.name);
    for (const e of chosen) load[e]++;
    const values = gatherLastRows(probs, chosen, k); // (N, k)
    const w = this.o.renormalize ? T.div(values, T.sum(values, -1, true)) : values;
    // Group the assignments by expert, in token order; drop those beyond an expert's capacity.
    const cap = this.training && this.o.capacityFactor > 0 ? Math.ceil((this.o.capacityFactor * N * k) / E) : Infinity;
    const count = new Array<number>(E).fill(0);
    const byExpert: number[][] = Array.from({ length: E }, () => []);
    let dropped = 0;
    for (let a = 0; a < N * k; a++) {
      const e = chosen[a];
      if (count[e] >= cap) { dropped++; continue; }
      count[e]++;
      byExpert[e].push(a);
    }
    record?.push({ logits, load, dropped });
    const order = byExpert.flat(), M = order.length;
    let y: Tensor;
    if (M === 0) y = T.zeros([N, D]);
    else {
      const tok = T.tensor(Int32Array.from(order, (a) => Math.floor(a / k)), [M], 'i32');
      const xs = embedding(xf, tok); // (M, D): each assignment's token row, grouped by expert
      const ws = embedding(T.reshape(w, [N * k, 1]), T.tensor(Int32Array.from(order), [M], 'i32')); // (M, 1)
      const parts: Tensor[] = [];
      let off = 0;
      for (let e = 0; e < E; e++) {
        const n = byExpert[e].length;
        if (n) parts.push(this.experts[e].forward(T.slice(xs, 0, off, off + n)));
        off += n;
      }
      const ys = parts.length === 1 ? parts[0] : T.concat(parts, 0);
      y = indexAddRows(T.mul(ys, ws), tok, N);
    }
    if (this.shared_expert && this.shared_expert_gate) {
      y = T.add(y, T.mul(T.sigmoid(this.shared_expert_gate.forward(xf)), this.shared_expert.forward(xf)));
    }
    return T.reshape(y, shape);
  }

  /**
   * Inference (no autograd): h += this block's output for x (both (…, D), h contiguous), in place.
   * For up to MOE_DECODE_ROWS token rows: the router's logits (and the shared expert's gate) from
   * one matmul (on the host when small: moeDecodeTuning), softmax, top-k and the routing weights
   * on the host, then every row's k experts
   * and the shared expert in two kernels (moeExpertsInto_) that read only those experts' weights.
   * Otherwise, or when an expert's layers are not plain Linear layers (LoRA), the general path.
   */
  forwardInto_(h: Tensor, x: Tensor): void {
    const { experts: E, topK: k, hidden: D } = this.o;
    const N = x.size / D, shared = this.shared_expert && this.shared_expert_gate;
    const fast = N <= MOE_DECODE_ROWS && N * (k + (shared ? 1 : 0)) <= MAX_MOE_SLOTS && !isGradEnabled() &&
      !(this.training && this.o.capacityFactor > 0) && h.isContiguous() && h.size === x.size;
    const sharedW = shared ? this.shared_expert!.plainWeights() : null;
    if (!fast || (shared && !sharedW)) { T.addInPlace(h, this.forward(x)); return; }
    const xf = T.reshape(x, [N, D]);
    // Router logits (N, E), or (N, E + 1) with the shared expert's gate logit last.
    const router = shared ? fusedRows([this.gate, this.shared_expert_gate!]) : null;
    const rw = router ?? (plainLinear(this.gate) ? this.gate.weight : null);
    let lg: Float32Array | Float64Array = H.f32, l0: number, L: number;
    if (rw && xf.isContiguous() && N * rw.shape[0] * D <= moeDecodeTuning.hostRouterMacs) {
      // A small router on the host: cheaper than a kernel call (f64 sums rounded to f32).
      L = rw.shape[0];
      const f = H.f32, w0 = rw.ptr >>> 2, x0 = xf.ptr >>> 2, out = new Float64Array(N * L);
      for (let t = 0; t < N; t++) {
        for (let r = 0; r < L; r++) {
          let s = 0;
          for (let d = 0, xr = x0 + t * D, wr = w0 + r * D; d < D; d++) s += f[xr + d] * f[wr + d];
          out[t * L + r] = Math.fround(s);
        }
      }
      lg = out; l0 = 0;
    } else {
      const logits = T.contiguous(rw ? T.linear(xf, rw) : this.gate.forward(xf));
      L = logits.shape[1]; l0 = logits.ptr >>> 2;
    }
    const sg = shared && !router ? T.contiguous(this.shared_expert_gate!.forward(xf)) : null;
    const p = new Float64Array(N * E), chosen = new Int32Array(k), slots: MoeSlot[] = [];
    for (let t = 0; t < N; t++) {
      // softmax over the E router logits, in f64 rounded to f32 (the f32 softmax's values).
      const row = l0 + t * L, pr = t * E;
      let m = -Infinity, sum = 0;
      for (let e = 0; e < E; e++) m = Math.max(m, lg[row + e]);
      for (let e = 0; e < E; e++) sum += (p[pr + e] = Math.exp(lg[row + e] - m));
      for (let e = 0; e < E; e++) p[pr + e] = Math.fround(p[pr + e] / sum);
      topK(p, pr, E, chosen, 0, k, this.o.name);
      let norm = 1;
      if (this.o.renormalize) {
        norm = 0;
        for (let j = 0; j < k; j++) norm += p[pr + chosen[j]];
      }
      for (let j = 0; j < k; j++) {
        const w = this.experts[chosen[j]].plainWeights();
        if (!w) { T.addInPlace(h, this.forward(x)); return; }
        slots.push({ ...w, row: t, scale: p[pr + chosen[j]] / norm });
      }
      if (sharedW) {
        const z = sg ? H.f32[(sg.ptr >>> 2) + t] : lg[row + E];
        slots.push({ ...sharedW, row: t, scale: 1 / (1 + Math.exp(-z)) });
      }
    }
    moeExpertsInto_(T.reshape(h, [N, D]), xf, slots);
  }
}

/**
 * Top-k of p[row … row+E) into chosen[at … at+k), largest first (ties to the lower expert id,
 * as torch.topk on distinct values); a NaN probability is an error naming the block.
 */
function topK(p: ArrayLike<number>, row: number, E: number, chosen: Int32Array, at: number, k: number, name: string): void {
  for (let j = 0; j < k; j++) {
    let best = -1;
    for (let e = 0; e < E; e++) {
      const v = p[row + e];
      if (Number.isNaN(v)) throw new NonFiniteError(`${name}: router probabilities`, 1, row + e, v);
      let taken = false;
      for (let i = 0; i < j; i++) if (chosen[at + i] === e) { taken = true; break; }
      if (!taken && (best < 0 || v > p[row + best])) best = e;
    }
    chosen[at + j] = best;
  }
}

/** values (N, k) = x[t, chosen[t·k + j]] for x (N, E), with x's gradient. */
function gatherLastRows(x: Tensor, chosen: Int32Array, k: number): Tensor {
  return gatherLast(x, T.tensor(chosen, [x.shape[0], k], 'i32'));
}
