// Advantages and reward shaping (src/align/advantages.ts) against scripts/ref_grpo.py →
// test/fixtures/align/grpo/advantages.json: TRL's group-relative advantages (torch's unbiased
// std, scale group / batch / none, a one-completion group and batch, an all-equal batch), the
// zero-std groups of DAPO's dynamic sampling, DAPO's soft overlong punishment across the whole
// length range and Kimi k1.5's length penalty. Then the pieces without an outside reference,
// checked against their definitions: overlong filtering, shortest rejection sampling, and the
// prioritised / curriculum problem sampler (draw frequencies against w_i / Σw, the pool's growth,
// resume through state() / load()).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  groupAdvantages, zeroStdGroups, filterGroups, overlongPenalty, maskTruncated, kimiLengthPenalty, shortestRejection,
  ProblemSampler, AdvantageError,
} from '../../src/align/advantages.js';
import type { RewardScale } from '../../src/align/advantages.js';
import { assertClose, fixture } from '../helpers.js';

interface Fx {
  advantages: { name: string; rewards: number[]; groupSize: number; group: number[]; batch: number[]; none: number[]; zeroStd: boolean[] }[];
  overlong: { maxLen: number; cacheLen: number; lengths: number[]; penalty: number[] }[];
  kimiLength: { lengths: number[]; correct: boolean[]; groupSize: number; penalty: number[] }[];
}
const fx = fixture<Fx>('align/grpo/advantages.json');

for (const c of fx.advantages) {
  test(`groupAdvantages, ${c.name}: group / batch / none scaling as TRL (PyTorch)`, () => {
    for (const scale of ['group', 'batch', 'none'] as RewardScale[]) {
      assertClose(groupAdvantages(c.rewards, c.groupSize, scale), c[scale], 1e-6, 1e-6, scale);
      assertClose(groupAdvantages(Float32Array.from(c.rewards), c.groupSize, scale), c[scale], 1e-6, 1e-6, `${scale} (Float32Array)`);
    }
    assert.deepEqual(zeroStdGroups(c.rewards, c.groupSize), c.zeroStd);
  });
}

test('groupAdvantages defaults to group scaling; all-equal groups get 0, not ±1e4-scaled noise', () => {
  const c = fx.advantages[0];
  assert.deepEqual(groupAdvantages(c.rewards, c.groupSize), groupAdvantages(c.rewards, c.groupSize, 'group'));
  assert.deepEqual(Array.from(groupAdvantages([0.1, 0.1, 0.1], 3)), [0, 0, 0]);
});

test('filterGroups keeps the rows of groups with a signal (DAPO dynamic sampling)', () => {
  const r = fx.advantages[0].rewards; // groups [1,0,0,1] [1,1,1,1] [0,0,0,1]
  assert.deepEqual(filterGroups(r, 4), { keep: [0, 1, 2, 3, 8, 9, 10, 11], groups: [0, 2], dropped: [1] });
  assert.deepEqual(filterGroups([1, 1.05, 3, 4], 2, 0.1), { keep: [2, 3], groups: [1], dropped: [0] });
  assert.deepEqual(zeroStdGroups([1, 1.05, 3, 4], 2), [false, false]);
});

for (const c of fx.overlong) {
  test(`overlongPenalty Lmax ${c.maxLen}, Lcache ${c.cacheLen}: DAPO's formula over every length`, () => {
    assertClose(overlongPenalty(c.lengths, c.maxLen, c.cacheLen), c.penalty, 1e-7, 1e-6);
  });
}

for (const c of fx.kimiLength) {
  test(`kimiLengthPenalty (groups of ${c.groupSize}): λ for right answers, min(0, λ) for wrong ones`, () => {
    assertClose(kimiLengthPenalty(c.lengths, c.correct, c.groupSize), c.penalty, 1e-7, 1e-6);
  });
}

test('maskTruncated zeroes the rows of truncated completions and leaves the input alone', () => {
  const mask = Float32Array.from([1, 1, 0, 1, 1, 1, 1, 0, 0]);
  assert.deepEqual(Array.from(maskTruncated(mask, [false, true, false])), [1, 1, 0, 0, 0, 0, 1, 0, 0]);
  assert.equal(mask[3], 1);
  assert.throws(() => maskTruncated(mask, [true, false]), /maskTruncated: mask: 9 values are not 2 rows/);
});

