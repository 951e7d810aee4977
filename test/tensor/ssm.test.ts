// causalConv1d and selectiveScan as tensor ops, on both backends: forward values and every
// gradient against PyTorch (test/fixtures/ssm/ssm.json from scripts/gen_ssm_fixtures.py: conv via
// F.conv1d, the scan as a plain sequential loop with autograd), gradients against finite
// differences (strided views and frozen inputs included), decoding (one step at a time with a
// carried state equals one call), a long backward restarting from several checkpoints, flat
// memory over a training loop, and the errors for bad arguments.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { Generator, Tensor, tensor, init, shutdown, scope, heapStats, noGrad, unscoped, withBackend } from '../../src/index.js';
import { scanChunk } from '../../src/tensor/ssm.js';
import { assertClose, fixture, gradcheck, onBackends, randArray } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

// ---------------------------------------------------------------------------------- PyTorch

interface FT { shape: number[]; data: number[] }
interface Case {
  name: string; op: 'causal_conv1d' | 'selective_scan'; inputs: Record<string, FT>; params: { deltaSoftplus?: boolean };
  output: FT; upstream: FT; grads: Record<string, FT>; final_state?: FT;
}
const { cases } = fixture<{ cases: Case[] }>('ssm/ssm.json');

for (const c of cases) {
  test(`${c.name} matches PyTorch (forward and every gradient)`, () => {
    onBackends((b) => scope(() => {
      const x: Record<string, Tensor> = {};
      for (const [n, ft] of Object.entries(c.inputs)) {
        x[n] = tensor(ft.data, ft.shape);
        if (c.grads[n]) x[n].requiresGrad_();
      }
      const y = c.op === 'causal_conv1d'
        ? T.causalConv1d(x.x, x.w, { bias: x.bias, initial: x.initial })
        : T.selectiveScan(x.u, x.delta, x.A, x.B, x.C, { D: x.D, z: x.z, deltaBias: x.deltaBias, deltaSoftplus: c.params.deltaSoftplus, state: x.state });
      assert.deepEqual(y.shape, c.output.shape, `${c.name} [${b}] output shape`);
      assertClose(y.toArray(), c.output.data, 1e-5, 1e-5, `${c.name} [${b}] output`);
      if (c.final_state) assertClose(x.state.toArray(), c.final_state.data, 1e-5, 1e-5, `${c.name} [${b}] final state`);
      y.backward(tensor(c.upstream.data, c.upstream.shape));
      for (const [n, ft] of Object.entries(c.grads)) {
        const gr = x[n].grad;
        assert.ok(gr, `${c.name} [${b}]: no gradient for ${n}`);
        assertClose(gr.toArray(), ft.data, 1e-5, 1e-4, `${c.name} [${b}] d/d${n}`);
        gr.dispose();
      }
    }));
  });
}

test('the fixtures cover both ops, with and without every optional input', () => {
  const has = (op: string, k: string) => cases.some((c) => c.op === op && k in c.inputs);
  for (const k of ['bias', 'initial']) assert.ok(has('causal_conv1d', k), k);
  for (const k of ['D', 'z', 'deltaBias', 'state']) assert.ok(has('selective_scan', k), k);
  assert.ok(cases.some((c) => c.op === 'selective_scan' && !('D' in c.inputs) && !('z' in c.inputs) && !c.params.deltaSoftplus));
});

// ------------------------------------------------------------------------ finite differences

const g = new Generator(31);
function param(shape: number[], lo = -1, hi = 1, grad = true): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const t = tensor(randArray(n, g, lo, hi), shape).keep();
  return grad ? t.requiresGrad_() : t;
}

