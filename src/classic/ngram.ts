// Statistical n-gram language models: counting over word or character tokens, and the
// estimators maximum likelihood, add-k, interpolated Kneser–Ney and interpolated modified
// Kneser–Ney (discounts D1, D2, D3+ from count-of-counts, as KenLM's lmplz computes them).
//
// Conventions (KenLM's): a sentence w1..wn is scored as <s> w1 .. wn </s>; <s> is only ever a
// context, never predicted (log10 p = -99 in ARPA); a word outside the vocabulary is <unk>.
// Probabilities are log10 throughout, as in ARPA files.
import { statSync } from 'node:fs';
import { NgramTable } from './table.js';
import { GramTable, ByteWordIndex, addOrders, readWordIds, type GramTableState } from './packed.js';
import { Worker } from 'node:worker_threads';
import { ClassicInputError, DiscountError } from './errors.js';
import { Rng, SPACE_TOKEN, tokenize, readLines, type TokenMode } from './text.js';

export const UNK = '<unk>', BOS = '<s>', EOS = '</s>';
export const UNK_ID = 0, BOS_ID = 1, EOS_ID = 2;

/** Word ↔ id. Ids 0, 1, 2 are always <unk>, <s>, </s>. */
export class Vocab {
  readonly words: string[] = [UNK, BOS, EOS];
  private readonly index = new Map<string, number>([[UNK, UNK_ID], [BOS, BOS_ID], [EOS, EOS_ID]]);
  /** words[0 .. indexed) are in the index; later ones were pushed (known new) and are indexed on the next lookup. */
  private indexed = 3;
  get size(): number { return this.words.length; }
  /** The id of a word, or UNK_ID when absent. */
  id(w: string): number { return this.catchUp().get(w) ?? UNK_ID; }
  has(w: string): boolean { return this.catchUp().has(w); }
  add(w: string): number {
    const index = this.catchUp();
    let i = index.get(w);
    if (i === undefined) { i = this.words.length; this.words.push(w); index.set(w, i); this.indexed++; }
    return i;
  }
  /** Add a word the caller knows is not in the vocabulary yet (no lookup now); returns its id. */
  push(w: string): number {
    this.words.push(w);
    return this.words.length - 1;
  }
  private catchUp(): Map<string, number> {
    const { words, index } = this;
    for (; this.indexed < words.length; this.indexed++) index.set(words[this.indexed], this.indexed);
    return index;
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

/** Tokens of sentences counted together above order 1 (a longer sentence gets a batch of its own). */
const COUNT_BATCH = 1 << 14;

/**
 * Raw n-gram counts of every order 1..N over <s> w1 .. wn </s>, packed: unigram counts by word
 * id, and for each order n >= 2 a GramTable keyed by (order n-1 entry, last word id).
 */
export class NgramCounts {
  readonly vocab = new Vocab();
  /** Unigram counts by word id (the first vocab.size entries are meaningful). */
  unigrams = new Float64Array(1 << 14);
  sentences = 0;
  /** Words counted, excluding <s> and </s>. */
  words = 0;
  private buf = new Int32Array(256);
  private readonly G: GramTable[];
  /** Sentences not yet counted above order 1: <s> w1 .. wn </s> one after another, bl tokens. */
  private batch: Int32Array = new Int32Array(COUNT_BATCH);
  private bl = 0;
  /** Per order n >= 2 (index n - 2): the entry of the n-gram starting at each batch position, or -1. */
  private ent: Int32Array[];
  private t0 = performance.now();
  private lastReport = 0;
  private cached: NgramTable[] | null = null;
  private split: { from: number; post: (T: Int32Array, E: Int32Array, L: number) => void } | null = null;

  /** `capacity`: expected distinct n-grams of an order (the tables grow past it). */
  constructor(readonly order: number, private onProgress?: (line: string) => void, capacity = 1 << 16) {
    checkOrder(order);
    this.G = Array.from({ length: order - 1 }, () => new GramTable(capacity));
    this.ent = Array.from({ length: order - 1 }, () => new Int32Array(COUNT_BATCH));
  }

  /** grams[n - 2] holds the n-grams of order n >= 2. */
  get grams(): GramTable[] {
    if (this.split) throw new Error('NgramCounts: the counts of a split count are read after finishSplit()');
    this.flush();
    return this.G;
  }

  /**
   * Count orders above `from` elsewhere (another thread): each batch's tokens and the entries of
   * its order-`from` n-grams go to `post`; finishSplit installs the tables counted there.
   */
  splitAbove(from: number, post: (T: Int32Array, E: Int32Array, L: number) => void): void {
    if (this.sentences > 0 || from < 2 || from >= this.order) throw new Error(`NgramCounts.splitAbove(${from}): before any sentence, with 2 <= from < order`);
    this.split = { from, post };
  }

  /** Flush the last batch to the other side, then install its tables (orders from+1..N, as GramTable.state gave them). */
  async finishSplit(tables: (flushed: () => void) => Promise<GramTableState[]>): Promise<void> {
    if (!this.split) return;
    const from = this.split.from;
    const states = await tables(() => this.flush());
    states.forEach((st, i) => { this.G[from - 1 + i] = GramTable.fromState(st); });
    this.split = null;
  }

  /** Count one sentence (tokens without <s>/</s>); `where` names it in errors. */
  add(tokens: readonly string[], where?: string): void {
    const len = tokens.length + 2;
    if (this.buf.length < len) this.buf = new Int32Array(len * 2);
    const ids = this.buf;
    for (let i = 0; i < tokens.length; i++) {
      const w = tokens[i];
      if (w === BOS || w === EOS) throw new ClassicInputError(`${where ?? `sentence ${this.sentences + 1}`}: the token '${w}' is reserved (sentence boundaries are added automatically)`);
      ids[i + 1] = this.vocab.add(w);
    }
    this.addIds(ids, len);
  }

  /**
   * Count one sentence of word ids: ids[1 .. len-2] are its words (vocabulary ids); ids[0] and
   * ids[len-1] are overwritten with <s> and </s>. Unigrams are counted at once; higher orders
   * a batch of sentences at a time (order by order, see GramTable.addRun).
   */
  addIds(ids: Int32Array, len: number): void {
    ids[0] = BOS_ID;
    ids[len - 1] = EOS_ID;
    if (this.unigrams.length < this.vocab.size) {
      const u = new Float64Array(Math.max(this.vocab.size, this.unigrams.length * 2));
      u.set(this.unigrams);
      this.unigrams = u;
    }
    const uni = this.unigrams;
    for (let i = 0; i < len; i++) uni[ids[i]]++;
    if (this.order > 1) {
      if (this.bl + len > this.batch.length) {
        this.flush();
        if (len > this.batch.length) {
          this.batch = new Int32Array(len);
          this.ent = this.ent.map(() => new Int32Array(len));
        }
      }
      const batch = this.batch, bl = this.bl;
      for (let i = 0; i < len; i++) batch[bl + i] = ids[i]; // (no subarray: an object per sentence)
      this.bl = bl + len;
    }
    this.cached = null;
    this.sentences++;
    this.words += len - 2;
    if (this.onProgress && (this.sentences & 0x3fff) === 0) {
      const now = performance.now();
      if (now - this.lastReport > 1000) {
        this.lastReport = now;
        const sec = (now - this.t0) / 1000;
        this.onProgress(`counting: ${this.sentences} sentences, ${this.words} words, ${Math.round(this.words / sec)} words/s`);
      }
    }
  }

  /** Count the batched sentences above order 1. */
  private flush(): void {
    const L = this.bl;
    if (L === 0) return;
    this.bl = 0;
    const T = this.batch;
    const split = this.split, top = split ? split.from : this.order;
    const prev = addOrders(this.G, this.ent, T, T, L, 2, top, EOS_ID);
    if (!prev) return;
    split?.post(T.slice(0, L), prev.slice(0, L - top + 1), L);
  }

  /** The word ids of entry `e` of order n into out[0 .. n). */
  wordsOf(n: number, e: number, out: Int32Array | number[]): void {
    for (let m = n; m >= 2; m--) {
      const g = this.G[m - 2];
      out[m - 1] = g.word[e];
      e = g.ctx[e];
    }
    out[0] = e;
  }

  /** The counts as hash tables keyed by full n-grams (tables[n - 1]: order n; made on first use). */
  get tables(): NgramTable[] {
    if (this.cached) return this.cached;
    this.flush();
    const N = this.order, key = new Int32Array(N);
    const out: NgramTable[] = [];
    const uni = new NgramTable(1, this.vocab.size);
    for (let id = 0; id < this.vocab.size; id++) if (this.unigrams[id] > 0) { key[0] = id; uni.val[uni.insert(key, 0)] = this.unigrams[id]; }
    out.push(uni);
    for (let n = 2; n <= N; n++) {
      const g = this.grams[n - 2], t = new NgramTable(n, g.size);
      for (let e = 0; e < g.size; e++) { this.wordsOf(n, e, key); t.val[t.insert(key, 0)] = g.count[e]; }
      out.push(t);
    }
    return (this.cached = out);
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

/** Expected distinct n-grams of an order for a file: about one per 8 bytes, up to 2M (tables sized so grow less often); a file that cannot be read is named. */
function fileCapacity(file: string): number {
  let bytes = 0;
  try { bytes = statSync(file).size; } catch (e) { throw new ClassicInputError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`); }
  return Math.max(1 << 12, Math.min(1 << 21, Math.floor(bytes / 8)));
}

/** Count a file's lines, split into words on bytes, into c. */
function countWordFile(file: string, c: NgramCounts): void {
  // ByteWordIndex calls this once per distinct byte sequence. A word without U+FFFD decodes from
  // exactly one byte sequence, so it is new to the vocabulary (<unk> is the one exception: reserved
  // words are never counted from text, but '<unk>' may be); two sequences decode to the same word
  // only through U+FFFD (invalid bytes), and only those words are looked up.
  const vocab = c.vocab;
  const words = new ByteWordIndex((w, lineNo) => {
    if (w === BOS || w === EOS) throw new ClassicInputError(`${file}:${lineNo}: the token '${w}' is reserved (sentence boundaries are added automatically)`);
    return w === UNK || w.includes('\ufffd') ? vocab.add(w) : vocab.push(w);
  });
  readWordIds(file, words, (ids, len) => c.addIds(ids, len));
}

/**
 * Count n-grams over a UTF-8 text file, one sentence per line, read in chunks (the file is never
 * held whole; the counts are). Word mode splits bytes on whitespace without a string per token.
 */
export function countNgramsFile(file: string, opts: NgramCountOptions & { mode?: TokenMode }): NgramCounts {
  const c = new NgramCounts(opts.order, opts.onProgress, fileCapacity(file));
  if ((opts.mode ?? 'word') === 'word') {
    countWordFile(file, c);
    return c;
  }
  for (const [line, no] of readLines(file)) {
    const t = tokenize(line, opts.mode ?? 'word');
    if (t.length > 0) c.add(t, `${file}:${no}`);
  }
  return c;
}

/**
 * countNgramsFile with a second thread (word mode, order >= 3): this thread reads the file and
 * counts the lower orders, the other counts the higher ones from each batch's entries. The same
 * counts (entries may be numbered differently; every result made from them is the same).
 */
export async function countNgramsFileParallel(file: string, opts: NgramCountOptions & { mode?: TokenMode }): Promise<NgramCounts> {
  const order = opts.order;
  if ((opts.mode ?? 'word') !== 'word' || !Number.isInteger(order) || order < 3) return countNgramsFile(file, opts);
  const capacity = fileCapacity(file), from = Math.ceil(order / 2);
  const c = new NgramCounts(order, opts.onProgress, capacity);
  // Batches done by the worker, and a failure flag: the reader waits when it is more than
  // MAX_AHEAD batches ahead, so memory stays bounded when the worker is the slower side.
  const progress = new Int32Array(new SharedArrayBuffer(8));
  const MAX_AHEAD = 32;
  let posted = 0;
  const w = new Worker(new URL('./ngram-count-worker.js', import.meta.url), { workerData: { from, order, capacity, progress } });
  const result = new Promise<GramTableState[]>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
    w.once('exit', (code) => reject(new Error(`the counting thread stopped (exit code ${code}) before finishing ${file}`)));
  });
  result.catch(() => {}); // awaited below unless reading the file fails first (then the thread is stopped)
  try {
    c.splitAbove(from, (T, E, L) => {
      w.postMessage({ T, E, L }, [T.buffer, E.buffer] as ArrayBuffer[]);
      posted++;
      // (A thread that stopped without a word is noticed after 30 s without progress; its exit is reported at the end.)
      for (let idle = 0; idle < 30;) {
        const done = Atomics.load(progress, 0);
        if (posted - done <= MAX_AHEAD || Atomics.load(progress, 1)) break;
        if (Atomics.wait(progress, 0, done, 1000) === 'timed-out') idle++;
        else idle = 0;
      }
    });
    countWordFile(file, c);
    await c.finishSplit((flushed) => { flushed(); w.postMessage(null); return result; });
  } finally {
    await w.terminate();
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
 * A model estimated here, in the packed form it was counted in: log10 probabilities prob[n - 1]
 * and backoffs bo[n - 1] (null for the highest order) per entry; order 1 is indexed by word id,
 * order n >= 2 by the entry of counts.grams[n - 2].
 */
export interface PackedBackoff {
  counts: NgramCounts;
  prob: Float64Array[];
  bo: (Float64Array | null)[];
}

/**
 * A backoff model as in an ARPA file: for each stored n-gram a log10 probability and (below the
 * highest order) a log10 backoff weight. Kneser–Ney models and ARPA files load into this.
 */
export class BackoffNgramModel extends NgramModel {
  private buf: Int32Array;
  private _tables: NgramTable[] | null;
  /** Discounts used per order (index n-1: [D1, D2, D3+]), when estimated here. */
  discounts: [number, number, number][] = [];
  /**
   * @param tables tables[n-1]: order-n n-grams, `val` = log10 p, `val2` = log10 backoff; or null
   *   with `packed` (the tables are then made from it on first use).
   */
  constructor(order: number, vocab: Vocab, tables: NgramTable[] | null, mode: TokenMode = 'word', readonly packed: PackedBackoff | null = null) {
    super(order, vocab, mode);
    if (!tables && !packed) throw new ClassicInputError('BackoffNgramModel needs tables or a packed model');
    this._tables = tables;
    this.buf = new Int32Array(order);
  }

  /** tables[n-1]: order-n n-grams keyed by their word ids, `val` = log10 p, `val2` = log10 backoff. */
  get tables(): NgramTable[] {
    if (this._tables) return this._tables;
    const { counts, prob, bo } = this.packed!;
    const N = this.order, V = this.vocab.size, key = new Int32Array(N);
    const out: NgramTable[] = [];
    for (let n = 1; n <= N; n++) {
      const size = n === 1 ? V : counts.grams[n - 2].size;
      const t = new NgramTable(n, size), p = prob[n - 1], b = bo[n - 1];
      const val2 = b ? t.ensureVal2() : null;
      for (let e = 0; e < size; e++) {
        counts.wordsOf(n, e, key);
        const s = t.insert(key, 0);
        t.val[s] = p[e];
        if (val2) val2[s] = b![e];
      }
      out.push(t);
    }
    return (this._tables = out);
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
  get counts(): number[] {
    if (this._tables) return this._tables.map((t) => t.size);
    return [this.vocab.size, ...this.packed!.counts.grams.slice(0, this.order - 1).map((g) => g.size)];
  }
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
    const tables = this.counts.tables;
    const t = tables[c];
    const s = t.find(buf, 0);
    const num = s >= 0 ? t.val[s] : 0;
    let den: number;
    if (c === 0) den = this.unigramTotal;
    else {
      const ct = tables[c - 1];
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

/** out[e] = flags[ctx[e]] for e < size. */
function gatherFlags(flags: Uint8Array, ctx: Int32Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let e = 0; e < size; e++) out[e] = flags[ctx[e]];
  return out;
}

/** Adjusted counts of an order below the highest: raw counts where `bos` is set, plus one per distinct left extension (an entry of the order above with this suffix). */
function adjustedCounts(raw: Float64Array, bos: Uint8Array, size: number, hiSuffix: Int32Array, hiSize: number): Float64Array {
  const an = new Float64Array(size);
  for (let e = 0; e < size; e++) if (bos[e]) an[e] = raw[e];
  for (let e = 0; e < hiSize; e++) an[hiSuffix[e]] += 1;
  return an;
}

/** How many entries have adjusted count 1, 2, 3, 4 (index = count). */
function countOfCounts(an: Float64Array): number[] {
  const c = [0, 0, 0, 0, 0];
  for (let e = 0; e < an.length; e++) { const x = an[e]; if (x >= 1 && x <= 4) c[x]++; }
  return c;
}

/**
 * Per context c < cs (the context of entry e is ctx[e]): Σ a(ctx ·) and γ = D1 N1 + D2 N2 + D3+ N3+
 * (N_k: continuations with adjusted count k, 3+). Four numbers side by side per context (one
 * cache line for the random reads here and in `interpolate`): Σ a, γ / Σ a, γ, and a spare
 * (N1..N3+ while counting).
 */
function contextStats(an: Float64Array, ctx: Int32Array, size: number, cs: number, D: [number, number, number]): Float64Array {
  const st = new Float64Array(cs * 4);
  for (let e = 0; e < size; e++) {
    const x = an[e], q = ctx[e] * 4;
    st[q] += x;
    if (x >= 3) st[q + 3]++; else if (x === 2) st[q + 2]++; else if (x === 1) st[q + 1]++;
  }
  return gammas(st, D);
}

/** contextStats for unigrams: their one (empty) context. */
function unigramStats(an: Float64Array, D: [number, number, number]): Float64Array {
  const st = new Float64Array(4);
  for (let e = 0; e < an.length; e++) {
    const x = an[e];
    st[0] += x;
    if (x >= 3) st[3]++; else if (x === 2) st[2]++; else if (x === 1) st[1]++;
  }
  return gammas(st, D);
}

function gammas(st: Float64Array, D: [number, number, number]): Float64Array {
  const [d1, d2, d3] = D;
  for (let q = 0; q < st.length; q += 4) {
    const g = d1 * st[q + 1] + d2 * st[q + 2] + d3 * st[q + 3];
    st[q + 1] = g / st[q]; st[q + 2] = g; st[q + 3] = 0;
  }
  return st;
}

/** Entries interpolated at a time, and their context's Σ a, γ / Σ a and lower-order probability (see interpolate). */
const IBLOCK = 512;
const blockSum = new Float64Array(IBLOCK), blockGamma = new Float64Array(IBLOCK), blockLower = new Float64Array(IBLOCK);

/**
 * log10 of (a - D(a)) / Σ a(ctx ·) + γ(ctx) / Σ a(ctx ·) · lower[suffix[e]] for each entry, and the
 * probability itself into `lin` (the next order's `lower`; null for the highest order). A block
 * of entries at a time: first the reads at random places (context statistics, lower order) in a
 * loop of their own, so many are in flight, then the arithmetic and log10 (a loop that also did
 * the reads had few in flight: 1.2-1.4x the time on a table larger than the cache).
 */
function interpolate(an: Float64Array, ctx: Int32Array, suf: Int32Array, size: number, st: Float64Array, lower: Float64Array, D: [number, number, number], lin: Float64Array | null): Float64Array {
  const p = new Float64Array(size), [d1, d2, d3] = D;
  const S = blockSum, G = blockGamma, L = blockLower;
  for (let e0 = 0; e0 < size; e0 += IBLOCK) {
    const m = Math.min(IBLOCK, size - e0);
    for (let k = 0; k < m; k++) {
      const e = e0 + k, q = ctx[e] * 4;
      S[k] = st[q]; G[k] = st[q + 1]; L[k] = lower[suf[e]];
    }
    for (let k = 0; k < m; k++) {
      const x = an[e0 + k];
      const d = x >= 3 ? d3 : x === 2 ? d2 : x === 1 ? d1 : 0;
      const q = (x - d) / S[k] + G[k] * L[k];
      if (lin) lin[e0 + k] = q;
      p[e0 + k] = Math.log10(q);
    }
  }
  return p;
}

/** interpolate for unigrams: one context, and the uniform distribution below. */
function interpolateUnigrams(an: Float64Array, st: Float64Array, D: [number, number, number], uniform: number, lin: Float64Array): Float64Array {
  const p = new Float64Array(an.length), [d1, d2, d3] = D;
  for (let e = 0; e < an.length; e++) {
    const x = an[e];
    const d = x >= 3 ? d3 : x === 2 ? d2 : x === 1 ? d1 : 0;
    const q = (x - d) / st[0] + st[1] * uniform;
    lin[e] = q;
    p[e] = Math.log10(q);
  }
  return p;
}

/** log10 γ(ctx) / Σ a(ctx ·) for each context: -99 when γ is 0, 0 when the context has no continuation. */
function backoffs(st: Float64Array, size: number): Float64Array {
  const b = new Float64Array(size);
  for (let e = 0, q = 0; e < size; e++, q += 4) b[e] = st[q] > 0 ? (st[q + 2] > 0 ? Math.log10(st[q + 1]) : -99) : 0;
  return b;
}

/**
 * Interpolated (modified) Kneser–Ney from raw counts, following lmplz:
 *  - adjusted counts: highest order and n-grams that start with <s> keep their raw counts; other
 *    lower-order n-grams count their distinct left extensions;
 *  - per order, D1, D2, D3+ from the count-of-counts t1..t4 of adjusted counts (Chen & Goodman
 *    eq. 26), or one D = t1/(t1+2 t2) for plain KN;
 *  - p(w|ctx) = (a(ctx w) - D(a)) / Σ a(ctx ·) + γ(ctx) p(w|ctx'), γ(ctx) = Σ_k D_k N_k(ctx ·) / Σ a(ctx ·);
 *  - unigrams interpolate with the uniform distribution over the vocabulary without <s>
 *    (so <unk> gets γ(ε)/|V|).
 * Every step is a pass over the packed arrays (an n-gram's context and suffix are entry indices).
 * The counts are left as they were.
 */
export function estimateKneserNey(counts: NgramCounts, modified: boolean, opts: Omit<NgramTrainOptions, 'order'> = {}): BackoffNgramModel {
  const N = counts.order, G = counts.grams, V = counts.vocab.size;
  if (counts.words === 0) throw new ClassicInputError('cannot estimate an n-gram model from an empty corpus (no words)');
  const size = (n: number): number => (n === 1 ? V : G[n - 2].size);
  // Each pass is a small function of its own: V8 then optimises it once for all orders (a loop
  // in one large function had the whole function recompiled for each loop and order).
  // 1. Adjusted counts a[n - 1], top-down; <s>-initial n-grams keep their raw counts (the
  //    highest order's are its raw counts, not copied: nothing below writes to them).
  const a: Float64Array[] = new Array(N);
  a[N - 1] = N === 1 ? counts.unigrams.slice(0, V) : G[N - 2].count;
  // bos[n - 1][e]: entry e of order n starts with <s>.
  const bos: Uint8Array[] = [new Uint8Array(V)];
  bos[0][BOS_ID] = 1;
  for (let n = 2; n <= N; n++) bos.push(gatherFlags(bos[n - 2], G[n - 2].ctx, G[n - 2].size));
  for (let n = N - 1; n >= 1; n--) a[n - 1] = adjustedCounts(n === 1 ? counts.unigrams : G[n - 2].count, bos[n - 1], size(n), G[n - 1].suffix, G[n - 1].size);
  a[0][BOS_ID] = 0;
  // 2. Count-of-counts and discounts.
  const D = estimateDiscounts(a.map(countOfCounts), modified, opts);
  // 3. Per context: Σ a(ctx ·) and γ(ctx) (see contextStats). Contexts of order n live at the
  //    order n-1 entry; the unigrams' one context is the empty one.
  const uni = unigramStats(a[0], D[0]);
  const stat: Float64Array[] = [];
  for (let n = 2; n <= N; n++) stat.push(contextStats(a[n - 1], G[n - 2].ctx, G[n - 2].size, size(n - 1), D[n - 1]));
  // 4. Interpolated log10 probabilities, bottom-up (the lower order is already a probability);
  //    unigrams interpolate with the uniform distribution over the vocabulary without <s>.
  //    Each order also keeps its probabilities as they are (not 10^log10 p: the same ARPA bytes,
  //    checked by sha256 at orders 1-6 on Brown, without a Math.pow per entry) for the next.
  const prob: Float64Array[] = [];
  let lower = new Float64Array(V);
  {
    const p = interpolateUnigrams(a[0], uni, D[0], 1 / (V - 1), lower);
    p[BOS_ID] = -99;
    lower[BOS_ID] = Math.pow(10, -99); // as 10^log10 p gave (never read: no n-gram ends in <s>)
    prob.push(p);
  }
  for (let n = 2; n <= N; n++) {
    const g = G[n - 2];
    const lin = n < N ? new Float64Array(g.size) : null;
    prob.push(interpolate(a[n - 1], g.ctx, g.suffix, g.size, stat[n - 2], lower, D[n - 1], lin));
    if (lin) lower = lin;
  }
  // 5. Backoff weights: log10 γ(ctx) for every n-gram below the highest order.
  const bo: (Float64Array | null)[] = [];
  for (let n = 1; n < N; n++) bo.push(backoffs(stat[n - 1], size(n)));
  bo.push(null);
  const m = new BackoffNgramModel(N, counts.vocab, null, opts.mode ?? 'word', { counts, prob, bo });
  m.discounts = D;
  return m;
}

/** Build a model from counts with the chosen estimator. */
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

/** trainNgramFile with a second thread for counting (see countNgramsFileParallel). */
export async function trainNgramFileParallel(file: string, opts: NgramTrainOptions): Promise<NgramModel> {
  const counts = await countNgramsFileParallel(file, opts);
  if (counts.words === 0) throw new ClassicInputError(`${file}: empty corpus (no tokens)`);
  return estimate(counts, opts);
}

/** Count and estimate from a text file, one sentence per line (`mode` 'char' for Chinese). */
export function trainNgramFile(file: string, opts: NgramTrainOptions): NgramModel {
  const counts = countNgramsFile(file, opts);
  if (counts.words === 0) throw new ClassicInputError(`${file}: empty corpus (no tokens)`);
  return estimate(counts, opts);
}
