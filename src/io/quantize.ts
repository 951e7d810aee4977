// Quantisers for ggml's Q4_0, Q4_1, Q5_0, Q4_K, Q5_K and Q6_K blocks, following ggml's reference
// quantisers (quantize_row_q4_0_ref, _q4_1_ref, _q5_0_ref, quantize_row_q4_K_ref and _q5_K_ref
// with make_qkx2_quants, quantize_row_q6_K_ref with make_qx_quants) step by step in f32 arithmetic (every operation rounded by Math.fround,
// nearest_int's ties to even). Layouts: backend/ref/ggml_blocks.ts. Node-free.
import { f32ToF16Bits, f16BitsToF32 } from './half.js';

const fr = Math.fround;
/** ggml's nearest_int: round to nearest, ties to even (the 1.5·2^23 trick). */
function nearestInt(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
const clamp = (v: number, lo: number, hi: number): number => Math.max(lo, Math.min(hi, v));

function check(x: Float32Array, block: number, what: string): number {
  if (x.length % block !== 0) throw new RangeError(`${what}: length ${x.length} is not a multiple of ${block}`);
  return x.length / block;
}

/** Q4_0 blocks (18 bytes per 32 values): d = max/−8 (max the value of largest magnitude), q = min(15, trunc(x/d + 8.5)). */
export function quantizeQ4_0(x: Float32Array): Uint8Array {
  const nb = check(x, 32, 'quantizeQ4_0');
  const out = new Uint8Array(nb * 18);
  for (let i = 0; i < nb; i++) {
    const o = i * 32;
    let amax = 0, max = 0;
    for (let j = 0; j < 32; j++) if (amax < Math.abs(x[o + j])) { amax = Math.abs(x[o + j]); max = x[o + j]; }
    const d = fr(max / -8), id = d ? fr(1 / d) : 0;
    const h = f32ToF16Bits(d);
    out[i * 18] = h & 0xff; out[i * 18 + 1] = h >> 8;
    for (let j = 0; j < 16; j++) {
      const x0 = fr(x[o + j] * id), x1 = fr(x[o + 16 + j] * id);
      const q0 = Math.min(15, Math.trunc(fr(x0 + 8.5))), q1 = Math.min(15, Math.trunc(fr(x1 + 8.5)));
      out[i * 18 + 2 + j] = (q0 & 15) | ((q1 & 15) << 4);
    }
  }
  return out;
}

/** Q4_1 blocks (20 bytes per 32 values): d = (max − min)/15, m = min, q = min(15, trunc((x − min)/d + 0.5)). */
export function quantizeQ4_1(x: Float32Array): Uint8Array {
  const nb = check(x, 32, 'quantizeQ4_1');
  const out = new Uint8Array(nb * 20);
  for (let i = 0; i < nb; i++) {
    const o = i * 32, y = i * 20;
    let min = Infinity, max = -Infinity;
    for (let j = 0; j < 32; j++) { if (x[o + j] < min) min = x[o + j]; if (x[o + j] > max) max = x[o + j]; }
    const d = fr(fr(max - min) / 15), id = d ? fr(1 / d) : 0;
    const dh = f32ToF16Bits(d), mh = f32ToF16Bits(min);
    out[y] = dh & 0xff; out[y + 1] = dh >> 8; out[y + 2] = mh & 0xff; out[y + 3] = mh >> 8;
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(15, Math.trunc(fr(fr(fr(x[o + j] - min) * id) + 0.5))), q1 = Math.min(15, Math.trunc(fr(fr(fr(x[o + 16 + j] - min) * id) + 0.5)));
      out[y + 4 + j] = (q0 & 15) | ((q1 & 15) << 4);
    }
  }
  return out;
}

