// Sparse mixture-of-experts models in GGUF as llama.cpp expects them, the way
// convert_hf_to_gguf.py writes them: HF `mixtral` as llama.cpp's `llama` architecture with
// experts (LlamaModel with num_local_experts), HF `qwen2_moe` as `qwen2moe` (Qwen2MoeModel).
// The experts of a layer are stacked into one 3-D tensor per projection, expert e at index e of
// the outermost (row-major first) axis, which is ggml's ne[2]:
//
//   HF (row-major shape)                                   GGUF (row-major shape; ne[] reversed)   stored as
//   model.embed_tokens.weight              (V, H)          token_embd.weight         (V, H)        dtype
//   model.layers.N.input_layernorm.weight  (H)             blk.N.attn_norm.weight    (H)           F32
//   ….self_attn.q_proj.weight              (Hq, H)         blk.N.attn_q.weight       (Hq, H)       dtype   (*)
//   ….self_attn.k_proj.weight              (Hkv, H)        blk.N.attn_k.weight       (Hkv, H)      dtype   (*)
//   ….self_attn.v_proj.weight              (Hkv, H)        blk.N.attn_v.weight       (Hkv, H)      dtype
//   ….self_attn.{q,k,v}_proj.bias          (Hq | Hkv)      blk.N.attn_{q,k,v}.bias                 F32     qwen2_moe (qkv_bias)
//   ….self_attn.o_proj.weight              (H, Hq)         blk.N.attn_output.weight  (H, Hq)       dtype
//   ….post_attention_layernorm.weight      (H)             blk.N.ffn_norm.weight     (H)           F32
//   router (E, H): mixtral block_sparse_moe.gate.weight,   blk.N.ffn_gate_inp.weight (E, H)        F32     (**)
//                  qwen2_moe mlp.gate.weight
//   expert e gate (I, H): mixtral …experts.e.w1.weight,    blk.N.ffn_gate_exps.weight (E, I, H)    dtype
//                         qwen2_moe …experts.e.gate_proj.weight
//   expert e up   (I, H): w3 / up_proj                     blk.N.ffn_up_exps.weight   (E, I, H)    dtype
//   expert e down (H, I): w2 / down_proj                   blk.N.ffn_down_exps.weight (E, H, I)    dtype
//   qwen2_moe only:
//   ….mlp.shared_expert.gate_proj.weight   (S, H)          blk.N.ffn_gate_shexp.weight (S, H)      dtype
//   ….mlp.shared_expert.up_proj.weight     (S, H)          blk.N.ffn_up_shexp.weight   (S, H)      dtype
//   ….mlp.shared_expert.down_proj.weight   (H, S)          blk.N.ffn_down_shexp.weight (H, S)      dtype
//   ….mlp.shared_expert_gate.weight        (1, H)          blk.N.ffn_gate_inp_shexp.weight (1, H)  F32     (***)
//   model.norm.weight                      (H)             output_norm.weight        (H)           F32
//   lm_head.weight                         (V, H)          output.weight             (V, H)        dtype   (****)
//
// (I = per-expert intermediate size: mixtral intermediate_size, qwen2_moe moe_intermediate_size;
// S = shared_expert_intermediate_size; Q8_0 rows that are not whole 32-blocks fall back to F16.)
// (*) mixtral's q/k rows are permuted to llama.cpp's interleaved RoPE (as for LLaMA); qwen2moe
//     uses NEOX RoPE, which is HF's rotate-half, so its q/k are stored as they are.
// (**) the router stays F32 in every file type, as the converter and llama-quantize keep it.
// (***) llama.cpp declares it {n_embd} and accepts ne = [H, 1], what the converter writes; it is
//     a single row (ggml_n_dims 1, which llama-quantize never quantizes), kept F32 here. A 1-D
//     (H) tensor is accepted on reading too.
// (****) absent when tied, for mixtral (llama.cpp falls back to token_embd). llama.cpp's
//     qwen2moe requires output.weight, so a tied qwen2_moe is written with a copy of token_embd;
//     on reading, an output.weight with the bytes and type of token_embd.weight is read as tied.
//
// Metadata: general.architecture "llama" / "qwen2moe", {arch}.block_count, context_length,
// embedding_length, feed_forward_length (mixtral: per-expert intermediate_size; qwen2_moe: the
// dense intermediate_size), attention.head_count(_kv), rope.freq_base,
// attention.layer_norm_rms_epsilon, expert_count, expert_used_count; qwen2moe also
// expert_feed_forward_length and expert_shared_feed_forward_length; {arch}.vocab_size,
// llama.rope.dimension_count (mixtral), general.file_type and the tokenizer.ggml.* keys.
//
// What llama.cpp computes, and so what can be exported (anything else is refused naming the config
// field): softmax over all experts, top num_experts_per_tok; `llama` renormalises the kept weights
// (as HF Mixtral always does); `qwen2moe` never does (norm_topk_prob must be false), has every
// layer sparse with a shared expert (no dense layers: decoder_sparse_step 1, mlp_only_layers []),
// head_dim = hidden_size / num_attention_heads, and no sliding window in either. hidden_act must be
// silu and rope_scaling absent (tslm writes no RoPE scaling keys).
import { ConfigFieldError, TensorError } from './errors.js';
import { checkTensorShapes, convertDType } from './dtypes.js';
import type { RawTensor } from './dtypes.js';
import { gv, serializeGguf, writeGguf } from './gguf.js';
import type { GgufFile, GgufValue } from './gguf.js';
import {
  checkGgufTokenizer, ggufMatrixDType, ggufMetadataHead, ggufMetadataTail, ggufTransformerConfig, mdInt, openGguf, readGgufTokenizer,
  setGgufTransformerMetadata, storedDType,
} from './gguf_arch.js';
import type { GgufModelInput, GgufTokenizer } from './gguf_arch.js';
import { convertQKLayout } from './llama.js';
import { checkMoeTensors, moeDims, moeExpertNames, moeRouterName, moeTensorShapes } from './moe.js';
import type { MoeDims, MoeModelType } from './moe.js';
import type { HfConfig } from './hf.js';

