// Rejection-sampling fine-tuning, LLaMA 2-Chat's rounds: N samples per prompt from the policy,
// each scored by a reward model (or a verifiable reward of rewards.ts), the best of each prompt
// kept (when it scores at least minScore), then supervised fine-tuning on the kept (prompt, best
// completion) pairs, loss on the completion only. Each round samples from the policy the last
// round fine-tuned.
import type { CausalLM } from '../models/causal.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { sftTrain } from '../sft/train.js';
import type { SftExample, } from '../sft/data.js';
import type { SftOptions } from '../sft/train.js';
import { rollout } from './rollout.js';
import type { Rollout } from './rollout.js';
import { promptTokens } from './data.js';
import type { PromptRow } from './data.js';
import type { RewardFunction } from './rewards.js';
import type { RewardModel } from './reward_model.js';
import { withDefaults } from '../train/options.js';

/** Scores completions (one number per rollout; larger is better). */
export interface Scorer {
  readonly name: string;
  score(rows: PromptRow[], prompts: number[][], rollouts: Rollout[]): Promise<number[]>;
}

/** A reward model's score of prompt + completion (the tokens the policy produced, its stop id excluded). */
export function rewardModelScorer(rm: RewardModel, name = 'reward model'): Scorer {
  return {
    name,
    score: async (_rows, prompts, rs) => Array.from(rm.scoreSequences(rs.map((r) => [...prompts[r.prompt], ...r.ids]))),
  };
}

/** A verifiable reward (rewards.ts: math, code, format, a module, a weighted sum): its total. */
export function verifierScorer(reward: RewardFunction): Scorer {
  return {
    name: reward.name,
    score: (rows, _prompts, rs) => reward.score(rs.map((r) => ({ prompt: rows[r.prompt].prompt, completion: r.text, row: rows[r.prompt].row, truncated: r.truncated, completionTokens: r.ids.length }))),
  };
}

export interface RejectionOptions {
  rounds: number;
  /** Samples per prompt (N). */
  samples: number;
  maxNewTokens: number;
  temperature: number;
  topP?: number;
  stopTags: string[];
  /** A best sample scoring below this is not kept. */
  minScore: number;
  seed: number;
  /** The fine-tuning of each round (steps default: two epochs over the kept samples). */
  sft: Partial<SftOptions>;
}

export const DEFAULT_REJECTION_OPTIONS: RejectionOptions = {
  rounds: 1, samples: 8, maxNewTokens: 64, temperature: 1, stopTags: [], minScore: -Infinity, seed: 0, sft: { lr: 1e-4, batchSize: 8, warmupSteps: 0, minLrRatio: 1 },
};

export interface RejectionRound {
  round: number;
  /** Mean score of all samples, and of each prompt's best. */
  meanScore: number;
  meanBest: number;
  kept: number;
  sftSteps: number;
  /** Mean SFT loss of the round's last 10 steps. */
  sftLoss: number;
  seconds: number;
}

export interface KeptSample { round: number; prompt: string; completion: string; score: number }

export async function rejectionSampling(i: {
  model: CausalLM; tokenizer: Tokenizer; prompts: PromptRow[]; scorer: Scorer; options?: Partial<RejectionOptions>; log?: (line: string) => void;
}): Promise<{ rounds: RejectionRound[]; kept: KeptSample[] }> {
  const o: RejectionOptions = withDefaults(DEFAULT_REJECTION_OPTIONS, i.options);
  if (!Number.isInteger(o.samples) || o.samples < 1) throw new RangeError(`rejection sampling: samples must be a positive integer, got ${o.samples}`);
  if (!Number.isInteger(o.rounds) || o.rounds < 1) throw new RangeError(`rejection sampling: rounds must be a positive integer, got ${o.rounds}`);
  if (!i.prompts.length) throw new RangeError('rejection sampling: no prompts');
  const { model, tokenizer: tok } = i;
  const log = i.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const prompts = i.prompts.map((r) => promptTokens(tok, r.prompt));
  const rounds: RejectionRound[] = [];
  const kept: KeptSample[] = [];
  for (let round = 1; round <= o.rounds; round++) {
    const t0 = performance.now();
    const rs = rollout(model, tok, prompts, { groupSize: o.samples, maxNewTokens: o.maxNewTokens, temperature: o.temperature, topP: o.topP, seed: o.seed * 1009 + round, stopTags: o.stopTags });
    const scores = await i.scorer.score(i.prompts, prompts, rs);
    const bad = scores.findIndex((s) => !Number.isFinite(s));
    if (bad >= 0) throw new RangeError(`rejection sampling: ${i.scorer.name} scored sample ${bad} of ${i.prompts[rs[bad].prompt].where} ${scores[bad]}`);
    const examples: SftExample[] = [];
    let bestSum = 0;
    for (let p = 0; p < prompts.length; p++) {
      let best = p * o.samples;
      for (let k = best + 1; k < (p + 1) * o.samples; k++) if (scores[k] > scores[best]) best = k;
      bestSum += scores[best];
      if (scores[best] < o.minScore) continue;
      const r = rs[best];
      const completion = r.stopId !== null ? [...r.ids, r.stopId] : r.ids;
      examples.push({ ids: [...prompts[p], ...completion], labels: [...prompts[p].map(() => -100), ...completion] });
      kept.push({ round, prompt: i.prompts[p].prompt, completion: r.text, score: scores[best] });
    }
    const meanScore = scores.reduce((s, x) => s + x, 0) / scores.length, meanBest = bestSum / prompts.length;
    let sftSteps = 0, sftLoss = NaN;
    if (examples.length) {
      const batchSize = o.sft.batchSize ?? 8;
      sftSteps = o.sft.steps ?? Math.max(1, Math.ceil((2 * examples.length) / batchSize));
      const steps = sftTrain(model, examples, { ...o.sft, steps: sftSteps, batchSize, seed: o.seed * 1009 + round, padId: tok.eosId ?? 0 });
      const tail = steps.slice(-10);
      sftLoss = tail.reduce((s, x) => s + x.loss, 0) / tail.length;
    }
    const r: RejectionRound = { round, meanScore, meanBest, kept: examples.length, sftSteps, sftLoss, seconds: (performance.now() - t0) / 1000 };
    rounds.push(r);
    log(`round ${round}/${o.rounds}: ${rs.length} samples, mean ${i.scorer.name} score ${meanScore.toFixed(4)}, best of ${o.samples} ${meanBest.toFixed(4)}; kept ${examples.length} of ${prompts.length}; SFT ${sftSteps} steps, loss ${sftLoss.toFixed(4)} (${r.seconds.toFixed(1)} s)`);
  }
  return { rounds, kept };
}
