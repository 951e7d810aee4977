// S4D (Gu, Gupta, Goel & Ré 2022, "On the Parameterization and Initialization of Diagonal State
// Space Models"): a linear time-invariant state-space layer over H channels, each channel its own
// SSM with N/2 complex modes (their conjugates implicit, so the output is real). Parameters are
// named as the S4 repository's S4D kernel:
//
//   dt = exp(log_dt)                              (H)        step size, init log-uniform in [dt_min, dt_max]
//   A  = −exp(log_A_real) + i·A_imag               (H, N/2)   from an S4D initialisation (nn/hippo.ts)
//   C                                              (H, N/2, 2) complex (re, im); B = 1 is absorbed in C
//   D                                              (H)        skip connection
//
// Zero-order hold:  dA = exp(dt·A),  dB = (exp(dt·A) − 1)/A.
// Convolution mode (training, a whole sequence from a zero state):
//   K[h, l] = 2·Re Σ_n C_n·dB_n·dA_n^l   (l < L: a Vandermonde product)      y = K ∗ x + D⊙x
// Recurrent mode (decoding), the modal state h (B, H, N/2) complex, O(H·N) per token:
//   h_n ← dA_n·h_n + dB_n·x,   y = 2·Re Σ_n C_n·h_n + D⊙x
// The convolution is tensor/ssm.ts's causalConv1d with the kernel as its (H, L) weight.
// A chunk of T positions from a state h0 (prefill) is the convolution plus the state's terms:
//   y_t += 2·Re Σ_n C_n·dA_n^{t+1}·h0_n,   h_T = dA^T·h0 + dB·Σ_t dA^{T−1−t}·x_t
//
// Complex numbers are pairs of real tensors; every step is an autograd op, so the kernel's
// parameters train through the convolution. dA − 1 is computed without cancellation
// (expm1(dt·Re A)·cos(dt·Im A) − 2·sin²(dt·Im A / 2)): small dt·A are common (dt ≥ 0.001).
// The Vandermonde products never build (H, N/2, L) powers (2 GB for a 300-token prefill at
// H = 512, N = 64): l = q·c + r with c = ⌈√L⌉ and dA^l = dA^{q·c}·dA^r, one small matmul per
// channel; memory O(H·(L + N·√L)).
import { Tensor } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { Generator, defaultGenerator } from '../tensor/random.js';
import { scope } from '../tensor/storage.js';
import { ShapeError, fmtShape } from '../tensor/errors.js';
import { causalConv1d, MAX_CONV_K } from '../tensor/ssm.js';
import { Module, parameter, initialNormal, initialUniform } from './module.js';
import { s4dInit, HippoError } from './hippo.js';
import type { S4DInit } from './hippo.js';

export interface S4DOptions {
  /** N, the state size: N/2 complex modes are stored (even; default 64). */
  stateSize?: number;
  /** The S4D initialisation of A (default 'lin'). */
  init?: S4DInit;
  /** Range of the initial step sizes (log-uniform; defaults 0.001 and 0.1). */
  dtMin?: number;
  dtMax?: number;
  generator?: Generator;
}

/** A complex tensor as (re, im). */
interface Complex { re: Tensor; im: Tensor }

const cmul = (a: Complex, b: Complex): Complex => ({
  re: T.sub(T.mul(a.re, b.re), T.mul(a.im, b.im)),
  im: T.add(T.mul(a.re, b.im), T.mul(a.im, b.re)),
});

/** The zero-order-hold discretisation of one layer, (H, N/2) each. */
export interface S4DDiscrete {
  /** dt·A */
  dtA: Complex;
  dA: Complex;
  dB: Complex;
  C: Complex;
  /** C·dB, the convolution kernel's coefficients */
  CB: Complex;
}

/** The SSM parameters of S4D over H channels (the S4 repository's S4DKernel). */
export class S4DKernel extends Module {
  log_dt: Tensor;     // (H)
  log_A_real: Tensor; // (H, N/2)
  A_imag: Tensor;     // (H, N/2)
  C: Tensor;          // (H, N/2, 2)
  readonly modes: number;

