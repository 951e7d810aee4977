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
// transition table (a dead prefix skips its subtree), cached per state. Each state also knows its
// shortest completion in bytes, so that a token budget can be honoured by allowing only tokens
// after which the output can still be closed in the tokens left.
import type { Grammar } from './grammar.js';
import { END, symClass } from './grammar.js';
import type { TokenVocab } from './vocab.js';
import { ComplexityError } from './errors.js';

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

class GrowI32 {
  a: Int32Array;
  n = 0;
  constructor(cap: number, readonly fill = 0) { this.a = new Int32Array(cap).fill(fill); }
  ensure(n: number): void {
    if (n <= this.a.length) return;
    let c = this.a.length * 2;
    while (c < n) c *= 2;
    const b = new Int32Array(c).fill(this.fill);
    b.set(this.a);
    this.a = b;
  }
}

export class ByteAutomaton {
  readonly prog: Int32Array;
  private readonly cls: Uint8Array[];
  private readonly nodePos = new GrowI32(1024);
  private readonly nodePar = new GrowI32(1024);
  private readonly nodeIds = new Map<number, number>();
  private readonly nodeMin: number[] = [0];
  readonly stateNodes: Int32Array[] = [];
  private readonly stateIds = new Map<string, number>();
  /** trans[s * K + eq[b]]: UNKNOWN, DEAD or the next state (K byte equivalence classes). */
  private trans: GrowI32;
  /** Byte → equivalence class: bytes no byte class of the grammar tells apart share transitions. */
  readonly eq: Uint8Array;
  readonly K: number;
  private readonly rep: Uint8Array;
  private readonly stateMin: number[] = [];
  readonly initial: number;
  private readonly limits: Required<AutomatonLimits>;

  constructor(readonly grammar: Grammar, limits: AutomatonLimits = {}) {
    this.limits = { maxStates: limits.maxStates ?? 200_000, maxStacks: limits.maxStacks ?? 5_000, maxNodes: limits.maxNodes ?? 4_000_000 };
    this.prog = grammar.prog;
    this.cls = grammar.classes;
    [this.eq, this.K, this.rep] = byteClasses(grammar.classes);
    this.trans = new GrowI32(this.K * 64, UNKNOWN);
    // Node 0 is the empty stack: the output is complete.
    this.nodePos.a[0] = -1; this.nodePar.a[0] = -1; this.nodePos.n = this.nodePar.n = 1;
    const out = new Set<number>();
    this.expand(0, 0, out, new Set());
    this.initial = this.intern(out);
  }

  get states(): number { return this.stateNodes.length; }

  private node(pos: number, par: number): number {
    const key = pos * 4294967296 + par;
    let id = this.nodeIds.get(key);
    if (id === undefined) {
      id = this.nodePos.n;
      if (id >= this.limits.maxNodes) throw new ComplexityError('parser stack nodes', this.limits.maxNodes);
      this.nodePos.ensure(id + 1); this.nodePar.ensure(id + 1);
      this.nodePos.a[id] = pos; this.nodePar.a[id] = par;
      this.nodePos.n++; this.nodePar.n++;
      this.nodeIds.set(key, id);
    }
    return id;
  }

  /** Closure: every stack reachable from (pos, parent) without reading a byte, whose top is a byte class. */
  private expand(pos0: number, par0: number, out: Set<number>, seen: Set<number>): void {
    const prog = this.prog, ruleAlts = this.grammar.ruleAlts;
    const work: number[] = [pos0, par0];
    while (work.length) {
      const par = work.pop()!, pos = work.pop()!;
      const key = pos * 4294967296 + par;
      if (seen.has(key)) continue;
      seen.add(key);
      const s = prog[pos];
      if (s === END) {
        if (par === 0) out.add(0);
        else work.push(this.nodePos.a[par], this.nodePar.a[par]);
      } else if (s >= 0) {
        const ret = prog[pos + 1] === END ? par : this.node(pos + 1, par);
        const alts = ruleAlts[s];
        for (let i = alts.length - 1; i >= 0; i--) work.push(alts[i], ret);
      } else {
        out.add(this.node(pos, par));
      }
    }
  }

