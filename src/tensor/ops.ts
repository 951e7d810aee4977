// Tensor ops: creation, views, elementwise, reductions and matmul, each with its gradient.
// Every op runs its numeric work through a backend kernel (backend/kernels.ts); this file only
// computes shapes, strides and which kernel to call. Neural-network ops are in nn.ts.
import { H } from '../backend/heap.js';
import { META, backend } from '../backend/index.js';
import { BinaryOp, ReduceOp, UnaryOp } from '../backend/kernels.js';
import type { KernelBatch, KernelName } from '../backend/kernels.js';
import { Tensor, contiguousStrides, numel, checkShape, quantizedError, isQuantized, QUANT_BLOCKS, Q8_0_BLOCK, Q8_0_BYTES } from './tensor.js';
import type { DType, NestedArray, QuantDType, Shape } from './tensor.js';
import { GGML_HALF, GGML_QUANT } from '../backend/ref/ggml_blocks.js';
import type { GgmlQuantName } from '../backend/ref/ggml_blocks.js';
import { Storage } from './storage.js';
import { needsGrad, needsGradOf, record, runBackward } from './autograd.js';
import { DTypeError, IndexError, NonFiniteError, ShapeError, fmtShape } from './errors.js';
import { Generator, defaultGenerator } from './random.js';

// ---------------------------------------------------------------- helpers

export function kernel(name: KernelName, args: number[], work: number): void {
  backend().call(name, args, work);
}

function writeMeta(...arrays: readonly number[][]): void {
  const base = META >>> 2;
  let k = 0;
  for (const a of arrays) for (const v of a) H.i32[base + k++] = v;
}

export function normDim(op: string, dim: number, ndim: number): number {
  const d = dim < 0 ? dim + ndim : dim;
  if (!Number.isInteger(d) || d < 0 || d >= Math.max(ndim, 1)) throw new ShapeError(op, `dimension ${dim} out of range for a ${ndim}-d tensor`);
  return d;
}

/** Refuses any tensor that is not f32 (a DTypeError naming op and the tensor's dtype and shape). */
export function requireF32(op: string, ...ts: Tensor[]): void {
  for (const t of ts) if (t.dtype !== 'f32') throw new DTypeError(op, `expected f32 tensor, got ${t.dtype} ${fmtShape(t.shape)}`);
}

export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)];
    const db = i < n - b.length ? 1 : b[i - (n - b.length)];
    if (da !== db && da !== 1 && db !== 1) throw new ShapeError(op, `shapes ${fmtShape(a)} and ${fmtShape(b)} cannot be broadcast together`);
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides of t when broadcast to `shape` (0 along broadcast dimensions). */
function broadcastStrides(t: Tensor, shape: Shape): number[] {
  const n = shape.length, off = n - t.ndim;
  const st = new Array<number>(n).fill(0);
  for (let i = 0; i < t.ndim; i++) st[i + off] = t.shape[i] === 1 && shape[i + off] !== 1 ? 0 : t.strides[i];
  return st;
}

/** Merge adjacent dimensions that every stride set walks contiguously; drop size-1 dims. */
function collapse(shape: Shape, sets: number[][]): [number[], number[][]] {
  const s: number[] = [];
  const out: number[][] = sets.map(() => []);
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 1) continue;
    const last = s.length - 1;
    if (last >= 0 && sets.every((st, k) => out[k][last] === st[i] * shape[i])) {
      s[last] *= shape[i];
      for (let k = 0; k < sets.length; k++) out[k][last] = sets[k][i];
    } else {
      s.push(shape[i]);
      for (let k = 0; k < sets.length; k++) out[k].push(sets[k][i]);
    }
  }
  if (s.length === 0) return [[1], sets.map(() => [0])];
  return [s, out];
}

/** t itself when contiguous, else a contiguous copy (not recorded for autograd). */
function cont(t: Tensor): Tensor {
  return t.isContiguous() ? t : copyRaw(t);
}

function copyRaw(t: Tensor): Tensor {
  const out = Tensor.empty(t.shape, t.dtype);
  copyStrided(out, t);
  return out;
}

/** dst[...] = src[...] for equal shapes, any strides. */
function copyStrided(dst: Tensor, src: Tensor): void {
  if (isQuantized(dst.dtype) || isQuantized(src.dtype)) throw quantizedError('copy', isQuantized(dst.dtype) ? dst : src);
  if (dst.shape.join() !== src.shape.join()) throw new ShapeError('copy', `shapes ${fmtShape(dst.shape)} and ${fmtShape(src.shape)} differ`);
  const n = src.size;
  if (n === 0) return;
  const [s, [ds, ss]] = collapse(src.shape, [[...dst.strides], [...src.strides]]);
  writeMeta(s, ds, ss);
  kernel('copy', [dst.ptr, src.ptr, s.length, META, n], n);
}

// ---------------------------------------------------------------- creation

function flatten(data: NestedArray, shape: number[], out: number[], depth: number): void {
  if (Array.isArray(data)) {
    if (shape.length <= depth) shape.push(data.length);
    else if (shape[depth] !== data.length) throw new ShapeError('tensor', `ragged nested array at depth ${depth}: ${data.length} vs ${shape[depth]}`);
    for (const d of data) flatten(d, shape, out, depth + 1);
  } else {
    if (depth !== shape.length) throw new ShapeError('tensor', 'ragged nested array');
    out.push(data);
  }
}

/** A tensor from nested arrays, a flat array or a typed array (with an explicit shape). */
export function tensor(data: NestedArray | ArrayLike<number>, shape?: Shape, dtype?: DType): Tensor {
  let flat: ArrayLike<number>;
  let sh: number[];
  if (data instanceof Float32Array || data instanceof Int32Array || data instanceof Float64Array || data instanceof Uint8Array || data instanceof Uint32Array || (shape && Array.isArray(data) && !data.some(Array.isArray))) {
    flat = data as ArrayLike<number>;
    sh = shape ? [...shape] : [(data as ArrayLike<number>).length];
  } else {
    const out: number[] = [];
    sh = [];
    flatten(data as NestedArray, sh, out, 0);
    flat = out;
    if (shape) {
      if (numel(shape) !== out.length) throw new ShapeError('tensor', `shape ${fmtShape(shape)} does not hold ${out.length} values`);
      sh = [...shape];
    }
  }
  if (numel(sh) !== flat.length) throw new ShapeError('tensor', `shape ${fmtShape(sh)} does not hold ${flat.length} values`);
  const dt: DType = dtype ?? (data instanceof Int32Array ? 'i32' : 'f32');
  const t = Tensor.empty(sh, dt);
  const p = t.ptr >>> 2;
  if (dt === 'i32') {
    for (let i = 0; i < flat.length; i++) {
      if (!Number.isInteger(flat[i])) throw new DTypeError('tensor', `value ${flat[i]} at index ${i} is not an integer (dtype i32)`);
    }
    H.i32.set(flat as ArrayLike<number>, p);
  } else H.f32.set(flat as ArrayLike<number>, p);
  return t;
}

