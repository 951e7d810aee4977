// Packed n-gram storage for counting and estimation: an n-gram of order n >= 2 is the pair
// (index of its first n-1 words in the order n-1 table, id of its last word), so every key is
// two int32 whatever the order or vocabulary size (nothing is packed into bits that could
// overflow). Each entry also records its suffix (the index of its last n-1 words in the order
// n-1 table), so Kneser–Ney's adjusted counts, context sums and lower-order lookups are plain
// array passes, never hash lookups; and ARPA order comes from two counting sorts per order.
//
// Also a word-mode corpus reader that splits UTF-8 bytes on whitespace and maps word bytes to
// ids without making a string per token (a string is decoded once per distinct byte sequence).
import { openSync, readSync, closeSync } from 'node:fs';
import { ClassicFormatError, ClassicInputError } from './errors.js';

/** A GramTable's arrays (see GramTable.state). */
export interface GramTableState { ctx: Int32Array; word: Int32Array; suffix: Int32Array; size: number; slots: Int32Array; mask: number }

/** Hash-slot indices are precomputed for this many n-grams at a time, and their slots read once ahead of the probes. */
const RUN = 256;

/**
 * Open-addressing table of (ctx, word) → dense entry index, entries in insertion order. While
 * counting, an occurrence touches one hash slot (key, entry and count side by side); `count`
 * gathers the counts by entry when read. `addRun` counts many n-grams at a time: it first reads
 * the slot of each of a run of them (independent loads, so their cache misses overlap), then
 * probes, so the table's size costs little more than one miss per run of 256.
 */
export class GramTable {
  ctx: Int32Array;
  word: Int32Array;
  /** Index of the entry's last n-1 words in the order n-1 table (for n = 2: a word id). */
  suffix: Int32Array;
  size = 0;
  /** Hash slots, 4 int32 each: ctx, word, entry index + 1 (0: empty), count (uint32). */
  private slots: Int32Array;
  private mask: number;
  private counts: Float64Array | null = null;
  private hashes = new Int32Array(RUN);

  constructor(capacity = 1024) {
    let cap = 16;
    while (cap < capacity * 2) cap *= 2;
    this.mask = cap - 1;
    this.slots = new Int32Array(cap * 4);
    // Room for as many entries as the slots take before they grow (pages not yet written cost
    // nothing), so the entry arrays grow only with the slots (in grow).
    const n = GramTable.maxEntries(cap);
    this.ctx = new Int32Array(n);
    this.word = new Int32Array(n);
    this.suffix = new Int32Array(n);
  }

  /** The most entries `cap` slots hold before they grow (load 3/4). */
  private static maxEntries(cap: number): number { return Math.floor(cap * 3 / 4); }