/** Q5_0 blocks (22 bytes per 32 values): d = max/−16, q = min(31, trunc(x/d + 16.5)), the fifth bits in a 32-bit qh. */
export function quantizeQ5_0(x: Float32Array): Uint8Array {
  const nb = check(x, 32, 'quantizeQ5_0');
  const out = new Uint8Array(nb * 22);
  for (let i = 0; i < nb; i++) {
    const o = i * 32, y = i * 22;
    let amax = 0, max = 0;
    for (let j = 0; j < 32; j++) if (amax < Math.abs(x[o + j])) { amax = Math.abs(x[o + j]); max = x[o + j]; }
    const d = fr(max / -16), id = d ? fr(1 / d) : 0;
    const h = f32ToF16Bits(d);
    out[y] = h & 0xff; out[y + 1] = h >> 8;
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(31, Math.trunc(fr(fr(x[o + j] * id) + 16.5))), q1 = Math.min(31, Math.trunc(fr(fr(x[o + 16 + j] * id) + 16.5)));
      out[y + 6 + j] = (q0 & 15) | ((q1 & 15) << 4);
      qh |= ((q0 >> 4) << j) | ((q1 >> 4) << (j + 16));
    }
    out[y + 2] = qh & 0xff; out[y + 3] = (qh >>> 8) & 0xff; out[y + 4] = (qh >>> 16) & 0xff; out[y + 5] = (qh >>> 24) & 0xff;
  }
  return out;
}

/**
 * make_qkx2_quants: a scale and a min (returned negated, ≥ 0) for n values with weights, levels
 * L in [0, nmax], refined over nstep + 1 trial scales by weighted least squares.
 */
function makeQkx2(n: number, nmax: number, x: Float32Array, xo: number, w: Float32Array, L: Uint8Array, lo: number, rmin: number, rdelta: number, nstep: number): { scale: number; min: number } {
  let min = x[xo], max = x[xo], sumW = w[0], sumX = fr(sumW * x[xo]);
  for (let i = 1; i < n; i++) {
    if (x[xo + i] < min) min = x[xo + i];
    if (x[xo + i] > max) max = x[xo + i];
    sumW = fr(sumW + w[i]);
    sumX = fr(sumX + fr(w[i] * x[xo + i]));
  }
  if (min > 0) min = 0;
  if (max === min) { L.fill(0, lo, lo + n); return { scale: 0, min: -min }; }
  let iscale = fr(nmax / fr(max - min)), scale = fr(1 / iscale), best = 0;
  for (let i = 0; i < n; i++) {
    L[lo + i] = clamp(nearestInt(fr(iscale * fr(x[xo + i] - min))), 0, nmax);
    const diff = fr(fr(fr(scale * L[lo + i]) + min) - x[xo + i]);
    best = fr(best + fr(w[i] * fr(diff * diff)));
  }
  const aux = new Uint8Array(n);
  for (let is = 0; is <= nstep; is++) {
    iscale = fr(fr(fr(rmin + fr(rdelta * is)) + nmax) / fr(max - min));
    let sumL = 0, sumL2 = 0, sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = clamp(nearestInt(fr(iscale * fr(x[xo + i] - min))), 0, nmax);
      aux[i] = l;
      const wl = fr(w[i] * l);
      sumL = fr(sumL + wl);
      sumL2 = fr(sumL2 + fr(wl * l));
      sumXL = fr(sumXL + fr(wl * x[xo + i]));
    }
    const D = fr(fr(sumW * sumL2) - fr(sumL * sumL));
    if (D > 0) {
      let thisScale = fr(fr(fr(sumW * sumXL) - fr(sumX * sumL)) / D);
      let thisMin = fr(fr(fr(sumL2 * sumX) - fr(sumL * sumXL)) / D);
      if (thisMin > 0) { thisMin = 0; thisScale = fr(sumXL / sumL2); }
      let err = 0;
      for (let i = 0; i < n; i++) {
        const diff = fr(fr(fr(thisScale * aux[i]) + thisMin) - x[xo + i]);
        err = fr(err + fr(w[i] * fr(diff * diff)));
      }
      if (err < best) {
        L.set(aux, lo);
        best = err; scale = thisScale; min = thisMin;
      }
    }
  }
  return { scale, min: -min };
}

/** Q4_K blocks (144 bytes per 256 values), as quantize_row_q4_K_ref. */
export function quantizeQ4_K(x: Float32Array): Uint8Array { return quantizeK45(x, 4); }
/** Q5_K blocks (176 bytes per 256 values), as quantize_row_q5_K_ref. */
export function quantizeQ5_K(x: Float32Array): Uint8Array { return quantizeK45(x, 5); }

