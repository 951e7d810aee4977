// The kernels of ggml's other block types kept in memory (quant_matmul, quant_rows: Q4_0, Q4_1,
// Q5_0, Q4_K, Q5_K, Q6_K) and the ops that run them.
// - Dequantisation equals ggml's formulas bit for bit: golden values written by numpy
//   (scripts/gen_ggml_quant_fixtures.py, an independent unpacking of the layouts) over random
//   blocks with subnormal, negative, zero and largest f16 scales; checked for io's toFloat32, the
//   ref kernel and the wasm kernel (serial, threaded, and share by share).
// - quant_matmul on both backends against dequantise-then-f64 matmul on awkward shapes: K one
//   block, a few blocks, and many (several 64-row panels with K = 2304); N odd (1, 7, 67); M = 1,
//   3 (decoding: x rounded to Q8_0 / Q8_K blocks first, as llama.cpp) and 9, 17 (the panel path);
//   accumulate and strided rows. For M < Q8_PANEL_M (9: up to 8 rows, a speculative verification
//   of 8 tokens, decode row by row as one token does) the bound adds the rounding of x: Σ_b (amax_b/254)·Σ|w|
//   over each activation block (32 values, or 256 for the K types). wasm and ref round x the same
//   way and take the same integer sums: they agree to f32 summation.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { release, views } from '../../src/backend/heap.js';
import { putBytes, putF32, getF32, wasmKernelHarness, checkKeptWeight, kernelExports } from './kernel_harness.js';
import type { KernelMode } from './kernel_harness.js';
import { INT_PREFILL, Q8_PANEL_M } from '../../src/backend/ref/quant.js';
import { GGML_QUANT, dequantizeBlocks } from '../../src/backend/ref/ggml_blocks.js';
import type { GgmlQuantName } from '../../src/backend/ref/ggml_blocks.js';
import * as T from '../../src/index.js';
import { noGrad, scope, withBackend } from '../../src/index.js';
import { toFloat32 } from '../../src/io/dtypes.js';
import { quantizeQ4_0, quantizeQ4_1, quantizeQ5_0, quantizeQ4_K, quantizeQ5_K, quantizeQ6_K } from '../../src/io/quantize.js';
import type { RawDType } from '../../src/io/dtypes.js';
import { uniformRng } from '../helpers.js';

const FIXTURE = JSON.parse(readFileSync(new URL('../../../test/fixtures/quant/ggml_blocks.json', import.meta.url), 'utf8')) as Record<string, { block: number; bytes: string; values: string }>;
const TYPES = Object.keys(GGML_QUANT) as GgmlQuantName[];
const R = uniformRng(1515);

function uniform(n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * R();
  return a;
}
function hex(s: string): Uint8Array { return Uint8Array.from(s.match(/../g)!.map((h) => parseInt(h, 16))); }

/** Random blocks of `type` for N rows of K values: random quant bytes, f16 scales in [2^-9, 2^-6). */
function randomBlocks(type: GgmlQuantName, N: number, K: number): Uint8Array {
  const { block, bytes } = GGML_QUANT[type];
  const nb = (N * K) / block, out = new Uint8Array(nb * bytes);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(R() * 256);
  const offs = type === 'q6_k' ? [208] : type === 'q4_0' || type === 'q5_0' ? [0] : [0, 2];
  for (let b = 0; b < nb; b++) for (const o of offs) {
    const h = 0x1800 + Math.floor(R() * 0xc00) + (R() < 0.3 ? 0x8000 : 0);
    out[b * bytes + o] = h & 0xff; out[b * bytes + o + 1] = h >> 8;
  }
  return out;
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, what);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < a.length; i++) if (ua[i] !== ub[i]) assert.fail(`${what}: element ${i}: ${a[i]} vs ${b[i]} (bits ${ua[i].toString(16)} vs ${ub[i].toString(16)})`);
}

const harness = wasmKernelHarness();
const run = harness.run;

type Mode = KernelMode;
const MODES: Mode[] = ['ref', 'call', 'call-parallel', 'call-serial', 'nt3', 'nt7'];

