// The token-level engine.
//
// `ByteAutomaton` runs a grammar as a pushdown automaton over bytes. A configuration is a stack
// of grammar positions (hash-consed: a node is (position, parent node), so equal stacks are one
// integer); a parser state is the sorted set of stacks whose top is a byte class. Calls in tail
// position push nothing, so repetition (`x*`, strings, arrays) keeps the stack flat and returns to
// the same state. States are interned and their byte transitions memoised in one flat table: the
// automaton is determinised lazily, only where outputs go — a DFA for the regular parts (the
// lexer), a stack for the nesting (the parser), built on demand.
//
// `TokenMatcher` adds a vocabulary: the mask of a state is a walk of the token trie through the
// transition table (a dead prefix skips its subtree), cached per state. Where nearly every token
// is allowed (string bodies, free object keys, regular expressions over a large alphabet) the
// mask starts instead from per-vocabulary tables of tokens by their characters (plain.ts) and
// walks only the tokens those cannot settle (see TokenMatcher). Each state also knows its
// shortest completion in bytes, so that a token budget can be honoured by allowing only tokens
// after which the output can still be closed in the tokens left.
import type { Grammar } from './grammar.js';
import { END, FREE_KEY_NODE, PENDING, symClass } from './grammar.js';
import type { TokenVocab } from './vocab.js';
import { ComplexityError } from './errors.js';
import type { PlainIndex, Trie } from './plain.js';
import { MODE_A, MODE_F, DECIDED, SPECIAL_CHARS } from './plain.js';

export const DEAD = -2;
const UNKNOWN = -1;

export interface AutomatonLimits {
  /** Most parser states (default 200,000). */
  maxStates?: number;
  /** Most stacks in one state: bounds the ambiguity of a grammar (default 5,000). */
  maxStacks?: number;
  /** Most stack nodes (default 4,000,000). */
  maxNodes?: number;
}

/** UTF-8 lead byte ranges with their continuation byte ranges (the code points ≥ U+0080, no surrogates). */
const UTF8_LEADS: Array<[number, number, Array<[number, number]>]> = [
  [0xc2, 0xdf, [[0x80, 0xbf]]],
  [0xe0, 0xe0, [[0xa0, 0xbf], [0x80, 0xbf]]],
  [0xe1, 0xec, [[0x80, 0xbf], [0x80, 0xbf]]],
  [0xed, 0xed, [[0x80, 0x9f], [0x80, 0xbf]]],
  [0xee, 0xef, [[0x80, 0xbf], [0x80, 0xbf]]],
  [0xf0, 0xf0, [[0x90, 0xbf], [0x80, 0xbf], [0x80, 0xbf]]],
  [0xf1, 0xf3, [[0x80, 0xbf], [0x80, 0xbf], [0x80, 0xbf]]],
  [0xf4, 0xf4, [[0x80, 0x8f], [0x80, 0xbf], [0x80, 0xbf]]],
];
/** How a state treats plain characters (mode 1: all code points ≥ U+0020 but '"' and '\\'; 2: printable ASCII; 3: none), see TokenMatcher. */
export interface PlainShape {
  mode: number;
  exc: number[] | null;
  rep: number;
  /** Mode 4 (an ASCII alphabet, see PlainIndex.alphabetMask): byte → 1 (in the alphabet), 2 (exception), 0 (dead); and the alphabet's key. */
  alpha?: Uint8Array;
  key?: string;
  /** Byte → bit set of the state's stacks that accept it (a bit per byte class of their tops). */
  sub: Int32Array;
  /**
   * Mode 1 but some of the characters regular expressions single out (plain.ts SPECIAL_CHARS:
   * U+2028, U+2029, the multi-byte white space) are refused or lead elsewhere (past a regex '.',
   * in `[^\s]`, in a search): the tokens holding one are decided one by one.
   */
  ls?: boolean;
  /**
   * Printable ASCII whose bytes lead to more than 32 places (a key position where keys matching a
   * pattern, ^[0-9a-z]+$, and the others part): the state's mode-A shape, taken by the matcher
   * where every state its printable characters reach allows them all (a free key's closure).
   */
  wide?: Omit<PlainShape, 'sub'>;
}


/** Most states of one frame's plain closure (see ByteAutomaton.closureByStacks). */
const FRAME_CLOSURE_MOST = 8192;
/** The first bytes of plain characters (inside a JSON string unescaped): printable ASCII but '"' and '\\', 0x7F, and the UTF-8 lead bytes C2–F4. */
const PLAIN_FIRST_BYTES: readonly number[] = [
  ...Array.from({ length: 0x60 }, (_, i) => 0x20 + i).filter((b) => b !== 0x22 && b !== 0x5c),
  ...Array.from({ length: 0xf4 - 0xc2 + 1 }, (_, i) => 0xc2 + i),
];

const commonVals = new Int32Array(256), commonCounts = new Int32Array(256);

/**
 * The shape of mode 4 (an ASCII alphabet) of a state's byte → selection map, or null: at least
 * ALPHABET_MIN ASCII bytes of one selection, and every byte ≥ 0x80 refused but lead bytes of a few
 * multi-byte characters (the white space of `\s`, a `£` in a class: the matcher decides the
 * tokens holding a live one one by one, see TokenMatcher.alphaSettled).
 */
function alphabetOf(sub: Int32Array): Omit<PlainShape, 'sub'> | null {
  for (let b = 0x80; b < 256; b++) if (sub[b] !== 0 && (b < 0xc2 || b > 0xf4)) return null;
  const [M, best, rep] = mostCommon(sub, 0, 0x80, true);
  if (best < ALPHABET_MIN) return null;
  return alphabetFor(sub, M, rep);
}

/** The ASCII alphabet of the bytes of selection M (rep one of them), the other live bytes its exceptions. */
function alphabetFor(sub: Int32Array, M: number, rep: number): Omit<PlainShape, 'sub'> {
  const alpha = new Uint8Array(256);
  let key = '';
  for (let b = 0; b < 0x80; b++) { alpha[b] = sub[b] === M ? 1 : sub[b] !== 0 ? 2 : 0; key += alpha[b] === 1 ? '1' : '0'; }
  return { mode: 4, exc: null, rep, alpha, key };
}

/**
 * The most common value of sub[b] over bytes [lo, hi) but '"' and '\' (and, with `live`, but
 * those where it is 0): [value, count, first byte to reach that count] (0 and −1 when none).
 */
function mostCommon(sub: Int32Array, lo: number, hi: number, live: boolean): [number, number, number] {
  let n = 0, M = 0, best = -1, rep = -1;
  for (let b = lo; b < hi; b++) {
    const x = sub[b];
    if ((live && x === 0) || (!live && (b === 0x22 || b === 0x5c))) continue;
    let k = 0;
    while (k < n && commonVals[k] !== x) k++;
    if (k === n) { commonVals[n] = x; commonCounts[n++] = 0; }
    const c = ++commonCounts[k];
    if (c > best) { best = c; M = x; rep = b; }
  }
  return [M, best, rep];
}

/**
 * The first slot of pair (a, b) in a table of m + 1 slots (a power of two): mixed to the low bits
 * (a product's low bits see only its factor's low bits: clusters). PairMap's and PairSet's.
 */
function pairHome(a: number, b: number, m: number): number {
  let h = Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  return (h ^ (h >>> 15)) & m;
}

/** A hash map from pairs of non-negative 32-bit integers to non-negative integers (open addressing). */
class PairMap {
  private ka = new Int32Array(1024);
  private kb = new Int32Array(1024);
  private v = new Int32Array(1024).fill(-1);
  private n = 0;
  private slot(a: number, b: number): number {
    const m = this.v.length - 1;
    let h = pairHome(a, b, m);
    while (this.v[h] >= 0 && (this.ka[h] !== a || this.kb[h] !== b)) h = (h + 1) & m;
    return h;
  }
  get size(): number { return this.n; }
  get(a: number, b: number): number { return this.v[this.slot(a, b)]; }
  set(a: number, b: number, val: number): void {
    if ((this.n + 1) * 2 > this.v.length) this.grow();
    const h = this.slot(a, b);
    if (this.v[h] < 0) this.n++;
    this.ka[h] = a; this.kb[h] = b; this.v[h] = val;
  }
  private grow(): void {
    const { ka, kb, v } = this;
    this.ka = new Int32Array(v.length * 2); this.kb = new Int32Array(v.length * 2); this.v = new Int32Array(v.length * 2).fill(-1);
    this.n = 0;
    for (let i = 0; i < v.length; i++) if (v[i] >= 0) this.set(ka[i], kb[i], v[i]);
  }
}

/**
 * A set of pairs of non-negative 32-bit integers (open addressing) that `clear` empties in time
 * proportional to what it holds (the slots filled are listed): the pairs one closure has seen.
 * Kept across closures, its table is as large as the largest one needs, not as all of them
 * together (a map of every pair ever seen, marked by closure, grew to a million entries and
 * rehashed on the way; see BENCHMARKS, the mask side's pair set).
 */
class PairSet {
  private ka = new Int32Array(1024);
  private kb = new Int32Array(1024);
  private used = new Uint8Array(1024);
  private filled = new Int32Array(512);
  private n = 0;
  get size(): number { return this.n; }
  get capacity(): number { return this.used.length; }
  /** Adds (a, b); false when it was there already. */
  add(a: number, b: number): boolean {
    if ((this.n + 1) * 2 > this.used.length) this.grow();
    const m = this.used.length - 1, ka = this.ka, kb = this.kb, used = this.used;
    let h = pairHome(a, b, m);
    while (used[h] !== 0) {
      if (ka[h] === a && kb[h] === b) return false;
      h = (h + 1) & m;
    }
    used[h] = 1; ka[h] = a; kb[h] = b;
    this.filled[this.n++] = h;
    return true;
  }
  clear(): void {
    const used = this.used, f = this.filled;
    for (let i = 0; i < this.n; i++) used[f[i]] = 0;
    this.n = 0;
  }
  private grow(): void {
    const { ka, kb, filled, n } = this;
    const c = this.used.length * 2;
    this.ka = new Int32Array(c); this.kb = new Int32Array(c); this.used = new Uint8Array(c); this.filled = new Int32Array(c >>> 1);
    this.n = 0;
    for (let i = 0; i < n; i++) this.add(ka[filled[i]], kb[filled[i]]);
  }
}

/**
 * A frame's plain closure (ByteAutomaton.frameClosure): the largest shortest-completion after a
 * plain character when every state reached accepts every plain character (else −1), whether no
 * state reached accepts a refused byte (a return allowed or not, as asked), and whether one does.
 */
interface FrameClosure { closes: number; clean: boolean; kills: boolean }

/** A typed array that grows by doubling; new entries hold `fill`. */
class Grow<A extends Int32Array | Float64Array> {
  a: A;
  n = 0;
  constructor(private readonly make: (n: number) => A, cap: number, readonly fill = 0) {
    this.a = make(cap);
    if (fill !== 0) this.a.fill(fill);
  }
  ensure(n: number): void {
    if (n <= this.a.length) return;
    let c = this.a.length * 2;
    while (c < n) c *= 2;
    const b = this.make(c);
    b.set(this.a);
    if (this.fill !== 0) b.fill(this.fill, this.a.length);
    this.a = b;
  }
}
const i32 = (n: number): Int32Array => new Int32Array(n);
/** Least stacks of a state whose steps take their closures from ByteAutomaton's memo (afterAt). */
const MEMO_MIN_STACKS = 32;
/** Most stacks ByteAutomaton's memo of closures after a byte holds (4M: 16 MB). */
const AFTER_POOL_MOST = 1 << 22;
const f64 = (n: number): Float64Array => new Float64Array(n);
/** A state's top (ByteAutomaton.top): the state of its stacks cut short over a halt, and a bound on what the cut adds to a completion. */
export interface StateTop { state: number; lift: number }
/** Least stacks of a state that ByteAutomaton.top cuts short. */
const TOP_MIN_STACKS = 64;
/** Bytes of a stack's frames kept by ByteAutomaton.top (the bytes needed to leave them, at most this). */
const TOP_BYTES = 2;
/** Most frames of a stack ByteAutomaton.top keeps (frames that may be left without a byte: a cut anywhere is exact, only further from the top). */
const TOP_LEVELS = 8;

export class ByteAutomaton {
  prog: Int32Array;
  private grammarVersion: number;
  private readonly cls: Uint8Array[];
  private readonly nodePos = new Grow(i32, 1024);
  private readonly nodePar = new Grow(i32, 1024);
  private readonly nodeIds = new PairMap();
  /** Per node: shortest completion of its stack in bytes (−1: not yet known). */
  private readonly nodeMin = new Grow(f64, 1024, -1);
  readonly stateNodes: Int32Array[] = [];
  private readonly stateIds = new Map<number, number | number[]>();
  /** trans[s * K + eq[b]]: UNKNOWN, DEAD or the next state (K byte equivalence classes). */
  private trans: Grow<Int32Array>;
  /** Byte → equivalence class: bytes no byte class of the grammar tells apart share transitions. */
  readonly eq: Uint8Array;
  readonly K: number;
  private readonly rep: Uint8Array;
  private readonly stateMin: number[] = [];
  private readonly shapes = new Map<number, Array<{ tops: Int32Array; pidx: Int32Array; result: PlainShape | null }>>();
  private scratchPars = new Int32Array(32);
  private scratchPidx = new Int32Array(32);
  private scratchTops = new Int32Array(32);
  /** Per state: successors by the set of its stacks that accept a byte. */
  private readonly succ = new PairMap();
  /** The (position, parent) pairs the closure being computed has seen (emptied as each begins: newEpoch). */
  private readonly seen = new PairSet();
  private readonly outMark = new Grow(i32, 1024);
  /** The stacks expand emits (outN of them): one buffer for every step, so that a step allocates only the state it interns. */
  private readonly outBuf = new Grow(i32, 256);
  private outN = 0;
  /** nodeMinLen's chain of nodes up the stack (scratch). */
  private readonly chainBuf = new Grow(i32, 64);
  private readonly work = new Grow(i32, 256);
  private epoch = 0;
  /**
   * Per stack n: its closure once its top byte is read — the stacks expand(pos + 1, parent)
   * emits, which depend on n alone, not on the state n is in nor on the byte — memoised as
   * afterPool[afterAt[n] − 1 ..] (afterLen[n] of them; afterAt 0: not yet known). The states
   * of a trie walk share most of their stacks, so a step moves most of them on from here.
   */
  private readonly afterAt = new Grow(i32, 1024);
  private readonly afterLen = new Grow(i32, 1024);
  private afterPool = new Grow(i32, 1024);
  /** Whether steps take closures from that memo (off: a step expands its accepting stacks together, as one walk; for tests). */
  memoClosures = true;
  /** computeStep's marks (which stacks the step being built holds already), by stepEpoch. */
  private readonly stepMark = new Grow(i32, 1024);
  private stepEpoch = 0;
  readonly initial: number;
  private readonly limits: Required<AutomatonLimits>;
  /**
   * Set by TokenMatcher while it computes a mask under a time limit: past this performance.now()
   * a new parser state is refused with a ComplexityError (Infinity: no limit).
   */
  deadline = Infinity;
  timeLimitMs = 0;
  /**
   * Stacks expanded so far (closures computed: a transition's accepting stacks, moved on): the work
   * of building states besides their count, which load does not change (a state of 80 stacks
   * costs more than one of 3).
   */
  expansions = 0;

