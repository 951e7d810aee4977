// The wasm sgemm kernel against the reference over awkward shapes, transposes, strided and
// batched (incl. broadcast) operands, beta 0/1, on 1 and 2 threads; also checks that nothing
// outside C is written.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { WasmBackend } from '../../src/backend/wasm/index.js';
import { refBackend } from '../../src/backend/ref/index.js';
import { alloc, release, H } from '../../src/backend/heap.js';
import { kernelExports } from './kernel_harness.js';
import type { Backend as FullBackend } from '../../src/backend/kernels.js';
/** What these checks use of a backend (kernel stubs run shares on this thread). */
type Backend = Pick<FullBackend, 'name' | 'threads' | 'call'>;

const SIZES = [1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 32, 33, 64, 65, 127, 129, 300];
const GUARD = 16; // floats of guard before and after C
const SENTINEL = -7777.25;

let seed = 0x9e3779b9;
function rand(): number {
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed / 4294967296;
}
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];

interface Case {
  M: number; N: number; K: number; transA: boolean; transB: boolean;
  batch: number; bcastA: boolean; bcastB: boolean; beta: 0 | 1; padA: number; padB: number; padC: number;
}

function describe(c: Case): string {
  return `M=${c.M} N=${c.N} K=${c.K} tA=${c.transA} tB=${c.transB} batch=${c.batch}${c.bcastA ? ' bcastA' : ''}${c.bcastB ? ' bcastB' : ''} beta=${c.beta} pad=${c.padA},${c.padB},${c.padC}`;
}

/** Run one case on `be` and on the reference; returns the max scaled error. Asserts guards. */
function check(be: Backend, c: Case, forceParallel: boolean): void {
  const { M, N, K, batch } = c;
  // A: (M, K) row-major with row stride lda, or stored transposed (K, M) with row stride lda.
  const lda = (c.transA ? M : K) + c.padA;
  const aRows = c.transA ? K : M;
  const sAm = c.transA ? 1 : lda, sAk = c.transA ? lda : 1;
  const ldb = (c.transB ? K : N) + c.padB;
  const bRows = c.transB ? N : K;
  const sBk = c.transB ? 1 : ldb, sBn = c.transB ? ldb : 1;
  const ldc = N + c.padC;
  const aMat = aRows * lda, bMat = bRows * ldb, cMat = M * ldc + c.padC;
  const sAb = c.bcastA ? 0 : aMat, sBb = c.bcastB ? 0 : bMat, sCb = cMat;
  const aLen = c.bcastA ? aMat : aMat * batch, bLen = c.bcastB ? bMat : bMat * batch, cLen = cMat * batch;
  const a = alloc(4 * aLen), b = alloc(4 * bLen);
  const cw = alloc(4 * (cLen + 2 * GUARD)), cr = alloc(4 * (cLen + 2 * GUARD));
  const f = H.f32;
  for (let i = 0; i < aLen; i++) f[(a >>> 2) + i] = rand() * 2 - 1;
  for (let i = 0; i < bLen; i++) f[(b >>> 2) + i] = rand() * 2 - 1;
  // C: sentinel everywhere (guards, row padding); the logical region gets values (beta = 1)
  // or NaN (beta = 0: the kernel must overwrite without reading).
  const cw0 = (cw >>> 2) + GUARD, cr0 = (cr >>> 2) + GUARD;
  f.fill(SENTINEL, cw >>> 2, (cw >>> 2) + cLen + 2 * GUARD);
  const inC = (i: number): boolean => { const r = i % cMat; return Math.floor(r / ldc) < M && r % ldc < N; };
  for (let i = 0; i < cLen; i++) if (inC(i)) f[cw0 + i] = c.beta ? rand() * 2 - 1 : NaN;
  f.copyWithin(cr >>> 2, cw >>> 2, (cw >>> 2) + cLen + 2 * GUARD);
  const args = (cp: number) => [a, b, cp + 4 * GUARD, M, N, K, sAm, sAk, sBk, sBn, ldc, batch, sAb, sBb, sCb, c.beta];
  be.call('sgemm', args(cw), forceParallel ? 1 << 30 : M * N * K * batch);
  refBackend.call('sgemm', args(cr), 0);
  const g = H.f32;
  const tol = 1e-4 * Math.sqrt(Math.max(1, K));
  for (let i = -GUARD; i < cLen + GUARD; i++) {
    const w = g[cw0 + i], r = g[cr0 + i];
    if (i < 0 || i >= cLen || !inC(i)) {
      if (w !== SENTINEL) assert.fail(`${describe(c)}: wrote outside C at element ${i} (${w})`);
      continue;
    }
    if (!(Math.abs(w - r) <= tol * Math.max(1, Math.abs(r)))) {
      const bt = Math.floor(i / cMat), rr = i % cMat;
      assert.fail(`${describe(c)}: C[${bt}][${Math.floor(rr / ldc)},${rr % ldc}] = ${w}, expected ${r}`);
    }
  }
  release(a); release(b); release(cw); release(cr);
}

