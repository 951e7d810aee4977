// The S4D layer against the float64 PyTorch reference (test/fixtures/s4d/layer.json from
// scripts/gen_s4d_fixtures.py: kernel K, outputs, every parameter's gradient, modal states), its
// convolution mode against its recurrent mode, finite-difference gradients, and sin/cos values.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { Generator, Tensor, init, shutdown, scope, noGrad, tensor } from '../../src/index.js';
import { S4D, S4DKernel, s4dConv, s4dScan } from '../../src/nn/s4d.js';
import { s4dInit } from '../../src/nn/hippo.js';
import type { S4DInit } from '../../src/nn/hippo.js';
import { assertClose, fixture, gradcheck, onBackends, randArray } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

interface FT { shape: number[]; data: number[] }
interface LayerCase {
  params: Record<'log_dt' | 'log_A_real' | 'A_imag' | 'C' | 'D', FT>;
  x: FT; K: FT; y: FT; gy: FT; grads: Record<string, FT>; state: FT; L0: number; state_L0: FT;
}
const fx = fixture<{ H: number; N: number; L: number; B: number; cases: Record<S4DInit, LayerCase>; sincos: Record<'x' | 'sin' | 'cos', FT> }>('s4d/layer.json');
const t = (f: FT): Tensor => tensor(f.data, f.shape);

/** A layer with the fixture's parameters. */
function layerOf(c: LayerCase): S4D {
  const s = new S4D(fx.H, { stateSize: fx.N });
  s.loadStateDict({ 'kernel.log_dt': t(c.params.log_dt), 'kernel.log_A_real': t(c.params.log_A_real), 'kernel.A_imag': t(c.params.A_imag), 'kernel.C': t(c.params.C), D: t(c.params.D) });
  return s;
}

test('parameter names and shapes are the S4 repository\'s', () => {
  const s = new S4D(5, { stateSize: 6 });
  assert.deepEqual(s.namedParameters().map(([n, p]) => [n, p.shape]), [
    ['kernel.log_dt', [5]], ['kernel.log_A_real', [5, 3]], ['kernel.A_imag', [5, 3]], ['kernel.C', [5, 3, 2]], ['D', [5]],
  ]);
  s.dispose();
});

test('kernel K, conv-mode output and every gradient match PyTorch (lin, inv, real, legs)', () => {
  onBackends((b) => {
    for (const [kind, c] of Object.entries(fx.cases)) scope(() => {
      const s = layerOf(c);
      const K = s.kernel.kernel(fx.L);
      assertClose(K.toArray(), c.K.data, 2e-6, 2e-5, `${kind} [${b}] K`);
      assertClose(s.kernel.kernel(fx.L, { reversed: true }).toArray(), reversedRows(c.K.data, fx.L), 2e-6, 2e-5, `${kind} [${b}] reversed K`);
      const x = t(c.x).requiresGrad_();
      const y = s.forward(x);
      assertClose(y.toArray(), c.y.data, 2e-6, 2e-5, `${kind} [${b}] y`);
      y.backward(t(c.gy));
      for (const [name, p] of s.namedParameters()) {
        const key = name.replace('kernel.', '');
        assertClose(p.grad!.toArray(), c.grads[key].data, 2e-5, 1e-4, `${kind} [${b}] d/d${name}`);
      }
      assertClose(x.grad!.toArray(), c.grads.x.data, 2e-6, 2e-5, `${kind} [${b}] d/dx`);
      s.dispose();
    });
  });
});

function reversedRows(data: number[], L: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < data.length / L; r++) for (let k = 0; k < L; k++) out.push(data[r * L + L - 1 - k]);
  return out;
}

test('recurrent mode (one position at a time) equals conv mode; the modal state matches PyTorch', () => {
  onBackends((b) => {
    for (const [kind, c] of Object.entries(fx.cases)) noGrad(() => scope(() => {
      const s = layerOf(c);
      const x = t(c.x), state = s.newState(fx.B);
      const ys = Array.from({ length: fx.L }, (_, l) => s.forward(T.slice(x, 1, l, l + 1), state));
      assertClose(T.concat(ys, 1).toArray(), s.forward(x).toArray(), 1e-5, 1e-5, `${kind} [${b}] recurrent vs conv`);
      assertClose(ys.length ? T.concat(ys, 1).toArray() : [], c.y.data, 2e-6, 2e-5, `${kind} [${b}] recurrent y`);
      assertClose(state.toArray(), c.state.data, 2e-6, 2e-5, `${kind} [${b}] final state`);
      s.dispose();
    }));
  });
});

