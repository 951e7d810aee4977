// The constructions that dominated the slowest real-world compiles (issue #20's compile target),
// each against a plain reference written out here, state for state: nodeDfa's subset construction
// (one NFA target at a time, key strings) for counted repetitions and searches, and the product of
// two automata (a map of pairs) in both of its lookups (a table where the pairs are few, a map
// beyond). What the fast paths change is only how states are found, never which states or in what
// order, so the automata, and the grammars written from them, are the same.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { regexDfa, intersect, union, minus, trim, charsDfa, stringsDfa, complement, minimize, dfaSyms, Dfa } from '../../src/structured/dfa.js';
import type { Edge } from '../../src/structured/dfa.js';
import { parseRegex, SetMap, regexSyms, charsSym } from '../../src/structured/regex.js';
import type { RegexNode, CharMode } from '../../src/structured/regex.js';
import { GrammarBuilder } from '../../src/structured/grammar.js';
import type { Sym } from '../../src/structured/grammar.js';
import { ComplexityError } from '../../src/structured/index.js';
import { Rng } from '../../src/structured/fuzz.js';
import { acceptor } from './suite_util.js';

const MAX_CP = 0x10ffff;

/** Thompson's NFA and the subset construction, one target at a time (nodeDfa as first written). */
function referenceDfa(src: string, search: boolean): Dfa {
  const tree = parseRegex(src);
  const chars: Array<Array<[Array<[number, number]>, number]>> = [], eps: Array<Array<[number, number]>> = [];
  const state = () => { chars.push([]); eps.push([]); return chars.length - 1; };
  const build = (n: RegexNode, s: number): number => {
    switch (n.t) {
      case 'chars': { const e = state(); if (n.ranges.length) chars[s].push([n.ranges, e]); return e; }
      case 'bol': case 'eol': { const e = state(); eps[s].push([n.t === 'bol' ? 1 : 2, e]); return e; }
      case 'seq': { let cur = s; for (const x of n.items) cur = build(x, cur); return cur; }
      case 'alt': { const e = state(); for (const x of n.items) { const a = state(); eps[s].push([0, a]); eps[build(x, a)].push([0, e]); } return e; }
      case 'rep': {
        let cur = s;
        for (let i = 0; i < n.min; i++) cur = build(n.item, cur);
        if (n.max === Infinity) {
          const loop = state(), e = state(), a = state();
          eps[cur].push([0, loop]); eps[loop].push([0, a], [0, e]); eps[build(n.item, a)].push([0, loop]);
          return e;
        }
        const e = state();
        for (let i = n.min; i < n.max; i++) { eps[cur].push([0, e]); cur = build(n.item, cur); }
        eps[cur].push([0, e]);
        return e;
      }
    }
  };
  if (search && tree.t === 'seq' && tree.items.length >= 2 && tree.items[0].t === 'bol' && tree.items[tree.items.length - 1].t === 'eol') search = false;
  const start = state();
  let s0 = start;
  if (search) { chars[start].push([[[0, MAX_CP]], start]); s0 = state(); eps[start].push([0, s0]); }
  let fin = build(tree, s0);
  if (search) { const f = state(); eps[fin].push([0, f]); chars[f].push([[[0, MAX_CP]], f]); fin = f; }
  const closure = (seed: number[], atStart: boolean, withEol: boolean): number[] => {
    const seen = new Set(seed), st = [...seed];
    while (st.length) for (const [k, y] of eps[st.pop()!]) if (!seen.has(y) && !(k === 1 && !atStart) && !(k === 2 && !withEol)) { seen.add(y); st.push(y); }
    return [...seen].sort((a, b) => a - b);
  };
  const ids = new Map<string, number>(), sets: number[][] = [], trans: Edge[][] = [], accept: boolean[] = [];
  const intern = (key: string, set: number[], acc: boolean) => {
    let id = ids.get(key);
    if (id === undefined) { id = sets.length; ids.set(key, id); sets.push(set); trans.push([]); accept.push(acc); }
    return id;
  };
  const first = closure([start], true, false);
  intern('S' + first.join(','), first, closure([start], true, true).includes(fin));
  for (let q = 0; q < sets.length; q++) {
    const events: Array<[number, number, number]> = [];
    for (const x of sets[q]) for (const [rs, y] of chars[x]) for (const [lo, hi] of rs) events.push([lo, 1, y], [hi + 1, -1, y]);
    events.sort((a, b) => a[0] - b[0]);
    const active = new Map<number, number>(), edges: Edge[] = [];
    for (let i = 0; i < events.length;) {
      const at = events[i][0];
      while (i < events.length && events[i][0] === at) { const [, d, y] = events[i++]; const n = (active.get(y) ?? 0) + d; if (n === 0) active.delete(y); else active.set(y, n); }
      if (active.size === 0 || at > MAX_CP) continue;
      const next = i < events.length ? events[i][0] - 1 : MAX_CP;
      const t = closure([...active.keys()], false, false);
      const id = intern(t.join(','), t, closure(t, false, true).includes(fin));
      const last = edges[edges.length - 1];
      if (last && last[2] === id && last[1] + 1 === at) last[1] = Math.min(next, MAX_CP); else edges.push([at, Math.min(next, MAX_CP), id]);
    }
    trans[q] = edges;
  }
  return trim(new Dfa(trans, accept));
}