/** The GGUF architecture of each MoE model type. */
export const MOE_GGUF_ARCH: Record<MoeModelType, 'llama' | 'qwen2moe'> = { mixtral: 'llama', qwen2_moe: 'qwen2moe' };

/** One GGUF tensor of the layout: its name, row-major shape and the HF tensor(s) it holds. */
export interface MoeGgufEntry {
  name: string;
  shape: number[];
  /** One HF name, or a layer's E expert tensors (expert e at index e) when `stacked`. */
  hf: string[];
  stacked: boolean;
  /** Stored F32 whatever the matrices' type. */
  f32: boolean;
}

/**
 * The GGUF tensors of a mixtral / qwen2_moe model in file order (output.weight only when
 * `withOutput`; for a tied qwen2_moe it holds model.embed_tokens.weight).
 */
export function moeGgufLayout(d: MoeDims, withOutput: boolean): MoeGgufEntry[] {
  const shapes = moeTensorShapes({ ...d, tied: false });
  const out: MoeGgufEntry[] = [];
  const one = (name: string, hf: string, f32 = false) => {
    const shape = shapes.get(hf);
    if (!shape) throw new Error(`moeGgufLayout: no HF tensor ${hf}`);
    out.push({ name, shape, hf: [hf], stacked: false, f32: f32 || shape.length === 1 });
  };
  one('token_embd.weight', 'model.embed_tokens.weight');
  for (let i = 0; i < d.layers; i++) {
    const p = `model.layers.${i}.`, b = `blk.${i}.`;
    one(`${b}attn_norm.weight`, `${p}input_layernorm.weight`);
    for (const x of ['q', 'k', 'v'] as const) {
      one(`${b}attn_${x}.weight`, `${p}self_attn.${x}_proj.weight`);
      if (d.qkvBias) one(`${b}attn_${x}.bias`, `${p}self_attn.${x}_proj.bias`);
    }
    one(`${b}attn_output.weight`, `${p}self_attn.o_proj.weight`);
    one(`${b}ffn_norm.weight`, `${p}post_attention_layernorm.weight`);
    if (!d.sparse[i]) throw new Error(`moeGgufLayout: layer ${i} is dense`); // refused before (moeGgufRefusal)
    one(`${b}ffn_gate_inp.weight`, moeRouterName(d, i), true);
    const names = Array.from({ length: d.experts }, (_, e) => moeExpertNames(d, i, e));
    for (const [j, kind] of (['gate', 'up', 'down'] as const).entries()) {
      const hf = names.map((n) => n[j]);
      out.push({ name: `${b}ffn_${kind}_exps.weight`, shape: [d.experts, ...shapes.get(hf[0])!], hf, stacked: true, f32: false });
    }
    if (d.modelType === 'qwen2_moe') {
      one(`${b}ffn_gate_inp_shexp.weight`, `${p}mlp.shared_expert_gate.weight`, true);
      one(`${b}ffn_gate_shexp.weight`, `${p}mlp.shared_expert.gate_proj.weight`);
      one(`${b}ffn_up_shexp.weight`, `${p}mlp.shared_expert.up_proj.weight`);
      one(`${b}ffn_down_shexp.weight`, `${p}mlp.shared_expert.down_proj.weight`);
    }
  }
  one('output_norm.weight', 'model.norm.weight');
  if (withOutput) {
    if (d.tied) out.push({ name: 'output.weight', shape: [d.vocab, d.hidden], hf: ['model.embed_tokens.weight'], stacked: false, f32: false });
    else one('output.weight', 'lm_head.weight');
  }
  return out;
}