describe('ggml block types: dequantisation', () => {
  it('are exported by the wasm module', () => {
    for (const k of ['quant_matmul', 'quant_rows'] as const) assert.ok(!harness.backend.missing.includes(k), `${k} missing from the wasm module`);
  });
  for (const type of TYPES) {
    it(`${type}: io, ref and wasm dequantise bit for bit as the numpy reference`, () => {
      const fx = FIXTURE[type];
      const blocks = hex(fx.bytes);
      const vb = hex(fx.values), want = new Float32Array(vb.length / 4);
      const dv = new DataView(vb.buffer);
      for (let i = 0; i < want.length; i++) want[i] = dv.getFloat32(4 * i, false);
      sameBits(dequantizeBlocks(type, blocks, want.length), want, `${type} ggml_blocks`);
      sameBits(toFloat32({ name: 'w', dtype: type.toUpperCase() as RawDType, shape: [want.length / fx.block, fx.block], data: blocks }), want, `${type} io toFloat32`);
      // rows of two blocks each (one for the K types if odd), gathered out of order and repeated
      const K = fx.block * (want.length / fx.block % 2 === 0 ? 2 : 1), V = want.length / K;
      const idx = Int32Array.from({ length: V + 3 }, (_, i) => (i * 5 + 2) % V);
      const w = putBytes(blocks), ip = putF32(idx);
      try {
        for (const mode of MODES) {
          const out = putF32(new Float32Array(idx.length * K).fill(mode === 'ref' ? -7 : 9));
          run('quant_rows', [out, w, ip, idx.length, K, GGML_QUANT[type].id], idx.length * K, mode);
          const got = getF32(out, idx.length * K);
          release(out);
          const exp = new Float32Array(idx.length * K);
          idx.forEach((r, i) => exp.set(want.subarray(r * K, (r + 1) * K), i * K));
          sameBits(got, exp, `${type} quant_rows ${mode}`);
        }
      } finally { release(w); release(ip); }
    });
  }
});

function checkMatmul(type: GgmlQuantName, M: number, N: number, K: number, opts: { beta?: 0 | 1; ldx?: number; ldo?: number } = {}): void {
  const beta = opts.beta ?? 0, ldx = opts.ldx ?? K, ldo = opts.ldo ?? N;
  const blocks = randomBlocks(type, N, K);
  const wf = dequantizeBlocks(type, blocks, N * K);
  const xs = uniform(M * ldx, -2, 2), o0 = uniform(M * ldo);
  const AB = GGML_QUANT[type].block; // activation block: Q8_0 (32) or Q8_K (256)
  const want = new Float64Array(M * ldo), bound = new Float64Array(M * ldo), scale = new Float64Array(M * ldo);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
    let s = 0, a = 0, r = 0;
    for (let b = 0; b < K / AB; b++) {
      let amax = 0, wsum = 0;
      for (let k = b * AB; k < b * AB + AB; k++) {
        const p = xs[m * ldx + k] * wf[n * K + k];
        s += p; a += Math.abs(p); wsum += Math.abs(wf[n * K + k]); amax = Math.max(amax, Math.abs(xs[m * ldx + k]));
      }
      r += (amax / 254) * wsum;
    }
    const i = m * ldo + n;
    want[i] = (beta ? o0[i] : 0) + s;
    scale[i] = a + (beta ? Math.abs(o0[i]) : 0) + r;
    // x rounded to 8-bit blocks: decoding (M < Q8_PANEL_M) for every type, and the prefill of the types with an integer GEMM
    bound[i] = 3e-6 * scale[i] + (M < Q8_PANEL_M || INT_PREFILL.has(GGML_QUANT[type].id) ? 1.001 * r : 0) + 1e-30;
  }
  const w = putBytes(blocks), x = putF32(xs);
  let ref: Float32Array | null = null;
  try {
    for (const mode of MODES) {
      const init0 = beta ? o0 : new Float32Array(M * ldo).fill(mode === 'ref' ? -3 : 5);
      const out = putF32(Float32Array.from(init0));
      run('quant_matmul', [out, x, w, M, N, K, ldx, ldo, beta, GGML_QUANT[type].id], M * N * K, mode);
      const got = getF32(out, M * ldo);
      release(out);
      if (mode === 'ref') ref = got;
      for (let m = 0; m < M; m++) for (let n = 0; n < ldo; n++) {
        const i = m * ldo + n, what = `${type} M${M} N${N} K${K} beta${beta} ${mode}: (${m}, ${n})`;
        if (n >= N) { assert.equal(got[i], init0[i], `${what}: written outside the output`); continue; }
        assert.ok(Math.abs(got[i] - want[i]) <= bound[i], `${what} got ${got[i]} want ${want[i]} (bound ${bound[i]})`);
        assert.ok(Math.abs(got[i] - ref![i]) <= 4e-6 * scale[i] + 1e-30, `${what} got ${got[i]}, ref ${ref![i]} (scale ${scale[i]})`);
      }
    }
  } finally { release(w); release(x); }
}

