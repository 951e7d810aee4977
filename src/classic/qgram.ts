// Q-gram profiles of strings and the distances and similarities defined on them (Ukkonen 1992,
// "Approximate string-matching with q-grams and maximal matches"; Jaccard, cosine, Dice, overlap).
//
// A string is a sequence of symbols: its Unicode code points (unit 'char', so a Chinese character
// is one symbol; no lowercasing or whitespace folding) or its whitespace-separated words (unit
// 'word'). Its q-grams are the windows of q consecutive symbols; its profile counts each distinct
// gram. Padding (`pad: true`) adds q-1 start markers before and q-1 end markers after the symbols,
// as the Python `ngram` package and NLTK's `pad_sequence` do, so that every symbol sits in q grams
// and strings shorter than q still have grams. The start and end markers are two distinct symbols
// that no text contains (code points 0x110000 and 0x110001; written STX U+0002 and ETX U+0003 where
// a gram is shown as a string). Unpadded (the default, as R stringdist's `qgram` and strsimpy),
// a string of fewer than q symbols has an empty profile.
//
// Grams are never built as strings on the hot path: symbols are integers, and a GramTable maps each
// window of q integers to a dense gram id through an open-addressing hash table that compares the
// stored symbols (exact, no collisions). A profile is the sorted gram ids and their counts.
import { ClassicInputError } from './errors.js';

export type GramUnit = 'char' | 'word';
export type QgramMetric = 'qgram' | 'jaccard' | 'cosine' | 'dice' | 'overlap';
export const QGRAM_METRICS: readonly QgramMetric[] = ['qgram', 'jaccard', 'cosine', 'dice', 'overlap'];

export interface QgramOptions {
  /** Gram length in symbols (default 3). */
  q?: number;
  /** Add q-1 start and q-1 end markers (default false). */
  pad?: boolean;
  /** Symbols: code points (default) or whitespace-separated words. */
  unit?: GramUnit;
}

/** The start and end padding symbols (above the last Unicode code point, so no text has them). */
export const QGRAM_PAD_START = 0x110000;
export const QGRAM_PAD_END = 0x110001;

/** Validated options with defaults filled in. */
export function qgramOptions(opts: QgramOptions = {}): Required<QgramOptions> {
  const q = opts.q ?? 3;
  if (!Number.isInteger(q) || q < 1) throw new ClassicInputError(`q must be an integer >= 1, got ${q}`);
  if (q > 64) throw new ClassicInputError(`q must be at most 64, got ${q}`);
  const unit = opts.unit ?? 'char';
  if (unit !== 'char' && unit !== 'word') throw new ClassicInputError(`unit must be 'char' or 'word', got '${unit}'`);
  return { q, pad: opts.pad ?? false, unit };
}

/** A sparse gram profile: distinct gram ids ascending, their counts, and summary sizes. */
export interface GramProfile {
  ids: Int32Array;
  counts: Int32Array;
  /** Number of distinct grams (the size of the gram set). */
  size: number;
  /** Number of grams with multiplicity (the sum of counts). */
  total: number;
  /** Sum of squared counts (the squared Euclidean norm of the count vector). */
  sumSq: number;
}

const EMPTY_I32 = new Int32Array(0);

