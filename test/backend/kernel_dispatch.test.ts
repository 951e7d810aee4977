// The kernel-list dispatch's generator (scripts/kernel-dispatch.mjs): it reads KERNEL_ARGS as the
// backend does, stops the build on a kernel whose signature does not match its entry, and the
// module built from it carries the hash of the kernel names the backend checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KERNEL_ARGS, KERNEL_NAMES } from '../../src/backend/kernels.js';
import { kernelExports } from './kernel_harness.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
interface Gen {
  kernelArgs(file: string): Map<string, number>;
  dispatchSource(kernelsTs: string, asDir: string): string;
  fnv1a(s: string): number;
}
const gen = (await import(path.join(root, 'scripts', 'kernel-dispatch.mjs'))) as Gen;
const kernelsTs = path.join(root, 'src', 'backend', 'kernels.ts');

test('the generator reads every KERNEL_ARGS entry with its argument count', () => {
  const parsed = gen.kernelArgs(kernelsTs);
  assert.deepEqual([...parsed.keys()].sort(), [...KERNEL_NAMES]);
  for (const name of KERNEL_NAMES) assert.equal(parsed.get(name), KERNEL_ARGS[name].length, name);
});

test('the module carries the hash of KERNEL_NAMES the backend checks', () => {
  const e = kernelExports('simd') as unknown as Record<string, WebAssembly.Global>;
  assert.equal(e.DISPATCH_NAMES_HASH.value >>> 0, gen.fnv1a(KERNEL_NAMES.join(',')));
});

test('a kernel whose parameters do not match KERNEL_ARGS stops the generator', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-dispatch-'));
  try {
    writeFileSync(path.join(dir, 'k.ts'), 'export function fill(out: usize, n: i32, tid: i32, nt: i32): void {}\n');
    assert.throws(() => gen.dispatchSource(kernelsTs, dir), /fill takes \(usize, i32, i32, i32\), KERNEL_ARGS lists 3 arguments/);
    writeFileSync(path.join(dir, 'k.ts'), 'export function fill(out: usize, n: i32, value: v128, tid: i32, nt: i32): void {}\n');
    assert.throws(() => gen.dispatchSource(kernelsTs, dir), /type v128/);
    writeFileSync(path.join(dir, 'k.ts'), 'export function fill(out: usize, n: i32, value: f32, tid: i32, nt: i32): void {}\n');
    assert.match(gen.dispatchSource(kernelsTs, dir), new RegExp(`case ${KERNEL_NAMES.indexOf('fill')}: fill\\(<usize>I\\(a, 0\\), I\\(a, 1\\), <f32>F\\(a, 2\\), tid, nt\\)`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
