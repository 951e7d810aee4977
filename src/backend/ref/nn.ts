// Reference kernels for the fused neural-network ops (see KERNEL_ARGS for the contracts).
import { H } from '../heap.js';
import { f32ToBf16Bits } from './ggml_blocks.js';

export function softmax(out: number, a: number, rows: number, cols: number, log: number): void {
  const f = H.f32;
  for (let r = 0; r < rows; r++) {
    const x = (a >>> 2) + r * cols, y = (out >>> 2) + r * cols;
    let m = -Infinity;
    for (let j = 0; j < cols; j++) m = Math.max(m, f[x + j]);
    let s = 0;
    for (let j = 0; j < cols; j++) s += Math.exp(f[x + j] - m);
    const lse = m + Math.log(s);
    for (let j = 0; j < cols; j++) f[y + j] = log ? f[x + j] - lse : Math.exp(f[x + j] - lse);
  }
}

export function softmax_bwd(gx: number, y: number, gy: number, rows: number, cols: number, log: number): void {
  const f = H.f32;
  for (let r = 0; r < rows; r++) {
    const o = r * cols, Y = (y >>> 2) + o, G = (gy >>> 2) + o, X = (gx >>> 2) + o;
    let s = 0;
    if (log) {
      for (let j = 0; j < cols; j++) s += f[G + j];
      for (let j = 0; j < cols; j++) f[X + j] = f[G + j] - Math.exp(f[Y + j]) * s;
    } else {
      for (let j = 0; j < cols; j++) s += f[G + j] * f[Y + j];
      for (let j = 0; j < cols; j++) f[X + j] = f[Y + j] * (f[G + j] - s);
    }
  }
}

export function cross_entropy(loss: number, lse: number, logits: number, targets: number, rows: number, V: number, ignore: number, eps: number): void {
  const f = H.f32, iv = H.i32;
  for (let r = 0; r < rows; r++) {
    const t = iv[(targets >>> 2) + r], x = (logits >>> 2) + r * V;
    let m = -Infinity;
    for (let j = 0; j < V; j++) m = Math.max(m, f[x + j]);
    let s = 0, sum = 0;
    for (let j = 0; j < V; j++) { s += Math.exp(f[x + j] - m); sum += f[x + j]; }
    const l = m + Math.log(s);
    f[(lse >>> 2) + r] = l;
    f[(loss >>> 2) + r] = t === ignore ? 0 : (1 - eps) * (l - f[x + t]) + eps * (l - sum / V);
  }
}

export function cross_entropy_bwd(gx: number, logits: number, lse: number, targets: number, rows: number, V: number, ignore: number, eps: number, scale: number): void {
  const f = H.f32, iv = H.i32;
  for (let r = 0; r < rows; r++) {
    const t = iv[(targets >>> 2) + r], x = (logits >>> 2) + r * V, g = (gx >>> 2) + r * V, l = f[(lse >>> 2) + r];
    for (let j = 0; j < V; j++) {
      f[g + j] = t === ignore ? 0 : scale * (Math.exp(f[x + j] - l) - (j === t ? 1 - eps : 0) - eps / V);
    }
  }
}

export function embedding(out: number, table: number, idx: number, n: number, dim: number): void {
  const f = H.f32, iv = H.i32;
  for (let i = 0; i < n; i++) {
    const row = iv[(idx >>> 2) + i];
    for (let j = 0; j < dim; j++) f[(out >>> 2) + i * dim + j] = f[(table >>> 2) + row * dim + j];
  }
}

export function embedding_bwd(gtable: number, gout: number, idx: number, n: number, dim: number): void {
  const f = H.f32, iv = H.i32;
  for (let i = 0; i < n; i++) {
    const row = iv[(idx >>> 2) + i];
    for (let j = 0; j < dim; j++) f[(gtable >>> 2) + row * dim + j] += f[(gout >>> 2) + i * dim + j];
  }
}

