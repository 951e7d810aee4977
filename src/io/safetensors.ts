// safetensors: 8-byte LE header length N, N bytes of JSON header ({name: {dtype, shape,
// data_offsets: [begin, end]}, "__metadata__": {str: str}}), then the data section. Offsets are
// relative to the data section; tensors must tile it exactly (no gaps, no overlaps), as the
// reference implementation's Metadata::validate demands. Writing follows the reference
// (huggingface/safetensors `prepare`): tensors sorted by descending dtype alignment then name,
// compact JSON with __metadata__ first, header padded with spaces to a multiple of 8.
import { open, readFile, mkdir, rename, rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { NeedMoreBytes, parsePrefix, readExactly, writeAll, writeAtomic, tmpPathFor } from './bytes.js';
import { ConfigFieldError, FormatError, IoError, MissingTensorError, TensorError, TruncatedError, UnexpectedTensorError, UnsupportedDTypeError } from './errors.js';
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
  if (!text.startsWith('{')) throw new FormatError(file, 'header', `must be a JSON object starting with '{', got ${JSON.stringify(text.slice(0, 16))}`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FormatError(file, 'header', `is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new FormatError(file, 'header', 'is not a JSON object');
  const dataLen = fileSize - 8 - n;
  let metadata: Record<string, string> | null = null;
  const entries: SafetensorsEntry[] = [];
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FormatError(file, '__metadata__', 'must be an object of strings');
      for (const [k, s] of Object.entries(v)) {
        if (typeof s !== 'string') throw new FormatError(file, `__metadata__.${k}`, `must be a string, got ${JSON.stringify(s)}`);
      }
      metadata = { ...(v as Record<string, string>) };
      continue;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TensorError(file, name, 'header entry is not an object');
    const { dtype, shape, data_offsets: off } = v as Record<string, unknown>;
    if (typeof dtype !== 'string') throw new TensorError(file, name, 'dtype is missing or not a string');
    if (!isDType(dtype) || !DTYPE_RANK.has(dtype)) throw new UnsupportedDTypeError(file, name, JSON.stringify(dtype));
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new TensorError(file, name, `shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new TensorError(file, name, `data_offsets ${JSON.stringify(off)} is not a pair of non-negative integers`);
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

/**
 * An open safetensors file (or buffer): the validated header, tensors read one at a time.
 * For a path, only the header is read at open; each `read` reads that tensor's bytes.
 */
export class SafetensorsFile {
  private readonly byName: Map<string, SafetensorsEntry>;
  private constructor(
    readonly file: string,
    readonly header: SafetensorsHeader,
    private readonly fh: FileHandle | null,
    private readonly buf: Uint8Array | null,
  ) {
    this.byName = new Map(header.entries.map((e) => [e.name, e]));
  }

  static async open(path: string): Promise<SafetensorsFile> {
    const fh = await open(path, 'r');
    try {
      const size = (await fh.stat()).size;
      const header = await readHeaderFrom(fh, size, path);
      return new SafetensorsFile(path, header, fh, null);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** Parse a whole file held in memory; tensors read from it are views (no copy). */
  static fromBuffer(buf: Uint8Array, label = '<buffer>'): SafetensorsFile {
    let header: SafetensorsHeader;
    try {
      header = parseSafetensorsHeader(buf, buf.length, label);
    } catch (e) {
      if (e instanceof NeedMoreBytes) throw new TruncatedError(label, 'header', 8, e.upTo - 8, buf.length);
      throw e;
    }
    return new SafetensorsFile(label, header, null, buf);
  }

  get metadata(): Record<string, string> | null { return this.header.metadata; }
  get entries(): readonly SafetensorsEntry[] { return this.header.entries; }
  get names(): string[] { return this.header.entries.map((e) => e.name); }
  has(name: string): boolean { return this.byName.has(name); }
  entry(name: string): SafetensorsEntry {
    const e = this.byName.get(name);
    if (!e) throw new MissingTensorError(this.file, name, 'not in this file');
    return e;
  }

  async read(name: string): Promise<RawTensor> {
    const e = this.entry(name);
    const n = e.end - e.begin;
    if (this.buf) {
      const s = this.header.dataStart + e.begin;
      return { name, dtype: e.dtype, shape: [...e.shape], data: this.buf.subarray(s, s + n) };
    }
    if (!this.fh) throw new IoError(this.file, 'file is closed');
    const data = new Uint8Array(n);
    const size = (await this.fh.stat()).size;
    await readExactly(this.fh, data, this.header.dataStart + e.begin, `tensor '${name}'`, size, this.file);
    return { name, dtype: e.dtype, shape: [...e.shape], data };
  }

  async readAll(names: readonly string[] = this.names): Promise<RawTensor[]> {
    const out: RawTensor[] = [];
    for (const n of names) out.push(await this.read(n));
    return out;
  }

  async close(): Promise<void> {
    if (this.fh) await this.fh.close();
  }
}

async function readHeaderFrom(fh: FileHandle, size: number, file: string): Promise<SafetensorsHeader> {
  if (size < 8) throw new TruncatedError(file, 'header length', 0, 8, size);
  return parsePrefix(fh, size, (prefix) => parseSafetensorsHeader(prefix, size, file), 64 * 1024);
}

export interface SafetensorsContents {
  tensors: RawTensor[];
  metadata: Record<string, string> | null;
}

/** Read every tensor of a safetensors file (path) or buffer. */
export async function readSafetensors(src: string | Uint8Array, label?: string): Promise<SafetensorsContents> {
  const f = typeof src === 'string' ? await SafetensorsFile.open(src) : SafetensorsFile.fromBuffer(src, label);
  try {
    return { tensors: await f.readAll(), metadata: f.metadata };
  } finally {
    await f.close();
  }
}

// ---- writing ---------------------------------------------------------------------------

function checkForWrite(tensors: readonly RawTensor[], file: string): RawTensor[] {
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
function headerBytes(ordered: readonly RawTensor[], metadata: Record<string, string> | null | undefined): Uint8Array {
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

/** Write a safetensors file atomically (temporary file, then rename), streaming tensor by tensor. */
export async function writeSafetensors(path: string, tensors: readonly RawTensor[], metadata?: Record<string, string> | null): Promise<void> {
  const ordered = checkForWrite(tensors, path);
  const head = headerBytes(ordered, metadata);
  await writeAtomic(path, async (fh) => {
    await writeAll(fh, head);
    for (const t of ordered) await writeAll(fh, t.data);
  });
}

// ---- sharded checkpoints (model.safetensors.index.json) -----------------------------------

export interface ShardIndex {
  metadata: Record<string, unknown>;
  weight_map: Record<string, string>;
}

export async function readShardIndex(indexPath: string): Promise<ShardIndex> {
  let text: string;
  try { text = await readFile(indexPath, 'utf8'); } catch (e) { throw new IoError(indexPath, `cannot read: ${(e as Error).message}`); }
  let json: unknown;
  try { json = JSON.parse(text); } catch (e) { throw new FormatError(indexPath, 'index', `is not valid JSON (${(e as Error).message})`); }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new FormatError(indexPath, 'index', 'is not a JSON object');
  const wm = (json as Record<string, unknown>).weight_map;
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) throw new FormatError(indexPath, 'weight_map', 'is missing or not an object');
  for (const [name, shard] of Object.entries(wm)) {
    if (typeof shard !== 'string' || shard === '' || shard.includes('/') || shard.includes('\\') || shard === '.' || shard === '..') {
      throw new FormatError(indexPath, `weight_map['${name}']`, `must be a file name in the same directory, got ${JSON.stringify(shard)}`);
    }
  }
  const md = (json as Record<string, unknown>).metadata;
  return { metadata: typeof md === 'object' && md !== null ? (md as Record<string, unknown>) : {}, weight_map: wm as Record<string, string> };
}

/** A sharded checkpoint opened lazily: every shard's header validated against the index. */
export class ShardedSafetensors {
  private constructor(readonly indexPath: string, readonly index: ShardIndex, private readonly shards: Map<string, SafetensorsFile>) {}

  static async open(indexPath: string): Promise<ShardedSafetensors> {
    const index = await readShardIndex(indexPath);
    const dir = dirname(indexPath);
    const shards = new Map<string, SafetensorsFile>();
    try {
      for (const shard of new Set(Object.values(index.weight_map))) {
        const p = join(dir, shard);
        let f: SafetensorsFile;
        try { f = await SafetensorsFile.open(p); } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new IoError(indexPath, `shard '${shard}' named in weight_map does not exist`);
          throw e;
        }
        shards.set(shard, f);
      }
      for (const [name, shard] of Object.entries(index.weight_map)) {
        if (!shards.get(shard)!.has(name)) throw new MissingTensorError(join(dir, shard), name, `listed in ${basename(indexPath)} but not in this shard`);
      }
      for (const [shard, f] of shards) {
        for (const name of f.names) {
          if (index.weight_map[name] !== shard) throw new UnexpectedTensorError(join(dir, shard), name, `is in this shard but ${basename(indexPath)} maps it to ${JSON.stringify(index.weight_map[name] ?? null)}`);
        }
      }
    } catch (e) {
      for (const f of shards.values()) await f.close();
      throw e;
    }
    return new ShardedSafetensors(indexPath, index, shards);
  }

  get names(): string[] { return Object.keys(this.index.weight_map); }
  has(name: string): boolean { return name in this.index.weight_map; }
  entry(name: string): SafetensorsEntry {
    const shard = this.index.weight_map[name];
    if (shard === undefined) throw new MissingTensorError(this.indexPath, name, 'not in weight_map');
    return this.shards.get(shard)!.entry(name);
  }
  async read(name: string): Promise<RawTensor> {
    const shard = this.index.weight_map[name];
    if (shard === undefined) throw new MissingTensorError(this.indexPath, name, 'not in weight_map');
    return this.shards.get(shard)!.read(name);
  }
  async readAll(): Promise<RawTensor[]> {
    const out: RawTensor[] = [];
    for (const f of this.shards.values()) out.push(...(await f.readAll()));
    return out;
  }
  /** Metadata of the first shard (transformers writes {"format": "pt"} in each). */
  get metadata(): Record<string, string> | null { return this.shards.values().next().value?.metadata ?? null; }
  async close(): Promise<void> { for (const f of this.shards.values()) await f.close(); }
}

export interface ShardOptions {
  /** Largest shard in bytes (tensor data; a tensor larger than this gets a shard of its own). */
  maxShardSize: number;
  /** File name stem: `${prefix}-00001-of-00003.safetensors`, index `${prefix}.safetensors.index.json`. */
  prefix?: string;
  metadata?: Record<string, string> | null;
}

/** Split tensors into shards the way huggingface_hub's split_state_dict_into_shards does (in order, greedy). */
export function planShards(tensors: readonly RawTensor[], maxShardSize: number): RawTensor[][] {
  if (!(maxShardSize > 0)) throw new RangeError(`maxShardSize must be positive, got ${maxShardSize}`);
  const shards: RawTensor[][] = [];
  let cur: RawTensor[] = [];
  let size = 0;
  for (const t of tensors) {
    const n = t.data.length;
    if (n > maxShardSize) { shards.push([t]); continue; }
    if (size + n > maxShardSize && cur.length) { shards.push(cur); cur = []; size = 0; }
    cur.push(t);
    size += n;
  }
  if (cur.length) shards.push(cur);
  return shards;
}

/**
 * Write tensors as a sharded checkpoint into `dir`. One shard → `${prefix}.safetensors` and no
 * index (as transformers does). Files are written under temporary names and renamed at the end,
 * the index last. Returns the file names written.
 */
export async function writeShardedSafetensors(dir: string, tensors: readonly RawTensor[], opts: ShardOptions): Promise<string[]> {
  const prefix = opts.prefix ?? 'model';
  const metadata = opts.metadata === undefined ? { format: 'pt' } : opts.metadata;
  checkForWrite(tensors, join(dir, `${prefix}.safetensors`));
  await mkdir(dir, { recursive: true });
  const shards = planShards(tensors, opts.maxShardSize);
  if (shards.length <= 1) {
    const name = `${prefix}.safetensors`;
    await writeSafetensors(join(dir, name), shards[0] ?? [], metadata);
    return [name];
  }
  const n = shards.length;
  const names = shards.map((_, i) => `${prefix}-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`);
  const tmps: string[] = [];
  const weightMap: Record<string, string> = {};
  let total = 0;
  try {
    for (let i = 0; i < n; i++) {
      const tmp = tmpPathFor(join(dir, names[i]));
      tmps.push(tmp);
      await writeSafetensors(tmp, shards[i], metadata);
      for (const t of shards[i]) { weightMap[t.name] = names[i]; total += t.data.length; }
    }
    for (let i = 0; i < n; i++) await rename(tmps[i], join(dir, names[i]));
  } catch (e) {
    for (const t of tmps) await rm(t, { force: true });
    throw e;
  }
  const sorted: Record<string, string> = {};
  for (const k of Object.keys(weightMap).sort()) sorted[k] = weightMap[k];
  const index = { metadata: { total_size: total }, weight_map: sorted };
  const indexName = `${prefix}.safetensors.index.json`;
  await writeAtomic(join(dir, indexName), (fh) => writeAll(fh, new TextEncoder().encode(JSON.stringify(index, null, 2) + '\n')));
  return [...names, indexName];
}
