// Deterministic finite automata over Unicode code points, for the string languages of JSON Schema
// (pattern, format, minLength/maxLength, enum of strings, propertyNames, the keys of
// patternProperties) and their boolean combinations. A state's transitions are sorted, disjoint
// code point ranges [lo, hi] → target: the alphabet is partitioned by ranges, never enumerated. A
// code point without a transition rejects (an implicit dead state). State 0 is the start.
//
// Built from regex.ts's syntax tree by subset construction (JavaScript `u` semantics, as ajv
// tests `pattern`: unanchored unless ^ / $, which are assertions at the start / end of the whole
// string), then combined by products (intersection, union, difference), complement, and a product
// with a counter (length bounds in code points). Every construction counts its states against a
// limit and throws ComplexityError naming the construct, so a regex such as `.*a.{30}` (2^30
// subsets) costs bounded time. `dfaSyms` writes a DFA as grammar rules (one per state, right
// recursive), in regex.ts's character modes: 'json' for the contents of a JSON string.
import { ComplexityError, RegexError } from './errors.js';
import type { GrammarBuilder, Grammar, Sym } from './grammar.js';
import { normalizeRanges } from './grammar.js';
import { parseRegex, charsSym, hashOf, SetMap } from './regex.js';
import { refinePartition } from './partition.js';
import { SeqInterner } from './intern.js';
import type { RegexNode, CharMode } from './regex.js';

export type Ranges = Array<[number, number]>;
/** One transition: code points lo..hi go to state `to`. */
export type Edge = [lo: number, hi: number, to: number];

const MAX_CP = 0x10ffff;
/** Default bound on the states of one construction. */
export const DFA_MAX_STATES = 10_000;
/** Bound on the NFA built from one regex (counted repetitions copy their operand). */
const NFA_MAX_STATES = 100_000;

export class Dfa {
  /** Known to be trimmed (trim returns it as it is); a DFA is never changed once made. */
  trimmed = false;
  /** Its minimal DFA, once `minimize` has computed it. */
  minimal: Dfa | undefined;

  constructor(
    /** Per state, sorted disjoint edges. */
    readonly trans: Edge[][],
    readonly accept: boolean[],
  ) {}

  get size(): number { return this.trans.length; }

  /** The state after code point c from q, or -1 (rejected). */
  step(q: number, c: number): number {
    const es = this.trans[q];
    let lo = 0, hi = es.length - 1;
    while (lo <= hi) {
      const m = (lo + hi) >> 1, e = es[m];
      if (c < e[0]) hi = m - 1;
      else if (c > e[1]) lo = m + 1;
      else return e[2];
    }
    return -1;
  }

  /** Whether the whole string is in the language (code points of the string). */
  matches(s: string): boolean {
    let q = 0;
    for (const ch of s) { q = this.step(q, ch.codePointAt(0)!); if (q < 0) return false; }
    return this.accept[q];
  }
}

/** Options of the constructions: the state bound and the name of the construct for the error. */
export interface DfaLimits {
  maxStates?: number;
  what?: string;
  /**
   * Minimal whole-string automata of regex tails, by their syntax tree (nodeDfa): patterns that
   * differ only in a literal before a shared tail (a schema's patternProperties keys
   * `^(title_TAG)$`, `^(description_TAG)$`, … with one BCP47-tag TAG) build the tail once. One
   * map per compiler.
   */
  tails?: Map<string, Dfa>;
}

class StateTable {
  readonly ids = new Map<string | number, number>();
  readonly trans: Edge[][] = [];
  readonly accept: boolean[] = [];
  private readonly queue: number[] = [];
  private head = 0;
  constructor(private readonly limit: number, private readonly what: string) {}
  /** The state of a key, new states queued with their payload. */
  intern<T>(key: string | number, payload: T, store: T[], acc: boolean): number {
    let id = this.ids.get(key);
    if (id !== undefined) return id;
    id = this.add(payload, store, acc);
    this.ids.set(key, id);
    return id;
  }
  /** A new state, queued with its payload, for a caller that keeps its own keys (product). */
  add<T>(payload: T, store: T[], acc: boolean): number {
    const id = this.trans.length;
    if (id >= this.limit) throw new ComplexityError(`DFA states of ${this.what}`, this.limit);
    this.trans.push([]);
    this.accept.push(acc);
    store.push(payload);
    this.queue.push(id);
    return id;
  }
  /** The next state to expand, or -1. */
  next(): number { return this.head < this.queue.length ? this.queue[this.head++] : -1; }
  dfa(): Dfa { return new Dfa(this.trans, this.accept); }
}

/**
 * Adjacent edges to the same target merged, in place: every caller passes edges it has just made
 * (no copies: a DFA construction's garbage is mostly its edges).
 */
function mergeEdges(es: Edge[]): Edge[] {
  let n = 0;
  for (let i = 0; i < es.length; i++) {
    const e = es[i], last = n > 0 ? es[n - 1] : undefined;
    if (last !== undefined && last[2] === e[2] && last[1] + 1 === e[0]) last[1] = e[1];
    else es[n++] = e;
  }
  es.length = n;
  return es;
}

// ---- regex → DFA ------------------------------------------------------------------------------

const EPS = 0, BOL = 1, EOL = 2;

class Nfa {
  /** Per state: character edges (ranges, target) and ε edges (kind, target). */
  readonly chars: Array<Array<[Ranges, number]>> = [];
  readonly eps: Array<Array<[number, number]>> = [];
  constructor(private readonly src: string) {}
  state(): number {
    if (this.chars.length >= NFA_MAX_STATES) throw new ComplexityError('regex automaton states', NFA_MAX_STATES, `/${this.src}/`);
    this.chars.push([]); this.eps.push([]);
    return this.chars.length - 1;
  }
  /** Adds the fragment of `n` from state s; returns its end state. */
  build(n: RegexNode, s: number): number {
    switch (n.t) {
      case 'chars': { const e = this.state(); if (n.ranges.length) this.chars[s].push([n.ranges, e]); return e; }
      case 'bol': case 'eol': { const e = this.state(); this.eps[s].push([n.t === 'bol' ? BOL : EOL, e]); return e; }
      case 'seq': { let cur = s; for (const x of n.items) cur = this.build(x, cur); return cur; }
      case 'alt': {
        const e = this.state();
        for (const x of n.items) { const a = this.state(); this.eps[s].push([EPS, a]); this.eps[this.build(x, a)].push([EPS, e]); }
        return e;
      }
      case 'rep': {
        let cur = s;
        for (let i = 0; i < n.min; i++) cur = this.build(n.item, cur);
        if (n.max === Infinity) {
          // cur → loop; loop → item → loop; loop → end.
          const loop = this.state(), e = this.state();
          this.eps[cur].push([EPS, loop]);
          const a = this.state();
          this.eps[loop].push([EPS, a], [EPS, e]);
          this.eps[this.build(n.item, a)].push([EPS, loop]);
          return e;
        }
        const e = this.state();
        for (let i = n.min; i < n.max; i++) { this.eps[cur].push([EPS, e]); cur = this.build(n.item, cur); }
        this.eps[cur].push([EPS, e]);
        return e;
      }
    }
  }
}