/**
 * Why llama.cpp cannot run this model as HF does (the config field at fault and what), or null.
 * See the header of this file.
 */
export function moeGgufRefusal(cfg: HfConfig, d: MoeDims): { field: string; detail: string } | null {
  if (cfg.hidden_act !== undefined && cfg.hidden_act !== 'silu') {
    return { field: 'hidden_act', detail: `${JSON.stringify(cfg.hidden_act)}: llama.cpp's experts are SwiGLU (silu)` };
  }
  if (cfg.rope_scaling !== undefined && cfg.rope_scaling !== null) {
    return { field: 'rope_scaling', detail: 'is set: tslm writes no RoPE scaling to GGUF' };
  }
  if (d.slidingWindow !== null && d.slidingWindow < d.maxPositions) {
    const field = d.modelType === 'mixtral' ? 'sliding_window' : 'use_sliding_window';
    return { field, detail: `a sliding window of ${d.slidingWindow} < max_position_embeddings ${d.maxPositions}: llama.cpp's ${MOE_GGUF_ARCH[d.modelType]} attends to the whole context` };
  }
  if (d.modelType === 'qwen2_moe') {
    const dense = d.sparse.findIndex((s) => !s);
    if (dense >= 0) {
      const only = Array.isArray(cfg.mlp_only_layers) && (cfg.mlp_only_layers as unknown[]).includes(dense);
      return {
        field: only ? 'mlp_only_layers' : 'decoder_sparse_step',
        detail: `makes layer ${dense} a dense MLP: llama.cpp's qwen2moe has a sparse MoE block with a shared expert in every layer`,
      };
    }
    if (d.normTopkProb) return { field: 'norm_topk_prob', detail: 'is true: llama.cpp\'s qwen2moe never renormalises the top-k routing weights' };
    if (d.headDim * d.heads !== d.hidden) {
      return { field: 'head_dim', detail: `${d.headDim} × ${d.heads} heads ≠ hidden_size ${d.hidden}: llama.cpp's qwen2moe needs head_dim = hidden_size / num_attention_heads` };
    }
  }
  return null;
}

/** A mixtral or qwen2_moe model for GGUF (q/k in HF's rotate-half layout); matrices are the embeddings, attention, experts, shared expert and lm_head. */
export type WriteMoeGgufInput = GgufModelInput;

