// N-gram features of texts: word / character n-grams counted into a sparse document-term matrix,
// with the options and the results of scikit-learn's CountVectorizer, TfidfVectorizer and
// HashingVectorizer (checked against Debian's python3-sklearn 1.2.1 by test/classic/features.test.ts
// on fixtures written by scripts/sklearn-fixtures.py).
//
// What "the same results" covers:
//  - Analyzers 'word', 'char', 'char_wb' cut a text exactly as sklearn does: character n-grams are
//    over Unicode code points (so a Chinese character, or an emoji outside the BMP, is one
//    character), 'char' first folds runs of two or more whitespace characters into one space,
//    'char_wb' pads each whitespace-separated word with a space on both sides. Whitespace is
//    Python's (str.isspace), not JavaScript's \s.
//  - The default word token pattern is sklearn's `(?u)\b\w\w+\b`: maximal runs of two or more
//    word characters, a word character being a letter, a number or '_' (Python's \w). Chinese has
//    no spaces, so under that pattern a whole run of Han characters is ONE token (sklearn's
//    behaviour, kept for identical matrices). For Chinese, use the char analyzers, or
//    `tokenPattern: HAN_TOKEN_PATTERN`, which makes every Han character its own token (word
//    n-grams then span neighbouring characters) and keeps sklearn's rule for everything else.
//    A custom tokenPattern is a JavaScript regular expression (the 'u' flag is added).
//  - The vocabulary is sorted by code point (Python's sorted()); column j is the j-th term.
//  - min_df / max_df: an integer is a document count, a non-integer (or {proportion}) a fraction
//    of the documents, resolved and checked as sklearn does; max_features keeps the most frequent
//    terms (total count over the corpus) and breaks ties as numpy's default argsort (introsort)
//    does on the sorted vocabulary, which is what sklearn's result depends on.
//  - TF-IDF: idf = ln((1 + n) / (1 + df)) + 1 (smooth_idf) or ln(n / df) + 1; sublinear tf
//    1 + ln(tf); then rows normalised (l2, l1 or none), in float64.
//  - Hashing: MurmurHash3_x86_32 (seed 0) of the UTF-8 bytes of each gram, index |h| mod n,
//    sign of h when alternateSign — the same indices and signs as sklearn's HashingVectorizer.
// Output is CSR (indptr / indices / data typed arrays), each row's indices ascending. Explicit
// zeros are kept where sklearn keeps them (hashed collisions of opposite signs).
import { ClassicInputError } from './errors.js';

/** A sparse matrix in compressed sparse row form (scipy's csr_matrix layout). */
export interface CsrMatrix {
  rows: number;
  cols: number;
  /** Row i's entries are indices/data[indptr[i] .. indptr[i+1]). */
  indptr: Int32Array;
  indices: Int32Array;
  data: Float64Array;
}

export type Analyzer = 'word' | 'char' | 'char_wb';
export type Norm = 'l1' | 'l2' | null;
/** A document-frequency threshold: an integer count of documents, or a proportion of them. */
export type DocFrequency = number | { proportion: number };

export interface AnalyzerOptions {
  /** 'word' (default), 'char', or 'char_wb' (character n-grams inside word boundaries). */
  analyzer?: Analyzer;
  /** Smallest and largest n (default [1, 1]). */
  ngramRange?: [number, number];
  /** Lower-case the text first (default true). */
  lowercase?: boolean;
  /** Word mode's token pattern: a JavaScript RegExp or its source (default: sklearn's, see SKLEARN_TOKEN_PATTERN). */
  tokenPattern?: string | RegExp;
}

export interface VectorizerOptions extends AnalyzerOptions {
  /** Drop terms in fewer documents than this (default 1). */
  minDf?: DocFrequency;
  /** Drop terms in more documents than this (default: no limit, sklearn's 1.0). */
  maxDf?: DocFrequency;
  /** Keep only the most frequent terms. */
  maxFeatures?: number;
  /** Count presence (1) instead of occurrences. */
  binary?: boolean;
}

export interface TfidfOptions {
  /** Row normalisation (default 'l2'). */
  norm?: Norm;
  useIdf?: boolean;
  smoothIdf?: boolean;
  sublinearTf?: boolean;
}

/** sklearn's default token pattern, as sklearn spells it. */
export const SKLEARN_TOKEN_PATTERN = '(?u)\\b\\w\\w+\\b';
/** Every Han character is a token; other text as sklearn's default (runs of ≥ 2 letters, digits or '_'). */
export const HAN_TOKEN_PATTERN = '\\p{Script=Han}|(?:(?!\\p{Script=Han})[\\p{L}\\p{N}_]){2,}';

// Python's str.isspace() characters (JavaScript's \s differs: it has U+FEFF and lacks U+001C–U+001F, U+0085).
const PY_WS = '\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const WS_RUN = new RegExp(`[${PY_WS}]{2,}`, 'g');
const WS_SPLIT = new RegExp(`[${PY_WS}]+`);

// Word characters of sklearn's default pattern (Python's \w: letters, numbers, '_'), ASCII by table.
const ASCII_WORD = new Uint8Array(128);
for (let c = 0; c < 128; c++) ASCII_WORD[c] = /[A-Za-z0-9_]/.test(String.fromCharCode(c)) ? 1 : 0;
const WORD_CHAR = /^[\p{L}\p{N}_]$/u;
const BMP_WORD = new Int8Array(0x10000); // 0 unknown, 1 word character, -1 not (filled lazily)
function isWordAt(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  if (c < 128) return ASCII_WORD[c] === 1;
  if (c < 0xd800 || c >= 0xe000) {
    let w = BMP_WORD[c];
    if (w === 0) w = BMP_WORD[c] = WORD_CHAR.test(String.fromCharCode(c)) ? 1 : -1;
    return w === 1;
  }
  return WORD_CHAR.test(String.fromCodePoint(s.codePointAt(i)!));
}

/** UTF-16 units of the code point at i (c = its first unit): 2 for a surrogate pair. */
function width(s: string, i: number, c: number): number {
  return (c & 0xfc00) === 0xd800 && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00 ? 2 : 1;
}

/** A term sink: called once per n-gram occurrence. */
export type GramSink = (gram: string) => void;

function checkRange(r: [number, number] | undefined): [number, number] {
  const [lo, hi] = r ?? [1, 1];
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1) throw new ClassicInputError(`ngram range must be positive integers, got ${lo}-${hi}`);
  if (lo > hi) throw new ClassicInputError(`ngram range ${lo}-${hi}: the lower bound is larger than the upper bound`);
  return [lo, hi];
}

function compilePattern(p: string | RegExp | undefined): RegExp {
  if (p === undefined || p === SKLEARN_TOKEN_PATTERN) return /[\p{L}\p{N}_]{2,}/gu;
  if (p instanceof RegExp) return new RegExp(p.source, p.flags.includes('g') ? p.flags : p.flags + 'g');
  try {
    return new RegExp(p, 'gu');
  } catch (e) {
    throw new ClassicInputError(`token pattern '${p}' is not a valid JavaScript regular expression: ${(e as Error).message}`);
  }
}