  constructor(readonly grammar: Grammar, limits: AutomatonLimits = {}) {
    this.limits = { maxStates: limits.maxStates ?? 200_000, maxStacks: limits.maxStacks ?? 5_000, maxNodes: limits.maxNodes ?? 4_000_000 };
    this.prog = grammar.prog;
    this.grammarVersion = grammar.version;
    this.cls = grammar.classes;
    [this.eq, this.K, this.rep] = byteClasses(grammar.classes);
    this.trans = new Grow(i32, this.K * 64, UNKNOWN);
    // Node 0 is the empty stack: the output is complete.
    this.nodePos.a[0] = -1; this.nodePar.a[0] = -1; this.nodePos.n = this.nodePar.n = 1; this.nodeMin.a[0] = 0;
    this.outN = 0;
    this.expand(0, 0, this.newEpoch());
    this.initial = this.intern();
  }

  get states(): number { return this.stateNodes.length; }

  private node(pos: number, par: number): number {
    let id = this.nodeIds.get(pos, par);
    if (id < 0) {
      id = this.nodePos.n;
      if (id >= this.limits.maxNodes) throw new ComplexityError('parser stack nodes', this.limits.maxNodes);
      this.nodePos.ensure(id + 1); this.nodePar.ensure(id + 1);
      this.nodePos.a[id] = pos; this.nodePar.a[id] = par;
      this.nodePos.n++; this.nodePar.n++;
      this.nodeIds.set(pos, par, id);
    }
    return id;
  }

  /**
   * Closure: every stack reachable from (pos, parent) without reading a byte, whose top is a byte
   * class, appended to `out` once. Calls with the same `epoch` share what they have seen.
   */
  private expand(pos0: number, par0: number, epoch: number): void {
    this.expansions++;
    // A lazy rule expanded (here or by another automaton on the same grammar) may have grown prog.
    if (this.grammarVersion !== this.grammar.version) { this.prog = this.grammar.prog; this.grammarVersion = this.grammar.version; }
    let prog = this.prog;
    const ruleAlts = this.grammar.ruleAlts, seen = this.seen;
    // An explicit stack of (pos, parent) pairs in a typed array kept across calls.
    const W = this.work;
    let w = W.a, top = 0;
    w[top++] = pos0; w[top++] = par0;
    while (top > 0) {
      const par = w[--top], pos = w[--top];
      if (!seen.add(pos, par)) continue;
      const s = prog[pos];
      if (s === END) {
        if (par === 0) this.emit(0, epoch);
        else { if (top + 2 > w.length) { W.ensure(top + 2); w = W.a; } w[top++] = this.nodePos.a[par]; w[top++] = this.nodePar.a[par]; }
      } else if (s >= 0) {
        const ret = prog[pos + 1] === END ? par : this.node(pos + 1, par);
        let alts = s < ruleAlts.length ? ruleAlts[s] : this.grammar.alts(s);
        if (alts === PENDING) alts = this.grammar.alts(s);
        // A lazy rule's alternatives may have been appended to a new, longer prog.
        if (this.grammarVersion !== this.grammar.version) { prog = this.prog = this.grammar.prog; this.grammarVersion = this.grammar.version; }
        if (top + 2 * alts.length > w.length) { W.ensure(top + 2 * alts.length); w = W.a; }
        for (let i = alts.length - 1; i >= 0; i--) { w[top++] = alts[i]; w[top++] = ret; }
      } else {
        this.emit(this.node(pos, par), epoch);
      }
    }
  }

  /** A new epoch: a closure (or a step's closures, which share it) begins; what the last one saw is forgotten. */
  private newEpoch(): number {
    this.seen.clear();
    return ++this.epoch;
  }

  private emit(n: number, epoch: number): void {
    this.outMark.ensure(n + 1);
    if (this.outMark.a[n] === epoch) return;
    this.outMark.a[n] = epoch;
    const O = this.outBuf;
    if (this.outN >= O.a.length) O.ensure(this.outN + 1);
    O.a[this.outN++] = n;
  }

  /** The state of the given stacks (copied to the emit buffer, as intern takes them). */
  private internOf(nodes: ArrayLike<number>): number {
    this.outBuf.ensure(nodes.length);
    for (let i = 0; i < nodes.length; i++) this.outBuf.a[i] = nodes[i];
    this.outN = nodes.length;
    return this.intern();
  }

  /** The state of the outN stacks in outBuf (sorted there in place); a state seen before allocates nothing. */
  private intern(): number {
    const len = this.outN, nodes = this.outBuf.a;
    if (len > this.limits.maxStacks) throw new ComplexityError('parallel parses in one state', this.limits.maxStacks, 'the grammar is too ambiguous');
    if (len <= 64) {
      for (let i = 1; i < len; i++) {
        const x = nodes[i];
        let j = i - 1;
        while (j >= 0 && nodes[j] > x) { nodes[j + 1] = nodes[j]; j--; }
        nodes[j + 1] = x;
      }
    } else nodes.subarray(0, len).sort();
    // Hash-consed by a hash of the sorted stacks; equal hashes compare the arrays.
    let h = len | 0;
    for (let k = 0; k < len; k++) h = Math.imul(h ^ nodes[k], 0x9e3779b1) ^ (h >>> 15);
    const bucket = this.stateIds.get(h);
    if (bucket !== undefined) {
      if (typeof bucket === 'number') { if (this.sameNodes(bucket, nodes, len)) return bucket; }
      else for (let j = 0; j < bucket.length; j++) if (this.sameNodes(bucket[j], nodes, len)) return bucket[j];
    }
    const id = this.stateNodes.length;
    if (id >= this.limits.maxStates) throw new ComplexityError('parser states', this.limits.maxStates);
    if (this.deadline !== Infinity && performance.now() > this.deadline) throw new ComplexityError('time to compute one token mask', `${this.timeLimitMs} ms`, 'the grammar is too costly to match');
    const arr = new Int32Array(len);
    for (let k = 0; k < len; k++) arr[k] = nodes[k];
    this.stateNodes.push(arr);
    if (bucket === undefined) this.stateIds.set(h, id);
    else if (typeof bucket === 'number') this.stateIds.set(h, [bucket, id]);
    else bucket.push(id);
    this.trans.ensure((id + 1) * this.K);
    let m = Infinity;
    for (const n of arr) m = Math.min(m, this.nodeMinLen(n));
    this.stateMin.push(m);
    return id;
  }

  private sameNodes(c: number, nodes: Int32Array, len: number): boolean {
    const o = this.stateNodes[c];
    if (o.length !== len) return false;
    for (let k = 0; k < o.length; k++) if (o[k] !== nodes[k]) return false;
    return true;
  }

  /** Next state after byte b, or DEAD. */
  step(s: number, b: number): number {
    const t = this.trans.a[s * this.K + this.eq[b]];
    return t !== UNKNOWN ? t : this.computeStep(s, this.eq[b]);
  }

  /** The memoised transition table, indexed s * K + eq[b] (UNKNOWN = −1 not yet computed). */
  get table(): Int32Array { return this.trans.a; }

  /** Computes (and memoises) the transition of state s on byte class e. */
  computeStep(s: number, e: number): number {
    const b = this.rep[e];
    const nodes = this.stateNodes[s];
    // The successor depends only on which of the state's stacks accept the byte: byte classes
    // that select the same stacks share it (computed once). The selection is keyed by a bit per
    // stack (up to 31 stacks), else by a bit per byte class of the stacks' tops (stacks whose tops
    // are one class accept the same bytes), where there are at most 31 such classes.
    let key = 0, any = false;
    const small = nodes.length <= 31;
    const groups = small ? null : this.topClasses(s);
    if (groups !== null) {
      for (let k = 0; k < groups.length; k++) if (this.cls[groups[k]][b]) key |= 1 << k;
      any = key !== 0;
    } else {
      for (let i = 0; i < nodes.length; i++) {
        const n = nodes[i];
        if (n === 0) continue;
        if (this.cls[symClass(this.prog[this.nodePos.a[n]])][b]) { any = true; if (small) key |= 1 << i; }
      }
    }
    const keyed = small || groups !== null;
    let t = DEAD;
    if (any) {
      const known = keyed ? this.succ.get(s, key) : -1;
      if (known >= 0) t = known === 0x7fffffff ? DEAD : known;
      else {
        this.outN = 0;
        const mark = ++this.stepEpoch;
        // (A state of few stacks is stepped in one walk: the memo pays where states are large.)
        if (!this.memoClosures || nodes.length < MEMO_MIN_STACKS) this.stepExpanding(nodes, b);
        else for (let i = 0; i < nodes.length; i++) {
          const n = nodes[i];
          if (n === 0) continue;
          const pos = this.nodePos.a[n];
          if (!this.cls[symClass(this.prog[pos])][b]) continue;
          // The step's stacks are the union of its accepting stacks' closures (each one's own).
          this.expansions++;
          let at = n < this.afterAt.a.length ? this.afterAt.a[n] : 0;
          if (at === 0) at = this.closureAfter(n, pos);
          const len = this.afterLen.a[n], pool = this.afterPool.a, M = this.stepMark;
          this.outBuf.ensure(this.outN + len);
          const O = this.outBuf.a;
          for (let k = at - 1, z = at - 1 + len; k < z; k++) {
            const m = pool[k];
            if (m >= M.a.length) M.ensure(m + 1);
            if (M.a[m] !== mark) { M.a[m] = mark; O[this.outN++] = m; }
          }
        }
        t = this.outN === 0 ? DEAD : this.intern();
        if (keyed) this.succ.set(s, key, t === DEAD ? 0x7fffffff : t);
      }
    }
    this.trans.a[s * this.K + e] = t;
    return t;
  }

  /** The step's stacks by expanding every accepting stack of `nodes` on byte b, with one epoch (memoClosures off). */
  private stepExpanding(nodes: Int32Array, b: number): void {
    const epoch = this.newEpoch();
    for (let i = 0; i < nodes.length; i++) {
      const n = nodes[i];
      if (n === 0) continue;
      const pos = this.nodePos.a[n];
      if (this.cls[symClass(this.prog[pos])][b]) this.expand(pos + 1, this.nodePar.a[n], epoch);
    }
  }

  /**
   * Stack n's closure after its top byte (see afterAt), computed and memoised: expand from
   * (pos + 1, parent) with an epoch of its own, emitted past the step's stacks in outBuf, moved
   * to the pool. Returns afterAt[n].
   */
  private closureAfter(n: number, pos: number): number {
    const base = this.outN;
    this.expand(pos + 1, this.nodePar.a[n], this.newEpoch());
    this.expansions--;
    const len = this.outN - base, P = this.afterPool;
    // A bound on the memo's memory: past it, start it again.
    if (P.n + len > AFTER_POOL_MOST && P.n > 0) { this.afterAt.a.fill(0); P.n = 0; }
    P.ensure(P.n + len);
    const O = this.outBuf.a, A = P.a;
    for (let k = 0; k < len; k++) A[P.n + k] = O[base + k];
    this.outN = base;
    this.afterAt.ensure(n + 1); this.afterLen.ensure(n + 1);
    this.afterAt.a[n] = P.n + 1;
    this.afterLen.a[n] = len;
    P.n += len;
    return P.n - len + 1;
  }

  /** Per state of more than 31 stacks: the distinct byte classes of its stacks' tops (null past 31; undefined: not yet computed). */
  private readonly topCls: Array<Int32Array | null | undefined> = [];

  /** The distinct byte classes of state s's stacks' tops, in order of first appearance, or null when more than 31. */
  private topClasses(s: number): Int32Array | null {
    const got = this.topCls[s];
    if (got !== undefined) return got;
    const nodes = this.stateNodes[s], seen: number[] = [];
    let res: Int32Array | null = null;
    for (let i = 0; i < nodes.length; i++) {
      if (nodes[i] === 0) continue;
      const c = symClass(this.prog[this.nodePos.a[nodes[i]]]);
      if (seen.indexOf(c) < 0) { if (seen.length === 31) { seen.length = 0; break; } seen.push(c); }
    }
    if (seen.length > 0) res = Int32Array.from(seen);
    this.topCls[s] = res;
    return res;
  }

