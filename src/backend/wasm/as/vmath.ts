// Vectorised f32 math and small helpers shared by the elementwise, nn and optim kernels.
// Nothing here is re-exported by index.ts (helpers take/return v128 and are not kernels).
//
// Accuracy (f32, against the f64 reference): exp, log ≈ 1–2 ulp (Cephes polynomials); tanh,
// sigmoid ≈ 2–3 ulp; gelu (erf form) uses the same Abramowitz–Stegun 7.1.26 erf as ref.
// Special values: exp(−inf) = 0, exp(x > 88.73) = inf, exp(NaN) = NaN; log(0) = −inf,
// log(x < 0) = NaN, log(inf) = inf, denormal inputs handled; sigmoid/tanh saturate.
import { fma4 } from './simd';

// @ts-ignore: decorator
@inline export function splat(x: f32): v128 { return f32x4.splat(x); }

// The [start, end) share of thread tid of `count` items, boundaries at multiples of `align`.
// @ts-ignore: decorator
@inline export function shareStart(count: i32, tid: i32, nt: i32, align: i32): i32 {
  if (nt <= 1) return tid <= 0 ? 0 : count;
  let per = <i32>((<i64>count + nt - 1) / nt);
  per = ((per + align - 1) / align) * align;
  const s = <i64>per * tid;
  return s > <i64>count ? count : <i32>s;
}

