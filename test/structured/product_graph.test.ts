// The keys of patternProperties partitioned at once (dfa.ts's productGraph / productClass, used by
// schema.ts's keyPartitionAtOnce) against the chain of two-automaton products they stand for, written
// out plainly: the same classes in the same order, each the same automaton state for state (the
// grammar is written from it), on random sets of patterns (disjoint, overlapping, nested, sharing
// a tail) and universes; the refusal past 32 classes unchanged. Minimisation over the classes of
// letters every state maps alike (distinctColumns) against the refinement over all letters;
// normalizeRanges' shortcut for normal ranges and oneClass's comparison without copies against
// plain references.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { regexDfa, intersect, minus, isEmpty, charsDfa, oneClass, distinctColumns } from '../../src/structured/dfa.js';
import type { Dfa } from '../../src/structured/dfa.js';
import { normalizeRanges } from '../../src/structured/grammar.js';
import { refinePartition } from '../../src/structured/partition.js';
import { Rng } from '../../src/structured/fuzz.js';
import { SchemaCompiler, UnsupportedKeywordError } from '../../src/structured/index.js';

const TAG = '(((([A-Za-z]{2,3}(-([A-Za-z]{3}(-[A-Za-z]{3}){0,2}))?)|[A-Za-z]{4}|[A-Za-z]{5,8})(-([A-Za-z]{4}))?(-([A-Za-z]{2}|[0-9]{3}))?(-([A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*(-([0-9A-WY-Za-wy-z](-[A-Za-z0-9]{2,8})+))*(-(x(-[A-Za-z0-9]{1,8})+))?)|(x(-[A-Za-z0-9]{1,8})+))';
const POOL = [
  ...['title', 'description', 'name', 'dd', 'd'].map((n) => `^(${n}_${TAG})$`),
  '^x-', '_id$', '^[a-z]+$', '^[a-z0-9_-]{2,5}$', '\\d', '^\\d+$', '^a', 'a', 'b$', '^(ab|cd)$', '^é+$', '😀', '^.$', '^$', '',
  '^[A-Z][a-zA-Z0-9]*$', '^.{3,}$', '[^a]', 'x|^y|z$',
];
const PRINTABLE: Array<[number, number]> = [[0x20, 0x21], [0x23, 0x5b], [0x5d, 0x7e]];
const UNESCAPED: Array<[number, number]> = [[0x20, 0x21], [0x23, 0x5b], [0x5d, 0x10ffff]];

/**
 * keyPartition's chain: per pattern, each class split into its strings in and out of it; the rest
 * last, printable ASCII only — or any unescaped character where a pattern takes one past ASCII
 * and the object's declared names do not branch much (`branchy` false).
 */
function chain(universe: Dfa, Ps: Dfa[], all: boolean, rest: boolean, branchy: boolean): Array<{ set: number[]; d: Dfa }> | 'too many' {
  let classes = [{ set: [] as number[], d: universe }];
  for (let i = 0; i < Ps.length; i++) {
    const next: typeof classes = [];
    for (const c of classes) {
      const inP = all && i === 0 ? Ps[i] : intersect(c.d, Ps[i]), outP = minus(c.d, Ps[i]);
      if (!isEmpty(inP)) next.push({ set: [...c.set, i], d: inP });
      if (!isEmpty(outP)) next.push({ set: c.set, d: outP });
    }
    if (next.length > 32) return 'too many';
    classes = next;
  }
  const wide = !branchy && Ps.some((d) => d.trans.some((es) => es.some((e) => e[1] >= 0x80)));
  return classes.filter((c) => c.set.length > 0 || rest).map((c) => (c.set.length === 0 ? { set: c.set, d: intersect(c.d, charsDfa(wide ? UNESCAPED : PRINTABLE)) } : c));
}

/** The same from one product graph: SchemaCompiler's keyPartitionAtOnce (null: more than 32 classes). */
type AtOnce = (pats: Array<{ p: string }>, universe: Dfa, ap: boolean | undefined, limits: { maxStates: number; what: string }, branchy: boolean) => Array<{ set: number[]; d: Dfa }> | null;
type PatternDfa = (p: string, limits: { maxStates: number; what: string }) => Dfa;
const same = (a: Dfa, b: Dfa): boolean => JSON.stringify([a.trans, a.accept]) === JSON.stringify([b.trans, b.accept]);

