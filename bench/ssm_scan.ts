// State-space-model kernels beside PyTorch: Mamba's selective scan forward + backward (every
// gradient; Mamba's settings: deltaSoftplus, deltaBias, D, z) on two training shapes, and the
// causal depthwise conv1d forward + backward (Mamba's K = 4, and S4D's long K = L).
//
// The peer (bench/peers/torch_scan.py, Debian's /usr/bin/python3 with torch, measured in the same
// run with torch.set_num_threads(threads)) is the sequential reference scan a port starts from
// (a Python loop over time with autograd, as mamba_ssm's selective_scan_ref) and F.conv1d with
// groups = C. Both sides report the best of repeated runs after a warm-up; tslm also reports
// the process CPU time of its best run. The peer is skipped with a note when torch is absent.
//
//   node dist/bench/ssm_scan.js [--threads N] [--seconds S] [--json]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import path from 'node:path';
import { init, shutdown } from '../src/backend/index.js';
import { Tensor } from '../src/tensor/tensor.js';
import { tensor } from '../src/tensor/ops.js';
import { scope, unscoped } from '../src/tensor/storage.js';
import { Generator } from '../src/tensor/random.js';
import { causalConv1d, selectiveScan } from '../src/tensor/ssm.js';

const PYTHON = '/usr/bin/python3';
const here = path.dirname(fileURLToPath(import.meta.url));
const peerScript = path.resolve(here, '..', '..', 'bench', 'peers', 'torch_scan.py');

export interface ScanShape { batch: number; length: number; d_inner: number; d_state: number }
export interface ConvShape { batch: number; length: number; channels: number; kernel: number }

/** Mamba training shapes: a small model's d_inner 576 (batch 8 × 256), and mamba-130m's 1536 (2 × 512). */
export const SCAN_SHAPES: ScanShape[] = [
  { batch: 8, length: 256, d_inner: 576, d_state: 16 },
  { batch: 2, length: 512, d_inner: 1536, d_state: 16 },
];
/** Mamba's conv1d (K = 4) and an S4D long convolution (K = L). */
export const CONV_SHAPES: ConvShape[] = [
  { batch: 8, length: 256, channels: 576, kernel: 4 },
  { batch: 4, length: 512, channels: 256, kernel: 512 },
];