export function rmsnorm(out: number, rstd: number, x: number, w: number, rows: number, dim: number, eps: number): void {
  const f = H.f32;
  for (let r = 0; r < rows; r++) {
    const X = (x >>> 2) + r * dim;
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += f[X + j] * f[X + j];
    const rs = 1 / Math.sqrt(ss / dim + eps);
    f[(rstd >>> 2) + r] = rs;
    for (let j = 0; j < dim; j++) f[(out >>> 2) + r * dim + j] = f[X + j] * rs * f[(w >>> 2) + j];
  }
}

export function rmsnorm_bwd(gx: number, x: number, w: number, rstd: number, gy: number, rows: number, dim: number): void {
  const f = H.f32;
  for (let r = 0; r < rows; r++) {
    const X = (x >>> 2) + r * dim, G = (gy >>> 2) + r * dim, rs = f[(rstd >>> 2) + r];
    let dot = 0;
    for (let j = 0; j < dim; j++) dot += f[G + j] * f[(w >>> 2) + j] * f[X + j];
    const c = (dot * rs * rs * rs) / dim;
    for (let j = 0; j < dim; j++) f[(gx >>> 2) + r * dim + j] = rs * f[(w >>> 2) + j] * f[G + j] - c * f[X + j];
  }
}

export function rmsnorm_bwd_w(gw: number, x: number, rstd: number, gy: number, rows: number, dim: number): void {
  const f = H.f32;
  for (let j = 0; j < dim; j++) {
    let s = 0;
    for (let r = 0; r < rows; r++) s += f[(gy >>> 2) + r * dim + j] * f[(x >>> 2) + r * dim + j] * f[(rstd >>> 2) + r];
    f[(gw >>> 2) + j] = s;
  }
}

export function layernorm(out: number, mean: number, rstd: number, x: number, w: number, b: number, rows: number, dim: number, eps: number): void {
  const f = H.f32;
  for (let r = 0; r < rows; r++) {
    const X = (x >>> 2) + r * dim;
    let mu = 0;
    for (let j = 0; j < dim; j++) mu += f[X + j];
    mu /= dim;
    let v = 0;
    for (let j = 0; j < dim; j++) v += (f[X + j] - mu) ** 2;
    const rs = 1 / Math.sqrt(v / dim + eps);
    f[(mean >>> 2) + r] = mu;
    f[(rstd >>> 2) + r] = rs;
    for (let j = 0; j < dim; j++) {
      const xh = (f[X + j] - mu) * rs;
      f[(out >>> 2) + r * dim + j] = xh * (w ? f[(w >>> 2) + j] : 1) + (b ? f[(b >>> 2) + j] : 0);
    }
  }
}

export function layernorm_bwd(gx: number, x: number, w: number, mean: number, rstd: number, gy: number, rows: number, dim: number): void {
  const f = H.f32;
  for (let r = 0; r < rows; r++) {
    const X = (x >>> 2) + r * dim, G = (gy >>> 2) + r * dim, mu = f[(mean >>> 2) + r], rs = f[(rstd >>> 2) + r];
    let sg = 0, sgx = 0;
    for (let j = 0; j < dim; j++) {
      const g = f[G + j] * (w ? f[(w >>> 2) + j] : 1);
      sg += g;
      sgx += g * (f[X + j] - mu) * rs;
    }
    sg /= dim; sgx /= dim;
    for (let j = 0; j < dim; j++) {
      const g = f[G + j] * (w ? f[(w >>> 2) + j] : 1);
      f[(gx >>> 2) + r * dim + j] = rs * (g - sg - (f[X + j] - mu) * rs * sgx);
    }
  }
}

export function layernorm_bwd_wb(gw: number, gb: number, x: number, mean: number, rstd: number, gy: number, rows: number, dim: number): void {
  const f = H.f32;
  for (let j = 0; j < dim; j++) {
    let sw = 0, sb = 0;
    for (let r = 0; r < rows; r++) {
      const g = f[(gy >>> 2) + r * dim + j];
      sw += g * (f[(x >>> 2) + r * dim + j] - f[(mean >>> 2) + r]) * f[(rstd >>> 2) + r];
      sb += g;
    }
    if (gw) f[(gw >>> 2) + j] = sw;
    if (gb) f[(gb >>> 2) + j] = sb;
  }
}