export function empty(shape: Shape, dtype: DType = 'f32'): Tensor {
  return Tensor.empty(shape, dtype);
}
export function full(shape: Shape, value: number): Tensor {
  const t = Tensor.empty(shape);
  if (t.size) kernel('fill', [t.ptr, t.size, value], t.size);
  return t;
}
export function zeros(shape: Shape): Tensor { return full(shape, 0); }
export function ones(shape: Shape): Tensor { return full(shape, 1); }
export function zerosLike(t: Tensor): Tensor { return full(t.shape, 0); }
export function onesLike(t: Tensor): Tensor { return full(t.shape, 1); }

/** [start, end) in steps of step (f32; pass dtype 'i32' for indices). */
export function arange(start: number, end?: number, step = 1, dtype: DType = 'f32'): Tensor {
  if (end === undefined) { end = start; start = 0; }
  if (step === 0) throw new ShapeError('arange', 'step must be non-zero');
  const n = Math.max(0, Math.ceil((end - start) / step));
  const vals = new Array<number>(n);
  for (let i = 0; i < n; i++) vals[i] = start + i * step;
  return tensor(vals, [n], dtype);
}

/** Standard normal samples (× std + mean) from the given or the default generator. */
export function randn(shape: Shape, opts: { generator?: Generator; mean?: number; std?: number } = {}): Tensor {
  checkShape('randn', shape);
  const g = opts.generator ?? defaultGenerator, mean = opts.mean ?? 0, std = opts.std ?? 1;
  const t = Tensor.empty(shape);
  const p = t.ptr >>> 2;
  for (let i = 0; i < t.size; i++) H.f32[p + i] = mean + std * g.normal();
  return t;
}

/** Uniform samples in [low, high). */
export function rand(shape: Shape, opts: { generator?: Generator; low?: number; high?: number } = {}): Tensor {
  checkShape('rand', shape);
  const g = opts.generator ?? defaultGenerator, lo = opts.low ?? 0, hi = opts.high ?? 1;
  const t = Tensor.empty(shape);
  const p = t.ptr >>> 2;
  for (let i = 0; i < t.size; i++) H.f32[p + i] = lo + (hi - lo) * g.uniform();
  return t;
}

// ---------------------------------------------------------------- views and copies

export function detach(t: Tensor): Tensor {
  return new Tensor(t.storage, t.shape, t.strides, t.offset, t.dtype);
}

/** A contiguous copy (a new tensor, even if t is contiguous). */
export function clone(t: Tensor): Tensor {
  const out = copyRaw(t);
  if (needsGrad(t)) record(out, 'clone', [t], (g) => [g]);
  return out;
}

/** t when it is contiguous, else a contiguous copy. */
export function contiguous(t: Tensor): Tensor {
  if (t.isContiguous()) return t;
  return clone(t);
}

function view(t: Tensor, shape: Shape, strides: readonly number[], offset: number): Tensor {
  return new Tensor(t.storage, [...shape], [...strides], offset, t.dtype);
}

export function reshape(t: Tensor, shape: Shape): Tensor {
  const sh = [...shape];
  const neg = sh.indexOf(-1);
  if (neg >= 0) {
    const rest = numel(sh.filter((_, i) => i !== neg));
    if (rest === 0 || t.size % rest !== 0) throw new ShapeError('reshape', `cannot reshape ${fmtShape(t.shape)} into ${fmtShape(shape)}`);
    sh[neg] = t.size / rest;
  }
  checkShape('reshape', sh);
  if (numel(sh) !== t.size) throw new ShapeError('reshape', `cannot reshape ${fmtShape(t.shape)} (${t.size} elements) into ${fmtShape(shape)}`);
  const src = t.isContiguous() ? t : clone(t);
  const out = view(src, sh, contiguousStrides(sh), src.offset);
  if (needsGrad(src)) record(out, 'reshape', [src], (g) => [reshape(g, src.shape)]);
  return out;
}

/**
 * Strides that view (shape, strides) as newShape without copying, or null when the layout does
 * not allow it (PyTorch's computeStride): dimensions merge or split only within runs that are
 * laid out contiguously with respect to each other.
 */
function viewStrides(shape: Shape, strides: readonly number[], newShape: number[]): number[] | null {
  if (shape.length === 0 || numel(shape) === 0) return contiguousStrides(newShape);
  const out = new Array<number>(newShape.length);
  let vd = newShape.length - 1;
  let base = strides[strides.length - 1], tn = 1, vn = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    tn *= shape[d];
    if (d === 0 || (shape[d - 1] !== 1 && strides[d - 1] !== tn * base)) {
      while (vd >= 0 && (vn < tn || newShape[vd] === 1)) {
        out[vd] = vn * base;
        vn *= newShape[vd];
        vd--;
      }
      if (vn !== tn) return null;
      if (d > 0) { base = strides[d - 1]; tn = 1; vn = 1; }
    }
  }
  return vd === -1 ? out : null;
}

/**
 * reshape that never copies: a view of t's storage (e.g. splitting the last dimension of a
 * column slice into heads). Throws when t's strides do not allow the new shape.
 */
export function reshapeView(t: Tensor, shape: Shape): Tensor {
  const sh = [...shape];
  const neg = sh.indexOf(-1);
  if (neg >= 0) {
    const rest = numel(sh.filter((_, i) => i !== neg));
    if (rest === 0 || t.size % rest !== 0) throw new ShapeError('reshapeView', `cannot reshape ${fmtShape(t.shape)} into ${fmtShape(shape)}`);
    sh[neg] = t.size / rest;
  }
  checkShape('reshapeView', sh);
  if (numel(sh) !== t.size) throw new ShapeError('reshapeView', `cannot reshape ${fmtShape(t.shape)} (${t.size} elements) into ${fmtShape(shape)}`);
  const st = t.isContiguous() ? contiguousStrides(sh) : viewStrides(t.shape, t.strides, sh);
  if (!st) throw new ShapeError('reshapeView', `${fmtShape(t.shape)} with strides [${t.strides.join(', ')}] cannot be viewed as ${fmtShape(shape)} without a copy`);
  const out = view(t, sh, st, t.offset);
  if (needsGrad(t)) record(out, 'reshape', [t], (g) => [reshape(g, t.shape)]);
  return out;
}

export function unsqueeze(t: Tensor, dim: number): Tensor {
  const d = dim < 0 ? dim + t.ndim + 1 : dim;
  const sh = [...t.shape];
  sh.splice(d, 0, 1);
  return reshape(t, sh);
}

export function squeeze(t: Tensor, dim?: number): Tensor {
  if (dim === undefined) return reshape(t, t.shape.filter((d) => d !== 1));
  const d = normDim('squeeze', dim, t.ndim);
  if (t.shape[d] !== 1) return t;
  return reshape(t, t.shape.filter((_, i) => i !== d));
}