  private static hash(ctx: number, word: number): number {
    let h = Math.imul(ctx, 0x9e3779b1) ^ Math.imul(word + 0x7f4a7c15, 0x85ebca77);
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d);
    return h ^ (h >>> 12);
  }

  /** Raw counts by entry. */
  get count(): Float64Array {
    if (this.counts) return this.counts;
    const c = new Float64Array(this.size), sl = this.slots;
    for (let s = 0; s < sl.length; s += 4) if (sl[s + 2] > 0) c[sl[s + 2] - 1] = sl[s + 3] >>> 0;
    return (this.counts = c);
  }

  /** Entry of (ctx, word), or -1. */
  find(ctx: number, word: number): number {
    const sl = this.slots, mask = this.mask;
    let s = GramTable.hash(ctx, word) & mask;
    for (;;) {
      const e = sl[s * 4 + 2];
      if (e === 0) return -1;
      if (sl[s * 4] === ctx && sl[s * 4 + 1] === word) return e - 1;
      s = (s + 1) & mask;
    }
  }

  /** Count one occurrence of (ctx, word); returns its entry (new ones get the given suffix). */
  add(ctx: number, word: number, suffix: number): number {
    if ((this.size + 1) * 4 > (this.mask + 1) * 3) this.grow();
    return this.put(GramTable.hash(ctx, word), ctx, word, suffix);
  }

  /** add() once the table has room: the probe from hash h. */
  private put(h: number, ctx: number, word: number, suffix: number): number {
    const sl = this.slots, mask = this.mask;
    let s = h & mask;
    for (;;) {
      const i = s * 4, e = sl[i + 2];
      if (e === 0) break;
      if (sl[i] === ctx && sl[i + 1] === word) {
        if (++sl[i + 3] === 0) throw new RangeError('an n-gram occurs 2^32 times: counts are 32-bit');
        return e - 1;
      }
      s = (s + 1) & mask;
    }
    this.counts = null;
    const e = this.size++;
    if (e === this.ctx.length) this.growEntries();
    const i = s * 4;
    sl[i] = ctx; sl[i + 1] = word; sl[i + 2] = e + 1; sl[i + 3] = 1;
    this.ctx[e] = ctx; this.word[e] = word; this.suffix[e] = suffix;
    return e;
  }

  /**
   * Count the n-grams of a run of positions: for i in [0, count), the n-gram (ctx[i], word[i + wordOff])
   * with suffix ctx[i + 1]; out[i] gets its entry, or -1 where the position has none: where
   * ctx[i] === stop (bigrams: the context word is </s>), or where ctx[i] or ctx[i + 1] is -1.
   */
  addRun(ctx: Int32Array, word: Int32Array, wordOff: number, out: Int32Array, count: number, stop: number): void {
    const H = this.hashes;
    for (let r0 = 0; r0 < count; r0 += RUN) {
      const r1 = Math.min(count, r0 + RUN);
      if ((this.size + (r1 - r0)) * 4 > (this.mask + 1) * 3) this.grow();
      const sl = this.slots, mask = this.mask;
      // Hashes, then a read of each first slot in a loop of its own: these loads do not depend on
      // each other, and a loop of a few instructions each keeps many of them in flight (with the
      // hashing in the same loop, fewer: counting took 1.5x the CPU time).
      for (let i = r0; i < r1; i++) {
        const c = ctx[i];
        H[i - r0] = c === stop || c < 0 || ctx[i + 1] < 0 ? 0 : GramTable.hash(c, word[i + wordOff]);
      }
      let touch = 0;
      for (let k = 0, m = r1 - r0; k < m; k++) touch += sl[(H[k] & mask) * 4 + 2];
      this.touched = touch;
      for (let i = r0; i < r1; i++) {
        const c = ctx[i];
        if (c === stop || c < 0 || ctx[i + 1] < 0) { out[i] = -1; continue; }
        out[i] = this.put(H[i - r0], c, word[i + wordOff], ctx[i + 1]);
      }
    }
  }

  /** The table's arrays, to move it to another thread (GramTable.fromState rebuilds it there). */
  state(): GramTableState {
    return { ctx: this.ctx, word: this.word, suffix: this.suffix, size: this.size, slots: this.slots, mask: this.mask };
  }

  static fromState(s: GramTableState): GramTable {
    const t = new GramTable(1);
    t.ctx = s.ctx; t.word = s.word; t.suffix = s.suffix; t.size = s.size; t.slots = s.slots; t.mask = s.mask;
    return t;
  }

  /** Where addRun's slot reads go (so they are not optimised away). */
  private touched = 0;

  private grow(): void {
    const cap = (this.mask + 1) * 2, mask = cap - 1, old = this.slots;
    const sl = new Int32Array(cap * 4);
    for (let o = 0; o < old.length; o += 4) {
      if (old[o + 2] === 0) continue;
      let s = GramTable.hash(old[o], old[o + 1]) & mask;
      while (sl[s * 4 + 2] !== 0) s = (s + 1) & mask;
      const i = s * 4;
      sl[i] = old[o]; sl[i + 1] = old[o + 1]; sl[i + 2] = old[o + 2]; sl[i + 3] = old[o + 3];
    }
    this.slots = sl;
    this.mask = mask;
    if (this.ctx.length < GramTable.maxEntries(cap)) this.growEntries(GramTable.maxEntries(cap));
  }

  private growEntries(n = this.ctx.length * 2): void {
    const grow32 = (a: Int32Array): Int32Array<ArrayBuffer> => { const b = new Int32Array(n); b.set(a); return b; };
    this.ctx = grow32(this.ctx); this.word = grow32(this.word); this.suffix = grow32(this.suffix);
  }
}

/**
 * Count orders first..last of a batch of L tokens T: the n-gram at position i is (entry of the
 * (n-1)-gram at i, word at i + n - 1), so each order is one addRun over the previous order's
 * entries `prev` (of order first - 1), into tables[n - first], its entries into ents[n - first].
 * Order 2 stops at the token `bigramStop` (</s>); a higher order wherever an (n-1)-gram is
 * missing. The last order's entries, or null when the batch is shorter than some order.
 */
