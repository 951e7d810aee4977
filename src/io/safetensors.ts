// safetensors: 8-byte LE header length N, N bytes of JSON header ({name: {dtype, shape,
// data_offsets: [begin, end]}, "__metadata__": {str: str}}), then the data section. Offsets are
// relative to the data section; tensors must tile it exactly (no gaps, no overlaps), as the
// reference implementation's Metadata::validate demands. Writing follows the reference
// (huggingface/safetensors `prepare`): tensors sorted by descending dtype alignment then name,
// compact JSON with __metadata__ first, header padded with spaces to a multiple of 8.
//
// This file holds what needs Node.js (files, sharded checkpoints); parsing and serializing bytes
// in memory is in safetensors_bytes.ts (Node-free, used by the browser entry point), re-exported here.
import { mkdir, rename, rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { readJsonObjectFile } from './json_file.js';
import { openRegularFile, parsePrefix, readExactly, writeAll, writeAtomic, tmpPathFor } from './bytes.js';
import { FormatError, IoError, MissingTensorError, TruncatedError, UnexpectedTensorError } from './errors.js';
import type { RawTensor } from './dtypes.js';
import { checkForWrite, headerBytes, parseSafetensorsBufferHeader, parseSafetensorsHeader } from './safetensors_bytes.js';
import type { SafetensorsContents, SafetensorsEntry, SafetensorsHeader } from './safetensors_bytes.js';

export {
  SAFETENSORS_MAX_HEADER, SAFETENSORS_DTYPES, parseSafetensorsHeader, parseSafetensorsBufferHeader, parseSafetensorsBytes, serializeSafetensors,
} from './safetensors_bytes.js';
export type { SafetensorsEntry, SafetensorsHeader, SafetensorsContents } from './safetensors_bytes.js';

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
    const { fh, size } = await openRegularFile(path);
    try {
      const header = await readHeaderFrom(fh, size, path);
      return new SafetensorsFile(path, header, fh, null);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** Parse a whole file held in memory; tensors read from it are views (no copy). */
  static fromBuffer(buf: Uint8Array, label = '<buffer>'): SafetensorsFile {
    return new SafetensorsFile(label, parseSafetensorsBufferHeader(buf, label), null, buf);
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

/** Read every tensor of a safetensors file (path) or buffer. */
export async function readSafetensors(src: string | Uint8Array, label?: string): Promise<SafetensorsContents> {
  const f = typeof src === 'string' ? await SafetensorsFile.open(src) : SafetensorsFile.fromBuffer(src, label);
  try {
    return { tensors: await f.readAll(), metadata: f.metadata };
  } finally {
    await f.close();
  }
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
  const json = await readJsonObjectFile(indexPath, 'index');
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
          if (e instanceof IoError && e.message === `${p}: does not exist`) throw new IoError(indexPath, `shard '${shard}' named in weight_map does not exist`);
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
    // No push(...list): a shard may hold more tensors than a call takes arguments.
    for (const f of this.shards.values()) for (const t of await f.readAll()) out.push(t);
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