function buildMoeGguf(input: WriteMoeGgufInput, file: string): { metadata: Map<string, GgufValue>; tensors: RawTensor[] } {
  const cfg = input.config;
  const d0 = moeDims(cfg, file);
  const dtype = ggufMatrixDType(input, file);
  const d = { ...d0, tied: d0.tied || !input.tensors.some((t) => t.name === 'lm_head.weight') };
  checkMoeTensors(file, input.tensors, d);
  const refusal = moeGgufRefusal(cfg, d);
  if (refusal) throw new ConfigFieldError(file, refusal.field, `${refusal.detail}; this model cannot be exported to GGUF`);
  checkGgufTokenizer(file, input.tokenizer, d.vocab);
  const arch = MOE_GGUF_ARCH[d.modelType];

  const md = ggufMetadataHead(arch, input);
  setGgufTransformerMetadata(md, arch, d);
  md.set(`${arch}.expert_count`, gv.u32(d.experts));
  md.set(`${arch}.expert_used_count`, gv.u32(d.expertsPerTok));
  if (d.modelType === 'qwen2_moe') {
    md.set(`${arch}.expert_feed_forward_length`, gv.u32(d.expertIntermediate));
    md.set(`${arch}.expert_shared_feed_forward_length`, gv.u32(d.sharedIntermediate));
  }
  ggufMetadataTail(md, arch, input, dtype, d.vocab, arch === 'llama' ? [['llama.rope.dimension_count', gv.u32(d.headDim)]] : []);

  const byName = new Map(input.tensors.map((t) => [t.name, t]));
  // mixtral's q/k to llama.cpp's interleaved RoPE rows; qwen2moe's NEOX RoPE is HF's layout
  if (d.modelType === 'mixtral') {
    const qk = [...byName.values()].filter((t) => /\.self_attn\.[qk]_proj\.weight$/.test(t.name));
    for (const t of convertQKLayout(qk, d, 'rotate-half', 'interleaved')) byName.set(t.name, t);
  }
  const tensors = moeGgufLayout(d, !d.tied || d.modelType === 'qwen2_moe').map((e): RawTensor => {
    const type = storedDType(e.shape, dtype, e.f32);
    const parts = e.hf.map((n) => convertDType(byName.get(n)!, type, file, input.quantize).data);
    let data = parts[0];
    if (e.stacked) {
      data = new Uint8Array(parts.reduce((s, x) => s + x.length, 0));
      let off = 0;
      for (const x of parts) { data.set(x, off); off += x.length; }
    }
    return { name: e.name, dtype: type, shape: [...e.shape], data };
  });
  return { metadata: md, tensors };
}

/** Write a mixtral or qwen2_moe model (HF config + HF-named tensors) as a GGUF llama.cpp loads. */
export async function writeMoeGguf(path: string, input: WriteMoeGgufInput): Promise<void> {
  await writeGguf(path, buildMoeGguf(input, path));
}
export function serializeMoeGguf(input: WriteMoeGgufInput): Uint8Array {
  return serializeGguf(buildMoeGguf(input, '<memory>'));
}

export interface MoeGgufCheckpoint {
  /** "mixtral" (a `llama` GGUF with experts) or "qwen2_moe" (`qwen2moe`). */
  modelType: MoeModelType;
  /** An HF MixtralConfig / Qwen2MoeConfig object. */
  config: HfConfig;
  /** HF names and shapes (experts one by one, q/k in HF rotate-half layout), the file's dtypes; lm_head.weight absent when tied. */
  tensors: RawTensor[];
  tokenizer: GgufTokenizer | null;
  metadata: Map<string, GgufValue>;
}

/** Read a Mixtral (`llama` with experts) or `qwen2moe` GGUF back to an HF config + HF-named tensors + tokenizer. */
export async function readMoeGguf(src: string | Uint8Array, opts: { label?: string } = {}): Promise<MoeGgufCheckpoint> {
  const f = await openGguf(src, opts.label);
  try {
    return await moeFromGguf(f);
  } finally {
    await f.close();
  }
}

