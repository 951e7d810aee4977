// Regular expressions (JavaScript syntax with the `u` flag, as JSON Schema's `pattern` and ajv use
// them) parsed to a syntax tree and compiled into grammar rules over UTF-8 bytes; the matcher
// determinises them lazily into a DFA, so no input backtracks (a "catastrophic" regex costs what
// any other does). Backreferences, lookaround and word boundaries are not regular and raise
// RegexError with their offset.
import { GrammarBuilder, END, complementRanges, normalizeRanges } from './grammar.js';
import type { Sym } from './grammar.js';
import { RegexError } from './errors.js';
import { refinePartition } from './partition.js';

export type RegexNode =
  | { t: 'chars'; ranges: Array<[number, number]> }
  | { t: 'seq'; items: RegexNode[] }
  | { t: 'alt'; items: RegexNode[] }
  | { t: 'rep'; item: RegexNode; min: number; max: number }
  | { t: 'bol' }
  | { t: 'eol' };

const DIGIT: Array<[number, number]> = [[0x30, 0x39]];
const WORD: Array<[number, number]> = [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]];
/** The white space of '\s' (ECMAScript's WhiteSpace and LineTerminator), as code point ranges (plain.ts's SPECIAL_CHARS are its non-ASCII part). */
export const SPACE: Array<[number, number]> = [[0x09, 0x0d], [0x20, 0x20], [0xa0, 0xa0], [0x1680, 0x1680], [0x2000, 0x200a], [0x2028, 0x2029], [0x202f, 0x202f], [0x205f, 0x205f], [0x3000, 0x3000], [0xfeff, 0xfeff]];
const LINE_TERMINATORS: Array<[number, number]> = [[0x0a, 0x0a], [0x0d, 0x0d], [0x2028, 0x2029]];
export const ANY_CHAR: Array<[number, number]> = [[0, 0x10ffff]];
const MAX_COUNT = 10_000;

