// Direct Preference Optimization (Rafailov et al. 2023) as TRL's DPOTrainer runs it, and IPO
// (Azar et al. 2023). For a pair (chosen y_c, rejected y_r) of one prompt x, with sequence
// log-probs summed over the completion tokens under the policy π and the frozen reference:
//   h = (log π(y_c) − log π(y_r)) − (log ref(y_c) − log ref(y_r))
//   sigmoid:  −log σ(β h)(1 − ε) − log σ(−β h) ε           (ε: label smoothing, conservative DPO)
//   ipo:      (h̄ − 1/(2β))²   with h̄ the log-ratios averaged per completion token (TRL's IPO)
// Implicit rewards r = β (log π(y) − log ref(y)); TRL's metrics: rewards/chosen, rewards/rejected,
// rewards/accuracies (r_c > r_r), rewards/margins (r_c − r_r), logps/chosen, logps/rejected.
// The trainer computes the reference log-probs once, over all the data, before the first step
// (the reference is the starting policy unless another model is given), then runs AdamW.
import path from 'node:path';
import { Tensor } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { scope } from '../tensor/storage.js';
import { noGrad } from '../tensor/autograd.js';
import type { CausalLM } from '../models/causal.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { esc, writeFileAtomic } from '../train/report.js';
import { packSequences, tokenLogprobs } from './logprobs.js';
import type { TokenizedPair } from './preference.js';
import { checkPairwiseOptions, pairwiseLoop, pairwiseSteps } from './pairwise.js';
import type { PairwiseStep, PairwiseTrainOptions } from './pairwise.js';
import { seriesSvg } from './report.js';
import { withDefaults } from '../train/options.js';

export const DPO_LOSS_TYPES = ['sigmoid', 'ipo'] as const;
export type DpoLossType = (typeof DPO_LOSS_TYPES)[number];

export class DpoLossError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DpoLossError';
  }
}

export interface DpoLossOptions {
  beta: number;
  /** cDPO's ε: the probability that a label is flipped, in [0, 0.5) (sigmoid loss only). */
  labelSmoothing?: number;
  lossType?: DpoLossType;
  /** Completion tokens per pair (IPO averages the log-ratios per token; required for 'ipo'). */
  chosenTokens?: ArrayLike<number>;
  rejectedTokens?: ArrayLike<number>;
}

export interface DpoMetrics {
  loss: number;
  'rewards/chosen': number;
  'rewards/rejected': number;
  'rewards/accuracies': number;
  'rewards/margins': number;
  'logps/chosen': number;
  'logps/rejected': number;
}

const host = (x: Tensor | ArrayLike<number>): Float32Array => (x instanceof Tensor ? Float32Array.from(x.data() as Float32Array) : Float32Array.from(x));

/**
 * The DPO / IPO loss of a batch of B pairs, mean over pairs: policy sequence log-probs (B) as
 * tensors (gradients flow to them), the reference's (B) as tensors or numbers (no gradient).
 */
