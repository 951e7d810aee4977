// GGUF (ggml's model file, versions 2 and 3; we write 3). Layout, all little-endian:
//   "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv × (string key, u32 type, value)            string = u64 length + UTF-8 bytes
//   n_tensors × (string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset)
//   zero padding to `general.alignment` (u32, default 32), then the data section; each
//   tensor's offset is relative to it and a multiple of the alignment.
// ne[0] is the fastest-varying dimension, so a row-major (PyTorch) shape is ne reversed:
// an HF Linear weight [out, in] is stored with ne = [in, out]. RawTensor.shape here is always
// row-major; the reader and writer reverse.
import type { FileHandle } from 'node:fs/promises';
import { ByteReader, openRegularFile, parsePrefix, readExactly, syncRangeReader, writeAll, writeAtomic } from './bytes.js';
import { FormatError, TensorError, TruncatedError, UnsupportedDTypeError } from './errors.js';
import { byteSizeOrError, checkRawTensor, deferredTensor } from './dtypes.js';
import type { RawDType, RawTensor } from './dtypes.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** ggml's GGML_MAX_DIMS. */
const MAX_DIMS = 4;

// ---- value types --------------------------------------------------------------------------

export type GgufScalarType = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'bool' | 'string' | 'u64' | 'i64' | 'f64';
export type GgufType = GgufScalarType | 'array';
/** Type ids in the file (gguf_type). */
export const GGUF_TYPE_IDS: Record<GgufType, number> = {
  u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12,
};
const TYPE_BY_ID = new Map(Object.entries(GGUF_TYPE_IDS).map(([k, v]) => [v, k as GgufType]));
const SCALAR_BYTES: Partial<Record<GgufType, number>> = { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, bool: 1, u64: 8, i64: 8, f64: 8 };

/** Typed arrays for numeric array items; strings and bools as JS arrays; nested arrays as GgufArray[]. */
export type GgufArrayItems =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array
  | BigUint64Array | BigInt64Array | boolean[] | string[] | GgufArray[];
