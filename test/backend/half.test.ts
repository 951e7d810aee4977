// f16 and bf16 weights kept in memory (ggml ids 1 and 30 of quant_matmul, quant_rows) and the
// conversions around them, against outside references (scripts/gen_half_fixtures.py):
// - widening: all 65,536 F16 patterns as numpy's float16 → float32 and all BF16 patterns as
//   torch's bfloat16 → float32, bit for bit (sha256 of the whole table; sampled values first, to
//   name a mismatch), for the ref conversions and the wasm kernels: quant_rows (inf and NaN too)
//   and the decoding path's in-register widening (finite patterns, picked out by one-hot rows of x);
// - rounding f32 → F16 / BF16 (fromFloat32, used when quantising on load and writing files) as
//   numpy's astype(float16) and torch's to(bfloat16);
// - quant_matmul on awkward shapes (K not a multiple of 8 or 16, 1…9 and 17 rows of x, N odd,
//   accumulate, strided rows) on both backends against an f64 sum of exact products.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { release } from '../../src/backend/heap.js';
import { putBytes, putF32, getF32, wasmKernelHarness, checkKeptWeight } from './kernel_harness.js';
import type { KernelMode } from './kernel_harness.js';
import { bf16ToF32, bf16ToF32Bits, halfToF32, halfToF32Bits, GGML_HALF } from '../../src/backend/ref/ggml_blocks.js';
import * as T from '../../src/index.js';
import { noGrad, scope, withBackend } from '../../src/index.js';
import { fromFloat32 } from '../../src/io/dtypes.js';
import { uniformRng } from '../helpers.js';

const FX = JSON.parse(readFileSync(new URL('../../../test/fixtures/quant/half.json', import.meta.url), 'utf8')) as {
  f16_to_f32_sha256: string; bf16_to_f32_sha256: string; sample: number[]; sample_f16: number[]; sample_bf16: number[];
  round_x: number[]; round_f16: number[]; round_bf16: number[];
};
const TYPES = ['f16', 'bf16'] as const;
type Half = typeof TYPES[number];
const ID = { f16: GGML_HALF.f16.id, bf16: GGML_HALF.bf16.id };
const WANT_SHA = { f16: FX.f16_to_f32_sha256, bf16: FX.bf16_to_f32_sha256 };
const WANT_SAMPLE = { f16: FX.sample_f16, bf16: FX.sample_bf16 };
const wide = (t: Half, h: number): number => (t === 'f16' ? halfToF32(h) : bf16ToF32(h));
const isFinitePattern = (t: Half, h: number): boolean => (t === 'f16' ? (h & 0x7c00) !== 0x7c00 : (h & 0x7f80) !== 0x7f80);
const R = uniformRng(1616);

const harness = wasmKernelHarness();
const run = harness.run;
const MODES: KernelMode[] = ['ref', 'call', 'call-parallel', 'nt3'];