export function dpoLoss(policyChosen: Tensor, policyRejected: Tensor, refChosen: Tensor | ArrayLike<number>, refRejected: Tensor | ArrayLike<number>, o: DpoLossOptions): { loss: Tensor; losses: Float32Array; metrics: DpoMetrics } {
  const B = policyChosen.size, lossType = o.lossType ?? 'sigmoid', eps = o.labelSmoothing ?? 0;
  if (!(o.beta > 0) || !Number.isFinite(o.beta)) throw new DpoLossError(`dpo: beta = ${o.beta}: must be a finite number > 0`);
  if (!DPO_LOSS_TYPES.includes(lossType)) throw new DpoLossError(`dpo: loss type "${lossType}" is not one of ${DPO_LOSS_TYPES.join(', ')}`);
  if (!(eps >= 0 && eps < 0.5)) throw new DpoLossError(`dpo: labelSmoothing = ${eps}: must be in [0, 0.5)`);
  if (eps > 0 && lossType !== 'sigmoid') throw new DpoLossError(`dpo: labelSmoothing applies to the sigmoid loss, not ${lossType}`);
  const refC = host(refChosen), refR = host(refRejected);
  for (const [name, n] of [['policyRejected', policyRejected.size], ['refChosen', refC.length], ['refRejected', refR.length]] as const) {
    if (n !== B) throw new DpoLossError(`dpo: ${name} has ${n} values, policyChosen ${B}`);
  }
  if (!B) throw new DpoLossError('dpo: an empty batch');
  const pc = T.reshape(policyChosen, [B]), pr = T.reshape(policyRejected, [B]);
  // h = (π_c − ref_c) − (π_r − ref_r): the chosen and rejected log-ratios (IPO: per token).
  let scaleC = new Float32Array(B).fill(1), scaleR = new Float32Array(B).fill(1);
  if (lossType === 'ipo') {
    if (!o.chosenTokens || !o.rejectedTokens || o.chosenTokens.length !== B || o.rejectedTokens.length !== B) throw new DpoLossError(`dpo: the ipo loss needs chosenTokens and rejectedTokens (${B} each)`);
    scaleC = Float32Array.from(o.chosenTokens, (n) => 1 / Math.max(1, n));
    scaleR = Float32Array.from(o.rejectedTokens, (n) => 1 / Math.max(1, n));
  }
  const ratioC = T.mul(T.sub(pc, T.tensor(refC, [B])), T.tensor(scaleC, [B]));
  const ratioR = T.mul(T.sub(pr, T.tensor(refR, [B])), T.tensor(scaleR, [B]));
  const h = T.sub(ratioC, ratioR);
  let losses: Tensor;
  if (lossType === 'sigmoid') {
    // −log σ(x) = softplus(−x).
    losses = T.softplus(T.mul(h, -o.beta));
    if (eps > 0) losses = T.add(T.mul(losses, 1 - eps), T.mul(T.softplus(T.mul(h, o.beta)), eps));
  } else {
    losses = T.pow(T.sub(h, 1 / (2 * o.beta)), 2);
  }
  const loss = T.mean(losses);
  const lc = host(T.detach(pc)), lr = host(T.detach(pr)), per = host(T.detach(losses));
  let rc = 0, rr = 0, acc = 0, mc = 0, mr = 0;
  for (let b = 0; b < B; b++) {
    const c = o.beta * (lc[b] - refC[b]), r = o.beta * (lr[b] - refR[b]);
    rc += c; rr += r; acc += c > r ? 1 : 0; mc += lc[b]; mr += lr[b];
  }
  let lsum = 0;
  for (const v of per) lsum += v;
  return {
    loss, losses: per,
    metrics: { loss: lsum / B, 'rewards/chosen': rc / B, 'rewards/rejected': rr / B, 'rewards/accuracies': acc / B, 'rewards/margins': (rc - rr) / B, 'logps/chosen': mc / B, 'logps/rejected': mr / B },
  };
}

/** Sequence log-probs (B) of completion-aligned token log-probs (B, Lc): sums over the mask. */
export function sequenceLogps(tokenLogps: Tensor, mask: Float32Array | Tensor): Tensor {
  const m = mask instanceof Tensor ? mask : T.tensor(mask, tokenLogps.shape);
  return T.sum(T.mul(tokenLogps, m), -1);
}

export interface DpoOptions extends PairwiseTrainOptions {
  beta: number;
  labelSmoothing: number;
  loss: DpoLossType;
}

export const DEFAULT_DPO_OPTIONS: DpoOptions = {
  steps: 0, epochs: 1, batchSize: 8, microBatch: 8, beta: 0.1, labelSmoothing: 0, loss: 'sigmoid',
  lr: 1e-6, warmupSteps: 0, minLrRatio: 1, weightDecay: 0, gradClip: 1, seed: 0, evalEvery: 0, checkpointEvery: 0,
};