/**
 * The DFA of a regex (JavaScript syntax, `u` semantics). `search`: JSON Schema's `pattern` (the
 * string contains a match; ^ and $ anchor it); otherwise the whole string must match. RegexError
 * for what regex.ts cannot parse (backreferences, lookaround …).
 */
export function regexDfa(src: string, search: boolean, limits: DfaLimits = {}): Dfa {
  return nodeDfa(parseRegex(src), search, { what: `/${src}/`, ...limits }, src);
}

export function nodeDfa(tree: RegexNode, search: boolean, limits: DfaLimits = {}, src = '?'): Dfa {
  // A search for ^X$ (the usual pattern) is a whole-string match of it: ^ holds only at the start
  // and $ only at the end, so a match spans the string. Built without the search's loops at both
  // ends, which every subset would otherwise carry (the same language, fewer and smaller sets).
  if (search && tree.t === 'seq' && tree.items.length >= 2 && tree.items[0].t === 'bol' && tree.items[tree.items.length - 1].t === 'eol') search = false;
  if (!search && limits.tails) { const d = literalThenTail(tree, limits, src); if (d) return d; }
  const nfa = new Nfa(src);
  const start = nfa.state();
  let s0 = start;
  if (search) { nfa.chars[start].push([[[0, MAX_CP]], start]); s0 = nfa.state(); nfa.eps[start].push([EPS, s0]); }
  let fin = nfa.build(tree, s0);
  if (search) { const f = nfa.state(); nfa.eps[fin].push([EPS, f]); nfa.chars[f].push([[[0, MAX_CP]], f]); fin = f; }
  // Closure over ε edges; ^ only at the start; $ only for acceptance (nothing may follow it).
  const mark = new Int32Array(nfa.chars.length).fill(-1);
  let stamp = 0;
  // (Sets in typed arrays, sorted natively: a counted repetition's subsets hold hundreds of states.)
  const st = new Int32Array(nfa.chars.length), buf = new Int32Array(nfa.chars.length);
  const closure = (seed: ArrayLike<number>, atStart: boolean, withEol: boolean): Int32Array => {
    stamp++;
    let top = 0, n = 0;
    for (let i = 0; i < seed.length; i++) { const x = seed[i]; if (mark[x] !== stamp) { mark[x] = stamp; st[top++] = x; } }
    while (top > 0) {
      const x = st[--top];
      buf[n++] = x;
      for (const [k, y] of nfa.eps[x]) {
        if (mark[y] === stamp || (k === BOL && !atStart) || (k === EOL && !withEol)) continue;
        mark[y] = stamp; st[top++] = y;
      }
    }
    return buf.slice(0, n).sort();
  };
  const accepting = (set: ArrayLike<number>, atStart: boolean) => closure(set, atStart, true).includes(fin);
  const limit = limits.maxStates ?? DFA_MAX_STATES;
  const table = new StateTable(limit, limits.what ?? 'regex');
  const sets: Int32Array[] = [];
  const startSet = closure([start], true, false);
  table.intern('S' + startSet.join(','), startSet, sets, accepting([start], true));
  // The state of a set of moves (NFA states entered on a character), across all states: a
  // search's states share most of their moves (the `.*` and every branch's start).
  const byMoves = new Map<string, number>();
  for (let q = table.next(); q >= 0; q = table.next()) {
    const set = sets[q];
    // The set's character edges grouped by their class (the copies of a counted repetition share
    // their operand's ranges: `[A-Za-z0-9-_.:]{1,255}` is one class of 255 targets, swept once,
    // not 255 times); a target has one incoming edge, so the groups' targets are disjoint.
    const groups = new Map<Ranges, number[]>();
    for (const x of set) for (const [rs, y] of nfa.chars[x]) { const g = groups.get(rs); if (g === undefined) groups.set(rs, [y]); else g.push(y); }
    const targets = [...groups.values()];
    // Sweep over the classes' boundaries; the classes active on each interval.
    const events: Array<[number, number, number]> = [];
    let g = 0;
    for (const rs of groups.keys()) { for (const [lo, hi] of rs) { events.push([lo, 1, g]); events.push([hi + 1, -1, g]); } g++; }
    events.sort((a, b) => a[0] - b[0]);
    const active = new Int32Array(targets.length);
    let nActive = 0;
    // The state reached by a selection of classes (the state's intervals repeat a few selections).
    const bySel = new Map<string, number>();
    const edges: Edge[] = [];
    for (let i = 0; i < events.length;) {
      const at = events[i][0];
      while (i < events.length && events[i][0] === at) {
        const [, d, k] = events[i++];
        const was = active[k];
        active[k] += d;
        if (was === 0) nActive++; else if (active[k] === 0) nActive--;
      }
      if (nActive === 0 || at > MAX_CP) continue;
      const next = i < events.length ? events[i][0] - 1 : MAX_CP;
      let sel = '';
      for (let k = 0; k < active.length; k++) if (active[k] !== 0) sel += k + ',';
      let t = bySel.get(sel);
      if (t === undefined) {
        let m = 0;
        for (let k = 0; k < active.length; k++) if (active[k] !== 0) for (const y of targets[k]) buf[m++] = y;
        const moves = buf.slice(0, m).sort();
        const mk = moves.join(',');
        t = byMoves.get(mk);
        if (t === undefined) {
          const tset = closure(moves, false, false);
          const key = tset.join(',');
          t = table.ids.get(key) ?? table.intern(key, tset, sets, accepting(tset, false));
          byMoves.set(mk, t);
        }
        bySel.set(sel, t);
      }
      edges.push([at, Math.min(next, MAX_CP), t]);
    }
    table.trans[q] = mergeEdges(edges);
  }
  return trim(table.dfa());
}

/** Whether a regex tree holds ^ or $ anywhere. */
const hasAnchor = (n: RegexNode): boolean => n.t === 'bol' || n.t === 'eol' || ((n.t === 'seq' || n.t === 'alt') && n.items.some(hasAnchor)) || (n.t === 'rep' && hasAnchor(n.item));

/**
 * The whole-string automaton of a regex that is a literal followed by a tail without anchors
 * (^ and $ only at the ends): a chain of states for the literal, then the tail's minimal
 * automaton, built once per tree in limits.tails. Null where the regex has no such shape.
 */
function literalThenTail(tree: RegexNode, limits: DfaLimits, src: string): Dfa | null {
  const items: RegexNode[] = [];
  const flat = (n: RegexNode): void => { if (n.t === 'seq') n.items.forEach(flat); else items.push(n); };
  flat(tree);
  let i = 0, j = items.length;
  while (i < j && items[i].t === 'bol') i++;
  while (j > i && items[j - 1].t === 'eol') j--;
  const lit: number[] = [];
  for (let k = i; k < j; k++) {
    const n = items[k];
    if (n.t !== 'chars' || n.ranges.length !== 1 || n.ranges[0][0] !== n.ranges[0][1]) break;
    lit.push(n.ranges[0][0]);
  }
  const rest = items.slice(i + lit.length, j);
  if (lit.length === 0 || rest.length === 0 || rest.some(hasAnchor)) return null;
  const key = JSON.stringify(rest);
  let tail = limits.tails!.get(key);
  if (tail === undefined) {
    tail = minimize(nodeDfa(rest.length === 1 ? rest[0] : { t: 'seq', items: rest }, false, { ...limits, tails: undefined }, src));
    limits.tails!.set(key, tail);
  }
  if (isEmpty(tail)) return emptyDfa();
  const L = lit.length, limit = limits.maxStates ?? DFA_MAX_STATES;
  if (L + tail.size > limit) throw new ComplexityError(`DFA states of ${limits.what ?? 'regex'}`, limit);
  const trans: Edge[][] = lit.map((c, k) => [[c, c, k + 1]]);
  for (const es of tail.trans) trans.push(es.map(([lo, hi, t]) => [lo, hi, t + L] as Edge));
  const d = new Dfa(trans, [...lit.map(() => false), ...tail.accept]);
  // (Every state reaches the tail's start, which is live; the tail is trimmed.)
  d.trimmed = true;
  return d;
}