type GCase = [string, (...x: Tensor[]) => Tensor, () => Tensor[]];
const gcases: GCase[] = [
  ['causalConv1d K=3 bias', (x, w, b) => T.causalConv1d(x, w, { bias: b }), () => [param([2, 5, 3]), param([3, 3]), param([3])]],
  ['causalConv1d K=L', (x, w) => T.causalConv1d(x, w), () => [param([1, 6, 5]), param([5, 6])]],
  ['causalConv1d initial, x a slice of (B, L, 2C)', (xz, w, b, i0) => T.causalConv1d(T.slice(xz, 2, 0, 3), w, { bias: b, initial: i0 }),
    () => [param([2, 4, 6]), param([3, 4]), param([3]), param([2, 3, 3], -1, 1, false)]],
  ['selectiveScan Mamba options', (u, dl, A, B, C, D, z, db) => T.selectiveScan(u, dl, A, B, C, { D, z, deltaBias: db, deltaSoftplus: true }),
    () => [param([2, 4, 3]), param([2, 4, 3]), param([3, 2], -1.5, -0.3), param([2, 4, 2]), param([2, 4, 2]), param([3]), param([2, 4, 3]), param([3], -0.5, 0.5)]],
  ['selectiveScan plain', (u, dl, A, B, C) => T.selectiveScan(u, dl, A, B, C), () => [param([1, 5, 5]), param([1, 5, 5], 0.1, 1), param([5, 3], -1.5, -0.3), param([1, 5, 3]), param([1, 5, 3])]],
  ['selectiveScan strided views (u, z of in_proj; B, C of x_proj) with a state',
    (uz, dl, A, x, D, b0) => {
      const Din = 3, N = 2, R = 1;
      const st = T.tensor([0.3, -0.2, 0.1, 0.5, -0.4, 0.2], [1, Din, N]);
      return T.selectiveScan(T.slice(uz, 2, 0, Din), dl, A, T.slice(x, 2, R, R + N), T.slice(x, 2, R + N), {
        D, z: T.slice(uz, 2, Din), deltaBias: b0, deltaSoftplus: true, state: st,
      });
    },
    () => [param([1, 5, 6]), param([1, 5, 3]), param([3, 2], -1.5, -0.3), param([1, 5, 5]), param([3]), param([3], -0.5, 0.5)]],
  ['selectiveScan frozen A, D, B (only u, delta, C, z get gradients)', (u, dl, A, B, C, D, z) => T.selectiveScan(u, dl, A, B, C, { D, z, deltaSoftplus: true }),
    () => [param([2, 3, 5]), param([2, 3, 5]), param([5, 2], -1.5, -0.3, false), param([2, 3, 2], -1, 1, false), param([2, 3, 2]), param([5], -1, 1, false), param([2, 3, 5])]],
];

for (const [name, f, mk] of gcases) {
  test(`gradient of ${name} matches finite differences`, () => {
    onBackends((b) => {
      const inputs = mk();
      gradcheck(`${name} [${b}]`, f, inputs);
      for (const x of inputs) { if (!x.requiresGrad) assert.equal(x.grad, null, `${name}: a frozen input got a gradient`); x.grad?.dispose(); x.dispose(); }
    });
  });
}

// ---------------------------------------------------------------------------------- decoding