  /**
   * How state s treats plain characters (see TokenMatcher): per byte, which of its stacks accept
   * it, and where a multi-byte character leads. The answer depends only on the state's shape —
   * its stacks' grammar positions and which of them share a parent — so it is computed once per
   * shape (every position of a bounded string has the same shape) without building states:
   * `rep` is a plain byte whose successor is the state after every plain character but the
   * ASCII exceptions `exc`. Null when no mode applies.
   */
  plainShape(s: number): PlainShape | null {
    const nodes = this.stateNodes[s];
    const pos = this.nodePos.a, par = this.nodePar.a, prog = this.prog, cls = this.cls;
    // Scratch buffers: a shape seen before allocates nothing.
    const L = nodes.length;
    if (this.scratchPidx.length < L) { this.scratchPars = new Int32Array(2 * L); this.scratchPidx = new Int32Array(2 * L); this.scratchTops = new Int32Array(2 * L); }
    const pars = this.scratchPars, pidx0 = this.scratchPidx, tops0 = this.scratchTops;
    // Parents numbered in order of first appearance (a map when there are many: a state of
    // thousands of stacks is one of an ambiguous grammar, oneOf over objects).
    const parMap = L > 32 ? new Map<number, number>() : null;
    let np = 0, h = L;
    for (let i = 0; i < L; i++) {
      const n = nodes[i];
      const p = n === 0 ? -1 : par[n];
      let k: number;
      if (parMap !== null) {
        const got = parMap.get(p);
        if (got === undefined) { k = np; parMap.set(p, np); pars[np++] = p; } else k = got;
      } else {
        k = 0;
        while (k < np && pars[k] !== p) k++;
        if (k === np) pars[np++] = p;
      }
      pidx0[i] = k;
      tops0[i] = n === 0 ? -1 : pos[n];
      h = Math.imul(h ^ tops0[i], 0x9e3779b1) ^ Math.imul(k + 1, 0x85ebca6b) ^ (h >>> 13);
    }
    const bucket = this.shapes.get(h);
    if (bucket) {
      for (const e of bucket) {
        if (e.tops.length !== L) continue;
        let same = true;
        for (let i = 0; i < L && same; i++) same = e.tops[i] === tops0[i] && e.pidx[i] === pidx0[i];
        if (same) return e.result;
      }
    }
    const pidx = pidx0.slice(0, L), tops = tops0.slice(0, L);
    // Byte → bit set of the accepting stacks, a bit per byte class of the grammar (stacks whose
    // tops share a class accept the same bytes: equal sets of classes are equal sets of stacks),
    // so that a state of many stacks over few classes has a shape too. Null past 31 classes.
    const grp = new Int32Array(L), seenCls: number[] = [];
    for (let i = 0; i < L; i++) {
      if (nodes[i] === 0) { grp[i] = -1; continue; }
      const c = symClass(prog[pos[nodes[i]]]);
      let k = seenCls.indexOf(c);
      if (k < 0) { if (seenCls.length === 31) { this.noShape(bucket, h, tops, pidx); return null; } k = seenCls.length; seenCls.push(c); }
      grp[i] = k;
    }
    const sub = new Int32Array(256);
    for (let k = 0; k < seenCls.length; k++) {
      const c = cls[seenCls[k]];
      for (let b = 0; b < 256; b++) if (c[b]) sub[b] |= 1 << k;
    }
    const bit = (i: number): number => (grp[i] < 0 ? 0 : 1 << grp[i]);
    const alphabet = (): Omit<PlainShape, 'sub'> | null => alphabetOf(sub);
    let wide: Omit<PlainShape, 'sub'> | undefined;
    const plain = ((): Omit<PlainShape, 'sub'> | null => {
      for (let b = 0; b < 256; b++) if (sub[b] !== 0 && (b < 0x20 || (b >= 0x80 && b < 0xc2) || b >= 0xf5)) return null;
      const [M, , rep] = mostCommon(sub, 0x20, 0x7f, false);
      let exc: number[] | null = null;
      for (let b = 0x20; b < 0x7f; b++) if (b !== 0x22 && b !== 0x5c && sub[b] !== M) (exc ??= []).push(b);
      let leadsDead = true;
      for (let b = 0xc2; b <= 0xf4; b++) if (sub[b] !== 0) leadsDead = false;
      if (M === 0 || sub[0x7f] === 0) {
        if (sub[0x7f] !== 0 || !leadsDead) return null;
        if (exc && exc.length > 32) {
          if (M !== 0) wide = { mode: 2, exc, rep };
          return null;
        }
        return { mode: M === 0 ? 3 : 2, exc, rep };
      }
      // Mode F takes any number of ASCII exceptions, 0x7F among them: a search whose next
      // character may begin a match, beside a key of any characters. The selection the
      // multi-byte characters follow need not be the most common among ASCII bytes (a search
      // for [A-Za-z]: the letters lead elsewhere), so 0x7F's selection is tried next.
      const f = modeF(M, rep);
      if (f !== null || sub[0x7f] === M) return f;
      let rep2 = 0x7f;
      for (let b = 0x20; b < 0x7f; b++) if (b !== 0x22 && b !== 0x5c && sub[b] === sub[0x7f]) { rep2 = b; break; }
      return modeF(sub[0x7f], rep2);
    })();
    function modeF(M: number, rep: number): Omit<PlainShape, 'sub'> | null {
      let exc: number[] | null = null;
      for (let b = 0x20; b <= 0x7f; b++) if (b !== 0x22 && b !== 0x5c && sub[b] !== M) (exc ??= []).push(b);
      // Mode F: a multi-byte character passes through states that are exactly the accepting
      // stacks moved along their alternatives (no call, no return) and ends where an ASCII
      // character does: the same stacks to resume (a return to the same parent counts as one).
      // A seed is a stack's position after the character with the index of its parent (a return
      // counts by parent alone), as one number; a state's seeds are sorted and unique. No
      // strings or sets: a shape seen for the first time allocates little (GC pauses are p99).
      const seeds = (moved: number[]): number[] => {
        const out: number[] = [];
        for (let j = 0; j < moved.length; j += 2) out.push(prog[moved[j]] === END ? -1 - moved[j + 1] : moved[j] * 65536 + moved[j + 1]);
        out.sort((x, y) => x - y);
        let n = 0;
        for (let j = 0; j < out.length; j++) if (n === 0 || out[n - 1] !== out[j]) out[n++] = out[j];
        out.length = n;
        return out;
      };
      const ascii: number[] = [];
      for (let i = 0; i < nodes.length; i++) if (M & bit(i)) ascii.push(pos[nodes[i]] + 1, pidx[i]);
      const want = seeds(ascii);
      const sameSeeds = (moved: number[]): boolean => {
        const got = seeds(moved);
        if (got.length !== want.length) return false;
        for (let j = 0; j < got.length; j++) if (got[j] !== want[j]) return false;
        return true;
      };
      const pure = (moved: number[]) => { for (let j = 0; j < moved.length; j += 2) if (prog[moved[j]] >= -1) return false; return true; };
      // The special characters (SPECIAL_CHARS: U+2028 and U+2029, which a regex '.' leaves out,
      // and the multi-byte white space of '\s') may be refused or lead elsewhere where every
      // other character leads on uniformly. The shape says so (`ls`) and the matcher decides the
      // few tokens that hold one, one by one (see TokenMatcher.fill). Only a character's last
      // byte is exempted (its prefix is shared with ordinary characters, and so checked); a
      // selection whose walk relied on an exemption is not shared with another byte (that would
      // be another character exempted). `cp`: the code point's bits so far.
      let lsUsed = 0;
      const check = (cur: number[], conts: Array<[number, number]>, k: number, cp: number): boolean => {
        const lo = conts[k][0], hi = conts[k][1];
        // Which of cur's stacks accept a byte decides where it leads: distinct selections only.
        // (By class again: a bit per class of cur's stacks.)
        const cc: number[] = [], cg: number[] = [];
        for (let j = 0; j < cur.length; j += 2) {
          const c = symClass(prog[cur[j]]);
          let g = cc.indexOf(c);
          if (g < 0) { if (cc.length === 31) return false; g = cc.length; cc.push(c); }
          cg.push(g);
        }
        const seen: number[] = [];
        const last = k + 1 === conts.length;
        for (let c = lo; c <= hi; c++) {
          let sel = 0;
          for (let g = 0; g < cc.length; g++) if (cls[cc[g]][c]) sel |= 1 << g;
          if (sel === 0) {
            if (last && SPECIAL_CHARS.has((cp << 6) | (c & 0x3f))) { lsUsed++; continue; }
            return false;
          }
          if (seen.includes(sel)) continue;
          const moved: number[] = [];
          for (let j = 0, q = 0; j < cur.length; j += 2, q++) if (sel & (1 << cg[q])) moved.push(cur[j] + 1, cur[j + 1]);
          if (last) {
            if (sameSeeds(moved)) { seen.push(sel); continue; }
            // A special character leading elsewhere: exempted, its selection not shared (a later
            // character of this selection is checked for itself).
            if (SPECIAL_CHARS.has((cp << 6) | (c & 0x3f))) { lsUsed++; continue; }
            return false;
          }
          seen.push(sel);
          const before = lsUsed;
          if (!pure(moved) || !check(moved, conts, k + 1, (cp << 6) | (c & 0x3f))) return false;
          if (lsUsed !== before) seen.pop();
        }
        return true;
      };
      for (const [lo, hi, conts] of UTF8_LEADS) {
        const seen: number[] = [];
        for (let b = lo; b <= hi; b++) {
          if (sub[b] === 0) return null;
          if (seen.includes(sub[b])) continue;
          seen.push(sub[b]);
          const moved: number[] = [];
          for (let i = 0; i < nodes.length; i++) if (sub[b] & bit(i)) moved.push(pos[nodes[i]] + 1, pidx[i]);
          const before = lsUsed;
          if (!pure(moved) || !check(moved, conts, 0, b & (conts.length === 1 ? 0x1f : conts.length === 2 ? 0x0f : 0x07))) return null;
          if (lsUsed !== before) seen.pop();
        }
      }
      if (lsUsed > 0) return { mode: 1, exc, rep, ls: true };
      return { mode: 1, exc, rep };
    }
    let chosen = plain !== null && !(plain.mode === 3 && plain.exc) ? plain : alphabet() ?? plain ?? { mode: 0, exc: null, rep: 0 };
    if (wide && (chosen.mode === 0 || chosen.mode === 4)) chosen = { ...chosen, wide };
    const result = { ...chosen, sub };
    if (bucket) bucket.push({ tops, pidx, result }); else this.shapes.set(h, [{ tops, pidx, result }]);
    return result;
  }

  /** Remembers a shape without one (more than 31 byte classes among its tops). */
  private noShape(bucket: Array<{ tops: Int32Array; pidx: Int32Array; result: PlainShape | null }> | undefined, h: number, tops: Int32Array, pidx: Int32Array): void {
    if (bucket) bucket.push({ tops, pidx, result: null }); else this.shapes.set(h, [{ tops, pidx, result: null }]);
  }

  /**
   * Bounded repetitions (`x{0,n}`, a string's maxLength) are chains of rules O_k ::= u O_(k−1) | ε,
   * so their levels are states that differ only by the return node of the unit u. Given a level a
   * and its successor b = a + one unit, where every stack that differs is a call of u returning to
   * node(qa, P) in a and node(qb, P) in b (the rule at qa having the form u X | ε, tail-called, and qb
   * the position of X), the states after b follow the chain: each further rule of the form u Y | ε
   * is one more level of b's shape (same stacks, a new return node), and so the same level.
   * Returns the number of such levels after b (at most `most`) and writes to `jumped` the state of
   * the last of them, built directly (b's stacks with the return node replaced) instead of through
   * every level in between. 0 when a and b are not two levels of such a chain.
   */
  chainLevels(a: number, b: number, most: number): number {
    const na = this.stateNodes[a], nb = this.stateNodes[b];
    if (na.length !== nb.length || most < 2) return 0;
    const pos = this.nodePos.a, par = this.nodePar.a, prog = this.prog;
    let Na = -1, Nb = -1;
    for (let i = 0; i < na.length; i++) {
      const x = na[i], y = nb[i];
      if (x === y) continue;
      if (x === 0 || y === 0 || pos[x] !== pos[y]) return 0;
      if (Na < 0) { Na = par[x]; Nb = par[y]; } else if (par[x] !== Na || par[y] !== Nb) return 0;
    }
    if (Na <= 0 || Nb <= 0 || par[Na] !== par[Nb]) return 0;
    const P = par[Na];
    // The stacks both states share must not depend on either return node.
    for (let i = 0; i < nb.length; i++) {
      if (na[i] !== nb[i]) continue;
      for (let x = nb[i]; x > 0; x = par[x]) if (x === Na || x === Nb) return 0;
    }
    const u = this.chainUnit(pos[Na]);
    if (u < 0 || this.chainNext(pos[Na], u) !== pos[Nb]) return 0;
    let q = pos[Nb], count = 0;
    while (count < most) {
      const y = this.chainNext(q, u);
      if (y < 0) break;
      q = y; count++;
    }
    if (count < 2) return 0;
    const N = this.node(q, P);
    const nodes: number[] = [];
    // (pos and par may be the arrays from before node() grew them: they still hold nb's nodes.)
    for (let i = 0; i < nb.length; i++) nodes.push(par[nb[i]] === Nb && nb[i] > 0 ? this.node(pos[nb[i]], N) : nb[i]);
    this.jumped = this.internOf(nodes);
    return count;
  }

  /** State built by the last chainLevels. */
  jumped = DEAD;

  /** The unit u when position q tail-calls a rule of the form u X | ε (u a rule), else −1. */
  private chainUnit(q: number): number {
    const prog = this.prog;
    if (prog[q] < 0 || prog[q + 1] !== END) return -1;
    const alts = this.grammar.alts(prog[q]);
    if (alts.length !== 2) return -1;
    const e = prog[alts[0]] === END ? 0 : prog[alts[1]] === END ? 1 : -1;
    if (e < 0) return -1;
    const s = alts[1 - e];
    return prog[s] >= 0 && prog[s + 1] >= 0 && prog[s + 2] === END ? prog[s] : -1;
  }

  /** The position of X when position q tail-calls a rule of the form u X | ε (X a rule), else −1. */
  private chainNext(q: number, u: number): number {
    if (this.chainUnit(q) !== u) return -1;
    const alts = this.grammar.alts(this.prog[q]);
    const s = this.prog[alts[0]] === END ? alts[1] : alts[0];
    return s + 1;
  }

  /**
   * The byte classes of printable ASCII but '"' and '\' (mode A's plain characters) and those of the
   * bytes mode A kills (control bytes, 0x7F, bytes ≥ 0x80); null when a class mixes the two.
   */
  private asciiClassLists(): { plain: number[]; kill: number[] } | null {
    if (this.asciiClasses === undefined) {
      const plain = new Uint8Array(this.K), kill = new Uint8Array(this.K);
      for (let b = 0; b < 256; b++) {
        if (b === 0x22 || b === 0x5c) continue;
        if (b >= 0x20 && b < 0x7f) plain[this.eq[b]] = 1; else kill[this.eq[b]] = 1;
      }
      const lists = { plain: [] as number[], kill: [] as number[] };
      let mixed = false;
      for (let e = 0; e < this.K; e++) {
        if (plain[e] && kill[e]) mixed = true;
        else if (plain[e]) lists.plain.push(e);
        else if (kill[e]) lists.kill.push(e);
      }
      this.asciiClasses = mixed ? null : lists;
    }
    return this.asciiClasses;
  }
  private asciiClasses: { plain: number[]; kill: number[] } | null | undefined;

  /**
   * Whether every state reachable from s by printable ASCII characters but '"' and '\' (including
   * s) allows every such character and refuses control bytes, 0x7F and bytes ≥ 0x80 — an object
   * key where undeclared names are allowed: the declared names' prefixes are states of their own,
   * but none of them ends the walk on a plain character. Then every token made of those characters
   * is allowed, one that meets a refused byte before a quote or backslash is not, and only the
   * others need the automaton. Returns the largest shortest-completion over the states reached
   * after at least one character, or −1 when the closure does not hold or has more than `most`
   * states (it is explored breadth first, building the states it meets).
   */
  plainClosure(s: number, most: number): number {
    const fast = this.closureByStacks(s, most);
    // (−2: the closure fails for certain, found without walking s's own states.)
    return fast >= 0 ? fast : fast === -2 ? -1 : this.closureOf(s, most, false);
  }

  /**
   * A sufficient condition for plainClosure, from each stack of s alone (memoised by its grammar
   * position, so states that differ only by where their stacks return share the work — the key
   * positions of an object whose members come in any order, one state per set of names seen):
   * the states reachable by plain characters are the unions of what each stack reaches, so the
   * closure holds when one stack T closes by itself (the undeclared keys' trie) and no other stack
   * ever accepts a refused byte. The bound returned, T's largest completion after a character, is
   * at least the largest shortest-completion plainClosure's walk would find (a state holding T
   * completes at least as soon as T does): masks cached with it are recomputed for tighter budgets.
   * −1 when the condition does not hold or a stack may return to its caller within the walk; −2
   * when a frame alone reaches, by plain characters, a stack that accepts a refused byte: s's walk
   * reaches that stack too (its own parent below it), so plainClosure fails without building states.
   */
  private closureByStacks(s: number, most: number): number {
    const nodes = this.stateNodes[s];
    if (nodes.length < 2 || nodes[0] === 0) return -1;
    const pos = this.nodePos.a, par = this.nodePar.a;
    // Stacks by caller: a rule's alternatives are stacks of one frame.
    const groups = new Map<number, number[]>();
    for (const n of nodes) { const g = groups.get(par[n]); if (g) g.push(pos[n]); else groups.set(par[n], [pos[n]]); }
    if (groups.size < 2) return -1;
    let best = -1, fail = false;
    const returning: number[][] = [];
    for (const [p, g] of groups) {
      // A frame's walk is done once per frame (memoised), and the undeclared keys' trie beside
      // many declared names has a state per prefix of a name: a larger bound than a state's.
      const ret = this.harmlessReturn(p);
      const st = this.frameClosure(g, Math.max(most, FRAME_CLOSURE_MOST), ret);
      // A frame that reaches a refused byte by plain characters takes s's closure there too.
      if (st.kills) return -2;
      if (fail) continue;
      if (!st.clean) { if (ret) returning.push(g); else fail = true; continue; }
      if (st.closes >= 0) {
        const bound = st.closes + this.nodeMinLen(p);
        if (best < 0 || bound < best) best = bound;
      }
    }
    if (fail) return -1;
    // Frames that return to a harmless caller, only once some frame closes (their walk, past
    // returns, may meet every state of a long grammar, as a URI's).
    if (returning.length > 0) {
      if (best < 0) return -1;
      for (const g of returning) if (!this.cleanReturning(g, Math.max(most, FRAME_CLOSURE_MOST))) return -1;
    }
    return best;
  }

