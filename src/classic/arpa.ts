// ARPA back-off language model files: write, and read with the format's own checks (the
// \data\ counts must agree with the sections; every malformed line is reported by number).
import { openSync, writeSync, closeSync, statSync } from 'node:fs';
import { NgramTable } from './table.js';
import { sortGrams } from './packed.js';
import { BackoffNgramModel, NgramModel, Vocab, UNK, BOS, EOS, UNK_ID } from './ngram.js';
import { ClassicFormatError, ClassicInputError } from './errors.js';
import { readLines, type TokenMode } from './text.js';
import { quoteShort } from '../tokenizers/guard.js';

/** Most n-grams of one order an ARPA file may declare (the tables are typed arrays). */
export const MAX_ARPA_NGRAMS = 1 << 28;

/** How ARPA numbers are written: 8 significant digits as `toPrecision(8)`, 0 as `0`, log10 0 as `-99`. */
export function formatArpaNumber(x: number): string {
  if (x === 0) return '0';
  if (!Number.isFinite(x) || x <= -99) return '-99';
  return x.toPrecision(8);
}

// 10^k, exact as doubles for k <= 22.
const POW10 = Array.from({ length: 23 }, (_, k) => Number(`1e${k}`));

/**
 * Write formatArpaNumber(x) as ASCII into b at pos; returns the end. The digits come from one
 * exact power-of-ten multiplication and a rounding; when the scaled value is within 1e-6 of a
 * rounding tie (its error is below 1.2e-8), or the number needs exponent notation, it falls back
 * to toPrecision itself, so the text is always the same as formatArpaNumber's.
 */
export function writeArpaNumber(b: Uint8Array, pos: number, x: number): number {
  if (x === 0) { b[pos] = 48; return pos + 1; }
  if (!(x > -99) || x === Infinity) { b[pos] = 45; b[pos + 1] = 57; b[pos + 2] = 57; return pos + 3; } // -99 (also NaN, ±Inf)
  const v = x < 0 ? -x : x;
  if (v >= 1e-6 && v < 1e8) {
    let e = Math.floor(Math.log10(v));
    if (e > 7) e = 7; else if (e < -6) e = -6;
    let scaled = v * POW10[7 - e];
    if (scaled < 1e7 && e > -6) { e--; scaled = v * POW10[7 - e]; } else if (scaled >= 1e8 && e < 7) { e++; scaled = v * POW10[7 - e]; }
    let n = Math.floor(scaled);
    const frac = scaled - n;
    if (n >= 1e7 && n < 1e8 && Math.abs(frac - 0.5) > 1e-6) {
      if (frac > 0.5) n++;
      if (n === 1e8) { n = 1e7; e++; }
      if (e <= 7) {
        if (x < 0) b[pos++] = 45;
        if (e < 0) {
          b[pos++] = 48; b[pos++] = 46;
          for (let z = -e - 1; z > 0; z--) b[pos++] = 48;
        }
        // 8 digits, filled from the last, with the point after digit e (none when e = 7).
        const end = pos + (e >= 0 && e < 7 ? 9 : 8);
        let q = n | 0, at = end;
        for (let i = 7; i >= 0; i--) {
          const r = (q / 10) | 0;
          b[--at] = 48 + q - r * 10;
          q = r;
          if (i === e + 1 && e >= 0) b[--at] = 46;
        }
        return end;
      }
    }
  }
  const s = x.toPrecision(8);
  for (let i = 0; i < s.length; i++) b[pos++] = s.charCodeAt(i);
  return pos;
}

function writeAscii(b: Uint8Array, pos: number, s: string): number {
  for (let i = 0; i < s.length; i++) b[pos++] = s.charCodeAt(i);
  return pos;
}

/**
 * ARPA text as UTF-8 chunks of whole lines (unigrams in vocabulary order, higher orders sorted
 * by word id). A chunk is a view of a reused buffer: consume it before asking for the next.
 */