/**
 * A trie whose edges live in one open-addressing hash table: node = (parent node, symbol),
 * roots have parent -1. Nodes are numbered 0, 1, 2, … in order of creation.
 */
class PairTrie {
  private ka = new Int32Array(1 << 12);
  private kb = new Int32Array(1 << 12);
  private val = new Int32Array(1 << 12).fill(-1);
  private mask = (1 << 12) - 1;
  parents = new Int32Array(1 << 12);
  syms = new Int32Array(1 << 12);
  size = 0;

  /** The node (parent, sym), created if new. */
  child(parent: number, sym: number): number {
    let h = (Math.imul(parent, 0x9e3779b1) ^ Math.imul(sym + 0x7f4a7c15, 0x85ebca77)) | 0;
    h = (h ^ (h >>> 15)) & this.mask;
    const ka = this.ka, kb = this.kb, val = this.val;
    for (;;) {
      const v = val[h];
      if (v < 0) break;
      if (ka[h] === parent && kb[h] === sym) return v;
      h = (h + 1) & this.mask;
    }
    const node = this.size++;
    if (node === this.parents.length) {
      const p2 = new Int32Array(node * 2); p2.set(this.parents); this.parents = p2;
      const s2 = new Int32Array(node * 2); s2.set(this.syms); this.syms = s2;
    }
    this.parents[node] = parent; this.syms[node] = sym;
    ka[h] = parent; kb[h] = sym; val[h] = node;
    if (node * 2 > this.mask) this.grow();
    return node;
  }

  private grow(): void {
    const { ka, kb, val } = this;
    const cap = (this.mask + 1) * 2;
    this.ka = new Int32Array(cap); this.kb = new Int32Array(cap); this.val = new Int32Array(cap).fill(-1); this.mask = cap - 1;
    for (let i = 0; i < val.length; i++) {
      if (val[i] < 0) continue;
      let h = (Math.imul(ka[i], 0x9e3779b1) ^ Math.imul(kb[i] + 0x7f4a7c15, 0x85ebca77)) | 0;
      h = (h ^ (h >>> 15)) & this.mask;
      while (this.val[h] >= 0) h = (h + 1) & this.mask;
      this.ka[h] = ka[i]; this.kb[h] = kb[i]; this.val[h] = val[i];
    }
  }
}

/**
 * The n-grams of texts as nodes of a trie held in one open-addressing hash table: node =
 * (parent node, symbol), the symbol a code point (char analyzers) or a token id (word analyzer).
 * Walking a text costs one table probe per gram and builds each distinct gram's string once, when
 * it is first seen — no string is made or hashed per occurrence, which is what makes counting fast.
 * Nodes are numbered 0, 1, 2, … in order of first sight; `gram(node)` is the gram's text (sklearn's
 * term: tokens joined by one space, or the characters).
 */
export class GramIndex {
  readonly analyzer: Analyzer;
  readonly lo: number;
  readonly hi: number;
  private readonly lower: boolean;
  private readonly re: RegExp | null;
  private readonly group: boolean;
  /** Grams: symbols are code points (char analyzers) or token nodes of `toks` (word). */
  private readonly g = new PairTrie();
  /** Word mode: tokens as paths of UTF-16 units (a token's id is its node here: no string is made or hashed per token). */
  private readonly toks = new PairTrie();
  private readonly tokTexts = new Map<number, string>();
  private readonly defaultPattern: boolean;
  private syms = new Int32Array(1024);

  constructor(opts: AnalyzerOptions = {}) {
    const analyzer = opts.analyzer ?? 'word';
    if (analyzer !== 'word' && analyzer !== 'char' && analyzer !== 'char_wb') throw new ClassicInputError(`analyzer must be 'word', 'char' or 'char_wb', got '${analyzer as string}'`);
    this.analyzer = analyzer;
    [this.lo, this.hi] = checkRange(opts.ngramRange);
    this.lower = opts.lowercase ?? true;
    this.re = null;
    this.group = false;
    this.defaultPattern = analyzer === 'word' && (opts.tokenPattern === undefined || opts.tokenPattern === SKLEARN_TOKEN_PATTERN);
    if (analyzer === 'word') {
      this.re = compilePattern(opts.tokenPattern);
      // sklearn: a pattern with one capturing group yields the group, more than one is refused.
      const groups = new RegExp(`(?:${this.re.source})|`, this.re.flags.replace('g', '')).exec('')!.length - 1;
      if (groups > 1) throw new ClassicInputError(`token pattern '${this.re.source}' has ${groups} capturing groups; at most one is allowed`);
      this.group = groups === 1;
    }
  }

  /** Number of distinct grams (and prefixes of them) seen so far. */
  get size(): number { return this.g.size; }
  private texts: (string | undefined)[] = [];
  /** The text of a node (its parent's text, a space for word grams, its last symbol; memoised). */
  gram(node: number): string {
    let t = this.texts[node];
    if (t !== undefined) return t;
    const p = this.g.parents[node], sym = this.g.syms[node];
    const piece = this.re ? this.tokText(sym) : String.fromCodePoint(sym);
    t = p < 0 ? piece : this.re ? this.gram(p) + ' ' + piece : this.gram(p) + piece;
    this.texts[node] = t;
    return t;
  }

  /**
   * All nodes in the order of their texts by code point (Python's sorted()): a depth-first walk
   * of the trie, children in symbol order. Word n-grams join tokens with ' ', which sorts below
   * every token character, so token-sequence order is text order — unless a custom pattern
   * yields tokens with characters at or below ' ', when the texts themselves are sorted.
   */
  /** The symbols of the current segment (see segments). */
  get symbols(): Int32Array { return this.syms; }
  /** Word mode? (symbols are token nodes, else code points.) */
  get words(): boolean { return this.re !== null; }

  private tokBytes: (Uint8Array | undefined)[] = [];
  /** The UTF-8 bytes of a token node (cached). */
  tokenBytes(t: number): Uint8Array {
    let b = this.tokBytes[t];
    if (b === undefined) b = this.tokBytes[t] = new TextEncoder().encode(this.tokText(t));
    return b;
  }

  /** The text of a token node. */
  private tokText(t: number): string {
    let s = this.tokTexts.get(t);
    if (s !== undefined) return s;
    const units: number[] = [];
    for (let v = t; v >= 0; v = this.toks.parents[v]) units.push(this.toks.syms[v]);
    s = String.fromCharCode(...units.reverse());
    this.tokTexts.set(t, s);
    return s;
  }