// ---- constructions ----------------------------------------------------------------------------

/** Strings of code points in `ranges` (default: all), of min..max code points. */
export function charsDfa(ranges: Ranges = [[0, MAX_CP]], min = 0, max = Infinity): Dfa {
  const r = normalizeRanges(ranges);
  if (max === Infinity) {
    const trans: Edge[][] = [], accept: boolean[] = [];
    for (let i = 0; i <= min; i++) { trans.push(r.map(([a, b]) => [a, b, Math.min(i + 1, min)])); accept.push(i >= min); }
    return new Dfa(trans, accept);
  }
  if (max + 1 > DFA_MAX_STATES) throw new ComplexityError('DFA states of a length bound', DFA_MAX_STATES, `maxLength ${max}`);
  const trans: Edge[][] = [], accept: boolean[] = [];
  for (let i = 0; i <= max; i++) { trans.push(i < max ? r.map(([a, b]) => [a, b, i + 1]) : []); accept.push(i >= min); }
  return trim(new Dfa(trans, accept));
}

/** Exactly the given strings (a trie). */
export function stringsDfa(strings: Iterable<string>): Dfa {
  const kids: Array<Map<number, number>> = [new Map()];
  const accept = [false];
  for (const s of strings) {
    let q = 0;
    for (const ch of s) {
      const c = ch.codePointAt(0)!;
      let n = kids[q].get(c);
      if (n === undefined) { n = kids.length; kids.push(new Map()); accept.push(false); kids[q].set(c, n); }
      q = n;
    }
    accept[q] = true;
  }
  return new Dfa(kids.map((m) => [...m].sort((a, b) => a[0] - b[0]).map(([c, t]) => [c, c, t] as Edge)), accept);
}

/** The empty language. */
export const emptyDfa = (): Dfa => new Dfa([[]], [false]);

type Op = 'and' | 'or' | 'diff';

/**
 * The product of two DFAs, reachable pairs only: 'and' (intersection), 'or' (union), 'diff'
 * (a without b). A missing transition is the dead state (-1).
 */
export function product(a: Dfa, b: Dfa, op: Op, limits: DfaLimits = {}): Dfa {
  return trim(productStates(a, b, op, limits).d);
}

/** product before trimming, with each state's pair: state s is (px[s], py[s]) (-1: that side's dead state). */
function productStates(a: Dfa, b: Dfa, op: Op, limits: DfaLimits): { d: Dfa; px: number[]; py: number[] } {
  const table = new StateTable(limits.maxStates ?? DFA_MAX_STATES, limits.what ?? `${op === 'and' ? 'an intersection' : op === 'or' ? 'a union' : 'a difference'} of string languages`);
  // The state of pair (x, y) under key (x + 1) * B + y + 1 (-1: the dead state): in a table where
  // the pairs are few (a map's lookups were most of a product's time), else in a map; the
  // StateTable only numbers the states (as met) and queues them.
  const B = b.size + 1, pairsN = (a.size + 1) * B;
  // The table is shared by all products, entries of this one told by their stamp (a table of the
  // pairs allocated and filled per product was 512 KB for two automata of 360 states, most of the
  // memory a compile of patternProperties allocated).
  const useTab = pairsN <= PAIR_TABLE_MAX;
  const map = useTab ? null : new Map<number, number>();
  if (useTab && pairStamps === null) { pairStamps = new Int32Array(PAIR_TABLE_MAX); pairIds = new Int32Array(PAIR_TABLE_MAX); }
  if (useTab && ++pairStamp === 0x7fffffff) { pairStamps!.fill(0); pairStamp = 1; }
  const stamp = pairStamp, stamps = pairStamps!, pairId = pairIds!;
  const px: number[] = [], py: number[] = [];
  const intern = (x: number, y: number): number => {
    const k = (x + 1) * B + y + 1;
    let id = useTab ? (stamps[k] === stamp ? pairId[k] : -1) : map!.get(k) ?? -1;
    if (id >= 0) return id;
    const u = x >= 0 && a.accept[x], v = y >= 0 && b.accept[y];
    id = table.add(x, px, op === 'and' ? u && v : op === 'or' ? u || v : u && !v);
    py.push(y);
    if (useTab) { stamps[k] = stamp; pairId[k] = id; } else map!.set(k, id);
    return id;
  };
  let edges: Edge[] = [];
  const emit = (lo: number, hi: number, x: number, y: number) => {
    if (lo > hi) return;
    if (op === 'and' ? x < 0 || y < 0 : op === 'diff' ? x < 0 : x < 0 && y < 0) return;
    edges.push([lo, hi, intern(x, y)]);
  };
  intern(0, 0);
  for (let s = table.next(); s >= 0; s = table.next()) {
    const p = px[s], q = py[s];
    const ea = p >= 0 ? a.trans[p] : [], eb = q >= 0 ? b.trans[q] : [];
    edges = [];
    // Merge the two sorted range lists, gaps being the dead state.
    let i = 0, j = 0, at = 0;
    while (at <= MAX_CP) {
      while (i < ea.length && ea[i][1] < at) i++;
      while (j < eb.length && eb[j][1] < at) j++;
      const ina = i < ea.length && ea[i][0] <= at, inb = j < eb.length && eb[j][0] <= at;
      let end = MAX_CP;
      end = Math.min(end, ina ? ea[i][1] : i < ea.length ? ea[i][0] - 1 : MAX_CP);
      end = Math.min(end, inb ? eb[j][1] : j < eb.length ? eb[j][0] - 1 : MAX_CP);
      if (!ina && !inb && i >= ea.length && j >= eb.length) { emit(at, MAX_CP, -1, -1); break; }
      emit(at, end, ina ? ea[i][2] : -1, inb ? eb[j][2] : -1);
      at = end + 1;
    }
    table.trans[s] = mergeEdges(edges);
  }
  return { d: table.dfa(), px, py };
}

/** Most pairs of states whose product keeps its states in a table (beyond: a map). */
const PAIR_TABLE_MAX = 1 << 17;
/**
 * product's table (1 MB, made by the first product that uses it): pair k's state is pairIds[k]
 * where pairStamps[k] is the running product's stamp (products do not nest).
 */
let pairStamps: Int32Array | null = null, pairIds: Int32Array | null = null;
let pairStamp = 0;

export const intersect = (a: Dfa, b: Dfa, limits?: DfaLimits) => product(a, b, 'and', limits);
export const union = (a: Dfa, b: Dfa, limits?: DfaLimits) => product(a, b, 'or', limits);
export const minus = (a: Dfa, b: Dfa, limits?: DfaLimits) => product(a, b, 'diff', limits);