export interface GgufArray { type: 'array'; itemType: GgufType; value: GgufArrayItems }
export type GgufValue =
  | { type: 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'f64'; value: number }
  | { type: 'u64' | 'i64'; value: bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | GgufArray;

/** Constructors for metadata values. */
export const gv = {
  u8: (value: number): GgufValue => ({ type: 'u8', value }),
  i8: (value: number): GgufValue => ({ type: 'i8', value }),
  u16: (value: number): GgufValue => ({ type: 'u16', value }),
  i16: (value: number): GgufValue => ({ type: 'i16', value }),
  u32: (value: number): GgufValue => ({ type: 'u32', value }),
  i32: (value: number): GgufValue => ({ type: 'i32', value }),
  f32: (value: number): GgufValue => ({ type: 'f32', value }),
  f64: (value: number): GgufValue => ({ type: 'f64', value }),
  u64: (value: bigint | number): GgufValue => ({ type: 'u64', value: BigInt(value) }),
  i64: (value: bigint | number): GgufValue => ({ type: 'i64', value: BigInt(value) }),
  bool: (value: boolean): GgufValue => ({ type: 'bool', value }),
  str: (value: string): GgufValue => ({ type: 'string', value }),
  strings: (value: string[]): GgufArray => ({ type: 'array', itemType: 'string', value }),
  f32s: (value: ArrayLike<number>): GgufArray => ({ type: 'array', itemType: 'f32', value: Float32Array.from(value) }),
  i32s: (value: ArrayLike<number>): GgufArray => ({ type: 'array', itemType: 'i32', value: Int32Array.from(value) }),
  u32s: (value: ArrayLike<number>): GgufArray => ({ type: 'array', itemType: 'u32', value: Uint32Array.from(value) }),
};

/** A metadata value as plain JS (numbers, bigint, string, boolean, arrays). */
export function ggufPlain(v: GgufValue | undefined): unknown {
  if (!v) return undefined;
  if (v.type !== 'array') return v.value;
  if (v.itemType === 'array') return (v.value as GgufArray[]).map(ggufPlain);
  return Array.from(v.value as ArrayLike<unknown>);
}

// ---- ggml tensor types --------------------------------------------------------------------

interface GgmlTypeInfo { name: string; id: number; blockSize: number; typeSize: number; dtype?: RawDType }
/** ggml types with their block layout (enough to validate sizes); `dtype` where we can decode them. */
export const GGML_TYPES: readonly GgmlTypeInfo[] = [
  { name: 'F32', id: 0, blockSize: 1, typeSize: 4, dtype: 'F32' },
  { name: 'F16', id: 1, blockSize: 1, typeSize: 2, dtype: 'F16' },
  { name: 'Q4_0', id: 2, blockSize: 32, typeSize: 18, dtype: 'Q4_0' },
  { name: 'Q4_1', id: 3, blockSize: 32, typeSize: 20, dtype: 'Q4_1' },
  { name: 'Q5_0', id: 6, blockSize: 32, typeSize: 22, dtype: 'Q5_0' },
  { name: 'Q5_1', id: 7, blockSize: 32, typeSize: 24 },
  { name: 'Q8_0', id: 8, blockSize: 32, typeSize: 34, dtype: 'Q8_0' },
  { name: 'Q8_1', id: 9, blockSize: 32, typeSize: 36 },
  { name: 'Q2_K', id: 10, blockSize: 256, typeSize: 84 },
  { name: 'Q3_K', id: 11, blockSize: 256, typeSize: 110 },
  { name: 'Q4_K', id: 12, blockSize: 256, typeSize: 144, dtype: 'Q4_K' },
  { name: 'Q5_K', id: 13, blockSize: 256, typeSize: 176, dtype: 'Q5_K' },
  { name: 'Q6_K', id: 14, blockSize: 256, typeSize: 210, dtype: 'Q6_K' },
  { name: 'Q8_K', id: 15, blockSize: 256, typeSize: 292 },
  { name: 'I8', id: 24, blockSize: 1, typeSize: 1, dtype: 'I8' },
  { name: 'I16', id: 25, blockSize: 1, typeSize: 2, dtype: 'I16' },
  { name: 'I32', id: 26, blockSize: 1, typeSize: 4, dtype: 'I32' },
  { name: 'I64', id: 27, blockSize: 1, typeSize: 8, dtype: 'I64' },
  { name: 'F64', id: 28, blockSize: 1, typeSize: 8, dtype: 'F64' },
  { name: 'BF16', id: 30, blockSize: 1, typeSize: 2, dtype: 'BF16' },
];
const GGML_BY_ID = new Map(GGML_TYPES.map((t) => [t.id, t]));
const GGML_BY_DTYPE = new Map(GGML_TYPES.filter((t) => t.dtype).map((t) => [t.dtype!, t]));

export interface GgufTensorInfo {
  name: string;
  /** ne[] as stored (fastest first). */
  ne: number[];
  /** Row-major shape (ne reversed). */
  shape: number[];
  ggmlType: number;
  typeName: string;
  /** Offset relative to the data section. */
  offset: number;
  nbytes: number;
}

export interface GgufHeader {
  version: number;
  alignment: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  /** Absolute file offset of the data section. */
  dataStart: number;
}

// ---- reading ------------------------------------------------------------------------------

function readString(r: ByteReader, field: string): string {
  const n = r.u64n(`${field} (string length)`);
  if (n > r.remaining) r.need(n, `${field} (string of ${n} bytes)`);
  return r.utf8(n, field);
}

/**
 * `count` strings (a vocabulary: 32K–256K of them). Each item whose length and bytes lie in the
 * prefix held is decoded directly; any other (truncated, too long, bad UTF-8, past the prefix)
 * goes through readString, which names the item in its error or asks for more bytes. No
 * per-item field name or value object is made on the way.
 */
function readStrings(r: ByteReader, count: number, field: string): string[] {
  const items: string[] = [];
  for (let i = 0; i < count; i++) {
    const at = r.pos;
    if (r.holds(8)) {
      let n: number;
      try { n = r.u64n(field); } catch { n = -1; } // (thrown again below, naming the item)
      if (n >= 0 && r.holds(n)) {
        const s = r.utf8Or(n);
        if (s !== null) { items.push(s); continue; }
      }
      r.pos = at;
    }
    items.push(readString(r, `${field}[${i}]`));
  }
  return items;
}

function readValue(r: ByteReader, type: GgufType, field: string, depth = 0): GgufValue {
  switch (type) {
    case 'u8': return { type, value: r.u8(field) };
    case 'i8': return { type, value: r.i8(field) };
    case 'u16': return { type, value: r.u16(field) };
    case 'i16': return { type, value: r.i16(field) };
    case 'u32': return { type, value: r.u32(field) };
    case 'i32': return { type, value: r.i32(field) };
    case 'f32': return { type, value: r.f32(field) };
    case 'f64': return { type, value: r.f64(field) };
    case 'u64': return { type, value: r.u64(field) };
    case 'i64': return { type, value: r.i64(field) };
    case 'bool': {
      const b = r.u8(field);
      if (b > 1) throw new FormatError(r.file, field, `bool must be 0 or 1, got ${b}`);
      return { type, value: b === 1 };
    }
    case 'string': return { type, value: readString(r, field) };
    case 'array': {
      if (depth > 8) throw new FormatError(r.file, field, 'arrays nested too deeply');
      const itemId = r.u32(`${field} (array item type)`);
      const itemType = TYPE_BY_ID.get(itemId);
      if (!itemType) throw new FormatError(r.file, field, `unknown array item type ${itemId}`);
      const count = r.u64n(`${field} (array count)`);
      // Every item takes at least one byte (8 for strings and arrays): refuse counts the file cannot hold before allocating.
      const minItem = SCALAR_BYTES[itemType] ?? (itemType === 'string' ? 8 : 12);
      if (count * minItem > r.remaining) r.need(count * minItem, `${field} (array of ${count} ${itemType})`);
      const fixed = SCALAR_BYTES[itemType];
      if (fixed !== undefined && itemType !== 'bool') {
        const bytes = r.bytes(count * fixed, field);
        const copy = bytes.slice().buffer;
        const ctor = { u8: Uint8Array, i8: Int8Array, u16: Uint16Array, i16: Int16Array, u32: Uint32Array, i32: Int32Array, f32: Float32Array, f64: Float64Array, u64: BigUint64Array, i64: BigInt64Array }[itemType as 'u8'];
        return { type: 'array', itemType, value: new ctor(copy) };
      }
      if (itemType === 'string') return { type: 'array', itemType, value: readStrings(r, count, field) };
      const items: unknown[] = [];
      for (let i = 0; i < count; i++) {
        const v = readValue(r, itemType, `${field}[${i}]`, depth + 1);
        items.push(v.type === 'array' ? v : v.value);
      }
      return { type: 'array', itemType, value: items as GgufArrayItems };
    }
  }
}

/** Parse and validate a GGUF header from a prefix of a file of `fileSize` bytes. */
export function parseGgufHeader(prefix: Uint8Array, fileSize: number, file: string): GgufHeader {
  const r = new ByteReader(prefix, file, fileSize);
  const magic = r.u32('magic');
  // The bytes found are not quoted: they may be anything (a symlink's target's first bytes).
  if (magic !== GGUF_MAGIC) throw new FormatError(file, 'magic', `expected "GGUF": this is not a GGUF file${(magic & 0xffffff00) === 0x46554700 || magic === 0x47475546 ? ' (a big-endian or damaged GGUF?)' : ''}`);
  const version = r.u32('version');
  if (version !== 2 && version !== 3) {
    const hint = version === 1 ? ' (GGUF v1 is not supported)' : (version & 0xffff) === 0 ? ' (a big-endian file?)' : '';
    throw new FormatError(file, 'version', `unsupported GGUF version ${version}${hint}; expected 2 or 3`);
  }
  const nTensors = r.u64n('tensor count');
  const nKv = r.u64n('metadata count');
  // Each kv takes ≥ 8 + 4 + 1 bytes and each tensor info ≥ 8 + 4 + 4 + 8 bytes.
  if (nKv * 13 + nTensors * 24 > r.remaining) {
    throw new TruncatedError(file, `${nKv} metadata entries and ${nTensors} tensor infos (the header's counts)`, r.pos, nKv * 13 + nTensors * 24, fileSize);
  }
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const key = readString(r, `metadata key #${i}`);
    if (metadata.has(key)) throw new FormatError(file, key, 'duplicate metadata key');
    const typeId = r.u32(`type of '${key}'`);
    const type = TYPE_BY_ID.get(typeId);
    if (!type) throw new FormatError(file, key, `unknown value type ${typeId}`);
    metadata.set(key, readValue(r, type, key));
  }
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const al = metadata.get('general.alignment');
  if (al) {
    if (al.type !== 'u32' || al.value === 0 || (al.value & (al.value - 1)) !== 0) throw new FormatError(file, 'general.alignment', `must be a u32 power of two, got ${JSON.stringify(ggufPlain(al))} (${al.type})`);
    alignment = al.value;
  }
  const tensors: GgufTensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const name = readString(r, `tensor name #${i}`);
    if (names.has(name)) throw new TensorError(file, name, 'duplicate tensor name');
    names.add(name);
    const nDims = r.u32(`n_dims of tensor '${name}'`);
    if (nDims > MAX_DIMS) throw new TensorError(file, name, `n_dims ${nDims} exceeds ${MAX_DIMS}`);
    const ne: number[] = [];
    for (let j = 0; j < nDims; j++) ne.push(r.u64n(`ne[${j}] of tensor '${name}'`));
    const ggmlType = r.u32(`type of tensor '${name}'`);
    const offset = r.u64n(`offset of tensor '${name}'`);
    const ti = GGML_BY_ID.get(ggmlType);
    if (!ti) throw new UnsupportedDTypeError(file, name, `ggml type ${ggmlType}`);
    let n = 1;
    for (const d of ne) { n *= d; if (!Number.isSafeInteger(n)) throw new TensorError(file, name, `ne [${ne.join(', ')}] has too many elements`); }
    if ((ne[0] ?? 1) % ti.blockSize !== 0) throw new TensorError(file, name, `ne[0] = ${ne[0]} is not a multiple of ${ti.name}'s block size ${ti.blockSize}`);
    if (offset % alignment !== 0) throw new TensorError(file, name, `offset ${offset} is not a multiple of the alignment ${alignment}`);
    tensors.push({ name, ne, shape: [...ne].reverse(), ggmlType, typeName: ti.name, offset, nbytes: (n / ti.blockSize) * ti.typeSize });
  }
  const dataStart = Math.ceil(r.pos / alignment) * alignment;
  const dataLen = fileSize - dataStart;
  const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
  let prev: GgufTensorInfo | undefined;
  for (const t of sorted) {
    if (t.offset + t.nbytes > dataLen) throw new TensorError(file, t.name, `data [${t.offset}, ${t.offset + t.nbytes}) is out of range: the data section has ${Math.max(0, dataLen)} bytes (file truncated?)`);
    if (prev && t.offset < prev.offset + prev.nbytes) throw new TensorError(file, t.name, `data at offset ${t.offset} overlaps tensor '${prev.name}' [${prev.offset}, ${prev.offset + prev.nbytes})`);
    prev = t;
  }
  return { version, alignment, metadata, tensors, dataStart };
}

