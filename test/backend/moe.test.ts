// The mixture-of-experts decoding kernels (moe_swiglu, moe_down) on the wasm backend against
// their reference twins, and the op that runs them (moeExpertsInto_) against the same arithmetic
// written with ordinary ops. Awkward sizes: hidden D and expert widths 1, 3, 5, 31, 33 (not
// multiples of the four SIMD lanes or of the 16-element blocks), k = 1, 2, 4 experts chosen in
// any order, a shared expert of another width, one to three token rows. Each wasm case runs
// through backend.call (threaded when the work is large, forced both ways) and share by share on
// this thread with nt = 1, 3 and 7 (the shares must cover every output exactly once: outputs
// start from different sentinels on each side). The weights of experts in no slot are NaN: a
// kernel that reads them makes its outputs NaN.
//
// Tolerances (|wasm − ref| ≤ atol + rtol·|ref|; ref sums in f64): act rtol 1e-5, atol 1e-5·√D;
// h rtol 1e-5, atol 1e-5·√(Σ width) (measured worst: below 1e-6 relative).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { release } from '../../src/backend/heap.js';
import { putF32 as put, getF32 as get, wasmKernelHarness } from './kernel_harness.js';
import type { KernelMode } from './kernel_harness.js';
import * as T from '../../src/index.js';
import { noGrad, scope, withBackend } from '../../src/index.js';
import { MAX_MOE_SLOTS, moeExpertsInto_ } from '../../src/tensor/moe.js';
import type { MoeSlot } from '../../src/tensor/moe.js';
import { assertClose, uniformRng } from '../helpers.js';

const R = uniformRng(777);
function uniform(n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * R();
  return a;
}

const harness = wasmKernelHarness();
const run = harness.run;

type Mode = KernelMode;
const MODES: Mode[] = ['call', 'call-parallel', 'call-serial', 'nt1', 'nt3', 'nt7'];

interface Expert { gate: number; up: number; down: number; width: number }
interface Slot { expert: number; row: number; scale: number }

/**
 * E experts of width I (one more, the shared one, of width Is when Is > 0), N token rows; slots
 * as given. Experts in no slot hold NaN. Compares both kernels of wasm with ref.
 */
function checkCase(label: string, D: number, I: number, E: number, Is: number, N: number, slots: Slot[]): void {
  const used = new Set(slots.map((s) => s.expert));
  const ptrs: number[] = [];
  const experts: Expert[] = [];
  for (let e = 0; e < E + (Is ? 1 : 0); e++) {
    const w = e === E ? Is : I;
    const fill = (n: number) => (used.has(e) ? uniform(n, -0.5, 0.5) : new Float32Array(n).fill(NaN));
    const ex = { gate: put(fill(w * D)), up: put(fill(w * D)), down: put(fill(D * w)), width: w };
    ptrs.push(ex.gate, ex.up, ex.down);
    experts.push(ex);
  }
  const meta = new Int32Array(slots.length * 6), mf = new Float32Array(meta.buffer);
  slots.forEach((s, i) => {
    const ex = experts[s.expert];
    meta.set([ex.gate, ex.up, ex.down, ex.width, s.row], i * 6);
    mf[i * 6 + 5] = s.scale;
  });
  const total = slots.reduce((a, s) => a + experts[s.expert].width, 0);
  const x = put(uniform(N * D, -2, 2)), m = put(meta), h0 = uniform(N * D);
  ptrs.push(x, m);
  try {
    // moe_swiglu: act from sentinels.
    const outAct = (mode: Mode): Float32Array => {
      const act = put(new Float32Array(total).fill(mode === 'ref' ? -777.25 : 1234.5));
      run('moe_swiglu', [act, x, m, slots.length, D], 4 * total * D, mode);
      const r = get(act, total);
      release(act);
      return r;
    };
    const refAct = outAct('ref');
    assert.ok(refAct.every(Number.isFinite), `${label}: ref act not finite`);
    for (const mode of MODES) assertClose(outAct(mode), refAct, 1e-5 * Math.sqrt(D), 1e-5, `moe_swiglu [${label}] ${mode}`);
    // moe_down: h += …, from the same act on both sides.
    const act = put(refAct);
    ptrs.push(act);
    const outH = (mode: Mode): Float32Array => {
      const h = put(h0);
      run('moe_down', [h, act, m, slots.length, D], 2 * total * D, mode);
      const r = get(h, N * D);
      release(h);
      return r;
    };
    const refH = outH('ref');
    assert.ok(refH.every(Number.isFinite), `${label}: ref h not finite`);
    for (const mode of MODES) assertClose(outH(mode), refH, 1e-5 * Math.sqrt(Math.max(total, 1)), 1e-5, `moe_down [${label}] ${mode}`);
  } finally {
    for (const p of ptrs) release(p);
  }
}

