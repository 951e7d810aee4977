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
//              same per token at any length, attention grows with the context; and that LLaMA
//              with a sliding window of 256 (model_type mistral): its rolling KV cache holds
//              2 × 256 − 1 positions, so state and per-token cost stop growing past the window.
//              Each row also gives the heap bytes of the decoding state generate() allocates.
//
//   node dist/bench/ssm.js [--threads N] [--steps N] [--only scan,train,compare,decode] [--json]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import path from 'node:path';
import { shutdown } from '../src/backend/index.js';
import { defaultThreads } from '../src/backend/wasm/index.js';
import { PRESETS } from '../src/train/presets.js';
import { PYTHON, WARMUP, prepareCorpus, runChild, runPython, torchAvailable } from './families.js';

export interface Row { section: string; [k: string]: unknown }

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
    const p = peer ? runPython('torch_mamba.py', ['--config', JSON.stringify(PRESETS[preset]), '--batch', String(batch), '--seq', String(seq), '--steps', String(steps), '--warmup', String(WARMUP)], threads) : null;
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
    const windowed = { ...llama, model_type: 'mistral', sliding_window: 256 };
    log(`${'model'.padEnd(33)} ${'params'.padStart(9)} ${contexts.map((c) => `tok/s @${c}`.padStart(12)).join(' ')} ${'change'.padStart(7)} ${contexts.map((c) => `state KiB @${c}`.padStart(15)).join(' ')}`);
    for (const [name, config] of [['quickstart', llama], ['quickstart, window 256', windowed], ['mamba-quickstart', PRESETS['mamba-quickstart']]] as const) {
      const r = runChild({ kind: 'decode', config, contexts, tokens, threads });
      const rates = (r.rows as { decode_tok_s: number }[]).map((x) => x.decode_tok_s);
      const change = rates[rates.length - 1] / rates[0] - 1;
      rows.push({ section: 'decode', preset: name, model_type: r.model_type, params: r.params, threads, contexts: r.rows, change });
      log(`${`${name} (${r.model_type})`.padEnd(33)} ${String(r.params).padStart(9)} ${rates.map((x) => f0(x).padStart(12)).join(' ')} ${`${(change * 100).toFixed(0)}%`.padStart(7)} ${(r.rows as { state_kib: number }[]).map((x) => f0(x.state_kib).padStart(15)).join(' ')}`);
    }
    if (peer) {
      const p = runPython('torch_mamba.py', ['--decode', '--config', JSON.stringify(PRESETS['mamba-quickstart']), '--contexts', contexts.join(','), '--decode-steps', String(tokens)], threads);
      const rates = (p.decode as { decode_tokens_per_second: number }[]).map((x) => x.decode_tokens_per_second);
      rows.push({ section: 'decode', preset: 'mamba-quickstart', engine: 'pytorch', threads, contexts: p.decode, change: rates[rates.length - 1] / rates[0] - 1 });
      log(`${'PyTorch Mamba'.padEnd(33)} ${String(p.params).padStart(9)} ${rates.map((x) => f0(x).padStart(12)).join(' ')} ${`${((rates[rates.length - 1] / rates[0] - 1) * 100).toFixed(0)}%`.padStart(7)}`);
    }
  }
  return rows;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { threads: { type: 'string' }, steps: { type: 'string' }, only: { type: 'string' }, json: { type: 'boolean', default: false } } });
  const rows = await benchSsm({
    threads: values.threads ? Number(values.threads) : undefined, steps: values.steps ? Number(values.steps) : undefined,
    only: values.only?.split(','), log: values.json ? undefined : (l) => console.log(l),
  });
  if (values.json) console.log(JSON.stringify(rows));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => { console.error(e instanceof Error ? e.message : e); process.exit(1); });
}
