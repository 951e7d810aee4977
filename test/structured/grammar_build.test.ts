// Grammar's build (the checks and the layout that follow every schema compile) against plain
// references written out here, on random grammars: each rule's shortest derivation by a fixpoint
// (Bellman–Ford over the rules, not the Dijkstra-like settling the build uses), the alternatives
// kept (exactly those whose every symbol derives something, in their order, the same symbols),
// the shortest rest of an alternative at every position, and an unsatisfiable start refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GrammarBuilder, Grammar, END } from '../../src/structured/grammar.js';
import type { Sym } from '../../src/structured/grammar.js';
import { GrammarError, UnsatisfiableError } from '../../src/structured/errors.js';
import { Rng } from '../../src/structured/fuzz.js';

/** Shortest byte length of each rule by rounds until nothing changes (Infinity: unproductive). */
function referenceMinLen(alts: Sym[][][], classEmpty: boolean[]): number[] {
  const R = alts.length;
  const len = new Array<number>(R).fill(Infinity);
  const symLen = (s: Sym): number => (s >= 0 ? len[s] : classEmpty[-2 - s] ? Infinity : 1);
  for (let changed = true; changed;) {
    changed = false;
    for (let r = 0; r < R; r++) {
      for (const a of alts[r]) {
        const l = a.reduce((t, s) => t + symLen(s), 0);
        if (l < len[r]) { len[r] = l; changed = true; }
      }
    }
  }
  return len;
}

/** A random grammar: rules of 0–4 alternatives of 0–5 symbols, byte classes (one of them empty) and rule references. */
function randomBuilder(rng: Rng): { b: GrammarBuilder; start: number } {
  const b = new GrammarBuilder();
  const classes = [b.cls([0x61]), b.cls([0x62, 0x63]), b.cls((x) => x >= 0x30 && x <= 0x39), b.cls([])];
  const R = rng.int(1, 24);
  const ids = Array.from({ length: R }, (_, i) => b.rule(`r${i}`));
  for (let r = 0; r < R; r++) {
    const alts: Sym[][] = [];
    for (let k = rng.int(0, 4); k > 0; k--) {
      const a: Sym[] = [];
      for (let n = rng.int(0, 5); n > 0; n--) a.push(rng.chance(0.5) ? rng.pick(classes) : ids[rng.int(0, R - 1)]);
      alts.push(a);
    }
    b.define(ids[r], alts);
  }
  return { b, start: ids[0] };
}

test('Grammar build: shortest derivations, kept alternatives, layout and minRest equal plain references (random grammars)', () => {
  const rng = new Rng(20261207);
  let built = 0, unsat = 0, leftRec = 0;
  for (let trial = 0; trial < 3000; trial++) {
    const { b, start } = randomBuilder(rng);
    const alts = b.alts as Sym[][][];
    const classEmpty = b.classes.map((c) => c.indexOf(1) < 0);
    const ref = referenceMinLen(alts, classEmpty);
    let g: Grammar;
    try { g = b.build(start); } catch (e) {
      if (e instanceof UnsatisfiableError) { assert.equal(ref[start], Infinity, `trial ${trial}: start refused as unsatisfiable but derives ${ref[start]}`); unsat++; continue; }
      if (e instanceof GrammarError && /left-recursive/.test(e.message)) { leftRec++; continue; }
      throw e;
    }
    built++;
    assert.notEqual(ref[start], Infinity, `trial ${trial}: unsatisfiable start built`);
    const symLen = (s: Sym): number => (s >= 0 ? ref[s] : classEmpty[-2 - s] ? Infinity : 1);
    for (let r = 0; r < alts.length; r++) {
      assert.equal(g.minLen[r], ref[r], `trial ${trial}: rule ${r}'s shortest derivation`);
      const want = alts[r].filter((a) => a.every((s) => symLen(s) < Infinity));
      const got = [...g.alts(r)].map((p) => {
        const out: Sym[] = [];
        let i = p;
        for (; g.prog[i] !== END; i++) {
          // minRest: the shortest rest of the alternative from each position.
          let rest = 0;
          for (let j = i; g.prog[j] !== END; j++) rest += symLen(g.prog[j]);
          assert.equal(g.minRest[i], rest, `trial ${trial}: minRest at ${i}`);
          out.push(g.prog[i]);
        }
        assert.equal(g.minRest[i], 0);
        return out;
      });
      assert.deepEqual(got, want, `trial ${trial}: rule ${r}'s kept alternatives`);
    }
  }
  // Enough of each outcome for the comparison to mean something.
  assert.ok(built > 1000 && unsat > 100 && leftRec > 100, `built ${built}, unsatisfiable ${unsat}, left-recursive ${leftRec}`);
});