export function permute(t: Tensor, dims: number[]): Tensor {
  if (dims.length !== t.ndim) throw new ShapeError('permute', `${dims.length} dims given for a ${t.ndim}-d tensor ${fmtShape(t.shape)}`);
  const d = dims.map((x) => normDim('permute', x, t.ndim));
  if (new Set(d).size !== d.length) throw new ShapeError('permute', `repeated dimension in [${dims.join(', ')}]`);
  const out = view(t, d.map((i) => t.shape[i]), d.map((i) => t.strides[i]), t.offset);
  if (needsGrad(t)) {
    const inv = new Array<number>(d.length);
    d.forEach((x, i) => (inv[x] = i));
    record(out, 'permute', [t], (g) => [permute(g, inv)]);
  }
  return out;
}

export function transpose(t: Tensor, d0 = -2, d1 = -1): Tensor {
  const a = normDim('transpose', d0, t.ndim), b = normDim('transpose', d1, t.ndim);
  const dims = [...Array(t.ndim).keys()];
  dims[a] = b;
  dims[b] = a;
  return permute(t, dims);
}

/** Elements start, start+step, … < end along dim (a view). Negative start/end count from the end. */
export function slice(t: Tensor, dim: number, start: number, end?: number, step = 1): Tensor {
  const d = normDim('slice', dim, t.ndim);
  const n = t.shape[d];
  let s = start < 0 ? start + n : start;
  let e = end === undefined ? n : end < 0 ? end + n : end;
  s = Math.min(Math.max(s, 0), n);
  e = Math.min(Math.max(e, s), n);
  if (!Number.isInteger(step) || step < 1) throw new ShapeError('slice', `step must be a positive integer, got ${step}`);
  const len = Math.ceil((e - s) / step);
  const sh = [...t.shape];
  sh[d] = len;
  const st = [...t.strides];
  st[d] = t.strides[d] * step;
  const out = view(t, sh, st, t.offset + s * t.strides[d]);
  if (needsGrad(t)) {
    record(out, 'slice', [t], (g) => {
      const gx = zeros(t.shape);
      const gxv = slice(gx, d, s, e, step);
      copyStrided(gxv, g);
      return [gx];
    });
  }
  return out;
}

export function narrow(t: Tensor, dim: number, start: number, length: number): Tensor {
  return slice(t, dim, start, start + length);
}

/** Broadcast to a larger shape without copying (stride 0). -1 keeps a dimension. */
export function expand(t: Tensor, shape: Shape): Tensor {
  const sh = shape.map((x, i) => (x === -1 ? t.shape[i - (shape.length - t.ndim)] : x));
  const b = broadcastShapes('expand', t.shape, sh);
  if (b.join() !== sh.join()) throw new ShapeError('expand', `cannot expand ${fmtShape(t.shape)} to ${fmtShape(shape)}`);
  const out = view(t, sh, broadcastStrides(t, sh), t.offset);
  if (needsGrad(t)) record(out, 'expand', [t], (g) => [sumTo(g, t.shape)]);
  return out;
}

export function concat(ts: Tensor[], dim = 0): Tensor {
  if (ts.length === 0) throw new ShapeError('concat', 'no tensors given');
  const d = normDim('concat', dim, ts[0].ndim);
  const sh = [...ts[0].shape];
  let total = 0;
  for (const t of ts) {
    if (t.ndim !== sh.length || t.shape.some((x, i) => i !== d && x !== sh[i]) || t.dtype !== ts[0].dtype) {
      throw new ShapeError('concat', `shapes ${ts.map((x) => fmtShape(x.shape) + ' ' + x.dtype).join(', ')} differ outside dimension ${d}`);
    }
    total += t.shape[d];
  }
  sh[d] = total;
  const out = Tensor.empty(sh, ts[0].dtype);
  let off = 0;
  const starts: number[] = [];
  for (const t of ts) {
    starts.push(off);
    copyStrided(narrowRaw(out, d, off, t.shape[d]), t);
    off += t.shape[d];
  }
  if (needsGradOf(ts)) record(out, 'concat', ts, (g) => ts.map((t, i) => narrowRaw(g, d, starts[i], t.shape[d])));
  return out;
}

function narrowRaw(t: Tensor, d: number, start: number, len: number): Tensor {
  const sh = [...t.shape];
  sh[d] = len;
  return view(t, sh, t.strides, t.offset + start * t.strides[d]);
}

export function stack(ts: Tensor[], dim = 0): Tensor {
  return concat(ts.map((t) => unsqueeze(t, dim)), dim);
}

/** Split into pieces of the given size (number) or sizes (array) along dim; views. */
export function split(t: Tensor, sizes: number | number[], dim = 0): Tensor[] {
  const d = normDim('split', dim, t.ndim);
  const n = t.shape[d];
  const sz = typeof sizes === 'number' ? Array.from({ length: Math.ceil(n / sizes) }, (_, i) => Math.min(sizes, n - i * sizes)) : sizes;
  if (sz.reduce((a, b) => a + b, 0) !== n) throw new ShapeError('split', `sizes [${sz.join(', ')}] do not add up to ${n} (dimension ${d} of ${fmtShape(t.shape)})`);
  const out: Tensor[] = [];
  let off = 0;
  for (const s of sz) {
    out.push(narrow(t, d, off, s));
    off += s;
  }
  return out;
}

// ---------------------------------------------------------------- elementwise

function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor, name: string): Tensor {
  requireF32(name, a, b);
  const shape = broadcastShapes(name, a.shape, b.shape);
  const out = Tensor.empty(shape);
  binaryInto(op, out, a, b);
  return out;
}

function binaryInto(op: BinaryOp, out: Tensor, a: Tensor, b: Tensor): void {
  const n = out.size;
  if (n === 0) return;
  const [s, [sa, sb]] = collapse(out.shape, [broadcastStrides(a, out.shape), broadcastStrides(b, out.shape)]);
  writeMeta(s, sa, sb);
  kernel('binary', [op, out.ptr, a.ptr, b.ptr, s.length, META, n], n);
}

/** Sum g over the dimensions along which `shape` was broadcast to g's shape. */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (g.shape.join() === shape.join()) return g;
  const lead = g.ndim - shape.length;
  const dims: number[] = [];
  for (let i = 0; i < g.ndim; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) dims.push(i);
  }
  const s = dims.length ? sum(g, dims, true) : g;
  return reshape(s, shape);
}

function unaryRaw(op: UnaryOp, t: Tensor, alpha: number, beta: number): Tensor {
  const x = cont(t);
  const out = Tensor.empty(t.shape);
  if (out.size) kernel('unary', [op, out.ptr, x.ptr, out.size, alpha, beta], out.size);
  return out;
}

