// Training in the browser beside Node, in one run: the playground's Train tab (headless Chromium,
// Debian's chromium through playwright-core, the page served by `tslm serve` cross-origin isolated,
// `?threads=N`) and a TrainSession in this Node process, both on N kernel threads, with the
// quickstart's LLaMA (hidden 128, 4 layers, 2048-token BPE) and schedule (batch 16 × 128) on the
// same text (the first Brown files and Chinese classics of the quickstart corpus, as one
// document). Node runs before and after the browser (their mean is the Node figure), so that a
// change in the machine's load during the run shows. Reported: tokens/s over the steps after
// WARMUP, by the step times the trainer measures and by wall clock (in the page: between the
// arrivals of the step messages, so the worker's messaging and the page's painting count), and
// the page's longest main-thread task during training.
//
// Run: node bin/tslm.js bench browser [--threads 2]
import { existsSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import { init, shutdown } from '../src/backend/index.js';
import { TrainSession } from '../src/train/session.js';
import { brownText } from '../src/train/quickstart.js';
import { PACKAGE_ROOT, startServer } from '../src/serve/server.js';
import { makeTinyModelDir } from '../test/serve/fixture.js';

const CHROMIUM = '/usr/bin/chromium';
const WARMUP = 3, MEASURED = 12;

export interface Row { side: string; threads: number; steps: number; step_tok_s: number; wall_tok_s: number; longest_task_ms: number | null }

function corpus(): string {
  const zh = readFileSync(path.join(PACKAGE_ROOT, 'data', 'quickstart', 'zh-classics.txt'), 'utf8').slice(0, 60000);
  return [...brownText(8).map((d) => d.text), zh].join('\n');
}

const OPTIONS = { steps: WARMUP + MEASURED, batchSize: 16, seqLen: 128, lr: 2e-3, warmupSteps: 2, seed: 1337 };
const CONFIG = { model_type: 'llama', hidden_size: 128, intermediate_size: 344, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 2048, max_position_embeddings: 128, rms_norm_eps: 1e-5, tie_word_embeddings: true };

/** Tokens/s of steps WARMUP+1… from their own timings (equal-size steps: tokens over summed step time). */
function stepRate(tps: number[]): number {
  const m = tps.slice(WARMUP);
  return m.length / m.reduce((s, x) => s + 1 / x, 0);
}

async function nodeRun(text: string, threads: number): Promise<Row> {
  await init({ threads });
  try {
    const s = TrainSession.create([text], { ...OPTIONS, config: CONFIG });
    const tps: number[] = [];
    let t0 = 0;
    while (!s.done) {
      if (tps.length === WARMUP) t0 = performance.now();
      tps.push((await s.step()).tokensPerSecond);
    }
    const wall = (MEASURED * OPTIONS.batchSize * OPTIONS.seqLen) / ((performance.now() - t0) / 1000);
    s.dispose();
    return { side: 'node', threads, steps: MEASURED, step_tok_s: stepRate(tps), wall_tok_s: wall, longest_task_ms: null };
  } finally {
    await shutdown();
  }
}

async function browserRun(text: string, threads: number, url: string): Promise<Row> {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.addInitScript(() => {
      const p = { long: [] as number[] };
      (window as any).__probe = p;
      new PerformanceObserver((l) => { for (const e of l.getEntries()) p.long.push(e.duration); }).observe({ type: 'longtask' });
    });
    await page.goto(`${url}/?threads=${threads}#train`);
    await page.waitForFunction(() => /^ready/.test(document.getElementById('train-status')!.textContent ?? ''), null, { timeout: 60000 });
    const fields: Record<string, number> = {
      '#train-vocab': CONFIG.vocab_size, '#train-hidden': CONFIG.hidden_size, '#train-layers': CONFIG.num_hidden_layers, '#train-steps': OPTIONS.steps,
      '#train-batch': OPTIONS.batchSize, '#train-seq': OPTIONS.seqLen, '#train-lr': OPTIONS.lr, '#train-warmup': OPTIONS.warmupSteps, '#train-seed': OPTIONS.seed,
    };
    for (const [sel, v] of Object.entries(fields)) await page.fill(sel, String(v));
    // (page.fill types 160 kB too slowly: set the value)
    await page.evaluate((t) => { (document.getElementById('train-text') as HTMLTextAreaElement).value = t; }, text);
    await page.evaluate(() => { (window as any).__probe.long = []; });
    await page.click('#train-start');
    await page.waitForFunction(() => document.body.dataset.trainState === 'done' || document.getElementById('train-status')!.dataset.state === 'error', null, { timeout: 600000 });
    if (await page.evaluate(() => document.body.dataset.trainState) !== 'done') throw new Error(`the page did not finish: ${await page.textContent('#train-status')}`);
    const r = await page.evaluate(() => ({
      tps: (window as any).__train.metrics.map((m: { tokensPerSecond: number }) => m.tokensPerSecond) as number[],
      arrivals: (window as any).__train.metrics.map((m: { receivedAt: number }) => m.receivedAt) as number[], long: (window as any).__probe.long as number[],
    }));
    const a = r.arrivals;
    const wall = (MEASURED * OPTIONS.batchSize * OPTIONS.seqLen) / ((a[a.length - 1] - a[WARMUP - 1]) / 1000);
    return { side: 'chromium', threads, steps: MEASURED, step_tok_s: stepRate(r.tps), wall_tok_s: wall, longest_task_ms: r.long.length ? Math.max(...r.long) : 0 };
  } finally {
    await browser.close();
  }
}

export async function benchBrowser(opts: { log?: (line: string) => void; threads?: number } = {}): Promise<Row[]> {
  const log = opts.log ?? (() => {});
  if (!existsSync(CHROMIUM)) { log(`skipped: ${CHROMIUM} is not installed`); return []; }
  const threads = opts.threads ?? 2;
  const text = corpus();
  log(`quickstart LLaMA (128 hidden, 4 layers, 2048-token BPE trained on ${text.length.toLocaleString()} characters), batch 16 × 128, ${threads} threads; ` +
    `${MEASURED} steps measured after ${WARMUP}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const modelDir = await makeTinyModelDir();
  const server = await startServer({ model: modelDir, port: 0 });
  const rows: Row[] = [];
  const show = (r: Row) => log(`${r.side.padEnd(9)} ${String(r.threads).padStart(7)} ${r.step_tok_s.toFixed(0).padStart(14)} ${r.wall_tok_s.toFixed(0).padStart(14)}${r.longest_task_ms === null ? '' : `   longest main-thread task ${r.longest_task_ms.toFixed(0)} ms`}`);
  log('side      threads  tok/s (steps)   tok/s (wall)');
  try {
    for (const run of [() => nodeRun(text, threads), () => browserRun(text, threads, server.url), () => nodeRun(text, threads)]) {
      const r = await run();
      rows.push(r);
      show(r);
    }
  } finally {
    await server.close();
  }
  const node = rows.filter((r) => r.side === 'node'), web = rows.find((r) => r.side === 'chromium')!;
  const mean = (k: 'step_tok_s' | 'wall_tok_s') => (node[0][k] + node[1][k]) / 2;
  log(`chromium / node (mean of the two Node runs): ${(web.step_tok_s / mean('step_tok_s')).toFixed(2)}× by step times, ${(web.wall_tok_s / mean('wall_tok_s')).toFixed(2)}× by wall clock; load average now ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  return rows;
}
