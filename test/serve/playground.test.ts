// The playground served by `tslm serve`: its static routes (types, isolation headers, paths that
// try to escape), then the page in headless Chromium (Debian's chromium driven by playwright-core;
// skipped when it is absent): a prompt in server mode streams text from /v1/chat/completions, the
// same in in-browser mode streams it from the model running in a Web Worker on the wasm backend.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT, startServer } from '../../src/serve/server.js';
import { serveStatic } from '../../src/serve/static.js';
import { makeTinyModelDir } from './fixture.js';
import { launchChromium, noChromium, collectPageErrors } from '../chromium.js';

/** A raw GET/HEAD (fetch would normalise the `..` that these requests are about). */
function get(port: number, rawPath: string, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: rawPath, method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('the playground routes: the page, browser modules, wasm, vendor modules, model files; nothing else', { timeout: 60000 }, async () => {
  const dir = await makeTinyModelDir();
  const server = await startServer({ model: dir, port: 0 });
  try {
    const ok: Array<[string, string, (b: Buffer) => void]> = [
      ['/', 'text/html', (b) => assert.match(b.toString(), /id="messages"/)],
      ['/playground/app.js', 'text/javascript', (b) => assert.ok(b.toString().includes('/v1/chat/completions'))],
      ['/playground/worker.js', 'text/javascript', () => {}],
      ['/playground/style.css', 'text/css', () => {}],
      ['/dist/src/browser.js', 'text/javascript', (b) => assert.match(b.toString(), /export/)],
      // Web Workers have no import maps: the bare name is rewritten to the vendor URL.
      ['/dist/src/tokenizers/chat.js', 'text/javascript', (b) => {
        assert.match(b.toString(), /from '\/vendor\/@huggingface\/jinja\/index\.js'/);
        assert.doesNotMatch(b.toString(), /from '@huggingface\/jinja'/);
      }],
      ['/dist/wasm/kernels-simd.wasm', 'application/wasm', (b) => assert.deepEqual([...b.subarray(0, 4)], [0, 0x61, 0x73, 0x6d])],
      ['/vendor/@huggingface/jinja/index.js', 'text/javascript', (b) => assert.ok(/\bTemplate\b/.test(b.toString()) && /^export\s*\{/m.test(b.toString()), 'not the ES module build of @huggingface/jinja')],
      ['/playground/model/config.json', 'application/json', (b) => assert.equal(JSON.parse(b.toString()).num_hidden_layers, 2)],
      ['/playground/model/tokenizer.json', 'application/json', () => {}],
      ['/playground/model/tokenizer_config.json', 'application/json', (b) => assert.ok(JSON.parse(b.toString()).chat_template)],
      ['/playground/model/model.safetensors', 'application/octet-stream', (b) => assert.equal(b.length, statSync(path.join(dir, 'model.safetensors')).size)],
    ];
    for (const [p, type, check] of ok) {
      const r = await get(server.port, p);
      assert.equal(r.status, 200, `${p}: ${r.status} ${r.body.toString().slice(0, 200)}`);
      assert.ok(String(r.headers['content-type']).startsWith(type), `${p}: content-type ${r.headers['content-type']}, expected ${type}`);
      assert.equal(r.headers['cross-origin-opener-policy'], 'same-origin', p);
      assert.equal(r.headers['cross-origin-embedder-policy'], 'require-corp', p);
      assert.equal(r.headers['cross-origin-resource-policy'], 'same-origin', p);
      check(r.body);
    }
    const head = await get(server.port, '/playground/model/model.safetensors', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers['content-length']), statSync(path.join(dir, 'model.safetensors')).size);
    assert.equal(head.body.length, 0);

    const refused = [
      '/playground/model/../config.json', '/playground/model/%2e%2e/config.json', '/playground/model/..%2fconfig.json',
      '/playground/model/secret.txt', '/playground/model/', '/playground/model/config.json/x',
      '/playground/../package.json', '/playground/%2e%2e/package.json', '/playground/..%5cpackage.json', '/playground/sub/app.js',
      '/dist/src/../../package.json', '/dist/src/%2e%2e/%2e%2e/package.json', '/dist/src/..%2f..%2fpackage.json',
      '/dist/src/browser.d.ts', '/dist/src/browser.js.map', '/dist/test/serve/playground.test.js', '/dist/wasm/../src/browser.js',
      '/dist/src//etc/passwd', '/dist/src/%00.js', '/vendor/@huggingface/jinja/../../package.json', '/vendor/yaml/index.js',
      '/node_modules/@huggingface/jinja/package.json', '/package.json', '/src/browser.ts', '/etc/passwd',
    ];
    const secret = readFileSync(path.join(dir, 'config.json'));
    for (const p of refused) {
      const r = await get(server.port, p);
      assert.equal(r.status, 404, `${p} answered ${r.status}: ${r.body.toString().slice(0, 120)}`);
      assert.ok(!r.body.equals(secret));
    }
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

interface Turn { partials: string[]; final: string; finish: string; tps: string; tokens: number; status: string }

test('the playground streams a reply in server mode and in in-browser mode (headless Chromium)', { skip: noChromium, timeout: 120000 }, async (t) => {
  // A long context, so that a generation outlasts the click on Stop.
  const dir = await makeTinyModelDir(undefined, { maxPositions: 4096 });
  const server = await startServer({ model: dir, port: 0 });
  const keep = process.env.TSLM_PLAYGROUND_SHOTS;
  const shots = keep ? (mkdirSync(keep, { recursive: true }), keep) : mkdtempSync(path.join(tmpdir(), 'tslm-playground-shots-'));
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 760 } });
    const errors: string[] = [];
    collectPageErrors(page, errors);
    page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
    await page.goto(`${server.url}/`);
    await page.waitForFunction(() => document.getElementById('model-name')!.textContent !== '…', null, { timeout: 10000 });
    assert.equal(await page.textContent('#model-name'), server.registry.ids()[0]);
    assert.equal(await page.evaluate(() => window.crossOriginIsolated), true, 'the page is not cross-origin isolated');
    // Record every distinct text of the newest assistant message as it changes.
    await page.evaluate(() => {
      const w = window as unknown as { __partials: string[] };
      w.__partials = [];
      new MutationObserver(() => {
        const all = document.querySelectorAll('#messages .msg.assistant .content');
        const text = all.length ? all[all.length - 1].textContent ?? '' : '';
        if (text !== w.__partials[w.__partials.length - 1]) w.__partials.push(text);
      }).observe(document.getElementById('messages')!, { subtree: true, childList: true, characterData: true });
    });
    await page.fill('#temperature', '1');
    await page.fill('#max_tokens', '24');
    await page.fill('#seed', '7');

    const turn = async (prompt: string, timeout: number): Promise<Turn> => {
      const before = await page.locator('#messages .msg.assistant').count();
      await page.evaluate(() => { (window as unknown as { __partials: string[] }).__partials = []; });
      await page.fill('#prompt', prompt);
      await page.click('#send');
      await page.waitForFunction((n) => {
        const a = document.querySelectorAll('#messages .msg.assistant');
        return a.length > n && (a[a.length - 1] as HTMLElement).dataset.finish !== undefined;
      }, before, { timeout });
      return page.evaluate(() => {
        const a = document.querySelectorAll('#messages .msg.assistant');
        const last = a[a.length - 1] as HTMLElement;
        const tps = document.getElementById('tps')!;
        return {
          partials: (window as unknown as { __partials: string[] }).__partials.filter((s) => s !== ''),
          final: last.querySelector('.content')!.textContent ?? '',
          finish: last.dataset.finish ?? '',
          tps: tps.textContent ?? '',
          tokens: Number(tps.dataset.tokens),
          status: document.getElementById('status')!.textContent ?? '',
        };
      });
    };
    const checkStreamed = (r: Turn, mode: string) => {
      assert.notEqual(r.finish, 'error', `${mode}: ${r.final} (status: ${r.status})`);
      assert.ok(['stop', 'length'].includes(r.finish), `${mode}: finish ${r.finish}`);
      assert.ok(r.final.length > 0, `${mode}: empty reply`);
      assert.ok(new Set(r.partials).size >= 2, `${mode}: the reply did not stream (partials: ${JSON.stringify(r.partials)})`);
      for (let i = 1; i < r.partials.length; i++) assert.ok(r.partials[i].startsWith(r.partials[i - 1]), `${mode}: partial ${i} does not extend the one before`);
      assert.equal(r.partials[r.partials.length - 1], r.final);
      assert.ok(r.tokens >= 2, `${mode}: ${r.tokens} tokens counted`);
      assert.match(r.tps, /^\d+(\.\d+)? tok\/s · \d+ tokens/, `${mode}: tokens/s readout "${r.tps}"`);
    };

    // Server mode: /v1/chat/completions with stream: true.
    const s = await turn('Hello! Tell me about foxes.', 30000);
    t.diagnostic(`server mode: ${s.partials.length} partials, ${s.tps}, ${JSON.stringify(s.final)}`);
    checkStreamed(s, 'server');
    const serverShot = path.join(shots, 'playground-server.png');
    await page.screenshot({ path: serverShot, fullPage: true });
    // The schema box sends response_format json_schema; the reply is JSON that follows it.
    const schema = JSON.stringify({ type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'], additionalProperties: false });
    await page.fill('#schema', schema);
    await page.fill('#max_tokens', '40');
    const sj = await turn('Answer in JSON.', 30000);
    assert.equal(sj.finish, 'stop', `server json: ${sj.final}`);
    assert.equal(typeof JSON.parse(sj.final).ok, 'boolean');
    await page.fill('#schema', '');
    await page.fill('#max_tokens', '24');

    // In-browser mode: the worker loads the model from /playground/model/ and runs it on the wasm backend.
    await page.check('#mode-browser');
    await page.waitForFunction(() => {
      const st = document.getElementById('status')!;
      return st.dataset.state === 'error' || st.textContent === 'in-browser model ready';
    }, null, { timeout: 40000 });
    assert.equal(await page.getAttribute('#status', 'data-state'), 'ready', `in-browser load: ${await page.textContent('#status')}`);
    const info = await page.textContent('#browser-info');
    assert.match(info ?? '', /crossOriginIsolated: true/);
    assert.match(info ?? '', /wasm backend, \d+ threads/);
    const b = await turn('Now from the page itself: hello again.', 30000);
    t.diagnostic(`in-browser mode: ${b.partials.length} partials, ${b.tps}, ${JSON.stringify(b.final)}`);
    checkStreamed(b, 'in-browser');
    const browserShot = path.join(shots, 'playground-in-browser.png');
    await page.screenshot({ path: browserShot, fullPage: true });

    // The schema constrains the in-browser reply too (structured generation in the worker).
    await page.fill('#schema', schema);
    await page.fill('#max_tokens', '40');
    const bj = await turn('Answer in JSON.', 30000);
    assert.equal(bj.finish, 'stop', `in-browser json: ${bj.final}`);
    assert.equal(typeof JSON.parse(bj.final).ok, 'boolean');

    // Stop ends an in-browser generation early (the worker yields between steps to hear it). The
    // model may sample its end token before the click lands (Stop is then disabled): try again.
    await page.fill('#schema', '');
    await page.fill('#max_tokens', '3000');
    let stoppedAfter = -1, finish: string | null = null;
    for (let attempt = 0; attempt < 4 && finish !== 'stopped'; attempt++) {
      const nBefore = await page.locator('#messages .msg.assistant').count();
      await page.fill('#prompt', `A long story, please.${' Go on.'.repeat(attempt)}`);
      await page.click('#send');
      await page.waitForFunction((n) => {
        const a = document.querySelectorAll('#messages .msg.assistant .content');
        return a.length > n && (a[a.length - 1].textContent ?? '').length > 0;
      }, nBefore, { timeout: 20000 });
      try { await page.click('#stop', { timeout: 3000 }); } catch { /* the generation had already ended */ }
      await page.waitForFunction(() => {
        const a = document.querySelectorAll('#messages .msg.assistant');
        return (a[a.length - 1] as HTMLElement).dataset.finish !== undefined;
      }, null, { timeout: 20000 });
      stoppedAfter = Number(await page.getAttribute('#tps', 'data-tokens'));
      finish = await page.getAttribute('#messages .msg.assistant:last-child', 'data-finish');
    }
    assert.equal(finish, 'stopped', `stop: after ${stoppedAfter} tokens`);
    assert.ok(stoppedAfter < 3000, `stopped after ${stoppedAfter} tokens`);
    t.diagnostic(`in-browser stop: after ${stoppedAfter} tokens`);

    for (const f of [serverShot, browserShot]) {
      const png = readFileSync(f);
      assert.ok(png.length > 2000, `${f} is ${png.length} bytes`);
      assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${f} is not a PNG`);
    }
    t.diagnostic(`screenshots: ${keep ? shots : '(temporary; set TSLM_PLAYGROUND_SHOTS=dir to keep them)'}`);
    assert.deepEqual(errors, []);

    // Served without the isolation headers, the page says why in-browser mode cannot run.
    const plain = createServer((req, res) => {
      res.setHeader('Cross-Origin-Opener-Policy', 'unsafe-none');
      res.setHeader('Cross-Origin-Embedder-Policy', 'unsafe-none');
      if (!serveStatic(req, res, { root: PACKAGE_ROOT, modelDir: dir })) { res.writeHead(404); res.end(); }
    });
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    try {
      const p2 = await browser.newPage();
      const errors2: string[] = [];
      p2.on('pageerror', (e) => errors2.push(e.message));
      await p2.goto(`http://127.0.0.1:${(plain.address() as AddressInfo).port}/`);
      assert.equal(await p2.evaluate(() => window.crossOriginIsolated), false);
      await p2.check('#mode-browser');
      await p2.waitForFunction(() => document.getElementById('status')!.dataset.state === 'error', null, { timeout: 10000 });
      assert.match((await p2.textContent('#status')) ?? '', /cross-origin-isolated.*Cross-Origin-Opener-Policy.*Cross-Origin-Embedder-Policy/);
      assert.deepEqual(errors2, []);
    } finally {
      plain.close();
    }
  } finally {
    await browser.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
    if (!keep) rmSync(shots, { recursive: true, force: true });
  }
});
