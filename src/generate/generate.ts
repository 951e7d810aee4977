// Autoregressive decoding with a KV cache: prefill the prompt(s), then one token per step
// through the logit-processor chain and a seeded sampler. Several prompts decode as one batch
// (left-padded). Stops at max tokens, a stop id, or a stop string (trimmed from the text).
import { Tensor } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { scope } from '../tensor/storage.js';
import { noGrad } from '../tensor/autograd.js';
import { Generator } from '../tensor/random.js';
import { H } from '../backend/heap.js';
import type { KVCache } from '../models/llama.js';
import {
  FrequencyPresencePenalty, MinP, RepetitionPenalty, Temperature, TopK, TopP, TypicalP,
} from './processors.js';
import type { LogitsProcessor } from './processors.js';
import { argmaxOf, logSoftmaxOf, sampleFrom } from './sample.js';

/** What generation needs from a model. */
export interface CausalLM {
  config: { vocab_size: number; max_position_embeddings: number; eos_token_id: number[] | null; bos_token_id: number | null };
  forward(ids: Tensor, cache: KVCache | null, opts?: { padLeft?: number[]; lastOnly?: boolean }): Tensor;
  newCache(batch: number, maxLength?: number): KVCache;
}

/**
 * A processor that follows sequences (a grammar constraint): `begin` is called once per sequence
 * with its prompt ids (the array later calls receive, extended in place) and the token budget;
 * `isComplete` after each token ends the sequence when it returns true.
 */
export interface SequenceProcessor extends LogitsProcessor {
  begin?(ids: readonly number[], maxNewTokens: number): void;
  isComplete?(ids: readonly number[]): boolean;
}

/** What generation needs from a tokenizer (stop strings, streaming text). */
export interface TextDecoder_ {
  decode(ids: number[]): string;
}

export interface GenerateOptions {
  maxNewTokens?: number;
  /** 0 = greedy (the default); otherwise sample at this temperature. */
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  typicalP?: number;
  repetitionPenalty?: number;
  frequencyPenalty?: number;
  presencePenalty?: number;
  seed?: number;
  /** Token ids that end a sequence (default: the model's eos_token_id). Not included in the output. */
  stopIds?: number[];
  /** Strings that end a sequence; the text is cut before them (needs a tokenizer). */
  stopStrings?: string[];
  tokenizer?: TextDecoder_;
  /** Extra processors, applied after the penalties and before temperature/truncation. */
  processors?: LogitsProcessor[];
  /**
   * Called for each new token of each sequence (streaming). `text` is the new text when a
   * tokenizer is given; text that may be the start of a stop string, or an incomplete UTF-8
   * sequence, is held back, and released by a final event with id −1 when the sequence ends.
   */
  onToken?: (ev: { sequence: number; id: number; text: string }) => void;
  /** Return the log-probability of each chosen token (from the unprocessed distribution). */
  logprobs?: boolean;
}

export interface GenerationResult {
  /** Generated ids per prompt (without the prompt and without the stop id). */
  ids: number[][];
  /** Decoded text per prompt when a tokenizer was given. */
  text: string[] | null;
  finishReason: ('length' | 'stop')[];
  logprobs: number[][] | null;
  stats: { promptTokens: number; prefillMs: number; decodeTokens: number; decodeMs: number; prefillTokensPerSecond: number; decodeTokensPerSecond: number };
}

function buildProcessors(o: GenerateOptions, promptLen: number): { chain: LogitsProcessor[]; greedy: boolean } {
  const chain: LogitsProcessor[] = [];
  if (o.repetitionPenalty !== undefined && o.repetitionPenalty !== 1) chain.push(new RepetitionPenalty(o.repetitionPenalty));
  if (o.frequencyPenalty || o.presencePenalty) chain.push(new FrequencyPresencePenalty(o.frequencyPenalty ?? 0, o.presencePenalty ?? 0, promptLen));
  chain.push(...(o.processors ?? []));
  const greedy = !o.temperature;
  if (!greedy) {
    chain.push(new Temperature(o.temperature!));
    if (o.topK) chain.push(new TopK(o.topK));
    if (o.topP !== undefined && o.topP < 1) chain.push(new TopP(o.topP));
    if (o.minP) chain.push(new MinP(o.minP));
    if (o.typicalP !== undefined && o.typicalP < 1) chain.push(new TypicalP(o.typicalP));
  }
  return { chain, greedy };
}

