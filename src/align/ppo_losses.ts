// PPO math for RLHF with a value head (issue #18), as small pure functions. Semantics are TRL's
// PPOTrainer (formerly PPOv2) and its trl/trainer/utils.py helpers, the adaptive KL controller
// is Ziegler et al.'s (TRL's older AdaptiveKLController); scripts/ref_ppo.py is the PyTorch
// reference the tests compare against (values, and dL/dlogprobs, dL/dvpred for the two losses).
//
// No-grad parts (Float32Array in, Float32Array or number out; float64 accumulation inside):
//   maskedMean(x, mask)                     Σ x·m / Σ m (0 when Σ m = 0)
//   maskedMean(x, mask, { axis, shape })    the same along axis 0 or 1 of [B, L] → Float32Array
//   maskedVar(x, mask, unbiased = true)     masked mean of (x − mean)², × n/(n − 1) when unbiased
//   maskedWhiten(x, mask, shiftMean = true) (x − mean)·rsqrt(var + 1e-8) (+ mean back when
//                                           !shiftMean), var unbiased; 0 on padding
//   tokenRewards({ logprobs, refLogprobs, mask, scores, klCoef, kl, missingEosPenalty?,
//                  containsEos? }) → { rewards, kl, scores }
//       kl_t = k1: logp − ref, or k3: (exp(log r) − 1) − log r with log r = ref − logp;
//       rewards_t = −klCoef·kl_t, plus the row's score at its LAST real token (mask 1);
//       scores[b] −= missingEosPenalty where !containsEos[b] (TRL missing_eos_penalty)
//   gae({ rewards, values, mask, shape, gamma, lam }) → { advantages, returns }
//       TRL's reverse loop over the columns: δ_t = r_t + γ·V_{t+1} − V_t (V_L = 0),
//       A_t = δ_t + γλ·A_{t+1}; returns = A + V. Rewards and values are zeroed on padding first;
//       both outputs are 0 on padding. (Whitening the advantages, as TRL always does, is
//       maskedWhiten(advantages, mask), a separate call.)
// Losses (Tensor with autograd; call inside scope()):
//   ppoPolicyLoss({ logprobs, oldLogprobs, advantages, mask, cliprange }) → { loss, metrics }
//       ratio = exp(logp − old); pg = max(−A·ratio, −A·clamp(ratio, 1 − ε, 1 + ε));
//       loss = masked mean of pg. Metrics: 'policy/clipfrac_avg' (masked mean of
//       −A·clamp(ratio) > −A·ratio), 'policy/approxkl_avg' (½·(logp − old)², mean over all
//       B·L slots with padding 0, as TRL, whose padding holds equal INVALID_LOGPROBs),
//       'val/ratio' (mean ratio over all B·L slots, padding 1, as TRL), 'loss/policy_avg'.
//   ppoValueLoss({ values, oldValues, returns, mask, cliprangeValue }) → { loss, metrics }
//       vclip = clamp(vpred, old − c, old + c); loss = ½·masked mean of
//       max((vpred − R)², (vclip − R)²). Metrics: 'val/clipfrac_avg' (masked mean of
//       (vclip − R)² > (vpred − R)²), 'loss/value_avg'.
//   (TRL's total loss is pg_loss + vf_coef·vf_loss; the trainer adds them.)
// KL coefficient controllers:
//   new FixedKLController(klCoef)                 value; update() does nothing
//   new AdaptiveKLController(init, target, horizon)   update(currentKl, nSteps):
//       e = clip(currentKl/target − 1, −0.2, 0.2); value ← value·(1 + e·nSteps/horizon)
//   PpoError (names the field at fault)
//
// Shapes and masks: [B, L] completion-aligned rows, row-major; mask 1 on the real tokens (the
// EOS token included), 0 on padding; padding may hold anything (NaN, ±Infinity) and is zeroed
// before use. The 'empty' masked means (Σ m = 0) are 0, not NaN, so an all-padding batch
// gives zero losses and gradients.
//
// One deliberate difference from TRL: TRL derives two masks from the sequence lengths, the
// token mask for the log-probs and a mask one slot longer ("padding_mask_p1") for the values,
// the score position and the value loss — because with pad = EOS its token mask excludes the
// EOS slot. Here the caller's mask already includes the EOS token, so one mask serves all:
// the score sits at the last token with mask 1, values, reward whitening and the value loss
// use the same mask. A row without any real token gets no score (it has nowhere to go).
import { Tensor, tensor, detach, sub, mul, exp, clamp, maximum, minimum, neg, sum, where } from '../tensor/index.js';
import { fmtShape } from '../tensor/errors.js';

