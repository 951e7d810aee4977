// Vector quantisation (VQ-VAE, van den Oord et al. 2017): each D-vector of an encoder's output
// grid is replaced by its nearest codebook entry; the decoder's gradient passes straight
// through to the encoder; a commitment loss keeps the encoder near its codes. The codebook is
// learned either by its own loss term or, with `decay`, as an exponential moving average of the
// vectors assigned to each code (the paper's appendix), with dead codes restarted on encoder
// outputs of the batch (as Jukebox and later tokenizers do).
import { Tensor } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { embedding, indexAddRows } from '../tensor/nn.js';
import { noGrad } from '../tensor/autograd.js';
import { H } from '../backend/heap.js';
import { ShapeError, fmtShape } from '../tensor/errors.js';
import { Generator, defaultGenerator } from '../tensor/random.js';
import { Module, parameter, initialUniform } from './module.js';

export interface VectorQuantizerOptions {
  /** Weight of the commitment loss ‖z − sg(e)‖² (default 0.25). */
  beta?: number;
  /** EMA decay of the codebook statistics (default 0.99); null learns the codebook by its loss ‖sg(z) − e‖². */
  decay?: number | null;
  /** Laplace smoothing of the EMA counts (default 1e-5). */
  eps?: number;
  /** With EMA: a code whose average count falls below this is restarted on a vector of the batch (default 0.01; 0 = never). */
  deadThreshold?: number;
  generator?: Generator;
}

export interface Quantized {
  /** The quantised grid (B, D, h, w): the codes' vectors forward, the identity backward. */
  zq: Tensor;
  /** Code ids (B, h, w), i32. */
  codes: Tensor;
  /** β · commitment (+ the codebook loss without EMA), a scalar. */
  loss: Tensor;
  /** Codes used in this batch, and the perplexity of their distribution (e^entropy). */
  used: number;
  perplexity: number;
}

export class VectorQuantizer extends Module {
  /** The codebook (K, D). */
  codebook: Tensor;
  /** EMA of each code's count (K) and of the sum of its vectors (K, D); absent without EMA. */
  ema_count: Tensor | null;
  ema_sum: Tensor | null;
  private readonly beta: number;
  private readonly decay: number | null;
  private readonly eps: number;
  private readonly dead: number;
  private readonly g: Generator;
  /** Codes restarted so far (for reports). */
  restarts = 0;

  constructor(readonly numCodes: number, readonly dim: number, o: VectorQuantizerOptions = {}) {
    super();
    if (!Number.isInteger(numCodes) || numCodes < 1 || !Number.isInteger(dim) || dim < 1) throw new ShapeError('VectorQuantizer', `codes ${numCodes} and dimension ${dim} must be positive integers`);
    this.beta = o.beta ?? 0.25;
    this.decay = o.decay === undefined ? 0.99 : o.decay;
    this.eps = o.eps ?? 1e-5;
    this.dead = o.deadThreshold ?? 0.01;
    this.g = o.generator ?? defaultGenerator;
    this.codebook = parameter(() => initialUniform([numCodes, dim], { generator: this.g, bound: 1 / numCodes }));
    if (this.decay !== null) {
      this.codebook.requiresGrad_(false);
      this.ema_count = T.ones([numCodes]).keep();
      this.ema_sum = T.clone(this.codebook).keep();
    } else {
      this.ema_count = null;
      this.ema_sum = null;
    }
  }

  /** Nearest codes (N) of flat vectors (N, D): argmin ‖z − e‖² = argmin (‖e‖² − 2 z·e). */
  nearest(flat: Tensor): Tensor {
    return noGrad(() => {
      const e = this.codebook;
      const d = T.sub(T.reshape(T.sum(T.mul(e, e), 1), [1, this.numCodes]), T.mul(T.matmul(flat, T.transpose(e, 0, 1)), 2));
      return T.argmin(d, 1);
    });
  }