  constructor(readonly channels: number, opts: S4DOptions = {}) {
    super();
    const N = opts.stateSize ?? 64, H = channels, M = N / 2;
    if (!Number.isInteger(H) || H < 1) throw new ShapeError('S4DKernel', `channels must be a positive integer, got ${H}`);
    if (!Number.isInteger(N) || N < 2 || N % 2) throw new HippoError(`S4DKernel: state size N must be a positive even integer (N/2 complex modes), got ${N}`);
    const g = opts.generator ?? defaultGenerator, dtMin = opts.dtMin ?? 0.001, dtMax = opts.dtMax ?? 0.1;
    if (!(dtMin > 0 && dtMax >= dtMin)) throw new HippoError(`S4DKernel: need 0 < dtMin ≤ dtMax, got ${dtMin} and ${dtMax}`);
    this.modes = M;
    const A = s4dInit(opts.init ?? 'lin', N);
    const rows = (v: Float64Array): number[] => Array.from({ length: H * M }, (_, i) => v[i % M]);
    // log dt uniform in [log dt_min, log dt_max]: the midpoint ± half the range
    const lo = Math.log(dtMin), hi = Math.log(dtMax);
    this.log_dt = parameter(() => initialUniform([H], { generator: g, bound: (hi - lo) / 2 }));
    scope(() => T.addInPlace(this.log_dt, T.full([H], (lo + hi) / 2)));
    this.log_A_real = parameter(() => T.tensor(rows(A.real.map((r) => Math.log(-r))), [H, M]));
    this.A_imag = parameter(() => T.tensor(rows(A.imag), [H, M]));
    // C complex normal with E|C|² = 1 (torch.randn of a complex dtype): each part N(0, ½)
    this.C = parameter(() => initialNormal([H, M, 2], { generator: g, std: Math.SQRT1_2 }));
  }

  /** Zero-order hold of A, and C·dB. */
  discrete(): S4DDiscrete {
    const dt = T.unsqueeze(T.exp(this.log_dt), 1);                  // (H, 1)
    const A: Complex = { re: T.neg(T.exp(this.log_A_real)), im: this.A_imag };
    const dtA: Complex = { re: T.mul(A.re, dt), im: T.mul(A.im, dt) };
    const decay = T.exp(dtA.re), cos = T.cos(dtA.im), sin = T.sin(dtA.im);
    const dA: Complex = { re: T.mul(decay, cos), im: T.mul(decay, sin) };
    // dA − 1 = expm1(x)·cos y − 2 sin²(y/2), expm1(x) = 2 tanh(x/2) / (1 − tanh(x/2))
    const th = T.tanh(T.mul(dtA.re, 0.5)), sh = T.sin(T.mul(dtA.im, 0.5));
    const dAm1: Complex = { re: T.sub(T.mul(T.div(T.mul(th, 2), T.sub(1, th)), cos), T.mul(T.mul(sh, sh), 2)), im: dA.im };
    // dB = (dA − 1) / A = (dA − 1)·conj(A) / |A|²
    const abs2 = T.add(T.mul(A.re, A.re), T.mul(A.im, A.im));
    const dB: Complex = {
      re: T.div(T.add(T.mul(dAm1.re, A.re), T.mul(dAm1.im, A.im)), abs2),
      im: T.div(T.sub(T.mul(dAm1.im, A.re), T.mul(dAm1.re, A.im)), abs2),
    };
    const [cr, ci] = T.split(this.C, 1, 2);
    const C: Complex = { re: T.squeeze(cr, 2), im: T.squeeze(ci, 2) };
    return { dtA, dA, dB, C, CB: cmul(C, dB) };
  }

  /** dA^e = exp(e·dt·A) for one exponent e: (re, im) (H, N/2). */
  power(d: S4DDiscrete, e: number): Complex {
    const mag = T.exp(T.mul(d.dtA.re, e)), phase = T.mul(d.dtA.im, e);
    return { re: T.mul(mag, T.cos(phase)), im: T.mul(mag, T.sin(phase)) };
  }

