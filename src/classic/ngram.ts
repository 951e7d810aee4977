// Statistical n-gram language models: counting over word or character tokens, and the
// estimators maximum likelihood, add-k, interpolated Kneser–Ney and interpolated modified
// Kneser–Ney (discounts D1, D2, D3+ from count-of-counts, as KenLM's lmplz computes them).
//
// Conventions (KenLM's): a sentence w1..wn is scored as <s> w1 .. wn </s>; <s> is only ever a
// context, never predicted (log10 p = -99 in ARPA); a word outside the vocabulary is <unk>.
// Probabilities are log10 throughout, as in ARPA files.
import { NgramTable } from './table.js';
import { ClassicInputError, DiscountError } from './errors.js';
import { Rng, SPACE_TOKEN, tokenize, readLines, type TokenMode } from './text.js';

export const UNK = '<unk>', BOS = '<s>', EOS = '</s>';
export const UNK_ID = 0, BOS_ID = 1, EOS_ID = 2;

/** Word ↔ id. Ids 0, 1, 2 are always <unk>, <s>, </s>. */
export class Vocab {
  readonly words: string[] = [UNK, BOS, EOS];
  private readonly index = new Map<string, number>([[UNK, UNK_ID], [BOS, BOS_ID], [EOS, EOS_ID]]);
  get size(): number { return this.words.length; }
  /** The id of a word, or UNK_ID when absent. */
  id(w: string): number { return this.index.get(w) ?? UNK_ID; }
  has(w: string): boolean { return this.index.has(w); }
  add(w: string): number {
    let i = this.index.get(w);
    if (i === undefined) { i = this.words.length; this.words.push(w); this.index.set(w, i); }
    return i;
  }
}

export type Estimator = 'mle' | 'addk' | 'kn' | 'mkn';

export interface NgramCountOptions {
  order: number;
  /** Progress lines (sentences, words/s) for long jobs; e.g. `(s) => process.stderr.write(s + '\n')`. */
  onProgress?: (line: string) => void;
}

export interface NgramTrainOptions extends NgramCountOptions {
  /** Default 'mkn' (interpolated modified Kneser–Ney). */
  estimator?: Estimator;
  /** add-k: the k (default 1, i.e. Laplace). */
  k?: number;
  /** kn: a fixed discount for every order (default: D = n1 / (n1 + 2 n2) per order). */
  discount?: number;
  /**
   * mkn/kn: what to do when the discounts are undefined or out of range (tiny corpora).
   * false (default): throw DiscountError. true: use KenLM's fallback D1=0.5, D2=1, D3+=1.5
   * (for kn: D=0.5). A triple: use those discounts.
   */
  discountFallback?: boolean | [number, number, number];
  /** Warnings (e.g. a substituted fallback discount). Default: none. */
  onWarning?: (msg: string) => void;
  /** Recorded in the model (how `scoreText` tokenises). Default 'word'. */
  mode?: TokenMode;
}

/** Raw n-gram counts of every order 1..N over <s> w1 .. wn </s>. */
export class NgramCounts {
  readonly vocab = new Vocab();
  /** tables[n - 1] holds the n-grams of order n. */
  readonly tables: NgramTable[];
  sentences = 0;
  /** Words counted, excluding <s> and </s>. */
  words = 0;
  private buf = new Int32Array(256);
  private t0 = performance.now();
  private lastReport = 0;

  constructor(readonly order: number, private onProgress?: (line: string) => void) {
    checkOrder(order);
    this.tables = Array.from({ length: order }, (_, i) => new NgramTable(i + 1, i === 0 ? 1 << 14 : 1 << 16));
  }