/** Parses a regex (JavaScript syntax, `u` semantics). */
export function parseRegex(src: string): RegexNode {
  const cps = Array.from(src, (c) => c.codePointAt(0)!);
  // Offsets in code units for error messages.
  const offs: number[] = [];
  { let o = 0; for (const c of cps) { offs.push(o); o += c > 0xffff ? 2 : 1; } offs.push(o); }
  let i = 0;
  const fail = (msg: string, at = i): never => { throw new RegexError(src, offs[Math.min(at, offs.length - 1)], msg); };
  const peek = () => (i < cps.length ? cps[i] : -1);
  const ch = (c: string) => c.codePointAt(0)!;

  function alternation(): RegexNode {
    const items = [sequence()];
    while (peek() === ch('|')) { i++; items.push(sequence()); }
    return items.length === 1 ? items[0] : { t: 'alt', items };
  }
  function sequence(): RegexNode {
    const items: RegexNode[] = [];
    while (i < cps.length && peek() !== ch('|') && peek() !== ch(')')) {
      let atom = parseAtom();
      atom = quantified(atom);
      items.push(atom);
    }
    return items.length === 1 ? items[0] : { t: 'seq', items };
  }
  function quantified(atom: RegexNode): RegexNode {
    for (;;) {
      const c = peek();
      let min: number, max: number;
      const at = i;
      if (c === ch('*')) { min = 0; max = Infinity; i++; }
      else if (c === ch('+')) { min = 1; max = Infinity; i++; }
      else if (c === ch('?')) { min = 0; max = 1; i++; }
      else if (c === ch('{')) {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(String.fromCodePoint(...cps.slice(i, i + 24)));
        if (!m) fail("incomplete quantifier '{'");
        min = Number(m![1]);
        max = m![2] === undefined ? min : m![3] === '' ? Infinity : Number(m![3]);
        if (max < min) fail('numbers out of order in {} quantifier', at);
        if (min > MAX_COUNT || (max !== Infinity && max > MAX_COUNT)) fail(`repetition count above ${MAX_COUNT}`, at);
        i += Array.from(m![0]).length;
      } else return atom;
      if (atom.t === 'bol' || atom.t === 'eol') fail('nothing to repeat', at);
      if (peek() === ch('?')) i++; // lazy: same language
      atom = { t: 'rep', item: atom, min, max };
    }
  }
  function parseAtom(): RegexNode {
    const c = peek();
    const at = i;
    if (c === ch('(')) {
      i++;
      if (peek() === ch('?')) {
        const next = cps[i + 1];
        if (next === ch(':')) i += 2;
        else if (next === ch('<') && cps[i + 2] !== ch('=') && cps[i + 2] !== ch('!')) {
          i += 2;
          while (i < cps.length && peek() !== ch('>')) i++;
          if (peek() !== ch('>')) fail('unterminated group name', at);
          i++;
        } else fail('lookahead and lookbehind are not supported', at);
      }
      const inner = alternation();
      if (peek() !== ch(')')) fail("missing ')'", at);
      i++;
      return inner;
    }
    if (c === ch('[')) return charClass();
    if (c === ch('.')) { i++; return { t: 'chars', ranges: complementRanges(LINE_TERMINATORS) }; }
    if (c === ch('^')) { i++; return { t: 'bol' }; }
    if (c === ch('$')) { i++; return { t: 'eol' }; }
    if (c === ch('\\')) { i++; return { t: 'chars', ranges: escape(false) }; }
    if (c === ch('*') || c === ch('+') || c === ch('?') || c === ch('{')) fail('nothing to repeat');
    if (c === ch(')')) fail("unmatched ')'");
    if (c === ch(']') || c === ch('}')) fail(`lone '${String.fromCodePoint(c)}' (escape it)`);
    i++;
    return { t: 'chars', ranges: [[c, c]] };
  }
  function escape(inClass: boolean): Array<[number, number]> {
    const at = i - 1;
    if (i >= cps.length) fail('\\ at end of pattern', at);
    const c = String.fromCodePoint(cps[i++]);
    switch (c) {
      case 'd': return DIGIT;
      case 'D': return complementRanges(DIGIT);
      case 'w': return WORD;
      case 'W': return complementRanges(WORD);
      case 's': return SPACE;
      case 'S': return complementRanges(SPACE);
      case 'n': return [[10, 10]];
      case 'r': return [[13, 13]];
      case 't': return [[9, 9]];
      case 'v': return [[11, 11]];
      case 'f': return [[12, 12]];
      case '0': if (peek() >= 0x30 && peek() <= 0x39) fail('octal escapes are not allowed', at); return [[0, 0]];
      case 'b': if (inClass) return [[8, 8]]; return fail('word boundary \\b is not supported', at);
      case 'B': return fail('\\B is not supported', at);
      case 'c': {
        const l = peek();
        if (!((l >= 0x41 && l <= 0x5a) || (l >= 0x61 && l <= 0x7a))) fail('invalid \\c escape', at);
        i++;
        return [[l % 32, l % 32]];
      }
      case 'x': {
        const h = String.fromCodePoint(...cps.slice(i, i + 2));
        if (!/^[0-9a-fA-F]{2}$/.test(h)) fail('invalid \\x escape', at);
        i += 2;
        const v = parseInt(h, 16);
        return [[v, v]];
      }
      case 'u': {
        if (peek() === ch('{')) {
          const m = /^\{([0-9a-fA-F]{1,6})\}/.exec(String.fromCodePoint(...cps.slice(i, i + 9)));
          if (!m || parseInt(m[1], 16) > 0x10ffff) fail('invalid \\u{…} escape', at);
          i += m![0].length;
          const v = parseInt(m![1], 16);
          return [[v, v]];
        }
        const h = String.fromCodePoint(...cps.slice(i, i + 4));
        if (!/^[0-9a-fA-F]{4}$/.test(h)) fail('invalid \\u escape', at);
        i += 4;
        let v = parseInt(h, 16);
        // A surrogate pair written as two escapes is one code point.
        if (v >= 0xd800 && v <= 0xdbff && cps[i] === ch('\\') && cps[i + 1] === ch('u')) {
          const h2 = String.fromCodePoint(...cps.slice(i + 2, i + 6));
          const w = parseInt(h2, 16);
          if (/^[0-9a-fA-F]{4}$/.test(h2) && w >= 0xdc00 && w <= 0xdfff) { i += 6; v = 0x10000 + ((v - 0xd800) << 10) + (w - 0xdc00); }
        }
        return [[v, v]];
      }
      case 'p': case 'P': return fail('Unicode property escapes (\\p{…}) are not supported', at);
      case 'k': return fail('named backreferences are not supported', at);
      default:
        if (/[1-9]/.test(c)) return fail('backreferences are not supported', at);
        if (/[\^$\\.*+?()[\]{}|/\-]/.test(c)) return [[cps[i - 1], cps[i - 1]]];
        return fail(`invalid escape '\\${c}' (u mode)`, at);
    }
  }
  function charClass(): RegexNode {
    const at = i;
    i++;
    let negate = false;
    if (peek() === ch('^')) { negate = true; i++; }
    const ranges: Array<[number, number]> = [];
    const single = (): Array<[number, number]> => {
      if (i >= cps.length) fail("missing ']'", at);
      const c = cps[i++];
      if (c === ch('\\')) return escape(true);
      return [[c, c]];
    };
    while (peek() !== ch(']')) {
      if (i >= cps.length) fail("missing ']'", at);
      const a = single();
      if (peek() === ch('-') && cps[i + 1] !== ch(']') && i + 1 < cps.length) {
        const dashAt = i;
        i++;
        const b = single();
        if (a.length !== 1 || b.length !== 1 || a[0][0] !== a[0][1] || b[0][0] !== b[0][1]) fail('character class escape in a range', dashAt);
        if (b[0][0] < a[0][0]) fail('range out of order in character class', dashAt);
        ranges.push([a[0][0], b[0][0]]);
      } else ranges.push(...a);
    }
    i++;
    const norm = normalizeRanges(ranges);
    return { t: 'chars', ranges: negate ? complementRanges(norm) : norm };
  }

  const tree = alternation();
  if (i < cps.length) fail("unmatched ')'");
  return tree;
}

