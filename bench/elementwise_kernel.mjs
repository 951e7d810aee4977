// Bandwidth of the wasm elementwise/nn kernels: unary exp, binary add (contiguous), softmax
// over rows of 32000, rmsnorm over rows of 288, at 1M and 4M elements on 1 and 2 threads,
// plus the per-call overhead of a tiny (n = 16) call. GB/s counts the bytes a kernel must
// read and write once (e.g. exp: 4 B in + 4 B out per element), over the best of several runs.
// Run after `npm run build`: node bench/elementwise_kernel.mjs
import { alloc, release, views } from '../dist/src/backend/heap.js';
import { WasmBackend } from '../dist/src/backend/wasm/index.js';

const EXP = 1, ADD = 0; // UnaryOp.EXP, BinaryOp.ADD (const enums are erased in JS)

function fillRandom(p, n, lo, hi) {
  const f = views().f32;
  for (let i = 0; i < n; i++) f[(p >> 2) + i] = lo + (hi - lo) * Math.random();
}

function best(fn, minMs = 300) {
  fn(); // warm-up
  let bestT = Infinity, total = 0, reps = 0;
  while (total < minMs || reps < 5) {
    const t0 = performance.now();
    fn();
    const dt = performance.now() - t0;
    total += dt; reps++;
    if (dt < bestT) bestT = dt;
  }
  return bestT / 1000;
}

const backends = { 1: await WasmBackend.create(1), 2: await WasmBackend.create(2) };
console.log(`kernel module variant: ${backends[1].variant}`);
const rows = [];
for (const n of [1 << 20, 1 << 22]) {
  const a = alloc(n * 4), b = alloc(n * 4), out = alloc(n * 4), w = alloc(32000 * 4), rstd = alloc((n / 288 + 1) * 4);
  fillRandom(a, n, -5, 5); fillRandom(b, n, -5, 5); fillRandom(w, 32000, 0.5, 1.5);
  const meta = alloc(12);
  new Int32Array(views().i32.buffer, meta, 3).set([n, 1, 1]);
  for (const nt of [1, 2]) {
    const be = backends[nt];
    const cases = [
      ['unary exp', 8 * n, () => be.call('unary', [EXP, out, a, n, 0, 0], n)],
      ['binary add', 12 * n, () => be.call('binary', [ADD, out, a, b, 1, meta, n], n)],
      ['softmax 32000', 8 * (Math.floor(n / 32000) * 32000), () => be.call('softmax', [out, a, Math.floor(n / 32000), 32000, 0], n)],
      ['rmsnorm 288', 8 * (Math.floor(n / 288) * 288), () => be.call('rmsnorm', [out, rstd, a, w, Math.floor(n / 288), 288, 1e-5], n)],
    ];
    for (const [name, bytes, fn] of cases) {
      const t = best(fn);
      rows.push({ kernel: name, elements: n, threads: nt, 'GB/s': +(bytes / t / 1e9).toFixed(2), 'ms': +(t * 1e3).toFixed(3) });
    }
  }
  for (const p of [a, b, out, w, rstd, meta]) release(p);
}
console.table(rows);

// Per-call overhead of a tiny call (runs on the calling thread: work < threshold).
const x = alloc(64), y = alloc(64);
fillRandom(x, 16, -1, 1);
for (const nt of [1, 2]) {
  const be = backends[nt];
  const N = 200000;
  for (let i = 0; i < 10000; i++) be.call('unary', [EXP, y, x, 16, 0, 0], 16);
  const t0 = performance.now();
  for (let i = 0; i < N; i++) be.call('unary', [EXP, y, x, 16, 0, 0], 16);
  const us = ((performance.now() - t0) * 1000) / N;
  console.log(`tiny call (unary exp, n=16), backend threads=${nt}: ${us.toFixed(3)} µs/call`);
}
// Overhead of a threaded call (dispatch to the worker and back) on a small threaded job.
{
  const be = backends[2], n = 1 << 16, p = alloc(n * 4), q = alloc(n * 4);
  fillRandom(p, n, -1, 1);
  const t = best(() => { for (let i = 0; i < 100; i++) be.call('unary', [EXP, q, p, n, 0, 0], n); }) / 100;
  const t1 = best(() => { for (let i = 0; i < 100; i++) backends[1].call('unary', [EXP, q, p, n, 0, 0], n); }) / 100;
  console.log(`unary exp n=65536: 1 thread ${(t1 * 1e6).toFixed(1)} µs, 2 threads ${(t * 1e6).toFixed(1)} µs`);
}
await backends[1].dispose();
await backends[2].dispose();
