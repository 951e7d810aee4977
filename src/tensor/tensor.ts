// Tensor: a shape and strides over a Storage block in the shared heap, with an optional
// gradient and the autograd node that produced it.
import { H } from '../backend/heap.js';
import { Storage, keepStorage, allocationDeferred } from './storage.js';
import { DTypeError, ShapeError, fmtShape } from './errors.js';
import type { GradFn } from './autograd.js';
import * as ops from './ops.js';
import { GGML_HALF, GGML_QUANT } from '../backend/ref/ggml_blocks.js';
import type { GgmlHalfName, GgmlQuantName } from '../backend/ref/ggml_blocks.js';

/**
 * Element types: f32 for compute, i32 for indices, and ggml's quantised block types for stored
 * inference weights (QuantDType): q8_0 (rows of K = 32·n values stored as n blocks of 34 bytes: an
 * f16 scale d, then 32 int8 q; value = d·q), q4_0, q4_1, q5_0 (blocks of 32) and q4_k, q5_k,
 * q6_k (blocks of 256), each in ggml's layout (backend/ref/ggml_blocks.ts). A quantised tensor is
 * a contiguous (N, K) matrix consumed by linear layers and embeddings through fused
 * dequantise-and-dot kernels; it has no gradient. f16 and bf16 (2 bytes a value, any row length)
 * are stored weights of the same kind (QuantDType too): kept 16-bit, widened to f32 exactly by
 * the same kernels.
 */
export type QuantDType = 'q8_0' | GgmlQuantName | GgmlHalfName;
export type DType = 'f32' | 'i32' | QuantDType;
/** Values per Q8_0 block and bytes per block. */
export const Q8_0_BLOCK = 32;
export const Q8_0_BYTES = 34;
/** Values per block and bytes per block of every quantised dtype. */
export const QUANT_BLOCKS: Readonly<Record<QuantDType, { block: number; bytes: number }>> = { q8_0: { block: Q8_0_BLOCK, bytes: Q8_0_BYTES }, ...GGML_QUANT, ...GGML_HALF };
export function isQuantized(dtype: string): dtype is QuantDType {
  return Object.prototype.hasOwnProperty.call(QUANT_BLOCKS, dtype);
}

/** Bytes of storage that `count` elements of dtype take. */
export function storageBytes(count: number, dtype: DType): number {
  return isQuantized(dtype) ? (count / QUANT_BLOCKS[dtype].block) * QUANT_BLOCKS[dtype].bytes : count * 4;
}
export type Shape = readonly number[];
/** A nested array of numbers, as accepted by tensor(). */
export type NestedArray = number | NestedArray[];

export function contiguousStrides(shape: Shape): number[] {
  const st = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    st[i] = s;
    s *= shape[i];
  }
  return st;
}

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function checkShape(op: string, shape: Shape): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(op, `invalid shape ${fmtShape(shape)}`);
  }
}

/** What a q8_0 tensor cannot do (read as f32 values, train): says so and how to get f32. */
export function quantizedError(op: string, t: { name?: string; shape: Shape; dtype?: DType }): DTypeError {
  return new DTypeError(op, `${t.name ? `${t.name} ` : ''}${fmtShape(t.shape)} is a ${t.dtype ?? 'q8_0'} (${t.dtype === 'f16' || t.dtype === 'bf16' ? '16-bit' : 'quantised'}) inference weight: it has no f32 values to read, write or train; dequantize() it explicitly, or load the model with dtype f32 (CLI: --dtype f32)`);
}

export class Tensor {
  requiresGrad = false;
  /** Accumulated gradient (leaf tensors that require grad). */
  grad: Tensor | null = null;
  /** The autograd node that produced this tensor, if it was computed with grad on. */
  gradFn: GradFn | null = null;
  /** Optional name used in error messages (parameter names, etc.). */
  name?: string;

  constructor(
    readonly storage: Storage,
    readonly shape: Shape,
    readonly strides: readonly number[],
    readonly offset: number,
    readonly dtype: DType,
  ) {}

  /** A new contiguous tensor with uninitialised contents. */
  static empty(shape: Shape, dtype: DType = 'f32'): Tensor {
    checkShape('empty', shape);
    const n = numel(shape);
    if (isQuantized(dtype) && (shape.length !== 2 || shape[1] % QUANT_BLOCKS[dtype].block !== 0)) {
      throw new ShapeError('empty', `a ${dtype} tensor is a matrix (N, K) with K a multiple of ${QUANT_BLOCKS[dtype].block}, got ${fmtShape(shape)}`);
    }
    return new Tensor(new Storage(storageBytes(n, dtype)), [...shape], contiguousStrides(shape), 0, dtype);
  }