  /**
   * The powers dA^j for j < L in factored form, so that no (H, N/2, L) tensor is built: with
   * c = ⌈√L⌉ and Q = ⌈L/c⌉, position j = q·c + r (q < Q, r < c) has exponent e(j) = q·c + r, or
   * with `reversed` Q·c − 1 − j = (Q−1−q)·c + (c−1−r) (exponents stay ≥ 0, |dA^e| ≤ 1), and
   * dA^e(j) = P[q]·R[r] with P (H, N/2, Q) and R (H, N/2, c).
   */
  factors(d: S4DDiscrete, L: number, reversed = false): { P: Complex; R: Complex; Q: number; c: number } {
    const c = Math.max(1, Math.ceil(Math.sqrt(L))), Q = Math.ceil(L / c);
    const pow = (es: number[]): Complex => {
      const e = T.tensor(es, [1, 1, es.length]);
      const mag = T.exp(T.mul(T.unsqueeze(d.dtA.re, 2), e)), phase = T.mul(T.unsqueeze(d.dtA.im, 2), e);
      return { re: T.mul(mag, T.cos(phase)), im: T.mul(mag, T.sin(phase)) };
    };
    const P = pow(Array.from({ length: Q }, (_, q) => (reversed ? Q - 1 - q : q) * c));
    const R = pow(Array.from({ length: c }, (_, r) => (reversed ? c - 1 - r : r)));
    return { P, R, Q, c };
  }

  /**
   * The Vandermonde product 2·Re Σ_n coef_n·dA_n^l for l < L: (…, H, L) for coef (…, H, N/2),
   * as one batched matmul per channel, (Q, N) @ (N, c), over the factors. `reversed`: column k
   * holds l = L−1−k.
   */
  vandermonde(d: S4DDiscrete, coef: Complex, L: number, reversed = false): Tensor {
    const { P, R, Q, c } = this.factors(d, L, reversed);
    const U = cmul({ re: T.unsqueeze(coef.re, -1), im: T.unsqueeze(coef.im, -1) }, P);         // (…, H, N/2, Q)
    const left = T.transpose(T.concat([T.mul(U.re, 2), T.mul(U.im, -2)], -2), -1, -2);         // (…, H, Q, N)
    const K = T.matmul(left, T.concat([R.re, R.im], 1));                                       // (…, H, Q, c)
    const flat = T.reshape(K, [...K.shape.slice(0, -2), Q * c]);
    return reversed ? T.slice(flat, -1, Q * c - L) : T.slice(flat, -1, 0, L);
  }

  /**
   * The convolution kernel K (H, L), K[h, l] = 2·Re Σ_n C·dB·dA^l. `reversed`: column k holds lag
   * L−1−k, the tap order of causalConv1d (whose weight w[c, k] multiplies x[l + k − (K−1)]).
   */
  kernel(L: number, opts: { reversed?: boolean; discrete?: S4DDiscrete } = {}): Tensor {
    const d = opts.discrete ?? this.discrete();
    return T.contiguous(this.vandermonde(d, d.CB, L, opts.reversed));
  }
}

/** An S4D layer: x (B, L, H) → y (B, L, H); `kernel` and `D` as the S4 repository names them. */
export class S4D extends Module {
  kernel: S4DKernel;
  D: Tensor; // (H)

  constructor(readonly channels: number, opts: S4DOptions = {}) {
    super();
    this.kernel = new S4DKernel(channels, opts);
    this.D = parameter(() => T.ones([channels]));
  }

  /** Convolution mode from a zero state; with a state (B, H, N/2, 2), continue from it (see s4dScan). */
  forward(x: Tensor, state: Tensor | null = null): Tensor {
    return state ? s4dScan(this.kernel, this.D, x, state) : s4dConv(this.kernel, this.D, x);
  }

  /** A zero modal state for `batch` rows: (batch, H, N/2, 2). */
  newState(batch: number): Tensor {
    return T.zeros([batch, this.channels, this.kernel.modes, 2]);
  }
}

function checkInput(op: string, k: S4DKernel, x: Tensor, state?: Tensor): void {
  if (x.ndim !== 3 || x.shape[2] !== k.channels) throw new ShapeError(op, `x must be (B, L, ${k.channels}), got ${fmtShape(x.shape)}`);
  if (state && (state.ndim !== 4 || state.shape[0] !== x.shape[0] || state.shape[1] !== k.channels || state.shape[2] !== k.modes || state.shape[3] !== 2)) {
    throw new ShapeError(op, `state must be (${x.shape[0]}, ${k.channels}, ${k.modes}, 2), got ${fmtShape(state.shape)}`);
  }
}

/** Convolution mode: y = K ∗ x + D⊙x for x (B, L, H), from a zero state. */
export function s4dConv(k: S4DKernel, D: Tensor, x: Tensor, d: S4DDiscrete = k.discrete()): Tensor {
  checkInput('s4dConv', k, x);
  const L = x.shape[1];
  if (L > MAX_CONV_K) throw new ShapeError('s4dConv', `sequence of ${L} positions exceeds the longest convolution kernel (${MAX_CONV_K}); run it in chunks with a state (s4dScan)`);
  // causalConv1d's weight w[c, k] multiplies x[l + k − (L−1)]: the kernel with lags reversed
  return T.add(causalConv1d(x, k.kernel(L, { reversed: true, discrete: d })), T.mul(x, D));
}