const IO_QUANTIZE: Record<GgmlQuantName, (x: Float32Array) => Uint8Array> = {
  q4_0: quantizeQ4_0, q4_1: quantizeQ4_1, q5_0: quantizeQ5_0, q4_k: quantizeQ4_K, q5_k: quantizeQ5_K, q6_k: quantizeQ6_K,
};

/**
 * Blocks of `n` values that reach the quantisers' corners: all zero, all −0, constant (max = min),
 * all positive (the min clamped to 0), integers and halves (nearest_int's ties), sub-blocks of
 * very different scales, values below 1e-15 (Q6_K's zero test) and f32 subnormals, magnitudes whose
 * scales overflow f16, one NaN, one ±inf, all −inf (max = min, their difference NaN); for blocks
 * of 256, blocks whose sub-blocks are different corners; then random blocks of several magnitudes.
 */
function quantizerInputs(n: number, randomBlocks: number): Float32Array {
  const special: ((j: number) => number)[] = [
    () => 0, () => -0, () => 0.75, (j) => 1 + (j % 7) / 4, (j) => (j % 17) - 8, (j) => ((j % 9) - 4) / 2,
    (j) => (j % 32 < 16 ? 1e-3 : 1) * Math.sin(j + 1), (j) => (j - n / 2) * 1e-17, (j) => (j - n / 2) * 1e-42,
    (j) => (j - n / 2) * 1e6, (j) => (j === 5 ? NaN : Math.cos(j)), (j) => (j === 3 ? Infinity : j === 9 ? -Infinity : j / 7),
    () => -Infinity,
  ];
  // Blocks of 256 (the K-quants) also mix the corners: sub-block k (of 32 values, then of 16, as
  // Q4_K / Q5_K and Q6_K cut them) of mixed block b is corner (b + k)'s values.
  const mixed = n === 256 ? [32, 16].flatMap((sub) => special.map((_, b) => (j: number) => special[(b + Math.floor(j / sub)) % special.length](j))) : [];
  const fixed = [...special, ...mixed];
  const x = new Float32Array((fixed.length + randomBlocks) * n);
  fixed.forEach((f, b) => { for (let j = 0; j < n; j++) x[b * n + j] = f(j); });
  for (let b = fixed.length; b < fixed.length + randomBlocks; b++) {
    const scale = 10 ** (Math.floor(R() * 9) - 5), shift = R() < 0.3 ? scale * R() : 0;
    for (let j = 0; j < n; j++) x[b * n + j] = (R() - 0.5) * scale + shift;
  }
  return x;
}

