// Policy losses for reasoning RL (issue #17): GRPO, BNPO, DAPO, Dr. GRPO, GSPO and Kimi k1.5's
// policy mirror descent, as one pure function of per-token log-probabilities and advantages.
// Semantics are TRL's GRPOTrainer `_compute_loss` where it has them, the papers' where not;
// scripts/ref_grpo.py is the PyTorch reference the tests compare against (loss and dL/dlogprobs).
//
//   policyLoss({ logprobs, oldLogprobs?, refLogprobs?, mask, advantages, rewards? }, options)
//     → { loss: Tensor (scalar, with autograd to logprobs), metrics: Record<string, number> }
//   perTokenKl(logprobs, refLogprobs, 'k1' | 'k2' | 'k3') → Tensor [B, L]
//   LOSS_TYPES, KL_ESTIMATORS, PolicyLossError
//
// Shapes: logprobs [B, L] — the current policy's log-prob of each sampled completion token (with
// grad); oldLogprobs, refLogprobs [B, L] (Tensor or Float32Array, never differentiated); mask
// [B, L] of 0/1 (1 = a completion token that counts); advantages [B]; rewards [B] (k1.5 only).
// Padding positions may hold anything (NaN and ±Infinity included): they are zeroed before use.
//
// The PPO-style losses ('grpo' | 'bnpo' | 'dapo' | 'dr_grpo' | 'gspo'):
//   log w   = logp − old (per token), or with importanceSampling 'sequence' (GSPO) the sequence's
//             Σ_t (logp − old)·mask / max(Σ_t mask, 1), broadcast over its tokens;
//             old = logprobs.detach() when oldLogprobs is null (one pass per batch: ratio 1)
//   coef_1  = exp(log w);  coef_2 = clamp(coef_1, 1 − ε_low, 1 + ε_high)     (DAPO clip-higher)
//             with delta: coef_1 = min(coef_1, delta) (two-sided clipping; after coef_2)
//   ℓ_t     = −min(coef_1·A, coef_2·A) + β·KL_t
//   KL_t    with log r = ref − logp: k1 = −log r, k2 = ½(log r)², k3 = exp(log r) − log r − 1
//   loss    'grpo', 'gspo': mean over the B sequences of Σ_t ℓ_t·mask / max(Σ_t mask, 1)
//           'bnpo', 'dapo': Σ ℓ·mask / max(Σ mask, 1) over the batch ('dapo' divides by
//                           numItemsInBatch instead when given: TRL's token count of the whole
//                           generation batch, for gradient accumulation over micro-batches)
//           'dr_grpo':      Σ ℓ·mask / (B · maxCompletionLength)
//   'gspo' is 'grpo' with sequence-level importance sampling (the GSPO paper).
// Kimi k1.5 ('k1.5'), online policy mirror descent with the previous iterate as reference:
//   loss = mean over groups of (1/k) Σ_j (r_j − r̄ − τ·(log π(y_j) − log π_old(y_j)))²,
//   r̄ the group's mean reward (no value network), log π(y) = Σ_t logp·mask; groups are
//   consecutive runs of groupSize rows. ε, delta and β do not apply (β must be 0).
//
// Metrics (TRL's names): 'kl' (masked token mean of the chosen estimator; whenever refLogprobs
// is given), 'clip_ratio/low_mean' (coef_1 < 1 − ε_low and A < 0), 'clip_ratio/high_mean'
// (coef_1 > 1 + ε_high and A > 0), 'clip_ratio/region_mean' (either), 'ratio/mean' (the
// importance ratio before delta) — means over the masked tokens, or over the B sequences with
// sequence-level importance sampling (as TRL). k1.5: 'log_ratio/mean' (mean over sequences of
// log π(y) − log π_old(y)) and 'kl'.
//
// Defaults: ε_low 0.2, ε_high = ε_low, β 0, kl 'k3', importanceSampling 'token' ('sequence' for
// 'gspo'), τ 1. Gradient-accumulation scaling (TRL divides by the accumulation steps) and the
// number of passes μ over a batch belong to the trainer: it passes the logprobs of the policy
// that sampled the batch as oldLogprobs on every pass. Call inside scope(): the intermediate
// tensors are released with it.
import { Tensor, tensor, detach, sub, mul, add, div, exp, clamp, minimum, neg, sum, mean, where } from '../tensor/index.js';
import { fmtShape } from '../tensor/errors.js';