function cases(): Case[] {
  const out: Case[] = [];
  const base = (M: number, N: number, K: number, transA: boolean, transB: boolean): Case => ({
    M, N, K, transA, transB, batch: 1, bcastA: false, bcastB: false, beta: 0, padA: 0, padB: 0, padC: 0,
  });
  // Every size in every dimension, the others random (kept small enough for the reference).
  const small = SIZES.filter((s) => s <= 65);
  for (const s of SIZES) {
    for (let d = 0; d < 3; d++) {
      const dims = [pick(small), pick(SIZES), pick(small)];
      dims[d] = s;
      const [M, N, K] = dims;
      out.push({ ...base(M, N, K, rand() < 0.5, rand() < 0.5), beta: rand() < 0.5 ? 1 : 0 });
    }
  }
  // All transpose combinations on a few shapes, with padding and beta.
  for (const [M, N, K] of [[1, 300, 129], [2, 65, 300], [4, 33, 17], [17, 31, 33], [64, 64, 64], [129, 127, 65], [300, 7, 31], [6, 8, 300]]) {
    for (const transA of [false, true]) for (const transB of [false, true]) {
      out.push(base(M, N, K, transA, transB));
      out.push({ ...base(M, N, K, transA, transB), beta: 1, padA: 3, padB: 5, padC: 7 });
    }
  }
  // Batched, with and without broadcast batch strides (attention-like shapes).
  for (const [M, N, K] of [[1, 33, 16], [3, 17, 8], [7, 7, 32], [17, 16, 33], [32, 65, 15], [65, 33, 64]]) {
    for (const [bcastA, bcastB] of [[false, false], [true, false], [false, true]]) {
      out.push({ ...base(M, N, K, rand() < 0.5, rand() < 0.5), batch: 3, bcastA, bcastB, beta: rand() < 0.5 ? 1 : 0, padC: rand() < 0.5 ? 2 : 0, padA: 1 });
    }
  }
  // Random mixes of everything, kept cheap for the reference.
  for (let i = 0; i < 150; i++) {
    const M = pick(SIZES), N = pick(SIZES), K = pick(SIZES), batch = pick([1, 1, 2, 4]);
    if (M * N * K * batch > 2e6) { i--; continue; }
    out.push({
      M, N, K, transA: rand() < 0.5, transB: rand() < 0.5, batch, bcastA: batch > 1 && rand() < 0.3, bcastB: batch > 1 && rand() < 0.3,
      beta: rand() < 0.5 ? 1 : 0, padA: pick([0, 0, 1, 4]), padB: pick([0, 0, 3]), padC: pick([0, 0, 1, 8]),
    });
  }
  // Edge: K = 0.
  out.push(base(5, 9, 0, false, false));
  out.push({ ...base(5, 9, 0, false, false), beta: 1 });
  return out;
}

const be1 = await WasmBackend.create(1);
const be2 = await WasmBackend.create(2);
after(async () => { await be1.dispose(); await be2.dispose(); });

const ALL = cases();

test('wasm sgemm matches ref on 1 thread', () => {
  for (const c of ALL) check(be1, c, false);
});

test('wasm sgemm matches ref on 2 threads (forced parallel split)', () => {
  for (const c of ALL) check(be2, c, true);
});

test('wasm sgemm gives bitwise the same result on 1 and 2 threads', () => {
  // Every element is summed in the same order whatever the split, so training runs reproduce.
  for (const [M, N, K, tB] of [[1, 300, 129, 1], [3, 65, 300, 0], [129, 127, 65, 1], [300, 33, 17, 0], [13, 300, 31, 0]]) {
    const a = alloc(4 * M * K), b = alloc(4 * K * N), c1 = alloc(4 * M * N), c2 = alloc(4 * M * N);
    const f = H.f32;
    for (let i = 0; i < M * K; i++) f[(a >>> 2) + i] = rand() * 2 - 1;
    for (let i = 0; i < K * N; i++) f[(b >>> 2) + i] = rand() * 2 - 1;
    const args = (c: number) => [a, b, c, M, N, K, K, 1, tB ? 1 : N, tB ? K : 1, N, 1, 0, 0, 0, 0];
    be1.call('sgemm', args(c1), 0);
    be2.call('sgemm', args(c2), 1 << 30);
    const g = H.f32;
    for (let i = 0; i < M * N; i++) assert.equal(g[(c2 >>> 2) + i], g[(c1 >>> 2) + i], `M=${M} N=${N} K=${K}: element ${i}`);
    release(a); release(b); release(c1); release(c2);
  }
});

