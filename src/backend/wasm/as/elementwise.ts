// Elementwise, broadcast, reduction, scan, copy and fill kernels (contracts: KERNEL_ARGS in
// ../../kernels.ts; reference: ../../ref/elementwise.ts).
//
// Threading: copy/binary/where/unary/unary_bwd/fill split the (output) element range in
// 16-aligned shares; reduce/cumsum split rows (inner = 1) or (outer × inner) output columns.
// Strided kernels walk the index space row by row of the innermost dimension (the caller
// collapses dims) and use f32x4 loops for the contiguous/broadcast inner strides.
import {
  splat, shareStart, loadN, storeN, gather4, hsum64, addLo64, addHi64, pack64, f32Down, f32Up,
  vexp, vlog, vsigmoid, vtanh, vsoftplusLow, vOnePlusErf, vsincos, rowSum, rowMax, rowSumExp,
} from './vmath';
import { scratch } from './scratch';

// Op codes: keep in sync with BinaryOp / UnaryOp / ReduceOp in src/backend/kernels.ts.
const ADD: i32 = 0, SUB: i32 = 1, MUL: i32 = 2, DIV: i32 = 3, POW: i32 = 4, MAX: i32 = 5, MIN: i32 = 6;
const EQ: i32 = 7, GT: i32 = 8, LT: i32 = 9, GE: i32 = 10, LE: i32 = 11;
const NEG: i32 = 0, EXP: i32 = 1, LOG: i32 = 2, SQRT: i32 = 3, RSQRT: i32 = 4, ABS: i32 = 5, TANH: i32 = 6;
const SIGMOID: i32 = 7, SILU: i32 = 8, GELU: i32 = 9, GELU_TANH: i32 = 10, RELU: i32 = 11, SOFTPLUS: i32 = 12;
const CLAMP: i32 = 13, POWS: i32 = 14, AFFINE: i32 = 15, RDIV: i32 = 16, STEP: i32 = 17, SIN: i32 = 18, COS: i32 = 19;
const R_SUM: i32 = 0, R_MAX: i32 = 1, R_MIN: i32 = 2, R_LSE: i32 = 3, R_ARGMAX: i32 = 4, R_ARGMIN: i32 = 5;

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const INV_SQRT_2PI: f32 = 0.3989422804014327;

// @ts-ignore: decorator
@inline function ptr(base: usize, i: i32): usize { return base + ((<usize>i) << 2); }
// @ts-ignore: decorator
@inline function ptrs(base: usize, i: i32): usize { return base + <usize>(<isize>i << 2); } // signed offset

// Math.pow with JavaScript's special cases (pow(x, NaN) = NaN, pow(±1, ±inf) = NaN).
function powjs(x: f64, y: f64): f32 {
  if (isNaN(y) || (!isFinite(y) && Math.abs(x) == 1)) return NaN;
  return <f32>Math.pow(x, y);
}
function powLanes(x: v128, y: v128): v128 {
  let r = f32x4.splat(powjs(<f64>f32x4.extract_lane(x, 0), <f64>f32x4.extract_lane(y, 0)));
  r = f32x4.replace_lane(r, 1, powjs(<f64>f32x4.extract_lane(x, 1), <f64>f32x4.extract_lane(y, 1)));
  r = f32x4.replace_lane(r, 2, powjs(<f64>f32x4.extract_lane(x, 2), <f64>f32x4.extract_lane(y, 2)));
  r = f32x4.replace_lane(r, 3, powjs(<f64>f32x4.extract_lane(x, 3), <f64>f32x4.extract_lane(y, 3)));
  return r;
}
function powsLanes(x: v128, y: f64): v128 {
  let r = f32x4.splat(powjs(<f64>f32x4.extract_lane(x, 0), y));
  r = f32x4.replace_lane(r, 1, powjs(<f64>f32x4.extract_lane(x, 1), y));
  r = f32x4.replace_lane(r, 2, powjs(<f64>f32x4.extract_lane(x, 2), y));
  r = f32x4.replace_lane(r, 3, powjs(<f64>f32x4.extract_lane(x, 3), y));
  return r;
}

// ---------------------------------------------------------------------------------------------
// copy

