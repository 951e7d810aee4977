// Kernel batches (Backend.batch, src/backend/kernels.ts) and the list job behind the wasm one
// (pool.ts ListWalker): a batch runs its calls in order with the results of `call` one by one,
// after patches too; a thread that walks a list late runs nothing twice and joins where the others
// are; a failing call is reported and the pool keeps working.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { init, shutdown, withBackend } from '../../src/index.js';
import { backend } from '../../src/backend/index.js';
import { H, alloc, release } from '../../src/backend/heap.js';
import { CTRL, LIST, ListWalker } from '../../src/backend/wasm/pool.js';
import type { ListExports } from '../../src/backend/wasm/pool.js';
import { BinaryOp, KERNEL_NAMES } from '../../src/backend/kernels.js';
import type { KernelBatch } from '../../src/backend/kernels.js';
import { kernelExports } from './kernel_harness.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

let seed = 7;
const rand = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;

/**
 * A chain of dependent kernels over buffers x (rows, D), w (N, D), y (rows, N), g (rows, 2·I):
 * rmsnorm x → xn; y (+)= xn · wᵀ (large: shared over the threads); swiglu of y → act; rmsnorm
 * again, reading what the call before wrote. Through `add` (a batch) or `call`.
 */
function chain(rows: number, D: number, N: number, p: Record<string, number>, add: (k: 'rmsnorm' | 'sgemm' | 'swiglu', a: number[], w: number) => void): void {
  add('rmsnorm', [p.xn, p.rstd, p.x, p.nw, rows, D, 1e-5], rows * D);
  add('sgemm', [p.xn, p.w, p.y, rows, N, D, D, 1, 1, D, N, 1, 0, 0, 0, 1], rows * N * D);
  add('swiglu', [p.act, p.y, rows, N / 2], rows * N * 2);
  add('rmsnorm', [p.out, p.rstd, p.act, p.nw2, rows, N / 2, 1e-5], rows * N);
  add('sgemm', [p.out, p.w2, p.x2, rows, D, N / 2, N / 2, 1, 1, N / 2, D, 1, 0, 0, 0, 0], rows * D * N);
}

const sizes = (rows: number, D: number, N: number): Record<string, number> =>
  ({ x: rows * D, xn: rows * D, rstd: rows, nw: D, w: N * D, y: rows * N, act: rows * N / 2, nw2: N / 2, out: rows * N / 2, w2: D * N / 2, x2: rows * D });

/** The buffers of chain() with random values; `like`: a copy of another set's values. */
function buffers(rows: number, D: number, N: number, like?: Record<string, number>): Record<string, number> {
  const p: Record<string, number> = {};
  for (const [k, n] of Object.entries(sizes(rows, D, N))) {
    p[k] = alloc(4 * n);
    if (like) H.f32.copyWithin(p[k] >>> 2, like[k] >>> 2, (like[k] >>> 2) + n);
    else for (let i = 0; i < n; i++) H.f32[(p[k] >>> 2) + i] = rand();
  }
  return p;
}

const snapshot = (p: Record<string, number>, rows: number, D: number, N: number): number[] =>
  [...H.f32.subarray(p.y >>> 2, (p.y >>> 2) + rows * N), ...H.f32.subarray(p.out >>> 2, (p.out >>> 2) + rows * N / 2), ...H.f32.subarray(p.x2 >>> 2, (p.x2 >>> 2) + rows * D)];

for (const be of ['wasm', 'ref'] as const) {
  test(`[${be}] a batch gives the results of its calls one by one, run again after patches (set, setWork)`, () => withBackend(be, () => {
    const rows = 3, D = 96, N = 512;
    const a = buffers(rows, D, N), b = buffers(rows, D, N, a);
    const batch: KernelBatch = backend().batch();
    try {
      chain(rows, D, N, b, (k, args, w) => batch.add(k, args, w));
      assert.equal(batch.length, 5);
      for (let round = 0; round < 3; round++) {
        chain(rows, D, N, a, (k, args, w) => backend().call(k, args, w));
        batch.run();
        assert.deepEqual(snapshot(b, rows, D, N), snapshot(a, rows, D, N), `round ${round}`);
      }
      // Patch: the first rmsnorm reads xn's rows from another input (x2), and the big GEMM runs on one thread.
      batch.set(0, 2, b.x2);
      batch.setWork(1, 1);
      chain(rows, D, N, { ...a, x: a.x2 }, (k, args, w) => backend().call(k, args, w));
      batch.run();
      assert.deepEqual(snapshot(b, rows, D, N), snapshot(a, rows, D, N), 'after the patch');
      batch.clear();
      assert.equal(batch.length, 0);
      batch.run(); // nothing
      assert.throws(() => batch.add('swiglu', [1, 2, 3], 10), /expected 4 arguments, got 3/);
    } finally {
      batch.dispose();
      for (const p of [a, b]) for (const k of Object.keys(p)) release(p[k]);
    }
  }));
}

test('a failing call in a batch is reported, the calls after it do not run, and the pool keeps working', () => withBackend('wasm', () => {
  const batch = backend().batch();
  const n = 1 << 16, buf = alloc(4 * n);
  try {
    H.f32.fill(1, buf >>> 2, (buf >>> 2) + n);
    // out of bounds: a wasm trap on whichever thread runs the share
    batch.add('swiglu', [H.memory.buffer.byteLength + (1 << 20), buf, 64, n / 128], 1 << 20);
    batch.add('fill', [buf, n, 5], n);
    assert.throws(() => batch.run(), /out of bounds|failed/);
    assert.equal(H.f32[buf >>> 2], 1, 'a call after the failure ran');
    batch.clear();
    batch.add('fill', [buf, n, 5], 1 << 20);
    batch.run();
    assert.equal(H.f32[(buf >>> 2) + n - 1], 5);
  } finally {
    batch.dispose();
    release(buf);
  }
}));