/** Bad input to a PPO function: names the function and the field at fault. */
export class PpoError extends Error {
  constructor(readonly fn: string, readonly field: string, detail: string) {
    super(`${fn}: ${field}: ${detail}`);
    this.name = 'PpoError';
  }
}

export type PpoKlEstimator = 'k1' | 'k3';
type Shape2 = readonly [number, number];

// ------------------------------------------------------------------ input checks

function checkShape(fn: string, shape: Shape2 | undefined): [number, number] {
  if (!shape || shape.length !== 2 || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new PpoError(fn, 'shape', `${JSON.stringify(shape)} is not [B, L] of non-negative integers`);
  }
  return [shape[0], shape[1]];
}

function arr(fn: string, field: string, x: Float32Array | Tensor | undefined, n: number, B: number, L: number): Float32Array {
  if (x instanceof Tensor) {
    if (x.ndim !== 2 || x.shape[0] !== B || x.shape[1] !== L) throw new PpoError(fn, field, `shape ${fmtShape(x.shape)}, expected [${B}, ${L}]`);
    if (x.dtype !== 'f32') throw new PpoError(fn, field, `dtype ${x.dtype}, expected f32`);
    return Float32Array.from(x.data() as Float32Array);
  }
  if (!(x instanceof Float32Array)) throw new PpoError(fn, field, 'expected a Float32Array (or a Tensor)');
  if (x.length !== n) throw new PpoError(fn, field, `${x.length} values, expected B·L = ${B}·${L} = ${n}`);
  return x;
}

function readMask(fn: string, x: Float32Array | Tensor | undefined, B: number, L: number): Float32Array {
  const m = arr(fn, 'mask', x, B * L, B, L);
  for (let i = 0; i < m.length; i++) {
    if (m[i] !== 0 && m[i] !== 1) throw new PpoError(fn, 'mask', `value ${m[i]} at [${Math.floor(i / L)}, ${i % L}] is not 0 or 1`);
  }
  return m;
}

function finiteNumber(fn: string, field: string, v: unknown, ok: (x: number) => boolean, want: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw new PpoError(fn, field, `${String(v)} is not ${want}`);
  return v;
}

/** x with padding zeroed (NaN and ±Infinity included), as float64. */
function zeroed(x: Float32Array, m: Float32Array): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = m[i] ? x[i] : 0;
  return out;
}

function requireFinite(fn: string, field: string, x: ArrayLike<number>, m: Float32Array, L: number): void {
  for (let i = 0; i < x.length; i++) {
    if (m[i] && !Number.isFinite(x[i])) throw new PpoError(fn, field, `value ${x[i]} at [${Math.floor(i / L)}, ${i % L}] (a real token) is not finite`);
  }
}

// ------------------------------------------------------------------ masked statistics

/** Masked mean of x: Σ x·m / Σ m over everything (0 when Σ m = 0), or along an axis of [B, L]. */
export function maskedMean(x: Float32Array, mask: Float32Array): number;
export function maskedMean(x: Float32Array, mask: Float32Array, along: { axis: 0 | 1; shape: Shape2 }): Float32Array;
export function maskedMean(x: Float32Array, mask: Float32Array, along?: { axis: 0 | 1; shape: Shape2 }): number | Float32Array {
  const fn = 'maskedMean';
  if (!(x instanceof Float32Array)) throw new PpoError(fn, 'x', 'expected a Float32Array');
  if (!(mask instanceof Float32Array) || mask.length !== x.length) throw new PpoError(fn, 'mask', `expected a Float32Array of ${x.length} values like x`);
  if (!along) {
    let s = 0, n = 0;
    for (let i = 0; i < x.length; i++) if (mask[i]) { s += x[i] * mask[i]; n += mask[i]; }
    return n === 0 ? 0 : s / n;
  }
  const [B, L] = checkShape(fn, along.shape);
  if (B * L !== x.length) throw new PpoError(fn, 'shape', `[${B}, ${L}] does not hold the ${x.length} values of x`);
  if (along.axis !== 0 && along.axis !== 1) throw new PpoError(fn, 'axis', `${String(along.axis)} is not 0 or 1`);
  const outN = along.axis === 1 ? B : L;
  const s = new Float64Array(outN), n = new Float64Array(outN);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L; t++) {
      const i = b * L + t, o = along.axis === 1 ? b : t;
      if (mask[i]) { s[o] += x[i] * mask[i]; n[o] += mask[i]; }
    }
  }
  return Float32Array.from(s, (v, o) => (n[o] === 0 ? 0 : v / n[o]));
}

