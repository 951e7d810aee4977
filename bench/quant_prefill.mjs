// Measures a prefill's quantised matmul (quant_matmul / q8_0_matmul with M rows of x) on one
// thread, random blocks, one weight matrix called again and again: GMAC/s by CPU time, best of 5.
// Every type but Q8_0 takes the integer GEMM for M ≥ 9 (Q4_0, Q4_1, Q5_0, Q4_K, Q5_K, Q6_K); Q8_0 the dequantise-then-f32-GEMM panel path.
// Usage (after `npm run build`):
//   node bench/quant_prefill.mjs [--types q4_0,q4_k,q8_0,q6_k,q5_k,q5_0,q4_1] [--shapes 97x2048x768,256x768x2048] [--root DIR]
// --root DIR runs another checkout's build (an A/B of two builds, alternating runs).
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const argv = process.argv.slice(2);
const arg = (k, d) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : d);
const root = path.resolve(arg('--root', path.join(path.dirname(fileURLToPath(import.meta.url)), '..')));
const { WasmBackend } = await import(pathToFileURL(path.join(root, 'dist/src/backend/wasm/index.js')).href);
const { alloc, release, H } = await import(pathToFileURL(path.join(root, 'dist/src/backend/heap.js')).href);
const be = await WasmBackend.create(1);

// ggml type id, values per block, bytes per block, offsets of the f16 scales in a block and their values
const TYPES = { q4_0: [2, 32, 18, [[0, 0x2c00]]], q8_0: [8, 32, 34, [[0, 0x2c00]]], q4_k: [12, 256, 144, [[0, 0x2c00], [2, 0x2000]]],
  q5_k: [13, 256, 176, [[0, 0x2c00], [2, 0x2000]]], q6_k: [14, 256, 210, [[208, 0x2000]]], q5_0: [6, 32, 22, [[0, 0x2c00]]], q4_1: [3, 32, 20, [[0, 0x2c00], [2, 0x2000]]] };
const types = arg('--types', 'q4_0,q4_k,q8_0').split(',');
for (const t of types) if (!TYPES[t]) throw new Error(`--types: unknown type ${t} (expected ${Object.keys(TYPES).join(', ')})`);
const shapes = arg('--shapes', '97x2048x768,256x768x2048').split(',').map((s) => s.split('x').map(Number));
let seed = 1;
const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296;

console.log(`quantised prefill matmul, one thread, CPU time, best of 5, ${root}`);
for (const t of types) {
  const [id, bs, bb, scales] = TYPES[t];
  for (const [M, N, K] of shapes) {
    const bytes = (N * K / bs) * bb, w = alloc(bytes);
    const dv = new DataView(H.u8.buffer);
    for (let i = 0; i + 4 <= bytes; i += 4) dv.setUint32(w + i, (rnd() * 4294967296) >>> 0, true);
    for (let b = 0; b < bytes / bb; b++) for (const [o, v] of scales) dv.setUint16(w + b * bb + o, v, true);
    const x = alloc(4 * M * K), out = alloc(4 * M * N);
    for (let i = 0; i < M * K; i++) H.f32[(x >> 2) + i] = rnd() - 0.5;
    const call = () => (id === 8 ? be.call('q8_0_matmul', [out, x, w, M, N, K, K, N, 0], M * N * K) : be.call('quant_matmul', [out, x, w, M, N, K, K, N, 0, id], M * N * K));
    for (let i = 0; i < 3; i++) call();
    let best = 0;
    for (let r = 0; r < 5; r++) {
      const c0 = process.cpuUsage();
      for (let i = 0; i < 5; i++) call();
      const c = process.cpuUsage(c0);
      best = Math.max(best, (5 * M * N * K) / ((c.user + c.system) / 1e6) / 1e9);
    }
    console.log(`${t.padEnd(5)} ${`${M}×${N}×${K}`.padEnd(14)} ${best.toFixed(1).padStart(6)} GMAC/s`);
    release(w); release(x); release(out);
  }
}
process.exit(0);