test('selectiveScan: L steps one at a time (and in pieces) with a carried state equal one call', () => {
  onBackends((b) => scope(() => noGrad(() => {
    const Bt = 2, L = 9, Din = 7, N = 5;
    const gg = new Generator(5);
    const r = (shape: number[], lo = -1, hi = 1) => tensor(randArray(shape.reduce((a, c) => a * c, 1), gg, lo, hi), shape);
    const u = r([Bt, L, Din]), dl = r([Bt, L, Din]), A = r([Din, N], -1.5, -0.3), B = r([Bt, L, N]), C = r([Bt, L, N]);
    const D = r([Din]), z = r([Bt, L, Din]), db = r([Din], -0.5, 0.5), h0 = r([Bt, Din, N]);
    const opts = { D, deltaBias: db, deltaSoftplus: true };
    const full = T.selectiveScan(u, dl, A, B, C, { ...opts, z, state: T.clone(h0) }).toArray();
    for (const pieces of [Array(L).fill(1), [3, 1, 5]]) {
      const state = T.clone(h0);
      const ys: Tensor[] = [];
      let t0 = 0;
      for (const n of pieces) {
        const s = (x: Tensor) => T.slice(x, 1, t0, t0 + n);
        ys.push(T.selectiveScan(s(u), s(dl), A, s(B), s(C), { ...opts, z: s(z), state }));
        t0 += n;
      }
      assertClose(T.concat(ys, 1).toArray(), full, 1e-6, 1e-5, `[${b}] pieces ${pieces}`);
    }
    // The final state of the full call equals the state after stepping.
    const s1 = T.clone(h0), s2 = T.clone(h0);
    T.selectiveScan(u, dl, A, B, C, { ...opts, state: s1 });
    for (let t = 0; t < L; t++) {
      const s = (x: Tensor) => T.slice(x, 1, t, t + 1);
      T.selectiveScan(s(u), s(dl), A, s(B), s(C), { ...opts, state: s2 });
    }
    assertClose(s2.toArray(), s1.toArray(), 1e-6, 1e-5, `[${b}] final state`);
  })));
});

test('causalConv1d: pieces with the last K−1 inputs carried as `initial` equal the full convolution', () => {
  onBackends((b) => scope(() => noGrad(() => {
    const B = 2, L = 11, C = 5;
    const gg = new Generator(6);
    for (const K of [1, 4, 11]) {
      const x = tensor(randArray(B * L * C, gg), [B, L, C]), w = tensor(randArray(C * K, gg), [C, K]), bias = tensor(randArray(C, gg), [C]);
      const full = T.causalConv1d(x, w, { bias }).toArray();
      for (const pieces of [Array(L).fill(1), [4, 2, 5]]) {
        let initial = T.zeros([B, K - 1, C]);
        const ys: Tensor[] = [];
        let t0 = 0;
        for (const n of pieces) {
          const xs = T.slice(x, 1, t0, t0 + n);
          ys.push(T.causalConv1d(xs, w, { bias, initial }));
          // The decoding state: the last K−1 rows of concat(initial, xs).
          const cat = T.concat([initial, xs], 1);
          initial = T.contiguous(T.slice(cat, 1, cat.shape[1] - (K - 1)));
          t0 += n;
        }
        assertClose(T.concat(ys, 1).toArray(), full, 1e-6, 1e-5, `[${b}] K=${K} pieces ${pieces}`);
      }
    }
  })));
});

test('a decoding step (L = 1) of the scan allocates only its output', () => {
  withBackend('wasm', () => scope(() => noGrad(() => {
    const Bt = 1, Din = 64, N = 16;
    const st = T.zeros([Bt, Din, N]);
    const args = [T.ones([Bt, 1, Din]), T.ones([Bt, 1, Din]), T.full([Din, N], -1), T.ones([Bt, 1, N]), T.ones([Bt, 1, N])] as const;
    const before = heapStats().inUse;
    const y = T.selectiveScan(...args, { state: st, deltaSoftplus: true });
    const grown = heapStats().inUse - before;
    assert.ok(grown >= y.size * 4 && grown <= y.size * 4 + 64, `grew by ${grown} bytes for a ${y.size * 4}-byte output`);
    y.dispose();
    assert.equal(heapStats().inUse, before);
  })));
});