test('productGraph / productClass: the classes of the chain of products, state for state, in its order', () => {
  const r = new Rng(11);
  // The patterns' automata as the compiler builds them (tails shared), for both constructions.
  const c = new SchemaCompiler({}, {}) as unknown as { keyPartitionAtOnce: AtOnce; patternDfa: PatternDfa };
  const limits = { maxStates: 50_000, what: 'test' };
  const dfas = new Map(POOL.map((p) => [p, c.patternDfa(p, limits)]));
  const universes: Array<[string, Dfa, boolean]> = [
    ['every string', charsDfa(), true], ['non-empty', intersect(charsDfa(), charsDfa(undefined, 1)), false],
    ['^[a-z_]{0,12}$', regexDfa('^[a-z_]{0,12}$', true), false], ['^[^x]*$', regexDfa('^[^x]*$', true), false],
  ];
  let classes = 0, compared = 0;
  for (let round = 0; round < 120; round++) {
    const n = r.int(2, 6);
    const pats = new Set<string>();
    while (pats.size < n) pats.add(r.pick(POOL));
    const Ps = [...pats].map((p) => dfas.get(p)!);
    const [uname, U, all] = r.pick(universes);
    const rest = r.chance(0.7), branchy = r.chance(0.3);
    const want = chain(U, Ps, all, rest, branchy), got = c.keyPartitionAtOnce([...pats].map((p) => ({ p })), U, rest ? undefined : false, limits, branchy) ?? 'too many';
    const what = `${[...pats].join(' ')} over ${uname}${branchy ? ', beside branchy names' : ''}`;
    if (want === 'too many' || got === 'too many') { assert.equal(got, want, what); continue; }
    assert.deepEqual(got.map((c) => c.set), want.map((c) => c.set), what);
    for (let i = 0; i < want.length; i++) { assert.ok(same(got[i].d, want[i].d), `${what}: class {${want[i].set}}`); compared += want[i].d.size; }
    classes += want.length;
  }
  assert.ok(classes > 300 && compared > 10_000, `${classes} classes, ${compared} states compared`);
});

test('more than 32 combinations of overlapping patterns: refused as before', () => {
  const patternProperties = Object.fromEntries(['a', 'b', 'c', 'd', 'e', 'f'].map((c) => [c, { type: 'string' }]));
  assert.throws(() => new SchemaCompiler({ type: 'object', patternProperties }, {}).compile(), (e: unknown) => e instanceof UnsupportedKeywordError && /64 combinations of overlapping patterns \(at most 32\)/.test((e as Error).message));
  // Five overlap in 32 ways: compiled.
  delete patternProperties.f;
  new SchemaCompiler({ type: 'object', patternProperties }, {}).compile();
});

