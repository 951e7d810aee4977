// The wasm kernels against the reference kernels: every kernel except sgemm (tested with the
// matmul code), random inputs from a seeded generator, awkward sizes, every op code, broadcast
// patterns and special values. Each case runs the reference once and the wasm module three
// ways: through backend.call (threaded when work ≥ PARALLEL_THRESHOLD), and share by share on
// the calling thread with nt = 3 and nt = 7 (so that the shares must cover the output exactly
// once for any thread count).
//
// Tolerances (|wasm − ref| ≤ atol + rtol·|ref|, NaN matches NaN, ±inf must match exactly):
//   arithmetic, comparisons, where, rope, sgd ....... rtol 1e-6, atol 1e-6 (copy, embedding,
//                                                     argmax/argmin: exact; pow: rtol 2e-6)
//   transcendental unary ops and their derivatives .. rtol 3e-6, atol 1e-6
//   softmax, rmsnorm forward ........................ rtol 3e-6, atol 1e-6
//   softmax_bwd ..................................... rtol 1e-5, atol 1e-6
//   cross-entropy ................................... rtol 1e-5, atol 1e-5 (bwd: 3e-6, 1e-6·scale)
//   norm backward, layernorm forward ................ rtol 1e-5, atol 1e-5
//   reductions, cumsum, *_bwd_w column sums ......... rtol 1e-5, atol 1e-5·√(length summed)
//   adamw ........................................... rtol 1e-6, atol 1e-7 (p), 1e-9 (m), 1e-12 (v)
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { alloc, release, views } from '../../src/backend/heap.js';
import { BinaryOp, ReduceOp, UnaryOp, type KernelName } from '../../src/backend/kernels.js';
import { refBackend } from '../../src/backend/ref/index.js';
import { WasmBackend } from '../../src/backend/wasm/index.js';
import { uniformRng as rng } from '../helpers.js';
import { bf16BitsToF32, f32ToBf16Bits } from '../../src/io/dtypes.js';

// --- seeded random numbers (mulberry32) ----------------------------------------------------
const R = rng(12345);
function uniform(n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * R();
  return a;
}
function logUniform(n: number, lo: number, hi: number): Float32Array {
  const a = new Float32Array(n), l = Math.log(lo), h = Math.log(hi);
  for (let i = 0; i < n; i++) a[i] = Math.exp(l + (h - l) * R());
  return a;
}
function ints(n: number, lo: number, hi: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + Math.floor((hi - lo) * R());
  return a;
}
/** Overwrite the first entries (and a few random ones) with special values. */
function sprinkle(a: Float32Array, values: number[], count = values.length): Float32Array {
  for (let i = 0; i < values.length && i < a.length; i++) a[i] = values[i];
  for (let k = 0; k < count && a.length > 0; k++) a[Math.floor(R() * a.length)] = values[k % values.length];
  return a;
}
const SPECIAL = [0, -0, Infinity, -Infinity, NaN, -1, 1, 1e30, -1e30, 1e-40];

// --- running one case on both backends -----------------------------------------------------
type Arr = Float32Array | Int32Array;
type Tol = [rtol: number, atol: number];
interface Case {
  kernel: KernelName;
  label: string;
  inputs: Record<string, Arr>;
  /** Output (or in-place) buffers: initial contents, or a length (then left unset: sentinel). */
  outputs: Record<string, Arr | { len: number; int?: boolean }>;
  args: (p: Record<string, number>) => number[];
  work: number;
  tol: Tol | Record<string, Tol>;
  /** Outputs compared exactly as i32 (indices, bit copies). */
  exact?: string[];
}

let be: WasmBackend;
let exportsObj: Record<string, (...a: number[]) => void>;

function put(a: Arr): number {
  const p = alloc(Math.max(4, a.length * 4));
  const H = views();
  if (a instanceof Int32Array) H.i32.set(a, p >>> 2);
  else H.f32.set(a, p >>> 2);
  return p;
}
function close(w: number, r: number, [rtol, atol]: Tol): boolean {
  if (Number.isNaN(r)) return Number.isNaN(w);
  if (!Number.isFinite(r)) return w === r;
  return Math.abs(w - r) <= atol + rtol * Math.abs(r);
}

type Mode = 'ref' | 'call' | 'nt3' | 'nt7';
function runMode(c: Case, mode: Mode, inPtrs: Record<string, number>): Record<string, Arr> {
  const ptrs: Record<string, number> = { ...inPtrs };
  const lens: Record<string, [number, boolean]> = {};
  for (const [k, v] of Object.entries(c.outputs)) {
    if (v instanceof Float32Array || v instanceof Int32Array) {
      ptrs[k] = put(v);
      lens[k] = [v.length, v instanceof Int32Array];
    } else {
      const int = !!v.int || (c.exact ?? []).includes(k);
      // Different sentinels for ref and wasm: an element a kernel fails to write shows up.
      const fillV = mode === 'ref' ? -777.25 : 1234.5;
      ptrs[k] = put(int ? new Int32Array(v.len).fill(mode === 'ref' ? -777 : 1234) : new Float32Array(v.len).fill(fillV));
      lens[k] = [v.len, int];
    }
  }
  const args = c.args(ptrs);
  if (mode === 'ref') refBackend.call(c.kernel, args, c.work);
  else if (mode === 'call') be.call(c.kernel, args, c.work);
  else {
    const nt = mode === 'nt3' ? 3 : 7;
    for (let t = nt - 1; t >= 0; t--) exportsObj[c.kernel](...args, t, nt);
  }
  const H = views();
  const res: Record<string, Arr> = {};
  for (const [k, [n, int]] of Object.entries(lens)) {
    res[k] = int ? H.i32.slice(ptrs[k] >>> 2, (ptrs[k] >>> 2) + n) : H.f32.slice(ptrs[k] >>> 2, (ptrs[k] >>> 2) + n);
    release(ptrs[k]);
  }
  return res;
}

