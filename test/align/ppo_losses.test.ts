// The PPO math (src/align/ppo_losses.ts) against PyTorch: scripts/ref_ppo.py →
// test/fixtures/align/ppo/ppo.json holds one fixed batch (B = 5, L = 7: a full row, a short
// row, an all-padding row, a one-token row, a row with a masked hole; arbitrary finite padding)
// and, written the TRL way, the masked statistics, the per-token rewards (k1, k3, missing-EOS
// penalty), GAE at four (γ, λ) with and without reward whitening, the clipped policy loss at two
// clip ranges and the clipped value loss at two, with their gradients and TRL's metrics, and
// the adaptive KL coefficient over five updates.
// Tolerances: |a − b| ≤ 1e-5 + 1e-5·|b| (the reference is float64 on the same float32 inputs);
// metrics 1e-6. Finite differences (helpers.gradcheck, eps 3e-4: the fixture keeps every ratio
// and every |vpred − old| 2e-3 away from its clip boundary) check the gradients a second way.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { init, shutdown, scope, tensor, mul, heapStats, Tensor } from '../../src/index.js';
import {
  maskedMean, maskedVar, maskedWhiten, tokenRewards, gae, ppoPolicyLoss, ppoValueLoss,
  FixedKLController, AdaptiveKLController, PpoError,
} from '../../src/align/ppo_losses.js';
import { assertClose, fixture, gradcheck, onBackends } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

interface Enc { shape: number[]; data: number[] }
interface Fx {
  B: number; L: number; mask: Enc; logprobs: Enc; old: Enc; ref: Enc; values: Enc; vpred: Enc; scores: Enc; containsEos: boolean[];
  stats: { mean: number; meanAxis0: Enc; meanAxis1: Enc; varUnbiased: number; varBiased: number; whiten: Enc; whitenNoShift: Enc };
  tokenRewards: { kl: 'k1' | 'k3'; klCoef: number; missingEosPenalty: number | null; rewards: Enc; klValues: Enc; scores: Enc }[];
  gae: { gamma: number; lam: number; whitenRewards: boolean; advantages: Enc; returns: Enc; whitenedAdvantages: Enc }[];
  advantages: Enc; returns: Enc;
  policyLoss: { cliprange: number; loss: number; grad: Enc; metrics: Record<string, number> }[];
  valueLoss: { cliprangeValue: number; loss: number; grad: Enc; metrics: Record<string, number> }[];
  adaptiveKl: { init: number; target: number; horizon: number; updates: [number, number][]; values: number[] };
}
const fx = fixture<Fx>('align/ppo/ppo.json');
const { B, L } = fx;
const shape = [B, L] as const;
const f32 = (e: Enc): Float32Array => Float32Array.from(e.data);
const mask = f32(fx.mask);
const TOL = [1e-5, 1e-5] as const;
/** The padding of e replaced by NaN / ±Infinity / huge numbers. */
const dirty = (e: Enc): Float32Array => Float32Array.from(e.data, (x, i) => (mask[i] ? x : [NaN, Infinity, -Infinity, 1e30][i % 4]));

test('the fixture covers an all-padding row, a hole, both clip sides and unclipped tokens', () => {
  const rows = Array.from({ length: B }, (_, b) => mask.slice(b * L, (b + 1) * L).reduce((a, x) => a + x, 0));
  assert.ok(rows.includes(0) && rows.includes(1));
  for (const c of fx.policyLoss) assert.ok(c.metrics['policy/clipfrac_avg'] > 0 && c.metrics['policy/clipfrac_avg'] < 1);
  for (const c of fx.valueLoss) assert.ok(c.metrics['val/clipfrac_avg'] > 0 && c.metrics['val/clipfrac_avg'] < 1);
});

