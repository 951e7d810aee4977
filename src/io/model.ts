// Models from and to files: an HF directory (config.json + safetensors, tokenizer.json or
// tokenizer.model beside), a llama2.c checkpoint (.bin) or a GGUF (llama or mamba architecture). The io layer reads the
// bytes and names; the models layer builds the graph (createModel) and takes the weights.
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { useQuantizedWeights } from '../nn/quantized.js';
import { LlamaForCausalLM } from '../models/index.js';
import { KV_DTYPES } from '../models/llama.js';
import type { KVDType } from '../models/llama.js';
import type { CausalLM } from '../models/index.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { loadTokenizer } from '../tokenizers/load.js';
import { Llama2cTokenizer } from '../tokenizers/llama2c.js';
import type { HFTokenizer } from '../tokenizers/hf.js';
import { tokenizerFromGguf } from './tokenizer_convert.js';
import { readHfConfig, readHfDir, writeHfDir } from './hf.js';
import { readLlama2c, writeLlama2c } from './llama2c.js';
import { readModelGguf, writeModelGguf, GGUF_MODEL_TYPES } from './gguf_model.js';
import type { GgufTokenizer } from './gguf_llama.js';
import { fromFloat32, f32StateDict, float32Values, KEPT_RAW, isKeptRaw } from './dtypes.js';
import { quantizeQ8_0Blocks, quantizeGgmlBlocks, tensor } from '../tensor/ops.js';
import type { GgmlQuantName } from '../backend/ref/ggml_blocks.js';
import type { QuantDType } from '../tensor/tensor.js';
import { QUANT_BLOCKS } from '../tensor/tensor.js';
import type { GgufMatrixDType } from './gguf_arch.js';
import { storedDType } from './gguf_arch.js';
import type { RawTensor } from './dtypes.js';
import { isQuantRaw } from './raw.js';
import type { GgmlBlockDType } from './raw.js';
import { IoError } from './errors.js';
import { isSequenceClassificationConfig } from './families.js';
import { checkFiniteTensors, allowNonFiniteByDefault } from './finite.js';
import { buildModelForWeights } from './build_model.js';
import { modelTensors } from './model_tensors.js';
import type { FiniteOptions } from './finite.js';

export { modelTensors };

/** The weights file of an HF directory, for messages. */
function weightsFileOf(dir: string): string {
  const single = path.join(dir, 'model.safetensors');
  return existsSync(single) ? single : path.join(dir, 'model.safetensors.index.json');
}

export type ModelFormat = 'hf' | 'llama2c' | 'gguf';

/** A tokenizer's file (read again with loadTokenizer), or its bytes in a tokenizer file's format and a name for them. */
export type TokenizerSource = { path: string } | { bytes: Uint8Array; path: string };

export interface LoadedModel {
  model: CausalLM;
  tokenizer: Tokenizer | null;
  /** Where the tokenizer came from, so that another thread can build the same one (null without a tokenizer). */
  tokenizerSource: TokenizerSource | null;
  format: ModelFormat;
  /** The HF config.json object the model was built from. */
  config: Record<string, unknown>;
  /** A GGUF's vocabulary and tokenizer keys as the file stores them (null for other formats, or a GGUF without them). */
  ggufTokenizer: GgufTokenizer | null;
}

export function detectModelFormat(p: string): ModelFormat {
  if (!existsSync(p)) throw new IoError(p, `no such file or directory`);
  if (statSync(p).isDirectory()) {
    if (!existsSync(path.join(p, 'config.json'))) {
      const run = existsSync(path.join(p, 'checkpoint', 'config.json')) ? `; this is a training run's folder: its model is ${path.join(p, 'checkpoint')}` : '';
      throw new IoError(p, `directory has no config.json (expected a Hugging Face model directory${run})`);
    }
    return 'hf';
  }
  if (p.endsWith('.gguf')) return 'gguf';
  return 'llama2c';
}