/**
 * The product of several DFAs at once, reachable tuples only, for languages that partition the
 * strings of the first (a schema's keys by the patterns of patternProperties they match): state s
 * is the tuple of the components' states (-1: that component's dead state); a code point leads
 * nowhere where the first component rejects it. `acc[s]`: which components accept, a bit per
 * component (at most 31 components). The states are numbered as met, breadth first with each
 * state's edges in code point order, as `product` numbers them, so `productClass` reads from it
 * the automaton a chain of products would build.
 */
export interface ProductGraph {
  readonly trans: Edge[][];
  readonly acc: number[];
  /** Predecessors over all edges (those of q: rev[rs[q] .. rs[q + 1])), made by the first productClass that needs them. */
  pred?: { rs: Int32Array; rev: Int32Array };
}

export function productGraph(ds: Dfa[], limits: DfaLimits = {}): ProductGraph {
  const k = ds.length;
  if (k > 31) throw new RangeError(`productGraph: ${k} components (at most 31)`);
  const table = new StateTable(limits.maxStates ?? DFA_MAX_STATES, limits.what ?? 'a product of string languages');
  const tuples: Int32Array[] = [], acc: number[] = [];
  const tuple = new Int32Array(k);
  // A tuple's key: a number (mixed radix, a state + 1 per digit) where the sizes allow, else its text.
  let radix = 1;
  for (const d of ds) radix *= d.size + 1;
  const numeric = radix <= Number.MAX_SAFE_INTEGER;
  const keyOf = (): number | string => {
    if (!numeric) return tuple.join(',');
    let key = 0;
    for (let i = 0; i < k; i++) key = key * (ds[i].size + 1) + tuple[i] + 1;
    return key;
  };
  const intern = (): number => {
    const key = keyOf();
    let id = table.ids.get(key);
    if (id !== undefined) return id;
    let bits = 0;
    for (let i = 0; i < k; i++) if (tuple[i] >= 0 && ds[i].accept[tuple[i]]) bits |= 1 << i;
    id = table.add(tuple.slice(), tuples, false);
    table.ids.set(key, id);
    acc.push(bits);
    return id;
  };
  intern();
  const at = new Int32Array(k);
  for (let s = table.next(); s >= 0; s = table.next()) {
    const cur = tuples[s];
    at.fill(0);
    const edges: Edge[] = [];
    const e0 = ds[0].trans[cur[0]];
    let c = 0;
    while (c <= MAX_CP) {
      // The first component decides whether there is an edge at all.
      while (at[0] < e0.length && e0[at[0]][1] < c) at[0]++;
      if (at[0] >= e0.length) break;
      const f = e0[at[0]];
      if (f[0] > c) c = f[0];
      let end = f[1];
      tuple[0] = f[2];
      for (let i = 1; i < k; i++) {
        const q = cur[i];
        if (q < 0) { tuple[i] = -1; continue; }
        const es = ds[i].trans[q];
        let j = at[i];
        while (j < es.length && es[j][1] < c) j++;
        at[i] = j;
        if (j < es.length && es[j][0] <= c) { tuple[i] = es[j][2]; if (es[j][1] < end) end = es[j][1]; }
        else { tuple[i] = -1; if (j < es.length && es[j][0] - 1 < end) end = es[j][0] - 1; }
      }
      edges.push([c, end, intern()]);
      c = end + 1;
    }
    table.trans[s] = mergeEdges(edges);
  }
  return { trans: table.trans, acc };
}

/** Whether [lo, hi] meets one of the sorted, disjoint ranges. */
function meets(over: Ranges, lo: number, hi: number): boolean {
  for (const r of over) { if (r[0] > hi) return false; if (r[1] >= lo) return true; }
  return false;
}

/**
 * The trimmed automaton of the strings whose state in g has exactly the accepting components
 * `want` (acc[q] === want), over the code points of the sorted, disjoint ranges `over` only
 * (default: all): breadth first over the states that reach an accepting one, so the same
 * automaton, state for state, as the chain of `product`s (and the intersection with
 * `charsDfa(over)`) it stands for.
 */
export function productClass(g: ProductGraph, want: number, over?: Ranges): Dfa {
  const n = g.trans.length;
  let rs: Int32Array, rev: Int32Array;
  if (over === undefined && g.pred !== undefined) ({ rs, rev } = g.pred);
  else {
    // Predecessors over the edges that meet `over`.
    rs = new Int32Array(n + 1);
    for (let q = 0; q < n; q++) for (const e of g.trans[q]) if (over === undefined || meets(over, e[0], e[1])) rs[e[2] + 1]++;
    for (let q = 0; q < n; q++) rs[q + 1] += rs[q];
    const fill = rs.slice(0, n);
    rev = new Int32Array(rs[n]);
    for (let q = 0; q < n; q++) for (const e of g.trans[q]) if (over === undefined || meets(over, e[0], e[1])) rev[fill[e[2]]++] = q;
    if (over === undefined) g.pred = { rs, rev };
  }
  // The states that reach an accepting one.
  const live = new Uint8Array(n), st = new Int32Array(n);
  let top = 0;
  for (let q = 0; q < n; q++) if (g.acc[q] === want) { live[q] = 1; st[top++] = q; }
  while (top > 0) {
    const t = st[--top];
    for (let j = rs[t]; j < rs[t + 1]; j++) { const p = rev[j]; if (!live[p]) { live[p] = 1; st[top++] = p; } }
  }
  if (!live[0]) { const e = emptyDfa(); e.trimmed = true; return e; }
  const id = new Int32Array(n).fill(-1);
  id[0] = 0;
  const order: number[] = [0];
  const trans: Edge[][] = [];
  for (let i = 0; i < order.length; i++) {
    const out: Edge[] = [];
    const es = g.trans[order[i]];
    for (let k = 0; k < es.length; k++) {
      const e = es[k], t = e[2];
      if (!live[t] || (over !== undefined && !meets(over, e[0], e[1]))) continue;
      let j = id[t];
      if (j < 0) { j = order.length; id[t] = j; order.push(t); }
      if (over === undefined) out.push([e[0], e[1], j]);
      else for (const r of over) if (r[0] <= e[1] && r[1] >= e[0]) out.push([Math.max(r[0], e[0]), Math.min(r[1], e[1]), j]);
    }
    // (g's edges are merged; leaving some out, or cutting them to `over`, joins none.)
    trans.push(out);
  }
  const d = new Dfa(trans, order.map((q) => g.acc[q] === want));
  d.trimmed = true;
  return d;
}

/**
 * minus(a, stringsDfa(names)), its minimal automaton found with it (minimize returns it; the same
 * automaton minimize would build): the product's states whose pair left the names' trie are a's
 * states, told apart by a's blocks of equivalent states (refined once per a); those in the trie
 * are one per trie node and lead only deeper or out of it, so each is equivalent to another state
 * exactly where their acceptance and edges (targets by block) are the same, taken bottom up. No
 * refinement over the whole product: the key automata of objects with patternProperties (the
 * patterns' classes without each object's names, OCDS schemas: dozens per compile) were most of
 * their compile's minimisations. Where the product loses states to trimming, or is larger than
 * minimize refines, minimize does as before.
 */