export function rope(out: number, x: number, cos: number, sin: number, outer: number, T: number, inner: number, D: number, interleaved: number, sign: number): void {
  const f = H.f32, half = D / 2;
  for (let o = 0; o < outer; o++) {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < inner; h++) {
        const base = ((o * T + t) * inner + h) * D;
        for (let i = 0; i < half; i++) {
          const c = f[(cos >>> 2) + t * half + i], s = sign * f[(sin >>> 2) + t * half + i];
          const i1 = interleaved ? 2 * i : i, i2 = interleaved ? 2 * i + 1 : i + half;
          const x1 = f[(x >>> 2) + base + i1], x2 = f[(x >>> 2) + base + i2];
          f[(out >>> 2) + base + i1] = x1 * c - x2 * s;
          f[(out >>> 2) + base + i2] = x2 * c + x1 * s;
        }
      }
    }
  }
}

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

export function swiglu(out: number, gu: number, rows: number, n: number): void {
  const f = H.f32;
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < n; i++) {
      const g = f[(gu >>> 2) + r * 2 * n + i], u = f[(gu >>> 2) + r * 2 * n + n + i];
      f[(out >>> 2) + r * n + i] = Math.fround(g * sigmoid(g)) * u;
    }
  }
}

export function rope_qkv(x: number, kc: number, vc: number, cos: number, sin: number, B: number, T: number, Hq: number, Hkv: number, D: number,
  sKb: number, sKh: number, sKs: number, interleaved: number, kvHalf: number): void {
  const f = H.f32, half = D / 2, R = (Hq + 2 * Hkv) * D;
  const tmp = new Float32Array(D);
  const rot = (dst: number, src: number, t: number, out: Float32Array = f): void => {
    for (let i = 0; i < half; i++) {
      const c = f[(cos >>> 2) + t * half + i], s = f[(sin >>> 2) + t * half + i];
      const i1 = interleaved ? 2 * i : i, i2 = interleaved ? 2 * i + 1 : i + half;
      const x1 = f[src + i1], x2 = f[src + i2];
      out[dst + i1] = x1 * c - x2 * s;
      out[dst + i2] = x2 * c + x1 * s;
    }
  };
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const X = (x >>> 2) + (b * T + t) * R;
      for (let h = 0; h < Hq; h++) rot(X + h * D, X + h * D, t);
      for (let h = 0; h < Hkv; h++) {
        const o = b * sKb + h * sKh + t * sKs, V = X + (Hq + Hkv + h) * D;
        if (kvHalf) {
          // The cache holds bf16 (2-byte elements): k rotated in f32, then both rows rounded.
          rot(0, X + (Hq + h) * D, t, tmp);
          for (let i = 0; i < D; i++) {
            H.u16[(kc >>> 1) + o + i] = f32ToBf16Bits(tmp[i]);
            H.u16[(vc >>> 1) + o + i] = f32ToBf16Bits(f[V + i]);
          }
        } else {
          rot((kc >>> 2) + o, X + (Hq + h) * D, t);
          for (let i = 0; i < D; i++) f[(vc >>> 2) + o + i] = f[V + i];
        }
      }
    }
  }
}

/** dst (n bf16) = src (n f32), rounded to nearest even (NaN kept a quiet NaN). */
export function bf16_pack(dst: number, src: number, n: number): void {
  for (let i = 0; i < n; i++) H.u16[(dst >>> 1) + i] = f32ToBf16Bits(H.f32[(src >>> 2) + i]);
}

/** dst (n f32) = src (n bf16), exactly (bit for bit: NaN payloads kept). */
export function bf16_widen(dst: number, src: number, n: number): void {
  for (let i = 0; i < n; i++) H.i32[(dst >>> 2) + i] = H.u16[(src >>> 1) + i] << 16;
}
