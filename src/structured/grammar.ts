// Context-free grammars over bytes: the common target of the JSON Schema, regex and GBNF compilers.
// A rule has alternatives; an alternative is a sequence of symbols, each either a byte class (a
// set of byte values) or a reference to a rule. Unicode text is matched as its UTF-8 bytes, so a
// token that ends in the middle of a character, or spans several terminals, needs nothing special.
//
// `GrammarBuilder` assembles rules; `build()` checks and flattens them into a `Grammar`: every
// rule defined, unproductive alternatives pruned (an unsatisfiable root is an error), no left
// recursion (which a top-down matcher cannot run), and each rule's shortest derivation (used to
// close an output validly when the token budget runs out).
import { ComplexityError, GrammarError, UnsatisfiableError } from './errors.js';

/** A symbol: ≥ 0 is a rule reference, ≤ −2 is byte class number (−2 − sym). */
export type Sym = number;
export const END = -1;
const clsSym = (k: number): Sym => -2 - k;
export const symClass = (s: Sym): number => -2 - s;
/**
 * The name of the rules of an undeclared object key's trie (schema.ts keyTrie: one rule per node,
 * every alternative a byte class followed by the free key or a node's rule): ByteAutomaton knows
 * such a frame to be closed under plain characters without walking it.
 */
export const FREE_KEY_NODE = 'free-key-node';

const UTF8 = new TextEncoder();

/** The `alts` of a rule standing for a level of a chain (compared by identity; see GrammarBuilder.chains). */
const CHAIN_ALTS: Sym[][] = [];

export interface GrammarLimits {
  /** Most symbols over all alternatives (default 2,000,000). */
  maxSymbols?: number;
}

export class GrammarBuilder {
  readonly names: string[] = [];
  readonly alts: (Sym[][] | null)[] = [];
  readonly classes: Uint8Array[] = [];
  private readonly classKey = new Map<string, number>();
  private readonly singleClass = new Int32Array(256).fill(-1);
  private readonly clsBits = new Uint16Array(16);
  private readonly nameCount = new Map<string, number>();
  private readonly memo = new Map<string, Sym>();
  /** Rules whose alternatives the matcher asks for when it first expands them (see `lazy`). */
  readonly lazyRules = new Map<number, LazyAlts>();
  /**
   * Bounded repetitions (see `repeat`): one chain per unit, O_k ::= unit O_(k−1) | ε and
   * O_0 ::= unit | ε. Only the levels a repetition names are rules here (`refs`: level → rule, with
   * `chainRef` rule → [chain, level]); the levels below them are laid out by Grammar without a
   * rule, a name or an array each — maxLength 131,072 was 131,072 rules (seconds to build).
   */
  readonly chains: Array<{ unit: Sym; name: string; refs: Map<number, number>; top: number }> = [];
  readonly chainRef = new Map<number, [number, number]>();
  private readonly chainOf = new Map<Sym, number>();
  private symbols = 0;
  constructor(readonly limits: GrammarLimits = {}) {}

  /** A new rule (unique name derived from `name`); alternatives now or later via `define`. */
  rule(name: string, alts?: Sym[][]): number {
    const n = this.nameCount.get(name) ?? 0;
    this.nameCount.set(name, n + 1);
    this.names.push(n === 0 ? name : `${name}-${n}`);
    this.alts.push(null);
    const id = this.alts.length - 1;
    if (alts) this.define(id, alts);
    return id;
  }

  define(id: number, alts: Sym[][]): void {
    if (this.alts[id] !== null) throw new GrammarError(`rule '${this.names[id]}'`, 'defined twice');
    this.alts[id] = alts;
    for (const a of alts) this.symbols += a.length + 1;
    const max = this.limits.maxSymbols ?? 2_000_000;
    if (this.symbols > max) throw new ComplexityError('grammar size (symbols)', max);
  }

  /**
   * A rule whose alternatives are produced when the matcher first expands it (`gen`, which may
   * create more such rules with Grammar.lazyRule): for languages with too many rules to build
   * ahead, of which a parse visits few — members of an object in any order, one rule per set of
   * names seen. `shortest` are static alternatives with the same shortest derivation (and the
   * same productivity) as the generated ones: the build's analyses use them, the matcher never does.
   */
  lazy(name: string, shortest: Sym[][], gen: LazyAlts): number {
    const id = this.rule(name, shortest);
    this.lazyRules.set(id, gen);
    return id;
  }

  /** Memoised construction keyed by a string (shared sub-grammars). */
  cached(key: string, make: () => Sym): Sym {
    let s = this.memo.get(key);
    if (s === undefined) { s = make(); this.memo.set(key, s); }
    return s;
  }

  /** A byte class from a predicate or list of byte values. */
  cls(bytes: Iterable<number> | ((b: number) => boolean)): Sym {
    // Single bytes (every literal) are memoised; otherwise the set is keyed as 16 code units of
    // 16 bits, and its array is only allocated when new.
    if (Array.isArray(bytes) && bytes.length === 1) {
      const k = this.singleClass[bytes[0]];
      if (k >= 0) return clsSym(k);
    }
    const bits = this.clsBits;
    bits.fill(0);
    if (typeof bytes === 'function') { for (let b = 0; b < 256; b++) if (bytes(b)) bits[b >>> 4] |= 1 << (b & 15); }
    else for (const b of bytes) bits[b >>> 4] |= 1 << (b & 15);
    const k = this.clsOfBits(bits);
    if (Array.isArray(bytes) && bytes.length === 1) this.singleClass[bytes[0]] = symClass(k);
    return k;
  }

