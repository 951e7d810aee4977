// Image ops beside PyTorch: conv2d and conv_transpose2d forward, and forward + backward (input,
// weight and bias gradients), GFLOP/s on the shapes of an MNIST image tokenizer (batch 64, 28×28
// → 14×14 → 7×7 and back). The peer (bench/peers/torch_conv.py, Debian's /usr/bin/python3 with
// torch, torch.set_num_threads(threads), measured in the same run) is skipped with a note when
// torch is absent. Both sides report the best of repeated runs after a warm-up.
//
//   node dist/bench/vision.js [--threads N] [--seconds S] [--json]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import path from 'node:path';
import { init, shutdown } from '../src/backend/index.js';
import { tensor, sum } from '../src/tensor/ops.js';
import { scope, unscoped } from '../src/tensor/storage.js';
import { noGrad } from '../src/tensor/autograd.js';
import { Generator } from '../src/tensor/random.js';
import { conv2d, convTranspose2d } from '../src/tensor/conv.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { timeBest } from './timing.js';

const PYTHON = '/usr/bin/python3';
const here = path.dirname(fileURLToPath(import.meta.url));
const peerScript = path.resolve(here, '..', '..', 'bench', 'peers', 'torch_conv.py');

export interface ConvShape { op: 'conv2d' | 'convTranspose2d'; batch: number; cin: number; cout: number; h: number; w: number; k: number; stride: number; padding: number }

/** The layers of a small VQ-VAE for 28×28 digits (encoder down to 7×7, decoder back up). */
export const SHAPES: ConvShape[] = [
  { op: 'conv2d', batch: 64, cin: 1, cout: 32, h: 28, w: 28, k: 4, stride: 2, padding: 1 },
  { op: 'conv2d', batch: 64, cin: 32, cout: 64, h: 14, w: 14, k: 4, stride: 2, padding: 1 },
  { op: 'conv2d', batch: 64, cin: 64, cout: 64, h: 7, w: 7, k: 3, stride: 1, padding: 1 },
  { op: 'convTranspose2d', batch: 64, cin: 64, cout: 32, h: 7, w: 7, k: 4, stride: 2, padding: 1 },
  { op: 'convTranspose2d', batch: 64, cin: 32, cout: 1, h: 14, w: 14, k: 4, stride: 2, padding: 1 },
];

export interface Row {
  shape: string;
  threads: number;
  /** Forward and forward + backward GFLOP/s (2 multiply-adds per weight use; backward counted as 2 forwards). */
  tslm_fwd_gflops: number;
  tslm_fwdbwd_gflops: number;
  torch_fwd_gflops: number | null;
  torch_fwdbwd_gflops: number | null;
  /** tslm / PyTorch, forward + backward (the issue's target: ≥ 1). */
  ratio: number | null;
  load_avg: number;
}

/** Multiply-adds × 2 of one forward pass. */
function flops(s: ConvShape): number {
  const [OH, OW] = s.op === 'conv2d'
    ? [Math.floor((s.h + 2 * s.padding - s.k) / s.stride) + 1, Math.floor((s.w + 2 * s.padding - s.k) / s.stride) + 1]
    : [s.h, s.w]; // a transposed conv does the work of the conv whose input grid it maps back from
  return 2 * s.batch * s.cout * s.cin * s.k * s.k * OH * OW;
}

const label = (s: ConvShape): string => `${s.op === 'conv2d' ? 'conv' : 'convT'} B${s.batch} ${s.cin}→${s.cout} ${s.h}×${s.w} k${s.k} s${s.stride} p${s.padding}`;

function torchAvailable(): boolean {
  return spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
}

export async function benchVision(opts: { threads?: number; seconds?: number; log?: (l: string) => void } = {}): Promise<Row[]> {
  const threads = opts.threads ?? 2, seconds = opts.seconds ?? 1;
  const log = opts.log ?? (() => {});
  await init({ threads });
  const g = new Generator(1);
  const rnd = (shape: number[]): Tensor => unscoped(() => tensor(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => g.normal()), shape).keep());
  const peer = torchAvailable();
  if (!peer) log(`PyTorch peer skipped: ${PYTHON} -c "import torch" failed (apt-get install python3-torch)`);
  let torchRows: { fwd_ms: number; fwdbwd_ms: number }[] | null = null;
  if (peer) {
    const r = spawnSync(PYTHON, [peerScript, JSON.stringify({ threads, min_seconds: seconds, shapes: SHAPES })], {
      encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) }, maxBuffer: 1 << 24,
    });
    if (r.status !== 0) throw new Error(`PyTorch conv peer failed with exit ${r.status}: ${r.stderr}`);
    torchRows = JSON.parse(r.stdout.trim().split('\n').pop()!).rows;
  }
  log(`${'shape'.padEnd(36)} thr  tslm fwd  tslm f+b  torch fwd  torch f+b  ratio f+b   (GFLOP/s)`);
  const rows: Row[] = [];
  SHAPES.forEach((s, i) => {
    const load = loadavg()[0];
    const x = rnd([s.batch, s.cin, s.h, s.w]).requiresGrad_();
    const w = rnd(s.op === 'conv2d' ? [s.cout, s.cin, s.k, s.k] : [s.cin, s.cout, s.k, s.k]).requiresGrad_();
    const b = rnd([s.cout]).requiresGrad_();
    const f = (): Tensor => (s.op === 'conv2d' ? conv2d(x, w, b, { stride: s.stride, padding: s.padding }) : convTranspose2d(x, w, b, { stride: s.stride, padding: s.padding }));
    const fwd = timeBest(() => scope(() => noGrad(() => { f(); })), seconds);
    const fb = timeBest(() => scope(() => {
      x.grad = null; w.grad = null; b.grad = null;
      sum(f()).backward();
    }), seconds);
    const fl = flops(s), tr = torchRows?.[i] ?? null;
    const row: Row = {
      shape: label(s), threads,
      tslm_fwd_gflops: fl / fwd / 1e9, tslm_fwdbwd_gflops: 3 * fl / fb / 1e9,
      torch_fwd_gflops: tr ? fl / (tr.fwd_ms / 1000) / 1e9 : null, torch_fwdbwd_gflops: tr ? 3 * fl / (tr.fwdbwd_ms / 1000) / 1e9 : null,
      ratio: tr ? (tr.fwdbwd_ms / 1000) / fb : null, load_avg: load,
    };
    rows.push(row);
    const n = (v: number | null): string => (v === null ? '–' : v.toFixed(2)).padStart(9);
    log(`${row.shape.padEnd(36)} ${String(threads).padStart(3)} ${n(row.tslm_fwd_gflops)} ${n(row.tslm_fwdbwd_gflops)} ${n(row.torch_fwd_gflops).padStart(10)} ${n(row.torch_fwdbwd_gflops).padStart(10)} ${(row.ratio === null ? '–' : `${row.ratio.toFixed(2)}×`).padStart(10)}   load ${load.toFixed(1)}`);
    for (const t of [x, w, b]) { t.grad?.dispose(); t.dispose(); }
  });
  await shutdown();
  return rows;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { threads: { type: 'string' }, seconds: { type: 'string' }, json: { type: 'boolean', default: false } } });
  const rows = await benchVision({ threads: values.threads ? Number(values.threads) : undefined, seconds: values.seconds ? Number(values.seconds) : undefined, log: values.json ? undefined : (l) => console.log(l) });
  if (values.json) console.log(JSON.stringify(rows));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => { console.error(e instanceof Error ? e.message : e); process.exit(1); });
}
