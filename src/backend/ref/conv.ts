// 2-d convolution's data movement: image patches to columns (im2col) and back (col2im), the
// obvious loops (see KERNEL_ARGS for the layouts). Both walk the same (column entry, image
// element) pairs; the image index is -1 where a patch reaches into the padding.
import { H } from '../heap.js';

function forEachPatchEntry(cols: number, x: number, planes: number, Hh: number, W: number, kh: number, kw: number,
  sh: number, sw: number, ph: number, pw: number, dh: number, dw: number, OH: number, OW: number, visit: (c: number, xi: number) => void): void {
  const C = cols >>> 2, X = x >>> 2, L = OH * OW;
  for (let p = 0; p < planes; p++) {
    for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) {
      const row = C + ((p * kh + i) * kw + j) * L;
      for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) {
        const y = oh * sh - ph + i * dh, xx = ow * sw - pw + j * dw;
        visit(row + oh * OW + ow, y >= 0 && y < Hh && xx >= 0 && xx < W ? X + (p * Hh + y) * W + xx : -1);
      }
    }
  }
}

export function im2col(cols: number, x: number, planes: number, Hh: number, W: number, kh: number, kw: number,
  sh: number, sw: number, ph: number, pw: number, dh: number, dw: number, OH: number, OW: number): void {
  const f = H.f32;
  forEachPatchEntry(cols, x, planes, Hh, W, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, (c, xi) => { f[c] = xi >= 0 ? f[xi] : 0; });
}

export function col2im(x: number, cols: number, planes: number, Hh: number, W: number, kh: number, kw: number,
  sh: number, sw: number, ph: number, pw: number, dh: number, dw: number, OH: number, OW: number): void {
  const f = H.f32;
  forEachPatchEntry(cols, x, planes, Hh, W, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, (c, xi) => { if (xi >= 0) f[xi] += f[c]; });
}