test('plain-SIMD build (no relaxed SIMD) matches ref too', () => {
  const exp = kernelExports('simd');
  const simd: Backend = { name: 'wasm', threads: 1, call: (_k, args) => exp.sgemm(...args, 0, 1) };
  for (const c of ALL.filter((_, i) => i % 3 === 0)) check(simd, c, false);
});

test('wasm sgemm: GEMV path (M = 1, weight rows contiguous) on awkward K and N, any thread count', () => {
  // x (1, K) · Wᵀ with W (N, K) row-major: the decode-step shape, served by gemvRows (one row
  // at a time, 16-float main loop, 4-float and scalar tails). Also run share by share with
  // nt = 3 and 7 on this thread, so the shares must cover C exactly once for any count.
  const exp = kernelExports('relaxed');
  const shares = (nt: number): Backend => ({ name: 'wasm', threads: nt, call: (_k, args) => { for (let t = 0; t < nt; t++) exp.sgemm(...args, t, nt); } });
  const gemv: Case[] = [];
  for (const K of [1, 3, 4, 5, 15, 16, 17, 20, 31, 32, 33, 63, 64, 65, 127, 288, 300, 771]) {
    for (const N of [1, 2, 3, 4, 5, 7, 8, 33, 301]) {
      gemv.push({ M: 1, N, K, transA: false, transB: true, batch: 1, bcastA: false, bcastB: false, beta: rand() < 0.5 ? 1 : 0, padA: 0, padB: pick([0, 0, 3]), padC: pick([0, 2]) });
    }
  }
  for (const batch of [2, 3]) {
    for (const [bcastA, bcastB] of [[false, false], [true, false], [false, true]]) {
      gemv.push({ M: 1, N: pick([5, 9, 64]), K: pick([17, 96, 288]), transA: false, transB: true, batch, bcastA, bcastB, beta: rand() < 0.5 ? 1 : 0, padA: 1, padB: 1, padC: 3 });
    }
  }
  for (const c of gemv) {
    check(be1, c, false);
    check(be2, c, true);
    check(shares(3), c, false);
    check(shares(7), c, false);
  }
});

test('wasm sgemm: 2–8 rows against contiguous weight rows (batched decoding) on awkward K and N, any thread count', () => {
  // A (M, K) · Wᵀ with W (N, K) row-major and 1 < M ≤ 8: gemmFewRows for M < 8 (blocks of 3 and
  // 2 rows in two passes, a last single row, 16-float main loop, 4-float and scalar tails),
  // gemmRowsSmallM for 8 (pairs of weight rows, 4×2 register blocks, an odd last weight row).
  // Share by share with nt = 3 and 7 too.
  const exp = kernelExports('relaxed');
  const shares = (nt: number): Backend => ({ name: 'wasm', threads: nt, call: (_k, args) => { for (let t = 0; t < nt; t++) exp.sgemm(...args, t, nt); } });
  const cases: Case[] = [];
  for (const M of [2, 3, 4, 5, 6, 7, 8]) {
    for (const K of [1, 3, 4, 5, 7, 8, 9, 12, 33, 288, 301]) {
      for (const N of [1, 2, 3, 7, 64]) {
        cases.push({ M, N, K, transA: false, transB: true, batch: 1, bcastA: false, bcastB: false, beta: rand() < 0.5 ? 1 : 0, padA: pick([0, 0, 2]), padB: pick([0, 3]), padC: pick([0, 2]) });
      }
    }
  }
  for (const batch of [2, 3]) cases.push({ M: pick([2, 3, 5, 8]), N: pick([5, 9]), K: pick([17, 96]), transA: false, transB: true, batch, bcastA: false, bcastB: rand() < 0.5, beta: 0, padA: 1, padB: 1, padC: 3 });
  for (const c of cases) {
    check(be1, c, false);
    check(be2, c, true);
    check(shares(3), c, false);
    check(shares(7), c, false);
  }
});

