// The Q8_0 weight kernels (q8_0_matmul, q8_0_rows) and the ops that run them (linear,
// addLinearInPlace, embedding on a q8_0 tensor, dequantize).
// - Dequantisation is ggml's dequantize_row_q8_0 bit for bit: y = f32(d)·q in f32, with d's f16 →
//   f32 conversion written independently here (io's table), over scales that are subnormal,
//   negative, zero and the largest half (65504) and q over the whole int8 range (−128 included).
// - The matmul on both backends against dequantise-then-f64 matmul, on awkward shapes: K = 32, 96,
//   160 (multiples of 32, not of 64 or 128) and 1568 (the panel path with several panels), N odd
//   (1, 7, 67, 131), M = 1 (decode), 3 (a few rows), 17 (the panel path: dequantised panel + the
//   blocked GEMM); accumulate (beta = 1), strided x rows and output rows. Each wasm case runs
//   through backend.call (threaded when large, forced both ways) and share by share with nt = 1, 3
//   and 7 (outputs start from different sentinels, so every share must be covered once).
//   For M ≤ 8 the kernel first rounds x to Q8_0 blocks (llama.cpp's scheme, see kernels.ts): the
//   result may differ from the f32 product by that rounding, whose bound Σ_b (amax_b/254)·Σ|w| is
//   computed per element; wasm and ref round x the same way and agree to f32 summation.
// Tolerance: |got − want| ≤ 2e-6·Σ_k |x_k·w_k| (+ the rounding bound for M ≤ 8); |wasm − ref| ≤
// 4e-6 of that scale.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { release, views } from '../../src/backend/heap.js';
import { putBytes, putF32, getF32, wasmKernelHarness } from './kernel_harness.js';
import type { KernelMode } from './kernel_harness.js';
import * as T from '../../src/index.js';
import { noGrad, scope, withBackend } from '../../src/index.js';
import { quantizeQ8_0, dequantizeQ8_0, f16BitsToF32, f32ToF16Bits } from '../../src/io/dtypes.js';
import { uniformRng } from '../helpers.js';

const R = uniformRng(4242);
function uniform(n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * R();
  return a;
}

const harness = wasmKernelHarness();
const run = harness.run;

type Mode = KernelMode;
const MODES: Mode[] = ['ref', 'call', 'call-parallel', 'call-serial', 'nt1', 'nt3', 'nt7'];

/** Random Q8_0 rows: N rows of K values quantised by ggml's reference quantiser (io's twin). */
function randomBlocks(N: number, K: number): Uint8Array {
  return quantizeQ8_0(uniform(N * K, -0.8, 0.8));
}

/** Blocks with chosen scales (f16 bits) and every int8 value, −128 included. */
function specialBlocks(): Uint8Array {
  const scales = [0x0001, 0x03ff, 0x0400, 0x3c00, 0xbc00, 0x7bff, 0xfbff, 0x0000, 0x8000, 0x2e66, 0x8123, f32ToF16Bits(0.0123)];
  const out = new Uint8Array(scales.length * 8 * 34);
  let o = 0, v = -128;
  for (let i = 0; i < scales.length * 8; i++) {
    out[o] = scales[i % scales.length] & 0xff;
    out[o + 1] = scales[i % scales.length] >> 8;
    for (let j = 0; j < 32; j++) { out[o + 2 + j] = v & 0xff; v = v === 127 ? -128 : v + 1; }
    o += 34;
  }
  return out;
}

/** ggml's dequantize_row_q8_0 written out: y[j] = (float)d · q[j], d from its f16 bits. */
function ggmlDequant(b: Uint8Array): Float32Array {
  const out = new Float32Array((b.length / 34) * 32);
  for (let i = 0; i < b.length / 34; i++) {
    const d = f16BitsToF32(b[i * 34] | (b[i * 34 + 1] << 8));
    for (let j = 0; j < 32; j++) out[i * 32 + j] = Math.fround(d * ((b[i * 34 + 2 + j] << 24) >> 24));
  }
  return out;
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, what);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < a.length; i++) if (ua[i] !== ub[i]) assert.fail(`${what}: element ${i}: ${a[i]} vs ${b[i]} (bits ${ua[i].toString(16)} vs ${ub[i].toString(16)})`);
}

