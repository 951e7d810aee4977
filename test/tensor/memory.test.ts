// Memory scopes: a training loop holds flat heap memory; tensors escape scopes only when returned.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { init, shutdown, scope, heapStats, Generator, AdamW, unscoped } from '../../src/index.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

test('1,000 training steps of a small MLP hold flat heap memory', () => {
  const g = new Generator(1);
  const [w1, b1, w2, b2] = unscoped(() => [T.randn([32, 16], { generator: g, std: 0.2 }), T.zeros([32]), T.randn([4, 32], { generator: g, std: 0.2 }), T.zeros([4])]);
  for (const p of [w1, b1, w2, b2]) p.requiresGrad_();
  const opt = new AdamW([w1, b1, w2, b2], { lr: 1e-2 });
  const x = unscoped(() => T.randn([64, 16], { generator: g }));
  const y = unscoped(() => T.tensor(Array.from({ length: 64 }, (_, i) => i % 4), [64], 'i32'));
  let firstLoss = 0, lastLoss = 0;
  let after10 = 0;
  for (let step = 0; step < 1000; step++) {
    const loss = scope(() => {
      const h = T.gelu(T.linear(x, w1, b1));
      const l = T.crossEntropy(T.linear(h, w2, b2), y);
      l.backward();
      return l.item();
    });
    opt.step();
    opt.zeroGrad();
    if (step === 0) firstLoss = loss;
    lastLoss = loss;
    if (step === 10) after10 = heapStats().inUse;
  }
  const end = heapStats();
  assert.equal(end.inUse, after10, `heap in use grew from ${after10} to ${end.inUse} bytes over 990 steps`);
  assert.ok(lastLoss < firstLoss * 0.5, `loss should fall (first ${firstLoss}, last ${lastLoss})`);
});

test('scope releases temporaries and keeps returned tensors', () => {
  const before = heapStats().inUse;
  const kept = scope(() => {
    const a = T.ones([100]);
    const b = T.mul(a, 3);
    return { b, list: [T.add(b, 1)] };
  });
  const mid = heapStats().inUse;
  assert.ok(mid > before, 'returned tensors are still allocated');
  assert.deepEqual(kept.b.toArray().slice(0, 2), [3, 3]);
  assert.deepEqual(kept.list[0].toArray().slice(0, 2), [4, 4]);
  kept.b.dispose(); kept.list[0].dispose();
  assert.equal(heapStats().inUse, before);
  const leaked = scope(() => { T.ones([10]); return T.ones([3]).mul(2).sum(); });
  assert.equal(leaked.item(), 6);
  leaked.dispose();
  assert.equal(heapStats().inUse, before);
});

test('a tensor used after its scope ended gives a clear error', () => {
  let t: T.Tensor | null = null;
  scope(() => { t = T.ones([2]); });
  assert.throws(() => t!.toArray(), /used after its memory scope ended/);
});

test('scope releases everything when the function throws', () => {
  const before = heapStats().inUse;
  assert.throws(() => scope(() => { T.ones([1000]); throw new Error('boom'); }), /boom/);
  assert.equal(heapStats().inUse, before);
});

test('deferred storage: no heap until materialised, none at all when freed first; reads before it are refused', async () => {
  const { deferAllocation, Storage } = await import('../../src/tensor/storage.js');
  const { Tensor } = await import('../../src/tensor/tensor.js');
  const { initialNormal, withoutInit } = await import('../../src/nn/module.js');
  const heap0 = heapStats().inUse;
  // Outside deferAllocation an unfilled parameter is allocated at once, as before.
  const now = unscoped(() => withoutInit(() => initialNormal([64, 64], { generator: new Generator(1), std: 1 })));
  assert.ok(now.storage.allocated);
  assert.equal(heapStats().inUse - heap0, 64 * 64 * 4);
  now.dispose();
  const [a, b, c] = unscoped(() => deferAllocation(() => withoutInit(() => [
    initialNormal([256, 64], { generator: new Generator(1), std: 1, deferrable: true }), Tensor.unfilled([128, 32]),
    initialNormal([8], { generator: new Generator(1), std: 1 }), // not deferrable: allocated at once
  ])));
  assert.equal(heapStats().inUse - heap0, 64, 'only the small non-deferrable parameter taken (64 bytes, aligned)');
  assert.ok(c.storage.allocated);
  c.dispose();
  assert.ok(!a.storage.allocated && !b.storage.allocated);
  assert.throws(() => a.ptr, /read before it was allocated/);
  a.storage.materialise();
  assert.equal(heapStats().inUse - heap0, 256 * 64 * 4);
  a.ptr; // now readable
  b.dispose(); // freed without ever taking heap
  assert.throws(() => b.storage.materialise(), /freed/);
  a.dispose();
  assert.equal(heapStats().inUse, heap0);
  // A plain Storage is allocated whatever the mode.
  const s = deferAllocation(() => new Storage(1024));
  assert.ok(s.allocated);
  s.free();
  assert.equal(heapStats().inUse, heap0);
});
