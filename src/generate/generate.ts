// Autoregressive decoding with the model's decoding state (a KV cache, an SSM state): prefill
// the prompt(s), then one token per step through the logit-processor chain and a seeded
// sampler. Several prompts decode as one batch (left-padded). Stops at max tokens, a stop id,
// or a stop string (trimmed from the text).
import { Tensor } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { scope } from '../tensor/storage.js';
import { noGrad } from '../tensor/autograd.js';
import { Generator } from '../tensor/random.js';
import { H } from '../backend/heap.js';
import type { CausalLM, DecodeState } from '../models/causal.js';
import {
  FrequencyPresencePenalty, MinP, RepetitionPenalty, Temperature, TopK, TopP, TypicalP,
} from './processors.js';
import type { LogitsProcessor } from './processors.js';
import { argmaxOf, logSoftmaxOf, sampleFrom } from './sample.js';
import { newGeneration } from './stepped.js';
import type { SpeculativeOptions, SpeculativeStats } from './stepped.js';

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
  /** Also return the k most likely tokens (and log-probabilities) at each position. */
  topLogprobs?: number;
  /**
   * Speculative decoding of one prompt (stepped.ts: Medusa heads, …); the result's stats then
   * carry `speculative` (SpeculativeStats).
   */
  speculative?: SpeculativeOptions;
  /**
   * Classifier-free guidance (HF's guidance_scale with negative_prompt_ids; Chameleon and
   * Make-A-Scene draw images with it): the model also runs on `negative` (an unconditional or
   * negative prompt: one for every sequence, or one per sequence), fed the same generated
   * tokens, and each step's scores are s·(log p(·|prompt) − log p(·|negative)) + log p(·|negative)
   * before the processors. scale 1 is plain decoding. Costs a second forward per step. `when`
   * (optional) limits it to the steps where it holds for the sequence so far (Chameleon guides
   * only the tokens inside an image span); the negative prompt is fed every token either way.
   */
  guidance?: { scale: number; negative: number[] | number[][]; when?: (ids: readonly number[]) => boolean };
}

export interface GenerationResult {
  /** Generated ids per prompt (without the prompt and without the stop id). */
  ids: number[][];
  /** Decoded text per prompt when a tokenizer was given. */
  text: string[] | null;
  finishReason: ('length' | 'stop')[];
  logprobs: number[][] | null;
  /** Per sequence, per generated token: the topLogprobs most likely ids (unprocessed distribution). */
  topLogprobs?: { id: number; logprob: number }[][][] | null;
  stats: {
    promptTokens: number; prefillMs: number; decodeTokens: number; decodeMs: number; prefillTokensPerSecond: number; decodeTokensPerSecond: number;
    /** Speculative decoding (draft model, prompt lookup, Medusa): what was proposed and accepted. */
    speculative?: SpeculativeStats;
  };
}

