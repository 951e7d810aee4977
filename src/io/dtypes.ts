// Raw tensors (bytes + dtype + shape: raw.ts) and exact conversions to and from Float32Array:
// f16 and bf16 with round-to-nearest-even (half.ts), Q8_0 exactly as ggml's quantize_row_q8_0_ref.
import { MissingTensorError, TensorError, TruncatedError, UnexpectedTensorError, UnsupportedDTypeError } from './errors.js';
import { checkFiniteTensors } from './finite.js';
import type { FiniteOptions } from './finite.js';
import { quantizeQ4_0, quantizeQ4_1, quantizeQ5_0, quantizeQ4_K, quantizeQ5_K, quantizeQ6_K } from './quantize.js';
/** io's quantiser of each of ggml's block types (ggml's reference quantisers, io/quantize.ts). */
export const QUANTIZERS: Readonly<Record<GgmlBlockDType, (x: Float32Array) => Uint8Array>> = { Q4_0: quantizeQ4_0, Q4_1: quantizeQ4_1, Q5_0: quantizeQ5_0, Q4_K: quantizeQ4_K, Q5_K: quantizeQ5_K, Q6_K: quantizeQ6_K };
import { GGML_QUANT, dequantizeBlocks } from '../backend/ref/ggml_blocks.js';
import type { GgmlQuantName } from '../backend/ref/ggml_blocks.js';
import { KEPT_RAW, QK8_0, QUANT_RAW, isKeptRaw, isQuantRaw } from './raw.js';
import type { GgmlBlockDType, RawDType, RawSource, RawTensor } from './raw.js';
import { f16ToF32Table, f32ToBf16Bits, f32ToF16Bits } from './half.js';
import type { QuantDType } from '../tensor/tensor.js';

// The raw tensor's types (raw.ts) and the half conversions (half.ts) are imported from here too.
export * from './raw.js';
export * from './half.js';

/** Bytes read per step from a deferred tensor's file: a bounded buffer, never a whole tensor. */
const FILL_CHUNK = 4 << 20;
/** The buffer permuted rows go through, shared by every fill (at most FILL_CHUNK bytes). */
let bounceBuf = new Uint8Array(0);

/**
 * Read a deferred tensor's bytes into `into` (its length), in chunks of at most 4 MiB, each
 * straight into place; rows a permutation moves go through one chunk-sized buffer. A file that
 * ends early is a TruncatedError naming the tensor.
 */
export function fillFromSource(t: RawTensor, into: Uint8Array): void {
  const src = t.source!;
  if (into.length !== src.length) throw new TensorError(src.file, t.name, `${src.length} bytes do not fit ${into.length}`);
  const order = src.rowOrder;
  const rowBytes = order ? src.length / order.length : 0;
  const step = order ? Math.max(1, Math.floor(FILL_CHUNK / rowBytes)) * rowBytes : FILL_CHUNK;
  if (order && bounceBuf.length < Math.min(step, src.length)) bounceBuf = new Uint8Array(Math.min(step, src.length));
  const bounce = order ? bounceBuf : null;
  let done = 0;
  while (done < src.length) {
    const n = Math.min(step, src.length - done);
    const buf = bounce ? bounce.subarray(0, n) : into.subarray(done, done + n);
    for (let got = 0; got < n;) {
      const r = src.readAt(buf.subarray(got), src.offset + done + got);
      if (r === 0) throw new TruncatedError(src.file, `tensor '${t.name}'`, src.offset, src.length, src.offset + done + got);
      got += r;
    }
    if (bounce && order) {
      for (let row = done / rowBytes, o = 0; o < n; row++, o += rowBytes) into.set(bounce.subarray(o, o + rowBytes), order[row] * rowBytes);
    }
    done += n;
  }
}

/**
 * A RawTensor whose bytes stay in the file until asked for: `data` reads them (once, kept), a
 * loader that knows `source` reads them straight into their destination with fillFromSource.
 * `source` is not enumerable, so a spread copy is an ordinary tensor (its bytes read).
 */
