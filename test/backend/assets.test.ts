// Where the wasm backend finds its kernel files: the package's own layout by default, or one
// folder named by init({ assets }) (a page bundled by esbuild serves them there).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { kernelAssets } from '../../src/backend/wasm/index.js';
import { init, shutdown, backend, matmul, randn, Generator } from '../../src/index.js';

after(async () => { await shutdown(); });

test('by default the kernels and the worker are the package\'s own files', () => {
  const a = kernelAssets();
  for (const u of [a.wasm('relaxed'), a.wasm('simd'), a.worker()]) assert.ok(existsSync(fileURLToPath(u)), `${u.href} does not exist`);
});

test('assets names one folder (with or without the trailing slash) that holds the kernels and worker.js', () => {
  for (const base of ['https://example.org/static/tslm', 'https://example.org/static/tslm/', new URL('https://example.org/static/tslm')]) {
    const a = kernelAssets(base);
    assert.equal(a.wasm('simd').href, 'https://example.org/static/tslm/kernels-simd.wasm');
    assert.equal(a.worker().href, 'https://example.org/static/tslm/worker.js');
  }
  // Relative to nothing (Node has no page URL): a clear error naming the option.
  assert.throws(() => kernelAssets('static/tslm/'), /init\(\{ assets \}\) must be a URL of the folder holding the kernel files, got 'static\/tslm\/'/);
});

test('init({ assets }) runs on 2 threads from a folder of copied kernel files, and names the missing file when they are absent', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-assets-'));
  try {
    const own = kernelAssets();
    await assert.rejects(init({ threads: 2, assets: pathToFileURL(dir + '/') }), /cannot load the kernel module .*kernels-relaxed\.wasm/);
    for (const v of ['relaxed', 'simd']) copyFileSync(fileURLToPath(own.wasm(v)), path.join(dir, `kernels-${v}.wasm`));
    copyFileSync(fileURLToPath(own.worker()), path.join(dir, 'worker.js'));
    copyFileSync(fileURLToPath(new URL('./pool.js', own.worker())), path.join(dir, 'pool.js'));
    copyFileSync(fileURLToPath(new URL('./platform.js', own.worker())), path.join(dir, 'platform.js'));
    await init({ threads: 2, assets: pathToFileURL(dir) });
    assert.equal(backend().name, 'wasm');
    assert.equal(backend().threads, 2);
    assert.equal(backend().threadsUnavailable, null);
    const g = new Generator(1);
    const c = matmul(randn([256, 256], { generator: g }), randn([256, 256], { generator: g }));
    assert.ok(c.toArray().every(Number.isFinite));
  } finally {
    await shutdown();
    rmSync(dir, { recursive: true, force: true });
  }
});
