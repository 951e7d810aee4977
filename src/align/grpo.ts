// Policy optimisation with verifiable rewards (GRPO and its descendants: DAPO, Dr. GRPO, GSPO,
// Kimi k1.5), one flat loop as TRL's GRPOTrainer runs it:
//   1. choose prompts (uniformly, prioritised by running success rate, or by a curriculum),
//   2. sample G completions of each (rollout.ts: continuous batching, seeded per step and prompt),
//   3. score them (rewards.ts) and shape the rewards (DAPO overlong punishment, Kimi length
//      penalty); with dynamic sampling drop groups whose rewards are all equal and sample more,
//   4. group-normalised advantages (advantages.ts),
//   5. μ optimisation passes over the batch, each one AdamW step with the gradients accumulated
//      over micro-batches; the policy loss (losses.ts) sees the old policy's log-probs (computed
//      once, before the first pass, when μ > 1) and the reference's (when β > 0).
// Metrics use TRL's names; checkpoints are the trainer's (atomic; --resume continues bit for bit).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as T from '../tensor/ops.js';
import { scope } from '../tensor/storage.js';
import { noGrad } from '../tensor/autograd.js';
import type { CausalLM } from '../models/causal.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { AdamW, clipGradNorm } from '../train/optim.js';
import { cosineWithWarmup } from '../train/schedule.js';
import { paramGroups, TrainingDivergedError } from '../train/trainer.js';
import type { OptimOptions } from '../train/trainer.js';
import { resumeCheckpoint, saveCheckpoint } from '../train/checkpoint.js';
import { saveModel } from '../io/model.js';
import { writeFileAtomic } from '../train/report.js';
import { rollout } from './rollout.js';
import type { Rollout } from './rollout.js';
import { packSequences, sliceRows, tokenLogprobs } from './logprobs.js';
import type { PackedSequences } from './logprobs.js';
import { policyLoss } from './losses.js';
import type { ImportanceSampling, KlEstimator, LossType } from './losses.js';
import { ProblemSampler, groupAdvantages, kimiLengthPenalty, maskTruncated, overlongPenalty, zeroStdGroups } from './advantages.js';
import type { ProblemSamplerState, RewardScale } from './advantages.js';
import type { RewardContext, RewardFunction } from './rewards.js';
import type { PromptRow } from './data.js';
import { promptTokens } from './data.js';
import { rlReportHtml, rlProgressLine } from './report.js';
import type { RlMetrics } from './report.js';
import { withDefaults } from '../train/options.js';

export type { RlMetrics } from './report.js';

export interface GrpoOptions extends OptimOptions {
  /** Batches of prompts (each: μ optimiser steps). */
  steps: number;
  /** Prompts per batch (each gives a group of groupSize completions). */
  promptsPerStep: number;
  /** Completions per prompt (G). */
  groupSize: number;
  maxNewTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  /** Text that ends a completion and stays in it. */
  stopTags: string[];
  loss: LossType;
  epsilonLow: number;
  epsilonHigh: number;
  /** Two-sided clipping bound of the ratio (null: off). */
  delta: number | null;
  /** KL coefficient to the reference policy (0: no reference model is loaded). */
  beta: number;
  kl: KlEstimator;
  /** Importance ratio per token or per sequence (GSPO); null: the loss type's default. */
  importanceSampling: ImportanceSampling | null;
  /** Kimi k1.5 mirror descent's τ. */
  tau: number;
  /** Optimisation passes per batch (TRL num_iterations). */
  mu: number;
  /** Sequences per forward/backward (gradients accumulate over micro-batches; whole groups). */
  microBatch: number;
  scaleRewards: RewardScale;
  /** DAPO dynamic sampling: drop groups whose rewards are all equal and sample more prompts. */
  dynamicSampling: boolean;
  /** Extra sampling rounds at most per batch for dynamic sampling. */
  maxResample: number;
  /** DAPO soft overlong punishment: its buffer L_cache in tokens (0: off). */
  overlongBuffer: number;
  /** DAPO overlong filtering: truncated completions take no part in the loss. */
  overlongFilter: boolean;
  /** Kimi k1.5 length penalty weight (0: off). */
  lengthPenalty: number;
  /** How prompts are chosen. */
  sampling: 'uniform' | 'prioritized' | 'curriculum';
  /** Curriculum: batches until every problem is in the pool (default: half the run). */
  curriculumSteps: number;
  /** Evaluate held-out accuracy every N batches (0: only before and after). */
  evalEvery: number;
  /** Samples per held-out prompt. */
  evalSamples: number;
  /** Sampling temperature of the held-out evaluation (default: the rollout temperature). */
  evalTemperature: number;
  /** Also measure greedy held-out accuracy. */
  evalGreedy: boolean;
  /** Write a checkpoint every N batches (0: only at the end and when stopped). */
  checkpointEvery: number;
}