export function deferredTensor(name: string, dtype: RawDType, shape: number[], source: RawSource): RawTensor {
  let data: Uint8Array | null = null;
  const t: RawTensor = {
    name, dtype, shape,
    get data(): Uint8Array {
      if (!data) { const d = new Uint8Array(source.length); fillFromSource(t, d); data = d; }
      return data;
    },
  };
  // Not enumerable: a spread ({ ...t, data: changed }) makes an ordinary tensor of the bytes, never
  // one that a loader would fill from the file instead of from its data.
  Object.defineProperty(t, 'source', { value: source, enumerable: false });
  return t;
}

/** `t` under another name, still deferred when it was (a spread would read its bytes). */
export function renamedTensor(t: RawTensor, name: string): RawTensor {
  return t.source ? deferredTensor(name, t.dtype, [...t.shape], t.source) : { ...t, name };
}

/** Bytes per element (for block types: per block, see blockSize). */
const ELEMENT_BYTES: Record<RawDType, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
  F8_E4M3: 1, F8_E5M2: 1, Q8_0: 34,
  Q4_0: 18, Q4_1: 20, Q5_0: 22, Q4_K: 144, Q5_K: 176, Q6_K: 210,
};

export function isDType(s: unknown): s is RawDType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(ELEMENT_BYTES, s);
}

/** Elements per block: 32 for Q8_0, Q4_0, Q4_1, Q5_0; 256 for Q4_K, Q5_K, Q6_K; 1 otherwise. */
export function blockSize(dtype: RawDType): number {
  return dtype === 'Q8_0' ? QK8_0 : isQuantRaw(dtype) ? GGML_QUANT[QUANT_RAW[dtype] as GgmlQuantName].block : 1;
}
export function elementBytes(dtype: RawDType): number { return ELEMENT_BYTES[dtype]; }

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Bytes that `dtype` × `shape` take, or an error message when the shape cannot hold that dtype
 * (negative/non-integer dims, overflow, Q8_0 rows that are not whole blocks).
 */
export function byteSizeOrError(dtype: RawDType, shape: readonly number[]): number | string {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) return `invalid dimension ${String(d)} in shape [${shape.join(', ')}]`;
    n *= d;
    if (!Number.isSafeInteger(n)) return `shape [${shape.join(', ')}] has too many elements`;
  }
  const bs = blockSize(dtype);
  if (bs > 1) {
    const last = shape.length ? shape[shape.length - 1] : 1;
    if (last % bs !== 0) return `${dtype} needs the last dimension to be a multiple of ${bs}, got shape [${shape.join(', ')}]`;
  }
  const bytes = (n / bs) * ELEMENT_BYTES[dtype];
  if (!Number.isSafeInteger(bytes)) return `shape [${shape.join(', ')}] is too large`;
  return bytes;
}

export function byteSize(dtype: RawDType, shape: readonly number[], file = '<memory>', name = '?'): number {
  const r = byteSizeOrError(dtype, shape);
  if (typeof r === 'string') throw new TensorError(file, name, r);
  return r;
}

/** Check that a RawTensor's data length matches its dtype and shape. */
export function checkRawTensor(t: RawTensor, file = '<memory>'): void {
  if (!isDType(t.dtype)) throw new UnsupportedDTypeError(file, t.name, String(t.dtype));
  const need = byteSize(t.dtype, t.shape, file, t.name);
  if (t.data.length !== need) {
    throw new TensorError(file, t.name, `${t.dtype} [${t.shape.join(', ')}] needs ${need} bytes, data has ${t.data.length}`);
  }
}

/**
 * Check that `tensors` are exactly a model's: `want` maps every required name to its shape,
 * `optional` the names that may also be present (and must then have that shape). The first
 * extra, misshapen or missing tensor is an error naming it.
 */
