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
import { Sequence, buildProcessors, generate, prepareRequest, resultOf, rowsOf } from './generate.js';
import type { GenerateOptions, GenerationResult } from './generate.js';
import type { LogitsProcessor } from './processors.js';
import { argmaxOf, sampleFrom } from './sample.js';

export interface SpeculativeStats {
  method: 'medusa' | 'draft' | 'lookup';
  /** Verification forwards of the target model (each emits ≥ 1 token). */
  steps: number;
  /** Tokens proposed (draft tokens / lookup tokens / Medusa candidate tokens on the accepted paths' candidates). */
  drafted: number;
  /** Proposed tokens accepted. */
  accepted: number;
  /** Tokens emitted per verification step, the bonus/corrected token included (= emitted / steps). */
  meanAcceptedLength: number;
  /** accepted / drafted. */
  acceptanceRate: number;
  /**
   * Set when speculation was not used and the request was decoded plainly (the target's
   * decoding state cannot roll back): why.
   */
  fallback?: string;
}

export interface SpeculativeOptions extends GenerateOptions {
  /** A draft model of the same vocabulary (its family's state must roll back). */
  draft?: CausalLM;
  /** Prompt lookup: match the last ngram (default 3, down to 1) tokens; propose up to numDraft (default 10). */
  lookup?: { ngram?: number; numDraft?: number };
  /** Draft tokens per step (draft model: default 4; lookup: lookup.numDraft wins). */
  numDraft?: number;
  /**
   * Draft length schedule (HF num_assistant_tokens_schedule): 'constant' (default), or
   * 'heuristic' — +2 after a step whose proposals were all accepted, −1 (down to 1) otherwise,
   * up to 4 × numDraft.
   */
  draftSchedule?: 'constant' | 'heuristic';
}

export type SpeculativeResult = GenerationResult & { stats: GenerationResult['stats'] & { speculative: SpeculativeStats } };

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

/**
 * The prompt-lookup proposal (HF PromptLookupCandidateGenerator): for n from `ngram` down to 1,
 * the first earlier occurrence of the last n ids that is followed by something; up to `numDraft`
 * of the ids that follow it. Empty when nothing matches.
 */
