// What a raw tensor is (bytes + dtype + shape, as the formats hold it) and the dtypes it can have.
// A leaf of io/: the conversions (dtypes.ts) and the finiteness scans (finite.ts) both take it.
import type { QuantDType } from '../tensor/tensor.js';

/**
 * Element types a checkpoint can hold. Q8_0 is ggml's block type of 32 int8 + one f16 scale;
 * Q4_0, Q4_1, Q5_0 (32 values) and Q4_K, Q5_K, Q6_K (256) its other block types read and kept
 * (layouts in backend/ref/ggml_blocks.ts).
 */
export type RawDType =
  | 'F64' | 'F32' | 'F16' | 'BF16'
  | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL'
  | 'F8_E4M3' | 'F8_E5M2'
  | 'Q8_0' | GgmlBlockDType;
/** ggml block types other than Q8_0, by their names in GGUF. */
export type GgmlBlockDType = 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q4_K' | 'Q5_K' | 'Q6_K';
/** The quantised RawDTypes and the in-memory (tensor) dtype each one loads as. */
export const QUANT_RAW: Readonly<Record<'Q8_0' | GgmlBlockDType, QuantDType>> = {
  Q8_0: 'q8_0', Q4_0: 'q4_0', Q4_1: 'q4_1', Q5_0: 'q5_0', Q4_K: 'q4_k', Q5_K: 'q5_k', Q6_K: 'q6_k',
};
export function isQuantRaw(d: RawDType): d is 'Q8_0' | GgmlBlockDType {
  return Object.prototype.hasOwnProperty.call(QUANT_RAW, d);
}
/** The RawDTypes a weight can keep in memory as they are (the quantised ones and F16, BF16), and the tensor dtype each one keeps. */
export const KEPT_RAW: Readonly<Record<'Q8_0' | GgmlBlockDType | 'F16' | 'BF16', QuantDType>> = { ...QUANT_RAW, F16: 'f16', BF16: 'bf16' };
export function isKeptRaw(d: RawDType): d is keyof typeof KEPT_RAW {
  return Object.prototype.hasOwnProperty.call(KEPT_RAW, d);
}

/**
 * A tensor as the formats hold it. `shape` is row-major (last dim fastest, PyTorch/HF order,
 * also for GGUF whose ne[] is the reverse); `data` is little-endian bytes.
 */
export interface RawTensor {
  name: string;
  dtype: RawDType;
  shape: number[];
  data: Uint8Array;
  /**
   * Where a deferred tensor's bytes lie in its file (see deferredTensor): a loader reads them
   * straight into their place in the heap (fillFromSource) instead of through `data`.
   */
  source?: RawSource;
}

/**
 * A tensor's bytes in a file, not read yet: `length` bytes at `offset`, read by `readAt` (which
 * fills `into` from the file at `position` and returns the bytes it got, 0 at the end of the
 * file). `rowOrder`, when present, gives the destination row of each stored row (a q/k
 * permutation applied as the rows are read).
 */
export interface RawSource {
  file: string;
  offset: number;
  length: number;
  readAt(into: Uint8Array, position: number): number;
  rowOrder?: Uint32Array;
}

/** Values per Q8_0 block. */

export const QK8_0 = 32;
