// Fused neural-network kernels (contracts: KERNEL_ARGS in ../../kernels.ts; reference:
// ../../ref/nn.ts).
//
// Threading: softmax, cross-entropy, norms and rope split rows; embedding splits the flat
// (row, column) output range; embedding_bwd, rmsnorm_bwd_w and layernorm_bwd_wb split columns
// (every thread walks all rows for its own columns, so repeated indices never race).
// Row sums go through f32x4 partial sums over blocks of ≤ 256 elements added in f64.
import { toBf16 } from './bf16';
import { scratch } from './scratch';
import { shareStart, loadN, storeN, hsum64, addLo64, addHi64, pack64, vexp, vsigmoid, rowSum, rowMax, rowSumExp } from './vmath';

// @ts-ignore: decorator
@inline function ptr(base: usize, i: i32): usize { return base + ((<usize>i) << 2); }
// @ts-ignore: decorator
@inline function row(base: usize, r: i32, cols: i32): usize { return base + (<usize>r) * (<usize>cols) * 4; }

// ---------------------------------------------------------------------------------------------
// softmax

export function softmax(out: usize, a: usize, rows: i32, cols: i32, log: i32, tid: i32, nt: i32): void {
  const s = shareStart(rows, tid, nt, 1), e = shareStart(rows, tid + 1, nt, 1);
  const ninf = f32x4.splat(-Infinity);
  for (let r = s; r < e; r++) {
    const x = row(a, r, cols), y = row(out, r, cols);
    const m = rowMax(x, cols, true);
    const mv = f32x4.splat(m);
    if (log) {
      const ls = f32x4.splat(<f32>Math.log(rowSumExp(x, cols, m)));
      let j = 0;
      for (; j + 4 <= cols; j += 4) v128.store(ptr(y, j), f32x4.sub(f32x4.sub(v128.load(ptr(x, j)), mv), ls));
      if (j < cols) storeN(ptr(y, j), f32x4.sub(f32x4.sub(loadN(ptr(x, j), cols - j, ninf), mv), ls), cols - j);
    } else {
      // y = e^{x−m} (summed on the way), then y /= Σ.
      let tot: f64 = 0, j = 0;
      const c4 = cols & ~3;
      while (j < c4) {
        const end = min(j + 256, c4);
        let acc = f32x4.splat(0);
        for (; j < end; j += 4) {
          const v = vexp(f32x4.sub(v128.load(ptr(x, j)), mv));
          v128.store(ptr(y, j), v);
          acc = f32x4.add(acc, v);
        }
        tot += hsum64(acc);
      }
      if (j < cols) {
        const v = vexp(f32x4.sub(loadN(ptr(x, j), cols - j, ninf), mv));
        storeN(ptr(y, j), v, cols - j);
        tot += hsum64(v);
      }
      const inv = f32x4.splat(<f32>(1.0 / tot));
      j = 0;
      for (; j + 4 <= cols; j += 4) v128.store(ptr(y, j), f32x4.mul(v128.load(ptr(y, j)), inv));
      for (; j < cols; j++) store<f32>(ptr(y, j), load<f32>(ptr(y, j)) * f32x4.extract_lane(inv, 0));
    }
  }
}

