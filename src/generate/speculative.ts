// Chain speculative decoding: something cheap proposes the next few tokens, the target model
// checks them all in one forward pass (the proposals appended to the last token), the longest
// acceptable prefix is kept plus one token of the target's own (a correction, or a bonus when
// every proposal was accepted), and the decoding states roll back over the rest (truncate()).
//
//   draft model   a smaller model of the same vocabulary proposes numDraft tokens, one at a time
//                 (Leviathan et al. 2023, Chen et al. 2023; HF "assisted generation")
//   prompt lookup the tokens that followed an earlier occurrence of the last n tokens in the
//                 prompt + output (HF prompt_lookup_num_tokens / max_matching_ngram_size)
//
// Greedy: a proposal is accepted when it is the target's argmax (after the processors), so the
// output is plain greedy decoding's, token for token. Sampling: the speculative-sampling rule —
// proposal x drawn from q is accepted with probability min(1, p(x)/q(x)), and on rejection a token
// is drawn from norm(max(0, p − q)); a bonus token is drawn from p — which makes every emitted
// token a draw from the target's processed distribution p whatever q is (prompt lookup: q is a
// point mass on the copied token, so x is accepted with probability p(x) and the residual is p
// without x). p is the target's distribution after the request's whole processor chain; q is the
// draft's after the same built-in penalties, temperature and truncations (the request's own
// processors, e.g. a grammar constraint, see only the target's committed sequence: they keep
// per-sequence state that cannot be rolled back; exactness does not depend on q).
import * as T from '../tensor/ops.js';
import { scope } from '../tensor/storage.js';
import { noGrad } from '../tensor/autograd.js';
import { Generator } from '../tensor/random.js';
import { DecodeStateError } from '../models/causal.js';
import type { CausalLM, DecodeState } from '../models/causal.js';
import { Generation, Sequence, buildProcessors, prepareRequest, resultOf, rowsOf } from './generate.js';
import type { GenerateOptions, GenerationResult } from './generate.js';
import type { SpeculativeResult, SpeculativeStats, SteppedGeneration } from './stepped.js';
import type { LogitsProcessor } from './processors.js';
import { argmaxOf, sampleFrom } from './sample.js';


/**
 * Prompt lookup's default proposal length: 7, not HF's 10 — a verification of up to 8 tokens
 * stays on the matmul kernels' few-row paths (BENCHMARKS.md: 1.18× / 1.59× with 7 against
 * 0.82× / 1.11× with 10 on the speculative bench's grounded / open greedy prompts, 1 thread).
 */
export const LOOKUP_NUM_DRAFT = 7;

/**
 * Prompt lookup's least agreement (lookupMatch's `context`) for a proposal when sampling: a copy
 * is accepted with the target's probability of its token, and a match of one or two tokens
 * rarely predicts a sampled token (the speculative bench's base at temperature 0.7, top-p 0.9:
 * 10–20% of such proposals' first tokens right, against 50–100% greedy on the same prompts).
 * Greedy lookup proposes from any match (minContext 1).
 */
export const LOOKUP_SAMPLED_MIN_CONTEXT = 3;

