// Matmul throughput (GFLOP/s) of the wasm backend on 1 and all threads, beside numpy/OpenBLAS
// measured in the same run when `python3 -c "import numpy"` works.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import * as T from '../src/index.js';
import { init, noGrad, scope, Generator } from '../src/index.js';
import { defaultThreads } from '../src/backend/wasm/index.js';
import { timeBest } from './timing.js';

export interface MatmulShape { m: number; n: number; k: number; transB: boolean; label: string }
export interface MatmulRow { m: number; n: number; k: number; transB: boolean; threads: number; gflops: number; peer_gflops: number | null }

export const MATMUL_SHAPES: MatmulShape[] = [
  ...[256, 512, 1024, 2048].map((s) => ({ m: s, n: s, k: s, transB: false, label: `${s}³` })),
  { m: 2048, n: 768, k: 288, transB: false, label: '2048×288·288×768' },
  { m: 2048, n: 288, k: 768, transB: false, label: '2048×768·768×288' },
  { m: 1, n: 768, k: 288, transB: true, label: 'decode 1×288·(768×288)ᵀ' },
  { m: 1, n: 32000, k: 288, transB: true, label: 'decode 1×288·(32000×288)ᵀ' },
];


export function oursGflops(s: MatmulShape, minSeconds: number): number {
  const g = new Generator(0);
  return scope(() => noGrad(() => {
    const a = T.randn([s.m, s.k], { generator: g });
    const b = s.transB ? T.transpose(T.randn([s.n, s.k], { generator: g })) : T.randn([s.k, s.n], { generator: g });
    const sec = timeBest(() => scope(() => { T.matmul(a, b); }), minSeconds);
    return (2 * s.m * s.n * s.k) / sec / 1e9;
  }));
}

const peerScript = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'peers', 'numpy_matmul.py');

/** numpy GFLOP/s per shape at the given thread count, or null when numpy is not installed. */
export function numpyGflops(shapes: MatmulShape[], threads: number, minSeconds: number): { blas: string | null; gflops: number[] } | null {
  const probe = spawnSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' });
  if (probe.status !== 0) return null;
  const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
  // These pin OpenBLAS to an older kernel on some machines; unset for the measurement only.
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const r = spawnSync('python3', [peerScript, JSON.stringify(shapes.map((s) => [s.m, s.n, s.k, s.transB])), String(minSeconds)], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`numpy peer failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as { blas: string | null; rows: { gflops: number }[] };
  return { blas: out.blas, gflops: out.rows.map((x) => x.gflops) };
}

export async function benchMatmul(opts: { threads?: number[]; minSeconds?: number; shapes?: MatmulShape[]; log?: (s: string) => void } = {}): Promise<{ rows: MatmulRow[]; blas: string | null }> {
  const all = defaultThreads();
  const threadCounts = opts.threads ?? [...new Set([1, all])];
  const shapes = opts.shapes ?? MATMUL_SHAPES;
  const minSeconds = opts.minSeconds ?? 0.5;
  const rows: MatmulRow[] = [];
  let blas: string | null = null;
  for (const th of threadCounts) {
    await init({ threads: th, backend: 'wasm' });
    const peer = numpyGflops(shapes, th, minSeconds);
    if (peer) blas = peer.blas;
    shapes.forEach((s, i) => {
      const gflops = oursGflops(s, minSeconds);
      const row = { m: s.m, n: s.n, k: s.k, transB: s.transB, threads: th, gflops, peer_gflops: peer ? peer.gflops[i] : null };
      rows.push(row);
      opts.log?.(formatRow(s.label, row));
    });
  }
  return { rows, blas };
}

export function formatRow(label: string, r: MatmulRow): string {
  const ratio = r.peer_gflops ? (r.gflops / r.peer_gflops).toFixed(2) : '-';
  return `${label.padEnd(28)} ${String(r.threads).padStart(7)} ${r.gflops.toFixed(1).padStart(12)} ${(r.peer_gflops?.toFixed(1) ?? '-').padStart(14)} ${ratio.padStart(7)}`;
}
export const MATMUL_HEADER = `${'shape (M×K·K×N)'.padEnd(28)} ${'threads'.padStart(7)} ${'tslm GFLOP/s'.padStart(12)} ${'numpy GFLOP/s'.padStart(14)} ${'ratio'.padStart(7)}`;
