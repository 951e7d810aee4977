// 2-d convolution's data movement (see KERNEL_ARGS): im2col copies image patches into columns,
// col2im adds columns back into the image. Threads split im2col's rows (plane, i, j) and
// col2im's planes, so every output element has one writer. A stride of 1 (the common case)
// copies or adds whole runs of a row with SIMD; other strides go element by element.
import { shareStart } from './vmath';

@inline function ptr(base: usize, i: i32): usize { return base + ((<usize>i) << 2); }

/** The output columns ow in [lo, hi) whose input column ow·sw − pw + off lies in [0, W). */
@inline function validLo(pw: i32, off: i32, sw: i32): i32 {
  const a = pw - off; // ow·sw ≥ a
  return a <= 0 ? 0 : (a + sw - 1) / sw;
}
@inline function validHi(W: i32, pw: i32, off: i32, sw: i32, OW: i32): i32 {
  const b = W + pw - off; // ow·sw < b
  if (b <= 0) return 0;
  const h = (b + sw - 1) / sw;
  return h < OW ? h : OW;
}

export function im2col(cols: usize, x: usize, planes: i32, Hh: i32, W: i32, kh: i32, kw: i32,
  sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32, OH: i32, OW: i32, tid: i32, nt: i32): void {
  const rows = planes * kh * kw, L = OH * OW;
  const r0 = shareStart(rows, tid, nt, 1), r1 = shareStart(rows, tid + 1, nt, 1);
  for (let r = r0; r < r1; r++) {
    const j = r % kw, i = (r / kw) % kh, p = r / (kw * kh);
    const dst = ptr(cols, r * L), plane = ptr(x, p * Hh * W);
    const off = j * dw;
    const lo = validLo(pw, off, sw), hi = validHi(W, pw, off, sw, OW);
    for (let oh = 0; oh < OH; oh++) {
      const y = oh * sh - ph + i * dh;
      const d = ptr(dst, oh * OW);
      if (y < 0 || y >= Hh || lo >= hi) {
        memory.fill(d, 0, (<usize>OW) << 2);
        continue;
      }
      if (lo > 0) memory.fill(d, 0, (<usize>lo) << 2);
      if (hi < OW) memory.fill(ptr(d, hi), 0, (<usize>(OW - hi)) << 2);
      const src = ptr(plane, y * W);
      if (sw == 1) {
        memory.copy(ptr(d, lo), ptr(src, lo - pw + off), (<usize>(hi - lo)) << 2);
      } else {
        for (let ow = lo; ow < hi; ow++) store<f32>(ptr(d, ow), load<f32>(ptr(src, ow * sw - pw + off)));
      }
    }
  }
}

export function col2im(x: usize, cols: usize, planes: i32, Hh: i32, W: i32, kh: i32, kw: i32,
  sh: i32, sw: i32, ph: i32, pw: i32, dh: i32, dw: i32, OH: i32, OW: i32, tid: i32, nt: i32): void {
  const L = OH * OW;
  const p0 = shareStart(planes, tid, nt, 1), p1 = shareStart(planes, tid + 1, nt, 1);
  for (let p = p0; p < p1; p++) {
    const plane = ptr(x, p * Hh * W);
    for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) {
      const src = ptr(cols, ((p * kh + i) * kw + j) * L);
      const off = j * dw;
      const lo = validLo(pw, off, sw), hi = validHi(W, pw, off, sw, OW);
      if (lo >= hi) continue;
      for (let oh = 0; oh < OH; oh++) {
        const y = oh * sh - ph + i * dh;
        if (y < 0 || y >= Hh) continue;
        const s = ptr(src, oh * OW), dst = ptr(plane, y * W);
        if (sw == 1) {
          const base = lo - pw + off, n = hi - lo;
          let k = 0;
          for (; k + 4 <= n; k += 4) {
            const a = ptr(dst, base + k);
            v128.store(a, f32x4.add(v128.load(a), v128.load(ptr(s, lo + k))));
          }
          for (; k < n; k++) {
            const a = ptr(dst, base + k);
            store<f32>(a, load<f32>(a) + load<f32>(ptr(s, lo + k)));
          }
        } else {
          for (let ow = lo; ow < hi; ow++) {
            const a = ptr(dst, ow * sw - pw + off);
            store<f32>(a, load<f32>(a) + load<f32>(ptr(s, ow)));
          }
        }
      }
    }
  }
}
