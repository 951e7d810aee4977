// Training throughput (tokens/s) and peak memory of tslm's LLaMA beside PyTorch in the same
// run, on llama2.c's TinyStories configs: 260K (dim 64, 5 layers, 8 heads, 4 KV heads, vocab
// 512, batch 16 × 256) and 15M (dim 288, 6 layers, 6 heads, vocab 32000, batch 8 × 256).
//
// One step is what trainLoop does: forward + backward of the mean next-token loss on a random
// (B, T+1) batch inside a scope, clipGradNorm(1.0), AdamW step (createOptimizer: weight decay on
// matrices), zeroGrad. Each side runs in its own process so that its peak RSS
// (process.resourceUsage().maxRSS / getrusage ru_maxrss) belongs to one config alone:
//   tslm     this file re-run as `node dist/bench/train.js --child '<json>'`
//   PyTorch  bench/peers/torch_train.py (scripts/ref_llama.py's model, torch.optim.AdamW,
//            torch.set_num_threads(threads)), skipped with a note when /usr/bin/python3
//            cannot import torch
// tokens/s counts B·T tokens per step over the steps after the first 2 (warm-up).
//
//   node dist/bench/train.js [--threads N] [--steps N] [--json]
//   node --cpu-prof dist/bench/train.js --child '{"config":"15m","threads":2,"steps":6}'
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import path from 'node:path';
import { init, shutdown } from '../src/backend/index.js';
import { defaultThreads } from '../src/backend/wasm/index.js';
import { tensor } from '../src/tensor/ops.js';
import { scope } from '../src/tensor/storage.js';
import { Generator } from '../src/tensor/random.js';
import { createModel } from '../src/models/index.js';
import { DEFAULT_TRAIN_OPTIONS, createOptimizer } from '../src/train/trainer.js';
import { clipGradNorm } from '../src/train/optim.js';
import { PRESETS } from '../src/train/presets.js';

const WARMUP = 2;
const PYTHON = '/usr/bin/python3';
const here = path.dirname(fileURLToPath(import.meta.url));
const peerScript = path.resolve(here, '..', '..', 'bench', 'peers', 'torch_train.py');

/** The two configs of issue #4, with their batch shapes. */
export const TRAIN_CONFIGS = [
  { name: '260K', preset: '260k', batch: 16, seqLen: 256 },
  { name: '15M', preset: '15m', batch: 8, seqLen: 256 },
] as const;

export interface Row {
  config: string;
  params: number;
  /** B × T tokens per optimizer step. */
  batch: string;
  threads: number;
  /** Timed steps (after the warm-up steps). */
  steps: number;
  tslm_tokens_per_s: number;
  tslm_peak_rss_mib: number;
  tslm_ms_per_step: number[];
  /** Tokens per second of the process's CPU time (all its threads, user + system), timed steps:
   *  robust to other load on the machine, and it charges spin-waiting to the side that spins. */
  tslm_tokens_per_cpu_s: number;
  torch_tokens_per_s: number | null;
  torch_peak_rss_mib: number | null;
  torch_ms_per_step: number[] | null;
  torch_tokens_per_cpu_s: number | null;
  /** tslm / PyTorch tokens/s (≥ 1: as fast or faster). */
  speed_ratio: number | null;
  /** tslm / PyTorch peak RSS (≤ 1: no more memory). */
  memory_ratio: number | null;
  /** 1-minute load average when the row started: above `threads`, other work shared the cores. */
  load_avg: number;
  note?: string;
}

interface ChildSpec { config: string; batch?: number; seqLen?: number; threads: number; steps: number; seed?: number }
interface SideResult { tokens_per_s: number; tokens_per_cpu_s: number; ms_per_step: number[]; loss_first: number; loss_last: number; peak_rss_mib: number; params: number }

function presetConfig(preset: string): Record<string, unknown> {
  const c = PRESETS[preset];
  if (!c) throw new Error(`bench/train: unknown preset ${preset}`);
  return { ...c };
}