test('maskedMean / maskedVar / maskedWhiten match PyTorch (padding garbage ignored, 0 on padding)', () => {
  const x = dirty(fx.values);
  const s = fx.stats;
  assertClose([maskedMean(x, mask)], [s.mean], ...TOL, 'mean');
  assertClose(maskedMean(x, mask, { axis: 0, shape }), s.meanAxis0.data, ...TOL, 'mean axis 0');
  assertClose(maskedMean(x, mask, { axis: 1, shape }), s.meanAxis1.data, ...TOL, 'mean axis 1 (empty row 0)');
  assertClose([maskedVar(x, mask)], [s.varUnbiased], ...TOL, 'var unbiased');
  assertClose([maskedVar(x, mask, false)], [s.varBiased], ...TOL, 'var biased');
  assertClose(maskedWhiten(x, mask), s.whiten.data, ...TOL, 'whiten');
  assertClose(maskedWhiten(x, mask, false), s.whitenNoShift.data, ...TOL, 'whiten, mean kept');
  assert.equal(maskedMean(x, new Float32Array(B * L)), 0, 'empty mask: 0, not NaN');
});

test('tokenRewards: −β·KL per token, the score at the last real token, the missing-EOS penalty', () => {
  for (const c of fx.tokenRewards) {
    for (const asTensor of [false, true]) scope(() => {
      const lp = dirty(fx.logprobs), ref = dirty(fx.ref);
      const r = tokenRewards({
        logprobs: asTensor ? tensor(lp, [B, L]) : lp, refLogprobs: ref, mask: asTensor ? tensor(mask, [B, L]) : mask,
        scores: fx.scores.data, klCoef: c.klCoef, kl: c.kl, missingEosPenalty: c.missingEosPenalty, containsEos: fx.containsEos,
      });
      assertClose(r.rewards, c.rewards.data, ...TOL, `${c.kl} rewards`);
      assertClose(r.kl, c.klValues.data, ...TOL, `${c.kl} kl`);
      assertClose(r.scores, c.scores.data, ...TOL, `${c.kl} scores`);
    });
  }
});

test('gae: advantages, returns and whitened advantages match TRL\'s loop at four (γ, λ)', () => {
  const rewards = f32(fx.tokenRewards[0].rewards);
  for (const c of fx.gae) {
    const rw = c.whitenRewards ? maskedWhiten(rewards, mask, false) : rewards;
    const { advantages, returns } = gae({ rewards: rw, values: dirty(fx.values), mask, shape, gamma: c.gamma, lam: c.lam });
    const what = `γ ${c.gamma} λ ${c.lam}${c.whitenRewards ? ' whitened rewards' : ''}`;
    assertClose(advantages, c.advantages.data, ...TOL, `${what} advantages`);
    assertClose(returns, c.returns.data, ...TOL, `${what} returns`);
    assertClose(maskedWhiten(advantages, mask), c.whitenedAdvantages.data, ...TOL, `${what} whitened`);
  }
});

test('gae against a hand computation: one row, γ = 0.5, λ = 0.5', () => {
  // r = [1, 0, 2], V = [0.5, 1, -1], then padding: δ = [1 + 0.5 − 0.5, 0 − 0.5 − 1, 2 + 1] = [1, −1.5, 3]
  // A_2 = 3, A_1 = −1.5 + 0.25·3 = −0.75, A_0 = 1 + 0.25·(−0.75) = 0.8125
  const { advantages, returns } = gae({ rewards: Float32Array.of(1, 0, 2, 9), values: Float32Array.of(0.5, 1, -1, NaN), mask: Float32Array.of(1, 1, 1, 0), shape: [1, 4], gamma: 0.5, lam: 0.5 });
  assertClose(advantages, [0.8125, -0.75, 3, 0], 1e-7, 0, 'advantages');
  assertClose(returns, [1.3125, 0.25, 2, 0], 1e-7, 0, 'returns');
});