/** Masked variance (TRL masked_var): unbiased by n/(n − 1) unless told not to; needs n ≥ 1 (≥ 2 unbiased). */
export function maskedVar(x: Float32Array, mask: Float32Array, unbiased = true): number {
  return stats('maskedVar', x, mask, unbiased)[1];
}

function stats(fn: string, x: Float32Array, mask: Float32Array, unbiased: boolean): [number, number] {
  if (!(x instanceof Float32Array)) throw new PpoError(fn, 'x', 'expected a Float32Array');
  if (!(mask instanceof Float32Array) || mask.length !== x.length) throw new PpoError(fn, 'mask', `expected a Float32Array of ${x.length} values like x`);
  let s = 0, n = 0;
  for (let i = 0; i < x.length; i++) {
    if (mask[i] !== 0 && mask[i] !== 1) throw new PpoError(fn, 'mask', `value ${mask[i]} at ${i} is not 0 or 1`);
    if (mask[i]) {
      if (!Number.isFinite(x[i])) throw new PpoError(fn, 'x', `value ${x[i]} at ${i} (mask 1) is not finite`);
      s += x[i];
      n++;
    }
  }
  if (n === 0) throw new PpoError(fn, 'mask', 'no value has mask 1: the variance is undefined');
  if (unbiased && n < 2) throw new PpoError(fn, 'mask', 'one value has mask 1: the unbiased variance needs two');
  const mean = s / n;
  let v = 0;
  for (let i = 0; i < x.length; i++) if (mask[i]) v += (x[i] - mean) * (x[i] - mean);
  v /= n;
  if (unbiased) v *= n / (n - 1);
  return [mean, v];
}

/** TRL masked_whiten: (x − mean)·rsqrt(var + 1e-8), the mean added back when !shiftMean; 0 on padding. */
export function maskedWhiten(x: Float32Array, mask: Float32Array, shiftMean = true): Float32Array {
  const [mean, v] = stats('maskedWhiten', x, mask, true);
  const r = 1 / Math.sqrt(v + 1e-8);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) if (mask[i]) out[i] = (x[i] - mean) * r + (shiftMean ? 0 : mean);
  return out;
}

// ------------------------------------------------------------------ rewards and GAE

export interface TokenRewardsInput {
  /** [B, L] log-probs of the sampled tokens under the policy that sampled them. */
  logprobs: Float32Array | Tensor;
  /** [B, L] log-probs of the same tokens under the frozen reference. */
  refLogprobs: Float32Array | Tensor;
  /** [B, L] 1 on real completion tokens (EOS included). */
  mask: Float32Array | Tensor;
  /** [B] reward-model (or verifiable) scores. */
  scores: Float32Array | readonly number[];
  /** β ≥ 0 (a controller's value). */
  klCoef: number;
  /** KL estimator (default 'k1', TRL's default). */
  kl?: PpoKlEstimator;
  /** Subtracted from the score of each row with containsEos false (TRL missing_eos_penalty). */
  missingEosPenalty?: number | null;
  /** [B] whether each completion ended with EOS (needed with missingEosPenalty). */
  containsEos?: readonly boolean[];
}

export interface TokenRewards {
  /** [B, L] −klCoef·kl per token plus the score at each row's last real token; 0 on padding. */
  rewards: Float32Array;
  /** [B, L] the per-token KL estimate; 0 on padding. */
  kl: Float32Array;
  /** [B] the scores after the missing-EOS penalty. */
  scores: Float32Array;
}

