// word2vec (Mikolov et al. 2013), as the original word2vec.c: skip-gram or CBOW, negative
// sampling (unigram^0.75, drawn from an alias table) and/or hierarchical softmax over a Huffman tree,
// subsampling of frequent words, a window shrunk at random, linearly decaying learning rate,
// multi-threaded over worker threads that update shared weights without locks (with the hotWords
// option, each thread's own copies of the frequent words' rows, merged periodically). The inner loops
// run in a WebAssembly SIMD kernel (word2vec-wasm.ts, wasm/word2vec.ts) over one shared
// WebAssembly.Memory; the scalar reference in word2vec-kernel.ts is the fallback and the test oracle.
import { Worker } from 'node:worker_threads';
import { ClassicInputError } from './errors.js';
import { readLines, formatEta } from './text.js';
import { KeyedVectors } from './vectors.js';
import { MAX_CODE_LENGTH, EXP_TABLE_SIZE, LOSS_TABLE_SIZE, W2VRng, trainRange, type W2VParams, type W2VShared, type RangeResult } from './word2vec-kernel.js';
import { W2VLayout, W2VWasmThread, drawSlots, loadWord2VecModule, w2vMemory, writeTables } from './word2vec-wasm.js';

export interface Word2VecOptions {
  /** Skip-gram (false) or CBOW (true). word2vec.c default: CBOW. */
  cbow?: boolean;
  /** Vector dimension (default 100). */
  size?: number;
  /** Max distance between the current and the predicted word (default 5). */
  window?: number;
  /** Negative samples (default 5; 0 = none). */
  negative?: number;
  /** Hierarchical softmax (default false). */
  hs?: boolean;
  /** Skip-gram with negative sampling: draw one set of `negative` negatives per position and
   *  share it among the position's context words (as Ji et al., "Parallelizing word2vec in shared
   *  and distributed memory"), instead of a fresh set per context word as word2vec.c; a draw equal
   *  to the target or to an earlier draw of the position is left out. Fewer random rows per
   *  position, so faster; default false (word2vec.c's draws). No effect on CBOW, whose one
   *  prediction per position already has one set. */
  sharedNegatives?: boolean;
  /** With threads > 1 and the wasm kernel: the number of most frequent words whose input and
   *  negative-sampling output rows each thread trains in its own copy instead of the shared rows
   *  (every thread writes those words' rows most often: with two threads on two cores their cache
   *  lines otherwise move between the cores on nearly every update). A thread merges its copies
   *  into the shared rows (shared += copy − copy at its last merge; one thread at a time, so no
   *  merged update is lost) every `hotSync` words it reads and at the end of each chunk of work,
   *  and then copies the shared rows back: it sees the other threads' changes to those rows at its
   *  merges instead of as they happen (Hogwild). Default 128 for skip-gram with negative sampling
   *  and word2vec.c's per-context negatives (on two idle cores about 15% more words/s on Brown, see
   *  BENCHMARKS.md), else 0 (CBOW: no gain measured; HS alone, shared negatives: not measured);
   *  0 = off (word2vec.c's shared rows). One thread, or the js kernel, never uses copies, so one thread
   *  stays deterministic. Hierarchical softmax's rows are always shared. */
  hotWords?: number;
  /** Words a thread reads between merges of its hot rows (default 1000; see hotWords). */
  hotSync?: number;
  /** Subsampling threshold (default 1e-3; 0 = off). */
  sample?: number;
  /** Ignore words rarer than this (default 5). */
  minCount?: number;
  /** Epochs (default 5). */
  iter?: number;
  /** Starting learning rate (default 0.025 skip-gram, 0.05 CBOW). */
  alpha?: number;
  /** Worker threads (default 2); 1 trains on the calling thread. */
  threads?: number;
  seed?: number;
  /** Inner loops: 'wasm' (SIMD kernel, the default) or 'js' (the scalar reference, also chosen by
   *  TSLM_BACKEND=ref). Both draw the same random numbers; results agree to float rounding. */
  kernel?: 'wasm' | 'js';
  /** Progress lines (words/s, loss, ETA); e.g. `(s) => process.stderr.write(s + '\n')`. */
  onProgress?: (line: string) => void;
}