export interface Row {
  op: 'selective_scan' | 'causal_conv1d';
  /** e.g. "Bt 8 × L 256 × Din 576 × N 16". */
  shape: string;
  threads: number;
  /** Forward + backward, best run, milliseconds. */
  tslm_ms: number;
  /** CPU time of tslm's process (all threads) over that run. */
  tslm_cpu_ms: number;
  torch_ms: number | null;
  torch_cpu_ms: number | null;
  /** PyTorch on one thread (run too when `threads` > 1: on this machine it is often faster than on more). */
  torch_1t_ms: number | null;
  /** PyTorch's faster setting / tslm_ms (≥ 3 is the goal for the scan on 2 threads). */
  speedup: number | null;
  /** torch_cpu_ms / tslm_cpu_ms: the same ratio in CPU time, steadier when other jobs share the cores. */
  cpu_ratio: number | null;
  /** 1-minute load average before the row: above `threads`, other work shared the cores. */
  load_avg: number;
  note?: string;
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Best wall time of fn (after a warm-up) over at least 3 runs and minSeconds, with its CPU time. */
function best(fn: () => void, minSeconds: number): { ms: number; cpu: number } {
  fn();
  let ms = Infinity, cpu = Infinity, reps = 0;
  const start = performance.now();
  while (reps < 3 || performance.now() - start < minSeconds * 1000) {
    const t0 = performance.now(), c0 = cpuMs();
    fn();
    const dt = performance.now() - t0;
    if (dt < ms) { ms = dt; cpu = cpuMs() - c0; }
    reps++;
  }
  return { ms, cpu };
}

function rand(shape: number[], g: Generator, lo = -1, hi = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = lo + (hi - lo) * g.uniform();
  return unscoped(() => tensor(d, shape));
}

function timeScan(s: ScanShape, minSeconds: number): { ms: number; cpu: number } {
  const { batch: Bt, length: L, d_inner: Din, d_state: N } = s;
  const g = new Generator(0);
  const u = rand([Bt, L, Din], g), delta = rand([Bt, L, Din], g), z = rand([Bt, L, Din], g);
  const A = rand([Din, N], g, -2, -0.5), B = rand([Bt, L, N], g), C = rand([Bt, L, N], g);
  const D = rand([Din], g), db = rand([Din], g), up = rand([Bt, L, Din], g, 0, 1);
  const params = [u, delta, A, B, C, D, z, db];
  for (const p of params) p.requiresGrad_();
  const r = best(() => {
    scope(() => selectiveScan(u, delta, A, B, C, { D, z, deltaBias: db, deltaSoftplus: true }).backward(up));
    for (const p of params) { p.grad?.dispose(); p.grad = null; }
  }, minSeconds);
  for (const t of [...params, up]) t.dispose();
  return r;
}

function timeConv(c: ConvShape, minSeconds: number): { ms: number; cpu: number } {
  const { batch: B, length: L, channels: C, kernel: K } = c;
  const g = new Generator(0);
  const x = rand([B, L, C], g), w = rand([C, K], g), b = rand([C], g), up = rand([B, L, C], g);
  const params = [x, w, b];
  for (const p of params) p.requiresGrad_();
  const r = best(() => {
    scope(() => causalConv1d(x, w, { bias: b }).backward(up));
    for (const p of params) { p.grad?.dispose(); p.grad = null; }
  }, minSeconds);
  for (const t of [...params, up]) t.dispose();
  return r;
}

interface PeerTime { ms: number; cpu_ms: number }
interface PeerResult { torch: string; scans: (ScanShape & PeerTime)[]; convs: (ConvShape & PeerTime)[] }

function torchAvailable(): boolean {
  return spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
}

function runPeer(threads: number, minSeconds: number, scans: ScanShape[], convs: ConvShape[]): PeerResult {
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  const arg = JSON.stringify({ threads, min_seconds: minSeconds, scans, convs });
  const r = spawnSync(PYTHON, [peerScript, arg], { encoding: 'utf8', env, maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`PyTorch scan peer failed with exit ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as PeerResult;
}

const scanLabel = (s: ScanShape): string => `Bt ${s.batch} × L ${s.length} × Din ${s.d_inner} × N ${s.d_state}`;
const convLabel = (c: ConvShape): string => `B ${c.batch} × L ${c.length} × C ${c.channels}, K ${c.kernel}`;

export async function benchScan(opts: {
  threads?: number; shapes?: ScanShape[]; convShapes?: ConvShape[]; minSeconds?: number; peer?: boolean; log?: (line: string) => void;
} = {}): Promise<Row[]> {
  const threads = opts.threads ?? 2, minSeconds = opts.minSeconds ?? 1;
  const scans = opts.shapes ?? SCAN_SHAPES, convs = opts.convShapes ?? CONV_SHAPES;
  const log = opts.log ?? (() => {});
  await init({ threads, backend: 'wasm' });
  const peer = (opts.peer ?? true) && torchAvailable();
  const note = peer ? undefined : `PyTorch peer skipped: ${PYTHON} -c "import torch" failed (apt-get install python3-torch)`;
  if (note && opts.peer !== false) log(note);
  log(SCAN_HEADER);
  const loads: number[] = [];
  const mine: { ms: number; cpu: number }[] = [];
  for (const s of scans) { loads.push(loadavg()[0]); mine.push(timeScan(s, minSeconds)); }
  for (const c of convs) { loads.push(loadavg()[0]); mine.push(timeConv(c, minSeconds)); }
  // The peer runs after ours (one process for every shape), so that the two never share the cores.
  const p = peer ? runPeer(threads, minSeconds, scans, convs) : null;
  const p1 = peer && threads > 1 ? runPeer(1, minSeconds, scans, convs) : null;
  const theirs: (PeerTime | null)[] = [...(p?.scans ?? scans.map(() => null)), ...(p?.convs ?? convs.map(() => null))];
  const theirs1: (PeerTime | null)[] = [...(p1?.scans ?? scans.map(() => null)), ...(p1?.convs ?? convs.map(() => null))];
  const rows: Row[] = [...scans.map((s) => ['selective_scan', scanLabel(s)] as const), ...convs.map((c) => ['causal_conv1d', convLabel(c)] as const)]
    .map(([op, shape], i) => {
      const t = theirs[i], t1 = theirs1[i];
      const best = t ? Math.min(t.ms, t1?.ms ?? Infinity) : null;
      return {
        op, shape, threads, tslm_ms: round(mine[i].ms), tslm_cpu_ms: round(mine[i].cpu), torch_ms: t ? round(t.ms) : null, torch_cpu_ms: t ? round(t.cpu_ms) : null,
        torch_1t_ms: t1 ? round(t1.ms) : null, speedup: best !== null ? round(best / mine[i].ms) : null, cpu_ratio: t ? round(t.cpu_ms / mine[i].cpu) : null, load_avg: round(loads[i]), ...(note ? { note } : {}),
      };
    });
  for (const r of rows) log(formatScanRow(r));
  return rows;
}

function round(x: number): number { return Math.round(x * 100) / 100; }
const f1 = (x: number | null): string => (x === null ? '-' : x.toFixed(1));

export const SCAN_HEADER = `${'op'.padEnd(15)} ${'shape'.padEnd(36)} ${'threads'.padStart(7)} ${'tslm ms'.padStart(9)} ${'torch ms'.padStart(9)} ${'torch 1T'.padStart(9)} ${'speedup'.padStart(8)} ` +
  `${'tslm CPU ms'.padStart(11)} ${'torch CPU ms'.padStart(12)} ${'CPU ratio'.padStart(9)} ${'load'.padStart(5)}`;

export function formatScanRow(r: Row): string {
  const x = (v: number | null): string => (v === null ? '-' : v.toFixed(2) + '×');
  return `${r.op.padEnd(15)} ${r.shape.padEnd(36)} ${String(r.threads).padStart(7)} ${f1(r.tslm_ms).padStart(9)} ${f1(r.torch_ms).padStart(9)} ${f1(r.torch_1t_ms).padStart(9)} ${x(r.speedup).padStart(8)} ` +
    `${f1(r.tslm_cpu_ms).padStart(11)} ${f1(r.torch_cpu_ms).padStart(12)} ${x(r.cpu_ratio).padStart(9)} ${r.load_avg.toFixed(1).padStart(5)}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { threads: { type: 'string' }, seconds: { type: 'string' }, json: { type: 'boolean', default: false } } });
  const threads = values.threads ? Number(values.threads) : undefined;
  const minSeconds = values.seconds ? Number(values.seconds) : undefined;
  if (!values.json) console.log('forward + backward (every gradient), best of repeated runs; selective scan with deltaSoftplus, deltaBias, D, z');
  const rows = await benchScan({ threads, minSeconds, log: values.json ? undefined : (l) => console.log(l) });
  if (values.json) console.log(JSON.stringify(rows));
  else {
    console.log('speedup = PyTorch ms (its faster of `threads` and 1 thread: torch 1T) / tslm ms; CPU ratio = the same in process CPU time (all threads). PyTorch: the sequential reference scan (a Python loop over time with autograd); F.conv1d');
    if (rows.some((r) => r.load_avg > r.threads)) console.log(`note: the load average exceeded ${rows[0].threads} (the thread count): other processes shared the cores, so these numbers are noisy`);
  }
  await shutdown();
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => { console.error(e instanceof Error ? e.message : e); process.exit(1); });
}
