// Shared test helpers: backend setup, finite-difference gradient checks, fixture loading.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { Tensor, tensor, noGrad, scope, Generator, withBackend } from '../src/index.js';

export const BACKENDS = ['ref', 'wasm'] as const;

const here = path.dirname(fileURLToPath(import.meta.url));
/** Read a committed fixture from test/fixtures (the compiled tests live in dist/test). */
export function fixture<T = unknown>(name: string): T {
  return JSON.parse(readFileSync(fixturePath(name), 'utf8')) as T;
}
export function fixturePath(name: string): string {
  return path.resolve(here, '..', '..', 'test', 'fixtures', name);
}

/** Deterministic uniform pseudo-random numbers in [0, 1) (mulberry32). */
export function uniformRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randArray(n: number, g: Generator, lo = -1, hi = 1): number[] {
  return Array.from({ length: n }, () => lo + (hi - lo) * g.uniform());
}

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol: number, what = ''): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} vs ${expected.length}`);
  let worst = -1, worstErr = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i], e = expected[i];
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    if (a === e) continue;
    const err = Math.abs(a - e);
    if (!(err <= atol + rtol * Math.abs(e))) {
      if (worst < 0 || err > worstErr) { worst = i; worstErr = err; }
    }
  }
  if (worst >= 0) assert.fail(`${what}: mismatch at ${worst}: got ${actual[worst]}, expected ${expected[worst]} (|err| ${worstErr}, atol ${atol}, rtol ${rtol})`);
}

/**
 * Central finite-difference check of d(Σ r·f(inputs))/d input for every f32 input that
 * requires grad. f must build its result from the given tensors.
 */
export function gradcheck(
  name: string,
  f: (...xs: Tensor[]) => Tensor,
  inputs: Tensor[],
  opts: { eps?: number; atol?: number; rtol?: number; seed?: number } = {},
): void {
  const eps = opts.eps ?? 1e-3, atol = opts.atol ?? 2e-3, rtol = opts.rtol ?? 2e-3;
  const g = new Generator(opts.seed ?? 7);
  scope(() => {
    const out0 = noGrad(() => f(...inputs));
    const r = randArray(out0.size, g);
    const rT = tensor(r, out0.shape);
    for (const x of inputs) x.grad = null;
    const out = f(...inputs);
    out.backward(rT);
    const dot = (): number => {
      const y = noGrad(() => scope(() => f(...inputs).toArray()));
      let s = 0;
      for (let i = 0; i < y.length; i++) s += y[i] * r[i];
      return s;
    };
    inputs.forEach((x, xi) => {
      if (!x.requiresGrad) return;
      assert.ok(x.grad, `${name}: input ${xi} got no gradient`);
      const ana = x.grad!.toArray();
      const num: number[] = [];
      const p = x.ptr >>> 2;
      const data = x.data();
      for (let i = 0; i < x.size; i++) {
        const orig = data[i];
        const h = eps * Math.max(1, Math.abs(orig));
        setElem(x, p, i, orig + h);
        const up = dot();
        setElem(x, p, i, orig - h);
        const down = dot();
        setElem(x, p, i, orig);
        num.push((up - down) / (2 * h));
      }
      assertClose(ana, num, atol, rtol, `${name} d/d input ${xi}`);
    });
  });
}

import { views } from '../src/backend/heap.js';
function setElem(x: Tensor, p: number, i: number, v: number): void {
  if (!x.isContiguous()) throw new Error('gradcheck inputs must be contiguous');
  views().f32[p + i] = v;
}

/** Run a test body under both backends. */
export function onBackends(fn: (b: 'ref' | 'wasm') => void): void {
  for (const b of BACKENDS) withBackend(b, () => fn(b));
}

/** Minimal F32-only safetensors parse for the fixtures (the io layer has the full reader). */
export function readF32Safetensors(path: string): Record<string, Tensor> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const out: Record<string, Tensor> = {};
  for (const [name, info] of Object.entries<any>(header)) {
    if (name === '__metadata__') continue;
    const [s, e] = info.data_offsets;
    const bytes = buf.subarray(8 + n + s, 8 + n + e);
    const f = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    out[name] = tensor(f, info.shape);
  }
  return out;
}