  sortedNodes(): Int32Array {
    const n = this.g.size, out = new Int32Array(n);
    const parents = this.g.parents, symsOf = this.g.syms;
    let rank: Int32Array | null = null; // symbol → rank (word mode: tokens sorted as strings)
    if (this.re) {
      // The distinct tokens are the symbols of the root nodes (every token is a unigram node).
      const ids: number[] = [];
      for (let i = 0; i < n; i++) if (parents[i] < 0) ids.push(symsOf[i]);
      const toks = ids.map((t) => this.tokText(t));
      if (toks.some((t) => /[\0- ]/.test(t))) {
        const strs = Array.from({ length: n }, (_, i) => this.gram(i));
        const ids = Array.from(strs.keys()).sort((a, b) => compareCodePoints(strs[a], strs[b]));
        out.set(ids);
        return out;
      }
      const high = toks.some((t) => /[\uD800-\uFFFF]/.test(t));
      const pos = new Map(toks.map((t, i) => [t, i]));
      const order = high ? Array.from(toks.keys()).sort((a, b) => compareCodePoints(toks[a], toks[b])) : toks.slice().sort().map((t) => pos.get(t)!);
      rank = new Int32Array(this.toks.size);
      order.forEach((i, r) => { rank![ids[i]] = r; });
    }
    // Children lists (CSR over parents; roots under parent -1 → slot n), each sorted by symbol rank.
    const start = new Int32Array(n + 2);
    for (let i = 0; i < n; i++) start[(parents[i] < 0 ? n : parents[i]) + 1]++;
    for (let i = 0; i <= n; i++) start[i + 1] += start[i];
    const kids = new Int32Array(n), fill = start.slice(0, n + 1);
    for (let i = 0; i < n; i++) kids[fill[parents[i] < 0 ? n : parents[i]]++] = i;
    const key = new Float64Array(n);
    for (let i = 0; i < n; i++) key[i] = rank ? rank[symsOf[i]] : symsOf[i];
    for (let p = 0; p <= n; p++) {
      const a = start[p], b = start[p + 1];
      if (b - a > 1) kids.subarray(a, b).sort((x, y) => key[x] - key[y]);
    }
    // Pre-order walk: a node, then its subtree.
    const stack: number[] = [];
    for (let k = start[n + 1] - 1; k >= start[n]; k--) stack.push(kids[k]);
    let o = 0;
    while (stack.length) {
      const v = stack.pop()!;
      out[o++] = v;
      for (let k = start[v + 1] - 1; k >= start[v]; k--) stack.push(kids[k]);
    }
    return out;
  }

  private child(parent: number, sym: number): number { return this.g.child(parent, sym); }

  private push(n: number, sym: number): void {
    if (n === this.syms.length) { const s = new Int32Array(n * 2); s.set(this.syms); this.syms = s; }
    this.syms[n] = sym;
  }

  /** Symbols of `text` from `start` to `end` (code points) into this.syms[from..]; returns the new length. */
  private codePoints(text: string, start: number, end: number, from: number): number {
    let n = from;
    for (let i = start; i < end; i++) {
      let c = text.charCodeAt(i);
      if (c >= 0xd800 && c < 0xdc00 && i + 1 < end) { const d = text.charCodeAt(i + 1); if (d >= 0xdc00 && d < 0xe000) { c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00); i++; } }
      this.push(n++, c);
    }
    return n;
  }

  /** Grams of n = lo..hi over syms[a..b), each start position walking its n-grams down the trie. */
  private emitRange(a: number, b: number, emit: (node: number) => void): void {
    const { lo, hi, syms } = this;
    for (let i = a; i < b; i++) {
      let node = -1;
      const top = Math.min(hi, b - i);
      for (let k = 1; k <= top; k++) {
        node = this.child(node, syms[i + k - 1]);
        if (k >= lo) emit(node);
      }
    }
  }

  /** Feed each n-gram occurrence of `text` (as a node) to `emit`, by start position, then by n. */
  walk(text: string, emit: (node: number) => void): void {
    this.segments(text, (n, whole) => {
      if (!whole) { this.emitRange(0, n, emit); return; }
      let node = -1;
      for (let k = 0; k < n; k++) node = this.child(node, this.syms[k]);
      emit(node);
    });
  }

  /**
   * Cut `text` into symbol sequences (left in `symbols`): word mode, one sequence of token nodes;
   * char, one of code points; char_wb, one per padded word. `range(n, whole)` is called for each:
   * its n-grams are those of symbols[0..n), or, when `whole`, the one gram symbols[0..n).
   */
  segments(text: string, range: (n: number, whole: boolean) => void): void {
    if (this.lower) text = text.toLowerCase();
    if (this.defaultPattern) {
      // sklearn's default pattern: maximal runs of ≥ 2 word characters, scanned without a regex.
      const toks = this.toks;
      let n = 0;
      const L = text.length;
      for (let i = 0; i < L; ) {
        // Skip non-word characters, then take the run of word characters (cps: its code points).
        let c = text.charCodeAt(i);
        if (c < 128 ? ASCII_WORD[c] === 0 : !isWordAt(text, i)) { i += width(text, i, c); continue; }
        let cps = 0, tok = -1;
        while (i < L) {
          c = text.charCodeAt(i);
          if (c < 128) { if (ASCII_WORD[c] === 0) break; tok = toks.child(tok, c); i++; cps++; continue; }
          if (!isWordAt(text, i)) break;
          tok = toks.child(tok, c);
          if (width(text, i, c) === 2) tok = toks.child(tok, text.charCodeAt(++i));
          i++;
          cps++;
        }
        if (cps < 2) continue;
        this.push(n++, tok);
      }
      range(n, false);
      return;
    }
    if (this.re) {
      const re = this.re;
      let n = 0;
      re.lastIndex = 0;
      for (let m: RegExpExecArray | null; (m = re.exec(text)) !== null; ) {
        if (m[0] === '') { re.lastIndex++; continue; }
        const t = this.group ? m[1] ?? '' : m[0];
        let tok = -1;
        for (let j = 0; j < t.length; j++) tok = this.toks.child(tok, t.charCodeAt(j));
        if (tok < 0) continue; // an empty group: no token
        this.push(n++, tok);
      }
      range(n, false);
      return;
    }
    if (this.analyzer === 'char') {
      text = text.replace(WS_RUN, ' ');
      range(this.codePoints(text, 0, text.length, 0), false);
      return;
    }
    // char_wb: each whitespace-separated word padded with a space each side; a padded word
    // shorter than lo gives one gram, itself (sklearn's rule for short words).
    for (const w of text.split(WS_SPLIT)) {
      if (w === '') continue;
      this.push(0, 32);
      const len = this.codePoints(w, 0, w.length, 1) + 1;
      this.push(len - 1, 32);
      range(len, this.lo > len);
    }
  }
}

/** The analyzer of a vectorizer: feeds each n-gram of a text to `sink` as a string — the grams of sklearn's build_analyzer(), by start position rather than by n. */
export function ngramAnalyzer(opts: AnalyzerOptions = {}): (text: string, sink: GramSink) => void {
  const index = new GramIndex(opts);
  return (text, sink) => index.walk(text, (node) => sink(index.gram(node)));
}

/** Python's string order (by code point; JavaScript's < orders UTF-16 units, which differs above U+FFFF). */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i), y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) { x = x >= 0xe000 ? x - 0x800 : x + 0x2000; y = y >= 0xe000 ? y - 0x800 : y + 0x2000; }
    return x - y;
  }
  return a.length - b.length;
}