export function addOrders(tables: GramTable[], ents: Int32Array[], T: Int32Array, prev: Int32Array, L: number, first: number, last: number, bigramStop: number): Int32Array | null {
  for (let n = first; n <= last; n++) {
    const count = L - n + 1;
    if (count <= 0) return null;
    const e = ents[n - first];
    tables[n - first].addRun(prev, T, n - 1, e, count, n === 2 ? bigramStop : -1);
    prev = e;
  }
  return prev;
}

/**
 * Entries 0..n-1 of an order n >= 2 (entry e: context entry ctx[e] of order n-1, last word
 * word[e]) in lexicographic order of their word ids, given the order n-1 entries in that order
 * (`prevSorted`; null for n = 2: a word's place is its id). A counting sort by last word, then
 * a stable one by context, whose groups are laid out in the context's order. Returns the entries
 * in order, each one's last word, and the place of its context in prevSorted.
 */
export function sortGrams(ctx: Int32Array, word: Int32Array, n: number, vocabSize: number, prevSorted: Int32Array | null, prevSize: number): { sorted: Int32Array; sw: Int32Array; sc: Int32Array } {
  // Each pass is a function of its own, so V8 optimises it once for every order.
  const { byWord, byCtx, ends } = sortByWord(word, ctx, n, vocabSize);
  // Group starts by context entry, the groups in the contexts' order (sc is filled group by group).
  const sc = new Int32Array(n);
  const start = groupStarts(ctx, n, prevSorted, prevSize, sc);
  const sorted = new Int32Array(n), sw = new Int32Array(n);
  scatterByContext(byWord, byCtx, ends, vocabSize, start, sorted, sw);
  return { sorted, sw, sc };
}

/** One order's ARPA order: line j is entry sorted[j] (null for unigrams: entry j), its last word sw[j], its context's line sc[j]. */
export interface ArpaSort { n: number; sorted: Int32Array | null; sw: Int32Array | null; sc: Int32Array | null; total: number }

/** ARPA order of every order, one at a time: unigrams by id, then the n-grams of grams[n - 2] sorted (sortGrams). */
export function* arpaSorts(grams: readonly { ctx: Int32Array; word: Int32Array; size: number }[], V: number): Generator<ArpaSort> {
  yield { n: 1, sorted: null, sw: null, sc: null, total: V };
  let prevSorted: Int32Array | null = null;
  for (let n = 2; n <= grams.length + 1; n++) {
    const g = grams[n - 2];
    const { sorted, sw, sc } = sortGrams(g.ctx, g.word, g.size, V, prevSorted, n === 2 ? V : grams[n - 3].size);
    prevSorted = sorted;
    yield { n, sorted, sw, sc, total: g.size };
  }
}

/** outP[j] = p[index[j]], and outB[j] = b[index[j]] when b is given, for j < index.length (gather into given arrays, both in one loop). */
export function gatherInto(outP: Float64Array, p: Float64Array, outB: Float64Array | null, b: Float64Array | null, index: Int32Array): void {
  const n = index.length;
  if (b && outB) {
    for (let j = 0; j < n; j++) { const e = index[j]; outP[j] = p[e]; outB[j] = b[e]; }
  } else {
    for (let j = 0; j < n; j++) outP[j] = p[index[j]];
  }
}

/** out[j] = x[index[j]] (a tight loop, so the random reads overlap; the text writer reads the result in order). */
export function gather(x: Float64Array, index: Int32Array): Float64Array {
  const out = new Float64Array(index.length);
  for (let j = 0; j < index.length; j++) out[j] = x[index[j]];
  return out;
}

/**
 * Entries 0..n-1 by word (a counting sort), and each one's context beside it (read here in entry
 * order, so the scatter by context reads it in order instead of at random); ends[w]: the end of
 * word w's run in byWord.
 */
function sortByWord(word: Int32Array, ctx: Int32Array, n: number, vocabSize: number): { byWord: Int32Array; byCtx: Int32Array; ends: Int32Array } {
  const byWord = new Int32Array(n), byCtx = new Int32Array(n), cw = new Int32Array(vocabSize + 1);
  for (let e = 0; e < n; e++) cw[word[e] + 1]++;
  for (let i = 1; i <= vocabSize; i++) cw[i] += cw[i - 1];
  for (let e = 0; e < n; e++) {
    const at = cw[word[e]]++;
    byWord[at] = e;
    byCtx[at] = ctx[e];
  }
  return { byWord, byCtx, ends: cw };
}

