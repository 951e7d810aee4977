// Image ops (src/tensor/conv.ts) against PyTorch (scripts/gen_vision_fixtures.py): outputs and the
// gradients of sum(out · r) for every input, on both backends; the im2col / col2im kernels of the
// two backends against each other (threads included) and as an adjoint pair; clear errors for
// shapes that do not fit. Finite-difference checks are in gradcheck.test.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { init, shutdown, scope, withBackend, Tensor } from '../../src/index.js';
import { assertClose, fixture, onBackends } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

interface Arr { shape: number[]; data: number[] }
interface Case { name: string; op: string; opts: Record<string, any>; inputs: Record<string, Arr>; r: Arr; out: Arr; grads: Record<string, Arr> }

function run(c: Case, ins: Record<string, Tensor>): Tensor {
  const o = c.opts;
  switch (c.op) {
    case 'conv2d': return T.conv2d(ins.x, ins.w, ins.b ?? null, { stride: o.stride, padding: o.padding, dilation: o.dilation, groups: o.groups });
    case 'convTranspose2d': return T.convTranspose2d(ins.x, ins.w, ins.b ?? null, { stride: o.stride, padding: o.padding, outputPadding: o.output_padding, dilation: o.dilation, groups: o.groups });
    case 'groupNorm': return T.groupNorm(ins.x, o.groups, ins.w ?? null, ins.b ?? null, o.eps);
    case 'upsampleNearest2d': return T.upsampleNearest2d(ins.x, o.scale);
    case 'avgPool2d': return T.avgPool2d(ins.x, o.k);
    default: throw new Error(`unknown op ${c.op}`);
  }
}

const { cases } = fixture<{ cases: Case[] }>('vision/ops.json');
for (const c of cases) {
  test(`${c.name}: output and gradients match PyTorch`, () => {
    onBackends((b) => scope(() => {
      const ins = Object.fromEntries(Object.entries(c.inputs).map(([k, v]) => [k, T.tensor(v.data, v.shape).requiresGrad_()]));
      const out = run(c, ins);
      assert.deepEqual(out.shape, c.out.shape, `${c.name} [${b}] shape`);
      assertClose(out.toArray() as number[], c.out.data, 1e-4, 1e-4, `${c.name} [${b}] output`);
      T.sum(T.mul(out, T.tensor(c.r.data, c.r.shape))).backward();
      for (const [k, g] of Object.entries(c.grads)) assertClose(ins[k].grad!.toArray() as number[], g.data, 1e-4, 1e-4, `${c.name} [${b}] d/d${k}`);
    }));
  });
}

test('im2col and col2im: the backends agree (threads included) and form an adjoint pair', () => scope(() => {
  // planes, H, W, kh, kw, sh, sw, ph, pw, dh, dw
  const geos = [[3, 7, 5, 3, 3, 1, 1, 1, 1, 1, 1], [2, 9, 8, 3, 2, 2, 2, 1, 0, 1, 1], [4, 10, 7, 3, 3, 2, 1, 2, 2, 2, 2], [1, 4, 4, 5, 5, 1, 1, 3, 3, 1, 1], [5, 13, 11, 1, 1, 3, 2, 0, 0, 1, 1],
    // large enough for the wasm backend to split the work between its threads
    [16, 32, 30, 3, 3, 1, 1, 1, 1, 1, 1], [12, 31, 29, 4, 3, 2, 2, 1, 2, 1, 2]];
  let seed = 1;
  const rnd = (n: number): number[] => Array.from({ length: n }, () => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1);
  for (const [P, H, W, kh, kw, sh, sw, ph, pw, dh, dw] of geos) {
    const OH = Math.floor((H + 2 * ph - dh * (kh - 1) - 1) / sh) + 1, OW = Math.floor((W + 2 * pw - dw * (kw - 1) - 1) / sw) + 1;
    const xs = rnd(P * H * W), cs = rnd(P * kh * kw * OH * OW);
    const results: Record<string, { cols: number[]; img: number[] }> = {};
    for (const b of ['ref', 'wasm'] as const) {
      withBackend(b, () => {
        const x = T.tensor(xs, [1, P, H, W]);
        const cols = Tensor.empty([P * kh * kw * OH * OW]);
        T.kernel('im2col', [cols.ptr, x.ptr, P, H, W, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW], cols.size);
        const c = T.tensor(cs, [P * kh * kw * OH * OW]);
        const img = T.zeros([P * H * W]);
        T.kernel('col2im', [img.ptr, c.ptr, P, H, W, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW], c.size);
        results[b] = { cols: cols.toArray() as number[], img: img.toArray() as number[] };
      });
    }
    const geo = `${P}×${H}×${W} k${kh}×${kw} s${sh}×${sw} p${ph}×${pw} d${dh}×${dw}`;
    assert.deepEqual(results.wasm.cols, results.ref.cols, `im2col ${geo}`);
    assertClose(results.wasm.img, results.ref.img, 1e-6, 1e-6, `col2im ${geo}`);
    // <im2col(x), c> = <x, col2im(c)>
    let lhs = 0, rhs = 0;
    results.ref.cols.forEach((v, i) => { lhs += v * cs[i]; });
    results.ref.img.forEach((v, i) => { rhs += v * xs[i]; });
    assert.ok(Math.abs(lhs - rhs) < 1e-4 * Math.max(1, Math.abs(lhs)), `adjoint ${geo}: ${lhs} vs ${rhs}`);
  }
}));

test('shapes that do not fit are refused by name', () => scope(() => {
  const x = T.zeros([1, 4, 5, 5]);
  assert.throws(() => T.conv2d(x, T.zeros([2, 3, 3, 3])), /conv2d: weight \[2, 3, 3, 3\] expects 3 input channels \(3 per group × 1\), the input has 4/);
  assert.throws(() => T.conv2d(x, T.zeros([3, 2, 3, 3]), null, { groups: 2 }), /groups 2 must divide the input channels 4 and the output channels 3/);
  assert.throws(() => T.conv2d(x, T.zeros([2, 4, 7, 7])), /a 7×7 kernel \(dilation 1×1\) does not fit the 5×5 input/);
  assert.throws(() => T.conv2d(x, T.zeros([2, 4, 3, 3]), null, { stride: 0 }), /stride must be an integer ≥ 1/);
  assert.throws(() => T.conv2d(T.zeros([4, 5, 5]), T.zeros([2, 4, 3, 3])), /input must be \(B, C, H, W\)/);
  assert.throws(() => T.conv2d(x, T.zeros([2, 4, 3, 3]), T.zeros([3])), /bias must be \(2\)/);
  assert.throws(() => T.convTranspose2d(x, T.zeros([4, 2, 3, 3]), null, { stride: 2, outputPadding: 2 }), /output padding 2×2 must be smaller than the stride 2×2 or the dilation 1×1/);
  assert.throws(() => T.groupNorm(x, 3), /groups 3 must divide the channels 4/);
  assert.throws(() => T.upsampleNearest2d(x, 1.5), /scale must be a positive integer/);
  assert.throws(() => T.avgPool2d(x, 6), /window 6 must be a positive integer no larger than the 5×5 input/);
}));
