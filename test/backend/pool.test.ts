// The thread pool's job protocol (src/backend/wasm/pool.ts; both sides' loops in the kernel module,
// wasm/as/jobs.ts): the posting thread takes every share no worker has claimed, so a job completes
// even when its workers never wake up; a failing share is reported after the rest was taken; a
// worker that wakes up late claims nothing of a job that is gone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { CTRL, JobPoster, kernelImports } from '../../src/backend/wasm/pool.js';
import type { PostExports } from '../../src/backend/wasm/pool.js';
import { BinaryOp, KERNEL_NAMES } from '../../src/backend/kernels.js';

const module = new WebAssembly.Module(readFileSync(new URL('../../wasm/kernels-simd.wasm', import.meta.url)));
// The kernel module wants 64 pages at least (its data lies from 64 KiB on); the control block is at 0.
const memory = (): WebAssembly.Memory => new WebAssembly.Memory({ initial: 80, maximum: 80, shared: true });
const BINARY = KERNEL_NAMES.indexOf('binary');

/**
 * Counters at byte 4096: a job is `binary` ADD of ones into 16·nt of them in nt shares of 16, so
 * counter i counts the runs of share ⌊i/16⌋.
 */
function counters(mem: WebAssembly.Memory, nt: number): { args: (out?: number) => number[]; get(share: number): number[] } {
  const i32 = new Int32Array(mem.buffer), f32 = new Float32Array(mem.buffer);
  const counts = 4096, meta = 8192, ones = 8192 + 64, n = 16 * nt;
  i32.set([n, 1, 1], meta >> 2);
  f32.fill(1, ones >> 2, (ones >> 2) + n);
  f32.fill(0, counts >> 2, (counts >> 2) + n);
  return {
    args: (out = counts) => [BinaryOp.ADD, out, counts, ones, 1, meta, n],
    get: (share) => [...new Set(f32.subarray((counts >> 2) + 16 * share, (counts >> 2) + 16 * share + 16))],
  };
}

test('a job completes on the posting thread alone when no worker runs (each share once); a failure is thrown after the rest was taken', () => {
  const mem = memory();
  const exp = new WebAssembly.Instance(module, kernelImports(mem)).exports as unknown as PostExports;
  const poster = new JobPoster(mem, 0, exp, KERNEL_NAMES.length); // no worker runs
  for (const nt of [1, 2, 4, 7]) {
    const c = counters(mem, nt);
    poster.run(BINARY, c.args(), nt);
    for (let s = 0; s < nt; s++) assert.deepEqual(c.get(s), [1], `share ${s} of ${nt}`);
    assert.equal(new Int32Array(mem.buffer)[CTRL.PENDING], 0);
  }
  // Every share traps (its output is outside the memory): the first error is thrown, the other
  // shares are taken and counted, and the next job runs.
  const c = counters(mem, 3);
  assert.throws(() => poster.run(BINARY, c.args(mem.buffer.byteLength + 4096), 3), /out of bounds/);
  assert.equal(new Int32Array(mem.buffer)[CTRL.PENDING], 0);
  poster.run(BINARY, c.args(), 3);
  for (let s = 0; s < 3; s++) assert.deepEqual(c.get(s), [1]);
  assert.throws(() => poster.run(BINARY, c.args(), 0), /shares/);
});

test('a worker that wakes up late claims no share of finished jobs and runs its share of a live one', async () => {
  const mem = memory();
  const i32 = new Int32Array(mem.buffer);
  const exp = new WebAssembly.Instance(module, kernelImports(mem)).exports as unknown as PostExports;
  const poster = new JobPoster(mem, 0, exp, KERNEL_NAMES.length);
  const c = counters(mem, 2);
  for (let j = 0; j < 5; j++) poster.run(BINARY, c.args(), 2); // the worker is not running yet: the poster runs both shares
  const code = `
    const { workerData } = require('node:worker_threads');
    import(workerData.pool).then(({ kernelImports, runJobLoop }) => {
      const instance = new WebAssembly.Instance(workerData.module, kernelImports(workerData.memory));
      runJobLoop(workerData.memory, 0, instance.exports, workerData.listKernel);
    });`;
  const w = new Worker(code, { eval: true, workerData: { memory: mem, module, listKernel: KERNEL_NAMES.length, pool: new URL('../../src/backend/wasm/pool.js', import.meta.url).href } });
  try {
    // A sixth job posted by hand, whose share 0 this thread keeps and never runs: only the worker
    // can finish it, by running share 1.
    const seq = i32[CTRL.SEQ] + 1;
    Atomics.store(i32, CTRL.CLAIM, ((seq & 0x7fffff) << 8) | 1);
    Atomics.store(i32, CTRL.PENDING, 1);
    Atomics.store(i32, CTRL.SEQ, seq);
    Atomics.notify(i32, CTRL.SEQ);
    const deadline = Date.now() + 10_000;
    while (Atomics.load(i32, CTRL.PENDING) !== 0) {
      assert.ok(Date.now() < deadline, 'the worker never ran the live share');
      await new Promise((r) => setTimeout(r, 5));
    }
    // Share 1 ran 5 times on the poster and once on the worker; share 0 never on the worker, and
    // no share of the five finished jobs again.
    assert.deepEqual([c.get(0), c.get(1)], [[5], [6]]);
  } finally {
    poster.stop();
    await w.terminate();
  }
});