/** numpy's default argsort (introsort: median-of-3 quicksort, insertion sort below 17, heapsort past the depth limit) of `v`; ties come out as numpy's. */
export function argsortNumpy(v: ArrayLike<number>): Int32Array {
  const num = v.length, a = new Int32Array(num);
  for (let i = 0; i < num; i++) a[i] = i;
  if (num < 2) return a;
  const swap = (i: number, j: number): void => { const t = a[i]; a[i] = a[j]; a[j] = t; };
  const heapsort = (start: number, n: number): void => {
    // 1-based heap over a[start .. start+n-1].
    const A = (k: number): number => a[start + k - 1];
    const set = (k: number, x: number): void => { a[start + k - 1] = x; };
    const sift = (l: number, n2: number, tmp: number): void => {
      let i = l, j = l << 1;
      while (j <= n2) {
        if (j < n2 && v[A(j)] < v[A(j + 1)]) j++;
        if (v[tmp] < v[A(j)]) { set(i, A(j)); i = j; j += j; } else break;
      }
      set(i, tmp);
    };
    for (let l = n >> 1; l > 0; l--) sift(l, n, A(l));
    while (n > 1) { const tmp = A(n); set(n, A(1)); n--; sift(1, n, tmp); }
  };
  let depthLimit = 0;
  for (let n = num; (n >>= 1) > 0; ) depthLimit++;
  let pl = 0, pr = num - 1, cdepth = depthLimit * 2;
  const stack: number[] = [];
  for (;;) {
    if (cdepth < 0) {
      heapsort(pl, pr - pl + 1);
    } else {
      while (pr - pl > 16) {
        const pm = pl + ((pr - pl) >> 1);
        if (v[a[pm]] < v[a[pl]]) swap(pm, pl);
        if (v[a[pr]] < v[a[pm]]) swap(pr, pm);
        if (v[a[pm]] < v[a[pl]]) swap(pm, pl);
        const vp = v[a[pm]];
        let pi = pl, pj = pr - 1;
        swap(pm, pj);
        for (;;) {
          do pi++; while (v[a[pi]] < vp);
          do pj--; while (vp < v[a[pj]]);
          if (pi >= pj) break;
          swap(pi, pj);
        }
        swap(pi, pr - 1);
        if (pi - pl < pr - pi) { stack.push(pi + 1, pr, --cdepth); pr = pi - 1; } else { stack.push(pl, pi - 1, --cdepth); pl = pi + 1; }
      }
      for (let pi = pl + 1; pi <= pr; pi++) {
        const vi = a[pi], x = v[vi];
        let pj = pi;
        while (pj > pl && x < v[a[pj - 1]]) { a[pj] = a[pj - 1]; pj--; }
        a[pj] = vi;
      }
    }
    if (stack.length === 0) break;
    cdepth = stack.pop()!; pr = stack.pop()!; pl = stack.pop()!;
  }
  return a;
}

function resolveDf(name: string, d: DocFrequency | undefined, nDocs: number, def: number): number {
  if (d === undefined) return def;
  if (typeof d === 'object') {
    if (!(d.proportion >= 0 && d.proportion <= 1)) throw new ClassicInputError(`${name} proportion must be in [0, 1], got ${d.proportion}`);
    return d.proportion * nDocs;
  }
  if (!(Number.isFinite(d) && d >= 0)) throw new ClassicInputError(`${name} must be a document count ≥ 0 or a proportion in [0, 1], got ${d}`);
  if (Number.isInteger(d)) return d;
  if (d > 1) throw new ClassicInputError(`${name} must be an integer count or a proportion in [0, 1], got ${d}`);
  return d * nDocs;
}

const FORMAT = 'tslm-ngram-vocabulary';

/** The saved form of a fitted vectorizer (JSON): options, terms in column order, idf if any. */
export interface VocabularyFile {
  format: typeof FORMAT;
  version: 1;
  options: { analyzer: Analyzer; ngramRange: [number, number]; lowercase: boolean; tokenPattern: string; binary: boolean; tfidf: Required<TfidfOptions> | null };
  /** Column j is vocabulary[j] (sklearn accepts this list as CountVectorizer(vocabulary=…)). */
  vocabulary: string[];
  idf?: number[];
}

/** CSR column indices and values, grown as rows are appended. */
interface CsrSink { indices: Int32Array; data: Float64Array; nnz: number }

function newSink(): CsrSink {
  return { indices: new Int32Array(1 << 16), data: new Float64Array(1 << 16), nnz: 0 };
}

/** Room for `n` more entries. */
function reserve(out: CsrSink, n: number): void {
  if (out.nnz + n <= out.indices.length) return;
  const cap = Math.max(out.indices.length * 2, out.nnz + n);
  const i2 = new Int32Array(cap); i2.set(out.indices); out.indices = i2;
  const d2 = new Float64Array(cap); d2.set(out.data); out.data = d2;
}

/**
 * Append one row given as its gram occurrences `r`: each a column, or with `signed` a column
 * << 1 | 1 for a −1 (0 for a +1). Sorted in place by column (insertion sort for short rows), then
 * runs merged into (column, summed weight), so the row's indices come out ascending.
 */
function appendMergedRow(out: CsrSink, r: Int32Array, signed: boolean): void {
  const len = r.length;
  if (len <= 24) { for (let i = 1; i < len; i++) { const v = r[i]; let j = i - 1; while (j >= 0 && r[j] > v) { r[j + 1] = r[j]; j--; } r[j + 1] = v; } } else r.sort();
  reserve(out, len);
  const { indices, data } = out;
  let nnz = out.nnz, last = -1;
  for (let i = 0; i < len; i++) {
    const v = r[i], c = signed ? v >> 1 : v, w = signed && (v & 1) ? -1 : 1;
    if (c === last) data[nnz - 1] += w;
    else { indices[nnz] = c; data[nnz] = w; nnz++; last = c; }
  }
  out.nnz = nnz;
}

/**
 * Rows of counts: each gram occurrence adds 1 (or its sign, for hashing) to column `col(node)`,
 * resolved once per distinct node by `resolve` (-1: dropped). A row's occurrences are gathered,
 * sorted by column and merged, so row indices come out ascending (no per-column scratch array:
 * those are random accesses over the whole vocabulary, slow once it outgrows the caches).
 */
function countMatrix(docs: readonly string[], grams: GramIndex, resolve: (node: number) => number, cols: number, sign?: (node: number) => number, sortRows = true): CsrMatrix {
  const indptr = new Int32Array(docs.length + 1);
  const out = newSink();
  let col = new Int32Array(1 << 14).fill(-2); // node → column (sign-tagged for hashing: ~column when negative weight), -1 dropped, -2 not yet resolved
  let row = new Int32Array(256), len = 0; // this row's occurrences, as columns (or −3 − column for a −1)
  // Counting through a column-indexed scratch array is fastest while it stays in cache (char
  // n-grams, fitting); over a wide column space (hashing, a large fixed vocabulary) random
  // accesses to it miss, so rows are gathered, sorted and merged instead.
  const dense = !sign && cols <= 1 << 17;
  let slot = new Int32Array(dense ? 1 << 14 : 0).fill(-1), rowStart = 0;
  const emit = (node: number): void => {
    if (node >= col.length) { const c2 = new Int32Array(Math.max(node + 1, col.length * 2)).fill(-2); c2.set(col); col = c2; }
    let c = col[node];
    if (c === -2) {
      c = resolve(node);
      if (c >= 0 && sign && sign(node) < 0) c = -3 - c; // negative weight: stored as −3 − column
      col[node] = c;
    }
    if (c === -1) return;
    if (dense) {
      // A small column space: count in place through a column → position scratch array.
      if (c >= slot.length) { const s2 = new Int32Array(Math.max(c + 1, slot.length * 2)).fill(-1); s2.set(slot); slot = s2; }
      const p = slot[c];
      if (p >= rowStart) { out.data[p]++; return; }
      reserve(out, 1);
      slot[c] = out.nnz; out.indices[out.nnz] = c; out.data[out.nnz] = 1; out.nnz++;
      return;
    }
    if (len === row.length) { const r2 = new Int32Array(len * 2); r2.set(row); row = r2; }
    row[len++] = c;
  };
  for (let d = 0; d < docs.length; d++) {
    len = 0; rowStart = out.nnz;
    grams.walk(docs[d], emit);
    if (dense) { if (sortRows) sortRowRange(out.indices, out.data, rowStart, out.nnz); }
    else if (len > 0) {
      // Sort the occurrences by column, then merge runs into (column, count).
      if (sign) for (let i = 0; i < len; i++) row[i] = row[i] < 0 ? ((-3 - row[i]) << 1) | 1 : row[i] << 1;
      appendMergedRow(out, row.subarray(0, len), !!sign);
    }
    indptr[d + 1] = out.nnz;
  }
  return { rows: docs.length, cols, indptr, indices: out.indices.slice(0, out.nnz), data: out.data.slice(0, out.nnz) };
}