  /**
   * An f32 tensor for a parameter a loader fills next: inside deferAllocation its storage takes no
   * heap until materialised (a weight replaced by quantised blocks never does); else Tensor.empty.
   */
  static unfilled(shape: Shape): Tensor {
    if (!allocationDeferred()) return Tensor.empty(shape);
    checkShape('unfilled', shape);
    return new Tensor(new Storage(storageBytes(numel(shape), 'f32'), true), [...shape], contiguousStrides(shape), 0, 'f32');
  }

  get ndim(): number { return this.shape.length; }
  get size(): number { return numel(this.shape); }
  /** Byte address of the first element. */
  get ptr(): number {
    if (this.storage.freed) throw new Error(`tensor${this.name ? ` ${this.name}` : ''} ${fmtShape(this.shape)} was used after its memory scope ended (or after dispose())`);
    // Quantised: offsets count values and always fall on a block boundary (a row start).
    return this.storage.ptr + storageBytes(this.offset, this.dtype);
  }
  get isLeaf(): boolean { return this.gradFn === null; }

  isContiguous(): boolean {
    let s = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== s) return false;
      s *= this.shape[i];
    }
    return true;
  }

  /** Copy of the values as a Float32Array (Int32Array for i32 tensors), row-major. */
  data(): Float32Array | Int32Array {
    if (isQuantized(this.dtype)) throw quantizedError('data()', this);
    const c = this.isContiguous() ? this : ops.contiguous(this);
    const p = c.ptr >>> 2;
    const out = this.dtype === 'i32' ? H.i32.slice(p, p + this.size) : H.f32.slice(p, p + this.size);
    if (c !== this) c.dispose();
    return out;
  }
  /** Values as a plain (flat) number array. */
  toArray(): number[] { return Array.from(this.data()); }
  /** Values as nested arrays following the shape. */
  tolist(): NestedArray {
    const flat = this.toArray();
    const build = (dim: number, off: number): NestedArray => {
      if (dim === this.ndim) return flat[off];
      const step = numel(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim] }, (_, i) => build(dim + 1, off + i * step));
    };
    return build(0, 0);
  }
  /** The single value of a one-element tensor. */
  item(): number {
    if (isQuantized(this.dtype)) throw quantizedError('item()', this);
    if (this.size !== 1) throw new ShapeError('item', `tensor of shape ${fmtShape(this.shape)} has ${this.size} elements, not 1`);
    return this.dtype === 'i32' ? H.i32[this.ptr >>> 2] : H.f32[this.ptr >>> 2];
  }

  /** Release the storage now (all views of it become unusable). */
  dispose(): void { this.storage.free(); }
  /** Take the storage out of every memory scope: it lives until dispose(). */
  keep(): this { keepStorage(this.storage); return this; }

  /** Mark a leaf tensor as a parameter whose gradient is accumulated in `.grad`. */
  requiresGrad_(flag = true): this {
    if (flag && this.dtype !== 'f32') throw new ShapeError('requiresGrad_', 'only f32 tensors can require grad');
    this.requiresGrad = flag;
    return this;
  }

  toString(): string {
    return `Tensor(${fmtShape(this.shape)}, ${this.dtype}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }

  // ---- method forms of the ops (see ops.ts) ----
  add(o: Tensor | number): Tensor { return ops.add(this, o); }
  sub(o: Tensor | number): Tensor { return ops.sub(this, o); }
  mul(o: Tensor | number): Tensor { return ops.mul(this, o); }
  div(o: Tensor | number): Tensor { return ops.div(this, o); }
  pow(o: Tensor | number): Tensor { return ops.pow(this, o); }
  neg(): Tensor { return ops.neg(this); }
  exp(): Tensor { return ops.exp(this); }
  log(): Tensor { return ops.log(this); }
  sqrt(): Tensor { return ops.sqrt(this); }
  matmul(o: Tensor): Tensor { return ops.matmul(this, o); }
  sum(dim?: number | number[], keepdim = false): Tensor { return ops.sum(this, dim, keepdim); }
  mean(dim?: number | number[], keepdim = false): Tensor { return ops.mean(this, dim, keepdim); }
  reshape(shape: Shape): Tensor { return ops.reshape(this, shape); }
  view(shape: Shape): Tensor { return ops.reshape(this, shape); }
  permute(dims: number[]): Tensor { return ops.permute(this, dims); }
  transpose(d0 = -2, d1 = -1): Tensor { return ops.transpose(this, d0, d1); }
  get T(): Tensor { return ops.transpose(this, -2, -1); }
  contiguous(): Tensor { return this.isContiguous() ? this : ops.contiguous(this); }
  detach(): Tensor { return ops.detach(this); }
  backward(grad?: Tensor): void { ops.backward(this, grad); }
}
