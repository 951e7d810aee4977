// Rollouts for policy optimisation: G sampled completions per prompt from the policy, decoded
// together with continuous batching (generate/batch.ts: finished rows leave, waiting prompts take
// their place), seeded per prompt, with each sampled token's log-probability, stopping at EOS or
// after a stop tag (kept in the completion: "</answer>" is part of the format), truncation flagged.
import type { CausalLM } from '../models/causal.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { DecodeBatch } from '../generate/batch.js';
import type { SequenceProcessor } from '../generate/generate.js';

export interface RolloutOptions {
  /** Completions per prompt (G). */
  groupSize: number;
  maxNewTokens: number;
  /** Sampling temperature; 0 decodes greedily (evaluation). */
  temperature: number;
  topP?: number;
  topK?: number;
  /** Seed of the step: prompt i draws from seed·1000003 + i (so a rollout is reproducible alone). */
  seed: number;
  /** Text that ends a completion and stays in it (e.g. "</answer>"). */
  stopTags?: string[];
  /** Token ids that end a completion (not kept); default the tokenizer's EOS. */
  stopIds?: number[];
  /** Rows decoded together (default 64). */
  maxRows?: number;
}

export interface Rollout {
  /** Index of the prompt in the call's prompt list. */
  prompt: number;
  /** The completion's token ids (a stop id excluded: see stopId). */
  ids: number[];
  /** The stop id the policy chose to end the completion (an action to train on), or null. */
  stopId: number | null;
  text: string;
  /** Log-probability of each sampled token under the model's own distribution (temperature 1, no truncation). */
  logprobs: number[];
  /** Ended by neither a stop id nor a stop tag: cut at maxNewTokens (or the model's context). */
  truncated: boolean;
}

/**
 * Ends a sequence once its completion's text contains a stop tag. One instance serves every
 * sequence of a request: it keys each sequence by its ids array (which generation extends in place).
 */
export class StopTags implements SequenceProcessor {
  private readonly start = new WeakMap<readonly number[], number>();
  private readonly longest: number;
  /** Printable-ASCII last characters of the tags: a token whose vocabulary text lacks all of them cannot complete one. */
  private readonly lastChars: string[] | null;
  private readonly canEnd = new Map<number, boolean>();
  constructor(private readonly tok: Tokenizer, private readonly tags: string[]) {
    this.longest = Math.max(...tags.map((t) => t.length));
    const last = tags.map((t) => t.at(-1) ?? '');
    this.lastChars = last.every((c) => c >= '!' && c <= '~') ? [...new Set(last)] : null;
  }
  process(): void {}
  begin(ids: readonly number[]): void { this.start.set(ids, ids.length); }
  isComplete(ids: readonly number[]): boolean {
    const s = this.start.get(ids) ?? 0;
    if (ids.length <= s) return false;
    const id = ids[ids.length - 1];
    if (this.lastChars) {
      let may = this.canEnd.get(id);
      if (may === undefined) {
        const text = this.tok.idToToken(id);
        may = text === undefined || this.lastChars.some((c) => text.includes(c));
        this.canEnd.set(id, may);
      }
      if (!may) return false;
    }
    // Only the tail can hold a new tag: decode the last few tokens (a tag is at most ~one token per byte).
    const tail = this.tok.decode(ids.slice(Math.max(s, ids.length - this.longest - 2)));
    return this.tags.some((t) => tail.includes(t));
  }
}

/** G completions of each prompt (token ids) with their log-probabilities. */
export function rollout(model: CausalLM, tok: Tokenizer, prompts: number[][], o: RolloutOptions): Rollout[] {
  if (!(o.groupSize >= 1)) throw new RangeError(`rollout: groupSize must be ≥ 1, got ${o.groupSize}`);
  if (!(o.temperature >= 0)) throw new RangeError(`rollout: temperature must be ≥ 0 (0: greedy), got ${o.temperature}`);
  const was = model.training;
  model.eval();
  const batch = new DecodeBatch(model, Math.max(o.groupSize, o.maxRows ?? 64));
  const stop = o.stopTags?.length ? new StopTags(tok, o.stopTags) : null;
  const stopIds = o.stopIds ?? (tok.eosId !== null ? [tok.eosId] : undefined);
  const t = o.temperature;
  try {
    const reqs = prompts.map((p, i) => batch.add(Array.from({ length: o.groupSize }, () => p), {
      maxNewTokens: o.maxNewTokens, temperature: t, topP: o.topP, topK: o.topK, seed: o.seed * 1000003 + i,
      // No tokenizer here: generation would re-decode each sequence at every token; the stop
      // tags decode only the tail, and the text is decoded once at the end.
      stopIds, processors: stop ? [stop] : [], logprobs: true,
    }));
    while (batch.step());
    const out: Rollout[] = [];
    reqs.forEach((req, i) => {
      if (req.error) throw req.error;
      const r = req.result();
      for (let k = 0; k < o.groupSize; k++) {
        out.push({ prompt: i, ids: r.ids[k], stopId: req.sequences[k].stopId, text: tok.decode(r.ids[k]), logprobs: r.logprobs![k], truncated: r.finishReason[k] === 'length' });
      }
    });
    return out;
  } finally {
    batch.dispose();
    model.train(was);
  }
}