test('shortestRejection: per prompt the shortest correct sample, first-seen prompt order, first of ties', () => {
  const s = [
    { prompt: 'a', text: 'a1', correct: true, length: 30 },
    { prompt: 'b', text: 'b1', correct: false, length: 3 },
    { prompt: 'a', text: 'a2', correct: false, length: 5 },
    { prompt: 'c', text: 'c1', correct: true, length: 9 },
    { prompt: 'a', text: 'a3', correct: true, length: 12 },
    { prompt: 'c', text: 'c2', correct: true, length: 9 },
    { prompt: 'b', text: 'b2', correct: false, length: 1 },
    { prompt: 'a', text: 'a4', correct: true, length: 12 },
  ];
  assert.deepEqual(shortestRejection(s).map((x) => x.text), ['a3', 'c1']);
  assert.deepEqual(shortestRejection([]), []);
});

test('ProblemSampler (prioritised): draw frequencies follow max(1 − s_i, floor) / Σ', () => {
  const rates = [0, 0.25, 0.5, 0.9, 1];
  for (const floor of [0, 0.2]) {
    const ps = new ProblemSampler(5, { seed: 3, floor });
    rates.forEach((r, i) => ps.update(i, r * 4, 4));
    const w = rates.map((r) => Math.max(1 - r, floor)), W = w.reduce((a, b) => a + b);
    const N = 8000, n = new Array(5).fill(0);
    for (let d = 0; d < N; d++) n[ps.sample(1)[0]]++;
    w.forEach((wi, i) => {
      const p = wi / W, sd = Math.sqrt(p * (1 - p) / N);
      assert.ok(Math.abs(n[i] / N - p) <= 4 * sd + 1e-12, `floor ${floor}, problem ${i}: frequency ${n[i] / N}, expected ${p}`);
    });
    if (floor === 0) assert.equal(n[4], 0, 'a problem always solved is not drawn');
  }
});

test('ProblemSampler: k distinct draws; uniform when every weight is 0 or prioritized is off', () => {
  const ps = new ProblemSampler(6, { seed: 1 });
  for (let i = 0; i < 6; i++) ps.update(i, 2, 2); // all solved: weights 0 → uniform
  const seen = new Set<number>();
  for (let d = 0; d < 200; d++) {
    const s = ps.sample(4);
    assert.equal(new Set(s).size, 4, 'distinct');
    s.forEach((x) => seen.add(x));
  }
  assert.equal(seen.size, 6);
  const partly = new ProblemSampler(4, { seed: 2 });
  partly.update(0, 1, 1); partly.update(1, 1, 1);
  for (let d = 0; d < 50; d++) assert.deepEqual(partly.sample(3).slice(0, 2).sort(), [2, 3], 'positive weights are drawn first');
  assert.deepEqual(new ProblemSampler(5).sample(5).sort(), [0, 1, 2, 3, 4]);
  const flat = new ProblemSampler(3, { seed: 4, prioritized: false });
  flat.update(0, 5, 5);
  assert.equal(flat.weight(0), 1);
});

test('ProblemSampler running success rate: cumulative by default, or an exponential moving average', () => {
  const c = new ProblemSampler(2);
  c.update(0, 1, 4); c.update(0, 3, 4);
  assert.equal(c.successRate(0), 0.5);
  assert.equal(c.successRate(1), 0);
  const e = new ProblemSampler(2, { ema: 0.25 });
  e.update(0, 1, 4); e.update(0, 3, 4);
  assert.equal(e.successRate(0), 0.75 * 0.25 + 0.25 * 0.75);
});

