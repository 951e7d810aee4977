// The RL policy losses (src/align/losses.ts) against PyTorch: scripts/ref_grpo.py →
// test/fixtures/align/grpo/losses.json holds one fixed batch (B = 6 in 2 groups of 3, L = 7; a
// row with no completion token, a one-token row, a masked hole inside a row, arbitrary padding
// values) and, for every loss type × KL estimator, β = 0, no old log-probs (ratio 1), two-sided
// delta, clip-higher, DAPO's num_items_in_batch, sequence-level importance sampling, GSPO's tiny
// clip range and Kimi k1.5 at three τ, the loss, dL/dlogprobs and TRL's metrics.
// Tolerances: loss and gradients |a − b| ≤ 1e-5 + 1e-5·|b| (the reference is float64 on the
// same float32 inputs); metrics 1e-6. Finite differences (helpers.gradcheck, eps 3e-4: the
// fixture keeps every ratio 2e-3 away from its clip boundaries) check the gradients a second way.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { init, shutdown, scope, tensor, mul, heapStats, Tensor } from '../../src/index.js';
import { policyLoss, perTokenKl, PolicyLossError, LOSS_TYPES } from '../../src/align/losses.js';
import type { PolicyLossOptions, PolicyLossInput } from '../../src/align/losses.js';
import { assertClose, fixture, gradcheck, onBackends } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

interface Enc { shape: number[]; data: number[] }
interface Case { name: string; options: PolicyLossOptions; old: boolean; ref: boolean; loss: number; grad: Enc; metrics: Record<string, number> }
interface Fx {
  batch: { B: number; L: number; groupSize: number; logprobs: Enc; old: Enc; ref: Enc; mask: Enc; rewards: Enc; advantages: Enc };
  cases: Case[];
}
const fx = fixture<Fx>('align/grpo/losses.json');
const { B, L } = fx.batch;
const f32 = (e: Enc): Float32Array => Float32Array.from(e.data);
const LOSS = { atol: 1e-5, rtol: 1e-5 };

/** The case's inputs; `variant` alternates Tensor and Float32Array forms of old/ref/mask. */
function inputs(c: Case, logprobs: Tensor, variant: number, batch = fx.batch): PolicyLossInput {
  const asT = (e: Enc | Float32Array): Tensor => tensor(e instanceof Float32Array ? e : f32(e), [B, L]);
  const old = c.old ? (variant % 2 ? asT(batch.old) : f32(batch.old)) : null;
  const ref = c.ref ? (variant % 2 ? f32(batch.ref) : asT(batch.ref).requiresGrad_()) : null;
  return {
    logprobs, oldLogprobs: old, refLogprobs: ref,
    mask: variant % 2 ? f32(batch.mask) : asT(batch.mask),
    advantages: f32(batch.advantages), rewards: Array.from(batch.rewards.data),
  };
}

test('the fixture covers every loss type, every KL estimator, β = 0 and ratio 1', () => {
  const names = fx.cases.map((c) => c.options.loss);
  for (const l of LOSS_TYPES) assert.ok(names.includes(l), `no case for ${l}`);
  for (const k of ['k1', 'k2', 'k3']) assert.ok(fx.cases.some((c) => c.options.kl === k && c.options.beta), `no case for ${k}`);
  assert.ok(fx.cases.some((c) => c.options.beta === 0 && c.options.loss === 'dapo'));
  assert.ok(fx.cases.some((c) => !c.old));
  const mask = fx.batch.mask.data;
  const rowSum = (b: number): number => mask.slice(b * L, (b + 1) * L).reduce((a, x) => a + x, 0);
  assert.ok(Array.from({ length: B }, (_, b) => rowSum(b)).includes(0), 'a row without completion tokens');
  // the clip is active somewhere (both sides), so the clip branches are exercised
  const c = fx.cases.find((x) => x.name === 'grpo beta=0')!;
  assert.ok(c.metrics['clip_ratio/low_mean'] > 0 && c.metrics['clip_ratio/high_mean'] > 0);
});

fx.cases.forEach((c, ci) => {
  test(`${c.name}: loss, dL/dlogprobs and metrics match PyTorch on both backends`, () => {
    onBackends((bk) => scope(() => {
      const lp = tensor(f32(fx.batch.logprobs), [B, L]).requiresGrad_();
      const { loss, metrics } = policyLoss(inputs(c, lp, ci), c.options);
      assert.deepEqual(loss.shape, []);
      assertClose([loss.item()], [c.loss], LOSS.atol, LOSS.rtol, `${bk} loss`);
      loss.backward();
      assertClose(lp.grad!.toArray(), c.grad.data, LOSS.atol, LOSS.rtol, `${bk} dL/dlogprobs`);
      assert.deepEqual(Object.keys(metrics).sort(), Object.keys(c.metrics).sort(), 'metric names');
      for (const [k, v] of Object.entries(c.metrics)) assertClose([metrics[k]], [v], 1e-6, 1e-6, `${bk} metric ${k}`);
    }));
  });
});

