// The DFA toolkit (src/structured/dfa.ts) against JavaScript's own RegExp (`u` flag, as ajv tests
// `pattern`) on many random strings: search and whole-string semantics, products, complement,
// differences with finite sets, length bounds, minimisation, emptiness; bounded work on regexes
// whose DFA explodes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { regexDfa, intersect, union, minus, complement, minusStrings, minusNames, lengthBounded, minimize, isEmpty, stringsDfa, charsDfa, shortestString, dfaSyms, lengthRange, uniformChain, languageSyms } from '../../src/structured/dfa.js';
import type { Dfa } from '../../src/structured/dfa.js';
import { Rng } from '../../src/structured/fuzz.js';
import { GrammarBuilder } from '../../src/structured/grammar.js';
import { ByteAutomaton, DEAD, ComplexityError, RegexError } from '../../src/structured/index.js';

/** A language tag (BCP 47) after a prefix: the patternProperties of the corpus's slowest compiles. */
const BCP47 = '^(title_(((([A-Za-z]{2,3}(-([A-Za-z]{3}(-[A-Za-z]{3}){0,2}))?)|[A-Za-z]{4}|[A-Za-z]{5,8})(-([A-Za-z]{4}))?(-([A-Za-z]{2}|[0-9]{3}))?(-([A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*(-([0-9A-WY-Za-wy-z](-[A-Za-z0-9]{2,8})+))*(-(x(-[A-Za-z0-9]{1,8})+))?)|(x(-[A-Za-z0-9]{1,8})+)))$';
const PATTERNS = [
  'a', '^a', 'a$', '^a$', '^$', '', 'ab|cd', '^ab|cd$', '^(ab|cd)$', '^[a-z]+$', '^[a-z0-9_-]{2,5}$', '\\d{2}', '^\\d+(\\.\\d+)?$',
  '^x-', '_id$', '[^a]', '^[^ab]*$', '^.$', '.', '^a*b?c{1,3}$', '(a|b)*c', '^(?:a|ab)(?:c|bcd)$', '^\\w+@\\w+\\.com$', '\\s',
  '^é+$', '😀', '^[😀-😂]{2}$', '^\\S+$', '^(a+)+$', 'a{0,3}b', '^[A-Z][a-zA-Z0-9]*$', '^(?!)?', 'x|^y|z$', '(^a|b$)', 'a$b', '^\\$ref$',
  '^[\\u0041-\\u0043]$', '\\n', '^(?<n>ab)+$', '^[\\d-]+$', '^(?:[0-9]{3}-){2}[0-9]{4}$',
  // Anchored at both ends (built as a whole-string match), with anchors inside too.
  '^(^a|b)c$', '^a(b$|c)$', '^(x(-[a-z0-9]{1,3})+)$',
].filter((p) => { try { new RegExp(p, 'u'); return p !== '^(?!)?'; } catch { return false; } });
const ALPHABET = ['a', 'b', 'c', 'd', 'x', 'y', 'z', 'A', 'Z', '0', '5', '9', '-', '_', '.', '@', ' ', '\n', '\t', 'é', '😀', '😁', '$', 'r', 'e', 'f', 'com'];

function randomStrings(r: Rng, n: number, extra: string[] = []): string[] {
  const out = new Set<string>(['', ...extra]);
  while (out.size < n) {
    let s = '';
    for (let i = r.int(0, 9); i > 0; i--) s += r.pick(ALPHABET);
    out.add(s);
  }
  return [...out];
}
/** Strings a DFA accepts (a few, by random walks): members to test beside random non-members. */
function walks(r: Rng, d: Dfa, n: number): string[] {
  const out: string[] = [];
  const sh = shortestString(d);
  if (sh !== null) out.push(sh);
  for (let k = 0; k < n; k++) {
    let q = 0, s = '';
    for (let i = 0; i < 12; i++) {
      if (d.accept[q] && r.chance(0.3)) break;
      const es = d.trans[q];
      if (!es.length) break;
      const [lo, hi, t] = r.pick(es);
      let c = lo + Math.floor(r.next() * Math.min(hi - lo + 1, 200));
      if (c >= 0xd800 && c <= 0xdfff) c = 0x61;
      if (d.step(q, c) !== t) continue;
      s += String.fromCodePoint(c); q = t;
    }
    out.push(s);
  }
  return out;
}

