// The word2vec training loop over a range of sentences (skip-gram or CBOW, negative sampling
// and/or hierarchical softmax), as in Mikolov's word2vec.c. Runs on the main thread or in a
// worker; the weights live in SharedArrayBuffers that all threads update without locks
// (Hogwild, like the original tool).
//
// This scalar version is the reference (Word2VecOptions.kernel 'js', TSLM_BACKEND=ref): the
// default inner loops are the WebAssembly SIMD kernel in wasm/word2vec.ts (driven by
// word2vec-wasm.ts), which draws the same random numbers in the same order and matches this
// to float rounding (test/classic/word2vec-wasm.test.ts).

export const MAX_EXP = 6;
export const EXP_TABLE_SIZE = 1000;
export const LOSS_TABLE_SIZE = 4096;
export const MAX_CODE_LENGTH = 40;

/** The shared state every thread sees (typed arrays over SharedArrayBuffers). */
export interface W2VShared {
  dim: number;
  vocabSize: number;
  syn0: Float32Array;
  syn1: Float32Array | null;      // hierarchical softmax output weights (vocabSize - 1 inner nodes)
  syn1neg: Float32Array | null;   // negative sampling output weights
  table: Int32Array | null;       // unigram^0.75 alias table: (threshold, alias) per word (aliasTable in word2vec.ts)
  codes: Uint8Array | null;       // Huffman codes, MAX_CODE_LENGTH per word
  points: Int32Array | null;      // Huffman inner-node indices, MAX_CODE_LENGTH per word
  codeLen: Uint8Array | null;
  corpus: Int32Array;             // word ids of the corpus, sentence after sentence
  sentStarts: Int32Array;         // sentence s is corpus[sentStarts[s] .. sentStarts[s+1])
  keep: Float32Array;             // subsampling: probability of keeping each word (1 = always)
  progress: Float64Array;         // words processed so far by each thread (all epochs)
  nextChunk: Int32Array;          // [0]: the next chunk of sentences a thread takes (Atomics.add)
  /** Set when the arrays above (weights, tables, codes) are views of one shared wasm memory
   *  and the wasm kernel (word2vec-wasm.ts) trains; null for the scalar reference below. */
  wasm: W2VWasmState | null;
}

/** What a thread needs to run the wasm kernel over the shared memory. */
export interface W2VWasmState {
  module: WebAssembly.Module;
  variant: 'relaxed' | 'simd';
  memory: WebAssembly.Memory;
  expTable: number;   // byte offsets in memory: sigmoid table (f32), loss table (f64)
  lossTable: number;
  /** Per thread: neu1, neu1e (dim f32 each), a sentence buffer of senCap i32 and the draw-ahead buffer. */
  scratch: { neu1: number; neu1e: number; sen: number; senCap: number; negs: number; hot: number }[];
  /** Threads > 1: words (0..hotWords-1, the most frequent) whose input and output rows each thread
   *  trains in its own copy at scratch.hot, merged into the shared rows every syncWords words read
   *  and at the end of each chunk; 0 = none. */
  hotWords: number;
  syncWords: number;
  /** A lock (0 free, 1 held) that makes the threads' merges of their hot rows one at a time. */
  hotLock: Int32Array;
}

export interface W2VParams {
  cbow: boolean;
  window: number;
  negative: number;
  hs: boolean;
  /** Skip-gram: one set of negatives per position, shared by its context words (see Word2VecOptions). */
  sharedNegatives: boolean;
  alpha: number;
  iter: number;
  trainWords: number;   // corpus words (after min_count) in one epoch
}

export interface RangeResult { loss: number; pairs: number; words: number }

export const expTable = new Float32Array(EXP_TABLE_SIZE + 1);
for (let i = 0; i <= EXP_TABLE_SIZE; i++) {
  const e = Math.exp(((i / EXP_TABLE_SIZE) * 2 - 1) * MAX_EXP);
  expTable[i] = e / (e + 1);
}
// -log σ(x) on [-MAX_EXP, MAX_EXP], for the loss.
export const lossTable = new Float64Array(LOSS_TABLE_SIZE + 1);
for (let i = 0; i <= LOSS_TABLE_SIZE; i++) {
  const x = ((i / LOSS_TABLE_SIZE) * 2 - 1) * MAX_EXP;
  lossTable[i] = Math.log1p(Math.exp(-x));
}
/** -log σ(x). */
function nls(x: number): number {
  if (x >= MAX_EXP) return Math.log1p(Math.exp(-x));
  if (x <= -MAX_EXP) return -x + Math.log1p(Math.exp(x));
  return lossTable[Math.round(((x + MAX_EXP) / (2 * MAX_EXP)) * LOSS_TABLE_SIZE)];
}

