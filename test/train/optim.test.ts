// Optimizer updates, clipping and schedules against PyTorch (test/fixtures/optim.json).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tensor, init, shutdown, Tensor, SGD, AdamW, clipGradNorm, constantSchedule, cosineWithWarmup, linearWithWarmup, unscoped } from '../../src/index.js';
import { assertClose, fixture, onBackends } from '../helpers.js';

interface FT { shape: number[]; data: number[] }
interface Fx {
  param_names: string[];
  init: Record<string, FT>;
  grads: Record<string, FT>[];
  cases: { name: string; optimizer: 'sgd' | 'adamw'; hparams: any; clip_max_norm: number | null; params: Record<string, FT>[]; grad_norms?: number[] }[];
  schedules: { name: string; params: any; multipliers: number[] }[];
}
const fx = fixture<Fx>('optim.json');

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

for (const c of fx.cases) {
  test(`${c.name} matches torch.optim to 1e-6 over 10 steps`, () => {
    onBackends((b) => {
      const params: Tensor[] = fx.param_names.map((n) => unscoped(() => tensor(fx.init[n].data, fx.init[n].shape)).requiresGrad_());
      const h = c.hparams;
      const opt = c.optimizer === 'sgd'
        ? new SGD(params, { lr: h.lr, momentum: h.momentum, dampening: h.dampening, weightDecay: h.weight_decay, nesterov: h.nesterov })
        : new AdamW(params, { lr: h.lr, betas: h.betas, eps: h.eps, weightDecay: h.weight_decay, amsgrad: h.amsgrad });
      for (let step = 0; step < 10; step++) {
        params.forEach((p, i) => { p.grad?.dispose(); p.grad = unscoped(() => tensor(fx.grads[step][fx.param_names[i]].data, p.shape)); });
        if (c.clip_max_norm !== null) {
          const norm = clipGradNorm(params, c.clip_max_norm);
          assert.ok(Math.abs(norm - c.grad_norms![step]) <= 1e-6 * Math.max(1, norm), `${c.name} [${b}] step ${step}: norm ${norm} vs ${c.grad_norms![step]}`);
        }
        opt.step();
        params.forEach((p, i) => assertClose(p.toArray(), c.params[step][fx.param_names[i]].data, 1e-6, 1e-6, `${c.name} [${b}] step ${step} param ${fx.param_names[i]}`));
      }
      opt.zeroGrad();
      for (const p of params) p.dispose();
    });
  });
}

test('optimizers reject parameters that cannot be updated', () => {
  const p = unscoped(() => tensor([1, 2], [2]));
  assert.throws(() => new AdamW([p]), /does not require grad/);
  assert.throws(() => new SGD([p.requiresGrad_()], { nesterov: true }), /Nesterov momentum requires a momentum/);
});

test('learning-rate schedules match transformers/LambdaLR', () => {
  for (const s of fx.schedules) {
    const f = s.name === 'constant' ? constantSchedule()
      : s.name.startsWith('cosine') ? cosineWithWarmup(s.params.warmup_steps, s.params.total_steps, s.params.min_lr_ratio)
      : linearWithWarmup(s.params.warmup_steps, s.params.total_steps);
    assertClose(s.multipliers.map((_, i) => f(i)), s.multipliers, 1e-8, 1e-7, s.name);
  }
});