/** Where each context's group starts (groups in the order prevSorted gives the contexts); sc[j]: the place in prevSorted of line j's context. */
function groupStarts(ctx: Int32Array, n: number, prevSorted: Int32Array | null, prevSize: number, sc: Int32Array): Int32Array {
  const start = new Int32Array(prevSize);
  for (let e = 0; e < n; e++) start[ctx[e]]++;
  for (let r = 0, at = 0; r < prevSize; r++) {
    const c = prevSorted ? prevSorted[r] : r, k = start[c];
    start[c] = at;
    for (const end = at + k; at < end; at++) sc[at] = r;
  }
  return start;
}

/** Entries taken in word order, each put next in its context's group: sorted (the entry) and sw (its word). */
function scatterByContext(byWord: Int32Array, byCtx: Int32Array, ends: Int32Array, vocabSize: number, start: Int32Array, sorted: Int32Array, sw: Int32Array): void {
  for (let w = 0, j = 0; w < vocabSize; w++) {
    for (const end = ends[w]; j < end; j++) {
      const e = byWord[j], at = start[byCtx[j]]++;
      sorted[at] = e;
      sw[at] = w;
    }
  }
}

/** True for the UTF-8 encoding of a character that JavaScript's `\s` matches, starting at b[i] (< end). Returns its length, or 0. */
export function utf8SpaceAt(b: Uint8Array, i: number, end: number): number {
  const c = b[i];
  if (c < 0x80) return c === 32 || (c >= 9 && c <= 13) ? 1 : 0;
  if (c === 0xc2) return i + 1 < end && b[i + 1] === 0xa0 ? 2 : 0; // U+00A0
  if (c < 0xe1 || c > 0xef || i + 2 >= end) return 0;
  const c1 = b[i + 1], c2 = b[i + 2];
  if (c === 0xe2) {
    if (c1 === 0x80) return c2 <= 0x8a && c2 >= 0x80 || c2 === 0xa8 || c2 === 0xa9 || c2 === 0xaf ? 3 : 0; // U+2000–200A, 2028, 2029, 202F
    return c1 === 0x81 && c2 === 0x9f ? 3 : 0; // U+205F
  }
  if (c === 0xe1) return c1 === 0x9a && c2 === 0x80 ? 3 : 0; // U+1680
  if (c === 0xe3) return c1 === 0x80 && c2 === 0x80 ? 3 : 0; // U+3000
  if (c === 0xef) return c1 === 0xbb && c2 === 0xbf ? 3 : 0; // U+FEFF (also a BOM)
  return 0;
}

/**
 * Word bytes → id, backed by a string-keyed vocabulary: a byte sequence seen for the first time
 * is decoded (as TextDecoder decodes it: invalid bytes become U+FFFD) and given to `add`, which
 * returns its id (or throws, e.g. for a reserved token); later occurrences are found by bytes.
 */
export class ByteWordIndex {
  /** Hash slots, 4 int32 each: FNV-1a hash, byte length, pool offset, word id + 1 (0: empty). One cache line per probe. */
  private slots = new Int32Array(4 << 16);
  private mask = (1 << 16) - 1;
  private size = 0;
  private pool = new Uint8Array(1 << 20);
  private poolLen = 0;
  private dec = new TextDecoder('utf-8');

  /** The line being read (set by readWordIds; passed to `add` for its errors). */
  line = 0;

  constructor(private add: (word: string, line: number) => number) {}

  /** Id of the word b[start, end) whose FNV-1a hash is h. */
  id(b: Uint8Array, start: number, end: number, h: number): number {
    const n = end - start, sl = this.slots, mask = this.mask, pool = this.pool;
    let s = h & mask;
    for (;;) {
      const q = s * 4, id1 = sl[q + 3];
      if (id1 === 0) break;
      if (sl[q] === h && sl[q + 1] === n) {
        let o = sl[q + 2], i = start;
        while (i < end && pool[o] === b[i]) { o++; i++; }
        if (i === end) return id1 - 1;
      }
      s = (s + 1) & mask;
    }
    // A plain view for the decoder (b.subarray of a Buffer makes a Buffer: a costly constructor, once per distinct word).
    const id = this.add(this.dec.decode(new Uint8Array(b.buffer, b.byteOffset + start, end - start)), this.line);
    this.insert(b, start, end, h, id, s);
    return id;
  }