export interface EpochStats { epoch: number; loss: number; pairs: number; meanLoss: number; words: number; seconds: number; wordsPerSec: number }

export interface Word2VecResult {
  vectors: KeyedVectors; epochs: EpochStats[]; trainWords: number; seconds: number; wordsPerSec: number;
  /** The inner loops that ran: 'wasm-relaxed', 'wasm-simd' or 'js'. */
  kernel: string;
  /** Seconds to start the worker threads and the kernel instances (not in `seconds`). */
  startSeconds: number;
  /** CPU seconds of the process (all threads, user + system) while training: the same span as `seconds`. */
  cpuSeconds: number;
}

/** A corpus encoded as vocabulary ids (rare words already dropped). */
export interface Word2VecCorpus { words: string[]; counts: number[]; ids: Int32Array; sentStarts: Int32Array }

const MAX_SENTENCE = 10000;
/** Words per unit of work the threads share out (gensim's batch_words). */
const CHUNK_WORDS = 10000;
/** Defaults of hotWords (skip-gram with per-context negatives; anything else) and hotSync (see Word2VecOptions). */
const HOT_WORDS_SG = 128;
const HOT_WORDS_OTHER = 0;
const HOT_SYNC_WORDS = 1000;

/** Build the vocabulary (min_count, sorted by frequency like word2vec.c) and encode the corpus. */
export function buildCorpus(sentences: Iterable<readonly string[]>, minCount = 5): Word2VecCorpus {
  const counts = new Map<string, number>();
  const raw: string[][] = [];
  for (const s of sentences) {
    if (s.length === 0) continue;
    for (const w of s) counts.set(w, (counts.get(w) ?? 0) + 1);
    raw.push(s as string[]);
  }
  if (counts.size === 0) throw new ClassicInputError('word2vec: empty corpus (no words)');
  const vocab = [...counts.entries()].filter(([, c]) => c >= minCount).sort((a, b) => b[1] - a[1]);
  if (vocab.length === 0) throw new ClassicInputError(`word2vec: no word occurs at least min_count=${minCount} times (${counts.size} distinct words)`);
  const index = new Map(vocab.map(([w], i) => [w, i]));
  let n = 0;
  for (const s of raw) for (const w of s) if (index.has(w)) n++;
  const ids = new Int32Array(new SharedArrayBuffer(n * 4));
  const starts: number[] = [0];
  let p = 0;
  for (const s of raw) {
    let len = 0;
    for (const w of s) {
      const i = index.get(w);
      if (i === undefined) continue;
      ids[p++] = i;
      if (++len === MAX_SENTENCE) { starts.push(p); len = 0; }
    }
    if (p !== starts[starts.length - 1]) starts.push(p);
  }
  const sentStarts = new Int32Array(new SharedArrayBuffer(starts.length * 4));
  sentStarts.set(starts);
  return { words: vocab.map(([w]) => w), counts: vocab.map(([, c]) => c), ids, sentStarts };
}

/** Sentences of a text file: one per line, whitespace-separated tokens (any script, UTF-8). */
export function* fileSentences(file: string): Generator<string[]> {
  for (const [line] of readLines(file)) {
    const t = line.trim();
    if (t) yield t.split(/\s+/u);
  }
}

type SharedArray = Float32Array | Int32Array | Uint8Array | Float64Array;
type ArrayCtor<T extends SharedArray> = { new (b: SharedArrayBuffer, byteOffset?: number, length?: number): T; BYTES_PER_ELEMENT: number };
const shared = <T extends SharedArray>(C: ArrayCtor<T>, n: number): T =>
  new C(new SharedArrayBuffer(Math.max(1, n) * C.BYTES_PER_ELEMENT));
/** Where the arrays the inner loops touch are allocated: own SharedArrayBuffers, or one wasm memory. */
type Alloc = <T extends SharedArray>(C: ArrayCtor<T>, n: number) => T;