  /** A byte class from its bit set: byte b is in it when bit (b & 15) of bits[b >>> 4] is set. */
  clsOfBits(bits: Uint16Array): Sym {
    const key = String.fromCharCode(bits[0], bits[1], bits[2], bits[3], bits[4], bits[5], bits[6], bits[7], bits[8], bits[9], bits[10], bits[11], bits[12], bits[13], bits[14], bits[15]);
    let k = this.classKey.get(key);
    if (k === undefined) {
      const set = new Uint8Array(256);
      for (let b = 0; b < 256; b++) if ((bits[b >>> 4] >>> (b & 15)) & 1) set[b] = 1;
      k = this.classes.length; this.classes.push(set); this.classKey.set(key, k);
    }
    return clsSym(k);
  }

  byteRange(lo: number, hi: number): Sym {
    if (lo === hi && lo >= 0 && lo < 256) return this.cls([lo]);
    const r: number[] = [];
    for (let b = Math.max(0, lo); b <= Math.min(255, hi); b++) r.push(b);
    return this.cls(r);
  }

  /** The UTF-8 bytes of a string, one class per byte. */
  lit(s: string): Sym[] {
    if (s.length > MAX_LITERAL) throw new ComplexityError('the length of one literal (a property name, a const)', MAX_LITERAL, `one of ${s.length} characters`);
    // Short literals (keys, punctuation) recur: their classes are kept (a copy is returned).
    const known = s.length <= 64 ? this.lits.get(s) : undefined;
    if (known !== undefined) return known.slice();
    // (ASCII, nearly every literal, read as it is: its bytes are its code units; a byte's class
    // from singleClass without a list per byte.)
    const out: Sym[] = [];
    let ascii = true;
    for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) { ascii = false; break; }
    if (ascii) for (let i = 0; i < s.length; i++) out.push(this.byteCls(s.charCodeAt(i)));
    else for (const b of UTF8.encode(s)) out.push(this.byteCls(b));
    if (s.length <= 64) this.lits.set(s, out.slice());
    return out;
  }
  private readonly lits = new Map<string, Sym[]>();

  /** The class of byte x alone (cls([x]), found without a list once made). */
  byteCls(x: number): Sym {
    const k = this.singleClass[x];
    return k >= 0 ? clsSym(k) : this.cls([x]);
  }

  /** One rule matching any sequence of the alternatives. */
  alt(name: string, alts: Sym[][]): Sym {
    if (alts.length === 1 && alts[0].length === 1) return alts[0][0];
    return this.rule(name, alts);
  }

  /**
   * One rule matching exactly one of the sequences, as a trie when every symbol is a byte class
   * (enum values: one parse per common prefix instead of one per value — 50,000 values were
   * 50,000 parallel parses after the opening quote); otherwise plain alternatives.
   */
  trie(name: string, seqs: Sym[][]): Sym {
    if (seqs.some((q) => q.length > 2000 || q.some((x) => x >= 0))) return this.alt(name, seqs);
    const at = (qs: Sym[][], i: number): Sym[][] => {
      const alts: Sym[][] = [];
      const next = new Map<Sym, Sym[][]>();
      let ends = false;
      for (const q of qs) {
        if (q.length === i) { ends = true; continue; }
        let g = next.get(q[i]);
        if (!g) next.set(q[i], g = []);
        g.push(q);
      }
      if (ends) alts.push([]);
      for (const [x, g] of next) {
        // One sequence left: its rest is one alternative of its symbols (the levels below make no
        // rule), taken as it is instead of prepending a symbol at each level (quadratic in its length).
        if (g.length === 1) { alts.push(g[0].slice(i)); continue; }
        const rest = at(g, i + 1);
        alts.push(rest.length === 1 ? [x, ...rest[0]] : [x, this.rule(name, rest)]);
      }
      return alts;
    };
    return this.alt(name, at(seqs, 0));
  }

  seq(name: string, s: Sym[]): Sym {
    return s.length === 1 ? s[0] : this.rule(name, [s]);
  }

  opt(name: string, s: Sym[]): Sym {
    return this.rule(name, [s, []]);
  }

  /** s repeated between min and max times (max may be Infinity); right-recursive so the matcher's stacks stay flat. */
  repeat(name: string, s: Sym[], min: number, max: number): Sym[] {
    if (max < min) { return [this.rule(`${name}-empty`, [])]; }
    const limit = this.limits.maxSymbols ?? 2_000_000;
    if ((max === Infinity ? min : max) * 3 > limit - this.symbols) throw new ComplexityError('grammar size (symbols)', limit, `repetition {${min},${max}} of '${name}'`);
    const out: Sym[] = [];
    const unit = this.seq(`${name}-item`, s);
    for (let i = 0; i < min; i++) out.push(unit);
    if (max === Infinity) {
      const star = this.rule(`${name}-star`);
      this.define(star, [[unit, star], []]);
      out.push(star);
    } else if (max > min) {
      // O_k ::= u O_(k−1) | ε, shared by every repetition of the same unit (maxLength 255 and
      // 1024 of one schema are one chain).
      // O_k ::= u O_(k−1) | ε, shared by every repetition of the same unit (maxLength 255 and
      // 1024 of one schema are one chain).
      let c = this.chainOf.get(unit);
      if (c === undefined) { c = this.chains.length; this.chains.push({ unit, name: `${name}-opt`, refs: new Map(), top: -1 }); this.chainOf.set(unit, c); }
      const chain = this.chains[c], k = max - min - 1;
      if (k > chain.top) {
        // Symbols counted as if every level were a rule: [[unit], []] is 3, [[unit, prev], []] is 4.
        this.symbols += 4 * (k - chain.top) - (chain.top < 0 ? 1 : 0);
        if (this.symbols > limit) throw new ComplexityError('grammar size (symbols)', limit);
        chain.top = k;
      }
      let r = chain.refs.get(k);
      if (r === undefined) {
        r = this.rule(`${name}-opt`);
        this.alts[r] = CHAIN_ALTS;
        chain.refs.set(k, r);
        this.chainRef.set(r, [c, k]);
      }
      out.push(r);
    }
    return out;
  }

  /**
   * Any code point in the given inclusive ranges (surrogates excluded), as UTF-8 byte sequences:
   * where many sequences share a lead byte range, a trie of their byte ranges under one
   * alternative (see rangeTrie). A class of scattered code points (a pattern's \p{L} written out:
   * hundreds of ranges) has hundreds of sequences but a few dozen lead bytes; one alternative per
   * sequence was one parse per sequence at every character (497 stacks per state, each stepped
   * and expanded at every byte of a token), the trie is one per lead byte range. Classes of whole
   * blocks and regex escapes ('.', `[^\s]`) are written as before.
   */
  codepoints(ranges: Array<[number, number]>): Sym {
    const norm = normalizeRanges(ranges);
    const key = 'cp:' + norm.map(([a, b]) => `${a}-${b}`).join(',');
    return this.cached(key, () => {
      const seqs: Array<Array<[number, number]>> = [];
      for (const [lo, hi] of norm) for (const seq of utf8Sequences(lo, hi)) seqs.push(seq);
      const alts = this.rangeTrie(seqs, 0);
      if (alts.length === 0) return this.rule('empty-class', []);
      return this.alt('chars', alts);
    });
  }

  /**
   * The alternatives of a trie over byte-range sequences from position i on (codepoints): the
   * sequences that end at i as one class first, then, in order, each sequence as it is, or where
   * at least `min` share its range at i (TRIE_MIN at the first byte, 2 below it), at the first of
   * them that range and the trie of their rests. (Few sequences under a lead byte — a regex '.',
   * `[^\s]`: up to 6 — stay as they are: the matcher's plain shapes follow a multi-byte
   * character's bytes along one alternative, which a rule for the rest would end.)
   */
  private rangeTrie(seqs: Array<Array<[number, number]>>, i: number): Sym[][] {
    const min = i === 0 ? TRIE_MIN : 2;
    const alts: Sym[][] = [];
    const last: number[] = [];
    const groups = new Map<number, Array<Array<[number, number]>>>();
    for (const q of seqs) {
      if (q.length === i + 1) continue;
      const k = q[i][0] * 256 + q[i][1];
      let g = groups.get(k);
      if (!g) groups.set(k, g = []);
      g.push(q);
    }
    for (const q of seqs) {
      const [a, b] = q[i];
      if (q.length === i + 1) { for (let x = a; x <= b; x++) last.push(x); continue; }
      const g = groups.get(a * 256 + b)!;
      if (g.length < min) { alts.push(q.slice(i).map(([x, y]) => this.byteRange(x, y))); continue; }
      if (g[0] !== q) continue;
      const first = this.byteRange(a, b), rest = this.rangeTrie(g, i + 1);
      alts.push(rest.length === 1 ? [first, ...rest[0]] : [first, this.rule('chars', rest)]);
    }
    // (The class of the last bytes made last: a class without a trie numbers its byte classes as before.)
    if (last.length) alts.unshift([this.cls(last)]);
    return alts;
  }

  build(start: number): Grammar {
    return new Grammar(this, start);
  }
}

