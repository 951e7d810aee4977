// Measures the quantised decoding kernel (quant_matmul / q8_0_matmul with one row of x, the GEMV
// of a decoding step) on one thread, random blocks:
//   - resident: one 4096 × 768 matrix called again and again (it stays in the caches): GMAC/s
//     by CPU time, best of 5;
//   - streaming: 32 such matrices in turn (57 MB of Q4_0, beyond the caches, as a model's weights
//     are): GB/s of weights read, best of 5.
// Usage (after `npm run build`):
//   node bench/quant_kernel.mjs [--types q4_0,q8_0,q4_k,q6_k] [--root DIR]
//   node bench/quant_kernel.mjs --calls N --types q4_0      (N calls and nothing else: for
//     `valgrind --tool=cachegrind`, whose instruction count for N calls minus that for 1 call,
//     divided by (N − 1) · 4096 · 768, is the kernel's instructions per multiply-add)
// --root DIR runs another checkout's build (an A/B of two builds, alternating runs).
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const argv = process.argv.slice(2);
const arg = (k, d) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : d);
const root = path.resolve(arg('--root', path.join(path.dirname(fileURLToPath(import.meta.url)), '..')));
const { WasmBackend } = await import(pathToFileURL(path.join(root, 'dist/src/backend/wasm/index.js')).href);
const { alloc, H } = await import(pathToFileURL(path.join(root, 'dist/src/backend/heap.js')).href);
const be = await WasmBackend.create(1);

// ggml type id, values per block, bytes per block, offsets of the f16 scales in a block
const TYPES = { q4_0: [2, 32, 18, [0]], q8_0: [8, 32, 34, [0]], q4_k: [12, 256, 144, [0, 2]], q6_k: [14, 256, 210, [208]] };
const N = 4096, K = 768;
let seed = 1;
const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296;

function matrix(type) {
  const [, bs, bb, offs] = TYPES[type];
  const bytes = (N * K / bs) * bb, w = alloc(bytes);
  const dv = new DataView(H.u8.buffer);
  for (let i = 0; i + 4 <= bytes; i += 4) dv.setUint32(w + i, (rnd() * 4294967296) >>> 0, true);
  for (let b = 0; b < bytes / bb; b++) for (const o of offs) dv.setUint16(w + b * bb + o, 0x2c00 - (o ? 0x0c00 : 0), true);
  return { w, bytes };
}
const x = alloc(4 * K), out = alloc(4 * N);
for (let i = 0; i < K; i++) H.f32[(x >> 2) + i] = rnd() - 0.5;
const call = (type, w) => {
  const id = TYPES[type][0];
  if (id === 8) be.call('q8_0_matmul', [out, x, w, 1, N, K, K, N, 0], N * K);
  else be.call('quant_matmul', [out, x, w, 1, N, K, K, N, 0, id], N * K);
};

const types = arg('--types', 'q4_0,q8_0,q4_k,q6_k').split(',');
for (const t of types) if (!TYPES[t]) throw new Error(`--types: unknown type ${t} (expected ${Object.keys(TYPES).join(', ')})`);
const calls = arg('--calls', null);
if (calls !== null) {
  const m = matrix(types[0]);
  for (let i = 0; i < Number(calls); i++) call(types[0], m.w);
} else {
  console.log(`quant GEMV, one thread, ${N}×${K}, ${root}`);
  for (const t of types) {
    const one = matrix(t);
    for (let i = 0; i < 20; i++) call(t, one.w);
    let best = 0;
    for (let r = 0; r < 5; r++) {
      const c0 = process.cpuUsage();
      for (let i = 0; i < 200; i++) call(t, one.w);
      const c = process.cpuUsage(c0);
      best = Math.max(best, (200 * N * K) / ((c.user + c.system) / 1e6) / 1e9);
    }
    const many = Array.from({ length: 32 }, () => matrix(t));
    for (const m of many) call(t, m.w);
    let gbs = 0;
    for (let r = 0; r < 5; r++) {
      const t0 = performance.now();
      for (let k = 0; k < 3; k++) for (const m of many) call(t, m.w);
      gbs = Math.max(gbs, (3 * 32 * one.bytes) / ((performance.now() - t0) / 1e3) / 1e9);
    }
    console.log(`${t.padEnd(5)} resident ${best.toFixed(2).padStart(6)} GMAC/s (CPU time)   streaming ${(32 * one.bytes / 1e6).toFixed(0)} MB ${gbs.toFixed(2).padStart(6)} GB/s`);
  }
}