export function checkTensorShapes(
  file: string, tensors: readonly Pick<RawTensor, 'name' | 'shape'>[], want: ReadonlyMap<string, readonly number[]>, optional?: ReadonlyMap<string, readonly number[]>,
): void {
  const seen = new Set<string>();
  for (const t of tensors) {
    const shape = want.get(t.name) ?? optional?.get(t.name);
    if (!shape) throw new UnexpectedTensorError(file, t.name);
    if (shape.length !== t.shape.length || shape.some((s, i) => s !== t.shape[i])) {
      throw new TensorError(file, t.name, `shape [${t.shape.join(', ')}] does not match the config's [${shape.join(', ')}]`);
    }
    seen.add(t.name);
  }
  for (const name of want.keys()) if (!seen.has(name)) throw new MissingTensorError(file, name);
}

// ---- Q8_0 ------------------------------------------------------------------------------

/** C's roundf: halfway cases away from zero. */
function roundf(x: number): number { return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5); }

/** Quantize to Q8_0 blocks exactly as ggml's quantize_row_q8_0_ref (d = amax/127 in f32, q = roundf(x·(1/d))). */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  if (x.length % QK8_0 !== 0) throw new RangeError(`quantizeQ8_0: length ${x.length} is not a multiple of ${QK8_0}`);
  const nb = x.length / QK8_0;
  const out = new Uint8Array(nb * 34);
  const dv = new DataView(out.buffer);
  const fr = Math.fround;
  for (let i = 0; i < nb; i++) {
    let amax = 0;
    for (let j = 0; j < QK8_0; j++) amax = Math.max(amax, Math.abs(x[i * QK8_0 + j]));
    const d = fr(amax / 127);
    const id = d ? fr(1 / d) : 0;
    dv.setUint16(i * 34, f32ToF16Bits(d), true);
    for (let j = 0; j < QK8_0; j++) dv.setInt8(i * 34 + 2 + j, roundf(fr(x[i * QK8_0 + j] * id)));
  }
  return out;
}

/** Dequantize Q8_0 blocks: y = q · f16(d), in f32 (ggml's dequantize_row_q8_0). */
export function dequantizeQ8_0(blocks: Uint8Array, n = (blocks.length / 34) * QK8_0): Float32Array {
  if (blocks.length !== (n / QK8_0) * 34 || n % QK8_0 !== 0) throw new RangeError(`dequantizeQ8_0: ${blocks.length} bytes do not hold ${n} values`);
  const out = new Float32Array(n);
  const tab = f16ToF32Table();
  for (let i = 0, nb = n / QK8_0; i < nb; i++) {
    const o = i * 34;
    const d = tab[blocks[o] | (blocks[o + 1] << 8)];
    for (let j = 0; j < QK8_0; j++) {
      const q = (blocks[o + 2 + j] << 24) >> 24;
      out[i * QK8_0 + j] = q * d;
    }
  }
  return out;
}

// ---- conversions ---------------------------------------------------------------------------

function aligned(data: Uint8Array, bytes: number): ArrayBuffer {
  // A copy whose buffer starts at the data (typed arrays need element alignment).
  return data.buffer.slice(data.byteOffset, data.byteOffset + bytes) as ArrayBuffer;
}

/**
 * toFloat32 for a caller that only reads the values (e.g. copies them into a tensor): an F32
 * tensor whose data is 4-byte aligned comes back as a view of its bytes, not a copy (loading a
 * checkpoint spent a quarter of its time copying every weight once more).
 */
export function float32Values(t: RawTensor, file = '<memory>'): Float32Array {
  if (t.dtype === 'F32' && t.data.byteOffset % 4 === 0) {
    checkRawTensor(t, file);
    return new Float32Array(t.data.buffer, t.data.byteOffset, elementCount(t.shape));
  }
  return toFloat32(t, file);
}

/** A weight loadStateDict fills in place: `fill` writes its bytes (f32 values, or `dtype` blocks) into the parameter's heap bytes. */
export interface FillEntry { shape: number[]; dtype: 'f32' | QuantDType; fill(dst: Uint8Array): void }
type StateEntry = { shape: number[]; data: Float32Array } | { shape: number[]; blocks: Uint8Array; dtype: QuantDType } | FillEntry;