function bitsOf(a: Float32Array): Uint32Array { return new Uint32Array(a.buffer, a.byteOffset, a.length); }
function sha(a: Float32Array): string { return createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex'); }
/** The 65,536 patterns widened, as a table indexed by pattern; sampled patterns checked first by value. */
function checkTable(t: Half, tab: Float32Array, what: string): void {
  const b = bitsOf(tab);
  FX.sample.forEach((h, i) => assert.equal(b[h], WANT_SAMPLE[t][i], `${what}: pattern 0x${h.toString(16)} → bits 0x${b[h].toString(16)}, reference 0x${WANT_SAMPLE[t][i].toString(16)}`));
  assert.equal(sha(tab), WANT_SHA[t], `${what}: the table of all 65,536 patterns differs from the reference`);
}
const ALL = Uint16Array.from({ length: 65536 }, (_, i) => i);

describe('f16 / bf16 → f32, all 65,536 patterns, bit for bit as numpy / torch', () => {
  for (const t of TYPES) {
    it(`${t}: the ref conversion (bit patterns; values for finite patterns)`, () => {
      const bits = Uint32Array.from(ALL, (h) => (t === 'f16' ? halfToF32Bits(h) : bf16ToF32Bits(h)));
      checkTable(t, new Float32Array(bits.buffer), `${t} ref bits`);
      const vals = Float32Array.from(ALL, (h) => wide(t, h));
      ALL.forEach((h) => { if (isFinitePattern(t, h)) assert.equal(bitsOf(vals.subarray(h, h + 1))[0], bits[h], `${t} ref value of 0x${h.toString(16)}`); else assert.ok(Number.isNaN(vals[h]) === Number.isNaN(new Float32Array(bits.buffer)[h])); });
    });
    it(`${t}: quant_rows (ref and wasm, threads), rows gathered out of order`, () => {
      const K = 1024, V = 64, w = putBytes(new Uint8Array(ALL.buffer));
      const perm = Int32Array.from({ length: V }, (_, i) => (i * 37 + 5) % V), ip = putF32(perm);
      try {
        for (const mode of MODES) {
          const out = putF32(new Float32Array(V * K).fill(7));
          run('quant_rows', [out, w, ip, V, K, ID[t]], V * K, mode);
          const got = getF32(out, V * K), tab = new Float32Array(65536);
          release(out);
          perm.forEach((r, i) => tab.set(got.subarray(i * K, (i + 1) * K), r * K));
          checkTable(t, tab, `${t} quant_rows ${mode}`);
        }
      } finally { release(w); release(ip); }
    });
    it(`${t}: the decoding path widens every finite pattern exactly (one-hot rows of x, 1 to 3 rows)`, () => {
      const pats = ALL.filter((h) => isFinitePattern(t, h)), N = pats.length, K = 16;
      const wq = new Uint16Array(N * K);
      for (let n = 0; n < N; n++) wq.fill(pats[n], n * K, (n + 1) * K);
      const w = putBytes(new Uint8Array(wq.buffer));
      try {
        for (const [M, cols] of [[3, [0, 5, 11]], [2, [15, 6]], [1, [9]]] as const) {
          const xs = new Float32Array(M * K);
          cols.forEach((c, m) => { xs[m * K + c] = 1; });
          const x = putF32(xs), out = putF32(new Float32Array(M * N));
          run('quant_matmul', [out, x, w, M, N, K, K, N, 0, ID[t]], M * N * K, 'call');
          const got = bitsOf(getF32(out, M * N));
          release(x); release(out);
          for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
            const want = bitsOf(Float32Array.of(wide(t, pats[n])))[0], g = got[m * N + n];
            // −0 · 1 added to +0 partial sums is +0
            if (g !== want && !(pats[n] === 0x8000 && g === 0)) assert.fail(`${t} M${M} column ${cols[m]}: pattern 0x${pats[n].toString(16)} → 0x${g.toString(16)}, want 0x${want.toString(16)}`);
          }
        }
      } finally { release(w); }
    });
  }
});

describe('f32 → f16 / bf16 rounding (nearest, ties to even) as numpy / torch', () => {
  const x = new Float32Array(Uint32Array.from(FX.round_x).buffer);
  for (const [t, want] of [['F16', FX.round_f16], ['BF16', FX.round_bf16]] as const) {
    it(`${t}: ${x.length} values (ties, subnormals, overflow)`, () => {
      const got = new Uint16Array(fromFloat32('w', [x.length], x, t).data.slice().buffer);
      for (let i = 0; i < x.length; i++) assert.equal(got[i], want[i], `${t}: ${x[i]} (0x${FX.round_x[i].toString(16)}) → 0x${got[i].toString(16)}, reference 0x${want[i].toString(16)}`);
    });
  }
});

function randomHalves(t: Half, n: number): Uint16Array {
  // values in about ±[2^-12, 4), some subnormal f16s, some zeros
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const sign = R() < 0.5 ? 0x8000 : 0, r = R();
    if (t === 'bf16') out[i] = r < 0.05 ? sign : sign | ((115 + Math.floor(R() * 14)) << 7) | Math.floor(R() * 128);
    else out[i] = r < 0.05 ? sign : r < 0.1 ? sign | Math.floor(R() * 1024) : sign | ((3 + Math.floor(R() * 14)) << 10) | Math.floor(R() * 1024);
  }
  return out;
}

function checkMatmul(t: Half, M: number, N: number, K: number, opts: { beta?: 0 | 1; ldx?: number; ldo?: number } = {}): void {
  const beta = opts.beta ?? 0, ldx = opts.ldx ?? K, ldo = opts.ldo ?? N;
  const wq = randomHalves(t, N * K), wf = Float64Array.from(wq, (h) => wide(t, h));
  const xs = Float32Array.from({ length: M * ldx }, () => 4 * R() - 2), o0 = Float32Array.from({ length: M * ldo }, () => 2 * R() - 1);
  const want = new Float64Array(M * ldo), scale = new Float64Array(M * ldo);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
    let s = 0, a = 0;
    for (let k = 0; k < K; k++) { const p = xs[m * ldx + k] * wf[n * K + k]; s += p; a += Math.abs(p); }
    const i = m * ldo + n;
    want[i] = (beta ? o0[i] : 0) + s;
    scale[i] = a + (beta ? Math.abs(o0[i]) : 0);
  }
  const w = putBytes(new Uint8Array(wq.buffer)), x = putF32(xs);
  try {
    for (const mode of MODES) {
      const init0 = beta ? o0 : new Float32Array(M * ldo).fill(5);
      const out = putF32(Float32Array.from(init0));
      run('quant_matmul', [out, x, w, M, N, K, ldx, ldo, beta, ID[t]], M * N * K, mode);
      const got = getF32(out, M * ldo);
      release(out);
      for (let m = 0; m < M; m++) for (let n = 0; n < ldo; n++) {
        const i = m * ldo + n, what = `${t} M${M} N${N} K${K} beta${beta} ${mode}: (${m}, ${n})`;
        if (n >= N) { assert.equal(got[i], init0[i], `${what}: written outside the output`); continue; }
        // f32 accumulation of exact products: a few ulps of Σ|x·w| (K ≤ 300 here)
        assert.ok(Math.abs(got[i] - want[i]) <= 4e-6 * scale[i] + 1e-30, `${what} got ${got[i]} want ${want[i]} (scale ${scale[i]})`);
      }
    }
  } finally { release(w); release(x); }
}