/** Per-token rewards of TRL's PPOTrainer (see the top of this file). */
export function tokenRewards(input: TokenRewardsInput): TokenRewards {
  const fn = 'tokenRewards';
  const sc = input.scores;
  if (!sc || typeof sc.length !== 'number') throw new PpoError(fn, 'scores', 'expected [B] numbers');
  const B = sc.length;
  if (B === 0) throw new PpoError(fn, 'scores', 'empty batch (B = 0)');
  const m0 = input.mask;
  const n = m0 instanceof Tensor ? m0.size : m0 instanceof Float32Array ? m0.length : -1;
  if (n < 0) throw new PpoError(fn, 'mask', 'expected a Float32Array (or a Tensor)');
  if (n % B !== 0) throw new PpoError(fn, 'mask', `${n} values are not B = ${B} rows (one per score)`);
  const L = n / B;
  const mask = readMask(fn, m0, B, L);
  const lp = arr(fn, 'logprobs', input.logprobs, n, B, L);
  const ref = arr(fn, 'refLogprobs', input.refLogprobs, n, B, L);
  requireFinite(fn, 'logprobs', lp, mask, L);
  requireFinite(fn, 'refLogprobs', ref, mask, L);
  const beta = finiteNumber(fn, 'klCoef', input.klCoef, (x) => x >= 0, 'a number ≥ 0');
  const kind = input.kl ?? 'k1';
  if (kind !== 'k1' && kind !== 'k3') throw new PpoError(fn, 'kl', `unknown KL estimator '${String(kind)}' (expected k1, k3)`);
  const scores = Float32Array.from(sc);
  for (let b = 0; b < B; b++) if (!Number.isFinite(scores[b])) throw new PpoError(fn, 'scores', `value ${scores[b]} at ${b} is not finite`);
  if (input.missingEosPenalty != null) {
    const pen = finiteNumber(fn, 'missingEosPenalty', input.missingEosPenalty, () => true, 'a finite number');
    const eos = input.containsEos;
    if (!eos || eos.length !== B) throw new PpoError(fn, 'containsEos', `needed with missingEosPenalty: ${B} booleans, got ${eos ? eos.length : 'none'}`);
    for (let b = 0; b < B; b++) if (!eos[b]) scores[b] = scores[b] - pen;
  }
  const kl = new Float32Array(n), rewards = new Float32Array(n);
  for (let b = 0; b < B; b++) {
    let last = -1;
    for (let t = 0; t < L; t++) {
      const i = b * L + t;
      if (!mask[i]) continue;
      const logr = ref[i] - lp[i];
      const k = kind === 'k1' ? -logr : Math.expm1(logr) - logr;
      kl[i] = k;
      rewards[i] = -beta * k;
      last = i;
    }
    if (last >= 0) rewards[last] += scores[b];
  }
  return { rewards, kl, scores };
}

export interface GaeInput {
  /** [B, L] per-token rewards (tokenRewards, maybe whitened). */
  rewards: Float32Array | Tensor;
  /** [B, L] value-head outputs of the rollout. */
  values: Float32Array | Tensor;
  mask: Float32Array | Tensor;
  /** [B, L] of the arrays above. */
  shape: Shape2;
  /** Discount γ in [0, 1] (TRL default 1). */
  gamma: number;
  /** GAE λ in [0, 1] (TRL default 0.95). */
  lam: number;
}

/** Generalised advantage estimation, TRL's reverse loop (see the top of this file). */
export function gae(input: GaeInput): { advantages: Float32Array; returns: Float32Array } {
  const fn = 'gae';
  const [B, L] = checkShape(fn, input.shape);
  const n = B * L;
  const mask = readMask(fn, input.mask, B, L);
  const r0 = arr(fn, 'rewards', input.rewards, n, B, L), v0 = arr(fn, 'values', input.values, n, B, L);
  requireFinite(fn, 'rewards', r0, mask, L);
  requireFinite(fn, 'values', v0, mask, L);
  const gamma = finiteNumber(fn, 'gamma', input.gamma, (x) => x >= 0 && x <= 1, 'a number in [0, 1]');
  const lam = finiteNumber(fn, 'lam', input.lam, (x) => x >= 0 && x <= 1, 'a number in [0, 1]');
  const r = zeroed(r0, mask), v = zeroed(v0, mask);
  const advantages = new Float32Array(n), returns = new Float32Array(n);
  for (let b = 0; b < B; b++) {
    let last = 0;
    for (let t = L - 1; t >= 0; t--) {
      const i = b * L + t;
      const next = t < L - 1 ? v[i + 1] : 0;
      const delta = r[i] + gamma * next - v[i];
      last = delta + gamma * lam * last;
      if (mask[i]) {
        advantages[i] = last;
        returns[i] = last + v[i];
      }
    }
  }
  return { advantages, returns };
}