export type LossType = 'grpo' | 'bnpo' | 'dapo' | 'dr_grpo' | 'gspo' | 'k1.5';
export type KlEstimator = 'k1' | 'k2' | 'k3';
export type ImportanceSampling = 'token' | 'sequence';
export const LOSS_TYPES: readonly LossType[] = ['grpo', 'bnpo', 'dapo', 'dr_grpo', 'gspo', 'k1.5'];
export const KL_ESTIMATORS: readonly KlEstimator[] = ['k1', 'k2', 'k3'];

export interface PolicyLossOptions {
  loss: LossType;
  /** Lower clip range: coef_2 ≥ 1 − epsilonLow (default 0.2). */
  epsilonLow?: number;
  /** Upper clip range: coef_2 ≤ 1 + epsilonHigh (default epsilonLow; DAPO uses 0.28). */
  epsilonHigh?: number;
  /** Two-sided clipping: coef_1 ≤ delta (TRL `delta`; should exceed 1 + epsilonHigh). */
  delta?: number | null;
  /** Weight of the per-token KL to the reference policy (default 0: no reference needed). */
  beta?: number;
  /** KL estimator (default 'k3', TRL's). */
  kl?: KlEstimator;
  /** 'token' (default) or 'sequence' (GSPO); 'gspo' implies 'sequence'. */
  importanceSampling?: ImportanceSampling;
  /** 'dr_grpo': the generation length limit the sum is divided by (per sequence). */
  maxCompletionLength?: number;
  /** 'dapo': divide by this token count instead of this batch's Σ mask. */
  numItemsInBatch?: number;
  /** 'k1.5': weight τ of the log-ratio to the previous iterate (default 1). */
  tau?: number;
  /** 'k1.5': completions per prompt (consecutive rows). */
  groupSize?: number;
}

export interface PolicyLossInput {
  /** [B, L] current policy log-probs of the sampled tokens (requires grad). */
  logprobs: Tensor;
  /** [B, L] log-probs under the policy that sampled the batch; null → logprobs.detach(). */
  oldLogprobs?: Tensor | Float32Array | null;
  /** [B, L] log-probs under the reference policy (needed when beta ≠ 0). */
  refLogprobs?: Tensor | Float32Array | null;
  /** [B, L] 1 where a completion token counts, 0 for padding / filtered tokens. */
  mask: Tensor | Float32Array;
  /** [B] advantages (all losses but 'k1.5'). */
  advantages?: Float32Array | readonly number[];
  /** [B] rewards ('k1.5'). */
  rewards?: Float32Array | readonly number[];
}

export interface PolicyLossResult {
  /** Scalar loss to minimise. */
  loss: Tensor;
  metrics: Record<string, number>;
}

/** Bad input to policyLoss / perTokenKl: names the field at fault. */
export class PolicyLossError extends Error {
  constructor(readonly field: string, detail: string) {
    super(`policyLoss: ${field}: ${detail}`);
    this.name = 'PolicyLossError';
  }
}

/** Per-token KL estimate between the policy and the reference, log r = ref − logp (no mask). */
export function perTokenKl(logprobs: Tensor, refLogprobs: Tensor, kind: KlEstimator = 'k3'): Tensor {
  return klOfLogRatio(sub(refLogprobs, logprobs), kind);
}

/** The estimator applied to log r = ref − logp (each is 0 at log r = 0). */
function klOfLogRatio(logr: Tensor, kind: KlEstimator): Tensor {
  switch (kind) {
    case 'k1': return neg(logr);
    case 'k2': return mul(mul(logr, logr), 0.5);
    case 'k3': return sub(sub(exp(logr), logr), 1);
    default: throw new PolicyLossError('kl', `unknown KL estimator '${String(kind)}' (expected ${KL_ESTIMATORS.join(', ')})`);
  }
}

