// LLaMA in GGUF as llama.cpp expects it: metadata keys (llama.*, tokenizer.ggml.*), tensor
// names (token_embd, blk.N.attn_q, …), and q/k rows in the interleaved RoPE layout that
// convert_hf_to_gguf.py's LlamaModel.permute produces from HF weights. Norms stay F32 (as the
// converter keeps 1-D tensors); matrices are F32, F16, BF16 or Q8_0 (Q8_0 rows that are not
// whole 32-blocks fall back to F16, as the converter does).
import { ConfigFieldError, MissingTensorError, UnexpectedTensorError } from './errors.js';
import { convertDType } from './dtypes.js';
import type { RawDType, RawTensor } from './dtypes.js';
import { GgufFile, gv, writeGguf, serializeGguf } from './gguf.js';
import type { GgufValue } from './gguf.js';
import { checkLlamaTensors, convertQKLayout, llamaDims } from './llama.js';
import type { QKLayout } from './llama.js';
import type { HfConfig } from './hf.js';
import { hfOrder } from './llama2c.js';

const LAYER_MAP: [string, string][] = [
  ['input_layernorm.weight', 'attn_norm.weight'],
  ['self_attn.q_proj.weight', 'attn_q.weight'],
  ['self_attn.k_proj.weight', 'attn_k.weight'],
  ['self_attn.v_proj.weight', 'attn_v.weight'],
  ['self_attn.o_proj.weight', 'attn_output.weight'],
  ['post_attention_layernorm.weight', 'ffn_norm.weight'],
  ['mlp.gate_proj.weight', 'ffn_gate.weight'],
  ['mlp.down_proj.weight', 'ffn_down.weight'],
  ['mlp.up_proj.weight', 'ffn_up.weight'],
];
const GLOBAL_MAP: [string, string][] = [
  ['model.embed_tokens.weight', 'token_embd.weight'],
  ['model.norm.weight', 'output_norm.weight'],
  ['lm_head.weight', 'output.weight'],
];

/** HF tensor name → llama.cpp GGUF name (undefined if not a LLaMA tensor). */
export function hfToGgufName(name: string): string | undefined {
  for (const [h, g] of GLOBAL_MAP) if (name === h) return g;
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
  if (m) for (const [h, g] of LAYER_MAP) if (m[2] === h) return `blk.${m[1]}.${g}`;
  return undefined;
}
/** llama.cpp GGUF name → HF tensor name (undefined if not a LLaMA tensor). */
export function ggufToHfName(name: string): string | undefined {
  for (const [h, g] of GLOBAL_MAP) if (name === g) return h;
  const m = /^blk\.(\d+)\.(.+)$/.exec(name);
  if (m) for (const [h, g] of LAYER_MAP) if (m[2] === g) return `model.layers.${m[1]}.${h}`;
  return undefined;
}

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

/** llama_ftype values for general.file_type. */
const FILE_TYPE: Partial<Record<RawDType, number>> = { F32: 0, F16: 1, Q8_0: 7, BF16: 32 };

export interface WriteLlamaGgufInput {
  config: HfConfig;
  /** HF names; lm_head.weight may be absent when tie_word_embeddings. */
  tensors: readonly RawTensor[];
  tokenizer: GgufTokenizer;
  /** Type of the matrices; default F32. */
  dtype?: 'F32' | 'F16' | 'BF16' | 'Q8_0';
  /** Layout of the q/k weights passed in; default 'rotate-half' (HF). */
  qkLayout?: QKLayout;
  name?: string;
  /** Extra metadata appended after the standard keys. */
  extraMetadata?: Record<string, GgufValue>;
}