function unaryOp(name: string, op: UnaryOp, t: Tensor, alpha = 0, beta = 0): Tensor {
  requireF32(name, t);
  const x = cont(t);
  const out = unaryRaw(op, x, alpha, beta);
  if (needsGrad(t)) {
    record(out, name, [t], (g) => {
      const gy = cont(g);
      const gx = Tensor.empty(t.shape);
      if (gx.size) kernel('unary_bwd', [op, gx.ptr, x.ptr, out.ptr, gy.ptr, gx.size, alpha, beta], gx.size);
      return [gx];
    });
  }
  return out;
}

function scalarTensor(v: number): Tensor {
  return full([], v);
}

export function add(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof b === 'number') return typeof a === 'number' ? scalarTensor(a + b) : unaryOp('add', UnaryOp.AFFINE, a, 1, b);
  if (typeof a === 'number') return unaryOp('add', UnaryOp.AFFINE, b, 1, a);
  const out = binaryRaw(BinaryOp.ADD, a, b, 'add');
  if (needsGrad(a, b)) record(out, 'add', [a, b], (g) => [sumTo(g, a.shape), sumTo(g, b.shape)]);
  return out;
}

export function sub(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof b === 'number') return typeof a === 'number' ? scalarTensor(a - b) : unaryOp('sub', UnaryOp.AFFINE, a, 1, -b);
  if (typeof a === 'number') return unaryOp('sub', UnaryOp.AFFINE, b, -1, a);
  const out = binaryRaw(BinaryOp.SUB, a, b, 'sub');
  if (needsGrad(a, b)) record(out, 'sub', [a, b], (g) => [sumTo(g, a.shape), sumTo(neg(g), b.shape)]);
  return out;
}

export function mul(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof b === 'number') return typeof a === 'number' ? scalarTensor(a * b) : unaryOp('mul', UnaryOp.AFFINE, a, b, 0);
  if (typeof a === 'number') return unaryOp('mul', UnaryOp.AFFINE, b, a, 0);
  const out = binaryRaw(BinaryOp.MUL, a, b, 'mul');
  if (needsGrad(a, b)) record(out, 'mul', [a, b], (g) => [a.requiresGrad ? sumTo(mul(g, b), a.shape) : null, b.requiresGrad ? sumTo(mul(g, a), b.shape) : null]);
  return out;
}

export function div(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof b === 'number') return typeof a === 'number' ? scalarTensor(a / b) : unaryOp('div', UnaryOp.AFFINE, a, 1 / b, 0);
  if (typeof a === 'number') return unaryOp('div', UnaryOp.RDIV, b, a, 0);
  const out = binaryRaw(BinaryOp.DIV, a, b, 'div');
  if (needsGrad(a, b)) {
    record(out, 'div', [a, b], (g) => [
      a.requiresGrad ? sumTo(div(g, b), a.shape) : null,
      b.requiresGrad ? sumTo(neg(div(mul(g, out), b)), b.shape) : null,
    ]);
  }
  return out;
}

export function pow(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof b === 'number') {
    if (typeof a === 'number') return scalarTensor(Math.pow(a, b));
    return unaryOp('pow', UnaryOp.POWS, a, b, 0);
  }
  const at = typeof a === 'number' ? scalarTensor(a) : a;
  const out = binaryRaw(BinaryOp.POW, at, b, 'pow');
  if (needsGrad(at, b)) {
    record(out, 'pow', [at, b], (g) => [
      at.requiresGrad ? sumTo(mul(mul(g, b), pow(at, sub(b, 1))), at.shape) : null,
      b.requiresGrad ? sumTo(mul(mul(g, out), log(at)), b.shape) : null,
    ]);
  }
  return out;
}

function minmax(op: BinaryOp, a: Tensor, b: Tensor | number, name: string): Tensor {
  const bt = typeof b === 'number' ? scalarTensor(b) : b;
  const out = binaryRaw(op, a, bt, name);
  if (needsGrad(a, bt)) {
    record(out, name, [a, bt], (g) => {
      const takeA = binaryRaw(BinaryOp.EQ, out, a, name);
      return [
        a.requiresGrad ? sumTo(mul(g, takeA), a.shape) : null,
        bt.requiresGrad ? sumTo(mul(g, sub(1, takeA)), bt.shape) : null,
      ];
    });
  }
  return out;
}
/** Elementwise maximum (gradient to a where a ≥ b). */
export function maximum(a: Tensor, b: Tensor | number): Tensor { return minmax(BinaryOp.MAX, a, b, 'maximum'); }
export function minimum(a: Tensor, b: Tensor | number): Tensor { return minmax(BinaryOp.MIN, a, b, 'minimum'); }

function compare(op: BinaryOp, a: Tensor, b: Tensor | number, name: string): Tensor {
  return binaryRaw(op, a, typeof b === 'number' ? scalarTensor(b) : b, name);
}
/** Comparisons return f32 masks of 0 and 1 (no gradient). */
export function eq(a: Tensor, b: Tensor | number): Tensor { return compare(BinaryOp.EQ, a, b, 'eq'); }
export function gt(a: Tensor, b: Tensor | number): Tensor { return compare(BinaryOp.GT, a, b, 'gt'); }
export function lt(a: Tensor, b: Tensor | number): Tensor { return compare(BinaryOp.LT, a, b, 'lt'); }
export function ge(a: Tensor, b: Tensor | number): Tensor { return compare(BinaryOp.GE, a, b, 'ge'); }
export function le(a: Tensor, b: Tensor | number): Tensor { return compare(BinaryOp.LE, a, b, 'le'); }

export const neg = (t: Tensor): Tensor => unaryOp('neg', UnaryOp.NEG, t);
export const exp = (t: Tensor): Tensor => unaryOp('exp', UnaryOp.EXP, t);
export const log = (t: Tensor): Tensor => unaryOp('log', UnaryOp.LOG, t);
export const sqrt = (t: Tensor): Tensor => unaryOp('sqrt', UnaryOp.SQRT, t);
export const rsqrt = (t: Tensor): Tensor => unaryOp('rsqrt', UnaryOp.RSQRT, t);
export const abs = (t: Tensor): Tensor => unaryOp('abs', UnaryOp.ABS, t);
export const tanh = (t: Tensor): Tensor => unaryOp('tanh', UnaryOp.TANH, t);
export const sigmoid = (t: Tensor): Tensor => unaryOp('sigmoid', UnaryOp.SIGMOID, t);
export const silu = (t: Tensor): Tensor => unaryOp('silu', UnaryOp.SILU, t);
export const relu = (t: Tensor): Tensor => unaryOp('relu', UnaryOp.RELU, t);
export const softplus = (t: Tensor): Tensor => unaryOp('softplus', UnaryOp.SOFTPLUS, t);
export const sin = (t: Tensor): Tensor => unaryOp('sin', UnaryOp.SIN, t);
export const cos = (t: Tensor): Tensor => unaryOp('cos', UnaryOp.COS, t);
/** GELU; approximate 'none' uses erf, 'tanh' the tanh approximation (as torch.nn.functional.gelu). */
export function gelu(t: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return unaryOp('gelu', approximate === 'tanh' ? UnaryOp.GELU_TANH : UnaryOp.GELU, t);
}
export function clamp(t: Tensor, min = -Infinity, max = Infinity): Tensor {
  return unaryOp('clamp', UnaryOp.CLAMP, t, min, max);
}