  forward(z: Tensor): Quantized {
    if (z.ndim !== 4 || z.shape[1] !== this.dim) throw new ShapeError('VectorQuantizer', `input must be (B, ${this.dim}, h, w), got ${fmtShape(z.shape)}`);
    const [B, D, h, w] = z.shape;
    const flat = T.reshape(T.permute(z, [0, 2, 3, 1]), [B * h * w, D]);
    const codes = this.nearest(T.detach(flat));
    const q = embedding(this.codebook, codes); // (N, D)
    const diff = T.sub(flat, T.detach(q));
    let loss = T.mul(T.mean(T.mul(diff, diff)), this.beta);
    if (this.decay === null) {
      const cb = T.sub(T.detach(flat), q);
      loss = T.add(loss, T.mean(T.mul(cb, cb)));
    }
    // Straight-through: forward q, backward the identity to z.
    const st = T.add(flat, T.detach(T.sub(q, flat)));
    const zq = T.permute(T.reshape(st, [B, h, w, D]), [0, 3, 1, 2]);
    const counts = this.countCodes(codes);
    if (this.training && this.decay !== null) this.emaUpdate(T.detach(flat), codes);
    let used = 0, entropy = 0;
    const N = B * h * w;
    for (const c of counts) if (c > 0) { used++; const p = c / N; entropy -= p * Math.log(p); }
    return { zq, codes: T.reshape(codes, [B, h, w]), loss, used, perplexity: Math.exp(entropy) };
  }

  /** Codes (B, h, w) → their vectors as a grid (B, D, h, w) (the decoder's input when decoding tokens). */
  lookup(codes: Tensor): Tensor {
    if (codes.ndim !== 3 || codes.dtype !== 'i32') throw new ShapeError('VectorQuantizer', `codes must be an i32 grid (B, h, w), got ${codes.dtype} ${fmtShape(codes.shape)}`);
    const [B, h, w] = codes.shape;
    return T.permute(T.reshape(embedding(this.codebook, T.reshape(codes, [B * h * w])), [B, h, w, this.dim]), [0, 3, 1, 2]);
  }

  private countCodes(codes: Tensor): Float64Array {
    const out = new Float64Array(this.numCodes);
    const c = T.contiguous(codes), p = c.ptr >>> 2;
    for (let i = 0; i < c.size; i++) out[H.i32[p + i]]++;
    return out;
  }

  /** One EMA step of the counts and sums, the codebook from them, and restarts of dead codes. */
  private emaUpdate(flat: Tensor, codes: Tensor): void {
    noGrad(() => {
      const K = this.numCodes, d = this.decay!;
      const n = indexAddRows(T.ones([flat.shape[0], 1]), codes, K); // (K, 1)
      const s = indexAddRows(flat, codes, K); // (K, D)
      T.copyInto(this.ema_count!, T.add(T.mul(this.ema_count!, d), T.mul(T.reshape(n, [K]), 1 - d)));
      T.copyInto(this.ema_sum!, T.add(T.mul(this.ema_sum!, d), T.mul(s, 1 - d)));
      const total = T.sum(this.ema_count!).item();
      const smoothed = T.mul(T.div(T.add(this.ema_count!, this.eps), total + K * this.eps), total);
      T.copyInto(this.codebook, T.div(this.ema_sum!, T.reshape(smoothed, [K, 1])));
      if (this.dead > 0) this.restartDead(flat);
    });
  }

  private restartDead(flat: Tensor): void {
    const D = this.dim, N = flat.shape[0];
    const counts = this.ema_count!.toArray() as number[];
    const dead = counts.flatMap((c, k) => (c < this.dead ? [k] : []));
    if (!dead.length) return;
    const f = T.contiguous(flat), fp = f.ptr >>> 2;
    const cb = this.codebook.ptr >>> 2, es = this.ema_sum!.ptr >>> 2, ec = this.ema_count!.ptr >>> 2;
    for (const k of dead) {
      const r = Math.min(N - 1, Math.floor(this.g.uniform() * N));
      for (let j = 0; j < D; j++) { const v = H.f32[fp + r * D + j]; H.f32[cb + k * D + j] = v; H.f32[es + k * D + j] = v; }
      H.f32[ec + k] = 1;
      this.restarts++;
    }

  }
}