function buildLlamaGguf(input: WriteLlamaGgufInput, file: string): { metadata: Map<string, GgufValue>; tensors: RawTensor[] } {
  const cfg = input.config;
  const d = llamaDims(cfg, file);
  const dtype = input.dtype ?? 'F32';
  const byName = new Map(input.tensors.map((t) => [t.name, t]));
  const tied = d.tied || !byName.has('lm_head.weight');
  checkLlamaTensors(file, input.tensors, { ...d, tied });
  const tok = input.tokenizer;
  if (tok.tokens.length !== d.vocab) throw new ConfigFieldError(file, 'tokenizer.ggml.tokens', `has ${tok.tokens.length} tokens but vocab_size is ${d.vocab}`);
  for (const [k, v] of [['scores', tok.scores], ['tokenTypes', tok.tokenTypes]] as const) {
    if (v && v.length !== d.vocab) throw new ConfigFieldError(file, `tokenizer.${k}`, `has ${v.length} entries but vocab_size is ${d.vocab}`);
  }
  for (const [k, v] of [['bosId', tok.bosId], ['eosId', tok.eosId], ['unkId', tok.unkId], ['padId', tok.padId]] as const) {
    if (v !== undefined && !(Number.isInteger(v) && v >= 0 && v < d.vocab)) throw new ConfigFieldError(file, `tokenizer.${k}`, `${v} is not a token id in [0, ${d.vocab})`);
  }
  const md = new Map<string, GgufValue>();
  md.set('general.architecture', gv.str('llama'));
  md.set('general.type', gv.str('model'));
  md.set('general.name', gv.str(input.name ?? String(cfg._name_or_path ?? 'tslm')));
  md.set('llama.block_count', gv.u32(d.layers));
  md.set('llama.context_length', gv.u32(d.maxPositions));
  md.set('llama.embedding_length', gv.u32(d.hidden));
  md.set('llama.feed_forward_length', gv.u32(d.intermediate));
  md.set('llama.attention.head_count', gv.u32(d.heads));
  md.set('llama.attention.head_count_kv', gv.u32(d.kvHeads));
  md.set('llama.rope.freq_base', gv.f32(d.ropeTheta));
  md.set('llama.attention.layer_norm_rms_epsilon', gv.f32(d.rmsNormEps));
  if (d.headDim * d.heads !== d.hidden) {
    md.set('llama.attention.key_length', gv.u32(d.headDim));
    md.set('llama.attention.value_length', gv.u32(d.headDim));
  }
  md.set('general.file_type', gv.u32(FILE_TYPE[dtype]!));
  md.set('llama.vocab_size', gv.u32(d.vocab));
  md.set('llama.rope.dimension_count', gv.u32(d.headDim));
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
  md.set('general.quantization_version', gv.u32(2));
  for (const [k, v] of Object.entries(input.extraMetadata ?? {})) md.set(k, v);

  const ordered = [...input.tensors].filter((t) => !(tied && t.name === 'lm_head.weight')).sort((a, b) => hfOrder(a.name, b.name));
  const meta = convertQKLayout(ordered, d, input.qkLayout ?? 'rotate-half', 'interleaved');
  const tensors = meta.map((t) => {
    let want: RawDType = t.shape.length <= 1 ? 'F32' : dtype;
    if (want === 'Q8_0' && t.shape[t.shape.length - 1] % 32 !== 0) want = 'F16';
    const c = convertDType(t, want, file);
    return { ...c, name: hfToGgufName(t.name)! };
  });
  return { metadata: md, tensors };
}

/** Write a LLaMA model (HF config + HF-named tensors) as a GGUF file llama.cpp can load. */
export async function writeLlamaGguf(path: string, input: WriteLlamaGgufInput): Promise<void> {
  await writeGguf(path, buildLlamaGguf(input, path));
}
export function serializeLlamaGguf(input: WriteLlamaGgufInput): Uint8Array {
  return serializeGguf(buildLlamaGguf(input, '<memory>'));
}

export interface LlamaGgufCheckpoint {
  config: HfConfig;
  /** HF names, the file's dtypes (F32/F16/BF16/Q8_0). lm_head.weight absent when tied. */
  tensors: RawTensor[];
  qkLayout: QKLayout;
  tokenizer: GgufTokenizer | null;
  metadata: Map<string, GgufValue>;
}