/**
 * Counts of word or character n-grams (sklearn's CountVectorizer). `fitTransform` learns the
 * vocabulary; `transform` maps new texts onto it (unknown grams are dropped).
 */
export class CountVectorizer {
  readonly options: Required<Omit<VectorizerOptions, 'minDf' | 'maxDf' | 'maxFeatures' | 'tokenPattern'>> & Pick<VectorizerOptions, 'minDf' | 'maxDf' | 'maxFeatures'> & { tokenPattern: string };
  /** Terms in column order (sorted by code point); empty until fitted. */
  vocabulary: string[] = [];
  /** Terms dropped by minDf / maxDf / maxFeatures at fit time (sklearn's stop_words_), counted. */
  prunedTerms = 0;
  private indexOf: Map<string, number> | null = null;
  /** Term → column, built on first use (fitting alone does not need it). */
  protected get index(): Map<string, number> {
    if (!this.indexOf || this.indexOf.size !== this.vocabulary.length) this.indexOf = new Map(this.vocabulary.map((t, i) => [t, i]));
    return this.indexOf;
  }
  constructor(opts: VectorizerOptions = {}) {
    const pattern = opts.tokenPattern === undefined ? SKLEARN_TOKEN_PATTERN : typeof opts.tokenPattern === 'string' ? opts.tokenPattern : opts.tokenPattern.source;
    this.options = {
      analyzer: opts.analyzer ?? 'word', ngramRange: checkRange(opts.ngramRange), lowercase: opts.lowercase ?? true, tokenPattern: pattern,
      binary: opts.binary ?? false, minDf: opts.minDf, maxDf: opts.maxDf, maxFeatures: opts.maxFeatures,
    };
    if (opts.maxFeatures !== undefined && !(Number.isInteger(opts.maxFeatures) && opts.maxFeatures >= 1)) throw new ClassicInputError(`maxFeatures must be a positive integer, got ${opts.maxFeatures}`);
    new GramIndex(this.options); // validates the analyzer options now
  }

  get fitted(): boolean { return this.vocabulary.length > 0; }
  get nFeatures(): number { return this.vocabulary.length; }
  /** Column of a term, or -1. */
  columnOf(term: string): number { return this.index.get(term) ?? -1; }

  /** Learn the vocabulary from `docs` and return their count matrix. */
  fitTransform(docs: readonly string[]): CsrMatrix {
    if (docs.length === 0) throw new ClassicInputError('no documents to fit the vocabulary on');
    const o = this.options, n = docs.length;
    // Count with the gram index's node numbers as provisional columns.
    const grams = new GramIndex(this.options);
    const isTerm: number[] = [];
    const rows = this.countRows(docs, grams, (node) => { isTerm.push(node); return node; }, 0, false); // sorted after the columns are renumbered
    const nNodes = grams.size, nTerms = isTerm.length;
    if (nTerms === 0) throw new ClassicInputError('empty vocabulary: the documents contain no n-grams (no token the pattern matches)');
    const term = new Uint8Array(nNodes);
    for (const v of isTerm) term[v] = 1;
    if (o.binary) rows.data.fill(1);
    const maxDoc = resolveDf('maxDf', o.maxDf, n, n), minDoc = resolveDf('minDf', o.minDf, n, 1);
    if (maxDoc < minDoc) throw new ClassicInputError(`maxDf (${fmtDf(o.maxDf)} → ${maxDoc} documents) is below minDf (${fmtDf(o.minDf)} → ${minDoc} documents) for ${n} documents`);
    // Terms in sorted order (Python's sorted() of the strings).
    const sortedIds = grams.sortedNodes().filter((v) => term[v] === 1);
    // Document and total frequencies.
    const df = new Float64Array(nNodes), tf = new Float64Array(nNodes);
    for (let k = 0; k < rows.indices.length; k++) { df[rows.indices[k]]++; tf[rows.indices[k]] += rows.data[k]; }
    const keep = new Uint8Array(nNodes);
    let kept = 0;
    for (const id of sortedIds) if (df[id] <= maxDoc && df[id] >= minDoc) { keep[id] = 1; kept++; }
    if (o.maxFeatures !== undefined && kept > o.maxFeatures) {
      // sklearn: argsort(-tf) over the kept terms in sorted order, first maxFeatures.
      const cand = sortedIds.filter((id) => keep[id]);
      const neg = new Float64Array(cand.length);
      for (let i = 0; i < cand.length; i++) neg[i] = -tf[cand[i]];
      const ord = argsortNumpy(neg);
      keep.fill(0);
      for (let i = 0; i < o.maxFeatures; i++) keep[cand[ord[i]]] = 1;
      kept = o.maxFeatures;
    }
    if (kept === 0) throw new ClassicInputError(`after pruning, no terms remain (minDf ${fmtDf(o.minDf)}, maxDf ${fmtDf(o.maxDf)}): try a lower minDf or a higher maxDf`);
    const col = new Int32Array(nNodes).fill(-1);
    this.vocabulary = [];
    for (const id of sortedIds) if (keep[id]) { col[id] = this.vocabulary.length; this.vocabulary.push(grams.gram(id)); }
    this.prunedTerms = nTerms - kept;
    this.indexOf = null;
    return remapColumns(rows, col, this.vocabulary.length);
  }

  /** Learn the vocabulary (the matrix is discarded). */
  fit(docs: readonly string[]): this { this.fitTransform(docs); return this; }

  /** Count matrix of `docs` over the fitted vocabulary. */
  transform(docs: readonly string[]): CsrMatrix {
    if (!this.fitted) throw new ClassicInputError('the vectorizer is not fitted: call fit/fitTransform or load a vocabulary first');
    const grams = new GramIndex(this.options);
    const rows = this.countRows(docs, grams, (node) => this.index.get(grams.gram(node)) ?? -1, this.vocabulary.length, true);
    if (this.options.binary) rows.data.fill(1);
    return rows;
  }

