// ggml's quantised block layouts and their dequantisation, value by value in f32, written from
// the format's definition (ggml-common.h's block structs, ggml-quants.c's dequantize_row_*):
// the reference that the ref kernels, the wasm kernels' tests and the file readers share.
//
//   type  ggml id  values/block  bytes  layout (little-endian)                 value of element
//   Q4_0   2        32           18     d f16, qs[16]                           d·(nibble − 8)
//   Q4_1   3        32           20     d f16, m f16, qs[16]                    d·nibble + m
//   Q5_0   6        32           22     d f16, qh u32, qs[16]                   d·(5-bit − 16)
//   Q4_K  12       256          144     d, dmin f16, scales[12], qs[128]        d·sc·nibble − dmin·mn
//   Q5_K  13       256          176     d, dmin f16, scales[12], qh[32], qs[128] d·sc·q5 − dmin·mn
//   Q6_K  14       256          210     ql[128], qh[64], scales i8[16], d f16    d·sc·(6-bit − 32)
//
// In the 32-value types element j < 16 is the low nibble of qs[j] and element j + 16 its high
// nibble (Q5_0: bit j of qh is the fifth bit of element j). The K types hold 256 values in
// sub-blocks: Q4_K/Q5_K 8 of 32 with 6-bit scales and mins packed in 12 bytes (get_scale_min_k4),
// each group of 64 values taking the low then the high nibbles of 32 bytes of qs; Q6_K 16 of 16
// with int8 scales, each half of 128 values taking 64 bytes of ql and 32 of qh.
// Products are rounded to f32 one operation at a time, in the formula's order: Q4_K's value is
// fround(fround(d·sc)·q) − fround(dmin·m) rounded, Q6_K's fround(fround(d·sc)·q).

/** Quantised ggml block types kept in memory (beside Q8_0, which has its own kernels). */
export const GGML_QUANT = {
  q4_0: { id: 2, block: 32, bytes: 18 },
  q4_1: { id: 3, block: 32, bytes: 20 },
  q5_0: { id: 6, block: 32, bytes: 22 },
  q4_k: { id: 12, block: 256, bytes: 144 },
  q5_k: { id: 13, block: 256, bytes: 176 },
  q6_k: { id: 14, block: 256, bytes: 210 },
} as const;
export type GgmlQuantName = keyof typeof GGML_QUANT;
const BY_ID = new Map(Object.entries(GGML_QUANT).map(([k, v]) => [v.id as number, { name: k as GgmlQuantName, ...v }]));
export function quantById(id: number): { name: GgmlQuantName; id: number; block: number; bytes: number } {
  const t = BY_ID.get(id);
  if (!t) throw new RangeError(`ggml type ${id} is not a quantised type kept in memory`);
  return t;
}

/**
 * 16-bit float weights kept in memory (F16: IEEE half; BF16: the top half of an f32), with their
 * ggml type ids; one value per "block" of 2 bytes, so any row length. The quant_* kernels take
 * them by id: weights widened to f32 exactly, x kept in f32 (no rounding of x).
 */
export const GGML_HALF = {
  f16: { id: 1, block: 1, bytes: 2 },
  bf16: { id: 30, block: 1, bytes: 2 },
} as const;
export type GgmlHalfName = keyof typeof GGML_HALF;
export const GGML_F16 = GGML_HALF.f16.id, GGML_BF16 = GGML_HALF.bf16.id;

const bfBuf = new Float32Array(1), bfBits = new Uint32Array(bfBuf.buffer);
/** BF16 bits → the f32 value (exact: the bits are an f32's top half). */
export function bf16ToF32(h: number): number {
  bfBits[0] = (h & 0xffff) << 16;
  return bfBuf[0];
}

/**
 * The f32 bit pattern of a half (F16) or BF16 pattern, exactly as a C cast gives it: NaN payloads
 * kept (a JS number would make every NaN the canonical one).
 */