export function copy(dst: usize, src: usize, ndim: i32, meta: usize, n: i32, tid: i32, nt: i32): void {
  const s = shareStart(n, tid, nt, 16), e = shareStart(n, tid + 1, nt, 16);
  if (s >= e) return;
  if (ndim <= 0) { store<i32>(dst, load<i32>(src)); return; }
  const last = ndim - 1;
  const inner = load<i32>(ptr(meta, last));
  const sd = load<i32>(ptr(meta, ndim + last)), ss = load<i32>(ptr(meta, 2 * ndim + last));
  const idx = scratch();
  let rem = s, od = 0, os = 0;
  for (let d = last; d >= 0; d--) {
    const size = load<i32>(ptr(meta, d)), i = rem % size;
    rem /= size;
    store<i32>(ptr(idx, d), i);
    od += i * load<i32>(ptr(meta, ndim + d));
    os += i * load<i32>(ptr(meta, 2 * ndim + d));
  }
  let j = load<i32>(ptr(idx, last)), pos = s;
  for (;;) {
    const cnt = min(inner - j, e - pos);
    const pd = ptrs(dst, od), ps = ptrs(src, os);
    if (sd == 1 && ss == 1) {
      let k = 0;
      for (; k + 16 <= cnt; k += 16) {
        const q = (<usize>k) << 2;
        v128.store(pd + q, v128.load(ps + q));
        v128.store(pd + q, v128.load(ps + q, 16), 16);
        v128.store(pd + q, v128.load(ps + q, 32), 32);
        v128.store(pd + q, v128.load(ps + q, 48), 48);
      }
      for (; k + 4 <= cnt; k += 4) v128.store(ptr(pd, k), v128.load(ptr(ps, k)));
      for (; k < cnt; k++) store<i32>(ptr(pd, k), load<i32>(ptr(ps, k)));
    } else if (sd == 1 && ss == 0) {
      const v = i32x4.splat(load<i32>(ps));
      let k = 0;
      for (; k + 4 <= cnt; k += 4) v128.store(ptr(pd, k), v);
      for (; k < cnt; k++) store<i32>(ptr(pd, k), load<i32>(ps));
    } else {
      const bd = <isize>sd << 2, bs = <isize>ss << 2;
      let qd = <isize>pd, qs = <isize>ps;
      for (let k = 0; k < cnt; k++) { store<i32>(<usize>qd, load<i32>(<usize>qs)); qd += bd; qs += bs; }
    }
    pos += cnt;
    if (pos >= e) break;
    od -= j * sd; os -= j * ss; j = 0;
    for (let d = last - 1; d >= 0; d--) {
      const i = load<i32>(ptr(idx, d)) + 1, size = load<i32>(ptr(meta, d));
      od += load<i32>(ptr(meta, ndim + d)); os += load<i32>(ptr(meta, 2 * ndim + d));
      if (i < size) { store<i32>(ptr(idx, d), i); break; }
      store<i32>(ptr(idx, d), 0);
      od -= size * load<i32>(ptr(meta, ndim + d)); os -= size * load<i32>(ptr(meta, 2 * ndim + d));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// binary

// out = x op y on four lanes, with the reference's semantics (max/min propagate NaN; comparisons
// give 1 or 0).
// @ts-ignore: decorator
@inline function bop(op: i32, x: v128, y: v128): v128 {
  const one = f32x4.splat(1.0);
  if (op == ADD) return f32x4.add(x, y);
  if (op == SUB) return f32x4.sub(x, y);
  if (op == MUL) return f32x4.mul(x, y);
  if (op == DIV) return f32x4.div(x, y);
  if (op == POW) return powLanes(x, y);
  if (op == MAX) return v128.bitselect(x, y, v128.or(f32x4.gt(x, y), f32x4.ne(x, x)));
  if (op == MIN) return v128.bitselect(x, y, v128.or(f32x4.lt(x, y), f32x4.ne(x, x)));
  if (op == EQ) return v128.and(f32x4.eq(x, y), one);
  if (op == GT) return v128.and(f32x4.gt(x, y), one);
  if (op == LT) return v128.and(f32x4.lt(x, y), one);
  if (op == GE) return v128.and(f32x4.ge(x, y), one);
  return v128.and(f32x4.le(x, y), one); // LE
}

// Inner loops for one op (a compile-time constant after inlining) and inner strides sa, sb.
// @ts-ignore: decorator
@inline function binLoop(op: i32, o: usize, pa: usize, pb: usize, cnt: i32, sa: i32, sb: i32): void {
  let k = 0;
  const zero = f32x4.splat(0);
  if (sa == 1 && sb == 1) {
    for (; k + 8 <= cnt; k += 8) {
      const q = (<usize>k) << 2;
      v128.store(o + q, bop(op, v128.load(pa + q), v128.load(pb + q)));
      v128.store(o + q, bop(op, v128.load(pa + q, 16), v128.load(pb + q, 16)), 16);
    }
    for (; k + 4 <= cnt; k += 4) v128.store(ptr(o, k), bop(op, v128.load(ptr(pa, k)), v128.load(ptr(pb, k))));
    if (k < cnt) storeN(ptr(o, k), bop(op, loadN(ptr(pa, k), cnt - k, zero), loadN(ptr(pb, k), cnt - k, zero)), cnt - k);
  } else if (sa == 1 && sb == 0) {
    const y = v128.load32_splat(pb);
    for (; k + 8 <= cnt; k += 8) {
      const q = (<usize>k) << 2;
      v128.store(o + q, bop(op, v128.load(pa + q), y));
      v128.store(o + q, bop(op, v128.load(pa + q, 16), y), 16);
    }
    for (; k + 4 <= cnt; k += 4) v128.store(ptr(o, k), bop(op, v128.load(ptr(pa, k)), y));
    if (k < cnt) storeN(ptr(o, k), bop(op, loadN(ptr(pa, k), cnt - k, zero), y), cnt - k);
  } else if (sa == 0 && sb == 1) {
    const x = v128.load32_splat(pa);
    for (; k + 8 <= cnt; k += 8) {
      const q = (<usize>k) << 2;
      v128.store(o + q, bop(op, x, v128.load(pb + q)));
      v128.store(o + q, bop(op, x, v128.load(pb + q, 16)), 16);
    }
    for (; k + 4 <= cnt; k += 4) v128.store(ptr(o, k), bop(op, x, v128.load(ptr(pb, k))));
    if (k < cnt) storeN(ptr(o, k), bop(op, x, loadN(ptr(pb, k), cnt - k, zero)), cnt - k);
  } else {
    let qa = <isize>pa, qb = <isize>pb;
    const ba = <isize>sa << 2, bb = <isize>sb << 2;
    for (; k + 4 <= cnt; k += 4) {
      v128.store(ptr(o, k), bop(op, gather4(<usize>qa, sa), gather4(<usize>qb, sb)));
      qa += 4 * ba; qb += 4 * bb;
    }
    for (; k < cnt; k++) {
      store<f32>(ptr(o, k), f32x4.extract_lane(bop(op, v128.load32_splat(<usize>qa), v128.load32_splat(<usize>qb)), 0));
      qa += ba; qb += bb;
    }
  }
}

function binRow(op: i32, o: usize, pa: usize, pb: usize, cnt: i32, sa: i32, sb: i32): void {
  switch (op) {
    case ADD: binLoop(ADD, o, pa, pb, cnt, sa, sb); break;
    case SUB: binLoop(SUB, o, pa, pb, cnt, sa, sb); break;
    case MUL: binLoop(MUL, o, pa, pb, cnt, sa, sb); break;
    case DIV: binLoop(DIV, o, pa, pb, cnt, sa, sb); break;
    case POW: binLoop(POW, o, pa, pb, cnt, sa, sb); break;
    case MAX: binLoop(MAX, o, pa, pb, cnt, sa, sb); break;
    case MIN: binLoop(MIN, o, pa, pb, cnt, sa, sb); break;
    case EQ: binLoop(EQ, o, pa, pb, cnt, sa, sb); break;
    case GT: binLoop(GT, o, pa, pb, cnt, sa, sb); break;
    case LT: binLoop(LT, o, pa, pb, cnt, sa, sb); break;
    case GE: binLoop(GE, o, pa, pb, cnt, sa, sb); break;
    case LE: binLoop(LE, o, pa, pb, cnt, sa, sb); break;
    default: unreachable();
  }
}

export function binary(op: i32, out: usize, a: usize, b: usize, ndim: i32, meta: usize, n: i32, tid: i32, nt: i32): void {
  const s = shareStart(n, tid, nt, 16), e = shareStart(n, tid + 1, nt, 16);
  if (s >= e) return;
  if (ndim <= 0) { binRow(op, out, a, b, 1, 0, 0); return; }
  const last = ndim - 1;
  const inner = load<i32>(ptr(meta, last));
  const sa = load<i32>(ptr(meta, ndim + last)), sb = load<i32>(ptr(meta, 2 * ndim + last));
  const idx = scratch();
  let rem = s, oa = 0, ob = 0;
  for (let d = last; d >= 0; d--) {
    const size = load<i32>(ptr(meta, d)), i = rem % size;
    rem /= size;
    store<i32>(ptr(idx, d), i);
    oa += i * load<i32>(ptr(meta, ndim + d));
    ob += i * load<i32>(ptr(meta, 2 * ndim + d));
  }
  let j = load<i32>(ptr(idx, last)), pos = s;
  for (;;) {
    const cnt = min(inner - j, e - pos);
    binRow(op, ptr(out, pos), ptrs(a, oa), ptrs(b, ob), cnt, sa, sb);
    pos += cnt;
    if (pos >= e) break;
    oa -= j * sa; ob -= j * sb; j = 0;
    for (let d = last - 1; d >= 0; d--) {
      const i = load<i32>(ptr(idx, d)) + 1, size = load<i32>(ptr(meta, d));
      oa += load<i32>(ptr(meta, ndim + d)); ob += load<i32>(ptr(meta, 2 * ndim + d));
      if (i < size) { store<i32>(ptr(idx, d), i); break; }
      store<i32>(ptr(idx, d), 0);
      oa -= size * load<i32>(ptr(meta, ndim + d)); ob -= size * load<i32>(ptr(meta, 2 * ndim + d));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// where

export function where(out: usize, cond: usize, a: usize, b: usize, ndim: i32, meta: usize, n: i32, tid: i32, nt: i32): void {
  const s = shareStart(n, tid, nt, 16), e = shareStart(n, tid + 1, nt, 16);
  if (s >= e) return;
  if (ndim <= 0) { store<f32>(out, load<f32>(cond) != 0 ? load<f32>(a) : load<f32>(b)); return; }
  const last = ndim - 1;
  const inner = load<i32>(ptr(meta, last));
  const sc = load<i32>(ptr(meta, ndim + last)), sa = load<i32>(ptr(meta, 2 * ndim + last)), sb = load<i32>(ptr(meta, 3 * ndim + last));
  const idx = scratch();
  let rem = s, oc = 0, oa = 0, ob = 0;
  for (let d = last; d >= 0; d--) {
    const size = load<i32>(ptr(meta, d)), i = rem % size;
    rem /= size;
    store<i32>(ptr(idx, d), i);
    oc += i * load<i32>(ptr(meta, ndim + d));
    oa += i * load<i32>(ptr(meta, 2 * ndim + d));
    ob += i * load<i32>(ptr(meta, 3 * ndim + d));
  }
  const vec = (sc == 0 || sc == 1) && (sa == 0 || sa == 1) && (sb == 0 || sb == 1);
  const zero = f32x4.splat(0);
  let j = load<i32>(ptr(idx, last)), pos = s;
  for (;;) {
    const cnt = min(inner - j, e - pos);
    const o = ptr(out, pos);
    let pc = ptrs(cond, oc), pa = ptrs(a, oa), pb = ptrs(b, ob);
    let k = 0;
    if (vec) {
      const vc = v128.load32_splat(pc), va = v128.load32_splat(pa), vb = v128.load32_splat(pb);
      const dc = <usize>(sc << 4), da = <usize>(sa << 4), db = <usize>(sb << 4);
      for (; k + 4 <= cnt; k += 4) {
        const c = sc ? v128.load(pc) : vc, x = sa ? v128.load(pa) : va, y = sb ? v128.load(pb) : vb;
        v128.store(ptr(o, k), v128.bitselect(x, y, f32x4.ne(c, zero)));
        pc += dc; pa += da; pb += db;
      }
    }
    const bc = <isize>sc << 2, ba = <isize>sa << 2, bb = <isize>sb << 2;
    for (; k < cnt; k++) {
      store<f32>(ptr(o, k), load<f32>(pc) != 0 ? load<f32>(pa) : load<f32>(pb));
      pc = <usize>(<isize>pc + bc); pa = <usize>(<isize>pa + ba); pb = <usize>(<isize>pb + bb);
    }
    pos += cnt;
    if (pos >= e) break;
    oc -= j * sc; oa -= j * sa; ob -= j * sb; j = 0;
    for (let d = last - 1; d >= 0; d--) {
      const i = load<i32>(ptr(idx, d)) + 1, size = load<i32>(ptr(meta, d));
      oc += load<i32>(ptr(meta, ndim + d)); oa += load<i32>(ptr(meta, 2 * ndim + d)); ob += load<i32>(ptr(meta, 3 * ndim + d));
      if (i < size) { store<i32>(ptr(idx, d), i); break; }
      store<i32>(ptr(idx, d), 0);
      oc -= size * load<i32>(ptr(meta, ndim + d)); oa -= size * load<i32>(ptr(meta, 2 * ndim + d)); ob -= size * load<i32>(ptr(meta, 3 * ndim + d));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// unary

// Per-call constants of the unary ops (set by unary / unary_bwd before the loop).
let uA: f32 = 0; // alpha as f32
let uB: f32 = 0; // beta as f32
let uT: f32 = 0; // largest f32 ≤ alpha (x > alpha ⇔ x > uT)
let uLo: f32 = 0; // smallest f32 ≥ alpha (x < alpha ⇔ x < uLo, x ≥ alpha ⇔ x ≥ uLo)
let uHi: f32 = 0; // largest f32 ≤ beta (x > beta ⇔ x > uHi, x ≤ beta ⇔ x ≤ uHi)
let uAlpha: f64 = 0;

function setUnaryConsts(alpha: f64, beta: f64): void {
  uAlpha = alpha; uA = <f32>alpha; uB = <f32>beta;
  uT = f32Down(alpha); uLo = f32Up(alpha); uHi = f32Down(beta);
}

// @ts-ignore: decorator
@inline function uop(op: i32, x: v128): v128 {
  const one = f32x4.splat(1.0), zero = f32x4.splat(0);
  if (op == NEG) return f32x4.neg(x);
  if (op == EXP) return vexp(x);
  if (op == LOG) return vlog(x);
  if (op == SQRT) return f32x4.sqrt(x);
  if (op == RSQRT) return f32x4.div(one, f32x4.sqrt(x));
  if (op == ABS) return f32x4.abs(x);
  if (op == TANH) return vtanh(x);
  if (op == SIGMOID) return vsigmoid(x);
  if (op == SILU) return f32x4.mul(x, vsigmoid(x));
  if (op == GELU) return f32x4.mul(f32x4.mul(x, f32x4.splat(0.5)), vOnePlusErf(x));
  if (op == GELU_TANH) {
    // 0.5·x·(1 + tanh u) = x·sigmoid(2u), accurate for both signs.
    const u = f32x4.mul(f32x4.splat(2 * SQRT_2_OVER_PI), f32x4.add(x, f32x4.mul(f32x4.splat(0.044715), f32x4.mul(f32x4.mul(x, x), x))));
    return f32x4.div(x, f32x4.add(one, vexp(f32x4.neg(u))));
  }
  if (op == RELU) return v128.and(x, f32x4.gt(x, zero));
  if (op == SOFTPLUS) return v128.bitselect(x, vsoftplusLow(x), f32x4.gt(x, f32x4.splat(20.0)));
  if (op == CLAMP) {
    const r = v128.bitselect(f32x4.splat(uB), x, f32x4.gt(x, f32x4.splat(uHi)));
    return v128.bitselect(f32x4.splat(uA), r, f32x4.lt(x, f32x4.splat(uLo)));
  }
  if (op == POWS) {
    if (uAlpha == 2) return f32x4.mul(x, x);
    if (uAlpha == 1) return x;
    if (uAlpha == 0) return one;
    if (uAlpha == -1) return f32x4.div(one, x);
    return powsLanes(x, uAlpha);
  }
  if (op == AFFINE) return f32x4.add(f32x4.mul(x, f32x4.splat(uA)), f32x4.splat(uB));
  if (op == RDIV) return f32x4.div(f32x4.splat(uA), x);
  if (op == SIN) return vsincos(x, 0);
  if (op == COS) return vsincos(x, 1);
  return v128.and(f32x4.gt(x, f32x4.splat(uT)), one); // STEP
}

// @ts-ignore: decorator
@inline function unaryLoop(op: i32, out: usize, a: usize, s: i32, e: i32): void {
  let k = s;
  for (; k + 8 <= e; k += 8) {
    const q = (<usize>k) << 2;
    v128.store(out + q, uop(op, v128.load(a + q)));
    v128.store(out + q, uop(op, v128.load(a + q, 16)), 16);
  }
  for (; k + 4 <= e; k += 4) v128.store(ptr(out, k), uop(op, v128.load(ptr(a, k))));
  if (k < e) storeN(ptr(out, k), uop(op, loadN(ptr(a, k), e - k, f32x4.splat(0))), e - k);
}

export function unary(op: i32, out: usize, a: usize, n: i32, alpha: f64, beta: f64, tid: i32, nt: i32): void {
  const s = shareStart(n, tid, nt, 16), e = shareStart(n, tid + 1, nt, 16);
  if (s >= e) return;
  setUnaryConsts(alpha, beta);
  switch (op) {
    case NEG: unaryLoop(NEG, out, a, s, e); break;
    case EXP: unaryLoop(EXP, out, a, s, e); break;
    case LOG: unaryLoop(LOG, out, a, s, e); break;
    case SQRT: unaryLoop(SQRT, out, a, s, e); break;
    case RSQRT: unaryLoop(RSQRT, out, a, s, e); break;
    case ABS: unaryLoop(ABS, out, a, s, e); break;
    case TANH: unaryLoop(TANH, out, a, s, e); break;
    case SIGMOID: unaryLoop(SIGMOID, out, a, s, e); break;
    case SILU: unaryLoop(SILU, out, a, s, e); break;
    case GELU: unaryLoop(GELU, out, a, s, e); break;
    case GELU_TANH: unaryLoop(GELU_TANH, out, a, s, e); break;
    case RELU: unaryLoop(RELU, out, a, s, e); break;
    case SOFTPLUS: unaryLoop(SOFTPLUS, out, a, s, e); break;
    case CLAMP: unaryLoop(CLAMP, out, a, s, e); break;
    case POWS: unaryLoop(POWS, out, a, s, e); break;
    case AFFINE: unaryLoop(AFFINE, out, a, s, e); break;
    case RDIV: unaryLoop(RDIV, out, a, s, e); break;
    case STEP: unaryLoop(STEP, out, a, s, e); break;
    case SIN: unaryLoop(SIN, out, a, s, e); break;
    case COS: unaryLoop(COS, out, a, s, e); break;
    default: unreachable();
  }
}

// gy · f'(x) given x, y = f(x) and gy.
// @ts-ignore: decorator
@inline function ubwd(op: i32, x: v128, y: v128, g: v128): v128 {
  const one = f32x4.splat(1.0), zero = f32x4.splat(0), half = f32x4.splat(0.5);
  if (op == NEG) return f32x4.neg(g);
  if (op == EXP) return f32x4.mul(g, y);
  if (op == LOG) return f32x4.div(g, x);
  if (op == SQRT) return f32x4.mul(g, f32x4.div(half, y));
  if (op == RSQRT) return f32x4.mul(f32x4.mul(f32x4.mul(f32x4.mul(g, f32x4.splat(-0.5)), y), y), y);
  if (op == ABS) {
    const sg = v128.or(v128.and(f32x4.gt(x, zero), one), v128.and(f32x4.lt(x, zero), f32x4.splat(-1.0)));
    return f32x4.mul(g, sg);
  }
  if (op == TANH) return f32x4.mul(g, f32x4.sub(one, f32x4.mul(y, y)));
  if (op == SIGMOID) return f32x4.mul(g, f32x4.mul(y, f32x4.sub(one, y)));
  if (op == SILU) {
    const sp = vsigmoid(x), sm = vsigmoid(f32x4.neg(x)); // s and 1 − s
    return f32x4.mul(g, f32x4.mul(sp, f32x4.add(one, f32x4.mul(x, sm))));
  }
  if (op == GELU) {
    const d = f32x4.add(f32x4.mul(half, vOnePlusErf(x)),
      f32x4.mul(f32x4.mul(x, vexp(f32x4.mul(f32x4.splat(-0.5), f32x4.mul(x, x)))), f32x4.splat(INV_SQRT_2PI)));
    return f32x4.mul(g, d);
  }
  if (op == GELU_TANH) {
    // With s = sigmoid(2u): 0.5(1+t) = s, 0.5·x·(1−t²) = 2x·s(1−s).
    const x2 = f32x4.mul(x, x);
    const u2 = f32x4.mul(f32x4.splat(2 * SQRT_2_OVER_PI), f32x4.add(x, f32x4.mul(f32x4.splat(0.044715), f32x4.mul(x2, x))));
    const sp = vsigmoid(u2), sm = vsigmoid(f32x4.neg(u2));
    const poly = f32x4.add(one, f32x4.mul(f32x4.splat(3 * 0.044715), x2));
    const d = f32x4.add(sp, f32x4.mul(f32x4.mul(f32x4.mul(f32x4.splat(2 * SQRT_2_OVER_PI), x), f32x4.mul(sp, sm)), poly));
    return f32x4.mul(g, d);
  }
  if (op == RELU) return v128.and(g, f32x4.gt(x, zero));
  if (op == SOFTPLUS) return f32x4.mul(g, vsigmoid(x));
  if (op == CLAMP) {
    const inside = v128.and(f32x4.ge(x, f32x4.splat(uLo)), f32x4.le(x, f32x4.splat(uHi)));
    return f32x4.mul(g, v128.and(inside, one));
  }
  if (op == POWS) {
    if (uAlpha == 0) return f32x4.mul(g, zero);
    if (uAlpha == 1) return g;
    if (uAlpha == 2) return f32x4.mul(g, f32x4.add(x, x));
    return f32x4.mul(g, f32x4.mul(f32x4.splat(uA), powsLanes(x, uAlpha - 1)));
  }
  if (op == AFFINE) return f32x4.mul(g, f32x4.splat(uA));
  if (op == RDIV) return f32x4.div(f32x4.div(f32x4.mul(g, f32x4.splat(-uA)), x), x); // no x² underflow
  if (op == SIN) return f32x4.mul(g, vsincos(x, 1)); // sin' = cos
  if (op == COS) return f32x4.mul(g, vsincos(x, 2)); // cos' = −sin
  return f32x4.mul(g, zero); // STEP
}

// @ts-ignore: decorator
@inline function ubwdLoop(op: i32, gx: usize, x: usize, y: usize, gy: usize, s: i32, e: i32): void {
  let k = s;
  for (; k + 4 <= e; k += 4) {
    v128.store(ptr(gx, k), ubwd(op, v128.load(ptr(x, k)), v128.load(ptr(y, k)), v128.load(ptr(gy, k))));
  }
  if (k < e) {
    const z = f32x4.splat(0), c = e - k;
    storeN(ptr(gx, k), ubwd(op, loadN(ptr(x, k), c, z), loadN(ptr(y, k), c, z), loadN(ptr(gy, k), c, z)), c);
  }
}

export function unary_bwd(op: i32, gx: usize, x: usize, y: usize, gy: usize, n: i32, alpha: f64, beta: f64, tid: i32, nt: i32): void {
  const s = shareStart(n, tid, nt, 16), e = shareStart(n, tid + 1, nt, 16);
  if (s >= e) return;
  setUnaryConsts(alpha, beta);
  switch (op) {
    case NEG: ubwdLoop(NEG, gx, x, y, gy, s, e); break;
    case EXP: ubwdLoop(EXP, gx, x, y, gy, s, e); break;
    case LOG: ubwdLoop(LOG, gx, x, y, gy, s, e); break;
    case SQRT: ubwdLoop(SQRT, gx, x, y, gy, s, e); break;
    case RSQRT: ubwdLoop(RSQRT, gx, x, y, gy, s, e); break;
    case ABS: ubwdLoop(ABS, gx, x, y, gy, s, e); break;
    case TANH: ubwdLoop(TANH, gx, x, y, gy, s, e); break;
    case SIGMOID: ubwdLoop(SIGMOID, gx, x, y, gy, s, e); break;
    case SILU: ubwdLoop(SILU, gx, x, y, gy, s, e); break;
    case GELU: ubwdLoop(GELU, gx, x, y, gy, s, e); break;
    case GELU_TANH: ubwdLoop(GELU_TANH, gx, x, y, gy, s, e); break;
    case RELU: ubwdLoop(RELU, gx, x, y, gy, s, e); break;
    case SOFTPLUS: ubwdLoop(SOFTPLUS, gx, x, y, gy, s, e); break;
    case CLAMP: ubwdLoop(CLAMP, gx, x, y, gy, s, e); break;
    case POWS: ubwdLoop(POWS, gx, x, y, gy, s, e); break;
    case AFFINE: ubwdLoop(AFFINE, gx, x, y, gy, s, e); break;
    case RDIV: ubwdLoop(RDIV, gx, x, y, gy, s, e); break;
    case STEP: ubwdLoop(STEP, gx, x, y, gy, s, e); break;
    case SIN: ubwdLoop(SIN, gx, x, y, gy, s, e); break;
    case COS: ubwdLoop(COS, gx, x, y, gy, s, e); break;
    default: unreachable();
  }
}

// ---------------------------------------------------------------------------------------------
// reduce

// Index of the first maximum (or minimum); the first NaN wins (as in ref).
function rowArg(p: usize, n: i32, isMax: bool): i32 {
  let best: f32 = load<f32>(p), bi = 0, k = 1;
  if (n >= 8) {
    let bv = v128.load(p), bx = i32x4(0, 1, 2, 3), iv = i32x4(4, 5, 6, 7);
    const four = i32x4.splat(4);
    for (k = 4; k + 4 <= n; k += 4) {
      const x = v128.load(ptr(p, k));
      const better = isMax ? f32x4.gt(x, bv) : f32x4.lt(x, bv);
      const take = v128.or(better, v128.and(f32x4.ne(x, x), f32x4.eq(bv, bv)));
      bv = v128.bitselect(x, bv, take);
      bx = v128.bitselect(iv, bx, take);
      iv = i32x4.add(iv, four);
    }
    // Merge lanes: a NaN with the smallest index, else the best value with the smallest index.
    best = f32x4.extract_lane(bv, 0); bi = i32x4.extract_lane(bx, 0);
    for (let l = 1; l < 4; l++) {
      let v: f32, i: i32;
      if (l == 1) { v = f32x4.extract_lane(bv, 1); i = i32x4.extract_lane(bx, 1); }
      else if (l == 2) { v = f32x4.extract_lane(bv, 2); i = i32x4.extract_lane(bx, 2); }
      else { v = f32x4.extract_lane(bv, 3); i = i32x4.extract_lane(bx, 3); }
      let take: bool;
      if (isNaN(best)) take = isNaN(v) && i < bi;
      else if (isNaN(v)) take = true;
      else if (v == best) take = i < bi;
      else take = isMax ? v > best : v < best;
      if (take) { best = v; bi = i; }
    }
  }
  for (; k < n; k++) {
    if (isNaN(best)) break;
    const v = load<f32>(ptr(p, k));
    if (isNaN(v) || (isMax ? v > best : v < best)) { best = v; bi = k; }
  }
  return bi;
}

function reduceRow(op: i32, out: usize, p: usize, r: i32): void {
  if (op == R_SUM) { store<f32>(out, <f32>rowSum(p, r)); return; }
  if (op == R_ARGMAX || op == R_ARGMIN) { store<i32>(out, r > 0 ? rowArg(p, r, op == R_ARGMAX) : 0); return; }
  if (r <= 0) { store<f32>(out, op == R_LSE ? -Infinity : NaN); return; }
  if (op == R_MAX || op == R_MIN) { store<f32>(out, rowMax(p, r, op == R_MAX)); return; }
  // LOGSUMEXP
  const m = rowMax(p, r, true);
  if (m == -Infinity) { store<f32>(out, -Infinity); return; }
  store<f32>(out, <f32>(<f64>m + Math.log(rowSumExp(p, r, m))));
}

// Reduce columns [j, j + w) (w ≤ 4) of one (r, inner) slab over r; `a` points at column j.
function reduceCols(op: i32, out: usize, a: usize, r: i32, inner: i32, w: i32): void {
  const stride = (<usize>inner) << 2;
  const z = f32x4.splat(0);
  let q = a;
  if (op == R_SUM) {
    let lo = f64x2.splat(0), hi = f64x2.splat(0), k = 0;
    while (k < r) {
      const end = min(k + 64, r);
      let acc = f32x4.splat(0);
      if (w == 4) for (; k < end; k++) { acc = f32x4.add(acc, v128.load(q)); q += stride; }
      else for (; k < end; k++) { acc = f32x4.add(acc, loadN(q, w, z)); q += stride; }
      lo = addLo64(lo, acc); hi = addHi64(hi, acc);
    }
    const v = pack64(lo, hi);
    if (w == 4) v128.store(out, v); else storeN(out, v, w);
    return;
  }
  if (r <= 0) {
    const v = op >= R_ARGMAX ? z : f32x4.splat(op == R_LSE ? -Infinity : NaN);
    if (w == 4) v128.store(out, v); else storeN(out, v, w);
    return;
  }
  if (op == R_MAX || op == R_MIN || op == R_LSE) {
    let m = w == 4 ? v128.load(q) : loadN(q, w, z);
    for (let k = 1; k < r; k++) {
      q += stride;
      const x = w == 4 ? v128.load(q) : loadN(q, w, z);
      m = op == R_MIN ? f32x4.min(m, x) : f32x4.max(m, x);
    }
    if (op == R_LSE) {
      // Σ e^{x − m} per column, then m + log(s); m = −inf → −inf.
      let lo = f64x2.splat(0), hi = f64x2.splat(0), k = 0;
      q = a;
      while (k < r) {
        const end = min(k + 64, r);
        let acc = f32x4.splat(0);
        for (; k < end; k++) {
          const x = w == 4 ? v128.load(q) : loadN(q, w, z);
          acc = f32x4.add(acc, vexp(f32x4.sub(x, m)));
          q += stride;
        }
        lo = addLo64(lo, acc); hi = addHi64(hi, acc);
      }
      for (let l = 0; l < w; l++) {
        let ml: f32, sl: f64;
        if (l == 0) { ml = f32x4.extract_lane(m, 0); sl = f64x2.extract_lane(lo, 0); }
        else if (l == 1) { ml = f32x4.extract_lane(m, 1); sl = f64x2.extract_lane(lo, 1); }
        else if (l == 2) { ml = f32x4.extract_lane(m, 2); sl = f64x2.extract_lane(hi, 0); }
        else { ml = f32x4.extract_lane(m, 3); sl = f64x2.extract_lane(hi, 1); }
        store<f32>(ptr(out, l), ml == -Infinity ? -Infinity : <f32>(<f64>ml + Math.log(sl)));
      }
      return;
    }
    if (w == 4) v128.store(out, m); else storeN(out, m, w);
    return;
  }
  // ARGMAX / ARGMIN: per lane, the reference's sequential rule.
  const isMax = op == R_ARGMAX;
  let bv = w == 4 ? v128.load(q) : loadN(q, w, z), bx = i32x4.splat(0), iv = i32x4.splat(1);
  const onei = i32x4.splat(1);
  for (let k = 1; k < r; k++) {
    q += stride;
    const x = w == 4 ? v128.load(q) : loadN(q, w, z);
    const better = isMax ? f32x4.gt(x, bv) : f32x4.lt(x, bv);
    const take = v128.or(better, v128.and(f32x4.ne(x, x), f32x4.eq(bv, bv)));
    bv = v128.bitselect(x, bv, take);
    bx = v128.bitselect(iv, bx, take);
    iv = i32x4.add(iv, onei);
  }
  if (w == 4) v128.store(out, bx); else storeN(out, bx, w);
}

export function reduce(op: i32, out: usize, a: usize, outer: i32, r: i32, inner: i32, tid: i32, nt: i32): void {
  if (inner == 1) {
    const s = shareStart(outer, tid, nt, 1), e = shareStart(outer, tid + 1, nt, 1);
    for (let o = s; o < e; o++) reduceRow(op, ptr(out, o), a + (<usize>o) * (<usize>r) * 4, r);
    return;
  }
  const total = outer * inner;
  const s = shareStart(total, tid, nt, 4), e = shareStart(total, tid + 1, nt, 4);
  let pos = s;
  while (pos < e) {
    const o = pos / inner, j0 = pos - o * inner, j1 = min(inner, j0 + (e - pos));
    const slab = a + (<usize>o) * (<usize>r) * (<usize>inner) * 4;
    for (let j = j0; j < j1; j += 4) reduceCols(op, ptr(out, o * inner + j), ptr(slab, j), r, inner, min(4, j1 - j));
    pos += j1 - j0;
  }
}

// ---------------------------------------------------------------------------------------------
// cumsum (running sums in f64, as ref)

export function cumsum(out: usize, a: usize, outer: i32, r: i32, inner: i32, tid: i32, nt: i32): void {
  if (inner == 1) {
    const s = shareStart(outer, tid, nt, 1), e = shareStart(outer, tid + 1, nt, 1);
    const z = f64x2.splat(0);
    for (let o = s; o < e; o++) {
      const p = a + (<usize>o) * (<usize>r) * 4, y = out + (<usize>o) * (<usize>r) * 4;
      let carry = f64x2.splat(0), k = 0;
      for (; k + 4 <= r; k += 4) {
        const v = v128.load(ptr(p, k));
        let lo = f64x2.promote_low_f32x4(v), hi = f64x2.promote_low_f32x4(f32x4.shuffle(v, v, 2, 3, 2, 3));
        lo = f64x2.add(lo, f64x2.shuffle(z, lo, 0, 2));
        hi = f64x2.add(hi, f64x2.shuffle(z, hi, 0, 2));
        lo = f64x2.add(lo, carry);
        hi = f64x2.add(hi, f64x2.shuffle(lo, lo, 1, 1));
        v128.store(ptr(y, k), pack64(lo, hi));
        carry = f64x2.shuffle(hi, hi, 1, 1);
      }
      let c = f64x2.extract_lane(carry, 0);
      for (; k < r; k++) { c += <f64>load<f32>(ptr(p, k)); store<f32>(ptr(y, k), <f32>c); }
    }
    return;
  }
  const total = outer * inner;
  const s = shareStart(total, tid, nt, 4), e = shareStart(total, tid + 1, nt, 4);
  const stride = (<usize>inner) << 2, zf = f32x4.splat(0);
  let pos = s;
  while (pos < e) {
    const o = pos / inner, j0 = pos - o * inner, j1 = min(inner, j0 + (e - pos));
    const off = (<usize>o) * (<usize>r) * (<usize>inner) * 4;
    for (let j = j0; j < j1; j += 4) {
      const w = min(4, j1 - j);
      let p = ptr(a + off, j), y = ptr(out + off, j);
      let lo = f64x2.splat(0), hi = f64x2.splat(0);
      for (let k = 0; k < r; k++) {
        const v = w == 4 ? v128.load(p) : loadN(p, w, zf);
        lo = addLo64(lo, v); hi = addHi64(hi, v);
        if (w == 4) v128.store(y, pack64(lo, hi)); else storeN(y, pack64(lo, hi), w);
        p += stride; y += stride;
      }
    }
    pos += j1 - j0;
  }
}

// ---------------------------------------------------------------------------------------------
// fill

export function fill(out: usize, n: i32, value: f32, tid: i32, nt: i32): void {
  const s = shareStart(n, tid, nt, 16), e = shareStart(n, tid + 1, nt, 16);
  const v = f32x4.splat(value);
  let k = s;
  for (; k + 16 <= e; k += 16) {
    const q = ptr(out, k);
    v128.store(q, v); v128.store(q, v, 16); v128.store(q, v, 32); v128.store(q, v, 48);
  }
  for (; k + 4 <= e; k += 4) v128.store(ptr(out, k), v);
  for (; k < e; k++) store<f32>(ptr(out, k), value);
}