describe('q8_0 kernels', () => {
  it('are exported by the wasm module', () => {
    for (const k of ['q8_0_matmul', 'q8_0_rows', 'quantize_q8_0'] as const) assert.ok(!harness.backend.missing.includes(k), `${k} missing from the wasm module`);
  });

  it('quantize_q8_0 rounds f32 to Q8_0 blocks byte for byte as io\'s quantizeQ8_0 (ggml\'s quantize_row_q8_0_ref): ties, zeros, −0, subnormal and overflowing scales, NaN and infinity', () => {
    // Blocks whose products x·(1/d) land on halves (roundf's ties away from zero), an all-zero and
    // an all-−0 block, values whose scale is subnormal in f16 or overflows it, a block holding
    // NaN and one holding infinity, and random blocks of several magnitudes.
    const special: number[][] = [
      // amax 127: d = 1, so x·(1/d) = x: halves (roundf 0.5 → 1, 2.5 → 3, not to even) and the
      // f32s just below 0.5, which an f32 sum v + 0.5 would round up to 1
      Array.from({ length: 32 }, (_, j) => (j === 0 ? 127 : (j % 2 ? 1 : -1) * (Math.floor(j / 2) + 0.5))),
      Array.from({ length: 32 }, (_, j) => (j === 0 ? 127 : (j % 2 ? 1 : -1) * (0.5 - 2 ** -25 * (1 + Math.floor(j / 2))))),
      Array.from({ length: 32 }, (_, j) => (j - 15.5) / 2),
      new Array(32).fill(0), new Array(32).fill(-0),
      Array.from({ length: 32 }, (_, j) => (j - 16) * 1e-7), Array.from({ length: 32 }, (_, j) => (j - 16) * 1e-9),
      Array.from({ length: 32 }, (_, j) => (j - 16) * 1e5), Array.from({ length: 32 }, (_, j) => (j === 5 ? NaN : j)),
      Array.from({ length: 32 }, (_, j) => (j === 7 ? -Infinity : j / 3)),
    ];
    for (const K of [32, 96, 160]) {
      const rows = special.length + 7;
      const x = new Float32Array(rows * K);
      for (let r = 0; r < rows; r++) for (let k = 0; k < K; k++) {
        x[r * K + k] = r < special.length && k < 32 ? special[r][k] : (R() - 0.5) * 10 ** (Math.floor(R() * 9) - 4);
      }
      const want = quantizeQ8_0(x), nb = (rows * K) / 32;
      for (const mode of MODES) {
        const xp = putF32(x), out = putBytes(new Uint8Array(nb * 34).fill(0xa5));
        run('quantize_q8_0', [out, xp, nb], rows * K, mode);
        const got = views().u8.slice(out, out + nb * 34);
        release(xp); release(out);
        const bad = got.findIndex((v, i) => v !== want[i]);
        assert.equal(bad, -1, `${mode}, K = ${K}: byte ${bad} (block ${Math.floor(bad / 34)}) is ${got[bad]}, io's quantizeQ8_0 writes ${want[bad]}`);
      }
    }
  });

  it('q8_0_rows dequantises bit for bit as ggml (subnormal, negative, zero and largest scales; q = −128…127)', () => {
    for (const [K, blocks] of [[32, specialBlocks()], [96, specialBlocks()], [160, randomBlocks(9, 160)]] as const) {
      const V = blocks.length / 34 / (K / 32);
      const want = ggmlDequant(blocks);
      sameBits(dequantizeQ8_0(blocks), want, 'io dequantizeQ8_0');
      const idx = Int32Array.from({ length: V + 3 }, (_, i) => (i * 5 + 2) % V); // rows out of order, repeated
      const w = putBytes(blocks), ip = putF32(idx);
      try {
        for (const mode of MODES) {
          const out = putF32(new Float32Array(idx.length * K).fill(mode === 'ref' ? -7 : 9));
          run('q8_0_rows', [out, w, ip, idx.length, K], idx.length * K, mode);
          const got = getF32(out, idx.length * K);
          release(out);
          const exp = new Float32Array(idx.length * K);
          idx.forEach((r, i) => exp.set(want.subarray(r * K, (r + 1) * K), i * K));
          sameBits(got, exp, `q8_0_rows K${K} ${mode}`);
        }
      } finally { release(w); release(ip); }
    }
  });

  function checkMatmul(M: number, N: number, K: number, opts: { beta?: 0 | 1; ldx?: number; ldo?: number; blocks?: Uint8Array } = {}): void {
    const beta = opts.beta ?? 0, ldx = opts.ldx ?? K, ldo = opts.ldo ?? N;
    const blocks = opts.blocks ?? randomBlocks(N, K);
    const wf = dequantizeQ8_0(blocks);
    const xs = uniform(M * ldx, -2, 2), o0 = uniform(M * ldo);
    // want: dequantise-then-matmul in f64; bound: f32 summation, plus for M ≤ 8 the rounding of x
    // to Q8_0 blocks (|x − dx·qx| ≤ amax/254 per element of a block).
    const want = new Float64Array(M * ldo), bound = new Float64Array(M * ldo), scale = new Float64Array(M * ldo);
    for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
      let s = 0, a = 0, r = 0;
      for (let b = 0; b < K / 32; b++) {
        let amax = 0, wsum = 0;
        for (let k = b * 32; k < b * 32 + 32; k++) {
          const p = xs[m * ldx + k] * wf[n * K + k];
          s += p; a += Math.abs(p); wsum += Math.abs(wf[n * K + k]); amax = Math.max(amax, Math.abs(xs[m * ldx + k]));
        }
        r += (amax / 254) * wsum;
      }
      const i = m * ldo + n;
      want[i] = (beta ? o0[i] : 0) + s;
      scale[i] = a + (beta ? Math.abs(o0[i]) : 0) + r;
      bound[i] = 2e-6 * scale[i] + (M <= 8 ? 1.001 * r : 0) + 1e-30;
    }
    const w = putBytes(blocks), x = putF32(xs);
    let ref: Float32Array | null = null;
    try {
      for (const mode of MODES) {
        const init0 = beta ? o0 : new Float32Array(M * ldo).fill(mode === 'ref' ? -3 : 5);
        const out = putF32(Float32Array.from(init0));
        run('q8_0_matmul', [out, x, w, M, N, K, ldx, ldo, beta], M * N * K, mode);
        const got = getF32(out, M * ldo);
        release(out);
        if (mode === 'ref') ref = got;
        for (let m = 0; m < M; m++) for (let n = 0; n < ldo; n++) {
          const i = m * ldo + n, what = `M${M} N${N} K${K} beta${beta} ${mode}: (${m}, ${n})`;
          if (n >= N) { assert.equal(got[i], init0[i], `${what}: written outside the output`); continue; }
          assert.ok(Math.abs(got[i] - want[i]) <= bound[i], `${what} got ${got[i]} want ${want[i]} (bound ${bound[i]})`);
          // wasm and ref compute the same products (the same rounding of x): they differ by f32 summation only
          assert.ok(Math.abs(got[i] - ref![i]) <= 4e-6 * scale[i] + 1e-30, `${what} got ${got[i]}, ref ${ref![i]} (scale ${scale[i]})`);
        }
      }
    } finally { release(w); release(x); }
  }

  it('q8_0_matmul with x rounded to Q8_0 (M ≤ 8) is llama.cpp\'s vec_dot_q8_0_q8_0: integer block dots, d·dx', () => {
    // one block, values chosen so that the rounding of x is visible and exactly known
    const wq = new Uint8Array(34);
    wq[0] = 0x00; wq[1] = 0x3c; // d = 1
    for (let j = 0; j < 32; j++) wq[2 + j] = (j - 16) & 0xff;
    const xs = Float32Array.from({ length: 32 }, (_, j) => (j === 5 ? 127 : 0.5 + j * 0.25)); // amax 127: dx = 1, qx = nearest-even(x)
    let want = 0;
    for (let j = 0; j < 32; j++) {
      const v = xs[j], r = Math.round(v), qx = r - v === 0.5 && r % 2 ? r - 1 : r;
      want += (j - 16) * qx;
    }
    const w = putBytes(wq), x = putF32(xs);
    try {
      for (const mode of MODES) {
        const out = putF32(new Float32Array(1));
        run('q8_0_matmul', [out, x, w, 1, 1, 32, 32, 1, 0], 32, mode);
        assert.equal(getF32(out, 1)[0], want, mode);
        release(out);
      }
    } finally { release(w); release(x); }
  });

  it('q8_0_matmul on 2–8 rows gives each row bit for bit what it gives alone (speculative verification = decoding steps)', () => {
    for (const [M, N, K] of [[2, 7, 96], [3, 5, 32], [4, 9, 160], [5, 3, 288], [7, 4, 64], [8, 6, 96]] as const) {
      const blocks = randomBlocks(N, K), xs = uniform(M * K, -2, 2);
      const w = putBytes(blocks), x = putF32(xs);
      try {
        for (const mode of ['call', 'nt3'] as const) {
          const out = putF32(new Float32Array(M * N)), one = putF32(new Float32Array(N));
          run('q8_0_matmul', [out, x, w, M, N, K, K, N, 0], M * N * K, mode);
          const many = getF32(out, M * N);
          for (let m = 0; m < M; m++) {
            run('q8_0_matmul', [one, x + 4 * m * K, w, 1, N, K, K, N, 0], N * K, mode);
            sameBits(many.subarray(m * N, (m + 1) * N), getF32(one, N), `M=${M} N=${N} K=${K} row ${m} ${mode}`);
          }
          release(out); release(one);
        }
      } finally { release(w); release(x); }
    }
  });

  it('q8_0_matmul against dequantise-then-matmul: M = 1, 3, 17; K = 32, 96, 160; N odd', () => {
    for (const M of [1, 3, 17]) for (const K of [32, 96, 160]) for (const N of [1, 7, 67]) checkMatmul(M, N, K);
  });
  it('q8_0_matmul: several panels (K = 1568, N = 131), accumulate, strided rows, special blocks', () => {
    for (const M of [1, 2, 9]) checkMatmul(M, 131, 1568);
    for (const M of [1, 4, 17]) checkMatmul(M, 33, 96, { beta: 1, ldx: 100, ldo: 40 });
    checkMatmul(17, 12, 96, { blocks: specialBlocks() });
    checkMatmul(1, 12, 96, { blocks: specialBlocks() });
  });
});