function mdInt(f: GgufFile, key: string, dflt?: number): number {
  const v = f.metadata.get(key);
  if (!v) {
    if (dflt !== undefined) return dflt;
    throw new ConfigFieldError(f.file, key, 'is missing');
  }
  if (!['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'u64', 'i64'].includes(v.type)) throw new ConfigFieldError(f.file, key, `must be an integer, got type ${v.type}`);
  const n = Number(v.value);
  if (!(n > 0) || !Number.isSafeInteger(n)) throw new ConfigFieldError(f.file, key, `must be a positive integer, got ${n}`);
  return n;
}
function mdFloat(f: GgufFile, key: string, dflt: number): number {
  const v = f.metadata.get(key);
  if (!v) return dflt;
  if (v.type !== 'f32' && v.type !== 'f64') throw new ConfigFieldError(f.file, key, `must be a float, got type ${v.type}`);
  return v.value;
}

/** f32 metadata holds an f32; give back the shortest decimal that rounds to it (1e-5, not 9.999999747378752e-6). */
function shortF32(x: number): number {
  for (let p = 1; p <= 9; p++) {
    const y = Number(x.toPrecision(p));
    if (Math.fround(y) === x) return y;
  }
  return x;
}

export interface ReadLlamaGgufOptions {
  /** Layout of the returned q/k; default 'rotate-half' (HF). */
  qkLayout?: QKLayout;
  label?: string;
}

/** Read a llama-architecture GGUF back to an HF config + HF-named tensors + tokenizer. */
export async function readLlamaGguf(src: string | Uint8Array, opts: ReadLlamaGgufOptions = {}): Promise<LlamaGgufCheckpoint> {
  const f = typeof src === 'string' ? await GgufFile.open(src) : GgufFile.fromBuffer(src, opts.label);
  try {
    const arch = f.get('general.architecture');
    if (arch !== 'llama') throw new ConfigFieldError(f.file, 'general.architecture', `expected "llama", got ${JSON.stringify(arch ?? null)}`);
    const hidden = mdInt(f, 'llama.embedding_length');
    const heads = mdInt(f, 'llama.attention.head_count');
    if (!f.metadata.has('llama.attention.key_length') && hidden % heads !== 0) {
      throw new ConfigFieldError(f.file, 'llama.attention.head_count', `${heads} does not divide llama.embedding_length ${hidden} (and there is no llama.attention.key_length)`);
    }
    const headDim = mdInt(f, 'llama.attention.key_length', hidden / heads);
    const ropeDims = mdInt(f, 'llama.rope.dimension_count', headDim);
    if (ropeDims !== headDim) throw new ConfigFieldError(f.file, 'llama.rope.dimension_count', `${ropeDims} ≠ head dim ${headDim}: partial rotary is not a LLaMA HF config`);
    const tokens = f.get('tokenizer.ggml.tokens') as string[] | undefined;
    const embd = f.tensors.find((t) => t.name === 'token_embd.weight');
    if (!embd) throw new MissingTensorError(f.file, 'token_embd.weight');
    const vocab = mdInt(f, 'llama.vocab_size', tokens?.length ?? embd.shape[0]);
    const hasOutput = f.tensors.some((t) => t.name === 'output.weight');
    const config: HfConfig = {
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      hidden_size: hidden,
      intermediate_size: mdInt(f, 'llama.feed_forward_length'),
      num_hidden_layers: mdInt(f, 'llama.block_count'),
      num_attention_heads: heads,
      num_key_value_heads: mdInt(f, 'llama.attention.head_count_kv', heads),
      vocab_size: vocab,
      max_position_embeddings: mdInt(f, 'llama.context_length'),
      rms_norm_eps: shortF32(mdFloat(f, 'llama.attention.layer_norm_rms_epsilon', 1e-5)),
      rope_theta: shortF32(mdFloat(f, 'llama.rope.freq_base', 10000)),
      hidden_act: 'silu',
      tie_word_embeddings: !hasOutput,
    };
    if (headDim * heads !== hidden) config.head_dim = headDim;
    const d = llamaDims(config, f.file);
    const tensors: RawTensor[] = [];
    for (const info of f.tensors) {
      if (info.name === 'rope_freqs.weight') continue; // llama3 rope scaling factors: not part of the HF weights
      const hf = ggufToHfName(info.name);
      if (!hf) throw new UnexpectedTensorError(f.file, info.name, 'is not a llama tensor');
      tensors.push({ ...(await f.read(info.name)), name: hf });
    }
    checkLlamaTensors(f.file, tensors, d);
    tensors.sort((a, b) => hfOrder(a.name, b.name));
    const layout = opts.qkLayout ?? 'rotate-half';
    const out = convertQKLayout(tensors, d, 'interleaved', layout);
    let tokenizer: GgufTokenizer | null = null;
    const model = f.get('tokenizer.ggml.model');
    if (typeof model === 'string' && tokens) {
      const num = (k: string) => { const v = f.get(k); return v === undefined ? undefined : Number(v); };
      const bool = (k: string) => { const v = f.get(k); return typeof v === 'boolean' ? v : undefined; };
      const drop = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
      tokenizer = drop({
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
    return { config, tensors: out, qkLayout: layout, tokenizer, metadata: f.metadata };
  } finally {
    await f.close();
  }
}