describe('ggml block types: quantize_blocks', () => {
  it('is exported by the wasm module', () => {
    assert.ok(!harness.backend.missing.includes('quantize_blocks'), 'quantize_blocks missing from the wasm module');
  });
  for (const type of TYPES) {
    it(`${type}: quantize_blocks writes io's quantiser's bytes (ggml's quantize_row_${type}_ref), every block and every split`, () => {
      const { id, block, bytes } = GGML_QUANT[type];
      const x = quantizerInputs(block, 24), nb = x.length / block, want = IO_QUANTIZE[type](x);
      for (const mode of MODES) {
        const xp = putF32(x), out = putBytes(new Uint8Array(nb * bytes).fill(0xa5));
        run('quantize_blocks', [out, xp, nb, id], x.length * 8, mode);
        const got = views().u8.slice(out, out + nb * bytes);
        release(xp); release(out);
        const bad = got.findIndex((v, i) => v !== want[i]);
        assert.equal(bad, -1, `${mode}: byte ${bad} (block ${Math.floor(bad / bytes)}, offset ${bad % bytes}) is ${got[bad]}, io's quantiser writes ${want[bad]}`);
      }
    });
  }
  it('quantizeGgmlBlocks: an f32 matrix (contiguous or not) quantised in the heap to each type; bad dtypes and shapes refused', () => {
    for (const be of ['ref', 'wasm'] as const) withBackend(be, () => scope(() => noGrad(() => {
      for (const type of TYPES) {
        const { block } = GGML_QUANT[type], K = 2 * block, N = 5, x = uniform(N * K, -2, 3);
        assert.deepEqual(T.quantizeGgmlBlocks(T.tensor(x, [N, K]), type), IO_QUANTIZE[type](x), `${type} (${be})`);
        const xt = T.tensor(x, [K, N]).transpose(0, 1);
        assert.deepEqual(T.quantizeGgmlBlocks(xt, type), IO_QUANTIZE[type](xt.data() as Float32Array), `${type} strided (${be})`);
      }
      assert.throws(() => T.quantizeGgmlBlocks(T.tensor(new Float32Array(3 * 288), [3, 288]), 'q4_k'), /quantizeGgmlBlocks: \[3, 288\]: expected a matrix whose rows are whole 256-value blocks of q4_k/);
      assert.throws(() => T.quantizeGgmlBlocks(T.tensor(new Float32Array(64), [2, 32]), 'q8_0' as GgmlQuantName), /quantizeGgmlBlocks: q8_0 is not one of q4_0, q4_1, q5_0, q4_k, q5_k, q6_k/);
      assert.throws(() => T.quantizeGgmlBlocks(T.tensor(new Int32Array(64), [2, 32], 'i32'), 'q4_0'), /quantizeGgmlBlocks: expected f32, got i32/);
    })));
  });
});