/**
 * S4D from a modal state (B, H, N/2, 2) (re, im), which is advanced in place by the T positions of
 * x (B, T, H). T = 1 is the recurrence; longer chunks run the convolution plus the state's terms
 * (chunks of at most MAX_CONV_K positions).
 * The state gets no gradient (a decoding state); y does, through the kernel's parameters.
 */
export function s4dScan(k: S4DKernel, D: Tensor, x: Tensor, state: Tensor): Tensor {
  checkInput('s4dScan', k, x, state);
  const [Bn, Tn] = x.shape;
  if (Tn > MAX_CONV_K) {
    const chunks = Array.from({ length: Math.ceil(Tn / MAX_CONV_K) }, (_, i) => s4dScan(k, D, T.slice(x, 1, i * MAX_CONV_K, (i + 1) * MAX_CONV_K), state));
    return T.concat(chunks, 1);
  }
  const d = k.discrete();
  const h0: Complex = { re: T.squeeze(T.slice(state, 3, 0, 1), 3), im: T.squeeze(T.slice(state, 3, 1, 2), 3) }; // (B, H, N/2)
  let y: Tensor, hT: Complex;
  if (Tn === 1) {
    // h ← dA·h + dB·x;  y = 2·Re Σ_n C·h + D⊙x
    const xt = T.unsqueeze(T.reshape(x, [Bn, k.channels]), 2);                     // (B, H, 1)
    const dh = cmul(d.dA, h0);
    hT = { re: T.add(dh.re, T.mul(d.dB.re, xt)), im: T.add(dh.im, T.mul(d.dB.im, xt)) };
    const out = T.mul(T.sum(T.sub(T.mul(d.C.re, hT.re), T.mul(d.C.im, hT.im)), 2), 2); // (B, H)
    y = T.add(T.unsqueeze(out, 1), T.mul(x, D));
  } else {
    // the state's part of y: 2·Re Σ_n C·dA^{t+1}·h0 = 2·Re Σ_n (C·dA·h0)·dA^t
    const fromState = T.permute(k.vandermonde(d, cmul(cmul(d.C, d.dA), h0), Tn), [0, 2, 1]); // (B, T, H)
    y = T.add(s4dConv(k, D, x, d), fromState);
    // h_T = dA^T·h0 + dB·Σ_t dA^{T−1−t}·x_t. With x padded in front to Q·c positions, position
    // j = q·c + r has exponent Q·c − 1 − j: the reversed factors, P[q]·R[r].
    const { P, R, Q, c } = k.factors(d, Tn, true);
    const H = k.channels, M = k.modes, pad = Q * c - Tn;
    const xp = pad ? T.concat([T.zeros([Bn, pad, H]), x], 1) : x;
    const xs = T.reshape(T.permute(T.reshape(xp, [Bn, Q, c, H]), [3, 0, 1, 2]), [H, Bn * Q, c]);
    const inner = T.matmul(xs, T.transpose(T.concat([R.re, R.im], 1), 1, 2));               // (H, B·Q, N): Σ_r R·x
    const [ir, ii] = T.split(T.reshape(inner, [H, Bn, Q, 2 * M]), M, 3);                     // (H, B, Q, N/2) each
    const Pt: Complex = { re: T.unsqueeze(T.transpose(P.re, 1, 2), 1), im: T.unsqueeze(T.transpose(P.im, 1, 2), 1) }; // (H, 1, Q, N/2)
    const sum = cmul(Pt, { re: ir, im: ii });
    const S: Complex = { re: T.permute(T.sum(sum.re, 2), [1, 0, 2]), im: T.permute(T.sum(sum.im, 2), [1, 0, 2]) }; // (B, H, N/2)
    const fromX = cmul(d.dB, S);
    const decayed = cmul(k.power(d, Tn), h0);
    hT = { re: T.add(decayed.re, fromX.re), im: T.add(decayed.im, fromX.im) };
  }
  T.copyInto(state, T.stack([T.detach(hT.re), T.detach(hT.im)], 3));
  return y;
}