interface Resolved {
  loss: LossType; epsLow: number; epsHigh: number; delta: number | null; beta: number; kl: KlEstimator;
  level: ImportanceSampling; maxLen: number; numItems: number | null; tau: number; groupSize: number;
}

function resolveOptions(o: PolicyLossOptions, B: number, L: number): Resolved {
  if (!o || !LOSS_TYPES.includes(o.loss)) throw new PolicyLossError('loss', `unknown loss '${String(o?.loss)}' (expected ${LOSS_TYPES.join(', ')})`);
  const num = (field: string, v: number | undefined, dflt: number, ok: (x: number) => boolean, want: string): number => {
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw new PolicyLossError(field, `${String(v)} is not ${want}`);
    return v;
  };
  const epsLow = num('epsilonLow', o.epsilonLow, 0.2, (x) => x >= 0 && x < 1, 'a number in [0, 1)');
  const epsHigh = num('epsilonHigh', o.epsilonHigh, epsLow, (x) => x >= 0, 'a number ≥ 0');
  const delta = o.delta == null ? null : num('delta', o.delta, 0, (x) => x > 0, 'a positive number');
  const beta = num('beta', o.beta, 0, (x) => x >= 0, 'a number ≥ 0');
  const kl = o.kl ?? 'k3';
  if (!KL_ESTIMATORS.includes(kl)) throw new PolicyLossError('kl', `unknown KL estimator '${String(kl)}' (expected ${KL_ESTIMATORS.join(', ')})`);
  const level = o.importanceSampling ?? (o.loss === 'gspo' ? 'sequence' : 'token');
  if (level !== 'token' && level !== 'sequence') throw new PolicyLossError('importanceSampling', `'${String(level)}' is not 'token' or 'sequence'`);
  if (o.loss === 'gspo' && level !== 'sequence') throw new PolicyLossError('importanceSampling', "'gspo' is sequence-level importance sampling; 'token' contradicts it (use 'grpo')");
  let maxLen = 0;
  if (o.loss === 'dr_grpo') {
    if (o.maxCompletionLength === undefined) throw new PolicyLossError('maxCompletionLength', "'dr_grpo' divides by B · maxCompletionLength (the generation limit); it is required");
    maxLen = num('maxCompletionLength', o.maxCompletionLength, 0, (x) => Number.isInteger(x) && x > 0, 'a positive integer');
    if (L > maxLen) throw new PolicyLossError('maxCompletionLength', `${maxLen} is less than the ${L} completion columns of logprobs`);
  }
  const numItems = o.numItemsInBatch == null ? null : num('numItemsInBatch', o.numItemsInBatch, 0, (x) => x >= 0, 'a token count ≥ 0');
  if (numItems !== null && o.loss !== 'dapo') throw new PolicyLossError('numItemsInBatch', `only the 'dapo' loss uses it (got loss '${o.loss}')`);
  const tau = num('tau', o.tau, 1, (x) => x > 0, 'a positive number');
  let groupSize = 0;
  if (o.loss === 'k1.5') {
    groupSize = num('groupSize', o.groupSize, 0, (x) => Number.isInteger(x) && x > 0, 'a positive integer');
    if (groupSize === 0) throw new PolicyLossError('groupSize', "'k1.5' needs the number of completions per prompt");
    if (B % groupSize !== 0) throw new PolicyLossError('groupSize', `${B} completions are not a whole number of groups of ${groupSize}`);
    if (beta !== 0) throw new PolicyLossError('beta', "'k1.5' regularises towards the previous iterate with tau; a KL term to a reference (beta ≠ 0) is not part of it");
  }
  return { loss: o.loss, epsLow, epsHigh, delta, beta, kl, level, maxLen, numItems, tau, groupSize };
}