/** The product of two automata, its pairs in a map (as first written). */
function referenceProduct(a: Dfa, b: Dfa, op: 'and' | 'or' | 'diff', maxStates = 10_000): Dfa {
  const ids = new Map<number, number>(), pairs: Array<[number, number]> = [], trans: Edge[][] = [], accept: boolean[] = [];
  const B = b.size + 1;
  const intern = (x: number, y: number) => {
    const k = (x + 1) * B + y + 1;
    let id = ids.get(k);
    if (id !== undefined) return id;
    id = pairs.length;
    if (id >= maxStates) throw new ComplexityError('reference product states', maxStates);
    ids.set(k, id); pairs.push([x, y]); trans.push([]);
    const u = x >= 0 && a.accept[x], v = y >= 0 && b.accept[y];
    accept.push(op === 'and' ? u && v : op === 'or' ? u || v : u && !v);
    return id;
  };
  intern(0, 0);
  for (let s = 0; s < pairs.length; s++) {
    const [p, q] = pairs[s];
    // Per code point boundary of either side, the pair of targets.
    const cuts = new Set<number>([0]);
    for (const es of [p >= 0 ? a.trans[p] : [], q >= 0 ? b.trans[q] : []]) for (const [lo, hi] of es) { cuts.add(lo); cuts.add(hi + 1); }
    const bounds = [...cuts].filter((c) => c <= MAX_CP).sort((x, y) => x - y);
    const edges: Edge[] = [];
    bounds.forEach((lo, i) => {
      const hi = i + 1 < bounds.length ? bounds[i + 1] - 1 : MAX_CP;
      const x = p >= 0 ? a.step(p, lo) : -1, y = q >= 0 ? b.step(q, lo) : -1;
      if (op === 'and' ? x < 0 || y < 0 : op === 'diff' ? x < 0 : x < 0 && y < 0) return;
      const t = intern(x, y), last = edges[edges.length - 1];
      if (last && last[2] === t && last[1] + 1 === lo) last[1] = hi; else edges.push([lo, hi, t]);
    });
    trans[s] = edges;
  }
  return trim(new Dfa(trans, accept));
}

/** The automaton, or 'refused' for a ComplexityError (the state bound). */
const outcome = (f: () => Dfa): Dfa | 'refused' => { try { return f(); } catch (e) { if (e instanceof ComplexityError) return 'refused'; throw e; } };

const same = (x: Dfa, y: Dfa, what: string) => {
  assert.equal(x.size, y.size, `${what}: states`);
  assert.deepEqual(x.accept, y.accept, `${what}: accepting states`);
  assert.deepEqual(x.trans, y.trans, `${what}: edges`);
};

/** A language tag (BCP 47): the tail of the Github_ultra schemas' patternProperties. */
const TAG = '(((([A-Za-z]{2,3}(-([A-Za-z]{3}(-[A-Za-z]{3}){0,2}))?)|[A-Za-z]{4}|[A-Za-z]{5,8})(-([A-Za-z]{4}))?(-([A-Za-z]{2}|[0-9]{3}))?(-([A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*(-([0-9A-WY-Za-wy-z](-[A-Za-z0-9]{2,8})+))*(-(x(-[A-Za-z0-9]{1,8})+))?)|(x(-[A-Za-z0-9]{1,8})+))';
const REGEXES = [
  // Counted repetitions of one class (Github_trivial o78117's key pattern) and of alternations.
  '[A-Za-z0-9-_.:]{1,255}', '^[A-Za-z0-9-_.:]{1,64}$', '[a-f0-9]{8}-[a-f0-9]{4}', '(ab|[a-c]){2,5}x', '^(a|b|[ab]c){0,6}$', '[^,"]{3,40}',
  // Overlapping classes and ranges split by other classes.
  '[a-z][a-m0-5]{2,4}|[k-z]+\\d', '^(x|[a-z]x|[w-z]{2})*$', '\\w{2,9}@\\w+', '^[\\s\\S]{0,3}$', 'é{2,3}|[à-ÿ]+', '[😀-😂]{1,4}',
  // Anchors inside and at the ends; a long alternation of literals.
  'x|^y|z$', '^(^a|b)c$', '^a(b$|c)$', `^(title_${TAG})$`, TAG,
  '(afs1-az1|afs1-az2|apne1-az1|apne1-tpe1-az1|use1-atl1-az1|use1-az1|usw2-lax1-az2)',
];