/** Chain speculative decoding: a draft model or prompt lookup (one of the two). */
export interface ChainSpeculativeOptions extends GenerateOptions {
  /** A draft model of the same vocabulary (its family's state must roll back). */
  draft?: CausalLM;
  /**
   * Prompt lookup: match the last ngram (default 3, down to 1) tokens; propose up to numDraft
   * (default LOOKUP_NUM_DRAFT, 7). `backoff` (default true): after a step whose proposals were all rejected, the
   * next 1, 3, 7, 15, then 31 steps (after 1, 2, 3, 4, 5+ such steps in a row) propose nothing —
   * plain steps — and then one token only, until a proposal is accepted again: text with nothing
   * worth copying decodes at about plain speed; false: propose whenever something matches
   * (with minContext 1, HF's behaviour). `match` (default 'longest'): which earlier occurrence of the n-gram
   * is copied (see lookupDraft); 'first' is HF's. `minContext`: propose only from an occurrence
   * that agrees with the end of the text over at least this many tokens (lookupMatch's `context`;
   * default 1 greedy, LOOKUP_SAMPLED_MIN_CONTEXT (3) when sampling); with Medusa heads
   * (SpeculativeOptions medusa + lookup) see MedusaOptions.lookup.
   */
  lookup?: { ngram?: number; numDraft?: number; backoff?: boolean; match?: 'longest' | 'first'; minContext?: number };
  /** Draft tokens per step (draft model: default 4; lookup: lookup.numDraft wins). */
  numDraft?: number;
  /**
   * Draft length schedule (HF num_assistant_tokens_schedule): 'constant' (default), or
   * 'heuristic' — +2 after a step whose proposals were all accepted, −1 (down to 1) otherwise,
   * up to 4 × numDraft.
   */
  draftSchedule?: 'constant' | 'heuristic';
}


/** A speculative-decoding request that cannot run as given (named option, model or prompt). */
export class SpeculativeError extends Error {
  constructor(message: string) {
    super(`speculative decoding: ${message}`);
    this.name = 'SpeculativeError';
  }
}

const rollback = new WeakMap<CausalLM, boolean>();
/** Can the model's decoding state roll back (a 2-token forward on a fresh state, then truncate; cached per model)? */
export function canRollBack(model: CausalLM): boolean {
  let ok = rollback.get(model);
  if (ok !== undefined) return ok;
  const s = model.newState(1, 2, { history: 2 });
  try {
    noGrad(() => scope(() => { model.forward(T.tensor([[0, 0]], [1, 2], 'i32'), s, { lastOnly: true }); }));
    s.truncate(1);
    ok = true;
  } catch (e) {
    if (!(e instanceof DecodeStateError)) throw e;
    ok = false;
  } finally {
    s.dispose();
  }
  rollback.set(model, ok);
  return ok;
}

/** How far back lookupDraft's 'longest' matching compares the context of a match (tokens). */
export const LOOKUP_CONTEXT = 32;

/**
 * The prompt-lookup proposal: for n from `ngram` down to 1, the earlier occurrences of the last
 * n ids that are followed by something; up to `numDraft` of the ids that follow the chosen one.
 * Empty when nothing matches. Which occurrence:
 *   'longest' (the default) the one whose preceding ids agree longest with the ids before the
 *             tail (compared up to LOOKUP_CONTEXT ids back; ties: the most recent) — the
 *             occurrence in the same context, e.g. the sentence being copied rather than an
 *             earlier one that shares its last words, or the last turn of a loop;
 *   'first'   the first occurrence (HF PromptLookupCandidateGenerator).
 */
export function lookupDraft(ids: readonly number[], ngram: number, numDraft: number, match: 'longest' | 'first' = 'longest'): number[] {
  return lookupMatch(ids, ngram, numDraft, match).tokens;
}

/**
 * lookupDraft's proposal and how far the chosen occurrence agrees with the end of the text:
 * `context` = the matched n-gram's length plus the ids before it that agree ('longest'; up to
 * LOOKUP_CONTEXT of them), or the n-gram's length alone ('first'); 0 when nothing matches. A long
 * agreement means the text is copying (or looping over) an earlier stretch, and the copy is
 * likely to go on.
 */