/** An open GGUF file (or buffer): header parsed and validated, tensors read on demand. */
export class GgufFile {
  private readonly byName: Map<string, GgufTensorInfo>;
  private constructor(readonly file: string, readonly header: GgufHeader, private readonly fh: FileHandle | null, private readonly buf: Uint8Array | null, private readonly deferred = false) {
    this.byName = new Map(header.tensors.map((t) => [t.name, t]));
  }

  /**
   * Open a file: the header is read and checked now, tensors when read. `deferred`: read() gives
   * tensors whose bytes stay in the file (RawTensor.source) until a loader reads them straight
   * into its heap, or `data` is asked for.
   */
  static async open(path: string, opts: { deferred?: boolean } = {}): Promise<GgufFile> {
    const { fh, size } = await openRegularFile(path);
    try {
      const header = await parsePrefix(fh, size, (p) => parseGgufHeader(p, size, path), 4 << 20);
      return new GgufFile(path, header, fh, null, opts.deferred ?? false);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  static fromBuffer(buf: Uint8Array, label = '<buffer>'): GgufFile {
    return new GgufFile(label, parseGgufHeader(buf, buf.length, label), null, buf);
  }

  get metadata(): Map<string, GgufValue> { return this.header.metadata; }
  get tensors(): readonly GgufTensorInfo[] { return this.header.tensors; }
  get(key: string): unknown { return ggufPlain(this.header.metadata.get(key)); }
  info(name: string): GgufTensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new TensorError(this.file, name, 'not in this file');
    return t;
  }

  /** Raw bytes of a tensor as a RawTensor (row-major shape). Types we cannot decode are an error. */
  async read(name: string): Promise<RawTensor> {
    const t = this.info(name);
    const dtype = GGML_BY_ID.get(t.ggmlType)!.dtype;
    if (!dtype) throw new UnsupportedDTypeError(this.file, name, t.typeName, 'tslm reads F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K, Q6_K, F64 and integer tensors');
    const at = this.header.dataStart + t.offset;
    if (this.deferred && !this.buf) return deferredTensor(name, dtype, [...t.shape], { file: this.file, offset: at, length: t.nbytes, readAt: syncRangeReader(this.file) });
    let data: Uint8Array;
    if (this.buf) data = this.buf.subarray(at, at + t.nbytes);
    else {
      data = new Uint8Array(t.nbytes);
      await readExactly(this.fh!, data, at, `tensor '${name}'`, (await this.fh!.stat()).size, this.file);
    }
    return { name, dtype, shape: [...t.shape], data };
  }

  async readAll(): Promise<RawTensor[]> {
    const out: RawTensor[] = [];
    for (const t of this.header.tensors) out.push(await this.read(t.name));
    return out;
  }

  async close(): Promise<void> { if (this.fh) await this.fh.close(); }
}

export interface GgufContents {
  version: number;
  alignment: number;
  metadata: Map<string, GgufValue>;
  tensors: RawTensor[];
}

export async function readGguf(src: string | Uint8Array, label?: string): Promise<GgufContents> {
  const f = typeof src === 'string' ? await GgufFile.open(src) : GgufFile.fromBuffer(src, label);
  try {
    return { version: f.header.version, alignment: f.header.alignment, metadata: f.metadata, tensors: await f.readAll() };
  } finally {
    await f.close();
  }
}

// ---- writing ------------------------------------------------------------------------------

class Out {
  private chunks: Uint8Array[] = [];
  private cur = new Uint8Array(1 << 16);
  private dv = new DataView(this.cur.buffer);
  private p = 0;
  length = 0;
  private room(n: number): void {
    if (this.p + n <= this.cur.length) return;
    this.chunks.push(this.cur.subarray(0, this.p));
    this.cur = new Uint8Array(Math.max(1 << 16, n));
    this.dv = new DataView(this.cur.buffer);
    this.p = 0;
  }
  u8(v: number) { this.room(1); this.dv.setUint8(this.p, v); this.p += 1; this.length += 1; }
  i8(v: number) { this.room(1); this.dv.setInt8(this.p, v); this.p += 1; this.length += 1; }
  u16(v: number) { this.room(2); this.dv.setUint16(this.p, v, true); this.p += 2; this.length += 2; }
  i16(v: number) { this.room(2); this.dv.setInt16(this.p, v, true); this.p += 2; this.length += 2; }
  u32(v: number) { this.room(4); this.dv.setUint32(this.p, v, true); this.p += 4; this.length += 4; }
  i32(v: number) { this.room(4); this.dv.setInt32(this.p, v, true); this.p += 4; this.length += 4; }
  f32(v: number) { this.room(4); this.dv.setFloat32(this.p, v, true); this.p += 4; this.length += 4; }
  f64(v: number) { this.room(8); this.dv.setFloat64(this.p, v, true); this.p += 8; this.length += 8; }
  u64(v: bigint | number) { this.room(8); this.dv.setBigUint64(this.p, BigInt(v), true); this.p += 8; this.length += 8; }
  i64(v: bigint | number) { this.room(8); this.dv.setBigInt64(this.p, BigInt(v), true); this.p += 8; this.length += 8; }
  bytes(b: Uint8Array) { this.room(b.length); this.cur.set(b, this.p); this.p += b.length; this.length += b.length; }
  str(s: string) { const b = new TextEncoder().encode(s); this.u64(b.length); this.bytes(b); }
  done(): Uint8Array {
    this.chunks.push(this.cur.subarray(0, this.p));
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) { out.set(c, o); o += c.length; }
    return out;
  }
}