test('regexDfa: search and whole-string semantics agree with RegExp (u) on random strings', () => {
  const r = new Rng(11);
  let checked = 0, members = 0;
  for (const p of PATTERNS) {
    const search = regexDfa(p, true), whole = regexDfa(p, false);
    const reS = new RegExp(p, 'u');
    let reW: RegExp | null = null;
    try { reW = new RegExp(`^(?:${p})$`, 'u'); } catch { /* anchors inside: whole-string form only checked via search */ }
    for (const s of [...randomStrings(r, 300), ...walks(r, search, 40), ...walks(r, whole, 40)]) {
      assert.equal(search.matches(s), reS.test(s), `/${p}/ search on ${JSON.stringify(s)}`);
      if (reW && !/[\^$]/.test(p)) assert.equal(whole.matches(s), reW.test(s), `/${p}/ whole on ${JSON.stringify(s)}`);
      if (reS.test(s)) members++;
      checked++;
    }
  }
  assert.ok(checked > 10_000 && members > 2000, `${checked} strings, ${members} members`);
});

test('a search for ^X$ (built as a whole-string match of X) has the language of the search built with its loops', () => {
  // `|[]` (an empty class) puts the anchors inside an alternation: the general construction.
  for (const p of ['^a$', '^$', '^(ab|cd)$', '^[a-z]+$', '^(^a|b)c$', '^a(b$|c)$', '^(x(-[a-z0-9]{1,3})+)$', BCP47]) {
    const a = regexDfa(p, true), b = regexDfa(`${p}|[]`, true);
    assert.ok(isEmpty(minus(a, b)) && isEmpty(minus(b, a)), `/${p}/`);
    assert.equal(minimize(a).size, minimize(b).size, `/${p}/ minimal sizes`);
  }
  // Members and non-members of the tag pattern against RegExp.
  const re = new RegExp(BCP47, 'u'), d = regexDfa(BCP47, true);
  for (const s of ['title_en', 'title_en-US', 'title_zh-Hant-TW', 'title_x-private', 'title_de-CH-1996', 'title_', 'title_e', 'title_en--US', 'xtitle_en', 'title_en-US-'])
    assert.equal(d.matches(s), re.test(s), s);
});

test('patterns of a literal then a shared tail: the tail built once (DfaLimits.tails), the language of the regex built whole', () => {
  const tails = new Map<string, Dfa>();
  const tag = BCP47.slice('^(title_'.length, -2);
  const pats = ['title', 'description', 'x', 'ab_c'].map((n) => `^(${n}_${tag})$`)
    .concat(['^ab(c|d)*$', '^é😀[a-z]{1,3}$', '^abc$', '^ab^c$', '^a(b$|c)$', '^ab[a-z]$|^q$', 'ab(c|d)*$', '^x-(y|[]z)$']);
  const r = new Rng(5);
  for (const p of pats) {
    const a = regexDfa(p, true, { tails }), b = regexDfa(p, true);
    assert.ok(isEmpty(minus(a, b)) && isEmpty(minus(b, a)), `/${p}/`);
    const re = new RegExp(p, 'u');
    for (const s of [...randomStrings(r, 60, ['title_en', 'x_en-US', 'abcd', 'é😀ab', 'ab', 'abc']), ...walks(r, b, 20)]) assert.equal(a.matches(s), re.test(s), `/${p}/ on ${JSON.stringify(s)}`);
  }
  // One tail for the four tag patterns; the tag patterns' automata are the tail's, after the literal.
  assert.equal([...tails.keys()].filter((k) => k.length > 500).length, 1);
  assert.equal(regexDfa(pats[0], true, { tails }).size, 'title_'.length + minimize(regexDfa(`^${tag}$`, true)).size);
});