  private insert(b: Uint8Array, start: number, end: number, h: number, id: number, slot: number): void {
    const n = end - start;
    this.size++;
    if (this.poolLen + n > this.pool.length) {
      const p = new Uint8Array(Math.max(this.pool.length * 2, this.poolLen + n));
      p.set(this.pool.subarray(0, this.poolLen));
      this.pool = p;
    }
    const pool = this.pool;
    for (let i = start, o = this.poolLen; i < end; i++, o++) pool[o] = b[i];
    const q = slot * 4;
    this.slots[q] = h; this.slots[q + 1] = n; this.slots[q + 2] = this.poolLen; this.slots[q + 3] = id + 1;
    this.poolLen += n;
    if (this.size * 2 > this.mask) {
      const mask = this.mask * 2 + 1, old = this.slots, sl = new Int32Array((mask + 1) * 4);
      for (let o = 0; o < old.length; o += 4) {
        if (old[o + 3] === 0) continue;
        let t = old[o] & mask;
        while (sl[t * 4 + 3] !== 0) t = (t + 1) & mask;
        const q = t * 4;
        sl[q] = old[o]; sl[q + 1] = old[o + 1]; sl[q + 2] = old[o + 2]; sl[q + 3] = old[o + 3];
      }
      this.slots = sl; this.mask = mask;
    }
  }
}

/** Most bytes a line may have in the byte-level reader (it holds one line's word ids at a time). */
export const MAX_LINE_BYTES = 64 * 1024 * 1024;

/**
 * Read a UTF-8 text file in 1 MiB chunks, one sentence per line, split into words on the
 * characters JavaScript's `\s` matches (exactly as `tokenize(line, 'word')`), and call
 * `sentence(ids, len, lineNo)` for every line with at least one word: ids[0] is left for <s>,
 * ids[1 .. len-2] are the word ids, ids[len-1] is left for </s>. Memory: the chunk, one line's
 * ids and the word index; the file is never held whole.
 */
export function readWordIds(file: string, words: ByteWordIndex, sentence: (ids: Int32Array, len: number, lineNo: number) => void,
  maxLineBytes = MAX_LINE_BYTES): void {
  let fd: number;
  try { fd = openSync(file, 'r'); } catch (e) { throw new ClassicInputError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`); }
  try {
    let buf = Buffer.allocUnsafe(1 << 20);
    let ids = new Int32Array(1024);
    let have = 0, lineNo = 0, eof = false;
    while (!eof || have > 0) {
      if (!eof) {
        if (have === buf.length) {
          if (buf.length > maxLineBytes) throw new ClassicFormatError(file, lineNo + 1, `line is longer than ${maxLineBytes} bytes`);
          const nb = Buffer.allocUnsafe(buf.length * 2);
          buf.copy(nb, 0, 0, have);
          buf = nb;
        }
        const r = readSync(fd, buf, have, buf.length - have, null);
        if (r <= 0) eof = true;
        else have += r;
      }
      // Whole lines only (the last one at end of file).
      let end = buf.lastIndexOf(10, have - 1);
      if (end < 0 || have === 0) {
        if (!eof) continue;
        end = have;
      } else end += 1;
      let i = 0;
      while (i < end) {
        // One line: [i, le).
        let le = buf.indexOf(10, i);
        if (le < 0 || le >= end) le = end;
        words.line = ++lineNo;
        if (le - i > maxLineBytes) throw new ClassicFormatError(file, lineNo, `line is longer than ${maxLineBytes} bytes`);
        let len = 1;
        let p = i;
        while (p < le) {
          const c = buf[p];
          if (c < 0x80) { if (c === 32 || (c >= 9 && c <= 13)) { p++; continue; } } else {
            const sp = utf8SpaceAt(buf, p, le);
            if (sp > 0) { p += sp; continue; }
          }
          // A word: up to the next whitespace character; FNV-1a hash on the way.
          const ws = p;
          let h = 0x811c9dc5;
          for (;;) {
            h = Math.imul(h ^ buf[p], 0x01000193);
            p++;
            if (p >= le) break;
            const d = buf[p];
            if (d < 0x80) { if (d === 32 || (d >= 9 && d <= 13)) break; } else if (utf8SpaceAt(buf, p, le) > 0) break;
          }
          if (len + 2 > ids.length) { const x = new Int32Array(ids.length * 2); x.set(ids); ids = x; }
          ids[len++] = words.id(buf, ws, p, h);
        }
        if (len > 1) sentence(ids, len + 1, lineNo);
        i = le + 1;
      }
      if (end < have) buf.copy(buf, 0, end, have);
      have -= Math.min(end, have);
    }
  } finally {
    closeSync(fd);
  }
}