/** k distinct experts of E in a shuffled order. */
function pick(E: number, k: number): number[] {
  const ids = [...Array(E).keys()];
  for (let i = E - 1; i > 0; i--) { const j = Math.floor(R() * (i + 1)); [ids[i], ids[j]] = [ids[j], ids[i]]; }
  return ids.slice(0, k);
}

describe('moe kernels (wasm against ref)', () => {
  it('are exported by the wasm module', () => {
    for (const k of ['moe_swiglu', 'moe_down'] as const) assert.ok(!harness.backend.missing.includes(k), `${k} missing from the wasm module`);
  });

  it('one token: k of E experts in any order, awkward D and widths', () => {
    for (const D of [1, 3, 5, 31, 33, 128]) for (const I of [1, 3, 5, 33, 172]) for (const k of [1, 2, 4]) {
      const E = 6, ex = pick(E, k);
      checkCase(`D${D} I${I} k${k} experts ${ex}`, D, I, E, 0, 1, ex.map((e) => ({ expert: e, row: 0, scale: 0.1 + R() })));
    }
  });

  it('a shared expert of another width, a descending order, scale 0 and negative', () => {
    for (const [D, I, Is] of [[17, 7, 13], [64, 40, 96], [33, 31, 1], [130, 5, 201]]) {
      checkCase(`D${D} I${I} shared ${Is}`, D, I, 8, Is, 1, [
        { expert: 7, row: 0, scale: 0.6 }, { expert: 2, row: 0, scale: 0 }, { expert: 0, row: 0, scale: -0.3 }, { expert: 8, row: 0, scale: 0.5 },
      ]);
    }
  });

  it('several token rows, an expert shared by two rows, rows listed out of order', () => {
    for (const [D, I, N] of [[5, 3, 2], [31, 33, 3], [96, 172, 4]]) {
      const slots: Slot[] = [];
      for (const r of [...Array(N).keys()].reverse()) for (const e of pick(5, 2)) slots.push({ expert: e, row: r, scale: R() });
      slots.push({ expert: 5, row: 1 % N, scale: 0.25 }, { expert: slots[0].expert, row: 0, scale: 0.75 });
      checkCase(`D${D} I${I} N${N}`, D, I, 5, I + 2, N, slots);
    }
  });

  it('no slots and D = 0 change nothing', () => {
    const h = put(new Float32Array([1, 2, 3, 4])), a = put(new Float32Array(4).fill(5)), m = put(new Int32Array(6));
    for (const mode of ['ref', ...MODES] as Mode[]) {
      run('moe_swiglu', [a, h, m, 0, 4], 0, mode);
      run('moe_down', [h, a, m, 0, 4], 0, mode);
      run('moe_down', [h, a, m, 0, 0], 0, mode);
    }
    assert.deepEqual([...get(h, 4)], [1, 2, 3, 4]);
    assert.deepEqual([...get(a, 4)], [5, 5, 5, 5]);
    for (const p of [h, a, m]) release(p);
  });
});