function mix(h: number, x: number): number {
  h = Math.imul(h ^ x, 0xcc9e2d51);
  h = (h << 15) | (h >>> 17);
  return Math.imul(h, 0x1b873593) + 0xe6546b64;
}
function fmix(h: number): number {
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * Maps windows of q integer symbols to dense gram ids (0, 1, 2, … in order of first insertion).
 * Exact: the q symbols of every gram are stored and compared on lookup.
 */
export class GramTable {
  /** Symbols of gram id i at [i*q, i*q+q). */
  private syms: Int32Array;
  private hashes: Uint32Array;
  /** Slot -> gram id + 1 (0: empty). */
  private slots: Int32Array;
  private mask: number;
  size = 0;

  constructor(readonly q: number, capacity = 1024) {
    let cap = 1024;
    while (cap < capacity * 2) cap *= 2;
    this.slots = new Int32Array(cap);
    this.mask = cap - 1;
    this.syms = new Int32Array((cap >>> 1) * q);
    this.hashes = new Uint32Array(cap >>> 1);
  }

  /** The id of the gram buf[off..off+q), inserting it when `insert`; -1 if absent and not inserted. */
  id(buf: Int32Array, off: number, insert: boolean): number {
    const q = this.q;
    let h = 0x9747b28c;
    for (let i = 0; i < q; i++) h = mix(h, buf[off + i]);
    h = fmix(h ^ q);
    const slots = this.slots, mask = this.mask, syms = this.syms, hashes = this.hashes;
    for (let s = h & mask; ; s = (s + 1) & mask) {
      const e = slots[s];
      if (e === 0) break;
      const id = e - 1;
      if (hashes[id] !== h) continue;
      let same = true;
      for (let i = 0, b = id * q; i < q; i++) if (syms[b + i] !== buf[off + i]) { same = false; break; }
      if (same) return id;
    }
    if (!insert) return -1;
    if ((this.size + 1) * 2 > slots.length) { this.grow(); return this.id(buf, off, true); }
    const id = this.size++;
    syms.set(buf.subarray(off, off + q), id * q);
    hashes[id] = h;
    for (let s = h & mask; ; s = (s + 1) & mask) if (slots[s] === 0) { slots[s] = id + 1; break; }
    return id;
  }

  /** The symbols of gram `id`. */
  symbols(id: number): Int32Array {
    return this.syms.slice(id * this.q, id * this.q + this.q);
  }

  private grow(): void {
    const cap = this.slots.length * 2;
    const syms = new Int32Array((cap >>> 1) * this.q);
    syms.set(this.syms);
    const hashes = new Uint32Array(cap >>> 1);
    hashes.set(this.hashes);
    const slots = new Int32Array(cap), mask = cap - 1;
    for (let id = 0; id < this.size; id++) {
      for (let s = hashes[id] & mask; ; s = (s + 1) & mask) if (slots[s] === 0) { slots[s] = id + 1; break; }
    }
    this.syms = syms; this.hashes = hashes; this.slots = slots; this.mask = mask;
  }
}

/**
 * Turns strings into profiles over one shared gram table (and, for words, one word table), so that
 * the profiles of many strings share gram ids. `frozen` encoders (an index's, at query time) do not
 * grow: a gram they have never seen gets a private id above every known one, distinct per gram.
 */
export class QgramEncoder {
  readonly q: number;
  readonly pad: boolean;
  readonly unit: GramUnit;
  readonly grams: GramTable;
  private words = new Map<string, number>();
  private symBuf = new Int32Array(256);
  private gramBuf = new Int32Array(256);

  constructor(opts: QgramOptions = {}) {
    const o = qgramOptions(opts);
    this.q = o.q; this.pad = o.pad; this.unit = o.unit;
    this.grams = new GramTable(o.q);
  }

  /** Symbols of `s` (padded if asked) into the scratch buffer; returns their count. */
  private symbols(s: string, insertWords: boolean): number {
    const pad = this.pad ? this.q - 1 : 0;
    const [start, end] = this.unit === 'char' ? [QGRAM_PAD_START, QGRAM_PAD_END] : [0, 1];
    if (s.length + 2 * pad > this.symBuf.length) this.symBuf = new Int32Array(Math.max(s.length + 2 * pad, this.symBuf.length * 2));
    const buf = this.symBuf;
    let n = 0;
    for (let i = 0; i < pad; i++) buf[n++] = start;
    if (this.unit === 'char') {
      for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
          const d = s.charCodeAt(i + 1);
          if (d >= 0xdc00 && d <= 0xdfff) { buf[n++] = ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000; i++; continue; }
        }
        buf[n++] = c;
      }
    } else {
      // Word symbols are 2 + word id (0 and 1 are the markers); a word unseen by a frozen
      // encoder gets a private negative symbol, distinct per word within the string.
      const t = s.trim();
      let unknown: Map<string, number> | null = null;
      if (t !== '') {
        for (const w of t.split(/\s+/u)) {
          let id = this.words.get(w);
          if (id === undefined && insertWords) { id = this.words.size; this.words.set(w, id); }
          if (id !== undefined) { buf[n++] = 2 + id; continue; }
          unknown ??= new Map();
          let k = unknown.get(w);
          if (k === undefined) { k = unknown.size; unknown.set(w, k); }
          buf[n++] = -1 - k;
        }
      }
    }
    for (let i = 0; i < pad; i++) buf[n++] = end;
    return n;
  }

  /**
   * Gram ids of `s` (unsorted, with repeats) in a scratch array valid until the next call; its
   * length is the number of grams. With `insert` false, unseen grams get ids >= grams.size.
   */
  gramIds(s: string, insert = true): Int32Array {
    const n = this.symbols(s, insert);
    const q = this.q, m = Math.max(0, n - q + 1);
    if (m > this.gramBuf.length) this.gramBuf = new Int32Array(Math.max(m, this.gramBuf.length * 2));
    const out = this.gramBuf, buf = this.symBuf, table = this.grams;
    let unknown: GramTable | null = null;
    for (let i = 0; i < m; i++) {
      let id = table.id(buf, i, insert);
      if (id < 0) { unknown ??= new GramTable(q, 16); id = table.size + unknown.id(buf, i, true); }
      out[i] = id;
    }
    return out.subarray(0, m);
  }

  /** The profile of `s` (gram ids ascending with counts). */
  profile(s: string, insert = true): GramProfile {
    return gramProfileOfIds(this.gramIds(s, insert));
  }

  /** A gram as a string (padding shown as U+0002 / U+0003; word grams joined by a space). */
  gramText(id: number): string {
    const sym = this.grams.symbols(id);
    const char = this.unit === 'char';
    const show = (x: number): string => (x === (char ? QGRAM_PAD_START : 0) ? '\u0002' : x === (char ? QGRAM_PAD_END : 1) ? '\u0003' : char ? String.fromCodePoint(x) : this.wordOf(x - 2));
    return Array.from(sym, show).join(this.unit === 'char' ? '' : ' ');
  }

  private wordList: string[] | null = null;
  private wordOf(id: number): string {
    if (!this.wordList || this.wordList.length !== this.words.size) this.wordList = [...this.words.keys()];
    return this.wordList[id];
  }
}

