// Elementwise/reduction throughput (GB/s of memory traffic) and per-op overhead on small
// tensors, beside numpy in the same run when it is installed.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import * as T from '../src/index.js';
import { init, noGrad, scope, Generator } from '../src/index.js';
import { defaultThreads } from '../src/backend/wasm/index.js';
import { timeBest } from './timing.js';

export interface OpsRow { op: string; unit: string; threads: number; tslm: number; numpy: number | null }


const peerScript = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'peers', 'numpy_ops.py');
function numpyOps(n: number, threads: number, minSeconds: number): Record<string, number> | null {
  if (spawnSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' }).status !== 0) return null;
  const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads) };
  const r = spawnSync('python3', [peerScript, String(n), String(minSeconds)], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`numpy peer failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

export async function benchOps(opts: { n?: number; minSeconds?: number; threads?: number[]; log?: (r: OpsRow) => void } = {}): Promise<OpsRow[]> {
  const n = opts.n ?? 1 << 22, minSeconds = opts.minSeconds ?? 0.3;
  const rows: OpsRow[] = [];
  const threadCounts = opts.threads ?? [...new Set([1, defaultThreads()])];
  for (const th of threadCounts) {
    await init({ threads: th, backend: 'wasm' });
    // numpy elementwise ops are single-threaded whatever the thread count.
    const peer = numpyOps(n, th, minSeconds);
    const g = new Generator(0);
    scope(() => noGrad(() => {
      const a = T.randn([n], { generator: g }), b = T.randn([n], { generator: g });
      const s16a = T.randn([16], { generator: g }), s16b = T.randn([16], { generator: g });
      const logits = T.randn([64, 32000], { generator: g });
      const x288 = T.randn([256, 288], { generator: g }), w288 = T.ones([288]);
      const add = (x: number) => rows.push({ op: 'add', unit: 'GB/s', threads: th, tslm: x, numpy: peer?.add_gbs ?? null });
      add((12 * n) / timeBest(() => scope(() => { T.add(a, b); }), minSeconds) / 1e9);
      rows.push({ op: 'exp', unit: 'GB/s', threads: th, tslm: (8 * n) / timeBest(() => scope(() => { T.exp(a); }), minSeconds) / 1e9, numpy: peer?.exp_gbs ?? null });
      rows.push({ op: 'sum', unit: 'GB/s', threads: th, tslm: (4 * n) / timeBest(() => scope(() => { T.sum(a); }), minSeconds) / 1e9, numpy: peer?.sum_gbs ?? null });
      rows.push({ op: 'softmax 64×32000', unit: 'GB/s', threads: th, tslm: (8 * logits.size) / timeBest(() => scope(() => { T.softmax(logits); }), minSeconds) / 1e9, numpy: null });
      rows.push({ op: 'rmsNorm 256×288', unit: 'GB/s', threads: th, tslm: (8 * x288.size) / timeBest(() => scope(() => { T.rmsNorm(x288, w288); }), minSeconds) / 1e9, numpy: null });
      const reps = 10000;
      const small = timeBest(() => scope(() => { for (let i = 0; i < reps; i++) T.add(s16a, s16b); }), minSeconds);
      rows.push({ op: 'add of 16 elements (per-op overhead)', unit: 'µs/op', threads: th, tslm: (small / reps) * 1e6, numpy: peer?.small_add_us ?? null });
    }));
    for (const r of rows.filter((x) => x.threads === th)) opts.log?.(r);
  }
  return rows;
}

export function formatOpsRow(r: OpsRow): string {
  return `${r.op.padEnd(38)} ${String(r.threads).padStart(7)} ${r.tslm.toFixed(r.unit === 'µs/op' ? 2 : 1).padStart(10)} ${(r.numpy?.toFixed(r.unit === 'µs/op' ? 2 : 1) ?? '-').padStart(10)} ${r.unit}`;
}
export const OPS_HEADER = `${'op'.padEnd(38)} ${'threads'.padStart(7)} ${'tslm'.padStart(10)} ${'numpy'.padStart(10)} unit`;
