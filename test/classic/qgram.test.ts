// Q-gram profiles and measures against scikit-learn's CountVectorizer profiles with numpy measures
// (and textdistance's set measures, cross-checked by scripts/gen_qgram_fixtures.py), hand-worked
// examples from the definitions (Ukkonen 1992), and properties: symmetry, identity, bounds, the
// triangle inequality of the q-gram and Jaccard distances, and Ukkonen's bound D_q <= 2q * edit distance.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  qgramProfile, qgramDistance, qgramJaccard, qgramJaccardDistance, qgramCosine, qgramDice, qgramOverlap,
  qgramScore, GramTable, QgramEncoder, ClassicInputError, type QgramMetric, type GramUnit,
} from '../../src/classic/index.js';
import { Rng } from '../../src/classic/text.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const fixture = (name: string): any => JSON.parse(readFileSync(path.join(root, 'test', 'fixtures', 'qgram', name), 'utf8'));

interface PairCase { a: string; b: string; q: number; pad: boolean; unit: GramUnit; profile_a: Record<string, number>; qgram: number; jaccard: number; dice: number; overlap: number; cosine: number }

test('profiles and all five measures equal scikit-learn + numpy on the fixtures (chars incl. Chinese and emoji, words, padded or not)', () => {
  const cases: PairCase[] = fixture('pairs.json').cases;
  assert.ok(cases.length > 150);
  for (const c of cases) {
    const opts = { q: c.q, pad: c.pad, unit: c.unit };
    const what = `${JSON.stringify(c.a)} vs ${JSON.stringify(c.b)} q=${c.q} pad=${c.pad} ${c.unit}`;
    const prof = qgramProfile(c.a, opts);
    assert.deepEqual(Object.fromEntries([...prof].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))),
      Object.fromEntries(Object.entries(c.profile_a).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))), `profile of ${what}`);
    assert.equal(qgramDistance(c.a, c.b, opts), c.qgram, `qgram ${what}`);
    for (const m of ['jaccard', 'dice', 'overlap', 'cosine'] as const) {
      const got = qgramScore(m, c.a, c.b, opts);
      assert.ok(Math.abs(got - c[m]) <= 1e-12, `${m} ${what}: ${got} vs ${c[m]}`);
    }
  }
});

test('hand-worked examples from the definitions', () => {
  // "abab" has 2-grams ab, ba, ab; "baba" has ba, ab, ba: Σ|a_g - b_g| = |2-1| + |1-2| = 2.
  assert.equal(qgramDistance('abab', 'baba', { q: 2 }), 2);
  assert.equal(qgramJaccard('abab', 'baba', { q: 2 }), 1);
  assert.ok(Math.abs(qgramCosine('abab', 'baba', { q: 2 }) - 4 / 5) < 1e-15); // (2·1 + 1·2) / (√5 √5)
  // night: ni ig gh ht; nacht: na ac ch ht. One shared gram of 7 distinct.
  assert.equal(qgramDistance('night', 'nacht', { q: 2 }), 6);
  assert.equal(qgramJaccard('night', 'nacht', { q: 2 }), 1 / 7);
  assert.equal(qgramJaccardDistance('night', 'nacht', { q: 2 }), 1 - 1 / 7);
  assert.equal(qgramDice('night', 'nacht', { q: 2 }), 2 / 8);
  assert.equal(qgramOverlap('night', 'nacht', { q: 2 }), 1 / 4);
  // Code points, not UTF-16 units: 北京大学 has 北京 京大 大学, 北京 has 北京.
  assert.equal(qgramDistance('北京大学', '北京', { q: 2 }), 2);
  assert.equal(qgramJaccard('北京大学', '北京', { q: 2 }), 1 / 3);
  assert.deepEqual([...qgramProfile('😀😀😀', { q: 2 })], [['😀😀', 2]]);
  // Padding: q-1 markers each side, so "ab" with q=3 has ␂␂a ␂ab ab␃ b␃␃; unpadded it has none.
  assert.deepEqual([...qgramProfile('ab', { q: 3, pad: true }).keys()], ['\u0002\u0002a', '\u0002ab', 'ab\u0003', 'b\u0003\u0003']);
  assert.equal(qgramProfile('ab', { q: 3 }).size, 0);
  // Start and end markers differ: "a" and "a" reversed roles share nothing but themselves.
  assert.equal(qgramDistance('ab', 'ba', { q: 2, pad: true }), 6);
  // Word grams.
  assert.deepEqual([...qgramProfile('to be or not to be', { q: 2, unit: 'word' })], [['to be', 2], ['be or', 1], ['or not', 1], ['not to', 1]]);
  // Empty profiles: identical to each other, disjoint from anything else.
  assert.equal(qgramJaccard('a', 'b', { q: 3 }), 1);
  assert.equal(qgramDistance('a', 'b', { q: 3 }), 0);
  assert.equal(qgramCosine('a', 'abc', { q: 3 }), 0);
  assert.equal(qgramDistance('a', 'abc', { q: 3 }), 1);
});

