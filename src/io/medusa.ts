// Medusa heads in the Medusa repo's files (FasterDecoding/Medusa, medusa/train/train_legacy.py):
// a directory with
//   config.json                  {"medusa_num_heads": K, "medusa_num_layers": L, "base_model_name_or_path": …}
//   medusa_lm_head.safetensors   the state dict of the heads' nn.ModuleList:
//       "{i}.{j}.linear.weight" (D, D), "{i}.{j}.linear.bias" (D)   for j < L   (head i's ResBlock)
//       "{i}.{L}.weight" (V, D)                                                 (head i's LM head)
// A head's L layers are one shared ResBlock in the repo (`[ResBlock(D)] * L`), so its state dict
// holds the same tensor under every j; we write it under every j and, reading, require the
// copies to be equal. We also write hidden_size and vocab_size into config.json (extra fields
// the repo's PretrainedConfig keeps and ignores) so a mismatch with a base shows without the
// weights. Read also: the Medusa-1.0 layout (heads inside the model's safetensors as
// "medusa_head.{i}.…", config.json the base's with the medusa_* fields), and F16/BF16 weights
// (the hub's checkpoints are float16). Not read: medusa_lm_head.pt (a PyTorch pickle; the error
// says how to convert it) and "version": "2" heads (no LM head per head: they reuse the base's).
// Tied heads (MedusaHeads.tie: the LM head is the base's output head) are written in the same
// layout, their LM weight a copy of the base head's, so that any reader loads them; given a base
// model, loading ties every head whose LM weight equals the base head bit for bit (the base head
// is read through project(), so only for bases up to TIED_CHECK_MAX_WORK; a base loaded quantised
// gives dequantised values, which do not match: such heads run untied, with the same output).
import { existsSync } from 'node:fs';
import { mkdir, writeFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { Tensor } from '../tensor/tensor.js';
import { MedusaHeads, checkMedusaConfig, baseHeadWeight } from '../nn/medusa.js';
import type { MedusaBase, MedusaHeadsConfig } from '../nn/medusa.js';
import { noGrad } from '../tensor/autograd.js';
import { withoutInit } from '../nn/module.js';
import { Linear } from '../nn/layers.js';
import { readHfConfig, openHfWeights } from './hf.js';
import { SafetensorsFile, writeSafetensors } from './safetensors.js';
import { ConfigFieldError, IoError, MissingTensorError, TensorError, UnexpectedTensorError } from './errors.js';
import { float32Values, fromFloat32, QK8_0 } from './dtypes.js';
import { quantizeQ8_0Blocks } from '../tensor/ops.js';
import { useQuantizedWeights } from '../nn/quantized.js';
import type { HostBlocks } from '../nn/module.js';
import { checkFiniteTensors } from './finite.js';
import { brief } from './json.js';
import { overLimit } from '../models/config.js';
import type { FiniteOptions } from './finite.js';
import type { RawTensor } from './dtypes.js';

export const MEDUSA_HEADS_FILE = 'medusa_lm_head.safetensors';

/** The Medusa repo's state-dict names of head i (L residual layers). */
export function medusaHeadTensorNames(i: number, L: number): { layers: { weight: string; bias: string }[]; lmHead: string } {
  return {
    layers: Array.from({ length: L }, (_, j) => ({ weight: `${i}.${j}.linear.weight`, bias: `${i}.${j}.linear.bias` })),
    lmHead: `${i}.${L}.weight`,
  };
}

/** The heads as raw tensors with the repo's names (a head's shared ResBlock under every layer index). */
export function medusaTensors(heads: MedusaHeads, dtype: 'F32' | 'F16' | 'BF16' = 'F32'): RawTensor[] {
  const L = heads.numLayers, out: RawTensor[] = [];
  const raw = (name: string, t: Tensor) => fromFloat32(name, [...t.shape], t.data() as Float32Array, dtype);
  // A tied head's LM weight is the base head (read now: joint training may have changed it).
  const base = heads.tiedBase && heads.heads.some((_, i) => heads.isTied(i)) ? baseHeadWeight(heads.tiedBase) : null;
  try {
    heads.heads.forEach((h, i) => {
      const names = medusaHeadTensorNames(i, L);
      for (const n of names.layers) out.push(raw(n.weight, h.block!.linear.weight), raw(n.bias, h.block!.linear.bias!));
      out.push(raw(names.lmHead, heads.isTied(i) ? base! : h.lm_head.weight));
    });
  } finally {
    base?.dispose();
  }
  return out;
}

export interface SaveMedusaOptions {
  /** config.json's base_model_name_or_path (the base model's directory or hub name). */
  baseModel?: string;
  dtype?: 'F32' | 'F16' | 'BF16';
  /** More config.json fields (kept as given). */
  extraConfig?: Record<string, unknown>;
}

/** Write config.json and medusa_lm_head.safetensors (each atomically; weights first). */
export async function saveMedusaHeads(heads: MedusaHeads, dir: string, opts: SaveMedusaOptions = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeSafetensors(path.join(dir, MEDUSA_HEADS_FILE), medusaTensors(heads, opts.dtype), { format: 'pt' });
  const c = heads.config;
  const config = {
    ...(opts.extraConfig ?? {}),
    medusa_num_heads: c.medusa_num_heads,
    medusa_num_layers: c.medusa_num_layers,
    base_model_name_or_path: opts.baseModel ?? null,
    hidden_size: c.hidden_size,
    vocab_size: c.vocab_size,
  };
  const file = path.join(dir, 'config.json'), tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(config, null, 2) + '\n');
  await rename(tmp, file);
}

