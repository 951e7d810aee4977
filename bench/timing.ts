// Shared timing helper for the benchmarks.

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
