// Optimizer kernels (contracts: KERNEL_ARGS.adamw / KERNEL_ARGS.sgd in ../../kernels.ts;
// reference: ../../ref/optim.ts). Both split the parameter range over threads in 16-aligned
// shares. Hyper-parameters arrive as f64 (JS numbers, exactly); the per-call constants are
// formed in f64 and the element loop runs in f32x4.
import { shareStart, loadN, storeN } from './vmath';
import { fma4 } from './simd';

// @ts-ignore: decorator
@inline function ptr(base: usize, i: i32): usize { return base + ((<usize>i) << 2); }

export function adamw(p: usize, g: usize, m: usize, v: usize, vmax: usize, n: i32, lr: f64, beta1: f64, beta2: f64, eps: f64, wd: f64, bc1: f64, bc2: f64, tid: i32, nt: i32): void {
  const s = shareStart(n, tid, nt, 16), e = shareStart(n, tid + 1, nt, 16);
  if (s >= e) return;
  const decay = f32x4.splat(<f32>(1 - lr * wd));
  const b1 = f32x4.splat(<f32>beta1), c1 = f32x4.splat(<f32>(1 - beta1));
  const b2 = f32x4.splat(<f32>beta2), c2 = f32x4.splat(<f32>(1 - beta2));
  const step = f32x4.splat(<f32>(lr / bc1)), ibc2 = f32x4.splat(<f32>(1 / bc2)), ev = f32x4.splat(<f32>eps);
  let k = s;
  for (; k + 4 <= e; k += 4) {
    const pp = ptr(p, k), pm = ptr(m, k), pv = ptr(v, k);
    const gv = v128.load(ptr(g, k));
    const mn = fma4(b1, v128.load(pm), f32x4.mul(c1, gv));
    const vn = fma4(b2, v128.load(pv), f32x4.mul(c2, f32x4.mul(gv, gv)));
    v128.store(pm, mn);
    v128.store(pv, vn);
    let vh = vn;
    if (vmax) { vh = f32x4.max(v128.load(ptr(vmax, k)), vn); v128.store(ptr(vmax, k), vh); }
    const den = f32x4.add(f32x4.sqrt(f32x4.mul(vh, ibc2)), ev);
    v128.store(pp, f32x4.sub(f32x4.mul(v128.load(pp), decay), f32x4.div(f32x4.mul(step, mn), den)));
  }
  if (k < e) {
    const c = e - k, z = f32x4.splat(0);
    const pp = ptr(p, k), pm = ptr(m, k), pv = ptr(v, k);
    const gv = loadN(ptr(g, k), c, z);
    const mn = fma4(b1, loadN(pm, c, z), f32x4.mul(c1, gv));
    const vn = fma4(b2, loadN(pv, c, z), f32x4.mul(c2, f32x4.mul(gv, gv)));
    storeN(pm, mn, c);
    storeN(pv, vn, c);
    let vh = vn;
    if (vmax) { vh = f32x4.max(loadN(ptr(vmax, k), c, z), vn); storeN(ptr(vmax, k), vh, c); }
    const den = f32x4.add(f32x4.sqrt(f32x4.mul(vh, ibc2)), ev);
    storeN(pp, f32x4.sub(f32x4.mul(loadN(pp, c, z), decay), f32x4.div(f32x4.mul(step, mn), den)), c);
  }
}

// One SGD step on 4 lanes: returns the new p, stores the new buf when momentum ≠ 0.
// @ts-ignore: decorator
@inline function sgdLanes(pv: v128, gv: v128, bufp: usize, c: i32, lrv: v128, wdv: v128, mom: v128, damp1: v128, useMom: bool, nesterov: bool, first: bool): v128 {
  let d = fma4(wdv, pv, gv);
  if (useMom) {
    let b: v128;
    if (first) b = d;
    else b = fma4(mom, c == 4 ? v128.load(bufp) : loadN(bufp, c, f32x4.splat(0)), f32x4.mul(damp1, d));
    if (c == 4) v128.store(bufp, b); else storeN(bufp, b, c);
    d = nesterov ? fma4(mom, b, d) : b;
  }
  return f32x4.sub(pv, f32x4.mul(lrv, d));
}

export function sgd(p: usize, g: usize, buf: usize, n: i32, lr: f64, momentum: f64, dampening: f64, wd: f64, nesterov: i32, first: i32, tid: i32, nt: i32): void {
  const s = shareStart(n, tid, nt, 16), e = shareStart(n, tid + 1, nt, 16);
  if (s >= e) return;
  const lrv = f32x4.splat(<f32>lr), wdv = f32x4.splat(<f32>wd), mom = f32x4.splat(<f32>momentum);
  const damp1 = f32x4.splat(<f32>(1 - dampening));
  const useMom = momentum != 0, nest = nesterov != 0, fst = first != 0;
  let k = s;
  for (; k + 4 <= e; k += 4) {
    const pp = ptr(p, k);
    v128.store(pp, sgdLanes(v128.load(pp), v128.load(ptr(g, k)), ptr(buf, k), 4, lrv, wdv, mom, damp1, useMom, nest, fst));
  }
  if (k < e) {
    const c = e - k, z = f32x4.splat(0), pp = ptr(p, k);
    storeN(pp, sgdLanes(loadN(pp, c, z), loadN(ptr(g, k), c, z), ptr(buf, k), c, lrv, wdv, mom, damp1, useMom, nest, fst), c);
  }
}