test('a long scan backward restarts from several checkpoints and agrees across backends', () => {
  // N = 2000 makes the chunk 13 steps: L = 40 is four chunks (the last one short), with a state too.
  const Bt = 2, L = 40, Din = 5, N = 2000;
  assert.equal(Math.ceil(L / scanChunk(L, N)), 4);
  const gg = new Generator(9);
  const mk = () => {
    const r = (shape: number[], lo = -1, hi = 1) => tensor(randArray(shape.reduce((a, c) => a * c, 1), new Generator(gg.int(1 << 30)), lo, hi), shape).keep();
    return { u: r([Bt, L, Din]), dl: r([Bt, L, Din]), A: r([Din, N], -1.5, -0.3), B: r([Bt, L, N], -0.1, 0.1), C: r([Bt, L, N], -0.1, 0.1), z: r([Bt, L, Din]), h0: r([Bt, Din, N], -0.05, 0.05) };
  };
  const inp = mk();
  const run = (b: 'ref' | 'wasm') => withBackend(b, () => scope(() => {
    const ps = [inp.u, inp.dl, inp.A, inp.B, inp.C, inp.z].map((t) => T.detach(t).requiresGrad_());
    const [u, dl, A, B, C, z] = ps;
    const y = T.selectiveScan(u, dl, A, B, C, { z, deltaSoftplus: true, state: T.clone(inp.h0) });
    T.sum(T.mul(y, T.tanh(T.sub(T.mul(T.arange(y.size).reshape(y.shape), 0.37), 3)))).backward();
    const out = [y.toArray(), ...ps.map((p) => p.grad!.toArray())];
    for (const p of ps) p.grad!.dispose();
    return out;
  }));
  const r = run('ref'), w = run('wasm');
  ['y', 'du', 'ddelta', 'dA', 'dB', 'dC', 'dz'].forEach((n, i) => assertClose(w[i], r[i], 1e-5, 1e-4, n));
  for (const t of Object.values(inp)) t.dispose();
});

// ------------------------------------------------------------------------------------ memory

test('200 training steps through both ops hold flat heap memory', () => {
  const gg = new Generator(3);
  const Bt = 2, L = 24, Din = 8, N = 4, K = 4;
  const mk = (shape: number[], lo = -0.5, hi = 0.5) => unscoped(() => tensor(randArray(shape.reduce((a, c) => a * c, 1), gg, lo, hi), shape)).requiresGrad_();
  const ps = [mk([Din, K]), mk([Din]), mk([Din, N], -1.5, -0.3), mk([Din]), mk([Din])];
  const [w, cb, A, D, db] = ps;
  const xz = unscoped(() => tensor(randArray(Bt * L * 2 * Din, gg), [Bt, L, 2 * Din]));
  const bc = unscoped(() => tensor(randArray(Bt * L * 2 * N, gg), [Bt, L, 2 * N]));
  let after10 = 0;
  for (let step = 0; step < 200; step++) {
    scope(() => {
      const x = T.silu(T.causalConv1d(T.slice(xz, 2, 0, Din), w, { bias: cb }));
      const y = T.selectiveScan(x, x, A, T.slice(bc, 2, 0, N), T.slice(bc, 2, N), { D, z: T.slice(xz, 2, Din), deltaBias: db, deltaSoftplus: true });
      T.mean(T.mul(y, y)).backward();
    });
    for (const p of ps) { p.grad?.dispose(); p.grad = null; }
    if (step === 10) after10 = heapStats().inUse;
  }
  assert.equal(heapStats().inUse, after10, 'heap in use grew over the training loop');
  for (const t of [...ps, xz, bc]) t.dispose();
});

// ------------------------------------------------------------------------------------ errors