/** Sizes a base model offers the heads (a CausalLM's config has them); with project(), heads can be tied to it. */
export interface MedusaBaseSizes { config: { hidden_size: number; vocab_size: number }; project?: MedusaBase['project'] }

export interface LoadedMedusaHeads {
  heads: MedusaHeads;
  /** config.json as read. */
  config: Record<string, unknown>;
  /** The weights file read. */
  file: string;
  /** The heads tied to the base's output head (their LM weight equals it bit for bit). */
  tied: number[];
}

function intField(config: Record<string, unknown>, field: string, file: string, min: number): number {
  const v = config[field];
  if (v === undefined) throw new ConfigFieldError(file, field, 'missing (a Medusa heads config.json has medusa_num_heads and medusa_num_layers)');
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new ConfigFieldError(file, field, `expected an integer ≥ ${min}, got ${brief(v)}`);
  // Before the per-head lists are built: medusa_num_heads 1e9 must not loop a billion times.
  const max = overLimit(field, v);
  if (max !== null) throw new ConfigFieldError(file, field, `${v} is more than the limit of ${max}`);
  return v;
}

/**
 * Read Medusa heads from a directory (dtype 'q8_0': quantised for inference by
 * quantizeMedusaHeads; default f32). With `base`, the heads must fit it: hidden size and
 * vocabulary are checked (errors name the tensor or config field at fault) before any weight is
 * copied. Everything else that can be wrong — a missing or extra tensor, a shape, layer copies
 * that differ — is an error naming the tensor.
 */