/** How a code point is written: raw UTF-8, or inside a JSON string (escaping what JSON must). */
export type CharMode = 'raw' | 'json';

/** JSON.stringify's escape for a character that must be escaped, else null. */
export function jsonEscape(c: number): string | null {
  if (c === 0x22) return '\\"';
  if (c === 0x5c) return '\\\\';
  if (c < 0x20) {
    const short: Record<number, string> = { 8: '\\b', 9: '\\t', 10: '\\n', 12: '\\f', 13: '\\r' };
    return short[c] ?? `\\u${c.toString(16).padStart(4, '0')}`;
  }
  return null;
}

const JSON_UNSAFE: Array<[number, number]> = [[0, 0x1f], [0x22, 0x22], [0x5c, 0x5c]];

/** Grammar symbol for "one character in ranges" written in the given mode. */
export function charsSym(b: GrammarBuilder, ranges: Array<[number, number]>, mode: CharMode): Sym {
  const norm = normalizeRanges(ranges);
  if (mode === 'raw') return b.codepoints(norm);
  const key = 'json:' + norm.map(([x, y]) => `${x}-${y}`).join(',');
  return b.cached(key, () => {
    const safe = intersect(norm, complementRanges(JSON_UNSAFE));
    const alts: Sym[][] = [];
    if (safe.length) alts.push([b.codepoints(safe)]);
    // The escapes as a byte trie: '\' then one rule (34 alternatives that each begin with '\'
    // were 34 parallel parses at every character of a `.*`).
    const escapes: string[] = [];
    for (const [x, y] of intersect(norm, JSON_UNSAFE)) for (let c = x; c <= y; c++) escapes.push(jsonEscape(c)!);
    if (escapes.length) alts.push([b.cached(`esc-trie:${escapes.join(' ')}`, () => b.seq('esc', literalTrie(b, escapes)))]);
    if (alts.length === 0) return b.rule('empty-class', []);
    return b.alt('jchar', alts);
  });
}