describe('q8_0 tensors in ops', () => {
  const N = 45, K = 96;
  const blocks = randomBlocks(N, K);
  for (const be of ['ref', 'wasm'] as const) {
    it(`quantizeQ8_0Blocks: an f32 matrix (contiguous or not) rounded in the heap, io's quantizeQ8_0 bytes; bad dtypes and shapes refused (${be})`, () => withBackend(be, () => scope(() => noGrad(() => {
      const x = uniform(N * K, -3, 3);
      assert.deepEqual(T.quantizeQ8_0Blocks(T.tensor(x, [N, K])), quantizeQ8_0(x));
      const xt = T.transpose(T.tensor(x, [K, N]));
      assert.deepEqual(T.quantizeQ8_0Blocks(xt), quantizeQ8_0(xt.data() as Float32Array));
      assert.throws(() => T.quantizeQ8_0Blocks(T.tensor(x.subarray(0, 45 * 40), [45, 40])), /quantizeQ8_0Blocks: \[45, 40\]: expected a matrix whose rows are whole 32-value blocks/);
      assert.throws(() => T.quantizeQ8_0Blocks(T.fromQ8_0(blocks, [N, K])), /quantizeQ8_0Blocks: expected f32, got q8_0/);
    }))));

    it(`linear, addLinearInPlace and embedding equal their f32 forms on the dequantised weight (${be})`, () => withBackend(be, () => scope(() => noGrad(() => {
      const w = T.fromQ8_0(blocks, [N, K]);
      const wf = T.dequantize(w);
      assert.deepEqual(Array.from(wf.data()), Array.from(dequantizeQ8_0(blocks)));
      for (const lead of [[1, 1], [2, 3], [1, 17]]) {
        const x = T.randn([...lead, K]);
        const got = T.linear(x, w, T.ones([N])), want = T.linear(x, wf, T.ones([N]));
        assert.deepEqual(got.shape, want.shape);
        const g = got.data(), e = want.data();
        // decoding shapes (8 rows or fewer) round x to Q8_0 blocks (bounded exactly in the kernel
        // tests above): here a few percent of the output's scale; 9 rows or more: f32 products
        const big = Array.from(e).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        const tol = lead[0] * lead[1] <= 8 ? 5e-2 * big : 1e-4 * (1 + big);
        for (let i = 0; i < g.length; i++) assert.ok(Math.abs(g[i] - e[i]) <= tol, `linear ${lead}: ${g[i]} vs ${e[i]}`);
        const h = T.randn([...lead, N]), h2 = T.clone(h);
        T.addLinearInPlace(h, x, w);
        T.linear(x, w).data().forEach((v, i) => { assert.ok(Math.abs(h.data()[i] - h2.data()[i] - v) <= 1e-5 * (1 + Math.abs(v)), `addLinearInPlace ${lead}`); });
      }
      // a transposed (strided) input is made contiguous first
      const xt = T.transpose(T.randn([K, 3]), 0, 1);
      const a = T.linear(xt, w).data(), b = T.linear(xt, wf).data();
      const big = Array.from(b).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= 5e-2 * big, `transposed x: ${a[i]} vs ${b[i]}`);
      const ids = T.tensor([3, 0, 44, 3], [2, 2], 'i32');
      assert.deepEqual(Array.from(T.embedding(w, ids).data()), Array.from(T.embedding(wf, ids).data()));
    }))));
  }

  it('is inference only: no grad through it, no f32 reads, a clear error naming it', () => scope(() => {
    const w = T.fromQ8_0(blocks, [N, K]);
    w.name = 'model.layers.0.mlp.up_proj.weight';
    const x = T.randn([2, K]).requiresGrad_();
    assert.throws(() => T.linear(x, w), /up_proj\.weight \[45, 96\] is a q8_0 \(quantised\) weight, for inference only.*dtype f32/);
    assert.throws(() => w.data(), /q8_0 \(quantised\) inference weight.*dequantize\(\)/);
    assert.throws(() => w.requiresGrad_(), /only f32 tensors can require grad/);
    assert.throws(() => T.matmul(x, w), /expected f32 tensor, got q8_0/);
    assert.throws(() => T.empty([3, 40], 'q8_0'), /multiple of 32/);
    assert.throws(() => T.fromQ8_0(blocks.subarray(1), [N, K]), /bytes do not hold/);
  }));
});