function check(c: Case): void {
  const inPtrs: Record<string, number> = {};
  for (const [k, v] of Object.entries(c.inputs)) inPtrs[k] = put(v);
  try {
    const ref = runMode(c, 'ref', inPtrs);
    const modes: Mode[] = c.work <= 200_000 ? ['call', 'nt3', 'nt7'] : ['call', 'nt3'];
    for (const mode of modes) {
      const got = runMode(c, mode, inPtrs);
      for (const k of Object.keys(ref)) {
        const r = ref[k], w = got[k];
        const tol: Tol = Array.isArray(c.tol) ? (c.tol as Tol) : (c.tol as Record<string, Tol>)[k] ?? [1e-6, 1e-6];
        const exact = (c.exact ?? []).includes(k);
        for (let i = 0; i < r.length; i++) {
          const ok = exact ? (r instanceof Int32Array ? w[i] === r[i] : Object.is(w[i], r[i]) || (Number.isNaN(w[i]) && Number.isNaN(r[i]))) : close(w[i], r[i], tol);
          if (!ok) {
            assert.fail(`${c.kernel} [${c.label}] mode ${mode}: ${k}[${i}] wasm ${w[i]} ref ${r[i]} (tol ${exact ? 'exact' : tol})`);
          }
        }
      }
    }
  } finally {
    for (const p of Object.values(inPtrs)) release(p);
  }
}

const SIZES = [1, 3, 4, 5, 7, 31, 33, 64, 100, 1000, 65537];
const ARITH: Tol = [1e-6, 1e-6];
const TRANS: Tol = [3e-6, 1e-6];

before(async () => {
  be = await WasmBackend.create(2);
  exportsObj = (be as unknown as { exportsObj: Record<string, (...a: number[]) => void> }).exportsObj;
});
after(async () => { await be.dispose(); });

