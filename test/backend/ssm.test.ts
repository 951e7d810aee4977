// The wasm state-space-model kernels (causal_conv1d_fwd/bwd, selective_scan_fwd/bwd) against
// their reference twins on awkward shapes: channels 1, 3, 31, 33, 64 (not multiples of the four
// SIMD lanes), N 1, 5, 16, lengths 1, 7, 64 and past the conv's 256-step time tile, K 1, 4, 33
// and K = L, batch 1 and 3, inputs as strided row views, every optional input on and off, the
// scan's backward with several chunks and channel groups. Each case runs the reference once and
// the wasm module three ways: through backend.call (threaded when the work is large), and share
// by share on this thread with nt = 3 and nt = 7 (the shares must cover the output exactly
// once). Output buffers start from different sentinels on each side, so an element a kernel
// fails to write shows up.
//
// Tolerances (|wasm − ref| ≤ atol + rtol·|ref|; ref computes in f64):
//   conv forward and dx ....................... rtol 1e-5, atol 1e-5
//   conv dw, dbias (sums over B·L) ............ rtol 1e-5, atol 1e-5·√(B·L)
//   scan y, state, checkpoints ................ rtol 1e-5, atol 1e-5
//   scan gradients ............................ rtol 1e-5, atol 1e-5 (measured worst: below 2e-6)
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { alloc, release, views } from '../../src/backend/heap.js';
import type { KernelName } from '../../src/backend/kernels.js';
import { refBackend } from '../../src/backend/ref/index.js';
import { WasmBackend } from '../../src/backend/wasm/index.js';
import { scanChunk, scanGroup } from '../../src/tensor/ssm.js';
import { uniformRng as rng } from '../helpers.js';

const R = rng(2024);
function uniform(n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * R();
  return a;
}

type Tol = [rtol: number, atol: number];
interface Case {
  kernel: KernelName;
  label: string;
  inputs: Record<string, Float32Array | Int32Array>;
  /** Outputs: initial contents (in-place buffers), or a length (filled with a sentinel). */
  outputs: Record<string, Float32Array | number>;
  args: (p: Record<string, number>) => number[];
  work: number;
  tol: Record<string, Tol>;
}

let be: WasmBackend;
let exportsObj: Record<string, (...a: number[]) => void>;

function put(a: Float32Array | Int32Array): number {
  const p = alloc(Math.max(16, a.length * 4));
  if (a instanceof Int32Array) views().i32.set(a, p >>> 2);
  else views().f32.set(a, p >>> 2);
  return p;
}

type Mode = 'ref' | 'call' | 'nt3' | 'nt7';
function runMode(c: Case, mode: Mode, inPtrs: Record<string, number>): Record<string, Float32Array> {
  const ptrs: Record<string, number> = { ...inPtrs }, lens: Record<string, number> = {};
  for (const [k, v] of Object.entries(c.outputs)) {
    const init = typeof v === 'number' ? new Float32Array(v).fill(mode === 'ref' ? -777.25 : 1234.5) : v;
    ptrs[k] = put(init);
    lens[k] = init.length;
  }
  const args = c.args(ptrs);
  if (mode === 'ref') refBackend.call(c.kernel, args, c.work);
  else if (mode === 'call') be.call(c.kernel, args, c.work);
  else {
    const nt = mode === 'nt3' ? 3 : 7;
    for (let t = nt - 1; t >= 0; t--) exportsObj[c.kernel](...args, t, nt);
  }
  const res: Record<string, Float32Array> = {};
  for (const [k, n] of Object.entries(lens)) {
    res[k] = views().f32.slice(ptrs[k] >>> 2, (ptrs[k] >>> 2) + n);
    release(ptrs[k]);
  }
  return res;
}

/** Runs the case on both backends and returns the reference outputs. */
function check(c: Case): Record<string, Float32Array> {
  const inPtrs: Record<string, number> = {};
  for (const [k, v] of Object.entries(c.inputs)) inPtrs[k] = put(v);
  try {
    const ref = runMode(c, 'ref', inPtrs);
    for (const mode of ['call', 'nt3', 'nt7'] as Mode[]) {
      const got = runMode(c, mode, inPtrs);
      for (const k of Object.keys(ref)) {
        const [rtol, atol] = c.tol[k] ?? [1e-5, 1e-5];
        const r = ref[k], w = got[k];
        for (let i = 0; i < r.length; i++) {
          if (!(Math.abs(w[i] - r[i]) <= atol + rtol * Math.abs(r[i]))) {
            assert.fail(`${c.kernel} [${c.label}] mode ${mode}: ${k}[${i}] wasm ${w[i]} ref ${r[i]} (rtol ${rtol}, atol ${atol})`);
          }
        }
      }
    }
    return ref;
  } finally {
    for (const p of Object.values(inPtrs)) release(p);
  }
}