export const DEFAULT_GRPO_OPTIONS: GrpoOptions = {
  steps: 100, promptsPerStep: 16, groupSize: 8, maxNewTokens: 64, temperature: 1, topP: 1, topK: 0, stopTags: ['</answer>'],
  lr: 1e-5, warmupSteps: 0, minLrRatio: 1, weightDecay: 0, gradClip: 1, seed: 0,
  loss: 'grpo', epsilonLow: 0.2, epsilonHigh: 0.2, delta: null, beta: 0, kl: 'k3', importanceSampling: null, tau: 1,
  mu: 1, microBatch: 32, scaleRewards: 'group', dynamicSampling: false, maxResample: 3,
  overlongBuffer: 0, overlongFilter: false, lengthPenalty: 0, sampling: 'uniform', curriculumSteps: 0,
  evalEvery: 25, evalSamples: 1, evalTemperature: 1, evalGreedy: false, checkpointEvery: 50,
};

export interface EvalResult {
  /** Mean of the first reward component (the verifier) over the samples. */
  accuracy: number;
  /** The same of greedy completions (when asked for). */
  greedyAccuracy?: number;
  meanLength: number;
  samples: { prompt: string; completion: string; score: number }[];
}

export interface GrpoInput {
  model: CausalLM;
  tokenizer: Tokenizer;
  /** The frozen reference policy (needed when beta > 0). */
  ref?: CausalLM | null;
  train: PromptRow[];
  eval?: PromptRow[];
  reward: RewardFunction;
  options?: Partial<GrpoOptions>;
  /** Output directory: metrics.jsonl, report.html, checkpoints, the final model. */
  out?: string;
  resume?: boolean;
  log?: (line: string) => void;
  progress?: (m: RlMetrics, total: number) => void;
  /** Stop (with a checkpoint) once this many batches are done. */
  stopAtStep?: number;
  signal?: AbortSignal;
  /** Title and extra summary rows of the report. */
  title?: string;
  summary?: [string, string][];
}

export interface GrpoResult {
  metrics: RlMetrics[];
  evalBefore: EvalResult | null;
  evalAfter: EvalResult | null;
  step: number;
}

interface RlDataState { sampler: ProblemSamplerState; tokens: number }

/** Resolve options: defaults, then the given ones (undefined ignored). */
export function grpoOptions(o: Partial<GrpoOptions> = {}): GrpoOptions {
  const r: GrpoOptions = withDefaults(DEFAULT_GRPO_OPTIONS, o);
  if (o.epsilonHigh === undefined) r.epsilonHigh = r.epsilonLow;
  if (o.evalTemperature === undefined) r.evalTemperature = r.temperature;
  const bad = (k: keyof GrpoOptions, why: string) => { throw new RangeError(`rl: ${k} = ${JSON.stringify(r[k])}: ${why}`); };
  for (const k of ['steps', 'promptsPerStep', 'groupSize', 'maxNewTokens', 'mu', 'microBatch', 'evalSamples'] as const) if (!Number.isInteger(r[k]) || r[k] < 1) bad(k, 'must be a positive integer');
  if (r.groupSize < 2 && r.scaleRewards !== 'none' && r.loss !== 'k1.5') bad('groupSize', 'group-normalised advantages need at least 2 completions per prompt');
  if (!(r.temperature > 0)) bad('temperature', 'must be > 0 (rollouts sample)');
  if (!(r.lr > 0)) bad('lr', 'must be > 0');
  if (!(r.beta >= 0)) bad('beta', 'must be ≥ 0');
  if (r.loss === 'k1.5' && r.beta !== 0) bad('beta', "the k1.5 loss takes no KL term (its reference is the previous iterate): use beta 0");
  if (r.overlongBuffer < 0 || r.overlongBuffer > r.maxNewTokens) bad('overlongBuffer', `must be in [0, maxNewTokens = ${r.maxNewTokens}]`);
  return r;
}