export function softmax_bwd(gx: usize, y: usize, gy: usize, rows: i32, cols: i32, log: i32, tid: i32, nt: i32): void {
  const s = shareStart(rows, tid, nt, 1), e = shareStart(rows, tid + 1, nt, 1);
  const z = f32x4.splat(0);
  for (let r = s; r < e; r++) {
    const Y = row(y, r, cols), G = row(gy, r, cols), X = row(gx, r, cols);
    if (log) {
      const sv = f32x4.splat(<f32>rowSum(G, cols));
      let j = 0;
      for (; j + 4 <= cols; j += 4) v128.store(ptr(X, j), f32x4.sub(v128.load(ptr(G, j)), f32x4.mul(vexp(v128.load(ptr(Y, j))), sv)));
      if (j < cols) {
        const c = cols - j;
        storeN(ptr(X, j), f32x4.sub(loadN(ptr(G, j), c, z), f32x4.mul(vexp(loadN(ptr(Y, j), c, z)), sv)), c);
      }
    } else {
      let tot: f64 = 0, j = 0;
      const c4 = cols & ~3;
      while (j < c4) {
        const end = min(j + 256, c4);
        let acc = f32x4.splat(0);
        for (; j < end; j += 4) acc = f32x4.add(acc, f32x4.mul(v128.load(ptr(G, j)), v128.load(ptr(Y, j))));
        tot += hsum64(acc);
      }
      if (j < cols) tot += hsum64(f32x4.mul(loadN(ptr(G, j), cols - j, z), loadN(ptr(Y, j), cols - j, z)));
      const sv = f32x4.splat(<f32>tot);
      j = 0;
      for (; j + 4 <= cols; j += 4) v128.store(ptr(X, j), f32x4.mul(v128.load(ptr(Y, j)), f32x4.sub(v128.load(ptr(G, j)), sv)));
      if (j < cols) {
        const c = cols - j;
        storeN(ptr(X, j), f32x4.mul(loadN(ptr(Y, j), c, z), f32x4.sub(loadN(ptr(G, j), c, z), sv)), c);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// cross-entropy

export function cross_entropy(loss: usize, lse: usize, logits: usize, targets: usize, rows: i32, V: i32, ignore: i32, eps: f64, tid: i32, nt: i32): void {
  const s = shareStart(rows, tid, nt, 1), e = shareStart(rows, tid + 1, nt, 1);
  for (let r = s; r < e; r++) {
    const x = row(logits, r, V), t = load<i32>(ptr(targets, r));
    const m = rowMax(x, V, true);
    const mv = f32x4.splat(m);
    // Σ e^{x−m} and Σ x in one pass.
    let se: f64 = 0, sx: f64 = 0, j = 0;
    const v4 = V & ~3;
    while (j < v4) {
      const end = min(j + 256, v4);
      let ae = f32x4.splat(0), ax = f32x4.splat(0);
      for (; j < end; j += 4) {
        const v = v128.load(ptr(x, j));
        ae = f32x4.add(ae, vexp(f32x4.sub(v, mv)));
        ax = f32x4.add(ax, v);
      }
      se += hsum64(ae); sx += hsum64(ax);
    }
    for (; j < V; j++) {
      const v = load<f32>(ptr(x, j));
      se += <f64>f32x4.extract_lane(vexp(f32x4.splat(v - m)), 0);
      sx += <f64>v;
    }
    const l = <f64>m + Math.log(se);
    store<f32>(ptr(lse, r), <f32>l);
    store<f32>(ptr(loss, r), t == ignore ? 0 : <f32>((1 - eps) * (l - <f64>load<f32>(ptr(x, t))) + eps * (l - sx / <f64>V)));
  }
}

export function cross_entropy_bwd(gx: usize, logits: usize, lse: usize, targets: usize, rows: i32, V: i32, ignore: i32, eps: f64, scale: f64, tid: i32, nt: i32): void {
  const s = shareStart(rows, tid, nt, 1), e = shareStart(rows, tid + 1, nt, 1);
  const z = f32x4.splat(0);
  for (let r = s; r < e; r++) {
    const x = row(logits, r, V), g = row(gx, r, V), t = load<i32>(ptr(targets, r));
    const l = load<f32>(ptr(lse, r));
    let j = 0;
    if (t == ignore) {
      for (; j + 4 <= V; j += 4) v128.store(ptr(g, j), z);
      for (; j < V; j++) store<f32>(ptr(g, j), 0);
      continue;
    }
    // g = scale·e^{x−l} − scale·eps/V, then the target column recomputed in f64.
    const lv = f32x4.splat(l), sv = f32x4.splat(<f32>scale), cv = f32x4.splat(<f32>(scale * eps / <f64>V));
    for (; j + 4 <= V; j += 4) v128.store(ptr(g, j), f32x4.sub(f32x4.mul(sv, vexp(f32x4.sub(v128.load(ptr(x, j)), lv))), cv));
    if (j < V) storeN(ptr(g, j), f32x4.sub(f32x4.mul(sv, vexp(f32x4.sub(loadN(ptr(x, j), V - j, z), lv))), cv), V - j);
    if (t >= 0 && t < V) {
      const p = Math.exp(<f64>load<f32>(ptr(x, t)) - <f64>l);
      store<f32>(ptr(g, t), <f32>(scale * (p - (1 - eps) - eps / <f64>V)));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// embedding

export function embedding(out: usize, table: usize, idx: usize, n: i32, dim: i32, tid: i32, nt: i32): void {
  const total = n * dim;
  const s = shareStart(total, tid, nt, 16), e = shareStart(total, tid + 1, nt, 16);
  let pos = s;
  while (pos < e) {
    const i = pos / dim, j0 = pos - i * dim, cnt = min(dim - j0, e - pos);
    const src = ptr(row(table, load<i32>(ptr(idx, i)), dim), j0), dst = ptr(out, pos);
    let k = 0;
    for (; k + 8 <= cnt; k += 8) {
      const q = (<usize>k) << 2;
      v128.store(dst + q, v128.load(src + q));
      v128.store(dst + q, v128.load(src + q, 16), 16);
    }
    for (; k + 4 <= cnt; k += 4) v128.store(ptr(dst, k), v128.load(ptr(src, k)));
    for (; k < cnt; k++) store<f32>(ptr(dst, k), load<f32>(ptr(src, k)));
    pos += cnt;
  }
}

export function embedding_bwd(gtable: usize, gout: usize, idx: usize, n: i32, dim: i32, tid: i32, nt: i32): void {
  const j0 = shareStart(dim, tid, nt, 16), j1 = shareStart(dim, tid + 1, nt, 16);
  if (j0 >= j1) return;
  const w = j1 - j0, w4 = w & ~3;
  for (let i = 0; i < n; i++) {
    const dst = ptr(row(gtable, load<i32>(ptr(idx, i)), dim), j0), src = ptr(row(gout, i, dim), j0);
    let k = 0;
    for (; k < w4; k += 4) v128.store(ptr(dst, k), f32x4.add(v128.load(ptr(dst, k)), v128.load(ptr(src, k))));
    for (; k < w; k++) store<f32>(ptr(dst, k), load<f32>(ptr(dst, k)) + load<f32>(ptr(src, k)));
  }
}

// ---------------------------------------------------------------------------------------------
// RMSNorm

// Σ x² over a row (f64 blocks).
function rowSumSq(p: usize, n: i32): f64 {
  let tot: f64 = 0, k = 0;
  const n8 = n & ~7;
  while (k < n8) {
    const end = min(k + 256, n8);
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0);
    for (; k < end; k += 8) {
      const q = ptr(p, k);
      const v0 = v128.load(q), v1 = v128.load(q, 16);
      a0 = f32x4.add(a0, f32x4.mul(v0, v0));
      a1 = f32x4.add(a1, f32x4.mul(v1, v1));
    }
    tot += hsum64(f32x4.add(a0, a1));
  }
  for (; k < n; k++) { const v = <f64>load<f32>(ptr(p, k)); tot += v * v; }
  return tot;
}

export function rmsnorm(out: usize, rstd: usize, x: usize, w: usize, rows: i32, dim: i32, eps: f64, tid: i32, nt: i32): void {
  const s = shareStart(rows, tid, nt, 1), e = shareStart(rows, tid + 1, nt, 1);
  for (let r = s; r < e; r++) {
    const X = row(x, r, dim), Y = row(out, r, dim);
    const rs = 1.0 / Math.sqrt(rowSumSq(X, dim) / <f64>dim + eps);
    store<f32>(ptr(rstd, r), <f32>rs);
    const rv = f32x4.splat(<f32>rs);
    let j = 0;
    for (; j + 8 <= dim; j += 8) {
      const q = (<usize>j) << 2;
      v128.store(Y + q, f32x4.mul(f32x4.mul(v128.load(X + q), rv), v128.load(w + q)));
      v128.store(Y + q, f32x4.mul(f32x4.mul(v128.load(X + q, 16), rv), v128.load(w + q, 16)), 16);
    }
    for (; j + 4 <= dim; j += 4) v128.store(ptr(Y, j), f32x4.mul(f32x4.mul(v128.load(ptr(X, j)), rv), v128.load(ptr(w, j))));
    for (; j < dim; j++) store<f32>(ptr(Y, j), load<f32>(ptr(X, j)) * <f32>rs * load<f32>(ptr(w, j)));
  }
}

export function rmsnorm_bwd(gx: usize, x: usize, w: usize, rstd: usize, gy: usize, rows: i32, dim: i32, tid: i32, nt: i32): void {
  const s = shareStart(rows, tid, nt, 1), e = shareStart(rows, tid + 1, nt, 1);
  for (let r = s; r < e; r++) {
    const X = row(x, r, dim), G = row(gy, r, dim), D = row(gx, r, dim);
    const rs = <f64>load<f32>(ptr(rstd, r));
    // dot = Σ gy·w·x
    let dot: f64 = 0, j = 0;
    const d4 = dim & ~3;
    while (j < d4) {
      const end = min(j + 256, d4);
      let acc = f32x4.splat(0);
      for (; j < end; j += 4) acc = f32x4.add(acc, f32x4.mul(f32x4.mul(v128.load(ptr(G, j)), v128.load(ptr(w, j))), v128.load(ptr(X, j))));
      dot += hsum64(acc);
    }
    for (let k = j; k < dim; k++) dot += <f64>load<f32>(ptr(G, k)) * <f64>load<f32>(ptr(w, k)) * <f64>load<f32>(ptr(X, k));
    const c = <f32>((dot * rs * rs * rs) / <f64>dim), rsf = <f32>rs;
    const cv = f32x4.splat(c), rv = f32x4.splat(rsf);
    j = 0;
    for (; j + 4 <= dim; j += 4) {
      v128.store(ptr(D, j), f32x4.sub(f32x4.mul(f32x4.mul(rv, v128.load(ptr(w, j))), v128.load(ptr(G, j))), f32x4.mul(cv, v128.load(ptr(X, j)))));
    }
    for (; j < dim; j++) store<f32>(ptr(D, j), rsf * load<f32>(ptr(w, j)) * load<f32>(ptr(G, j)) - c * load<f32>(ptr(X, j)));
  }
}

// Column sums over rows for columns [j0, j1) of a (rows, dim) layout. kind 0: gw = Σ gy·x·rstd
// (rmsnorm); kind 1: gw = Σ gy·(x − mean)·rstd and gb = Σ gy (layernorm; either may be 0).
// Strips of 4 columns; rows in blocks of 64 summed in f32x4, blocks added in f64.
function colNorm(kind: i32, gw: usize, gb: usize, x: usize, mean: usize, rstd: usize, gy: usize, rows: i32, dim: i32, j0: i32, j1: i32): void {
  const stride = (<usize>dim) << 2, z = f32x4.splat(0);
  for (let j = j0; j < j1; j += 4) {
    const wd = min(4, j1 - j);
    let wlo = f64x2.splat(0), whi = wlo, blo = wlo, bhi = wlo;
    let px = ptr(x, j), pg = ptr(gy, j), r = 0;
    while (r < rows) {
      const end = min(r + 64, rows);
      let aw = f32x4.splat(0), ab = f32x4.splat(0);
      if (wd == 4) {
        for (; r < end; r++) {
          const g = v128.load(pg), xv = v128.load(px), rs = v128.load32_splat(ptr(rstd, r));
          if (kind == 0) aw = f32x4.add(aw, f32x4.mul(f32x4.mul(g, xv), rs));
          else {
            aw = f32x4.add(aw, f32x4.mul(f32x4.mul(g, f32x4.sub(xv, v128.load32_splat(ptr(mean, r)))), rs));
            ab = f32x4.add(ab, g);
          }
          px += stride; pg += stride;
        }
      } else {
        for (; r < end; r++) {
          const g = loadN(pg, wd, z), xv = loadN(px, wd, z), rs = v128.load32_splat(ptr(rstd, r));
          if (kind == 0) aw = f32x4.add(aw, f32x4.mul(f32x4.mul(g, xv), rs));
          else {
            aw = f32x4.add(aw, f32x4.mul(f32x4.mul(g, f32x4.sub(xv, v128.load32_splat(ptr(mean, r)))), rs));
            ab = f32x4.add(ab, g);
          }
          px += stride; pg += stride;
        }
      }
      wlo = addLo64(wlo, aw); whi = addHi64(whi, aw);
      blo = addLo64(blo, ab); bhi = addHi64(bhi, ab);
    }
    if (gw) { if (wd == 4) v128.store(ptr(gw, j), pack64(wlo, whi)); else storeN(ptr(gw, j), pack64(wlo, whi), wd); }
    if (kind == 1 && gb) { if (wd == 4) v128.store(ptr(gb, j), pack64(blo, bhi)); else storeN(ptr(gb, j), pack64(blo, bhi), wd); }
  }
}

export function rmsnorm_bwd_w(gw: usize, x: usize, rstd: usize, gy: usize, rows: i32, dim: i32, tid: i32, nt: i32): void {
  const j0 = shareStart(dim, tid, nt, 16), j1 = shareStart(dim, tid + 1, nt, 16);
  if (j0 < j1) colNorm(0, gw, 0, x, 0, rstd, gy, rows, dim, j0, j1);
}

// ---------------------------------------------------------------------------------------------
// LayerNorm

export function layernorm(out: usize, mean: usize, rstd: usize, x: usize, w: usize, b: usize, rows: i32, dim: i32, eps: f64, tid: i32, nt: i32): void {
  const s = shareStart(rows, tid, nt, 1), e = shareStart(rows, tid + 1, nt, 1);
  const one = f32x4.splat(1.0), z = f32x4.splat(0);
  for (let r = s; r < e; r++) {
    const X = row(x, r, dim), Y = row(out, r, dim);
    const mu = rowSum(X, dim) / <f64>dim;
    const muf = <f32>mu, mv = f32x4.splat(muf);
    // Σ (x − μ)²; μ rounded to f32 is corrected by the (exact) Σ(x − μf) term.
    let v: f64 = 0, d1: f64 = 0, j = 0;
    const d4 = dim & ~3;
    while (j < d4) {
      const end = min(j + 256, d4);
      let acc = f32x4.splat(0), acc1 = f32x4.splat(0);
      for (; j < end; j += 4) {
        const d = f32x4.sub(v128.load(ptr(X, j)), mv);
        acc = f32x4.add(acc, f32x4.mul(d, d));
        acc1 = f32x4.add(acc1, d);
      }
      v += hsum64(acc); d1 += hsum64(acc1);
    }
    for (; j < dim; j++) { const d = <f64>load<f32>(ptr(X, j)) - <f64>muf; v += d * d; d1 += d; }
    // Σ(x − μ)² = Σ(x − μf)² − n·(μ − μf)²  (as μ − μf = Σ(x − μf)/n)
    const dm = d1 / <f64>dim;
    v -= <f64>dim * dm * dm;
    if (v < 0) v = 0;
    const rs = 1.0 / Math.sqrt(v / <f64>dim + eps);
    store<f32>(ptr(mean, r), muf);
    store<f32>(ptr(rstd, r), <f32>rs);
    const rv = f32x4.splat(<f32>rs);
    const m2 = f32x4.splat(<f32>mu);
    j = 0;
    for (; j + 4 <= dim; j += 4) {
      const xh = f32x4.mul(f32x4.sub(v128.load(ptr(X, j)), m2), rv);
      const wv = w ? v128.load(ptr(w, j)) : one, bv = b ? v128.load(ptr(b, j)) : z;
      v128.store(ptr(Y, j), f32x4.add(f32x4.mul(xh, wv), bv));
    }
    for (; j < dim; j++) {
      const xh = (load<f32>(ptr(X, j)) - <f32>mu) * <f32>rs;
      store<f32>(ptr(Y, j), xh * (w ? load<f32>(ptr(w, j)) : 1) + (b ? load<f32>(ptr(b, j)) : 0));
    }
  }
}

export function layernorm_bwd(gx: usize, x: usize, w: usize, mean: usize, rstd: usize, gy: usize, rows: i32, dim: i32, tid: i32, nt: i32): void {
  const s = shareStart(rows, tid, nt, 1), e = shareStart(rows, tid + 1, nt, 1);
  const one = f32x4.splat(1.0);
  for (let r = s; r < e; r++) {
    const X = row(x, r, dim), G = row(gy, r, dim), D = row(gx, r, dim);
    const mu = load<f32>(ptr(mean, r)), rs = load<f32>(ptr(rstd, r));
    const mv = f32x4.splat(mu), rv = f32x4.splat(rs);
    let sg: f64 = 0, sgx: f64 = 0, j = 0;
    const d4 = dim & ~3;
    while (j < d4) {
      const end = min(j + 256, d4);
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0);
      for (; j < end; j += 4) {
        const g = f32x4.mul(v128.load(ptr(G, j)), w ? v128.load(ptr(w, j)) : one);
        a0 = f32x4.add(a0, g);
        a1 = f32x4.add(a1, f32x4.mul(g, f32x4.mul(f32x4.sub(v128.load(ptr(X, j)), mv), rv)));
      }
      sg += hsum64(a0); sgx += hsum64(a1);
    }
    for (let k = j; k < dim; k++) {
      const g = <f64>load<f32>(ptr(G, k)) * (w ? <f64>load<f32>(ptr(w, k)) : 1.0);
      sg += g;
      sgx += g * (<f64>load<f32>(ptr(X, k)) - <f64>mu) * <f64>rs;
    }
    const sgv = f32x4.splat(<f32>(sg / <f64>dim)), sxv = f32x4.splat(<f32>(sgx / <f64>dim));
    j = 0;
    for (; j + 4 <= dim; j += 4) {
      const g = f32x4.mul(v128.load(ptr(G, j)), w ? v128.load(ptr(w, j)) : one);
      const xh = f32x4.mul(f32x4.sub(v128.load(ptr(X, j)), mv), rv);
      v128.store(ptr(D, j), f32x4.mul(rv, f32x4.sub(f32x4.sub(g, sgv), f32x4.mul(xh, sxv))));
    }
    const sgf = <f32>(sg / <f64>dim), sxf = <f32>(sgx / <f64>dim);
    for (; j < dim; j++) {
      const g = load<f32>(ptr(G, j)) * (w ? load<f32>(ptr(w, j)) : 1);
      const xh = (load<f32>(ptr(X, j)) - mu) * rs;
      store<f32>(ptr(D, j), rs * (g - sgf - xh * sxf));
    }
  }
}

export function layernorm_bwd_wb(gw: usize, gb: usize, x: usize, mean: usize, rstd: usize, gy: usize, rows: i32, dim: i32, tid: i32, nt: i32): void {
  const j0 = shareStart(dim, tid, nt, 16), j1 = shareStart(dim, tid + 1, nt, 16);
  if (j0 < j1 && (gw || gb)) colNorm(1, gw, gb, x, mean, rstd, gy, rows, dim, j0, j1);
}

// ---------------------------------------------------------------------------------------------
// RoPE

export function rope(out: usize, x: usize, cos: usize, sin: usize, outer: i32, T: i32, inner: i32, D: i32, interleaved: i32, sign: f32, tid: i32, nt: i32): void {
  const rows = outer * T * inner, half = D >> 1;
  const s = shareStart(rows, tid, nt, 1), e = shareStart(rows, tid + 1, nt, 1);
  for (let r = s; r < e; r++) {
    const t = (r / inner) % T;
    ropeRow(row(out, r, D), row(x, r, D), row(cos, t, half), row(sin, t, half), D, interleaved, sign);
  }
}

// Rotate the D floats at X into Y (may be X: every block is loaded before it is stored) with the
// tables C, S (D/2 each); sign −1 rotates back (the gradient). Shared by rope and rope_qkv.
// @ts-ignore: decorator
@inline function ropeRow(Y: usize, X: usize, C: usize, S: usize, D: i32, interleaved: i32, sign: f32): void {
  const half = D >> 1;
  const sg = f32x4.splat(sign), z = f32x4.splat(0);
  let i = 0;
  if (!interleaved) {
    const X2 = ptr(X, half), Y2 = ptr(Y, half);
    for (; i + 4 <= half; i += 4) {
      const c = v128.load(ptr(C, i)), sn = f32x4.mul(sg, v128.load(ptr(S, i)));
      const x1 = v128.load(ptr(X, i)), x2 = v128.load(ptr(X2, i));
      v128.store(ptr(Y, i), f32x4.sub(f32x4.mul(x1, c), f32x4.mul(x2, sn)));
      v128.store(ptr(Y2, i), f32x4.add(f32x4.mul(x2, c), f32x4.mul(x1, sn)));
    }
    if (i < half) {
      const k = half - i;
      const c = loadN(ptr(C, i), k, z), sn = f32x4.mul(sg, loadN(ptr(S, i), k, z));
      const x1 = loadN(ptr(X, i), k, z), x2 = loadN(ptr(X2, i), k, z);
      storeN(ptr(Y, i), f32x4.sub(f32x4.mul(x1, c), f32x4.mul(x2, sn)), k);
      storeN(ptr(Y2, i), f32x4.add(f32x4.mul(x2, c), f32x4.mul(x1, sn)), k);
    }
  } else {
    for (; i + 4 <= half; i += 4) {
      const c = v128.load(ptr(C, i)), sn = f32x4.mul(sg, v128.load(ptr(S, i)));
      const v0 = v128.load(ptr(X, 2 * i)), v1 = v128.load(ptr(X, 2 * i + 4));
      const x1 = f32x4.shuffle(v0, v1, 0, 2, 4, 6), x2 = f32x4.shuffle(v0, v1, 1, 3, 5, 7);
      const y1 = f32x4.sub(f32x4.mul(x1, c), f32x4.mul(x2, sn)), y2 = f32x4.add(f32x4.mul(x2, c), f32x4.mul(x1, sn));
      v128.store(ptr(Y, 2 * i), f32x4.shuffle(y1, y2, 0, 4, 1, 5));
      v128.store(ptr(Y, 2 * i + 4), f32x4.shuffle(y1, y2, 2, 6, 3, 7));
    }
    for (; i < half; i++) {
      const c = load<f32>(ptr(C, i)), sn = sign * load<f32>(ptr(S, i));
      const x1 = load<f32>(ptr(X, 2 * i)), x2 = load<f32>(ptr(X, 2 * i + 1));
      store<f32>(ptr(Y, 2 * i), x1 * c - x2 * sn);
      store<f32>(ptr(Y, 2 * i + 1), x2 * c + x1 * sn);
    }
  }
}

// ---- inference fusions for a decoder layer (contracts: swiglu, rope_qkv in ../../kernels.ts)

// out (rows, n) = silu(gu[:, 0:n]) · gu[:, n:2n]; the same arithmetic as unary SILU then
// binary MUL (bit for bit).
export function swiglu(out: usize, gu: usize, rows: i32, n: i32, tid: i32, nt: i32): void {
  const s = shareStart(rows, tid, nt, 1), e = shareStart(rows, tid + 1, nt, 1);
  const z = f32x4.splat(0);
  for (let r = s; r < e; r++) {
    const G = row(gu, r, 2 * n), U = ptr(G, n), Y = row(out, r, n);
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const x = v128.load(ptr(G, i));
      v128.store(ptr(Y, i), f32x4.mul(f32x4.mul(x, vsigmoid(x)), v128.load(ptr(U, i))));
    }
    if (i < n) {
      const x = loadN(ptr(G, i), n - i, z);
      storeN(ptr(Y, i), f32x4.mul(f32x4.mul(x, vsigmoid(x)), loadN(ptr(U, i), n - i, z)), n - i);
    }
  }
}

// Rows of x (B·T rows of (Hq + 2·Hkv)·D floats: q heads, k heads, v heads): rotate the q heads
// in place; write the rotated k heads and the v heads to kc/vc at [b, h, t] (element offset
// b·sKb + h·sKh + t·sKs, the same strides for both; with kvHalf the cache holds bf16, rounded as
// toBf16, its elements 2 bytes). Position t uses cos/sin row t.
export function rope_qkv(
  x: usize, kc: usize, vc: usize, cos: usize, sin: usize, B: i32, T: i32, Hq: i32, Hkv: i32, D: i32,
  sKb: i32, sKh: i32, sKs: i32, interleaved: i32, kvHalf: i32, tid: i32, nt: i32,
): void {
  const rows = B * T, half = D >> 1, R = (Hq + 2 * Hkv) * D;
  const s = shareStart(rows, tid, nt, 1), e = shareStart(rows, tid + 1, nt, 1);
  const tmp = scratch();
  for (let r = s; r < e; r++) {
    const b = r / T, t = r - b * T;
    const X = row(x, r, R), C = row(cos, t, half), S = row(sin, t, half);
    for (let h = 0; h < Hq; h++) ropeRow(ptr(X, h * D), ptr(X, h * D), C, S, D, interleaved, 1);
    for (let h = 0; h < Hkv; h++) {
      const o = b * sKb + h * sKh + t * sKs;
      if (kvHalf) {
        // The rotated k row in scratch, then both rows narrowed to bf16.
        ropeRow(tmp, ptr(X, (Hq + h) * D), C, S, D, interleaved, 1);
        const kd = kc + ((<usize>o) << 1), vd = vc + ((<usize>o) << 1), vs = ptr(X, (Hq + Hkv + h) * D);
        for (let i = 0; i < D; i++) {
          store<u16>(kd + ((<usize>i) << 1), toBf16(load<f32>(ptr(tmp, i))));
          store<u16>(vd + ((<usize>i) << 1), toBf16(load<f32>(ptr(vs, i))));
        }
      } else {
        ropeRow(ptr(kc, o), ptr(X, (Hq + h) * D), C, S, D, interleaved, 1);
        memory.copy(ptr(vc, o), ptr(X, (Hq + Hkv + h) * D), (<usize>D) << 2);
      }
    }
  }
}