export function minusNames(a: Dfa, names: Iterable<string>, limits: DfaLimits = {}): Dfa {
  const t = stringsDfa(names);
  const { d: raw, px, py } = productStates(a, t, 'diff', limits);
  const d = trim(raw);
  if (d !== raw || d.size > MINIMIZE_MAX || d.minimal !== undefined || trim(a) !== a) return d;
  const { blocks, sigs, ids } = blocksOf(a);
  // Block ids: a's (0 .. a.size), then one per new class of trie states.
  const n = d.size, block = new Int32Array(n), atNode = new Int32Array(t.size).fill(-1);
  for (let s = 0; s < n; s++) { if (py[s] < 0) block[s] = blocks[px[s]]; else atNode[py[s]] = s; }
  const own = new Map<number, number>();
  let next = a.size + 1;
  // (A trie node's children are numbered after it: from the last node up, every target's block is known.)
  for (let y = t.size - 1; y >= 0; y--) {
    const s = atNode[y];
    if (s < 0) continue;
    const k = signature(ids, d.accept[s], d.trans[s], block);
    let id = sigs.get(k) ?? own.get(k);
    if (id === undefined) { id = next++; own.set(k, id); }
    block[s] = id;
  }
  const m = quotient(d, block);
  d.minimal = m; m.minimal = m;
  return d;
}

/**
 * A state's acceptance and edges, the targets by block (adjacent edges to one block merged), as
 * the id of that sequence in ids: equal ids, equal signatures.
 */
function signature(ids: SeqInterner, acc: boolean, es: Edge[], block: Int32Array): number {
  const at = ids.mark();
  ids.push(acc ? 1 : 0);
  let lo = 0, hi = -2, cur = -1;
  for (let i = 0; i < es.length; i++) {
    const e = es[i], k = block[e[2]];
    if (k === cur && e[0] === hi + 1) { hi = e[1]; continue; }
    if (cur >= 0) { ids.push(lo); ids.push(hi); ids.push(cur); }
    lo = e[0]; hi = e[1]; cur = k;
  }
  if (cur >= 0) { ids.push(lo); ids.push(hi); ids.push(cur); }
  return ids.intern(at);
}

/**
 * minusNames' blocks of a trimmed a's states, each block's signature (by its id in `ids`, which
 * also holds the signatures of the trie states of every product with a: theirs are told apart per
 * product). One refinement per a, shared with minimize: a minimal a's states are its blocks, and
 * a's minimal automaton is kept from the blocks found here (an object's key class without names
 * of its own is a as it is).
 */
const blocksCache = new WeakMap<Dfa, { blocks: Int32Array; sigs: Map<number, number>; ids: SeqInterner }>();
function blocksOf(a: Dfa): { blocks: Int32Array; sigs: Map<number, number>; ids: SeqInterner } {
  let c = blocksCache.get(a);
  if (c === undefined) {
    // (Past MINIMIZE_MAX, minimize returns a as it is: not known to be minimal.)
    const small = a.size <= MINIMIZE_MAX;
    let blocks: Int32Array;
    if (small && a.minimal === a) blocks = Int32Array.from({ length: a.size }, (_, q) => q);
    else {
      blocks = nerodeBlocks(a);
      if (small && a.minimal === undefined) { const m = quotient(a, blocks); a.minimal = m; m.minimal = m; }
    }
    const sigs = new Map<number, number>(), ids = new SeqInterner();
    for (let x = 0; x < a.size; x++) {
      const k = signature(ids, a.accept[x], a.trans[x], blocks);
      if (!sigs.has(k)) sigs.set(k, blocks[x]);
    }
    c = { blocks, sigs, ids };
    blocksCache.set(a, c);
  }
  return c;
}

/** The language without the given strings. */
export function minusStrings(a: Dfa, strings: Iterable<string>, limits?: DfaLimits): Dfa {
  return minus(a, stringsDfa(strings), limits);
}

/** All strings of code points in `over` (default: every code point) that a does not accept. */
export function complement(a: Dfa, over: Ranges = [[0, MAX_CP]], limits?: DfaLimits): Dfa {
  return minus(charsDfa(over), a, limits);
}

/** a's strings of min..max code points (the product with a counter that saturates at min when max is unbounded). */
export function lengthBounded(a0: Dfa, min: number, max: number, limits: DfaLimits = {}): Dfa {
  // Bounds the language already keeps need no counter (a format of at most 45 characters under maxLength 255).
  const [short, long] = lengthRange(a0);
  if (min <= short) min = 0;
  if (max >= long) max = Infinity;
  if (min === 0 && max === Infinity) return a0;
  if (min > long || max < short) return emptyDfa();
  const a = minimize(a0);
  const cap = max === Infinity ? min : max;
  const table = new StateTable(limits.maxStates ?? DFA_MAX_STATES, limits.what ?? `a length bound {${min},${max}}`);
  const pairs: Array<[number, number]> = [];
  const K = cap + 1;
  table.intern(0, [0, 0], pairs, a.accept[0] && min === 0);
  for (let s = table.next(); s >= 0; s = table.next()) {
    const [p, k] = pairs[s];
    if (max !== Infinity && k >= max) continue;
    const k2 = Math.min(k + 1, cap);
    table.trans[s] = a.trans[p].map(([lo, hi, t]) => [lo, hi, table.intern(t * K + k2, [t, k2], pairs, a.accept[t] && k2 >= min)] as Edge);
  }
  return trim(table.dfa());
}

/** Largest automaton `minimize` refines. */
const MINIMIZE_MAX = 400;

/** The shortest and longest accepted lengths in code points ([Infinity, -Infinity] for the empty language; longest Infinity with a cycle). */
export function lengthRange(a0: Dfa): [number, number] {
  const a = trim(a0);
  if (isEmpty(a)) return [Infinity, -Infinity];
  const n = a.size;
  // Shortest: breadth first.
  const dist = new Int32Array(n).fill(-1);
  dist[0] = 0;
  const queue = [0];
  let short = Infinity;
  for (let i = 0; i < queue.length; i++) {
    const q = queue[i];
    if (a.accept[q] && dist[q] < short) short = dist[q];
    for (const e of a.trans[q]) if (dist[e[2]] < 0) { dist[e[2]] = dist[q] + 1; queue.push(e[2]); }
  }
  // Longest: on the trimmed automaton every state is live, so a cycle means unbounded; else a
  // longest path in the DAG (depth-first post order).
  const color = new Uint8Array(n), best = new Float64Array(n);
  const st: Array<[number, number]> = [[0, 0]];
  color[0] = 1;
  while (st.length) {
    const top = st[st.length - 1];
    const [q, i] = top;
    const es = a.trans[q];
    if (i < es.length) {
      top[1]++;
      const t = es[i][2];
      if (color[t] === 1) return [short, Infinity];
      if (color[t] === 0) { color[t] = 1; st.push([t, 0]); }
      continue;
    }
    st.pop();
    color[q] = 2;
    let b = a.accept[q] ? 0 : -Infinity;
    for (const e of es) b = Math.max(b, best[e[2]] + 1);
    best[q] = b;
  }
  return [short, best[0]];
}

/** States that reach an accepting state, reachable from the start; the rest removed (an empty language is one rejecting state). */
export function trim(a: Dfa): Dfa {
  if (a.trimmed) return a;
  const t = trimmed(a);
  t.trimmed = true;
  return t;
}