  /** Count one sentence (tokens without <s>/</s>); `where` names it in errors. */
  add(tokens: readonly string[], where?: string): void {
    const len = tokens.length + 2;
    if (this.buf.length < len) this.buf = new Int32Array(len * 2);
    const ids = this.buf;
    ids[0] = BOS_ID;
    for (let i = 0; i < tokens.length; i++) {
      const w = tokens[i];
      if (w === BOS || w === EOS) throw new ClassicInputError(`${where ?? `sentence ${this.sentences + 1}`}: the token '${w}' is reserved (sentence boundaries are added automatically)`);
      ids[i + 1] = this.vocab.add(w);
    }
    ids[len - 1] = EOS_ID;
    for (let n = 1; n <= this.order; n++) {
      const t = this.tables[n - 1];
      for (let i = 0; i + n <= len; i++) t.add(ids, i, 1);
    }
    this.sentences++;
    this.words += tokens.length;
    if (this.onProgress && (this.sentences & 0x3fff) === 0) {
      const now = performance.now();
      if (now - this.lastReport > 1000) {
        this.lastReport = now;
        const sec = (now - this.t0) / 1000;
        this.onProgress(`counting: ${this.sentences} sentences, ${this.words} words, ${Math.round(this.words / sec)} words/s`);
      }
    }
  }
}

function checkOrder(order: number): void {
  if (!Number.isInteger(order) || order < 1) throw new ClassicInputError(`n-gram order must be an integer >= 1, got ${order}`);
}

/** Count n-grams over tokenised sentences (empty ones are skipped). */
export function countNgrams(sentences: Iterable<readonly string[]>, opts: NgramCountOptions): NgramCounts {
  const c = new NgramCounts(opts.order, opts.onProgress);
  for (const s of sentences) if (s.length > 0) c.add(s);
  return c;
}

/** Count n-grams over a UTF-8 text file, one sentence per line. */
export function countNgramsFile(file: string, opts: NgramCountOptions & { mode?: TokenMode }): NgramCounts {
  const c = new NgramCounts(opts.order, opts.onProgress);
  for (const [line, no] of readLines(file)) {
    const t = tokenize(line, opts.mode ?? 'word');
    if (t.length > 0) c.add(t, `${file}:${no}`);
  }
  return c;
}

export interface WordScore { token: string; logProb: number; ngramLength: number; oov: boolean }
export interface SentenceScore { logProb: number; oov: number; tokens: number; words: WordScore[] }
export interface CorpusScore {
  sentences: number;
  /** Scored tokens: words (OOVs included) plus one </s> per sentence. */
  tokens: number;
  oov: number;
  /** Total log10 probability (OOVs included, as KenLM's query reports it). */
  logProb: number;
  /** 10^(-logProb / tokens). */
  perplexity: number;
  /** Perplexity over the in-vocabulary tokens only. */
  perplexityExclOov: number;
}
export interface ScoreOptions { bos?: boolean; eos?: boolean }

/** The common interface of every n-gram model. */
export abstract class NgramModel {
  /** The n-gram length that served the last `logProbIds` call (1 = unigram). */
  lastLength = 0;
  constructor(readonly order: number, readonly vocab: Vocab, readonly mode: TokenMode) {}

  /** log10 p(w | hist[histLen - N + 1 .. histLen)). */
  abstract logProbIds(hist: ArrayLike<number>, histLen: number, w: number): number;

  /** log10 p(word | context) for string tokens (context without <s> unless given). */
  logProb(word: string, context: readonly string[] = []): number {
    const ids = context.map((w) => this.vocab.id(w));
    return this.logProbIds(ids, ids.length, this.vocab.id(word));
  }

  /** Score tokenised text as KenLM's query does: <s> context, each word, then </s>. */
  score(tokens: readonly string[], opts: ScoreOptions = {}): SentenceScore {
    const bos = opts.bos ?? true, eos = opts.eos ?? true;
    const hist: number[] = bos ? [BOS_ID] : [];
    const words: WordScore[] = [];
    let total = 0, oov = 0;
    const step = (token: string, id: number, isOov: boolean): void => {
      const lp = this.logProbIds(hist, hist.length, id);
      total += lp;
      words.push({ token, logProb: lp, ngramLength: this.lastLength, oov: isOov });
      hist.push(id);
      if (hist.length > 64) hist.splice(0, hist.length - this.order);
    };
    for (const t of tokens) {
      const id = this.vocab.id(t);
      const isOov = id === UNK_ID;
      if (isOov) oov++;
      step(t, id, isOov);
    }
    if (eos) step(EOS, EOS_ID, false);
    return { logProb: total, oov, tokens: words.length, words };
  }

  /** Score a line of text, tokenised by the model's mode. */
  scoreText(line: string, opts: ScoreOptions = {}): SentenceScore {
    return this.score(tokenize(line, this.mode), opts);
  }

