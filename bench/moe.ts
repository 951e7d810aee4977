// A mixture of experts beside dense models and beside PyTorch, measured in one run:
//
//  1. compare  moe-quickstart (Mixtral layout: 8 experts of width 172, top-2: 2.58M parameters,
//              0.99M active per token), the dense LLaMA with the same active parameters
//              (quickstart) and the dense LLaMA with the same total parameters (quickstart-wide),
//              trained on the quickstart corpus for the same tokens with the same tokenizer,
//              schedule and seed: validation perplexity, tokens/s, peak memory (one process each).
//  2. decode   greedy decoding tokens/s of the MoE and of the dense model with its active size.
//  3. train    the MoE's training step beside the plain PyTorch MoE of scripts/ref_moe.py (its
//              experts in a Python loop, as HF runs them) with torch.optim.AdamW
//              (bench/peers/torch_moe.py): tokens/s and peak RSS.
//
//   node dist/bench/moe.js [--threads N] [--steps N] [--only compare,decode,train] [--json]
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import path from 'node:path';
import { defaultThreads } from '../src/backend/wasm/index.js';
import { PRESETS } from '../src/train/presets.js';
import { PYTHON, WARMUP, prepareCorpus, root, runChild, runPython, torchAvailable } from './families.js';

export interface Row { section: string; [k: string]: unknown }

const MODELS = [
  ['moe-quickstart', 'MoE 8×172, top-2'],
  ['quickstart', 'dense, same active'],
  ['quickstart-wide', 'dense, same total'],
] as const;

const f0 = (x: unknown): string => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(0) : '-');
const f2 = (x: unknown): string => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(2) : '-');

export async function benchMoe(opts: { threads?: number; steps?: number; only?: string[]; log?: (line: string) => void } = {}): Promise<Row[]> {
  const threads = opts.threads ?? defaultThreads();
  const log = opts.log ?? (() => {});
  const want = (s: string) => !opts.only || opts.only.includes(s);
  const rows: Row[] = [];

  if (want('compare')) {
    const steps = opts.steps ?? 200;
    log(`\n1. a mixture of experts beside dense models on the quickstart corpus: ${steps} steps of 16 × 128 tokens each, same tokenizer, schedule and seed, ${threads} threads`);
    const dir = mkdtempSync(path.join(tmpdir(), 'tslm-bench-moe-'));
    try {
      const { data, tokenizer } = prepareCorpus(dir);
      log(`${'model'.padEnd(36)} ${'params'.padStart(9)} ${'active'.padStart(9)} ${'val ppl'.padStart(8)} ${'tok/s'.padStart(7)} ${'peak RSS MiB'.padStart(13)} ${'heap peak MiB'.padStart(14)}`);
      for (const [preset, what] of MODELS) {
        const r = runChild({ kind: 'compare', preset, data, tokenizer, out: path.join(dir, preset), steps, threads });
        rows.push({ section: 'compare', preset, threads, ...r });
        log(`${`${preset} (${what})`.padEnd(36)} ${String(r.params).padStart(9)} ${String(r.active_params).padStart(9)} ${f2(r.val_ppl).padStart(8)} ${f0(r.tokens_per_s).padStart(7)} ${f0(r.peak_rss_mib).padStart(13)} ${f0(r.heap_peak_mib).padStart(14)}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  if (want('decode')) {
    const contexts = [32, 96], tokens = 128;
    log(`\n2. greedy decoding (best of ten runs of up to ${tokens} tokens after a ${contexts.join(' / ')}-token prompt, batch 1, ${threads} threads): the MoE beside the dense model with its active size (goal ≥ 0.8×)`);
    log(`${'model'.padEnd(36)} ${contexts.map((c) => `tok/s @${c}`.padStart(11)).join(' ')}`);
    const rates: Record<string, number[]> = {};
    for (const [preset, what] of MODELS.slice(0, 2)) {
      const r = runChild({ kind: 'decode', config: PRESETS[preset], contexts, tokens, threads, reps: 10 });
      rates[preset] = (r.rows as { decode_tok_s: number }[]).map((x) => x.decode_tok_s);
      rows.push({ section: 'decode', preset, threads, contexts: r.rows });
      log(`${`${preset} (${what})`.padEnd(36)} ${rates[preset].map((x) => f0(x).padStart(11)).join(' ')}`);
    }
    const ratio = rates['moe-quickstart'].map((x, i) => x / rates.quickstart[i]);
    rows.push({ section: 'decode', ratio });
    log(`${'MoE / dense'.padEnd(36)} ${ratio.map((x) => `${x.toFixed(2)}×`.padStart(11)).join(' ')}`);
  }

  if (want('train')) {
    const preset = 'moe-quickstart', batch = 16, seq = 128, steps = 6 + WARMUP;
    const peerScript = path.join(root, 'bench', 'peers', 'torch_moe.py');
    const peer = torchAvailable() && existsSync(peerScript);
    if (!peer) log(`PyTorch peer skipped: ${PYTHON} -c "import torch" failed or ${peerScript} is missing`);
    log(`\n3. MoE training step (${preset}, batch ${batch} × ${seq}, forward + backward + clip + AdamW), ${threads} threads, beside PyTorch`);
    const t = runChild({ kind: 'train', preset, batch, seq, steps, threads });
    const p = peer ? runPython('torch_moe.py', ['--config', JSON.stringify(PRESETS[preset]), '--batch', String(batch), '--seq', String(seq), '--steps', String(steps), '--warmup', String(WARMUP)], threads) : null;
    const row: Row = {
      section: 'train', config: preset, params: t.params, batch: `${batch} × ${seq}`, threads,
      tslm_tokens_per_s: t.tokens_per_s, torch_tokens_per_s: p?.tokens_per_second ?? null, speed_ratio: p ? t.tokens_per_s / p.tokens_per_second : null,
      tslm_peak_rss_mib: t.peak_rss_mib, torch_peak_rss_mib: p?.peak_rss_mb ?? null, memory_ratio: p ? t.peak_rss_mib / p.peak_rss_mb : null,
      tslm_ms_per_step: t.ms_per_step, torch_ms_per_step: p?.ms_per_step ?? null, load_avg: loadavg()[0],
    };
    rows.push(row);
    log(`${'config'.padEnd(17)} ${'params'.padStart(9)} ${'tslm tok/s'.padStart(11)} ${'torch tok/s'.padStart(12)} ${'speed ×'.padStart(8)} ${'tslm RSS MiB'.padStart(13)} ${'torch RSS MiB'.padStart(14)} ${'memory ×'.padStart(9)}`);
    log(`${preset.padEnd(17)} ${String(t.params).padStart(9)} ${f0(row.tslm_tokens_per_s).padStart(11)} ${f0(row.torch_tokens_per_s).padStart(12)} ${f2(row.speed_ratio).padStart(8)} ${f0(row.tslm_peak_rss_mib).padStart(13)} ${f0(row.torch_peak_rss_mib).padStart(14)} ${f2(row.memory_ratio).padStart(9)}`);
  }
  return rows;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { threads: { type: 'string' }, steps: { type: 'string' }, only: { type: 'string' }, json: { type: 'boolean', default: false } } });
  const rows = await benchMoe({
    threads: values.threads ? Number(values.threads) : undefined, steps: values.steps ? Number(values.steps) : undefined,
    only: values.only?.split(','), log: values.json ? undefined : (l) => console.log(l),
  });
  if (values.json) console.log(JSON.stringify(rows));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => { console.error(e instanceof Error ? e.message : e); process.exit(1); });
}