describe('f16 / bf16 quant_matmul on awkward shapes', () => {
  for (const t of TYPES) {
    it(`${t}: M = 1…9 and 17; K = 1, 7, 16, 17, 33, 100, 288; N = 1, 7, 67; accumulate, strided rows`, () => {
      for (let M = 1; M <= 9; M++) for (const K of [1, 7, 16, 17, 33]) checkMatmul(t, M, 7, K);
      for (const M of [1, 2, 3, 9, 17]) for (const N of [1, 67]) checkMatmul(t, M, N, 100);
      for (const M of [1, 4, 17]) checkMatmul(t, M, 13, 45, { beta: 1, ldx: 51, ldo: 20 });
      for (const M of [1, 8, 9]) checkMatmul(t, M, 131, 288);
    });
  }
});

describe('f16 / bf16 quant_matmul: a few rows of x give each row the one-row result bit for bit', () => {
  for (const t of TYPES) {
    it(`${t}: M = 2…8 against M = 1, K = 45 and 300`, () => {
      for (const K of [45, 300]) {
        const N = 11, wq = randomHalves(t, N * K), w = putBytes(new Uint8Array(wq.buffer));
        const xs = Float32Array.from({ length: 8 * K }, () => 4 * R() - 2), x = putF32(xs);
        try {
          const one = new Float32Array(8 * N);
          for (let m = 0; m < 8; m++) {
            const out = putF32(new Float32Array(N));
            run('quant_matmul', [out, x + 4 * m * K, w, 1, N, K, K, N, 0, ID[t]], N * K, 'call');
            one.set(getF32(out, N), m * N);
            release(out);
          }
          for (let M = 2; M <= 8; M++) {
            const out = putF32(new Float32Array(M * N));
            run('quant_matmul', [out, x, w, M, N, K, K, N, 0, ID[t]], M * N * K, 'call');
            const got = getF32(out, M * N);
            release(out);
            for (let i = 0; i < M * N; i++) assert.equal(got[i], one[i], `${t} K${K} M${M}: row ${Math.floor(i / N)} column ${i % N}`);
          }
        } finally { release(w); release(x); }
      }
    });
  }
});

describe('f16 / bf16 tensors in ops', () => {
  for (const t of TYPES) {
    const N = 37, K = 45;
    const wq = randomHalves(t, N * K), wf = Float32Array.from(wq, (h) => wide(t, h));
    const bytes = new Uint8Array(wq.buffer);
    for (const bk of ['ref', 'wasm'] as const) {
      it(`${t} (${bk}): linear, addLinearInPlace and embedding match the f32 weight; no gradient, no data()`, () => withBackend(bk, () => scope(() => {
        const w = T.fromBlocks(bytes, [N, K], t);
        assert.equal(w.dtype, t);
        assert.equal(w.storage.bytes >= 2 * N * K && w.storage.bytes < 4 * N * K, true);
        const wd = T.dequantize(w);
        assert.deepEqual(Array.from(wd.data()), Array.from(wf));
        for (const M of [1, 3, 9]) {
          const x = T.tensor(Array.from({ length: M * K }, () => 2 * R() - 1), [M, K]);
          noGrad(() => checkKeptWeight(w, wd, wf, K, x, 1e-5, `${t} M${M}`));
        }
        assert.throws(() => w.data(), new RegExp(`is a ${t} \\(16-bit\\)`));
        const xg = T.tensor(Array.from({ length: K }, () => 1), [1, K]).requiresGrad_();
        assert.throws(() => T.linear(xg, w), /inference only/);
        assert.throws(() => T.fromBlocks(bytes.subarray(2), [N, K], t), /do not hold/);
      })));
    }
  }
});