function trimmed(a: Dfa): Dfa {
  const n = a.size;
  // Predecessors in typed arrays (those of q: rev[rs[q] .. rs[q + 1])): a length-bound product has
  // thousands of states, an array each was most of its garbage.
  const rs = new Int32Array(n + 1);
  for (let q = 0; q < n; q++) for (const e of a.trans[q]) rs[e[2] + 1]++;
  for (let q = 0; q < n; q++) rs[q + 1] += rs[q];
  const at = rs.slice(0, n), rev = new Int32Array(rs[n]);
  for (let q = 0; q < n; q++) for (const e of a.trans[q]) rev[at[e[2]]++] = q;
  const live = new Uint8Array(n);
  const st = new Int32Array(n);
  let top = 0;
  for (let q = 0; q < n; q++) if (a.accept[q]) { live[q] = 1; st[top++] = q; }
  while (top > 0) {
    const t = st[--top];
    for (let j = rs[t]; j < rs[t + 1]; j++) { const p = rev[j]; if (!live[p]) { live[p] = 1; st[top++] = p; } }
  }
  if (!live[0]) return emptyDfa();
  const id = new Int32Array(n).fill(-1);
  const order: number[] = [0];
  id[0] = 0;
  for (let i = 0; i < order.length; i++) {
    for (const e of a.trans[order[i]]) if (live[e[2]] && id[e[2]] < 0) { id[e[2]] = order.length; order.push(e[2]); }
  }
  if (order.length === n && live.every((x) => x === 1)) return a;
  return new Dfa(order.map((q) => {
    const out: Edge[] = [];
    for (const e of a.trans[q]) if (live[e[2]]) out.push([e[0], e[1], id[e[2]]]);
    return mergeEdges(out);
  }), order.map((q) => a.accept[q]));
}

export function isEmpty(a: Dfa): boolean {
  const t = trim(a);
  return t.size === 1 && !t.accept[0] && t.trans[0].length === 0;
}

/**
 * The minimal DFA (Hopcroft's partition refinement on the trimmed automaton, over the atoms of
 * its alphabet: the code point intervals that no edge boundary splits).
 */
export function minimize(a0: Dfa): Dfa {
  if (a0.minimal === undefined) { a0.minimal = minimal(a0); a0.minimal.minimal = a0.minimal; }
  return a0.minimal;
}

function minimal(a0: Dfa): Dfa {
  const a = trim(a0);
  // Large automata, products with counters, are returned trimmed, as they are.
  if (a.size > MINIMIZE_MAX) return a;
  return quotient(a, nerodeBlocks(a));
}

/**
 * The trimmed DFA a with the states of each block (of equivalent states) made one, numbered as
 * their first state in a (the start's block first); a itself where no two states share a block.
 */
function quotient(a: Dfa, block: Int32Array): Dfa {
  const n = a.size;
  let count = 0;
  for (let q = 0; q < n; q++) count = Math.max(count, block[q] + 1);
  const used = new Uint8Array(count);
  count = 0;
  for (let q = 0; q < n; q++) if (!used[block[q]]) { used[block[q]] = 1; count++; }
  if (count === n) return a;
  // Renumber with the start's block first.
  const map = new Int32Array(used.length).fill(-1);
  const rep: number[] = [];
  map[block[0]] = 0; rep.push(0);
  for (let q = 0; q < n; q++) if (map[block[q]] < 0) { map[block[q]] = rep.length; rep.push(q); }
  return new Dfa(rep.map((q) => mergeEdges(a.trans[q].map(([lo, hi, t]) => [lo, hi, map[block[t]]] as Edge))), rep.map((q) => a.accept[q]));
}

/**
 * Per state of a trimmed DFA, its block in the coarsest partition by future (Hopcroft: O(A·n·log n)
 * for A atoms — Moore's rounds, one per state of a counter, took seconds at 400 states). Block
 * ids are arbitrary; states in one block are equivalent.
 */
function nerodeBlocks(a: Dfa): Int32Array {
  const n = a.size, N = n + 1, dead = n, trans = a.trans;
  // (Indexed loops: for-of iterators over the edges and the cuts were most of what a
  // minimisation allocated.)
  // Atoms: [bounds[i], bounds[i + 1]).
  let E = 0;
  for (let q = 0; q < n; q++) E += trans[q].length;
  // (A typed array sorts numbers without a comparator call per step.)
  const cuts = new Int32Array(2 * E);
  E = 0;
  for (let q = 0; q < n; q++) { const es = trans[q]; for (let i = 0; i < es.length; i++) { cuts[E++] = es[i][0]; cuts[E++] = es[i][1] + 1; } }
  cuts.sort();
  // The distinct cuts, in place.
  let nb = 0;
  for (let i = 0; i < cuts.length; i++) if (nb === 0 || cuts[nb - 1] !== cuts[i]) cuts[nb++] = cuts[i];
  const bounds = cuts.subarray(0, nb);
  const A = Math.max(0, nb - 1);
  const atom = (c: number): number => {
    let lo = 0, hi = nb - 1;
    while (lo < hi) { const m = (lo + hi) >> 1; if (bounds[m] < c) lo = m + 1; else hi = m; }
    return lo;
  };
  // Total transition table (the dead state, last, loops); accepting states against the rest.
  const delta = new Int32Array(N * A).fill(dead);
  for (let q = 0; q < n; q++) {
    const es = trans[q];
    for (let i = 0; i < es.length; i++) { const e = es[i], hi = e[1], t = e[2]; for (let x = atom(e[0]); x < A && bounds[x] <= hi; x++) delta[q * A + x] = t; }
  }
  let anyAccepting = false;
  for (let q = 0; q < n && !anyAccepting; q++) anyAccepting = a.accept[q];
  const initial = new Int32Array(N);
  for (let q = 0; q < n; q++) initial[q] = anyAccepting && !a.accept[q] ? 1 : 0;
  initial[dead] = anyAccepting ? 1 : 0;
  const letters = distinctColumns(N, A, delta);
  return refinePartition(N, letters.A, letters.delta, initial);
}

/**
 * The transition table with one letter per class of letters that every state maps alike (the
 * same partition refines it: two such letters split the same blocks). An edge's bounds cut the
 * alphabet for every state: a patternProperties key automaton's atoms are dozens of letters of
 * its names, most of which only one state tells apart from their neighbours. (Exported for its test.)
 */
export function distinctColumns(N: number, A: number, delta: Int32Array): { A: number; delta: Int32Array } {
  const firstOf = new Map<number, number[]>();
  const keep: number[] = [];
  for (let x = 0; x < A; x++) {
    let h = 0x811c9dc5;
    for (let q = 0; q < N; q++) h = Math.imul(h ^ delta[q * A + x], 0x01000193);
    const same = firstOf.get(h);
    if (same !== undefined && same.some((y) => { for (let q = 0; q < N; q++) if (delta[q * A + x] !== delta[q * A + y]) return false; return true; })) continue;
    if (same === undefined) firstOf.set(h, [x]); else same.push(x);
    keep.push(x);
  }
  if (keep.length === A) return { A, delta };
  const B = keep.length, out = new Int32Array(N * B);
  for (let q = 0; q < N; q++) for (let i = 0; i < B; i++) out[q * B + i] = delta[q * A + keep[i]];
  return { A: B, delta: out };
}

