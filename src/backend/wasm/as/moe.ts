// Mixture-of-experts decoding (contracts: moe_swiglu, moe_down in ../../kernels.ts; reference:
// ../../ref/moe.ts). A decoding step runs the k experts its router chose for a token (and a
// shared expert) through two kernels over a list of slots, so that only those experts' weights
// are read:
//   moe_swiglu  act_s = scale_s · silu(gate_s · x) ⊙ (up_s · x) for every slot s;
//   moe_down    h += down_s · act_s for every slot s, in place.
//
// Weights are streamed as gemvRows streams them (see matmul.ts): each weight row read to its
// end before the next, in memory order, reduced and stored when done, four accumulators per row
// and nothing else live (V8 allocates 16 vector registers on x86-64). moe_swiglu splits the
// slots' rows (Σ width, in slot order) into contiguous shares; a thread's share of a slot is
// two sequential passes, its gate rows (the dot products parked in act) and then its up rows
// (the SwiGLU applied four rows at a time). moe_down splits the D output rows: every thread
// walks all slots, one weight matrix after another, over its own rows of h. Each element is
// computed the same way whatever the thread count.
import { rowDot4, rowSum, rowTail } from './simd';
import { shareStart, loadN, storeN, vsigmoid } from './vmath';

// i32 fields per slot in the meta block: gate, up, down, width, row, scale (f32 bits).
const SLOT: i32 = 6;

// @ts-ignore: decorator
@inline function off(x: i32): usize { return (<usize>x) << 2; }
// Byte offset of row r of a matrix with `cols` columns.
// @ts-ignore: decorator
@inline function rowOff(r: i32, cols: i32): usize { return (<usize>r) * (<usize>cols) << 2; }
// @ts-ignore: decorator
@inline function field(meta: usize, s: i32, f: i32): usize { return meta + off(s * SLOT + f); }
// @ts-ignore: decorator
@inline function slotPtr(meta: usize, s: i32, f: i32): usize { return <usize>load<u32>(field(meta, s, f)); }

// Σ_k x[k]·w[k] over K elements, as gemvRows sums a row (simd.ts).
// @ts-ignore: decorator
@inline function dot(x: usize, w: usize, K: i32): f32 {
  return rowSum(rowDot4(x, w, K)) + rowTail(x, w, K);
}

// scale · silu(g) · u, lane by lane (silu as the swiglu kernel computes it).
// @ts-ignore: decorator
@inline function swish(g: v128, u: v128, scale: v128): v128 {
  return f32x4.mul(f32x4.mul(f32x4.mul(g, vsigmoid(g)), u), scale);
}

export function moe_swiglu(act: usize, x: usize, meta: usize, slots: i32, D: i32, tid: i32, nt: i32): void {
  let total = 0;
  for (let s = 0; s < slots; s++) total += load<i32>(field(meta, s, 3));
  const u0 = shareStart(total, tid, nt, 4), u1 = shareStart(total, tid + 1, nt, 4);
  const z = f32x4.splat(0);
  let base = 0;
  for (let s = 0; s < slots && base < u1; s++) {
    const width = load<i32>(field(meta, s, 3));
    const a = max(u0, base) - base, b = min(u1, base + width) - base;
    if (a < b) {
      const G = slotPtr(meta, s, 0), U = slotPtr(meta, s, 1);
      const xr = x + rowOff(load<i32>(field(meta, s, 4)), D);
      const scale = v128.load32_splat(field(meta, s, 5));
      const A = act + off(base);
      // Pass 1: the gate rows, parked in act.
      for (let i = a; i < b; i++) store<f32>(A + off(i), dot(xr, G + rowOff(i, D), D));
      // Pass 2: the up rows, four at a time, and the SwiGLU.
      let i = a;
      for (; i + 4 <= b; i += 4) {
        let u = f32x4.splat(dot(xr, U + rowOff(i, D), D));
        u = f32x4.replace_lane(u, 1, dot(xr, U + rowOff(i + 1, D), D));
        u = f32x4.replace_lane(u, 2, dot(xr, U + rowOff(i + 2, D), D));
        u = f32x4.replace_lane(u, 3, dot(xr, U + rowOff(i + 3, D), D));
        v128.store(A + off(i), swish(v128.load(A + off(i)), u, scale));
      }
      if (i < b) {
        const n = b - i;
        let u = f32x4.splat(dot(xr, U + rowOff(i, D), D));
        if (n > 1) u = f32x4.replace_lane(u, 1, dot(xr, U + rowOff(i + 1, D), D));
        if (n > 2) u = f32x4.replace_lane(u, 2, dot(xr, U + rowOff(i + 2, D), D));
        storeN(A + off(i), swish(loadN(A + off(i), n, z), u, scale), n);
      }
    }
    base += width;
  }
}

export function moe_down(h: usize, act: usize, meta: usize, slots: i32, D: i32, tid: i32, nt: i32): void {
  const d0 = shareStart(D, tid, nt, 1), d1 = shareStart(D, tid + 1, nt, 1);
  if (d0 >= d1) return;
  let A = act;
  for (let s = 0; s < slots; s++) {
    const width = load<i32>(field(meta, s, 3));
    const W = slotPtr(meta, s, 2), hr = h + rowOff(load<i32>(field(meta, s, 4)), D);
    for (let d = d0; d < d1; d++) {
      const p = hr + off(d);
      store<f32>(p, load<f32>(p) + dot(A, W + rowOff(d, width), width));
    }
    A += off(width);
  }
}