/** cond ? a : b elementwise with broadcasting; cond is a 0/1 (f32) mask. */
export function where(cond: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  const at = typeof a === 'number' ? scalarTensor(a) : a;
  const bt = typeof b === 'number' ? scalarTensor(b) : b;
  requireF32('where', cond, at, bt);
  const shape = broadcastShapes('where', broadcastShapes('where', cond.shape, at.shape), bt.shape);
  const out = Tensor.empty(shape);
  const n = out.size;
  if (n) {
    const [s, [sc, sa, sb]] = collapse(shape, [broadcastStrides(cond, shape), broadcastStrides(at, shape), broadcastStrides(bt, shape)]);
    writeMeta(s, sc, sa, sb);
    kernel('where', [out.ptr, cond.ptr, at.ptr, bt.ptr, s.length, META, n], n);
  }
  if (needsGrad(at, bt)) {
    record(out, 'where', [at, bt], (g) => [
      at.requiresGrad ? sumTo(where(cond, g, 0), at.shape) : null,
      bt.requiresGrad ? sumTo(where(cond, 0, g), bt.shape) : null,
    ]);
  }
  return out;
}

/** x with `value` where mask is non-zero. */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  return where(mask, value, x);
}

/** In place: dst += src (same shape; no autograd). Used for gradient accumulation. */
export function addInPlace(dst: Tensor, src: Tensor): void {
  if (dst.shape.join() !== src.shape.join()) throw new ShapeError('addInPlace', `shapes ${fmtShape(dst.shape)} and ${fmtShape(src.shape)} differ`);
  binaryInto(BinaryOp.ADD, dst, dst, src);
}

/** In place: t *= s (no autograd). */
export function scaleInPlace(t: Tensor, s: number): void {
  if (!t.isContiguous()) throw new ShapeError('scaleInPlace', 'tensor must be contiguous');
  if (t.size) kernel('unary', [UnaryOp.AFFINE, t.ptr, t.ptr, t.size, s, 0], t.size);
}

/** In place: dst[...] = src[...] (same shape, any strides; no autograd). */
export function copyInto(dst: Tensor, src: Tensor): void {
  copyStrided(dst, src);
}

/** In place: fill with a value (contiguous tensors; no autograd). */
export function fill_(t: Tensor, value: number): void {
  if (!t.isContiguous()) throw new ShapeError('fill_', 'tensor must be contiguous');
  if (t.size) kernel('fill', [t.ptr, t.size, value], t.size);
}

// ---------------------------------------------------------------- reductions

function reduceDim(op: ReduceOp, t: Tensor, d: number, keepdim: boolean): Tensor {
  const x = cont(t);
  const outer = numel(t.shape.slice(0, d)), r = t.shape[d], inner = numel(t.shape.slice(d + 1));
  const sh = [...t.shape];
  if (keepdim) sh[d] = 1;
  else sh.splice(d, 1);
  const isArg = op === ReduceOp.ARGMAX || op === ReduceOp.ARGMIN;
  if (r === 0 && op !== ReduceOp.SUM) throw new ShapeError('reduce', `cannot take max/min/logsumexp over an empty dimension of ${fmtShape(t.shape)}`);
  const out = Tensor.empty(sh, isArg ? 'i32' : 'f32');
  if (out.size) {
    if (r === 0) kernel('fill', [out.ptr, out.size, 0], out.size);
    else kernel('reduce', [op, out.ptr, x.ptr, outer, r, inner], outer * r * inner);
  }
  return out;
}

function dimsOf(op: string, t: Tensor, dim?: number | number[]): number[] {
  if (dim === undefined) return [...Array(t.ndim).keys()];
  const ds = (Array.isArray(dim) ? dim : [dim]).map((d) => normDim(op, d, t.ndim));
  return [...new Set(ds)].sort((a, b) => b - a);
}

/** Shape of t with `dims` kept as size 1. */
function keptShape(t: Tensor, dims: number[]): number[] {
  return t.shape.map((s, i) => (dims.includes(i) ? 1 : s));
}

export function sum(t: Tensor, dim?: number | number[], keepdim = false): Tensor {
  requireF32('sum', t);
  const dims = dimsOf('sum', t, dim);
  let out: Tensor;
  if (t.ndim === 0) out = cont(t) === t ? copyRaw(t) : cont(t);
  else if (dims.length === t.ndim) {
    const flat = Tensor.empty(keepdim ? t.shape.map(() => 1) : []);
    sumAllInto(flat, cont(t));
    out = flat;
  } else {
    let cur = t;
    for (const d of dims) cur = reduceDim(ReduceOp.SUM, cur, d, true);
    out = keepdim ? cur : view(cur, t.shape.filter((_, i) => !dims.includes(i)), contiguousStrides(t.shape.filter((_, i) => !dims.includes(i))), cur.offset);
  }
  if (needsGrad(t)) {
    const kshape = keptShape(t, dims);
    record(out, 'sum', [t], (g) => [expand(reshape(g, kshape), t.shape)]);
  }
  return out;
}

/** Σ x into the one-element out; long inputs are summed as row partials so all threads help. */
function sumAllInto(out: Tensor, x: Tensor): void {
  const n = x.size;
  if (n === 0) { kernel('fill', [out.ptr, 1, 0], 1); return; }
  const P = 64;
  if (n < 1 << 18) { kernel('reduce', [ReduceOp.SUM, out.ptr, x.ptr, 1, n, 1], n); return; }
  const r = Math.floor(n / P), tail = n - P * r;
  const part = Tensor.empty([P + 1]);
  kernel('reduce', [ReduceOp.SUM, part.ptr, x.ptr, P, r, 1], P * r);
  if (tail) kernel('reduce', [ReduceOp.SUM, part.ptr + 4 * P, x.ptr + 4 * P * r, 1, tail, 1], tail);
  else kernel('fill', [part.ptr + 4 * P, 1, 0], 1);
  kernel('reduce', [ReduceOp.SUM, out.ptr, part.ptr, 1, P + 1, 1], P + 1);
  part.dispose();
}

export function mean(t: Tensor, dim?: number | number[], keepdim = false): Tensor {
  const dims = dimsOf('mean', t, dim);
  const count = dims.reduce((c, d) => c * t.shape[d], 1);
  return mul(sum(t, dim, keepdim), 1 / count);
}

