// invoke (pool.ts): a kernel's call with its share, without the spread; every argument count of
// KERNEL_ARGS has its own case, and each passes the arguments, tid and nt in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { invoke, INVOKE_COUNTS } from '../../src/backend/wasm/pool.js';
import { KERNEL_ARGS } from '../../src/backend/kernels.js';

test('invoke: a case for every kernel argument count, arguments then tid and nt in order', () => {
  const counts = new Set(Object.values(KERNEL_ARGS).map((a) => a.length));
  for (const n of counts) assert.ok(INVOKE_COUNTS.includes(n), `no case for kernels of ${n} arguments`);
  for (const n of [...INVOKE_COUNTS, 1, 2, 12, 30]) {
    const args = Array.from({ length: n }, (_, i) => 100 + i);
    let got: number[] = [];
    invoke((...a: number[]) => { got = a; }, args, n, 7, 9);
    assert.deepEqual(got, [...args, 7, 9], `${n} arguments`);
    // the first n of a longer array (a worker's reused argument array)
    invoke((...a: number[]) => { got = a; }, [...args, -1, -2], n, 7, 9);
    assert.deepEqual(got, [...args, 7, 9], `${n} of ${n + 2} arguments`);
  }
});