test('bad arguments give errors that name the argument and the expected shape', () => {
  scope(() => {
    const u = T.zeros([2, 7, 3]), A = T.zeros([3, 4]), B = T.zeros([2, 7, 4]);
    assert.throws(() => T.selectiveScan(u, u, A, T.zeros([2, 7, 5]), B), /selectiveScan: B must be \(Bt, L, N\) = \[2, 7, 4\], got \[2, 7, 5\]/);
    assert.throws(() => T.selectiveScan(u, u, A, B, T.zeros([2, 6, 4])), /selectiveScan: C must be \(Bt, L, N\) = \[2, 7, 4\], got \[2, 6, 4\]/);
    assert.throws(() => T.selectiveScan(u, T.zeros([2, 7]), A, B, B), /selectiveScan: delta must be \(Bt, L, Din\) = \[2, 7, 3\], got \[2, 7\]/);
    assert.throws(() => T.selectiveScan(u, u, T.zeros([4, 4]), B, B), /selectiveScan: A must be \(Din, N\) with Din = 3, got \[4, 4\]/);
    assert.throws(() => T.selectiveScan(T.zeros([7, 3]), u, A, B, B), /selectiveScan: u must be \(Bt, L, Din\), got \[7, 3\]/);
    assert.throws(() => T.selectiveScan(u, u, A, B, B, { z: T.zeros([2, 7, 4]) }), /selectiveScan: z must be \(Bt, L, Din\) = \[2, 7, 3\], got \[2, 7, 4\]/);
    assert.throws(() => T.selectiveScan(u, u, A, B, B, { D: T.zeros([4]) }), /selectiveScan: D must be \(Din\) = \[3\], got \[4\]/);
    assert.throws(() => T.selectiveScan(u, u, A, B, B, { deltaBias: T.zeros([1, 3]) }), /selectiveScan: deltaBias must be \(Din\) = \[3\], got \[1, 3\]/);
    assert.throws(() => T.selectiveScan(u, u, A, B, B, { state: T.zeros([2, 4, 3]) }), /selectiveScan: state must be \(Bt, Din, N\) = \[2, 3, 4\], got \[2, 4, 3\]/);
    assert.throws(() => T.selectiveScan(u, u, A, B, B, { state: T.transpose(T.zeros([2, 4, 3])) }), /state must be contiguous/);
    assert.throws(() => T.selectiveScan(u, u, A, B, B, { state: T.zeros([2, 3, 4]).requiresGrad_() }), /selectiveScan: state is a decoding state and gets no gradient/);
    assert.throws(() => T.selectiveScan(tensor([1, 2, 3], [1, 1, 3], 'i32'), u, A, B, B), /selectiveScan: u must be f32, got i32/);
    const x = T.zeros([2, 5, 3]);
    assert.throws(() => T.causalConv1d(x, T.zeros([4, 3])), /causalConv1d: w must be \(C, K\) with C = 3, got \[4, 3\]/);
    assert.throws(() => T.causalConv1d(T.zeros([5, 3]), T.zeros([3, 3])), /causalConv1d: x must be \(B, L, C\), got \[5, 3\]/);
    assert.throws(() => T.causalConv1d(x, T.zeros([3, 4]), { bias: T.zeros([4]) }), /causalConv1d: bias must be \(C\) = \[3\], got \[4\]/);
    assert.throws(() => T.causalConv1d(x, T.zeros([3, 4]), { initial: T.zeros([2, 4, 3]) }), /causalConv1d: initial must be \(B, K−1, C\) = \[2, 3, 3\], got \[2, 4, 3\]/);
    assert.throws(() => T.causalConv1d(x, T.zeros([3, 0])), /causalConv1d: kernel length K = 0 must be in \[1, 32768\]/);
    assert.throws(() => T.causalConv1d(x, T.zeros([3, 2]), { initial: T.zeros([2, 1, 3]).requiresGrad_() }), /causalConv1d: initial is a decoding state/);
  });
});

test('empty shapes give empty outputs', () => {
  onBackends(() => scope(() => {
    assert.deepEqual(T.selectiveScan(T.zeros([2, 0, 3]), T.zeros([2, 0, 3]), T.zeros([3, 4]), T.zeros([2, 0, 4]), T.zeros([2, 0, 4])).shape, [2, 0, 3]);
    assert.deepEqual(T.causalConv1d(T.zeros([2, 0, 3]), T.zeros([3, 4])).shape, [2, 0, 3]);
    assert.deepEqual(T.causalConv1d(T.zeros([1, 3, 0]), T.zeros([0, 4])).shape, [1, 3, 0]);
  }));
});
