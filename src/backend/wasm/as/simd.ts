// SIMD helpers shared by the kernels. `fma4` is a fused multiply-add where the engine has
// relaxed SIMD, and a separate multiply and add otherwise (decided at compile time).
// @ts-ignore: decorator
@inline export function fma4(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

// Horizontal sum of the four lanes.
// @ts-ignore: decorator
@inline export function hsum4(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

// Byte offset of f32 element x.
// @ts-ignore: decorator
@inline function offB(x: i32): usize { return (<usize>x) << 2; }

// Σ_k x[k]·w[k] for one row as 4 partial lanes (K & ~3 elements) plus the scalar tail.
// @ts-ignore: decorator
@inline export function rowDot4(x: usize, w: usize, K: i32): v128 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  const e16 = offB(K & ~15);
  for (let o: usize = 0; o < e16; o += 64) {
    s0 = fma4(v128.load(x + o), v128.load(w + o), s0);
    s1 = fma4(v128.load(x + o, 16), v128.load(w + o, 16), s1);
    s2 = fma4(v128.load(x + o, 32), v128.load(w + o, 32), s2);
    s3 = fma4(v128.load(x + o, 48), v128.load(w + o, 48), s3);
  }
  const e4 = offB(K & ~3);
  for (let o = e16; o < e4; o += 16) s0 = fma4(v128.load(x + o), v128.load(w + o), s0);
  return f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3));
}

// The four lanes of rowDot4's result added: (l0 + l2) + (l1 + l3).
// @ts-ignore: decorator
@inline export function rowSum(p: v128): f32 {
  const q = f32x4.add(p, v128.shuffle<f32>(p, p, 2, 3, 0, 1));
  return f32x4.extract_lane(q, 0) + f32x4.extract_lane(q, 1);
}

// @ts-ignore: decorator
@inline export function rowTail(x: usize, w: usize, K: i32): f32 {
  let t: f32 = 0;
  for (let k = K & ~3; k < K; k++) t += load<f32>(x + offB(k)) * load<f32>(w + offB(k));
  return t;
}