  /**
   * Whether stack p, resumed (a frame it called returned), first reads a byte class that accepts
   * neither a plain character nor a refused byte (the closing quote after a key): a frame's return
   * to p then adds a stack that never accepts a refused byte and dies on the next plain character,
   * so the frame's plain closure stands for p's part of a state as if it never returned. (Only a
   * byte class on top is looked at: expanding a rule there could build lazy rules.)
   */
  private harmlessReturn(p: number): boolean {
    const cl = this.asciiClassLists();
    if (p === 0 || cl === null) return false;
    const sym = this.prog[this.nodePos.a[p]];
    if (sym >= END) return false;
    const c = this.cls[symClass(sym)];
    for (const e of cl.plain) if (c[this.rep[e]]) return false;
    for (const e of cl.kill) if (c[this.rep[e]]) return false;
    return true;
  }

  /** The states the last closureOf walk met. */
  private closureSeen = new Set<number>();
  /** Per frame (its stacks' grammar positions, sorted): cleanReturning's answer. */
  private readonly framesCleanReturning = new Map<string, boolean>();

  /** Whether the frame's stacks alone, a return allowed, never reach a stack that accepts a refused byte by plain characters (cleanOf past returns; memoised). */
  private cleanReturning(positions: number[], most: number): boolean {
    const key = positions.sort((a, b) => a - b).join(',');
    let r = this.framesCleanReturning.get(key);
    if (r === undefined) {
      const halt = this.node(1, 0);
      r = this.cleanOf(this.internOf(positions.map((q) => this.node(q, halt))), most, true);
      this.framesCleanReturning.set(key, r);
    }
    return r;
  }

  /** Whether the last cleanOf walk failed on a state that accepts a refused byte. */
  private cleanKilled = false;
  /** Per frame (its stacks' grammar positions, sorted): the plain closure of those stacks alone (see closureByStacks). */
  private readonly frameClosures = new Map<string, FrameClosure>();

  /**
   * `returns`: the frame's caller resumes harmlessly (see harmlessReturn), so a return is no
   * failure (an undeclared key's automaton ends where its state accepts, before the quote).
   */
  private frameClosure(positions: number[], most: number, returns: boolean): FrameClosure {
    const key = positions.sort((a, b) => a - b).join(',') + (returns ? 'r' : '');
    let r = this.frameClosures.get(key);
    if (r === undefined && this.freeKeyFrame(positions)) {
      // A node of an undeclared key's trie: every plain character leads to the free key or to
      // another node, and after one the key ends in at most 2 bytes (a character and the quote,
      // where a declared name was just completed).
      r = { closes: 2, clean: true, kills: false };
      this.frameClosures.set(key, r);
      return r;
    }
    if (r === undefined) {
      // The stacks alone, returning to a frame of their own (position 1 holds the synthetic
      // start's END, so a return reaches the empty stack: node 0, which both walks refuse).
      // One stack whose byte class refuses some plain character does not close: inside a literal
      // (a declared name), the scan decides without building states.
      if (positions.length === 1 && !this.allPlain(positions[0]) && this.literalClean(positions[0])) {
        r = { closes: -1, clean: true, kills: false };
        this.frameClosures.set(key, r);
        return r;
      }
      const halt = this.node(1, 0);
      const s1 = this.internOf(positions.map((q) => this.node(q, halt)));
      const closes = this.closureOf(s1, most, true, returns);
      let clean = closes >= 0, kills = false;
      if (!clean && positions.length === 1 && this.literalClean(positions[0])) clean = true;
      // (Returns still stop this walk: past them it may meet every state of a long grammar, as a
      // URI's, only to find it clean; a state's refused bytes are looked at before its return.)
      else if (!clean) { this.cleanKilled = false; clean = this.cleanOf(s1, most); kills = this.cleanKilled; }
      r = { closes, clean, kills };
      this.frameClosures.set(key, r);
      // Every frame that walk met, returning to the same place, closes too (what it reaches the
      // walk reached after a character): one walk from a trie's root serves all its nodes.
      if (closes >= 0) {
        for (const t of this.closureSeen) {
          const ns = this.stateNodes[t];
          if (!ns.every((n) => n !== 0 && this.nodePar.a[n] === halt)) continue;
          // (Under the same terms: a walk that allowed returns speaks for callers that allow them.)
          const k = Array.from(ns, (n) => this.nodePos.a[n]).sort((a, b) => a - b).join(',') + (returns ? 'r' : '');
          if (!this.frameClosures.has(k)) this.frameClosures.set(k, r);
        }
      }
    }
    return r;
  }

  /** The grammar's rules by the start positions of their alternatives, and which are undeclared keys' trie nodes (see ruleStarts). */
  private ruleStarts: { at: Int32Array; free: Int8Array } | undefined;

  /**
   * Whether positions are alternatives of one rule of an undeclared key's trie (schema.ts keyTrie)
   * whose classes, together, accept every plain character and no refused byte: a frame closed
   * under plain characters (each leads to the free key, `[…]* "`, or to a node's rule, tail-called).
   */
  private freeKeyFrame(positions: number[]): boolean {
    const cl = this.asciiClassLists();
    if (cl === null) return false;
    const { at, free } = this.ruleStarts ??= ruleStarts(this.grammar);
    const prog = this.prog;
    const rule = positions[0] < at.length ? at[positions[0]] : 0;
    if (rule === 0 || !freeKeyRule(this.grammar, free, rule - 1)) return false;
    const covered = new Uint8Array(this.K);
    for (const q of positions) {
      if (q >= at.length || at[q] !== rule || prog[q] >= -1) return false;
      const c = this.cls[symClass(prog[q])];
      for (const e of cl.kill) if (c[this.rep[e]]) return false;
      for (const e of cl.plain) if (c[this.rep[e]]) covered[e] = 1;
    }
    for (const e of cl.plain) if (!covered[e]) return false;
    return true;
  }

  /** Whether the byte class at grammar position pos accepts every plain character. */
  private allPlain(pos: number): boolean {
    const cl = this.asciiClassLists();
    if (cl === null || this.prog[pos] >= -1) return false;
    const c = this.cls[symClass(this.prog[pos])];
    for (const e of cl.plain) if (!c[this.rep[e]]) return false;
    return true;
  }

  /**
   * cleanOf for a stack inside a literal (a declared name): along byte classes of one alternative,
   * each accepting no refused byte, up to one that accepts no plain character. False when the
   * scan meets a call or the alternative's end (then cleanOf decides).
   */
  private literalClean(pos: number): boolean {
    const cl = this.asciiClassLists();
    if (cl === null) return false;
    const prog = this.prog;
    for (let q = pos; ; q++) {
      const sym = prog[q];
      if (sym >= -1) return false;
      const c = this.cls[symClass(sym)];
      for (const e of cl.kill) if (c[this.rep[e]]) return false;
      let plain = false;
      for (const e of cl.plain) if (c[this.rep[e]]) { plain = true; break; }
      if (!plain) return true;
    }
  }

  /**
   * Whether no state reachable from s by plain characters accepts a refused byte or returns
   * (node 0); with `returns` a return is allowed.
   */
  private cleanOf(s: number, most: number, returns = false): boolean {
    const cl = this.asciiClassLists();
    if (cl === null) return false;
    const queue = [s], seen = new Set<number>(queue);
    for (let qi = 0; qi < queue.length; qi++) {
      const q = queue[qi], nodes = this.stateNodes[q];
      const pos = this.nodePos.a, prog = this.prog;
      for (const n of nodes) { if (n === 0) continue; const c = this.cls[symClass(prog[pos[n]])]; for (const e of cl.kill) if (c[this.rep[e]]) { this.cleanKilled = true; return false; } }
      if (nodes[0] === 0 && !returns) return false;
      for (const e of cl.plain) {
        const t = this.step(q, this.rep[e]);
        if (t === DEAD || seen.has(t)) continue;
        if (seen.size >= most) return false;
        seen.add(t);
        queue.push(t);
      }
    }
    return true;
  }

  /**
   * plainClosure's walk; `alone`: s is one stack returning to its own frame, and a return fails
   * (with `returns`, it is allowed).
   */
  private closureOf(s: number, most: number, alone: boolean, returns = false): number {
    const cl = this.asciiClassLists();
    if (cl === null) return -1;
    const queue = [s], seen = new Set<number>(queue);
    this.closureSeen = seen;
    const K = this.K, rep = this.rep;
    // Per state: the byte classes of its stacks (each once: stacks of one class accept the same
    // bytes), and the successors found by selection of classes.
    const tops: Uint8Array[] = [], keys: number[] = [], succs: number[] = [];
    let max = 0;
    for (let qi = 0; qi < queue.length; qi++) {
      const q = queue[qi], nodes = this.stateNodes[q];
      if (alone && nodes[0] === 0 && !returns) return -1;
      // Read here, not once before the loop: the steps below build stack nodes, and a node
      // table that grows is a new array (a state found by a step has nodes past the old one's end).
      // (prog too: a step may expand a lazy rule, which appends to a new array.)
      const pos = this.nodePos.a, prog = this.prog;
      tops.length = 0;
      for (const n of nodes) {
        if (n === 0) continue;
        const c = this.cls[symClass(prog[pos[n]])];
        if (!tops.includes(c)) { if (tops.length === 31) return -1; tops.push(c); }
      }
      for (const e of cl.kill) for (const c of tops) if (c[rep[e]]) return -1;
      // The successor depends only on which stacks accept the byte (as in computeStep): one
      // step per selection, written to the table for the classes that share it.
      keys.length = succs.length = 0;
      let last = DEAD;
      for (const e of cl.plain) {
        let key = 0;
        for (let i = 0; i < tops.length; i++) if (tops[i][rep[e]]) key |= 1 << i;
        if (key === 0) return -1;
        let t = this.trans.a[q * K + e];
        if (t === UNKNOWN) {
          const k = keys.indexOf(key);
          if (k >= 0) this.trans.a[q * K + e] = t = succs[k];
          else { t = this.computeStep(q, e); keys.push(key); succs.push(t); }
        }
        if (t === DEAD) return -1;
        if (t === last) continue;
        last = t;
        if (this.stateMin[t] > max) max = this.stateMin[t];
        if (seen.has(t)) continue;
        if (seen.size >= most) return -1;
        seen.add(t);
        queue.push(t);
      }
    }
    return max;
  }

  /** The bytes of a stack's frames top() keeps (TOP_BYTES; fewer cut the stacks closer to their tops: for tests). */
  topBytes = TOP_BYTES;
  /** Per state: its top (see top; null: none worth it; undefined: not yet asked). */
  private readonly tops: Array<StateTop | null | undefined> = [];

  /**
   * State s cut short: each stack's frames from the top while the bytes needed to leave them are
   * at most TOP_BYTES (by the grammar's shortest derivations; TOP_LEVELS frames at most), over a halt of their own in place
   * of the rest of the stack — the parses an anyOf of object shapes keeps open differ below the
   * member being read (circleciconfig's value after `"image":` is 1,830 stacks, 68 cut short).
   * A byte string read from s leads where it leads from that state, each stack over the rest it
   * was cut from, until a return through a halt (node 0 in the state reached: the walk then goes
   * on from s itself, see TokenMatcher.walk); its shortest completion is then at most that
   * state's plus `lift`. Null below TOP_MIN_STACKS stacks, when s may end, and where the cut
   * keeps more than a quarter of the stacks.
   */
  top(s: number): StateTop | null {
    let r = this.tops[s];
    if (r !== undefined) return r;
    r = null;
    const nodes = this.stateNodes[s], L = nodes.length;
    if (L >= TOP_MIN_STACKS && nodes[0] !== 0 && this.topWorth(nodes)) {
      const halt = this.node(1, 0), hm = this.nodeMinLen(halt);
      const out = new Set<number>(), chain: number[] = [];
      let lift = 0;
      for (let i = 0; i < L; i++) {
        const minRest = this.grammar.minRest;
        let x = nodes[i], c = 0;
        chain.length = 0;
        while (x > 0 && c <= this.topBytes && chain.length < TOP_LEVELS) { const q = this.nodePos.a[x]; chain.push(q); c += minRest[q]; x = this.nodePar.a[x]; }
        // (A stack that ends within the bytes counted stays whole.)
        if (x <= 0) { out.add(nodes[i]); continue; }
        lift = Math.max(lift, this.nodeMinLen(x) - hm);
        let y = halt;
        for (let k = chain.length - 1; k >= 0; k--) y = this.node(chain[k], y);
        out.add(y);
      }
      if (out.size * 4 <= L) r = { state: this.internOf([...out]), lift };
    }
    this.tops[s] = r;
    return r;
  }

  /**
   * Whether top() cuts these stacks to at most a quarter, as far as a hash of each cut chain's
   * positions tells (no nodes built: most large states of a grammar without parses to share, as
   * clang-format's thousands, fail here); a collision only lets top() try and decide by nodes.
   */
  private topWorth(nodes: Int32Array): boolean {
    const L = nodes.length, minRest = this.grammar.minRest, pos = this.nodePos.a, par = this.nodePar.a;
    const seen = new Set<number>();
    for (let i = 0; i < L; i++) {
      let x = nodes[i], c = 0, h = 0;
      for (let k = 0; x > 0 && c <= this.topBytes && k < TOP_LEVELS; k++) { const q = pos[x]; h = Math.imul(h ^ q, 0x9e3779b1) ^ (h >>> 15); c += minRest[q]; x = par[x]; }
      // (A stack kept whole is its own chain.)
      seen.add(x <= 0 ? -1 - nodes[i] : h);
      if (seen.size * 4 > L) return false;
    }
    return true;
  }

  /** Whether the output may end here. */
  accepting(s: number): boolean {
    return this.stateNodes[s][0] === 0;
  }

  /** Whether the output must end here (complete, and no byte can follow). */
  finished(s: number): boolean {
    const n = this.stateNodes[s];
    return n.length === 1 && n[0] === 0;
  }