export function buildProcessors(o: GenerateOptions, promptLen: number): { chain: LogitsProcessor[]; greedy: boolean } {
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

/** Generate continuations of one or several prompts (token ids); speculatively when opts.speculative says so. */
export function generate(model: CausalLM, prompts: number[] | number[][], opts: GenerateOptions = {}): GenerationResult {
  const g = newGeneration(model, prompts, opts);
  try {
    while (g.step());
  } finally {
    g.cancel();
  }
  return g.result();
}

/**
 * One sequence's decoding state: its processor chain, stop ids and strings, generated ids,
 * log-probabilities, text and streaming position. Generation (one batch) and DecodeBatch
 * (requests joining and leaving a running batch) drive it with the logits of each step.
 */
export class Sequence {
  /** Prompt and generated ids (extended in place: sequence-aware processors key on this array). */
  readonly ids: number[];
  readonly out: number[] = [];
  readonly lps: number[] = [];
  readonly tops: { id: number; logprob: number }[][] = [];
  done = false;
  finish: 'length' | 'stop' = 'length';
  /** The stop id that ended the sequence (not in `out`), if one did. */
  stopId: number | null = null;
  text = '';
  private emitted = 0;
  private cutByString = false;
  /** The step's raw logits and their log-normaliser, when the batch computed it (logprobs without the full log-softmax). */
  private rawLogits: Float32Array | null = null;
  private lse = NaN;
  private readonly chain: LogitsProcessor[];
  private readonly greedy: boolean;
  private readonly hooked: SequenceProcessor[];

  constructor(readonly index: number, readonly prompt: readonly number[], private readonly opts: GenerateOptions, private readonly stopIds: Set<number>, readonly maxNew: number) {
    ({ chain: this.chain, greedy: this.greedy } = buildProcessors(opts, prompt.length));
    this.ids = [...prompt];
    // Sequence-aware processors (grammar constraints) learn the sequence's prompt and budget.
    this.hooked = (opts.processors ?? []) as SequenceProcessor[];
    for (const p of this.hooked) p.begin?.(this.ids, Math.max(maxNew, 0));
  }

  /** Greedy decoding (temperature 0): the next token is the argmax of the processed logits. */
  get isGreedy(): boolean { return this.greedy; }

  /**
   * Pick the next token from this step's logits (changed in place by the processors). `lse`:
   * log Σ exp(logits), when the caller computed it for the batch (then a logprob needs no
   * log-softmax of the row here).
   */
  take(logits: Float32Array, g: Generator, lse?: number): number {
    const raw = this.process(logits, lse);
    return this.emit(this.greedy ? argmaxOf(logits) : sampleFrom(logits, g), raw);
  }

  /**
   * Apply the processor chain to this step's logits in place (for the sequence so far); returns
   * the unprocessed log-probabilities when logprobs are asked for (pass them to emit()).
   * Speculative decoding calls process() and emit() itself to choose the token in between.
   */
  process(logits: Float32Array, lse?: number): Float32Array | null {
    const { opts } = this;
    let raw: Float32Array | null = null;
    this.lse = NaN;
    if (opts.logprobs && !opts.topLogprobs && lse !== undefined) {
      // Keep the raw logits (the processors change them in place); emit() subtracts lse.
      if (this.rawLogits?.length !== logits.length) this.rawLogits = new Float32Array(logits.length);
      this.rawLogits.set(logits);
      this.lse = lse;
      raw = this.rawLogits;
    } else if (opts.logprobs || opts.topLogprobs) raw = logSoftmaxOf(logits);
    for (const p of this.chain) p.process(this.ids, logits);
    return raw;
  }

  /** Add the chosen token (a stop id ends the sequence instead); `raw` as process() returned it. */
  emit(id: number, raw: Float32Array | null): number {
    const { opts } = this;
    if (this.stopIds.has(id)) { this.done = true; this.finish = 'stop'; this.stopId = id; return id; }
    this.ids.push(id);
    this.out.push(id);
    if (raw && (opts.logprobs || opts.topLogprobs)) {
      this.lps.push(raw === this.rawLogits && !Number.isNaN(this.lse) ? raw[id] - this.lse : raw[id]);
      if (opts.topLogprobs) this.tops.push(topOf(raw, opts.topLogprobs));
    }
    let piece = '';
    const stops = opts.stopStrings ?? [];
    if (opts.tokenizer) {
      const full = opts.tokenizer.decode(this.out);
      // Text ending in an incomplete UTF-8 sequence (U+FFFD at the end) is not final yet.
      const stable = full.endsWith('\uFFFD') ? this.text : full;
      const hit = stops.map((s) => stable.indexOf(s)).filter((i) => i >= 0).sort((x, y) => x - y)[0];
      if (hit !== undefined) {
        this.text = stable.slice(0, hit);
        this.done = true;
        this.finish = 'stop';
        this.cutByString = true;
      } else this.text = stable;
      const safe = hit !== undefined ? this.text.length : this.text.length - heldBack(this.text, stops);
      piece = this.text.slice(this.emitted, Math.max(this.emitted, safe));
      this.emitted = Math.max(this.emitted, safe);
    }
    opts.onToken?.({ sequence: this.index, id, text: piece });
    // A constraint whose output is complete (nothing may follow) ends the sequence.
    if (!this.done && this.hooked.some((p) => p.isComplete?.(this.ids))) { this.done = true; this.finish = 'stop'; }
    if (!this.done && this.out.length >= this.maxNew) this.done = true;
    return id;
  }

  /**
   * The sequence is over: its full decoded text (a trailing partial UTF-8 sequence included,
   * unless a stop string cut it), and, when streaming, what was held back (an event with id −1).
   */
  close(flush = true): void {
    this.done = true;
    const { opts } = this;
    if (!opts.tokenizer) return;
    if (!this.cutByString) this.text = opts.tokenizer.decode(this.out);
    if (flush && opts.onToken && this.text.length > this.emitted) opts.onToken({ sequence: this.index, id: -1, text: this.text.slice(this.emitted) });
    this.emitted = this.text.length;
  }
}

/** Shared checks and settings of a generation request. */
export function prepareRequest(model: CausalLM, prompts: number[] | number[][], opts: GenerateOptions): { batch: number[][]; maxLen: number; maxNew: number; stopIds: Set<number> } {
  const batch: number[][] = Array.isArray(prompts[0]) ? (prompts as number[][]) : [prompts as number[]];
  const V = model.config.vocab_size;
  for (const [b, p] of batch.entries()) {
    if (p.length === 0) throw new RangeError(`generate: prompt ${b} is empty (start from the BOS id)`);
    for (const id of p) if (!Number.isInteger(id) || id < 0 || id >= V) throw new RangeError(`generate: prompt ${b} has token id ${id} outside [0, ${V})`);
  }
  if (opts.stopStrings?.length && !opts.tokenizer) throw new Error('generate: stop strings need a tokenizer');
  const maxLen = Math.max(...batch.map((p) => p.length));
  const maxNew = Math.min(opts.maxNewTokens ?? 128, model.contextLength - maxLen);
  if (maxNew < 0) throw new RangeError(`generate: prompt of ${maxLen} tokens exceeds the model's context of ${model.contextLength} positions`);
  return { batch, maxLen, maxNew, stopIds: new Set(opts.stopIds ?? model.config.eos_token_id ?? []) };
}

/** The result of a set of sequences. */
export function resultOf(seqs: Sequence[], opts: GenerateOptions, t: { prefillMs: number; decodeMs: number }): GenerationResult {
  const promptTokens = seqs.reduce((s, q) => s + q.prompt.length, 0);
  const decodeTokens = seqs.reduce((s, q) => s + q.out.length, 0);
  const { prefillMs, decodeMs } = t;
  return {
    ids: seqs.map((q) => q.out),
    text: opts.tokenizer ? seqs.map((q) => q.text) : null,
    finishReason: seqs.map((q) => q.finish),
    logprobs: opts.logprobs || opts.topLogprobs ? seqs.map((q) => q.lps) : null,
    topLogprobs: opts.topLogprobs ? seqs.map((q) => q.tops) : null,
    stats: {
      promptTokens, prefillMs, decodeTokens, decodeMs,
      prefillTokensPerSecond: promptTokens / (prefillMs / 1000),
      decodeTokensPerSecond: decodeTokens / (decodeMs / 1000),
    },
  };
}

/**
 * A generation advanced one step at a time, for callers that interleave several (a server): the
 * first step() runs the prefill, each later one picks a token for every running sequence and
 * runs the model once. step() returns false once every sequence has finished; cancel() stops it
 * early and frees the decoding state. generate() is `while (g.step());`.
 */
export class Generation {
  readonly batchSize: number;
  /** Tokens each sequence may still add at most (after the prompt-length cap). */
  readonly maxNewTokens: number;
  readonly sequences: Sequence[];
  private readonly batch: number[][];
  private readonly V: number;
  private readonly g: Generator;
  private readonly padLeft: number[];
  private readonly maxLen: number;
  private decoding: DecodeState | null = null;
  private last: Float32Array[] | null = null;
  /** Classifier-free guidance: the negative prompts (padded like the batch), their state, last logits and their log Σ exp. */
  private readonly guide: (PreparedGuidance & { state: DecodeState | null; last: Float32Array[] | null; lse: Float32Array | null }) | null;
  /** log Σ exp of each row's logits (when logprobs are asked for). */
  private lastLse: Float32Array | null = null;
  private state: 'new' | 'running' | 'finished' | 'cancelled' = 'new';
  private prefillMs = 0;
  private decodeMs = 0;

  constructor(private readonly model: CausalLM, prompts: number[] | number[][], private readonly opts: GenerateOptions = {}) {
    const { batch, maxLen, maxNew, stopIds } = prepareRequest(model, prompts, opts);
    this.batch = batch;
    this.batchSize = batch.length;
    this.V = model.config.vocab_size;
    this.maxLen = maxLen;
    this.maxNewTokens = maxNew;
    this.g = new Generator(opts.seed ?? 0);
    this.padLeft = batch.map((p) => maxLen - p.length);
    this.sequences = batch.map((p, b) => new Sequence(b, p, opts, stopIds, maxNew));
    const gd = prepareGuidance(model, batch, maxNew, opts);
    this.guide = gd && { ...gd, state: null, last: null, lse: null };
  }

  /**
   * Classifier-free guidance of the cond rows in `last` by the negative rows (as HF's
   * UnbatchedClassifierFreeGuidanceLogitsProcessor). `lastLse` and the guide's `lse` hold both
   * rows' log Σ exp (the batch's wasm reduction); a guided row's is recomputed when logprobs are
   * asked for, and dropped otherwise.
   */
  private guideRows(): void {
    const gd = this.guide!, s = gd.scale, lse = this.lastLse!, ulse = gd.lse!;
    for (let b = 0; b < this.batchSize; b++) {
      const q = this.sequences[b];
      if (q.done || (gd.when && !gd.when(q.ids))) continue;
      guideRow(this.last![b], gd.last![b], lse[b], ulse[b], s);
      if (this.opts.logprobs) lse[b] = logSumExp(this.last![b]);
    }
    if (!this.opts.logprobs) this.lastLse = null;
  }

  /** Advance by one model call (the prefill, or one token per running sequence). */
  step(): boolean {
    if (this.state === 'finished' || this.state === 'cancelled') return false;
    const { model, batch, V } = this;
    const B = this.batchSize;
    if (this.state === 'new') {
      this.state = 'running';
      this.decoding = model.newState(B, this.maxLen + Math.max(this.maxNewTokens, 0));
      const t0 = performance.now();
      const { maxLen, padLeft, decoding } = this;
      // Prefill: the padded prompts, logits of the last position only.
      this.last = noGrad(() => scope(() => {
        const ids = T.tensor(batch.map((p, b) => [...new Array(padLeft[b]).fill(0), ...p]), [B, maxLen], 'i32');
        const logits = T.contiguous(model.forward(ids, decoding, { padLeft, lastOnly: true }));
        this.lastLse = this.opts.logprobs || this.guide ? logNormalisers(logits, B, V) : null;
        return rowsOf(logits, B, V);
      }));
      const gd = this.guide;
      if (gd) {
        gd.state = model.newState(B, gd.maxLen + Math.max(this.maxNewTokens, 0));
        gd.last = noGrad(() => scope(() => {
          const ids = T.tensor(gd.batch.map((p, b) => [...new Array(gd.padLeft[b]).fill(0), ...p]), [B, gd.maxLen], 'i32');
          const logits = T.contiguous(model.forward(ids, gd.state!, { padLeft: gd.padLeft, lastOnly: true }));
          gd.lse = logNormalisers(logits, B, V);
          return rowsOf(logits, B, V);
        }));
        this.guideRows();
      }
      this.prefillMs = performance.now() - t0;
      if (this.maxNewTokens <= 0) this.end();
      return this.state === 'running';
    }
    const t1 = performance.now();
    const next = this.sequences.map((q, b) => (q.done ? 0 : q.take(this.last![b], this.g, this.lastLse?.[b])));
    if (this.sequences.every((q) => q.done)) {
      this.decodeMs += performance.now() - t1;
      this.end();
      return false;
    }
    const { decoding, padLeft } = this;
    this.last = noGrad(() => scope(() => {
      const logits = T.contiguous(model.forward(T.tensor(next.map((x) => [x]), [B, 1], 'i32'), decoding, { padLeft }));
      this.lastLse = this.opts.logprobs || this.guide ? logNormalisers(logits, B, V) : null;
      return rowsOf(logits, B, V, this.last!);
    }));
    const gd = this.guide;
    if (gd) {
      gd.last = noGrad(() => scope(() => {
        const logits = T.contiguous(model.forward(T.tensor(next.map((x) => [x]), [B, 1], 'i32'), gd.state!, { padLeft: gd.padLeft }));
        gd.lse = logNormalisers(logits, B, V);
        return rowsOf(logits, B, V, gd.last!);
      }));
      this.guideRows();
    }
    this.decodeMs += performance.now() - t1;
    return true;
  }

  private end(): void {
    this.state = 'finished';
    this.release();
    for (const q of this.sequences) q.close();
  }

  private release(): void {
    this.decoding?.dispose();
    this.decoding = null;
    this.last = null;
    if (this.guide) {
      this.guide.state?.dispose();
      this.guide.state = null;
      this.guide.last = null;
      this.guide.lse = null;
    }
  }

  /** Stop now (a client went away) and free the decoding state; result() then reports what was made. */
  cancel(): void {
    if (this.state === 'finished' || this.state === 'cancelled') return;
    this.state = 'cancelled';
    this.release();
    for (const q of this.sequences) q.close(false);
  }

  result(): GenerationResult {
    return resultOf(this.sequences, this.opts, { prefillMs: this.prefillMs, decodeMs: this.decodeMs });
  }
}

/** A request's classifier-free guidance, checked: the negative prompts (one per sequence), padded to the longest. */
export interface PreparedGuidance { scale: number; batch: number[][]; maxLen: number; padLeft: number[]; when?: (ids: readonly number[]) => boolean }

/** `opts.guidance` checked against the model and the request (null when absent or a scale of 1, which changes nothing). */
export function prepareGuidance(model: CausalLM, batch: number[][], maxNew: number, opts: GenerateOptions): PreparedGuidance | null {
  const gd = opts.guidance;
  if (!gd || gd.scale === 1) return null;
  if (!(Number.isFinite(gd.scale) && gd.scale >= 0)) throw new RangeError(`generate: guidance scale must be a finite number ≥ 0, got ${gd.scale}`);
  const neg = gd.negative.length && Array.isArray(gd.negative[0]) ? (gd.negative as number[][]) : batch.map(() => gd.negative as number[]);
  if (neg.length !== batch.length) throw new RangeError(`generate: guidance has ${neg.length} negative prompts for ${batch.length} sequences (give one, or one per sequence)`);
  const V = model.config.vocab_size;
  for (const [b, p] of neg.entries()) {
    if (p.length === 0) throw new RangeError(`generate: guidance's negative prompt ${b} is empty (an unconditional prompt is the BOS id alone)`);
    for (const id of p) if (!Number.isInteger(id) || id < 0 || id >= V) throw new RangeError(`generate: guidance's negative prompt ${b} has token id ${id} outside [0, ${V})`);
  }
  const nMax = Math.max(...neg.map((p) => p.length));
  if (nMax + maxNew > model.contextLength) throw new RangeError(`generate: guidance's negative prompt of ${nMax} tokens and ${maxNew} new tokens exceed the model's context of ${model.contextLength} positions`);
  return { scale: gd.scale, batch: neg, maxLen: nMax, padLeft: neg.map((p) => nMax - p.length), when: gd.when };
}

/**
 * Guide one row in place: c ← s·(log p(·|prompt) − log p(·|negative)) + log p(·|negative), from
 * the prompt's logits c and the negative's u and their log Σ exp lc and lu.
 */
export function guideRow(c: Float32Array, u: Float32Array, lc: number, lu: number, s: number): void {
  for (let i = 0; i < c.length; i++) {
    const un = u[i] - lu;
    c[i] = s * (c[i] - lc - un) + un;
  }
}

/** log Σ exp of a row of logits (the largest taken out first). */
export function logSumExp(x: Float32Array): number {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i] > m) m = x[i];
  if (m === -Infinity) return m;
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.exp(x[i] - m);
  return m + Math.log(s);
}