test('wasm sgemm: 2–7 rows against weight rows give each row exactly what one row alone (a decoding step) gives', () => {
  // Speculative verification feeds T tokens where plain decoding feeds one: with gemmFewRows
  // every row of the T-row product equals, bit for bit, the M = 1 product (gemvRows) of that row.
  for (const [M, N, K] of [[2, 7, 288], [3, 5, 301], [4, 33, 17], [5, 9, 768], [6, 3, 64], [7, 4, 771], [5, 64, 12], [3, 2, 3]] as const) {
    const f = H.f32;
    const a = alloc(4 * M * K), b = alloc(4 * N * K), c = alloc(4 * M * N), c1 = alloc(4 * N);
    for (let i = 0; i < M * K; i++) f[(a >>> 2) + i] = rand() * 2 - 1;
    for (let i = 0; i < N * K; i++) f[(b >>> 2) + i] = rand() * 2 - 1;
    for (const be of [be1, be2]) {
      be.call('sgemm', [a, b, c, M, N, K, K, 1, 1, K, N, 1, M * K, N * K, M * N, 0], M * N * K);
      for (let m = 0; m < M; m++) {
        be.call('sgemm', [a + 4 * m * K, b, c1, 1, N, K, K, 1, 1, K, N, 1, K, N * K, N, 0], N * K);
        const many = Array.from(f.subarray((c >>> 2) + m * N, (c >>> 2) + (m + 1) * N));
        const one = Array.from(f.subarray(c1 >>> 2, (c1 >>> 2) + N));
        assert.deepEqual(many, one, `M=${M} N=${N} K=${K} row ${m} on ${be.threads} thread(s)`);
      }
    }
    for (const p of [a, b, c, c1]) release(p);
  }
});

test('wasm sgemm: 2–7 rows with strided rows of A, batches and beta = 1 still give each row what one row alone gives', () => {
  // gemmFewRows copies rows of A into scratch (blocks of 4 and 2, again for each matrix of a
  // batch): rows that are not contiguous with each other, a second matrix whose rows differ,
  // and accumulation into C must all keep each element exactly the one-row product's.
  for (const [M, N, K, pad, batch, beta] of [[4, 9, 288, 5, 2, 0], [5, 6, 67, 3, 2, 1], [6, 7, 300, 1, 3, 0], [7, 5, 64, 8, 2, 1], [2, 11, 771, 2, 2, 1], [4, 3, 3, 1, 1, 1], [6, 4, 18, 0, 2, 0]] as const) {
    const f = H.f32;
    const lda = K + pad;
    const a = alloc(4 * batch * M * lda), b = alloc(4 * batch * N * K), c = alloc(4 * batch * M * N), c1 = alloc(4 * N);
    for (let i = 0; i < batch * M * lda; i++) f[(a >>> 2) + i] = rand() * 2 - 1;
    for (let i = 0; i < batch * N * K; i++) f[(b >>> 2) + i] = rand() * 2 - 1;
    const init = Array.from({ length: batch * M * N }, () => rand() * 2 - 1);
    for (const be of [be1, be2]) {
      f.set(init, c >>> 2);
      be.call('sgemm', [a, b, c, M, N, K, lda, 1, 1, K, N, batch, M * lda, N * K, M * N, beta], batch * M * N * K);
      for (let bt = 0; bt < batch; bt++) {
        for (let m = 0; m < M; m++) {
          f.set(init.slice((bt * M + m) * N, (bt * M + m + 1) * N), c1 >>> 2);
          be.call('sgemm', [a + 4 * (bt * M * lda + m * lda), b + 4 * bt * N * K, c1, 1, N, K, K, 1, 1, K, N, 1, K, N * K, N, beta], N * K);
          const many = Array.from(f.subarray((c >>> 2) + (bt * M + m) * N, (c >>> 2) + (bt * M + m + 1) * N));
          const one = Array.from(f.subarray(c1 >>> 2, (c1 >>> 2) + N));
          assert.deepEqual(many, one, `M=${M} N=${N} K=${K} lda=${lda} batch ${bt} row ${m} beta=${beta} on ${be.threads} thread(s)`);
        }
      }
    }
    for (const p of [a, b, c, c1]) release(p);
  }
});

test('wasm sgemm: large blocked shapes cross the KC/MC/NC block edges', () => {
  const big: Case[] = [
    { M: 257, N: 2100, K: 260, transA: false, transB: false, batch: 1, bcastA: false, bcastB: false, beta: 1, padA: 1, padB: 0, padC: 3 },
    { M: 131, N: 70, K: 520, transA: true, transB: true, batch: 2, bcastA: false, bcastB: true, beta: 0, padA: 0, padB: 2, padC: 0 },
  ];
  for (const c of big) { check(be1, c, false); check(be2, c, true); }
});