/**
 * Turn raw (any dtype) HF-named tensors into model weights: f32, or quantised blocks kept as they
 * are for the names in keep. Tensors in memory were checked for non-finite values already; a
 * deferred one (a GGUF's) is read from the file straight into its parameter and checked there.
 */
function loadWeights(model: CausalLM, tensors: RawTensor[], source: string, keep: ReadonlySet<string>, finite: FiniteOptions): void {
  // A tied model has no lm_head; an untied checkpoint of a tied config is an error (strict).
  model.loadStateDict(f32StateDict(tensors, source, { ...finite, checked: true, keepQuantized: keep }), { source });
}

/** The weights of a dense LLaMA's linear layers and embedding (the ones that stay quantised). */
const QUANTIZABLE = /^(model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight|lm_head\.weight|model\.embed_tokens\.weight)$/;

/** Whether an F16 tensor holds an inf or NaN (exponent 31): such a matrix is widened to f32 on load (the 16-bit decoding kernel assumes finite halves). */
function f16HasNonFinite(t: RawTensor): boolean {
  const d = t.data;
  for (let i = 1; i < d.length; i += 2) if ((d[i] & 0x7c) === 0x7c) return true;
  return false;
}

/**
 * Quantised (Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K, Q6_K) and 16-bit (F16, BF16) matrices of a dense
 * LLaMA (GGUF or HF safetensors) that stay as stored in memory, with the dtype each keeps: the
 * attention and MLP projections, the output head and the token embedding. Other tensors (norms;
 * every tensor of other architectures; an F16 matrix with inf/NaN, let through by allowNonFinite)
 * are widened to f32 as before.
 */
export function quantizedWeightNames(modelType: string, tensors: readonly RawTensor[], opts: FiniteOptions = {}): Map<string, QuantDType> {
  const out = new Map<string, QuantDType>();
  if (modelType !== 'llama') return out;
  // Only when non-finite weights are let through can an F16 matrix hold one (else loading refuses
  // it): only then are the F16 bytes read here (a deferred tensor's would be read twice).
  const allowed = opts.allowNonFinite ?? allowNonFiniteByDefault();
  for (const t of tensors) {
    if (!(isKeptRaw(t.dtype) && t.shape.length === 2 && QUANTIZABLE.test(t.name))) continue;
    if (allowed && t.dtype === 'F16' && f16HasNonFinite(t)) continue;
    out.set(t.name, KEPT_RAW[t.dtype]);
  }
  return out;
}

export interface LoadModelOptions extends FiniteOptions {
  tokenizer?: string;
  /**
   * Weights in memory: 'native' (default) keeps a dense LLaMA's quantised (GGUF Q8_0, Q4_0, Q4_1,
   * Q5_0, Q4_K, Q5_K, Q6_K) and 16-bit (GGUF or safetensors F16, BF16) matrices of linear layers
   * and embedding as stored (fused dequantise-and-dot kernels, inference only); 'f32' widens every
   * weight to f32 (to train, or to compare); 'q8_0', 'q4_0', 'q4_k' and 'q6_k' quantise the
   * linear layers' and embedding's f32/f16/bf16 weights of a dense LLaMA as they load (ggml's
   * reference quantisers, as `exportGguf` writes them), so an HF or llama2.c model decodes as its
   * GGUF of that type would; 'f16' and 'bf16' round them to 16 bits (nearest, ties to even, as
   * numpy / torch). Rows that are not whole blocks: q4_k and q6_k fall back to q8_0 for rows of
   * whole 32-value blocks; other rows stay as stored (f32, or f16/bf16 kept 16-bit).
   */
  dtype?: LoadDType;
  /**
   * The element type of the model's KV caches (a LLaMA-family model's `kvDtype`): 'f32', 'bf16'
   * (half the cache's memory and of the bytes attention reads per step; each key and value
   * rounded to nearest even), or 'auto' (the default): bf16 when the weights stay quantised
   * (Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K, Q6_K: a 16-bit cache, as llama.cpp's default F16 one),
   * f32 for f32, F16 and BF16 weights.
   */
  kvDtype?: KVDType | 'auto';
}
/** The dtypes loadModel quantises to as it loads. */
export const QUANTIZE_ON_LOAD = ['q8_0', 'q4_0', 'q4_k', 'q6_k', 'f16', 'bf16'] as const;
type QuantizeOnLoad = typeof QUANTIZE_ON_LOAD[number];
/** loadModel's dtype choices. */
export type LoadDType = 'native' | 'f32' | QuantizeOnLoad;
const LOAD_DTYPES: readonly LoadDType[] = ['native', 'f32', ...QUANTIZE_ON_LOAD];
const isQuantizeOnLoad = (d: LoadDType | undefined): d is QuantizeOnLoad => (QUANTIZE_ON_LOAD as readonly string[]).includes(d ?? '');