fx.policyLoss.forEach((c) => {
  test(`ppoPolicyLoss ε = ${c.cliprange}: loss, dL/dlogprobs and metrics match PyTorch on both backends`, () => {
    onBackends((bk) => scope(() => {
      const lp = tensor(dirty(fx.logprobs), [B, L]).requiresGrad_();
      const { loss, metrics } = ppoPolicyLoss({ logprobs: lp, oldLogprobs: dirty(fx.old), advantages: dirty(fx.advantages), mask: tensor(mask, [B, L]), cliprange: c.cliprange });
      assert.deepEqual(loss.shape, []);
      assertClose([loss.item()], [c.loss], ...TOL, `${bk} loss`);
      loss.backward();
      assertClose(lp.grad!.toArray(), c.grad.data, ...TOL, `${bk} dL/dlogprobs`);
      assert.deepEqual(Object.keys(metrics).sort(), Object.keys(c.metrics).sort());
      for (const [k, v] of Object.entries(c.metrics)) assertClose([metrics[k]], [v], 1e-6, 1e-6, `${bk} ${k}`);
    }));
  });
});

fx.valueLoss.forEach((c) => {
  test(`ppoValueLoss c = ${c.cliprangeValue}: loss, dL/dvpred and metrics match PyTorch on both backends`, () => {
    onBackends((bk) => scope(() => {
      const vp = tensor(dirty(fx.vpred), [B, L]).requiresGrad_();
      const { loss, metrics } = ppoValueLoss({ values: vp, oldValues: tensor(dirty(fx.values), [B, L]), returns: dirty(fx.returns), mask, cliprangeValue: c.cliprangeValue });
      assertClose([loss.item()], [c.loss], ...TOL, `${bk} loss`);
      loss.backward();
      assertClose(vp.grad!.toArray(), c.grad.data, ...TOL, `${bk} dL/dvpred`);
      assert.deepEqual(Object.keys(metrics).sort(), Object.keys(c.metrics).sort());
      for (const [k, v] of Object.entries(c.metrics)) assertClose([metrics[k]], [v], 1e-6, 1e-6, `${bk} ${k}`);
    }));
  });
});

test('finite differences agree with the analytic gradients of both losses (ref backend)', () => {
  onBackends((bk) => {
    if (bk !== 'ref') return;
    for (const c of fx.policyLoss) scope(() => {
      const lp = tensor(f32(fx.logprobs), [B, L]).requiresGrad_();
      gradcheck(`policy ε ${c.cliprange}`, (x) => ppoPolicyLoss({ logprobs: x, oldLogprobs: f32(fx.old), advantages: f32(fx.advantages), mask, cliprange: c.cliprange }).loss, [lp], { eps: 3e-4, atol: 1e-3, rtol: 1e-2 });
    });
    for (const c of fx.valueLoss) scope(() => {
      const vp = tensor(f32(fx.vpred), [B, L]).requiresGrad_();
      gradcheck(`value c ${c.cliprangeValue}`, (x) => ppoValueLoss({ values: x, oldValues: f32(fx.values), returns: f32(fx.returns), mask, cliprangeValue: c.cliprangeValue }).loss, [vp], { eps: 3e-4, atol: 1e-3, rtol: 1e-2 });
    });
  });
});

