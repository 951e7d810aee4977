// Server load test: `tslm serve` (a child process) with the 15M LLaMA shape (random weights, see
// bench/llama.ts) and the real LLaMA-2 32K tokenizer, driven by N concurrent clients that share a
// fixed number of streamed chat completions (32 tokens each; a random model never stops early,
// so every request does the same work), with continuous batching (the default) and without
// (--batch-rows 0). Reports latency p50/p99, time to first token, requests/s, generated
// tokens/s, and failures (there must be none).
//
// Run: node bin/tslm.js bench serve [--threads 2]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, shutdown } from '../src/backend/index.js';
import { saveModel } from '../src/io/model.js';
import { HFTokenizer } from '../src/tokenizers/index.js';
import { loadTest } from '../src/serve/loadtest.js';
import { randomLlama15M } from './llama.js';
import { llama2Json } from '../test/tokenizers/real_vocabs.js';

export interface Row {
  batching: boolean;
  clients: number;
  requests: number;
  failed: number;
  p50_ms: number;
  p99_ms: number;
  ttft_p50_ms: number;
  ttft_p99_ms: number;
  req_s: number;
  tok_s: number;
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export async function benchServe(opts: { log?: (line: string) => void; threads?: number } = {}): Promise<Row[]> {
  const log = opts.log ?? (() => {});
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-bench-serve-'));
  const rows: Row[] = [];
  await init({ threads: 1 });
  try {
    const model = randomLlama15M(1);
    await saveModel(model, dir, { tokenizer: new HFTokenizer(await llama2Json()) });
    model.dispose();
    await shutdown();
    const threads = opts.threads ?? 2;
    const body = (i: number) => ({ messages: [{ role: 'user', content: `Request ${i}: write a short story about a fox.` }], max_tokens: 32, temperature: 0.8, seed: i });
    log(`model: 15M LLaMA shape (6×288, random weights), LLaMA-2 32K tokenizer; server --threads ${threads} --max-active 8; streamed chat, 32 tokens per request`);
    log('batching  clients  requests  failed   p50 ms   p99 ms   TTFT p50   TTFT p99    req/s    tokens/s');
    for (const batching of [true, false]) {
      const proc = spawn(process.execPath, [path.join(root, 'bin', 'tslm.js'), 'serve', '--model', dir, '--port', '0', '--threads', String(threads), '--max-active', '8', '--batch-rows', batching ? '8' : '0', '--quiet'], { stdio: ['ignore', 'pipe', 'inherit'] });
      try {
        const url = await new Promise<string>((resolve, reject) => {
          let out = '';
          proc.stdout!.on('data', (d) => { out += d; const m = /listening on (http:\/\/\S+)/.exec(out); if (m) resolve(m[1]); });
          proc.on('exit', (c) => reject(new Error(`tslm serve exited with ${c}`)));
        });
        await loadTest({ url, clients: 2, requests: 4, stream: true, body }); // warm-up
        for (const clients of batching ? [1, 4, 8] : [4, 8]) {
          const r = await loadTest({ url, clients, requests: clients === 1 ? 12 : 32, stream: true, body });
          const row: Row = {
            batching, clients, requests: r.requests, failed: r.failed, p50_ms: r.latencyMs.p50, p99_ms: r.latencyMs.p99,
            ttft_p50_ms: r.firstTokenMs!.p50, ttft_p99_ms: r.firstTokenMs!.p99, req_s: r.requestsPerSecond, tok_s: r.tokensPerSecond,
          };
          rows.push(row);
          log(`${(batching ? 'on' : 'off').padStart(8)}  ${String(clients).padStart(7)}  ${String(r.requests).padStart(8)}  ${String(r.failed).padStart(6)}  ${row.p50_ms.toFixed(0).padStart(7)}  ${row.p99_ms.toFixed(0).padStart(7)}  ${row.ttft_p50_ms.toFixed(0).padStart(9)}  ${row.ttft_p99_ms.toFixed(0).padStart(9)}  ${row.req_s.toFixed(2).padStart(7)}  ${row.tok_s.toFixed(1).padStart(10)}`);
          if (r.failed) log(`  failures: ${r.errors.slice(0, 3).join('; ')}`);
        }
      } finally {
        proc.kill('SIGTERM');
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
