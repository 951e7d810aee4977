// Measures the decoding step's attention alone (attention_fwd, one query per head) over an f32 and
// a bf16 KV cache of the 110M shape (12 layers × 12 heads × head dim 64), one thread, S positions
// of context. Between two layers 4 MB of other memory is written, as a step's weights stream
// through the caches. Prints ms per token (all 12 layers) by wall clock and by CPU time, medians of
// 5 alternating rounds of `reps` tokens each.
// Usage (after `npm run build`): node bench/attention_kv.mjs [S=1000] [reps=30]
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const S = Number(process.argv[2] ?? 1000), reps = Number(process.argv[3] ?? 30);
const { init, shutdown } = await import(pathToFileURL(path.join(root, 'dist/src/index.js')).href);
const { alloc, views } = await import(pathToFileURL(path.join(root, 'dist/src/backend/heap.js')).href);
const { backend } = await import(pathToFileURL(path.join(root, 'dist/src/backend/index.js')).href);
await init({ threads: 1 });
const be = backend();
const L = 12, H = 12, hd = 64;
const q = alloc(4 * H * hd), o = alloc(4 * H * hd), lse = alloc(4 * H);
const filled = (bytes) => { const p = alloc(bytes); views().u8.fill(0x3c, p, p + bytes); return p; };
const caches = {
  f32: { half: 0, layers: Array.from({ length: L }, () => [filled(4 * H * S * hd), filled(4 * H * S * hd)]) },
  bf16: { half: 1, layers: Array.from({ length: L }, () => [filled(2 * H * S * hd), filled(2 * H * S * hd)]) },
};
views().f32.fill(0.01, q >>> 2, (q >>> 2) + H * hd);
const other = alloc(4 << 20);
let cpu = 0, wall = 0;
function token({ half, layers }) {
  for (const [k, v] of layers) {
    views().f32.fill(0.5, other >>> 2, (other >>> 2) + (1 << 20));
    const c0 = process.cpuUsage(), w0 = performance.now();
    be.call('attention_fwd', [o, lse, q, k, v, 1, H, H, 1, S, hd, hd, H * hd, hd, hd, H * S * hd, S * hd, hd, H * S * hd, S * hd, hd, 1 / Math.sqrt(hd), 1, half], 1e9);
    const c = process.cpuUsage(c0);
    cpu += c.user + c.system;
    wall += performance.now() - w0;
  }
}
function round(cache) {
  cpu = 0; wall = 0;
  for (let r = 0; r < reps; r++) token(cache);
  return { wall: wall / reps, cpu: cpu / 1000 / reps };
}
round(caches.f32); round(caches.bf16);
const res = { f32: [], bf16: [] };
for (let i = 0; i < 5; i++) for (const k of ['f32', 'bf16']) res[k].push(round(caches[k]));
const med = (a, key) => a.map((x) => x[key]).sort((x, y) => x - y)[2];
const f = (x) => x.toFixed(3);
console.log(`S = ${S}: attention ms per token (12 layers): wall f32 ${f(med(res.f32, 'wall'))}, bf16 ${f(med(res.bf16, 'wall'))} (${(med(res.f32, 'wall') / med(res.bf16, 'wall')).toFixed(2)}×); CPU f32 ${f(med(res.f32, 'cpu'))}, bf16 ${f(med(res.bf16, 'cpu'))}`);
await shutdown();