/** A negative drawn from the alias table (aliasTable in word2vec.ts) with one 32-bit random number r. */
export function aliasDraw(table: Int32Array, r: number): number {
  const V = table.length >> 1;
  const p = r * V, i = Math.floor(p / 4294967296);   // exact: r·V < 2^53
  return p - i * 4294967296 < (table[2 * i] >>> 0) ? i : table[2 * i + 1];
}

/** xorshift32 random numbers per thread. */
export class W2VRng {
  s: number;
  constructor(seed: number) { this.s = (seed * 2654435761) >>> 0 || 1; }
  next(): number {
    let x = this.s;
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    return (this.s = x >>> 0);
  }
  uniform(): number { return this.next() / 4294967296; }
}

/**
 * word2vec.c's learning rate: linear decay from alpha to alpha·1e-4 over all epochs' words, by
 * the words every thread has read (shared progress), refreshed every ~10,000 words.
 */
export class LearningRate {
  alpha: number;
  /** Words this thread has read (and reported in progress). */
  words = 0;
  private since = 0;
  private readonly total: number;
  private readonly min: number;
  constructor(private readonly p: W2VParams, private readonly progress: Float64Array, private readonly tid: number) {
    this.alpha = p.alpha;
    this.total = p.iter * p.trainWords + 1;
    this.min = p.alpha * 1e-4;
    this.flush();
  }
  /** Count n words read; refresh alpha every 10,000. */
  advance(n: number): void {
    this.since += n;
    if (this.since > 10000) this.flush();
  }
  /** Report the words read and refresh alpha. */
  flush(): void {
    const { progress } = this;
    progress[this.tid] += this.since;
    this.words += this.since;
    this.since = 0;
    let done = 0;
    for (let i = 0; i < progress.length; i++) done += progress[i];
    this.alpha = Math.max(this.min, this.p.alpha * (1 - done / this.total));
  }
}

/** The words of corpus[a, b) kept by subsampling (keep[w] < 1: kept with that probability), into sen; their count. */
export function subsample(corpus: Int32Array, a: number, b: number, keep: Float32Array, rng: W2VRng, sen: Int32Array): number {
  let n = 0;
  for (let i = a; i < b; i++) {
    const w = corpus[i];
    const k = keep[w];
    if (k < 1 && k < rng.uniform()) continue;
    sen[n++] = w;
  }
  return n;
}

/**
 * Train on sentences [from, to) once. `tid` indexes `progress`. Returns the summed loss
 * (negative log-likelihood of every prediction made), the number of (center, context)
 * pairs and the words read.
 */