/** A shortest accepted string (breadth first), or null for the empty language. */
export function shortestString(a: Dfa): string | null {
  const prev = new Map<number, [number, number]>();
  const seen = new Set([0]);
  const queue = [0];
  for (let i = 0; i < queue.length; i++) {
    const q = queue[i];
    if (a.accept[q]) {
      const cps: number[] = [];
      for (let x = q; x !== 0;) { const p = prev.get(x)!; cps.push(p[1]); x = p[0]; }
      return String.fromCodePoint(...cps.reverse());
    }
    for (const [lo, hi, t] of a.trans[q]) {
      if (seen.has(t)) continue;
      // Prefer a printable ASCII letter inside the range, else its lowest non-surrogate code point.
      let c = lo;
      if (lo <= 0x61 && hi >= 0x61) c = 0x61; else if (lo <= 0x41 && hi >= 0x41) c = 0x41; else if (lo <= 0x30 && hi >= 0x30) c = 0x30;
      if (c >= 0xd800 && c <= 0xdfff) { if (hi <= 0xdfff) continue; c = 0xe000; }
      seen.add(t); prev.set(t, [q, c]); queue.push(t);
    }
  }
  return null;
}

// ---- grammar ------------------------------------------------------------------------------------

/**
 * Grammar rules for a DFA's language, written in `mode` (for 'json': the contents of a JSON
 * string, characters escaped as JSON.stringify escapes them): one rule per state, an alternative
 * per target (its code point ranges, then the target's rule) and the empty one where accepting.
 * `key` memoises the rules in the builder. Code points without UTF-8 (surrogates) are left out.
 */
export function dfaSyms(b: GrammarBuilder, a: Dfa, mode: CharMode, key?: string): Sym {
  const make = (): Sym => {
    const d = minimize(a);
    const n = d.size;
    const ids: Sym[] = new Array(n);
    for (let q = 0; q < n; q++) ids[q] = b.rule('dfa');
    // One symbol per class: a class of one range keyed by a number (a counter has thousands of
    // states), one of several by its ranges' bounds as a list (SetMap: a hash and an exact comparison).
    const single = new Map<number, Sym>(), multi = new SetMap();
    // A state's edges grouped by target, the targets in the order of their first edge: group[t]
    // is t's place among this state's groups (-1 between states), a typed array for the whole
    // automaton instead of a map per state; a group is its first edge and its count (no array of
    // ranges nor a string key per state: the automata of patternProperties' keys have dozens of
    // edges per state, into a few targets).
    const group = new Int32Array(n).fill(-1);
    const targets: number[] = [], first: Edge[] = [], count: number[] = [];
    for (let q = 0; q < n; q++) {
      const es = d.trans[q];
      let ng = 0;
      for (let i = 0; i < es.length; i++) {
        const e = es[i], t = e[2];
        const g = group[t];
        if (g < 0) { group[t] = ng; targets[ng] = t; first[ng] = e; count[ng++] = 1; }
        else count[g]++;
      }
      const alts: Sym[][] = [];
      for (let g = 0; g < ng; g++) {
        const t = targets[g];
        group[t] = -1;
        // (Edges are sorted, disjoint and merged: the ranges are normal already.)
        let c: Sym | undefined;
        if (count[g] === 1) {
          const lo = first[g][0], hi = first[g][1], k = lo * 0x110000 + hi;
          c = single.get(k);
          if (c === undefined) { c = charsSym(b, [[lo, hi]], mode); single.set(k, c); }
        } else {
          const bounds = new Int32Array(2 * count[g]);
          for (let i = 0, m = 0; i < es.length; i++) if (es[i][2] === t) { bounds[m++] = es[i][0]; bounds[m++] = es[i][1]; }
          const h = hashOf(bounds);
          c = multi.get(bounds, h);
          if (c === undefined) {
            const r: Ranges = [];
            for (let m = 0; m < bounds.length; m += 2) r.push([bounds[m], bounds[m + 1]]);
            c = charsSym(b, r, mode);
            multi.set(bounds, h, c);
          }
        }
        alts.push([c, ids[t]]);
      }
      // (The empty alternative last, as GrammarBuilder.repeat writes a loop: the matcher knows that shape.)
      if (d.accept[q]) alts.push([]);
      b.define(ids[q], alts);
    }
    return ids[0];
  };
  return key === undefined ? make() : b.cached(`dfa:${mode}:${key}`, make);
}

/** Least product of states and counter values that lazyLengthSyms writes lazily (smaller ones: one rule per state, as before). */
export const LAZY_PRODUCT_MIN = 512;

/**
 * Fewest bytes one code point of `ranges` takes written in `mode` (UTF-8; in 'json', the
 * characters JSON must escape as JSON.stringify escapes them); Infinity when none can be written
 * (surrogates only).
 */
export function charMinBytes(ranges: Ranges, mode: CharMode): number {
  const utf8 = (c: number) => (c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4);
  let best = Infinity;
  for (const [lo, hi] of ranges) {
    // The least code point of the range that has an encoding (surrogates have none).
    const c = lo >= 0xd800 && lo <= 0xdfff ? (hi >= 0xe000 ? 0xe000 : -1) : lo;
    if (c < 0) continue;
    if (mode === 'raw') { best = Math.min(best, utf8(c)); continue; }
    // JSON: the first character of the range JSON leaves as it is, and its escaped ones.
    for (let x = c; x <= hi; x++) {
      if (x === 0x22 || x === 0x5c || x === 8 || x === 9 || x === 10 || x === 12 || x === 13) best = Math.min(best, 2);
      else if (x < 0x20) best = Math.min(best, 6);
      else { best = Math.min(best, utf8(x)); break; }
    }
  }
  return best;
}

/**
 * Grammar symbols for a's strings of min..max code points (the language of
 * dfaSyms(lengthBounded(a, min, max))), where the product of a's states with a counter is large:
 * one rule per (state, count) that a parse reaches, built while matching (GrammarBuilder.lazy),
 * instead of the product automaton and a rule per state of it (a pattern under maxLength 254 was
 * thousands of rules: most of the compile, and of the grammar's analyses). The shortest rest of
 * every pair is computed up front (counts × states numbers). Null where the bounds leave a's
 * language as it is, empty it, or the product is small or past DFA_MAX_STATES: the caller builds
 * the automaton as before.
 */
