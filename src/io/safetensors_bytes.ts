// safetensors from and to bytes in memory, Node-free (the browser entry point uses it): header
// parsing and validation, a whole buffer parsed into tensor views, serialization. The file and
// sharded-checkpoint readers and writers are in safetensors.ts, which re-exports all of this.
import { NeedMoreBytes } from './reader.js';
import { ConfigFieldError, FormatError, TensorError, TruncatedError, UnsupportedDTypeError } from './errors.js';
import { brief, parseJsonObject } from './json.js';
import { byteSizeOrError, checkRawTensor, isDType } from './dtypes.js';
import type { RawDType, RawTensor } from './dtypes.js';

/** The reference refuses headers above this (100 MB). */
export const SAFETENSORS_MAX_HEADER = 100_000_000;

/** dtypes safetensors knows, in the reference's enum order (increasing alignment). */
export const SAFETENSORS_DTYPES: readonly RawDType[] = ['BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'F64', 'I64', 'U64'];
const DTYPE_RANK = new Map(SAFETENSORS_DTYPES.map((d, i) => [d, i]));

export interface SafetensorsEntry {
  name: string;
  dtype: RawDType;
  shape: number[];
  /** Byte offsets relative to the start of the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Header length N (without the 8-byte prefix). */
  headerLength: number;
  /** Absolute file offset of the data section (8 + N). */
  dataStart: number;
  /** Entries in file order (sorted by offset). */
  entries: SafetensorsEntry[];
  metadata: Record<string, string> | null;
}

/**
 * Parse and validate the header. `prefix` holds at least the first 8 + N bytes of a file of
 * `fileSize` bytes (a NeedMoreBytes is thrown through ByteReader-style callers otherwise).
 */
export function parseSafetensorsHeader(prefix: Uint8Array, fileSize: number, file: string): SafetensorsHeader {
  if (fileSize < 8) throw new TruncatedError(file, 'header length', 0, 8, fileSize);
  const dv = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength);
  const nBig = dv.getBigUint64(0, true);
  if (nBig > BigInt(SAFETENSORS_MAX_HEADER)) {
    if (nBig + 8n > BigInt(fileSize)) throw new FormatError(file, 'header length', `${nBig} runs past the end of the file (${fileSize} bytes)`);
    throw new FormatError(file, 'header length', `${nBig} is larger than the ${SAFETENSORS_MAX_HEADER}-byte limit`);
  }
  const n = Number(nBig);
  if (8 + n > fileSize) throw new FormatError(file, 'header length', `${n} runs past the end of the file (${fileSize} bytes)`);
  if (8 + n > prefix.length) throw new NeedMoreBytes(8 + n);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(prefix.subarray(8, 8 + n));
  } catch {
    throw new FormatError(file, 'header', 'is not valid UTF-8');
  }
  if (!text.startsWith('{')) throw new FormatError(file, 'header', "must be a JSON object starting with '{'");
  // Syntax errors by line/column (never the text), bounded nesting, and a tensor named twice is an
  // error (JSON.parse alone would keep the last entry silently).
  const json = parseJsonObject(text, file, 'header', { uniqueTopLevelKeys: true, maxDepth: 8 });
  const dataLen = fileSize - 8 - n;
  let metadata: Record<string, string> | null = null;
  const entries: SafetensorsEntry[] = [];
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FormatError(file, '__metadata__', 'must be an object of strings');
      for (const [k, s] of Object.entries(v)) {
        if (typeof s !== 'string') throw new FormatError(file, `__metadata__.${k}`, `must be a string, got ${brief(s)}`);
      }
      metadata = { ...(v as Record<string, string>) };
      continue;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TensorError(file, name, 'header entry is not an object');
    const { dtype, shape, data_offsets: off } = v as Record<string, unknown>;
    if (typeof dtype !== 'string') throw new TensorError(file, name, 'dtype is missing or not a string');
    if (!isDType(dtype) || !DTYPE_RANK.has(dtype)) throw new UnsupportedDTypeError(file, name, brief(dtype, 40));
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new TensorError(file, name, `shape ${brief(shape)} is not a list of non-negative integers`);
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new TensorError(file, name, `data_offsets ${brief(off)} is not a pair of non-negative integers`);
    const [begin, end] = off as [number, number];
    if (end < begin) throw new TensorError(file, name, `data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataLen) throw new TensorError(file, name, `data_offsets [${begin}, ${end}] are out of range: the data section has ${dataLen} bytes (file truncated?)`);
    const need = byteSizeOrError(dtype, shape as number[]);
    if (typeof need === 'string') throw new TensorError(file, name, need);
    if (end - begin !== need) throw new TensorError(file, name, `data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${dtype} [${(shape as number[]).join(', ')}] needs ${need}`);
    entries.push({ name, dtype, shape: [...(shape as number[])], begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  let prev: SafetensorsEntry | undefined;
  for (const e of entries) {
    if (e.begin < pos) throw new TensorError(file, e.name, `data_offsets [${e.begin}, ${e.end}] overlap tensor '${prev!.name}' [${prev!.begin}, ${prev!.end}]`);
    if (e.begin > pos) throw new TensorError(file, e.name, `data_offsets [${e.begin}, ${e.end}] leave a gap after byte ${pos}${prev ? ` (end of '${prev.name}')` : ''}`);
    pos = e.end;
    prev = e;
  }
  if (pos !== dataLen) throw new FormatError(file, 'data', `tensors cover ${pos} bytes but the data section has ${dataLen} (trailing bytes)`);
  return { headerLength: n, dataStart: 8 + n, entries, metadata };
}

/** Parse and validate the header of a whole safetensors file held in memory. */
export function parseSafetensorsBufferHeader(buf: Uint8Array, label = '<buffer>'): SafetensorsHeader {
  try {
    return parseSafetensorsHeader(buf, buf.length, label);
  } catch (e) {
    if (e instanceof NeedMoreBytes) throw new TruncatedError(label, 'header', 8, e.upTo - 8, buf.length);
    throw e;
  }
}

export interface SafetensorsContents {
  tensors: RawTensor[];
  metadata: Record<string, string> | null;
}

/**
 * Every tensor of a safetensors file held in memory (fetched in a page, say), synchronously; the
 * tensors' data are views into `buf` (no copy). `label` names the buffer in errors.
 */
export function parseSafetensorsBytes(buf: Uint8Array, label = '<buffer>'): SafetensorsContents {
  const header = parseSafetensorsBufferHeader(buf, label);
  const tensors = header.entries.map((e): RawTensor => {
    const s = header.dataStart + e.begin;
    return { name: e.name, dtype: e.dtype, shape: [...e.shape], data: buf.subarray(s, s + (e.end - e.begin)) };
  });
  return { tensors, metadata: header.metadata };
}

// ---- writing ---------------------------------------------------------------------------

export function checkForWrite(tensors: readonly RawTensor[], file: string): RawTensor[] {
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === '__metadata__') throw new TensorError(file, t.name, 'name is reserved');
    if (seen.has(t.name)) throw new TensorError(file, t.name, 'appears twice');
    seen.add(t.name);
    if (!DTYPE_RANK.has(t.dtype)) throw new UnsupportedDTypeError(file, t.name, t.dtype, 'safetensors has no such dtype');
    checkRawTensor(t, file);
  }
  // The reference's order: descending dtype alignment, then name (byte order).
  return [...tensors].sort((a, b) => DTYPE_RANK.get(b.dtype)! - DTYPE_RANK.get(a.dtype)! || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The header bytes (8-byte length + padded JSON) for tensors already in write order. */
export function headerBytes(ordered: readonly RawTensor[], metadata: Record<string, string> | null | undefined): Uint8Array {
  let json = '{';
  const parts: string[] = [];
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw new ConfigFieldError('<memory>', `__metadata__.${k}`, 'must be a string');
    parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }
  let off = 0;
  for (const t of ordered) {
    const n = t.data.length;
    parts.push(`${JSON.stringify(t.name)}:${JSON.stringify({ dtype: t.dtype, shape: t.shape, data_offsets: [off, off + n] })}`);
    off += n;
  }
  json += parts.join(',') + '}';
  const body = new TextEncoder().encode(json);
  const pad = (8 - (body.length % 8)) % 8;
  const out = new Uint8Array(8 + body.length + pad);
  new DataView(out.buffer).setBigUint64(0, BigInt(body.length + pad), true);
  out.set(body, 8);
  out.fill(0x20, 8 + body.length);
  return out;
}

/** Serialize to one buffer, byte-identical to the reference implementation's `serialize`. */
export function serializeSafetensors(tensors: readonly RawTensor[], metadata?: Record<string, string> | null): Uint8Array {
  const ordered = checkForWrite(tensors, '<memory>');
  const head = headerBytes(ordered, metadata);
  const total = head.length + ordered.reduce((s, t) => s + t.data.length, 0);
  const out = new Uint8Array(total);
  out.set(head, 0);
  let o = head.length;
  for (const t of ordered) { out.set(t.data, o); o += t.data.length; }
  return out;
}