describe('moeExpertsInto_', () => {
  /** h + Σ scale · down(silu(gate x) · up x) with ordinary ops (linear, silu, mul, add). */
  function composite(h: T.Tensor, x: T.Tensor, slots: MoeSlot[]): number[] {
    let y = T.clone(h);
    for (const s of slots) {
      const xr = T.slice(x, 0, s.row, s.row + 1);
      const o = T.mul(T.linear(T.mul(T.silu(T.linear(xr, s.gate)), T.linear(xr, s.up)), s.down), s.scale);
      const onehot = T.tensor(Array.from({ length: x.shape[0] }, (_, r) => [r === s.row ? 1 : 0]));
      y = T.add(y, T.mul(onehot, o));
    }
    return y.toArray() as number[];
  }

  it('matches the composite of ordinary ops on both backends', () => {
    const g = new T.Generator(9);
    for (const [N, D, I, Is] of [[1, 33, 7, 0], [1, 128, 172, 96], [3, 5, 4, 3]]) {
      scope(() => noGrad(() => {
        const mk = (w: number) => ({ gate: T.randn([w, D], { generator: g }), up: T.randn([w, D], { generator: g }), down: T.randn([D, w], { generator: g }) });
        const ex = [mk(I), mk(I), mk(I)], sh = Is ? mk(Is) : null;
        const slots: MoeSlot[] = [];
        for (let r = 0; r < N; r++) {
          slots.push({ ...ex[(r + 2) % 3], row: r, scale: 0.7 }, { ...ex[r % 3], row: r, scale: 0.3 });
          if (sh) slots.push({ ...sh, row: r, scale: 0.45 });
        }
        const x = T.randn([N, D], { generator: g }), h = T.randn([N, D], { generator: g });
        const want = withBackend('ref', () => composite(h, x, slots)).flat();
        for (const b of ['ref', 'wasm'] as const) {
          const hb = T.clone(h);
          withBackend(b, () => moeExpertsInto_(hb, x, slots));
          assertClose(hb.toArray().flat() as number[], want, 1e-4, 1e-5, `N${N} D${D} I${I} shared ${Is} [${b}]`);
        }
      }));
    }
  });

  it('names what is wrong', () => {
    scope(() => noGrad(() => {
      const x = T.zeros([1, 8]), h = T.zeros([1, 8]);
      const s = { gate: T.zeros([4, 8]), up: T.zeros([4, 8]), down: T.zeros([8, 4]), row: 0, scale: 1 };
      assert.throws(() => moeExpertsInto_(h, x, [{ ...s, down: T.zeros([4, 8]) }]), /slot 0: down must be \[8, 4\], got \[4, 8\]/);
      assert.throws(() => moeExpertsInto_(h, x, [s, { ...s, up: T.zeros([4, 9]) }]), /slot 1: up must be \[4, 8\]/);
      assert.throws(() => moeExpertsInto_(h, x, [{ ...s, row: 1 }]), /slot 0: row 1 outside \[0, 1\)/);
      assert.throws(() => moeExpertsInto_(h, x, [{ ...s, gate: T.transpose(T.zeros([8, 4]), 0, 1) }]), /slot 0: gate must be contiguous/);
      assert.throws(() => moeExpertsInto_(T.zeros([2, 8]), x, [s]), /h \[2, 8\] and x \[1, 8\] must both be \(N, D\)/);
      assert.throws(() => moeExpertsInto_(h, T.tensor([[0, 0, 0, 0, 0, 0, 0, 0]], undefined, 'i32'), [s]), /x must be f32/);
      assert.throws(() => moeExpertsInto_(h, x, new Array(MAX_MOE_SLOTS + 1).fill(s)), /slots exceed/);
    }));
    scope(() => {
      const x = T.zeros([1, 8]).requiresGrad_(), h = T.zeros([1, 8]);
      assert.throws(() => moeExpertsInto_(h, x, []), /inference only/);
    });
  });
});