// ------------------------------------------------------------------ losses

export interface PpoLossResult {
  /** Scalar loss to minimise (autograd to logprobs / values). */
  loss: Tensor;
  metrics: Record<string, number>;
}

/** [B, L] tensor input → its shape, checked. */
function gradInput(fn: string, field: string, x: Tensor): [number, number] {
  if (!(x instanceof Tensor)) throw new PpoError(fn, field, 'expected a Tensor [B, L]');
  if (x.ndim !== 2) throw new PpoError(fn, field, `shape ${fmtShape(x.shape)}, expected [B, L]`);
  if (x.dtype !== 'f32') throw new PpoError(fn, field, `dtype ${x.dtype}, expected f32`);
  return [x.shape[0], x.shape[1]];
}

/** A [B, L] no-grad input as a constant tensor with its padding zeroed (and checked finite). */
function constant(fn: string, field: string, x: Float32Array | Tensor, mask: Float32Array, B: number, L: number): [Tensor, Float64Array] {
  const a = arr(fn, field, x, B * L, B, L);
  requireFinite(fn, field, a, mask, L);
  const z = zeroed(a, mask);
  return [tensor(Float32Array.from(z), [B, L]), z];
}

export interface PpoPolicyLossInput {
  /** [B, L] log-probs of the sampled tokens under the current policy (requires grad). */
  logprobs: Tensor;
  /** [B, L] log-probs under the policy that sampled the batch. */
  oldLogprobs: Float32Array | Tensor;
  /** [B, L] per-token advantages (gae, then whitened). */
  advantages: Float32Array | Tensor;
  mask: Float32Array | Tensor;
  /** Clip range ε (TRL default 0.2), in (0, 1). */
  cliprange: number;
}

/** TRL's clipped PPO policy loss (see the top of this file). */
export function ppoPolicyLoss(input: PpoPolicyLossInput): PpoLossResult {
  const fn = 'ppoPolicyLoss';
  const [B, L] = gradInput(fn, 'logprobs', input.logprobs);
  const eps = finiteNumber(fn, 'cliprange', input.cliprange, (x) => x > 0 && x < 1, 'a number in (0, 1)');
  const maskArr = readMask(fn, input.mask, B, L);
  const [old] = constant(fn, 'oldLogprobs', input.oldLogprobs, maskArr, B, L);
  const [A] = constant(fn, 'advantages', input.advantages, maskArr, B, L);
  const m = tensor(maskArr, [B, L]);
  let count = 0;
  for (let i = 0; i < maskArr.length; i++) count += maskArr[i];
  const lp = input.logprobs;
  // logp − old is 0 on padding (ratio 1, A 0): whatever the padding holds cannot reach the loss
  const logRatio = where(m, sub(lp, old), 0);
  const ratio = exp(logRatio);
  const pg1 = neg(mul(A, ratio));
  const pg2 = neg(mul(A, clamp(ratio, 1 - eps, 1 + eps)));
  const pg = maximum(pg1, pg2);
  const loss = mul(sum(mul(pg, m)), 1 / Math.max(count, 1));

  const lr = logRatio.data() as Float32Array, r = ratio.data() as Float32Array;
  const p1 = pg1.data() as Float32Array, p2 = pg2.data() as Float32Array;
  let clipped = 0, approx = 0, rsum = 0;
  for (let i = 0; i < maskArr.length; i++) {
    approx += 0.5 * lr[i] * lr[i];
    rsum += r[i];
    if (maskArr[i] && p2[i] > p1[i]) clipped++;
  }
  const slots = Math.max(B * L, 1);
  const metrics = {
    'policy/clipfrac_avg': clipped / Math.max(count, 1),
    'policy/approxkl_avg': approx / slots,
    'val/ratio': rsum / slots,
    'loss/policy_avg': loss.item(),
  };
  return { loss, metrics };
}