  /** Corpus totals and perplexity over sentences (strings are tokenised; empty lines count as `</s>` only). */
  perplexity(sentences: Iterable<string | readonly string[]>, opts: ScoreOptions = {}): CorpusScore {
    let n = 0, tokens = 0, oov = 0, logProb = 0, oovLogProb = 0;
    for (const s of sentences) {
      const r = typeof s === 'string' ? this.scoreText(s, opts) : this.score(s, opts);
      n++; tokens += r.tokens; oov += r.oov; logProb += r.logProb;
      for (const w of r.words) if (w.oov) oovLogProb += w.logProb;
    }
    return {
      sentences: n, tokens, oov, logProb,
      perplexity: Math.pow(10, -logProb / tokens),
      perplexityExclOov: Math.pow(10, -(logProb - oovLogProb) / (tokens - oov)),
    };
  }

  /**
   * "Which is most plausible": candidates sorted best first by total log10 probability, or by
   * log10 probability per token with `perToken` (fairer between different lengths).
   */
  rank(candidates: readonly string[], opts: ScoreOptions & { perToken?: boolean } = {}): { text: string; logProb: number; perToken: number; oov: number }[] {
    if (candidates.length === 0) throw new ClassicInputError('rank: no candidates given');
    const r = candidates.map((text) => {
      const s = this.scoreText(text, opts);
      return { text, logProb: s.logProb, perToken: s.logProb / Math.max(1, s.tokens), oov: s.oov };
    });
    const key = opts.perToken ? 'perToken' : 'logProb';
    return r.sort((a, b) => b[key] - a[key]);
  }

  /** The k most probable next tokens after `context` (preceded by <s> unless bos: false). */
  predictNext(context: readonly string[], k = 10, opts: { bos?: boolean; includeUnk?: boolean } = {}): { token: string; logProb: number }[] {
    const hist = [...(opts.bos ?? true ? [BOS_ID] : []), ...context.map((w) => this.vocab.id(w))];
    const out: { token: string; logProb: number }[] = [];
    for (let id = 0; id < this.vocab.size; id++) {
      if (id === BOS_ID || (id === UNK_ID && !opts.includeUnk)) continue;
      out.push({ token: this.vocab.words[id], logProb: this.logProbIds(hist, hist.length, id) });
    }
    return out.sort((a, b) => b.logProb - a.logProb).slice(0, k);
  }

  /**
   * Sample tokens after `prompt` until </s> or `maxTokens`. `temperature` rescales log
   * probabilities, `topK` keeps the k most probable tokens. <unk> is never sampled.
   */
  generate(opts: { prompt?: readonly string[]; maxTokens?: number; temperature?: number; topK?: number; seed?: number } = {}): string[] {
    const rng = new Rng(opts.seed ?? 1);
    const temperature = opts.temperature ?? 1;
    if (!(temperature > 0)) throw new ClassicInputError(`generate: temperature must be > 0, got ${temperature}`);
    const hist = [BOS_ID, ...(opts.prompt ?? []).map((w) => this.vocab.id(w))];
    const out: string[] = [];
    const V = this.vocab.size;
    const p = new Float64Array(V);
    for (let step = 0; step < (opts.maxTokens ?? 50); step++) {
      let max = -Infinity;
      for (let id = 0; id < V; id++) {
        p[id] = id === BOS_ID || id === UNK_ID ? -Infinity : this.logProbIds(hist, hist.length, id) / temperature;
        if (p[id] > max) max = p[id];
      }
      if (max === -Infinity) break;
      if (opts.topK && opts.topK < V) {
        const cut = Array.from(p).sort((a, b) => b - a)[opts.topK - 1];
        for (let id = 0; id < V; id++) if (p[id] < cut) p[id] = -Infinity;
      }
      let sum = 0;
      for (let id = 0; id < V; id++) { p[id] = p[id] === -Infinity ? 0 : Math.pow(10, p[id] - max); sum += p[id]; }
      let r = rng.next() * sum, pick = EOS_ID;
      for (let id = 0; id < V; id++) { r -= p[id]; if (p[id] > 0 && r <= 0) { pick = id; break; } }
      if (pick === EOS_ID) break;
      out.push(this.vocab.words[pick]);
      hist.push(pick);
    }
    return out;
  }

