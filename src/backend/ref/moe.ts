// Reference mixture-of-experts decoding kernels (contracts: moe_swiglu, moe_down in
// ../kernels.ts): plain loops over the slots the meta block lists, dot products in f64, each
// result rounded to f32 where the wasm kernel stores one.
import { H } from '../heap.js';

/** i32 fields per slot in the meta block: gate, up, down, width, row, scale (f32 bits). */
export const MOE_SLOT = 6;

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

/** Σ_k a[k]·b[k] over n f32 elements at element offsets a and b, in f64. */
function dot(a: number, b: number, n: number): number {
  const f = H.f32;
  let s = 0;
  for (let k = 0; k < n; k++) s += f[a + k] * f[b + k];
  return s;
}

export function moe_swiglu(act: number, x: number, meta: number, slots: number, D: number): void {
  const f = H.f32, m = H.i32, m0 = meta >>> 2;
  let a = act >>> 2;
  for (let s = 0; s < slots; s++) {
    const q = m0 + s * MOE_SLOT;
    const gate = m[q] >>> 2, up = m[q + 1] >>> 2, width = m[q + 3], xr = (x >>> 2) + m[q + 4] * D, scale = f[q + 5];
    for (let i = 0; i < width; i++) {
      const g = Math.fround(dot(xr, gate + i * D, D)), u = Math.fround(dot(xr, up + i * D, D));
      f[a + i] = Math.fround(g * sigmoid(g)) * u * scale;
    }
    a += width;
  }
}

export function moe_down(h: number, act: number, meta: number, slots: number, D: number): void {
  const f = H.f32, m = H.i32, m0 = meta >>> 2;
  let a = act >>> 2;
  for (let s = 0; s < slots; s++) {
    const q = m0 + s * MOE_SLOT;
    const down = m[q + 2] >>> 2, width = m[q + 3], hr = (h >>> 2) + m[q + 4] * D;
    for (let d = 0; d < D; d++) f[hr + d] += Math.fround(dot(a, down + d * width, width));
    a += width;
  }
}
