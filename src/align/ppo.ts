// PPO against a reward model, LLaMA 2-Chat's last stage, as TRL's PPOTrainer runs it: a batch of
// prompts, one sampled response each (rollout.ts); the reward model scores prompt + response; the
// per-token reward is −β·KL(policy ‖ frozen reference) with the score added at the last token
// (a missing end of response can cost a penalty); a value model (initialised from the reward
// model: backbone + scalar head, read at every response token) gives the baseline for GAE(γ, λ);
// advantages are whitened (rewards too, optionally); then ppoEpochs passes over shuffled
// mini-batches, each an AdamW step of the clipped policy loss + vfCoef × the clipped value loss
// (ppo_losses.ts). β is fixed or adapted toward a target KL (Ziegler et al.).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as T from '../tensor/ops.js';
import { scope } from '../tensor/storage.js';
import { noGrad } from '../tensor/autograd.js';
import { Generator } from '../tensor/random.js';
import type { CausalLM } from '../models/causal.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { AdamW, clipGradNorm } from '../train/optim.js';
import { paramGroups, TrainingDivergedError, yieldToEventLoop } from '../train/trainer.js';
import { saveModel } from '../io/model.js';
import { readHfDir } from '../io/hf.js';
import { f32StateDict } from '../io/dtypes.js';
import { resumeCheckpoint, saveCheckpoint } from '../train/checkpoint.js';
import { writeFileAtomic } from '../train/report.js';
import { rollout } from './rollout.js';
import { packSequences, sliceRows, tokenLogprobs, tokenValues } from './logprobs.js';
import type { PackedSequences } from './logprobs.js';
import { ShuffledOrder, promptTokens } from './data.js';
import type { ShuffledOrderState } from './data.js';
import type { PromptRow } from './data.js';
import type { RewardModel } from './reward_model.js';
import { saveRewardModel } from './reward_model.js';
import { AdaptiveKLController, FixedKLController, gae, maskedWhiten, ppoPolicyLoss, ppoValueLoss, tokenRewards } from './ppo_losses.js';
import { seriesSvg } from './report.js';
import { withDefaults } from '../train/options.js';

export interface PpoOptions {
  /** Batches of prompts. */
  steps: number;
  batchSize: number;
  maxNewTokens: number;
  temperature: number;
  stopTags: string[];
  /** Optimisation passes over each batch (TRL num_ppo_epochs). */
  ppoEpochs: number;
  /** Mini-batches per pass, each one AdamW step (TRL num_mini_batches). */
  miniBatches: number;
  /** Sequences per forward/backward inside a mini-batch. */
  microBatch: number;
  lr: number;
  gradClip: number;
  /** β of the per-token KL penalty (its start when adaptive). */
  klCoef: number;
  /** Adapt β toward this KL (nats per response, summed over tokens; null: fixed β). */
  klTarget: number | null;
  klHorizon: number;
  kl: 'k1' | 'k3';
  cliprange: number;
  cliprangeValue: number;
  vfCoef: number;
  gamma: number;
  lam: number;
  whitenRewards: boolean;
  /** Subtracted from the score of a response cut at maxNewTokens (null: none). */
  missingEosPenalty: number | null;
  seed: number;
  /** A checkpoint (policy, value model, AdamW, β, data order) every N batches (0: only when stopped and at the end). */
  checkpointEvery: number;
}

export const DEFAULT_PPO_OPTIONS: PpoOptions = {
  steps: 100, batchSize: 16, maxNewTokens: 53, temperature: 0.7, stopTags: [], ppoEpochs: 4, miniBatches: 1, microBatch: 16,
  lr: 3e-6, gradClip: 1, klCoef: 0.05, klTarget: null, klHorizon: 10000, kl: 'k1', cliprange: 0.2, cliprangeValue: 0.2, vfCoef: 0.1,
  gamma: 1, lam: 0.95, whitenRewards: false, missingEosPenalty: null, seed: 0, checkpointEvery: 0,
};

