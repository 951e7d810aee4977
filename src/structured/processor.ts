// The constraint as one more logit processor: tokens the grammar does not allow get −Infinity
// (before temperature and top-p, which only ever see allowed tokens), EOS is allowed exactly when
// the output may end, and generate() stops a sequence once the output must end. With a token
// budget, only tokens after which the output can still be closed in the tokens left are allowed,
// so a cut never leaves an invalid object. With uniqueKeys (JSON output), no object gets a key twice
// (keys.ts).
import type { LogitsProcessor } from '../generate/processors.js';
import { TokenMatcher, applyMask, DEAD } from './matcher.js';
import { StructuredError } from './errors.js';
import { KeyScan, repeatedKeyTokens } from './keys.js';

/** The output cannot be completed within the token budget. */
export class TokenBudgetError extends StructuredError {
  constructor(readonly needed: number, readonly budget: number) {
    super(`the shortest valid output needs ${needed} tokens but max new tokens is ${budget}; raise the budget`);
    this.name = 'TokenBudgetError';
  }
}

interface Row { start: number; consumed: number; state: number; maxNew: number; keys: KeyScan | null }

export class ConstraintProcessor implements LogitsProcessor {
  private readonly rows = new WeakMap<readonly number[], Row>();
  /** Mask computation times in µs (for benchmarks). */
  readonly maskMicros: number[] = [];

  /**
   * `uniqueKeys`: the output is JSON (a JSON Schema's), and no object in it may have a key twice —
   * the tokens that would write one again are taken out of each mask.
   */
  constructor(readonly matcher: TokenMatcher, readonly opts: { maxNewTokens?: number; recordTimes?: boolean; uniqueKeys?: boolean } = {}) {}

  /** generate() calls this once per sequence with its prompt (the ids array it then extends). */
  begin(ids: readonly number[], maxNewTokens: number): void {
    const maxNew = Math.min(maxNewTokens, this.opts.maxNewTokens ?? Infinity);
    const need = this.matcher.automaton.minComplete(this.matcher.initial);
    if (need > maxNew) throw new TokenBudgetError(need, maxNew);
    this.rows.set(ids, { start: ids.length, consumed: ids.length, state: this.matcher.initial, maxNew, keys: this.opts.uniqueKeys ? new KeyScan() : null });
  }

  private row(ids: readonly number[]): Row {
    let r = this.rows.get(ids);
    if (!r) { this.begin(ids, this.opts.maxNewTokens ?? Infinity); r = this.rows.get(ids)!; }
    for (; r.consumed < ids.length; r.consumed++) {
      const next = this.matcher.advance(r.state, ids[r.consumed]);
      if (next === DEAD) throw new StructuredError(`token ${ids[r.consumed]} at position ${r.consumed - r.start} of the output is not allowed by the constraint`);
      r.state = next;
      if (r.keys) for (const x of this.matcher.vocab.bytes[ids[r.consumed]]!) r.keys.push(x, false);
    }
    return r;
  }

  process(ids: readonly number[], logits: Float32Array): void {
    const r = this.row(ids);
    const left = r.maxNew - (ids.length - r.start) - 1;
    const t0 = this.opts.recordTimes ? performance.now() : 0;
    const m = this.matcher;
    const mask = m.mask(r.state, left);
    const repeated = r.keys ? repeatedKeyTokens(m.automaton, m.vocab, r.state, r.keys, mask, (s, id) => m.advance(s, id)) : [];
    if (this.opts.recordTimes) this.maskMicros.push((performance.now() - t0) * 1000);
    let allowed = -repeated.length;
    for (let w = 0; w < mask.length && allowed <= 0; w++) allowed += popcount(mask[w]);
    if (allowed <= 0) throw new StructuredError(repeated.length ? 'every token that continues the output writes a key its object has already' : 'no token of the vocabulary continues the output (and no EOS token completes it)');
    applyMask(logits, mask);
    for (const id of repeated) logits[id] = -Infinity;
  }

  /** Whether the sequence's output is complete and nothing may follow (generate() stops it). */
  isComplete(ids: readonly number[]): boolean {
    return this.matcher.automaton.finished(this.row(ids).state);
  }

  /** Whether the sequence's output so far is a complete match. */
  isAccepted(ids: readonly number[]): boolean {
    return this.matcher.automaton.accepting(this.row(ids).state);
  }
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
}