  /** The rows of `docs` over the grams of `grams`, a gram's column given by `resolve` the first time it is seen (-1 drops it); each row's indices ascending when `sortRows`. */
  protected countRows(docs: readonly string[], grams: GramIndex, resolve: (node: number) => number, cols: number, sortRows: boolean): CsrMatrix {
    return countMatrix(docs, grams, resolve, cols, undefined, sortRows);
  }

  /** The fitted vectorizer as JSON-ready data (see VocabularyFile). */
  toJSON(): VocabularyFile {
    const o = this.options;
    return { format: FORMAT, version: 1, options: { analyzer: o.analyzer, ngramRange: o.ngramRange, lowercase: o.lowercase, tokenPattern: o.tokenPattern, binary: o.binary, tfidf: null }, vocabulary: this.vocabulary };
  }

  /** A fitted CountVectorizer or TfidfVectorizer from saved JSON data (`where` names the file in errors). */
  static fromJSON(json: unknown, where = 'vocabulary'): CountVectorizer {
    const j = json as Partial<VocabularyFile> | null;
    if (!j || typeof j !== 'object' || j.format !== FORMAT) throw new ClassicInputError(`${where}: not a tslm n-gram vocabulary (expected "format": "${FORMAT}")`);
    if (j.version !== 1) throw new ClassicInputError(`${where}: unsupported vocabulary version ${String(j.version)}`);
    const o = j.options;
    if (!o || !Array.isArray(j.vocabulary) || !j.vocabulary.every((t) => typeof t === 'string')) throw new ClassicInputError(`${where}: "options" and a "vocabulary" array of strings are required`);
    if (j.vocabulary.length === 0) throw new ClassicInputError(`${where}: the vocabulary is empty`);
    const base = { analyzer: o.analyzer, ngramRange: o.ngramRange, lowercase: o.lowercase, tokenPattern: o.tokenPattern, binary: o.binary };
    let v: CountVectorizer;
    if (o.tfidf) {
      const t = new TfidfVectorizer({ ...base, ...o.tfidf });
      if (o.tfidf.useIdf) {
        if (!Array.isArray(j.idf) || j.idf.length !== j.vocabulary.length || !j.idf.every((x) => typeof x === 'number')) throw new ClassicInputError(`${where}: "idf" must have one number per term`);
        t.idf = Float64Array.from(j.idf);
      }
      v = t;
    } else v = new CountVectorizer(base);
    v.vocabulary = j.vocabulary.slice();
    if (new Set(v.vocabulary).size !== v.vocabulary.length) throw new ClassicInputError(`${where}: the vocabulary has duplicate terms`);
    return v;
  }
}

function fmtDf(d: DocFrequency | undefined): string {
  return d === undefined ? 'default' : typeof d === 'object' ? `${d.proportion} of documents` : String(d);
}

/** Replace column ids by col[id] (dropping -1), then sort each row's indices. */
function remapColumns(m: CsrMatrix, col: Int32Array, cols: number): CsrMatrix {
  const indptr = new Int32Array(m.rows + 1), indices = new Int32Array(m.indices.length), data = new Float64Array(m.indices.length);
  let nnz = 0;
  for (let r = 0; r < m.rows; r++) {
    for (let k = m.indptr[r]; k < m.indptr[r + 1]; k++) {
      const c = col[m.indices[k]];
      if (c >= 0) { indices[nnz] = c; data[nnz] = m.data[k]; nnz++; }
    }
    indptr[r + 1] = nnz;
  }
  const out = { rows: m.rows, cols, indptr, indices: indices.slice(0, nnz), data: data.slice(0, nnz) };
  sortRowIndices(out);
  return out;
}

/** Sort each row's (index, value) pairs by index, in place. */
export function sortRowIndices(m: CsrMatrix): void {
  for (let r = 0; r < m.rows; r++) sortRowRange(m.indices, m.data, m.indptr[r], m.indptr[r + 1]);
}

let perm = new Int32Array(64), ti = new Int32Array(64), td = new Float64Array(64);
/** Sort the (index, value) pairs [a, b) by index, in place. */
function sortRowRange(ix: Int32Array, dx: Float64Array, a: number, b: number): void {
  const n = b - a;
  if (n <= 32) {
    for (let k = a + 1; k < b; k++) {
      const i = ix[k], d = dx[k];
      let j = k - 1;
      while (j >= a && ix[j] > i) { ix[j + 1] = ix[j]; dx[j + 1] = dx[j]; j--; }
      ix[j + 1] = i; dx[j + 1] = d;
    }
    return;
  }
  let sorted = true;
  for (let k = a + 1; k < b; k++) if (ix[k - 1] > ix[k]) { sorted = false; break; }
  if (sorted) return;
  if (perm.length < n) { perm = new Int32Array(n * 2); ti = new Int32Array(n * 2); td = new Float64Array(n * 2); }
  for (let k = 0; k < n; k++) { perm[k] = k; ti[k] = ix[a + k]; td[k] = dx[a + k]; }
  const p = perm.subarray(0, n).sort((x, y) => ti[x] - ti[y]);
  for (let k = 0; k < n; k++) { ix[a + k] = ti[p[k]]; dx[a + k] = td[p[k]]; }
}

/** sklearn's TfidfTransformer: idf weights learned from a count matrix, then tf-idf rows. */
export class TfidfTransformer {
  readonly norm: Norm;
  readonly useIdf: boolean;
  readonly smoothIdf: boolean;
  readonly sublinearTf: boolean;
  /** idf per column (when useIdf), set by fit. */
  idf: Float64Array | null = null;
  constructor(o: TfidfOptions = {}) {
    this.norm = o.norm === undefined ? 'l2' : o.norm;
    if (this.norm !== null && this.norm !== 'l1' && this.norm !== 'l2') throw new ClassicInputError(`norm must be 'l1', 'l2' or none, got '${String(this.norm)}'`);
    this.useIdf = o.useIdf ?? true;
    this.smoothIdf = o.smoothIdf ?? true;
    this.sublinearTf = o.sublinearTf ?? false;
  }
  get settings(): Required<TfidfOptions> { return { norm: this.norm, useIdf: this.useIdf, smoothIdf: this.smoothIdf, sublinearTf: this.sublinearTf }; }
  fit(x: CsrMatrix): this {
    if (!this.useIdf) return this;
    const df = new Float64Array(x.cols);
    for (let k = 0; k < x.indices.length; k++) df[x.indices[k]]++; // stored entries, as sklearn's bincount(indices)
    const s = this.smoothIdf ? 1 : 0, n = x.rows + s;
    this.idf = new Float64Array(x.cols);
    for (let j = 0; j < x.cols; j++) this.idf[j] = Math.log(n / (df[j] + s)) + 1;
    return this;
  }
  /** tf-idf of a count matrix (a new matrix; `x` is unchanged). */
  transform(x: CsrMatrix): CsrMatrix {
    const data = Float64Array.from(x.data);
    if (this.sublinearTf) for (let k = 0; k < data.length; k++) data[k] = Math.log(data[k]) + 1;
    if (this.useIdf) {
      if (!this.idf) throw new ClassicInputError('the tf-idf transformer is not fitted');
      if (this.idf.length !== x.cols) throw new ClassicInputError(`the matrix has ${x.cols} columns but the idf has ${this.idf.length}`);
      for (let k = 0; k < data.length; k++) data[k] *= this.idf[x.indices[k]];
    }
    const out = { ...x, indptr: x.indptr, indices: x.indices, data };
    if (this.norm) normalizeRows(out, this.norm);
    return out;
  }
  fitTransform(x: CsrMatrix): CsrMatrix { return this.fit(x).transform(x); }
}

