// ARPA back-off language model files: write, and read with the format's own checks (the
// \data\ counts must agree with the sections; every malformed line is reported by number).
import { openSync, writeSync, closeSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { NgramTable } from './table.js';
import { arpaSorts, gather, gatherInto } from './packed.js';
import { ArpaTextWriter, type ArpaOrder } from './arpa-text.js';
export { writeArpaNumber } from './arpa-text.js';
import { BackoffNgramModel, NgramModel, Vocab, UNK, BOS, EOS, UNK_ID, type NgramCounts } from './ngram.js';
import { ClassicFormatError, ClassicInputError } from './errors.js';
import { readLines, type TokenMode } from './text.js';
import { quoteShort } from '../tokenizers/guard.js';
import { packUtf8 } from '../tokenizers/tokenizer.js';

/** Most n-grams of one order an ARPA file may declare (the tables are typed arrays). */
export const MAX_ARPA_NGRAMS = 1 << 28;

/** How ARPA numbers are written: 8 significant digits as `toPrecision(8)`, 0 as `0`, log10 0 as `-99`. */
export function formatArpaNumber(x: number): string {
  if (x === 0) return '0';
  if (!Number.isFinite(x) || x <= -99) return '-99';
  return x.toPrecision(8);
}

/**
 * The packed model's orders in ARPA order, one at a time (unigrams in vocabulary order, higher
 * orders sorted by word id: two counting sorts per order), and the vocabulary's UTF-8 bytes.
 */
function packedArpa(model: BackoffNgramModel): { pool: Uint8Array; wOff: Int32Array; orders: Generator<ArpaOrder> } {
  const { counts, prob, bo } = model.packed!;
  const { pool, wOff } = vocabBytes(model.vocab.words);
  function* orders(): Generator<ArpaOrder> {
    // One pair of arrays holds every order's numbers in line order: the writer is done with an
    // order before it asks for the next (fewer fresh pages than a pair per order).
    const most = counts.grams.reduce((m, g) => Math.max(m, g.size), 0);
    let P: Float64Array | null = null, B: Float64Array | null = null;
    for (const s of arpaSorts(counts.grams, model.vocab.size)) {
      const p = prob[s.n - 1], b = bo[s.n - 1];
      if (!s.sorted) { yield { n: 1, prob: p, bo: b, sw: null, sc: null, total: s.total }; continue; }
      P ??= new Float64Array(most);
      if (b) B ??= new Float64Array(most);
      gatherInto(P, p, b ? B : null, b, s.sorted);
      yield { n: s.n, prob: P, bo: b ? B : null, sw: s.sw, sc: s.sc, total: s.total };
    }
  }
  return { pool, wOff, orders: orders() };
}

/** The UTF-8 bytes of words, word i at pool[wOff[i] .. wOff[i + 1]) (packUtf8). */
export function vocabBytes(words: readonly string[]): { pool: Uint8Array; wOff: Int32Array } {
  const { bytes, starts } = packUtf8(words);
  return { pool: bytes, wOff: starts };
}

function checkBackoff(model: NgramModel): asserts model is BackoffNgramModel {
  if (!(model instanceof BackoffNgramModel)) {
    throw new ClassicInputError('ARPA output needs a back-off model: train with the kn or mkn estimator (mle and add-k are not back-off models)');
  }
}

/**
 * ARPA text as UTF-8 chunks of whole lines (unigrams in vocabulary order, higher orders sorted
 * by word id). A chunk is a view of a reused buffer: consume it before asking for the next
 * (with `buffers` k > 1, before asking for the k-th after it: chunks take k buffers in turn).
 */
export function* arpaBytes(model: NgramModel, chunkBytes = 1 << 20, buffers = 1): Generator<Uint8Array> {
  checkBackoff(model);
  if (!model.packed) {
    const enc = new TextEncoder();
    for (const c of tableArpaChunks(model)) yield enc.encode(c);
    return;
  }
  const { pool, wOff, orders } = packedArpa(model);
  const w = new ArpaTextWriter(pool, wOff, model.order, chunkBytes, buffers);
  let c = w.header(model.counts);
  if (c) yield c;
  for (const o of orders) {
    if ((c = w.begin(o))) yield c;
    while ((c = w.fill())) yield c;
  }
  yield w.end();
}

/** ARPA text of a model held in full-key tables (e.g. one read from an ARPA file), chunk by chunk. */
function* tableArpaChunks(model: BackoffNgramModel): Generator<string> {
  const { tables, vocab, order } = model;
  yield '\n\\data\\\n' + tables.map((t, i) => `ngram ${i + 1}=${t.size}\n`).join('') + '\n';
  for (let n = 1; n <= order; n++) {
    const t = tables[n - 1], bo = n < order ? t.val2 : null;
    yield `\\${n}-grams:\n`;
    const slots = n === 1 ? Int32Array.from(t.slots()).sort((a, b) => t.keys[a] - t.keys[b]) : t.sortedSlots();
    let out = '';
    for (const s of slots) {
      let line = formatArpaNumber(t.val[s]) + '\t';
      for (let i = 0; i < n; i++) line += (i ? ' ' : '') + vocab.words[t.keys[s * n + i]];
      if (bo) line += '\t' + formatArpaNumber(bo[s]);
      out += line + '\n';
      if (out.length > 1 << 16) { yield out; out = ''; }
    }
    yield out + '\n';
  }
  yield '\\end\\\n';
}

/** ARPA text, chunk by chunk (each chunk whole lines). */
export function* arpaChunks(model: NgramModel): Generator<string> {
  const dec = new TextDecoder('utf-8');
  for (const c of arpaBytes(model)) yield dec.decode(c);
}

export function toArpa(model: NgramModel): string {
  return Array.from(arpaChunks(model)).join('');
}

/** Write an ARPA file (streamed in 1 MiB chunks). */
export function writeArpa(model: NgramModel, file: string): void {
  const fd = openSync(file, 'w');
  try {
    for (const c of arpaBytes(model)) {
      let off = 0;
      while (off < c.length) off += writeSync(fd, c, off, c.length - off);
    }
  } finally {
    closeSync(fd);
  }
}

/** Chunks of ARPA text writeArpaAsync fills ahead of the file's writes (one buffer each). */
const WRITE_BUFFERS = 4;

/**
 * writeArpa with the file's writes handed to libuv's thread pool: this thread makes the next
 * chunks of text while those before are copied to the file, in order (no second JavaScript
 * thread, so nothing more to start or compile). The same bytes as writeArpa.
 */
export async function writeArpaAsync(model: NgramModel, file: string): Promise<void> {
  checkBackoff(model);
  const fh = await open(file, 'w');
  const writeAll = async (c: Uint8Array): Promise<void> => {
    for (let off = 0; off < c.length;) off += (await fh.write(c, off, c.length - off)).bytesWritten;
  };
  // The writes one after another (`tail`: the last); `queued`: those of chunks whose buffer the
  // writer has not taken back. Before asking for the next chunk, at most WRITE_BUFFERS - 1 stay queued.
  let tail: Promise<void> = Promise.resolve();
  const queued: Promise<void>[] = [];
  let ok = false;
  try {
    for (const c of arpaBytes(model, 1 << 20, WRITE_BUFFERS)) {
      tail = tail.then(() => writeAll(c));
      queued.push(tail);
      while (queued.length > WRITE_BUFFERS - 1) await queued.shift();
    }
    await tail;
    ok = true;
  } finally {
    if (!ok) await tail.catch(() => {}); // the error thrown is the first one
    await fh.close();
  }
}

/**
 * Write an ARPA file with a second thread: the same bytes as writeArpa (which it uses for models
 * not estimated here). See ArpaWriterThread.
 */
export async function writeArpaParallel(model: NgramModel, file: string): Promise<void> {
  checkBackoff(model);
  if (!model.packed) { writeArpa(model, file); return; }
  await ArpaWriterThread.start(model.packed.counts, file).write(model);
}

/**
 * An ARPA file written by a second thread that starts from the counts, before the model is
 * estimated: it sorts every order into ARPA order (sortGrams) while this thread estimates and
 * hands each order's sort back; then `write` gathers the model's numbers into line order, order
 * by order, while the thread writes the text of the order before. The same bytes as writeArpa.
 * Call `write` with the model estimated from these counts, or `close` to stop the thread.
 */
export class ArpaWriterThread {
  private closed = false;
  /** Per order n >= 2 (index n - 2): its entries in ARPA order, once the thread has sent them. */
  private readonly sorts: Promise<Int32Array>[];

  private constructor(private readonly worker: Worker, private readonly done: Promise<void>, private readonly counts: NgramCounts, private readonly file: string) {
    const waiting: ((s: Int32Array) => void)[] = [];
    this.sorts = counts.grams.map((_, i) => new Promise<Int32Array>((resolve) => { waiting[i] = resolve; }));
    worker.on('message', (m: { n: number; sorted: Int32Array } | 'done') => { if (m !== 'done') waiting[m.n - 2](m.sorted); });
  }

  static start(counts: NgramCounts, file: string): ArpaWriterThread {
    const { pool, wOff } = vocabBytes(counts.vocab.words);
    // The thread's own copies of the keys (the counts stay whole here).
    const grams = counts.grams.map((g) => ({ ctx: g.ctx.slice(0, g.size), word: g.word.slice(0, g.size), size: g.size }));
    const worker = new Worker(new URL('./arpa-worker.js', import.meta.url), {
      workerData: { pool, wOff, grams }, transferList: grams.flatMap((g) => [g.ctx.buffer, g.word.buffer]) as ArrayBuffer[],
    });
    const done = new Promise<void>((resolve, reject) => {
      worker.on('message', (m) => { if (m === 'done') resolve(); });
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the ARPA writer thread stopped (exit code ${code}) before finishing ${file}`)));
    });
    done.catch(() => {}); // awaited in write (close stops the thread otherwise)
    return new ArpaWriterThread(worker, done, counts, file);
  }

  /** Write the model (estimated from the counts the thread started with) and stop the thread. */
  async write(model: NgramModel): Promise<void> {
    try {
      checkBackoff(model);
      if (model.packed?.counts !== this.counts) throw new ClassicInputError('ArpaWriterThread.write: the model was not estimated from the counts this writer started with');
      const { prob, bo } = model.packed;
      const fd = openSync(this.file, 'w');
      try {
        const post = (n: number, p: Float64Array, b: Float64Array | null): void => {
          this.worker.postMessage({ n, prob: p, bo: b }, (b ? [p.buffer, b.buffer] : [p.buffer]) as ArrayBuffer[]);
        };
        this.worker.postMessage({ fd, counts: model.counts });
        // Unigrams: copies of the model's own arrays; higher orders: gathered into line order (new arrays, moved).
        post(1, prob[0].slice(), bo[0] ? bo[0].slice() : null);
        for (let n = 2; n <= model.order; n++) {
          const sorted = await Promise.race([this.sorts[n - 2], this.done.then(() => { throw new Error('the ARPA writer thread finished early'); })]);
          const b = bo[n - 1];
          post(n, gather(prob[n - 1], sorted), b ? gather(b, sorted) : null);
        }
        await this.done;
      } finally {
        await this.close();
        closeSync(fd);
      }
    } finally {
      await this.close();
    }
  }

  /** Stop the thread (after write, or instead of it). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.worker.terminate();
  }
}

export interface ArpaReadOptions {
  mode?: TokenMode;
  /** Warnings, e.g. a missing <unk> (substituted with log10 p = -100, as KenLM does). */
  onWarning?: (msg: string) => void;
}

/** Read an ARPA file. */
export function readArpa(file: string, opts: ArpaReadOptions = {}): BackoffNgramModel {
  let size: number;
  try { size = statSync(file).size; } catch (e) { throw new ClassicInputError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`); }
  return parseArpaLines(readLines(file), file, opts, size);
}

/** Parse ARPA text (`name` is used in error messages). */
export function parseArpa(text: string, name = '<arpa>', opts: ArpaReadOptions = {}): BackoffNgramModel {
  function* lines(): Generator<[string, number]> {
    let no = 0;
    for (const l of text.split('\n')) yield [l.endsWith('\r') ? l.slice(0, -1) : l, ++no];
  }
  return parseArpaLines(lines(), name, opts, text.length);
}

/** `size`: the file's bytes (or the text's characters), which bound the counts \data\ may declare. */
function parseArpaLines(lines: Iterator<[string, number]>, file: string, opts: ArpaReadOptions, size: number): BackoffNgramModel {
  let lastNo = 0;
  const next = (): [string, number] | null => {
    const r = lines.next();
    if (r.done) return null;
    lastNo = r.value[1];
    return r.value;
  };
  const fail = (no: number, msg: string): never => { throw new ClassicFormatError(file, no, msg); };
  // Header: anything before \data\ is ignored (some tools write comments there).
  let l: [string, number] | null;
  while ((l = next()) && l[0].trim() !== '\\data\\');
  if (!l) fail(lastNo, 'no \\data\\ header: not an ARPA file');
  const counts: number[] = [];
  let pending: [string, number] | null = null;
  while ((l = next())) {
    const t = l[0].trim();
    if (t === '') { if (counts.length) break; continue; }
    const m = /^ngram\s+(\d+)\s*=\s*(\d+)$/.exec(t);
    if (!m) {
      if (/^\\\d+-grams:$/.test(t) && counts.length) { pending = l; break; }
      fail(l[1], `expected 'ngram N=count' in the \\data\\ section, got ${quoteShort(t)}`);
    }
    const n = Number(m![1]), c = Number(m![2]);
    if (n !== counts.length + 1) fail(l[1], `\\data\\ lists ngram ${n} after ${counts.length} orders (expected ngram ${counts.length + 1})`);
    // An n-gram line has at least a probability, n words, their separators and a newline.
    const minBytes = 2 * n + 2;
    if (!Number.isSafeInteger(c) || c > MAX_ARPA_NGRAMS || c * minBytes > size) {
      fail(l[1], `\\data\\ declares ngram ${n}=${m![2].length > 20 ? `${m![2].slice(0, 20)}…` : c}, but ${c * minBytes > size ? `the ${size}-byte file has room for at most ${Math.floor(size / minBytes)} such lines` : `at most ${MAX_ARPA_NGRAMS} are supported`}`);
    }
    if (n > 64) fail(l[1], `\\data\\ declares order ${n} (at most 64 is supported)`);
    counts.push(c);
  }
  if (counts.length === 0) fail(lastNo, 'the \\data\\ section lists no n-gram counts');
  const order = counts.length;
  const vocab = new Vocab();
  // Sized by the declared counts up to a point (the tables grow when the sections are longer).
  const tables = counts.map((c, i) => new NgramTable(i + 1, Math.max(16, Math.min(c, 1 << 20))));
  const ids = new Int32Array(order);
  for (let n = 1; n <= order; n++) {
    // Section header.
    let h: [string, number] | null = pending ?? next();
    pending = null;
    while (h && h[0].trim() === '') h = next();
    if (!h) fail(lastNo, `unexpected end of file: expected the \\${n}-grams: section`);
    if (h![0].trim() !== `\\${n}-grams:`) fail(h![1], `expected '\\${n}-grams:', got ${quoteShort(h![0].trim())}`);
    const t = tables[n - 1];
    const bo = n < order ? t.ensureVal2() : null;
    let got = 0;
    for (;;) {
      const e = next();
      if (!e) fail(lastNo, `unexpected end of file in \\${n}-grams: (${got} of ${counts[n - 1]} entries)`);
      const [line, no] = e!;
      const s = line.trim();
      if (s === '' || s.startsWith('\\')) {
        if (got !== counts[n - 1]) fail(no, `\\data\\ says ngram ${n}=${counts[n - 1]} but the \\${n}-grams: section has ${got} entries`);
        if (s.startsWith('\\')) pending = e;
        break;
      }
      if (got === counts[n - 1]) fail(no, `\\${n}-grams: has more entries than the ${counts[n - 1]} that \\data\\ announces`);
      const f = s.split(/[\t ]+/);
      if (f.length !== n + 1 && !(bo && f.length === n + 2)) {
        fail(no, `a ${n}-gram line needs a log10 probability, ${n} word${n > 1 ? 's' : ''}${bo ? ' and an optional backoff' : ''}; got ${f.length} fields`);
      }
      const p = Number(f[0]);
      if (f[0] === '' || !Number.isFinite(p)) fail(no, `bad log10 probability ${quoteShort(f[0], 24)} (expected a finite number; -99 stands for log10 0)`);
      if (p > 0) fail(no, `log10 probability ${f[0]} is positive`);
      for (let i = 0; i < n; i++) {
        const w = f[1 + i];
        if (n === 1) ids[0] = vocab.add(w);
        else {
          if (!vocab.has(w)) fail(no, `word ${quoteShort(w)} of this ${n}-gram is not in the \\1-grams: section`);
          ids[i] = vocab.id(w);
        }
      }
      const slotBefore = t.size;
      const slot = t.insert(ids, 0);
      if (t.size === slotBefore) fail(no, `duplicate ${n}-gram ${quoteShort(f.slice(1, n + 1).join(' '))}`);
      t.val[slot] = p;
      if (bo) {
        const b = f.length === n + 2 ? Number(f[n + 1]) : 0;
        if (f[n + 1] === '' || !Number.isFinite(b)) fail(no, `bad log10 backoff ${quoteShort(f[n + 1], 24)} (expected a finite number)`);
        t.val2![slot] = b;
      }
      got++;
    }
  }
  let end: [string, number] | null = pending ?? next();
  while (end && end[0].trim() === '') end = next();
  if (!end) fail(lastNo, 'missing \\end\\ at the end of the file');
  if (end![0].trim() !== '\\end\\') fail(end![1], `expected '\\end\\' after the \\${order}-grams: section, got ${quoteShort(end![0].trim())}`);
  const uni = tables[0];
  for (const w of [BOS, EOS]) if (uni.find([vocab.id(w)], 0) < 0 || !vocab.has(w)) fail(lastNo, `the \\1-grams: section has no '${w}'`);
  if (uni.find([UNK_ID], 0) < 0) {
    opts.onWarning?.(`${file}: the model has no ${UNK}; substituting log10 probability -100 (as KenLM does)`);
    const s = uni.insert([UNK_ID], 0);
    uni.val[s] = -100;
  }
  return new BackoffNgramModel(order, vocab, tables, opts.mode ?? 'word');
}