export function trainRange(sh: W2VShared, p: W2VParams, tid: number, from: number, to: number, rng: W2VRng): RangeResult {
  const { dim, syn0, corpus, sentStarts, keep, progress } = sh;
  const neu1 = new Float32Array(dim), neu1e = new Float32Array(dim);
  let sen = new Int32Array(1024);
  const lr = new LearningRate(p, progress, tid);
  let loss = 0, pairs = 0;

  for (let s = from; s < to; s++) {
    const a = sentStarts[s], b = sentStarts[s + 1];
    if (sen.length < b - a) sen = new Int32Array((b - a) * 2);
    const n = subsample(corpus, a, b, keep, rng, sen);
    lr.advance(b - a);
    const alpha = lr.alpha;
    for (let pos = 0; pos < n; pos++) {
      const word = sen[pos];
      const red = rng.next() % p.window;
      const lo = Math.max(0, pos - p.window + red), hi = Math.min(n - 1, pos + p.window - red);
      if (p.cbow) {
        neu1.fill(0); neu1e.fill(0);
        let cw = 0;
        for (let c = lo; c <= hi; c++) {
          if (c === pos) continue;
          const off = sen[c] * dim;
          for (let j = 0; j < dim; j++) neu1[j] += syn0[off + j];
          cw++;
        }
        if (cw === 0) continue;
        for (let j = 0; j < dim; j++) neu1[j] /= cw;
        loss += predict(sh, p, rng, neu1, 0, word, neu1e, alpha);
        pairs++;
        for (let c = lo; c <= hi; c++) {
          if (c === pos) continue;
          const off = sen[c] * dim;
          for (let j = 0; j < dim; j++) syn0[off + j] += neu1e[j];
        }
      } else {
        // Shared negatives: `negative` draws per position with any context, a draw equal to the
        // target or to an earlier draw of the position left out.
        let negs: number[] | null = null;
        if (p.sharedNegatives && p.negative > 0 && hi > lo) {
          const table = sh.table!;
          negs = [];
          for (let d = 0; d < p.negative; d++) {
            const t = aliasDraw(table, rng.next());
            if (t !== word && !negs.includes(t)) negs.push(t);
          }
        }
        for (let c = lo; c <= hi; c++) {
          if (c === pos) continue;
          const l1 = sen[c] * dim;
          neu1e.fill(0);
          loss += predict(sh, p, rng, syn0, l1, word, neu1e, alpha, negs);
          pairs++;
          for (let j = 0; j < dim; j++) syn0[l1 + j] += neu1e[j];
        }
      }
    }
  }
  lr.flush();
  return { loss, pairs, words: lr.words };
}

/**
 * One prediction of `target` from the input vector inp[l1 .. l1+dim): accumulates the input
 * gradient into neu1e, updates the output weights, returns the loss -log p. The negatives are
 * drawn here, or given (`negs`, shared negatives).
 */
function predict(sh: W2VShared, p: W2VParams, rng: W2VRng, inp: Float32Array, l1: number, target: number, neu1e: Float32Array, alpha: number, negs: number[] | null = null): number {
  const dim = sh.dim;
  let loss = 0;
  if (p.hs) {
    const syn1 = sh.syn1!, codes = sh.codes!, points = sh.points!;
    const base = target * MAX_CODE_LENGTH, len = sh.codeLen![target];
    for (let d = 0; d < len; d++) {
      const l2 = points[base + d] * dim;
      let f = 0;
      for (let c = 0; c < dim; c++) f += inp[l1 + c] * syn1[l2 + c];
      const code = codes[base + d];
      loss += nls(code ? -f : f); // label 1 - code
      if (f <= -MAX_EXP || f >= MAX_EXP) continue;
      const g = (1 - code - expTable[((f + MAX_EXP) * (EXP_TABLE_SIZE / MAX_EXP / 2)) | 0]) * alpha;
      for (let c = 0; c < dim; c++) {
        const w = syn1[l2 + c];
        neu1e[c] += g * w;
        syn1[l2 + c] = w + g * inp[l1 + c];
      }
    }
  }
  const negative = p.negative;
  if (negative > 0) {
    const syn1neg = sh.syn1neg!, table = sh.table!;
    const draws = negs ? negs.length : negative;
    for (let d = 0; d <= draws; d++) {
      let t: number, label: number;
      if (d === 0) { t = target; label = 1; }
      else if (negs) { t = negs[d - 1]; label = 0; }
      else {
        t = aliasDraw(table, rng.next());
        if (t === target) continue;
        label = 0;
      }
      const l2 = t * dim;
      let f = 0;
      for (let c = 0; c < dim; c++) f += inp[l1 + c] * syn1neg[l2 + c];
      loss += nls(label ? f : -f);
      let g: number;
      if (f > MAX_EXP) g = (label - 1) * alpha;
      else if (f < -MAX_EXP) g = label * alpha;
      else g = (label - expTable[((f + MAX_EXP) * (EXP_TABLE_SIZE / MAX_EXP / 2)) | 0]) * alpha;
      for (let c = 0; c < dim; c++) {
        const w = syn1neg[l2 + c];
        neu1e[c] += g * w;
        syn1neg[l2 + c] = w + g * inp[l1 + c];
      }
    }
  }
  return loss;
}