/** A [B, L] input as a tensor outside autograd (checked shape). */
function constant(field: string, x: Tensor | Float32Array, B: number, L: number): Tensor {
  if (x instanceof Tensor) {
    if (x.ndim !== 2 || x.shape[0] !== B || x.shape[1] !== L) throw new PolicyLossError(field, `shape ${fmtShape(x.shape)} differs from logprobs [${B}, ${L}]`);
    if (x.dtype !== 'f32') throw new PolicyLossError(field, `dtype ${x.dtype}, expected f32`);
    return detach(x);
  }
  if (!(x instanceof Float32Array)) throw new PolicyLossError(field, 'expected a Tensor or a Float32Array');
  if (x.length !== B * L) throw new PolicyLossError(field, `${x.length} values, expected B·L = ${B}·${L} = ${B * L}`);
  return tensor(x, [B, L]);
}

function perRow(field: string, x: Float32Array | readonly number[] | undefined, B: number): Float32Array {
  if (x === undefined || x === null) throw new PolicyLossError(field, 'required');
  if (x.length !== B) throw new PolicyLossError(field, `${x.length} values for ${B} completions`);
  const out = Float32Array.from(x);
  for (let i = 0; i < B; i++) if (!Number.isFinite(out[i])) throw new PolicyLossError(field, `value ${out[i]} at ${i} is not finite`);
  return out;
}

function readMask(x: Tensor | Float32Array, B: number, L: number): Float32Array {
  let m: Float32Array;
  if (x instanceof Tensor) {
    if (x.ndim !== 2 || x.shape[0] !== B || x.shape[1] !== L) throw new PolicyLossError('mask', `shape ${fmtShape(x.shape)} differs from logprobs [${B}, ${L}]`);
    if (x.dtype !== 'f32') throw new PolicyLossError('mask', `dtype ${x.dtype}, expected f32 0/1`);
    m = x.data() as Float32Array;
  } else if (x instanceof Float32Array) {
    if (x.length !== B * L) throw new PolicyLossError('mask', `${x.length} values, expected B·L = ${B}·${L} = ${B * L}`);
    m = x;
  } else throw new PolicyLossError('mask', 'expected a Tensor or a Float32Array');
  for (let i = 0; i < m.length; i++) {
    if (m[i] !== 0 && m[i] !== 1) throw new PolicyLossError('mask', `value ${m[i]} at [${Math.floor(i / L)}, ${i % L}] is not 0 or 1`);
  }
  return m;
}