/** One batch's metrics (TRL's PPOTrainer names). */
export interface PpoMetrics {
  step: number;
  'objective/scores': number;
  'objective/kl': number;
  'objective/non_score_reward': number;
  'objective/rlhf_reward': number;
  'objective/entropy': number;
  'policy/approxkl_avg': number;
  'policy/clipfrac_avg': number;
  'loss/policy_avg': number;
  'loss/value_avg': number;
  'val/clipfrac_avg': number;
  'val/mean': number;
  kl_coef: number;
  'completions/mean_length': number;
  elapsed_seconds: number;
}

export interface PpoInput {
  policy: CausalLM;
  ref: CausalLM;
  rewardModel: RewardModel;
  /** The critic: a reward model's copy (trained here). */
  valueModel: RewardModel;
  tokenizer: Tokenizer;
  prompts: PromptRow[];
  options?: Partial<PpoOptions>;
  out?: string;
  /** Continue from the checkpoint in `out` (bit for bit). */
  resume?: boolean;
  /** Stop with a checkpoint after the batch under way. */
  signal?: AbortSignal;
  log?: (line: string) => void;
  progress?: (m: PpoMetrics, total: number) => void;
}

export function ppoOptions(o: Partial<PpoOptions> = {}): PpoOptions {
  const r = withDefaults(DEFAULT_PPO_OPTIONS, o);
  const bad = (k: keyof PpoOptions, why: string) => { throw new RangeError(`ppo: ${k} = ${JSON.stringify(r[k])}: ${why}`); };
  for (const k of ['steps', 'batchSize', 'maxNewTokens', 'ppoEpochs', 'miniBatches', 'microBatch'] as const) if (!Number.isInteger(r[k]) || r[k] < 1) bad(k, 'must be a positive integer');
  if (r.miniBatches > r.batchSize) bad('miniBatches', `more mini-batches than the ${r.batchSize} sequences of a batch`);
  if (!(r.temperature > 0)) bad('temperature', 'must be > 0 (rollouts sample)');
  if (!(r.klCoef >= 0)) bad('klCoef', 'must be ≥ 0');
  if (!(r.gamma >= 0 && r.gamma <= 1)) bad('gamma', 'must be in [0, 1]');
  if (!(r.lam >= 0 && r.lam <= 1)) bad('lam', 'must be in [0, 1]');
  return r;
}

const mean = (xs: ArrayLike<number>) => { let s = 0; for (let i = 0; i < xs.length; i++) s += xs[i]; return xs.length ? s / xs.length : NaN; };