/** Sorted, merged code point ranges within [0, 0x10FFFF]. */
export function normalizeRanges(ranges: Array<[number, number]>): Array<[number, number]> {
  // Ranges normal already (an automaton's edges, grouped by target) are copied as they are.
  let normal = true;
  for (let i = 0; i < ranges.length && normal; i++) {
    const [a, b] = ranges[i];
    normal = a >= 0 && a <= b && b <= 0x10ffff && (i === 0 || a > ranges[i - 1][1] + 1);
  }
  if (normal) return ranges.map(([a, b]) => [a, b]);
  const r = ranges.map(([a, b]) => [Math.max(0, a), Math.min(0x10ffff, b)] as [number, number]).filter(([a, b]) => a <= b).sort((x, y) => x[0] - y[0]);
  const out: Array<[number, number]> = [];
  for (const [a, b] of r) {
    const last = out[out.length - 1];
    if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** Complement of code point ranges within [0, 0x10FFFF]. */
export function complementRanges(ranges: Array<[number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let next = 0;
  for (const [a, b] of normalizeRanges(ranges)) {
    if (a > next) out.push([next, a - 1]);
    next = b + 1;
  }
  if (next <= 0x10ffff) out.push([next, 0x10ffff]);
  return out;
}

/** Splits a code point range into sequences of byte ranges whose concatenations are exactly its UTF-8 encodings (as Rust's utf8-ranges). */
export function utf8Sequences(lo: number, hi: number): Array<Array<[number, number]>> {
  const out: Array<Array<[number, number]>> = [];
  const todo: Array<[number, number]> = [[lo, hi]];
  while (todo.length) {
    let [a, b] = todo.pop()!;
    if (a > b) continue;
    // Surrogates have no UTF-8 encoding.
    if (a <= 0xdfff && b >= 0xd800) {
      todo.push([0xe000, b], [a, 0xd7ff]);
      continue;
    }
    const bounds = [0x7f, 0x7ff, 0xffff];
    let split = false;
    for (const m of bounds) {
      if (a <= m && b > m) { todo.push([m + 1, b], [a, m]); split = true; break; }
    }
    if (split) continue;
    if (b <= 0x7f) { out.push([[a, b]]); continue; }
    const n = b <= 0x7ff ? 2 : b <= 0xffff ? 3 : 4;
    for (let i = 1; i < n; i++) {
      const m = (1 << (6 * i)) - 1;
      if ((a & ~m) !== (b & ~m)) {
        if ((a & m) !== 0) { todo.push([(a | m) + 1, b], [a, a | m]); split = true; break; }
        if ((b & m) !== m) { todo.push([b & ~m, b], [a, (b & ~m) - 1]); split = true; break; }
      }
    }
    if (split) continue;
    const ea = encodeCp(a), eb = encodeCp(b);
    out.push(ea.map((x, i) => [x, eb[i]] as [number, number]));
  }
  return out;
}

function encodeCp(c: number): number[] {
  if (c < 0x80) return [c];
  if (c < 0x800) return [0xc0 | (c >> 6), 0x80 | (c & 63)];
  if (c < 0x10000) return [0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63)];
  return [0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63)];
}

/** Alternatives of a lazy rule, produced on its first expansion (see GrammarBuilder.lazy). */
export type LazyAlts = (g: Grammar) => Sym[][];

/**
 * Least sequences of a class under one lead byte range that codepoints writes as a trie (see
 * rangeTrie): more than the 6 of `[^\s]` under E2 (the classes of regex escapes keep their form).
 */
const TRIE_MIN = 7;

/** Longest literal string (in UTF-16 units) a grammar spells out symbol by symbol. */
export const MAX_LITERAL = 100_000;

/** A Grammar as plain data (see Grammar.toData). */
export interface GrammarData {
  names: string[];
  /** The byte classes, 256 bytes each. */
  classes: Uint8Array;
  prog: Int32Array;
  minRest: Float64Array;
  minLen: Float64Array;
  /** Rule r's alternatives are altFlat[altStart[r] .. altStart[r + 1]). */
  altStart: Int32Array;
  altFlat: Int32Array;
  chainInfo: Array<{ unit: Sym; ok: boolean; lu: number; id: number; at: number; n: number; name: string }>;
  start: number;
  rules: number;
}

/** ruleAlts of a lazy rule not expanded yet (compare by identity). */
export const PENDING = new Int32Array(0);

/**
 * A checked, flattened grammar. `prog` holds each alternative's symbols followed by END;
 * `ruleAlts[r]` the start positions of rule r's alternatives (PENDING for a lazy rule until
 * `expandLazy(r)`, which appends its alternatives to `prog` — a new array: readers compare
 * `version` and re-read `prog` and `minRest`).
 */
export class Grammar {
  readonly names: string[];
  readonly classes: Uint8Array[];
  prog: Int32Array;
  /**
   * Per rule, the start positions of its alternatives. The levels of bounded-repetition chains
   * that no repetition names are rules ≥ ruleAlts.length (see GrammarBuilder.chains) with no
   * entry here, and so are the rules lazy rules create while matching (≥ `rules`): read
   * alternatives through `alts(r)`.
   */
  readonly ruleAlts: Int32Array[];
  /** Per chain: its unit, whether the unit is productive and its shortest length, its first unnamed level's rule id and position, its unnamed levels (0 .. n − 1), its name. */
  private readonly chainInfo: Array<{ unit: Sym; ok: boolean; lu: number; id: number; at: number; n: number; name: string }>;
  private readonly chainAlts = new Map<number, Int32Array>();
  readonly start: number;
  /** Shortest byte length a rule derives (Infinity never, after pruning; the unnamed levels of chains, 0, and rules created while matching are not listed: see ruleMinLen). */
  readonly minLen: Float64Array;
  /** Shortest byte length of the rest of an alternative from a position. */
  minRest: Float64Array;
  /** Bumped each time `prog` / `minRest` / `minLen` are replaced by longer arrays. */
  version = 0;
  private progLen: number;
  private readonly lazyGen = new Map<number, LazyAlts>();
  private readonly classEmpty: boolean[];
  /** Most lazy rules a grammar may create (each parse visits few; this bounds hostile inputs). */
  static readonly MAX_LAZY = 200_000;

  constructor(b: GrammarBuilder | GrammarData, start = 0) {
    if (!(b instanceof GrammarBuilder)) {
      // A grammar built elsewhere (another thread) and sent as plain arrays: see toData.
      const d = b;
      this.names = d.names;
      this.classes = Array.from({ length: d.classes.length / 256 }, (_, k) => d.classes.subarray(256 * k, 256 * (k + 1)));
      this.classEmpty = this.classes.map((c) => c.indexOf(1) < 0);
      this.prog = d.prog;
      this.progLen = d.prog.length;
      this.minRest = d.minRest;
      this.minLen = d.minLen;
      this.ruleAlts = Array.from({ length: d.altStart.length - 1 }, (_, r) => d.altFlat.subarray(d.altStart[r], d.altStart[r + 1]));
      this.chainInfo = d.chainInfo;
      this.start = d.start;
      this.rules = d.rules;
      return;
    }
    const R = b.alts.length;
    for (let r = 0; r < R; r++) if (b.alts[r] === null) throw new GrammarError(`rule '${b.names[r]}'`, 'is referenced but never defined');
    const alts = b.alts as Sym[][][];
    // A chain's unnamed levels 0 .. top − 1 are rules R + base .. R + base + top − 1 (each derives ε).
    let V = 0;
    const bases = b.chains.map((c) => { const base = V; V += Math.max(0, c.top); return base; });
    // The named levels: rule r is level chainK[r] of chain chainC[r].
    const isChain = new Uint8Array(R), chainUnit = new Int32Array(R), chainPrev = new Int32Array(R), chainC = new Int32Array(R), chainK = new Int32Array(R);
    for (const [r, [c, k]] of b.chainRef) {
      isChain[r] = 1; chainC[r] = c; chainK[r] = k;
      chainUnit[r] = b.chains[c].unit; chainPrev[r] = k === 0 ? -1 : R + bases[c] + k - 1;
    }
    const classEmpty = this.classEmpty = b.classes.map((c) => c.indexOf(1) < 0);
    // Shortest derivation; Infinity = unproductive.
    const minLen = shortestDerivations(alts, classEmpty, isChain);
    // Rules R .. R + V − 1, the unnamed levels of chains, derive ε.
    const symLen = (s: Sym): number => (s >= R ? 0 : s >= 0 ? minLen[s] : classEmpty[symClass(s)] ? Infinity : 1);
    this.rules = R + V;
    if (minLen[start] === Infinity) throw new UnsatisfiableError(b.names[start], 'no string satisfies the constraint');
    // A rule whose alternatives are all productive (nearly every rule) keeps its array as it is.
    const productive = (a: Sym[]): boolean => {
      for (let i = 0; i < a.length; i++) if (symLen(a[i]) === Infinity) return false;
      return true;
    };
    const kept: Sym[][][] = new Array(R);
    for (let r = 0; r < R; r++) {
      const as = alts[r];
      let all = true;
      if (as !== CHAIN_ALTS) for (let i = 0; i < as.length && all; i++) all = productive(as[i]);
      kept[r] = all ? as : as.filter(productive);
    }
    // A chain level keeps its alternative `unit O_(k−1)` when the unit is productive (O_(k−1) is).
    const unitOk = (u: Sym): boolean => symLen(u) < Infinity;
    checkLeftRecursion(b.names, kept, minLen, isChain, chainC, chainK, b.chains.map((c) => ({ unit: c.unit, ok: unitOk(c.unit), name: c.name })));
    this.names = b.names;
    this.classes = b.classes;
    this.start = start;
    this.minLen = minLen;
    let size = 0;
    for (let r = 0; r < R; r++) {
      if (isChain[r]) size += unitOk(chainUnit[r]) ? (chainPrev[r] < 0 ? 3 : 4) : 1;
      else { const as = kept[r]; for (let i = 0; i < as.length; i++) size += as[i].length + 1; }
    }
    const chainSize = (ok: boolean, n: number): number => (ok ? (n > 0 ? 3 * n - 1 : 0) : n);
    for (const c of b.chains) size += chainSize(unitOk(c.unit), Math.max(0, c.top));
    // Position 0 holds a synthetic "start → root END" so that the matcher can begin anywhere.
    const prog = new Int32Array(size + 2);
    prog[0] = start; prog[1] = END;
    let p = 2;
    const ruleAlts: Int32Array[] = new Array(R);
    for (let r = 0; r < R; r++) {
      if (isChain[r]) {
        // unit O_(k−1) | ε (level 0: unit | ε), as the rule would be laid out.
        const starts = unitOk(chainUnit[r]) ? Int32Array.of(p, p + (chainPrev[r] < 0 ? 2 : 3)) : Int32Array.of(p);
        if (unitOk(chainUnit[r])) { prog[p++] = chainUnit[r]; if (chainPrev[r] >= 0) prog[p++] = chainPrev[r]; prog[p++] = END; }
        prog[p++] = END;
        ruleAlts[r] = starts;
        continue;
      }
      const as = kept[r];
      const starts = new Int32Array(as.length);
      for (let i = 0; i < as.length; i++) {
        const a = as[i];
        starts[i] = p;
        for (let j = 0; j < a.length; j++) prog[p++] = a[j];
        prog[p++] = END;
      }
      ruleAlts[r] = starts;
    }
    this.ruleAlts = ruleAlts;
    // The unnamed levels of each chain, in a block after the rules: level 0 is `u END`, level k
    // `u O_(k−1) END`, the END also being the ε alternative (returning is all it does).
    const minRest = new Float64Array(prog.length);
    for (let i = p - 1; i >= 0; i--) {
      const s = prog[i];
      minRest[i] = s === END ? 0 : symLen(s) + minRest[i + 1];
    }
    // They are written by `alts` when first asked for: the matcher only reads positions that
    // `alts` gave it (and the ones after them), so a chain the output never enters costs only
    // the zero pages of its space, untouched — maxLength 262,144 was 262,144 rules, seconds.
    this.chainInfo = b.chains.map((c, ci) => {
      const n = Math.max(0, c.top), ok = unitOk(c.unit), id = R + bases[ci], at = p;
      p += ok ? (n > 0 ? 3 * n - 1 : 0) : n;
      return { unit: c.unit, ok, lu: symLen(c.unit), id, at, n, name: c.name };
    });
    this.prog = prog;
    this.progLen = prog.length;
    this.minRest = minRest;
    // Lazy rules: their static alternatives served the analyses above; the matcher asks for the real ones.
    for (const [r, gen] of b.lazyRules) if (minLen[r] < Infinity) { this.ruleAlts[r] = PENDING; this.lazyGen.set(r, gen); }
  }

  /**
   * The grammar as plain arrays (structured-clone friendly: a few typed arrays, not one per rule),
   * to be sent to another thread and rebuilt there by `new Grammar(data)`. Only a grammar that
   * has not been matched yet and has no lazy rules (their alternatives are closures) can be sent.
   */
  toData(): GrammarData {
    if (this.lazyGen.size > 0 || this.dynAlts.length > 0 || this.chainAlts.size > 0 || this.version > 0) {
      throw new GrammarError('(data)', 'a grammar with lazily built rules, or one already matched, cannot be sent as data');
    }
    const classes = new Uint8Array(256 * this.classes.length);
    this.classes.forEach((c, k) => classes.set(c, 256 * k));
    const altStart = new Int32Array(this.ruleAlts.length + 1);
    this.ruleAlts.forEach((a, r) => { altStart[r + 1] = altStart[r] + a.length; });
    const altFlat = new Int32Array(altStart[this.ruleAlts.length]);
    this.ruleAlts.forEach((a, r) => altFlat.set(a, altStart[r]));
    return {
      names: this.names, classes, prog: this.prog, minRest: this.minRest, minLen: this.minLen, altStart, altFlat,
      chainInfo: this.chainInfo, start: this.start, rules: this.rules,
    };
  }

  private symLen(s: Sym): number {
    return s >= 0 ? this.ruleMinLen(s) : this.classEmpty[symClass(s)] ? Infinity : 1;
  }

  /** Shortest byte length rule r derives (chain levels and rules created while matching included). */
  ruleMinLen(r: number): number {
    return r < this.minLen.length ? this.minLen[r] : r < this.rules ? 0 : this.dynMin[r - this.rules];
  }

  /** Rules created while matching (ids from `rules` on): alternatives (PENDING until expanded), shortest lengths, names. */
  private readonly dynAlts: Int32Array[] = [];
  private readonly dynMin: number[] = [];
  private readonly dynNames: string[] = [];

  /**
   * A new lazy rule, for a LazyAlts generator to refer to: `minLen` must be the shortest length its
   * alternatives derive (Infinity: unproductive, and then it is never expanded).
   */
  lazyRule(name: string, minLen: number, gen: LazyAlts): number {
    if (this.dynAlts.length >= Grammar.MAX_LAZY) throw new ComplexityError('lazily built grammar rules', Grammar.MAX_LAZY);
    const r = this.rules + this.dynAlts.length;
    this.dynAlts.push(PENDING);
    this.dynMin.push(minLen);
    this.dynNames.push(name);
    this.lazyGen.set(r, gen);
    return r;
  }

  /** Produces the alternatives of lazy rule r (once); unproductive ones are dropped. */
  expandLazy(r: number): void {
    const dyn = r >= this.rules;
    if ((dyn ? this.dynAlts[r - this.rules] : this.ruleAlts[r]) !== PENDING) return;
    const gen = this.lazyGen.get(r);
    if (gen === undefined) throw new GrammarError(`rule '${this.ruleName(r)}'`, 'has no alternatives');
    const alts = gen(this).filter((a) => a.every((s) => this.symLen(s) < Infinity));
    let size = 0;
    for (const a of alts) size += a.length + 1;
    if (this.progLen + size > this.prog.length) {
      const cap = Math.max(this.prog.length * 2, this.progLen + size);
      const p = new Int32Array(cap), m = new Float64Array(cap);
      p.set(this.prog.subarray(0, this.progLen)); m.set(this.minRest.subarray(0, this.progLen));
      this.prog = p; this.minRest = m;
      this.version++;
    }
    const prog = this.prog, minRest = this.minRest;
    const starts = new Int32Array(alts.length);
    let p = this.progLen;
    alts.forEach((a, i) => {
      starts[i] = p;
      for (const s of a) prog[p++] = s;
      prog[p++] = END;
    });
    for (let i = p - 1, rest = 0; i >= this.progLen; i--) {
      rest = prog[i] === END ? 0 : this.symLen(prog[i]) + rest;
      minRest[i] = rest;
    }
    this.progLen = p;
    if (dyn) this.dynAlts[r - this.rules] = starts; else this.ruleAlts[r] = starts;
  }

  /** How many rules there are, the unnamed levels of chains included (rule ids are 0 .. rules − 1). */
  readonly rules: number;

  /** Rule r's alternatives (their start positions in prog). */
  alts(r: number): Int32Array {
    if (r < this.ruleAlts.length) {
      if (this.ruleAlts[r] === PENDING) this.expandLazy(r);
      return this.ruleAlts[r];
    }
    if (r >= this.rules) {
      if (this.dynAlts[r - this.rules] === PENDING) this.expandLazy(r);
      return this.dynAlts[r - this.rules];
    }
    let a = this.chainAlts.get(r);
    if (a === undefined) {
      const c = this.chainOf(r);
      const { unit, ok, lu, id, at } = this.chainInfo[c], k = r - id, prog = this.prog;
      // Level k written now (see the constructor); minRest is lu at the unit, else 0.
      if (!ok) { prog[at + k] = END; a = Int32Array.of(at + k); }
      else if (k === 0) { prog[at] = unit; prog[at + 1] = END; this.minRest[at] = lu; a = Int32Array.of(at, at + 1); }
      else {
        const q = at + 2 + 3 * (k - 1);
        prog[q] = unit; prog[q + 1] = r - 1; prog[q + 2] = END; this.minRest[q] = lu;
        a = Int32Array.of(q, q + 2);
      }
      this.chainAlts.set(r, a);
    }
    return a;
  }

  /** The chain of an unnamed level r (chains' ids ascend): binary search. */
  private chainOf(r: number): number {
    let lo = 0, hi = this.chainInfo.length - 1;
    while (lo < hi) { const m = (lo + hi + 1) >> 1; if (this.chainInfo[m].id <= r) lo = m; else hi = m - 1; }
    return lo;
  }

  /** Rule r's name (an unnamed chain level: its chain's name and level). */
  ruleName(r: number): string {
    if (r < this.names.length) return this.names[r];
    if (r >= this.rules) return `${this.dynNames[r - this.rules]}-${r}`;
    const c = this.chainOf(r);
    return `${this.chainInfo[c].name}-${r - this.chainInfo[c].id}`;
  }

  /** The grammar in GBNF-like text (for debugging and `--print-grammar`). */
  toString(): string {
    const cls = (k: number): string => {
      const c = this.classes[k];
      const parts: string[] = [];
      for (let b = 0; b < 256; b++) {
        if (!c[b]) continue;
        let e = b;
        while (e + 1 < 256 && c[e + 1]) e++;
        const f = (x: number) => (x >= 0x21 && x < 0x7f && !'[]\\-^'.includes(String.fromCharCode(x)) ? String.fromCharCode(x) : `\\x${x.toString(16).padStart(2, '0')}`);
        parts.push(e === b ? f(b) : `${f(b)}-${f(e)}`);
        b = e;
      }
      return `[${parts.join('')}]`;
    };
    const lines: string[] = [];
    for (let r = 0; r < this.rules; r++) {
      if (r < this.ruleAlts.length && this.ruleAlts[r] === PENDING) { lines.push(`${this.ruleName(r)} ::= (built while matching)`); continue; }
      const as = [...this.alts(r)].map((p) => {
        const syms: string[] = [];
        for (let i = p; this.prog[i] !== END; i++) syms.push(this.prog[i] >= 0 ? this.ruleName(this.prog[i]) : cls(symClass(this.prog[i])));
        return syms.join(' ') || '""';
      });
      lines.push(`${this.ruleName(r)} ::= ${as.join(' | ')}`);
    }
    return lines.join('\n');
  }
}

/**
 * Each rule's shortest derivation in bytes (Infinity: unproductive), by Knuth's generalisation of
 * Dijkstra's algorithm: rules are settled in increasing order of length; an alternative's length
 * is known once every rule in it is settled. O(size · log R) — a fixpoint over all rules
 * repeated until nothing changes is quadratic on long chains of rules (seconds on large schemas).
 */
function shortestDerivations(alts: Sym[][][], classEmpty: boolean[], isChain: Uint8Array): Float64Array {
  const R = alts.length;
  const minLen = new Float64Array(R).fill(Infinity);
  // (Indexed loops throughout: it runs once per grammar over every symbol, and a for-of's
  // iterator objects are allocated until the function is optimised.)
  // Per alternative: its rule, its terminal length, the rule symbols not yet settled.
  let nAlts = 0;
  for (let r = 0; r < R; r++) nAlts += alts[r].length;
  const altRule = new Int32Array(nAlts), altLen = new Float64Array(nAlts), pending = new Int32Array(nAlts);
  let nextAlt = 0;
  // uses of rule r: the alternatives useAlt[useStart[r] .. useStart[r + 1]) (one per occurrence).
  const useStart = new Int32Array(R + 1);
  for (let r = 0; r < R; r++) {
    const as = alts[r];
    for (let i = 0; i < as.length; i++) { const a = as[i]; for (let j = 0; j < a.length; j++) if (a[j] >= 0) useStart[a[j] + 1]++; }
  }
  for (let r = 0; r < R; r++) useStart[r + 1] += useStart[r];
  const useAlt = new Int32Array(useStart[R]), fillAt = useStart.slice(0, R);
  // A binary heap of (length, rule), smallest length on top, in two arrays.
  const heapL: number[] = [], heapR: number[] = [];
  const push = (l: number, r: number) => {
    let i = heapL.length;
    heapL.push(l); heapR.push(r);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (heapL[p] <= l) break;
      heapL[i] = heapL[p]; heapR[i] = heapR[p]; i = p;
    }
    heapL[i] = l; heapR[i] = r;
  };
  /** Removes the top (read it from heapL[0], heapR[0] first). */
  const pop = (): void => {
    const l = heapL.pop()!, r = heapR.pop()!;
    const n = heapL.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        let c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heapL[c + 1] < heapL[c]) c++;
        if (heapL[c] >= l) break;
        heapL[i] = heapL[c]; heapR[i] = heapR[c]; i = c;
      }
      heapL[i] = l; heapR[i] = r;
    }
  };
  for (let r = 0; r < R; r++) {
    const as = alts[r];
    for (let i = 0; i < as.length; i++) {
      const a = as[i];
      const id = nextAlt++;
      let len = 0, p = 0;
      for (let j = 0; j < a.length; j++) {
        const s = a[j];
        if (s >= 0) { p++; useAlt[fillAt[s]++] = id; } else len += classEmpty[symClass(s)] ? Infinity : 1;
      }
      altRule[id] = r; altLen[id] = len; pending[id] = p;
      if (p === 0 && len < Infinity) push(len, r);
    }
  }
  const done = new Uint8Array(R);
  const settle = (r: number, l: number): void => {
    done[r] = 1;
    minLen[r] = l;
    for (let u = useStart[r]; u < useStart[r + 1]; u++) {
      const id = useAlt[u];
      altLen[id] += l;
      if (--pending[id] === 0 && altLen[id] < Infinity && !done[altRule[id]]) push(altLen[id], altRule[id]);
    }
  };
  // A chain rule (no alternatives listed) derives ε: settled first, at 0.
  for (let r = 0; r < R; r++) if (isChain[r]) settle(r, 0);
  while (heapL.length) {
    const l = heapL[0], r = heapR[0];
    pop();
    if (done[r]) continue;
    settle(r, l);
  }
  return minLen;
}