/** A (B, L, C) input stored with row stride `row` ≥ C (extra columns are junk). */
function stridedRows(B: number, L: number, C: number, row: number): { data: Float32Array; sB: number; sL: number } {
  return { data: uniform(B * L * row), sB: L * row, sL: row };
}

before(async () => {
  be = await WasmBackend.create(2);
  exportsObj = (be as unknown as { exportsObj: Record<string, (...a: number[]) => void> }).exportsObj;
});
after(async () => { await be.dispose(); });

describe('ssm kernels', () => {
  it('the wasm module exports all four', () => {
    for (const k of ['causal_conv1d_fwd', 'causal_conv1d_bwd', 'selective_scan_fwd', 'selective_scan_bwd'] as const) {
      assert.ok(!be.missing.includes(k), `${k} missing from the wasm module`);
    }
  });

  it('causal_conv1d_fwd / _bwd agree with ref', () => {
    let n = 0;
    const shapes: [number, number][] = [];
    for (const L of [1, 7, 64]) for (const K of [1, 4, 33, L]) shapes.push([L, K]);
    shapes.push([300, 4], [300, 300], [513, 37]); // several 256-step time tiles
    for (const [L, K] of shapes) for (const C of [1, 3, 31, 33, 64]) for (const B of [1, 3]) {
      if (L > 64 && (C > 33 || B > 1)) continue;
      const v = n++;
      const withBias = v % 2 === 0, withInit = v % 3 !== 1, strided = v % 4 < 2;
      const row = strided ? C + 1 + (v % 5) : C;
      const x = stridedRows(B, L, C, row);
      const inputs: Record<string, Float32Array> = { x: x.data, w: uniform(C * K, -0.5, 0.5), bias: uniform(C), init: uniform(B * Math.max(K - 1, 1) * C), dy: uniform(B * L * C) };
      const label = `B=${B} L=${L} C=${C} K=${K} bias=${withBias} init=${withInit} row=${row}`;
      const opt = (p: Record<string, number>, k: string, on: boolean): number => (on ? p[k] : 0);
      const work = 2 * B * L * C * K;
      check({
        kernel: 'causal_conv1d_fwd', label, inputs, outputs: { y: B * L * C }, work, tol: {},
        args: (p) => [p.y, p.x, p.w, opt(p, 'bias', withBias), opt(p, 'init', withInit), B, L, C, K, x.sB, x.sL],
      });
      const sumTol: Tol = [1e-5, 1e-5 * Math.sqrt(B * L)];
      // Every output, then each alone (the others 0: not wanted).
      for (const want of [['dx', 'dw', 'dbias'], ['dx'], ['dw'], ['dbias']]) {
        if (want.length === 1 && v % 3 !== 0) continue;
        const outputs: Record<string, number> = {};
        if (want.includes('dx')) outputs.dx = B * L * C;
        if (want.includes('dw')) outputs.dw = C * K;
        if (want.includes('dbias')) outputs.dbias = C;
        check({
          kernel: 'causal_conv1d_bwd', label: `${label} want=${want}`, inputs, outputs, work: 2 * work, tol: { dw: sumTol, dbias: sumTol },
          args: (p) => [p.dx ?? 0, p.dw ?? 0, p.dbias ?? 0, p.dy, p.x, p.w, opt(p, 'init', withInit), B, L, C, K, x.sB, x.sL],
        });
      }
    }
  });

  it('selective_scan_fwd / _bwd agree with ref', () => {
    let n = 0;
    for (const L of [1, 7, 64]) for (const N of [1, 5, 16]) for (const Din of [1, 3, 31, 33, 64]) for (const Bt of [1, 3]) {
      const v = n++;
      const withD = v % 2 === 0, withZ = v % 3 !== 2, withBias = v % 4 !== 3, sp = v % 5 !== 4 ? 1 : 0, withState = v % 3 === 1;
      const strided = v % 2 === 1;
      // Strided like Mamba: u, z slices of one (Bt, L, 2·Din) row, B, C of (Bt, L, R + 2N) with
      // R = 3, delta with padded rows; otherwise every input contiguous on its own.
      const uz = stridedRows(Bt, L, 2 * Din, 2 * Din), zz = stridedRows(Bt, L, Din, Din);
      const bc = stridedRows(Bt, L, 2 * N, strided ? 2 * N + 3 : N), cc = stridedRows(Bt, L, N, N);
      const dl = stridedRows(Bt, L, Din, strided ? Din + 2 : Din);
      const uS = strided ? uz : zz, zS = strided ? uz : zz, cS = strided ? bc : cc;
      const meta = new Int32Array([uS.sB, uS.sL, dl.sB, dl.sL, zS.sB, zS.sL, bc.sB, bc.sL, cS.sB, cS.sL]);
      // Element offsets of u, z, B, C in the buffers uz / z2, bc / c2.
      const ptrs = (p: Record<string, number>) => strided
        ? { u: p.uz, z: p.uz + 4 * Din, B: p.bc + 12, C: p.bc + 12 + 4 * N }
        : { u: p.uz, z: p.z2, B: p.bc, C: p.c2 };
      const A = new Float32Array(Din * N);
      for (let i = 0; i < A.length; i++) A[i] = -Math.exp(-1 + 2 * R()); // Mamba's A = −exp(A_log)
      const inputs: Record<string, Float32Array | Int32Array> = {
        uz: strided ? uz.data : uniform(Bt * L * Din), z2: uniform(Bt * L * Din), delta: sp ? uniform(dl.data.length, -2, 1) : uniform(dl.data.length, 0, 1), A,
        bc: strided ? bc.data : uniform(Bt * L * N), c2: uniform(Bt * L * N), D: uniform(Din), dbias: sp ? uniform(Din, -1, 0.5) : uniform(Din, 0, 0.5), meta,
        dy: uniform(Bt * L * Din),
      };
      const state0 = uniform(Bt * Din * N);
      // chunk: the op's (whole L here), and a small one so the backward restarts from checkpoints.
      const chunks = [scanChunk(L, N), ...(L > 3 ? [3 + (v % 4)] : [])];
      const groups = [scanGroup(Bt, Din, N), 4 * (1 + (v % 3))];
      for (const chunk of chunks) {
        const nChunks = Math.ceil(L / chunk);
        const label = `Bt=${Bt} L=${L} Din=${Din} N=${N} D=${withD} z=${withZ} bias=${withBias} sp=${sp} state=${withState} strided=${strided} chunk=${chunk}`;
        const opt = (p: Record<string, number>, k: string, on: boolean): number => (on ? p[k] : 0);
        const work = Bt * L * Din * N * 12;
        const outputs: Record<string, Float32Array | number> = { y: Bt * L * Din, ckpt: Bt * nChunks * Din * N };
        if (withState) outputs.state = state0;
        const fwd = check({
          kernel: 'selective_scan_fwd', label, inputs, outputs, work, tol: {},
          args: (p) => [p.y, p.ckpt, p.state ?? 0, ptrs(p).u, p.delta, p.A, ptrs(p).B, ptrs(p).C,
            opt(p, 'D', withD), withZ ? ptrs(p).z : 0, opt(p, 'dbias', withBias), Bt, L, Din, N, sp, chunk, p.meta],
        });
        for (const group of groups) {
          const G = Math.ceil(Din / group);
          const all = ['du', 'ddelta', 'dz', 'dA', 'dD', 'ddbias', 'dB', 'dC'];
          const sets = v % 4 === 0 ? [all, ['du', 'dB'], ['dA', 'dC', 'ddbias']] : [all];
          for (const want of sets) {
            const sizes: Record<string, number> = { du: Bt * L * Din, ddelta: Bt * L * Din, dz: Bt * L * Din, dA: Bt * Din * N, dD: Bt * Din, ddbias: Bt * Din, dB: G * Bt * L * N, dC: G * Bt * L * N };
            const outs: Record<string, number> = {};
            for (const k of want) if ((k !== 'dz' || withZ) && (k !== 'dD' || withD) && (k !== 'ddbias' || withBias)) outs[k] = sizes[k];
            const gt: Tol = [1e-5, 1e-5];
            check({
              kernel: 'selective_scan_bwd', label: `${label} group=${group} want=${want}`, inputs: { ...inputs, ckpt: fwd.ckpt }, outputs: outs,
              work: 2 * work, tol: Object.fromEntries(all.map((k) => [k, gt])),
              // A lone chunk starting from zeros: the op passes no checkpoint.
              args: (p) => [p.du ?? 0, p.ddelta ?? 0, p.dz ?? 0, p.dA ?? 0, p.dD ?? 0, p.ddbias ?? 0, p.dB ?? 0, p.dC ?? 0, p.dy,
                nChunks === 1 && !withState ? 0 : p.ckpt, ptrs(p).u, p.delta, p.A, ptrs(p).B, ptrs(p).C, opt(p, 'D', withD),
                withZ ? ptrs(p).z : 0, opt(p, 'dbias', withBias),
                Bt, L, Din, N, sp, chunk, group, p.meta],
            });
          }
        }
      }
    }
  });
});
