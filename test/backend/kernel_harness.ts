// What the kernel tests that call a kernel by name share: heap buffers in and out, and one kernel
// call in a chosen mode — the ref backend, the wasm backend (as it schedules, forced onto its
// worker pool, forced serial), or the wasm export called directly as N of N threads (ntN: every
// thread's share of the work, last thread first). wasmKernelHarness() registers the file's
// before/after hooks that start and stop the wasm backend (2 threads) and the default backend.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { H, alloc, views } from '../../src/backend/heap.js';
import { PARALLEL_THRESHOLD, WasmBackend } from '../../src/backend/wasm/index.js';
import { kernelImports } from '../../src/backend/wasm/pool.js';
import { refBackend } from '../../src/backend/ref/index.js';
import type { KernelName } from '../../src/backend/kernels.js';
import { init, shutdown } from '../../src/index.js';
import * as T from '../../src/index.js';
import type { Tensor } from '../../src/index.js';

/** Bytes copied into a new heap buffer (at least 16 bytes); its address. */
export function putBytes(b: Uint8Array): number {
  const p = alloc(Math.max(16, b.length));
  views().u8.set(b, p);
  return p;
}

/** f32 or i32 values copied into a new heap buffer; its address. */
export function putF32(a: Float32Array | Int32Array): number {
  const p = alloc(Math.max(16, a.length * 4));
  if (a instanceof Int32Array) views().i32.set(a, p >>> 2);
  else views().f32.set(a, p >>> 2);
  return p;
}

/** n f32 values read from the heap at p. */
export const getF32 = (p: number, n: number): Float32Array => views().f32.slice(p >>> 2, (p >>> 2) + n);

/**
 * The kernel module's exports for one build ('relaxed' or 'simd'), instantiated on this thread over
 * the shared heap as a backend sets it up: its own scratch, and the f16 table the quantised kernels
 * read scales through (filled here).
 */
export function kernelExports(variant: 'relaxed' | 'simd'): Record<string, (...a: number[]) => void> {
  const bytes = readFileSync(new URL(`../../wasm/kernels-${variant}.wasm`, import.meta.url));
  const e = new WebAssembly.Instance(new WebAssembly.Module(bytes), kernelImports(H.memory)).exports as Record<string, unknown>;
  const f = e as Record<string, (...a: number[]) => void>;
  f.setScratch(alloc((e.SCRATCH_BYTES as WebAssembly.Global).value as number));
  f.setHalfTable(alloc((e.HALF_TABLE_BYTES as WebAssembly.Global).value as number), 1);
  return f;
}

export type KernelMode = 'ref' | 'call' | 'call-parallel' | 'call-serial' | `nt${number}`;

export interface KernelHarness {
  run(kernel: KernelName, args: number[], work: number, mode: KernelMode): void;
  /** The wasm backend (after the before hook ran). */
  readonly backend: WasmBackend;
}

export function wasmKernelHarness(): KernelHarness {
  let be: WasmBackend;
  let exportsObj: Record<string, (...a: number[]) => void>;
  before(async () => {
    be = await WasmBackend.create(2);
    exportsObj = (be as unknown as { exportsObj: Record<string, (...a: number[]) => void> }).exportsObj;
    await init({ threads: 2 });
  });
  after(async () => { await be.dispose(); await shutdown(); });
  return {
    get backend() { return be; },
    run(kernel, args, work, mode) {
      if (mode === 'ref') refBackend.call(kernel, args, work);
      else if (mode === 'call') be.call(kernel, args, work);
      else if (mode === 'call-parallel') be.call(kernel, args, Math.max(work, PARALLEL_THRESHOLD));
      else if (mode === 'call-serial') be.call(kernel, args, 0);
      else {
        const nt = Number(mode.slice(2));
        for (let t = nt - 1; t >= 0; t--) exportsObj[kernel](...args, t, nt);
      }
    },
  };
}

/**
 * A weight kept in a packed dtype (quantised blocks, F16/BF16) against its widened f32 twin `wd`:
 * T.linear and T.addLinearInPlace on x agree with the dense product within tol (relative to
 * 1 + |value|), and T.embedding returns the widened rows (`wf`: the widened values, rows of K).
 * Call inside noGrad.
 */
export function checkKeptWeight(w: Tensor, wd: Tensor, wf: Float32Array, K: number, x: Tensor, tol: number, what: string): void {
  const M = x.shape[0], N = w.shape[0];
  const y = T.linear(x, w).data(), yf = T.linear(x, wd).data();
  for (let i = 0; i < y.length; i++) assert.ok(Math.abs(y[i] - yf[i]) <= tol * (1 + Math.abs(yf[i])), `${what} linear ${i}: ${y[i]} vs ${yf[i]}`);
  const out = T.zeros([M, N]);
  T.addLinearInPlace(out, x, w);
  const o = out.data();
  for (let i = 0; i < o.length; i++) assert.ok(Math.abs(o[i] - yf[i]) <= tol * (1 + Math.abs(yf[i])), `${what} addLinearInPlace ${i}: ${o[i]} vs ${yf[i]}`);
  const e = T.embedding(w, T.tensor([3, 0, 36, 3], [4], 'i32')).data();
  assert.deepEqual(Array.from(e.subarray(K, 2 * K)), Array.from(wf.subarray(0, K)));
  assert.deepEqual(Array.from(e.subarray(2 * K, 3 * K)), Array.from(wf.subarray(36 * K, 37 * K)));
}