/** Q4_K / Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins (make_qkx2_quants per sub-block), levels 0…15 or 0…31. */
function quantizeK45(x: Float32Array, bits: 4 | 5): Uint8Array {
  const nb = check(x, 256, bits === 4 ? 'quantizeQ4_K' : 'quantizeQ5_K');
  const bytes = bits === 4 ? 144 : 176, nmax = bits === 4 ? 15 : 31;
  const out = new Uint8Array(nb * bytes);
  const L = new Uint8Array(256), w = new Float32Array(32), scales = new Float32Array(8), mins = new Float32Array(8);
  for (let i = 0; i < nb; i++) {
    const xo = i * 256, y = i * bytes;
    let maxScale = 0, maxMin = 0;
    for (let j = 0; j < 8; j++) {
      let sumX2 = 0;
      for (let l = 0; l < 32; l++) sumX2 = fr(sumX2 + fr(x[xo + 32 * j + l] * x[xo + 32 * j + l]));
      const avX = fr(Math.sqrt(fr(sumX2 / 32)));
      for (let l = 0; l < 32; l++) w[l] = fr(avX + Math.abs(x[xo + 32 * j + l]));
      const r = bits === 4 ? makeQkx2(32, 15, x, xo + 32 * j, w, L, 32 * j, -1, fr(0.1), 20) : makeQkx2(32, 31, x, xo + 32 * j, w, L, 32 * j, -0.5, fr(0.1), 15);
      scales[j] = r.scale; mins[j] = r.min;
      if (r.scale > maxScale) maxScale = r.scale;
      if (r.min > maxMin) maxMin = r.min;
    }
    const invScale = maxScale > 0 ? fr(63 / maxScale) : 0, invMin = maxMin > 0 ? fr(63 / maxMin) : 0;
    const s = y + 4;
    for (let j = 0; j < 8; j++) {
      const ls = Math.min(63, nearestInt(fr(invScale * scales[j]))), lm = Math.min(63, nearestInt(fr(invMin * mins[j])));
      if (j < 4) { out[s + j] = ls; out[s + j + 4] = lm; } else {
        out[s + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
        out[s + j - 4] |= (ls >> 4) << 6;
        out[s + j] |= (lm >> 4) << 6;
      }
    }
    const dh = f32ToF16Bits(fr(maxScale / 63)), mh = f32ToF16Bits(fr(maxMin / 63));
    out[y] = dh & 0xff; out[y + 1] = dh >> 8; out[y + 2] = mh & 0xff; out[y + 3] = mh >> 8;
    const d0 = f16BitsToF32(dh), m0 = f16BitsToF32(mh);
    for (let j = 0; j < 8; j++) {
      const sc = j < 4 ? out[s + j] & 63 : (out[s + j + 4] & 0xf) | ((out[s + j - 4] >> 6) << 4);
      const m = j < 4 ? out[s + j + 4] & 63 : (out[s + j + 4] >> 4) | ((out[s + j] >> 6) << 4);
      const d = fr(d0 * sc);
      if (!d) continue;
      const dm = fr(m0 * m);
      for (let ii = 0; ii < 32; ii++) L[32 * j + ii] = clamp(nearestInt(fr(fr(x[xo + 32 * j + ii] + dm) / d)), 0, nmax);
    }
    if (bits === 4) {
      for (let j = 0, q = y + 16; j < 256; j += 64, q += 32) for (let l = 0; l < 32; l++) out[q + l] = L[j + l] | (L[j + l + 32] << 4);
    } else {
      // low nibbles in qs (as Q4_K), the fifth bits in qh: bit 2g (low half of group g) and 2g + 1 (high half) of qh[l]
      for (let j = 0, q = y + 48, g = 0; j < 256; j += 64, q += 32, g++) {
        for (let l = 0; l < 32; l++) {
          const a = L[j + l], b = L[j + l + 32];
          out[q + l] = (a & 15) | ((b & 15) << 4);
          out[y + 16 + l] |= ((a >> 4) << (2 * g)) | ((b >> 4) << (2 * g + 1));
        }
      }
    }
  }
  return out;
}

/** make_qx_quants with rmse_type 1 (weights x²): a signed scale for n values, levels L + nmax in [0, 2·nmax). */
function makeQx(n: number, nmax: number, x: Float32Array, xo: number, L: Uint8Array, lo: number): number {
  let max = 0, amax = 0;
  for (let i = 0; i < n; i++) { const ax = Math.abs(x[xo + i]); if (ax > amax) { amax = ax; max = x[xo + i]; } }
  if (amax < 1e-15) { L.fill(0, lo, lo + n); return 0; }
  let iscale = fr(-nmax / max), sumLX = 0, sumL2 = 0;
  for (let i = 0; i < n; i++) {
    const v = x[xo + i], l = clamp(nearestInt(fr(iscale * v)), -nmax, nmax - 1);
    L[lo + i] = l + nmax;
    const w = fr(v * v);
    sumLX = fr(sumLX + fr(fr(w * v) * l));
    sumL2 = fr(sumL2 + fr(fr(w * l) * l));
  }
  let scale = sumL2 ? fr(sumLX / sumL2) : 0, best = fr(scale * sumLX);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = fr(-fr(nmax + fr(fr(0.1) * is)) / max);
    let sLX = 0, sL2 = 0;
    for (let i = 0; i < n; i++) {
      const v = x[xo + i], l = clamp(nearestInt(fr(iscale * v)), -nmax, nmax - 1), w = fr(v * v);
      sLX = fr(sLX + fr(fr(w * v) * l));
      sL2 = fr(sL2 + fr(fr(w * l) * l));
    }
    if (sL2 > 0 && fr(sLX * sLX) > fr(best * sL2)) {
      for (let i = 0; i < n; i++) L[lo + i] = nmax + clamp(nearestInt(fr(iscale * x[xo + i])), -nmax, nmax - 1);
      scale = fr(sLX / sL2); best = fr(scale * sLX);
    }
  }
  return scale;
}