export function lookupMatch(ids: readonly number[], ngram: number, numDraft: number, match: 'longest' | 'first' = 'longest'): { tokens: number[]; context: number } {
  const n = ids.length;
  if (numDraft <= 0) return { tokens: [], context: 0 };
  for (let ng = Math.min(ngram, n - 1); ng >= 1; ng--) {
    const tail = n - ng;
    let best = -1, bestLen = -1;
    for (let i = 0; i + ng < n; i++) {
      let j = 0;
      while (j < ng && ids[i + j] === ids[tail + j]) j++;
      if (j < ng) continue;
      if (match === 'first') { best = i; bestLen = 0; break; }
      // The agreement before the n-gram: ids[i − 1 − l] against ids[tail − 1 − l].
      let l = 0;
      while (l < LOOKUP_CONTEXT && i - 1 - l >= 0 && ids[i - 1 - l] === ids[tail - 1 - l]) l++;
      if (l >= bestLen) { best = i; bestLen = l; }
    }
    if (best >= 0) return { tokens: ids.slice(best + ng, Math.min(best + ng + numDraft, n)), context: ng + bestLen };
  }
  return { tokens: [], context: 0 };
}

/** softmax of processed logits in f64 (−Infinity → 0). */
function probsOf(logits: Float32Array): Float64Array {
  let m = -Infinity;
  for (const l of logits) if (l > m) m = l;
  const p = new Float64Array(logits.length);
  let s = 0;
  for (let i = 0; i < logits.length; i++) s += p[i] = logits[i] === -Infinity ? 0 : Math.exp(logits[i] - m);
  for (let i = 0; i < p.length; i++) p[i] /= s;
  return p;
}

/** An index drawn from the weights w (≥ 0, not all 0) with the seeded generator. */
function drawFrom(w: Float64Array, g: Generator): number {
  let s = 0;
  for (const x of w) s += x;
  let u = g.uniform() * s;
  for (let i = 0; i < w.length; i++) {
    u -= w[i];
    if (u < 0 && w[i] > 0) return i;
  }
  for (let i = w.length - 1; i >= 0; i--) if (w[i] > 0) return i;
  throw new Error('speculative decoding: drawing from an all-zero distribution');
}

/**
 * One step of the speculative-sampling rule at a position: target distribution p, proposal x
 * drawn from q (null: a point mass on x). Returns x when accepted, else a draw from
 * norm(max(0, p − q)).
 */
export function acceptOrResample(p: Float64Array, q: Float64Array | null, x: number, g: Generator): { token: number; accepted: boolean } {
  const qx = q ? q[x] : 1;
  if (g.uniform() * qx < p[x]) return { token: x, accepted: true };
  const r = new Float64Array(p.length);
  let s = 0;
  for (let i = 0; i < p.length; i++) s += r[i] = Math.max(0, p[i] - (q ? q[i] : i === x ? 1 : 0));
  // Rejection needs p(x) < q(x), which leaves mass in the residual; rounding aside.
  return { token: drawFrom(s > 0 ? r : p, g), accepted: false };
}

/** Logits (T, V) of the given ids fed after the state (the state advances); only the last row with lastOnly. */
function logitsOf(model: CausalLM, ids: number[], state: DecodeState, lastOnly: boolean): Float32Array[] {
  const V = model.config.vocab_size;
  return noGrad(() => scope(() => {
    const out = T.contiguous(model.forward(T.tensor([ids], [1, ids.length], 'i32'), state, { lastOnly }));
    return rowsOf(out, lastOnly ? 1 : ids.length, V);
  }));
}

function positiveInt(v: unknown, what: string): number {
  if (!Number.isInteger(v) || (v as number) < 1) throw new SpeculativeError(`${what} must be a positive integer, got ${String(v)}`);
  return v as number;
}

/**
 * Decode one prompt with a draft model (`draft`) or prompt lookup (`lookup`): greedy output is
 * plain greedy decoding's token for token; sampled output has plain sampling's distribution
 * (not its draws for a seed). stats.speculative reports the proposals and acceptances.
 */
export function speculativeGenerate(model: CausalLM, prompt: number[] | number[][], opts: ChainSpeculativeOptions): SpeculativeResult {
  const g = new SpeculativeGeneration(model, prompt, opts);
  try {
    while (g.step());
  } finally {
    g.cancel();
  }
  return g.result();
}