test('ProblemSampler curriculum: easiest problems first, the pool growing to the whole set', () => {
  const difficulty = [5, 1, 9, 3, 3, 7, 0, 8];
  const ps = new ProblemSampler(8, { seed: 9, difficulty, curriculumSteps: 4, curriculumStart: 0.25, prioritized: false });
  // order by difficulty, ties by index: 6(0) 1(1) 3(3) 4(3) 0(5) 5(7) 7(8) 2(9)
  assert.deepEqual(ps.pool(), [6, 1]);
  const sizes: number[] = [];
  for (let s = 0; s < 6; s++) {
    const pool = ps.pool();
    sizes.push(pool.length);
    for (const x of ps.sample(2)) assert.ok(pool.includes(x), `step ${s}: ${x} is outside the pool ${pool}`);
  }
  assert.deepEqual(sizes, [2, 4, 5, 7, 8, 8]); // ⌈8·(0.25 + 0.75·min(1, s/4))⌉
  assert.deepEqual(ps.pool(), [6, 1, 3, 4, 0, 5, 7, 2]);
  const small = new ProblemSampler(8, { difficulty, curriculumSteps: 10 });
  assert.equal(small.sample(5).length, 5, 'the pool holds at least k problems');
});

test('ProblemSampler state() / load(): a resumed sampler draws what the original draws', () => {
  const mk = (): ProblemSampler => new ProblemSampler(10, { seed: 42, difficulty: [3, 1, 4, 1, 5, 9, 2, 6, 5, 3], curriculumSteps: 5 });
  const a = mk();
  for (let s = 0; s < 3; s++) a.sample(3).forEach((i, j) => a.update(i, j % 2, 2));
  const saved = JSON.parse(JSON.stringify(a.state()));
  const b = mk();
  b.load(saved);
  for (let s = 0; s < 5; s++) {
    const x = a.sample(3), y = b.sample(3);
    assert.deepEqual(y, x, `step ${s}`);
    x.forEach((i) => { a.update(i, 1, 2); b.update(i, 1, 2); });
  }
  assert.deepEqual(b.state(), a.state());
  const other = new ProblemSampler(10, { seed: 43 });
  assert.notDeepEqual([0, 1, 2, 3].map(() => other.sample(3)), [0, 1, 2, 3].map(() => new ProblemSampler(10, { seed: 42 }).sample(3)));
  assert.throws(() => new ProblemSampler(9).load(saved), /ProblemSampler.load: size: the state is for 10 problems, this sampler has 9/);
  assert.throws(() => mk().load({ ...saved, rng: [1, 2] }), /ProblemSampler.load: rng/);
});

test('bad input names the function and the argument at fault', () => {
  const bad = (f: () => unknown, re: RegExp): void => { assert.throws(f, (e: Error) => e instanceof AdvantageError && re.test(e.message), String(re)); };
  bad(() => groupAdvantages([1, 2, 3], 2), /groupAdvantages: rewards: 3 values are not a whole number of groups of 2/);
  bad(() => groupAdvantages([1, NaN], 2), /groupAdvantages: rewards: value NaN at 1 is not finite/);
  bad(() => groupAdvantages([1, 2], 0), /groupAdvantages: groupSize: 0 is not a positive integer/);
  bad(() => groupAdvantages([1, 2], 2, 'std' as never), /groupAdvantages: scale: 'std'/);
  bad(() => overlongPenalty([1], 10, 11), /overlongPenalty: cacheLen: 11 is not in \(0, maxLen = 10\]/);
  bad(() => overlongPenalty([-1], 10, 2), /overlongPenalty: lengths: value -1 at 0/);
  bad(() => kimiLengthPenalty([1, 2], [true], 2), /kimiLengthPenalty: correct: 1 flags for 2 lengths/);
  bad(() => shortestRejection([{ prompt: 'a', correct: true, length: NaN }]), /shortestRejection: samples\[0\].length/);
  bad(() => new ProblemSampler(0), /ProblemSampler: size: 0/);
  bad(() => new ProblemSampler(3, { difficulty: [1, 2, 3] }), /ProblemSampler: curriculumSteps: a curriculum \(difficulty\) needs/);
  bad(() => new ProblemSampler(3, { difficulty: [1, 2] , curriculumSteps: 2 }), /ProblemSampler: difficulty: 2 values for 3 problems/);
  bad(() => new ProblemSampler(3, { curriculumSteps: 2 }), /ProblemSampler: difficulty: curriculumSteps is set/);
  bad(() => new ProblemSampler(3).sample(4), /ProblemSampler.sample: k: 4 is not in \[1, 3\]/);
  bad(() => new ProblemSampler(3).update(3, 0, 1), /ProblemSampler.update: index: 3/);
  bad(() => new ProblemSampler(3).update(0, 2, 1), /ProblemSampler.update: successes: 2 is not in \[0, attempts = 1\]/);
});