test('nodeDfa: the automaton of the plain subset construction, state for state (searches and whole-string matches)', () => {
  for (const p of REGEXES) for (const search of [true, false]) same(regexDfa(p, search), referenceDfa(p, search), `/${p}/ ${search ? 'search' : 'whole'}`);
});

test('product: the automaton of a product over a map of pairs, state for state, in the table and the map lookups, and the same state bound', () => {
  const r = new Rng(7);
  const dfas = REGEXES.map((p) => regexDfa(p, true)).concat([charsDfa([[0x61, 0x7a]], 2, 300), stringsDfa(['ab', 'abc', 'x-1', 'title_en']), charsDfa([[0x20, 0x7e]], 0, 500)]);
  const ops = { and: intersect, or: union, diff: minus } as const;
  let big = 0;
  for (let k = 0; k < 120; k++) {
    const a = r.pick(dfas), b = r.pick(dfas), op = r.pick(['and', 'or', 'diff'] as const);
    if ((a.size + 1) * (b.size + 1) > 1 << 17) big++;
    const what = `product ${k} (${op}, ${a.size} × ${b.size} states)`;
    const ours = outcome(() => ops[op](a, b)), ref = outcome(() => referenceProduct(a, b, op));
    if (ours === 'refused' || ref === 'refused') assert.equal(ours, ref, what); else same(ours, ref, what);
  }
  // Both lookups taken: the pairs of two length counters (301 and 501 states) are past the table's 2^17.
  const a = dfas[dfas.length - 3], b = dfas[dfas.length - 1];
  same(intersect(a, b), referenceProduct(a, b, 'and'), 'counters');
  assert.ok((a.size + 1) * (b.size + 1) > 1 << 17 && big > 0, `${big} products past the table`);
  // The state bound met at the same state: a product of more states than allowed fails in both.
  for (const lim of [5, 50, 290, 302]) {
    const ours = outcome(() => union(a, b, { maxStates: lim })), ref = outcome(() => referenceProduct(a, b, 'or', lim));
    assert.equal(typeof ours, typeof ref, `maxStates ${lim}`);
  }
});

test('SetMap: lists of numbers told apart by their elements, whatever their hash', () => {
  const m = new SetMap();
  // One hash for all (as colliding hashes would be): only the exact comparison separates them.
  m.set([1, 2], 5, 10); m.set([2, 1], 5, 11); m.set(Int32Array.of(1, 2, 3), 5, 12); m.set([], 5, 13);
  assert.equal(m.get([1, 2], 5), 10);
  assert.equal(m.get(Int32Array.of(2, 1), 5), 11);
  assert.equal(m.get([1, 2, 3], 5), 12);
  assert.equal(m.get([], 5), 13);
  assert.equal(m.get([1], 5), undefined);
  assert.equal(m.get([1, 2], 6), undefined);
});

test('a search of many literal branches past the automaton bound is written as a grammar, with the language of RegExp', () => {
  // config_schema's availability zones: a search whose automaton passes 600 states (refused, then
  // written as an alternation between two `.*`); the refusal is found as before, and the grammar
  // accepts what the regex finds.
  const zones: string[] = [];
  for (const region of ['afs1', 'ape1', 'apne1', 'apne2', 'aps1', 'apse1', 'apse2', 'cac1', 'euc1', 'eun1', 'euw1', 'mec1', 'sae1', 'use1', 'use2', 'usw1', 'usw2'])
    for (const az of ['az1', 'az2', 'az3', 'az4', 'bos1-az1', 'lax1-az2', 'den1-az1']) zones.push(`${region}-${az}`);
  const src = `(${zones.join('|')})`;
  const b = new GrammarBuilder();
  const g = b.build(b.rule('root', [regexSyms(b, src, 'raw', true)]));
  // The alternation between two `.*`, not an automaton's rules (`search`); a small search is one.
  assert.ok(!g.names.some((n) => n.startsWith('search')) && g.names.some((n) => n.startsWith('alt')), 'written as a grammar');
  const b2 = new GrammarBuilder();
  assert.ok(b2.build(b2.rule('root', [regexSyms(b2, `(${zones.slice(0, 5).join('|')})`, 'raw', true)])).names.some((n) => n.startsWith('search')), 'a small search is an automaton');
  const re = new RegExp(src, 'u'), accepts = acceptor(g);
  const r = new Rng(3);
  const tries = ['use1-az1', 'xxusw2-lax1-az2yy', 'use1-az', 'apne1-bos1-az1-', 'usw3-az1', '', 'cac1-az4', 'ape1-den1-az'];
  for (let k = 0; k < 200; k++) { const z = r.pick(zones); const cut = r.int(0, z.length); tries.push(r.pick(['', 'x', 'use1-']) + z.slice(0, cut) + r.pick(['', '-', 'az1', z.slice(cut)])); }
  for (const s of tries) assert.equal(accepts(s), re.test(s), JSON.stringify(s));
});

