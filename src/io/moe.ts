// Sparse mixture-of-experts LLaMA-like models (HF `mixtral` and `qwen2_moe`): the HF config's
// dimensions, validated, with transformers' MixtralConfig / Qwen2MoeConfig defaults, and the HF
// tensor names and shapes. Attention and norms are LLaMA's (llama.ts); the feed-forward is:
//
//   mixtral, every layer (E = num_local_experts, I = intermediate_size, per expert):
//     model.layers.N.block_sparse_moe.gate.weight           (E, H)   router
//     model.layers.N.block_sparse_moe.experts.e.w1.weight   (I, H)   gate
//     model.layers.N.block_sparse_moe.experts.e.w3.weight   (I, H)   up
//     model.layers.N.block_sparse_moe.experts.e.w2.weight   (H, I)   down
//   qwen2_moe, sparse layers (E = num_experts, M = moe_intermediate_size, S = shared_expert_intermediate_size):
//     model.layers.N.mlp.gate.weight                        (E, H)   router
//     model.layers.N.mlp.experts.e.{gate_proj,up_proj}.weight (M, H), .down_proj.weight (H, M)
//     model.layers.N.mlp.shared_expert.{gate_proj,up_proj}.weight (S, H), .down_proj.weight (H, S)
//     model.layers.N.mlp.shared_expert_gate.weight          (1, H)   sigmoid gate of the shared expert
//   qwen2_moe, dense layers (N in mlp_only_layers, or (N + 1) % decoder_sparse_step ≠ 0):
//     model.layers.N.mlp.{gate_proj,up_proj}.weight (intermediate_size, H), .down_proj.weight (H, intermediate_size)
//   qwen2_moe also has q/k/v biases (qkv_bias, default true): self_attn.{q,k,v}_proj.bias.
//
// Routing (HF): p = softmax(router · x) over all experts, the top num_experts_per_tok kept;
// mixtral renormalises them to sum 1, qwen2_moe only when norm_topk_prob. The experts are SwiGLU
// MLPs, summed with those weights; qwen2_moe adds sigmoid(shared_expert_gate · x) · shared_expert(x).
import { ConfigFieldError, UnexpectedTensorError } from './errors.js';
import { checkTensorShapes } from './dtypes.js';
import type { RawTensor } from './dtypes.js';
import { brief } from './json.js';
import { intField, llamaDims, llamaTensorShapes } from './llama.js';
import type { LlamaDims } from './llama.js';

export type MoeModelType = 'mixtral' | 'qwen2_moe';
export const MOE_MODEL_TYPES: readonly MoeModelType[] = ['mixtral', 'qwen2_moe'];

/** Dimensions of a mixtral / qwen2_moe model, from an HF config, validated. */
export interface MoeDims extends LlamaDims {
  modelType: MoeModelType;
  /** num_local_experts (mixtral) / num_experts (qwen2_moe). */
  experts: number;
  /** num_experts_per_tok (top-k). */
  expertsPerTok: number;
  /** Per-expert intermediate size: intermediate_size (mixtral) / moe_intermediate_size (qwen2_moe). */
  expertIntermediate: number;
  /** shared_expert_intermediate_size (qwen2_moe); 0 for mixtral, which has no shared expert. */
  sharedIntermediate: number;
  /** Renormalise the top-k routing weights to sum 1 (always for mixtral; norm_topk_prob for qwen2_moe). */
  normTopkProb: boolean;
  /** Per layer: a sparse MoE block (true) or a dense MLP of intermediate_size (qwen2_moe only). */
  sparse: boolean[];
  /** q/k/v projection biases (qwen2_moe's qkv_bias). */
  qkvBias: boolean;
  /** The sliding attention window in effect (mixtral's sliding_window; qwen2_moe's when use_sliding_window), or null. */
  slidingWindow: number | null;
}