/** The child: train `steps` steps of one config and print one JSON line (SideResult). */
async function child(spec: ChildSpec): Promise<void> {
  const def = TRAIN_CONFIGS.find((c) => c.preset === spec.config);
  const B = spec.batch ?? def?.batch ?? 8, Tn = spec.seqLen ?? def?.seqLen ?? 256;
  await init({ threads: spec.threads, backend: 'wasm' });
  const model = createModel(presetConfig(spec.config), spec.config, { generator: new Generator(spec.seed ?? 0) });
  const config = model.config;
  const opt = createOptimizer(model, { ...DEFAULT_TRAIN_OPTIONS, batchSize: B, seqLen: Tn });
  const params = opt.params;
  const g = new Generator((spec.seed ?? 0) + 1);
  const shape = [B, Tn + 1];
  const ms: number[] = [], losses: number[] = [];
  let cpuMicros = 0;
  model.train(true);
  for (let s = 0; s < spec.steps; s++) {
    if (s === WARMUP) cpuMicros = cpuNow();
    const ids = new Int32Array(B * (Tn + 1));
    for (let i = 0; i < ids.length; i++) ids[i] = g.int(config.vocab_size);
    const t0 = performance.now();
    const loss = scope(() => {
      const out = model.loss(tensor(ids, shape, 'i32'));
      const v = out.item();
      out.backward();
      return v;
    });
    clipGradNorm(params, 1.0);
    opt.step();
    opt.zeroGrad();
    ms.push(performance.now() - t0);
    losses.push(loss);
  }
  const cpuSeconds = (cpuNow() - cpuMicros) / 1e6;
  const timed = ms.slice(WARMUP);
  const out: SideResult = {
    tokens_per_s: timed.length ? (B * Tn * timed.length) / (timed.reduce((a, b) => a + b, 0) / 1000) : NaN,
    tokens_per_cpu_s: timed.length ? (B * Tn * timed.length) / cpuSeconds : NaN,
    ms_per_step: ms.map((x) => Math.round(x * 10) / 10),
    loss_first: losses[0], loss_last: losses[losses.length - 1],
    peak_rss_mib: process.resourceUsage().maxRSS / 1024,
    params: model.numParameters(),
  };
  model.dispose();
  await shutdown();
  process.stdout.write(JSON.stringify(out) + '\n');
}