test('finite differences agree with the analytic gradient for every case (ref backend)', () => {
  onBackends((bk) => {
    if (bk !== 'ref') return;
    for (const c of fx.cases) {
      scope(() => {
        const lp = tensor(f32(fx.batch.logprobs), [B, L]).requiresGrad_();
        // with no old log-probs the ratio is 1 at every point, so the derivative is taken at the
        // fixed old policy equal to the current one (what autograd differentiates)
        const fixedOld = c.old ? null : f32(fx.batch.logprobs);
        gradcheck(c.name, (x) => {
          const inp = inputs(c, x, 1);
          if (fixedOld) inp.oldLogprobs = fixedOld;
          return policyLoss(inp, c.options).loss;
        }, [lp], { eps: 3e-4, atol: 1e-3, rtol: 1e-2 });
      });
    }
  });
});

test('padding may hold NaN or ±Infinity: loss and gradient are those of the finite batch', () => {
  const mask = fx.batch.mask.data;
  const dirty = (e: Enc, v: number[]): Enc => ({ shape: e.shape, data: e.data.map((x, i) => (mask[i] ? x : v[i % v.length])) });
  const batch = { ...fx.batch, logprobs: dirty(fx.batch.logprobs, [NaN, -Infinity, 1e30]), old: dirty(fx.batch.old, [Infinity, NaN]), ref: dirty(fx.batch.ref, [-Infinity, NaN, 7]) };
  for (const name of ['grpo beta=0.1 k3', 'dapo beta=0.1 k2', 'gspo beta=0.1 k1', 'k1.5 tau=0.5']) {
    const c = fx.cases.find((x) => x.name === name)!;
    onBackends((bk) => scope(() => {
      const lp = tensor(f32(batch.logprobs), [B, L]).requiresGrad_();
      const { loss, metrics } = policyLoss(inputs(c, lp, 0, batch), c.options);
      assertClose([loss.item()], [c.loss], LOSS.atol, LOSS.rtol, `${bk} ${name} loss`);
      loss.backward();
      assertClose(lp.grad!.toArray(), c.grad.data, LOSS.atol, LOSS.rtol, `${bk} ${name} grad`);
      for (const [k, v] of Object.entries(c.metrics)) assertClose([metrics[k]], [v], 1e-6, 1e-6, `${bk} ${name} ${k}`);
    }));
  }
});

test('μ > 1 passes: at the first pass, old = the current log-probs gives what old = null gives', () => {
  for (const loss of LOSS_TYPES) {
    scope(() => {
      const o: PolicyLossOptions = { loss, beta: loss === 'k1.5' ? 0 : 0.04, maxCompletionLength: 9, groupSize: 3, epsilonHigh: 0.28 };
      const run = (old: Float32Array | null): [number, number[]] => {
        const lp = tensor(f32(fx.batch.logprobs), [B, L]).requiresGrad_();
        const r = policyLoss({ ...inputs({ old: false, ref: true } as Case, lp, 1), oldLogprobs: old }, o);
        r.loss.backward();
        return [r.loss.item(), lp.grad!.toArray()];
      };
      const [l0, g0] = run(null), [l1, g1] = run(f32(fx.batch.logprobs));
      assertClose([l1], [l0], 1e-7, 1e-6, `${loss} loss`);
      assertClose(g1, g0, 1e-7, 1e-6, `${loss} grad`);
    });
  }
});

test('logprobs computed by ops (not a leaf) pass the gradient on; an all-padding batch gives 0, not NaN', () => {
  scope(() => {
    const c = fx.cases.find((x) => x.name === 'bnpo beta=0.1 k3')!;
    const x = tensor(f32(fx.batch.logprobs), [B, L]).requiresGrad_();
    const lp = mul(x, 1);
    const { loss } = policyLoss(inputs(c, lp, 1), c.options);
    loss.backward();
    assertClose(x.grad!.toArray(), c.grad.data, LOSS.atol, LOSS.rtol, 'through mul');
    for (const loss of LOSS_TYPES) {
      const y = tensor(f32(fx.batch.logprobs), [B, L]).requiresGrad_();
      const r = policyLoss({ ...inputs(c, y, 1), mask: new Float32Array(B * L) }, { loss, beta: 0.1 * +(loss !== 'k1.5'), maxCompletionLength: L, groupSize: 2 });
      r.loss.backward();
      if (loss === 'k1.5') assert.ok(Number.isFinite(r.loss.item()), loss); // (r − r̄)² remains
      else assert.ok(r.loss.item() === 0, `${loss}: loss ${r.loss.item()}`);
      assert.ok(y.grad!.toArray().every((v) => v === 0), `${loss}: zero gradient`);
      for (const [k, v] of Object.entries(r.metrics)) assert.ok(Number.isFinite(v), `${loss} ${k} = ${v}`);
    }
  });
});