test('products, complement, differences, length bounds and minimisation agree with RegExp', () => {
  const r = new Rng(5);
  const pick = () => r.pick(PATTERNS);
  for (let k = 0; k < 60; k++) {
    const p = pick(), q = pick();
    const a = regexDfa(p, true), b = regexDfa(q, true);
    const ra = new RegExp(p, 'u'), rb = new RegExp(q, 'u');
    const lo = r.int(0, 3), hi = r.chance(0.3) ? Infinity : r.int(lo, 6);
    const names = randomStrings(r, 4);
    const and = intersect(a, b), or = union(a, b), diff = minus(a, b), not = complement(a), len = lengthBounded(a, lo, hi), mini = minimize(a), less = minusStrings(a, names);
    const printable = complement(a, [[0x20, 0x7e]]);
    assert.ok(mini.size <= a.size);
    for (const s of [...randomStrings(r, 150, names), ...walks(r, and, 20), ...walks(r, diff, 20), ...walks(r, len, 20), ...walks(r, printable, 10)]) {
      const x = ra.test(s), y = rb.test(s), n = [...s].length;
      const msg = `/${p}/ /${q}/ on ${JSON.stringify(s)}`;
      assert.equal(and.matches(s), x && y, 'and ' + msg);
      assert.equal(or.matches(s), x || y, 'or ' + msg);
      assert.equal(diff.matches(s), x && !y, 'diff ' + msg);
      assert.equal(not.matches(s), !x, 'not ' + msg);
      assert.equal(printable.matches(s), !x && /^[\x20-\x7e]*$/.test(s), 'printable not ' + msg);
      assert.equal(len.matches(s), x && n >= lo && n <= hi, `length {${lo},${hi}} ` + msg);
      assert.equal(mini.matches(s), x, 'minimized ' + msg);
      assert.equal(less.matches(s), x && !names.includes(s), 'minus strings ' + msg);
    }
    // Emptiness: the intersection is empty exactly when no string is shared; shortestString is a witness.
    const w = shortestString(and);
    if (w !== null) assert.ok(ra.test(w) && rb.test(w), `witness ${JSON.stringify(w)} of /${p}/ ∩ /${q}/`);
    assert.equal(isEmpty(and), w === null);
  }
  assert.equal(isEmpty(intersect(regexDfa('^a+$', true), regexDfa('^b', true))), true);
  assert.equal(isEmpty(lengthBounded(regexDfa('^[a-z]{3}$', true), 4, 10)), true);
  assert.equal(isEmpty(minusStrings(regexDfa('^(ab|cd)$', true), ['ab', 'cd'])), true);
  assert.equal(shortestString(lengthBounded(regexDfa('^x-', true), 5, 5))!.length, 5);
  assert.equal(stringsDfa(['', 'a']).matches(''), true);
  assert.deepEqual(lengthRange(regexDfa('^(ab|c)d?$', true)), [1, 3]);
  assert.deepEqual(lengthRange(regexDfa('^a+$', true)), [1, Infinity]);
  assert.deepEqual(lengthRange(regexDfa('^[a-z]{1,9000}$', true)), [1, 9000]);
  assert.equal(lengthBounded(regexDfa('^[a-z]{1,9000}$', true), 0, 9000).size, regexDfa('^[a-z]{1,9000}$', true).size, 'a bound the language keeps adds no counter');
  assert.equal(charsDfa([[0x61, 0x62]], 2, 3).matches('aba'), true);
  assert.equal(charsDfa([[0x61, 0x62]], 2, 3).matches('abab'), false);
});

test('explosive regexes and products raise ComplexityError in bounded time; unsupported syntax RegexError', () => {
  const t0 = performance.now();
  assert.throws(() => regexDfa('.*a.{30}', false), ComplexityError);
  assert.throws(() => regexDfa('a.{30}$', true), ComplexityError);
  assert.throws(() => lengthBounded(regexDfa('^[a-z]+$', true), 0, 9000, { maxStates: 2000 }), ComplexityError);
  assert.ok(performance.now() - t0 < 5000, 'bounded');
  assert.throws(() => regexDfa('(a)\\1', true), RegexError);
  assert.throws(() => regexDfa('(?=a)', true), RegexError);
});

test('dfaSyms / languageSyms: the grammar of a DFA (JSON string contents) accepts exactly its strings, escaped as JSON.stringify', () => {
  const r = new Rng(3);
  const enc = new TextEncoder();
  for (const [p, lo, chain] of [['^[a-z"\\\\]{1,4}$', 0, true], ['^x-', 0, false], ['\\n|\\t', 0, false], ['^é😀?$', 0, false], ['ab', 0, false], ['^[a-z]+$', 2, true], ['^[^a]*$', 0, true], ['^\\d{2,}$', 3, true], ['^(ab)+$', 0, false]] as const) {
    const d = lengthBounded(regexDfa(p, true), lo, 6);
    assert.equal(uniformChain(d) !== null, chain, `uniformChain of /${p}/`);
    for (const useChain of [false, true]) {
    const b = new GrammarBuilder();
    const root = b.rule('root', [[...b.lit('"'), ...(useChain ? languageSyms(b, d, 'json') : [dfaSyms(b, d, 'json')]), ...b.lit('"')]]);
    const A = new ByteAutomaton(b.build(root));
    const re = new RegExp(p, 'u');
    for (const s of [...randomStrings(r, 200, ['"', '\\', 'a"b', 'x-\n']), ...walks(r, d, 30)]) {
      const st = A.advanceBytes(A.initial, enc.encode(JSON.stringify(s)));
      assert.equal(st !== DEAD && A.accepting(st), re.test(s) && [...s].length <= 6 && [...s].length >= lo, `/${p}/ on ${JSON.stringify(s)}`);
    }
    }
  }
});