export function halfToF32Bits(h: number): number {
  if ((h & 0x7c00) === 0x7c00) return (((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13)) >>> 0;
  bfBuf[0] = halfToF32(h);
  return bfBits[0];
}
export function bf16ToF32Bits(h: number): number { return ((h & 0xffff) << 16) >>> 0; }

/** f32 → bfloat16 bits, round to nearest even; NaN stays a quiet NaN (as ggml and torch). */
export function f32ToBf16Bits(x: number): number {
  bfBuf[0] = x;
  const b = bfBits[0];
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff;
  return Math.floor((b + 0x7fff + ((b >>> 16) & 1)) / 65536) & 0xffff;
}

/** IEEE half bits → the f32 value (exact: subnormals, ±inf and NaN included). */
export function halfToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >>> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

const fr = Math.fround;
const half = (u8: Uint8Array, o: number): number => halfToF32(u8[o] | (u8[o + 1] << 8));

/** Q4_K/Q5_K: the 6-bit scale and min of sub-block j (0…7) from the 12 packed bytes at s. */
export function scaleMinK4(u8: Uint8Array, s: number, j: number): [number, number] {
  if (j < 4) return [u8[s + j] & 63, u8[s + j + 4] & 63];
  return [(u8[s + j + 4] & 0xf) | ((u8[s + j - 4] >> 6) << 4), (u8[s + j + 4] >> 4) | ((u8[s + j] >> 6) << 4)];
}

/** The integer quant of element j of the block at o (before scales): Q4_0 [−8,7], Q4_1 [0,15], Q5_0 [−16,15], Q4_K [0,15], Q5_K [0,31], Q6_K [−32,31]. */
export function quantAt(type: GgmlQuantName, u8: Uint8Array, o: number, j: number): number {
  switch (type) {
    case 'q4_0': return (j < 16 ? u8[o + 2 + j] & 15 : u8[o + 2 + j - 16] >> 4) - 8;
    case 'q4_1': return j < 16 ? u8[o + 4 + j] & 15 : u8[o + 4 + j - 16] >> 4;
    case 'q5_0': {
      const qh = (u8[o + 2] | (u8[o + 3] << 8) | (u8[o + 4] << 16) | (u8[o + 5] << 24)) >>> 0;
      const lo = j < 16 ? u8[o + 6 + j] & 15 : u8[o + 6 + j - 16] >> 4;
      return (lo | (((qh >>> j) & 1) << 4)) - 16;
    }
    case 'q4_k': case 'q5_k': {
      const g = j >> 6, l = j & 31, high = (j & 32) !== 0; // group of 64, lane, which nibble
      const qs = o + (type === 'q4_k' ? 16 : 48) + 32 * g + l;
      const v = high ? u8[qs] >> 4 : u8[qs] & 15;
      if (type === 'q4_k') return v;
      const bit = 2 * g + (high ? 1 : 0);
      return v + (((u8[o + 16 + l] >> bit) & 1) << 4);
    }
    case 'q6_k': {
      const h = j >> 7, r = j & 127, l = r & 31, part = r >> 5; // half, quarter (0…3), lane
      const ql = o + 64 * h + l + (part & 1 ? 32 : 0);
      const lo = part < 2 ? u8[ql] & 15 : u8[ql] >> 4;
      const hi = (u8[o + 128 + 32 * h + l] >> (2 * part)) & 3;
      return (lo | (hi << 4)) - 32;
    }
  }
}

/** Element j of the block at byte o, dequantised as ggml does (f32 roundings in the formula's order). */
export function valueAt(type: GgmlQuantName, u8: Uint8Array, o: number, j: number): number {
  const q = quantAt(type, u8, o, j);
  switch (type) {
    case 'q4_0': case 'q5_0': return fr(q * half(u8, o));
    case 'q4_1': return fr(fr(q * half(u8, o)) + half(u8, o + 2));
    case 'q4_k': case 'q5_k': {
      const [sc, m] = scaleMinK4(u8, o + 4, j >> 5);
      return fr(fr(fr(half(u8, o) * sc) * q) - fr(half(u8, o + 2) * m));
    }
    case 'q6_k': {
      const sc = (u8[o + 192 + (j >> 4)] << 24) >> 24;
      return fr(fr(half(u8, o + 208) * sc) * q);
    }
  }
}

/** Every block of `blocks` dequantised (n values, n a multiple of the block size). */
export function dequantizeBlocks(type: GgmlQuantName, blocks: Uint8Array, n: number): Float32Array {
  const { block, bytes } = GGML_QUANT[type];
  if (n % block !== 0 || blocks.length !== (n / block) * bytes) throw new RangeError(`dequantize ${type}: ${blocks.length} bytes do not hold ${n} values`);
  const out = new Float32Array(n);
  for (let b = 0; b < n / block; b++) for (let j = 0; j < block; j++) out[b * block + j] = valueAt(type, blocks, b * bytes, j);
  return out;
}

/** Byte offsets (within a block) of the f16 scales of a block: d (and dmin / m). */
export function scaleOffsets(type: GgmlQuantName): number[] {
  switch (type) {
    case 'q4_0': case 'q5_0': return [0];
    case 'q4_1': case 'q4_k': case 'q5_k': return [0, 2];
    case 'q6_k': return [208];
  }
}