export async function ppoTrain(i: PpoInput): Promise<{ metrics: PpoMetrics[]; step: number; steps: number }> {
  const o = ppoOptions(i.options);
  const { policy, ref, rewardModel: rm, valueModel: vm, tokenizer: tok } = i;
  const log = i.log ?? ((s: string) => process.stderr.write(s + '\n'));
  for (const [what, m] of [['reference', ref], ['reward model', rm.backbone], ['value model', vm.backbone]] as const) {
    if (m.config.vocab_size !== policy.config.vocab_size) throw new RangeError(`ppo: the ${what}'s vocabulary (${m.config.vocab_size}) differs from the policy's (${policy.config.vocab_size})`);
  }
  if (!i.prompts.length) throw new RangeError('ppo: no prompts');
  const promptIds = i.prompts.map((r) => promptTokens(tok, r.prompt));
  const vmGroups = paramGroups(vm as unknown as CausalLM, 0);
  // The value model's tensors carry the backbone's names too: prefixed in the optimizer's state.
  for (const gr of vmGroups) for (const p of gr.params) p.name = `value_model.${p.name}`;
  const params = [...paramGroups(policy, 0), ...vmGroups];
  const opt = new AdamW(params, { lr: o.lr, betas: [0.9, 0.999], eps: 1e-5 });
  const klCtl = o.klTarget !== null ? new AdaptiveKLController(o.klCoef, o.klTarget, o.klHorizon) : new FixedKLController(o.klCoef);
  const g = new Generator(o.seed);
  let metrics: PpoMetrics[] = [];
  const t0 = performance.now();
  const order = new ShuffledOrder(promptIds.length, g);
  const metricsFile = i.out ? path.join(i.out, 'metrics.jsonl') : null;
  if (i.out) mkdirSync(i.out, { recursive: true });
  let start = 0, elapsed0 = 0;
  type DataState = { order: ShuffledOrderState; prompts: number; klCoef: number };
  if (i.resume) {
    const { dir: ck, state: st, metrics: done0 } = await resumeCheckpoint<PpoOptions, DataState, PpoMetrics>('ppo', i.out, policy, opt);
    if (st.train.prompts !== promptIds.length) throw new RangeError(`${ck}: the checkpoint was trained on ${st.train.prompts} prompts, this run has ${promptIds.length}; resume with the same data`);
    const vdir = path.join(ck, 'value_model');
    vm.loadStateDict(f32StateDict((await readHfDir(vdir, { check: false })).tensors, vdir), { source: vdir });
    order.load(st.train.order, ck);
    klCtl.value = st.train.klCoef;
    start = st.state.step;
    elapsed0 = st.state.elapsedSeconds;
    metrics = done0;
    log(`ppo: resumed from ${ck} at batch ${start}`);
  } else if (metricsFile) writeFileSync(metricsFile, '');
  let done = start;
  const save = async () => {
    if (!i.out) return;
    await saveCheckpoint<PpoOptions, DataState>(i.out, {
      model: policy, tokenizer: tok, opt, options: o, train: { order: order.state(), prompts: promptIds.length, klCoef: klCtl.value },
      state: { step: done, tokens: 0, elapsedSeconds: elapsed0 + (performance.now() - t0) / 1000 },
      also: (dir) => saveRewardModel(vm, path.join(dir, 'value_model'), { tokenizer: tok }),
    });
  };
  // Whether the batch under way has changed the weights (a checkpoint then would not be at a batch boundary).
  let updating = false;
  rm.eval();
  ref.eval();
  try {
    for (let step = start; step < o.steps && !i.signal?.aborted; step++) {
      // 1. Responses and their scores.
      const idx = order.next(o.batchSize);
      const rs = rollout(policy, tok, idx.map((k) => promptIds[k]), { groupSize: 1, maxNewTokens: o.maxNewTokens, temperature: o.temperature, seed: o.seed * 100003 + step, stopTags: o.stopTags });
      const scores = rm.scoreSequences(rs.map((r) => [...promptIds[idx[r.prompt]], ...r.ids]));
      if (o.missingEosPenalty !== null) rs.forEach((r, b) => { if (r.truncated) scores[b] -= o.missingEosPenalty!; });
      const bad = Array.from(scores).findIndex((s) => !Number.isFinite(s));
      if (bad >= 0) throw new TrainingDivergedError(`ppo batch ${step + 1}: the reward model scored ${scores[bad]} for ${i.prompts[idx[bad]].where}`);
      const packed = packSequences(rs.map((r) => ({ prompt: promptIds[idx[r.prompt]], completion: r.stopId !== null ? [...r.ids, r.stopId] : r.ids })), tok.eosId ?? 0);
      const B = packed.batch, Lc = packed.completionLength, mask = packed.mask;
      const micro = (p: PackedSequences, f: (mb: PackedSequences, s: number, e: number) => void) => { for (let s = 0; s < p.batch; s += o.microBatch) f(sliceRows(p, s, Math.min(p.batch, s + o.microBatch)), s, Math.min(p.batch, s + o.microBatch)); };
      // 2. Old log-probs, reference log-probs, old values (no gradients).
      const old = new Float32Array(B * Lc), refLp = new Float32Array(B * Lc), oldValues = new Float32Array(B * Lc);
      let entropySum = 0;
      policy.eval();
      vm.eval();
      micro(packed, (mb, s) => noGrad(() => scope(() => {
        const pl = tokenLogprobs(policy, mb, o.temperature, { entropy: true });
        old.set(pl.logprobs.data() as Float32Array, s * Lc);
        for (let k = 0; k < pl.entropy!.length; k++) entropySum += pl.entropy![k];
        refLp.set(tokenLogprobs(ref, mb, o.temperature).logprobs.data() as Float32Array, s * Lc);
        oldValues.set(tokenValues(vm.backbone, (h) => vm.score.forward(h), mb).data() as Float32Array, s * Lc);
      })));
      // 3. Per-token rewards, GAE, whitening.
      const klCoef = klCtl.value;
      const tr = tokenRewards({ logprobs: old, refLogprobs: refLp, mask, scores, klCoef, kl: o.kl });
      const rewards = o.whitenRewards ? maskedWhiten(tr.rewards, mask, false) : tr.rewards;
      const { advantages: rawAdv, returns } = gae({ rewards, values: oldValues, mask, shape: [B, Lc], gamma: o.gamma, lam: o.lam });
      const advantages = maskedWhiten(rawAdv, mask);
      // 4. PPO epochs over shuffled mini-batches.
      const sums: Record<string, number> = {};
      let count = 0;
      policy.train(true);
      vm.train(true);
      const mbSize = Math.ceil(B / o.miniBatches);
      for (let epoch = 0; epoch < o.ppoEpochs; epoch++) {
        const perm = Array.from({ length: B }, (_, j) => j);
        for (let j = B - 1; j > 0; j--) { const q = g.int(j + 1); [perm[j], perm[q]] = [perm[q], perm[j]]; }
        for (let m0 = 0; m0 < B; m0 += mbSize) {
          const rows = perm.slice(m0, m0 + mbSize);
          const sub = packSequences(rows.map((b) => ({ prompt: promptIds[idx[b]], completion: rs[b].stopId !== null ? [...rs[b].ids, rs[b].stopId!] : rs[b].ids })), tok.eosId ?? 0);
          const L2 = sub.completionLength;
          const take = (x: Float32Array) => { const out = new Float32Array(rows.length * L2); rows.forEach((b, r) => out.set(x.subarray(b * Lc, b * Lc + L2), r * L2)); return out; };
          const [mOld, mAdv, mRet, mVal] = [take(old), take(advantages), take(returns), take(oldValues)];
          let tokens = 0;
          for (const v of sub.mask) tokens += v;
          micro(sub, (mb, s, e) => scope(() => {
            let mbTokens = 0;
            for (const v of mb.mask) mbTokens += v;
            if (!mbTokens) return;
            const sl = (x: Float32Array) => x.subarray(s * L2, e * L2);
            const lp = tokenLogprobs(policy, mb, o.temperature).logprobs;
            const pg = ppoPolicyLoss({ logprobs: lp, oldLogprobs: sl(mOld), advantages: sl(mAdv), mask: mb.mask, cliprange: o.cliprange });
            const vpred = tokenValues(vm.backbone, (h) => vm.score.forward(h), mb);
            const vf = ppoValueLoss({ values: vpred, oldValues: sl(mVal), returns: sl(mRet), mask: mb.mask, cliprangeValue: o.cliprangeValue });
            // Token means over the mini-batch: each micro-batch weighs by its share of the tokens.
            const loss = T.mul(T.add(pg.loss, T.mul(vf.loss, o.vfCoef)), mbTokens / tokens);
            const v = loss.item();
            if (!Number.isFinite(v)) throw new TrainingDivergedError(`ppo batch ${step + 1}: the loss is ${v}; lower the learning rate (${o.lr})`);
            loss.backward();
            const w = mbTokens;
            for (const [k, x] of Object.entries({ ...pg.metrics, ...vf.metrics }) as [string, number][]) sums[k] = (sums[k] ?? 0) + x * w;
            count += w;
          }));
          clipGradNorm(opt.params, o.gradClip > 0 ? o.gradClip : Infinity);
          updating = true;
          opt.step();
          opt.zeroGrad();
        }
      }
      policy.eval();
      vm.eval();
      // 5. KL per response (summed over its tokens), β's update, metrics.
      const klSeq = new Float32Array(B);
      for (let b = 0; b < B; b++) for (let t = 0; t < Lc; t++) klSeq[b] += tr.kl[b * Lc + t] * mask[b * Lc + t];
      const meanKl = mean(klSeq);
      klCtl.update(meanKl, B);
      let tokensAll = 0, valSum = 0;
      for (let k = 0; k < mask.length; k++) { tokensAll += mask[k]; valSum += oldValues[k] * mask[k]; }
      const m: PpoMetrics = {
        step: step + 1, 'objective/scores': mean(scores), 'objective/kl': meanKl, 'objective/non_score_reward': -klCoef * meanKl,
        'objective/rlhf_reward': mean(scores) - klCoef * meanKl, 'objective/entropy': entropySum / Math.max(1, B),
        'policy/approxkl_avg': 0, 'policy/clipfrac_avg': 0, 'loss/policy_avg': 0, 'loss/value_avg': 0, 'val/clipfrac_avg': 0,
        'val/mean': valSum / Math.max(1, tokensAll), kl_coef: klCoef, 'completions/mean_length': mean(rs.map((r) => r.ids.length)),
        elapsed_seconds: elapsed0 + (performance.now() - t0) / 1000,
      };
      for (const [k, x] of Object.entries(sums)) (m as unknown as Record<string, number>)[k] = count ? x / count : 0;
      metrics.push(m);
      if (metricsFile) writeFileSync(metricsFile, JSON.stringify(m) + '\n', { flag: 'a' });
      (i.progress ?? ((mm, total) => log(`ppo batch ${mm.step}/${total} score ${mm['objective/scores'].toFixed(4)} | kl ${mm['objective/kl'].toFixed(4)} (β ${mm.kl_coef.toFixed(4)}) | rlhf reward ${mm['objective/rlhf_reward'].toFixed(4)} | len ${mm['completions/mean_length'].toFixed(1)} | ${mm.elapsed_seconds.toFixed(0)} s`)))(m, o.steps);
      updating = false;
      done = step + 1;
      if (o.checkpointEvery > 0 && done % o.checkpointEvery === 0 && done < o.steps) await save();
      // Let a signal (Ctrl-C) be handled between batches.
      if (i.signal) await yieldToEventLoop();
    }
    // A checkpoint when stopped, and at the end (--resume with more batches continues from it).
    await save();
  } catch (e) {
    opt.zeroGrad();
    // A batch that failed before its first update leaves the weights at a batch boundary: keep them.
    if (i.out && done > start && !updating) {
      await save();
      log(`ppo: saved a checkpoint after ${done} batches in ${i.out} (continue with --resume once the cause is fixed)`);
    }
    throw e;
  } finally {
    for (const t of Object.values(opt.stateDict().tensors)) t.dispose();
  }
  if (done < o.steps) return { metrics, step: done, steps: o.steps };
  if (i.out) {
    await saveModel(policy, i.out, { tokenizer: tok });
    await saveRewardModel(vm, path.join(i.out, 'value_model'), { tokenizer: tok });
    const pts = (k: keyof PpoMetrics): [number, number][] => metrics.map((m) => [m.step, m[k] as number]);
    writeFileAtomic(path.join(i.out, 'report.html'), `<!doctype html><html><head><meta charset="utf-8"><title>tslm rlhf ppo</title></head><body style="font-family:sans-serif">
<h1>tslm rlhf ppo</h1><div style="display:flex;flex-wrap:wrap;gap:12px">
${seriesSvg([{ name: 'objective/scores', points: pts('objective/scores') }, { name: 'objective/rlhf_reward', points: pts('objective/rlhf_reward') }], { title: 'Reward model score', yLabel: 'score' })}
${seriesSvg([{ name: 'objective/kl', points: pts('objective/kl') }], { title: 'KL to the reference (per response)', yLabel: 'nats' })}
${seriesSvg([{ name: 'loss/policy_avg', points: pts('loss/policy_avg') }, { name: 'loss/value_avg', points: pts('loss/value_avg') }], { title: 'Losses', yLabel: 'loss' })}
${seriesSvg([{ name: 'completions/mean_length', points: pts('completions/mean_length') }], { title: 'Response length', yLabel: 'tokens' })}
</div><pre>${JSON.stringify(o, null, 1)}</pre></body></html>
`);
  }
  return { metrics, step: done, steps: o.steps };
}