  /** Bytes still needed at least to complete the output from state s. */
  minComplete(s: number): number {
    return this.stateMin[s];
  }

  /**
   * Frames of s (its stacks with one parent: the alternatives of one rule call) whose top byte
   * classes together accept every plain character's first byte (printable ASCII but '"' and '\\',
   * 0x7F, and the UTF-8 lead bytes C2–F4) — candidates for a frame that loops on every plain
   * character by itself (TokenMatcher.closureF) —, each as the state of that frame alone (built
   * here); at most `most` of them.
   */
  plainLoopCandidates(s: number, most: number): number[] {
    const out: number[] = [];
    for (const f of this.framesOf(s).values()) {
      if (out.length >= most) break;
      if (this.coverPlainBytes(f)) out.push(this.internOf(f));
    }
    return out;
  }

  /** The stacks of state s (but the halt) by their parent: the frames of s, each the alternatives of one rule call. */
  private framesOf(s: number): Map<number, number[]> {
    const par = this.nodePar.a, frames = new Map<number, number[]>();
    for (const n of this.stateNodes[s]) {
      if (n === 0) continue;
      const f = frames.get(par[n]);
      if (f) f.push(n); else frames.set(par[n], [n]);
    }
    return frames;
  }

  /** Whether the top byte classes of these stacks together accept every plain character's first byte (PLAIN_FIRST_BYTES). */
  private coverPlainBytes(nodes: readonly number[]): boolean {
    const pos = this.nodePos.a;
    for (const b of PLAIN_FIRST_BYTES) {
      let covered = false;
      for (let i = 0; i < nodes.length && !covered; i++) covered = this.cls[symClass(this.prog[pos[nodes[i]]])][b] !== 0;
      if (!covered) return false;
    }
    return true;
  }

  /**
   * The frames of s but those of one stack inside a literal (a declared name beside a pattern
   * key's automaton, each name a frame of its own) and those that read no plain
   * character (the closing quote), rooted at a halt of their own in place of their nearest common caller (the
   * automaton's character rules return into its own rules: they are rooted together): the state of
   * those stacks alone, the same wherever s returns to, so its closure is worked out once for
   * every key position of an object whose names come in any order; and how much longer the
   * caller's completion is than the halt's. Null when no literal is left out or no frame is kept, when
   * the kept frames' classes do not accept every plain character's first byte together, or when
   * they have no common caller within a few levels.
   */
  framesApart(s: number): { state: number; lift: number } | null {
    const par = this.nodePar.a, pos = this.nodePos.a;
    const kept: number[] = [];
    let left = false;
    for (const f of this.framesOf(s).values()) {
      if (f.length === 1) {
        // (A stack that reads no plain character — a closing quote — adds nothing to the closure: left out, but no reason to try.)
        if (!this.somePlainByte(pos[f[0]])) continue;
        if (this.literal(pos[f[0]])) { left = true; continue; }
      }
      for (const n of f) kept.push(n);
    }
    if (!left || kept.length === 0 || !this.coverPlainBytes(kept)) return null;
    // The nearest caller on every kept stack's chain (a few levels up).
    const LEVELS = 8;
    const under = (n: number, a: number): boolean => { for (let x = par[n], k = 0; x > 0 && k < LEVELS; x = par[x], k++) if (x === a) return true; return false; };
    let root = -1;
    for (let a = par[kept[0]], k = 0; a > 0 && k < LEVELS && root < 0; a = par[a], k++) if (kept.every((n) => under(n, a))) root = a;
    if (root < 0) return null;
    const halt = this.node(1, 0);
    const moved = new Map<number, number>([[root, halt]]);
    const move = (n: number): number => {
      let m = moved.get(n);
      if (m === undefined) { m = this.node(this.nodePos.a[n], move(this.nodePar.a[n])); moved.set(n, m); }
      return m;
    };
    const out = kept.map(move);
    return { state: this.internOf(out), lift: this.nodeMinLen(root) - this.nodeMinLen(halt) };
  }

  /** Whether grammar position pos begins a run of byte classes, within one alternative, up to one that accepts no plain character (a declared name up to its closing quote). */
  private literal(pos: number): boolean {
    for (let q = pos; ; q++) {
      if (this.prog[q] >= -1) return false;
      if (!this.somePlainByte(q)) return true;
    }
  }

  /** Whether grammar position pos holds a byte class that accepts some plain character's first byte (printable ASCII but '"' and '\\', 0x7F, C2–F4). */
  private somePlainByte(pos: number): boolean {
    if (this.prog[pos] >= -1) return true;
    const c = this.cls[symClass(this.prog[pos])];
    for (const b of PLAIN_FIRST_BYTES) if (c[b]) return true;
    return false;
  }

  private nodeMinLen(n: number): number {
    // Sum of the rest of each frame, up the stack; memoised per node.
    const NM = this.nodeMin;
    NM.ensure(this.nodePos.n);
    const nm = NM.a;
    if (nm[n] >= 0) return nm[n];
    const C = this.chainBuf;
    let x = n, k = 0;
    while (nm[x] < 0) { if (k >= C.a.length) C.ensure(k + 1); C.a[k++] = x; x = this.nodePar.a[x]; }
    let acc = nm[x];
    const chain = C.a;
    for (let i = k - 1; i >= 0; i--) {
      acc += this.grammar.minRest[this.nodePos.a[chain[i]]];
      nm[chain[i]] = acc;
    }
    return nm[n];
  }

  /** State after a byte string, or DEAD. */
  advanceBytes(s: number, bytes: ArrayLike<number>): number {
    for (let i = 0; i < bytes.length && s >= 0; i++) s = this.step(s, bytes[i]);
    return s;
  }

  /** A shortest byte string that completes the output from s (greedy on the shortest completion). */
  shortestCompletion(s: number, limit = 1 << 16): Uint8Array {
    const out: number[] = [];
    while (!this.accepting(s) || this.minComplete(s) > 0) {
      if (out.length >= limit) break;
      const want = this.minComplete(s) - 1;
      let next = DEAD, nb = -1;
      for (let b = 0; b < 256; b++) {
        const t = this.step(s, b);
        if (t >= 0 && this.minComplete(t) === want) { next = t; nb = b; break; }
      }
      if (next < 0) break;
      out.push(nb);
      s = next;
    }
    return Uint8Array.from(out);
  }
}

const ruleAtMemo = new WeakMap<Grammar, { at: Int32Array; free: Int8Array }>();

/**
 * Per grammar position: 1 + the rule whose alternative starts there (0: none), over the rules
 * with names whose alternatives are built; and per rule whether it is a node of an undeclared
 * key's trie (a name FREE_KEY_NODE or FREE_KEY_NODE-<digits>; 0: not yet known, 1 yes, 2 no).
 * Once per grammar (automata on one grammar share it), from the alternatives' start positions
 * alone: a schema of many objects has thousands of rules, and reading every name (or a Map of
 * the trie rules' alternatives) cost about a millisecond in the first mask at a key.
 */
export function ruleStarts(g: Grammar): { at: Int32Array; free: Int8Array } {
  let r = ruleAtMemo.get(g);
  if (r !== undefined) return r;
  const R = g.names.length, ra = g.ruleAlts;
  let end = 0;
  for (let k = 0; k < R && k < ra.length; k++) { const a = ra[k]; if (a !== PENDING && a.length > 0 && a[a.length - 1] >= end) end = a[a.length - 1] + 1; }
  const at = new Int32Array(end);
  for (let k = 0; k < R && k < ra.length; k++) { const a = ra[k]; if (a !== PENDING) for (let i = 0; i < a.length; i++) at[a[i]] = k + 1; }
  r = { at, free: new Int8Array(R) };
  ruleAtMemo.set(g, r);
  return r;
}

/** Whether rule r (< names.length) is a node of an undeclared key's trie (see ruleStarts), memoised there. */
function freeKeyRule(g: Grammar, free: Int8Array, r: number): boolean {
  if (free[r] === 0) {
    const n = g.names[r], L = FREE_KEY_NODE.length;
    let ok = n.startsWith(FREE_KEY_NODE) && (n.length === L || (n.length > L + 1 && n.charCodeAt(L) === 0x2d));
    for (let i = L + 1; i < n.length && ok; i++) { const c = n.charCodeAt(i); ok = c >= 0x30 && c <= 0x39; }
    free[r] = ok ? 1 : 2;
  }
  return free[r] === 1;
}

/** Partition of byte values by membership in every class: [byte → class, count, class → a byte]. */
function byteClasses(classes: Uint8Array[]): [Uint8Array, number, Uint8Array] {
  // Partition refinement: each class splits every part by membership; parts are numbered by
  // their first byte (no allocation per class: compile time and its garbage count).
  let part = new Int32Array(256), nextPart = new Int32Array(256);
  const idOf = new Int32Array(512);
  let parts = 1;
  for (const c of classes) {
    idOf.fill(-1, 0, 2 * parts);
    let k = 0;
    for (let b = 0; b < 256; b++) {
      const key = 2 * part[b] + (c[b] ? 1 : 0);
      let id = idOf[key];
      if (id < 0) idOf[key] = id = k++;
      nextPart[b] = id;
    }
    const t = part; part = nextPart; nextPart = t;
    parts = k;
  }
  const eq = new Uint8Array(256), rep: number[] = [];
  for (let b = 0; b < 256; b++) { if (part[b] === rep.length) rep.push(b); eq[b] = part[b]; }
  return [eq, rep.length, Uint8Array.from(rep)];
}

export interface MaskStats {
  cacheHits: number;
  walks: number;
  nodesVisited: number;
  /** Masks that started from the per-vocabulary plain-text tables (see `mask`). */
  plainMasks?: number;
  /** Walks of a state's top (ByteAutomaton.top), and trie nodes below which they walked on from the state itself (a return through the top's halt). */
  topWalks?: number;
  topReturns?: number;
}

// Level analysis modes (MODE_F / MODE_A from plain.ts), plus: no byte but '"' and '\' continues.
const CLOSED = 3, ALPHA = 4;
interface Level {
  /** 0 (none), MODE_F, MODE_A or CLOSED. */
  mode: number;
  /** The state after any plain character but the exceptions (DEAD when CLOSED). */
  next: number;
  /** ASCII bytes that do not lead to `next` (walked); null when none. */
  exc: number[] | null;
  /** Largest shortest-completion over the states a plain character passes through. */
  max: number;
  /** Mode 4 (ALPHA): the alphabet and its key (null otherwise: every Level has one hidden class). */
  alpha: Uint8Array | null;
  key: string | null;
  /** MODE_F but special characters are refused or lead elsewhere (see PlainShape.ls): the tokens holding them are checked one by one. */
  ls?: boolean;
  /**
   * MODE_A with exceptions (printable ASCII, some bytes leading elsewhere or refused): the state's
   * shape as an ASCII alphabet, built on first use (null: none), for the matcher to settle the
   * state from the per-alphabet tables where refused bytes are too common to walk their tokens (a
   * pattern such as ^[a-zA-Z0-9_./-]+$ refuses the space, which begins most tokens).
   */
  alt?: Omit<PlainShape, 'sub'> | null;
  /** Whether alt's walk is cheap (TokenMatcher.altCheap), once known. */
  altCheap?: boolean;
  /** exc as a set (4 words of 32 byte bits), for a free region below a loop with exceptions (see walk); built on first use (null: not ASCII, or in most tokens). */
  excSet?: Uint32Array | null;
}
interface Chain { n: number; dec: boolean; max: number }
/**
 * Settled levels of mode 4: the alphabet, the exception bytes (4 words of 32 byte bits each), the
 * most bytes a token may take in the alphabet, the largest completion; and the lead bytes ≥ 0x80
 * live at some level (null: none), whose tokens are decided one by one.
 */
interface AlphaSettled { c: Uint32Array; e: Uint32Array; n: number; max: number; hi: number[] | null }
/** A walk under settled mode-4 levels: per trie node the bytes below its first (PlainIndex.nodeRestSets); per first byte, the exception bytes below it (4 words) and whether the node itself is stepped. */
interface AlphaWalk { rest: Uint32Array; exc: Uint32Array; visit: Uint8Array }
/** exc: byte → 1 where live at some level outside the alphabet (ASCII: walked; a lead byte ≥ 0x80: its tokens decided one by one). */
interface AlphaChain extends Chain { exc: Uint8Array; split?: Uint8Array }
/** Level.alt not built yet (see TokenMatcher.altOf). */
const PENDING_ALT: Omit<PlainShape, 'sub'> = { mode: 0, exc: null, rep: 0 };
const NO_LEVEL: Level = { mode: 0, next: DEAD, exc: null, max: 0, alpha: null, key: null };
/**
 * A loop's exception bytes as 4 words of 32 bits, for a free region (see walk); null where one is
 * not ASCII, or where more than FREE_EXC_SHARE of the vocabulary's tokens hold one after their
 * first byte (a region would walk nearly all it covers, after reading its tokens).
 */
function byteSet(bytes: number[], P: PlainIndex): Uint32Array | null {
  if (bytes.some((b) => b >= 0x80)) return null;
  const e = new Uint32Array(4);
  for (const b of bytes) e[b >>> 5] |= 1 << (b & 31);
  let memo = freeExcUseful.get(P);
  if (!memo) { memo = new Map(); freeExcUseful.set(P, memo); }
  const key = e.join();
  let useful = memo.get(key);
  if (useful === undefined) {
    const rs = P.restSets, T = P.tokLen.length;
    let n = 0;
    for (let k = 0; k < T; k++) { const o = k * 5; if (((rs[o] & e[0]) | (rs[o + 1] & e[1]) | (rs[o + 2] & e[2]) | (rs[o + 3] & e[3])) !== 0) n++; }
    useful = n <= FREE_EXC_SHARE * T;
    memo.set(key, useful);
  }
  return useful ? e : null;
}
/** Smallest alphabet of mode 4 (a smaller one is cheaper walked than tabled). */
const ALPHABET_MIN = 20;
/** Most levels with exceptions followed from a state to a loop, and most tokens holding an exception byte decided one by one (see fillToLoop). */
const LOOP_LEVELS = 8, LOOP_TOKENS = 3000;
/** Most uniform levels followed from one state (tokens with more characters are walked). */
const CHAIN_LIMIT = 256;
/** Most states of a plain closure (the prefixes of the declared names beside an undeclared key). */
const CLOSURE_MOST = 256;
/** Subtrees at least this large are checked for a free (self-looping plain) state. */
const FREE_MIN_NODES = 128;
/** Smallest subtree checked for a free state when the state's levels are known already. */
const FREE_SMALL = 8;
/** Most of the vocabulary's tokens whose bytes after the first may hold a free region's exception bytes (more: nearly every subtree holds one, and is walked anyway). */
const FREE_EXC_SHARE = 0.5;
/** Per vocabulary (its plain tables): whether a set of exception bytes (by its words) leaves most tokens free of them. */
const freeExcUseful = new WeakMap<PlainIndex, Map<string, boolean>>();