function maxmin(op: ReduceOp.MAX | ReduceOp.MIN, t: Tensor, dim: number | undefined, keepdim: boolean): Tensor {
  const name = op === ReduceOp.MAX ? 'max' : 'min';
  requireF32(name, t);
  let out: Tensor;
  let dims: number[];
  if (dim === undefined) {
    dims = [...Array(t.ndim).keys()];
    const x = cont(t);
    if (t.size === 0) throw new ShapeError(name, 'empty tensor');
    out = Tensor.empty(keepdim ? t.shape.map(() => 1) : []);
    kernel('reduce', [op, out.ptr, x.ptr, 1, t.size, 1], t.size);
  } else {
    const d = normDim(name, dim, t.ndim);
    dims = [d];
    out = reduceDim(op, t, d, keepdim);
  }
  if (needsGrad(t)) {
    const kshape = keptShape(t, dims);
    record(out, name, [t], (g) => {
      const m = expand(reshape(out, kshape), t.shape);
      const mask = eq(t, m);
      const count = expand(sum(mask, dims, true), t.shape);
      return [div(mul(expand(reshape(g, kshape), t.shape), mask), count)];
    });
  }
  return out;
}
/** Maximum over dim (or all); ties share the gradient equally (as torch.amax). */
export function max(t: Tensor, dim?: number, keepdim = false): Tensor { return maxmin(ReduceOp.MAX, t, dim, keepdim); }
export function min(t: Tensor, dim?: number, keepdim = false): Tensor { return maxmin(ReduceOp.MIN, t, dim, keepdim); }

/** Index of the maximum along dim (i32); the first one on ties. */
export function argmax(t: Tensor, dim = -1, keepdim = false): Tensor {
  requireF32('argmax', t);
  return reduceDim(ReduceOp.ARGMAX, t, normDim('argmax', dim, t.ndim), keepdim);
}
export function argmin(t: Tensor, dim = -1, keepdim = false): Tensor {
  requireF32('argmin', t);
  return reduceDim(ReduceOp.ARGMIN, t, normDim('argmin', dim, t.ndim), keepdim);
}

export function logsumexp(t: Tensor, dim = -1, keepdim = false): Tensor {
  requireF32('logsumexp', t);
  const d = normDim('logsumexp', dim, t.ndim);
  const out = reduceDim(ReduceOp.LOGSUMEXP, t, d, keepdim);
  if (needsGrad(t)) {
    const kshape = keptShape(t, [d]);
    record(out, 'logsumexp', [t], (g) => [mul(expand(reshape(g, kshape), t.shape), exp(sub(t, expand(reshape(out, kshape), t.shape))))]);
  }
  return out;
}

export function cumsum(t: Tensor, dim: number): Tensor {
  requireF32('cumsum', t);
  const d = normDim('cumsum', dim, t.ndim);
  const x = cont(t);
  const out = Tensor.empty(t.shape);
  const outer = numel(t.shape.slice(0, d)), r = t.shape[d] ?? 1, inner = numel(t.shape.slice(d + 1));
  if (out.size) kernel('cumsum', [out.ptr, x.ptr, outer, r, inner], out.size);
  if (needsGrad(t)) {
    // d/dx_k of Σ_j g_j·cumsum_j = Σ_{j≥k} g_j = total − cumsum(g)_k + g_k
    record(out, 'cumsum', [t], (g) => [add(sub(expand(sum(g, d, true), t.shape), cumsum(g, d)), g)]);
  }
  return out;
}

// ---------------------------------------------------------------- matmul

/**
 * Matrix product with NumPy/PyTorch semantics: 1-d operands are promoted (and the added
 * dimension removed), batch dimensions broadcast. Transposed and other strided operands are
 * read in place, without copies.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  requireF32('matmul', a, b);
  if (a.ndim === 0 || b.ndim === 0) throw new ShapeError('matmul', `both operands must have at least 1 dimension, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  // (…, M, K) @ (K, N): fold the batch dims into M, one GEMM (and one weight gradient) instead
  // of a batch of them, when a's leading dims are laid out as one (always for contiguous a).
  if (b.ndim === 2 && a.ndim > 2 && foldable(a)) {
    const lead = a.shape.slice(0, -1);
    return reshape(matmul(reshape(a, [-1, a.shape[a.ndim - 1]]), b), [...lead, b.shape[1]]);
  }
  const a2 = a.ndim === 1 ? unsqueeze(a, 0) : a;
  const b2 = b.ndim === 1 ? unsqueeze(b, -1) : b;
  const M = a2.shape[a2.ndim - 2], K = a2.shape[a2.ndim - 1], K2 = b2.shape[b2.ndim - 2], N = b2.shape[b2.ndim - 1];
  if (K !== K2) throw new ShapeError('matmul', `inner dimensions differ: ${fmtShape(a.shape)} @ ${fmtShape(b.shape)}`);
  const batch = broadcastShapes('matmul', a2.shape.slice(0, -2), b2.shape.slice(0, -2));
  const out = Tensor.empty([...batch, M, N]);
  gemmInto(out, a2, b2, batch, false);
  let res = out;
  if (needsGrad(a2, b2)) {
    record(out, 'matmul', [a2, b2], (g) => [
      a2.requiresGrad ? sumTo(matmul(g, transpose(b2)), a2.shape) : null,
      b2.requiresGrad ? sumTo(matmul(transpose(a2), g), b2.shape) : null,
    ]);
  }
  if (a.ndim === 1) res = squeeze(res, -2);
  if (b.ndim === 1) res = squeeze(res, -1);
  return res;
}

/** Whether all dims but the last of t can be merged into one without a copy. */
function foldable(t: Tensor): boolean {
  for (let i = 0; i < t.ndim - 2; i++) if (t.shape[i + 1] !== 1 && t.strides[i] !== t.strides[i + 1] * t.shape[i + 1]) return false;
  return true;
}

/** out (contiguous [...batch, M, N]) (+)= a @ b, with a and b broadcast over batch. */
function gemmInto(out: Tensor, a: Tensor, b: Tensor, batch: number[], accumulate: boolean): void {
  const M = a.shape[a.ndim - 2], K = a.shape[a.ndim - 1], N = b.shape[b.ndim - 1];
  if (out.size === 0) return;
  if (K === 0) {
    if (!accumulate) kernel('fill', [out.ptr, out.size, 0], out.size);
    return;
  }
  const nb = batch.length;
  const sa = broadcastStrides(view(a, a.shape.slice(0, -2), a.strides.slice(0, -2), 0), batch);
  const sb = broadcastStrides(view(b, b.shape.slice(0, -2), b.strides.slice(0, -2), 0), batch);
  const sc = contiguousStrides(batch).map((s) => s * M * N);
  // Collapse the batch dims; the kernel takes one batch dimension, the rest loop here.
  const [bs, [ca, cb, cc]] = nb ? collapse(batch, [sa, sb, sc]) : [[1], [[0], [0], [0]]];
  const inner = bs[bs.length - 1];
  const outerShape = bs.slice(0, -1);
  const outerCount = numel(outerShape);
  const sAm = a.strides[a.ndim - 2], sAk = a.strides[a.ndim - 1], sBk = b.strides[b.ndim - 2], sBn = b.strides[b.ndim - 1];
  const idx = new Array<number>(outerShape.length).fill(0);
  for (let o = 0; o < outerCount; o++) {
    let offA = 0, offB = 0, offC = 0;
    for (let i = 0; i < outerShape.length; i++) { offA += idx[i] * ca[i]; offB += idx[i] * cb[i]; offC += idx[i] * cc[i]; }
    kernel('sgemm', [a.ptr + 4 * offA, b.ptr + 4 * offB, out.ptr + 4 * offC, M, N, K, sAm, sAk, sBk, sBn, N,
      inner, ca[ca.length - 1], cb[cb.length - 1], cc[cc.length - 1], accumulate ? 1 : 0], inner * M * N * K);
    for (let i = outerShape.length - 1; i >= 0; i--) { if (++idx[i] < outerShape[i]) break; idx[i] = 0; }
  }
}