describe('ggml block types: quant_matmul', () => {
  for (const type of TYPES) {
    const B = GGML_QUANT[type].block;
    it(`${type}: M = 1, 3, 9; K = 1, 3 blocks; N = 1, 7, 67; accumulate, strided rows; several panels`, () => {
      for (const M of [1, 3, 9]) for (const K of [B, 3 * B]) for (const N of [1, 7, 67]) checkMatmul(type, M, N, K);
      for (const M of [2, 17]) checkMatmul(type, M, 13, 2 * B, { beta: 1, ldx: 2 * B + 4, ldo: 20 });
      for (const M of [1, 8, 9]) checkMatmul(type, M, 131, B === 256 ? 2304 : 1568);
      // the integer prefills: tiles of 4 rows (M not a multiple of 4), x in several chunks (K = 32,768)
      if (INT_PREFILL.has(GGML_QUANT[type].id)) {
        const shapes = B === 32 ? [[10, 9, 96], [23, 70, 1568], [203, 5, 32768]] : [[10, 9, 256], [23, 70, 1536], [203, 5, 32768]];
        for (const [M, N, K] of shapes) checkMatmul(type, M, N, K, { beta: 1, ldx: K + 8, ldo: N + 3 });
      }
    });
  }

  it('the integer prefills are exact on integer data (scales 1, one 127 per block of x: qx = ±x), both builds, every split', () => {
    // Rounding x changes nothing here and every partial sum is an integer below 2^24, so the
    // output is Σ x·w exactly: one unit off in any (row, block) integer sum fails.
    const relaxed = kernelExports('relaxed'), plain = kernelExports('simd');
    for (const type of TYPES.filter((t) => INT_PREFILL.has(GGML_QUANT[t].id))) {
      const { block, bytes, id } = GGML_QUANT[type], K = 512, N = 7;
      const blocks = randomBlocks(type, N, K);
      const scaleOffs = type === 'q6_k' ? [208] : type === 'q4_0' || type === 'q5_0' ? [0] : [0, 2];
      for (let b = 0; b < (N * K) / block; b++) for (const o of scaleOffs) { blocks[b * bytes + o] = 0x00; blocks[b * bytes + o + 1] = 0x3c; }
      const wf = dequantizeBlocks(type, blocks, N * K), w = putBytes(blocks);
      try {
        for (const M of [9, 13]) {
          const xs = new Float32Array(M * K);
          for (let i = 0; i < xs.length; i++) xs[i] = i % block === (Math.floor(i / block) * 7) % block ? 127 : Math.floor(R() * 9) - 4;
          const want = new Float32Array(M * N);
          for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
            let s = 0;
            for (let k = 0; k < K; k++) s += xs[m * K + k] * wf[n * K + k];
            assert.ok(Math.abs(s) < 2 ** 24);
            want[m * N + n] = s;
          }
          const x = putF32(xs);
          try {
            for (const mode of MODES) {
              const out = putF32(new Float32Array(M * N));
              run('quant_matmul', [out, x, w, M, N, K, K, N, 0, id], M * N * K, mode);
              sameBits(getF32(out, M * N), want, `${type} M${M} ${mode}`);
              release(out);
            }
            for (const [e, name] of [[relaxed, 'relaxed'], [plain, 'plain']] as const) {
              const out = putF32(new Float32Array(M * N));
              for (let t = 0; t < 2; t++) e.quant_matmul(out, x, w, M, N, K, K, N, 0, id, t, 2);
              sameBits(getF32(out, M * N), want, `${type} M${M} ${name} build`);
              release(out);
            }
          } finally { release(x); }
        }
      } finally { release(w); }
    }
  });

  it('q4_0 decoding is llama.cpp\'s vec_dot_q4_0_q8_0 on a block with known rounding', () => {
    // one Q4_0 block with d = 1 and quants j − 8 (nibble j mod 16); x with amax 127 so dx = 1, qx = nearest-even(x)
    const wq = new Uint8Array(18);
    wq[0] = 0x00; wq[1] = 0x3c;
    for (let j = 0; j < 16; j++) wq[2 + j] = (j & 15) | (((15 - j) & 15) << 4);
    const xs = Float32Array.from({ length: 32 }, (_, j) => (j === 5 ? 127 : 0.5 + j * 0.25));
    let want = 0;
    for (let j = 0; j < 32; j++) {
      const q = (j < 16 ? j : 15 - (j - 16)) - 8;
      const v = xs[j], r = Math.round(v), qx = r - v === 0.5 && r % 2 ? r - 1 : r;
      want += q * qx;
    }
    const w = putBytes(wq), x = putF32(xs);
    try {
      for (const mode of MODES) {
        const out = putF32(new Float32Array(1));
        run('quant_matmul', [out, x, w, 1, 1, 32, 32, 1, 0, 2], 32, mode);
        assert.equal(getF32(out, 1)[0], want, mode);
        release(out);
      }
    } finally { release(w); release(x); }
  });

  it('the plain-SIMD build (no relaxed SIMD) agrees with the relaxed build: decoding rows, panels, dequantisation', () => {
    // The two builds take each block's integer dot differently (i16x8.relaxed_dot_i8x16_i7x16_s
    // on the quants as stored vs sign-extended i32x4.dot_i16x8_s; their i32 lanes group other
    // positions) and fma4 is fused on the relaxed build only: the results agree to f32 summation;
    // dequantisation is bit for bit. The harness above runs the build Node picks (relaxed).
    const relaxed = kernelExports('relaxed'), plain = kernelExports('simd');
    for (const type of TYPES) {
      const B = GGML_QUANT[type].block, K = 3 * B, N = 13;
      const blocks = randomBlocks(type, N, K), wf = dequantizeBlocks(type, blocks, N * K), w = putBytes(blocks);
      try {
        for (const M of [1, 2, 3, 5, 9]) {
          const xs = uniform(M * K, -2, 2), x = putF32(xs);
          const [a, b, c] = [[relaxed, 1], [plain, 1], [relaxed, 3]].map(([e, nt]) => {
            const o = putF32(new Float32Array(M * N));
            for (let t = 0; t < (nt as number); t++) (e as typeof relaxed).quant_matmul(o, x, w, M, N, K, K, N, 0, GGML_QUANT[type].id, t, nt as number);
            const got = getF32(o, M * N); release(o); return got;
          });
          release(x);
          // a row's result does not depend on which rows a thread takes with it (pairs of rows)
          sameBits(c, a, `${type} quant_matmul M${M}: 3 shares vs 1`);
          for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
            let scale = 0;
            for (let k = 0; k < K; k++) scale += Math.abs(xs[m * K + k] * wf[n * K + k]);
            const i = m * N + n;
            assert.ok(Math.abs(a[i] - b[i]) <= 4e-6 * scale + 1e-30, `${type} M${M} (${m}, ${n}): relaxed ${a[i]}, plain ${b[i]} (scale ${scale})`);
          }
        }
        const idx = putF32(Int32Array.from([3, 0, 12])), rows = [relaxed, plain].map((e) => {
          const o = putF32(new Float32Array(3 * K));
          e.quant_rows(o, w, idx, 3, K, GGML_QUANT[type].id, 0, 1);
          const got = getF32(o, 3 * K); release(o); return got;
        });
        release(idx);
        sameBits(rows[1], rows[0], `${type} quant_rows: plain vs relaxed`);
      } finally { release(w); }
    }
  });
});

