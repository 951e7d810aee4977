// Bad input gets a clear error naming the op and the shapes, indices or tensor at fault.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { init, shutdown, scope, tensor, onesLike } from '../../src/index.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

const ids = (v: number[]) => tensor(v, [v.length], 'i32');

test('shape mismatches name the op and both shapes', () => scope(() => {
  assert.throws(() => T.add(T.ones([2, 3]), T.ones([4])), /add: shapes \[2, 3\] and \[4\] cannot be broadcast/);
  assert.throws(() => T.matmul(T.ones([2, 3]), T.ones([4, 5])), /matmul: inner dimensions differ: \[2, 3\] @ \[4, 5\]/);
  assert.throws(() => T.reshape(T.ones([2, 3]), [4, 2]), /reshape: cannot reshape \[2, 3\]/);
  assert.throws(() => T.rmsNorm(T.ones([2, 8]), T.ones([7])), /rmsNorm: weight \[7\]/);
  assert.throws(() => T.attention(T.ones([1, 3, 2, 4]), T.ones([1, 2, 2, 4]), T.ones([1, 2, 2, 4])), /attention: incompatible/);
  assert.throws(() => T.crossEntropy(T.ones([3, 5]), ids([1, 2])), /crossEntropy: logits \[3, 5\] and targets \[2\]/);
  assert.throws(() => T.sum(T.ones([2]), 3), /sum: dimension 3 out of range/);
}));

test('dtype mismatches are reported', () => scope(() => {
  assert.throws(() => T.add(ids([1, 2]), T.ones([2])), /add: expected f32 tensor, got i32/);
  assert.throws(() => T.crossEntropy(T.ones([2, 3]), T.ones([2])), /targets must be i32/);
  assert.throws(() => tensor([1.5], [1], 'i32'), /not an integer/);
}));

test('out-of-range indices throw instead of reading outside the table', () => scope(() => {
  const table = T.ones([5, 3]);
  assert.throws(() => T.embedding(table, ids([0, 5])), /embedding: index 5 at position 1 is out of range \[0, 5\)/);
  assert.throws(() => T.embedding(table, ids([-1])), /index -1/);
  assert.throws(() => T.crossEntropy(T.ones([2, 4]), ids([0, 4])), /target 4 at position 1 is outside \[0, 4\)/);
  assert.throws(() => T.gatherLast(T.ones([2, 4]), tensor([[0], [9]], [2, 1], 'i32')), /out of range/);
}));

test('NaN/Inf detection names the tensor, including gradients', () => scope(() => {
  const w = T.tensor([1, 2, 3], [3]).requiresGrad_();
  w.name = 'layers.0.weight';
  T.assertFinite(w);
  const bad = T.div(T.ones([3]), T.tensor([1, 0, 1], [3]));
  assert.throws(() => T.assertFinite(bad, 'logits'), /logits: 1 non-finite value\(s\); first at flat index 1 \(Infinity\)/);
  T.log(T.sub(w, 2)).sum().backward();
  assert.throws(() => T.assertAllFinite({ 'layers.0.weight': w }, { grads: true }), /layers\.0\.weight(\.grad)?: .*non-finite/);
}));

test('backward of a non-scalar without a gradient is refused', () => scope(() => {
  const w = T.ones([3]).requiresGrad_();
  assert.throws(() => T.mul(w, 2).backward(), /gradient must be given for a non-scalar/);
  const y = T.mul(w, 2);
  y.backward(onesLike(y));
  assert.deepEqual(w.grad!.toArray(), [2, 2, 2]);
  // accumulates across backward calls
  T.mul(w, 3).sum().backward();
  assert.deepEqual(w.grad!.toArray(), [5, 5, 5]);
  w.grad!.dispose();
}));

test('noGrad and detach stop gradient recording', () => scope(() => {
  const w = T.ones([2]).requiresGrad_();
  const y = T.noGrad(() => T.mul(w, 2));
  assert.equal(y.requiresGrad, false);
  assert.equal(T.mul(w, 2).detach().requiresGrad, false);
}));