test('minimize is minimal: no two states of its result are equivalent (naive table filling), with counters and products', () => {
  const r = new Rng(11);
  // Distinguishable pairs by table filling over one code point per interval no edge boundary splits.
  const minimal = (d: Dfa): boolean => {
    const n = d.size, reps = new Set<number>();
    for (const es of d.trans) for (const [lo, hi] of es) { reps.add(lo); reps.add(hi + 1); }
    const cs = [...reps].filter((c) => c <= 0x10ffff);
    const dist = new Uint8Array(n * n);
    for (let p = 0; p < n; p++) for (let q = 0; q < n; q++) if (d.accept[p] !== d.accept[q]) dist[p * n + q] = 1;
    for (let changed = true; changed;) {
      changed = false;
      for (let p = 0; p < n; p++) for (let q = 0; q < n; q++) {
        if (dist[p * n + q]) continue;
        for (const c of cs) {
          const x = d.step(p, c), y = d.step(q, c);
          // (Every state of a trimmed DFA accepts something: a state against the dead one differs.)
          if (x === y) continue;
          if (x < 0 || y < 0 || dist[x * n + y]) { dist[p * n + q] = 1; changed = true; break; }
        }
      }
    }
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) if (!dist[p * n + q]) return false;
    return true;
  };
  const extra = ['^(?:\\S+\\s+){0,6}\\S+$', '^.{1,12}$', '^(?:ab|a){2,5}$', '^[a-c]*(?:x|yz){1,3}$'];
  for (let k = 0; k < 50; k++) {
    const p = k < extra.length ? extra[k] : r.pick(PATTERNS), q = r.pick(PATTERNS);
    const a = regexDfa(p, true);
    for (const d of [a, intersect(a, regexDfa(q, true)), minus(a, regexDfa(q, true)), lengthBounded(a, r.int(0, 2), r.int(2, 7))]) {
      const m = minimize(d);
      assert.ok(minimal(m), `minimize of /${p}/ (with /${q}/): ${m.size} states, two of them equivalent`);
      for (const s of randomStrings(r, 60)) assert.equal(m.matches(s), d.matches(s), `/${p}/ on ${JSON.stringify(s)}`);
    }
  }
});

test('minusNames: the same product as minus(a, stringsDfa(names)) and, without refining it, the same minimal automaton minimize builds from it', () => {
  const r = new Rng(23);
  let fast = 0, merged = 0;
  const pats = [BCP47, '^(ab|cd)$', '^a(bc|xc|yc)?$', ...PATTERNS];
  for (let k = 0; k < 120; k++) {
    const p = k < pats.length ? pats[k] : r.pick(pats), q = r.pick(PATTERNS);
    // Minimal or not (a product), refined before or not (minimize's result reused as blocks), each with several sets of names.
    const base = regexDfa(p, r.chance(0.5));
    const a = r.chance(0.5) ? base : r.chance(0.5) ? minus(base, regexDfa(q, true)) : union(base, regexDfa(q, false));
    if (r.chance(0.5)) minimize(a);
    for (let j = 0; j < 3; j++) {
      const members = walks(r, a, 12);
      // Members, random strings (mostly not members), prefixes of members, and members sharing tails.
      const names = [...new Set([
        ...members.filter(() => r.chance(0.6)),
        ...randomStrings(r, 4).filter(() => r.chance(0.5)),
        ...members.filter((m) => m.length > 1 && r.chance(0.3)).map((m) => m.slice(0, -1)),
        ...members.filter(() => r.chance(0.3)).map((m) => r.pick(['x', 'a', 'title_', '']) + m),
      ])];
      if (k === 1) names.push('ab', 'cd');
      const ref = minus(a, stringsDfa(names)), got = minusNames(a, names);
      const msg = `/${p}/ (with /${q}/) without ${JSON.stringify(names)}`;
      assert.deepEqual(got.trans, ref.trans, msg);
      assert.deepEqual(got.accept, ref.accept, msg);
      if (got.minimal !== undefined) { fast++; if (got.minimal.size < got.size) merged++; }
      const m = minimize(got), mr = minimize(ref);
      assert.deepEqual(m.trans, mr.trans, `minimal of ${msg}`);
      assert.deepEqual(m.accept, mr.accept, `minimal of ${msg}`);
    }
  }
  // (Most went the new way, many of them with states to merge.)
  assert.ok(fast > 100 && merged > 50, `${fast} without refinement, ${merged} of them smaller than the product`);
});