// Load k (1..3) floats into the low lanes, the other lanes = pad.
// @ts-ignore: decorator
@inline export function loadN(p: usize, k: i32, pad: v128): v128 {
  let v = f32x4.replace_lane(pad, 0, load<f32>(p));
  if (k > 1) v = f32x4.replace_lane(v, 1, load<f32>(p, 4));
  if (k > 2) v = f32x4.replace_lane(v, 2, load<f32>(p, 8));
  return v;
}
// Store the low k (1..3) lanes.
// @ts-ignore: decorator
@inline export function storeN(p: usize, v: v128, k: i32): void {
  store<f32>(p, f32x4.extract_lane(v, 0));
  if (k > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
  if (k > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
}
// Gather 4 floats at stride s (elements).
// @ts-ignore: decorator
@inline export function gather4(p: usize, s: i32): v128 {
  const b = <usize>(s << 2);
  let v = f32x4.splat(load<f32>(p));
  v = f32x4.replace_lane(v, 1, load<f32>(p + b));
  v = f32x4.replace_lane(v, 2, load<f32>(p + 2 * b));
  v = f32x4.replace_lane(v, 3, load<f32>(p + 3 * b));
  return v;
}

// Sum of the four lanes in f64.
// @ts-ignore: decorator
@inline export function hsum64(v: v128): f64 {
  const a = f64x2.add(f64x2.promote_low_f32x4(v), f64x2.promote_low_f32x4(f32x4.shuffle(v, v, 2, 3, 2, 3)));
  return f64x2.extract_lane(a, 0) + f64x2.extract_lane(a, 1);
}
// acc (two f64x2: lanes 0-1, lanes 2-3) += v.
// @ts-ignore: decorator
@inline export function addLo64(acc: v128, v: v128): v128 { return f64x2.add(acc, f64x2.promote_low_f32x4(v)); }
// @ts-ignore: decorator
@inline export function addHi64(acc: v128, v: v128): v128 { return f64x2.add(acc, f64x2.promote_low_f32x4(f32x4.shuffle(v, v, 2, 3, 2, 3))); }
// Pack two f64x2 back into one f32x4.
// @ts-ignore: decorator
@inline export function pack64(lo: v128, hi: v128): v128 {
  return f32x4.shuffle(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5);
}

// Largest f32 ≤ v and smallest f32 ≥ v (for comparisons against an f64 threshold:
// for f32 x, x > v ⇔ x > down(v) and x < v ⇔ x < up(v)).
export function f32Down(v: f64): f32 {
  let f = <f32>v;
  if (<f64>f > v) {
    const b = reinterpret<i32>(f);
    if (f == 0) f = reinterpret<f32>(<i32>0x80000001);
    else f = reinterpret<f32>(f > 0 ? b - 1 : b + 1);
  }
  return f;
}
export function f32Up(v: f64): f32 {
  let f = <f32>v;
  if (<f64>f < v) {
    const b = reinterpret<i32>(f);
    if (f == 0) f = reinterpret<f32>(<i32>1);
    else f = reinterpret<f32>(f > 0 ? b + 1 : b - 1);
  }
  return f;
}

// e^x. Cephes expf: x = n·ln2 + r, |r| ≤ ln2/2, degree-5 polynomial, scaled by 2^n in two
// steps (so that n from −150 to 128 needs no special case: denormals and overflow come out right).
// @ts-ignore: decorator
@inline export function vexp(x: v128): v128 {
  // pmin/pmax keep a NaN in the first operand (one instruction each on x86, unlike min/max).
  const xc = f32x4.pmax(f32x4.pmin(x, f32x4.splat(89.0)), f32x4.splat(-104.0));
  // n = round(x·log2 e) by the 1.5·2^23 trick: the integer is in the low mantissa bits.
  const t = fma4(xc, f32x4.splat(1.44269504088896341), f32x4.splat(12582912.0));
  const n = f32x4.sub(t, f32x4.splat(12582912.0));
  let r = f32x4.sub(xc, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  let p = fma4(f32x4.splat(1.9875691500e-4), r, f32x4.splat(1.3981999507e-3));
  p = fma4(p, r, f32x4.splat(8.3334519073e-3));
  p = fma4(p, r, f32x4.splat(4.1665795894e-2));
  p = fma4(p, r, f32x4.splat(1.6666665459e-1));
  p = fma4(p, r, f32x4.splat(5.0000001201e-1));
  const y = f32x4.add(fma4(f32x4.mul(p, r), r, r), f32x4.splat(1.0));
  const ni = i32x4.sub(t, i32x4.splat(0x4b400000));
  const n1 = i32x4.shr_s(ni, 1), n2 = i32x4.sub(ni, n1);
  const s1 = i32x4.shl(i32x4.add(n1, i32x4.splat(127)), 23);
  const s2 = i32x4.shl(i32x4.add(n2, i32x4.splat(127)), 23);
  return f32x4.mul(f32x4.mul(y, s1), s2);
}

// Natural log. Cephes logf: x = m·2^e with m in [√½, √2), degree-8 polynomial in m − 1.
// @ts-ignore: decorator
@inline export function vlog(x: v128): v128 {
  const tiny = f32x4.lt(x, f32x4.splat(1.17549435e-38));
  const xs = v128.bitselect(f32x4.mul(x, f32x4.splat(8388608.0)), x, tiny);
  let e = i32x4.sub(i32x4.shr_u(xs, 23), i32x4.splat(126));
  e = i32x4.sub(e, v128.and(tiny, i32x4.splat(23)));
  let m = v128.or(v128.and(xs, i32x4.splat(0x007fffff)), i32x4.splat(0x3f000000)); // [0.5, 1)
  const lo = f32x4.lt(m, f32x4.splat(0.707106781186547524));
  e = i32x4.add(e, lo); // lo lanes are −1
  m = f32x4.add(f32x4.sub(m, f32x4.splat(1.0)), v128.and(m, lo));
  const z = f32x4.mul(m, m);
  let p = fma4(f32x4.splat(7.0376836292e-2), m, f32x4.splat(-1.1514610310e-1));
  p = fma4(p, m, f32x4.splat(1.1676998740e-1));
  p = fma4(p, m, f32x4.splat(-1.2420140846e-1));
  p = fma4(p, m, f32x4.splat(1.4249322787e-1));
  p = fma4(p, m, f32x4.splat(-1.6668057665e-1));
  p = fma4(p, m, f32x4.splat(2.0000714765e-1));
  p = fma4(p, m, f32x4.splat(-2.4999993993e-1));
  p = fma4(p, m, f32x4.splat(3.3333331174e-1));
  const fe = f32x4.convert_i32x4_s(e);
  let y = f32x4.mul(f32x4.mul(p, m), z);
  y = fma4(fe, f32x4.splat(-2.12194440e-4), y);
  y = fma4(z, f32x4.splat(-0.5), y);
  let r = f32x4.add(m, y);
  r = fma4(fe, f32x4.splat(0.693359375), r);
  // Special values.
  const bad = v128.or(f32x4.lt(x, f32x4.splat(0)), f32x4.ne(x, x));
  r = v128.bitselect(f32x4.splat(NaN), r, bad);
  r = v128.bitselect(f32x4.splat(-Infinity), r, f32x4.eq(x, f32x4.splat(0)));
  r = v128.bitselect(f32x4.splat(Infinity), r, f32x4.eq(x, f32x4.splat(Infinity)));
  return r;
}

// 1 / (1 + e^−x): saturates to 0 and 1, NaN → NaN.
// @ts-ignore: decorator
@inline export function vsigmoid(x: v128): v128 {
  return f32x4.div(f32x4.splat(1.0), f32x4.add(f32x4.splat(1.0), vexp(f32x4.neg(x))));
}

// tanh: odd polynomial for |x| < 0.625 (Cephes tanhf), 1 − 2/(e^{2|x|} + 1) with the sign of x
// otherwise.
// @ts-ignore: decorator
@inline export function vtanh(x: v128): v128 {
  const ax = f32x4.abs(x);
  const e = vexp(f32x4.add(ax, ax));
  let big = f32x4.sub(f32x4.splat(1.0), f32x4.div(f32x4.splat(2.0), f32x4.add(e, f32x4.splat(1.0))));
  big = v128.or(big, v128.and(x, i32x4.splat(0x80000000)));
  const z = f32x4.mul(x, x);
  let p = fma4(f32x4.splat(-5.70498872745e-3), z, f32x4.splat(2.06390887954e-2));
  p = fma4(p, z, f32x4.splat(-5.37397155531e-2));
  p = fma4(p, z, f32x4.splat(1.33314422036e-1));
  p = fma4(p, z, f32x4.splat(-3.33332819422e-1));
  const small = fma4(f32x4.mul(p, z), x, x);
  return v128.bitselect(small, big, f32x4.lt(ax, f32x4.splat(0.625)));
}

// log(1 + e^x) for x ≤ 20 (the caller selects x above): log1p(u) = log(1+u)·u/((1+u)−1).
// @ts-ignore: decorator
@inline export function vsoftplusLow(x: v128): v128 {
  const u = vexp(x);
  const w = f32x4.add(f32x4.splat(1.0), u);
  const r = f32x4.div(f32x4.mul(vlog(w), u), f32x4.sub(w, f32x4.splat(1.0)));
  return v128.bitselect(u, r, f32x4.eq(w, f32x4.splat(1.0)));
}

// 1 + erf(x/√2), accurate in both tails: erf by Abramowitz–Stegun 7.1.26 as in ref, with
// q = t·P(t)·e^{−z²}: 1 + erf = 2 − q for x ≥ 0 and q for x < 0.
// @ts-ignore: decorator
@inline export function vOnePlusErf(x: v128): v128 {
  const az = f32x4.abs(f32x4.mul(x, f32x4.splat(0.7071067811865476)));
  const t = f32x4.div(f32x4.splat(1.0), fma4(f32x4.splat(0.3275911), az, f32x4.splat(1.0)));
  let p = fma4(f32x4.splat(1.061405429), t, f32x4.splat(-1.453152027));
  p = fma4(p, t, f32x4.splat(1.421413741));
  p = fma4(p, t, f32x4.splat(-0.284496736));
  p = fma4(p, t, f32x4.splat(0.254829592));
  const q = f32x4.mul(f32x4.mul(p, t), vexp(f32x4.neg(f32x4.mul(az, az))));
  return v128.bitselect(f32x4.sub(f32x4.splat(2.0), q), q, f32x4.ge(x, f32x4.splat(0)));
}

// @ts-ignore: decorator
@inline function fptr(base: usize, i: i32): usize { return base + ((<usize>i) << 2); }

// Sum of n contiguous floats: f32x4 partial sums over blocks of 256, blocks added in f64.
export function rowSum(p: usize, n: i32): f64 {
  let tot: f64 = 0, k = 0;
  const n8 = n & ~7;
  while (k < n8) {
    const end = min(k + 256, n8);
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0);
    for (; k < end; k += 8) {
      const q = p + ((<usize>k) << 2);
      a0 = f32x4.add(a0, v128.load(q));
      a1 = f32x4.add(a1, v128.load(q, 16));
    }
    tot += hsum64(f32x4.add(a0, a1));
  }
  for (; k < n; k++) tot += <f64>load<f32>(fptr(p, k));
  return tot;
}

// Max (or min) with NaN propagation.
export function rowMax(p: usize, n: i32, isMax: bool): f32 {
  let k = 0;
  let m0 = f32x4.splat(isMax ? -Infinity : Infinity), m1 = m0;
  if (isMax) {
    for (; k + 8 <= n; k += 8) { const q = fptr(p, k); m0 = f32x4.max(m0, v128.load(q)); m1 = f32x4.max(m1, v128.load(q, 16)); }
    for (; k + 4 <= n; k += 4) m0 = f32x4.max(m0, v128.load(fptr(p, k)));
    if (k < n) m0 = f32x4.max(m0, loadN(fptr(p, k), n - k, f32x4.splat(-Infinity)));
    m0 = f32x4.max(m0, m1);
    m0 = f32x4.max(m0, f32x4.shuffle(m0, m0, 2, 3, 0, 1));
    m0 = f32x4.max(m0, f32x4.shuffle(m0, m0, 1, 0, 3, 2));
  } else {
    for (; k + 8 <= n; k += 8) { const q = fptr(p, k); m0 = f32x4.min(m0, v128.load(q)); m1 = f32x4.min(m1, v128.load(q, 16)); }
    for (; k + 4 <= n; k += 4) m0 = f32x4.min(m0, v128.load(fptr(p, k)));
    if (k < n) m0 = f32x4.min(m0, loadN(fptr(p, k), n - k, f32x4.splat(Infinity)));
    m0 = f32x4.min(m0, m1);
    m0 = f32x4.min(m0, f32x4.shuffle(m0, m0, 2, 3, 0, 1));
    m0 = f32x4.min(m0, f32x4.shuffle(m0, m0, 1, 0, 3, 2));
  }
  return f32x4.extract_lane(m0, 0);
}

// Σ e^{x − m} over a contiguous row (blocks of 256 in f32x4, added in f64).
export function rowSumExp(p: usize, n: i32, m: f32): f64 {
  let tot: f64 = 0, k = 0;
  const n4 = n & ~3, mv = f32x4.splat(m);
  while (k < n4) {
    const end = min(k + 256, n4);
    let acc = f32x4.splat(0);
    for (; k < end; k += 4) acc = f32x4.add(acc, vexp(f32x4.sub(v128.load(fptr(p, k)), mv)));
    tot += hsum64(acc);
  }
  if (k < n) tot += hsum64(vexp(f32x4.sub(loadN(fptr(p, k), n - k, f32x4.splat(-Infinity)), mv)));
  return tot;
}


// sin(x + q·π/2) for q = 0 (sin), 1 (cos), 2 (−sin). x = j·π/2 + r with |r| ≤ π/4: the reduction
// runs in f64 with π/2 in two parts (P1 has 33 bits, so j·P1 is exact for |j| < 2^20), which keeps
// ~1 ulp accuracy for |x| up to ~1.6e6 (beyond, the result is a bounded approximation); then the
// Cephes sinf/cosf polynomials on r, and the quadrant (j + q) mod 4 picks ±sin r or ±cos r.
// sin/cos(±inf) = NaN, NaN → NaN.
// @ts-ignore: decorator
@inline export function vsincos(x: v128, q: i32): v128 {
  const P1: f64 = 1.5707963267341256, P2: f64 = 6.077100506506192e-11, TWO_OVER_PI: f64 = 0.6366197723675814;
  const dlo = f64x2.promote_low_f32x4(x), dhi = f64x2.promote_low_f32x4(f32x4.shuffle(x, x, 2, 3, 2, 3));
  const jlo = f64x2.nearest(f64x2.mul(dlo, f64x2.splat(TWO_OVER_PI)));
  const jhi = f64x2.nearest(f64x2.mul(dhi, f64x2.splat(TWO_OVER_PI)));
  const rlo = f64x2.sub(f64x2.sub(dlo, f64x2.mul(jlo, f64x2.splat(P1))), f64x2.mul(jlo, f64x2.splat(P2)));
  const rhi = f64x2.sub(f64x2.sub(dhi, f64x2.mul(jhi, f64x2.splat(P1))), f64x2.mul(jhi, f64x2.splat(P2)));
  const r = pack64(rlo, rhi);
  const quad = v128.and(i32x4.add(i32x4.trunc_sat_f32x4_s(pack64(jlo, jhi)), i32x4.splat(q)), i32x4.splat(3));
  const z = f32x4.mul(r, r);
  let ps = fma4(f32x4.splat(-1.9515295891e-4), z, f32x4.splat(8.3321608736e-3));
  ps = fma4(ps, z, f32x4.splat(-1.6666654611e-1));
  const s = fma4(f32x4.mul(ps, z), r, r);
  let pc = fma4(f32x4.splat(2.443315711809948e-5), z, f32x4.splat(-1.388731625493765e-3));
  pc = fma4(pc, z, f32x4.splat(4.166664568298827e-2));
  const c = f32x4.add(fma4(f32x4.mul(pc, z), z, f32x4.mul(z, f32x4.splat(-0.5))), f32x4.splat(1.0));
  const odd = i32x4.eq(v128.and(quad, i32x4.splat(1)), i32x4.splat(1));
  const neg = i32x4.eq(v128.and(quad, i32x4.splat(2)), i32x4.splat(2));
  const v = v128.bitselect(c, s, odd);
  return v128.xor(v, v128.and(neg, i32x4.splat(0x80000000)));
}