test('values computed by ops pass the gradient on; an all-padding batch gives 0 losses and gradients, not NaN', () => {
  scope(() => {
    const c = fx.valueLoss[0];
    const x = tensor(f32(fx.vpred), [B, L]).requiresGrad_();
    const { loss } = ppoValueLoss({ values: mul(x, 1), oldValues: f32(fx.values), returns: f32(fx.returns), mask, cliprangeValue: c.cliprangeValue });
    loss.backward();
    assertClose(x.grad!.toArray(), c.grad.data, ...TOL, 'through mul');
    const none = new Float32Array(B * L);
    const lp = tensor(dirty(fx.logprobs), [B, L]).requiresGrad_();
    const vp = tensor(dirty(fx.vpred), [B, L]).requiresGrad_();
    const p = ppoPolicyLoss({ logprobs: lp, oldLogprobs: dirty(fx.old), advantages: dirty(fx.advantages), mask: none, cliprange: 0.2 });
    const v = ppoValueLoss({ values: vp, oldValues: dirty(fx.values), returns: dirty(fx.returns), mask: none, cliprangeValue: 0.2 });
    p.loss.backward();
    v.loss.backward();
    assert.equal(p.loss.item(), 0);
    assert.equal(v.loss.item(), 0);
    assert.ok(lp.grad!.toArray().every((g) => g === 0) && vp.grad!.toArray().every((g) => g === 0));
    for (const [k, m] of Object.entries({ ...p.metrics, ...v.metrics })) assert.ok(Number.isFinite(m), `${k} = ${m}`);
    const g = gae({ rewards: dirty(fx.values), values: dirty(fx.values), mask: none, shape, gamma: 1, lam: 0.95 });
    assert.ok(g.advantages.every((a) => a === 0) && g.returns.every((a) => a === 0));
  });
});

test('the losses release their intermediates with the scope (flat heap over repeated steps)', () => {
  const step = (): void => scope(() => {
    const lp = tensor(f32(fx.logprobs), [B, L]).requiresGrad_();
    const vp = tensor(f32(fx.vpred), [B, L]).requiresGrad_();
    ppoPolicyLoss({ logprobs: lp, oldLogprobs: f32(fx.old), advantages: f32(fx.advantages), mask, cliprange: 0.2 }).loss.backward();
    ppoValueLoss({ values: vp, oldValues: f32(fx.values), returns: f32(fx.returns), mask, cliprangeValue: 0.2 }).loss.backward();
    lp.grad!.dispose();
    vp.grad!.dispose();
  });
  step();
  const before = heapStats().inUse;
  for (let i = 0; i < 4; i++) step();
  assert.equal(heapStats().inUse, before);
});

test('AdaptiveKLController follows Ziegler et al.\'s update (PyTorch-script values); FixedKLController stays', () => {
  const a = fx.adaptiveKl;
  const kl = new AdaptiveKLController(a.init, a.target, a.horizon);
  const got: number[] = [];
  for (const [k, n] of a.updates) { kl.update(k, n); got.push(kl.value); }
  assertClose(got, a.values, 1e-12, 1e-8, 'adaptive β');
  // by hand: KL 12 vs target 6 → error clipped to +0.2, β·(1 + 0.2·256/10000)
  const k2 = new AdaptiveKLController(0.2, 6, 10000);
  k2.update(12, 256);
  assert.equal(k2.value, 0.2 * (1 + 0.2 * 256 / 10000));
  const f = new FixedKLController(0.05);
  f.update(100, 1000);
  assert.equal(f.value, 0.05);
});