function checkInt(v: number, lo: number, hi: number, key: string): number {
  if (!Number.isInteger(v) || v < lo || v > hi) throw new FormatError('<memory>', key, `value ${v} is out of range [${lo}, ${hi}]`);
  return v;
}

function writeValue(o: Out, v: GgufValue, key: string): void {
  switch (v.type) {
    case 'u8': return o.u8(checkInt(v.value, 0, 0xff, key));
    case 'i8': return o.i8(checkInt(v.value, -128, 127, key));
    case 'u16': return o.u16(checkInt(v.value, 0, 0xffff, key));
    case 'i16': return o.i16(checkInt(v.value, -32768, 32767, key));
    case 'u32': return o.u32(checkInt(v.value, 0, 0xffffffff, key));
    case 'i32': return o.i32(checkInt(v.value, -0x80000000, 0x7fffffff, key));
    case 'f32': return o.f32(v.value);
    case 'f64': return o.f64(v.value);
    case 'u64': return o.u64(v.value);
    case 'i64': return o.i64(v.value);
    case 'bool': return o.u8(v.value ? 1 : 0);
    case 'string': return o.str(v.value);
    case 'array': {
      o.u32(GGUF_TYPE_IDS[v.itemType]);
      const items = v.value as ArrayLike<unknown>;
      o.u64(items.length);
      for (let i = 0; i < items.length; i++) {
        const x = items[i];
        writeValue(o, (v.itemType === 'array' ? x : { type: v.itemType, value: x }) as GgufValue, `${key}[${i}]`);
      }
      return;
    }
  }
}