/** transformers' defaults for the fields this layer reads (the dimensions themselves are required). */
const DEFAULTS: Record<MoeModelType, Record<string, unknown>> = {
  mixtral: {
    num_key_value_heads: 8, max_position_embeddings: 4096 * 32, rms_norm_eps: 1e-5, rope_theta: 1e6,
    num_local_experts: 8, num_experts_per_tok: 2, sliding_window: null, tie_word_embeddings: false,
  },
  qwen2_moe: {
    intermediate_size: 5632, num_key_value_heads: 16, max_position_embeddings: 32768, rms_norm_eps: 1e-6, rope_theta: 10000,
    num_experts: 60, num_experts_per_tok: 4, moe_intermediate_size: 1408, shared_expert_intermediate_size: 5632,
    norm_topk_prob: false, decoder_sparse_step: 1, mlp_only_layers: [], qkv_bias: true,
    use_sliding_window: false, sliding_window: 4096, tie_word_embeddings: false,
  },
};

function withDefaults(cfg: Record<string, unknown>, type: MoeModelType): Record<string, unknown> {
  const out: Record<string, unknown> = { ...cfg };
  for (const [k, v] of Object.entries(DEFAULTS[type])) if (out[k] === undefined || (out[k] === null && v !== null)) out[k] = v;
  return out;
}

