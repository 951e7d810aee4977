// HiPPO matrices, LegS's normal part, the S4D initialisations and the discretisations against
// the float64 PyTorch reference (test/fixtures/s4d/hippo.json, scripts/gen_s4d_fixtures.py), and
// the property HiPPO exists for: run online over a smooth signal, its coefficients are close to
// the signal's Legendre projection and reconstruct the signal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  HippoError, discretize, hippoReconstruct, hippoRun, hippoTransition, legendre, legsNormal, s4dInit,
} from '../../src/nn/hippo.js';
import type { Discretization, Measure, S4DInit } from '../../src/nn/hippo.js';
import { assertClose, fixture } from '../helpers.js';

interface FT { shape: number[]; data: number[] }
interface Run { N: number; L: number; theta: number | null; c: FT; exact: FT; coef_err: number; recon_err: number; exact_recon_err: number; grid: [number, number, number] }
interface Hippo {
  [key: string]: unknown;
  s4d_init: Record<string, FT>;
  discretize: Record<string, { dt: number; dA: FT; dB: FT }>;
  runs: Record<string, Run>;
}
const fx = fixture<Hippo>('s4d/hippo.json');

/** The smooth test signal of the reference script. */
const signal = (x: number): number => Math.sin(2 * Math.PI * 1.5 * x) * Math.exp(-x) + 0.5 * Math.cos(5 * x) + 0.2 * x;

test('LegS and LegT (A, B) match the reference, N = 5 and 8', () => {
  for (const N of [5, 8]) for (const m of ['legs', 'legt'] as Measure[]) {
    const want = fx[`${m}_${N}`] as { A: FT; B: FT };
    const { A, B } = hippoTransition(m, N);
    assertClose(A, want.A.data, 1e-14, 1e-14, `${m} N=${N} A`);
    assertClose(B, want.B.data, 1e-14, 1e-14, `${m} N=${N} B`);
  }
});

test('LegS normal part: S = A + PPᵀ matches, and is −½·I plus a skew-symmetric matrix', () => {
  for (const N of [5, 8]) {
    const want = fx[`legs_normal_${N}`] as { S: FT; P: FT };
    const { S, P } = legsNormal(N);
    assertClose(S, want.S.data, 1e-14, 1e-14, `S N=${N}`);
    assertClose(P, want.P.data, 1e-15, 1e-15, `P N=${N}`);
    for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) {
      const k = S[i * N + j] + (i === j ? 0.5 : 0), kt = S[j * N + i] + (i === j ? 0.5 : 0);
      assert.ok(Math.abs(k + kt) < 1e-14, `S + ½I not skew at (${i}, ${j})`);
    }
  }
});

test('S4D initialisations lin, inv, real, legs match the reference (legs: Jacobi vs torch.linalg.eigvals)', () => {
  for (const N of [8, 16, 64]) for (const kind of ['lin', 'inv', 'real', 'legs'] as S4DInit[]) {
    const want = fx.s4d_init[`${kind}_${N}`].data; // (N/2, 2) re, im
    const { real, imag } = s4dInit(kind, N);
    assert.equal(real.length, N / 2);
    assertClose(real, want.filter((_, i) => i % 2 === 0), 1e-14, 1e-14, `${kind} N=${N} real`);
    assertClose(imag, want.filter((_, i) => i % 2 === 1), 1e-12, 1e-9, `${kind} N=${N} imag`);
  }
  assert.throws(() => s4dInit('lin', 7), (e: Error) => e instanceof HippoError && /even/.test(e.message));
  assert.throws(() => s4dInit('cubic' as S4DInit, 8), (e: Error) => e instanceof HippoError && /cubic/.test(e.message));
});

test('bilinear and zero-order-hold discretisations match the reference', () => {
  for (const [key, want] of Object.entries(fx.discretize)) {
    const [m, n, method] = key.split('_');
    const N = Number(n);
    const { A, B } = hippoTransition(m as Measure, N);
    const { dA, dB } = discretize(A, B, N, want.dt, method as Discretization);
    assertClose(dA, want.dA.data, 1e-13, 1e-12, `${key} dA`);
    assertClose(dB, want.dB.data, 1e-13, 1e-12, `${key} dB`);
  }
});

test('Legendre polynomials: known values', () => {
  assertClose(legendre(5, 0.5), [1, 0.5, -0.125, -0.4375, -0.2890625], 1e-15, 0, 'P_n(0.5)');
  assertClose(legendre(4, 1), [1, 1, 1, 1], 1e-15, 0, 'P_n(1)');
});

test('online approximation: HiPPO-LegS/LegT coefficients track the Legendre projection and reconstruct the signal', () => {
  for (const [key, run] of Object.entries(fx.runs)) {
    const [measure, method] = key.split('_') as [Measure, Discretization];
    const { N, L } = run;
    const theta = run.theta ?? undefined;
    const f = Float64Array.from({ length: L }, (_, k) => signal((k + 1) / L));
    const c = hippoRun(measure, N, f, { dt: 1 / L, method, theta });
    // the reference ran the same recurrence: equal to rounding
    assertClose(c, run.c.data, 1e-10, 1e-9, `${key} coefficients vs reference`);
    // what HiPPO is for: close to the exact projection (quadrature in the reference) …
    let coefErr = 0;
    c.forEach((v, i) => { coefErr = Math.max(coefErr, Math.abs(v - run.exact.data[i])); });
    assert.ok(coefErr < 1e-3, `${key}: coefficients differ from the projection by ${coefErr}`);
    assert.ok(Math.abs(coefErr - run.coef_err) < 1e-9, `${key}: coefficient error ${coefErr} vs reference ${run.coef_err}`);
    // … and the signal is recovered on the memory's window (away from its oldest 5%)
    const [lo, hi, n] = run.grid;
    let err = 0;
    for (let i = 0; i < n; i++) {
      const x = lo + ((hi - lo) * i) / (n - 1);
      err = Math.max(err, Math.abs(hippoReconstruct(measure, c, x, 1, theta) - signal(x)));
    }
    assert.ok(err < 3e-3, `${key}: reconstruction error ${err}`);
    assert.ok(Math.abs(err - run.recon_err) < 1e-9, `${key}: reconstruction error ${err} vs reference ${run.recon_err}`);
  }
});

test('a wrong HiPPO matrix does not reconstruct: the property test can fail', () => {
  // LegT's recurrence run with LegS's matrices (scaled as LegT) forgets the window's shape.
  const L = 2000, N = 16, theta = 0.5;
  const f = Float64Array.from({ length: L }, (_, k) => signal((k + 1) / L));
  const { A, B } = hippoTransition('legs', N);
  const { dA, dB } = discretize(A.map((a) => a / theta), B.map((b) => b / theta), N, 1 / L, 'bilinear');
  let c = new Float64Array(N);
  for (const fk of f) c = c.map((_, i) => dB[i] * fk + dA.slice(i * N, i * N + N).reduce((s, a, j) => s + a * c[j], 0));
  let err = 0;
  for (let i = 0; i <= 20; i++) {
    const x = 0.55 + 0.45 * (i / 20);
    err = Math.max(err, Math.abs(hippoReconstruct('legt', c, x, 1, theta) - signal(x)));
  }
  assert.ok(err > 0.05, `wrong matrices reconstructed with error ${err}`);
});