/** x @ wᵀ (+ b): a linear layer with PyTorch's (out_features, in_features) weight layout. */
export function linear(x: Tensor, w: Tensor, b?: Tensor | null): Tensor {
  const y = isQuantized(w.dtype) ? quantizedLinear(x, w) : matmul(x, transpose(w));
  return b ? add(y, b) : y;
}

/** x (…, K) as a (M, K) tensor whose rows are contiguous (a view when possible). */
function rowsOf(x: Tensor, K: number): Tensor {
  const M = x.size / Math.max(K, 1);
  if (x.ndim >= 2 && foldable(x) && x.strides[x.ndim - 1] === 1) return reshapeView(x, [M, K]);
  return reshape(cont(x), [M, K]);
}

/** Check x (…, K) against a quantised weight (N, K) for op; inference only. */
function checkQuantizedLinear(op: string, x: Tensor, w: Tensor): void {
  requireF32(op, x);
  if (w.ndim !== 2 || !w.isContiguous()) throw new ShapeError(op, `a ${w.dtype} weight must be a contiguous (N, K) matrix, got ${fmtShape(w.shape)}`);
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== w.shape[1]) throw new ShapeError(op, `x ${fmtShape(x.shape)} @ wᵀ with w ${fmtShape(w.shape)}: last dimensions differ`);
  if (w.shape[1] > 131072) throw new ShapeError(op, `${w.dtype} weight ${w.name ? `${w.name} ` : ''}${fmtShape(w.shape)}: rows longer than 131072 values are not supported`);
  if (needsGrad(x)) throw new DTypeError(op, `${w.name ? `${w.name} ` : ''}${fmtShape(w.shape)} is a ${w.dtype} (quantised) weight, for inference only: no gradient flows through it (run under noGrad(), or load the model with dtype f32 to train)`);
}

/** out (M, N) (+)= x (M, K) · wᵀ for a quantised w (N, K): the fused dequantise-and-dot kernel. */
function quantizedGemmInto(out: Tensor, x2: Tensor, w: Tensor, accumulate: boolean): void {
  const [M, K] = x2.shape, N = w.shape[0];
  if (M === 0 || N === 0) return;
  if (K === 0) { if (!accumulate) kernel('fill', [out.ptr, out.size, 0], out.size); return; }
  quantizedMatmulInto(out.ptr, x2.ptr, w, M, x2.strides[0], out.strides[0], accumulate);
}

/** The kernel of quantizedGemmInto on raw pointers: rows of x and out ldx and ldo values apart (M, K > 0). */
export function quantizedMatmulInto(out: number, x: number, w: Tensor, M: number, ldx: number, ldo: number, accumulate: boolean, to: KernelBatch | null = null): void {
  const N = w.shape[0], K = w.shape[1]; // (not destructured: no iterator per call on the decoding path)
  const q8 = w.dtype === 'q8_0', name = q8 ? 'q8_0_matmul' : 'quant_matmul';
  const args = q8 ? [out, x, w.ptr, M, N, K, ldx, ldo, accumulate ? 1 : 0] : [out, x, w.ptr, M, N, K, ldx, ldo, accumulate ? 1 : 0, ggmlTypeId(w.dtype)];
  if (to) to.add(name, args, M * N * K);
  else kernel(name, args, M * N * K);
}

function quantizedLinear(x: Tensor, w: Tensor): Tensor {
  checkQuantizedLinear('linear', x, w);
  const K = w.shape[1], N = w.shape[0];
  const x2 = rowsOf(x, K);
  const out = Tensor.empty([...x.shape.slice(0, -1), N]);
  quantizedGemmInto(view(out, [x2.shape[0], N], [N, 1], 0), x2, w, false);
  return out;
}

/** The ggml type id of a quantised (or f16/bf16) dtype other than q8_0 (the quant_* kernels' `type`). */
function ggmlTypeId(dtype: DType): number {
  if (dtype === 'f16' || dtype === 'bf16') return GGML_HALF[dtype].id;
  return GGML_QUANT[dtype as GgmlQuantName].id;
}

/** Gather rows idx (i32, checked by the caller) of a quantised matrix (V, K) into out (n, K) f32, dequantised as ggml does. */
export function gatherQuantizedRows(out: Tensor, w: Tensor, idx: Tensor, to: KernelBatch | null = null): void {
  const K = w.shape[1];
  if (!out.size) return;
  const q8 = w.dtype === 'q8_0', name = q8 ? 'q8_0_rows' : 'quant_rows';
  const args = q8 ? [out.ptr, w.ptr, idx.ptr, idx.size, K] : [out.ptr, w.ptr, idx.ptr, idx.size, K, ggmlTypeId(w.dtype)];
  if (to) to.add(name, args, out.size);
  else kernel(name, args, out.size);
}

/** A quantised matrix (N, K) as an f32 tensor: every block dequantised as ggml does (e.g. f32(d)·q for Q8_0). */
export function dequantize(w: Tensor): Tensor {
  if (!isQuantized(w.dtype)) throw new DTypeError('dequantize', `expected a quantised tensor (${Object.keys(QUANT_BLOCKS).join(', ')}), got ${w.dtype} ${fmtShape(w.shape)}`);
  const [N, K] = w.shape;
  const idx = Tensor.empty([N], 'i32');
  for (let i = 0; i < N; i++) H.i32[(idx.ptr >>> 2) + i] = i;
  const out = Tensor.empty([N, K]);
  gatherQuantizedRows(out, w, idx);
  idx.dispose();
  return out;
}

/** A quantised matrix (N, K) of `dtype` from its blocks in ggml's layout, copied into the heap. */
export function fromBlocks(blocks: Uint8Array, shape: Shape, dtype: QuantDType): Tensor {
  const t = Tensor.empty(shape, dtype);
  if (blocks.length !== t.storage.bytes) {
    t.dispose();
    throw new ShapeError('fromBlocks', `${blocks.length} bytes do not hold a ${dtype} matrix ${fmtShape(shape)} (${t.storage.bytes} bytes)`);
  }
  H.u8.set(blocks, t.ptr);
  return t;
}