describe('wasm kernels', () => {
  it('exports every kernel but sgemm at most', () => {
    assert.deepEqual(be.missing.filter((k) => k !== 'sgemm'), []);
  });

  it('empty inputs are no-ops', () => {
    const m0 = new Int32Array([0, 1, 1, 1]);
    const cases: [KernelName, (p: Record<string, number>) => number[]][] = [
      ['fill', (p) => [p.o, 0, 1]], ['unary', (p) => [UnaryOp.EXP, p.o, p.a, 0, 0, 0]], ['binary', (p) => [BinaryOp.ADD, p.o, p.a, p.a, 1, p.m, 0]],
      ['copy', (p) => [p.o, p.a, 1, p.m, 0]], ['softmax', (p) => [p.o, p.a, 0, 5, 0]], ['embedding', (p) => [p.o, p.a, p.m, 0, 5]],
      ['embedding_bwd', (p) => [p.o, p.a, p.m, 0, 5]], ['reduce', (p) => [ReduceOp.SUM, p.o, p.a, 0, 3, 1]], ['adamw', (p) => [p.o, p.a, p.a, p.a, 0, 0, 1e-3, 0.9, 0.999, 1e-8, 0, 1, 1]],
    ];
    for (const [kernel, args] of cases) {
      check({ kernel, label: 'empty', inputs: { a: new Float32Array(8), m: m0 }, outputs: { o: new Float32Array(8).fill(5) }, args, work: 0, tol: ARITH });
    }
    // rmsnorm_bwd_w over zero rows writes zeros.
    check({ kernel: 'rmsnorm_bwd_w', label: 'rows=0', inputs: { a: new Float32Array(8) }, outputs: { gw: { len: 5 } }, args: (p) => [p.gw, p.a, p.a, p.a, 0, 5], work: 0, tol: ARITH });
  });

  it('fill', () => {
    for (const n of SIZES) for (const value of [0, -1.5, 0.1, NaN, -Infinity]) {
      check({ kernel: 'fill', label: `n=${n} v=${value}`, inputs: {}, outputs: { out: { len: n } }, args: (p) => [p.out, n, value], work: n, tol: ARITH });
    }
  });

  // Strided iteration cases: [shape, strides of each operand] (strides in elements).
  interface Layout { shape: number[]; strides: number[][]; sizes: number[] }
  function layout(shape: number[], ...kinds: ('c' | 't' | number[])[]): Layout {
    const contig = (s: number[]) => { const st = new Array(s.length).fill(0); let m = 1; for (let d = s.length - 1; d >= 0; d--) { st[d] = m; m *= s[d]; } return st; };
    const strides: number[][] = [], sizes: number[] = [];
    for (const k of kinds) {
      if (k === 'c') strides.push(contig(shape));
      else if (k === 't') {
        // Transposed storage: dims reversed in memory.
        const rev = contig([...shape].reverse()).reverse();
        strides.push(rev);
      } else strides.push(k);
      const st = strides[strides.length - 1];
      sizes.push(1 + shape.reduce((acc, s, d) => acc + (s - 1) * Math.abs(st[d]), 0));
    }
    return { shape, strides, sizes };
  }
  const meta = (l: Layout) => new Int32Array([...l.shape, ...l.strides.flat()]);
  function layoutsFor(nOps: number): { name: string; l: Layout }[] {
    const out: { name: string; l: Layout }[] = [];
    for (const n of SIZES) out.push({ name: `1d n=${n}`, l: layout([n], ...new Array(nOps).fill('c')) });
    const shapes = [[3, 5], [7, 33], [4, 64], [33, 31], [300, 257], [2, 3, 5, 7], [3, 1, 4, 100], [5, 9, 13]];
    for (const shape of shapes) {
      const nd = shape.length;
      const c = () => layout(shape, 'c').strides[0];
      const t = () => layout(shape, 't').strides[0];
      const innerB = () => c().map((s, d) => (d === nd - 1 ? 0 : s / shape[nd - 1])); // broadcast along inner dim
      const outerB = () => { const st = c(); st[0] = 0; return st; }; // broadcast along outer dim
      const rowVec = () => c().map((s, d) => (d === nd - 1 ? 1 : 0));
      const scalar = () => new Array(nd).fill(0);
      const variants: [string, number[][]][] = [
        ['contig', [c(), c(), c()]],
        ['inner-bcast', [c(), innerB(), c()]],
        ['outer-bcast', [outerB(), c(), rowVec()]],
        ['transposed', [t(), c(), t()]],
        ['scalar', [c(), scalar(), innerB()]],
        ['scalar-first', [scalar(), c(), outerB()]],
      ];
      for (const [name, st] of variants) out.push({ name: `${shape.join('x')} ${name}`, l: layout(shape, ...st.slice(0, nOps)) });
    }
    return out;
  }

  it('copy (bit exact, strided source and destination)', () => {
    for (const { name, l } of layoutsFor(2)) {
      const n = l.shape.reduce((a, b) => a * b, 1);
      // Destination layouts with broadcast (stride 0) would write one element many times: use
      // contiguous or transposed destinations only.
      for (const dstKind of ['c', 't'] as const) {
        const dl = layout(l.shape, dstKind);
        const src = ints(l.sizes[1], -(2 ** 31), 2 ** 31 - 1);
        const m = new Int32Array([...l.shape, ...dl.strides[0], ...l.strides[1]]);
        check({
          kernel: 'copy', label: `${name} dst=${dstKind}`, inputs: { src, meta: m }, outputs: { dst: new Int32Array(dl.sizes[0]) },
          args: (p) => [p.dst, p.src, l.shape.length, p.meta, n], work: n, tol: ARITH, exact: ['dst'],
        });
      }
    }
    // ndim 0: one element.
    check({ kernel: 'copy', label: 'ndim 0', inputs: { src: new Int32Array([42]), meta: new Int32Array(1) }, outputs: { dst: new Int32Array(1) }, args: (p) => [p.dst, p.src, 0, p.meta, 1], work: 1, tol: ARITH, exact: ['dst'] });
  });

  const BINOPS: [string, BinaryOp][] = [['ADD', BinaryOp.ADD], ['SUB', BinaryOp.SUB], ['MUL', BinaryOp.MUL], ['DIV', BinaryOp.DIV], ['POW', BinaryOp.POW],
    ['MAX', BinaryOp.MAX], ['MIN', BinaryOp.MIN], ['EQ', BinaryOp.EQ], ['GT', BinaryOp.GT], ['LT', BinaryOp.LT], ['GE', BinaryOp.GE], ['LE', BinaryOp.LE]];

  it('binary: every op, broadcast and transposed strides, special values', () => {
    for (const [opName, op] of BINOPS) {
      for (const { name, l } of layoutsFor(2)) {
        const n = l.shape.reduce((a, b) => a * b, 1);
        let a: Float32Array, b: Float32Array;
        if (op === BinaryOp.POW) {
          a = logUniform(l.sizes[0], 1e-3, 10);
          b = uniform(l.sizes[1], -4, 4);
          // Negative bases with integer exponents, and JS's special cases.
          for (let i = 0; i < a.length; i += 7) a[i] = -a[i];
          for (let i = 0; i < b.length; i += 5) b[i] = Math.round(b[i]);
          sprinkle(a, [1, -1, 0, -0, Infinity, NaN, 1, -1]);
          sprinkle(b, [NaN, Infinity, 0, 0.5, -Infinity, 2, -Infinity, Infinity]);
        } else if (op >= BinaryOp.EQ) {
          // Small integers so that ties occur.
          a = Float32Array.from(ints(l.sizes[0], -3, 3)); b = Float32Array.from(ints(l.sizes[1], -3, 3));
          sprinkle(a, [NaN, 0, -0, Infinity]); sprinkle(b, [1, -0, 0, Infinity]);
        } else {
          a = uniform(l.sizes[0], -10, 10); b = uniform(l.sizes[1], -10, 10);
          sprinkle(a, SPECIAL); sprinkle(b, [...SPECIAL].reverse());
        }
        check({
          kernel: 'binary', label: `${opName} ${name}`, inputs: { a, b, meta: meta(l) }, outputs: { out: { len: n } },
          args: (p) => [op, p.out, p.a, p.b, l.shape.length, p.meta, n], work: n, tol: op === BinaryOp.POW ? [2e-6, 1e-6] : ARITH,
        });
      }
    }
  });

  it('where: broadcasting of cond, a and b', () => {
    for (const { name, l } of layoutsFor(3)) {
      const n = l.shape.reduce((a, b) => a * b, 1);
      const cond = Float32Array.from(ints(l.sizes[0], 0, 2));
      sprinkle(cond, [NaN, -0, 0, 2.5]);
      // where's layouts: [cond, a, b]; rotate the variant so every operand sees every pattern.
      const st = [l.strides[0], l.strides[1], l.strides[2]];
      for (let rot = 0; rot < 3; rot++) {
        const s = [st[rot % 3], st[(rot + 1) % 3], st[(rot + 2) % 3]];
        const ll = layout(l.shape, ...s);
        const c2 = Float32Array.from(ints(ll.sizes[0], 0, 2)); sprinkle(c2, [NaN, -0, 0, 2.5]);
        const a = uniform(ll.sizes[1]), b = uniform(ll.sizes[2]);
        check({
          kernel: 'where', label: `${name} rot=${rot}`, inputs: { cond: c2, a, b, meta: meta(ll) }, outputs: { out: { len: n } },
          args: (p) => [p.out, p.cond, p.a, p.b, l.shape.length, p.meta, n], work: n, tol: ARITH,
        });
      }
      void cond;
    }
  });

  // Inputs and parameters per unary op.
  interface UCase { op: UnaryOp; name: string; gen: (n: number) => Float32Array; params: [number, number][]; tol: Tol; bwdTol: Tol }
  const gen = (lo: number, hi: number, sp: number[] = SPECIAL) => (n: number) => sprinkle(uniform(n, lo, hi), sp);
  const posGen = (n: number) => sprinkle(logUniform(n, 1e-30, 1e30), [0, -0, -1, Infinity, NaN, 1, 1e-40, 1.5e-45, -Infinity]);
  const posOnly = (n: number) => sprinkle(logUniform(n, 1e-6, 1e6), [1, 2, 0.5]);
  const TRIG_SPECIAL = [0, -0, Infinity, -Infinity, NaN, 1e-40, 1e6, -1e6, 12345.678, 1.5707964, 3.1415927, -4.712389, 6.2831855, 0.7853982];
  const trig = (n: number) => sprinkle(Float32Array.from(uniform(n, -1, 1), (v, i) => (i % 3 === 0 ? v * 1000 : v * 10)), TRIG_SPECIAL);
  const UCASES: UCase[] = [
    { op: UnaryOp.NEG, name: 'NEG', gen: gen(-10, 10), params: [[0, 0]], tol: ARITH, bwdTol: ARITH },
    { op: UnaryOp.EXP, name: 'EXP', gen: gen(-100, 100, [...SPECIAL, 88.7, 88.73, 89, -87.5, -103, -104, -110]), params: [[0, 0]], tol: TRANS, bwdTol: TRANS },
    { op: UnaryOp.LOG, name: 'LOG', gen: posGen, params: [[0, 0]], tol: TRANS, bwdTol: TRANS },
    { op: UnaryOp.SQRT, name: 'SQRT', gen: posGen, params: [[0, 0]], tol: ARITH, bwdTol: ARITH },
    { op: UnaryOp.RSQRT, name: 'RSQRT', gen: posGen, params: [[0, 0]], tol: ARITH, bwdTol: ARITH },
    { op: UnaryOp.ABS, name: 'ABS', gen: gen(-10, 10), params: [[0, 0]], tol: ARITH, bwdTol: ARITH },
    { op: UnaryOp.TANH, name: 'TANH', gen: gen(-12, 12, [...SPECIAL, 0.6249, 0.625, -0.626, 1e-8, 20, -20]), params: [[0, 0]], tol: TRANS, bwdTol: TRANS },
    { op: UnaryOp.SIGMOID, name: 'SIGMOID', gen: gen(-30, 30, [...SPECIAL, 100, -100, 88, -88, 90, -90]), params: [[0, 0]], tol: TRANS, bwdTol: TRANS },
    { op: UnaryOp.SILU, name: 'SILU', gen: gen(-30, 30, [...SPECIAL, 100, -100, 90, -90]), params: [[0, 0]], tol: TRANS, bwdTol: TRANS },
    { op: UnaryOp.GELU, name: 'GELU', gen: gen(-8, 8, [...SPECIAL, 30, -30, 5, -5]), params: [[0, 0]], tol: TRANS, bwdTol: TRANS },
    { op: UnaryOp.GELU_TANH, name: 'GELU_TANH', gen: gen(-8, 8, [...SPECIAL, 30, -30, 5, -5]), params: [[0, 0]], tol: TRANS, bwdTol: TRANS },
    { op: UnaryOp.RELU, name: 'RELU', gen: gen(-10, 10), params: [[0, 0]], tol: ARITH, bwdTol: ARITH },
    { op: UnaryOp.SOFTPLUS, name: 'SOFTPLUS', gen: gen(-40, 40, [...SPECIAL, 20, 20.001, 19.999, -20, -100, 100]), params: [[0, 0]], tol: TRANS, bwdTol: TRANS },
    { op: UnaryOp.CLAMP, name: 'CLAMP', gen: (n) => sprinkle(uniform(n, -1, 1), [...SPECIAL, Math.fround(-0.3), Math.fround(0.7)]), params: [[-0.3, 0.7], [0, Infinity], [-Infinity, 0.1]], tol: ARITH, bwdTol: ARITH },
    { op: UnaryOp.POWS, name: 'POWS', gen: (n) => sprinkle(logUniform(n, 1e-3, 1e3), [0, -2, -0.5, Infinity, NaN, 1]), params: [[2, 0], [3, 0], [0.5, 0], [-1, 0], [1.7, 0], [0, 0], [1, 0], [-2.5, 0]], tol: [2e-6, 1e-6], bwdTol: [3e-6, 1e-6] },
    { op: UnaryOp.AFFINE, name: 'AFFINE', gen: gen(-10, 10), params: [[1.3, -0.2], [0, 1], [-2, 0.1]], tol: ARITH, bwdTol: ARITH },
    { op: UnaryOp.RDIV, name: 'RDIV', gen: gen(-10, 10), params: [[2.5, 0], [-1, 0]], tol: ARITH, bwdTol: ARITH },
    // Arguments up to 1e6 (the f64 range reduction keeps f32 accuracy there), multiples of π/2.
    { op: UnaryOp.SIN, name: 'SIN', gen: trig, params: [[0, 0]], tol: TRANS, bwdTol: TRANS },
    { op: UnaryOp.COS, name: 'COS', gen: trig, params: [[0, 0]], tol: TRANS, bwdTol: TRANS },
    { op: UnaryOp.STEP, name: 'STEP', gen: (n) => sprinkle(uniform(n, 0, 1), [Math.fround(0.3), 0.3, NaN, Infinity, 0, 0.5]), params: [[0.3, 0], [0.5, 0], [0, 0]], tol: ARITH, bwdTol: ARITH },
  ];

  it('unary: every op, sizes, special values', () => {
    for (const u of UCASES) for (const [alpha, beta] of u.params) for (const n of SIZES) {
      const a = u.gen(n);
      check({ kernel: 'unary', label: `${u.name}(${alpha},${beta}) n=${n}`, inputs: { a }, outputs: { out: { len: n } }, args: (p) => [u.op, p.out, p.a, n, alpha, beta], work: n, tol: u.tol });
    }
  });

  it('unary_bwd: every op against ref derivatives', () => {
    for (const u of UCASES) for (const [alpha, beta] of u.params) for (const n of SIZES) {
      // Derivatives at finite inputs (ref's formulas give NaN at ±inf for several ops).
      let x = u.gen(n);
      if (u.op !== UnaryOp.EXP && u.op !== UnaryOp.LOG) x = x.map((v) => (Number.isFinite(v) && Math.abs(v) < 1e20 ? v : 0.25));
      if (u.op === UnaryOp.LOG || u.op === UnaryOp.SQRT || u.op === UnaryOp.RSQRT) x = posOnly(n);
      // y = f(x) by the reference.
      const xp = put(x), yp = alloc(Math.max(4, n * 4));
      refBackend.call('unary', [u.op, yp, xp, n, alpha, beta], n);
      const y = views().f32.slice(yp >>> 2, (yp >>> 2) + n);
      release(xp); release(yp);
      const gy = sprinkle(uniform(n, -2, 2), [1, -1, 0]);
      check({ kernel: 'unary_bwd', label: `${u.name}(${alpha},${beta}) n=${n}`, inputs: { x, y, gy }, outputs: { gx: { len: n } }, args: (p) => [u.op, p.gx, p.x, p.y, p.gy, n, alpha, beta], work: n, tol: u.bwdTol });
    }
  });

  const RSHAPES: [number, number, number][] = [[1, 1, 1], [3, 5, 1], [7, 33, 1], [2, 1000, 1], [1, 65537, 1], [70000, 1, 1], [3000, 31, 1],
    [3, 7, 5], [2, 31, 33], [4, 100, 3], [1, 1000, 64], [5, 3, 1000], [2, 4, 40000], [1, 20000, 7], [1, 1, 9]];
  const ROPS: [string, ReduceOp][] = [['SUM', ReduceOp.SUM], ['MAX', ReduceOp.MAX], ['MIN', ReduceOp.MIN], ['LOGSUMEXP', ReduceOp.LOGSUMEXP], ['ARGMAX', ReduceOp.ARGMAX], ['ARGMIN', ReduceOp.ARGMIN]];

  it('reduce: every op, rows and columns, ties and NaN', () => {
    for (const [opName, op] of ROPS) for (const [outer, r, inner] of RSHAPES) for (const flavour of ['random', 'ties', 'special']) {
      const n = outer * r * inner;
      let a: Float32Array;
      if (flavour === 'random') a = uniform(n, -5, 5);
      else if (flavour === 'ties') a = Float32Array.from(ints(n, -2, 3));
      else {
        a = uniform(n, -5, 5);
        // A few NaN / ±inf, and whole -inf columns for LOGSUMEXP.
        const sp = op === ReduceOp.SUM ? [Infinity, -1e30] : [NaN, Infinity, -Infinity];
        for (let k = 0; k < Math.max(1, n / 500); k++) a[Math.floor(R() * n)] = sp[k % sp.length];
        if (op === ReduceOp.LOGSUMEXP) for (let k = 0; k < r; k++) a[k * inner] = -Infinity;
      }
      const arg = op === ReduceOp.ARGMAX || op === ReduceOp.ARGMIN;
      check({
        kernel: 'reduce', label: `${opName} ${outer}x${r}x${inner} ${flavour}`, inputs: { a }, outputs: { out: { len: outer * inner, int: arg } },
        args: (p) => [op, p.out, p.a, outer, r, inner], work: n, tol: [1e-5, 1e-5 * Math.sqrt(r)], exact: arg ? ['out'] : [],
      });
    }
  });

  it('cumsum: rows and columns', () => {
    for (const [outer, r, inner] of RSHAPES) {
      const n = outer * r * inner, a = uniform(n, -1, 1);
      check({ kernel: 'cumsum', label: `${outer}x${r}x${inner}`, inputs: { a }, outputs: { out: { len: n } }, args: (p) => [p.out, p.a, outer, r, inner], work: n, tol: [1e-5, 1e-5 * Math.sqrt(r)] });
    }
  });

  const ROWS: [number, number][] = [[1, 1], [3, 5], [7, 33], [4, 64], [5, 100], [16, 288], [2, 1000], [3, 32000], [300, 288], [1, 65537], [17, 7]];

  it('softmax and softmax_bwd (log and not), masked rows', () => {
    for (const [rows, cols] of ROWS) for (const log of [0, 1]) {
      const n = rows * cols;
      const a = uniform(n, -20, 20);
      // Masked entries, and a row that is all -inf except one.
      for (let k = 0; k < n / 10; k++) a[Math.floor(R() * n)] = -Infinity;
      if (rows > 1) { for (let j = 0; j < cols; j++) a[cols + j] = -Infinity; a[cols + Math.floor(cols / 2)] = 3; }
      check({ kernel: 'softmax', label: `${rows}x${cols} log=${log}`, inputs: { a }, outputs: { out: { len: n } }, args: (p) => [p.out, p.a, rows, cols, log], work: n, tol: TRANS });
      // Backward from a valid y.
      const ap = put(uniform(n, -5, 5)), yp = alloc(n * 4);
      refBackend.call('softmax', [yp, ap, rows, cols, log], n);
      const y = views().f32.slice(yp >>> 2, (yp >>> 2) + n);
      release(ap); release(yp);
      const gy = uniform(n, -1, 1);
      check({ kernel: 'softmax_bwd', label: `${rows}x${cols} log=${log}`, inputs: { y, gy }, outputs: { gx: { len: n } }, args: (p) => [p.gx, p.y, p.gy, rows, cols, log], work: n, tol: [1e-5, 1e-6] });
    }
  });

  it('cross_entropy and cross_entropy_bwd: ignore index, label smoothing', () => {
    const shapes: [number, number][] = [[1, 1], [3, 5], [4, 33], [5, 100], [8, 1000], [3, 32000], [70, 1000], [2, 7]];
    for (const [rows, V] of shapes) for (const eps of [0, 0.1]) {
      const n = rows * V, logits = uniform(n, -8, 8);
      const targets = ints(rows, 0, V);
      if (rows > 2) targets[1] = -100;
      check({
        kernel: 'cross_entropy', label: `${rows}x${V} eps=${eps}`, inputs: { logits, targets }, outputs: { loss: { len: rows }, lse: { len: rows } },
        args: (p) => [p.loss, p.lse, p.logits, p.targets, rows, V, -100, eps], work: n, tol: [1e-5, 1e-5],
      });
      const lp = put(logits), tp = put(targets), lossp = alloc(rows * 4), lsep = alloc(rows * 4);
      refBackend.call('cross_entropy', [lossp, lsep, lp, tp, rows, V, -100, eps], n);
      const lse = views().f32.slice(lsep >>> 2, (lsep >>> 2) + rows);
      for (const p of [lp, tp, lossp, lsep]) release(p);
      const scale = 1 / rows;
      check({
        kernel: 'cross_entropy_bwd', label: `${rows}x${V} eps=${eps}`, inputs: { logits, lse, targets }, outputs: { gx: { len: n } },
        args: (p) => [p.gx, p.logits, p.lse, p.targets, rows, V, -100, eps, scale], work: n, tol: [3e-6, 1e-6 * scale],
      });
    }
  });

  it('embedding and embedding_bwd (repeated indices)', () => {
    const shapes: [number, number, number][] = [[1, 1, 1], [3, 5, 4], [7, 33, 10], [100, 64, 20], [1000, 100, 50], [5, 65537, 3], [3000, 31, 7], [4, 3, 2]];
    for (const [n, dim, vocab] of shapes) {
      const table = uniform(vocab * dim), idx = ints(n, 0, vocab);
      check({ kernel: 'embedding', label: `${n}x${dim}`, inputs: { table, idx }, outputs: { out: { len: n * dim } }, args: (p) => [p.out, p.table, p.idx, n, dim], work: n * dim, tol: ARITH, exact: ['out'] });
      const gout = uniform(n * dim);
      check({ kernel: 'embedding_bwd', label: `${n}x${dim}`, inputs: { gout, idx }, outputs: { gtable: uniform(vocab * dim) }, args: (p) => [p.gtable, p.gout, p.idx, n, dim], work: n * dim, tol: ARITH });
    }
  });

  it('rmsnorm, rmsnorm_bwd, rmsnorm_bwd_w', () => {
    for (const [rows, dim] of ROWS) {
      const n = rows * dim, x = uniform(n, -3, 3), w = uniform(dim, 0.5, 1.5), gy = uniform(n);
      check({ kernel: 'rmsnorm', label: `${rows}x${dim}`, inputs: { x, w }, outputs: { out: { len: n }, rstd: { len: rows } }, args: (p) => [p.out, p.rstd, p.x, p.w, rows, dim, 1e-5], work: n, tol: TRANS });
      const rstd = Float32Array.from({ length: rows }, () => 0.5 + R());
      check({ kernel: 'rmsnorm_bwd', label: `${rows}x${dim}`, inputs: { x, w, rstd, gy }, outputs: { gx: { len: n } }, args: (p) => [p.gx, p.x, p.w, p.rstd, p.gy, rows, dim], work: n, tol: [1e-5, 1e-5] });
      check({ kernel: 'rmsnorm_bwd_w', label: `${rows}x${dim}`, inputs: { x, rstd, gy }, outputs: { gw: { len: dim } }, args: (p) => [p.gw, p.x, p.rstd, p.gy, rows, dim], work: n, tol: [1e-5, 1e-5 * Math.sqrt(rows)] });
    }
  });

  it('layernorm, layernorm_bwd, layernorm_bwd_wb (with and without w, b)', () => {
    for (const [rows, dim] of ROWS) for (const affine of [true, false]) {
      const n = rows * dim, x = uniform(n, -3, 3).map((v) => v + 10), w = uniform(dim, 0.5, 1.5), b = uniform(dim), gy = uniform(n);
      const withW = (p: Record<string, number>) => (affine ? p.w : 0), withB = (p: Record<string, number>) => (affine ? p.b : 0);
      check({ kernel: 'layernorm', label: `${rows}x${dim} affine=${affine}`, inputs: { x, w, b }, outputs: { out: { len: n }, mean: { len: rows }, rstd: { len: rows } }, args: (p) => [p.out, p.mean, p.rstd, p.x, withW(p), withB(p), rows, dim, 1e-5], work: n, tol: { out: [1e-5, 1e-5], mean: [1e-6, 1e-6], rstd: [1e-5, 1e-6] } });
      const mean = uniform(rows, 9, 11), rstd = Float32Array.from({ length: rows }, () => 0.5 + R());
      check({ kernel: 'layernorm_bwd', label: `${rows}x${dim} affine=${affine}`, inputs: { x, w, mean, rstd, gy }, outputs: { gx: { len: n } }, args: (p) => [p.gx, p.x, withW(p), p.mean, p.rstd, p.gy, rows, dim], work: n, tol: [1e-5, 1e-5] });
      for (const [wantW, wantB] of [[true, true], [true, false], [false, true]]) {
        check({
          kernel: 'layernorm_bwd_wb', label: `${rows}x${dim} w=${wantW} b=${wantB}`, inputs: { x, mean, rstd, gy }, outputs: { gw: new Float32Array(dim).fill(-3), gb: new Float32Array(dim).fill(-3) },
          args: (p) => [wantW ? p.gw : 0, wantB ? p.gb : 0, p.x, p.mean, p.rstd, p.gy, rows, dim], work: n, tol: [1e-5, 1e-5 * Math.sqrt(rows)],
        });
      }
    }
  });

  it('rope: rotate-half and interleaved, forward and inverse', () => {
    const shapes: [number, number, number, number][] = [[1, 1, 1, 2], [2, 3, 2, 6], [1, 5, 3, 8], [2, 7, 4, 64], [1, 33, 2, 10], [2, 128, 4, 64], [3, 4, 5, 14], [1, 2, 1, 16]];
    for (const [outer, T, inner, D] of shapes) for (const interleaved of [0, 1]) for (const sign of [1, -1]) {
      const n = outer * T * inner * D, x = uniform(n, -2, 2);
      const ang = uniform(T * (D / 2), -3, 3);
      const cos = ang.map(Math.cos), sin = ang.map(Math.sin);
      check({ kernel: 'rope', label: `${outer}x${T}x${inner}x${D} il=${interleaved} sign=${sign}`, inputs: { x, cos, sin }, outputs: { out: { len: n } }, args: (p) => [p.out, p.x, p.cos, p.sin, outer, T, inner, D, interleaved, sign], work: n, tol: ARITH });
    }
  });

  it('swiglu: silu(gate) · up over rows of a fused gate/up row', () => {
    for (const [rows, n] of [[1, 1], [1, 3], [2, 4], [3, 5], [1, 768], [4, 31], [7, 33], [130, 64], [1, 1001]]) {
      const gu = sprinkle(uniform(rows * 2 * n, -8, 8), [0, -0, 30, -30, 100, -100], 2);
      check({ kernel: 'swiglu', label: `${rows}x${n}`, inputs: { gu }, outputs: { out: { len: rows * n } }, args: (p) => [p.out, p.gu, rows, n], work: rows * n * 4, tol: TRANS });
    }
  });

  it('rope_qkv: q rotated in place, k rotated and v copied into cache rows', () => {
    // [B, T, Hq, Hkv, D, L (cache positions), start]
    const shapes = [[1, 1, 1, 1, 2, 1, 0], [1, 1, 6, 6, 48, 9, 5], [2, 3, 4, 2, 6, 8, 5], [1, 5, 3, 1, 14, 7, 1], [3, 2, 2, 2, 64, 4, 2], [1, 17, 8, 4, 10, 20, 3], [2, 1, 4, 4, 16, 3, 2]];
    for (const [B, T, Hq, Hkv, D, L, start] of shapes) for (const interleaved of [0, 1]) {
      const R = (Hq + 2 * Hkv) * D, cacheLen = B * Hkv * L * D;
      const x = uniform(B * T * R, -2, 2);
      const ang = uniform(T * (D / 2), -3, 3);
      const cos = ang.map(Math.cos), sin = ang.map(Math.sin);
      const kc = uniform(cacheLen), vc = uniform(cacheLen); // positions outside the step must keep these
      const at = (p: number) => p + 4 * start * D;
      check({
        kernel: 'rope_qkv', label: `B${B} T${T} Hq${Hq} Hkv${Hkv} D${D} L${L}@${start} il=${interleaved}`,
        inputs: { cos, sin }, outputs: { x, kc, vc },
        args: (p) => [p.x, at(p.kc), at(p.vc), p.cos, p.sin, B, T, Hq, Hkv, D, Hkv * L * D, L * D, D, interleaved, 0],
        work: B * T * R, tol: ARITH, exact: ['vc'],
      });
    }
  });

  it('rope_qkv into a bf16 cache: v rounded to nearest even (bit for bit), k within one bf16 step of the f32 rotation, the rest untouched', () => {
    // [B, T, Hq, Hkv, D, L, start]
    for (const [B, T, Hq, Hkv, D, L, start] of [[1, 1, 1, 1, 2, 1, 0], [2, 3, 4, 2, 6, 8, 5], [1, 5, 3, 1, 14, 7, 1], [1, 2, 6, 6, 64, 9, 5]]) {
      const R = (Hq + 2 * Hkv) * D, n = B * Hkv * L * D;
      const x = uniform(B * T * R, -2, 2), ang = uniform(T * (D / 2), -3, 3);
      sprinkle(x, [0, -0, 1e-40, 3.0e38, -3.4e38, NaN, Infinity], 1);
      const cos = ang.map(Math.cos), sin = ang.map(Math.sin);
      const init = new Uint16Array(n).map((_, i) => (i * 7919) & 0xffff);
      const run = (mode: 'ref' | 'call' | 'nt3'): { x: Float32Array; kc: Uint16Array; vc: Uint16Array } => {
        const px = put(x), pc = put(cos), ps = put(sin), kc = alloc(2 * n + 4), vc = alloc(2 * n + 4);
        const H = views();
        H.u16.set(init, kc >>> 1); H.u16.set(init, vc >>> 1);
        const at = (p: number): number => p + 2 * start * D;
        const args = [px, at(kc), at(vc), pc, ps, B, T, Hq, Hkv, D, Hkv * L * D, L * D, D, 0, 1];
        if (mode === 'ref') refBackend.call('rope_qkv', args, B * T * R);
        else if (mode === 'call') be.call('rope_qkv', args, B * T * R);
        else for (let t = 2; t >= 0; t--) exportsObj.rope_qkv(...args, t, 3);
        const V = views();
        const out = { x: V.f32.slice(px >>> 2, (px >>> 2) + x.length), kc: V.u16.slice(kc >>> 1, (kc >>> 1) + n), vc: V.u16.slice(vc >>> 1, (vc >>> 1) + n) };
        for (const p of [px, pc, ps, kc, vc]) release(p);
        return out;
      };
      const ref = run('ref'), label = `B${B} T${T} Hq${Hq} Hkv${Hkv} D${D} L${L}@${start}`;
      // The outside check: v as f32ToBf16Bits rounds it (the rule checked against torch in the dtypes tests).
      for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let h = 0; h < Hkv; h++) for (let i = 0; i < D; i++) {
        const o = b * Hkv * L * D + h * L * D + (start + t) * D + i;
        assert.equal(ref.vc[o], f32ToBf16Bits(x[(b * T + t) * R + (Hq + Hkv + h) * D + i]), `${label}: ref v[${o}]`);
      }
      for (const mode of ['call', 'nt3'] as const) {
        const got = run(mode);
        assert.deepEqual(got.vc, ref.vc, `${label} ${mode}: v`);
        for (let i = 0; i < n; i++) {
          const w = bf16BitsToF32(got.kc[i]), r = bf16BitsToF32(ref.kc[i]);
          const ok = got.kc[i] === ref.kc[i] || (Number.isNaN(w) && Number.isNaN(r)) || Math.abs(w - r) <= 2 ** -7 * Math.abs(r) + 1e-5;
          assert.ok(ok, `${label} ${mode}: k[${i}] wasm ${w} ref ${r}`);
          if (ref.kc[i] === init[i]) assert.equal(got.kc[i], init[i], `${label} ${mode}: k[${i}] outside the step changed`);
        }
        for (let i = 0; i < x.length; i++) assert.ok(close(got.x[i], ref.x[i], ARITH), `${label} ${mode}: q/x[${i}]`);
      }
    }
  });

  it('bf16_pack / bf16_widen: f32ToBf16Bits rounding bit for bit, exact widening (NaN payloads kept)', () => {
    for (const n of [1, 7, 8, 9, 33, 1000, 65537]) {
      const x = uniform(n, -1e3, 1e3);
      sprinkle(x, [0, -0, 1e-40, -1e-45, 3.4e38, -3.4e38, NaN, Infinity, -Infinity, 1.00390625, 1.01171875], 1);
      for (const mode of ['ref', 'call', 'nt3'] as const) {
        const src = put(x), dst = alloc(2 * n + 4), back = alloc(4 * n + 4);
        const call = (k: 'bf16_pack' | 'bf16_widen', args: number[]): void => {
          if (mode === 'ref') refBackend.call(k, args, n);
          else if (mode === 'call') be.call(k, args, n);
          else for (let t = 2; t >= 0; t--) exportsObj[k](...args, t, 3);
        };
        call('bf16_pack', [dst, src, n]);
        call('bf16_widen', [back, dst, n]);
        const H = views(), h = H.u16.slice(dst >>> 1, (dst >>> 1) + n), w = H.i32.slice(back >>> 2, (back >>> 2) + n);
        for (let i = 0; i < n; i++) {
          assert.equal(h[i], f32ToBf16Bits(x[i]), `${mode} n=${n}: pack[${i}] of ${x[i]}`);
          assert.equal(w[i], h[i] << 16, `${mode} n=${n}: widen[${i}]`);
        }
        for (const p of [src, dst, back]) release(p);
      }
    }
  });

  it('adamw', () => {
    for (const n of SIZES) for (const [step, wd] of [[1, 0.1], [3, 0], [1000, 0.01]]) for (const ams of [false, true]) {
      const p = uniform(n), g = uniform(n, -0.1, 0.1), m = uniform(n, -0.01, 0.01), v = uniform(n, 0, 1e-4), vmax = uniform(n, 0, 1e-4);
      sprinkle(g, [0, 1e-20, -5]);
      const bc1 = 1 - 0.9 ** step, bc2 = 1 - 0.999 ** step;
      check({
        kernel: 'adamw', label: `n=${n} step=${step} wd=${wd} amsgrad=${ams}`, inputs: { g }, outputs: ams ? { p, m, v, vmax } : { p, m, v },
        args: (q) => [q.p, q.g, q.m, q.v, ams ? q.vmax : 0, n, 1e-3, 0.9, 0.999, 1e-8, wd, bc1, bc2], work: n,
        tol: { p: [1e-6, 1e-7], m: [1e-6, 1e-9], v: [1e-6, 1e-12], vmax: [1e-6, 1e-12] },
      });
    }
  });

  it('sgd: momentum, dampening, nesterov, first step, weight decay', () => {
    const configs: [number, number, number, number, number][] = [[0, 0, 0, 0, 0], [0, 0, 0.01, 0, 1], [0.9, 0, 0, 0, 1], [0.9, 0, 0, 0, 0], [0.9, 0.1, 0.01, 0, 0], [0.9, 0, 0.01, 1, 0], [0.5, 0.2, 0, 1, 1]];
    for (const n of SIZES) for (const [mom, damp, wd, nest, first] of configs) {
      const p = uniform(n), g = uniform(n), buf = uniform(n);
      check({
        kernel: 'sgd', label: `n=${n} mom=${mom} damp=${damp} wd=${wd} nest=${nest} first=${first}`, inputs: { g }, outputs: { p, buf },
        args: (q) => [q.p, q.g, mom === 0 ? 0 : q.buf, n, 0.05, mom, damp, wd, nest, first], work: n, tol: ARITH,
      });
    }
  });
});
