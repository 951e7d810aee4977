// AssemblyScript for bench/simd_ceiling.mjs: the throughput of one core's 128-bit multiply-adds as
// WebAssembly gives them, each loop 8 independent chains with operands in L1 (no memory traffic, no
// dependency latency): the most a kernel built from that operation can reach on this engine.
//   fma    f32x4.relaxed_madd (x86 vfmadd231ps): 4 multiply-adds per operation;
//   dot16  i32x4.dot_i16x8_s + i32x4.add (pmaddwd, paddd): 8 per dot;
//   dot8   i32x4.relaxed_dot_i8x16_i7x16_add_s: 16 per operation where the engine has an 8-bit dot
//          with accumulation (x86 AVX-VNNI vpdpbusd); otherwise lowered to several instructions;
//   dot8w  i16x8.relaxed_dot_i8x16_i7x16_s (pmaddubsw: 16 per operation, into i16) with i16 adds,
//          widened to i32 once every 4 products (as a kernel on 4-bit weights could).
export function fma(p: usize, iters: i32): f32 {
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  const x = v128.load(p, 256);
  for (let i = 0; i < iters; i++) {
    a0 = f32x4.relaxed_madd(v128.load(p), x, a0); a1 = f32x4.relaxed_madd(v128.load(p, 16), x, a1);
    a2 = f32x4.relaxed_madd(v128.load(p, 32), x, a2); a3 = f32x4.relaxed_madd(v128.load(p, 48), x, a3);
    a4 = f32x4.relaxed_madd(v128.load(p, 64), x, a4); a5 = f32x4.relaxed_madd(v128.load(p, 80), x, a5);
    a6 = f32x4.relaxed_madd(v128.load(p, 96), x, a6); a7 = f32x4.relaxed_madd(v128.load(p, 112), x, a7);
  }
  const s = f32x4.add(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(a4, a5), f32x4.add(a6, a7)));
  return f32x4.extract_lane(s, 0);
}
export function dot16(p: usize, iters: i32): i32 {
  let a0 = i32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (let i = 0; i < iters; i++) {
    a0 = i32x4.add(a0, i32x4.dot_i16x8_s(v128.load(p), v128.load(p, 128)));
    a1 = i32x4.add(a1, i32x4.dot_i16x8_s(v128.load(p, 16), v128.load(p, 144)));
    a2 = i32x4.add(a2, i32x4.dot_i16x8_s(v128.load(p, 32), v128.load(p, 160)));
    a3 = i32x4.add(a3, i32x4.dot_i16x8_s(v128.load(p, 48), v128.load(p, 176)));
    a4 = i32x4.add(a4, i32x4.dot_i16x8_s(v128.load(p, 64), v128.load(p, 192)));
    a5 = i32x4.add(a5, i32x4.dot_i16x8_s(v128.load(p, 80), v128.load(p, 208)));
    a6 = i32x4.add(a6, i32x4.dot_i16x8_s(v128.load(p, 96), v128.load(p, 224)));
    a7 = i32x4.add(a7, i32x4.dot_i16x8_s(v128.load(p, 112), v128.load(p, 240)));
  }
  const s = i32x4.add(i32x4.add(i32x4.add(a0, a1), i32x4.add(a2, a3)), i32x4.add(i32x4.add(a4, a5), i32x4.add(a6, a7)));
  return i32x4.extract_lane(s, 0);
}
export function dot8(p: usize, iters: i32): i32 {
  let a0 = i32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (let i = 0; i < iters; i++) {
    a0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(p), v128.load(p, 128), a0);
    a1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(p, 16), v128.load(p, 144), a1);
    a2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(p, 32), v128.load(p, 160), a2);
    a3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(p, 48), v128.load(p, 176), a3);
    a4 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(p, 64), v128.load(p, 192), a4);
    a5 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(p, 80), v128.load(p, 208), a5);
    a6 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(p, 96), v128.load(p, 224), a6);
    a7 = i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.load(p, 112), v128.load(p, 240), a7);
  }
  const s = i32x4.add(i32x4.add(i32x4.add(a0, a1), i32x4.add(a2, a3)), i32x4.add(i32x4.add(a4, a5), i32x4.add(a6, a7)));
  return i32x4.extract_lane(s, 0);
}
// i8 products summed in i16 (x86 pmaddubsw alone: 16 multiply-adds per operation), widened to i32
// once every 4 steps (as a block-of-32 kernel could: |Σ| ≤ 8·15·127 fits i16 for 4-bit weights).
export function dot8w(p: usize, iters: i32): i32 {
  let a0 = i32x4.splat(0), a1 = a0;
  const ones = i16x8.splat(1);
  for (let i = 0; i < iters; i++) {
    const s0 = i16x8.add(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(p), v128.load(p, 128)), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(p, 16), v128.load(p, 144))),
                         i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(p, 32), v128.load(p, 160)), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(p, 48), v128.load(p, 176))));
    const s1 = i16x8.add(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(p, 64), v128.load(p, 192)), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(p, 80), v128.load(p, 208))),
                         i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(p, 96), v128.load(p, 224)), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(p, 112), v128.load(p, 240))));
    a0 = i32x4.add(a0, i32x4.dot_i16x8_s(s0, ones));
    a1 = i32x4.add(a1, i32x4.dot_i16x8_s(s1, ones));
  }
  return i32x4.extract_lane(i32x4.add(a0, a1), 0);
}