/** Huffman codes and inner-node paths from word counts (sorted descending), as word2vec.c. */
function huffman(counts: number[], alloc: Alloc = shared): { codes: Uint8Array; points: Int32Array; codeLen: Uint8Array } {
  const V = counts.length;
  const count = new Float64Array(V * 2 + 1).fill(1e15);
  for (let i = 0; i < V; i++) count[i] = counts[i];
  const binary = new Uint8Array(V * 2 + 1), parent = new Int32Array(V * 2 + 1);
  let pos1 = V - 1, pos2 = V;
  for (let a = 0; a < V - 1; a++) {
    const pick = (): number => {
      if (pos1 >= 0 && count[pos1] < count[pos2]) return pos1--;
      return pos2++;
    };
    const min1 = pick(), min2 = pick();
    count[V + a] = count[min1] + count[min2];
    parent[min1] = V + a; parent[min2] = V + a;
    binary[min2] = 1;
  }
  const codes = alloc(Uint8Array, V * MAX_CODE_LENGTH), points = alloc(Int32Array, V * MAX_CODE_LENGTH), codeLen = alloc(Uint8Array, V);
  const code: number[] = [], point: number[] = [];
  for (let a = 0; a < V; a++) {
    let b = a, i = 0;
    code.length = 0; point.length = 0;
    while (true) {
      code[i] = binary[b]; point[i] = b; i++;
      b = parent[b];
      if (b === V * 2 - 2) break;
    }
    if (i > MAX_CODE_LENGTH) throw new ClassicInputError(`word2vec: Huffman code longer than ${MAX_CODE_LENGTH} (vocabulary too skewed)`);
    codeLen[a] = i;
    points[a * MAX_CODE_LENGTH] = V - 2;
    for (let k = 0; k < i; k++) {
      codes[a * MAX_CODE_LENGTH + i - k - 1] = code[k];
      points[a * MAX_CODE_LENGTH + i - k] = point[k] - V;
    }
  }
  return { codes, points, codeLen };
}

/**
 * The unigram^0.75 distribution of negatives as an alias table (Walker; Vose's construction):
 * for word i, table[2i] is a threshold (u32) and table[2i + 1] an alias. A draw maps one 32-bit
 * random number r to i = ⌊r·V / 2³²⌋ and keeps i when the fraction r·V mod 2³² is below the
 * threshold, else takes the alias (aliasDraw in word2vec-kernel.ts). word2vec.c looks the draw up
 * in a table of 1e8 slots filled in proportion (we had V·200): the same distribution, but that
 * table (12 MB for Brown) missed the cache on nearly every draw, and this one (8 bytes a word)
 * stays in it.
 */
export function aliasTable(counts: number[], alloc: Alloc = shared): Int32Array {
  const V = counts.length;
  const table = alloc(Int32Array, 2 * V);
  let total = 0;
  for (const c of counts) total += Math.pow(c, 0.75);
  const q = new Float64Array(V);
  for (let i = 0; i < V; i++) q[i] = (Math.pow(counts[i], 0.75) / total) * V;
  const small: number[] = [], large: number[] = [];
  for (let i = 0; i < V; i++) (q[i] < 1 ? small : large).push(i);
  const thr = (x: number): number => Math.min(4294967295, Math.max(0, Math.round(x * 4294967296))) | 0;
  while (small.length && large.length) {
    const s = small.pop()!, l = large[large.length - 1];
    table[2 * s] = thr(q[s]); table[2 * s + 1] = l;
    q[l] -= 1 - q[s];
    if (q[l] < 1) { large.pop(); small.push(l); }
  }
  // What is left has probability 1 (up to rounding): always kept.
  for (const i of [...small, ...large]) { table[2 * i] = -1; table[2 * i + 1] = i; }
  return table;
}

