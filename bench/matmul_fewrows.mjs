// The f32 sgemm kernel on a stories15M-shape model's matrices in model order (6 layers' q, k,
// v, o, gate, up, down, then the 2,048-row classifier: 26 MB, streamed from L3 as a decoding step
// streams them), for 1 row (a decoding step's GEMV) and a few rows (speculative verification):
// best of --reps rounds in which every row count takes its turn; ms and × the 1-row time.
// To compare two builds of the kernels, run it with each (e.g. alternating processes).
//
//   node bench/matmul_fewrows.mjs [--rows 1,2,4,5,8] [--reps 40] [--threads 1]   (after `npm run build`)
import { parseArgs } from 'node:util';
import { WasmBackend } from '../dist/src/backend/wasm/index.js';
import { alloc, H } from '../dist/src/backend/heap.js';

const { values } = parseArgs({ options: { rows: { type: 'string' }, reps: { type: 'string' }, threads: { type: 'string' } } });
const Ms = (values.rows ?? '1,2,3,4,5,6,7,8').split(',').map(Number);
const reps = Number(values.reps ?? 40), threads = Number(values.threads ?? 1);
if (!Ms.includes(1)) Ms.unshift(1);
const be = await WasmBackend.create(threads);
const shapes = [];
for (let l = 0; l < 6; l++) shapes.push([288, 288], [288, 288], [288, 288], [288, 288], [768, 288], [768, 288], [288, 768]);
shapes.push([2048, 288]);
let seed = 12345;
const fill = (p, n) => { const f = H.f32, o = p >> 2; for (let i = 0; i < n; i++) { seed = (seed * 1103515245 + 12345) >>> 0; f[o + i] = seed / 4294967296 - 0.5; } };
const W = shapes.map(([N, K]) => { const p = alloc(N * K * 4); fill(p, N * K); return p; });
const maxM = Math.max(...Ms);
const A = alloc(maxM * 768 * 4), C = alloc(maxM * 2048 * 4);
fill(A, maxM * 768);
const run = (M) => {
  for (let i = 0; i < shapes.length; i++) {
    const [N, K] = shapes[i];
    be.call('sgemm', [A, W[i], C, M, N, K, K, 1, 1, K, N, 1, M * K, N * K, M * N, 0], M * N * K);
  }
};
const best = new Map();
for (let r = 0; r < reps; r++) {
  for (const M of Ms) {
    const t = performance.now();
    run(M);
    const e = performance.now() - t;
    best.set(M, Math.min(best.get(M) ?? Infinity, e));
  }
}
const g = best.get(1);
console.log(`${threads} thread(s), best of ${reps}: ` + Ms.map((M) => `${M} row${M > 1 ? 's' : ''} ${best.get(M).toFixed(3)} ms (${(best.get(M) / g).toFixed(2)}×)`).join('  '));
await be.dispose();