/**
 * The Q8_0 blocks (ggml's layout) of an f32 matrix (N, K) whose rows are whole 32-value blocks,
 * rounded in the heap by the quantize_q8_0 kernel exactly as io's quantizeQ8_0 rounds them
 * (ggml's quantize_row_q8_0_ref), returned as host bytes: weights quantised as they load read
 * 3.8× fewer bytes out of the heap, and the kernel runs compiled from its first call.
 */
export function quantizeQ8_0Blocks(x: Tensor): Uint8Array {
  if (x.dtype !== 'f32') throw new DTypeError('quantizeQ8_0Blocks', `expected f32, got ${x.dtype}`);
  if (x.ndim !== 2 || x.shape[1] % Q8_0_BLOCK !== 0) throw new ShapeError('quantizeQ8_0Blocks', `${fmtShape(x.shape)}: expected a matrix whose rows are whole ${Q8_0_BLOCK}-value blocks`);
  return blocksInHeap(x, 'q8_0', Q8_0_BLOCK, Q8_0_BYTES, (out, src, nb) => kernel('quantize_q8_0', [out, src, nb], x.size));
}

/**
 * The blocks (ggml's layouts) of an f32 matrix (N, K) quantised to Q4_0, Q4_1, Q5_0 (rows of whole
 * 32-value blocks), Q4_K, Q5_K or Q6_K (whole 256-value blocks) in the heap by the quantize_blocks
 * kernel, byte for byte as io/quantize.ts's quantisers (ggml's reference ones), returned as host
 * bytes: quantising weights as they load, compiled from its first call.
 */
export function quantizeGgmlBlocks(x: Tensor, dtype: GgmlQuantName): Uint8Array {
  if (x.dtype !== 'f32') throw new DTypeError('quantizeGgmlBlocks', `expected f32, got ${x.dtype}`);
  const q = GGML_QUANT[dtype];
  if (!q) throw new DTypeError('quantizeGgmlBlocks', `${dtype} is not one of ${Object.keys(GGML_QUANT).join(', ')}`);
  if (x.ndim !== 2 || x.shape[1] % q.block !== 0) throw new ShapeError('quantizeGgmlBlocks', `${fmtShape(x.shape)}: expected a matrix whose rows are whole ${q.block}-value blocks of ${dtype}`);
  // work: the super-block quantisers' trial scales cost ~10× a 32-value block's per value
  return blocksInHeap(x, dtype, q.block, q.bytes, (out, src, nb) => kernel('quantize_blocks', [out, src, nb, q.id], x.size * (q.block === 256 ? 40 : 4)));
}

/** The bytes of x's nb blocks, written into a `dtype` tensor of x's shape by run(out, x, nb) in the heap. */
function blocksInHeap(x: Tensor, dtype: QuantDType, block: number, bytes: number, run: (out: number, src: number, nb: number) => void): Uint8Array {
  const c = x.isContiguous() ? x : contiguous(x);
  const nb = x.size / block, out = Tensor.empty([...x.shape], dtype);
  try {
    if (nb) run(out.ptr, c.ptr, nb);
    return H.u8.slice(out.ptr, out.ptr + nb * bytes);
  } finally {
    out.dispose();
    if (c !== x) c.dispose();
  }
}

/** A q8_0 matrix (N, K) from Q8_0 blocks (N·K/32 blocks of 34 bytes, ggml's layout), copied into the heap. */
export function fromQ8_0(blocks: Uint8Array, shape: Shape): Tensor {
  return fromBlocks(blocks, shape, 'q8_0');
}

/**
 * In place, no autograd: out += x @ wᵀ, for out (…, N) contiguous, x (…, K) with the same
 * leading shape and w (N, K). One matmul that accumulates into out (a residual connection
 * without an add op and a temporary).
 */
export function addLinearInPlace(out: Tensor, x: Tensor, w: Tensor): void {
  if (isQuantized(w.dtype)) {
    requireF32('addLinearInPlace', out);
    checkQuantizedLinear('addLinearInPlace', x, w);
    if (!out.isContiguous() || out.shape.slice(0, -1).join() !== x.shape.slice(0, -1).join() || out.shape[out.ndim - 1] !== w.shape[0]) {
      throw new ShapeError('addLinearInPlace', `out ${fmtShape(out.shape)} += x ${fmtShape(x.shape)} @ wᵀ with w ${fmtShape(w.shape)}: expected a contiguous out with x's leading shape and ${w.shape[0]} columns`);
    }
    const x2 = rowsOf(x, w.shape[1]);
    quantizedGemmInto(view(out, [x2.shape[0], w.shape[0]], [w.shape[0], 1], out.offset), x2, w, true);
    return;
  }
  requireF32('addLinearInPlace', out, x, w);
  const K = x.shape[x.ndim - 1], N = out.shape[out.ndim - 1];
  if (w.ndim !== 2 || w.shape[0] !== N || w.shape[1] !== K || x.shape.slice(0, -1).join() !== out.shape.slice(0, -1).join()) {
    throw new ShapeError('addLinearInPlace', `out ${fmtShape(out.shape)} += x ${fmtShape(x.shape)} @ wᵀ with w ${fmtShape(w.shape)}: expected w (${N}, ${K}) and equal leading shapes`);
  }
  if (!out.isContiguous()) throw new ShapeError('addLinearInPlace', 'out must be contiguous');
  const M = out.size / Math.max(N, 1);
  const x2 = foldable(x) && x.ndim >= 2 ? reshapeView(x, [M, K]) : reshape(cont(x), [M, K]);
  gemmInto(view(out, [M, N], [N, 1], out.offset), x2, transpose(w), [], true);
}

// ---------------------------------------------------------------- autograd entry and checks

export function backward(t: Tensor, grad?: Tensor): void {
  runBackward(t, grad, { add, onesLike, clone: copyRaw, addInPlace });
}

/** Count of NaN/±Inf values in t and the first one, or null if all finite. */
export function findNonFinite(t: Tensor): { count: number; index: number; value: number } | null {
  if (t.dtype !== 'f32') return null;
  const d = t.data();
  let count = 0, index = -1, value = 0;
  for (let i = 0; i < d.length; i++) {
    if (!Number.isFinite(d[i])) {
      if (index < 0) { index = i; value = d[i]; }
      count++;
    }
  }
  return count ? { count, index, value } : null;
}

/** Throw NonFiniteError naming the tensor if it holds NaN or ±Inf. */
export function assertFinite(t: Tensor, name = t.name ?? 'tensor'): void {
  const r = findNonFinite(t);
  if (r) throw new NonFiniteError(name, r.count, r.index, r.value);
}

/** Check named tensors and their gradients; throws for the first with NaN/Inf. */
export function assertAllFinite(named: Record<string, Tensor> | [string, Tensor][], opts: { grads?: boolean } = {}): void {
  const entries = Array.isArray(named) ? named : Object.entries(named);
  for (const [n, t] of entries) {
    assertFinite(t, n);
    if (opts.grads && t.grad) assertFinite(t.grad, `${n}.grad`);
  }
}

export { IndexError, Storage };