/** Everything a training run shares between threads, ready to train (exported for tests). */
export interface Word2VecSetup {
  sh: W2VShared; params: W2VParams; threads: number; sentences: number; kernel: string;
  /** Chunk c is sentences [bounds[c], bounds[c+1]); threads take chunks from sh.nextChunk. */
  bounds: number[];
  /** The seeded stream that initialised syn0; single-thread training continues it. */
  rng: W2VRng;
}

/**
 * Validate options, build the vocabulary tables and initialise the weights as word2vec.c
 * (syn0 uniform in [-0.5/dim, 0.5/dim), output layers zero). With the wasm kernel every array
 * the inner loops touch is a view of one shared WebAssembly.Memory.
 */
export async function prepareWord2Vec(corpus: Word2VecCorpus, opts: Word2VecOptions = {}): Promise<Word2VecSetup> {
  const cbow = opts.cbow ?? true, dim = opts.size ?? 100, window = opts.window ?? 5;
  const negative = opts.negative ?? 5, hs = opts.hs ?? false, sample = opts.sample ?? 1e-3;
  const sharedNegatives = opts.sharedNegatives ?? false;
  const iter = opts.iter ?? 5, threads = opts.threads ?? 2, alpha = opts.alpha ?? (cbow ? 0.05 : 0.025);
  const hotWordsOpt = opts.hotWords ?? (!cbow && negative > 0 && !sharedNegatives ? HOT_WORDS_SG : HOT_WORDS_OTHER), syncWords = opts.hotSync ?? HOT_SYNC_WORDS;
  const check = (ok: boolean, what: string): void => { if (!ok) throw new ClassicInputError(`word2vec: ${what}`); };
  check(Number.isInteger(dim) && dim >= 1, `size must be an integer >= 1, got ${dim}`);
  check(Number.isInteger(window) && window >= 1, `window must be an integer >= 1, got ${window}`);
  check(Number.isInteger(negative) && negative >= 0, `negative must be an integer >= 0, got ${negative}`);
  check(hs || negative > 0, 'one of negative sampling (negative > 0) or hierarchical softmax (hs) is needed');
  check(Number.isInteger(iter) && iter >= 1, `iter must be an integer >= 1, got ${iter}`);
  check(Number.isInteger(threads) && threads >= 1, `threads must be an integer >= 1, got ${threads}`);
  check(alpha > 0, `alpha must be > 0, got ${alpha}`);
  check(Number.isInteger(hotWordsOpt) && hotWordsOpt >= 0, `hotWords must be an integer >= 0, got ${hotWordsOpt}`);
  check(Number.isInteger(syncWords) && syncWords >= 1, `hotSync must be an integer >= 1, got ${syncWords}`);
  check(sample >= 0, `sample must be >= 0, got ${sample}`);
  const kernelOpt = opts.kernel ?? (process.env.TSLM_BACKEND === 'ref' ? 'js' : 'wasm');
  check(kernelOpt === 'wasm' || kernelOpt === 'js', `kernel must be 'wasm' or 'js', got ${String(kernelOpt)}`);
  const V = corpus.words.length, trainWords = corpus.ids.length;
  check(trainWords > 0, 'empty corpus (no words after min_count)');
  check(!hs || V >= 2, `hierarchical softmax needs at least 2 words in the vocabulary, got ${V}`);
  const S = corpus.sentStarts.length - 1;

  // Where the inner loops' arrays live: one wasm memory (planned here, then viewed) or own buffers.
  const mod = kernelOpt === 'wasm' ? await loadWord2VecModule() : null;
  let alloc: Alloc = shared;
  let wasm: W2VShared['wasm'] = null;
  let k = 0;
  const at: number[] = [];
  if (mod) {
    let senCap = 1;
    for (let s = 0; s < S; s++) senCap = Math.max(senCap, corpus.sentStarts[s + 1] - corpus.sentStarts[s]);
    const L = new W2VLayout();
    const plan = (bytes: number): number => { const o = L.take(bytes); at.push(o); return o; };
    // The same sequence of allocations as below, in bytes.
    plan(V * dim * 4);                                       // syn0
    if (hs) { plan(V * MAX_CODE_LENGTH); plan(V * MAX_CODE_LENGTH * 4); plan(V); plan(V * dim * 4); } // codes, points, codeLen, syn1
    if (negative > 0) { plan(V * dim * 4); plan(2 * V * 4); } // syn1neg, alias table
    const expAt = L.take((EXP_TABLE_SIZE + 1) * 4), lossAt = L.take((LOSS_TABLE_SIZE + 1) * 8);
    const hotWords = threads > 1 ? Math.min(V, hotWordsOpt) : 0;
    const scratch = Array.from({ length: threads }, () => ({ neu1: L.take(dim * 4), neu1e: L.take(dim * 4), sen: L.take(senCap * 4), senCap, negs: L.take(drawSlots(window, negative, dim) * 4), hot: hotWords ? L.take(4 * hotWords * dim * 4) : 0 }));
    const memory = w2vMemory(L);
    writeTables(memory, expAt, lossAt);
    alloc = <T extends SharedArray>(C: ArrayCtor<T>, n: number): T => new C(memory.buffer as unknown as SharedArrayBuffer, at[k++], n);
    wasm = { module: mod.module, variant: mod.variant, memory, expTable: expAt, lossTable: lossAt, scratch, hotWords, syncWords, hotLock: shared(Int32Array, 1) };
  }

  const rng = new W2VRng(opts.seed ?? 1);
  const syn0 = alloc(Float32Array, V * dim);
  for (let i = 0; i < syn0.length; i++) syn0[i] = (rng.uniform() - 0.5) / dim;
  const tree = hs ? huffman(corpus.counts, alloc) : null;
  const syn1 = hs ? alloc(Float32Array, V * dim) : null;
  const syn1neg = negative > 0 ? alloc(Float32Array, V * dim) : null;
  const table = negative > 0 ? aliasTable(corpus.counts, alloc) : null;
  if (wasm && k !== at.length) throw new Error(`word2vec: planned ${at.length} regions of the wasm memory, allocated ${k}`);
  const keep = shared(Float32Array, V);
  for (let i = 0; i < V; i++) {
    if (sample > 0) {
      const t = sample * trainWords, c = corpus.counts[i];
      keep[i] = Math.min(1, (Math.sqrt(c / t) + 1) * (t / c));
    } else keep[i] = 1;
  }
  const sh: W2VShared = {
    dim, vocabSize: V, syn0, syn1, syn1neg, table,
    codes: tree?.codes ?? null, points: tree?.points ?? null, codeLen: tree?.codeLen ?? null,
    corpus: corpus.ids, sentStarts: corpus.sentStarts, keep,
    progress: shared(Float64Array, threads),
    nextChunk: shared(Int32Array, 1),
    wasm,
  };
  const params: W2VParams = { cbow, window, negative, hs, sharedNegatives: sharedNegatives && !cbow && negative > 0, alpha, iter, trainWords };
  // Chunks of whole sentences of about CHUNK_WORDS words, which the threads take in turn from a
  // shared counter (as gensim's job queue), so that a thread slowed by other load on the machine
  // does not hold up the epoch.
  const bounds = [0];
  for (let s = 0; s < S; s++) {
    if (corpus.sentStarts[s + 1] - corpus.sentStarts[bounds[bounds.length - 1]] >= CHUNK_WORDS) bounds.push(s + 1);
  }
  if (bounds[bounds.length - 1] !== S) bounds.push(S);
  return { sh, params, threads, sentences: S, bounds, kernel: mod ? `wasm-${mod.variant}` : 'js', rng };
}