  /** Join tokens back into text (words with spaces; characters directly, ▁ as a space). */
  detokenize(tokens: readonly string[]): string {
    return this.mode === 'char' ? tokens.map((t) => (t === SPACE_TOKEN ? ' ' : t)).join('') : tokens.join(' ');
  }
}

/**
 * A backoff model as in an ARPA file: for each stored n-gram a log10 probability and (below the
 * highest order) a log10 backoff weight. Kneser–Ney models and ARPA files load into this.
 */
export class BackoffNgramModel extends NgramModel {
  private buf: Int32Array;
  /** Discounts used per order (index n-1: [D1, D2, D3+]), when estimated here. */
  discounts: [number, number, number][] = [];
  /**
   * @param tables tables[n-1]: order-n n-grams, `val` = log10 p, `val2` = log10 backoff.
   */
  constructor(order: number, vocab: Vocab, readonly tables: NgramTable[], mode: TokenMode = 'word') {
    super(order, vocab, mode);
    this.buf = new Int32Array(order);
  }

  logProbIds(hist: ArrayLike<number>, histLen: number, w: number): number {
    const c = Math.min(this.order - 1, histLen), buf = this.buf;
    for (let i = 0; i < c; i++) buf[i] = hist[histLen - c + i];
    buf[c] = w;
    let bo = 0;
    for (let len = c; len >= 0; len--) {
      const off = c - len;
      const t = this.tables[len];
      const s = t.find(buf, off);
      if (s >= 0) { this.lastLength = len + 1; return bo + t.val[s]; }
      if (len > 0) {
        const ct = this.tables[len - 1];
        const cs = ct.find(buf, off);
        if (cs >= 0 && ct.val2) bo += ct.val2[cs];
      }
    }
    this.lastLength = 0;
    return -Infinity; // only when the word has no unigram (never for a vocabulary id)
  }

  /** Number of stored n-grams per order. */
  get counts(): number[] { return this.tables.map((t) => t.size); }
}

/** Maximum likelihood and add-k estimates straight from raw counts (not interpolated). */
export class CountNgramModel extends NgramModel {
  private buf: Int32Array;
  private unigramTotal = 0;
  constructor(readonly counts: NgramCounts, readonly estimator: 'mle' | 'addk', readonly k: number, mode: TokenMode = 'word') {
    super(counts.order, counts.vocab, mode);
    if (estimator === 'addk' && !(k > 0)) throw new ClassicInputError(`add-k: k must be > 0, got ${k}`);
    this.buf = new Int32Array(counts.order);
    const u = counts.tables[0];
    for (const s of u.slots()) if (u.keys[s] !== BOS_ID) this.unigramTotal += u.val[s];
  }

  /** Vocabulary size used by add-k: every type except <s> (so <unk> and </s> included). */
  get V(): number { return this.vocab.size - 1; }

  logProbIds(hist: ArrayLike<number>, histLen: number, w: number): number {
    const c = Math.min(this.order - 1, histLen), buf = this.buf;
    for (let i = 0; i < c; i++) buf[i] = hist[histLen - c + i];
    buf[c] = w;
    this.lastLength = c + 1;
    const t = this.counts.tables[c];
    const s = t.find(buf, 0);
    const num = s >= 0 ? t.val[s] : 0;
    let den: number;
    if (c === 0) den = this.unigramTotal;
    else {
      const ct = this.counts.tables[c - 1];
      const cs = ct.find(buf, 0);
      den = cs >= 0 ? ct.val[cs] : 0;
    }
    if (w === BOS_ID) return -Infinity;
    const p = this.estimator === 'mle' ? (den > 0 ? num / den : 0) : (num + this.k) / (den + this.k * this.V);
    return Math.log10(p);
  }
}

/** KenLM's fallback discounts (lmplz --discount_fallback). */
export const FALLBACK_DISCOUNTS: [number, number, number] = [0.5, 1, 1.5];