/**
 * A top-down matcher loops on left recursion: A ::= B x, B ::= A y (through nullable prefixes).
 * A cycle made only of tail calls (A ::= x? A) is harmless — the matcher calls tails without
 * pushing — so only cycles with a non-tail edge are errors.
 */
function checkLeftRecursion(
  names: string[], alts: Sym[][][], minLen: Float64Array,
  isChain: Uint8Array, chainC: Int32Array, chainK: Int32Array, chains: Array<{ unit: Sym; ok: boolean; name: string }>,
): void {
  // The unnamed levels of chain c (they call only lower levels and the unit) are two nodes:
  // R + 2c for level 0 (which tail-calls the unit) and R + 2c + 1 for the levels above (which call
  // it first, then tail-call the level below when the unit is nullable). A cycle through a level
  // is a cycle through its node, with the same calls.
  const R0 = alts.length, R = R0 + 2 * chains.length;
  const nullable = (s: Sym) => s >= 0 && minLen[s] === 0;
  const lower = (c: number, k: number) => R0 + 2 * c + (k === 0 ? 0 : 1);
  // Edges of v, eTo[eStart[v] .. eStart[v + 1]) with eTail (1: the call is an alternative's last
  // symbol): typed arrays, not an array per rule.
  const eStart = new Int32Array(R + 1);
  const eTo: number[] = [], eTail: number[] = [];
  // Level k of a chain: unit O_(k−1) | ε (level 0: unit | ε), when the unit is productive.
  const level = (c: number, k: number): void => {
    const { unit, ok } = chains[c];
    if (!ok) return;
    if (unit >= 0) { eTo.push(unit); eTail.push(k === 0 ? 1 : 0); }
    if (k > 0 && nullable(unit)) { eTo.push(lower(c, k - 1)); eTail.push(1); }
  };
  for (let v = 0; v < R; v++) {
    eStart[v] = eTo.length;
    if (v >= R0) { level((v - R0) >> 1, (v - R0) & 1); continue; }
    if (isChain[v]) { level(chainC[v], chainK[v]); continue; }
    const as = alts[v];
    for (let k = 0; k < as.length; k++) {
      const a = as[k];
      for (let i = 0; i < a.length; i++) {
        if (a[i] >= 0) { eTo.push(a[i]); eTail.push(i === a.length - 1 ? 1 : 0); }
        if (!nullable(a[i])) break;
      }
    }
  }
  eStart[R] = eTo.length;
  const nameOf = (v: number) => (v < R0 ? names[v] : chains[(v - R0) >> 1].name);
  // Tarjan's SCC, iterative: the work stack holds (rule, next edge; −1 before it is entered).
  const index = new Int32Array(R).fill(-1), low = new Int32Array(R), comp = new Int32Array(R).fill(-1);
  const onStack = new Uint8Array(R);
  const st = new Int32Array(R), wv = new Int32Array(R), wi = new Int32Array(R);
  let sp = 0, idx = 0, nc = 0;
  for (let s0 = 0; s0 < R; s0++) {
    if (index[s0] >= 0) continue;
    let wt = 0;
    wv[wt] = s0; wi[wt++] = -1;
    while (wt > 0) {
      const v = wv[wt - 1];
      if (wi[wt - 1] < 0) { index[v] = low[v] = idx++; st[sp++] = v; onStack[v] = 1; wi[wt - 1] = eStart[v]; }
      if (wi[wt - 1] < eStart[v + 1]) {
        const w = eTo[wi[wt - 1]++];
        if (index[w] < 0) { wv[wt] = w; wi[wt++] = -1; }
        else if (onStack[w]) low[v] = Math.min(low[v], index[w]);
        continue;
      }
      wt--;
      if (wt > 0) { const u = wv[wt - 1]; low[u] = Math.min(low[u], low[v]); }
      if (low[v] === index[v]) {
        let w;
        do { w = st[--sp]; onStack[w] = 0; comp[w] = nc; } while (w !== v);
        nc++;
      }
    }
  }
  for (let v = 0; v < R; v++) {
    for (let e = eStart[v]; e < eStart[v + 1]; e++) {
      const w = eTo[e];
      if (comp[w] === comp[v] && !eTail[e]) throw new GrammarError(`rule '${nameOf(v)}'`, `is left-recursive (through '${nameOf(w)}'); rewrite it with repetition`);
    }
  }
}