export async function loadMedusaHeads(dir: string, opts: { base?: MedusaBaseSizes; dtype?: 'f32' | 'q8_0'; tie?: boolean } & FiniteOptions = {}): Promise<LoadedMedusaHeads> {
  if (opts.dtype !== undefined && opts.dtype !== 'f32' && opts.dtype !== 'q8_0') throw new IoError(dir, `dtype ${JSON.stringify(opts.dtype)} is not one of f32, q8_0`);
  if (!existsSync(dir)) throw new IoError(dir, 'no such directory (expected Medusa heads: config.json + medusa_lm_head.safetensors)');
  const cfgFile = path.join(dir, 'config.json');
  const config = await readHfConfig(dir);
  const K = intField(config, 'medusa_num_heads', cfgFile, 1);
  const L = intField(config, 'medusa_num_layers', cfgFile, 0);
  if (config.version !== undefined && String(config.version) === '2') {
    throw new ConfigFieldError(cfgFile, 'version', '"2": these Medusa heads have no LM head of their own (they reuse the base model\'s), which is not supported; heads trained by tslm or the Medusa repo before version 2 have one per head');
  }

  // The weights: medusa_lm_head.safetensors, or the Medusa-1.0 layout inside the model's safetensors.
  const single = path.join(dir, MEDUSA_HEADS_FILE);
  let w: SafetensorsFile | Awaited<ReturnType<typeof openHfWeights>>, prefix = '';
  if (existsSync(single)) w = await SafetensorsFile.open(single);
  else if (existsSync(path.join(dir, 'model.safetensors')) || existsSync(path.join(dir, 'model.safetensors.index.json'))) {
    w = await openHfWeights(dir);
    prefix = 'medusa_head.';
    if (!w.names.some((n) => n.startsWith(prefix))) {
      await w.close();
      throw new IoError(dir, `no ${MEDUSA_HEADS_FILE}, and the model's safetensors hold no medusa_head.* tensors`);
    }
  } else if (existsSync(path.join(dir, 'medusa_lm_head.pt'))) {
    throw new IoError(path.join(dir, 'medusa_lm_head.pt'), `a PyTorch pickle, which tslm does not read; convert it once with Python: ` +
      `import torch; from safetensors.torch import save_file; sd = torch.load("medusa_lm_head.pt", map_location="cpu"); ` +
      `save_file({k: v.float().clone().contiguous() for k, v in sd.items()}, "${MEDUSA_HEADS_FILE}")`);
  } else throw new IoError(dir, `no ${MEDUSA_HEADS_FILE} (expected Medusa heads: config.json + ${MEDUSA_HEADS_FILE})`);
  const file = w instanceof SafetensorsFile ? w.file : w.indexPath;

  try {
    const names = new Set(w.names.filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length)));
    const shapeOf = (n: string) => w.entry(prefix + n).shape;
    const need = (n: string) => { if (!names.has(n)) throw new MissingTensorError(file, prefix + n, `missing (medusa_num_heads ${K}, medusa_num_layers ${L} in ${cfgFile})`); };
    // Sizes from head 0's LM head (V, D); then every tensor against them.
    const lm0 = medusaHeadTensorNames(0, L).lmHead;
    need(lm0);
    const s0 = shapeOf(lm0);
    if (s0.length !== 2) throw new TensorError(file, prefix + lm0, `shape [${s0.join(', ')}], expected [vocab_size, hidden_size]`);
    const [V, D] = s0;
    for (const field of ['hidden_size', 'vocab_size'] as const) {
      const have = field === 'hidden_size' ? D : V;
      if (config[field] !== undefined && config[field] !== have) throw new ConfigFieldError(cfgFile, field, `${JSON.stringify(config[field])}, but tensor '${prefix + lm0}' has shape [${V}, ${D}] (vocab_size, hidden_size)`);
    }
    if (opts.base) {
      const b = opts.base.config;
      if (D !== b.hidden_size) throw new TensorError(file, prefix + lm0, `shape [${V}, ${D}]: hidden_size ${D} does not match the base model's hidden_size ${b.hidden_size}`);
      if (V !== b.vocab_size) throw new TensorError(file, prefix + lm0, `shape [${V}, ${D}]: vocab_size ${V} does not match the base model's vocab_size ${b.vocab_size}`);
    }
    const expected = new Map<string, number[]>();
    for (let i = 0; i < K; i++) {
      const n = medusaHeadTensorNames(i, L);
      for (const l of n.layers) { expected.set(l.weight, [D, D]); expected.set(l.bias, [D]); }
      expected.set(n.lmHead, [V, D]);
    }
    for (const [n, shape] of expected) {
      need(n);
      const s = shapeOf(n);
      if (s.join() !== shape.join()) throw new TensorError(file, prefix + n, `shape [${s.join(', ')}], expected [${shape.join(', ')}] (hidden_size ${D}, vocab_size ${V})`);
    }
    for (const n of names) if (!expected.has(n)) throw new UnexpectedTensorError(file, prefix + n, `not a tensor of ${K} Medusa head(s) with ${L} layer(s) each (config.json: medusa_num_heads ${K}, medusa_num_layers ${L})`);

    const cfg: MedusaHeadsConfig = { medusa_num_heads: K, medusa_num_layers: L, hidden_size: D, vocab_size: V };
    checkMedusaConfig(cfg, cfgFile);
    const values = async (n: string) => {
      const raw = await w.read(prefix + n);
      checkFiniteTensors([raw], file, opts); // NaN or ±Inf: refused, naming the tensor and element
      return float32Values(raw, file);
    };
    const sd: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (let i = 0; i < K; i++) {
      const n = medusaHeadTensorNames(i, L);
      if (L > 0) {
        const w0 = await values(n.layers[0].weight), b0 = await values(n.layers[0].bias);
        // The repo's layers are one module: every layer index must hold the same values.
        for (let j = 1; j < L; j++) {
          for (const [name, v0] of [[n.layers[j].weight, w0], [n.layers[j].bias, b0]] as const) {
            const vj = await values(name);
            const k = vj.findIndex((x, idx) => x !== v0[idx]);
            if (k >= 0) throw new TensorError(file, prefix + name, `differs from '${prefix}${name.replace(`.${j}.`, '.0.')}' at element ${k} (${vj[k]} vs ${v0[k]}): a Medusa head applies ONE ResBlock medusa_num_layers times (the repo's [ResBlock] * L), so its layers must be equal`);
          }
        }
        sd[`heads.${i}.block.linear.weight`] = { shape: [D, D], data: w0 };
        sd[`heads.${i}.block.linear.bias`] = { shape: [D], data: b0 };
      }
      sd[`heads.${i}.lm_head.weight`] = { shape: [V, D], data: await values(n.lmHead) };
    }
    const heads = withoutInit(() => new MedusaHeads(cfg));
    let tied: number[] = [];
    // The base's output head, read once for the tie check and (q8_0) the tied heads' Q8_0 copy.
    let baseHead: Tensor | null = null;
    try {
      heads.loadStateDict(sd, { source: file });
      // Tied heads: those whose LM weight is the base's output head, bit for bit (opts.tie false: none).
      const base = opts.base;
      if (base?.project && opts.tie !== false) {
        baseHead = readBaseHead(base as MedusaBase);
        if (baseHead) tied = tiedHeads(Array.from({ length: K }, (_, i) => sd[`heads.${i}.lm_head.weight`].data), base as MedusaBase, baseHead);
        if (tied.length) heads.tie(base as MedusaBase, tied);
      }
      if (opts.dtype === 'q8_0') quantizeMedusaHeads(heads, baseHead ?? undefined);
    } catch (e) {
      heads.dispose();
      throw e;
    } finally {
      baseHead?.dispose();
    }
    return { heads, config, file, tied };
  } finally {
    await w.close();
  }
}

