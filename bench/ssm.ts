// State-space models beside a Transformer and beside PyTorch, measured in one run:
//
//  1. scan     Mamba's selective scan, forward + backward (every gradient), tslm's fused kernel
//              vs PyTorch's sequential reference scan (bench/ssm_scan.ts, bench/peers/torch_scan.py).
//  2. train    Mamba training step (forward + backward + clip + AdamW) on the mamba-quickstart
//              config, tslm vs the plain PyTorch Mamba of scripts/ref_mamba.py with
//              torch.optim.AdamW (bench/peers/torch_mamba.py): tokens/s and peak RSS, each in its
//              own process.
//  3. compare  LLaMA, Mamba and S4D of the same parameter count (presets quickstart,
//              mamba-quickstart, s4d-quickstart: ~1M each) trained on the quickstart corpus
//              (Brown + Chinese classics) for the same tokens with the same tokenizer, schedule
//              and seed: validation perplexity, tokens/s and peak memory per model (one process
//              each: peak RSS, and the wasm heap's peak).
//  4. decode   greedy decoding tokens/s after a context of 256 and of 4,096 tokens, Mamba vs the
//              LLaMA of the same size (its context raised to fit): a recurrent state costs the
//              same per token at any length, attention grows with the context.
//
//   node dist/bench/ssm.js [--threads N] [--steps N] [--only scan,train,compare,decode] [--json]
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import path from 'node:path';
import { init, shutdown, heapStats } from '../src/backend/index.js';
import { defaultThreads } from '../src/backend/wasm/index.js';
import { tensor } from '../src/tensor/ops.js';
import { scope } from '../src/tensor/storage.js';
import { noGrad } from '../src/tensor/autograd.js';
import { Generator } from '../src/tensor/random.js';
import { createModel } from '../src/models/index.js';
import { DEFAULT_TRAIN_OPTIONS, createOptimizer } from '../src/train/trainer.js';
import { clipGradNorm } from '../src/train/optim.js';
import { PRESETS } from '../src/train/presets.js';
import { runTraining } from '../src/train/run.js';
import { brownText } from '../src/train/quickstart.js';
import { trainByteLevelBPE } from '../src/tokenizers/trainer.js';
import { generate } from '../src/generate/generate.js';

const PYTHON = '/usr/bin/python3';
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const torchMamba = path.join(root, 'bench', 'peers', 'torch_mamba.py');
const WARMUP = 2;

export interface Row { section: string; [k: string]: unknown }

type ChildSpec =
  | { kind: 'train'; preset: string; batch: number; seq: number; steps: number; threads: number }
  | { kind: 'compare'; preset: string; data: string; tokenizer: string; out: string; steps: number; threads: number }
  | { kind: 'decode'; config: Record<string, unknown>; contexts: number[]; tokens: number; threads: number };

