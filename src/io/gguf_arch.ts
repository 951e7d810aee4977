// What the per-architecture GGUF mappings (gguf_llama.ts, gguf_mamba.ts, gguf_moe.ts) share: the
// tokenizer as GGUF stores it (tokenizer.ggml.*), typed reads of metadata keys, general.file_type,
// the stored type of each tensor (F32 where llama.cpp needs it, the chosen type for matrices), and
// the transformer keys of LLaMA-like architectures ({arch}.block_count, …).
import { ConfigFieldError, MissingTensorError } from './errors.js';
import type { BlockQuantizer, RawDType, RawTensor } from './dtypes.js';
import { GgufFile, gv } from './gguf.js';
import type { GgufValue } from './gguf.js';
import type { LlamaDims } from './llama.js';
import type { HfConfig } from './hf.js';

/** llama.cpp token types (llama_token_type / gguf GgufTokenType). */
export const GgufTokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** The tokenizer as GGUF stores it (tokenizer.ggml.*). */
export interface GgufTokenizer {
  /** 'llama' (SentencePiece, needs <0xXX> byte tokens), 'gpt2' (byte-level BPE, needs merges), … */
  model: string;
  pre?: string;
  tokens: string[];
  scores?: ArrayLike<number>;
  tokenTypes?: ArrayLike<number>;
  merges?: string[];
  bosId?: number;
  eosId?: number;
  unkId?: number;
  padId?: number;
  addBos?: boolean;
  addEos?: boolean;
  chatTemplate?: string;
}

/** Types the architecture writers offer for their matrices. */
export type GgufMatrixDType = 'F32' | 'F16' | 'BF16' | 'Q8_0' | 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q4_K' | 'Q5_K' | 'Q6_K';

/** llama_ftype values for general.file_type (Q4_K, Q5_K: MOSTLY_Q4_K_S, MOSTLY_Q5_K_S, every matrix of that type). */
export const GGUF_FILE_TYPE: Record<GgufMatrixDType, number> = { F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q8_0: 7, Q5_0: 8, Q4_K: 14, Q5_K: 16, Q6_K: 18, BF16: 32 };

/**
 * The type a tensor is stored with: F32 when `keepF32` (1-D tensors, norms, and what llama.cpp's
 * kernels only take in F32), else `dtype`; Q8_0, Q4_0, Q4_1 and Q5_0 rows that are not whole
 * 32-blocks fall back to F16, as convert_hf_to_gguf.py does; Q4_K, Q5_K and Q6_K rows that are not
 * whole 256-blocks to Q8_0 (F16 when not whole 32-blocks either). (llama-quantize's fallbacks are
 * Q5_0 for Q4_K, Q5_1 for Q5_K and Q8_0 for Q6_K.)
 */
export function storedDType(shape: readonly number[], dtype: GgufMatrixDType, keepF32: boolean): RawDType {
  if (keepF32 || shape.length <= 1) return 'F32';
  const cols = shape[shape.length - 1];
  if ((dtype === 'Q4_K' || dtype === 'Q5_K' || dtype === 'Q6_K') && cols % 256 !== 0) return cols % 32 === 0 ? 'Q8_0' : 'F16';
  if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16' && cols % 32 !== 0) return 'F16';
  return dtype;
}

/** Check a tokenizer against the model's vocabulary: token count, per-token arrays, special ids. */
export function checkGgufTokenizer(file: string, tok: GgufTokenizer, vocab: number): void {
  if (tok.tokens.length !== vocab) throw new ConfigFieldError(file, 'tokenizer.ggml.tokens', `has ${tok.tokens.length} tokens but vocab_size is ${vocab}`);
  for (const [k, v] of [['scores', tok.scores], ['tokenTypes', tok.tokenTypes]] as const) {
    if (v && v.length !== vocab) throw new ConfigFieldError(file, `tokenizer.${k}`, `has ${v.length} entries but vocab_size is ${vocab}`);
  }
  for (const [k, v] of [['bosId', tok.bosId], ['eosId', tok.eosId], ['unkId', tok.unkId], ['padId', tok.padId]] as const) {
    if (v !== undefined && !(Number.isInteger(v) && v >= 0 && v < vocab)) throw new ConfigFieldError(file, `tokenizer.${k}`, `${v} is not a token id in [0, ${vocab})`);
  }
}