/** Count-of-counts t[k] (k = 1..4) of each order's adjusted counts, and the discounts from them. */
export function estimateDiscounts(countOfCounts: number[][], modified: boolean, opts: Pick<NgramTrainOptions, 'discount' | 'discountFallback' | 'onWarning'> = {}): [number, number, number][] {
  return countOfCounts.map((t, i) => {
    const n = i + 1;
    try {
      if (!modified) {
        if (opts.discount !== undefined) {
          if (!(opts.discount > 0 && opts.discount <= 1)) throw new ClassicInputError(`Kneser–Ney discount must be in (0, 1], got ${opts.discount}`);
          return [opts.discount, opts.discount, opts.discount];
        }
        if (t[1] === 0) throw new DiscountError(`Could not estimate the Kneser–Ney discount for ${n}-grams: no ${n}-gram has adjusted count 1 (t1 = 0); is this small or artificial data? Pass discountFallback (CLI: --discount-fallback) or a fixed discount.`);
        const d = t[1] / (t[1] + 2 * t[2]);
        return [d, d, d];
      }
      for (let k = 1; k <= 3; k++) {
        if (t[k] === 0) throw new DiscountError(`Could not estimate modified Kneser–Ney discounts for ${n}-grams: no ${n}-gram has adjusted count ${k} (count-of-counts t1..t4 = ${t.slice(1, 5).join(', ')}); is this small or artificial data? Pass discountFallback (CLI: --discount-fallback) to use D1=0.5 D2=1 D3+=1.5 as KenLM does.`);
      }
      const y = t[1] / (t[1] + 2 * t[2]);
      const d: number[] = [];
      for (let k = 1; k <= 3; k++) {
        const dk = k - (k + 1) * y * t[k + 1] / t[k];
        if (!(dk >= 0 && dk <= k)) throw new DiscountError(`modified Kneser–Ney discount for ${n}-grams with adjusted count ${k} is out of range: D${k} = ${dk} (count-of-counts t1..t4 = ${t.slice(1, 5).join(', ')}); the data is too small or unusual. Pass discountFallback (CLI: --discount-fallback) to use D1=0.5 D2=1 D3+=1.5 as KenLM does.`);
        d.push(dk);
      }
      return d as [number, number, number];
    } catch (e) {
      if (!(e instanceof DiscountError) || !opts.discountFallback) throw e;
      const fb: [number, number, number] = opts.discountFallback === true ? (modified ? FALLBACK_DISCOUNTS : [0.5, 0.5, 0.5]) : opts.discountFallback;
      opts.onWarning?.(`${e.message.split(';')[0]}; substituting fallback discounts for order ${n}: D1=${fb[0]} D2=${fb[1]} D3+=${fb[2]}`);
      return fb;
    }
  });
}

function discountOf(d: [number, number, number], a: number): number {
  return a >= 3 ? d[2] : a >= 1 ? d[a - 1] : 0;
}

/**
 * Interpolated (modified) Kneser–Ney from raw counts, in place (the count tables become the
 * model's probability tables), following lmplz:
 *  - adjusted counts: highest order and n-grams that start with <s> keep their raw counts; other
 *    lower-order n-grams count their distinct left extensions;
 *  - per order, D1, D2, D3+ from the count-of-counts t1..t4 of adjusted counts (Chen & Goodman
 *    eq. 26), or one D = t1/(t1+2 t2) for plain KN;
 *  - p(w|ctx) = (a(ctx w) - D(a)) / Σ a(ctx ·) + γ(ctx) p(w|ctx'), γ(ctx) = Σ_k D_k N_k(ctx ·) / Σ a(ctx ·);
 *  - unigrams interpolate with the uniform distribution over the vocabulary without <s>
 *    (so <unk> gets γ(ε)/|V|).
 */