/** Generate continuations of one or several prompts (token ids). */
export function generate(model: CausalLM, prompts: number[] | number[][], opts: GenerateOptions = {}): GenerationResult {
  const batch: number[][] = Array.isArray(prompts[0]) ? (prompts as number[][]) : [prompts as number[]];
  const B = batch.length;
  const V = model.config.vocab_size;
  for (const [b, p] of batch.entries()) {
    if (p.length === 0) throw new RangeError(`generate: prompt ${b} is empty (start from the BOS id)`);
    for (const id of p) if (!Number.isInteger(id) || id < 0 || id >= V) throw new RangeError(`generate: prompt ${b} has token id ${id} outside [0, ${V})`);
  }
  if (opts.stopStrings?.length && !opts.tokenizer) throw new Error('generate: stop strings need a tokenizer');
  const maxLen = Math.max(...batch.map((p) => p.length));
  const maxNew = Math.min(opts.maxNewTokens ?? 128, model.config.max_position_embeddings - maxLen);
  if (maxNew < 0) throw new RangeError(`generate: prompt of ${maxLen} tokens exceeds max_position_embeddings ${model.config.max_position_embeddings}`);
  const stopIds = new Set(opts.stopIds ?? model.config.eos_token_id ?? []);
  const g = new Generator(opts.seed ?? 0);
  const procs = batch.map((p) => buildProcessors(opts, p.length));
  const padLeft = batch.map((p) => maxLen - p.length);
  const seqs = batch.map((p) => [...p]);
  // Sequence-aware processors (grammar constraints) learn each sequence's prompt and budget.
  const hooked = (opts.processors ?? []) as SequenceProcessor[];
  for (const p of hooked) if (p.begin) for (const seq of seqs) p.begin(seq, Math.max(maxNew, 0));
  const out: number[][] = batch.map(() => []);
  const lps: number[][] = batch.map(() => []);
  const done = batch.map(() => false);
  const finish: ('length' | 'stop')[] = batch.map(() => 'length');
  const texts = batch.map(() => '');
  const emitted = batch.map(() => 0);
  const cutByString = batch.map(() => false);
  const stops = opts.stopStrings ?? [];
  const cache = model.newCache(B, maxLen + Math.max(maxNew, 0));
  const t0 = performance.now();
  let prefillMs = 0, decodeTokens = 0;
  try {
    // Prefill: the padded prompts, logits of the last position only.
    let last = noGrad(() => scope(() => {
      const ids = T.tensor(batch.map((p, b) => [...new Array(padLeft[b]).fill(0), ...p]), [B, maxLen], 'i32');
      return rowsOf(T.contiguous(model.forward(ids, cache, { padLeft, lastOnly: true })), B, V);
    }));
    prefillMs = performance.now() - t0;
    for (let step = 0; step < maxNew; step++) {
      const next: number[] = [];
      for (let b = 0; b < B; b++) {
        if (done[b]) { next.push(0); continue; }
        const logits = last[b];
        const raw = opts.logprobs ? logSoftmaxOf(logits) : null;
        const { chain, greedy } = procs[b];
        for (const p of chain) p.process(seqs[b], logits);
        const id = greedy ? argmaxOf(logits) : sampleFrom(logits, g);
        next.push(id);
        if (stopIds.has(id)) { done[b] = true; finish[b] = 'stop'; continue; }
        seqs[b].push(id);
        out[b].push(id);
        if (raw) lps[b].push(raw[id]);
        decodeTokens++;
        let piece = '';
        if (opts.tokenizer) {
          const full = opts.tokenizer.decode(out[b]);
          // Text ending in an incomplete UTF-8 sequence (U+FFFD at the end) is not final yet.
          const stable = full.endsWith('\uFFFD') ? texts[b] : full;
          const hit = stops.map((s) => stable.indexOf(s)).filter((i) => i >= 0).sort((x, y) => x - y)[0];
          if (hit !== undefined) {
            texts[b] = stable.slice(0, hit);
            done[b] = true;
            finish[b] = 'stop';
            cutByString[b] = true;
          } else texts[b] = stable;
          const safe = hit !== undefined ? texts[b].length : texts[b].length - heldBack(texts[b], stops);
          piece = texts[b].slice(emitted[b], Math.max(emitted[b], safe));
          emitted[b] = Math.max(emitted[b], safe);
        }
        opts.onToken?.({ sequence: b, id, text: piece });
        // A constraint whose output is complete (nothing may follow) ends the sequence.
        if (!done[b] && hooked.some((p) => p.isComplete?.(seqs[b]))) { done[b] = true; finish[b] = 'stop'; }
      }
      if (done.every(Boolean) || step === maxNew - 1) break;
      last = noGrad(() => scope(() => rowsOf(model.forward(T.tensor(next.map((x) => [x]), [B, 1], 'i32'), cache, { padLeft }), B, V, last)));
    }
  } finally {
    cache.dispose();
  }
  const total = performance.now() - t0, decodeMs = total - prefillMs;
  const promptTokens = batch.reduce((s, p) => s + p.length, 0);
  // Sequences not cut by a stop string get their full decoded text (a trailing partial UTF-8
  // sequence included); streaming consumers get what was held back.
  if (opts.tokenizer) {
    for (let b = 0; b < B; b++) {
      if (!cutByString[b]) texts[b] = opts.tokenizer.decode(out[b]);
      if (opts.onToken && texts[b].length > emitted[b]) opts.onToken({ sequence: b, id: -1, text: texts[b].slice(emitted[b]) });
    }
  }
  return {
    ids: out,
    text: opts.tokenizer ? texts : null,
    finishReason: finish,
    logprobs: opts.logprobs ? lps : null,
    stats: {
      promptTokens, prefillMs, decodeTokens, decodeMs,
      prefillTokensPerSecond: promptTokens / (prefillMs / 1000),
      decodeTokensPerSecond: decodeTokens / (decodeMs / 1000),
    },
  };
}

/** Length of the longest suffix of text that is a proper prefix of a stop string. */
function heldBack(text: string, stops: string[]): number {
  let best = 0;
  for (const s of stops) {
    for (let n = Math.min(s.length - 1, text.length); n > best; n--) {
      if (text.endsWith(s.slice(0, n))) { best = n; break; }
    }
  }
  return best;
}

/** Copy the logits (B, 1, V) out of the heap as one Float32Array per row (into `into` when given). */
function rowsOf(logits: Tensor, B: number, V: number, into?: Float32Array[]): Float32Array[] {
  const p = logits.ptr >> 2;
  const out = into ?? Array.from({ length: B }, () => new Float32Array(V));
  for (let b = 0; b < B; b++) out[b].set(H.f32.subarray(p + b * V, p + (b + 1) * V));
  return out;
}