// The inner loop of an integer GEMM for 4-bit weights as a prefill would run it, with everything it
// needs per block and nothing else: one weight row's blocks of 32 already unpacked to bytes 0…15
// (two v128, amortised over the rows of x in a real kernel) and its f32 scale d, against 4 rows of x
// rounded to 8-bit blocks (two v128 each) with their scales dx and offsets 8·Σx (one v128 each per
// block for the 4 rows). Per block: 8 pmaddubsw, 4 i16 adds, 4 widenings, the 4 rows' sums
// transposed into one vector, minus the offsets, converted, times dx·d, added: 4 × 32 multiply-adds.
// Data: weights at p (nb·32 bytes), d at p + 4096 (nb f32), x at p + 8192 (nb × 4 rows × 32 bytes),
// dx at p + 16384 and offsets at p + 20480 (nb × 16 bytes each); returns the 4 rows' sums.
export function q4tile(p: usize, nb: i32, iters: i32): f32 {
  let acc = f32x4.splat(0);
  const ones = i16x8.splat(1);
  for (let it = 0; it < iters; it++) {
    for (let b = 0; b < nb; b++) {
      const w = p + <usize>(b * 32), x = p + 8192 + <usize>(b * 128);
      const w0 = v128.load(w), w1 = v128.load(w, 16);
      const s0 = i32x4.dot_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x, 16), w1)), ones);
      const s1 = i32x4.dot_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x, 32), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x, 48), w1)), ones);
      const s2 = i32x4.dot_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x, 64), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x, 80), w1)), ones);
      const s3 = i32x4.dot_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x, 96), w0), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x, 112), w1)), ones);
      const t0 = i32x4.add(i32x4.shuffle(s0, s1, 0, 4, 1, 5), i32x4.shuffle(s0, s1, 2, 6, 3, 7));
      const t1 = i32x4.add(i32x4.shuffle(s2, s3, 0, 4, 1, 5), i32x4.shuffle(s2, s3, 2, 6, 3, 7));
      const s = i32x4.add(i32x4.shuffle(t0, t1, 0, 1, 4, 5), i32x4.shuffle(t0, t1, 2, 3, 6, 7));
      const o = p + <usize>(b * 16);
      const f = f32x4.convert_i32x4_s(i32x4.sub(s, v128.load(o, 20480)));
      acc = f32x4.relaxed_madd(f32x4.mul(f, v128.load(o, 16384)), v128.load32_splat(p + 4096 + <usize>(b * 4)), acc);
    }
  }
  return f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 3);
}
