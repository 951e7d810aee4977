// The thread pool's job protocol (src/backend/wasm/pool.ts): the posting thread takes every share
// no worker has claimed, so a job completes even when its workers never wake up; a worker that
// wakes up late claims nothing of a job that is gone (its loop is the kernel module's jobLoop).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import { CTRL, JobPoster } from '../../src/backend/wasm/pool.js';
import { BinaryOp, KERNEL_NAMES } from '../../src/backend/kernels.js';

const memory = () => new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });

test('a job completes on the posting thread alone when no worker runs (each share once)', () => {
  const mem = memory();
  const poster = new JobPoster(mem, 0); // no worker runs
  for (const nt of [1, 2, 4, 7]) {
    const shares: number[] = [];
    poster.run(0, (x: number, share: number, n: number) => { assert.equal(x, 42); assert.equal(n, nt); shares.push(share); }, [42], nt);
    assert.deepEqual(shares, Array.from({ length: nt }, (_, i) => i));
    assert.equal(new Int32Array(mem.buffer)[CTRL.PENDING], 0);
  }
  // A share that throws is reported after the others ran.
  const ran: number[] = [];
  assert.throws(() => poster.run(0, (share: number) => { ran.push(share); if (share === 1) throw new Error('boom'); }, [], 3), /boom/);
  assert.deepEqual(ran, [0, 1]);
  assert.throws(() => poster.run(0, () => {}, [], 0), /shares/);
});

test('a worker that wakes up late claims no share of finished jobs and runs its share of a live one', async () => {
  // The kernel module's memory layout wants 64 pages at least; the control block is at 0.
  const mem = new WebAssembly.Memory({ initial: 80, maximum: 80, shared: true });
  const poster = new JobPoster(mem, 0);
  const i32 = new Int32Array(mem.buffer), f32 = new Float32Array(mem.buffer);
  // Each job: `binary` ADD over 32 floats at word 1024, counts += 1, in 2 shares of 16. The worker
  // runs the wasm kernel (its share 1 adds 1 to counts[16…32)); this thread runs a JavaScript
  // stand-in that records the shares it ran and adds nothing. So counts[16] is the number of
  // shares 1 the worker ran, and with this thread's, every job's share 1 ran exactly once.
  const counts = 4096, meta = 4096 + 128, ones = 4096 + 256, n = 32;
  i32.set([n, 1, 1], meta >> 2);
  f32.fill(1, ones >> 2, (ones >> 2) + n);
  const args = [BinaryOp.ADD, counts, counts, ones, 1, meta, n];
  let posterShare1 = 0;
  const stand = (...a: number[]): void => { if (a[7] === 1) posterShare1++; };
  const binary = KERNEL_NAMES.indexOf('binary');
  for (let j = 0; j < 5; j++) poster.run(binary, stand, args, 2); // the worker is not running yet: the poster runs both shares
  assert.equal(posterShare1, 5);
  const code = `
    const { workerData } = require('node:worker_threads');
    import(workerData.pool).then(({ kernelImports, runJobLoop }) => {
      const instance = new WebAssembly.Instance(workerData.module, kernelImports(workerData.memory));
      runJobLoop(workerData.memory, 0, instance.exports, workerData.listKernel);
    });`;
  const module = new WebAssembly.Module(readFileSync(new URL('../../wasm/kernels-simd.wasm', import.meta.url)));
  const w = new Worker(code, { eval: true, workerData: { memory: mem, module, listKernel: KERNEL_NAMES.length, pool: new URL('../../src/backend/wasm/pool.js', import.meta.url).href } });
  try {
    // Jobs until the worker has run a share of one (this thread spins in share 0 meanwhile).
    let jobs = 5;
    const deadline = Date.now() + 10_000;
    while (f32[(counts >> 2) + 16] === 0) {
      assert.ok(Date.now() < deadline, 'the worker never claimed a share');
      jobs++;
      poster.run(binary, (...a: number[]) => { stand(...a); const t = Date.now() + 2; while (Date.now() < t) { /* give the worker time */ } }, args, 2);
      await new Promise((r) => setTimeout(r, 1));
    }
    // Never a share of the five jobs that finished before it started (it would count twice).
    assert.equal(f32[(counts >> 2) + 16] + posterShare1, jobs, 'share 1 of some job ran twice or never');
    assert.ok([...f32.subarray((counts >> 2) + 16, (counts >> 2) + 32)].every((v) => v === f32[(counts >> 2) + 16]), 'the worker ran all of share 1');
    assert.ok([...f32.subarray(counts >> 2, (counts >> 2) + 16)].every((v) => v === 0), 'the worker ran a share 0');
  } finally {
    poster.stop();
    await w.terminate();
  }
});
