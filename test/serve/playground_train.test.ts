// The playground's Train tab in headless Chromium (Debian's chromium driven by playwright-core;
// skipped when it is absent): bad uploads get a message in the page; a byte-level BPE tokenizer and
// a small LLaMA train in a Web Worker on 2 kernel threads from the embedded Chinese classics, the
// loss falls, a sample is taken mid-run, and the main thread is never blocked for more than 50 ms
// (long tasks seen by a PerformanceObserver); a run paused, saved to IndexedDB, reloaded and
// resumed gives the uninterrupted run's losses and weights bit for bit; the downloads (HF
// directory files and GGUF) load in Node and give the page's logits; the served model fine-tuned
// with LoRA on Alpaca rows, its adapter (PEFT's files) on the same model in Node gives the page's logits.
// Screenshot: $TSLM_PLAYGROUND_SHOTS/playground-train.png, else a tslm-train-shots-* temporary folder
// (printed as a test diagnostic). Without the isolation headers, the tab says so and trains on 1 thread.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { PACKAGE_ROOT, startServer } from '../../src/serve/server.js';
import { init, shutdown } from '../../src/backend/index.js';
import { loadModel } from '../../src/io/index.js';
import { loadAdapter } from '../../src/lora/index.js';
import { noGrad, scope, tensor } from '../../src/tensor/index.js';
import { makeTinyModelDir } from './fixture.js';
import { launchChromium, noChromium, collectPageErrors } from '../chromium.js';

// The first 24,000 characters of the embedded Chinese classics (data/quickstart).
const CORPUS = readFileSync(path.join(PACKAGE_ROOT, 'data', 'quickstart', 'zh-classics.txt'), 'utf8').slice(0, 24000);
const OPTIONS: Record<string, string> = {
  '#train-vocab': '400', '#train-hidden': '64', '#train-layers': '2', '#train-steps': '14', '#train-batch': '4', '#train-seq': '64',
  '#train-lr': '0.01', '#train-warmup': '2', '#train-seed': '7',
};

interface Run { losses: number[]; weights: Buffer; dir: string }

async function openTrainTab(page: Page): Promise<void> {
  await page.click('#tab-train');
  await page.waitForFunction(() => /^ready|^no text|error/.test(document.getElementById('train-status')!.textContent ?? '') || document.getElementById('train-status')!.dataset.state === 'error', null, { timeout: 30000 });
  assert.equal(await page.getAttribute('#train-status', 'data-state'), 'ready', `worker start: ${await page.textContent('#train-status')}`);
}

async function fillOptions(page: Page): Promise<void> {
  for (const [sel, v] of Object.entries(OPTIONS)) await page.fill(sel, v);
}

const waitState = (page: Page, s: string, timeout = 60000) => page.waitForFunction((want) => document.body.dataset.trainState === want || document.getElementById('train-status')!.dataset.state === 'error', s, { timeout })
  .then(async () => assert.equal(await page.evaluate(() => document.body.dataset.trainState), s, `expected ${s}: ${await page.textContent('#train-status')}`));

/** Prepare the downloads and save the files into dir. */
async function download(page: Page, dir: string, names = ['config.json', 'model.safetensors', 'tokenizer.json', 'model.gguf']): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await page.click('#train-export');
  await page.waitForSelector(`[data-testid="download-${names[names.length - 1]}"]`, { timeout: 30000 });
  for (const name of names) {
    const [d] = await Promise.all([page.waitForEvent('download'), page.click(`[data-testid="download-${name}"]`)]);
    assert.equal(d.suggestedFilename(), name);
    await d.saveAs(path.join(dir, name));
  }
}

/** The logits of ids (1, T, V) of a model loaded in Node, flat. */
function forward(model: { forward(ids: ReturnType<typeof tensor>): { data(): unknown } }, ids: number[]): Float32Array {
  return noGrad(() => scope(() => (model.forward(tensor(Int32Array.from(ids), [1, ids.length], 'i32')).data() as Float32Array).slice()));
}
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => { let m = 0; for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i])); return m; };
const pageLogits = (page: Page, ids: number[]) => page.evaluate(async (x) => Array.from((await (window as any).__train.call({ type: 'logits', ids: x })).logits as Float32Array), ids);