/** Whether an open GGUF holds a mixture-of-experts model this module reads (llama with experts, qwen2moe). */
export function isMoeGguf(f: GgufFile): boolean {
  const arch = f.get('general.architecture');
  if (arch === 'qwen2moe') return true;
  const n = f.metadata.get('llama.expert_count');
  return arch === 'llama' && n !== undefined && Number(n.value) > 0;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The MoE model of an open GGUF file (which the caller closes). */
export async function moeFromGguf(f: GgufFile): Promise<MoeGgufCheckpoint> {
  const arch = f.get('general.architecture');
  if (arch !== 'llama' && arch !== 'qwen2moe') {
    throw new ConfigFieldError(f.file, 'general.architecture', `expected "llama" (with experts) or "qwen2moe", got ${JSON.stringify(arch ?? null)}`);
  }
  const experts = mdInt(f, `${arch}.expert_count`);
  const used = mdInt(f, `${arch}.expert_used_count`);
  if (used > experts) throw new ConfigFieldError(f.file, `${arch}.expert_used_count`, `${used} is more than ${arch}.expert_count ${experts}`);
  const base = ggufTransformerConfig(f, arch);
  const modelType: MoeModelType = arch === 'llama' ? 'mixtral' : 'qwen2_moe';
  let config: HfConfig;
  if (modelType === 'mixtral') {
    config = { architectures: ['MixtralForCausalLM'], model_type: 'mixtral', ...base, num_local_experts: experts, num_experts_per_tok: used };
  } else {
    const nff = base.intermediate_size as number;
    config = {
      architectures: ['Qwen2MoeForCausalLM'], model_type: 'qwen2_moe', ...base,
      num_experts: experts, num_experts_per_tok: used,
      // llama.cpp's defaults when the keys are absent: n_ff / n_expert_used and n_ff
      moe_intermediate_size: mdInt(f, 'qwen2moe.expert_feed_forward_length', Math.floor(nff / used)),
      shared_expert_intermediate_size: mdInt(f, 'qwen2moe.expert_shared_feed_forward_length', nff),
      norm_topk_prob: false, decoder_sparse_step: 1, mlp_only_layers: [],
      qkv_bias: f.tensors.some((t) => t.name === 'blk.0.attn_q.bias'),
    };
  }
  const tokenizer = readGgufTokenizer(f);
  const hasOutput = f.tensors.some((t) => t.name === 'output.weight');
  const read = new Map<string, RawTensor>(); // tensors read for the tie check, not read twice
  let tied = !hasOutput;
  if (modelType === 'qwen2_moe' && hasOutput) {
    // a tied qwen2_moe is written with output.weight = token_embd.weight (llama.cpp's qwen2moe requires output)
    const [o, e] = [f.info('output.weight'), f.info('token_embd.weight')];
    if (o.ggmlType === e.ggmlType && o.nbytes === e.nbytes) {
      for (const n of [o.name, e.name]) read.set(n, await f.read(n));
      tied = sameBytes(read.get(o.name)!.data, read.get(e.name)!.data);
    }
  }
  config.tie_word_embeddings = tied;
  const d = moeDims(config, f.file);
  // names and shapes as stored, against the metadata (GGUF names), before any splitting
  const layout = moeGgufLayout(d, hasOutput);
  const shexp = /\.ffn_gate_inp_shexp\.weight$/;
  const infos = f.tensors.map((t) => (shexp.test(t.name) && t.shape.length === 1 ? { name: t.name, shape: [1, ...t.shape] } : t));
  checkTensorShapes(f.file, infos, new Map(layout.map((e) => [e.name, e.shape])));
  if (tokenizer) checkGgufTokenizer(f.file, tokenizer, d.vocab);

  let tensors: RawTensor[] = [];
  for (const e of layout) {
    if (e.name === 'output.weight' && tied) continue;
    const t = read.get(e.name) ?? await f.read(e.name);
    if (!e.stacked) {
      tensors.push({ ...t, name: e.name === 'output.weight' ? 'lm_head.weight' : e.hf[0], shape: [...e.shape] });
      continue;
    }
    const per = t.data.length / d.experts;
    if (!Number.isInteger(per)) throw new TensorError(f.file, e.name, `${t.data.length} bytes do not split into ${d.experts} experts`);
    e.hf.forEach((name, i) => tensors.push({ name, dtype: t.dtype, shape: e.shape.slice(1), data: t.data.subarray(i * per, (i + 1) * per) }));
  }
  if (modelType === 'mixtral') tensors = convertQKLayout(tensors, d, 'interleaved', 'rotate-half');
  checkMoeTensors(f.file, tensors, d);
  const order = new Map([...moeTensorShapes({ ...d, tied: false }).keys()].map((n, i) => [n, i]));
  tensors.sort((a, b) => order.get(a.name)! - order.get(b.name)!);
  return { modelType, config, tensors, tokenizer, metadata: f.metadata };
}
