// Per-vocabulary tables for the "plain text" fast path of the token masks (see TokenMatcher).
//
// Inside a JSON string (and in a free object key) nearly every token is allowed, and whether it is
// depends only on its characters: a token made of plain characters (no quote, no backslash, no
// control byte, valid UTF-8 — possibly a partial character at its end) is allowed exactly when the
// string has room for its number of characters. So each token is classified once per vocabulary,
// for two alphabets ("modes"):
//   - F: every code point ≥ U+0020 except '"' and '\' (a JSON string body);
//   - A: printable ASCII 0x20–0x7E except '"' and '\' (an undeclared object key).
// A token's threshold in a mode is the number n of uniform levels (see matcher.ts) after which its
// fate is known from its characters alone: a plain token of c characters is allowed once n ≥ c; a
// token whose first non-plain unit (at character c) is a byte the mode kills is refused once
// n ≥ c + 1; a token that reaches a quote or backslash (or a malformed UTF-8 sequence) first
// needs the automaton: threshold INF. Per trie node, the largest threshold of its subtree tells
// the walk to skip the subtree; per count n, a bit mask holds the plain tokens of ≤ n characters.
// For the states of regular expressions over an ASCII alphabet, each token's set of bytes after
// its first (and, per trie node, their union over the subtree) gives the tokens made of the
// alphabet, those of one first byte followed by the alphabet, and the subtrees that hold a byte
// needing the automaton.
import type { TokenVocab } from './vocab.js';
import { SPACE } from './regex.js';

export const INF = 0x7fffffff;

/**
 * The multi-byte characters a regular expression's classes single out: U+2028 and U+2029 (which
 * '.' leaves out) and the rest of the white space of '\s' beyond ASCII (regex.ts SPACE). A level
 * of mode F may treat these otherwise than its other characters (refuse them, or lead elsewhere:
 * `[^,:&\s]`, a search for `[0-9]+.[0-9]`): the few tokens holding one are then decided one by one
 * (matcher.ts PlainShape.ls, PlainIndex.specialTokens).
 */
export const SPECIAL_CHARS: ReadonlySet<number> = new Set(SPACE.filter(([lo]) => lo >= 0x80).flatMap(([lo, hi]) => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i)));
/** Larger than every finite threshold, smaller than INF. */
export const DECIDED = 0x7ffffffe;

/** A token trie in the flat layout of TokenVocab (which is one). */
export interface Trie {
  readonly nodeByte: Uint8Array;
  readonly nodeDepth: Uint16Array;
  readonly nodeSkip: Int32Array;
  readonly nodeTokStart: Int32Array;
  readonly nodeTokEnd: Int32Array;
  readonly toks: Int32Array;
}

/** The nodes of the vocabulary's trie whose subtree holds a token of threshold INF (closed upwards), as a trie of their own. */
export function walkTrie(v: TokenVocab, thr: Int32Array): Trie {
  const n = v.nodes, cnt = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) cnt[i + 1] = cnt[i] + (thr[i] === INF ? 1 : 0);
  const m = cnt[n];
  const nodeByte = new Uint8Array(m), nodeDepth = new Uint16Array(m), nodeSkip = new Int32Array(m), nodeTokStart = new Int32Array(m), nodeTokEnd = new Int32Array(m);
  for (let i = 0; i < n; i++) {
    if (thr[i] !== INF) continue;
    const k = cnt[i];
    nodeByte[k] = v.nodeByte[i]; nodeDepth[k] = v.nodeDepth[i]; nodeSkip[k] = cnt[v.nodeSkip[i]];
    nodeTokStart[k] = v.nodeTokStart[i]; nodeTokEnd[k] = v.nodeTokEnd[i];
  }
  return { nodeByte, nodeDepth, nodeSkip, nodeTokStart, nodeTokEnd, toks: v.toks };
}

export const MODE_F = 1;
export const MODE_A = 2;

const PLAIN = 0, KILL = 1, WALK = 2;

/** Byte classes of mode F at a character boundary (lead bytes are PLAIN; see unitF). */
function killF(x: number): boolean { return x < 0x20 || (x >= 0x80 && x < 0xc2) || x >= 0xf5; }