/** Scale each row to unit l1 or l2 norm, in place (rows of zeros stay zero), as sklearn's normalize. */
export function normalizeRows(m: CsrMatrix, norm: 'l1' | 'l2'): void {
  for (let r = 0; r < m.rows; r++) {
    let s = 0;
    const a = m.indptr[r], b = m.indptr[r + 1];
    if (norm === 'l2') { for (let k = a; k < b; k++) s += m.data[k] * m.data[k]; s = Math.sqrt(s); } else for (let k = a; k < b; k++) s += Math.abs(m.data[k]);
    if (s === 0) continue;
    for (let k = a; k < b; k++) m.data[k] /= s;
  }
}

/** Counts weighted by tf-idf (sklearn's TfidfVectorizer = CountVectorizer + TfidfTransformer). */
export class TfidfVectorizer extends CountVectorizer {
  readonly tfidf: TfidfTransformer;
  constructor(opts: VectorizerOptions & TfidfOptions = {}) {
    super(opts);
    this.tfidf = new TfidfTransformer(opts);
  }
  get idf(): Float64Array | null { return this.tfidf.idf; }
  set idf(v: Float64Array | null) { this.tfidf.idf = v; }
  override fitTransform(docs: readonly string[]): CsrMatrix { return this.tfidf.fitTransform(super.fitTransform(docs)); }
  override transform(docs: readonly string[]): CsrMatrix { return this.tfidf.transform(super.transform(docs)); }
  /** The count matrix of `docs` (no tf-idf weighting). */
  counts(docs: readonly string[]): CsrMatrix { return super.transform(docs); }
  override toJSON(): VocabularyFile {
    const j = super.toJSON();
    j.options.tfidf = this.tfidf.settings;
    if (this.idf) j.idf = Array.from(this.idf);
    return j;
  }
}

const C1 = 0xcc9e2d51, C2 = 0x1b873593;
let utf8 = new Uint8Array(256);

/** MurmurHash3_x86_32 of a string's UTF-8 bytes, as a signed 32-bit integer (sklearn's murmurhash3_32(s, seed, positive=False)). */
export function murmurhash3(s: string, seed = 0): number {
  // UTF-8 encode into a scratch buffer.
  if (utf8.length < s.length * 3) utf8 = new Uint8Array(s.length * 3 + 16);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) utf8[n++] = c;
    else if (c < 0x800) { utf8[n++] = 0xc0 | (c >> 6); utf8[n++] = 0x80 | (c & 63); }
    else {
      if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d < 0xe000) {
          c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00); i++;
          utf8[n++] = 0xf0 | (c >> 18); utf8[n++] = 0x80 | ((c >> 12) & 63); utf8[n++] = 0x80 | ((c >> 6) & 63); utf8[n++] = 0x80 | (c & 63);
          continue;
        }
      }
      if (c >= 0xd800 && c < 0xe000) c = 0xfffd; // a lone surrogate (Python would refuse to encode it)
      utf8[n++] = 0xe0 | (c >> 12); utf8[n++] = 0x80 | ((c >> 6) & 63); utf8[n++] = 0x80 | (c & 63);
    }
  }
  return murmurhash3Bytes(utf8, n, seed);
}

/** MurmurHash3_x86_32 of bytes[0..len), signed. */
export function murmurhash3Bytes(b: Uint8Array, len: number, seed = 0): number {
  let h = seed | 0;
  const blocks = len & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24);
    k = Math.imul(k, C1); k = (k << 15) | (k >>> 17); k = Math.imul(k, C2);
    h ^= k; h = (h << 13) | (h >>> 19); h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let k = 0;
  switch (len & 3) {
    case 3: k ^= b[blocks + 2] << 16; // falls through
    case 2: k ^= b[blocks + 1] << 8; // falls through
    case 1: k ^= b[blocks]; k = Math.imul(k, C1); k = (k << 15) | (k >>> 17); k = Math.imul(k, C2); h ^= k;
  }
  h ^= len;
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b); h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35); h ^= h >>> 16;
  return h | 0;
}

export interface HashingOptions extends AnalyzerOptions {
  /** Number of columns (default 2^20, as sklearn). */
  nFeatures?: number;
  /** Sign each gram's contribution by its hash's sign, so collisions tend to cancel (default true). */
  alternateSign?: boolean;
  binary?: boolean;
  /** Row normalisation (default 'l2', as sklearn's HashingVectorizer). */
  norm?: Norm;
}

/**
 * Hashed rows: MurmurHash3_x86_32 of each gram's UTF-8 bytes, streamed token by token (word) or
 * code point by code point (char), so that no gram string is built and no vocabulary is kept:
 * extending a gram by one symbol feeds only that symbol's bytes, and each n in [lo, hi] reads
 * the hash off a copy of the running state.
 */