/**
 * A speculative decoding advanced one step at a time (as Generation, for a server that
 * interleaves requests): every check runs in the constructor; the first step() prefills, each
 * later one runs one verification forward of the target (emitting 1 … numDraft + 1 tokens);
 * step() returns false once the sequence has finished; cancel() stops early and frees the states.
 * A target whose decoding state cannot roll back is decoded plainly (stats.speculative.fallback).
 */
export class SpeculativeGeneration implements SteppedGeneration {
  readonly batchSize = 1;
  /** Tokens the sequence may still add at most (after the prompt-length cap). */
  readonly maxNewTokens: number;
  readonly sequences: Sequence[];
  readonly method: 'draft' | 'lookup';
  /** Why the request is decoded plainly (null: it is not). */
  readonly fallback: string | null = null;
  private readonly plain: Generation | null = null;
  private readonly seq: Sequence;
  private readonly draft: CausalLM | null;
  private readonly ngram: number;
  private readonly match: 'longest' | 'first';
  private readonly minContext: number;
  private readonly numDraft: number;
  private readonly maxDraft: number;
  private readonly heuristic: boolean;
  private readonly draftChain: LogitsProcessor[];
  private readonly g: Generator;
  private readonly stopIds: Set<number>;
  private readonly prompt: number[];
  private readonly stats: SpeculativeStats;
  private target: DecodeState | null = null;
  private dstate: DecodeState | null = null;
  private dmax = 0;
  private k: number;
  /** Prompt lookup's back-off: steps with all proposals rejected in a row, and plain steps left. */
  private failures = 0;
  private skip = 0;
  private readonly backoff: boolean;
  private emitted = 0;
  private state: 'new' | 'running' | 'finished' | 'cancelled' = 'new';
  private prefillMs = 0;
  private decodeMs = 0;

  constructor(private readonly model: CausalLM, prompt: number[] | number[][], private readonly opts: ChainSpeculativeOptions) {
    if (Array.isArray(prompt[0])) {
      if (prompt.length !== 1) throw new SpeculativeError(`decodes one prompt at a time, got a batch of ${prompt.length} (use generate() for batches)`);
      prompt = prompt[0] as number[];
    }
    const ids0 = this.prompt = prompt as number[];
    const { draft, lookup } = opts;
    if (draft && lookup) throw new SpeculativeError('give a draft model or prompt lookup, not both');
    if (!draft && !lookup) throw new SpeculativeError('give a draft model (draft) or prompt lookup (lookup)');
    this.method = draft ? 'draft' : 'lookup';
    this.draft = draft ?? null;
    this.ngram = positiveInt(lookup?.ngram ?? 3, 'lookup.ngram');
    const match = lookup?.match ?? 'longest';
    if (match !== 'longest' && match !== 'first') throw new SpeculativeError(`lookup.match must be 'longest' or 'first', got ${String(match)}`);
    this.match = match;
    this.numDraft = this.k = positiveInt(lookup ? lookup.numDraft ?? opts.numDraft ?? LOOKUP_NUM_DRAFT : opts.numDraft ?? 4, lookup ? 'lookup.numDraft' : 'numDraft');
    const schedule = opts.draftSchedule ?? 'constant';
    if (schedule !== 'constant' && schedule !== 'heuristic') throw new SpeculativeError(`draftSchedule must be 'constant' or 'heuristic', got ${String(schedule)}`);
    this.heuristic = !!draft && schedule === 'heuristic';
    this.backoff = !draft && lookup?.backoff !== false;
    this.maxDraft = this.heuristic ? 4 * this.numDraft : this.numDraft;
    const { maxNew, stopIds } = prepareRequest(model, [ids0], opts);
    this.maxNewTokens = maxNew;
    this.stopIds = stopIds;
    if (draft) {
      if (draft.config.vocab_size !== model.config.vocab_size) {
        throw new SpeculativeError(`the draft model's vocabulary (vocab_size ${draft.config.vocab_size}, ${draft.config.model_type}) differs from the target's (vocab_size ${model.config.vocab_size}, ${model.config.model_type})`);
      }
      if (ids0.length > draft.contextLength) throw new SpeculativeError(`the prompt of ${ids0.length} tokens exceeds the draft model's context of ${draft.contextLength} positions`);
      if (!canRollBack(draft)) throw new SpeculativeError(`the draft model's decoding state (${draft.config.model_type}) cannot roll back (truncate), which drafting needs`);
    }
    this.stats = { method: this.method, steps: 0, drafted: 0, accepted: 0, meanAcceptedLength: 0, acceptanceRate: 0 };
    this.g = new Generator(opts.seed ?? 0);
    if (!canRollBack(model)) {
      this.fallback = `the target's decoding state (${model.config.model_type}) cannot roll back: decoded plainly`;
      this.stats.fallback = this.fallback;
      this.plain = new Generation(model, ids0, opts);
      this.sequences = this.plain.sequences;
    } else this.sequences = [new Sequence(0, ids0, opts, stopIds, maxNew)];
    this.seq = this.sequences[0];
    this.minContext = positiveInt(lookup?.minContext ?? (this.seq.isGreedy ? 1 : LOOKUP_SAMPLED_MIN_CONTEXT), 'lookup.minContext');
    // The draft's processors: the built-in ones (stateless: they run on a scratch copy of the ids).
    this.draftChain = draft ? buildProcessors({ ...opts, processors: undefined }, ids0.length).chain : [];
  }