/**
 * A grammar over a vocabulary: token masks per parser state.
 *
 * A mask is a walk of the token trie through the automaton, cached per state. Where nearly every
 * token is allowed — inside a JSON string, an undeclared object key — a walk would visit the
 * whole trie, and a bounded string (maxLength) is a new state at every character. There the
 * mask starts from per-vocabulary tables instead (plain.ts): the state is analysed by levels —
 * every plain character (all code points ≥ U+0020 but '"' and '\', or printable ASCII) leads to
 * one same next state, control and stray bytes are dead — and after n uniform levels every
 * token made of ≤ n plain characters is allowed (one precomputed bit mask), every token that
 * meets a dead byte within them is refused, and only the subtrees holding other tokens (with a
 * quote or backslash: the end of the string and what follows) are walked. A few ASCII bytes of
 * the first level may lead elsewhere (the declared keys beside an undeclared one): their
 * subtrees are walked. Inside a walk, a subtree reached in a state that loops on plain
 * characters is settled token by token from the same tables. States of regular expressions
 * (formats, patterns) where a large ASCII alphabet leads on uniformly are settled the same way
 * from per-alphabet masks (mode 4), walking only the subtrees that hold a byte live elsewhere.
 * The level analysis depends only on a state's shape (ByteAutomaton.plainShape), so a bounded
 * string pays it once. Masks stay exact (the tests compare them with a brute-force check over
 * real vocabularies); `plain: false` turns the fast paths off.
 */
export class TokenMatcher {
  readonly automaton: ByteAutomaton;
  private readonly cache = new Map<number, { mask: Uint32Array; maxAfter: number }>();
  readonly stats: MaskStats = { cacheHits: 0, walks: 0, nodesVisited: 0, plainMasks: 0, topWalks: 0, topReturns: 0 };
  private readonly stk: Int32Array;
  /** walk's states of s itself below a return through a top's halt, and the bytes of the path walked. */
  private readonly stkS: Int32Array;
  private readonly path: Uint8Array;
  /** Whether walks of states of many parses walk their tops (ByteAutomaton.top; off: for tests). */
  topStates = true;
  readonly words: number;
  private plainIdx: PlainIndex | null = null;
  private readonly levels: (Level | undefined)[] = [];
  private readonly closures: (number | undefined)[] = [];
  private readonly settled: (AlphaSettled | null | undefined)[] = [];
  private readonly chains: (Chain | undefined)[][] = [[], [], []];
  private readonly alphaChains = new Map<string, (AlphaChain | undefined)[]>();
  /** Whether walk takes a loop with exception bytes, or singling out special characters, as a free region (off: only loops without, for tests). */
  loopsWithExceptions = true;
  /** Whether the mask being filled ends with fill's pass over the special tokens (see there and walk's free regions). */
  private specialPass = false;
  /** Whether a level singling out a special character has been analysed (PlainShape.ls; see fill). */
  private lsLevels = false;

  /**
   * opts.maskTimeMs: the longest one mask may take to compute (a server keeps a costly grammar
   * from stalling the other requests): past it, a ComplexityError. The states built so far stay
   * valid (a later call continues from them). Default: no limit.
   */
  constructor(grammar: Grammar | ByteAutomaton, readonly vocab: TokenVocab, readonly opts: { maxCachedMasks?: number; limits?: AutomatonLimits; plain?: boolean; maskTimeMs?: number } = {}) {
    this.automaton = grammar instanceof ByteAutomaton ? grammar : new ByteAutomaton(grammar, opts.limits);
    this.stk = new Int32Array(vocab.maxDepth + 1);
    this.stkS = new Int32Array(vocab.maxDepth + 1);
    this.path = new Uint8Array(vocab.maxDepth + 1);
    this.words = (vocab.size + 31) >>> 5;
  }

  get initial(): number { return this.automaton.initial; }

  private get plain(): PlainIndex {
    return this.plainIdx ??= this.vocab.plain;
  }

  /**
   * Allowed token ids in state s as a bit mask (bit i of word i>>5). With a budget of B tokens
   * after this one, only tokens after which the output can be completed in B bytes are allowed
   * (each byte has a token of its own in byte-level and byte-fallback vocabularies). EOS ids
   * are allowed when the output may end here.
   */
  mask(s: number, budget = Infinity): Uint32Array {
    const c = this.cache.get(s);
    if (c && c.maxAfter <= budget) { this.stats.cacheHits++; return c.mask; }
    const limit = this.opts.maskTimeMs;
    if (limit === undefined) return this.computeMask(s, budget, c);
    const a = this.automaton;
    a.deadline = performance.now() + limit;
    a.timeLimitMs = limit;
    try { return this.computeMask(s, budget, c); } finally { a.deadline = Infinity; }
  }

  private computeMask(s: number, budget: number, c: { mask: Uint32Array; maxAfter: number } | undefined): Uint32Array {
    if (!c) {
      const mask = new Uint32Array(this.words);
      const maxAfter = this.opts.plain === false ? this.walk(s, Infinity, mask, this.vocab, 0, this.vocab.nodes, null, 0, null) : this.fill(s, mask);
      const max = this.opts.maxCachedMasks ?? 4096;
      if (this.cache.size >= max) this.cache.clear();
      if (max > 0) this.cache.set(s, { mask, maxAfter });
      if (maxAfter <= budget) return mask;
    }
    const mask = new Uint32Array(this.words);
    this.walk(s, budget, mask, this.vocab, 0, this.vocab.nodes, null, 0, null);
    return mask;
  }

  /** The unbudgeted mask of s; returns an upper bound of the largest shortest-completion over the allowed tokens. */
  private fill(s: number, mask: Uint32Array): number {
    // (Known before the walks: a free region below a level that singles out special characters
    // leaves them to the pass below, which runs where s is of mode F.)
    this.specialPass = this.level(s).mode === MODE_F;
    const max = this.fillLevels(s, mask);
    this.specialPass = false;
    // (Only once a level singling them out exists: other levels of mode F lead them on as any character.)
    if (!this.lsLevels || this.level(s).mode !== MODE_F) return max;
    // Levels of mode F may single out the special characters (PlainShape.ls), which the plain
    // tables count as plain: the tokens that hold one are decided here, each by the automaton.
    let m = max;
    for (const id of this.plain.specialTokens) {
      const t = this.automaton.advanceBytes(s, this.vocab.bytes[id]!);
      if (t < 0) { mask[id >>> 5] &= ~(1 << (id & 31)); continue; }
      mask[id >>> 5] |= 1 << (id & 31);
      m = Math.max(m, this.automaton.minComplete(t));
    }
    return m;
  }

  private fillLevels(s: number, mask: Uint32Array): number {
    const L = this.level(s);
    const v = this.vocab;
    if (L.mode === 0) return this.walk(s, Infinity, mask, v, 0, v.nodes, null, 0, null);
    const P = this.plain, W = this.words;
    this.stats.plainMasks = (this.stats.plainMasks ?? 0) + 1;
    if (L.mode === ALPHA) {
      const a = this.alphaSettled(s);
      return a ? this.fillAlpha(s, a, mask) : this.walk(s, Infinity, mask, v, 0, v.nodes, null, 0, null);
    }
    let mode = L.mode, n = 0, dec = true, max = 0, excBytes = L.exc;
    const closed = excBytes === null ? -1 : mode === MODE_A ? this.closure(s) : mode === MODE_F ? this.closureF(s) : -1;
    if (mode === CLOSED) mode = MODE_A;
    else if (closed >= 0) {
      // Every level from here on allows every plain character (see ByteAutomaton.plainClosure):
      // settled like a free key, the exceptions included.
      n = P.cap[mode];
      max = closed;
      excBytes = null;
    } else {
      const ch = this.tail(L.next, mode);
      if (!ch.dec) {
        // Not settled by uniform levels: levels with exceptions up to a loop may settle it, or
        // (printable ASCII with exceptions) the levels of an ASCII alphabet.
        const r = this.fillToLoop(s, L, mask);
        if (r >= 0) return r;
        const alt = this.altOf(s, L);
        if (alt && (L.altCheap ??= this.altCheap(alt))) {
          const a = this.alphaSettled(s);
          if (a) return this.fillAlpha(s, a, mask);
        }
      }
      n = Math.min(P.cap[mode], ch.n + 1);
      dec = ch.dec;
      max = Math.max(L.max, ch.max);
    }
    if (n > 0) mask.set(P.cum[mode].subarray(n * W, (n + 1) * W));
    let exc: Uint8Array | null = null;
    if (excBytes) {
      exc = new Uint8Array(256);
      for (const e of excBytes) {
        exc[e] = 1;
        const j = P.rootChild[e];
        if (j < 0 || n === 0) continue;
        for (let k = v.nodeTokStart[j], z = P.subtreeTokEnd(j); k < z; k++) { const id = v.toks[k]; mask[id >>> 5] &= ~(1 << (id & 31)); }
      }
    }
    if (!dec) return Math.max(max, this.walk(s, Infinity, mask, v, 0, v.nodes, P.thr[mode], n, exc));
    // Settled: only the tokens that reach a quote or backslash (a small trie of their own) are
    // walked, and the subtrees of the exceptions in full.
    const X = P.walkTrie[mode];
    max = Math.max(max, this.walk(s, Infinity, mask, X, 0, X.nodeByte.length, null, 0, exc));
    if (exc) for (const e of excBytes!) {
      const j = P.rootChild[e];
      if (j >= 0) max = Math.max(max, this.walk(s, Infinity, mask, v, j, v.nodeSkip[j], null, 0, null));
    }
    return max;
  }

  /**
   * Levels of one ASCII alphabet C (a settles them): the tokens of C that fit are allowed, those
   * whose first byte outside C is dead at its level are not, and the subtrees holding an
   * exception byte (live at some level) are walked — except that below a first byte that is an
   * exception leading to settled levels of their own (an email's '.' or '@'), the tokens whose
   * rest is in that alphabet come from a table and only the subtrees holding one of its exception
   * bytes are walked. (Every exception first byte is stepped: the walk allows the token of that
   * byte alone and bounds its completion.)
   */
  private fillAlpha(s: number, a: AlphaSettled, mask: Uint32Array): number {
    const P = this.plain, v = this.vocab;
    mask.set(P.alphabetMask(a.c, a.n));
    let max = a.max;
    const exc = new Uint32Array(256 * 4), visit = new Uint8Array(256);
    let hi = a.hi;
    for (let x = 0; x < 256; x++) {
      if (x >= 0x80 || !((a.e[x >>> 5] >>> (x & 31)) & 1)) { exc.set(a.e, x * 4); continue; }
      visit[x] = 1;
      const t = this.automaton.step(s, x);
      const b = t >= 0 ? this.alphaSettled(t) : null;
      if (!b) { exc.fill(-1, x * 4, x * 4 + 4); continue; }
      for (const id of P.prefixTokens(x, b.c, b.n)) mask[id >>> 5] |= 1 << (id & 31);
      exc.set(b.e, x * 4);
      max = Math.max(max, b.max);
      if (b.hi) hi = hi ? [...new Set([...hi, ...b.hi])] : b.hi;
    }
    max = Math.max(max, this.walk(s, Infinity, mask, v, 0, v.nodes, null, 0, null, { rest: P.nodeRestSets, exc, visit }));
    // The tables and the walk count every byte ≥ 0x80 as dead: the tokens holding a lead byte
    // live at some level are decided here, each by the automaton (its bytes stepped counted as
    // nodes walked).
    if (hi) {
      const A = this.automaton;
      let stepped = 0;
      for (const x of hi) {
        for (const id of P.tokensWith(x)) {
          const bytes = v.bytes[id]!;
          let t = s, k = 0;
          while (k < bytes.length && t >= 0) t = A.step(t, bytes[k++]);
          stepped += k;
          if (t < 0) { mask[id >>> 5] &= ~(1 << (id & 31)); continue; }
          mask[id >>> 5] |= 1 << (id & 31);
          if (A.minComplete(t) > max) max = A.minComplete(t);
        }
      }
      this.stats.nodesVisited += stepped;
    }
    return max;
  }

  /**
   * Levels of one mode from s up to one that loops (x* of a class that leaves out a few ASCII
   * bytes: a pattern such as ^[^/]+$) or up to as many levels as the longest plain token has
   * characters (a bounded repetition), each mapping every plain character but its exceptions to
   * the next: every token of plain characters without an exception byte of any of them is
   * allowed (it ends in one of them, or the loop), the tokens holding one (few) are decided one by
   * one, and those that reach a quote or a backslash are walked. Returns the mask's bound, or −1
   * (mask untouched) where the levels do not reach a loop within LOOP_LEVELS or hold too many
   * exception tokens.
   */
  private fillToLoop(s: number, L: Level, mask: Uint32Array): number {
    const P = this.plain, A = this.automaton, v = this.vocab, W = this.words, mode = L.mode;
    const exc = new Set<number>(), states: number[] = [], lvls: Level[] = [];
    let cur = s, C = L, max = 0;
    // A bounded repetition (`[^,"]{1,255}`) has no loop, but where as many levels follow as the
    // longest plain token has characters (P.cap), every token ends within them (at the last level's
    // `next` at most, whose shortest completion its `max` counts): they settle it as a loop does.
    // (Only from a level with exceptions: uniform levels are the plain tables' (tail), which skip
    // a bounded repetition's levels without building their states.)
    const enough = L.exc !== null ? P.cap[mode] : Infinity;
    for (let k = 0; ; k++) {
      if (C.mode !== mode || k > Math.max(LOOP_LEVELS, enough === Infinity ? 0 : enough)) return -1;
      if (C.exc) for (const e of C.exc) exc.add(e);
      if (C.max > max) max = C.max;
      states.push(cur); lvls.push(C);
      if (C.next === cur || (k === enough - 1 && C.next >= 0)) break;
      if (C.next < 0) return -1;
      cur = C.next;
      C = this.level(cur);
    }
    // A byte refused at every level (the space of [^\s]: most tokens hold one) refuses every
    // plain token that holds it, from a table; the others are decided one by one.
    const dead: number[] = [];
    for (const e of exc) {
      let d = true;
      for (let k = 0; k < states.length && d; k++) d = (lvls[k].exc?.includes(e) ?? false) && A.step(states[k], e) === DEAD;
      if (d) { dead.push(e); exc.delete(e); }
    }
    let count = 0;
    for (const e of exc) count += P.tokensWith(e).length;
    if (count > LOOP_TOKENS) return -1;
    const n = P.cap[mode];
    mask.set(P.cum[mode].subarray(n * W, (n + 1) * W));
    for (const e of dead) { const h = P.tokensWithMask(e); for (let w = 0; w < W; w++) mask[w] &= ~h[w]; }
    for (const e of exc) for (const id of P.tokensWith(e)) mask[id >>> 5] &= ~(1 << (id & 31));
    for (const e of exc) {
      for (const id of P.tokensWith(e)) {
        const t = A.advanceBytes(s, v.bytes[id]!);
        if (t < 0) continue;
        mask[id >>> 5] |= 1 << (id & 31);
        if (A.minComplete(t) > max) max = A.minComplete(t);
      }
    }
    const X = P.walkTrie[mode];
    return Math.max(max, this.walk(s, Infinity, mask, X, 0, X.nodeByte.length, null, 0, null));
  }

