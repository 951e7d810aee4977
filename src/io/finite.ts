// Non-finite weights (NaN, ±Inf) named at load: a model whose file holds one would "generate"
// nothing or garbage and exit 0. The scan reads the stored bits (F32, F16, BF16, F64, and Q8_0's
// block scales; integer types cannot hold one), before any conversion or allocation, and stops at
// the first bad element. Refusing is the default; `allowNonFinite` (the CLI's --allow-nonfinite,
// or setAllowNonFinite for a whole process) lets such a file load. Node-free.
import { TensorError } from './errors.js';
import { QK8_0, QUANT_RAW } from './raw.js';
import { bf16BitsToF32, f16BitsToF32 } from './half.js';
import { GGML_QUANT, scaleOffsets } from '../backend/ref/ggml_blocks.js';
import type { GgmlQuantName } from '../backend/ref/ggml_blocks.js';
import type { RawTensor } from './raw.js';

/** A tensor holds NaN or ±Inf: names the file, the tensor and the first bad element. */
export class NonFiniteWeightError extends TensorError {
  constructor(file: string, tensor: string, readonly index: number, readonly value: number, shape: readonly number[]) {
    super(file, tensor, `holds a non-finite value: ${value} at index ${index}${shape.length > 1 ? ` (${fmtIndex(index, shape)})` : ''}; pass allowNonFinite (CLI: --allow-nonfinite) to load it anyway`);
    this.name = 'NonFiniteWeightError';
  }
}

function fmtIndex(flat: number, shape: readonly number[]): string {
  const idx: number[] = new Array(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    const n = shape[d] || 1;
    idx[d] = flat % n;
    flat = Math.floor(flat / n);
  }
  return `[${idx.join(', ')}]`;
}

let allowByDefault = false;
/** Allow (or refuse again) non-finite weights wherever a loader is not told either way (the CLI's --allow-nonfinite). */
export function setAllowNonFinite(allow: boolean): void { allowByDefault = allow; }
/** The process-wide default (false unless setAllowNonFinite(true) was called). */
export function allowNonFiniteByDefault(): boolean { return allowByDefault; }

export interface FiniteOptions {
  /** Load weights holding NaN or ±Inf instead of refusing them (default: the process-wide setting, false). */
  allowNonFinite?: boolean;
}

/**
 * The index of the first f32 bit pattern with an all-ones exponent (NaN, ±Inf), or -1. A small
 * function of its own over Int32Array: written inline in the dtype switch over a Uint32Array, the
 * scan of a 15M model's weights took 200–660 ms in a fresh process, against 40–70 ms like this
 * (the first, and usually only, call of a loader runs before V8 optimises a large function).
 */
function scanF32Bits(u: Int32Array): number {
  for (let i = 0; i < u.length; i++) if ((u[i] & 0x7f800000) === 0x7f800000) return i;
  return -1;
}

/** The index of the first 16-bit pattern whose exponent bits (`mask`) are all ones, or -1. */
function scanHalfBits(h: Uint16Array, mask: number): number {
  for (let i = 0; i < h.length; i++) if ((h[i] & mask) === mask) return i;
  return -1;
}

/** The first non-finite element of a raw tensor (flat index and value), or null. Types without one: null. */
export function firstNonFinite(t: RawTensor): { index: number; value: number } | null {
  const d = t.data;
  const aligned = (k: number) => d.byteOffset % k === 0;
  switch (t.dtype) {
    case 'F32': {
      const n = d.length >>> 2;
      if (aligned(4)) {
        const i = scanF32Bits(new Int32Array(d.buffer, d.byteOffset, n));
        return i < 0 ? null : { index: i, value: new Float32Array(d.buffer, d.byteOffset + 4 * i, 1)[0] };
      }
      for (let i = 0; i < n; i++) {
        if ((d[4 * i + 3] & 0x7f) === 0x7f && (d[4 * i + 2] & 0x80) !== 0) return { index: i, value: new DataView(d.buffer, d.byteOffset).getFloat32(4 * i, true) };
      }
      return null;
    }
    case 'F16': case 'BF16': {
      const n = d.length >>> 1;
      const mask = t.dtype === 'F16' ? 0x7c00 : 0x7f80;
      const val = (h: number) => (t.dtype === 'F16' ? f16BitsToF32(h) : bf16BitsToF32(h));
      if (aligned(2)) {
        const h = new Uint16Array(d.buffer, d.byteOffset, n);
        const i = scanHalfBits(h, mask);
        return i < 0 ? null : { index: i, value: val(h[i]) };
      }
      for (let i = 0; i < n; i++) {
        const h = d[2 * i] | (d[2 * i + 1] << 8);
        if ((h & mask) === mask) return { index: i, value: val(h) };
      }
      return null;
    }
    case 'F64': {
      // Also a finite value beyond f32's range: it becomes ±Inf when the weights are converted.
      const n = d.length >>> 3;
      const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
      for (let i = 0; i < n; i++) {
        const x = dv.getFloat64(8 * i, true);
        if (!Number.isFinite(Math.fround(x))) return { index: i, value: Math.fround(x) };
      }
      return null;
    }
    case 'Q4_0': case 'Q4_1': case 'Q5_0': case 'Q4_K': case 'Q5_K': case 'Q6_K': {
      // A non-finite f16 scale (d, or the min m/dmin) makes its block's values non-finite.
      const { block, bytes } = GGML_QUANT[QUANT_RAW[t.dtype] as GgmlQuantName];
      const offs = scaleOffsets(QUANT_RAW[t.dtype] as GgmlQuantName);
      const nb = Math.floor(d.length / bytes);
      for (let b = 0; b < nb; b++) {
        for (const o of offs) {
          const h = d[bytes * b + o] | (d[bytes * b + o + 1] << 8);
          if ((h & 0x7c00) === 0x7c00) return { index: b * block, value: f16BitsToF32(h) };
        }
      }
      return null;
    }
    case 'Q8_0': {
      // Each 34-byte block is an f16 scale d and 32 int8: y = q·d is non-finite for every q iff d is (0·Inf is NaN).
      const nb = Math.floor(d.length / 34);
      for (let b = 0; b < nb; b++) {
        const h = d[34 * b] | (d[34 * b + 1] << 8);
        if ((h & 0x7c00) === 0x7c00) return { index: b * QK8_0, value: ((d[34 * b + 2] << 24) >> 24) * f16BitsToF32(h) };
      }
      return null;
    }
    default:
      return null; // integers and booleans are always finite; F8 types are not converted by this library
  }
}

/**
 * Refuse tensors holding NaN or ±Inf (unless allowed): a NonFiniteWeightError naming `file`, the
 * first such tensor and its first bad element.
 */
export function checkFiniteTensors(tensors: readonly RawTensor[], file: string, opts: FiniteOptions = {}): void {
  if (opts.allowNonFinite ?? allowByDefault) return;
  for (const t of tensors) {
    const bad = firstNonFinite(t);
    if (bad) throw new NonFiniteWeightError(file, t.name, bad.index, bad.value, t.shape);
  }
}
