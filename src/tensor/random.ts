// Seeded pseudo-random numbers. Generator: xoshiro128** (Blackman & Vigna), its 128-bit state
// seeded from a number by splitmix32. Uniform floats take the top 24 bits of a 32-bit output
// (u in [0, 1)); normals use the Box–Muller transform on two uniforms, both outputs used.
// The same seed gives the same stream on every platform and backend.

function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export class Generator {
  private s = new Uint32Array(4);
  private spare: number | null = null;
  constructor(seed = 0) {
    this.seed(seed);
  }
  seed(seed: number): this {
    const st = { s: (seed | 0) ^ Math.floor(seed / 4294967296) };
    for (let i = 0; i < 4; i++) this.s[i] = splitmix32(st);
    this.spare = null;
    return this;
  }
  /** Next 32-bit unsigned integer. */
  nextU32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r;
  }
  /** Uniform in [0, 1). */
  uniform(): number {
    return (this.nextU32() >>> 8) / 16777216;
  }
  /** Standard normal. */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u1 = this.uniform();
    while (u1 === 0) u1 = this.uniform();
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }
  /** Shuffles `a` in place (Fisher–Yates from the end, one int(i + 1) draw per position) and returns it. */
  shuffle<A extends { length: number; [i: number]: unknown }>(a: A): A {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }
  /** The generator's state, to save in a checkpoint. */
  getState(): number[] {
    return [...this.s, this.spare === null ? NaN : this.spare];
  }
  setState(state: number[]): void {
    for (let i = 0; i < 4; i++) this.s[i] = state[i];
    this.spare = Number.isNaN(state[4]) ? null : state[4];
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** The default generator used when no generator is passed. */
export const defaultGenerator = new Generator(0);
export function manualSeed(seed: number): void {
  defaultGenerator.seed(seed);
}