/** The k most likely ids of a log-probability row, most likely first. */
function topOf(lp: Float32Array, k: number): { id: number; logprob: number }[] {
  const best: { id: number; logprob: number }[] = [];
  for (let i = 0; i < lp.length; i++) {
    const v = lp[i];
    if (best.length === k && !(v > best[k - 1].logprob)) continue;
    if (best.length < k) best.push({ id: i, logprob: v });
    else best[k - 1] = { id: i, logprob: v };
    for (let j = best.length - 1; j > 0 && best[j - 1].logprob < best[j].logprob; j--) [best[j - 1], best[j]] = [best[j], best[j - 1]];
  }
  return best;
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
/** log Σ exp over each of the B rows of V logits (the wasm reduction: one pass for the batch, on the threads). */
export function logNormalisers(logits: Tensor, B: number, V: number): Float32Array {
  return T.logsumexp(T.reshape(T.contiguous(logits), [B, V]), -1).data() as Float32Array;
}

export function rowsOf(logits: Tensor, B: number, V: number, into?: Float32Array[]): Float32Array[] {
  const p = logits.ptr >>> 2;
  const out = into ?? Array.from({ length: B }, () => new Float32Array(V));
  for (let b = 0; b < B; b++) out[b].set(H.f32.subarray(p + b * V, p + (b + 1) * V));
  return out;
}