export interface PpoValueLossInput {
  /** [B, L] value-head predictions now (vpred; requires grad). */
  values: Tensor;
  /** [B, L] value-head outputs of the rollout (the clip centre). */
  oldValues: Float32Array | Tensor;
  /** [B, L] GAE returns. */
  returns: Float32Array | Tensor;
  mask: Float32Array | Tensor;
  /** Value clip range c > 0 (TRL default 0.2). */
  cliprangeValue: number;
}

/** TRL's clipped value loss (see the top of this file). */
export function ppoValueLoss(input: PpoValueLossInput): PpoLossResult {
  const fn = 'ppoValueLoss';
  const [B, L] = gradInput(fn, 'values', input.values);
  const c = finiteNumber(fn, 'cliprangeValue', input.cliprangeValue, (x) => x > 0, 'a positive number');
  const maskArr = readMask(fn, input.mask, B, L);
  const [, old] = constant(fn, 'oldValues', input.oldValues, maskArr, B, L);
  const [R] = constant(fn, 'returns', input.returns, maskArr, B, L);
  const m = tensor(maskArr, [B, L]);
  let count = 0;
  for (let i = 0; i < maskArr.length; i++) count += maskArr[i];
  const lo = tensor(Float32Array.from(old, (v) => v - c), [B, L]);
  const hi = tensor(Float32Array.from(old, (v) => v + c), [B, L]);
  // padding: vpred → 0 like the returns and the old values, so both squared errors are 0 there
  const vpred = where(m, input.values, 0);
  const vclip = minimum(maximum(vpred, lo), hi); // = vpred exactly inside the clip range
  const d1 = sub(vpred, R), d2 = sub(vclip, R);
  const vf1 = mul(d1, d1), vf2 = mul(d2, d2);
  const vf = maximum(vf1, vf2);
  const loss = mul(sum(mul(vf, m)), 0.5 / Math.max(count, 1));
  const a1 = vf1.data() as Float32Array, a2 = vf2.data() as Float32Array;
  let clipped = 0;
  for (let i = 0; i < maskArr.length; i++) if (maskArr[i] && a2[i] > a1[i]) clipped++;
  return { loss, metrics: { 'val/clipfrac_avg': clipped / Math.max(count, 1), 'loss/value_avg': loss.item() } };
}

// ------------------------------------------------------------------ KL coefficient controllers

/** A constant KL coefficient β. */
export class FixedKLController {
  value: number;
  constructor(klCoef: number) {
    this.value = finiteNumber('FixedKLController', 'klCoef', klCoef, (x) => x >= 0, 'a number ≥ 0');
  }
  update(_currentKl?: number, _nSteps?: number): void { /* fixed */ }
}

/** Ziegler et al.'s adaptive KL coefficient: drives the measured KL towards a target. */
export class AdaptiveKLController {
  value: number;
  readonly target: number;
  readonly horizon: number;
  constructor(initKlCoef: number, target: number, horizon: number) {
    const fn = 'AdaptiveKLController';
    this.value = finiteNumber(fn, 'initKlCoef', initKlCoef, (x) => x > 0, 'a positive number');
    this.target = finiteNumber(fn, 'target', target, (x) => x > 0, 'a positive number');
    this.horizon = finiteNumber(fn, 'horizon', horizon, (x) => x > 0, 'a positive number');
  }
  /** currentKl: the batch's mean KL (summed over tokens, as TRL); nSteps: samples since the last update. */
  update(currentKl: number, nSteps: number): void {
    const fn = 'AdaptiveKLController.update';
    finiteNumber(fn, 'currentKl', currentKl, () => true, 'a finite number');
    finiteNumber(fn, 'nSteps', nSteps, (x) => x >= 0, 'a number ≥ 0');
    const e = Math.min(Math.max(currentKl / this.target - 1, -0.2), 0.2);
    this.value *= 1 + (e * nSteps) / this.horizon;
  }
}