/** Resolve options: defaults, then the given ones (undefined ignored); errors name the option. */
export function dpoOptions(o: Partial<DpoOptions> = {}): DpoOptions {
  const r = withDefaults(DEFAULT_DPO_OPTIONS, o);
  checkPairwiseOptions('dpo', r);
  const bad = (k: keyof DpoOptions, why: string) => { throw new RangeError(`dpo: ${k} = ${JSON.stringify(r[k])}: ${why}`); };
  if (!(r.beta > 0)) bad('beta', 'must be > 0');
  if (!(r.labelSmoothing >= 0 && r.labelSmoothing < 0.5)) bad('labelSmoothing', 'must be in [0, 0.5)');
  if (r.labelSmoothing > 0 && r.loss !== 'sigmoid') bad('labelSmoothing', `applies to the sigmoid loss, not ${r.loss}`);
  if (!DPO_LOSS_TYPES.includes(r.loss)) bad('loss', `must be one of ${DPO_LOSS_TYPES.join(', ')}`);
  return r;
}

/** One step's metrics (TRL's names; held-out ones prefixed eval_ as TRL logs them). */
export interface DpoStepMetrics extends DpoMetrics, PairwiseStep {
  [evalKey: `eval_${string}`]: number;
}

export interface DpoInput {
  model: CausalLM;
  tokenizer: Tokenizer;
  /** The frozen reference (default: the policy as it is before training). */
  ref?: CausalLM | null;
  train: TokenizedPair[];
  eval?: TokenizedPair[];
  options?: Partial<DpoOptions>;
  /** Output directory: metrics.jsonl, report.html, checkpoints (the caller saves the final model). */
  out?: string;
  /** Continue from the checkpoint in `out` (the reference log-probs are recomputed from the reference given). */
  resume?: boolean;
  /** Stop with a checkpoint after the step under way. */
  signal?: AbortSignal;
  log?: (line: string) => void;
  onStep?: (m: DpoStepMetrics, total: number) => void;
}

export interface DpoResult {
  metrics: DpoStepMetrics[];
  evalBefore: DpoMetrics | null;
  evalAfter: DpoMetrics | null;
  /** Steps of the run, and the steps done (fewer when stopped). */
  steps: number;
  step: number;
}

/** Sequence log-probs (summed over completion tokens) of each pair's chosen and rejected completions, without gradients. */
export function pairLogps(model: CausalLM, pairs: TokenizedPair[], padId: number, microBatch = 8): { chosen: Float32Array; rejected: Float32Array } {
  const chosen = new Float32Array(pairs.length), rejected = new Float32Array(pairs.length);
  const was = model.training;
  model.eval();
  for (let s = 0; s < pairs.length; s += microBatch) {
    const mb = pairs.slice(s, s + microBatch);
    noGrad(() => scope(() => {
      const p = packPairs(mb, padId);
      const seq = sequenceLogps(tokenLogprobs(model, p).logprobs, p.mask).data() as Float32Array;
      chosen.set(seq.subarray(0, mb.length), s);
      rejected.set(seq.subarray(mb.length), s);
    }));
  }
  model.train(was);
  return { chosen, rejected };
}

/** Chosen rows then rejected rows, one packed batch (2B sequences). */
function packPairs(pairs: TokenizedPair[], padId: number) {
  return packSequences([...pairs.map((p) => ({ prompt: p.prompt, completion: p.chosen })), ...pairs.map((p) => ({ prompt: p.prompt, completion: p.rejected }))], padId);
}