test('a kernel call that traps on the threads is reported, and the worker goes on running jobs', { timeout: 60_000 }, () => withBackend('wasm', () => {
  const n = 1 << 16, buf = alloc(4 * n);
  try {
    for (let i = 0; i < 20; i++) {
      // out of bounds on both shares: this thread's error, or the worker's through the error word
      assert.throws(() => backend().call('swiglu', [H.memory.buffer.byteLength + (1 << 20), buf, 64, n / 128], 1 << 20), /out of bounds|failed/);
      backend().call('fill', [buf, n, i], 1 << 20);
      assert.equal(H.f32[(buf >>> 2) + n - 1], i, 'a job after the failure');
    }
  } finally {
    release(buf);
  }
}));

// The walker alone (wasm/as/list.ts through pool.ts ListWalker), on this thread, in its own
// kernel instance over the heap and with its own control block, over a list written by hand:
// x ← x + x (2 shares), y ← x + x (1), x ← y + x (3 shares) on n elements. Every element's value
// says which calls ran on it, how often and in which order.
function list(at: number, calls: { nt: number; args: number[] }[]): void {
  const add = KERNEL_NAMES.indexOf('binary');
  calls.forEach((c, i) => {
    const w = (at + i * LIST.STRIDE) >> 2;
    H.i32[w + LIST.KERNEL] = add; H.i32[w + LIST.NT] = c.nt;
    H.i32[w + LIST.CLAIM] = 0; H.i32[w + LIST.DONE] = 0;
    c.args.forEach((v, j) => { H.f64[((at + i * LIST.STRIDE + LIST.ARGS_BYTE) >> 3) + j] = v; });
  });
}

function walkerSetup(n: number): { walker: ListWalker; ctrl: number; at: number; x: number; y: number; meta: number; free(): void } {
  const ctrl = alloc(CTRL.BYTES), at = alloc(4 * LIST.STRIDE), x = alloc(4 * n), y = alloc(4 * n), meta = alloc(12);
  H.i32.fill(0, ctrl >>> 2, (ctrl + CTRL.BYTES) >>> 2);
  H.i32[(ctrl >>> 2) + CTRL.ERROR] = -1;
  H.i32.set([n, 1, 1], meta >>> 2);
  const exp = kernelExports('simd') as unknown as ListExports;
  return { walker: new ListWalker(H.memory, ctrl, exp), ctrl, at, x, y, meta, free: () => { for (const p of [ctrl, at, x, y, meta]) release(p); } };
}

test('ListWalker: every share of every call once, in order; a late walk runs nothing again; it joins at the first unfinished call', () => {
  const n = 96; // three shares of 32 elements
  const { walker, at, x, y, meta, free } = walkerSetup(n);
  try {
    const add = (out: number, a: number, b: number): number[] => [BinaryOp.ADD, out, a, b, 1, meta, n];
    const calls = [{ nt: 2, args: add(x, x, x) }, { nt: 1, args: add(y, x, x) }, { nt: 3, args: add(x, y, x) }];
    const start = (): void => { H.f32.fill(1, x >>> 2, (x >>> 2) + n); H.f32.fill(0, y >>> 2, (y >>> 2) + n); list(at, calls); };
    const values = (p: number): number[] => [...new Set(H.f32.subarray(p >>> 2, (p >>> 2) + n))];
    start();
    walker.walk(at, 3);
    assert.deepEqual([values(x), values(y)], [[6], [4]], 'x = 2x, y = 2x, x = y + x');
    for (let c = 0; c < 3; c++) assert.equal(H.i32[((at + c * LIST.STRIDE) >> 2) + LIST.DONE], calls[c].nt, `call ${c}'s shares counted`);
    walker.walk(at, 3); // a thread that comes when the list is done
    assert.deepEqual([values(x), values(y)], [[6], [4]], 'a late walk ran something again');
    // Another thread has finished the first call: a walk runs from the second one on.
    start();
    H.i32[(at >> 2) + LIST.CLAIM] = 2;
    H.i32[(at >> 2) + LIST.DONE] = 2;
    walker.walk(at, 3);
    assert.deepEqual([values(x), values(y)], [[3], [2]], 'y = 2x, x = y + x');
  } finally {
    free();
  }
});

test('ListWalker: a call that traps is counted as done, the calls after it are claimed but not run, and the walk rethrows', () => {
  const n = 96;
  const { walker, ctrl, at, x, meta, free } = walkerSetup(n);
  try {
    const add = (out: number, a: number, b: number): number[] => [BinaryOp.ADD, out, a, b, 1, meta, n];
    H.f32.fill(1, x >>> 2, (x >>> 2) + n);
    // The second call writes outside the heap: both of its shares trap.
    list(at, [{ nt: 2, args: add(x, x, x) }, { nt: 2, args: add(H.memory.buffer.byteLength + (1 << 20), x, x) }, { nt: 2, args: add(x, x, x) }]);
    assert.throws(() => walker.walk(at, 3), /out of bounds/);
    assert.deepEqual([...new Set(H.f32.subarray(x >>> 2, (x >>> 2) + n))], [2], 'the first call ran, the third did not');
    assert.equal(H.i32[(ctrl >>> 2) + CTRL.ERROR], 0, 'the failing share is recorded');
    for (let c = 0; c < 3; c++) assert.equal(H.i32[((at + c * LIST.STRIDE) >> 2) + LIST.DONE], 2, `call ${c} counted`);
  } finally {
    free();
  }
});