/** Symbols matching exactly one of the (distinct, ASCII) strings, as a trie: one parse per prefix. */
function literalTrie(b: GrammarBuilder, words: string[]): Sym[] {
  const at = (ws: string[], i: number): Sym[][] => {
    const alts: Sym[][] = [];
    const byByte = new Map<number, string[]>();
    for (const w of ws) {
      if (w.length === i) { alts.push([]); continue; }
      const c = w.charCodeAt(i);
      let g = byByte.get(c);
      if (!g) byByte.set(c, g = []);
      g.push(w);
    }
    // Bytes whose words all end after them share one class.
    const ending: number[] = [];
    for (const [c, g] of byByte) {
      if (g.length === 1 && g[0].length === i + 1) ending.push(c);
      else { const rest = at(g, i + 1); alts.push([b.cls([c]), b.alt('esc', rest)]); }
    }
    if (ending.length) alts.push([b.cls(ending)]);
    return alts;
  };
  const alts = at(words, 0);
  return alts.length === 1 ? alts[0] : [b.alt('esc', alts)];
}

function intersect(a: Array<[number, number]>, b: Array<[number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const [x, y] of a) for (const [u, v] of b) { const lo = Math.max(x, u), hi = Math.min(y, v); if (lo <= hi) out.push([lo, hi]); }
  return normalizeRanges(out);
}

/**
 * Compiles a regex to grammar symbols. `search`: JSON Schema semantics (unanchored unless it
 * starts with ^ / ends with $); otherwise the whole output must match (^ and $ at the ends are
 * allowed and redundant). Anchors anywhere else raise RegexError.
 */
export function regexSyms(b: GrammarBuilder, src: string, mode: CharMode, search: boolean): Sym[] {
  const tree = parseRegex(src);
  const branches = tree.t === 'alt' ? tree.items : [tree];
  if (search && branches.some((br) => (br.t === 'seq' ? br.items[0]?.t : br.t) !== 'bol')) {
    // A search (`.*x`): as a grammar it is ambiguous — each character may start a new match, so
    // the parses multiply with the length of x — and deterministic as an automaton.
    // One automaton per pattern and mode in a grammar (a schema repeats its patterns); END: none.
    const d = b.cached(`search:${mode}:${src}`, () => searchDfa(b, branches, mode, src) ?? END);
    if (d !== END) return [d];
  }
  // Branches grouped by their anchors: an unanchored side is one shared `.*` per group, not one
  // per branch — `(a|b|…)` with a `.*` of its own around each of 100 branches runs 100 copies of
  // `.*` in parallel (the parser states of a search multiply by the number of branches).
  const groups = new Map<number, Sym[][]>();
  for (const br of branches) {
    const items = br.t === 'seq' ? [...br.items] : [br];
    let start = false, end = false;
    while (items.length && items[0].t === 'bol') { items.shift(); start = true; }
    while (items.length && items[items.length - 1].t === 'eol') { items.pop(); end = true; }
    const key = (search && !start ? 1 : 0) | (search && !end ? 2 : 0);
    let g = groups.get(key);
    if (!g) groups.set(key, g = []);
    g.push(items.flatMap((n) => compileNode(b, n, mode, src)));
  }
  const any = () => b.cached(`regex-any:${mode}`, () => b.seq('any', b.repeat('any', [charsSym(b, ANY_CHAR, mode)], 0, Infinity)));
  const alts: Sym[][] = [];
  for (const [key, bodies] of groups) {
    const body = bodies.length === 1 ? bodies[0] : [b.alt('alt', bodies)];
    alts.push([...(key & 1 ? [any()] : []), ...body, ...(key & 2 ? [any()] : [])]);
  }
  return alts.length === 1 ? alts[0] : [b.alt('regex', alts)];
}