test('perTokenKl: the three estimators at a few points, from their formulas', () => {
  scope(() => {
    const lp = [-1, -0.5, -2, -0.1], ref = [-1.3, -0.5, -1, -3];
    const logr = lp.map((x, i) => ref[i] - x);
    const want = { k1: logr.map((r) => -r), k2: logr.map((r) => 0.5 * r * r), k3: logr.map((r) => Math.exp(r) - r - 1) };
    for (const k of ['k1', 'k2', 'k3'] as const) assertClose(perTokenKl(tensor(lp), tensor(ref), k).toArray(), want[k], 1e-6, 1e-6, k);
  });
});

test('the loss releases its intermediates with the scope (flat heap over repeated steps)', () => {
  const c = fx.cases.find((x) => x.name === 'gspo beta=0.1 k2')!;
  const step = (): void => scope(() => {
    const lp = tensor(f32(fx.batch.logprobs), [B, L]).requiresGrad_();
    policyLoss(inputs(c, lp, 0), c.options).loss.backward();
    lp.grad!.dispose(); // a leaf's .grad lives outside scopes, as a parameter's does
  });
  step();
  const before = heapStats().inUse;
  for (let i = 0; i < 5; i++) step();
  assert.equal(heapStats().inUse, before);
});

test('bad input names the field at fault', () => {
  scope(() => {
    const lp = tensor(f32(fx.batch.logprobs), [B, L]).requiresGrad_();
    const good: PolicyLossInput = inputs({ old: true, ref: true } as Case, lp, 1);
    const o: PolicyLossOptions = { loss: 'grpo', beta: 0.1 };
    const bad = (inp: Partial<PolicyLossInput>, opts: Partial<PolicyLossOptions>, re: RegExp): void => {
      assert.throws(() => policyLoss({ ...good, ...inp }, { ...o, ...opts } as PolicyLossOptions), (e: Error) => e instanceof PolicyLossError && re.test(e.message), String(re));
    };
    bad({}, { loss: 'ppo' as never }, /loss: unknown loss 'ppo'/);
    bad({ mask: new Float32Array(B * L - 1) }, {}, /mask: 41 values, expected B·L = 6·7 = 42/);
    bad({ mask: tensor(new Float32Array(B * L), [L, B]) }, {}, /mask: shape \[7, 6\] differs from logprobs \[6, 7\]/);
    bad({ mask: new Float32Array(B * L).fill(0.5) }, {}, /mask: value 0.5 at \[0, 0\] is not 0 or 1/);
    bad({ oldLogprobs: tensor(new Float32Array(B * (L + 1)), [B, L + 1]) }, {}, /oldLogprobs: shape \[6, 8\]/);
    bad({ refLogprobs: null }, {}, /refLogprobs: required when beta ≠ 0/);
    bad({ advantages: [1, 2] }, {}, /advantages: 2 values for 6 completions/);
    bad({ advantages: undefined }, {}, /advantages: required/);
    bad({ advantages: [0, 0, NaN, 0, 0, 0] }, {}, /advantages: value NaN at 2/);
    bad({ logprobs: tensor(new Float32Array(B * L)) }, {}, /logprobs: shape \[42\], expected \[B, L\]/);
    bad({}, { kl: 'k4' as never }, /kl: unknown KL estimator 'k4'/);
    bad({}, { epsilonLow: 1.5 }, /epsilonLow: 1.5 is not a number in \[0, 1\)/);
    bad({}, { beta: -1 }, /beta: -1 is not a number ≥ 0/);
    bad({}, { loss: 'gspo', importanceSampling: 'token' }, /importanceSampling: 'gspo' is sequence-level/);
    bad({}, { loss: 'dr_grpo' }, /maxCompletionLength: 'dr_grpo' divides by B · maxCompletionLength/);
    bad({}, { loss: 'dr_grpo', maxCompletionLength: 5 }, /maxCompletionLength: 5 is less than the 7 completion columns/);
    bad({}, { numItemsInBatch: 40 }, /numItemsInBatch: only the 'dapo' loss uses it/);
    bad({}, { loss: 'k1.5', beta: 0 }, /groupSize: 'k1.5' needs the number of completions per prompt/);
    bad({}, { loss: 'k1.5', beta: 0, groupSize: 4 }, /groupSize: 6 completions are not a whole number of groups of 4/);
    bad({}, { loss: 'k1.5', beta: 0.1, groupSize: 3 }, /beta: 'k1.5' regularises towards the previous iterate/);
    bad({ rewards: undefined }, { loss: 'k1.5', beta: 0, groupSize: 3 }, /rewards: required/);
    bad({}, { loss: 'k1.5', beta: 0, groupSize: 3, tau: 0 }, /tau: 0 is not a positive number/);
  });
});