/** Append the tokenizer.ggml.* keys (and tokenizer.chat_template) of `tok` to `md`. */
export function setGgufTokenizerMetadata(md: Map<string, GgufValue>, tok: GgufTokenizer): void {
  md.set('tokenizer.ggml.model', gv.str(tok.model));
  if (tok.pre !== undefined) md.set('tokenizer.ggml.pre', gv.str(tok.pre));
  md.set('tokenizer.ggml.tokens', gv.strings(tok.tokens));
  if (tok.scores) md.set('tokenizer.ggml.scores', gv.f32s(tok.scores));
  if (tok.tokenTypes) md.set('tokenizer.ggml.token_type', gv.i32s(tok.tokenTypes));
  if (tok.merges) md.set('tokenizer.ggml.merges', gv.strings(tok.merges));
  if (tok.bosId !== undefined) md.set('tokenizer.ggml.bos_token_id', gv.u32(tok.bosId));
  if (tok.eosId !== undefined) md.set('tokenizer.ggml.eos_token_id', gv.u32(tok.eosId));
  if (tok.unkId !== undefined) md.set('tokenizer.ggml.unknown_token_id', gv.u32(tok.unkId));
  if (tok.padId !== undefined) md.set('tokenizer.ggml.padding_token_id', gv.u32(tok.padId));
  if (tok.addBos !== undefined) md.set('tokenizer.ggml.add_bos_token', gv.bool(tok.addBos));
  if (tok.addEos !== undefined) md.set('tokenizer.ggml.add_eos_token', gv.bool(tok.addEos));
  if (tok.chatTemplate !== undefined) md.set('tokenizer.chat_template', gv.str(tok.chatTemplate));
}

/** What every architecture's GGUF writer takes. */
export interface GgufModelInput {
  /** The HF config.json object. */
  config: HfConfig;
  /** HF names; lm_head.weight may be absent when tie_word_embeddings. Any float dtype. */
  tensors: readonly RawTensor[];
  tokenizer: GgufTokenizer;
  /** Type of the matrices; default F32. */
  dtype?: GgufMatrixDType;
  name?: string;
  /** Extra metadata appended after the standard keys. */
  extraMetadata?: Record<string, GgufValue>;
  /** How matrices are quantised to block types (default: io's quantisers; exportGguf: the backend's kernels, the same bytes). */
  quantize?: BlockQuantizer;
}

/** The matrices' type a writer was asked for (default F32), checked. */
export function ggufMatrixDType(input: GgufModelInput, file: string): GgufMatrixDType {
  const dtype = input.dtype ?? 'F32';
  if (!(dtype in GGUF_FILE_TYPE)) throw new ConfigFieldError(file, 'dtype', `must be F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K or Q6_K, got ${JSON.stringify(dtype)}`);
  return dtype;
}

/** A writer's metadata, opened: general.architecture, general.type, general.name. */
export function ggufMetadataHead(arch: string, input: GgufModelInput): Map<string, GgufValue> {
  const md = new Map<string, GgufValue>();
  md.set('general.architecture', gv.str(arch));
  md.set('general.type', gv.str('model'));
  md.set('general.name', gv.str(input.name ?? String(input.config._name_or_path ?? 'tslm')));
  return md;
}

/**
 * A writer's metadata, closed after its architecture's keys: general.file_type,
 * `arch`.vocab_size, `more` (e.g. llama.rope.dimension_count), the tokenizer keys,
 * general.quantization_version and the caller's extra keys.
 */
export function ggufMetadataTail(md: Map<string, GgufValue>, arch: string, input: GgufModelInput, dtype: GgufMatrixDType, vocab: number, more: [string, GgufValue][] = []): void {
  md.set('general.file_type', gv.u32(GGUF_FILE_TYPE[dtype]));
  md.set(`${arch}.vocab_size`, gv.u32(vocab));
  for (const [k, v] of more) md.set(k, v);
  setGgufTokenizerMetadata(md, input.tokenizer);
  md.set('general.quantization_version', gv.u32(2));
  for (const [k, v] of Object.entries(input.extraMetadata ?? {})) md.set(k, v);
}