export function estimateKneserNey(counts: NgramCounts, modified: boolean, opts: Omit<NgramTrainOptions, 'order'> = {}): BackoffNgramModel {
  const N = counts.order, T = counts.tables;
  if (counts.words === 0) throw new ClassicInputError('cannot estimate an n-gram model from an empty corpus (no words)');
  T[0].insert([UNK_ID], 0); // <unk> is in every model, with adjusted count 0 unless the text had it
  // 1. Adjusted counts, top-down (only the keys of order n+1 are needed, so in place).
  for (let n = N - 1; n >= 1; n--) {
    const lo = T[n - 1], hi = T[n];
    for (const s of lo.slots()) if (lo.keys[s * n] !== BOS_ID) lo.val[s] = 0;
    for (const s of hi.slots()) lo.val[lo.find(hi.keys, s * (n + 1) + 1)] += 1;
  }
  const bosSlot = T[0].find([BOS_ID], 0);
  T[0].val[bosSlot] = 0;
  // 2. Count-of-counts and discounts.
  const coc = T.map((t) => {
    const c = [0, 0, 0, 0, 0];
    for (const s of t.slots()) { const a = t.val[s]; if (a >= 1 && a <= 4) c[a]++; }
    return c;
  });
  const D = estimateDiscounts(coc, modified, opts);
  // 3. Per-context denominators Σ a(ctx ·) and γ numerators Σ D(a(ctx w)); the context of an
  //    order-n n-gram is an order-(n-1) n-gram, so its stats live at that table's slot.
  const den: Float64Array[] = [], gam: Float64Array[] = [];
  let den0 = 0, gam0 = 0;
  for (const s of T[0].slots()) { const a = T[0].val[s]; den0 += a; gam0 += discountOf(D[0], a); }
  for (let n = 2; n <= N; n++) {
    const t = T[n - 1], ct = T[n - 2];
    const dn = new Float64Array(ct.capacity), gn = new Float64Array(ct.capacity);
    for (const s of t.slots()) {
      const a = t.val[s], c = ct.find(t.keys, s * n);
      dn[c] += a; gn[c] += discountOf(D[n - 1], a);
    }
    den.push(dn); gam.push(gn);
  }
  // 4. Interpolated probabilities, bottom-up (the lower order is already a probability).
  const uniform = 1 / (T[0].size - 1);
  for (const s of T[0].slots()) {
    const a = T[0].val[s];
    T[0].val[s] = Math.log10((a - discountOf(D[0], a)) / den0 + (gam0 / den0) * uniform);
  }
  T[0].val[bosSlot] = -99;
  for (let n = 2; n <= N; n++) {
    const t = T[n - 1], ct = T[n - 2], lower = T[n - 2];
    const dn = den[n - 2], gn = gam[n - 2];
    for (const s of t.slots()) {
      const a = t.val[s], c = ct.find(t.keys, s * n);
      const ls = lower.find(t.keys, s * n + 1);
      t.val[s] = Math.log10((a - discountOf(D[n - 1], a)) / dn[c] + (gn[c] / dn[c]) * Math.pow(10, lower.val[ls]));
    }
  }
  // 5. Backoff weights: log10 γ(ctx) for every n-gram that is a context.
  for (let n = 1; n < N; n++) {
    const t = T[n - 1], bo = t.ensureVal2(), dn = den[n - 1], gn = gam[n - 1];
    for (const s of t.slots()) bo[s] = dn[s] > 0 ? (gn[s] > 0 ? Math.log10(gn[s] / dn[s]) : -99) : 0;
  }
  const m = new BackoffNgramModel(N, counts.vocab, T, opts.mode ?? 'word');
  m.discounts = D;
  return m;
}

/** Build a model from counts with the chosen estimator (KN estimators consume the counts). */
export function estimate(counts: NgramCounts, opts: Omit<NgramTrainOptions, 'order'> = {}): NgramModel {
  const est = opts.estimator ?? 'mkn';
  if (counts.words === 0) throw new ClassicInputError('cannot estimate an n-gram model from an empty corpus (no words)');
  switch (est) {
    case 'mle': return new CountNgramModel(counts, 'mle', 0, opts.mode);
    case 'addk': return new CountNgramModel(counts, 'addk', opts.k ?? 1, opts.mode);
    case 'kn': return estimateKneserNey(counts, false, opts);
    case 'mkn': return estimateKneserNey(counts, true, opts);
    default: throw new ClassicInputError(`unknown estimator '${est as string}' (mle, addk, kn, mkn)`);
  }
}

/** Count and estimate from tokenised sentences. */
export function trainNgram(sentences: Iterable<readonly string[]>, opts: NgramTrainOptions): NgramModel {
  return estimate(countNgrams(sentences, opts), opts);
}

/** Count and estimate from a text file, one sentence per line (`mode` 'char' for Chinese). */
export function trainNgramFile(file: string, opts: NgramTrainOptions): NgramModel {
  const counts = countNgramsFile(file, opts);
  if (counts.words === 0) throw new ClassicInputError(`${file}: empty corpus (no tokens)`);
  return estimate(counts, opts);
}