test('Grammar build: bounded repetitions (chain levels) keep their shortest lengths and alternatives', () => {
  const rng = new Rng(7);
  for (let trial = 0; trial < 300; trial++) {
    const b = new GrammarBuilder();
    const unitOk = rng.chance(0.7);
    const unit = unitOk ? b.cls([0x61]) : b.rule('dead', [[b.cls([])]]);
    const min = rng.int(0, 3), max = min + rng.int(0, 6);
    const body = b.repeat('x', [unit], min, max);
    const root = b.rule('root', [[...body, b.cls([0x2e])]]);
    let g: Grammar;
    try { g = b.build(root); } catch (e) {
      assert.ok(e instanceof UnsatisfiableError && !unitOk && min > 0, `trial ${trial}: ${String(e)}`);
      continue;
    }
    // The root's shortest derivation: min units and the final byte (a dead unit: only min = 0 derives).
    assert.equal(g.minLen[root], unitOk ? min + 1 : 1, `trial ${trial}: min ${min} max ${max} unit ${unitOk}`);
    // Every string of the language, by expanding the rules (lengths min..max units).
    const lengths = new Set<number>();
    const walk = (stack: Sym[], n: number): void => {
      if (n > max + 2) return;
      if (stack.length === 0) { lengths.add(n); return; }
      const [s, ...rest] = stack;
      if (s < 0) { walk(rest, n + 1); return; }
      for (const p of g.alts(s)) {
        const syms: Sym[] = [];
        for (let i = p; g.prog[i] !== END; i++) syms.push(g.prog[i]);
        walk([...syms, ...rest], n);
      }
    };
    walk([root], 0);
    const want = new Set<number>();
    for (let k = min; k <= (unitOk ? max : 0); k++) if (unitOk || k === 0) want.add(k + 1);
    assert.deepEqual([...lengths].sort((x, y) => x - y), [...want].sort((x, y) => x - y), `trial ${trial}: min ${min} max ${max} unit ${unitOk}`);
  }
});

/** GrammarBuilder.trie as first written: one level per symbol, each rest prepended with its symbol. */
function referenceTrie(b: GrammarBuilder, name: string, seqs: Sym[][]): Sym {
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
      const rest = at(g, i + 1);
      alts.push(rest.length === 1 ? [x, ...rest[0]] : [x, b.rule(name, rest)]);
    }
    return alts;
  };
  return b.alt(name, at(seqs, 0));
}

test('GrammarBuilder.trie: the rules of the plain trie (enum values: shared prefixes, values that are prefixes of others, duplicates, the empty value)', () => {
  const rng = new Rng(5);
  for (let trial = 0; trial < 400; trial++) {
    const words: string[] = [];
    for (let k = rng.int(1, 60); k > 0; k--) {
      const w = rng.chance(0.3) && words.length ? rng.pick(words) : '';
      words.push(w.slice(0, rng.int(0, w.length)) + Array.from({ length: rng.int(0, 6) }, () => rng.pick(['a', 'b', 'c', '-', 'é'])).join(''));
    }
    const b1 = new GrammarBuilder(), b2 = new GrammarBuilder();
    const r1 = b1.trie('enum', words.map((w) => b1.lit(JSON.stringify(w))));
    const r2 = referenceTrie(b2, 'enum', words.map((w) => b2.lit(JSON.stringify(w))));
    assert.equal(r1, r2, `trial ${trial}: root`);
    assert.deepEqual(b1.names, b2.names, `trial ${trial}: names`);
    assert.deepEqual(b1.alts, b2.alts, `trial ${trial}: alternatives`);
  }
});