test('a chunk from a state (prefill) equals the recurrence: state after L0 positions, then the rest in one chunk', () => {
  onBackends((b) => {
    for (const [kind, c] of Object.entries(fx.cases)) noGrad(() => scope(() => {
      const s = layerOf(c);
      const x = t(c.x), state = s.newState(fx.B);
      const y0 = s.forward(T.slice(x, 1, 0, c.L0), state); // a chunk from the zero state
      assertClose(state.toArray(), c.state_L0.data, 2e-6, 2e-5, `${kind} [${b}] state after ${c.L0}`);
      const y1 = s.forward(T.slice(x, 1, c.L0), state);    // a chunk from a non-zero state
      assertClose(T.concat([y0, y1], 1).toArray(), c.y.data, 2e-6, 2e-5, `${kind} [${b}] chunked y`);
      assertClose(state.toArray(), c.state.data, 2e-6, 2e-5, `${kind} [${b}] final state`);
      s.dispose();
    }));
  });
});

test('gradients of the conv mode and of a chunk from a state match finite differences', () => {
  const g = new Generator(5);
  const param = (shape: number[], lo: number, hi: number): Tensor => tensor(randArray(shape.reduce((a, b) => a * b, 1), g, lo, hi), shape).keep().requiresGrad_();
  const H = 2, M = 3, L = 6;
  onBackends(() => {
    const k = new S4DKernel(H, { stateSize: 2 * M });
    const inputs = [param([H], -2.5, -0.5), param([H, M], -1, 0.5), param([H, M], -3, 3), param([H, M, 2], -1, 1), param([H], -1, 1), param([2, L, H], -1, 1)];
    const state = tensor(randArray(2 * H * M * 2, g), [2, H, M, 2]).keep();
    const bind = (a: Tensor, b: Tensor, c: Tensor, d: Tensor): void => { k.log_dt = a; k.log_A_real = b; k.A_imag = c; k.C = d; };
    gradcheck('s4dConv', (a, b, c, d, D, x) => { bind(a, b, c, d); return s4dConv(k, D, x); }, inputs, { atol: 3e-3, rtol: 3e-3 });
    gradcheck('s4dScan chunk', (a, b, c, d, D, x) => { bind(a, b, c, d); return s4dScan(k, D, x, T.clone(state)); }, inputs, { atol: 3e-3, rtol: 3e-3 });
    gradcheck('s4dScan step', (a, b, c, d, D, x) => { bind(a, b, c, d); return s4dScan(k, D, T.slice(x, 1, 0, 1), T.clone(state)); }, inputs, { atol: 3e-3, rtol: 3e-3 });
    for (const x of [...inputs, state]) x.dispose();
  });
});

test('initialisation: A from the S4D init, log dt in [log dt_min, log dt_max], C complex normal, D = 1', () => {
  const N = 16, H = 400;
  for (const kind of ['lin', 'inv', 'real', 'legs'] as S4DInit[]) {
    const s = new S4D(H, { stateSize: N, init: kind, dtMin: 0.002, dtMax: 0.2, generator: new Generator(1) });
    const { real, imag } = s4dInit(kind, N);
    const lar = s.kernel.log_A_real.toArray(), ai = s.kernel.A_imag.toArray();
    for (let i = 0; i < lar.length; i++) {
      assert.ok(Math.abs(-Math.exp(lar[i]) - real[i % (N / 2)]) < 1e-5 * (1 + Math.abs(real[i % (N / 2)])), `${kind} A.real`);
      assert.ok(Math.abs(ai[i] - imag[i % (N / 2)]) < 1e-5 * (1 + Math.abs(imag[i % (N / 2)])), `${kind} A.imag`);
    }
    const ldt = s.kernel.log_dt.toArray();
    assert.ok(ldt.every((v) => v >= Math.log(0.002) - 1e-6 && v <= Math.log(0.2) + 1e-6));
    assert.ok(Math.max(...ldt) - Math.min(...ldt) > 0.9 * Math.log(100), 'log dt spread over the range');
    const C = s.kernel.C.toArray();
    const v = C.reduce((a, x) => a + x * x, 0) / C.length;
    assert.ok(Math.abs(v - 0.5) < 0.05, `C variance per part ${v}`);
    assert.deepEqual([...new Set(s.D.toArray())], [1]);
    s.dispose();
  }
  assert.throws(() => new S4D(4, { stateSize: 7 }), /even/);
});

test('sin and cos match PyTorch (float64) on both backends, large arguments included', () => {
  onBackends((b) => scope(() => {
    const x = t(fx.sincos.x);
    assertClose(T.sin(x).toArray(), fx.sincos.sin.data, 1e-7, 1e-6, `sin [${b}]`);
    assertClose(T.cos(x).toArray(), fx.sincos.cos.data, 1e-7, 1e-6, `cos [${b}]`);
  }));
});