/** dfaSyms as first written: per state a map of its targets' ranges, a class of several ranges keyed by their joined text. */
function referenceDfaSyms(b: GrammarBuilder, a: Dfa, mode: CharMode): Sym {
  const d = minimize(a);
  const ids = d.trans.map(() => b.rule('dfa'));
  const classes = new Map<string, Sym>();
  d.trans.forEach((es, q) => {
    const byTarget = new Map<number, Array<[number, number]>>();
    for (const [lo, hi, t] of es) { let r = byTarget.get(t); if (!r) byTarget.set(t, (r = [])); r.push([lo, hi]); }
    const alts: Sym[][] = [];
    for (const [t, r] of byTarget) {
      const k = r.map(([x, y]) => `${x}-${y}`).join(',');
      let c = classes.get(k);
      if (c === undefined) { c = charsSym(b, r, mode); classes.set(k, c); }
      alts.push([c, ids[t]]);
    }
    if (d.accept[q]) alts.push([]);
    b.define(ids[q], alts);
  });
  return ids[0];
}

test('dfaSyms: the rules, classes and names of the plain construction (a map per state, classes keyed by text), for key automata of patternProperties', () => {
  const r = new Rng(11);
  const base = REGEXES.map((p) => regexDfa(p, false)).concat([charsDfa([[0x61, 0x7a]], 2, 30), stringsDfa(['ab', 'abc', 'x-1', 'title_en'])]);
  // What keyedMembers writes: patterns, their complements within printable ASCII (dozens of
  // edges per state into few targets, classes of many ranges), differences of them and of names.
  const ascii = charsDfa([[0x20, 0x21], [0x23, 0x5b], [0x5d, 0x7e]]);
  const dfas = [...base, complement(regexDfa(`^(title_${TAG})$`, true)), minus(ascii, union(regexDfa(`^(title_${TAG})$`, true), regexDfa(`^(name_${TAG})$`, true)))];
  for (let k = 0; k < 40; k++) {
    const x = r.pick(base), y = r.pick(base);
    dfas.push(r.chance(0.5) ? minus(ascii, union(x, y)) : minus(x, stringsDfa(['title', 'ab', 'name', 'x-1'])));
  }
  let manyRanges = 0;
  for (const [i, d] of dfas.entries()) {
    for (const mode of ['json', 'raw'] as const) {
      const b1 = new GrammarBuilder(), b2 = new GrammarBuilder();
      // Two automata in one builder: the second finds the first one's classes in the builder's memo.
      const s1 = [dfaSyms(b1, d, mode), dfaSyms(b1, dfas[(i + 1) % dfas.length], mode)];
      const s2 = [referenceDfaSyms(b2, d, mode), referenceDfaSyms(b2, dfas[(i + 1) % dfas.length], mode)];
      assert.deepEqual(s1, s2, `automaton ${i} (${mode}): start rules`);
      assert.deepEqual(b1.names, b2.names, `automaton ${i} (${mode}): rule names`);
      assert.deepEqual(b1.alts, b2.alts, `automaton ${i} (${mode}): alternatives`);
      assert.deepEqual(b1.classes, b2.classes, `automaton ${i} (${mode}): byte classes`);
    }
    if (minimize(d).trans.some((es) => es.length > es.reduce((n, e, j) => n + +(es.findIndex((f) => f[2] === e[2]) === j), 0))) manyRanges++;
  }
  assert.ok(manyRanges > 20, `${manyRanges} automata with a class of several ranges`);
});

test('product after a product refused at its state bound: the same automaton as the reference (the shared pair table holds nothing of the refused one)', () => {
  const a = charsDfa([[0x61, 0x7a]], 2, 300), b = charsDfa([[0x20, 0x7e]], 0, 200), c = regexDfa(`^(title_${TAG})$`, true);
  assert.equal(outcome(() => intersect(a, b, { maxStates: 50 })), 'refused');
  same(intersect(a, b), referenceProduct(a, b, 'and'), 'after a refusal');
  const d = charsDfa([[0x20, 0x7e]], 0, 12);
  same(minus(d, c), referenceProduct(d, c, 'diff'), 'a second product');
});