function checkPairs(model: CausalLM, pairs: TokenizedPair[], what: string): void {
  for (const p of pairs) {
    const n = p.prompt.length + Math.max(p.chosen.length, p.rejected.length);
    if (n - 1 > model.contextLength) throw new RangeError(`${p.where}: prompt + completion is ${n} tokens, the model's context is ${model.contextLength} (${what}; truncate with maxLength)`);
    if (!p.chosen.length || !p.rejected.length) throw new RangeError(`${p.where}: an empty completion after tokenisation (${what})`);
    const V = model.config.vocab_size;
    for (const ids of [p.prompt, p.chosen, p.rejected]) for (const id of ids) if (!(id >= 0 && id < V)) throw new RangeError(`${p.where}: token id ${id} outside the model's vocabulary of ${V} (a different tokenizer?)`);
  }
}

/** Held-out DPO metrics (no gradients) against precomputed reference log-probs. */
function evalMetrics(model: CausalLM, pairs: TokenizedPair[], ref: { chosen: Float32Array; rejected: Float32Array }, o: DpoOptions, padId: number): DpoMetrics {
  const pol = pairLogps(model, pairs, padId, o.microBatch);
  return noGrad(() => scope(() => dpoLoss(T.tensor(pol.chosen), T.tensor(pol.rejected), ref.chosen, ref.rejected, {
    beta: o.beta, labelSmoothing: o.labelSmoothing, lossType: o.loss, chosenTokens: pairs.map((p) => p.chosen.length), rejectedTokens: pairs.map((p) => p.rejected.length),
  }).metrics));
}

