// Generator.shuffle (the seeded Fisher–Yates shared by the batchers, Medusa's self-distillation,
// SFT's splits and the mixed-modal documents): a permutation, the same one for the same seed, and
// uniform over the 3! orders (chi-square over 60,000 shuffles).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator } from '../../src/tensor/random.js';

test('Generator.shuffle: a permutation in place, the same for the same seed, another for another seed', () => {
  const a = Array.from({ length: 50 }, (_, i) => i);
  const s1 = new Generator(7).shuffle([...a]);
  assert.deepEqual([...s1].sort((x, y) => x - y), a);
  assert.deepEqual(new Generator(7).shuffle([...a]), s1);
  assert.notDeepEqual(new Generator(8).shuffle([...a]), s1);
  const typed = Uint32Array.from(a);
  assert.equal(new Generator(7).shuffle(typed), typed, 'in place, the same array back');
  assert.deepEqual(Array.from(typed), s1);
});

test('Generator.shuffle: the 6 orders of 3 items are equally likely (chi-square, 5 degrees of freedom)', () => {
  const g = new Generator(1), counts = new Map<string, number>(), n = 60000;
  for (let k = 0; k < n; k++) {
    const key = g.shuffle(['a', 'b', 'c']).join('');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  assert.equal(counts.size, 6);
  const e = n / 6;
  const chi2 = [...counts.values()].reduce((s, c) => s + (c - e) ** 2 / e, 0);
  assert.ok(chi2 < 20.5, `chi-square ${chi2.toFixed(2)} (p = 0.001 at 20.5)`);
});
