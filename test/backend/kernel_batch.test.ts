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
import type { KernelBatch } from '../../src/backend/kernels.js';

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

// The walker alone, on this thread, over a list written by hand; the kernels are JavaScript
// functions that record what they run.
function list(memory: WebAssembly.Memory, at: number, calls: { kernel: number; nt: number; args: number[] }[]): void {
  const i32 = new Int32Array(memory.buffer), f64 = new Float64Array(memory.buffer);
  calls.forEach((c, i) => {
    const w = (at + i * LIST.STRIDE) >> 2;
    i32[w + LIST.KERNEL] = c.kernel; i32[w + LIST.NARGS] = c.args.length; i32[w + LIST.NT] = c.nt;
    i32[w + LIST.CLAIM] = 0; i32[w + LIST.DONE] = 0;
    c.args.forEach((v, j) => { f64[((at + i * LIST.STRIDE + LIST.ARGS_BYTE) >> 3) + j] = v; });
  });
}

test('ListWalker: every share of every call once, in order; a late walk runs nothing again; it joins at the first unfinished call', () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  const ctrl = 0, at = 1024;
  new Int32Array(memory.buffer)[CTRL.ERROR] = -1;
  const ran: string[] = [];
  const fns = [
    (a: number, b: number, share: number, nt: number) => { ran.push(`f(${a},${b}) ${share}/${nt}`); },
    (a: number, share: number, nt: number) => { ran.push(`g(${a}) ${share}/${nt}`); },
  ];
  const walker = new ListWalker(memory, ctrl, fns);
  const calls = [{ kernel: 0, nt: 2, args: [1, 2] }, { kernel: 1, nt: 1, args: [3] }, { kernel: 0, nt: 3, args: [4, 5] }];
  list(memory, at, calls);
  walker.walk(at, 3);
  assert.deepEqual(ran, ['f(1,2) 0/2', 'f(1,2) 1/2', 'g(3) 0/1', 'f(4,5) 0/3', 'f(4,5) 1/3', 'f(4,5) 2/3']);
  ran.length = 0;
  walker.walk(at, 3); // a thread that comes when the list is done
  assert.deepEqual(ran, []);
  // Another thread has finished the first call: a walk runs from the second one on.
  list(memory, at, calls);
  const i32 = new Int32Array(memory.buffer);
  i32[(at >> 2) + LIST.CLAIM] = 2;
  i32[(at >> 2) + LIST.DONE] = 2;
  walker.job(at, 3);
  assert.deepEqual(ran, ['g(3) 0/1', 'f(4,5) 0/3', 'f(4,5) 1/3', 'f(4,5) 2/3']);
});

test('ListWalker: a call that throws is counted as done, the calls after it are claimed but not run, and the walk rethrows', () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  const at = 1024, i32 = new Int32Array(memory.buffer);
  i32[CTRL.ERROR] = -1;
  const ran: string[] = [];
  const fns = [
    (a: number, share: number) => { ran.push(`f(${a}) ${share}`); if (a === 2 && share === 1) throw new Error('boom'); },
  ];
  list(memory, at, [{ kernel: 0, nt: 2, args: [1] }, { kernel: 0, nt: 2, args: [2] }, { kernel: 0, nt: 2, args: [3] }]);
  assert.throws(() => new ListWalker(memory, 0, fns).walk(at, 3), /boom/);
  assert.deepEqual(ran, ['f(1) 0', 'f(1) 1', 'f(2) 0', 'f(2) 1']);
  assert.equal(i32[CTRL.ERROR], 1);
  for (let c = 0; c < 3; c++) assert.equal(i32[((at + c * LIST.STRIDE) >> 2) + LIST.DONE], 2, `call ${c} counted`);
});