/** `o` without its undefined fields. */
export function definedFields<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** The tokenizer a GGUF file carries, or null when it has no tokenizer.ggml.model + tokens. */
export function readGgufTokenizer(f: GgufFile): GgufTokenizer | null {
  const model = f.get('tokenizer.ggml.model');
  const tokens = f.get('tokenizer.ggml.tokens') as string[] | undefined;
  if (typeof model !== 'string' || !tokens) return null;
  const num = (k: string) => { const v = f.get(k); return v === undefined ? undefined : Number(v); };
  const bool = (k: string) => { const v = f.get(k); return typeof v === 'boolean' ? v : undefined; };
  return definedFields({
    model,
    pre: f.get('tokenizer.ggml.pre') as string | undefined,
    tokens,
    scores: f.metadata.get('tokenizer.ggml.scores')?.value as Float32Array | undefined,
    tokenTypes: f.metadata.get('tokenizer.ggml.token_type')?.value as Int32Array | undefined,
    merges: f.get('tokenizer.ggml.merges') as string[] | undefined,
    bosId: num('tokenizer.ggml.bos_token_id'),
    eosId: num('tokenizer.ggml.eos_token_id'),
    unkId: num('tokenizer.ggml.unknown_token_id'),
    padId: num('tokenizer.ggml.padding_token_id'),
    addBos: bool('tokenizer.ggml.add_bos_token'),
    addEos: bool('tokenizer.ggml.add_eos_token'),
    chatTemplate: f.get('tokenizer.chat_template') as string | undefined,
  });
}