/** Writes [threshold, characters (−1 unless plain), last non-plain position, last walk position] of a token in a mode. */
function classify(b: Uint8Array, mode: number, r: Int32Array): void {
  let p = 0, c = 0, first = -1, firstAt = 0, lastNP = -1, lastW = -1;
  while (p < b.length) {
    const x = b[p];
    let u: number, len = 1;
    if (x === 0x22 || x === 0x5c) u = WALK;
    else if (mode === MODE_A) u = x >= 0x20 && x < 0x7f ? PLAIN : KILL;
    else if (killF(x)) u = KILL;
    else if (x < 0x80) u = PLAIN;
    else {
      // A lead byte: its continuation bytes (those within the token) must be in range.
      const need = x < 0xe0 ? 1 : x < 0xf0 ? 2 : 3;
      const lo = x === 0xe0 ? 0xa0 : x === 0xf0 ? 0x90 : 0x80, hi = x === 0xed ? 0x9f : x === 0xf4 ? 0x8f : 0xbf;
      u = PLAIN;
      for (let q = 1; q <= need && p + q < b.length; q++) {
        const y = b[p + q];
        if (y < (q === 1 ? lo : 0x80) || y > (q === 1 ? hi : 0xbf)) { u = WALK; break; }
        len++;
      }
      if (u === WALK) len = 1;
    }
    if (u !== PLAIN) { lastNP = p; if (u === WALK) lastW = p; }
    if (first < 0) { if (u === PLAIN) c++; else { first = u; firstAt = c; } }
    p += len;
  }
  r[0] = first < 0 ? c : first === KILL ? firstAt + 1 : INF;
  r[1] = first < 0 ? c : -1;
  r[2] = lastNP;
  r[3] = lastW;
}

export class PlainIndex {
  readonly words: number;
  /** Largest finite threshold per mode (index by mode). */
  readonly cap: Int32Array = new Int32Array(3);
  /** Per trie node and mode: largest whole-token threshold in the subtree. */
  readonly thr: Int32Array[] = [];
  /** Per mode: (cap + 1) rows of `words` words; row n = plain tokens of ≤ n characters. */
  readonly cum: Uint32Array[] = [];
  /** Per toks index and mode: last byte position that is not part of a plain character (−1: none). */
  readonly lastNonPlain: Int32Array[] = [];
  /** Per trie node and mode: largest position of a byte that needs the automaton (quote, backslash, malformed) in the subtree (−1: none). */
  readonly maxWalk: Int32Array[] = [];
  /** Per mode: the trie of the tokens a settled mask walks (see walkTrie). */
  readonly walkTrie: Trie[] = [];
  /** Per toks index: the token's length in bytes. */
  readonly tokLen: Int32Array;
  /** Per toks index: bit p set when byte p (< 32) is a UTF-8 continuation byte. */
  readonly contBits: Uint32Array;
  /**
   * Per toks index: the token's bytes after its first as a set (words 0–3: ASCII bytes; word 4: 1
   * if any byte ≥ 0x80). The first byte is the root child's, known wherever these are used.
   */
  readonly restSets: Uint32Array;
  /** Per trie node: the union of restSets over its subtree. */
  readonly nodeRestSets: Uint32Array;
  /** Root child node of each first byte (−1: none). */
  readonly rootChild = new Int32Array(256).fill(-1);
  private withByte: Int32Array[] | undefined;

  /** Token ids whose bytes hold the byte b (built on first use). */
  tokensWith(b: number): Int32Array {
    if (this.withByte === undefined) {
      const lists: number[][] = Array.from({ length: 256 }, () => []);
      const v = this.vocab, seen = new Uint8Array(256);
      for (let id = 0; id < v.size; id++) {
        const t = v.bytes[id];
        if (!t) continue;
        seen.fill(0);
        for (const x of t) if (!seen[x]) { seen[x] = 1; lists[x].push(id); }
      }
      this.withByte = lists.map((l) => Int32Array.from(l));
    }
    return this.withByte[b];
  }

  private withByteMask: (Uint32Array | undefined)[] = [];
  private withByteBytes: number[] = [];

  private restCounts: Int32Array | undefined;

  /** How many tokens hold the ASCII byte b after their first byte (built on first use). */
  restCount(b: number): number {
    if (this.restCounts === undefined) {
      const c = new Int32Array(128), sets = this.restSets;
      for (let k = 0; k * 5 < sets.length; k++) {
        for (let w = 0; w < 4; w++) for (let x = sets[k * 5 + w]; x !== 0; x &= x - 1) c[(w << 5) | (31 - Math.clz32(x & -x))]++;
      }
      this.restCounts = c;
    }
    return this.restCounts[b];
  }

  /** The bytes of the tokens tokensWith(b) lists, summed (what deciding them one by one steps). */
  bytesWith(b: number): number {
    let n = this.withByteBytes[b];
    if (n === undefined) {
      n = 0;
      for (const id of this.tokensWith(b)) n += this.vocab.bytes[id]!.length;
      this.withByteBytes[b] = n;
    }
    return n;
  }

