// An HF model directory: config.json (a plain object with HF field names) and weights in
// model.safetensors or a sharded model.safetensors.index.json. Writes are atomic per file
// (temporary name, then rename), the weights before config.json.
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeAll, writeAtomic } from './bytes.js';
import { ConfigFieldError, IoError } from './errors.js';
import type { RawTensor } from './dtypes.js';
import { SafetensorsFile, ShardedSafetensors, writeShardedSafetensors } from './safetensors.js';
import { checkModelTensors } from './families.js';
import { readJsonObjectFile } from './json_file.js';

export type HfConfig = Record<string, unknown>;

export interface HfCheckpoint {
  config: HfConfig;
  tensors: RawTensor[];
  /** safetensors `__metadata__` (of the first shard). */
  metadata: Record<string, string> | null;
}

async function exists(p: string): Promise<boolean> {
  try { await stat(p); return true; } catch { return false; }
}

export async function readHfConfig(dir: string): Promise<HfConfig> {
  // A regular file of bounded size; a syntax error names the line and column, never the text.
  return readJsonObjectFile(join(dir, 'config.json'), 'config', { errorClass: ConfigFieldError });
}

/** Open the weights of an HF directory lazily (single file or sharded). Close when done. */
export async function openHfWeights(dir: string): Promise<SafetensorsFile | ShardedSafetensors> {
  const single = join(dir, 'model.safetensors');
  const index = join(dir, 'model.safetensors.index.json');
  if (await exists(single)) return SafetensorsFile.open(single);
  if (await exists(index)) return ShardedSafetensors.open(index);
  throw new IoError(dir, 'no model.safetensors or model.safetensors.index.json');
}

export interface ReadHfOptions {
  /** Check the config's dimensions and that the tensors are exactly the model's (LLaMA-like, mixtral, qwen2_moe and Mamba model_types). Default true. */
  check?: boolean;
}

/** Read config.json and every tensor of an HF directory. */
export async function readHfDir(dir: string, opts: ReadHfOptions = {}): Promise<HfCheckpoint> {
  const config = await readHfConfig(dir);
  const w = await openHfWeights(dir);
  try {
    const file = w instanceof SafetensorsFile ? w.file : w.indexPath;
    const renamed = (opts.check ?? true) ? checkModelTensors(config, join(dir, 'config.json'), file, w.names.map((name) => ({ name, shape: w.entry(name).shape }))) : null;
    const tensors = await w.readAll();
    return { config, tensors: renamed ? tensors.map((t) => ({ ...t, name: renamed.get(t.name) ?? t.name })) : tensors, metadata: w.metadata };
  } finally {
    await w.close();
  }
}

export interface WriteHfOptions {
  /** Shard when the weights exceed this many bytes (default: one file). */
  maxShardSize?: number;
  /** safetensors `__metadata__`; default {format: 'pt'} as transformers writes. */
  metadata?: Record<string, string> | null;
}

/**
 * Write an HF directory. Weights first (shards, then index), then config.json; each file under a
 * temporary name renamed into place. Weight files of the other layout left from an earlier
 * write (model.safetensors vs shards + index) are removed so the directory is unambiguous.
 */
export async function writeHfDir(dir: string, ckpt: { config: HfConfig; tensors: readonly RawTensor[] }, opts: WriteHfOptions = {}): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const written = await writeShardedSafetensors(dir, ckpt.tensors, {
    maxShardSize: opts.maxShardSize ?? Number.MAX_SAFE_INTEGER,
    metadata: opts.metadata,
  });
  const keep = new Set(written);
  const stale = ['model.safetensors', 'model.safetensors.index.json'].filter((n) => !keep.has(n));
  for (const n of stale) {
    const p = join(dir, n);
    if (n.endsWith('.index.json') && (await exists(p))) {
      // drop the old shards the old index names, unless just written
      try {
        const old = JSON.parse(await readFile(p, 'utf8')) as { weight_map?: Record<string, string> };
        for (const s of new Set(Object.values(old.weight_map ?? {}))) {
          if (typeof s === 'string' && !s.includes('/') && !keep.has(s)) await rm(join(dir, s), { force: true });
        }
      } catch { /* an unreadable old index: just remove it */ }
    }
    await rm(p, { force: true });
  }
  const configText = JSON.stringify(ckpt.config, null, 2) + '\n';
  await writeAtomic(join(dir, 'config.json'), (fh) => writeAll(fh, new TextEncoder().encode(configText)));
  return [...written, 'config.json'];
}