/** normalizeRanges as it was written before its shortcut: clamp, drop empty, sort, merge. */
function normalizeRef(ranges: Array<[number, number]>): Array<[number, number]> {
  const r = ranges.map(([a, b]) => [Math.max(0, a), Math.min(0x10ffff, b)] as [number, number]).filter(([a, b]) => a <= b).sort((x, y) => x[0] - y[0]);
  const out: Array<[number, number]> = [];
  for (const [a, b] of r) {
    const last = out[out.length - 1];
    if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

test('normalizeRanges: normal ranges copied, others sorted and merged, as the plain version', () => {
  const r = new Rng(3);
  for (let k = 0; k < 3000; k++) {
    const ranges: Array<[number, number]> = [];
    let at = r.int(-2, 5);
    for (let i = r.int(0, 6); i > 0; i--) {
      // Mostly normal (gaps of 2 or more), sometimes adjacent, overlapping, reversed or out of bounds.
      const lo = r.chance(0.8) ? at + r.int(0, 3) : r.int(-1, 40), hi = lo + r.int(-1, 4);
      ranges.push([lo, r.chance(0.05) ? 0x110000 : hi]);
      at = hi + 2;
    }
    const copy = ranges.map(([a, b]) => [a, b]);
    const got = normalizeRanges(ranges);
    assert.deepEqual(got, normalizeRef(ranges), JSON.stringify(ranges));
    assert.deepEqual(ranges, copy, 'the input unchanged');
    for (let i = 0; i < got.length; i++) assert.ok(i >= ranges.length || got[i] !== ranges[i], 'fresh pairs');
  }
});

/** oneClass as it was written: each state's merged ranges, compared with the first's. */
function oneClassRef(a: Dfa): boolean {
  let C: Array<[number, number]> | null = null;
  for (const es0 of a.trans) {
    if (es0.length === 0) continue;
    const es: Array<[number, number]> = [];
    for (const e of es0) { const last = es[es.length - 1]; if (last && last[1] + 1 === e[0]) last[1] = e[1]; else es.push([e[0], e[1]]); }
    if (C === null) { C = es; continue; }
    if (es.length !== C.length || es.some((e, i) => e[0] !== C![i][0] || e[1] !== C![i][1])) return false;
  }
  return true;
}

test('oneClass: the same answer as merging every state\'s ranges', async () => {
  const { Dfa: DfaClass } = await import('../../src/structured/dfa.js');
  const r = new Rng(7);
  let yes = 0;
  for (let k = 0; k < 4000; k++) {
    const n = r.int(1, 4);
    // States whose edges split one set of ranges in various ways (often the same characters).
    const base: Array<[number, number]> = [];
    for (let c = r.int(0, 2), i = r.int(1, 3); i > 0; i--) { const lo = c + r.int(0, 2); const hi = lo + r.int(0, 3); base.push([lo, hi]); c = hi + 1; }
    const trans = Array.from({ length: n }, () => {
      if (r.chance(0.15)) return [];
      const es: Array<[number, number, number]> = [];
      for (const [lo, hi] of base) {
        if (r.chance(0.1)) continue;
        let a = lo;
        while (a <= hi) { const b = Math.min(hi - (r.chance(0.1) ? 1 : 0), a + r.int(0, 2)); if (b >= a) es.push([a, b, r.int(0, n - 1)]); a = Math.max(b, a) + 1; }
      }
      if (r.chance(0.1)) es.push([100, 100 + r.int(0, 1), 0]);
      return es;
    });
    const d = new DfaClass(trans, trans.map(() => r.chance(0.5)));
    const want = oneClassRef(d);
    assert.equal(oneClass(d), want, JSON.stringify(trans));
    if (want) yes++;
  }
  assert.ok(yes > 500 && yes < 3500, `${yes} of 4000 with one class`);
});

/** Whether two block assignments are the same partition (ids aside). */
function samePartition(a: Int32Array, b: Int32Array): boolean {
  const ab = new Map<number, number>(), ba = new Map<number, number>();
  for (let q = 0; q < a.length; q++) {
    if ((ab.get(a[q]) ?? b[q]) !== b[q] || (ba.get(b[q]) ?? a[q]) !== a[q]) return false;
    ab.set(a[q], b[q]); ba.set(b[q], a[q]);
  }
  return true;
}

test('distinctColumns: one letter per class of letters all states map alike; the same refinement as over every letter', () => {
  const r = new Rng(19);
  let dropped = 0;
  for (let k = 0; k < 1500; k++) {
    const N = r.int(1, 30), base = r.int(1, 8);
    // Letters copied from others (the atoms an edge bound cuts for one state only), some changed in one state.
    const cols: Int32Array[] = [];
    for (let x = 0; x < base; x++) cols.push(Int32Array.from({ length: N }, () => r.int(0, N - 1)));
    for (let x = r.int(0, 10); x > 0; x--) {
      const c = Int32Array.from(r.pick(cols));
      if (r.chance(0.3)) c[r.int(0, N - 1)] = r.int(0, N - 1);
      cols.splice(r.int(0, cols.length), 0, c);
    }
    const A = cols.length, delta = new Int32Array(N * A);
    for (let q = 0; q < N; q++) for (let x = 0; x < A; x++) delta[q * A + x] = cols[x][q];
    const got = distinctColumns(N, A, delta);
    // Its letters are distinct columns of delta, and every column is one of them.
    const colOf = (d: Int32Array, W: number, x: number) => Array.from({ length: N }, (_, q) => d[q * W + x]).join(',');
    const kept = new Set(Array.from({ length: got.A }, (_, x) => colOf(got.delta, got.A, x)));
    assert.equal(kept.size, got.A);
    assert.deepEqual(kept, new Set(Array.from({ length: A }, (_, x) => colOf(delta, A, x))));
    dropped += A - got.A;
    const initial = Int32Array.from({ length: N }, () => r.int(0, 1));
    if (!initial.includes(0)) initial[0] = 0;
    if (!initial.includes(1) && N > 1) initial[N - 1] = 1;
    const init = initial.includes(1) ? initial : new Int32Array(N);
    assert.ok(samePartition(refinePartition(N, got.A, got.delta, init), refinePartition(N, A, delta, init)));
  }
  assert.ok(dropped > 2000, `${dropped} letters dropped`);
});