function hashMatrix(docs: readonly string[], grams: GramIndex, nFeatures: number, alternateSign: boolean): CsrMatrix {
  const indptr = new Int32Array(docs.length + 1);
  const out = newSink();
  let row = new Int32Array(256), len = 0; // column << 1 | (1 for a −1)
  const { lo, hi } = grams, words = grams.words;
  const C1 = 0xcc9e2d51, C2 = 0x1b873593;
  // Running MurmurHash3 state: h, the pending bytes of the current 4-byte block (acc, cnt), total length.
  let h = 0, acc = 0, cnt = 0, total = 0;
  const byte = (b: number): void => {
    acc |= b << (cnt << 3);
    if (++cnt === 4) {
      let k = Math.imul(acc, C1); k = (k << 15) | (k >>> 17); k = Math.imul(k, C2);
      h ^= k; h = (h << 13) | (h >>> 19); h = (Math.imul(h, 5) + 0xe6546b64) | 0;
      acc = 0; cnt = 0;
    }
    total++;
  };
  const push = (): void => {
    // Finish a copy of the state (tail block, length, final mix) and record the column.
    let x = h;
    if (cnt > 0) { let k = Math.imul(acc, C1); k = (k << 15) | (k >>> 17); k = Math.imul(k, C2); x ^= k; }
    x ^= total;
    x ^= x >>> 16; x = Math.imul(x, 0x85ebca6b); x ^= x >>> 13; x = Math.imul(x, 0xc2b2ae35); x ^= x >>> 16;
    x |= 0;
    const col = x === -2147483648 ? (2147483647 - (nFeatures - 1)) % nFeatures : Math.abs(x) % nFeatures;
    if (len === row.length) { const r2 = new Int32Array(len * 2); r2.set(row); row = r2; }
    row[len++] = (col << 1) | (alternateSign && x < 0 ? 1 : 0);
  };
  const feed = (sym: number): void => {
    if (words) { const b = grams.tokenBytes(sym); for (let i = 0; i < b.length; i++) byte(b[i]); return; }
    if (sym < 0x80) byte(sym);
    else if (sym < 0x800) { byte(0xc0 | (sym >> 6)); byte(0x80 | (sym & 63)); }
    else if (sym < 0x10000) { if (sym >= 0xd800 && sym < 0xe000) sym = 0xfffd; byte(0xe0 | (sym >> 12)); byte(0x80 | ((sym >> 6) & 63)); byte(0x80 | (sym & 63)); }
    else { byte(0xf0 | (sym >> 18)); byte(0x80 | ((sym >> 12) & 63)); byte(0x80 | ((sym >> 6) & 63)); byte(0x80 | (sym & 63)); }
  };
  let bytes = new Uint8Array(256);
  const range = (n: number, whole: boolean): void => {
    const syms = grams.symbols;
    if (whole) { h = 0; acc = 0; cnt = 0; total = 0; for (let k = 0; k < n; k++) feed(syms[k]); push(); return; }
    if (!words) {
      for (let i = 0; i < n; i++) {
        h = 0; acc = 0; cnt = 0; total = 0;
        const top = Math.min(hi, n - i);
        for (let k = 1; k <= top; k++) { feed(syms[i + k - 1]); if (k >= lo) push(); }
      }
      return;
    }
    // Word grams, the hot case: the segment's bytes (tokens joined by spaces) in one array, each
    // gram a byte range of it, hashed with the state in local variables.
    let nb = 0;
    const starts = new Int32Array(n + 1);
    for (let t = 0; t < n; t++) {
      const tb = grams.tokenBytes(syms[t]);
      if (nb + tb.length + 1 > bytes.length) { const b2 = new Uint8Array((nb + tb.length + 1) * 2); b2.set(bytes); bytes = b2; }
      starts[t] = nb;
      bytes.set(tb, nb); nb += tb.length;
      bytes[nb++] = 32;
    }
    starts[n] = nb;
    for (let i = 0; i < n; i++) {
      let hh = 0, a = 0, c = 0, p = starts[i];
      const top = Math.min(hi, n - i);
      for (let k = 1; k <= top; k++) {
        const end = starts[i + k] - 1; // this gram's bytes: [starts[i], end), the space before token i+k-1 included
        for (; p < end; p++) {
          a |= bytes[p] << (c << 3);
          if (++c === 4) {
            let x = Math.imul(a, C1); x = (x << 15) | (x >>> 17); x = Math.imul(x, C2);
            hh ^= x; hh = (hh << 13) | (hh >>> 19); hh = (Math.imul(hh, 5) + 0xe6546b64) | 0;
            a = 0; c = 0;
          }
        }
        if (k >= lo) {
          let x = hh;
          if (c > 0) { let y = Math.imul(a, C1); y = (y << 15) | (y >>> 17); y = Math.imul(y, C2); x ^= y; }
          x ^= end - starts[i];
          x ^= x >>> 16; x = Math.imul(x, 0x85ebca6b); x ^= x >>> 13; x = Math.imul(x, 0xc2b2ae35); x ^= x >>> 16;
          x |= 0;
          const col = x === -2147483648 ? (2147483647 - (nFeatures - 1)) % nFeatures : Math.abs(x) % nFeatures;
          if (len === row.length) { const r2 = new Int32Array(len * 2); r2.set(row); row = r2; }
          row[len++] = (col << 1) | (alternateSign && x < 0 ? 1 : 0);
        }
      }
    }
  };
  for (let d = 0; d < docs.length; d++) {
    len = 0;
    grams.segments(docs[d], range);
    if (len > 0) appendMergedRow(out, row.subarray(0, len), true);
    indptr[d + 1] = out.nnz;
  }
  return { rows: docs.length, cols: nFeatures, indptr, indices: out.indices.slice(0, out.nnz), data: out.data.slice(0, out.nnz) };
}

/**
 * The hashing trick (sklearn's HashingVectorizer): no vocabulary; gram g goes to column
 * |murmurhash3(g)| mod nFeatures with sign(murmurhash3(g)) when alternateSign.
 */
export class HashingVectorizer {
  readonly nFeatures: number;
  readonly alternateSign: boolean;
  readonly binary: boolean;
  readonly norm: Norm;
  private readonly opts: AnalyzerOptions;
  constructor(o: HashingOptions = {}) {
    this.nFeatures = o.nFeatures ?? 1 << 20;
    if (!(Number.isInteger(this.nFeatures) && this.nFeatures >= 1 && this.nFeatures <= 2 ** 30)) throw new ClassicInputError(`hashing: the number of features must be an integer in [1, 2^30], got ${o.nFeatures}`);
    this.alternateSign = o.alternateSign ?? true;
    this.binary = o.binary ?? false;
    this.norm = o.norm === undefined ? 'l2' : o.norm;
    this.opts = { analyzer: o.analyzer, ngramRange: o.ngramRange, lowercase: o.lowercase, tokenPattern: o.tokenPattern };
    new GramIndex(this.opts); // validates the analyzer options now
  }
  /** Column and sign of one gram. */
  column(gram: string): { index: number; sign: number } {
    const h = murmurhash3(gram);
    return { index: this.columnOfHash(h), sign: this.alternateSign && h < 0 ? -1 : 1 };
  }
  transform(docs: readonly string[]): CsrMatrix {
    if (docs.length === 0) throw new ClassicInputError('no documents to vectorize');
    const m = hashMatrix(docs, new GramIndex(this.opts), this.nFeatures, this.alternateSign);
    if (this.binary) m.data.fill(1);
    if (this.norm) normalizeRows(m, this.norm);
    return m;
  }
  private columnOfHash(h: number): number {
    return h === -2147483648 ? (2147483647 - (this.nFeatures - 1)) % this.nFeatures : Math.abs(h) % this.nFeatures;
  }
}

/** Matrix Market text (coordinate, 1-based; 'integer' when every value is an integer) of a CSR matrix. */
export function toMatrixMarket(m: CsrMatrix, comment?: string): string {
  const integer = m.data.every((x) => Number.isInteger(x));
  const parts: string[] = [`%%MatrixMarket matrix coordinate ${integer ? 'integer' : 'real'} general\n`];
  if (comment) for (const l of comment.split('\n')) parts.push(`% ${l}\n`);
  parts.push(`${m.rows} ${m.cols} ${m.indices.length}\n`);
  let chunk = '';
  for (let r = 0; r < m.rows; r++) {
    for (let k = m.indptr[r]; k < m.indptr[r + 1]; k++) {
      chunk += `${r + 1} ${m.indices[k] + 1} ${m.data[k]}\n`;
      if (chunk.length > 1 << 16) { parts.push(chunk); chunk = ''; }
    }
  }
  parts.push(chunk);
  return parts.join('');
}

/** A CSR matrix as a JSON-ready object ({format: "csr", shape, indptr, indices, data}). */
export function csrToJSON(m: CsrMatrix): { format: 'csr'; shape: [number, number]; indptr: number[]; indices: number[]; data: number[] } {
  return { format: 'csr', shape: [m.rows, m.cols], indptr: Array.from(m.indptr), indices: Array.from(m.indices), data: Array.from(m.data) };
}