function cpuNow(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** A child process: one measurement, one JSON line on stdout. */
async function child(spec: ChildSpec): Promise<void> {
  await init({ threads: spec.threads, backend: 'wasm' });
  let out: Record<string, unknown>;
  if (spec.kind === 'train') out = trainSteps(spec);
  else if (spec.kind === 'compare') out = await trainOnCorpus(spec);
  else out = decodeAtContexts(spec);
  await shutdown();
  process.stdout.write(JSON.stringify({ ...out, peak_rss_mib: process.resourceUsage().maxRSS / 1024 }) + '\n');
}

/** Training steps on random tokens, as bench/train.ts times LLaMA. */
function trainSteps(spec: Extract<ChildSpec, { kind: 'train' }>): Record<string, unknown> {
  const { batch: B, seq: L } = spec;
  const model = createModel({ ...PRESETS[spec.preset] }, spec.preset, { generator: new Generator(0) });
  const opt = createOptimizer(model, { ...DEFAULT_TRAIN_OPTIONS, batchSize: B, seqLen: L });
  const g = new Generator(1), V = model.config.vocab_size;
  const ms: number[] = [], losses: number[] = [];
  let cpu0 = 0;
  for (let s = 0; s < spec.steps; s++) {
    if (s === WARMUP) cpu0 = cpuNow();
    const ids = new Int32Array(B * (L + 1));
    for (let i = 0; i < ids.length; i++) ids[i] = g.int(V);
    const t0 = performance.now();
    losses.push(scope(() => {
      const loss = model.loss(tensor(ids, [B, L + 1], 'i32'));
      loss.backward();
      return loss.item();
    }));
    clipGradNorm(opt.params, 1.0);
    opt.step();
    opt.zeroGrad();
    ms.push(performance.now() - t0);
  }
  const timed = ms.slice(WARMUP);
  const res = {
    tokens_per_s: (B * L * timed.length) / (timed.reduce((a, b) => a + b, 0) / 1000),
    tokens_per_cpu_s: (B * L * timed.length) / ((cpuNow() - cpu0) / 1e6),
    ms_per_step: ms.map((x) => Math.round(x)), loss_first: losses[0], loss_last: losses[losses.length - 1],
    params: model.numParameters(), heap_peak_mib: heapStats().peak / 2 ** 20,
  };
  model.dispose();
  return res;
}

/** One model trained on the prepared corpus with the shared tokenizer (runTraining, as tslm train does). */
async function trainOnCorpus(spec: Extract<ChildSpec, { kind: 'compare' }>): Promise<Record<string, unknown>> {
  const r = await runTraining({
    data: spec.data, out: spec.out, config: spec.preset, tokenizer: spec.tokenizer, steps: spec.steps, batchSize: 16, seqLen: 128,
    lr: 2e-3, warmupSteps: Math.min(50, Math.ceil(spec.steps / 10)), minLrRatio: 0.1, weightDecay: 0.1, evalEvery: spec.steps, evalBatches: 40,
    seed: 1337, valFraction: 0.05, log: () => {}, progress: () => {},
  });
  const res = {
    model_type: r.model.config.model_type, params: r.model.numParameters(), val_loss: r.valLoss, val_ppl: Math.exp(r.valLoss ?? NaN),
    tokens: r.state.tokens, seconds: r.state.elapsedSeconds, tokens_per_s: r.state.tokens / r.state.elapsedSeconds,
    heap_peak_mib: heapStats().peak / 2 ** 20,
  };
  r.model.dispose();
  r.tokens.close();
  return res;
}

/** Greedy decoding speed after contexts of each length (prefill untimed). */
function decodeAtContexts(spec: Extract<ChildSpec, { kind: 'decode' }>): Record<string, unknown> {
  const model = createModel(spec.config, 'bench', { generator: new Generator(3) });
  model.eval();
  const g = new Generator(5), V = model.config.vocab_size;
  const rows: { context: number; decode_tok_s: number; prefill_tok_s: number }[] = [];
  // Steady state: V8 keeps optimising the decode path over the first few hundred tokens.
  const warm = Array.from({ length: 64 }, () => g.int(V));
  for (let i = 0; i < 4; i++) generate(model, warm, { maxNewTokens: 128, stopIds: [] });
  for (const ctx of spec.contexts) {
    const prompt = Array.from({ length: ctx }, () => g.int(V));
    let best = 0, prefill = 0;
    for (let rep = 0; rep < 5; rep++) {
      const r = noGrad(() => generate(model, prompt, { maxNewTokens: spec.tokens, stopIds: [] }));
      best = Math.max(best, r.stats.decodeTokensPerSecond);
      prefill = Math.max(prefill, r.stats.prefillTokensPerSecond);
    }
    rows.push({ context: ctx, decode_tok_s: best, prefill_tok_s: prefill });
  }
  const res = { model_type: model.config.model_type, params: model.numParameters(), rows, heap_peak_mib: heapStats().peak / 2 ** 20 };
  model.dispose();
  return res;
}

function runChild(spec: ChildSpec): Record<string, any> {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', JSON.stringify(spec)], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`bench/ssm child (${spec.kind}) failed with exit ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

function torchAvailable(): boolean {
  return spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
}

function runTorchMamba(args: string[], threads: number): Record<string, any> {
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  const r = spawnSync(PYTHON, [torchMamba, ...args, '--threads', String(threads)], { encoding: 'utf8', env, maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`PyTorch Mamba peer failed with exit ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

/** The quickstart corpus and one tokenizer for every model of the comparison. */
function prepareCorpus(dir: string): { data: string; tokenizer: string } {
  const data = path.join(dir, 'data');
  mkdirSync(data, { recursive: true });
  const brown = brownText();
  writeFileSync(path.join(data, 'brown.jsonl'), brown.map((d) => JSON.stringify({ text: d.text })).join('\n') + '\n');
  const zh = path.join(root, 'data', 'quickstart', 'zh-classics.txt');
  if (!existsSync(zh)) throw new Error(`${zh}: the embedded Chinese corpus is missing`);
  copyFileSync(zh, path.join(data, 'zh-classics.txt'));
  const texts = [...brown.map((d) => d.text), readFileSync(zh, 'utf8')];
  const tok = trainByteLevelBPE(texts, { vocabSize: Number(PRESETS.quickstart.vocab_size), specialTokens: ['<|endoftext|>'] });
  const tokenizer = path.join(dir, 'tokenizer.json');
  tok.save(tokenizer);
  return { data, tokenizer };
}

const f0 = (x: unknown): string => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(0) : '-');
const f2 = (x: unknown): string => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(2) : '-');

export async function benchSsm(opts: { threads?: number; steps?: number; only?: string[]; log?: (line: string) => void } = {}): Promise<Row[]> {
  const threads = opts.threads ?? defaultThreads();
  const log = opts.log ?? (() => {});
  const want = (s: string) => !opts.only || opts.only.includes(s);
  const peer = torchAvailable();
  if (!peer) log(`PyTorch peers skipped: ${PYTHON} -c "import torch" failed (apt-get install python3-torch)`);
  const rows: Row[] = [];

  if (want('scan')) {
    log(`\n1. selective scan, forward + backward (all gradients), ${threads} threads, beside PyTorch's sequential scan`);
    const { benchScan } = await import('./ssm_scan.js');
    rows.push(...(await benchScan({ threads, log })).map((r) => ({ section: 'scan', ...r })));
    await shutdown();
  }

  if (want('train')) {
    const preset = 'mamba-quickstart', batch = 16, seq = 128, steps = 6 + WARMUP;
    log(`\n2. Mamba training step (${preset}, batch ${batch} × ${seq}, forward + backward + clip + AdamW), ${threads} threads, beside PyTorch`);
    const t = runChild({ kind: 'train', preset, batch, seq, steps, threads });
    const p = peer ? runTorchMamba(['--config', JSON.stringify(PRESETS[preset]), '--batch', String(batch), '--seq', String(seq), '--steps', String(steps), '--warmup', String(WARMUP)], threads) : null;
    const row: Row = {
      section: 'train', config: preset, params: t.params, batch: `${batch} × ${seq}`, threads,
      tslm_tokens_per_s: t.tokens_per_s, torch_tokens_per_s: p?.tokens_per_second ?? null,
      speed_ratio: p ? t.tokens_per_s / p.tokens_per_second : null,
      tslm_peak_rss_mib: t.peak_rss_mib, torch_peak_rss_mib: p?.peak_rss_mb ?? null,
      memory_ratio: p ? t.peak_rss_mib / p.peak_rss_mb : null, tslm_heap_peak_mib: t.heap_peak_mib,
      tslm_ms_per_step: t.ms_per_step, torch_ms_per_step: p?.ms_per_step ?? null, load_avg: loadavg()[0],
    };
    rows.push(row);
    log(`${'config'.padEnd(17)} ${'params'.padStart(9)} ${'tslm tok/s'.padStart(11)} ${'torch tok/s'.padStart(12)} ${'speed ×'.padStart(8)} ${'tslm RSS MiB'.padStart(13)} ${'torch RSS MiB'.padStart(14)} ${'memory ×'.padStart(9)}`);
    log(`${preset.padEnd(17)} ${String(t.params).padStart(9)} ${f0(row.tslm_tokens_per_s).padStart(11)} ${f0(row.torch_tokens_per_s).padStart(12)} ${f2(row.speed_ratio).padStart(8)} ${f0(row.tslm_peak_rss_mib).padStart(13)} ${f0(row.torch_peak_rss_mib).padStart(14)} ${f2(row.memory_ratio).padStart(9)}`);
  }

  if (want('compare')) {
    const steps = opts.steps ?? 200;
    log(`\n3. LLaMA vs Mamba vs S4D of ~1M parameters on the quickstart corpus: ${steps} steps of 16 × 128 tokens each, same tokenizer, schedule and seed, ${threads} threads`);
    const dir = mkdtempSync(path.join(tmpdir(), 'tslm-bench-ssm-'));
    try {
      const { data, tokenizer } = prepareCorpus(dir);
      log(`${'model'.padEnd(17)} ${'params'.padStart(9)} ${'tokens'.padStart(9)} ${'val ppl'.padStart(8)} ${'tok/s'.padStart(7)} ${'peak RSS MiB'.padStart(13)} ${'heap peak MiB'.padStart(14)}`);
      for (const preset of ['quickstart', 'mamba-quickstart', 's4d-quickstart']) {
        const r = runChild({ kind: 'compare', preset, data, tokenizer, out: path.join(dir, preset), steps, threads });
        rows.push({ section: 'compare', preset, threads, ...r });
        log(`${`${preset} (${r.model_type})`.padEnd(17)} ${String(r.params).padStart(9)} ${String(r.tokens).padStart(9)} ${f2(r.val_ppl).padStart(8)} ${f0(r.tokens_per_s).padStart(7)} ${f0(r.peak_rss_mib).padStart(13)} ${f0(r.heap_peak_mib).padStart(14)}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  if (want('decode')) {
    const contexts = [256, 4096], tokens = 128;
    log(`\n4. greedy decoding after a context of ${contexts.join(' and ')} tokens (${tokens} tokens, batch 1, ${threads} threads): recurrent state vs KV cache`);
    const llama = { ...PRESETS.quickstart, max_position_embeddings: 4096 + tokens };
    log(`${'model'.padEnd(17)} ${'params'.padStart(9)} ${contexts.map((c) => `tok/s @${c}`.padStart(12)).join(' ')} ${'change'.padStart(7)}`);
    for (const [name, config] of [['quickstart', llama], ['mamba-quickstart', PRESETS['mamba-quickstart']]] as const) {
      const r = runChild({ kind: 'decode', config, contexts, tokens, threads });
      const rates = (r.rows as { decode_tok_s: number }[]).map((x) => x.decode_tok_s);
      const change = rates[rates.length - 1] / rates[0] - 1;
      rows.push({ section: 'decode', preset: name, model_type: r.model_type, params: r.params, threads, contexts: r.rows, change });
      log(`${`${name} (${r.model_type})`.padEnd(17)} ${String(r.params).padStart(9)} ${rates.map((x) => f0(x).padStart(12)).join(' ')} ${`${(change * 100).toFixed(0)}%`.padStart(7)}`);
    }
    if (peer) {
      const p = runTorchMamba(['--decode', '--config', JSON.stringify(PRESETS['mamba-quickstart']), '--contexts', contexts.join(','), '--decode-steps', String(tokens)], threads);
      const rates = (p.decode as { decode_tokens_per_second: number }[]).map((x) => x.decode_tokens_per_second);
      rows.push({ section: 'decode', preset: 'mamba-quickstart', engine: 'pytorch', threads, contexts: p.decode, change: rates[rates.length - 1] / rates[0] - 1 });
      log(`${'PyTorch Mamba'.padEnd(17)} ${String(p.params).padStart(9)} ${rates.map((x) => f0(x).padStart(12)).join(' ')} ${`${((rates[rates.length - 1] / rates[0] - 1) * 100).toFixed(0)}%`.padStart(7)}`);
    }
  }
  return rows;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { child: { type: 'string' }, threads: { type: 'string' }, steps: { type: 'string' }, only: { type: 'string' }, json: { type: 'boolean', default: false } } });
  if (values.child) return child(JSON.parse(values.child) as ChildSpec);
  const rows = await benchSsm({
    threads: values.threads ? Number(values.threads) : undefined, steps: values.steps ? Number(values.steps) : undefined,
    only: values.only?.split(','), log: values.json ? undefined : (l) => console.log(l),
  });
  if (values.json) console.log(JSON.stringify(rows));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => { console.error(e instanceof Error ? e.message : e); process.exit(1); });
}