function levenshtein(a: number[], b: number[]): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

test('properties on random strings: symmetry, identity, bounds, triangle inequality, D_q <= 2q·edit distance', () => {
  const rng = new Rng(7);
  const alphabet = ['a', 'b', 'c', '中', '文', '😀'];
  const rand = (): string => Array.from({ length: Math.floor(rng.next() * 9) }, () => alphabet[Math.floor(rng.next() * (2 + Math.floor(rng.next() * 4)))]).join('');
  const metrics: QgramMetric[] = ['jaccard', 'cosine', 'dice', 'overlap'];
  for (let it = 0; it < 400; it++) {
    const [x, y, z] = [rand(), rand(), rand()];
    const opts = { q: 1 + (it % 4), pad: it % 3 === 0 };
    const d = (a: string, b: string): number => qgramDistance(a, b, opts);
    const jd = (a: string, b: string): number => qgramJaccardDistance(a, b, opts);
    assert.equal(d(x, x), 0);
    assert.equal(d(x, y), d(y, x));
    assert.ok(d(x, z) <= d(x, y) + d(y, z), `triangle ${x} ${y} ${z}`);
    assert.ok(jd(x, z) <= jd(x, y) + jd(y, z) + 1e-12, `Jaccard triangle ${x} ${y} ${z}`);
    for (const m of metrics) {
      const s = qgramScore(m, x, y, opts);
      assert.equal(s, qgramScore(m, y, x, opts), `${m} symmetric`);
      assert.ok(s >= 0 && s <= 1 + 1e-12, `${m} in [0,1]: ${s}`);
      assert.ok(Math.abs(qgramScore(m, x, x, opts) - 1) < 1e-12, `${m}(x, x) = 1`);
    }
    if (!opts.pad) {
      // Ukkonen (1992): one edit changes at most q grams out and q in.
      const ed = levenshtein([...x].map((c) => c.codePointAt(0)!), [...y].map((c) => c.codePointAt(0)!));
      assert.ok(d(x, y) <= 2 * opts.q * ed, `D_${opts.q}(${x}, ${y}) = ${d(x, y)} > 2q·${ed}`);
    }
  }
});

test('the gram table is exact: ids agree with a Map of gram strings over 200k random grams', () => {
  const rng = new Rng(3);
  const q = 3, t = new GramTable(q, 4), buf = new Int32Array(q);
  const ref = new Map<string, number>();
  for (let i = 0; i < 200_000; i++) {
    for (let k = 0; k < q; k++) buf[k] = Math.floor(rng.next() * 80) + (k === 0 ? 0x4e00 : 0);
    const key = buf.join(',');
    const id = t.id(buf, 0, true);
    if (!ref.has(key)) ref.set(key, ref.size);
    assert.equal(id, ref.get(key));
  }
  assert.equal(t.size, ref.size);
  assert.equal(t.id(Int32Array.of(-5, -5, -5), 0, false), -1);
});

test('a frozen encoder gives unseen grams private ids, distinct per gram', () => {
  for (const unit of ['char', 'word'] as GramUnit[]) {
    const enc = new QgramEncoder({ q: 2, unit });
    enc.profile(unit === 'char' ? 'abc' : 'a b c');
    const G = enc.grams.size;
    const p = enc.profile(unit === 'char' ? 'abxyxy' : 'a b x y x y', false);
    assert.equal(enc.grams.size, G, 'no growth');
    assert.deepEqual([...p.ids].filter((i) => i < G), [0]); // ab
    assert.equal(p.size, 4); // ab bx xy yx
    assert.equal(p.total, 5);
  }
});

test('bad options are refused with the option named', () => {
  assert.throws(() => qgramDistance('a', 'b', { q: 0 }), (e: Error) => e instanceof ClassicInputError && /q must be an integer >= 1, got 0/.test(e.message));
  assert.throws(() => qgramDistance('a', 'b', { q: 1.5 }), /q must be an integer/);
  assert.throws(() => qgramScore('levenshtein' as QgramMetric, 'a', 'b'), /metric must be one of/);
  assert.throws(() => qgramProfile('a', { unit: 'byte' as GramUnit }), /unit must be/);
});