  private intern(nodes: Set<number>): number {
    if (nodes.size > this.limits.maxStacks) throw new ComplexityError('parallel parses in one state', this.limits.maxStacks, 'the grammar is too ambiguous');
    const arr = Int32Array.from(nodes).sort();
    const key = arr.join(',');
    let id = this.stateIds.get(key);
    if (id === undefined) {
      id = this.stateNodes.length;
      if (id >= this.limits.maxStates) throw new ComplexityError('parser states', this.limits.maxStates);
      this.stateNodes.push(arr);
      this.stateIds.set(key, id);
      this.trans.ensure((id + 1) * this.K);
      let m = Infinity;
      for (const n of arr) m = Math.min(m, this.nodeMinLen(n));
      this.stateMin.push(m);
    }
    return id;
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
    const out = new Set<number>();
    const seen = new Set<number>();
    for (let i = 0; i < nodes.length; i++) {
      const n = nodes[i];
      if (n === 0) continue;
      const pos = this.nodePos.a[n];
      if (this.cls[symClass(this.prog[pos])][b]) this.expand(pos + 1, this.nodePar.a[n], out, seen);
    }
    const t = out.size === 0 ? DEAD : this.intern(out);
    this.trans.a[s * this.K + e] = t;
    return t;
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

  private nodeMinLen(n: number): number {
    // Sum of the rest of each frame, up the stack; memoised per node.
    const chain: number[] = [];
    let x = n;
    while (this.nodeMin[x] === undefined) { chain.push(x); x = this.nodePar.a[x]; }
    let acc = this.nodeMin[x];
    for (let i = chain.length - 1; i >= 0; i--) {
      acc += this.grammar.minRest[this.nodePos.a[chain[i]]];
      this.nodeMin[chain[i]] = acc;
    }
    return this.nodeMin[n];
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

/** Partition of byte values by membership in every class: [byte → class, count, class → a byte]. */
function byteClasses(classes: Uint8Array[]): [Uint8Array, number, Uint8Array] {
  const eq = new Uint8Array(256), rep: number[] = [];
  const ids = new Map<string, number>();
  for (let b = 0; b < 256; b++) {
    let sig = '';
    for (let c = 0; c < classes.length; c++) sig += classes[c][b];
    let k = ids.get(sig);
    if (k === undefined) { k = rep.length; ids.set(sig, k); rep.push(b); }
    eq[b] = k;
  }
  return [eq, rep.length, Uint8Array.from(rep)];
}

export interface MaskStats { cacheHits: number; walks: number; nodesVisited: number }

/** A grammar over a vocabulary: token masks per parser state. */
export class TokenMatcher {
  readonly automaton: ByteAutomaton;
  private readonly cache = new Map<number, { mask: Uint32Array; maxAfter: number }>();
  readonly stats: MaskStats = { cacheHits: 0, walks: 0, nodesVisited: 0 };
  private readonly stk: Int32Array;
  readonly words: number;

  constructor(grammar: Grammar | ByteAutomaton, readonly vocab: TokenVocab, readonly opts: { maxCachedMasks?: number; limits?: AutomatonLimits } = {}) {
    this.automaton = grammar instanceof ByteAutomaton ? grammar : new ByteAutomaton(grammar, opts.limits);
    this.stk = new Int32Array(vocab.maxDepth + 1);
    this.words = (vocab.size + 31) >>> 5;
  }

  get initial(): number { return this.automaton.initial; }

  /**
   * Allowed token ids in state s as a bit mask (bit i of word i>>5). With a budget of B tokens
   * after this one, only tokens after which the output can be completed in B bytes are allowed
   * (each byte has a token of its own in byte-level and byte-fallback vocabularies). EOS ids
   * are allowed when the output may end here.
   */
  mask(s: number, budget = Infinity): Uint32Array {
    const c = this.cache.get(s);
    if (c && c.maxAfter <= budget) { this.stats.cacheHits++; return c.mask; }
    if (!c) {
      const mask = new Uint32Array(this.words);
      const maxAfter = this.walk(s, Infinity, mask);
      const max = this.opts.maxCachedMasks ?? 4096;
      if (this.cache.size >= max) this.cache.clear();
      if (max > 0) this.cache.set(s, { mask, maxAfter });
      if (maxAfter <= budget) return mask;
    }
    const mask = new Uint32Array(this.words);
    this.walk(s, budget, mask);
    return mask;
  }

  /** Fills mask; returns the largest shortest-completion over the allowed tokens. */
  private walk(s: number, budget: number, mask: Uint32Array): number {
    const A = this.automaton, v = this.vocab;
    const nb = v.nodeByte, nd = v.nodeDepth, ns = v.nodeSkip, ts = v.nodeTokStart, te = v.nodeTokEnd, toks = v.toks;
    const stk = this.stk;
    stk[0] = s;
    let table = A.table;
    const eq = A.eq, K = A.K;
    let maxAfter = 0;
    const n = nb.length;
    let visited = 0;
    let i = 0;
    while (i < n) {
      visited++;
      const from = stk[nd[i] - 1];
      const e = eq[nb[i]];
      let t = table[from * K + e];
      if (t === UNKNOWN) { t = A.computeStep(from, e); table = A.table; }
      if (t < 0) { i = ns[i]; continue; }
      stk[nd[i]] = t;
      const a = ts[i], z = te[i];
      if (a < z) {
        const mc = A.minComplete(t);
        if (mc <= budget) {
          if (mc > maxAfter) maxAfter = mc;
          for (let k = a; k < z; k++) { const id = toks[k]; mask[id >>> 5] |= 1 << (id & 31); }
        }
      }
      i++;
    }
    if (A.accepting(s)) for (const id of v.eosIds) mask[id >>> 5] |= 1 << (id & 31);
    this.stats.walks++;
    this.stats.nodesVisited += visited;
    return maxAfter;
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
