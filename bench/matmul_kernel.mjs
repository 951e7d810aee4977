// Measures the wasm sgemm kernel: GFLOP/s per shape on 1 and 2 threads.
// Usage: node bench/matmul_kernel.mjs [--threads 1,2] [--json]   (after `npm run build`)
import { WasmBackend } from '../dist/src/backend/wasm/index.js';
import { alloc, H } from '../dist/src/backend/heap.js';

const argv = process.argv.slice(2);
const tIdx = argv.indexOf('--threads');
const threadList = tIdx >= 0 ? argv[tIdx + 1].split(',').map(Number) : [1, 2];
const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1] : null;
const json = argv.includes('--json');

// [label, M, N, K, transB]  (transB: B stored (N, K) row-major, i.e. sBk = 1, sBn = K)
const shapes = [
  ['256³', 256, 256, 256, false],
  ['512³', 512, 512, 512, false],
  ['1024³', 1024, 1024, 1024, false],
  ['2048³', 2048, 2048, 2048, false],
  ['2048×288·288×768', 2048, 768, 288, false],
  ['2048×768·768×288', 2048, 288, 768, false],
  ['1024³ Bᵀ', 1024, 1024, 1024, true],
  ['gemv 1×288·(768×288)ᵀ', 1, 768, 288, true],
  ['gemv 1×768·(4096×768)ᵀ', 1, 4096, 768, true],
  ['gemv 1×768·(32000×768)ᵀ', 1, 32000, 768, true],
  ['gemv 1×768·768×2048', 1, 2048, 768, false],
  ['4×768·(2048×768)ᵀ', 4, 2048, 768, true],
  ['attn 48×(128×64·64×128)', 128, 128, 64, true, 48],
].filter((s) => !only || s[0].includes(only));

function fill(ptr, n) {
  const f = H.f32, o = ptr >> 2;
  let x = 12345;
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) >>> 0; f[o + i] = (x / 4294967296) - 0.5; }
}

const results = [];
for (const nt of threadList) {
  const be = await WasmBackend.create(nt);
  for (const [label, M, N, K, transB, batch = 1] of shapes) {
    const a = alloc(4 * M * K * batch), b = alloc(4 * K * N * batch), c = alloc(4 * M * N * batch);
    fill(a, M * K * batch); fill(b, K * N * batch);
    const args = [a, b, c, M, N, K, K, 1, transB ? 1 : N, transB ? K : 1, N, batch, M * K, K * N, M * N, 0];
    const work = M * N * K * batch;
    const flops = 2 * work;
    // Warm up (tier-up to optimised code), then time for ~0.4 s.
    for (let i = 0; i < 3; i++) be.call('sgemm', args, work);
    const reps = Math.max(3, Math.min(20000, Math.round(0.4 / Math.max(1e-7, flops / 30e9))));
    let best = Infinity;
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) {
      const s = performance.now();
      be.call('sgemm', args, work);
      const e = performance.now() - s;
      if (e < best) best = e;
    }
    const avg = (performance.now() - t0) / reps;
    const r = { shape: label, threads: nt, gflops_avg: flops / avg / 1e6, gflops_best: flops / best / 1e6, ms_avg: avg };
    results.push(r);
    if (!json) console.log(`${label.padEnd(28)} t=${nt}  ${r.gflops_avg.toFixed(1).padStart(7)} GFLOP/s avg  ${r.gflops_best.toFixed(1).padStart(7)} best  (${avg.toFixed(3)} ms)`);
  }
  if (!only || 'dispatch'.includes(only)) {
    // Round trip of a parallel call that does (almost) nothing: the pool's wake-up cost.
    const a = alloc(64), c = alloc(64);
    const args = [a, a, c, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0];
    for (let i = 0; i < 1000; i++) be.call('sgemm', args, 1 << 20);
    const n = 20000, t0 = performance.now();
    for (let i = 0; i < n; i++) be.call('sgemm', args, 1 << 20);
    const us = ((performance.now() - t0) / n) * 1000;
    results.push({ shape: 'dispatch', threads: nt, us_per_call: us });
    if (!json) console.log(`${'dispatch (empty call)'.padEnd(28)} t=${nt}  ${us.toFixed(2).padStart(7)} µs/call`);
  }
  await be.dispose();
}
if (json) console.log(JSON.stringify(results, null, 2));