/** Train word2vec on an encoded corpus. */
export async function trainWord2VecCorpus(corpus: Word2VecCorpus, opts: Word2VecOptions = {}): Promise<Word2VecResult> {
  const { sh, params, threads, sentences: S, bounds, kernel, rng } = await prepareWord2Vec(corpus, opts);
  const { alpha, iter, trainWords } = params;
  const dim = sh.dim, syn0 = sh.syn0;

  // Threads start (and instantiate the kernel) before the clock does: `seconds` is training time.
  const ts = performance.now();
  const workers: Worker[] = [];
  if (threads > 1) {
    const url = new URL('./word2vec-worker.js', import.meta.url);
    const ready: Promise<void>[] = [];
    for (let t = 0; t < threads; t++) {
      const w = new Worker(url, { workerData: { shared: sh, params, tid: t, seed: (opts.seed ?? 1) * 7919 + t + 1 } });
      workers.push(w);
      ready.push(new Promise<void>((res, rej) => { w.once('message', () => res()); w.once('error', rej); }));
    }
    try {
      await Promise.all(ready);
    } catch (e) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw e;
    }
  }
  const local = threads === 1 && sh.wasm ? new W2VWasmThread(sh, 0) : null;
  const startSeconds = (performance.now() - ts) / 1000;
  const epochs: EpochStats[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const report = opts.onProgress;
  try {
    for (let e = 0; e < iter; e++) {
      const te = performance.now();
      let results: RangeResult[];
      let timer: NodeJS.Timeout | null = null;
      if (threads > 1) {
        if (report) {
          timer = setInterval(() => {
            let done = 0;
            for (let i = 0; i < threads; i++) done += sh.progress[i];
            const sec = (performance.now() - t0) / 1000, rate = done / sec;
            const lr = Math.max(alpha * 1e-4, alpha * (1 - done / (iter * trainWords + 1)));
            report(`word2vec: epoch ${e + 1}/${iter}  ${(100 * done / (iter * trainWords)).toFixed(1)}%  ${Math.round(rate)} words/s  alpha ${lr.toFixed(6)}  ETA ${formatEta((iter * trainWords - done) / rate)}`);
          }, 2000);
        }
        Atomics.store(sh.nextChunk, 0, 0);
        results = await Promise.all(workers.map((w) => new Promise<RangeResult>((res, rej) => {
          w.once('message', res);
          w.once('error', rej);
          w.postMessage({ bounds });
        })));
        if (timer) clearInterval(timer);
      } else {
        results = [local ? local.trainRange(params, 0, 0, S, rng) : trainRange(sh, params, 0, 0, S, rng)];
      }
      const loss = results.reduce((a, r) => a + r.loss, 0), pairs = results.reduce((a, r) => a + r.pairs, 0);
      const words = results.reduce((a, r) => a + r.words, 0), seconds = (performance.now() - te) / 1000;
      const st: EpochStats = { epoch: e + 1, loss, pairs, meanLoss: pairs ? loss / pairs : 0, words, seconds, wordsPerSec: words / seconds };
      epochs.push(st);
      if (report) {
        const elapsed = (performance.now() - t0) / 1000;
        report(`word2vec: epoch ${e + 1}/${iter} done: loss ${st.meanLoss.toFixed(4)} per prediction (${loss.toExponential(4)} total), ${Math.round(st.wordsPerSec)} words/s, ETA ${formatEta((elapsed / (e + 1)) * (iter - e - 1))}`);
      }
    }
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const vectors = new KeyedVectors(corpus.words, dim, new Float32Array(syn0));
  return { vectors, epochs, trainWords, seconds, wordsPerSec: (trainWords * iter) / seconds, kernel, startSeconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

/** Train word2vec on tokenised sentences. */
export async function trainWord2Vec(sentences: Iterable<readonly string[]>, opts: Word2VecOptions = {}): Promise<Word2VecResult> {
  return trainWord2VecCorpus(buildCorpus(sentences, opts.minCount ?? 5), opts);
}

/** Train word2vec on a text file (one sentence per line, whitespace-separated tokens). */
export async function trainWord2VecFile(file: string, opts: Word2VecOptions = {}): Promise<Word2VecResult> {
  try {
    return await trainWord2Vec(fileSentences(file), opts);
  } catch (e) {
    if (e instanceof ClassicInputError && /empty corpus|min_count/.test(e.message)) throw new ClassicInputError(`${file}: ${e.message}`);
    throw e;
  }
}