function posInt(cfg: Record<string, unknown>, key: string, file: string): number {
  return intField(cfg, key, file);
}
function bool(cfg: Record<string, unknown>, key: string, file: string): boolean {
  const v = cfg[key];
  if (typeof v !== 'boolean') throw new ConfigFieldError(file, key, `must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

/** Read and check the dimensions of a mixtral or qwen2_moe HF config (transformers' defaults where it has them). */
export function moeDims(cfg: Record<string, unknown>, file = 'config.json'): MoeDims {
  const type = cfg.model_type;
  if (type !== 'mixtral' && type !== 'qwen2_moe') {
    throw new ConfigFieldError(file, 'model_type', `expected "mixtral" or "qwen2_moe", got ${JSON.stringify(type ?? null)}`);
  }
  const c = withDefaults(cfg, type);
  const d = llamaDims(c, file);
  const expertsKey = type === 'mixtral' ? 'num_local_experts' : 'num_experts';
  const experts = posInt(c, expertsKey, file);
  const expertsPerTok = posInt(c, 'num_experts_per_tok', file);
  if (expertsPerTok > experts) {
    throw new ConfigFieldError(file, 'num_experts_per_tok', `${expertsPerTok} is more than the ${experts} experts (${expertsKey})`);
  }
  const sparse = new Array<boolean>(d.layers).fill(true);
  let expertIntermediate = d.intermediate, sharedIntermediate = 0, normTopkProb = true, qkvBias = false;
  let slidingWindow: number | null = null;
  if (type === 'mixtral') {
    if (c.sliding_window !== null) slidingWindow = posInt(c, 'sliding_window', file);
  } else {
    expertIntermediate = posInt(c, 'moe_intermediate_size', file);
    sharedIntermediate = posInt(c, 'shared_expert_intermediate_size', file);
    normTopkProb = bool(c, 'norm_topk_prob', file);
    qkvBias = bool(c, 'qkv_bias', file);
    const step = posInt(c, 'decoder_sparse_step', file);
    const only = c.mlp_only_layers;
    if (!Array.isArray(only) || only.some((i) => !Number.isSafeInteger(i) || i < 0 || i >= d.layers)) {
      throw new ConfigFieldError(file, 'mlp_only_layers', `must be a list of layer indices in [0, ${d.layers}), got ${brief(only)}`);
    }
    const dense = new Set(only as number[]);
    for (let i = 0; i < d.layers; i++) sparse[i] = !dense.has(i) && (i + 1) % step === 0;
    if (bool(c, 'use_sliding_window', file)) slidingWindow = posInt(c, 'sliding_window', file);
  }
  return { ...d, modelType: type, experts, expertsPerTok, expertIntermediate, sharedIntermediate, normTopkProb, sparse, qkvBias, slidingWindow };
}

/** HF names of a layer's expert e tensors, in the order gate, up, down. */
export function moeExpertNames(d: Pick<MoeDims, 'modelType'>, layer: number, e: number): [string, string, string] {
  if (d.modelType === 'mixtral') {
    const p = `model.layers.${layer}.block_sparse_moe.experts.${e}.`;
    return [`${p}w1.weight`, `${p}w3.weight`, `${p}w2.weight`];
  }
  const p = `model.layers.${layer}.mlp.experts.${e}.`;
  return [`${p}gate_proj.weight`, `${p}up_proj.weight`, `${p}down_proj.weight`];
}

/** HF name of a layer's router. */
export function moeRouterName(d: Pick<MoeDims, 'modelType'>, layer: number): string {
  return d.modelType === 'mixtral' ? `model.layers.${layer}.block_sparse_moe.gate.weight` : `model.layers.${layer}.mlp.gate.weight`;
}

/**
 * The HF tensor names and shapes of a mixtral / qwen2_moe model (lm_head only when not tied), in
 * the models' natural order: embeddings; per layer the attention, the router, the experts one by
 * one, the shared expert and its gate (or the dense MLP); the final norm; lm_head.
 */
export function moeTensorShapes(d: MoeDims): Map<string, number[]> {
  const llama = llamaTensorShapes(d);
  const m = new Map<string, number[]>();
  const H = d.hidden;
  const qkv = [d.heads * d.headDim, d.kvHeads * d.headDim, d.kvHeads * d.headDim];
  m.set('model.embed_tokens.weight', llama.get('model.embed_tokens.weight')!);
  for (let i = 0; i < d.layers; i++) {
    const p = `model.layers.${i}.`;
    for (const [k, v] of llama) {
      if (!k.startsWith(p) || k.startsWith(`${p}mlp.`)) continue;
      m.set(k, v);
      const proj = /self_attn\.([qkv])_proj\.weight$/.exec(k);
      if (proj && d.qkvBias) m.set(k.replace(/weight$/, 'bias'), [qkv['qkv'.indexOf(proj[1])]]);
    }
    if (!d.sparse[i]) {
      m.set(`${p}mlp.gate_proj.weight`, [d.intermediate, H]);
      m.set(`${p}mlp.up_proj.weight`, [d.intermediate, H]);
      m.set(`${p}mlp.down_proj.weight`, [H, d.intermediate]);
      continue;
    }
    m.set(moeRouterName(d, i), [d.experts, H]);
    const I = d.expertIntermediate;
    for (let e = 0; e < d.experts; e++) {
      const [g, u, dn] = moeExpertNames(d, i, e);
      m.set(g, [I, H]);
      m.set(u, [I, H]);
      m.set(dn, [H, I]);
    }
    if (d.modelType === 'qwen2_moe') {
      const S = d.sharedIntermediate;
      m.set(`${p}mlp.shared_expert.gate_proj.weight`, [S, H]);
      m.set(`${p}mlp.shared_expert.up_proj.weight`, [S, H]);
      m.set(`${p}mlp.shared_expert.down_proj.weight`, [H, S]);
      m.set(`${p}mlp.shared_expert_gate.weight`, [1, H]);
    }
  }
  m.set('model.norm.weight', [H]);
  if (!d.tied) m.set('lm_head.weight', [d.vocab, H]);
  return m;
}

/** Buffers that old transformers checkpoints carry and that hold no weights. */
const IGNORED = /\.rotary_emb\.inv_freq$/;
const EXPERT = /^model\.layers\.(\d+)\.(?:block_sparse_moe|mlp)\.experts\.(\d+)\./;

/**
 * Check that `tensors` are exactly the model's: each missing, extra or misshapen tensor (expert
 * tensors included) is an error naming it. With tied embeddings an `lm_head.weight` is accepted
 * (and must match).
 */
export function checkMoeTensors(file: string, tensors: readonly Pick<RawTensor, 'name' | 'shape'>[], d: MoeDims): void {
  const ts = tensors.filter((t) => !IGNORED.test(t.name));
  const key = d.modelType === 'mixtral' ? 'num_local_experts' : 'num_experts';
  for (const t of ts) {
    const m = EXPERT.exec(t.name);
    if (m && Number(m[1]) < d.layers && Number(m[2]) >= d.experts) {
      throw new UnexpectedTensorError(file, t.name, `expert ${m[2]} does not exist: the config has ${key} = ${d.experts}`);
    }
  }
  const tiedHead = d.tied ? new Map([['lm_head.weight', [d.vocab, d.hidden]]]) : undefined;
  checkTensorShapes(file, ts, moeTensorShapes(d), tiedHead);
}