/** Quantised blocks in place of the f32/f16/bf16 weights of a dense LLaMA's linear layers and embedding. */
function quantizeOnLoad(tensors: RawTensor[], file: string, target: QuantizeOnLoad): RawTensor[] {
  return tensors.map((t) => {
    if (!(QUANTIZABLE.test(t.name) && t.shape.length === 2 && (t.dtype === 'F32' || t.dtype === 'F16' || t.dtype === 'BF16'))) return t;
    if (target === 'f16' || target === 'bf16') {
      const to = target === 'f16' ? 'F16' : 'BF16';
      return t.dtype === to ? t : fromFloat32(t.name, [...t.shape], float32Values(t, file), to);
    }
    const stored = storedDType(t.shape, target.toUpperCase() as GgufMatrixDType, false);
    if (!isQuantRaw(stored)) return t; // rows that are not whole 32-value blocks stay f32
    return quantizeInHeap(t.name, t.shape, float32Values(t, file), stored);
  });
}

/**
 * The blocks of an f32 matrix (N, K; leading dimensions count as rows) quantised to Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K or Q6_K
 * (rows of whole blocks) by the quantize_q8_0 / quantize_blocks kernels: the same bytes as io's
 * JavaScript quantisers, which in a fresh process run unoptimised (Q8_0 ~0.5 s, Q4_K ~1.2 s for a
 * 15M model's weights). A slice of rows at a time, so the heap holds at most `sliceValues` f32
 * values (16 MiB) beside the model.
 */
export function quantizeInHeap(name: string, shape: readonly number[], values: Float32Array, dtype: 'Q8_0' | GgmlBlockDType, sliceValues = 1 << 22): RawTensor {
  const K = shape[shape.length - 1], N = values.length / K;
  const q = dtype === 'Q8_0' ? null : dtype.toLowerCase() as GgmlQuantName;
  const { block, bytes } = QUANT_BLOCKS[q ?? 'q8_0'];
  const rowBytes = (K / block) * bytes, rows = Math.max(1, Math.floor(sliceValues / K));
  const data = new Uint8Array(N * rowBytes);
  for (let r = 0; r < N; r += rows) {
    const n = Math.min(rows, N - r), x = tensor(values.subarray(r * K, (r + n) * K), [n, K]);
    try { data.set(q ? quantizeGgmlBlocks(x, q) : quantizeQ8_0Blocks(x), r * rowBytes); } finally { x.dispose(); }
  }
  return { name, dtype, shape: [...shape], data };
}

/** tslm's tokenizer for a GGUF's vocabulary (llama: run.c's encoder; gpt2: byte-level BPE), null when it has none. */
function ggufTokenizer(t: GgufTokenizer | null, file: string): { tok: Tokenizer; source: TokenizerSource } | null {
  if (!t) return null;
  if (t.model === 'llama' && !t.scores) return null;
  if (t.model !== 'llama' && t.model !== 'gpt2') return null;
  const tok = tokenizerFromGguf(t, file);
  // The embedded vocabulary travels as the tokenizer.bin or tokenizer.json it is equivalent to.
  // Serialised only when a tokenizer thread asks for it (most runs never do).
  let bytes: Uint8Array | null = null;
  const source = {
    path: `${file} (vocabulary).${tok instanceof Llama2cTokenizer ? 'bin' : 'json'}`,
    get bytes(): Uint8Array {
      bytes ??= tok instanceof Llama2cTokenizer ? tok.serialize() : new TextEncoder().encode(JSON.stringify((tok as HFTokenizer).toJSON()));
      return bytes;
    },
  };
  return { tok, source };
}