/** Held-out accuracy: sampled (seeded) completions of each prompt judged by the reward's first component. */
export async function evaluatePolicy(model: CausalLM, tok: Tokenizer, rows: PromptRow[], reward: RewardFunction, o: {
  samples: number; temperature: number; maxNewTokens: number; stopTags: string[]; seed: number; greedy?: boolean; topP?: number; topK?: number;
}): Promise<EvalResult> {
  if (!rows.length) return { accuracy: NaN, meanLength: NaN, samples: [] };
  const prompts = rows.map((r) => promptTokens(tok, r.prompt));
  const rs = rollout(model, tok, prompts, {
    groupSize: o.greedy ? 1 : o.samples, maxNewTokens: o.maxNewTokens, temperature: o.greedy ? 0 : o.temperature,
    topP: o.greedy ? undefined : o.topP, topK: o.greedy ? undefined : o.topK, seed: o.seed, stopTags: o.stopTags,
  });
  const ctx = rs.map((r) => contextOf(rows[r.prompt], r));
  const s = await reward.scoreDetailed(ctx);
  const first = Object.values(s.components)[0] ?? s.total;
  return {
    accuracy: mean(first), meanLength: mean(rs.map((r) => r.ids.length)),
    samples: rs.map((r, i) => ({ prompt: rows[r.prompt].prompt, completion: r.text, score: first[i] })),
  };
}

function contextOf(row: PromptRow, r: Rollout): RewardContext {
  return { prompt: row.prompt, completion: r.text, row: row.row, truncated: r.truncated, completionTokens: r.ids.length };
}

function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return xs.length ? s / xs.length : NaN;
}

function std(xs: ArrayLike<number>): number {
  const m = mean(xs);
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += (xs[i] - m) ** 2;
  return xs.length > 1 ? Math.sqrt(s / (xs.length - 1)) : 0;
}