describe('ggml block types in ops', () => {
  for (const type of ['q4_0', 'q4_k', 'q6_k'] as const) {
    const B = GGML_QUANT[type].block, N = 37, K = 2 * B;
    const blocks = randomBlocks(type, N, K);
    const wf = dequantizeBlocks(type, blocks, N * K);
    for (const bk of ['ref', 'wasm'] as const) {
      it(`${type} (${bk}): linear, addLinearInPlace and embedding match the dequantised f32 weight; no gradient, no data()`, () => withBackend(bk, () => scope(() => {
        const w = T.fromBlocks(blocks, [N, K], type);
        assert.equal(w.dtype, type);
        const wd = T.dequantize(w);
        assert.deepEqual(Array.from(wd.data()), Array.from(wf));
        const xs = uniform(9 * K), x = T.tensor(Array.from(xs), [9, K]);
        // 9 rows: the prefill path, exact f32 products except the integer GEMMs (x rounded to 8 bits, as
        // llama.cpp): their tolerance is the rounding's bound as the kernel tests above take it
        // (Σ_b (amax_b/254)·Σ|w| over x's blocks, plus f32 summation), relative to 1 + |x·w|.
        let tol = 1e-4;
        if (INT_PREFILL.has(GGML_QUANT[type].id)) for (let m = 0; m < 9; m++) for (let n = 0; n < N; n++) {
          let s = 0, a = 0, r = 0;
          for (let b = 0; b < K / B; b++) {
            let amax = 0, wsum = 0;
            for (let k = b * B; k < b * B + B; k++) {
              s += xs[m * K + k] * wf[n * K + k]; a += Math.abs(xs[m * K + k] * wf[n * K + k]);
              wsum += Math.abs(wf[n * K + k]); amax = Math.max(amax, Math.abs(xs[m * K + k]));
            }
            r += (amax / 254) * wsum;
          }
          tol = Math.max(tol, (1.001 * r + 1e-5 * a) / (1 + Math.abs(s)));
        }
        noGrad(() => checkKeptWeight(w, wd, wf, K, x, tol, type));
        assert.throws(() => w.data(), new RegExp(`is a ${type} \\(quantised\\)`));
        assert.throws(() => T.linear(x.requiresGrad_(), w), /inference only/);
        assert.throws(() => T.fromBlocks(blocks.subarray(1), [N, K], type), /do not hold/);
        assert.throws(() => T.empty([3, B / 2], type), new RegExp(`multiple of ${B}`));
      })));
    }
  }
});