  /**
   * Fills mask by walking nodes [i0, i1) of a trie (a whole subtree range); returns the largest
   * shortest-completion over the tokens it allowed. With `thr`, a subtree whose tokens are all
   * settled after nEff uniform levels is skipped (its tokens come from the plain tables), except
   * under the first bytes in `exc`; without `thr`, the subtrees under the first bytes in `exc`
   * are skipped (walked separately). With `alpha` (settled levels of mode 4, see fill), a subtree
   * without an exception byte below its first byte is skipped (its tokens come from the
   * per-alphabet tables), except that the first bytes marked `visit` are stepped.
   */
  private walk(s: number, budget: number, mask: Uint32Array, trie: Trie, i0: number, i1: number, thr: Int32Array | null, nEff: number, exc: Uint8Array | null,
    alpha: AlphaWalk | null = null): number {
    const A = this.automaton, v = this.vocab;
    const nb = trie.nodeByte, nd = trie.nodeDepth, ns = trie.nodeSkip, ts = trie.nodeTokStart, te = trie.nodeTokEnd, toks = trie.toks;
    // A state of many parses walks its top instead (ByteAutomaton.top): the same tokens, but
    // below a node where a return reaches the top's halt, which walks on from s itself (stkS:
    // s's own states along the path, up to topEnd, the end of that node's subtree).
    const top = budget === Infinity && this.topStates ? A.top(s) : null;
    const stkT = this.stk, stkS = this.stkS, path = this.path;
    stkT[0] = top !== null ? top.state : s;
    let stk = stkT, topEnd = -1, lift = top !== null ? top.lift : 0;
    if (top !== null) this.stats.topWalks!++;
    let table = A.table;
    const eq = A.eq, K = A.K;
    let maxAfter = 0;
    let visited = 0;
    let i = i0;
    let skipOK = false;
    // Free regions (below) need the whole trie's node numbering.
    const freeOK = budget === Infinity && this.opts.plain !== false && trie === v && alpha === null;
    const rest = alpha?.rest, ae = alpha?.exc;
    const nrs = this.plain.nodeRestSets;
    let freeEnd = -1, freeDepth = 0, freeWalk: Int32Array | null = null, eo = 0;
    // A free region's exception bytes (a loop with exceptions): a subtree holding one is walked.
    let fx0 = 0, fx1 = 0, fx2 = 0, fx3 = 0;
    while (i < i1) {
      if (freeEnd >= 0 && i >= freeEnd) freeEnd = -1;
      if (topEnd >= 0 && i >= topEnd) { topEnd = -1; stk = stkT; lift = top!.lift; }
      const d = nd[i];
      if (d === 1) {
        const x = exc !== null && exc[nb[i]] === 1;
        if (x && thr === null) { i = ns[i]; continue; }
        skipOK = thr !== null && !x;
        eo = nb[i] << 2;
      }
      if (freeEnd >= 0) {
        const o = i * 5;
        if (freeWalk![i] < freeDepth && ((nrs[o] & fx0) | (nrs[o + 1] & fx1) | (nrs[o + 2] & fx2) | (nrs[o + 3] & fx3)) === 0) { i = ns[i]; continue; }
      }
      else if (skipOK && thr![i] <= nEff) { i = ns[i]; continue; }
      else if (alpha !== null && !(d === 1 && alpha.visit[nb[i]] === 1)) {
        // No exception byte below the first byte (of those it has: see fill): every token here
        // is settled by the alphabet masks.
        const o = i * 5;
        if (((rest![o] & ae![eo]) | (rest![o + 1] & ae![eo + 1]) | (rest![o + 2] & ae![eo + 2]) | (rest![o + 3] & ae![eo + 3])) === 0) { i = ns[i]; continue; }
      }
      visited++;
      const from = stk[d - 1];
      const e = eq[nb[i]];
      let t = table[from * K + e];
      if (t === UNKNOWN) { t = A.computeStep(from, e); table = A.table; }
      if (t < 0) { i = ns[i]; continue; }
      path[d] = nb[i];
      if (top !== null && topEnd < 0 && A.stateNodes[t][0] === 0) {
        // A return through the top's halt (or the end of a stack kept whole): from here to the end
        // of this subtree, s's own states.
        stkS[0] = s;
        for (let k = 1; k <= d; k++) stkS[k] = stkS[k - 1] < 0 ? DEAD : A.step(stkS[k - 1], path[k]);
        table = A.table;
        t = stkS[d];
        stk = stkS; topEnd = ns[i]; lift = 0;
        this.stats.topReturns!++;
        if (t < 0) { i = ns[i]; continue; }
      }
      stk[d] = t;
      const a = ts[i], z = te[i];
      if (a < z) {
        const mc = A.minComplete(t) + lift;
        if (mc <= budget) {
          if (mc > maxAfter) maxAfter = mc;
          for (let k = a; k < z; k++) { const id = toks[k]; mask[id >>> 5] |= 1 << (id & 31); }
        }
      }
      // A state already analysed costs nothing to ask: smaller subtrees qualify then.
      const size = ns[i] - i;
      if (freeOK && freeEnd < 0 && (size > FREE_MIN_NODES || (size > FREE_SMALL && this.levels[t] !== undefined))) {
        const L = this.level(t);
        table = A.table;
        if (this.freeLoop(L, t)) {
          // t loops on plain characters: the subtree's tokens whose rest is plain are allowed,
          // those whose rest meets a dead byte first are not, the others are walked. Where ASCII
          // bytes are exceptions (dead, or leading elsewhere: `[^,:&]*` beside `\s*`), the tokens
          // whose rest holds none are allowed, and the subtrees that hold one are walked.
          // (Special characters that the level singles out (L.ls) count as plain here: fill
          // decides the tokens holding one afterwards, each by the automaton from s.)
          freeEnd = ns[i]; freeDepth = d; freeWalk = this.plain.maxWalk[L.mode];
          if (L.max + lift > maxAfter) maxAfter = L.max + lift;
          const E = L.exc === null ? null : L.excSet!;
          fx0 = E ? E[0] : 0; fx1 = E ? E[1] : 0; fx2 = E ? E[2] : 0; fx3 = E ? E[3] : 0;
          this.fillFree(i, d, L.mode, mask, E);
        }
      }
      i++;
    }
    if (A.accepting(s)) for (const id of v.eosIds) mask[id >>> 5] |= 1 << (id & 31);
    this.stats.walks++;
    this.stats.nodesVisited += visited;
    return maxAfter;
  }

  /**
   * Whether level L of state t makes a free region (see walk): a loop on plain characters whose
   * exception bytes, if any, most tokens lack (byteSet), and whose special characters, if it
   * singles them out, fill decides after the walks.
   */
  private freeLoop(L: Level, t: number): boolean {
    if ((L.mode !== MODE_F && L.mode !== MODE_A) || L.next !== t) return false;
    if (!this.loopsWithExceptions) return L.exc === null && !L.ls;
    if (L.ls && !this.specialPass) return false;
    if (L.exc === null) return true;
    if (L.excSet === undefined) L.excSet = byteSet(L.exc, this.plain);
    return L.excSet !== null;
  }

  /**
   * Allows the tokens below trie node i (depth d) whose bytes from d on are plain characters of the
   * mode and none of the bytes in E (4 words; null: none). (E is tested against all of a token's
   * bytes after its first: one above d in E refuses the token here, and the walk decides it.)
   */
  private fillFree(i: number, d: number, mode: number, mask: Uint32Array, E: Uint32Array | null): void {
    const P = this.plain, v = this.vocab, toks = v.toks, lnp = P.lastNonPlain[mode], cont = P.contBits, rs = P.restSets;
    const checkCont = mode === MODE_F;
    const e0 = E ? E[0] : 0, e1 = E ? E[1] : 0, e2 = E ? E[2] : 0, e3 = E ? E[3] : 0;
    for (let k = v.nodeTokEnd[i], z = P.subtreeTokEnd(i); k < z; k++) {
      if (lnp[k] >= d) continue;
      const o = k * 5;
      if (((rs[o] & e0) | (rs[o + 1] & e1) | (rs[o + 2] & e2) | (rs[o + 3] & e3)) !== 0) continue;
      const id = toks[k];
      // A continuation byte at d would begin the rest in the middle of a character.
      if (checkCont && (d < 32 ? (cont[k] >>> d) & 1 : (v.bytes[id]![d] & 0xc0) === 0x80)) continue;
      mask[id >>> 5] |= 1 << (id & 31);
    }
  }

  /** State t as a level of mode 4 whose levels settle every token (see fill), memoised; null when it is not. */
  private alphaSettled(t: number): AlphaSettled | null {
    let r = this.settled[t];
    if (r === undefined) {
      r = null;
      const L = this.alphaLevel(t);
      if (L !== null) {
        const C = new Uint8Array(0x80);
        for (let b = 0; b < 0x80; b++) C[b] = L.alpha![b] === 1 ? 1 : 0;
        let ch = this.tailAlpha(L.next, C, L.key!);
        // A later level that parts the alphabet (a URL's host [a-z0-9.-]: after a character, '.'
        // leads elsewhere than the letters): the bytes apart become exceptions, walked (few
        // tokens hold them), while the alphabet keeps ALPHABET_MIN bytes; a few tries.
        for (let k = 0; k < 4 && !ch.dec && ch.split; k++) {
          let n = 0;
          for (let b = 0; b < 0x80; b++) if (C[b] && !ch.split[b]) n++;
          if (n < ALPHABET_MIN) break;
          let key = '';
          for (let b = 0; b < 0x80; b++) { if (ch.split[b]) C[b] = 0; key += C[b] ? '1' : '0'; }
          ch = this.tailAlpha(L.next, C, key);
        }
        // Lead bytes ≥ 0x80 live at t or a later level: the tokens holding one are decided one
        // by one, where their bytes are fewer than a quarter of the trie's nodes (a walk).
        let hi: number[] | null = null, count = 0;
        const sub = this.automaton.plainShape(t)!.sub;
        for (let b = 0xc2; b <= 0xf4; b++) if (sub[b] !== 0 || ch.exc[b]) { (hi ??= []).push(b); count += this.plain.bytesWith(b); }
        if (ch.dec && count <= this.vocab.nodes / 4) {
          const c = new Uint32Array(4), e = new Uint32Array(4);
          for (let b = 0; b < 0x80; b++) {
            if (C[b]) c[b >>> 5] |= 1 << (b & 31);
            else if (L.alpha![b] !== 0 || ch.exc[b]) e[b >>> 5] |= 1 << (b & 31);
          }
          r = { c, e, n: Math.min(this.vocab.maxDepth, ch.n + 1), max: Math.max(L.max, ch.max), hi };
        }
      }
      this.settled[t] = r;
    }
    return r;
  }

  /** Whether closureF looks no further than the longest plain token (see there; off: the whole closure, for tests). */
  depthCut = true;

  /** ByteAutomaton.plainClosure of s, memoised (−1: does not hold). */
  private closure(s: number): number {
    let c = this.closures[s];
    if (c === undefined) { c = this.automaton.plainClosure(s, CLOSURE_MOST); this.closures[s] = c; }
    return c;
  }

  /**
   * The mode-F twin of `closure`: whether every state reachable from s by plain characters is a
   * level of mode F (every character ≥ U+0020 but '"' and '\\' is live: each non-ASCII one leads to
   * the level's next state, see ByteAutomaton.plainShape) whose ASCII exceptions are live too — a
   * string searched for a pattern (`.*x.*`), where the characters of x lead elsewhere than the
   * others but none is refused. Then every token of plain characters is allowed, as in a free
   * string. Returns an upper bound of the largest shortest-completion after such a token (a
   * character cut by the token's end counts 3 bytes more), or −1. States in the closure share the
   * answer (their closures are subsets: the bound holds for them).
   *
   * Only the states within P.cap[MODE_F] − 1 characters of s are asked to be such levels (no
   * token of plain characters has more characters than P.cap, so none reads a character past
   * them); those at P.cap characters count for the bound alone. A bounded repetition (a key
   * pattern `^.{1,255}$` beside the keys it leaves out, printable ASCII: an ASCII character
   * leads elsewhere than the others for 256 levels) is settled so without walking its hundreds
   * of states. Where the walk stopped there, the answer is s's alone (a state it met has fewer
   * characters left below the cut). `depthCut: false` walks the whole closure (for tests).
   */
  private closureF(s: number): number {
    const c = this.closures[s];
    if (c !== undefined) return c;
    const A = this.automaton;
    // Without the walk where one frame of s alone (its stacks with one parent) passes through
    // levels of mode F without exceptions into one that leads back to itself — a string of any
    // characters: the key of a free JSON value beside declared names, in a key position of anyOf
    // branches. A state's successor holds the successor of each of its stacks (the same nodes:
    // stacks are hash-consed), so every state reached from s by plain characters holds one of
    // that frame's levels: every plain character is live at each, and none completes later than
    // those levels allow. The walk below would build a state for every prefix of every name.
    for (const one of A.plainLoopCandidates(s, 4)) {
      let q = one, bound = 0;
      for (let k = 0; k < 4; k++) {
        const L = this.level(q);
        if (L.mode !== MODE_F || L.exc !== null || L.ls) break;
        bound = Math.max(bound, L.max);
        if (L.next === q) { this.closures[s] = bound; return bound; }
        q = L.next;
      }
      // A frame that every plain character leads back to, with more stacks beside it — the `.*`
      // of a search in grammar form (a pattern too large for its automaton, `(a|b|…)` of hundreds
      // of names: the `.*` stays, the names' stacks come and go): every state reached holds the
      // frame's stacks, so every plain character is live at each, and none completes later than
      // the frame does, a cut character's 3 bytes aside.
      if (this.framesLoop && this.reproduces(one)) {
        const bound = A.minComplete(one) + 3;
        this.closures[s] = bound;
        return bound;
      }
    }
    // The frames of s but the literals of one stack (declared names beside a pattern key's
    // automaton), rooted at a halt in place of their common caller (ByteAutomaton.framesApart):
    // what they reach from s, s's states reach too (a state's successor holds each of its stacks'
    // successors, and a frame's, up to its return, do not depend on its caller; past the return,
    // the caller's stacks stand where the halt's end), so where every plain character is live at
    // each state they reach, it is at s's, and s's states complete no later than theirs plus the
    // caller's rest. The halted state is the same at every key position of the object: one walk,
    // not one per position (18 required names in any order built ~140 states at each key).
    if (this.framesLoop) {
      const apart = A.framesApart(s);
      if (apart !== null && apart.state !== s) {
        const c = this.closureF(apart.state);
        if (c >= 0) { this.closures[s] = c + apart.lift; return c + apart.lift; }
      }
    }
    // Breadth first: a state's depth (characters from s) is the least.
    const queue = [s], depth = [0], seen = new Set<number>(queue);
    const cut = this.depthCut ? this.plain.cap[MODE_F] : Infinity;
    let max = 0, ok = true, d = 0, stopped = false;
    const add = (t: number): boolean => {
      if (t < 0) return false;
      if (A.minComplete(t) + 3 > max) max = A.minComplete(t) + 3;
      if (seen.has(t)) return true;
      if (seen.size >= CLOSURE_MOST) return false;
      seen.add(t);
      queue.push(t);
      depth.push(d + 1);
      return true;
    };
    for (let qi = 0; qi < queue.length && ok; qi++) {
      const q = queue[qi];
      d = depth[qi];
      if (d >= cut) { stopped = true; continue; }
      const L = this.level(q);
      if (L.mode !== MODE_F) {
        // Not a level (a character of several bytes leads elsewhere than an ASCII one, as past a
        // regex '.', which leaves out U+2028): every plain character is stepped.
        const next = this.charSuccessors(q);
        if (next === null) { ok = false; break; }
        for (const t of next) if (!add(t)) { ok = false; break; }
        continue;
      }
      if (!add(L.next)) { ok = false; break; }
      if (L.exc) for (const b of L.exc) if (!add(A.step(q, b))) { ok = false; break; }
    }
    if (!ok) { this.closures[s] = -1; return -1; }
    if (stopped) this.closures[s] = max;
    else for (const q of queue) this.closures[q] = max;
    return max;
  }