  /** tokensWith(b) as a bit mask (built on first use). */
  tokensWithMask(b: number): Uint32Array {
    let m = this.withByteMask[b];
    if (m === undefined) {
      m = new Uint32Array(this.words);
      for (const id of this.tokensWith(b)) m[id >>> 5] |= 1 << (id & 31);
      this.withByteMask[b] = m;
    }
    return m;
  }

  /** Token ids whose bytes hold one of SPECIAL_CHARS: decided one by one where a level singles them out (matcher.ts PlainShape.ls). */
  readonly specialTokens: number[] = [];

  constructor(readonly vocab: TokenVocab) {
    const v = vocab, n = v.nodes, toks = v.toks;
    this.words = (v.size + 31) >>> 5;
    for (let j = 0; j < n; j = v.nodeSkip[j]) this.rootChild[v.nodeByte[j]] = j;
    const special = [...SPECIAL_CHARS].map((c) => new TextEncoder().encode(String.fromCodePoint(c)));
    for (let id = 0; id < v.size; id++) {
      const b = v.bytes[id];
      if (!b) continue;
      const holds = special.some((c) => {
        outer: for (let i = 0; i + c.length <= b.length; i++) {
          for (let j = 0; j < c.length; j++) if (b[i + j] !== c[j]) continue outer;
          return true;
        }
        return false;
      });
      if (holds) this.specialTokens.push(id);
    }
    // Per token (by toks index) and mode: threshold, characters when plain, last non-plain, last walk.
    const T = toks.length;
    const tokThr = [new Int32Array(0), new Int32Array(T), new Int32Array(T)];
    const tokChars = [new Int32Array(0), new Int32Array(T), new Int32Array(T)];
    const tokWalk = [new Int32Array(0), new Int32Array(T), new Int32Array(T)];
    this.lastNonPlain = [new Int32Array(0), new Int32Array(T), new Int32Array(T)];
    const r = new Int32Array(4);
    for (let k = 0; k < T; k++) {
      const b = v.bytes[toks[k]]!;
      for (let mode = MODE_F; mode <= MODE_A; mode++) {
        classify(b, mode, r);
        tokThr[mode][k] = r[0]; tokChars[mode][k] = r[1]; tokWalk[mode][k] = r[3]; this.lastNonPlain[mode][k] = r[2];
      }
    }
    const sets = new Uint32Array(T * 5), cont = new Uint32Array(T);
    this.tokLen = new Int32Array(T);
    for (let k = 0; k < T; k++) {
      const b = v.bytes[toks[k]]!;
      this.tokLen[k] = b.length;
      for (let p = 0; p < b.length; p++) {
        const x = b[p];
        if (p > 0) { if (x < 0x80) sets[k * 5 + (x >>> 5)] |= 1 << (x & 31); else sets[k * 5 + 4] = 1; }
        if (p < 32 && (x & 0xc0) === 0x80) cont[k] |= 1 << p;
      }
    }
    this.contBits = cont;
    this.restSets = sets;
    const nsets = new Uint32Array(n * 5);
    for (let i = n - 1; i >= 0; i--) {
      const o = i * 5;
      for (let k = v.nodeTokStart[i]; k < v.nodeTokEnd[i]; k++) for (let w = 0; w < 5; w++) nsets[o + w] |= sets[k * 5 + w];
      for (let j = i + 1; j < v.nodeSkip[i]; j = v.nodeSkip[j]) for (let w = 0; w < 5; w++) nsets[o + w] |= nsets[j * 5 + w];
    }
    this.nodeRestSets = nsets;
    for (let mode = MODE_F; mode <= MODE_A; mode++) {
      let cap = 0;
      for (let k = 0; k < T; k++) if (tokThr[mode][k] !== INF && tokThr[mode][k] > cap) cap = tokThr[mode][k];
      this.cap[mode] = cap;
      // Cumulative masks of plain tokens by character count.
      const W = this.words;
      const cum = new Uint32Array((cap + 1) * W);
      for (let k = 0; k < T; k++) {
        const c = tokChars[mode][k];
        if (c < 0) continue;
        const id = toks[k];
        cum[c * W + (id >>> 5)] |= 1 << (id & 31);
      }
      for (let c = 1; c <= cap; c++) for (let w = 0; w < W; w++) cum[c * W + w] |= cum[(c - 1) * W + w];
      this.cum[mode] = cum;
      // Subtree maxima, children before parents (reverse preorder).
      const thr = new Int32Array(n), mw = new Int32Array(n);
      for (let i = n - 1; i >= 0; i--) {
        let t = 0, w = -1;
        for (let k = v.nodeTokStart[i]; k < v.nodeTokEnd[i]; k++) {
          if (tokThr[mode][k] > t) t = tokThr[mode][k];
          if (tokWalk[mode][k] > w) w = tokWalk[mode][k];
        }
        for (let j = i + 1; j < v.nodeSkip[i]; j = v.nodeSkip[j]) {
          if (thr[j] > t) t = thr[j];
          if (mw[j] > w) w = mw[j];
        }
        thr[i] = t; mw[i] = w;
      }
      this.thr[mode] = thr;
      this.maxWalk[mode] = mw;
      this.walkTrie[mode] = walkTrie(v, thr);
    }
  }