/**
 * Most multiply-adds (hidden² · vocabulary) spent reading a base's output head through project()
 * to find tied heads at load (about a second on a CPU); past it, heads load untied (still exact,
 * only without the shared product).
 */
export const TIED_CHECK_MAX_WORK = 2 ** 31;

/** The base's output head (V, D) read through project(), or null past TIED_CHECK_MAX_WORK. An unscoped tensor. */
export function readBaseHead(base: MedusaBase): Tensor | null {
  const { hidden_size: D, vocab_size: V } = base.config;
  return D * D * V > TIED_CHECK_MAX_WORK ? null : noGrad(() => baseHeadWeight(base));
}

/**
 * The indices of the LM weights (V·D values each) that equal the base's output head bit for bit
 * (`head`: that head already read by readBaseHead; otherwise read here, none past the limit).
 */
export function tiedHeads(lmWeights: readonly Float32Array[], base: MedusaBase, head?: Tensor): number[] {
  const w = head ?? readBaseHead(base);
  if (!w) return [];
  try {
    const b = new Uint32Array((w.data() as Float32Array).slice().buffer);
    const out: number[] = [];
    lmWeights.forEach((v, i) => {
      if (v.length !== b.length) return;
      const u = new Uint32Array(v.buffer, v.byteOffset, v.length);
      for (let j = 0; j < b.length; j++) if (u[j] !== b[j]) return;
      out.push(i);
    });
    return out;
  } finally {
    if (w !== head) w.dispose();
  }
}

/**
 * The heads' weight matrices (every ResBlock's W and LM head U_k) as Q8_0 blocks in place of f32
 * (ggml's quantize_row_q8_0, as `--dtype q8_0` quantises a model, rounded in the heap by the
 * quantize_q8_0 kernel; biases stay f32), for inference.
 * The heads only propose candidates that the base model verifies, so decoding's output is what
 * it was (exact acceptance); a step reads 3.8× fewer bytes of head weights (on a CPU the 4 heads
 * of a stories15M-shape model cost almost half a decoding step in f32). Returns the names
 * quantised (matrices whose rows are not whole 32-value blocks stay f32). Tied heads (MedusaHeads.tie)
 * get a Q8_0 copy of the base head for their one product (setTiedProjection; not among the names),
 * from `baseHead` when the caller has read it already (readBaseHead), else read here.
 */
export function quantizeMedusaHeads(heads: MedusaHeads, baseHead?: Tensor): Set<string> {
  const sd: Record<string, HostBlocks> = {};
  for (const [name, t] of heads.namedTensors()) {
    // A tied head's own LM weight is not read (the base head is): left as it is.
    const m = /^heads\.(\d+)\.lm_head\./.exec(name);
    if (m && heads.isTied(Number(m[1]))) continue;
    if (t.dtype !== 'f32' || t.ndim !== 2 || t.shape[1] % QK8_0 !== 0 || !t.isContiguous()) continue;
    sd[name] = { shape: [...t.shape], blocks: quantizeQ8_0Blocks(t) };
  }
  const done = useQuantizedWeights(heads, new Set(Object.keys(sd)));
  for (const name of Object.keys(sd)) if (!done.has(name)) delete sd[name];
  heads.loadStateDict(sd, { strict: false });
  // Tied heads: their one product with the base head reads a Q8_0 copy of it, as untied heads read
  // their own Q8_0 LM heads (proposals only: decoding's output does not depend on it).
  const base = heads.tiedBase;
  if (base && heads.heads.some((_, k) => heads.isTied(k)) && heads.config.hidden_size % QK8_0 === 0) {
    const { hidden_size: D, vocab_size: V } = heads.config;
    const w = baseHead ?? baseHeadWeight(base);
    const lm = withoutInit(() => new Linear(D, V, { bias: false }));
    try {
      useQuantizedWeights(lm, new Set(['weight']));
      lm.loadStateDict({ weight: { shape: [V, D], blocks: quantizeQ8_0Blocks(w) } });
    } catch (e) {
      lm.dispose();
      throw e;
    } finally {
      if (w !== baseHead) w.dispose();
    }
    heads.setTiedProjection(lm);
  }
  return done;
}