  /** Whether closureF asks a frame whether every plain character leads back to it (see there; off: for tests). */
  framesLoop = true;

  /**
   * Whether every plain character leads from state f to a state that holds all of f's stacks: f
   * is a level of mode F (every non-ASCII character leads to its next state, none singled out)
   * whose next state and the states after its exception bytes hold f's stacks.
   */
  private reproduces(f: number): boolean {
    const L = this.level(f);
    if (L.mode !== MODE_F || L.ls) return false;
    const A = this.automaton, fn = A.stateNodes[f];
    const holds = (t: number): boolean => {
      if (t < 0) return false;
      const tn = A.stateNodes[t];
      let j = 0;
      for (let i = 0; i < fn.length; i++) {
        while (j < tn.length && tn[j] < fn[i]) j++;
        if (j === tn.length || tn[j] !== fn[i]) return false;
      }
      return true;
    };
    if (!holds(L.next)) return false;
    if (L.exc) for (const b of L.exc) if (!holds(A.step(f, b))) return false;
    return true;
  }

  /**
   * The states after each plain character (every code point ≥ U+0020 but '"' and '\\', as its
   * UTF-8 bytes) from s, or null when one of them is refused. Bytes are stepped one per byte
   * equivalence class (they share transitions).
   */
  private charSuccessors(s: number): number[] | null {
    const A = this.automaton, eq = A.eq;
    const out = new Set<number>();
    for (let b = 0x20; b <= 0x7f; b++) {
      if (b === 0x22 || b === 0x5c) continue;
      const t = A.step(s, b);
      if (t < 0) return null;
      out.add(t);
    }
    const seq = (q: number, conts: Array<[number, number]>, k: number): boolean => {
      if (k === conts.length) { out.add(q); return true; }
      const seen = new Set<number>();
      for (let c = conts[k][0]; c <= conts[k][1]; c++) {
        if (seen.has(eq[c])) continue;
        seen.add(eq[c]);
        const t = A.step(q, c);
        if (t < 0 || !seq(t, conts, k + 1)) return false;
      }
      return true;
    };
    for (const [lo, hi, conts] of UTF8_LEADS) if (!seq(s, [[lo, hi], ...conts], 0)) return null;
    return [...out];
  }

  private readonly altLevels: (Level | undefined)[] = [];
  private readonly altCheapness = new Map<string, boolean>();

  /**
   * Whether an alphabet's walk is cheap at its first level: the bytes outside it that lead on
   * (walked, with their subtrees) are held by few tokens (a key position where declared names
   * begin with common letters is not: there the levels of mode A walk less).
   */
  private altCheap(alt: Omit<PlainShape, 'sub'>): boolean {
    const key = alt.alpha!.join('');
    let r = this.altCheapness.get(key);
    if (r === undefined) {
      let count = 0;
      for (let b = 0; b < 0x80; b++) if (alt.alpha![b] === 2 && b !== 0x22) count += this.plain.tokensWith(b).length;
      r = count <= LOOP_TOKENS;
      this.altCheapness.set(key, r);
    }
    return r;
  }

  /** State t's level as an ASCII alphabet: its level of mode 4, or the alternative of one of mode A (Level.alt); null when neither. */
  private alphaLevel(t: number): Level | null {
    const L = this.level(t);
    if (L.mode === ALPHA) return L;
    const alt = this.altOf(t, L);
    if (!alt) return null;
    let M = this.altLevels[t];
    if (!M) {
      const next = this.automaton.step(t, alt.rep);
      M = { mode: ALPHA, next, exc: null, max: this.automaton.minComplete(next), alpha: alt.alpha!, key: alt.key! };
      this.altLevels[t] = M;
    }
    return M;
  }

  /** Level L of state t as an ASCII alphabet (Level.alt, built on first use), or null. */
  private altOf(t: number, L: Level): Omit<PlainShape, 'sub'> | null {
    if (L.alt === undefined) return null;
    if (L.alt === null || L.alt.mode === 4) return L.alt;
    L.alt = alphabetOf(this.automaton.plainShape(t)!.sub);
    return L.alt;
  }

  /**
   * Of the alphabets a state of mode 4 offers (each selection of at least ALPHABET_MIN ASCII
   * bytes), the one whose exceptions the fewest tokens hold after their first byte: those are the
   * tokens the walk visits (a first byte that is an exception is settled by its own levels). The
   * most common selection is not always it: in a URL pattern's host, after a letter, the path's
   * characters (space, A–Z, '_': 28 bytes) lead elsewhere than the 26 lowercase letters, which
   * most tokens hold.
   */
  private leastWalked(sh: PlainShape): PlainShape | Omit<PlainShape, 'sub'> {
    const sub = sh.sub, P = this.plain;
    const cost = (M: number): number => {
      let c = 0;
      for (let b = 0; b < 0x80; b++) if (sub[b] !== 0 && sub[b] !== M && b !== 0x22) c += P.restCount(b);
      return c;
    };
    const M0 = sub[sh.rep];
    let best: PlainShape | Omit<PlainShape, 'sub'> = sh, least = cost(M0);
    const tried: number[] = [M0, 0];
    for (let b = 0; b < 0x80; b++) {
      const M = sub[b];
      if (tried.includes(M)) continue;
      tried.push(M);
      let n = 0;
      for (let x = 0; x < 0x80; x++) if (sub[x] === M && x !== 0x22 && x !== 0x5c) n++;
      if (n < ALPHABET_MIN) continue;
      const c = cost(M);
      if (c < least) { least = c; best = alphabetFor(sub, M, b); }
    }
    return best;
  }

  /** The level analysis of state s (memoised). */
  private level(s: number): Level {
    let L = this.levels[s];
    if (!L) { L = this.analyse(s); this.levels[s] = L; }
    return L;
  }

  private analyse(s: number): Level {
    const A = this.automaton;
    const sh = A.plainShape(s);
    if (sh?.wide && this.closure(s) >= 0) {
      // Every printable character leads on to states that allow them all: settled as a free key.
      const next = A.step(s, sh.wide.rep);
      return { mode: MODE_A, next, exc: sh.wide.exc, max: A.minComplete(next), alpha: null, key: null };
    }
    if (!sh || sh.mode === 0) return NO_LEVEL;
    if (sh.mode === CLOSED) return { mode: CLOSED, next: DEAD, exc: sh.exc, max: 0, alpha: null, key: null };
    const next = A.step(s, sh.rep);
    if (sh.mode === ALPHA) {
      const best = this.leastWalked(sh);
      if (best !== sh) {
        const nx = A.step(s, best.rep);
        return { mode: ALPHA, next: nx, exc: null, max: A.minComplete(nx), alpha: best.alpha!, key: best.key! };
      }
      return { mode: ALPHA, next, exc: null, max: A.minComplete(next), alpha: sh.alpha!, key: sh.key! };
    }
    // Inside a multi-byte character, at most 3 bytes lead to `next`.
    const mc = A.minComplete(next);
    if (sh.ls) this.lsLevels = true;
    return { mode: sh.mode, next, exc: sh.exc, max: sh.mode === MODE_F ? mc + 3 : mc, alpha: null, key: null, ls: sh.ls, ...(sh.mode === MODE_A && sh.exc ? { alt: PENDING_ALT } : {}) };
  }

  /** Uniform levels (no exceptions, one mode) from state t: how many (≤ cap), whether the rest is settled, the largest completion met. */
  private tail(t: number, mode: number): Chain {
    const memo = this.chains[mode], cap = this.plain.cap[mode];
    const path: number[] = [];
    const limit = Math.min(cap, CHAIN_LIMIT);
    let cur = t, base: Chain, truncated = false;
    // Levels of a bounded repetition skipped without building their states (see chainLevels):
    // `skipped` of them follow path[skipAt], each the same level as it.
    let skipAt = -1, skipped = 0;
    for (;;) {
      const L = this.level(cur);
      const m = memo[cur];
      if (m) { base = m; break; }
      if (L.mode === CLOSED && L.exc === null) { base = { n: 0, dec: true, max: 0 }; memo[cur] = base; break; }
      if (L.mode === mode && L.exc === null) {
        if (L.next === cur) { base = { n: cap, dec: true, max: L.max }; memo[cur] = base; break; }
        if (path.length + skipped >= limit) { base = { n: 0, dec: false, max: 0 }; truncated = true; break; }
        path.push(cur);
        if (skipAt < 0 && path.length >= 2) {
          const A = this.automaton;
          const c = A.chainLevels(path[path.length - 2], cur, limit - path.length - 1);
          if (c > 0) {
            // The levels after cur: c − 1 skipped, then the last one (built) continues the walk.
            skipAt = path.length - 1; skipped = c - 1;
            cur = A.jumped;
            continue;
          }
        }
        cur = L.next;
        continue;
      }
      base = { n: 0, dec: false, max: 0 };
      memo[cur] = base;
      break;
    }
    for (let k = path.length - 1; k >= 0; k--) {
      const L = this.level(path[k]);
      // A skipped level is path[skipAt]'s level: its largest completion is L.max (the same stacks).
      const extra = k === skipAt ? skipped : 0;
      base = { n: Math.min(cap, base.n + 1 + extra), dec: base.dec, max: Math.max(L.max, base.max) };
      if (!truncated) memo[path[k]] = base;
    }
    return base;
  }

  /**
   * Levels on alphabet C (key `key`) from state t: every byte of C leads to one same state, bytes
   * ≥ 0x80 are dead but lead bytes of multi-byte characters, other live ASCII bytes and those lead
   * bytes are exceptions (the union is returned: the ASCII ones walked, the tokens holding a lead
   * byte decided one by one). A level where every byte of C is dead settles the rest.
   */
  private tailAlpha(t: number, C: Uint8Array, key: string): AlphaChain {
    let memo = this.alphaChains.get(key);
    if (!memo) { memo = []; this.alphaChains.set(key, memo); }
    const A = this.automaton, cap = this.vocab.maxDepth;
    let c0 = 0;
    while (!C[c0]) c0++;
    const path: number[] = [], nexts: number[] = [];
    let cur = t, base: AlphaChain, truncated = false;
    const excOf = (sub: Int32Array, into: Uint8Array) => { for (let b = 0; b < 0xf5; b++) if (sub[b] !== 0 && !(b < 0x80 && C[b])) into[b] = 1; };
    for (;;) {
      const m = memo[cur];
      if (m) { base = m; break; }
      const sh = A.plainShape(cur);
      const unsettled = () => ({ n: 0, dec: false, max: 0, exc: new Uint8Array(256) });
      if (!sh) { base = unsettled(); break; }
      const sub = sh.sub;
      let ok = true;
      for (let b = 0x80; b < 256 && ok; b++) if (sub[b] !== 0 && (b < 0xc2 || b > 0xf4)) ok = false;
      if (!ok) { base = unsettled(); break; }
      const M = sub[c0];
      for (let b = 0; b < 0x80 && ok; b++) if (C[b] && sub[b] !== M) ok = false;
      if (!ok) {
        // The level parts C: the bytes outside its most common selection among C's, for the
        // caller to try C without them (alphaSettled).
        let best = M, most = 0;
        for (let b = 0; b < 0x80; b++) {
          if (!C[b]) continue;
          let n = 0;
          for (let x = 0; x < 0x80; x++) if (C[x] && sub[x] === sub[b]) n++;
          if (n > most) { most = n; best = sub[b]; }
        }
        const split = new Uint8Array(0x80);
        for (let b = 0; b < 0x80; b++) if (C[b] && sub[b] !== best) split[b] = 1;
        base = { ...unsettled(), split };
        break;
      }
      if (M === 0) {
        const exc = new Uint8Array(256);
        excOf(sub, exc);
        base = { n: 0, dec: true, max: 0, exc };
        memo[cur] = base;
        break;
      }
      const next = A.step(cur, c0);
      if (next === cur) {
        const exc = new Uint8Array(256);
        excOf(sub, exc);
        base = { n: cap, dec: true, max: A.minComplete(cur), exc };
        memo[cur] = base;
        break;
      }
      if (path.length >= Math.min(cap, CHAIN_LIMIT)) {
        // As many levels as the longest token has bytes (a cycle: base64's groups of four) settle
        // every token; the states on the path are not memoised (entered there, they have fewer).
        base = path.length >= cap ? { n: 0, dec: true, max: 0, exc: new Uint8Array(256) } : unsettled();
        truncated = true;
        break;
      }
      path.push(cur);
      nexts.push(next);
      cur = next;
    }
    for (let k = path.length - 1; k >= 0; k--) {
      const exc = Uint8Array.from(base.exc);
      excOf(A.plainShape(path[k])!.sub, exc);
      base = { n: Math.min(cap, base.n + 1), dec: base.dec, max: Math.max(A.minComplete(nexts[k]), base.max), exc, ...(base.split ? { split: base.split } : {}) };
      if (!truncated) memo[path[k]] = base;
    }
    return base;
  }

  /** State after token id, or DEAD (EOS and special tokens are not bytes: DEAD). */
  advance(s: number, id: number): number {
    const b = this.vocab.bytes[id];
    if (!b) return DEAD;
    return this.automaton.advanceBytes(s, b);
  }

  allows(s: number, id: number, budget = Infinity): boolean {
    const m = this.mask(s, budget);
    return (m[id >>> 5] & (1 << (id & 31))) !== 0;
  }

  /** Ids set in a mask. */
  static ids(mask: Uint32Array): number[] {
    const out: number[] = [];
    for (let w = 0; w < mask.length; w++) {
      let m = mask[w];
      while (m) { const b = 31 - Math.clz32(m & -m); out.push(w * 32 + b); m &= m - 1; }
    }
    return out;
  }
}

/** Sets logits of tokens outside the mask to −Infinity. */
export function applyMask(logits: Float32Array, mask: Uint32Array): void {
  const V = logits.length;
  for (let w = 0; w * 32 < V; w++) {
    const m = w < mask.length ? mask[w] : 0;
    if (m === 0xffffffff) continue;
    const end = Math.min(V, w * 32 + 32);
    for (let i = w * 32; i < end; i++) if ((m & (1 << (i & 31))) === 0) logits[i] = -Infinity;
  }
}
