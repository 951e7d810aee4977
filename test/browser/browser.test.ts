// The same package runs in a browser: headless Chromium (Debian's chromium, driven by
// playwright-core) loads a cross-origin-isolated page whose Web Worker runs the wasm backend on
// two threads. CI installs chromium; elsewhere the test is skipped when it is absent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { serveStatic } from '../../src/serve/static.js';
import { launchChromium, noChromium, collectPageErrors } from '../chromium.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.map': 'application/json' };

test('wasm backend, autograd and generation run in headless Chromium', { skip: noChromium, timeout: 120000 }, async () => {
  const server = createServer((req, res) => {
    // The package's browser modules as tslm serve sends them: a Web Worker has no import map, so
    // their bare imports (@huggingface/jinja) are rewritten to /vendor/ URLs.
    if (/^\/(dist|vendor)\//.test(req.url ?? '') && serveStatic(req, res, { root, modelDir: null })) return;
    const url = new URL(req.url ?? '/', 'http://x');
    let rel = decodeURIComponent(url.pathname);
    if (rel === '/' || rel === '/page.html') rel = '/test/browser/page.html';
    if (rel === '/worker.js') rel = '/test/browser/worker.js';
    const file = path.join(root, path.normalize(rel));
    if (!file.startsWith(root + path.sep) || !existsSync(file)) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, {
      'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
    });
    res.end(readFileSync(file));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    collectPageErrors(page, errors, { console: false });
    await page.goto(`http://127.0.0.1:${port}/page.html`);
    await page.waitForFunction(() => (window as unknown as { __result?: unknown }).__result, null, { timeout: 90000 });
    const r = await page.evaluate(() => (window as unknown as { __result: any }).__result);
    assert.deepEqual(errors, []);
    assert.equal(r.ok, true, r.error);
    assert.equal(r.crossOriginIsolated, true);
    assert.equal(r.threads, 2);
    assert.ok(r.maxErr < 1e-3, `wasm vs ref matmul max error ${r.maxErr}`);
    assert.deepEqual(r.grad, [2, 4, 6]);
    assert.equal(r.ids.length, 5);
    assert.deepEqual(r.ids, r.refIds);
  } finally {
    await browser.close();
    server.close();
  }
});