test('dB = (exp(dt·A) − 1)/A keeps float32 accuracy for small dt·A (no cancellation in exp − 1)', () => {
  // Against the closed form in float64: the naive f32 exp(dt·A) − 1 would be off by ~1e-4 here.
  onBackends((b) => scope(() => {
    const H = 3, M = 3;
    const k = new S4DKernel(H, { stateSize: 2 * M, init: 'lin' });
    const logDt = [Math.log(1e-3), Math.log(3e-4), Math.log(1e-4)];
    k.loadStateDict({ log_dt: tensor(logDt, [H]), log_A_real: k.log_A_real, A_imag: k.A_imag, C: k.C });
    const d = noGrad(() => k.discrete());
    const got = [d.dB.re.toArray(), d.dB.im.toArray()];
    const lar = k.log_A_real.toArray(), ai = k.A_imag.toArray();
    for (let h = 0; h < H; h++) for (let n = 0; n < M; n++) {
      const i = h * M + n, dt = Math.fround(Math.exp(logDt[h]));
      const ar = -Math.exp(lar[i]), im = ai[i], x = dt * ar, y = dt * im;
      const nr = Math.expm1(x) * Math.cos(y) - 2 * Math.sin(y / 2) ** 2, ni = Math.exp(x) * Math.sin(y);
      const a2 = ar * ar + im * im;
      const want = [(nr * ar + ni * im) / a2, (ni * ar - nr * im) / a2];
      for (let p = 0; p < 2; p++) {
        assert.ok(Math.abs(got[p][i] - want[p]) <= 2e-6 * Math.abs(want[0]), `[${b}] dB ${p ? 'im' : 're'} (h ${h}, n ${n}): ${got[p][i]} vs ${want[p]}`);
      }
    }
    k.dispose();
  }));
});

test('the factored Vandermonde: K for every L in 1…40 and 100, both orders, equals the direct sum in float64', () => {
  const c = fx.cases.inv;
  onBackends((b) => noGrad(() => scope(() => {
    const s = layerOf(c);
    const H = fx.H, M = fx.N / 2;
    const ldt = c.params.log_dt.data, lar = c.params.log_A_real.data, ai = c.params.A_imag.data;
    const d = s.kernel.discrete();
    const [cbr, cbi] = [d.CB.re.toArray(), d.CB.im.toArray()]; // C·dB from the layer (checked against PyTorch above)
    for (const L of [...Array.from({ length: 40 }, (_, i) => i + 1), 100]) {
      const want: number[] = [], wantRev: number[] = [];
      for (let h = 0; h < H; h++) {
        const row = Array.from({ length: L }, (_, l) => {
          let v = 0;
          for (let n = 0; n < M; n++) {
            const i = h * M + n, dt = Math.exp(ldt[h]), x = -Math.exp(lar[i]) * dt * l, y = ai[i] * dt * l;
            v += 2 * Math.exp(x) * (cbr[i] * Math.cos(y) - cbi[i] * Math.sin(y));
          }
          return v;
        });
        want.push(...row);
        wantRev.push(...row.reverse());
      }
      assertClose(s.kernel.kernel(L, { discrete: d }).toArray(), want, 1e-6, 1e-5, `[${b}] K L=${L}`);
      assertClose(s.kernel.kernel(L, { discrete: d, reversed: true }).toArray(), wantRev, 1e-6, 1e-5, `[${b}] reversed K L=${L}`);
    }
    s.dispose();
  })));
});

test('chunks of 2…17 positions from a non-zero state equal the step-by-step recurrence', () => {
  const g = new Generator(9);
  onBackends((b) => noGrad(() => scope(() => {
    const s = layerOf(fx.cases.lin);
    const init0 = tensor(randArray(2 * fx.H * (fx.N / 2) * 2, g), [2, fx.H, fx.N / 2, 2]);
    for (const Tn of [2, 3, 4, 5, 8, 9, 16, 17]) {
      const x = tensor(randArray(2 * Tn * fx.H, g), [2, Tn, fx.H]);
      const a = T.clone(init0), c = T.clone(init0);
      const chunk = s.forward(x, a);
      const steps = T.concat(Array.from({ length: Tn }, (_, t) => s.forward(T.slice(x, 1, t, t + 1), c)), 1);
      assertClose(chunk.toArray(), steps.toArray(), 1e-5, 1e-5, `[${b}] T=${Tn} y`);
      assertClose(a.toArray(), c.toArray(), 1e-5, 1e-5, `[${b}] T=${Tn} state`);
    }
    s.dispose();
  })));
});