const losses = (page: Page) => page.evaluate(() => (window as any).__train.metrics.map((m: { loss: number }) => m.loss) as number[]);

test('the Train tab: bad input, training in a worker, pause/save/reload/resume bit for bit, downloads that Node loads (headless Chromium)', { skip: noChromium, timeout: 180000 }, async (t) => {
  const modelDir = await makeTinyModelDir();
  const server = await startServer({ model: modelDir, port: 0 });
  const keep = process.env.TSLM_PLAYGROUND_SHOTS;
  const shots = keep ? (mkdirSync(keep, { recursive: true }), keep) : mkdtempSync(path.join(tmpdir(), 'tslm-train-shots-'));
  const work = mkdtempSync(path.join(tmpdir(), 'tslm-train-downloads-'));
  const browser = await launchChromium();
  await init({ threads: 1 });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    const page = await context.newPage();
    const errors: string[] = [];
    collectPageErrors(page, errors);
    // Long tasks (> 50 ms on the main thread) while the probe is on, and the longest gap of a 10 ms interval.
    await page.addInitScript(() => {
      const p = { on: false, long: [] as number[], maxGap: 0 };
      (window as any).__probe = p;
      new PerformanceObserver((l) => { if (p.on) for (const e of l.getEntries()) p.long.push(e.duration); }).observe({ type: 'longtask' });
      let last = performance.now();
      setInterval(() => { const now = performance.now(); if (p.on) p.maxGap = Math.max(p.maxGap, now - last); last = now; }, 10);
    });
    const url = `${server.url}/?threads=2`;
    await page.goto(url);
    await openTrainTab(page);
    assert.match(await page.textContent('#train-status') ?? '', /2 threads/);

    // Bad input: a message in the page, no crash.
    const bad = async (files: { name: string; mimeType: string; buffer: Buffer }[], text: string, expect: RegExp) => {
      // The status still shows the last case's error: wait for this case's own message.
      const before = await page.textContent('#train-status');
      await page.setInputFiles('#train-file', files);
      await page.fill('#train-text', text);
      await page.click('#train-start');
      await page.waitForFunction((prev) => {
        const el = document.getElementById('train-status')!;
        return el.dataset.state === 'error' && el.textContent !== prev;
      }, before, { timeout: 30000 });
      const msg = await page.textContent('#train-status') ?? '';
      assert.match(msg, expect);
      assert.equal(await page.evaluate(() => document.body.dataset.trainState), 'idle', msg);
      return msg;
    };
    const binary = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7919) % 256));
    t.diagnostic(await bad([{ name: 'photo.txt', mimeType: 'text/plain', buffer: binary }], '', /photo\.txt: looks like a binary file/));
    t.diagnostic(await bad([{ name: 'empty.txt', mimeType: 'text/plain', buffer: Buffer.alloc(0) }], '', /empty\.txt: the file is empty/));
    t.diagnostic(await bad([{ name: 'rows.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from('{"text": "a"}\n{"txt": 1}\n') }], '', /rows\.jsonl:2: expected an object with a string "text" field/));
    t.diagnostic(await bad([], '   \n  ', /only white space/));
    await fillOptions(page);
    await page.fill('#train-vocab', '2048');
    t.diagnostic(await bad([], '学而时习之，不亦说乎？'.repeat(20), /too small for a 2048-token vocabulary/));
    await page.setInputFiles('#train-file', []);

    // Run A: uninterrupted, with a sample mid-run, the main thread watched.
    await fillOptions(page);
    await page.fill('#train-text', CORPUS);
    // The idle page for 1.5 s (the baseline), then the page while the worker trains.
    await page.evaluate(() => { (window as any).__probe.on = true; });
    await page.waitForTimeout(1500);
    const idle = await page.evaluate(() => { const p = (window as any).__probe; const r = { long: p.long as number[], maxGap: p.maxGap as number }; p.long = []; p.maxGap = 0; return r; });
    t.diagnostic(`idle page: ${idle.long.length} long task(s), longest 10 ms-interval gap ${idle.maxGap.toFixed(1)} ms`);
    await page.click('#train-start');
    await page.waitForFunction(() => Number(document.getElementById('train-stats')!.dataset.step) >= 3 || document.getElementById('train-status')!.dataset.state === 'error', null, { timeout: 60000 });
    await page.click('#train-sample');
    await page.waitForFunction(() => (document.getElementById('train-samples')!.textContent ?? '').length > 0, null, { timeout: 30000 });
    await waitState(page, 'done');
    const probe = await page.evaluate(() => { const p = (window as any).__probe; p.on = false; return { long: p.long as number[], maxGap: p.maxGap as number }; });
    const a: Run = { losses: await losses(page), weights: Buffer.alloc(0), dir: path.join(work, 'a') };
    t.diagnostic(`run A losses: ${a.losses.map((l) => l.toFixed(3)).join(' ')}; stats: ${await page.textContent('#train-stats')}`);
    t.diagnostic(`main thread during training: ${probe.long.length} long task(s) ${JSON.stringify(probe.long.map(Math.round))}, longest 10 ms-interval gap ${probe.maxGap.toFixed(1)} ms`);
    t.diagnostic(`sample: ${JSON.stringify(await page.textContent('#train-samples'))}`);
    assert.equal(a.losses.length, 14);
    const head = a.losses.slice(0, 2).reduce((s, x) => s + x, 0) / 2, tail = a.losses.slice(-3).reduce((s, x) => s + x, 0) / 3;
    assert.ok(tail < head - 0.5, `the loss did not fall: first ${head.toFixed(3)}, last ${tail.toFixed(3)}`);
    // On an overloaded machine (more runnable work than CPUs: another test suite, other builds) any
    // 10 ms task of the page can be stretched past 50 ms while its process waits for a CPU, idle or
    // not (the baseline shows it); then the 50 ms bound is reported above, and a freeze (training
    // or tokenising on the main thread takes seconds) is still caught.
    const [load] = loadavg(), cpus = availableParallelism();
    if (load <= cpus) assert.deepEqual(probe.long, [], 'the main thread was blocked for more than 50 ms');
    else {
      t.diagnostic(`load average ${load.toFixed(1)} on ${cpus} CPUs: the 50 ms bound is not asserted; idle baseline ${JSON.stringify(idle.long.map(Math.round))}`);
      assert.ok(Math.max(0, ...probe.long) < 500, `the main thread was blocked for ${Math.max(...probe.long)} ms`);
    }
    assert.match(await page.textContent('#train-stats') ?? '', /^step 14 \/ 14 · loss \d+\.\d+ · [\d,]+ tokens\/s · ETA/);
    assert.match(await page.textContent('#train-samples') ?? '', /^\[step \d+\] The /);
    await page.screenshot({ path: path.join(shots, 'playground-train.png'), fullPage: true });
    t.diagnostic(`screenshot: ${path.join(shots, 'playground-train.png')}`);
    await download(page, a.dir);
    a.weights = readFileSync(path.join(a.dir, 'model.safetensors'));
    // The page's logits of a prompt, for the check in Node.
    const ids = [0, 5, 17, 42, 99, 260, 300];
    const logitsA = await pageLogits(page, ids);

    // Run B: the same run paused, saved to IndexedDB, the page reloaded, the checkpoint loaded and resumed.
    await page.reload();
    await openTrainTab(page);
    await fillOptions(page);
    await page.fill('#train-text', CORPUS);
    // (a step takes ~40 ms here: a click on Pause could land after the last one, so the worker is
    // told to pause at step 5; the Pause button itself is clicked in the longer LoRA run below)
    await page.evaluate(() => (window as any).__train.call({ type: 'pauseAt', step: 5 }));
    await page.click('#train-start');
    await waitState(page, 'paused');
    const at = Number(await page.getAttribute('#train-stats', 'data-step'));
    assert.equal(at, 5, `paused at step ${at}`);
    await page.click('#train-save');
    await page.waitForFunction((s) => document.getElementById('train-saved')!.dataset.step === String(s), at, { timeout: 30000 });
    await page.reload();
    await openTrainTab(page);
    await page.waitForFunction(() => !(document.getElementById('train-restore') as HTMLButtonElement).disabled, null, { timeout: 10000 });
    await page.click('#train-restore');
    await waitState(page, 'paused');
    assert.equal(Number(await page.getAttribute('#train-stats', 'data-step')), at, 'the loaded checkpoint is not at the step it was saved at');
    assert.equal(await page.inputValue('#train-steps'), '14');
    await page.click('#train-resume');
    await waitState(page, 'done');
    const b: Run = { losses: await losses(page), weights: Buffer.alloc(0), dir: path.join(work, 'b') };
    await download(page, b.dir);
    b.weights = readFileSync(path.join(b.dir, 'model.safetensors'));
    t.diagnostic(`run B paused at step ${at}, reloaded, resumed: ${b.losses.map((l) => l.toFixed(3)).join(' ')}`);
    assert.deepEqual(b.losses, a.losses, 'pause/save/reload/resume changed the losses');
    assert.ok(b.weights.equals(a.weights), 'pause/save/reload/resume changed the weights');

    // The downloads in Node: the HF directory and the GGUF give the page's logits.
    const V = (JSON.parse(readFileSync(path.join(a.dir, 'config.json'), 'utf8')) as { vocab_size: number }).vocab_size;
    assert.equal(logitsA.length, ids.length * V);
    for (const [what, p] of [['HF directory', a.dir], ['GGUF', path.join(a.dir, 'model.gguf')]] as const) {
      const { model, tokenizer } = await loadModel(p);
      const maxDiff = maxAbsDiff(forward(model, ids), logitsA);
      t.diagnostic(`${what}: max |logit difference| to the page ${maxDiff}`);
      assert.ok(maxDiff <= 1e-4, `${what}: logits differ from the page's by ${maxDiff}`);
      if (what === 'HF directory') {
        assert.ok(tokenizer, 'the downloaded tokenizer.json did not load');
        assert.equal(tokenizer!.decode(tokenizer!.encode('学而时习之')), '学而时习之');
      }
      model.dispose();
    }

    // LoRA: the served model fine-tuned on Alpaca rows in the page; the adapter (PEFT's files) on
    // the same model in Node gives the page's logits.
    await page.setInputFiles('#lora-rows', [{ name: 'bad.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from('{"instruction": "hi", "output": 3}\n') }]);
    await page.click('#lora-start');
    await page.waitForFunction(() => document.getElementById('train-status')!.dataset.state === 'error', null, { timeout: 30000 });
    t.diagnostic(`LoRA bad rows: ${await page.textContent('#train-status')}`);
    assert.match(await page.textContent('#train-status') ?? '', /bad\.jsonl/);
    const rows = Array.from({ length: 12 }, (_, i) => JSON.stringify({ instruction: `Count to ${i % 4 + 1}.`, output: ['one', 'one two', 'one two three', 'one two three four'][i % 4] })).join('\n');
    await page.setInputFiles('#lora-rows', [{ name: 'count.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from(rows) }]);
    for (const [sel, v] of Object.entries({ '#lora-r': '4', '#lora-alpha': '8', '#lora-steps': '2000', '#lora-batch': '4', '#lora-lr': '0.02', '#lora-seed': '1' })) await page.fill(sel, v);
    await page.click('#lora-start');
    // Pause, Resume and Stop from the buttons.
    await page.waitForFunction(() => Number(document.getElementById('train-stats')!.dataset.step) >= 3 || document.getElementById('train-status')!.dataset.state === 'error', null, { timeout: 60000 });
    await page.click('#train-pause');
    await waitState(page, 'paused');
    const p1 = Number(await page.getAttribute('#train-stats', 'data-step'));
    await page.waitForTimeout(300);
    assert.equal(Number(await page.getAttribute('#train-stats', 'data-step')), p1, 'steps went on while paused');
    await page.click('#train-resume');
    await page.waitForFunction((n) => Number(document.getElementById('train-stats')!.dataset.step) >= n + 5, p1, { timeout: 60000 });
    await page.click('#train-stop');
    await waitState(page, 'stopped');
    const lora = await losses(page);
    t.diagnostic(`LoRA: paused at step ${p1}, resumed, stopped at ${lora.length}; losses ${lora.slice(0, 3).map((l) => l.toFixed(3)).join(' ')} … ${lora.slice(-3).map((l) => l.toFixed(3)).join(' ')}; ${await page.textContent('#train-status')}`);
    assert.ok(lora.length > p1 + 4 && lora.length < 2000, `stopped at step ${lora.length}`);
    const mean = (x: number[]) => x.reduce((a, b) => a + b, 0) / x.length;
    assert.ok(mean(lora.slice(-3)) < mean(lora.slice(0, 3)), 'the LoRA loss did not fall');
    await page.click('#train-sample');
    await page.waitForFunction(() => (document.getElementById('train-samples')!.textContent ?? '').length > 0, null, { timeout: 30000 });
    const adapterDir = path.join(work, 'adapter');
    await download(page, adapterDir, ['adapter_config.json', 'adapter_model.safetensors']);
    const loraIds = [1, 5, 17, 42, 99];
    const logitsL = await pageLogits(page, loraIds);
    const base = await loadModel(modelDir);
    await loadAdapter(base.model, adapterDir);
    const dl = maxAbsDiff(forward(base.model, loraIds), logitsL);
    t.diagnostic(`LoRA adapter in Node: max |logit difference| to the page ${dl}`);
    assert.ok(dl <= 1e-4, `the adapter's logits differ from the page's by ${dl}`);
    assert.ok(maxAbsDiff(forward((await loadModel(modelDir)).model, loraIds), logitsL) > 1e-3, 'the adapter changed nothing');
    base.model.dispose();
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.close();
    await shutdown();
    rmSync(modelDir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  }
});

test('the Train tab without cross-origin isolation: says so and trains on 1 thread (headless Chromium)', { skip: noChromium, timeout: 120000 }, async (t) => {
  const modelDir = await makeTinyModelDir();
  const server = await startServer({ model: modelDir, port: 0 });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    collectPageErrors(page, errors, { console: false });
    // The server's responses without the COOP/COEP headers, as a host that does not send them.
    await page.route('**/*', async (route) => {
      const res = await route.fetch();
      const headers = { ...res.headers() };
      delete headers['cross-origin-opener-policy'];
      delete headers['cross-origin-embedder-policy'];
      await route.fulfill({ response: res, headers });
    });
    await page.goto(`${server.url}/?threads=2#train`);
    assert.equal(await page.evaluate(() => window.crossOriginIsolated), false);
    await page.waitForFunction(() => /^ready|error/.test(document.getElementById('train-status')!.textContent ?? '') || document.getElementById('train-status')!.dataset.state === 'error', null, { timeout: 30000 });
    const status = await page.textContent('#train-status') ?? '';
    t.diagnostic(status);
    assert.match(status, /^ready: wasm backend, 1 thread \(the page is not cross-origin isolated, so no SharedArrayBuffer/);
    await fillOptions(page);
    await page.fill('#train-steps', '2');
    await page.fill('#train-text', CORPUS.slice(0, 8000));
    await page.click('#train-start');
    await waitState(page, 'done');
    assert.equal((await losses(page)).length, 2);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.close();
    rmSync(modelDir, { recursive: true, force: true });
  }
});