/** Most NFA states and DFA states of a search compiled as an automaton (beyond: the grammar form). */
const SEARCH_NFA_MAX = 4000, SEARCH_DFA_MAX = 600;

/**
 * A search regex (branches with their anchors; an unanchored side is `.*`) as a deterministic
 * automaton over characters, written as right-linear rules: one rule per (minimal) DFA state,
 * Q ::= C1 Q1 | C2 Q2 | … (| ε when accepting), Ci the characters (in `mode`) that lead to Qi.
 * Tail calls keep the parser at one parse per state. Built by Thompson's construction, subset
 * construction and Hopcroft's partition refinement over the character classes' atoms (maximal code
 * point ranges no class of the regex splits). Null when the automaton would be too large.
 */
function searchDfa(b: GrammarBuilder, branches: RegexNode[], mode: CharMode, src: string): Sym | null {
  // Atoms: the code point ranges that no class splits.
  const cuts = new Set<number>([0, 0x110000]);
  const collect = (n: RegexNode): void => {
    if (n.t === 'chars') for (const [x, y] of n.ranges) { cuts.add(x); cuts.add(y + 1); }
    else if (n.t === 'seq' || n.t === 'alt') n.items.forEach(collect);
    else if (n.t === 'rep') collect(n.item);
  };
  branches.forEach(collect);
  const bounds = [...cuts].sort((x, y) => x - y);
  const atomOf = (cp: number): number => {
    let lo = 0, hi = bounds.length - 2;
    while (lo < hi) { const m = (lo + hi + 1) >> 1; if (bounds[m] <= cp) lo = m; else hi = m - 1; }
    return lo;
  };
  const NA = bounds.length - 1;
  const atomsOf = (ranges: Array<[number, number]>): number[] => {
    const out: number[] = [];
    for (const [x, y] of ranges) for (let a = atomOf(x); a < NA && bounds[a] <= y; a++) out.push(a);
    return out;
  };
  const ALL = atomsOf(ANY_CHAR);
  // Thompson NFA: per state, ε-successors and at most one character transition.
  const eps: number[][] = [], trAtoms: (number[] | null)[] = [], trTo: number[] = [];
  const state = (): number => {
    if (eps.length >= SEARCH_NFA_MAX) throw new TooLarge();
    eps.push([]); trAtoms.push(null); trTo.push(-1);
    return eps.length - 1;
  };
  const frag = (n: RegexNode): [number, number] => {
    switch (n.t) {
      case 'chars': { const i = state(), o = state(); trAtoms[i] = atomsOf(n.ranges); trTo[i] = o; return [i, o]; }
      case 'seq': {
        const i = state();
        let cur = i;
        for (const x of n.items) { const [a, z] = frag(x); eps[cur].push(a); cur = z; }
        return [i, cur];
      }
      case 'alt': {
        const i = state(), o = state();
        for (const x of n.items) { const [a, z] = frag(x); eps[i].push(a); eps[z].push(o); }
        return [i, o];
      }
      case 'rep': {
        const i = state();
        let cur = i;
        for (let k = 0; k < n.min; k++) { const [a, z] = frag(n.item); eps[cur].push(a); cur = z; }
        if (n.max === Infinity) {
          const [a, z] = frag(n.item), o = state();
          eps[cur].push(a, o); eps[z].push(a, o);
          return [i, o];
        }
        const o = state();
        for (let k = n.min; k < n.max; k++) { const [a, z] = frag(n.item); eps[cur].push(a, o); cur = z; }
        eps[cur].push(o);
        return [i, o];
      }
      case 'bol': case 'eol':
        throw new RegexError(src, 0, `anchor '${n.t === 'bol' ? '^' : '$'}' is only supported at the start or end of the pattern`);
    }
  };
  let start: number, final: number;
  try {
    start = state(); final = state();
    const loop = (): number => { const l = state(); trAtoms[l] = ALL; trTo[l] = l; return l; };
    // One `.*` before the unanchored branches, one after: shared, as the searches they are.
    let pre = -1, post = -1;
    for (const br of branches) {
      const items = br.t === 'seq' ? [...br.items] : [br];
      let st = false, en = false;
      while (items.length && items[0].t === 'bol') { items.shift(); st = true; }
      while (items.length && items[items.length - 1].t === 'eol') { items.pop(); en = true; }
      const [a, z] = frag({ t: 'seq', items });
      if (st) eps[start].push(a);
      else { if (pre < 0) { pre = loop(); eps[start].push(pre); } eps[pre].push(a); }
      if (en) eps[z].push(final);
      else { if (post < 0) { post = loop(); eps[post].push(final); } eps[z].push(post); }
    }
  } catch (e) {
    if (e instanceof TooLarge) return null;
    throw e;
  }
  // Subset construction.
  const N = eps.length;
  const mark = new Int32Array(N).fill(-1);
  let epoch = 0;
  // (Sets in typed arrays, sorted natively: a search's subsets hold every branch's start.)
  const st = new Int32Array(N), buf = new Int32Array(N);
  const closure = (seeds: ArrayLike<number>): Int32Array => {
    epoch++;
    let top = 0, n = 0;
    for (let i = 0; i < seeds.length; i++) { const x = seeds[i]; if (mark[x] !== epoch) { mark[x] = epoch; st[top++] = x; } }
    while (top > 0) {
      const x = st[--top];
      buf[n++] = x;
      for (const y of eps[x]) if (mark[y] !== epoch) { mark[y] = epoch; st[top++] = y; }
    }
    return buf.slice(0, n).sort();
  };
  const ids = new SetMap();
  const sets: Int32Array[] = [];
  const trans: Int32Array[] = [];
  const intern = (set: Int32Array): number => {
    const h = hashOf(set);
    let id = ids.get(set, h);
    if (id === undefined) {
      if (sets.length >= SEARCH_DFA_MAX) throw new TooLarge();
      id = sets.length; ids.set(set, h, id); sets.push(set);
    }
    return id;
  };
  try {
    intern(closure([start]));
    // The state of a set of moves, across all states: a search's states share most of their moves
    // (the `.*` and every branch's start), so most closures are known.
    const seen = new SetMap();
    for (let q = 0; q < sets.length; q++) {
      const moves: number[][] = Array.from({ length: NA }, () => []);
      for (const x of sets[q]) { const as = trAtoms[x]; if (as) for (const a of as) moves[a].push(trTo[x]); }
      const t = new Int32Array(NA).fill(-1);
      for (let a = 0; a < NA; a++) {
        const m = moves[a];
        if (m.length === 0) continue;
        const h = hashOf(m);
        let id = seen.get(m, h);
        if (id === undefined) { id = intern(closure(m)); seen.set(m, h, id); }
        t[a] = id;
      }
      trans.push(t);
    }
  } catch (e) {
    if (e instanceof TooLarge) return null;
    throw e;
  }
  // Minimisation (partition.ts): blocks of states with the same future, the missing transitions
  // going to a dead state of their own (kept apart from states that cannot accept: as written).
  const Q = sets.length;
  const accepting = sets.map((s) => s.includes(final));
  const delta = new Int32Array((Q + 1) * NA).fill(Q);
  for (let q = 0; q < Q; q++) for (let a = 0; a < NA; a++) if (trans[q][a] >= 0) delta[q * NA + a] = trans[q][a];
  const anyAccepting = accepting.some((x) => x), anyOther = accepting.some((x) => !x);
  const initial = new Int32Array(Q + 1);
  for (let q = 0; q < Q; q++) initial[q] = accepting[q] || !anyAccepting ? 0 : 1;
  initial[Q] = +anyAccepting + +anyOther;
  const block = refinePartition(Q + 1, NA, delta, initial);
  // Rules: one per block (states of a block behave alike: any one represents it).
  const rep = new Map<number, number>();
  for (let q = 0; q < Q; q++) if (!rep.has(block[q])) rep.set(block[q], q);
  const rules = new Map<number, number>();
  const ruleOf = (blk: number): number => {
    let r = rules.get(blk);
    if (r === undefined) { r = b.rule('search'); rules.set(blk, r); }
    return r;
  };
  for (const [blk, q] of rep) {
    const r = ruleOf(blk);
    const byTarget = new Map<number, Array<[number, number]>>();
    for (let a = 0; a < NA; a++) {
      if (trans[q][a] < 0) continue;
      const tb = block[trans[q][a]];
      let rs = byTarget.get(tb);
      if (!rs) byTarget.set(tb, rs = []);
      const last = rs[rs.length - 1];
      if (last && last[1] + 1 === bounds[a]) last[1] = bounds[a + 1] - 1;
      else rs.push([bounds[a], bounds[a + 1] - 1]);
    }
    const alts: Sym[][] = [];
    for (const [tb, rs] of byTarget) alts.push([charsSym(b, rs, mode), ruleOf(tb)]);
    if (accepting[q]) alts.push([]);
    b.define(r, alts);
  }
  return ruleOf(block[0]);
}