/**
 * Load a model (and its tokenizer when one is found or given). For an HF directory the
 * tokenizer is tokenizer.json or tokenizer.model inside it; for llama2.c a tokenizer.bin beside
 * the checkpoint; for GGUF its embedded SentencePiece vocabulary.
 */
export async function loadModel(p: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  if (opts.dtype !== undefined && !LOAD_DTYPES.includes(opts.dtype)) throw new IoError(p, `dtype ${JSON.stringify(opts.dtype)} is not one of ${LOAD_DTYPES.join(', ')}`);
  if (opts.kvDtype !== undefined && opts.kvDtype !== 'auto' && !KV_DTYPES.includes(opts.kvDtype)) throw new IoError(p, `kvDtype ${JSON.stringify(opts.kvDtype)} is not one of ${KV_DTYPES.join(', ')}`);
  const format = detectModelFormat(p);
  let config: Record<string, unknown>, tensors: RawTensor[], tok: Tokenizer | null = null, source: TokenizerSource | null = null;
  let keep = new Map<string, QuantDType>();
  let ggufTok: GgufTokenizer | null = null;
  if (format === 'hf') {
    const cfg = await readHfConfig(p);
    if (isSequenceClassificationConfig(cfg)) {
      throw new IoError(p, `is a sequence-classification (reward) model (${(cfg.architectures as string[])[0]}), not a causal language model: load it with loadRewardModel (tslm reward score)`);
    }
    const ck = await readHfDir(p);
    config = ck.config;
    tensors = ck.tensors;
    for (const name of ['tokenizer.json', 'tokenizer.model']) {
      const f = path.join(p, name);
      if (!opts.tokenizer && existsSync(f)) { tok = loadTokenizer(f); source = { path: f }; break; }
    }
  } else if (format === 'llama2c') {
    const ck = await readLlama2c(p);
    config = ck.config;
    tensors = ck.tensors;
    const beside = path.join(path.dirname(p), 'tokenizer.bin');
    if (!opts.tokenizer && existsSync(beside)) { tok = loadTokenizer(beside); source = { path: beside }; }
  } else {
    // Deferred: each tensor's bytes go from the file straight into the model's heap (no second copy).
    const ck = await readModelGguf(p, { deferred: true });
    config = ck.config;
    tensors = ck.tensors;
    ggufTok = ck.tokenizer;
    if (!opts.tokenizer) {
      const t = ggufTokenizer(ck.tokenizer, p);
      if (t) ({ tok, source } = t);
    }
  }
  if (opts.tokenizer) { tok = loadTokenizer(opts.tokenizer); source = { path: opts.tokenizer }; }
  // Quantised and 16-bit matrices stay as stored unless widened to f32 (--dtype f32).
  if (opts.dtype !== 'f32') keep = quantizedWeightNames(String(config.model_type ?? 'llama'), tensors, opts);
  // NaN or ±Inf in a weight: refused (naming the tensor) before the model is built, unless allowed.
  // (A deferred tensor is checked as it is read into the heap; quantising on load reads them all first.)
  checkFiniteTensors(isQuantizeOnLoad(opts.dtype) ? tensors : tensors.filter((t) => !t.source), format === 'hf' ? weightsFileOf(p) : p, opts);
  if (isQuantizeOnLoad(opts.dtype)) {
    const type = String(config.model_type ?? 'llama');
    if (type !== 'llama') throw new IoError(p, `dtype ${opts.dtype} (quantising on load) is available for dense LLaMA models (model_type llama); this one is ${type}: load it without --dtype`);
    tensors = quantizeOnLoad(tensors, format === 'hf' ? weightsFileOf(p) : p, opts.dtype);
    keep = quantizedWeightNames(type, tensors, opts);
  }
  // Every parameter comes from the file (loadStateDict is strict): no random initialisation.
  // Built within the heap the weights justify: a config describing a far larger model is refused first.
  const model = buildModelForWeights(config, format === 'hf' ? path.join(p, 'config.json') : p, format === 'hf' ? weightsFileOf(p) : p, tensors);
  try {
    // Quantised weights replace their (never filled) f32 parameters before the file's blocks are copied in.
    const kept = keep.size ? useQuantizedWeights(model, keep) : new Set<string>();
    loadWeights(model, tensors, p, kept, { allowNonFinite: opts.allowNonFinite });
    if (opts.kvDtype === undefined || opts.kvDtype === 'auto') {
      if (model instanceof LlamaForCausalLM && [...kept].some((n) => !['f16', 'bf16'].includes(keep.get(n)!))) model.kvDtype = 'bf16';
    } else if (opts.kvDtype !== 'f32') {
      if (!(model instanceof LlamaForCausalLM)) throw new IoError(p, `kvDtype ${opts.kvDtype}: a ${model.constructor.name} has no KV cache (its decoding state stays f32)`);
      model.kvDtype = opts.kvDtype;
    }
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, tokenizer: tok, tokenizerSource: source, format, config, ggufTokenizer: ggufTok };
}