/** Train a policy on preference pairs with DPO (or IPO). */
export async function dpoTrain(i: DpoInput): Promise<DpoResult> {
  const o = dpoOptions(i.options);
  const { model, tokenizer: tok } = i;
  const log = i.log ?? ((s: string) => process.stderr.write(s + '\n'));
  if (!i.train.length) throw new RangeError('dpo: no training pairs');
  if (i.ref && i.ref.config.vocab_size !== model.config.vocab_size) {
    throw new RangeError(`dpo: the reference model's vocabulary (${i.ref.config.vocab_size}) differs from the policy's (${model.config.vocab_size})`);
  }
  checkPairs(model, i.train, 'training pairs');
  if (i.eval) checkPairs(model, i.eval, 'held-out pairs');
  const padId = tok.eosId ?? 0;
  const N = i.train.length, steps = pairwiseSteps(o, N);
  // Reference log-probs, once, before any update.
  const t0 = performance.now();
  const refModel = i.ref ?? model;
  const refTrain = pairLogps(refModel, i.train, padId, o.microBatch);
  const refEval = i.eval?.length ? pairLogps(refModel, i.eval, padId, o.microBatch) : null;
  log(`dpo: reference log-probs of ${N + (i.eval?.length ?? 0)} pairs in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const evalBefore = refEval && !i.resume ? evalMetrics(model, i.eval!, refEval, o, padId) : null;
  if (evalBefore) log(`held-out before: accuracy ${(100 * evalBefore['rewards/accuracies']).toFixed(1)}%, margin ${evalBefore['rewards/margins'].toFixed(4)}, loss ${evalBefore.loss.toFixed(4)}`);

  const { metrics, evalAfter, step } = await pairwiseLoop<TokenizedPair, DpoMetrics, DpoStepMetrics>({
    what: 'dpo', model, items: i.train, o: { ...o, steps }, out: i.out, tokenizer: tok, resume: i.resume, signal: i.signal, log,
    microLoss: (mb, ks) => {
      const p = packPairs(mb, padId);
      const seq = sequenceLogps(tokenLogprobs(model, p).logprobs, p.mask);
      const n = mb.length;
      return dpoLoss(T.slice(seq, 0, 0, n), T.slice(seq, 0, n, 2 * n), ks.map((k) => refTrain.chosen[k]), ks.map((k) => refTrain.rejected[k]), {
        beta: o.beta, labelSmoothing: o.labelSmoothing, lossType: o.loss, chosenTokens: mb.map((x) => x.chosen.length), rejectedTokens: mb.map((x) => x.rejected.length),
      });
    },
    evaluate: refEval ? () => {
      const e = evalMetrics(model, i.eval!, refEval, o, padId);
      return { result: e, entries: Object.fromEntries(Object.entries(e).map(([k, v]) => [`eval_${k}`, v])) };
    } : undefined,
    onStep: i.onStep ?? ((mm, total) => log(dpoProgressLine(mm, total))),
  });
  if (evalAfter) log(`held-out after: accuracy ${(100 * evalAfter['rewards/accuracies']).toFixed(1)}%, margin ${evalAfter['rewards/margins'].toFixed(4)}, loss ${evalAfter.loss.toFixed(4)}`);
  if (i.out) writeFileAtomic(path.join(i.out, 'report.html'), dpoReportHtml({ title: `tslm dpo (${o.loss}, β ${o.beta})`, metrics, options: o, evalBefore, evalAfter }));
  return { metrics, evalBefore, evalAfter, steps, step };
}

export function dpoProgressLine(m: DpoStepMetrics, total: number): string {
  return `step ${String(m.step).padStart(String(total).length)}/${total} loss ${m.loss.toFixed(4)} | margin ${m['rewards/margins'].toFixed(4)} | accuracy ${(100 * m['rewards/accuracies']).toFixed(0)}%` +
    (m['eval_rewards/accuracies'] !== undefined ? ` | held-out accuracy ${(100 * m['eval_rewards/accuracies']).toFixed(1)}%, margin ${m['eval_rewards/margins'].toFixed(4)}` : '') +
    ` | ${m.elapsed_seconds.toFixed(1)} s`;
}


/** report.html: loss, reward margins and accuracies (train and held-out), chosen/rejected rewards and log-probs. */
export function dpoReportHtml(r: { title: string; metrics: DpoStepMetrics[]; options: object; evalBefore: DpoMetrics | null; evalAfter: DpoMetrics | null }): string {
  const s = (name: string, key: string) => ({ name, points: r.metrics.filter((m) => (m as unknown as Record<string, number>)[key] !== undefined).map((m) => [m.step, (m as unknown as Record<string, number>)[key]] as [number, number]) });
  const charts = [
    seriesSvg([s('train', 'loss'), s('held-out', 'eval_loss')], { title: 'loss', yLabel: 'loss' }),
    seriesSvg([s('train', 'rewards/margins'), s('held-out', 'eval_rewards/margins')], { title: 'rewards/margins (chosen − rejected)', yLabel: 'margin' }),
    seriesSvg([s('train', 'rewards/accuracies'), s('held-out', 'eval_rewards/accuracies')], { title: 'rewards/accuracies', yLabel: 'accuracy' }),
    seriesSvg([s('chosen', 'rewards/chosen'), s('rejected', 'rewards/rejected')], { title: 'rewards (β · log-ratio to the reference)', yLabel: 'reward' }),
    seriesSvg([s('chosen', 'logps/chosen'), s('rejected', 'logps/rejected')], { title: 'logps', yLabel: 'log-prob' }),
  ];
  const fmt = (e: DpoMetrics | null) => e ? `accuracy ${(100 * e['rewards/accuracies']).toFixed(1)}%, margin ${e['rewards/margins'].toFixed(4)}, loss ${e.loss.toFixed(4)}` : '—';
  const rows: [string, string][] = [['steps', String(r.metrics.length)], ['held-out before', fmt(r.evalBefore)], ['held-out after', fmt(r.evalAfter)]];
  const opts = Object.entries(r.options).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(JSON.stringify(v))}</td></tr>`).join('');
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(r.title)}</title>
<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}th{text-align:left;padding-right:1em}.charts{display:flex;flex-wrap:wrap;gap:12px}</style></head><body>
<h1>${esc(r.title)}</h1><table>${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>
<div class="charts">${charts.join('\n')}</div><h2>options</h2><table>${opts}</table></body></html>
`;
}
