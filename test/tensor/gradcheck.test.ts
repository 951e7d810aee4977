// Every differentiable op's gradient against central finite differences, on both backends.
import { test, before, after } from 'node:test';
import * as T from '../../src/index.js';
import { Generator, Tensor, tensor, init, shutdown } from '../../src/index.js';
import { gradcheck, onBackends, randArray } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

const g = new Generator(123);
function param(shape: number[], lo = -1, hi = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(randArray(n, g, lo, hi), shape).keep().requiresGrad_();
}
/** Values kept at least `gap` away from 0 (for ops with a kink or a pole there). */
function awayFromZero(shape: number[], gap = 0.2): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = randArray(n, g).map((x) => (x < 0 ? x - gap : x + gap));
  return tensor(v, shape).keep().requiresGrad_();
}
const idx = (v: T.NestedArray, shape: number[]) => tensor(v, shape, 'i32').keep();

type Case = [string, (...x: Tensor[]) => Tensor, () => Tensor[], { atol?: number; rtol?: number; eps?: number }?];
const cases: Case[] = [
  ['add broadcast', (a, b) => T.add(a, b), () => [param([3, 4]), param([4])]],
  ['sub broadcast', (a, b) => T.sub(a, b), () => [param([2, 1, 3]), param([4, 1])]],
  ['mul broadcast', (a, b) => T.mul(a, b), () => [param([2, 3]), param([2, 1])]],
  ['div', (a, b) => T.div(a, b), () => [param([5]), param([5], 0.5, 2)]],
  ['pow tensor', (a, b) => T.pow(a, b), () => [param([4], 0.5, 2), param([4])]],
  ['scalar ops', (a) => T.add(T.mul(T.sub(2, a), 3), T.div(1.5, T.add(a, 3))), () => [param([6])]],
  ['neg exp log', (a) => T.log(T.exp(T.neg(a))), () => [param([5])]],
  ['log sqrt rsqrt', (a) => T.add(T.log(a), T.add(T.sqrt(a), T.rsqrt(a))), () => [param([5], 0.5, 2)]],
  ['pow scalar', (a) => T.pow(a, 3), () => [param([5])]],
  ['abs', (a) => T.abs(a), () => [awayFromZero([7])]],
  ['tanh sigmoid', (a) => T.add(T.tanh(a), T.sigmoid(a)), () => [param([7], -3, 3)]],
  ['silu', (a) => T.silu(a), () => [param([7], -4, 4)]],
  ['gelu erf', (a) => T.gelu(a), () => [param([7], -4, 4)]],
  ['gelu tanh', (a) => T.gelu(a, 'tanh'), () => [param([7], -4, 4)]],
  ['relu', (a) => T.relu(a), () => [awayFromZero([7])]],
  ['softplus', (a) => T.softplus(a), () => [param([7], -5, 5)]],
  ['clamp', (a) => T.clamp(a, -0.5, 0.5), () => [tensor([-0.9, -0.3, 0.1, 0.4, 0.8, -0.7], [6]).keep().requiresGrad_()]],
  ['maximum/minimum', (a, b) => T.add(T.maximum(a, b), T.minimum(a, 0.3)), () => [tensor([0.1, 0.9, -0.5, 0.6], [4]).keep().requiresGrad_(), tensor([0.5, 0.2, -0.1, 1.0], [4]).keep().requiresGrad_()]],
  ['where/maskedFill', (a, b) => T.add(T.where(T.gt(a, 0), a, b), T.maskedFill(b, T.lt(a, 0), -2)), () => [awayFromZero([2, 3]), param([3])]],
  ['sum all', (a) => T.sum(a), () => [param([3, 4])]],
  ['sum dims keepdim', (a) => T.sum(a, [0, 2], true), () => [param([2, 3, 4])]],
  ['mean dim', (a) => T.mean(a, 1), () => [param([2, 3, 4])]],
  ['max dim', (a) => T.max(a, 1), () => [param([3, 5])]],
  ['min all', (a) => T.min(a), () => [param([3, 5])]],
  ['logsumexp', (a) => T.logsumexp(a, 1), () => [param([3, 4, 2])]],
  ['cumsum', (a) => T.cumsum(a, 1), () => [param([2, 4, 3])]],
  ['matmul 2d', (a, b) => T.matmul(a, b), () => [param([3, 4]), param([4, 5])]],
  ['matmul transposed operands', (a, b) => T.matmul(T.transpose(a), T.transpose(b)), () => [param([4, 3]), param([5, 4])]],
  ['matmul batched broadcast', (a, b) => T.matmul(a, b), () => [param([2, 1, 3, 4]), param([3, 4, 2])]],
  ['matmul vector', (a, b) => T.matmul(a, b), () => [param([4]), param([4, 3])]],
  ['linear', (x, w, b) => T.linear(x, w, b), () => [param([2, 3, 4]), param([5, 4]), param([5])]],
  ['reshape permute contiguous', (a) => T.mul(T.contiguous(T.permute(T.reshape(a, [2, 3, 2]), [2, 0, 1])), T.arange(12).reshape([2, 2, 3])), () => [param([3, 4])]],
  ['slice with step', (a) => T.slice(a, 1, 1, 5, 2), () => [param([3, 6])]],
  ['expand', (a) => T.mul(T.expand(a, [3, 4]), T.arange(12).reshape([3, 4])), () => [param([1, 4])]],
  ['concat stack split', (a, b) => { const c = T.concat([a, b], 1); const [x, y] = T.split(c, [1, 4], 1); return T.add(T.stack([T.sum(x, 1), T.sum(y, 1)], 0), 0); }, () => [param([2, 2]), param([2, 3])]],
  ['unsqueeze squeeze', (a) => T.squeeze(T.mul(T.unsqueeze(a, 1), 2), 1), () => [param([3, 2])]],
  ['softmax', (a) => T.softmax(a, -1), () => [param([3, 5])]],
  ['softmax dim 0', (a) => T.softmax(a, 0), () => [param([3, 5])]],
  ['logSoftmax', (a) => T.logSoftmax(a, 1), () => [param([2, 4, 3])]],
  ['crossEntropy mean ignore smooth', (a) => T.crossEntropy(a, idx([1, -100, 4, 0], [4]), { labelSmoothing: 0.1 }), () => [param([4, 6], -2, 2)]],
  ['crossEntropy sum', (a) => T.crossEntropy(a, idx([[1, 2], [0, 3]], [2, 2]), { reduction: 'sum' }), () => [param([2, 2, 5], -2, 2)]],
  ['crossEntropy none', (a) => T.crossEntropy(a, idx([1, 2, 0], [3]), { reduction: 'none' }), () => [param([3, 4], -2, 2)]],
  ['embedding', (w) => T.embedding(w, idx([1, 3, 3, 0], [2, 2])), () => [param([5, 3])]],
  ['gatherLast / topk values', (a) => T.topk(a, 2).values, () => [tensor([0.1, 0.9, -0.3, 0.5, 0.2, -0.8, 0.7, 0.0], [2, 4]).keep().requiresGrad_()]],
  ['rmsNorm', (x, w) => T.rmsNorm(x, w, 1e-6), () => [param([3, 8]), param([8])]],
  ['layerNorm', (x, w, b) => T.layerNorm(x, w, b, 1e-5), () => [param([3, 8]), param([8]), param([8])]],
  ['layerNorm no affine', (x) => T.layerNorm(x, null, null), () => [param([2, 6])]],
  ['rope half', (x) => { const { cos, sin } = T.ropeTables(3, 4, { offset: 2 }); return T.rope(x, cos, sin, { seqDim: 2 }); }, () => [param([1, 2, 3, 4])]],
  ['rope interleaved (B,T,H,D)', (x) => { const { cos, sin } = T.ropeTables(3, 4); return T.rope(x, cos, sin, { seqDim: 1, layout: 'interleaved' }); }, () => [param([2, 3, 2, 4])]],
  ['attention causal GQA', (q, k, v) => T.attention(q, k, v, { causal: true }), () => [param([1, 4, 3, 4]), param([1, 2, 3, 4]), param([1, 2, 3, 2])]],
  ['attention kv-cache + mask', (q, k, v, m) => T.attention(q, k, v, { causal: true, mask: m }), () => [param([1, 2, 2, 4]), param([1, 1, 4, 4]), param([1, 1, 4, 3]), param([2, 4])]],
  // (last: a case draws from the shared generator, so new cases go at the end)
  ['sin cos', (a) => T.add(T.sin(a), T.mul(T.cos(a), 0.7)), () => [param([9], -8, 8)]],
  ['conv2d stride 2 pad 1 groups 2', (x, w, b) => T.conv2d(x, w, b, { stride: 2, padding: 1, groups: 2 }), () => [param([1, 4, 5, 4]), param([2, 2, 3, 2]), param([2])]],
  ['conv2d dilation 2', (x, w) => T.conv2d(x, w, null, { dilation: 2, padding: [1, 2] }), () => [param([2, 2, 5, 5]), param([3, 2, 2, 3])]],
  ['convTranspose2d stride 2 out-pad 1', (x, w, b) => T.convTranspose2d(x, w, b, { stride: 2, padding: 1, outputPadding: 1 }), () => [param([1, 2, 3, 2]), param([2, 3, 3, 3]), param([3])]],
  ['groupNorm', (x, w, b) => T.groupNorm(x, 2, w, b), () => [param([2, 4, 3, 2]), param([4]), param([4])]],
  ['upsampleNearest2d then avgPool2d', (x) => T.avgPool2d(T.upsampleNearest2d(x, 3), 2), () => [param([1, 2, 2, 3])]],
];

for (const [name, f, mk, opts] of cases) {
  test(`gradient of ${name} matches finite differences`, () => {
    onBackends((b) => {
      const inputs = mk();
      gradcheck(`${name} [${b}]`, f, inputs, opts);
      for (const x of inputs) { x.grad?.dispose(); x.dispose(); }
    });
  });
}