/** Run policy optimisation; returns the metrics and the held-out accuracy before and after. */
export async function grpoTrain(i: GrpoInput): Promise<GrpoResult> {
  const o = grpoOptions(i.options);
  const { model, tokenizer: tok } = i;
  const log = i.log ?? ((s: string) => process.stderr.write(s + '\n'));
  if (o.beta > 0 && !i.ref) throw new RangeError('rl: beta > 0 needs a reference model');
  if (i.ref && i.ref.config.vocab_size !== model.config.vocab_size) {
    throw new RangeError(`rl: the reference model's vocabulary (${i.ref.config.vocab_size}) differs from the policy's (${model.config.vocab_size})`);
  }
  if (!i.train.length) throw new RangeError('rl: no training prompts');
  const G = o.groupSize, P = Math.min(o.promptsPerStep, i.train.length);
  const promptIds = i.train.map((r) => promptTokens(tok, r.prompt));
  const tooLong = promptIds.findIndex((p) => p.length + 1 >= model.contextLength);
  if (tooLong >= 0) throw new RangeError(`${i.train[tooLong].where}: the prompt has ${promptIds[tooLong].length} tokens, the model's context is ${model.contextLength}`);
  const difficulty = i.train.map((r) => Number(r.row.difficulty ?? 0));
  const sampler = new ProblemSampler(i.train.length, {
    seed: o.seed, prioritized: o.sampling === 'prioritized', floor: o.sampling === 'prioritized' ? 0.05 : 0,
    ...(o.sampling === 'curriculum' ? { difficulty, curriculumSteps: o.curriculumSteps || Math.max(1, Math.floor(o.steps / 2)) } : {}),
  });
  const opt = new AdamW(paramGroups(model, o.weightDecay), { lr: o.lr, betas: [0.9, 0.99], eps: 1e-8 });
  const sched = cosineWithWarmup(o.warmupSteps, o.steps, o.minLrRatio);
  const out = i.out;
  const metricsFile = out ? path.join(out, 'metrics.jsonl') : null;
  let step = 0, tokens = 0, elapsed0 = 0;
  let metrics: RlMetrics[] = [];
  if (out) mkdirSync(out, { recursive: true });
  if (i.resume) {
    const r = await resumeCheckpoint<GrpoOptions, RlDataState, RlMetrics>('rl', out, model, opt);
    step = r.state.state.step;
    tokens = r.state.train.tokens;
    elapsed0 = r.state.state.elapsedSeconds;
    sampler.load(r.state.train.sampler);
    metrics = r.metrics;
    log(`resumed from ${r.dir} at batch ${step}`);
  } else if (metricsFile) writeFileSync(metricsFile, '');
  const evalOpts = { samples: o.evalSamples, temperature: o.evalTemperature, maxNewTokens: o.maxNewTokens, stopTags: o.stopTags, seed: o.seed + 4242, topP: o.topP < 1 ? o.topP : undefined, topK: o.topK || undefined };
  const evaluate = async (): Promise<EvalResult | null> => {
    if (!i.eval?.length) return null;
    const r = await evaluatePolicy(model, tok, i.eval, i.reward, evalOpts);
    if (o.evalGreedy) r.greedyAccuracy = (await evaluatePolicy(model, tok, i.eval, i.reward, { ...evalOpts, greedy: true })).accuracy;
    return r;
  };
  const fmtEval = (e: EvalResult) => `${(100 * e.accuracy).toFixed(1)}%${e.greedyAccuracy !== undefined ? ` (greedy ${(100 * e.greedyAccuracy).toFixed(1)}%)` : ''}`;
  const before = step === 0 ? await evaluate() : null;
  if (before) log(`held-out accuracy before: ${fmtEval(before)} on ${i.eval!.length} prompts`);
  let after: EvalResult | null = null;

  const saveCk = async () => {
    if (!out) return;
    await saveCheckpoint<GrpoOptions, RlDataState>(out, {
      model, tokenizer: tok, opt, state: { step, tokens, elapsedSeconds: elapsed0 + (performance.now() - t0) / 1000 }, options: o,
      train: { sampler: sampler.state(), tokens },
    });
  };
  const t0 = performance.now();
  const end = Math.min(o.steps, i.stopAtStep ?? Infinity);
  try {
    while (step < end && !i.signal?.aborted) {
      const ts = performance.now();
      // 1–3. Prompts, rollouts, rewards (with dynamic sampling: drop equal-reward groups, refill).
      const kept: { prompt: number; rollouts: Rollout[]; total: number[]; comps: Record<string, number[]> }[] = [];
      let dropped = 0, sampledTokens = 0, rolloutMs = 0;
      const all: { rollouts: Rollout[]; comps: Record<string, number[]>; total: number[] }[] = [];
      for (let round = 0; round <= (o.dynamicSampling ? o.maxResample : 0) && kept.length < P; round++) {
        const idx = sampler.sample(round === 0 ? P : Math.min(P, i.train.length));
        const tr = performance.now();
        const rs = rollout(model, tok, idx.map((k) => promptIds[k]), {
          groupSize: G, maxNewTokens: o.maxNewTokens, temperature: o.temperature, topP: o.topP < 1 ? o.topP : undefined, topK: o.topK || undefined,
          seed: (o.seed * 100003 + step) * 16 + round, stopTags: o.stopTags, maxRows: Math.max(64, G),
        });
        rolloutMs += performance.now() - tr;
        for (const r of rs) sampledTokens += r.ids.length + (r.stopId !== null ? 1 : 0);
        const scores = await i.reward.scoreDetailed(rs.map((r) => contextOf(i.train[idx[r.prompt]], r)));
        const names = Object.keys(scores.components);
        const verifier = scores.components[names[0]] ?? scores.total;
        const total = Float32Array.from(scores.total);
        // Reward shaping: DAPO's overlong punishment, Kimi's length penalty.
        if (o.overlongBuffer > 0) overlongPenalty(rs.map((r) => r.ids.length), o.maxNewTokens, o.overlongBuffer).forEach((v, k) => { total[k] += v; });
        const correct = verifier.map((v) => v >= 1);
        if (o.lengthPenalty > 0) kimiLengthPenalty(rs.map((r) => r.ids.length), correct, G).forEach((v, k) => { total[k] += o.lengthPenalty * v; });
        idx.forEach((p, g) => sampler.update(p, correct.slice(g * G, (g + 1) * G).filter(Boolean).length, G));
        all.push({ rollouts: rs, comps: scores.components, total: [...total] });
        const flat = o.dynamicSampling ? zeroStdGroups(total, G) : idx.map(() => false);
        idx.forEach((p, g) => {
          if (flat[g]) { dropped++; return; }
          if (kept.length >= P) return;
          const sl = (a: ArrayLike<number>) => Array.from(a).slice(g * G, (g + 1) * G);
          kept.push({ prompt: p, rollouts: rs.slice(g * G, (g + 1) * G), total: sl(total), comps: Object.fromEntries(names.map((n) => [n, sl(scores.components[n])])) });
        });
      }
      tokens += sampledTokens;
      const allTotal = all.flatMap((a) => a.total), allRs = all.flatMap((a) => a.rollouts);
      const compNames = Object.keys(all[0].comps);
      const m: RlMetrics = {
        step: step + 1, reward: mean(allTotal), reward_std: std(allTotal),
        rewards: Object.fromEntries(compNames.map((n) => [n, mean(all.flatMap((a) => a.comps[n]))])),
        frac_reward_zero_std: mean(all.flatMap((a) => zeroStdGroups(a.total, G).map(Number))),
        'completions/mean_length': mean(allRs.map((r) => r.ids.length)),
        'completions/clipped_ratio': mean(allRs.map((r) => Number(r.truncated))),
        entropy: NaN, 'clip_ratio/low_mean': 0, 'clip_ratio/high_mean': 0, 'clip_ratio/region_mean': 0,
        loss: 0, grad_norm: 0, learning_rate: o.lr * sched(step), completions: kept.length * G, dropped_groups: dropped,
        rollout_tokens_per_second: sampledTokens / (rolloutMs / 1000), step_seconds: 0, elapsed_seconds: 0,
      };
      // 4–5. Advantages and the optimisation passes.
      if (kept.length) optimise(kept, m);
      step++;
      m.step_seconds = (performance.now() - ts) / 1000;
      m.elapsed_seconds = elapsed0 + (performance.now() - t0) / 1000;
      if ((o.evalEvery > 0 && step % o.evalEvery === 0) || step === o.steps) {
        const e = await evaluate();
        if (e) {
          m['eval/accuracy'] = e.accuracy;
          m['eval/mean_length'] = e.meanLength;
          if (e.greedyAccuracy !== undefined) m['eval/accuracy_greedy'] = e.greedyAccuracy;
          if (step === o.steps) after = e;
        }
      }
      metrics.push(m);
      if (metricsFile) writeFileSync(metricsFile, JSON.stringify(m) + '\n', { flag: 'a' });
      (i.progress ?? ((mm, total) => process.stderr.write(rlProgressLine(mm, total) + '\n')))(m, o.steps);
      if (out && o.checkpointEvery > 0 && step % o.checkpointEvery === 0 && step < end) await saveCk();
    }
  } catch (e) {
    // A failed batch never reaches opt.step(): the weights are those of the batches done; keep them.
    opt.zeroGrad();
    if (out && step > 0) {
      await saveCk();
      log(`saved a checkpoint after ${step} batches in ${out} (continue with --resume once the cause is fixed)`);
    }
    throw e;
  } finally {
    opt.zeroGrad();
  }
  await saveCk();
  if (after) log(`held-out accuracy after: ${fmtEval(after)}`);
  if (out) {
    if (step >= o.steps) await saveModel(model, out, { tokenizer: tok });
    writeFileAtomic(path.join(out, 'report.html'), rlReportHtml({
      title: i.title ?? 'tslm rl', metrics, options: o, before, summary: [
        ...(i.summary ?? []),
        ...(before ? [['held-out accuracy before', fmtEval(before)] as [string, string]] : []),
        ...(after ? [['held-out accuracy after', fmtEval(after)] as [string, string]] : []),
      ], samples: after?.samples.slice(0, 8) ?? [],
    }));
  }
  for (const t of Object.values(opt.stateDict().tensors)) t.dispose();
  return { metrics, evalBefore: before, evalAfter: after, step };

  function optimise(kept: { prompt: number; rollouts: Rollout[]; total: number[] }[], m: RlMetrics): void {
    const rs = kept.flatMap((k) => k.rollouts);
    const rewards = Float32Array.from(kept.flatMap((k) => k.total));
    const adv = groupAdvantages(rewards, G, o.scaleRewards);
    const packed = packSequences(rs.map((r, k) => ({ prompt: promptIds[kept[Math.floor(k / G)].prompt], completion: r.stopId !== null ? [...r.ids, r.stopId] : r.ids })), tok.eosId ?? 0);
    if (o.overlongFilter) packed.mask = maskTruncated(packed.mask, rs.map((r) => r.truncated));
    const B = packed.batch, L = packed.completionLength;
    let totalTokens = 0;
    for (const v of packed.mask) totalTokens += v;
    const mbRows = G * Math.max(1, Math.floor(o.microBatch / G));
    const micro: [number, number][] = [];
    for (let s = 0; s < B; s += mbRows) micro.push([s, Math.min(B, s + mbRows)]);
    const noGradLogprobs = (net: CausalLM) => {
      const lp = new Float32Array(B * L);
      const was = net.training;
      net.eval();
      for (const [s, e] of micro) noGrad(() => scope(() => { lp.set(tokenLogprobs(net, sliceRows(packed, s, e), o.temperature).logprobs.data() as Float32Array, s * L); }));
      net.train(was);
      return lp;
    };
    const old = o.mu > 1 ? noGradLogprobs(model) : null;
    const ref = o.beta > 0 ? noGradLogprobs(i.ref!) : null;
    const sums: Record<string, number> = {};
    let entropySum = 0, lossSum = 0;
    model.train(true);
    for (let pass = 0; pass < o.mu; pass++) {
      opt.setLr(o.lr * sched(step));
      for (const [s, e] of micro) {
        const mb = sliceRows(packed, s, e);
        let mbTokens = 0;
        for (const v of mb.mask) mbTokens += v;
        scope(() => {
          const { logprobs, entropy } = tokenLogprobs(model, mb, o.temperature, { entropy: pass === 0 });
          const r = policyLoss({
            logprobs, mask: mb.mask, advantages: adv.subarray(s, e), rewards: rewards.subarray(s, e),
            oldLogprobs: old ? old.subarray(s * L, e * L) : null, refLogprobs: ref ? ref.subarray(s * L, e * L) : null,
          }, {
            loss: o.loss, epsilonLow: o.epsilonLow, epsilonHigh: o.epsilonHigh, delta: o.delta, beta: o.beta, kl: o.kl,
            importanceSampling: o.importanceSampling ?? undefined, tau: o.tau, groupSize: G,
            ...(o.loss === 'dr_grpo' ? { maxCompletionLength: o.maxNewTokens } : {}), ...(o.loss === 'dapo' ? { numItemsInBatch: totalTokens } : {}),
          });
          // The batch's loss is the sum of the micro-batches' (each normalised as the whole batch is).
          const scale = o.loss === 'dapo' ? 1 : o.loss === 'bnpo' ? mbTokens / Math.max(1, totalTokens) : (e - s) / B;
          const loss = scale === 1 ? r.loss : T.mul(r.loss, scale);
          const v = loss.item();
          if (!Number.isFinite(v)) throw new TrainingDivergedError(`batch ${step + 1}: the policy loss is ${v}; lower the learning rate (${o.lr})`);
          loss.backward();
          if (pass === o.mu - 1) lossSum += v;
          if (pass === 0) {
            if (entropy) for (let k = 0; k < entropy.length; k++) entropySum += entropy[k] * mb.mask[k];
            for (const [k, x] of Object.entries(r.metrics)) sums[k] = (sums[k] ?? 0) + x * mbTokens;
          }
        });
      }
      m.grad_norm = clipGradNorm(opt.params, o.gradClip > 0 ? o.gradClip : Infinity);
      opt.step();
      opt.zeroGrad();
    }
    model.eval();
    m.loss = lossSum;
    m.entropy = totalTokens ? entropySum / totalTokens : NaN;
    for (const [k, x] of Object.entries(sums)) (m as unknown as Record<string, number>)[k] = totalTokens ? x / totalTokens : 0;
  }
}