  /** Advance by one model call of the target (the prefill, or one verification step). */
  step(): boolean {
    if (this.plain) {
      // Plain decoding: one target forward per token.
      const more = this.plain.step();
      // (Its first token comes from the prefill, as here: steps are the calls after it.)
      this.emitted = this.seq.out.length;
      this.stats.steps = Math.max(0, this.emitted - 1);
      return more;
    }
    if (this.state === 'finished' || this.state === 'cancelled') return false;
    const { model, draft, seq, maxNewTokens: maxNew } = this;
    if (this.state === 'new') {
      this.state = 'running';
      const t0 = performance.now();
      const L = this.prompt.length;
      // Both states hold every committed id but the last, which the next forward feeds first:
      // the prefill reads the whole prompt and its last logits give the first token, as in plain
      // decoding (the first step then verifies proposals after it).
      this.target = model.newState(1, L + Math.max(maxNew, 0), { history: this.maxDraft + 2 });
      this.dmax = draft ? Math.min(draft.contextLength, L + Math.max(maxNew, 0)) : 0;
      if (draft) this.dstate = draft.newState(1, this.dmax, { history: this.maxDraft + 2 });
      if (maxNew > 0) {
        const first = logitsOf(model, this.prompt, this.target, true)[0];
        if (draft) logitsOf(draft, this.prompt, this.dstate!, true);
        seq.take(first, this.g);
        this.emitted++;
      }
      this.prefillMs = performance.now() - t0;
      if (maxNew <= 0 || seq.done) this.end();
      return this.state === 'running';
    }
    const t1 = performance.now();
    try {
      this.verify(this.propose());
    } finally {
      this.decodeMs += performance.now() - t1;
    }
    if (seq.done) this.end();
    return this.state === 'running';
  }