export function lookupDraft(ids: readonly number[], ngram: number, numDraft: number): number[] {
  const n = ids.length;
  if (numDraft <= 0) return [];
  for (let ng = Math.min(ngram, n - 1); ng >= 1; ng--) {
    const tail = n - ng;
    for (let i = 0; i + ng < n; i++) {
      let j = 0;
      while (j < ng && ids[i + j] === ids[tail + j]) j++;
      if (j === ng) return ids.slice(i + ng, Math.min(i + ng + numDraft, n));
    }
  }
  return [];
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
export function speculativeGenerate(model: CausalLM, prompt: number[] | number[][], opts: SpeculativeOptions): SpeculativeResult {
  // ---- checks before anything runs
  if (Array.isArray(prompt[0])) {
    if (prompt.length !== 1) throw new SpeculativeError(`decodes one prompt at a time, got a batch of ${prompt.length} (use generate() for batches)`);
    prompt = prompt[0] as number[];
  }
  const ids0 = prompt as number[];
  const { draft, lookup } = opts;
  if (draft && lookup) throw new SpeculativeError('give a draft model or prompt lookup, not both');
  if (!draft && !lookup) throw new SpeculativeError('give a draft model (draft) or prompt lookup (lookup)');
  const method: 'draft' | 'lookup' = draft ? 'draft' : 'lookup';
  const ngram = positiveInt(lookup?.ngram ?? 3, 'lookup.ngram');
  const numDraft = positiveInt(lookup ? lookup.numDraft ?? opts.numDraft ?? 10 : opts.numDraft ?? 4, lookup ? 'lookup.numDraft' : 'numDraft');
  const schedule = opts.draftSchedule ?? 'constant';
  if (schedule !== 'constant' && schedule !== 'heuristic') throw new SpeculativeError(`draftSchedule must be 'constant' or 'heuristic', got ${String(schedule)}`);
  const { maxNew, stopIds } = prepareRequest(model, [ids0], opts);
  if (draft) {
    if (draft.config.vocab_size !== model.config.vocab_size) {
      throw new SpeculativeError(`the draft model's vocabulary (vocab_size ${draft.config.vocab_size}, ${draft.config.model_type}) differs from the target's (vocab_size ${model.config.vocab_size}, ${model.config.model_type})`);
    }
    if (ids0.length > draft.contextLength) throw new SpeculativeError(`the prompt of ${ids0.length} tokens exceeds the draft model's context of ${draft.contextLength} positions`);
    if (!canRollBack(draft)) throw new SpeculativeError(`the draft model's decoding state (${draft.config.model_type}) cannot roll back (truncate), which drafting needs`);
  }
  if (!canRollBack(model)) {
    const r = generate(model, ids0, opts);
    const fallback = `the target's decoding state (${model.config.model_type}) cannot roll back: decoded plainly`;
    const steps = r.ids[0].length + (r.finishReason[0] === 'stop' ? 1 : 0);
    return { ...r, stats: { ...r.stats, speculative: { method, steps, drafted: 0, accepted: 0, meanAcceptedLength: steps ? (r.ids[0].length / steps) : 0, acceptanceRate: 0, fallback } } };
  }

  const maxDraft = schedule === 'heuristic' ? 4 * numDraft : numDraft;
  const L = ids0.length;
  const seq = new Sequence(0, ids0, opts, stopIds, maxNew);
  const greedy = seq.isGreedy;
  const g = new Generator(opts.seed ?? 0);
  // The draft's processors: the built-in ones (stateless: they run on a scratch copy of the ids).
  const draftChain: LogitsProcessor[] = draft ? buildProcessors({ ...opts, processors: undefined }, L).chain : [];
  const stats: SpeculativeStats = { method, steps: 0, drafted: 0, accepted: 0, meanAcceptedLength: 0, acceptanceRate: 0 };
  let emitted = 0;
  let target: DecodeState | null = null, dstate: DecodeState | null = null;
  let prefillMs = 0, decodeMs = 0;
  try {
    const t0 = performance.now();
    // Both states hold every committed id but the last, which the next forward feeds first.
    target = model.newState(1, L + Math.max(maxNew, 0), { history: maxDraft + 2 });
    const dmax = draft ? Math.min(draft.contextLength, L + Math.max(maxNew, 0)) : 0;
    if (draft) dstate = draft.newState(1, dmax, { history: maxDraft + 2 });
    if (maxNew > 0 && L > 1) {
      logitsOf(model, ids0.slice(0, -1), target, true);
      if (draft) logitsOf(draft, ids0.slice(0, -1), dstate!, true);
    }
    prefillMs = performance.now() - t0;
    const t1 = performance.now();
    let k = numDraft;
    while (maxNew > 0 && !seq.done) {
      const all = seq.ids;
      // Proposals: never past the token budget (the target's own token completes it).
      let m = Math.min(k, maxNew - seq.out.length - 1);
      let tokens: number[] = [];
      let qs: Float64Array[] | null = null;
      if (draft) {
        m = Math.min(m, dmax - all.length + 1);
        if (m > 0) {
          const ctx = [...all];
          qs = greedy ? null : [];
          let feed = all.slice(dstate!.length);
          for (let i = 0; i < m; i++) {
            const lg = logitsOf(draft, feed, dstate!, true)[0];
            for (const p of draftChain) p.process(ctx, lg);
            let t: number;
            if (greedy) t = argmaxOf(lg);
            else {
              const q = probsOf(lg);
              t = drawFrom(q, g);
              qs!.push(q);
            }
            tokens.push(t);
            ctx.push(t);
            feed = [t];
            if (stopIds.has(t)) break;
          }
        }
      } else if (m > 0) tokens = lookupDraft(all, ngram, m);
      m = tokens.length;
      // Verification: the last committed id and the proposals in one forward.
      const rows = logitsOf(model, [...all.slice(target.length), ...tokens], target, false);
      stats.steps++;
      stats.drafted += m;
      let a = 0;
      for (let i = 0; i <= m && !seq.done; i++) {
        const lg = rows[rows.length - m - 1 + i];
        const raw = seq.process(lg);
        emitted++;
        if (i === m) { seq.emit(greedy ? argmaxOf(lg) : sampleFrom(lg, g), raw); break; }
        const x = tokens[i];
        let t: number, ok: boolean;
        if (greedy) { t = argmaxOf(lg); ok = t === x; }
        else ({ token: t, accepted: ok } = acceptOrResample(probsOf(lg), qs ? qs[i] : null, x, g));
        seq.emit(t, raw);
        if (!ok) break;
        a++;
      }
      stats.accepted += a;
      target.truncate(Math.min(target.length, seq.ids.length - 1));
      if (dstate) dstate.truncate(Math.min(dstate.length, seq.ids.length - 1));
      if (draft && schedule === 'heuristic' && m > 0) k = a === m ? Math.min(k + 2, maxDraft) : Math.max(1, k - 1);
    }
    decodeMs = performance.now() - t1;
  } catch (e) {
    seq.close(false);
    throw e;
  } finally {
    target?.dispose();
    dstate?.dispose();
  }
  seq.close();
  stats.meanAcceptedLength = stats.steps ? emitted / stats.steps : 0;
  stats.acceptanceRate = stats.drafted ? stats.accepted / stats.drafted : 0;
  const r = resultOf([seq], opts, { prefillMs, decodeMs });
  return { ...r, stats: { ...r.stats, speculative: stats } };
}