/** Sort ids (in place) and run-length them into a profile. */
export function gramProfileOfIds(ids: Int32Array): GramProfile {
  if (ids.length === 0) return { ids: EMPTY_I32, counts: EMPTY_I32, size: 0, total: 0, sumSq: 0 };
  ids.sort();
  let k = 1;
  for (let i = 1; i < ids.length; i++) if (ids[i] !== ids[i - 1]) k++;
  const u = new Int32Array(k), c = new Int32Array(k);
  let j = 0, sumSq = 0;
  u[0] = ids[0]; c[0] = 1;
  for (let i = 1; i < ids.length; i++) {
    if (ids[i] === ids[i - 1]) c[j]++;
    else { sumSq += c[j] * c[j]; u[++j] = ids[i]; c[j] = 1; }
  }
  sumSq += c[j] * c[j];
  return { ids: u, counts: c, size: k, total: ids.length, sumSq };
}

/** What two profiles share: distinct grams in common, sum of min counts, dot product of counts. */
export interface GramOverlap { common: number; sumMin: number; dot: number }

/** Merge two sorted profiles. */
export function gramOverlap(a: GramProfile, b: GramProfile): GramOverlap {
  let i = 0, j = 0, common = 0, sumMin = 0, dot = 0;
  const ai = a.ids, bi = b.ids, ac = a.counts, bc = b.counts;
  while (i < ai.length && j < bi.length) {
    const x = ai[i], y = bi[j];
    if (x < y) i++;
    else if (x > y) j++;
    else { const p = ac[i++], r = bc[j++]; common++; sumMin += p < r ? p : r; dot += p * r; }
  }
  return { common, sumMin, dot };
}

/** Sizes of a profile that the measures need. */
export interface GramProfileSizes { size: number; total: number; sumSq: number }