export interface GgufWriteInput {
  /** Ordered metadata (insertion order is file order). general.alignment, if present, is used. */
  metadata: Map<string, GgufValue> | Record<string, GgufValue>;
  /** Tensors with row-major shapes; dtypes F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K, Q6_K, F64, I8, I16, I32, I64. */
  tensors: readonly RawTensor[];
}

function prepareGguf(input: GgufWriteInput, file: string): { head: Uint8Array; alignment: number; tensors: readonly RawTensor[] } {
  const md = input.metadata instanceof Map ? input.metadata : new Map(Object.entries(input.metadata));
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const al = md.get('general.alignment');
  if (al) {
    if (al.type !== 'u32' || al.value === 0 || (al.value & (al.value - 1)) !== 0) throw new FormatError(file, 'general.alignment', 'must be a u32 power of two');
    alignment = al.value;
  }
  const o = new Out();
  o.u32(GGUF_MAGIC);
  o.u32(GGUF_VERSION);
  o.u64(input.tensors.length);
  o.u64(md.size);
  for (const [k, v] of md) { o.str(k); o.u32(GGUF_TYPE_IDS[v.type]); writeValue(o, v, k); }
  const names = new Set<string>();
  let off = 0;
  for (const t of input.tensors) {
    if (names.has(t.name)) throw new TensorError(file, t.name, 'appears twice');
    names.add(t.name);
    checkRawTensor(t, file);
    const ti = GGML_BY_DTYPE.get(t.dtype);
    if (!ti) throw new UnsupportedDTypeError(file, t.name, t.dtype, 'GGUF has no such tensor type');
    if (t.shape.length > MAX_DIMS) throw new TensorError(file, t.name, `GGUF tensors have at most ${MAX_DIMS} dims, got [${t.shape.join(', ')}]`);
    const size = byteSizeOrError(t.dtype, t.shape);
    if (typeof size === 'string') throw new TensorError(file, t.name, size);
    o.str(t.name);
    const ne = t.shape.length ? [...t.shape].reverse() : [1];
    o.u32(ne.length);
    for (const d of ne) o.u64(d);
    o.u32(ti.id);
    o.u64(off);
    off += Math.ceil(t.data.length / alignment) * alignment;
  }
  const pad = (alignment - (o.length % alignment)) % alignment;
  o.bytes(new Uint8Array(pad));
  return { head: o.done(), alignment, tensors: input.tensors };
}

/** Serialize a GGUF v3 file to one buffer. */
export function serializeGguf(input: GgufWriteInput): Uint8Array {
  const { head, alignment, tensors } = prepareGguf(input, '<memory>');
  const total = head.length + tensors.reduce((s, t) => s + Math.ceil(t.data.length / alignment) * alignment, 0);
  const out = new Uint8Array(total);
  out.set(head, 0);
  let p = head.length;
  for (const t of tensors) { out.set(t.data, p); p += Math.ceil(t.data.length / alignment) * alignment; }
  return out;
}

/** Write a GGUF v3 file atomically, tensor by tensor. */
export async function writeGguf(path: string, input: GgufWriteInput): Promise<void> {
  const { head, alignment, tensors } = prepareGguf(input, path);
  await writeAtomic(path, async (fh) => {
    await writeAll(fh, head);
    for (const t of tensors) {
      await writeAll(fh, t.data);
      const pad = (alignment - (t.data.length % alignment)) % alignment;
      if (pad) await writeAll(fh, new Uint8Array(pad));
    }
  });
}