export function lazyLengthSyms(b: GrammarBuilder, a0: Dfa, min: number, max: number, mode: CharMode): Sym | null {
  const [short, long] = lengthRange(a0);
  if (min <= short) min = 0;
  if (max >= long) max = Infinity;
  if ((min === 0 && max === Infinity) || min > long || max < short) return null;
  const a = minimize(a0);
  const cap = max === Infinity ? min : max, K = cap + 1, n = a.size;
  if (n * K < LAZY_PRODUCT_MIN || n * K > DFA_MAX_STATES) return null;
  // Per state, its edges grouped by target: the class's symbol, its fewest bytes, the target.
  const syms = new Map<string, [Sym, number]>();
  const groups = a.trans.map((es) => {
    const byTarget = new Map<number, Ranges>();
    for (const [lo, hi, t] of es) { let r = byTarget.get(t); if (!r) byTarget.set(t, (r = [])); r.push([lo, hi]); }
    return [...byTarget].map(([t, r]) => {
      const key = r.map(([x, y]) => `${x}-${y}`).join(',');
      let s = syms.get(key);
      if (s === undefined) { s = [charsSym(b, r, mode), charMinBytes(r, mode)]; syms.set(key, s); }
      return { to: t, sym: s[0], bytes: s[1] };
    });
  });
  const acc = (p: number, k: number) => a.accept[p] && k >= min;
  // Fewest bytes from (p, k) to the end (Infinity: none). At k = cap the count stays (max
  // unbounded: shortest paths in a, by rounds) or nothing follows (max bounded).
  const best = new Float64Array(n * K).fill(Infinity);
  for (let p = 0; p < n; p++) if (acc(p, cap)) best[p * K + cap] = 0;
  if (max === Infinity) {
    for (let changed = true; changed;) {
      changed = false;
      for (let p = 0; p < n; p++) for (const e of groups[p]) {
        const v = e.bytes + best[e.to * K + cap];
        if (v < best[p * K + cap]) { best[p * K + cap] = v; changed = true; }
      }
    }
  }
  for (let k = cap - 1; k >= 0; k--) {
    for (let p = 0; p < n; p++) {
      let v = acc(p, k) ? 0 : Infinity;
      for (const e of groups[p]) v = Math.min(v, e.bytes + best[e.to * K + k + 1]);
      best[p * K + k] = v;
    }
  }
  if (best[0] === Infinity) return null;
  const next = (k: number) => Math.min(k + 1, cap);
  const rules = new Map<number, number>();
  const alts = (g: Grammar, p: number, k: number): Sym[][] => {
    const out: Sym[][] = [];
    if (max === Infinity || k < max) {
      const k2 = next(k);
      for (const e of groups[p]) if (e.bytes + best[e.to * K + k2] < Infinity) out.push([e.sym, state(g, e.to, k2)]);
    }
    // (The empty alternative last, as dfaSyms writes it.)
    if (acc(p, k)) out.push([]);
    return out;
  };
  const state = (g: Grammar, p: number, k: number): number => {
    let r = rules.get(p * K + k);
    if (r === undefined) { r = g.lazyRule('dfa', best[p * K + k], (gg) => alts(gg, p, k)); rules.set(p * K + k, r); }
    return r;
  };
  // The static alternative, for the grammar's analyses: one shortest string, class by class.
  const path: Sym[] = [];
  for (let p = 0, k = 0; best[p * K + k] > 0 || !acc(p, k);) {
    const k2 = next(k);
    const e = groups[p].find((x) => best[x.to * K + k2] + x.bytes === best[p * K + k])!;
    path.push(e.sym);
    p = e.to; k = k2;
  }
  const root = b.lazy('dfa', [path], (g) => alts(g, 0, 0));
  rules.set(0, root);
  return root;
}

/**
 * When the language is C^n for n in lo..hi (hi may be Infinity) with one class C (the minimal DFA
 * is a chain of states, each with all its edges on C to the next, possibly ending in a loop):
 * the class and the bounds; else null. Such a language is written as a bounded repetition, which
 * the matcher's fast paths know (a chain of counter states is not).
 */
export function uniformChain(a0: Dfa): { chars: Ranges; lo: number; hi: number } | null {
  // A chain-shaped automaton is read as it is, minimal or not (a counter such as .{1,256} is one,
  // trimmed, and minimising it takes a round per state: 100 ms); only others are minimised first.
  const t = trim(a0);
  if (isEmpty(t)) return null;
  return chainShape(t) ?? (oneClass(t) && lengthOnly(t, 64) ? chainShape(minimize(t)) : null);
}

/**
 * False when two strings of one length (of at most `levels` characters) end one in an accepting
 * state and one not: a language C^{lo..hi} accepts by length alone, so such an automaton needs no
 * minimising to be told apart from one (the keys outside patterns: thousands of states).
 */
function lengthOnly(a: Dfa, levels: number): boolean {
  const stamp = new Int32Array(a.size).fill(-1);
  let cur = [0];
  for (let d = 0; d < levels && cur.length; d++) {
    const acc = a.accept[cur[0]];
    for (const q of cur) if (a.accept[q] !== acc) return false;
    const next: number[] = [];
    for (const q of cur) for (const e of a.trans[q]) if (stamp[e[2]] !== d) { stamp[e[2]] = d; next.push(e[2]); }
    cur = next;
  }
  return true;
}

/**
 * Whether every state of a trimmed DFA leads on by the same characters (or by none): true of
 * every automaton of a language C^{lo..hi} (after n characters the rest is C^{lo−n..hi−n}), so
 * where it fails, no minimising is needed to tell that the language is not one. (Exported for its test.)
 */
export function oneClass(a: Dfa): boolean {
  // The characters of the first state with edges, as merged ranges (its edges are sorted and
  // disjoint); every other state's, merged as they are read, compared with them.
  let C: Ranges | null = null;
  for (const es of a.trans) {
    if (es.length === 0) continue;
    if (C === null) {
      C = [];
      for (const e of es) {
        const last = C[C.length - 1];
        if (last && last[1] + 1 === e[0]) last[1] = e[1]; else C.push([e[0], e[1]]);
      }
      continue;
    }
    let k = -1, hi = -2;
    for (const e of es) {
      if (hi + 1 === e[0]) { hi = e[1]; continue; }
      if (k >= 0 && C[k][1] !== hi) return false;
      k++;
      if (k >= C.length || C[k][0] !== e[0]) return false;
      hi = e[1];
    }
    if (k !== C.length - 1 || C[k][1] !== hi) return false;
  }
  return true;
}

/** uniformChain of an automaton, read as it is: the bounds when it is a chain of states on one class, else null. */
function chainShape(a: Dfa): { chars: Ranges; lo: number; hi: number } | null {
  let C: Ranges | null = null;
  let lo = -1, hi = -1;
  const seen = new Uint8Array(a.size);
  for (let q = 0, i = 0; ; i++) {
    if (seen[q]) return null;
    seen[q] = 1;
    if (a.accept[q]) { if (lo < 0) lo = i; } else if (lo >= 0) return null;
    const es = a.trans[q];
    if (es.length === 0) { hi = i; break; }
    const t = es[0][2];
    if (es.some((e) => e[2] !== t)) return null;
    const r: Ranges = es.map(([x, y]) => [x, y]);
    if (C === null) C = r;
    else if (r.length !== C.length || r.some(([x, y], j) => x !== C![j][0] || y !== C![j][1])) return null;
    if (t === q) { hi = Infinity; break; }
    q = t;
  }
  if (lo < 0) return null;
  return { chars: C ?? [], lo, hi };
}

/**
 * Grammar symbols for a DFA's language: a bounded repetition of a class where it is one
 * (uniformChain), else dfaSyms' rules.
 */
export function languageSyms(b: GrammarBuilder, a: Dfa, mode: CharMode, key?: string): Sym[] {
  const u = uniformChain(a);
  if (u && u.chars.length) return b.repeat('chars', [charsSym(b, u.chars, mode)], u.lo, u.hi);
  if (u && u.lo === 0) return [];
  return [dfaSyms(b, a, mode, key)];
}

/** A RegexError or ComplexityError from a construction, else rethrows. */
export const isDfaRefusal = (e: unknown): e is RegexError | ComplexityError => e instanceof RegexError || e instanceof ComplexityError;
