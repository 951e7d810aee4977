// LLaMA in GGUF as llama.cpp expects it: metadata keys (llama.*, tokenizer.ggml.*), tensor
// names (token_embd, blk.N.attn_q, …), and q/k rows in the interleaved RoPE layout that
// convert_hf_to_gguf.py's LlamaModel.permute produces from HF weights. Norms stay F32 (as the
// converter keeps 1-D tensors); matrices are F32, F16, BF16 or Q8_0 (Q8_0 rows that are not
// whole 32-blocks fall back to F16, as the converter does).
import { ConfigFieldError, UnexpectedTensorError } from './errors.js';
import { convertDType, renamedTensor } from './dtypes.js';
import type { RawTensor } from './dtypes.js';
import { gv, writeGguf, serializeGguf } from './gguf.js';
import type { GgufFile, GgufValue } from './gguf.js';
import {
  checkGgufTokenizer, ggufMatrixDType, ggufMetadataHead, ggufMetadataTail, ggufTransformerConfig, openGguf, readGgufTokenizer, setGgufTransformerMetadata, storedDType,
} from './gguf_arch.js';
import type { GgufModelInput, GgufTokenizer } from './gguf_arch.js';
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

export { GgufTokenType } from './gguf_arch.js';
export type { GgufTokenizer } from './gguf_arch.js';

export interface WriteLlamaGgufInput extends GgufModelInput {
  /** Layout of the q/k weights passed in; default 'rotate-half' (HF). */
  qkLayout?: QKLayout;
}

function buildLlamaGguf(input: WriteLlamaGgufInput, file: string): { metadata: Map<string, GgufValue>; tensors: RawTensor[] } {
  const cfg = input.config;
  const d = llamaDims(cfg, file);
  const dtype = ggufMatrixDType(input, file);
  const byName = new Map(input.tensors.map((t) => [t.name, t]));
  const tied = d.tied || !byName.has('lm_head.weight');
  checkLlamaTensors(file, input.tensors, { ...d, tied });
  checkGgufTokenizer(file, input.tokenizer, d.vocab);
  const md = ggufMetadataHead('llama', input);
  setGgufTransformerMetadata(md, 'llama', d);
  ggufMetadataTail(md, 'llama', input, dtype, d.vocab, [['llama.rope.dimension_count', gv.u32(d.headDim)]]);

  const ordered = [...input.tensors].filter((t) => !(tied && t.name === 'lm_head.weight')).sort((a, b) => hfOrder(a.name, b.name));
  const meta = convertQKLayout(ordered, d, input.qkLayout ?? 'rotate-half', 'interleaved');
  const tensors = meta.map((t) => {
    const c = convertDType(t, storedDType(t.shape, dtype, false), file, input.quantize);
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

export interface ReadLlamaGgufOptions {
  /** Layout of the returned q/k; default 'rotate-half' (HF). */
  qkLayout?: QKLayout;
  label?: string;
}

/** Read a llama-architecture GGUF back to an HF config + HF-named tensors + tokenizer. */
export async function readLlamaGguf(src: string | Uint8Array, opts: ReadLlamaGgufOptions = {}): Promise<LlamaGgufCheckpoint> {
  const f = await openGguf(src, opts.label);
  try {
    return await llamaFromGguf(f, opts);
  } finally {
    await f.close();
  }
}

/** The LLaMA model of an open GGUF file (which the caller closes). */
export async function llamaFromGguf(f: GgufFile, opts: Pick<ReadLlamaGgufOptions, 'qkLayout'> = {}): Promise<LlamaGgufCheckpoint> {
  const arch = f.get('general.architecture');
  if (arch !== 'llama') throw new ConfigFieldError(f.file, 'general.architecture', `expected "llama", got ${JSON.stringify(arch ?? null)}`);
  const experts = f.metadata.get('llama.expert_count');
  if (experts && Number(experts.value) > 0) {
    throw new ConfigFieldError(f.file, 'llama.expert_count', `is ${experts.value}: a mixture-of-experts (Mixtral) model; read it with readMoeGguf or readModelGguf`);
  }
  const config: HfConfig = { architectures: ['LlamaForCausalLM'], model_type: 'llama', ...ggufTransformerConfig(f, 'llama') };
  const d = llamaDims(config, f.file);
  const tensors: RawTensor[] = [];
  for (const info of f.tensors) {
    if (info.name === 'rope_freqs.weight') continue; // llama3 rope scaling factors: not part of the HF weights
    const hf = ggufToHfName(info.name);
    if (!hf) throw new UnexpectedTensorError(f.file, info.name, 'is not a llama tensor');
    tensors.push(renamedTensor(await f.read(info.name), hf));
  }
  checkLlamaTensors(f.file, tensors, d);
  tensors.sort((a, b) => hfOrder(a.name, b.name));
  const layout = opts.qkLayout ?? 'rotate-half';
  const out = convertQKLayout(tensors, d, 'interleaved', layout);
  return { config, tensors: out, qkLayout: layout, tokenizer: readGgufTokenizer(f), metadata: f.metadata };
}
