// Word vectors: the word2vec C text and binary formats (read and write), cosine similarity,
// most_similar, analogies (3CosAdd, 3CosMul), and evaluation on a questions-words.txt analogy
// file and a word-similarity file (Spearman ρ), with gensim's conventions.
import { readFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { ClassicFormatError, ClassicInputError, UnknownWordError } from './errors.js';
import { quoteShort } from '../tokenizers/guard.js';

/** Largest vector dimension a word2vec file may declare. */
export const MAX_DIM = 1 << 20;
/** Longest word in a binary word2vec file (bytes). */
const MAX_WORD_BYTES = 1 << 16;

export class KeyedVectors {
  private readonly index = new Map<string, number>();
  private normed: Float32Array | null = null;

  /** `vectors`: words.length × dim, row-major. */
  constructor(readonly words: string[], readonly dim: number, readonly vectors: Float32Array) {
    if (vectors.length !== words.length * dim) throw new ClassicInputError(`KeyedVectors: ${words.length} words × ${dim} dims needs ${words.length * dim} values, got ${vectors.length}`);
    words.forEach((w, i) => { if (!this.index.has(w)) this.index.set(w, i); });
  }

  get size(): number { return this.words.length; }
  has(w: string): boolean { return this.index.has(w); }
  indexOf(w: string): number {
    const i = this.index.get(w);
    if (i === undefined) throw new UnknownWordError(w);
    return i;
  }
  vector(w: string): Float32Array {
    const i = this.indexOf(w);
    return this.vectors.slice(i * this.dim, (i + 1) * this.dim);
  }

  /** Unit-length copies of every vector (computed once). */
  unitVectors(): Float32Array {
    if (this.normed) return this.normed;
    const d = this.dim, out = new Float32Array(this.vectors.length);
    for (let i = 0; i < this.size; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += this.vectors[i * d + j] ** 2;
      const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
      for (let j = 0; j < d; j++) out[i * d + j] = this.vectors[i * d + j] * inv;
    }
    return (this.normed = out);
  }

  similarity(a: string, b: string): number {
    const u = this.unitVectors(), d = this.dim, i = this.indexOf(a) * d, j = this.indexOf(b) * d;
    let s = 0;
    for (let k = 0; k < d; k++) s += u[i + k] * u[j + k];
    return s;
  }

  /** Cosine of every word's unit vector with the query vector q (any length). */
  private cosines(q: Float64Array): Float64Array {
    const u = this.unitVectors(), d = this.dim, out = new Float64Array(this.size);
    let n = 0;
    for (let k = 0; k < d; k++) n += q[k] * q[k];
    const inv = n > 0 ? 1 / Math.sqrt(n) : 0;
    for (let i = 0; i < this.size; i++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += u[i * d + k] * q[k];
      out[i] = s * inv;
    }
    return out;
  }

  private topn(scores: Float64Array, n: number, exclude: Set<number>, restrict = this.size): { word: string; score: number }[] {
    const idx: number[] = [];
    for (let i = 0; i < Math.min(restrict, this.size); i++) if (!exclude.has(i)) idx.push(i);
    idx.sort((a, b) => scores[b] - scores[a]);
    return idx.slice(0, n).map((i) => ({ word: this.words[i], score: scores[i] }));
  }

  /**
   * gensim's most_similar: the mean of the unit vectors of `positive` minus those of `negative`,
   * compared by cosine; the query words are excluded.
   */
  mostSimilar(positive: string | string[], opts: { negative?: string[]; topn?: number; restrictVocab?: number } = {}): { word: string; score: number }[] {
    const pos = typeof positive === 'string' ? [positive] : positive, neg = opts.negative ?? [];
    if (pos.length + neg.length === 0) throw new ClassicInputError('most_similar: no query words');
    const u = this.unitVectors(), d = this.dim, q = new Float64Array(d), exclude = new Set<number>();
    for (const [ws, sign] of [[pos, 1], [neg, -1]] as const) {
      for (const w of ws) {
        const i = this.indexOf(w);
        exclude.add(i);
        for (let k = 0; k < d; k++) q[k] += sign * u[i * d + k];
      }
    }
    return this.topn(this.cosines(q), opts.topn ?? 10, exclude, opts.restrictVocab);
  }

  /**
   * "a is to b as c is to ?": 3CosAdd (argmax cos(x, b - a + c), gensim most_similar) or
   * 3CosMul (Levy & Goldberg: argmax cos'(x,b)·cos'(x,c)/(cos'(x,a)+ε) with cos' = (1+cos)/2,
   * gensim most_similar_cosmul).
   */
  analogy(a: string, b: string, c: string, opts: { method?: '3cosadd' | '3cosmul'; topn?: number; restrictVocab?: number } = {}): { word: string; score: number }[] {
    if ((opts.method ?? '3cosadd') === '3cosadd') return this.mostSimilar([b, c], { negative: [a], topn: opts.topn, restrictVocab: opts.restrictVocab });
    const u = this.unitVectors(), d = this.dim;
    const cos = (w: string): Float64Array => {
      const i = this.indexOf(w), q = new Float64Array(d);
      for (let k = 0; k < d; k++) q[k] = u[i * d + k];
      return this.cosines(q).map((x) => (1 + x) / 2);
    };
    const ca = cos(a), cb = cos(b), cc = cos(c);
    const scores = new Float64Array(this.size);
    for (let i = 0; i < this.size; i++) scores[i] = (cb[i] * cc[i]) / (ca[i] + 1e-6);
    return this.topn(scores, opts.topn ?? 10, new Set([a, b, c].map((w) => this.indexOf(w))), opts.restrictVocab);
  }

  /** Write the word2vec C format: "V dim" then one word per line, text or binary float32. */
  save(file: string, opts: { binary?: boolean } = {}): void {
    const fd = openSync(file, 'w');
    try {
      writeSync(fd, `${this.size} ${this.dim}\n`);
      const d = this.dim;
      if (opts.binary) {
        const chunks: Buffer[] = [];
        let bytes = 0;
        const flush = (): void => { writeSync(fd, Buffer.concat(chunks)); chunks.length = 0; bytes = 0; };
        for (let i = 0; i < this.size; i++) {
          const head = Buffer.from(this.words[i] + ' ', 'utf8');
          const body = Buffer.alloc(d * 4);
          for (let k = 0; k < d; k++) body.writeFloatLE(this.vectors[i * d + k], k * 4);
          chunks.push(head, body, Buffer.from('\n'));
          bytes += head.length + body.length + 1;
          if (bytes > 1 << 20) flush();
        }
        flush();
      } else {
        let out = '';
        for (let i = 0; i < this.size; i++) {
          let line = this.words[i];
          for (let k = 0; k < d; k++) line += ' ' + Number(this.vectors[i * d + k].toPrecision(8));
          out += line + '\n';
          if (out.length > 1 << 20) { writeSync(fd, out); out = ''; }
        }
        writeSync(fd, out);
      }
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Read the word2vec C format; binary is detected unless given. The header's counts are checked
   * against the file's size before anything is allocated; NaN or infinite values are refused
   * (naming the word and line) unless `allowNonFinite`. Errors name the file and line.
   */
  static load(file: string, opts: { binary?: boolean; allowNonFinite?: boolean } = {}): KeyedVectors {
    let buf: Buffer;
    try { buf = readFileSync(file); } catch (e) { throw new ClassicInputError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`); }
    const nl = buf.indexOf(10);
    if (nl < 0 || nl > 256) throw new ClassicFormatError(file, 1, 'no header line "<words> <dimensions>"');
    const header = buf.subarray(0, nl).toString('utf8').trim();
    const m = /^(\d+)\s+(\d+)$/.exec(header);
    if (!m) throw new ClassicFormatError(file, 1, `header must be "<words> <dimensions>", got ${quoteShort(header)}`);
    const V = Number(m[1]), d = Number(m[2]);
    if (d < 1 || d > MAX_DIM) throw new ClassicFormatError(file, 1, `dimension must be in [1, ${MAX_DIM}], got ${m[2].length > 12 ? `${m[2].slice(0, 12)}…` : d}`);
    const binary = opts.binary ?? looksBinary(buf, nl + 1, d);
    // The least a record takes: binary, a one-byte word, a space and d float32; text, a word and d
    // values of at least one character each, with their separators.
    const rest = buf.length - nl - 1, minRecord = binary ? 4 * d + 2 : 2 * d + 2;
    if (!Number.isSafeInteger(V) || V * minRecord > rest + 1) {
      throw new ClassicFormatError(file, 1, `header declares ${m[1].length > 12 ? `${m[1].slice(0, 12)}…` : V} words of ${d} dimensions, but the ${buf.length}-byte file has room for at most ${Math.floor((rest + 1) / minRecord)} (${binary ? 'binary' : 'text'})`);
    }
    const words: string[] = [];
    const vec = new Float32Array(V * d);
    const nonFinite = (lineNo: number, word: string, k: number, x: number | string): never => {
      throw new ClassicFormatError(file, lineNo, `the vector of ${quoteShort(word)} has ${typeof x === 'number' ? x : quoteShort(x, 24)} at dimension ${k + 1} (expected finite numbers${typeof x === 'number' ? '; allowNonFinite accepts them' : ''})`);
    };
    if (binary) {
      let p = nl + 1;
      for (let i = 0; i < V; i++) {
        while (p < buf.length && (buf[p] === 10 || buf[p] === 13)) p++;
        const sp = buf.indexOf(32, p);
        if (p >= buf.length || sp < 0) throw new ClassicFormatError(file, i + 2, `header says ${V} words but the file ends after ${i}`);
        if (sp - p > MAX_WORD_BYTES) throw new ClassicFormatError(file, i + 2, `word ${i + 1} is longer than ${MAX_WORD_BYTES} bytes (is the file binary word2vec?)`);
        words.push(buf.subarray(p, sp).toString('utf8'));
        p = sp + 1;
        if (p + d * 4 > buf.length) throw new ClassicFormatError(file, i + 2, `vector of ${quoteShort(words[i])} is truncated: needs ${d} float32 values (${d * 4} bytes), ${buf.length - p} bytes left`);
        for (let k = 0; k < d; k++) {
          const x = buf.readFloatLE(p + k * 4);
          if (!Number.isFinite(x) && !opts.allowNonFinite) nonFinite(i + 2, words[i], k, x);
          vec[i * d + k] = x;
        }
        p += d * 4;
      }
      while (p < buf.length && (buf[p] === 10 || buf[p] === 13)) p++;
      if (p < buf.length) throw new ClassicFormatError(file, V + 2, `${buf.length - p} bytes after the ${V} words the header announces`);
    } else {
      // Line by line over the bytes (no copy of the whole file as a string).
      let i = 0, lineNo = 1;
      for (let p = nl + 1; p < buf.length; ) {
        let e = buf.indexOf(10, p);
        if (e < 0) e = buf.length;
        lineNo++;
        const line = buf.subarray(p, e).toString('utf8').replace(/\r$/, '').trimEnd();
        p = e + 1;
        if (line.trim() === '') continue;
        if (i === V) throw new ClassicFormatError(file, lineNo, `more vectors than the ${V} the header announces`);
        const f = line.split(/ +/);
        if (f.length !== d + 1) throw new ClassicFormatError(file, lineNo, `expected a word and ${d} values (header dimension), got ${f.length - 1} values`);
        words.push(f[0]);
        for (let k = 0; k < d; k++) {
          // C's printf writes nan, inf and -inf.
          const t = f[k + 1], special = /^([+-]?)(nan|inf|infinity)$/i.exec(t);
          const v = special ? (special[2].toLowerCase() === 'nan' ? NaN : special[1] === '-' ? -Infinity : Infinity) : Number(t);
          if (t === '' || (Number.isNaN(v) && !special)) throw new ClassicFormatError(file, lineNo, `bad number ${quoteShort(t, 24)} in the vector of ${quoteShort(f[0])}`);
          if (!Number.isFinite(Math.fround(v)) && !opts.allowNonFinite) nonFinite(lineNo, f[0], k, t); // 1e39 is Infinity as float32
          vec[i * d + k] = v;
        }
        i++;
      }
      if (i !== V) throw new ClassicFormatError(file, lineNo + 1, `header says ${V} words but the file has ${i}`);
    }
    return new KeyedVectors(words, d, vec);
  }
}

/**
 * Binary unless the first record's line is printable, valid UTF-8 text (float32 bytes almost
 * always contain a control byte or an invalid UTF-8 sequence).
 */
function looksBinary(buf: Buffer, p: number, d: number): boolean {
  const nl = buf.indexOf(10, p);
  const line = buf.subarray(p, nl < 0 ? Math.min(buf.length, p + 64 + d * 32) : nl);
  for (const b of line) if (b < 32 && b !== 9 && b !== 13) return true;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(line);
    return false;
  } catch {
    return true;
  }
}

export interface AnalogyResult {
  sections: { section: string; correct: number; total: number; accuracy: number }[];
  correct: number; total: number; skipped: number; accuracy: number;
}

/**
 * Accuracy on a questions-words.txt file (": section" lines, then "a b c d" per line), as
 * gensim's evaluate_word_analogies: questions with a word outside the first `restrictVocab`
 * words are skipped, words compared case-insensitively (lowercased), the prediction is the
 * best word other than a, b, c.
 */
export function evaluateAnalogies(kv: KeyedVectors, file: string, opts: { restrictVocab?: number; method?: '3cosadd' | '3cosmul' } = {}): AnalogyResult {
  const restrict = Math.min(opts.restrictVocab ?? 300000, kv.size);
  const ok = new Map<string, string>(); // lowercased → vocabulary word (first, most frequent)
  for (let i = restrict - 1; i >= 0; i--) ok.set(kv.words[i].toLowerCase(), kv.words[i]);
  const sections: AnalogyResult['sections'] = [];
  let cur: AnalogyResult['sections'][number] | null = null, skipped = 0;
  const lines = readFileSync(file, 'utf8').split('\n');
  lines.forEach((raw, li) => {
    const line = raw.trim();
    if (!line) return;
    if (line.startsWith(':')) { cur = { section: line.slice(1).trim(), correct: 0, total: 0, accuracy: 0 }; sections.push(cur); return; }
    const f = line.split(/\s+/).map((w) => w.toLowerCase());
    if (f.length !== 4) throw new ClassicFormatError(file, li + 1, `an analogy line needs 4 words, got ${f.length}`);
    if (!cur) { cur = { section: '(none)', correct: 0, total: 0, accuracy: 0 }; sections.push(cur); }
    const w = f.map((x) => ok.get(x));
    if (w.some((x) => x === undefined)) { skipped++; return; }
    const [a, b, c, d] = w as string[];
    const pred = kv.analogy(a, b, c, { method: opts.method, topn: 1, restrictVocab: restrict })[0];
    cur.total++;
    if (pred && pred.word.toLowerCase() === d.toLowerCase()) cur.correct++;
  });
  let correct = 0, total = 0;
  for (const s of sections) { s.accuracy = s.total ? s.correct / s.total : 0; correct += s.correct; total += s.total; }
  return { sections: sections.filter((s) => s.total > 0), correct, total, skipped, accuracy: total ? correct / total : 0 };
}

/** Spearman rank correlation (average ranks for ties). */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const rank = (v: ArrayLike<number>): Float64Array => {
    const idx = Array.from({ length: v.length }, (_, i) => i).sort((a, b) => v[a] - v[b]);
    const r = new Float64Array(v.length);
    for (let i = 0; i < idx.length;) {
      let j = i;
      while (j + 1 < idx.length && v[idx[j + 1]] === v[idx[i]]) j++;
      for (let k = i; k <= j; k++) r[idx[k]] = (i + j) / 2 + 1;
      i = j + 1;
    }
    return r;
  };
  return pearson(rank(x), rank(y));
}

export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  let mx = 0, my = 0;
  for (let i = 0; i < n; i++) { mx += x[i]; my += y[i]; }
  mx /= n; my /= n;
  let sxy = 0, sxx = 0, syy = 0;
  for (let i = 0; i < n; i++) { const a = x[i] - mx, b = y[i] - my; sxy += a * b; sxx += a * a; syy += b * b; }
  return sxy / Math.sqrt(sxx * syy);
}

export interface SimilarityResult { spearman: number; pearson: number; pairs: number; oov: number; oovRatio: number }

/**
 * Spearman ρ (and Pearson r) between cosine similarity and human scores on a word-pair file
 * ("w1 w2 score" per line, tab or space separated, '#' comments), as gensim's
 * evaluate_word_pairs: pairs with an unknown word are skipped and reported.
 */
export function evaluateSimilarity(kv: KeyedVectors, file: string, opts: { caseInsensitive?: boolean } = {}): SimilarityResult {
  const ci = opts.caseInsensitive ?? true;
  const look = new Map<string, string>();
  for (let i = kv.size - 1; i >= 0; i--) look.set(ci ? kv.words[i].toLowerCase() : kv.words[i], kv.words[i]);
  const ours: number[] = [], gold: number[] = [];
  let oov = 0, total = 0;
  readFileSync(file, 'utf8').split('\n').forEach((raw, li) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const f = line.split(/[\t ]+/);
    if (f.length < 3 || !Number.isFinite(Number(f[2]))) throw new ClassicFormatError(file, li + 1, `expected "word1 word2 score", got ${quoteShort(line)}`);
    total++;
    const a = look.get(ci ? f[0].toLowerCase() : f[0]), b = look.get(ci ? f[1].toLowerCase() : f[1]);
    if (a === undefined || b === undefined) { oov++; return; }
    ours.push(kv.similarity(a, b));
    gold.push(Number(f[2]));
  });
  if (ours.length < 2) throw new ClassicInputError(`${file}: fewer than 2 word pairs with both words in the vocabulary (${oov} of ${total} pairs have an unknown word)`);
  return { spearman: spearman(ours, gold), pearson: pearson(ours, gold), pairs: ours.length, oov, oovRatio: total ? oov / total : 0 };
}