export function* arpaBytes(model: NgramModel, chunkBytes = 1 << 20): Generator<Uint8Array> {
  if (!(model instanceof BackoffNgramModel)) {
    throw new ClassicInputError('ARPA output needs a back-off model: train with the kn or mkn estimator (mle and add-k are not back-off models)');
  }
  if (!model.packed) {
    const enc = new TextEncoder();
    for (const c of tableArpaChunks(model)) yield enc.encode(c);
    return;
  }
  const { counts, prob, bo } = model.packed, { vocab, order } = model, V = vocab.size;
  // The words' UTF-8 bytes, one pool: the word text of unigram line i.
  const enc = new TextEncoder();
  const wordBytes = vocab.words.map((w) => enc.encode(w));
  const wOff = new Int32Array(V + 1);
  for (let i = 0; i < V; i++) wOff[i + 1] = wOff[i] + wordBytes[i].length;
  const pool = new Uint8Array(wOff[V]);
  for (let i = 0; i < V; i++) pool.set(wordBytes[i], wOff[i]);
  let buf = new Uint8Array(chunkBytes + 256);
  let pos = writeAscii(buf, 0, '\n\\data\\\n' + model.counts.map((c, i) => `ngram ${i + 1}=${c}\n`).join('') + '\n');
  // rank[e]: the ARPA line of entry e of the previous order. text/textOff: the previous order's
  // word text, line by line (a line of order n is its context's text, a space and its last word;
  // lines are sorted by context, so the previous order's text is read front to back).
  let rank: Int32Array | null = null, text: Uint8Array = pool, textOff: Int32Array = wOff;
  for (let n = 1; n <= order; n++) {
    pos = writeAscii(buf, pos, `\\${n}-grams:\n`);
    const g = n >= 2 ? counts.grams[n - 2] : null;
    // Gathered into ARPA order first (tight loops, so the random reads overlap).
    let p = prob[n - 1], bb = bo[n - 1], sw: Int32Array | null = null, sc: Int32Array | null = null;
    if (g) {
      const prevRank = rank, [sorted, r] = sortGrams(g, V, prevRank, n === 2 ? V : counts.grams[n - 3].size);
      rank = r;
      const m = g.size, sp = new Float64Array(m), ctx = g.ctx, word = g.word;
      sw = new Int32Array(m); sc = new Int32Array(m);
      for (let j = 0; j < m; j++) sp[j] = p[sorted[j]];
      for (let j = 0; j < m; j++) sw[j] = word[sorted[j]];
      if (prevRank) for (let j = 0; j < m; j++) sc[j] = prevRank[ctx[sorted[j]]];
      else for (let j = 0; j < m; j++) sc[j] = ctx[sorted[j]];
      if (bb) { const sb = new Float64Array(m); for (let j = 0; j < m; j++) sb[j] = bb[sorted[j]]; bb = sb; }
      p = sp;
    }
    const total = g ? g.size : V;
    // This order's word text is kept for the next order (not for the highest, nor for unigrams: that is the pool).
    const keep = g && n < order;
    const st: LineState = {
      prob: p, bo: bb, sw, sc, total, j: 0, pool, wOff, text, textOff,
      out: keep ? new Uint8Array(Math.max(1024, Math.ceil((text.length / Math.max(1, textOff.length - 1) + 8) * total))) : null,
      outLen: 0, outOff: keep ? new Int32Array(total + 1) : null,
    };
    for (;;) {
      pos = writeLines(st, buf, pos);
      if (st.j === st.total) break;
      // Full (or one line longer than the buffer): hand it out, then go on.
      if (pos > 0) yield buf.subarray(0, pos);
      else buf = new Uint8Array(buf.length * 2);
      pos = 0;
    }
    if (pos + 64 > buf.length) { yield buf.subarray(0, pos); pos = 0; }
    buf[pos++] = 10;
    if (st.out) { text = st.out; textOff = st.outOff!; }
  }
  pos = writeAscii(buf, pos, '\\end\\\n');
  yield buf.subarray(0, pos);
}

/** Where the ARPA lines of one order stand. */
interface LineState {
  prob: Float64Array; bo: Float64Array | null;
  /** Line j's last word id and the line of its context in the order below (both null for unigrams: line j is word j). */
  sw: Int32Array | null; sc: Int32Array | null;
  total: number; j: number;
  /** The vocabulary's bytes (word i at wOff[i] .. wOff[i + 1]). */
  pool: Uint8Array; wOff: Int32Array;
  /** The previous order's word text by line. */
  text: Uint8Array; textOff: Int32Array;
  /** This order's word text by line, when the next order needs it. */
  out: Uint8Array | null; outLen: number; outOff: Int32Array | null;
}

/** Write lines st.j, st.j+1, … into b from pos while they fit; returns the end. (A plain function: a generator's loop ran twice as slow.) */
function writeLines(st: LineState, b: Uint8Array, pos: number): number {
  const { prob, bo, sw, sc, total, pool, wOff, text, textOff, outOff } = st;
  let { j, out, outLen } = st;
  const cap = b.length;
  for (; j < total; j++) {
    const w = sw ? sw[j] : j, w0 = wOff[w], w1 = wOff[w + 1];
    let c0 = 0, c1 = -1;
    if (sc) { const c = sc[j]; c0 = textOff[c]; c1 = textOff[c + 1]; }
    // The word text, two numbers of at most 16 characters, two tabs, a newline.
    const len = c1 - c0 + 1 + w1 - w0;
    if (pos + len + 40 > cap) break;
    pos = writeArpaNumber(b, pos, prob[j]);
    b[pos++] = 9;
    // Byte loops: these copies are short, and a subarray per line costs more than the copy.
    const start = pos;
    for (let k = c0; k < c1; k++) b[pos++] = text[k];
    if (sc) b[pos++] = 32;
    for (let k = w0; k < w1; k++) b[pos++] = pool[k];
    if (out) {
      if (outLen + len > out.length) { const x = new Uint8Array(Math.max(out.length * 2, outLen + len)); x.set(out.subarray(0, outLen)); out = x; }
      for (let k = start; k < pos; k++) out[outLen++] = b[k];
      outOff![j + 1] = outLen;
    }
    if (bo) { b[pos++] = 9; pos = writeArpaNumber(b, pos, bo[j]); }
    b[pos++] = 10;
  }
  st.j = j; st.out = out; st.outLen = outLen;
  return pos;
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