class TooLarge extends Error {}

/** A hash of a list of numbers (FNV-1a over its elements). */
export function hashOf(a: ArrayLike<number>): number {
  let h = 0x811c9dc5 ^ a.length;
  for (let i = 0; i < a.length; i++) h = Math.imul(h ^ a[i], 0x01000193);
  return h;
}

/**
 * Lists of numbers to values, by hashOf and an exact comparison (searchDfa's subsets and moves:
 * a key string per list joined hundreds of numbers, most of a long search's construction).
 */
export class SetMap {
  private readonly buckets = new Map<number, number[]>();
  private readonly keys: ArrayLike<number>[] = [];
  private readonly values: number[] = [];
  get(k: ArrayLike<number>, h: number): number | undefined {
    const b = this.buckets.get(h);
    if (b === undefined) return undefined;
    for (const i of b) {
      const x = this.keys[i];
      if (x.length !== k.length) continue;
      let j = 0;
      while (j < k.length && x[j] === k[j]) j++;
      if (j === k.length) return this.values[i];
    }
    return undefined;
  }
  set(k: ArrayLike<number>, h: number, v: number): void {
    const b = this.buckets.get(h);
    if (b === undefined) this.buckets.set(h, [this.keys.length]); else b.push(this.keys.length);
    this.keys.push(k); this.values.push(v);
  }
}

function compileNode(b: GrammarBuilder, n: RegexNode, mode: CharMode, src: string): Sym[] {
  switch (n.t) {
    case 'chars': return [charsSym(b, n.ranges, mode)];
    case 'seq': return n.items.flatMap((x) => compileNode(b, x, mode, src));
    case 'alt': return [b.alt('alt', n.items.map((x) => compileNode(b, x, mode, src)))];
    case 'rep': return b.repeat('rep', compileNode(b, n.item, mode, src), n.min, n.max);
    case 'bol': case 'eol':
      throw new RegexError(src, 0, `anchor '${n.t === 'bol' ? '^' : '$'}' is only supported at the start or end of the pattern`);
  }
}

/** A grammar whose language is the regex's (the whole output must match). */
export function compileRegex(src: string): import('./grammar.js').Grammar {
  const b = new GrammarBuilder();
  const root = b.rule('root', [regexSyms(b, src, 'raw', false)]);
  return b.build(root);
}