/** Q6_K blocks (210 bytes per 256 values), as quantize_row_q6_K_ref. */
export function quantizeQ6_K(x: Float32Array): Uint8Array {
  const nb = check(x, 256, 'quantizeQ6_K');
  const out = new Uint8Array(nb * 210);
  const L = new Uint8Array(256), scales = new Float32Array(16);
  for (let i = 0; i < nb; i++) {
    const xo = i * 256, y = i * 210;
    let maxScale = 0, maxAbs = 0;
    for (let ib = 0; ib < 16; ib++) {
      const s = makeQx(16, 32, x, xo + 16 * ib, L, 16 * ib);
      scales[ib] = s;
      if (Math.abs(s) > maxAbs) { maxAbs = Math.abs(s); maxScale = s; }
    }
    if (maxAbs < 1e-15) continue; // an all-zero block (d = 0)
    const iscale = fr(-128 / maxScale);
    const dh = f32ToF16Bits(fr(1 / iscale));
    out[y + 208] = dh & 0xff; out[y + 209] = dh >> 8;
    for (let ib = 0; ib < 16; ib++) out[y + 192 + ib] = Math.min(127, nearestInt(fr(iscale * scales[ib]))) & 0xff;
    const d0 = f16BitsToF32(dh);
    for (let j = 0; j < 16; j++) {
      const d = fr(d0 * ((out[y + 192 + j] << 24) >> 24));
      if (!d) continue;
      for (let ii = 0; ii < 16; ii++) L[16 * j + ii] = clamp(nearestInt(fr(x[xo + 16 * j + ii] / d)), -32, 31) + 32;
    }
    for (let j = 0, ql = y, qh = y + 128; j < 256; j += 128, ql += 64, qh += 32) {
      for (let l = 0; l < 32; l++) {
        const a = L[j + l], b = L[j + l + 32], c = L[j + l + 64], e = L[j + l + 96];
        out[ql + l] = (a & 0xf) | ((c & 0xf) << 4);
        out[ql + l + 32] = (b & 0xf) | ((e & 0xf) << 4);
        out[qh + l] = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6);
      }
    }
  }
  return out;
}
