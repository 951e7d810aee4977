// Logit processors: each constraint, penalty and truncation is one object with one method,
// applied in order to one sequence's next-token logits (a Float32Array of the vocabulary) —
// the shape transformers' LogitsProcessorList has. Masked tokens get −Infinity.

export interface LogitsProcessor {
  /** Adjust logits in place for the sequence so far (prompt + generated ids). */
  process(ids: readonly number[], logits: Float32Array): void;
}

/** HF repetition penalty: for tokens already present, logit / p if positive, · p if negative. */
export class RepetitionPenalty implements LogitsProcessor {
  constructor(readonly penalty: number) {
    if (!(penalty > 0)) throw new RangeError(`repetition penalty must be > 0, got ${penalty}`);
  }
  process(ids: readonly number[], logits: Float32Array): void {
    for (const id of new Set(ids)) {
      const l = logits[id];
      logits[id] = l > 0 ? l / this.penalty : l * this.penalty;
    }
  }
}

/** OpenAI frequency / presence penalties over the generated tokens (from `start` on). */
export class FrequencyPresencePenalty implements LogitsProcessor {
  constructor(readonly frequency: number, readonly presence: number, readonly start = 0) {}
  process(ids: readonly number[], logits: Float32Array): void {
    const counts = new Map<number, number>();
    for (let i = this.start; i < ids.length; i++) counts.set(ids[i], (counts.get(ids[i]) ?? 0) + 1);
    for (const [id, c] of counts) logits[id] -= this.frequency * c + this.presence;
  }
}

export class Temperature implements LogitsProcessor {
  constructor(readonly t: number) {
    if (!(t > 0)) throw new RangeError(`temperature must be > 0 for sampling, got ${t} (use greedy decoding for 0)`);
  }
  process(_ids: readonly number[], logits: Float32Array): void {
    if (this.t === 1) return;
    for (let i = 0; i < logits.length; i++) logits[i] /= this.t;
  }
}

/** Indices of logits sorted by decreasing value. */
function order(logits: Float32Array): Uint32Array {
  const idx = new Uint32Array(logits.length);
  for (let i = 0; i < idx.length; i++) idx[i] = i;
  return idx.sort((a, b) => logits[b] - logits[a] || a - b);
}

function softmaxOf(logits: Float32Array, idx: Uint32Array): Float64Array {
  const p = new Float64Array(idx.length);
  const m = logits[idx[0]];
  let s = 0;
  for (let i = 0; i < idx.length; i++) s += p[i] = Math.exp(logits[idx[i]] - m);
  for (let i = 0; i < idx.length; i++) p[i] /= s;
  return p;
}

function keepFirst(logits: Float32Array, idx: Uint32Array, keep: number): void {
  for (let i = keep; i < idx.length; i++) logits[idx[i]] = -Infinity;
}

export class TopK implements LogitsProcessor {
  constructor(readonly k: number) {
    if (!Number.isInteger(k) || k < 1) throw new RangeError(`top-k must be a positive integer, got ${k}`);
  }
  process(_ids: readonly number[], logits: Float32Array): void {
    if (this.k >= logits.length) return;
    keepFirst(logits, order(logits), this.k);
  }
}

/** Nucleus sampling: keep the smallest set of top tokens whose probability reaches p. */
export class TopP implements LogitsProcessor {
  constructor(readonly p: number) {
    if (!(p > 0 && p <= 1)) throw new RangeError(`top-p must be in (0, 1], got ${p}`);
  }
  process(_ids: readonly number[], logits: Float32Array): void {
    if (this.p >= 1) return;
    const idx = order(logits), prob = softmaxOf(logits, idx);
    let c = 0, keep = 0;
    while (keep < idx.length) { c += prob[keep++]; if (c >= this.p) break; }
    keepFirst(logits, idx, Math.max(1, keep));
  }
}

/** Keep tokens whose probability is at least minP times the most likely token's. */
export class MinP implements LogitsProcessor {
  constructor(readonly minP: number) {
    if (!(minP >= 0 && minP <= 1)) throw new RangeError(`min-p must be in [0, 1], got ${minP}`);
  }
  process(_ids: readonly number[], logits: Float32Array): void {
    let m = -Infinity;
    for (const l of logits) if (l > m) m = l;
    const cut = m + Math.log(this.minP);
    for (let i = 0; i < logits.length; i++) if (logits[i] < cut) logits[i] = -Infinity;
  }
}

/** Locally typical sampling (Meister et al.): keep tokens whose surprisal is closest to the entropy, up to mass p. */
export class TypicalP implements LogitsProcessor {
  constructor(readonly p: number) {
    if (!(p > 0 && p <= 1)) throw new RangeError(`typical-p must be in (0, 1], got ${p}`);
  }
  process(_ids: readonly number[], logits: Float32Array): void {
    if (this.p >= 1) return;
    const idx = order(logits), prob = softmaxOf(logits, idx);
    let ent = 0;
    for (const q of prob) if (q > 0) ent -= q * Math.log(q);
    const byDev = Array.from(idx.keys()).sort((a, b) => Math.abs(-Math.log(prob[a]) - ent) - Math.abs(-Math.log(prob[b]) - ent) || a - b);
    let c = 0, keep = 0;
    while (keep < byDev.length) { c += prob[byDev[keep++]]; if (c >= this.p) break; }
    const kept = new Set(byDev.slice(0, Math.max(1, keep)).map((i) => idx[i]));
    for (let i = 0; i < logits.length; i++) if (!kept.has(i)) logits[i] = -Infinity;
  }
}