/**
 * The measure `metric` of two profiles from their overlap and sizes. 'qgram' is Ukkonen's
 * distance Σ|a_g − b_g| = total_a + total_b − 2 Σ min(a_g, b_g); the others are similarities in
 * [0, 1]: Jaccard |A∩B|/|A∪B|, Dice 2|A∩B|/(|A|+|B|) and overlap |A∩B|/min(|A|,|B|) over the gram
 * sets, cosine a·b/(‖a‖‖b‖) over the count vectors. Two empty profiles are identical (similarity 1);
 * an empty and a non-empty one share nothing (similarity 0).
 * Every path (pairwise, brute-force scan, index) computes scores with this one function.
 */
export function qgramMeasure(metric: QgramMetric, o: GramOverlap, a: GramProfileSizes, b: GramProfileSizes): number {
  return qgramMeasureRaw(metric, o.common, o.sumMin, o.dot, a.size, a.total, a.sumSq, b.size, b.total, b.sumSq);
}

/** `measure` on plain numbers (the index's inner loops call this; no objects per candidate). */
export function qgramMeasureRaw(metric: QgramMetric, common: number, sumMin: number, dot: number,
  aSize: number, aTotal: number, aSumSq: number, bSize: number, bTotal: number, bSumSq: number): number {
  switch (metric) {
    case 'qgram': return aTotal + bTotal - 2 * sumMin;
    case 'jaccard': return aSize + bSize === 0 ? 1 : common / (aSize + bSize - common);
    case 'dice': return aSize + bSize === 0 ? 1 : (2 * common) / (aSize + bSize);
    case 'overlap': return aSize === 0 && bSize === 0 ? 1 : aSize === 0 || bSize === 0 ? 0 : common / Math.min(aSize, bSize);
    case 'cosine': return aSumSq === 0 && bSumSq === 0 ? 1 : aSumSq === 0 || bSumSq === 0 ? 0 : dot / Math.sqrt(aSumSq * bSumSq);
  }
}

/** Whether smaller scores are better (a distance) for `metric`. */
export const isQgramDistance = (metric: QgramMetric): boolean => metric === 'qgram';

/** The q-gram profile of `s` as a Map from gram (a string) to count, in order of first occurrence. */
export function qgramProfile(s: string, opts: QgramOptions = {}): Map<string, number> {
  const enc = new QgramEncoder(opts);
  const ids = enc.gramIds(s);
  const out = new Map<string, number>();
  for (const id of ids) { const g = enc.gramText(id); out.set(g, (out.get(g) ?? 0) + 1); }
  return out;
}

function pair(metric: QgramMetric, a: string, b: string, opts: QgramOptions): number {
  const enc = new QgramEncoder(opts);
  const pa = enc.profile(a), pb = enc.profile(b);
  return qgramMeasure(metric, gramOverlap(pa, pb), pa, pb);
}

/** Ukkonen's q-gram distance: Σ over grams of |count in a − count in b|. */
export const qgramDistance = (a: string, b: string, opts: QgramOptions = {}): number => pair('qgram', a, b, opts);
/** Jaccard similarity of the gram sets, |A∩B| / |A∪B|. */
export const qgramJaccard = (a: string, b: string, opts: QgramOptions = {}): number => pair('jaccard', a, b, opts);
/** Jaccard distance, 1 − Jaccard similarity. */
export const qgramJaccardDistance = (a: string, b: string, opts: QgramOptions = {}): number => 1 - pair('jaccard', a, b, opts);
/** Cosine similarity of the gram count vectors. */
export const qgramCosine = (a: string, b: string, opts: QgramOptions = {}): number => pair('cosine', a, b, opts);
/** Dice (Sørensen) coefficient of the gram sets, 2|A∩B| / (|A| + |B|). */
export const qgramDice = (a: string, b: string, opts: QgramOptions = {}): number => pair('dice', a, b, opts);
/** GramOverlap (Szymkiewicz–Simpson) coefficient of the gram sets, |A∩B| / min(|A|, |B|). */
export const qgramOverlap = (a: string, b: string, opts: QgramOptions = {}): number => pair('overlap', a, b, opts);

/** A similarity or distance between two strings by metric name. */
export function qgramScore(metric: QgramMetric, a: string, b: string, opts: QgramOptions = {}): number {
  if (!QGRAM_METRICS.includes(metric)) throw new ClassicInputError(`metric must be one of ${QGRAM_METRICS.join(', ')}, got '${metric}'`);
  return pair(metric, a, b, opts);
}