/**
 * Save as an HF directory (config.json, model.safetensors, and the tokenizer if it can be saved).
 * `lazy` (here and in exportGguf, exportLlama2c): each tensor's bytes are made from the model as
 * they are written, not all first (no f32 copy of the whole model in host memory); the model must
 * not change until the returned promise settles.
 */
export async function saveModel(model: CausalLM, dir: string, opts: { tokenizer?: Tokenizer | null; dtype?: 'F32' | 'F16' | 'BF16'; lazy?: boolean } = {}): Promise<void> {
  await writeHfDir(dir, { config: model.configJson(), tensors: modelTensors(model, opts.dtype, { lazy: opts.lazy }) });
  const tk = opts.tokenizer as (Tokenizer & { save?: (p: string) => void }) | null | undefined;
  if (tk && typeof tk.save === 'function' && tk.kind === 'hf') tk.save(path.join(dir, 'tokenizer.json'));
}

/**
 * Export a GGUF that llama.cpp loads (llama, Mixtral-layout and Qwen2-MoE, or mamba; F32, F16, BF16,
 * Q8_0, Q4_0, Q4_K or Q6_K matrices, quantised by ggml's reference quantisers; see storedDType for
 * rows that are not whole blocks).
 */
export async function exportGguf(model: CausalLM, file: string, tokenizer: GgufTokenizer, dtype: GgufMatrixDType = 'F32', opts: { lazy?: boolean } = {}): Promise<void> {
  const config = model.configJson();
  const type = String(config.model_type);
  // mistral and qwen2 configs are the plain llama graph, which llama.cpp reads as llama.
  const as = ['llama', 'mistral', 'qwen2'].includes(type) ? 'llama' : type;
  if (!(GGUF_MODEL_TYPES as readonly string[]).includes(as)) {
    throw new IoError(file, `GGUF export of model_type "${type}" is not supported (GGUF writes ${GGUF_MODEL_TYPES.join(', ')})`);
  }
  await writeModelGguf(file, { config: { ...config, model_type: as }, tensors: modelTensors(model, 'F32', opts), tokenizer, dtype, quantize: quantizeInHeap });
}

/**
 * Export a llama2.c checkpoint: the legacy headerless format by default (version 0, export.py's
 * default and the one run.c reads), or version 1 ("ak42").
 */
export async function exportLlama2c(model: CausalLM, file: string, opts: { version?: 0 | 1; lazy?: boolean } = {}): Promise<void> {
  const config = model.configJson();
  if (!(model instanceof LlamaForCausalLM)) throw new IoError(file, `llama2.c checkpoints hold LLaMA models, not model_type "${String(config.model_type)}"`);
  await writeLlama2c(file, { config, tensors: modelTensors(model, 'F32', { lazy: opts.lazy }) }, { version: opts.version ?? 0 });
}