/** The policy loss of one batch (see the top of this file), with TRL's metrics. */
export function policyLoss(input: PolicyLossInput, options: PolicyLossOptions): PolicyLossResult {
  const lp = input.logprobs;
  if (!(lp instanceof Tensor)) throw new PolicyLossError('logprobs', 'expected a Tensor [B, L]');
  if (lp.ndim !== 2) throw new PolicyLossError('logprobs', `shape ${fmtShape(lp.shape)}, expected [B, L]`);
  if (lp.dtype !== 'f32') throw new PolicyLossError('logprobs', `dtype ${lp.dtype}, expected f32`);
  const [B, L] = lp.shape;
  if (B === 0) throw new PolicyLossError('logprobs', 'empty batch (B = 0)');
  const o = resolveOptions(options, B, L);
  const maskArr = readMask(input.mask, B, L);
  const m = tensor(maskArr, [B, L]);
  const old = input.oldLogprobs == null ? detach(lp) : constant('oldLogprobs', input.oldLogprobs, B, L);
  const ref = input.refLogprobs == null ? null : constant('refLogprobs', input.refLogprobs, B, L);
  if (o.beta !== 0 && !ref) throw new PolicyLossError('refLogprobs', `required when beta ≠ 0 (beta = ${o.beta})`);

  // Tokens per sequence, and the batch's token count.
  const count = new Float32Array(B);
  let total = 0;
  for (let b = 0; b < B; b++) {
    let c = 0;
    for (let t = 0; t < L; t++) c += maskArr[b * L + t];
    count[b] = c;
    total += c;
  }
  const rowDenom = tensor(count.map((c) => Math.max(c, 1)), [B, 1]);

  // Zero on padding, so that whatever the padding holds cannot reach the loss or the gradient.
  const logRatio = where(m, sub(lp, old), 0);
  const kl = ref ? klOfLogRatio(where(m, sub(ref, lp), 0), o.kl) : null; // 0 on padding
  const metrics: Record<string, number> = {};
  if (kl) metrics.kl = (sum(kl).item()) / Math.max(total, 1);

  if (o.loss === 'k1.5') {
    const rewards = perRow('rewards', input.rewards, B);
    const G = o.groupSize;
    const centred = new Float32Array(B);
    for (let g = 0; g < B; g += G) {
      let s = 0;
      for (let j = g; j < g + G; j++) s += rewards[j];
      for (let j = g; j < g + G; j++) centred[j] = rewards[j] - s / G;
    }
    const seqLogRatio = sum(logRatio, 1); // [B]: log π(y) − log π_old(y)
    const d = sub(tensor(centred, [B]), mul(seqLogRatio, o.tau));
    const loss = mean(mul(d, d)); // equal groups: the mean over groups of the group means
    metrics['log_ratio/mean'] = mean(seqLogRatio).item();
    return { loss, metrics };
  }

  const adv = perRow('advantages', input.advantages, B);
  const logW = o.level === 'sequence' ? div(sum(logRatio, 1, true), rowDenom) : logRatio; // [B, 1] or [B, L]
  const ratio = exp(logW);
  const coef2 = clamp(ratio, 1 - o.epsLow, 1 + o.epsHigh);
  const coef1 = o.delta === null ? ratio : clamp(ratio, -Infinity, o.delta);
  const A = tensor(adv, [B, 1]);
  let perToken = neg(minimum(mul(coef1, A), mul(coef2, A)));
  if (o.beta !== 0) perToken = add(perToken, mul(kl!, o.beta));
  const masked = mul(perToken, m); // [B, L] (a [B, 1] sequence-level loss broadcasts over the tokens)

  let loss: Tensor;
  switch (o.loss) {
    case 'grpo':
    case 'gspo':
      loss = mean(div(sum(masked, 1, true), rowDenom));
      break;
    case 'bnpo':
      loss = mul(sum(masked), 1 / Math.max(total, 1));
      break;
    case 'dapo':
      loss = mul(sum(masked), 1 / Math.max(o.numItems ?? total, 1));
      break;
    case 'dr_grpo':
      loss = mul(sum(masked), 1 / (B * o.maxLen));
      break;
  }
  Object.assign(metrics, clipMetrics(ratio.data() as Float32Array, o.delta === null ? null : (coef1.data() as Float32Array), adv, maskArr, B, L, o));
  return { loss: loss!, metrics };
}

/** TRL's clip fractions and the mean ratio: over masked tokens, or over sequences. */
function clipMetrics(ratio: Float32Array, clipped: Float32Array | null, adv: Float32Array, mask: Float32Array, B: number, L: number, o: Resolved): Record<string, number> {
  const c1 = clipped ?? ratio;
  const perSeq = o.level === 'sequence';
  let low = 0, high = 0, region = 0, r = 0, n = 0;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < (perSeq ? 1 : L); t++) {
      const i = perSeq ? b : b * L + t;
      if (!perSeq && mask[i] === 0) continue;
      const isLow = c1[i] < 1 - o.epsLow && adv[b] < 0;
      const isHigh = c1[i] > 1 + o.epsHigh && adv[b] > 0;
      low += +isLow;
      high += +isHigh;
      region += +(isLow || isHigh);
      r += ratio[i];
      n++;
    }
  }
  const d = Math.max(n, 1);
  return { 'clip_ratio/low_mean': low / d, 'clip_ratio/high_mean': high / d, 'clip_ratio/region_mean': region / d, 'ratio/mean': r / d };
}