/**
 * A name → f32 values map of raw tensors for Module.loadStateDict (host memory, views where
 * possible); Q8_0 tensors named in keepQ8_0 come as their blocks instead. Weights holding NaN or ±Inf are refused (a NonFiniteWeightError naming the tensor and
 * the first bad element) unless allowNonFinite (or setAllowNonFinite) says otherwise. A deferred
 * tensor (RawTensor.source) comes as a FillEntry: its bytes are read from the file straight into
 * the parameter (converted through a buffer of that one tensor when the types differ) and scanned
 * there for non-finite values; `checked` says the other tensors were scanned already.
 */
export function f32StateDict(tensors: readonly RawTensor[], file = '<memory>', opts: FiniteOptions & { keepQ8_0?: ReadonlySet<string>; keepQuantized?: ReadonlySet<string>; checked?: boolean } = {}): Record<string, StateEntry> {
  if (!opts.checked) checkFiniteTensors(tensors.filter((t) => !t.source), file, opts);
  const sd: Record<string, StateEntry> = {};
  for (const t of tensors) {
    // Quantised (or F16/BF16) weights the model keeps as they are (keepQuantized, or keepQ8_0 for
    // Q8_0 ones): their blocks as stored, not dequantised.
    const keep = isKeptRaw(t.dtype) && !!(opts.keepQuantized?.has(t.name) || (t.dtype === 'Q8_0' && opts.keepQ8_0?.has(t.name)));
    if (t.source) sd[t.name] = fillEntry(t, file, keep, opts);
    else if (keep) {
      checkRawTensor(t, file);
      sd[t.name] = { shape: [...t.shape], blocks: t.data, dtype: KEPT_RAW[t.dtype as 'Q8_0'] };
    } else sd[t.name] = { shape: [...t.shape], data: float32Values(t, file) };
  }
  return sd;
}

/** The FillEntry of a deferred tensor: its blocks as stored (keep), its F32 bytes as they are, else converted to f32 through a buffer of its own bytes. */
function fillEntry(t: RawTensor, file: string, keep: boolean, opts: FiniteOptions): FillEntry {
  byteSize(t.dtype, t.shape, file, t.name);
  const scan = (raw: Uint8Array) => checkFiniteTensors([{ name: t.name, dtype: t.dtype, shape: t.shape, data: raw }], file, opts);
  if (keep || t.dtype === 'F32') {
    return { shape: [...t.shape], dtype: keep ? KEPT_RAW[t.dtype as 'Q8_0'] : 'f32', fill(dst) { fillFromSource(t, dst); scan(dst); } };
  }
  return {
    shape: [...t.shape], dtype: 'f32',
    fill(dst) {
      const raw = new Uint8Array(t.source!.length);
      fillFromSource(t, raw);
      scan(raw);
      const values = toFloat32({ name: t.name, dtype: t.dtype, shape: t.shape, data: raw }, file);
      new Uint8Array(dst.buffer, dst.byteOffset, dst.length).set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    },
  };
}