function cpuNow(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

function lastJsonLine(s: string): unknown {
  const line = s.trim().split('\n').pop() ?? '';
  return JSON.parse(line);
}

function runTslm(spec: ChildSpec): SideResult {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', JSON.stringify(spec)], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`tslm training child (${spec.config}) failed with exit ${r.status}: ${r.stderr}`);
  return lastJsonLine(r.stdout) as SideResult;
}

function torchAvailable(): boolean {
  return spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
}

function runTorch(spec: ChildSpec): SideResult {
  const def = TRAIN_CONFIGS.find((c) => c.preset === spec.config);
  const arg = { config: presetConfig(spec.config), batch: spec.batch ?? def?.batch, seq_len: spec.seqLen ?? def?.seqLen, steps: spec.steps, warmup: WARMUP, threads: spec.threads, seed: spec.seed ?? 0 };
  // One thread pool of `threads` threads for intra-op work (OMP/MKL read these too).
  const env = { ...process.env, OMP_NUM_THREADS: String(spec.threads), MKL_NUM_THREADS: String(spec.threads) };
  const r = spawnSync(PYTHON, [peerScript, JSON.stringify(arg)], { encoding: 'utf8', env, maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`PyTorch peer (${spec.config}) failed with exit ${r.status}: ${r.stderr}`);
  return lastJsonLine(r.stdout) as SideResult;
}

export async function benchTrain(opts: { threads?: number; steps?: number; log?: (line: string) => void } = {}): Promise<Row[]> {
  const threads = opts.threads ?? defaultThreads();
  const steps = opts.steps ?? 6;
  if (!(Number.isInteger(steps) && steps >= 1)) throw new Error(`bench/train: steps must be a positive integer, got ${steps}`);
  const peer = torchAvailable();
  const note = peer ? undefined : `PyTorch peer skipped: ${PYTHON} -c "import torch" failed (apt-get install python3-torch)`;
  if (note) opts.log?.(note);
  const rows: Row[] = [];
  opts.log?.(TRAIN_HEADER);
  for (const c of TRAIN_CONFIGS) {
    const spec: ChildSpec = { config: c.preset, batch: c.batch, seqLen: c.seqLen, threads, steps: steps + WARMUP };
    const load = loadavg()[0];
    const t = runTslm(spec);
    const p = peer ? runTorch(spec) : null;
    const row: Row = {
      config: c.name, params: t.params, batch: `${c.batch} × ${c.seqLen}`, threads, steps,
      tslm_tokens_per_s: t.tokens_per_s, tslm_peak_rss_mib: t.peak_rss_mib, tslm_ms_per_step: t.ms_per_step, tslm_tokens_per_cpu_s: t.tokens_per_cpu_s,
      torch_tokens_per_s: p?.tokens_per_s ?? null, torch_peak_rss_mib: p?.peak_rss_mib ?? null, torch_ms_per_step: p?.ms_per_step ?? null, torch_tokens_per_cpu_s: p?.tokens_per_cpu_s ?? null,
      speed_ratio: p ? t.tokens_per_s / p.tokens_per_s : null, memory_ratio: p ? t.peak_rss_mib / p.peak_rss_mib : null,
      load_avg: Math.round(load * 100) / 100,
      ...(note ? { note } : {}),
    };
    rows.push(row);
    opts.log?.(formatTrainRow(row));
  }
  return rows;
}

const f0 = (x: number | null): string => (x === null || !Number.isFinite(x) ? '-' : x.toFixed(0));
const f2 = (x: number | null): string => (x === null || !Number.isFinite(x) ? '-' : x.toFixed(2));

export const TRAIN_HEADER = `${'config'.padEnd(6)} ${'params'.padStart(11)} ${'batch'.padStart(9)} ${'threads'.padStart(7)} ` +
  `${'tslm tok/s'.padStart(11)} ${'torch tok/s'.padStart(11)} ${'speed ×'.padStart(8)} ${'tslm RSS MiB'.padStart(13)} ${'torch RSS MiB'.padStart(14)} ${'memory ×'.padStart(9)} ${'tslm tok/CPU-s'.padStart(15)} ${'torch tok/CPU-s'.padStart(16)} ${'load'.padStart(5)}`;

export function formatTrainRow(r: Row): string {
  return `${r.config.padEnd(6)} ${r.params.toLocaleString('en-US').padStart(11)} ${r.batch.padStart(9)} ${String(r.threads).padStart(7)} ` +
    `${f0(r.tslm_tokens_per_s).padStart(11)} ${f0(r.torch_tokens_per_s).padStart(11)} ${f2(r.speed_ratio).padStart(8)} ` +
    `${f0(r.tslm_peak_rss_mib).padStart(13)} ${f0(r.torch_peak_rss_mib).padStart(14)} ${f2(r.memory_ratio).padStart(9)} ${f0(r.tslm_tokens_per_cpu_s).padStart(15)} ${f0(r.torch_tokens_per_cpu_s).padStart(16)} ${r.load_avg.toFixed(1).padStart(5)}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { child: { type: 'string' }, threads: { type: 'string' }, steps: { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  if (values.child) return child(JSON.parse(values.child) as ChildSpec);
  const threads = values.threads ? Number(values.threads) : undefined;
  const steps = values.steps ? Number(values.steps) : undefined;
  if (!values.json) console.log(`training step (forward + backward + clip + AdamW), tokens/s after ${WARMUP} warm-up steps; peak RSS per process`);
  const rows = await benchTrain({ threads, steps, log: values.json ? undefined : (l) => console.log(l) });
  if (values.json) console.log(JSON.stringify(rows));
  else {
    console.log('speed × = tslm / PyTorch tokens/s (goal ≥ 1); memory × = tslm / PyTorch peak RSS (goal ≤ 1); tok/CPU-s = tokens per second of process CPU time (all threads); load = 1-min load average at the start');
    if (rows.some((r) => r.load_avg > r.threads)) console.log(`note: the load average exceeded ${rows[0].threads} (the thread count): other processes shared the cores, so these numbers understate both sides`);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => { console.error(e instanceof Error ? e.message : e); process.exit(1); });
}
