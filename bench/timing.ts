// Shared helpers for the benchmarks: timing, and the machine they ran on.
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** Seconds of the fastest run of fn (after one warm-up), repeating for at least minSeconds and 3 runs. */
export function timeBest(fn: () => void, minSeconds: number): number {
  fn();
  let best = Infinity, reps = 0;
  const start = performance.now();
  while (reps < 3 || performance.now() - start < minSeconds * 1000) {
    const t0 = performance.now();
    fn();
    best = Math.min(best, performance.now() - t0);
    reps++;
  }
  return best / 1000;
}

/**
 * The CPU as a line for a benchmark's header: its model, cores, and the x86 vector extensions a
 * native peer's kernels may take (llama.cpp picks AVX2, AVX-512 or VNNI kernels by them, where
 * tslm's are WebAssembly SIMD128 everywhere), so that ratios from different machines are read
 * as such.
 */
export function cpuLine(): string {
  const cpus = os.cpus();
  let flags: string[] = [];
  try {
    const m = /^flags\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) flags = m[1].split(/\s+/);
  } catch { /* not Linux: the model alone */ }
  const want = ['avx2', 'fma', 'f16c', 'avx_vnni', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx512_bf16'];
  const have = want.filter((f) => flags.includes(f));
  return `CPU: ${cpus[0]?.model ?? 'unknown'}, ${cpus.length} cores${flags.length ? `; vector extensions: ${have.length ? have.join(' ') : 'none of ' + want.join(' ')}` : ''}`;
}