/** Values of a float or integer tensor as f32 (exact for F32/F16/BF16/Q8_0; rounded for F64/I64…). */
export function toFloat32(t: RawTensor, file = '<memory>'): Float32Array {
  checkRawTensor(t, file);
  const n = elementCount(t.shape);
  const d = t.data;
  switch (t.dtype) {
    case 'F32': return new Float32Array(aligned(d, n * 4));
    case 'F64': return Float32Array.from(new Float64Array(aligned(d, n * 8)));
    case 'F16': {
      const h = new Uint16Array(aligned(d, n * 2));
      const tab = f16ToF32Table();
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = tab[h[i]];
      return out;
    }
    case 'BF16': {
      const h = new Uint16Array(aligned(d, n * 2));
      const out = new Float32Array(n);
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = h[i] << 16;
      return out;
    }
    case 'Q8_0': return dequantizeQ8_0(d, n);
    case 'Q4_0': case 'Q4_1': case 'Q5_0': case 'Q4_K': case 'Q5_K': case 'Q6_K':
      return dequantizeBlocks(QUANT_RAW[t.dtype] as GgmlQuantName, d.subarray(0, (n / blockSize(t.dtype)) * ELEMENT_BYTES[t.dtype]), n);
    case 'I8': return Float32Array.from(new Int8Array(aligned(d, n)));
    case 'U8': case 'BOOL': return Float32Array.from(d.subarray(0, n));
    case 'I16': return Float32Array.from(new Int16Array(aligned(d, n * 2)));
    case 'U16': return Float32Array.from(new Uint16Array(aligned(d, n * 2)));
    case 'I32': return Float32Array.from(new Int32Array(aligned(d, n * 4)));
    case 'U32': return Float32Array.from(new Uint32Array(aligned(d, n * 4)));
    case 'I64': return Float32Array.from(new BigInt64Array(aligned(d, n * 8)), Number);
    case 'U64': return Float32Array.from(new BigUint64Array(aligned(d, n * 8)), Number);
    default: throw new UnsupportedDTypeError(file, t.name, t.dtype, 'no conversion to f32');
  }
}

/** Encode f32 values as a RawTensor of a float dtype (F32, F16, BF16, F64) or quantised with ggml's reference quantisers (Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K, Q6_K). */
export function fromFloat32(name: string, shape: number[], values: Float32Array, dtype: RawDType = 'F32'): RawTensor {
  const n = elementCount(shape);
  if (values.length !== n) throw new TensorError('<memory>', name, `shape [${shape.join(', ')}] needs ${n} values, got ${values.length}`);
  let data: Uint8Array;
  switch (dtype) {
    case 'F32': data = new Uint8Array(Float32Array.from(values).buffer); break;
    case 'F64': data = new Uint8Array(Float64Array.from(values).buffer); break;
    case 'F16': {
      const h = new Uint16Array(n);
      for (let i = 0; i < n; i++) h[i] = f32ToF16Bits(values[i]);
      data = new Uint8Array(h.buffer);
      break;
    }
    case 'BF16': {
      const h = new Uint16Array(n);
      for (let i = 0; i < n; i++) h[i] = f32ToBf16Bits(values[i]);
      data = new Uint8Array(h.buffer);
      break;
    }
    case 'Q8_0': {
      byteSize('Q8_0', shape, '<memory>', name); // rows must be whole blocks
      data = quantizeQ8_0(values);
      break;
    }
    case 'Q4_0': case 'Q4_1': case 'Q5_0': case 'Q4_K': case 'Q5_K': case 'Q6_K': {
      byteSize(dtype, shape, '<memory>', name); // rows must be whole blocks
      data = QUANTIZERS[dtype](values);
      break;
    }
    default: throw new UnsupportedDTypeError('<memory>', name, dtype, 'fromFloat32 writes F32, F64, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K or Q6_K');
  }
  return { name, dtype, shape: [...shape], data };
}

/**
 * Quantises a matrix's f32 values (rows of whole blocks; the last dimension is the row) to Q8_0 or
 * one of ggml's block types with the bytes fromFloat32 writes, by a faster route than io's
 * JavaScript quantisers (the backend's kernels: io/model.ts quantizeInHeap).
 */
export type BlockQuantizer = (name: string, shape: readonly number[], values: Float32Array, dtype: 'Q8_0' | GgmlBlockDType) => RawTensor;

/** Convert a float tensor to another float dtype (through f32; identity when equal); block types by `quantize` when given. */
export function convertDType(t: RawTensor, dtype: RawDType, file = '<memory>', quantize?: BlockQuantizer): RawTensor {
  if (t.dtype === dtype) return t;
  if (quantize && isQuantRaw(dtype)) return quantize(t.name, t.shape, toFloat32(t, file), dtype);
  return fromFloat32(t.name, t.shape, toFloat32(t, file), dtype);
}
