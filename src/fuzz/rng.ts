// A small seeded PRNG for the fuzzer (mulberry32): the same seed gives the same mutants on any
// machine, so a failure found by `tslm bench fuzz --seed S` is reproduced by rerunning it.

export class Rng {
  private a: number;
  constructor(seed: number) { this.a = (seed >>> 0) ^ 0x9e3779b9; }
  /** Uniform in [0, 1). */
  next(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number { return Math.floor(this.next() * n); }
  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error('Rng.pick: empty list');
    return xs[this.int(xs.length)];
  }
  bool(p = 0.5): boolean { return this.next() < p; }
}

/** A stable 32-bit seed for (run seed, format, mutant index). */
export function mixSeed(...parts: (number | string)[]): number {
  let h = 2166136261 >>> 0;
  for (const p of parts) {
    const s = String(p);
    for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619) >>> 0; }
    h ^= 0xff; h = Math.imul(h, 16777619) >>> 0;
  }
  return h;
}