  /** The next proposals (and, sampling with a draft model, the distributions they were drawn from). */
  private propose(): { tokens: number[]; qs: Float64Array[] | null } {
    const { draft, seq, g } = this;
    const all = seq.ids;
    // Proposals: never past the token budget (the target's own token completes it).
    let m = Math.min(this.k, this.maxNewTokens - seq.out.length - 1);
    if (!draft) {
      if (this.skip > 0) { this.skip--; return { tokens: [], qs: null }; }
      // After rejections, probe with one token until a proposal is accepted again.
      if (this.failures) m = Math.min(m, 1);
      const { tokens, context } = lookupMatch(all, this.ngram, m, this.match);
      return { tokens: context >= this.minContext ? tokens : [], qs: null };
    }
    m = Math.min(m, this.dmax - all.length + 1);
    const tokens: number[] = [];
    const qs: Float64Array[] | null = seq.isGreedy ? null : [];
    if (m <= 0) return { tokens, qs };
    const ctx = [...all];
    let feed = all.slice(this.dstate!.length);
    for (let i = 0; i < m; i++) {
      const lg = logitsOf(draft, feed, this.dstate!, true)[0];
      for (const p of this.draftChain) p.process(ctx, lg);
      let t: number;
      if (!qs) t = argmaxOf(lg);
      else {
        const q = probsOf(lg);
        t = drawFrom(q, g);
        qs.push(q);
      }
      tokens.push(t);
      ctx.push(t);
      feed = [t];
      if (this.stopIds.has(t)) break;
    }
    return { tokens, qs };
  }

  /** One forward of the target over the last committed id and the proposals; emit what is accepted, roll back the rest. */
  private verify({ tokens, qs }: { tokens: number[]; qs: Float64Array[] | null }): void {
    const { model, seq, g, stats } = this;
    const target = this.target!;
    const m = tokens.length;
    const rows = logitsOf(model, [...seq.ids.slice(target.length), ...tokens], target, false);
    stats.steps++;
    stats.drafted += m;
    let a = 0;
    for (let i = 0; i <= m && !seq.done; i++) {
      const lg = rows[rows.length - m - 1 + i];
      const raw = seq.process(lg);
      this.emitted++;
      if (i === m) { seq.emit(seq.isGreedy ? argmaxOf(lg) : sampleFrom(lg, g), raw); break; }
      const x = tokens[i];
      let t: number, ok: boolean;
      if (seq.isGreedy) { t = argmaxOf(lg); ok = t === x; }
      else ({ token: t, accepted: ok } = acceptOrResample(probsOf(lg), qs ? qs[i] : null, x, g));
      seq.emit(t, raw);
      if (!ok) break;
      a++;
    }
    stats.accepted += a;
    target.truncate(Math.min(target.length, seq.ids.length - 1));
    if (this.dstate) this.dstate.truncate(Math.min(this.dstate.length, seq.ids.length - 1));
    if (this.backoff && m > 0) {
      this.failures = a ? 0 : this.failures + 1;
      this.skip = a ? 0 : 2 ** Math.min(this.failures, 5) - 1;
    }
    if (this.heuristic && m > 0) this.k = a === m ? Math.min(this.k + 2, this.maxDraft) : Math.max(1, this.k - 1);
  }

  private end(): void {
    this.state = 'finished';
    this.release();
    this.seq.close();
  }

  private release(): void {
    this.target?.dispose();
    this.dstate?.dispose();
    this.target = this.dstate = null;
  }

  /** Stop now and free the decoding states; result() then reports what was made. */
  cancel(): void {
    if (this.plain) { this.plain.cancel(); return; }
    if (this.state === 'finished' || this.state === 'cancelled') return;
    this.state = 'cancelled';
    this.release();
    this.seq.close(false);
  }

  result(): SpeculativeResult {
    const stats = { ...this.stats };
    // Tokens per target call, the prefill's call (and its token) included, as Medusa's.
    stats.meanAcceptedLength = stats.steps ? this.emitted / (stats.steps + 1) : 0;
    stats.acceptanceRate = stats.drafted ? stats.accepted / stats.drafted : 0;
    const r = this.plain ? this.plain.result() : resultOf([this.seq], this.opts, { prefillMs: this.prefillMs, decodeMs: this.decodeMs });
    return { ...r, stats: { ...r.stats, speculative: stats } };
  }
}