test('bad input names the field at fault', () => {
  scope(() => {
    const lp = tensor(f32(fx.logprobs), [B, L]).requiresGrad_();
    const bad = (f: () => unknown, re: RegExp): void => { assert.throws(f, (e: Error) => e instanceof PpoError && re.test(e.message), String(re)); };
    const pol = { logprobs: lp, oldLogprobs: f32(fx.old), advantages: f32(fx.advantages), mask, cliprange: 0.2 };
    bad(() => ppoPolicyLoss({ ...pol, cliprange: 1.5 }), /ppoPolicyLoss: cliprange: 1.5 is not a number in \(0, 1\)/);
    bad(() => ppoPolicyLoss({ ...pol, cliprange: NaN }), /cliprange: NaN/);
    bad(() => ppoPolicyLoss({ ...pol, oldLogprobs: new Float32Array(3) }), /oldLogprobs: 3 values, expected B·L = 5·7 = 35/);
    bad(() => ppoPolicyLoss({ ...pol, advantages: tensor(new Float32Array(B * L), [L, B]) }), /advantages: shape \[7, 5\], expected \[5, 7\]/);
    bad(() => ppoPolicyLoss({ ...pol, mask: new Float32Array(B * L).fill(0.5) }), /mask: value 0.5 at \[0, 0\] is not 0 or 1/);
    bad(() => ppoPolicyLoss({ ...pol, logprobs: tensor(new Float32Array(B * L)) }), /logprobs: shape \[35\], expected \[B, L\]/);
    bad(() => ppoPolicyLoss({ ...pol, advantages: Float32Array.from(fx.advantages.data, (x, i) => (i === 0 ? NaN : x)) }), /advantages: value NaN at \[0, 0\] \(a real token\)/);
    const val = { values: lp, oldValues: f32(fx.values), returns: f32(fx.returns), mask, cliprangeValue: 0.2 };
    bad(() => ppoValueLoss({ ...val, cliprangeValue: 0 }), /ppoValueLoss: cliprangeValue: 0 is not a positive number/);
    bad(() => ppoValueLoss({ ...val, returns: new Float32Array(B * L + 1) }), /returns: 36 values/);
    bad(() => ppoValueLoss({ ...val, values: f32(fx.vpred) as unknown as Tensor }), /values: expected a Tensor/);
    const tr = { logprobs: f32(fx.logprobs), refLogprobs: f32(fx.ref), mask, scores: fx.scores.data, klCoef: 0.1 };
    bad(() => tokenRewards({ ...tr, scores: [1, 2] }), /tokenRewards: mask: 35 values are not B = 2 rows/);
    bad(() => tokenRewards({ ...tr, refLogprobs: new Float32Array(4) }), /refLogprobs: 4 values/);
    bad(() => tokenRewards({ ...tr, klCoef: -1 }), /klCoef: -1 is not a number ≥ 0/);
    bad(() => tokenRewards({ ...tr, kl: 'k2' as never }), /kl: unknown KL estimator 'k2'/);
    bad(() => tokenRewards({ ...tr, missingEosPenalty: 1 }), /containsEos: needed with missingEosPenalty: 5 booleans, got none/);
    bad(() => tokenRewards({ ...tr, scores: [1, 2, NaN, 4, 5] }), /scores: value NaN at 2/);
    const g = { rewards: f32(fx.values), values: f32(fx.values), mask, shape, gamma: 1, lam: 0.95 };
    bad(() => gae({ ...g, lam: 1.5 }), /gae: lam: 1.5 is not a number in \[0, 1\]/);
    bad(() => gae({ ...g, gamma: -0.1 }), /gae: gamma: -0.1/);
    bad(() => gae({ ...g, shape: [B, L + 1] }), /gae: mask: 35 values, expected B·L = 5·8 = 40/);
    bad(() => gae({ ...g, values: new Float32Array(2) }), /gae: values: 2 values/);
    bad(() => maskedVar(Float32Array.of(1, 2), Float32Array.of(1, 0)), /maskedVar: mask: one value has mask 1/);
    bad(() => maskedWhiten(Float32Array.of(1, 2), Float32Array.of(0, 0)), /maskedWhiten: mask: no value has mask 1/);
    bad(() => maskedMean(Float32Array.of(1, 2), Float32Array.of(1)), /maskedMean: mask: expected a Float32Array of 2 values/);
    bad(() => maskedMean(Float32Array.of(1, 2), Float32Array.of(1, 1), { axis: 1, shape: [3, 1] }), /maskedMean: shape: \[3, 1\] does not hold the 2 values/);
    bad(() => new AdaptiveKLController(0.2, 0, 10000), /AdaptiveKLController: target: 0 is not a positive number/);
    bad(() => new AdaptiveKLController(0.2, 6, 10000).update(NaN, 1), /update: currentKl: NaN/);
    bad(() => new FixedKLController(-1), /FixedKLController: klCoef: -1/);
  });
});
