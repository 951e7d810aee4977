// The thread pool's job protocol (src/backend/wasm/pool.ts): the posting thread takes every share
// no worker has claimed, so a job completes even when its workers never wake up; a worker that
// wakes up late claims nothing of a job that is gone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { CTRL, JobPoster } from '../../src/backend/wasm/pool.js';

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
  const mem = memory();
  const poster = new JobPoster(mem, 0);
  const i32 = new Int32Array(mem.buffer);
  for (let j = 0; j < 5; j++) poster.run(0, () => {}, [], 2); // the worker is not running yet: the poster runs both shares
  // Now start a worker whose kernel records the shares it runs in the memory (word 100 on).
  const code = `
    const { workerData } = require('node:worker_threads');
    import(workerData.pool).then(({ runJobLoop }) => {
      const i32 = new Int32Array(workerData.memory.buffer);
      runJobLoop(workerData.memory, 0, [(a, share) => { i32[100 + Atomics.add(i32, 99, 1)] = a * 10 + share; }]);
    });`;
  const w = new Worker(code, { eval: true, workerData: { memory: mem, pool: new URL('../../src/backend/wasm/pool.js', import.meta.url).href } });
  try {
    // Jobs until the worker has taken a share of one (the poster spins while the worker runs it).
    let job = 0;
    const deadline = Date.now() + 10_000;
    while (Atomics.load(i32, 99) === 0) {
      assert.ok(Date.now() < deadline, 'the worker never claimed a share');
      job++;
      poster.run(0, () => { const t = Date.now() + 2; while (Date.now() < t) { /* give the worker time */ } }, [job], 2);
      await new Promise((r) => setTimeout(r, 1));
    }
    // Every share the worker ran was share 1 of a job that was live when it claimed it (never a
    // share of the five jobs that finished before it started: those would be 0*10+1 with a = 0).
    const n = Atomics.load(i32, 99);
    for (let k = 0; k < n; k++) {
      const v = i32[100 + k];
      assert.equal(v % 10, 1, `worker ran share ${v % 10}`);
      assert.ok(v >= 10, `worker ran a share of a finished job (${v})`);
    }
  } finally {
    poster.stop();
    await w.terminate();
  }
});
