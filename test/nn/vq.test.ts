// Vector quantisation (src/nn/vq.ts) against the VQ-VAE paper's definitions computed by PyTorch
// (scripts/gen_vision_fixtures.py): nearest codes, the straight-through output, the loss and the
// gradients, and one EMA step of the codebook; dead codes restart on vectors of the batch.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { init, shutdown, scope, noGrad } from '../../src/index.js';
import { VectorQuantizer } from '../../src/nn/vq.js';
import { assertClose, fixture, onBackends } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

interface Arr { shape: number[]; data: number[] }
interface VqCase { name: string; decay: number | null; beta: number; eps: number; z: Arr; codebook: Arr; r: Arr; codes: number[]; zq: Arr; loss: number; grad_z: Arr; grad_codebook?: Arr; ema_count?: Arr; ema_sum?: Arr; codebook_after?: Arr }

const { vq } = fixture<{ vq: VqCase[] }>('vision/ops.json');
for (const c of vq) {
  test(`${c.name}: codes, output, loss, gradients${c.decay !== null ? ' and the EMA step' : ''} match PyTorch`, () => {
    onBackends((b) => scope(() => {
      const [K, D] = c.codebook.shape;
      const m = new VectorQuantizer(K, D, { beta: c.beta, decay: c.decay, eps: c.eps, deadThreshold: 0 });
      const sd: Record<string, T.Tensor> = { codebook: T.tensor(c.codebook.data, c.codebook.shape) };
      if (c.decay !== null) { sd.ema_count = T.ones([K]); sd.ema_sum = T.tensor(c.codebook.data, c.codebook.shape); }
      m.loadStateDict(sd);
      const z = T.tensor(c.z.data, c.z.shape).requiresGrad_();
      const out = m.forward(z);
      assert.deepEqual(out.codes.toArray(), c.codes, `${c.name} [${b}] codes`);
      assertClose(out.zq.toArray() as number[], c.zq.data, 1e-5, 1e-5, `${c.name} [${b}] zq`);
      assertClose([out.loss.item()], [c.loss], 1e-5, 1e-5, `${c.name} [${b}] loss`);
      T.add(T.sum(T.mul(out.zq, T.tensor(c.r.data, c.r.shape))), out.loss).backward();
      assertClose(z.grad!.toArray() as number[], c.grad_z.data, 1e-5, 1e-5, `${c.name} [${b}] dz`);
      if (c.grad_codebook) assertClose(m.codebook.grad!.toArray() as number[], c.grad_codebook.data, 1e-5, 1e-5, `${c.name} [${b}] dcodebook`);
      if (c.codebook_after) {
        assertClose(m.ema_count!.toArray() as number[], c.ema_count!.data, 1e-5, 1e-5, `${c.name} [${b}] ema count`);
        assertClose(m.ema_sum!.toArray() as number[], c.ema_sum!.data, 1e-5, 1e-5, `${c.name} [${b}] ema sum`);
        assertClose(m.codebook.toArray() as number[], c.codebook_after.data, 1e-5, 1e-5, `${c.name} [${b}] codebook after the step`);
      }
      assert.equal(out.used, new Set(c.codes).size);
      m.dispose();
    }));
  });
}

test('dead codes restart on vectors of the batch; lookup inverts quantisation; eval mode leaves the codebook alone', () => scope(() => {
  const m = new VectorQuantizer(8, 2, { decay: 0.5, deadThreshold: 0.3, generator: new T.Generator(3) });
  // Every vector near (5, 5): one code takes them all, the other 7 decay below the threshold.
  const z = T.add(T.mul(T.randn([4, 2, 2, 2], { generator: new T.Generator(4) }), 0.01), 5);
  for (let i = 0; i < 3; i++) m.forward(z);
  assert.ok(m.restarts >= 7, `restarted ${m.restarts}`);
  const cb = m.codebook.toArray() as number[];
  // (the code that took every vector keeps an eighth of its initial value in the average after 3 steps)
  for (let k = 0; k < 8; k++) assert.ok(Math.abs(cb[2 * k] - 5) < 0.25 && Math.abs(cb[2 * k + 1] - 5) < 0.25, `code ${k} moved to the data: ${cb.slice(2 * k, 2 * k + 2)}`);
  m.eval();
  const before = m.codebook.toArray();
  const q = noGrad(() => m.forward(z));
  assertClose(m.lookup(q.codes).toArray() as number[], q.zq.toArray() as number[], 1e-6, 0, 'lookup(codes) = zq');
  m.forward(T.mul(z, -1));
  assert.deepEqual(m.codebook.toArray(), before, 'no EMA step in eval mode');
  assert.throws(() => m.forward(T.zeros([1, 3, 2, 2])), /input must be \(B, 2, h, w\), got \[1, 3, 2, 2\]/);
  m.dispose();
}));