  /** Index in `toks` just past node i's subtree. */
  subtreeTokEnd(i: number): number {
    const v = this.vocab, j = v.nodeSkip[i];
    return j < v.nodes ? v.nodeTokStart[j] : v.toks.length;
  }

  private readonly alphaMasks = new Tables<Uint32Array>();
  private readonly prefixLists = new Tables<Int32Array>();
  private pinning = false;
  /** Per-alphabet tables built so far (pinned or not). */
  tablesBuilt = 0;

  /** Runs fn; the per-alphabet tables it builds are kept for good (see Tables). */
  pinTables(fn: () => void): void {
    this.pinning = true;
    try { fn(); } finally { this.pinning = false; }
  }

  /**
   * Mode 4 of the matcher (an ASCII alphabet C, for states of regular expressions: formats, patterns): the
   * tokens of at most `max` bytes, all in C (`c`: 4 words of 32 byte bits). Built on first use
   * and kept (see Tables).
   */
  alphabetMask(c: Uint32Array, max: number): Uint32Array {
    return this.alphaMasks.get(`${c.join(',')}:${max}`, this.pinning, () => {
      this.tablesBuilt++;
      const m = new Uint32Array(this.words);
      for (let x = 0; x < 0x80; x++) if ((c[x >>> 5] >>> (x & 31)) & 1) this.scanRests(x, c, max - 1, (id) => { m[id >>> 5] |= 1 << (id & 31); });
      return m;
    });
  }

  /**
   * The ids of the tokens that start with byte x, followed by at most `max` bytes all in C (the
   * subtree of a byte that leads from a state of mode 4 to another one). Built on first use and
   * kept (see Tables).
   */
  prefixTokens(x: number, c: Uint32Array, max: number): Int32Array {
    return this.prefixLists.get(`${x}/${c.join(',')}:${max}`, this.pinning, () => {
      this.tablesBuilt++;
      const ids: number[] = [];
      this.scanRests(x, c, max, (id) => ids.push(id));
      return Int32Array.from(ids);
    });
  }

  /** Calls add with each token under root child x whose rest (the bytes after x) is at most `max` bytes, all in C. */
  private scanRests(x: number, c: Uint32Array, max: number, add: (id: number) => void): void {
    const j = this.rootChild[x];
    if (j < 0) return;
    // A scan of the subtree's tokens (contiguous in `toks`, as their rest sets).
    const toks = this.vocab.toks, sets = this.restSets, len = this.tokLen;
    const c0 = ~c[0], c1 = ~c[1], c2 = ~c[2], c3 = ~c[3];
    for (let k = this.vocab.nodeTokStart[j], z = this.subtreeTokEnd(j); k < z; k++) {
      const o = k * 5;
      if (((sets[o] & c0) | (sets[o + 1] & c1) | (sets[o + 2] & c2) | (sets[o + 3] & c3) | sets[o + 4]) === 0 && len[k] <= max + 1) add(toks[k]);
    }
  }

  private static cache = new WeakMap<TokenVocab, PlainIndex>();
  static of(vocab: TokenVocab): PlainIndex {
    let p = PlainIndex.cache.get(vocab);
    if (!p) { p = new PlainIndex(vocab); PlainIndex.cache.set(vocab, p); }
    return p;
  }
  /** `to` has `from`'s tokens and trie (TokenVocab.withEos): it uses the same tables. */
  static share(from: TokenVocab, to: TokenVocab): void {
    PlainIndex.cache.set(to, PlainIndex.of(from));
  }
}

/**
 * Per-vocabulary tables of one kind, built on first use: at most 64 are kept, besides those built
 * while the vocabulary is prepared (PlainIndex.pinTables), which stay.
 */
class Tables<T> {
  private readonly pinned = new Map<string, T>();
  private readonly recent = new Map<string, T>();
  get(key: string, pin: boolean, build: () => T): T {
    let t = this.pinned.get(key) ?? this.recent.get(key);
    if (t === undefined) {
      t = build();
      if (pin) this.pinned.set(key, t);
      else {
        if (this.recent.size >= 64) this.recent.clear();
        this.recent.set(key, t);
      }
    }
    return t;
  }
}