const INT_TYPES = ['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'u64', 'i64'];

/** Limits of the integer metadata keys (after `{arch}.`); others are limited to GGUF_INT_LIMIT. */
const GGUF_INT_LIMITS: Record<string, number> = {
  block_count: 4096, expert_count: 4096, expert_used_count: 4096, embedding_length: 1 << 20, feed_forward_length: 1 << 20,
  expert_feed_forward_length: 1 << 20, expert_shared_feed_forward_length: 1 << 20, 'attention.head_count': 1 << 16,
  'attention.head_count_kv': 1 << 16, 'attention.key_length': 1 << 16, 'attention.value_length': 1 << 16,
};
const GGUF_INT_LIMIT = 1 << 24;

/** A positive integer metadata value (`dflt` when absent; missing without a default is an error). */
export function mdInt(f: GgufFile, key: string, dflt?: number): number {
  const v = f.metadata.get(key);
  if (!v) {
    if (dflt !== undefined) return dflt;
    throw new ConfigFieldError(f.file, key, 'is missing');
  }
  if (!INT_TYPES.includes(v.type)) throw new ConfigFieldError(f.file, key, `must be an integer, got type ${v.type}`);
  const n = Number(v.value);
  if (!(n > 0)) throw new ConfigFieldError(f.file, key, `must be a positive integer, got ${String(v.value)}`);
  // Sane limits before anything loops or allocates on them (block_count 1e9 must not build a 1e9-layer config).
  const max = GGUF_INT_LIMITS[key.slice(key.indexOf('.') + 1)] ?? GGUF_INT_LIMIT;
  if (n > max) throw new ConfigFieldError(f.file, key, `${String(v.value)} is more than the limit of ${max}`);
  return n;
}

export function mdFloat(f: GgufFile, key: string, dflt: number): number {
  const v = f.metadata.get(key);
  if (!v) return dflt;
  if (v.type !== 'f32' && v.type !== 'f64') throw new ConfigFieldError(f.file, key, `must be a float, got type ${v.type}`);
  return v.value;
}

export function mdBool(f: GgufFile, key: string, dflt: boolean): boolean {
  const v = f.metadata.get(key);
  if (!v) return dflt;
  if (v.type !== 'bool') throw new ConfigFieldError(f.file, key, `must be a bool, got type ${v.type}`);
  return v.value;
}

/** f32 metadata holds an f32; give back the shortest decimal that rounds to it (1e-5, not 9.999999747378752e-6). */
export function shortF32(x: number): number {
  for (let p = 1; p <= 9; p++) {
    const y = Number(x.toPrecision(p));
    if (Math.fround(y) === x) return y;
  }
  return x;
}

/** Open a GGUF from a path (lazy reads; `deferred`: see GgufFile.open) or from bytes in memory (named `label` in errors). */
export async function openGguf(src: string | Uint8Array, label?: string, opts: { deferred?: boolean } = {}): Promise<GgufFile> {
  return typeof src === 'string' ? GgufFile.open(src, opts) : GgufFile.fromBuffer(src, label);
}

/**
 * The keys llama.cpp reads for a LLaMA-like transformer under `{arch}.`: block_count,
 * context_length, embedding_length, feed_forward_length, attention.head_count(_kv),
 * rope.freq_base, attention.layer_norm_rms_epsilon, and attention.key_length/value_length when
 * head_dim ≠ hidden_size / num_attention_heads.
 */
export function setGgufTransformerMetadata(md: Map<string, GgufValue>, arch: string, d: LlamaDims): void {
  md.set(`${arch}.block_count`, gv.u32(d.layers));
  md.set(`${arch}.context_length`, gv.u32(d.maxPositions));
  md.set(`${arch}.embedding_length`, gv.u32(d.hidden));
  md.set(`${arch}.feed_forward_length`, gv.u32(d.intermediate));
  md.set(`${arch}.attention.head_count`, gv.u32(d.heads));
  md.set(`${arch}.attention.head_count_kv`, gv.u32(d.kvHeads));
  md.set(`${arch}.rope.freq_base`, gv.f32(d.ropeTheta));
  md.set(`${arch}.attention.layer_norm_rms_epsilon`, gv.f32(d.rmsNormEps));
  if (d.headDim * d.heads !== d.hidden) {
    md.set(`${arch}.attention.key_length`, gv.u32(d.headDim));
    md.set(`${arch}.attention.value_length`, gv.u32(d.headDim));
  }
}

/**
 * The HF config fields (LlamaConfig names) that setGgufTransformerMetadata's keys hold, read back:
 * hidden_size … rope_theta, head_dim when it is not hidden_size / num_attention_heads,
 * vocab_size ({arch}.vocab_size, else the tokenizer's or token_embd's size), hidden_act "silu" and
 * tie_word_embeddings (no output.weight). A rope.dimension_count other than the head dim (partial
 * rotary) is refused.
 */
export function ggufTransformerConfig(f: GgufFile, arch: string): HfConfig {
  const hidden = mdInt(f, `${arch}.embedding_length`);
  const heads = mdInt(f, `${arch}.attention.head_count`);
  if (!f.metadata.has(`${arch}.attention.key_length`) && hidden % heads !== 0) {
    throw new ConfigFieldError(f.file, `${arch}.attention.head_count`, `${heads} does not divide ${arch}.embedding_length ${hidden} (and there is no ${arch}.attention.key_length)`);
  }
  const headDim = mdInt(f, `${arch}.attention.key_length`, hidden / heads);
  const ropeDims = mdInt(f, `${arch}.rope.dimension_count`, headDim);
  if (ropeDims !== headDim) throw new ConfigFieldError(f.file, `${arch}.rope.dimension_count`, `${ropeDims} ≠ head dim ${headDim}: partial rotary is not a LLaMA HF config`);
  const tokens = f.get('tokenizer.ggml.tokens') as string[] | undefined;
  const embd = f.tensors.find((t) => t.name === 'token_embd.weight');
  if (!embd) throw new MissingTensorError(f.file, 'token_embd.weight');
  const config: HfConfig = {
    hidden_size: hidden,
    intermediate_size: mdInt(f, `${arch}.feed_forward_length`),
    num_hidden_layers: mdInt(f, `${arch}.block_count`),
    num_attention_heads: heads,
    num_key_value_heads: mdInt(f, `${arch}.attention.head_count_kv`, heads),
    vocab_size: mdInt(f, `${arch}.vocab_size`, tokens?.length ?? embd.shape[0]),
    max_position_embeddings: mdInt(f, `${arch}.context_length`),
    rms_norm_eps: shortF32(mdFloat(f, `${arch}.attention.layer_norm_rms_epsilon`, 1e-5)),
    rope_theta: shortF32(mdFloat(f, `${arch}.rope.freq_base`, 10000)),
    hidden_act: 'silu',
    tie_word_embeddings: !f.tensors.some((t) => t.name === 'output.weight'),
  };
  if (headDim * heads !== hidden) config.head_dim = headDim;
  return config;
}

