// LLaMA / LLaMA-2 (and the same graph under Mistral's and Qwen2's configs): a decoder-only
// transformer with RMSNorm pre-normalisation, rotary position embeddings (rotate-half layout,
// as Hugging Face stores q/k weights), grouped-query attention and a SwiGLU MLP.
//
//   h = embed(ids)                                              // (B, T, D)
//   for each layer:
//     h = h + o_proj(attention(rope(q(norm(h))), rope(k(norm(h))), v(norm(h))))
//     h = h + down(silu(gate(norm(h))) * up(norm(h)))
//   logits = lm_head(norm(h))                                    // (B, T, V)
import { Tensor } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { MAX_FUSED_HEAD_DIMS, attention, crossEntropy, embedding, layerNorm, rope, ropeQkvToCache, ropeTables, softmax, swiglu, toBf16Pairs } from '../tensor/nn.js';
import { scope, unscoped } from '../tensor/storage.js';
import { isGradEnabled } from '../tensor/autograd.js';
import { Generator, defaultGenerator } from '../tensor/random.js';
import { ShapeError, fmtShape } from '../tensor/errors.js';
import { Module, parameter } from '../nn/module.js';
import { Embedding, Linear, RMSNorm } from '../nn/layers.js';
import { fusedRows, plainLinear, shareStorage } from '../nn/fused.js';
import { SparseMoeBlock } from '../nn/moe.js';
import { DecodePlan, MAX_PLAN_TOKENS } from './llama_decode.js';
import type { PlanLayer, PlanSpec } from './llama_decode.js';
import type { MoeOptions, RouterRecord } from '../nn/moe.js';
import { ConfigError, boolField, idsField, intField, numField } from './config.js';
import { CausalLM, DecodeStateError, checkRows, nextTokenPair, treeInputError } from './causal.js';
import type { DecodeState, ForwardOptions, LossParts } from './causal.js';

export interface LlamaConfig {
  model_type: 'llama' | 'mistral' | 'qwen2' | 'mixtral' | 'qwen2_moe' | 'chameleon';
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  max_position_embeddings: number;
  rms_norm_eps: number;
  rope_theta: number;
  /** Linear position scaling (positions divided by factor); other types are rejected. */
  rope_scaling: { type: 'linear'; factor: number } | null;
  tie_word_embeddings: boolean;
  /** Biases on q/k/v/o (LLaMA's attention_bias); Qwen2 has biases on q/k/v only. */
  attention_bias: boolean;
  mlp_bias: boolean;
  hidden_act: 'silu';
  initializer_range: number;
  bos_token_id: number | null;
  eos_token_id: number[] | null;
  /** The sliding attention window (a query sees itself and the window − 1 keys before it), or null. */
  sliding_window: number | null;
  /**
   * Qwen2 / Qwen2-MoE with a window: the layers below this index attend to the whole context, the
   * others use the window (HF's default 28). Absent for the other families: every layer uses it.
   */
  max_window_layers?: number;
  // Mixture of experts (present for mixtral and qwen2_moe only; HF's field names):
  /** Mixtral: experts per layer. */
  num_local_experts?: number;
  /** Qwen2-MoE: experts per sparse layer. */
  num_experts?: number;
  num_experts_per_tok?: number;
  /** Qwen2-MoE: each expert's width (Mixtral's experts are intermediate_size wide). */
  moe_intermediate_size?: number;
  /** Qwen2-MoE: the shared expert's width (0: none). */
  shared_expert_intermediate_size?: number;
  /** Qwen2-MoE: renormalise the top-k weights (Mixtral always does). */
  norm_topk_prob?: boolean;
  /** Qwen2-MoE: layer i is sparse when (i + 1) % decoder_sparse_step = 0 and i ∉ mlp_only_layers. */
  decoder_sparse_step?: number;
  mlp_only_layers?: number[];
  /** Whether training adds router_aux_loss_coef × the load-balancing loss (HF adds it only then). */
  output_router_logits?: boolean;
  router_aux_loss_coef?: number;
  /** Mixtral: training multiplies the MoE block's input by U(1 − j, 1 + j). */
  router_jitter_noise?: number;
  /** ST-MoE's router z-loss coefficient (tslm's field; 0: off). */
  router_z_loss_coef?: number;
  /** Training only: assignments per expert at most ⌈cf · tokens · k / E⌉, in token order (tslm's field; 0: no limit). */
  moe_capacity_factor?: number;
  // Chameleon's stability options (model_type chameleon; HF's field names where HF has them):
  /** Layer norm of each query and key head over head_dim, with per-(head, dim) weight and bias (Chameleon always). */
  qk_norm?: boolean;
  /** Chameleon's norm reordering (HF's swin_norm): h = x + norm(attn(x)), out = h + norm(mlp(h)). */
  swin_norm?: boolean;
  /** Training adds z_loss_coef × mean(logsumexp(logits)²), the z-loss on the output softmax's normaliser (tslm's field; Chameleon uses 1e-5; 0: off). */
  z_loss_coef?: number;
}

export const LLAMA_MODEL_TYPES = ['llama', 'mistral', 'qwen2', 'mixtral', 'qwen2_moe', 'chameleon'] as const;

/** Validate an HF config.json object for the LLaMA graph; `source` names the file in errors. */
export function parseLlamaConfig(raw: Record<string, unknown>, source = 'config.json'): LlamaConfig {
  const modelType = (raw.model_type ?? 'llama') as string;
  if (!(LLAMA_MODEL_TYPES as readonly string[]).includes(modelType)) throw new ConfigError(source, `model_type "${modelType}" is not a LLaMA-family model (${LLAMA_MODEL_TYPES.join(', ')})`);
  const hidden = intField(raw, 'hidden_size', source);
  const heads = intField(raw, 'num_attention_heads', source);
  const kvHeads = intField(raw, 'num_key_value_heads', source, heads);
  const headDim = intField(raw, 'head_dim', source, Math.floor(hidden / heads));
  if (raw.head_dim === undefined && hidden % heads !== 0) throw new ConfigError(source, `hidden_size ${hidden} is not divisible by num_attention_heads ${heads}`);
  if (heads % kvHeads !== 0) throw new ConfigError(source, `num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`);
  if (headDim % 2) throw new ConfigError(source, `head dimension ${headDim} must be even for rotary embeddings`);
  const act = raw.hidden_act ?? 'silu';
  if (act !== 'silu') throw new ConfigError(source, `hidden_act "${String(act)}" is not supported (silu)`);
  let scaling: LlamaConfig['rope_scaling'] = null;
  const rs = raw.rope_scaling as Record<string, unknown> | null | undefined;
  if (rs) {
    const type = rs.rope_type ?? rs.type;
    if (type === 'default') scaling = null;
    else if (type !== 'linear') throw new ConfigError(source, `rope_scaling type "${String(type)}" is not supported (linear)`);
    else scaling = { type: 'linear', factor: numField(rs, 'factor', `${source} rope_scaling`, 1) };
  }
  const eos = idsField(raw, 'eos_token_id', source);
  const bos = idsField(raw, 'bos_token_id', source);
  const base: LlamaConfig = {
    model_type: modelType as LlamaConfig['model_type'],
    vocab_size: intField(raw, 'vocab_size', source),
    hidden_size: hidden,
    intermediate_size: intField(raw, 'intermediate_size', source),
    num_hidden_layers: intField(raw, 'num_hidden_layers', source),
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    max_position_embeddings: intField(raw, 'max_position_embeddings', source, 2048),
    rms_norm_eps: numField(raw, 'rms_norm_eps', source, 1e-6),
    rope_theta: numField(raw, 'rope_theta', source, 10000),
    rope_scaling: scaling,
    tie_word_embeddings: boolField(raw, 'tie_word_embeddings', source, false),
    attention_bias: boolField(raw, 'attention_bias', source, modelType === 'qwen2' || modelType === 'qwen2_moe'),
    mlp_bias: boolField(raw, 'mlp_bias', source, false),
    hidden_act: 'silu',
    initializer_range: numField(raw, 'initializer_range', source, 0.02),
    bos_token_id: bos ? bos[0] : null,
    eos_token_id: eos,
    // Mistral's window applies when set; Qwen2 configs carry one that is off unless use_sliding_window.
    sliding_window: typeof raw.sliding_window === 'number' && raw.sliding_window > 0 &&
      (modelType === 'mistral' || modelType === 'mixtral' || ((modelType === 'qwen2' || modelType === 'qwen2_moe') && raw.use_sliding_window === true)) ? raw.sliding_window : null,
  };
  if (base.sliding_window !== null && (modelType === 'qwen2' || modelType === 'qwen2_moe')) base.max_window_layers = intField(raw, 'max_window_layers', source, 28);
  if (modelType === 'chameleon') {
    base.qk_norm = true;
    base.swin_norm = boolField(raw, 'swin_norm', source, false);
  }
  if (raw.z_loss_coef !== undefined) {
    const z = numField(raw, 'z_loss_coef', source, 0);
    if (!(z >= 0)) throw new ConfigError(source, `z_loss_coef must be ≥ 0, got ${z}`);
    if (z > 0 && (modelType === 'mixtral' || modelType === 'qwen2_moe')) throw new ConfigError(source, 'z_loss_coef (the output z-loss) is not available with a mixture of experts yet; router_z_loss_coef is');
    if (z > 0) base.z_loss_coef = z;
  }
  return modelType === 'mixtral' || modelType === 'qwen2_moe' ? { ...base, ...parseMoeFields(raw, modelType, base, source) } : base;
}

/** The MoE fields of a mixtral or qwen2_moe config (HF's defaults), validated. */
function parseMoeFields(raw: Record<string, unknown>, type: 'mixtral' | 'qwen2_moe', c: LlamaConfig, source: string): Partial<LlamaConfig> {
  const nonNeg = (key: string, def: number): number => {
    const v = raw[key] ?? def;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new ConfigError(source, `field "${key}" must be a number ≥ 0, got ${JSON.stringify(v)}`);
    return v;
  };
  const common = {
    num_experts_per_tok: intField(raw, 'num_experts_per_tok', source, type === 'mixtral' ? 2 : 4),
    output_router_logits: boolField(raw, 'output_router_logits', source, false),
    router_aux_loss_coef: nonNeg('router_aux_loss_coef', 0.001),
    router_z_loss_coef: nonNeg('router_z_loss_coef', 0),
    moe_capacity_factor: nonNeg('moe_capacity_factor', 0),
  };
  const expertsKey = type === 'mixtral' ? 'num_local_experts' : 'num_experts';
  const experts = intField(raw, expertsKey, source, type === 'mixtral' ? 8 : 60);
  if (common.num_experts_per_tok > experts) throw new ConfigError(source, `field "num_experts_per_tok" (${common.num_experts_per_tok}) exceeds "${expertsKey}" (${experts})`);
  if (type === 'mixtral') return { num_local_experts: experts, ...common, router_jitter_noise: nonNeg('router_jitter_noise', 0) };
  const only = raw.mlp_only_layers ?? [];
  if (!Array.isArray(only) || only.some((i) => !Number.isInteger(i) || i < 0 || i >= c.num_hidden_layers)) {
    throw new ConfigError(source, `field "mlp_only_layers" must be a list of layer indices in [0, ${c.num_hidden_layers}), got ${JSON.stringify(only)}`);
  }
  const shared = raw.shared_expert_intermediate_size ?? 5632;
  if (typeof shared !== 'number' || !Number.isInteger(shared) || shared < 0) throw new ConfigError(source, `field "shared_expert_intermediate_size" must be an integer ≥ 0, got ${JSON.stringify(shared)}`);
  return {
    num_experts: experts, ...common,
    moe_intermediate_size: intField(raw, 'moe_intermediate_size', source, 1408),
    shared_expert_intermediate_size: shared,
    norm_topk_prob: boolField(raw, 'norm_topk_prob', source, false),
    decoder_sparse_step: intField(raw, 'decoder_sparse_step', source, 1),
    mlp_only_layers: only as number[],
  };
}

/** The MoE block of layer i, or null when the layer is dense (every layer of a dense model). */
export function moeLayer(c: LlamaConfig, i: number): Omit<MoeOptions, 'generator' | 'std' | 'name'> | null {
  if (c.model_type === 'mixtral') {
    return {
      hidden: c.hidden_size, experts: c.num_local_experts!, topK: c.num_experts_per_tok!, expertSize: c.intermediate_size, renormalize: true,
      sharedExpertSize: null, expertNames: { gate: 'w1', up: 'w3', down: 'w2' }, jitter: c.router_jitter_noise ?? 0, capacityFactor: c.moe_capacity_factor ?? 0,
    };
  }
  if (c.model_type === 'qwen2_moe' && c.num_experts! > 0 && !c.mlp_only_layers!.includes(i) && (i + 1) % c.decoder_sparse_step! === 0) {
    return {
      hidden: c.hidden_size, experts: c.num_experts!, topK: c.num_experts_per_tok!, expertSize: c.moe_intermediate_size!, renormalize: c.norm_topk_prob!,
      sharedExpertSize: c.shared_expert_intermediate_size || null, expertNames: { gate: 'gate_proj', up: 'up_proj', down: 'down_proj' }, jitter: 0,
      capacityFactor: c.moe_capacity_factor ?? 0,
    };
  }
  return null;
}

/** The config as an HF config.json object (with architectures), for saving. */
export function llamaConfigToJson(c: LlamaConfig): Record<string, unknown> {
  const arch = { llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM', mixtral: 'MixtralForCausalLM', qwen2_moe: 'Qwen2MoeForCausalLM', chameleon: 'ChameleonForConditionalGeneration' }[c.model_type];
  const out: Record<string, unknown> = { architectures: [arch], ...c, torch_dtype: 'float32' };
  const qwen = c.model_type === 'qwen2' || c.model_type === 'qwen2_moe';
  if (qwen) delete out.attention_bias;
  if (c.sliding_window === null) delete out.sliding_window;
  else if (qwen) out.use_sliding_window = true;
  if (c.max_window_layers === undefined) delete out.max_window_layers;
  if (c.model_type === 'chameleon') delete out.qk_norm; // implied by the model type
  else delete out.swin_norm;
  if (c.eos_token_id && c.eos_token_id.length === 1) out.eos_token_id = c.eos_token_id[0];
  return out;
}

/**
 * Keys and values of past positions, per layer: storage (capacity, n_kv_heads, columns,
 * head_dim), of which rows 0…batch−1 are in use. Passed into forward() explicitly; truncate()
 * rolls back (speculative decoding), compact() keeps a verified token tree's path,
 * select/append/dropLeading serve continuous batching (rows right-aligned: every row ends at
 * `length`, a shorter row's leading columns are masked padding).
 *
 * A layer without a sliding window keeps every position: columns = maxLength, column p holds
 * position p. A sliding-window layer (Mistral's, Qwen2's from max_window_layers on) keeps a
 * rolling buffer of window − 1 + history + window columns whatever the length (maxLength may be
 * Infinity): column c holds position `first` + c. When the next positions do not fit, the last
 * window − 1 + history positions (all that a later query, or a rollback of `history`
 * positions, can see) move to the front and the older ones are overwritten: about one
 * position's copy per position decoded, and the keys stay in order, so attention, the fused
 * RoPE-into-cache kernel and the band masks work on the buffer as on a full cache. A forward of
 * more new positions than the buffer has room for is split into chunks by the model
 * (LlamaForCausalLM.hidden); only a token tree larger than that grows the buffer.
 */
/** The element types a KVCache stores its keys and values in. */
export type KVDType = 'f32' | 'bf16';
export const KV_DTYPES: readonly KVDType[] = ['f32', 'bf16'];

/**
 * Most new positions a forward with a cache and no autograd computes at once (a longer prompt is
 * prefilled in chunks): bounds a prefill's activations (110M shape: about 46 KB per position)
 * while keeping each chunk's matrix products large enough to run at full speed.
 */
export const PREFILL_CHUNK = 256;

export class KVCache implements DecodeState {
  /**
   * Per layer: keys and values (batch, n_kv, columns, hd); with dtype bf16, bfloat16 pairs: f32
   * tensors (batch, n_kv, columns, hd/2) whose 4-byte elements hold two bf16 values each.
   */
  readonly k: Tensor[];
  readonly v: Tensor[];
  /** The element type the keys and values are stored in: f32, or bf16 (half the memory; rounded to nearest even). */
  readonly dtype: KVDType;
  length = 0;
  batch: number;
  readonly capacity: number;
  /** The sliding window of the windowed layers, or null when every layer keeps the whole context. */
  readonly window: number | null;
  /** Positions before the newest that the rolling buffers keep when they roll: window − 1 + history. */
  readonly keep: number;
  /** The position held in column 0 of the sliding-window layers' buffers (always 0 for the others). */
  first = 0;
  /** Per layer: whether it has a sliding window (a rolling buffer). */
  readonly windowed: readonly boolean[];
  /** Columns of the rolling buffers. */
  private cols: number;
  constructor(readonly config: LlamaConfig, batch: number, readonly maxLength: number, readonly history = 0, dtype: KVDType = 'f32') {
    this.batch = this.capacity = batch;
    if (!KV_DTYPES.includes(dtype)) throw new DecodeStateError(`KVCache: dtype ${JSON.stringify(dtype)} is not one of ${KV_DTYPES.join(', ')}`);
    if (dtype === 'bf16' && config.head_dim % 2) throw new DecodeStateError(`KVCache: a bf16 cache needs an even head dimension, got ${config.head_dim}`);
    this.dtype = dtype;
    const from = config.max_window_layers ?? 0;
    this.windowed = Array.from({ length: config.num_hidden_layers }, (_, i) => config.sliding_window !== null && i >= from);
    // (Qwen2's max_window_layers may leave no layer windowed: then the cache is a plain one.)
    const W = this.window = this.windowed.some((w) => w) ? config.sliding_window : null;
    if (!Number.isInteger(history) || history < 0) throw new DecodeStateError(`KVCache: history ${history} is not a non-negative integer`);
    if (!(maxLength >= 0) || (!Number.isInteger(maxLength) && (maxLength !== Infinity || this.windowed.some((w) => !w)))) {
      throw new DecodeStateError(`KVCache: maxLength ${maxLength} is not a non-negative integer${maxLength === Infinity ? ' (only a model whose every layer has a sliding window has no length limit)' : ''}`);
    }
    this.keep = W === null ? 0 : W - 1 + history;
    this.cols = W === null ? maxLength : Math.min(maxLength, this.keep + W);
    const shape = (l: number): number[] => [batch, config.num_key_value_heads, this.windowed[l] ? this.cols : maxLength, dtype === 'bf16' ? config.head_dim / 2 : config.head_dim];
    this.k = unscoped(() => Array.from({ length: config.num_hidden_layers }, (_, l) => T.empty(shape(l))));
    this.v = unscoped(() => Array.from({ length: config.num_hidden_layers }, (_, l) => T.empty(shape(l))));
  }
  /** The position held in layer l's column 0. */
  firstOf(layer: number): number {
    return this.windowed[layer] ? this.first : 0;
  }
  /** New positions one forward may add without growing a rolling buffer (Infinity: no limit but maxLength). */
  get room(): number {
    return this.window === null || this.cols >= this.maxLength ? Infinity : this.cols - this.keep;
  }
  /** Layer l's keys or values of the rows in use (batch, n_kv, columns, hd). */
  private rows(t: Tensor): Tensor {
    return this.batch === this.capacity ? t : T.slice(t, 0, 0, this.batch);
  }
  /**
   * Make room for t new positions (called by the model before its layers run): the rolling
   * buffers drop what no later query can see (keeping `keep` positions), or grow when t is more
   * than their room (a large token tree).
   */
  reserve(t: number): void {
    const end = this.length + t;
    if (end > this.maxLength) throw new ShapeError('KVCache', `cache of ${this.maxLength} positions cannot hold ${end}`);
    if (this.window === null || end - this.first <= this.cols) return;
    const first = Math.max(this.first, this.length - this.keep);
    if (first > this.first) {
      const a = first - this.first, b = this.length - this.first;
      scope(() => this.k.forEach((_, l) => {
        if (!this.windowed[l]) return;
        for (const t of [this.k[l], this.v[l]]) {
          const r = this.rows(t), kept = T.clone(T.slice(r, 2, a, b));
          T.copyInto(T.slice(r, 2, 0, b - a), kept);
        }
      }));
      this.first = first;
    }
    if (end - first > this.cols) this.grow(end - first);
  }
  /** Reallocate the rolling buffers with `cols` columns, keeping the positions held. */
  private grow(cols: number): void {
    const n = this.length - this.first;
    this.k.forEach((_, l) => {
      if (!this.windowed[l]) return;
      for (const arr of [this.k, this.v]) {
        const old = arr[l], t = unscoped(() => T.empty([old.shape[0], old.shape[1], cols, old.shape[3]]));
        if (n > 0 && this.batch > 0) scope(() => T.copyInto(T.slice(T.slice(t, 0, 0, this.batch), 2, 0, n), T.slice(T.slice(old, 0, 0, this.batch), 2, 0, n)));
        arr[l] = t;
        old.dispose();
      }
    });
    this.cols = cols;
  }
  /**
   * Store this step's k/v (B, n_kv, T, hd) at positions length…length+T−1; return the layer's
   * keys/values from firstOf(layer) on, as stored (bf16 pairs in a bf16 cache: attention's kvBf16).
   */
  update(layer: number, k: Tensor, v: Tensor): [Tensor, Tensor] {
    const f = this.firstOf(layer), a = this.length - f, end = a + k.shape[2];
    this.checkFits(layer, end);
    const kc = this.rows(this.k[layer]), vc = this.rows(this.v[layer]);
    const half = this.dtype === 'bf16';
    T.copyInto(T.slice(kc, 2, a, end), half ? toBf16Pairs(k) : k);
    T.copyInto(T.slice(vc, 2, a, end), half ? toBf16Pairs(v) : v);
    return [T.slice(kc, 2, 0, end), T.slice(vc, 2, 0, end)];
  }
  private checkFits(layer: number, end: number): void {
    if (end + this.firstOf(layer) > this.maxLength) throw new ShapeError('KVCache', `cache of ${this.maxLength} positions cannot hold ${end + this.firstOf(layer)}`);
    if (end > this.k[layer].shape[2]) throw new ShapeError('KVCache', `layer ${layer}'s rolling buffer of ${this.k[layer].shape[2]} columns cannot hold positions ${this.first}…${this.first + end - 1} (reserve() first)`);
  }
  /**
   * Inference: the fused q/k/v projection qkv (B, T, (Hq + 2·n_kv)·hd) of this step gets RoPE
   * (cos/sin (T, hd/2)): q in place, k and v written straight into the cache at positions
   * length…length+T−1 (one kernel). Returns the layer's keys/values, as update().
   */
  ropeAppend(layer: number, qkv: Tensor, Hq: number, cos: Tensor, sin: Tensor): [Tensor, Tensor] {
    const a = this.length - this.firstOf(layer), end = a + qkv.shape[1];
    this.checkFits(layer, end);
    const kc = this.rows(this.k[layer]), vc = this.rows(this.v[layer]);
    ropeQkvToCache(qkv, kc, vc, a, cos, sin, Hq, this.config.num_key_value_heads, { bf16: this.dtype === 'bf16' });
    return [T.slice(kc, 2, 0, end), T.slice(vc, 2, 0, end)];
  }
  truncate(length: number): void {
    if (!Number.isInteger(length) || length < 0 || length > this.length) throw new DecodeStateError(`KVCache.truncate: length ${length} outside [0, ${this.length}]`);
    if (length === 0) this.first = 0;
    else if (this.window !== null && this.first > Math.max(0, length - this.window + 1)) {
      throw new DecodeStateError(`KVCache.truncate: rolling back ${this.length - length} positions to ${length} needs the keys from position ${length - this.window + 1} on, ` +
        `but the sliding-window layers' rolling buffer (window ${this.window}) has let them go (it holds ${this.first}…${this.length - 1}); ` +
        `create the state with newState(batch, maxLength, { history: ${this.length - length} }) or more`);
    }
    this.length = length;
  }
  compact(start: number, keep: readonly number[]): void {
    const n = this.length - start;
    if (!Number.isInteger(start) || start < 0 || n < 0) throw new DecodeStateError(`KVCache.compact: start ${start} outside [0, ${this.length}]`);
    if (this.window !== null && start < this.first) throw new DecodeStateError(`KVCache.compact: start ${start} is before the positions the rolling buffer holds (${this.first}…${this.length - 1})`);
    keep.forEach((p, j) => {
      if (!Number.isInteger(p) || p < 0 || p >= n || (j > 0 && p <= keep[j - 1])) {
        throw new DecodeStateError(`KVCache.compact: keep must be strictly ascending offsets in [0, ${n}), got [${keep.join(', ')}]`);
      }
    });
    scope(() => {
      // Runs of consecutive kept positions move together (cloned first: a run may overlap its destination).
      for (let j = 0; j < keep.length;) {
        let e = j + 1;
        while (e < keep.length && keep[e] === keep[e - 1] + 1) e++;
        if (keep[j] !== j) {
          const src = [...this.blocks(0, this.batch, start + keep[j], start + keep[j] + e - j)];
          [...this.blocks(0, this.batch, start + j, start + e)].forEach((b, i) => T.copyInto(b, T.clone(src[i])));
        }
        j = e;
      }
    });
    this.length = start + keep.length;
  }
  /** Positions [from, to) of rows [r0, r1) of every layer's keys and values (from on the positions each layer holds). */
  private *blocks(r0: number, r1: number, from: number, to: number): IterableIterator<Tensor> {
    const L = this.k.length;
    for (const [i, t] of [...this.k, ...this.v].entries()) {
      const f = this.firstOf(i % L), a = Math.max(from, f);
      yield T.slice(T.slice(t, 0, r0, r1), 2, a - f, Math.max(a, to) - f);
    }
  }
  select(rows: readonly number[]): void {
    checkRows(rows, this.batch, 'KVCache');
    const L = this.length;
    scope(() => {
      // Rows that move are read before any is overwritten.
      const moves = rows.map((src, dst) => [src, dst]).filter(([src, dst]) => src !== dst);
      const saved = moves.map(([src]) => [...this.blocks(src, src + 1, 0, L)].map((b) => T.clone(b)));
      moves.forEach(([, dst], i) => [...this.blocks(dst, dst + 1, 0, L)].forEach((b, j) => T.copyInto(b, saved[i][j])));
    });
    this.batch = rows.length;
  }
  append(src: DecodeState): void {
    if (!(src instanceof KVCache) || src.k.length !== this.k.length || src.k[0].shape.slice(1, 2).join() !== this.k[0].shape.slice(1, 2).join() || src.k[0].shape[3] !== this.k[0].shape[3] || src.window !== this.window) {
      throw new DecodeStateError('KVCache.append: the source is not a KV cache of the same model');
    }
    if (src.dtype !== this.dtype) throw new DecodeStateError(`KVCache.append: the source holds ${src.dtype} keys and values, this cache ${this.dtype}`);
    const n = src.batch, r0 = this.batch;
    if (r0 + n > this.capacity) throw new DecodeStateError(`KVCache.append: ${r0} + ${n} rows exceed the capacity of ${this.capacity}`);
    const L = Math.max(this.length, src.length);
    if (L > this.maxLength) throw new DecodeStateError(`KVCache.append: ${L} positions exceed the cache of ${this.maxLength}`);
    // Rows already here move right by d (their new leading columns are padding); the source's
    // rows start c0 columns in. The rolling buffers hold from the first position either side holds,
    // as far back as they have columns (older positions are outside every later query's window).
    const d = L - this.length, c0 = L - src.length;
    const first = this.window === null ? 0 : Math.max(Math.min(r0 > 0 ? this.first + d : L, src.first + c0), L - this.cols);
    const zero = (b: Tensor): void => T.copyInto(b, T.zeros([...b.shape]));
    scope(() => this.k.forEach((_, l) => {
      const w = this.windowed[l], f0 = this.firstOf(l), f1 = w ? first : 0, sf = src.firstOf(l);
      for (const [mine, theirs] of [[this.k[l], src.k[l]], [this.v[l], src.v[l]]]) {
        if (r0 > 0) {
          const rows = T.slice(mine, 0, 0, r0), a = Math.max(f0 + d, f1);
          if (a < L && d + f0 !== f1) {
            const moved = T.clone(T.slice(rows, 2, a - d - f0, L - d - f0));
            T.copyInto(T.slice(rows, 2, a - f1, L - f1), moved);
          }
          if (a > f1) zero(T.slice(rows, 2, 0, Math.min(a, L) - f1));
        }
        const rows = T.slice(mine, 0, r0, r0 + n), b = Math.max(sf + c0, f1);
        if (b < L) T.copyInto(T.slice(rows, 2, b - f1, L - f1), T.slice(T.slice(theirs, 0, 0, n), 2, b - c0 - sf, L - c0 - sf));
        // Masked padding must still be finite (a masked NaN poisons the softmax).
        if (b > f1) zero(T.slice(rows, 2, 0, Math.min(b, L) - f1));
      }
    }));
    this.first = first;
    this.length = L;
    this.batch = r0 + n;
  }
  dropLeading(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.length) throw new DecodeStateError(`KVCache.dropLeading: ${n} outside [0, ${this.length}]`);
    if (n === 0) return;
    const L = this.length;
    // Layers whose column 0 is at or after position n only renumber; the others move left.
    scope(() => this.k.forEach((_, l) => {
      const f = this.firstOf(l);
      if (f >= n) return;
      for (const t of [this.k[l], this.v[l]]) {
        const r = this.rows(t), kept = T.clone(T.slice(r, 2, n - f, L - f));
        T.copyInto(T.slice(r, 2, 0, L - n), kept);
      }
    }));
    this.first = Math.max(0, this.first - n);
    this.length = L - n;
  }
  clone(): KVCache {
    const c = new KVCache(this.config, this.capacity, this.maxLength, this.history, this.dtype);
    if (c.cols < this.cols) c.grow(this.cols);
    c.batch = this.batch;
    c.length = this.length;
    c.first = this.first;
    scope(() => {
      const mine = [...this.blocks(0, this.batch, 0, this.length)];
      [...c.blocks(0, c.batch, 0, c.length)].forEach((b, i) => T.copyInto(b, mine[i]));
    });
    return c;
  }
  dispose(): void {
    for (const t of [...this.k, ...this.v]) t.dispose();
  }
}

/**
 * Chameleon's QK-norm: each head's vector normalised over head_dim (no affine), then scaled and
 * shifted by a weight and bias per (head, dim), as HF's ChameleonLayerNorm((heads, head_dim)).
 */
class HeadNorm extends Module {
  weight: Tensor;
  bias: Tensor;
  constructor(heads: number, headDim: number, private readonly eps = 1e-5) {
    super();
    this.weight = parameter(() => T.ones([heads, headDim]));
    this.bias = parameter(() => T.zeros([heads, headDim]));
  }
  /** x (B, T, heads, head_dim). */
  forward(x: Tensor): Tensor {
    return T.add(T.mul(layerNorm(x, null, null, this.eps), this.weight), this.bias);
  }
}

class LlamaAttention extends Module {
  q_proj: Linear;
  k_proj: Linear;
  v_proj: Linear;
  o_proj: Linear;
  q_norm?: HeadNorm;
  k_norm?: HeadNorm;
  constructor(private readonly c: LlamaConfig, g: Generator) {
    super();
    const D = c.hidden_size, hd = c.head_dim, std = c.initializer_range;
    const qkvBias = c.attention_bias;
    this.q_proj = new Linear(D, c.num_attention_heads * hd, { bias: qkvBias, generator: g, std });
    this.k_proj = new Linear(D, c.num_key_value_heads * hd, { bias: qkvBias, generator: g, std });
    this.v_proj = new Linear(D, c.num_key_value_heads * hd, { bias: qkvBias, generator: g, std });
    this.o_proj = new Linear(c.num_attention_heads * hd, D, { bias: c.attention_bias && c.model_type !== 'qwen2' && c.model_type !== 'qwen2_moe', generator: g, std });
    shareStorage([this.q_proj, this.k_proj, this.v_proj]);
    if (c.qk_norm) {
      this.q_norm = new HeadNorm(c.num_attention_heads, hd);
      this.k_norm = new HeadNorm(c.num_key_value_heads, hd);
    }
  }
  forward(x: Tensor, pos: Positions, cache: KVCache | null, layer: number): Tensor {
    const [B, Tn] = x.shape;
    const { num_attention_heads: H, num_key_value_heads: Hkv, head_dim: hd } = this.c;
    // rope on the (B, T, heads, hd) layout the projections produce, then heads first.
    let qh = T.reshape(this.q_proj.forward(x), [B, Tn, H, hd]), kh = T.reshape(this.k_proj.forward(x), [B, Tn, Hkv, hd]);
    if (this.q_norm && this.k_norm) { qh = this.q_norm.forward(qh); kh = this.k_norm.forward(kh); }
    const q = T.transpose(applyRope(qh, pos), 1, 2);
    let k = T.transpose(applyRope(kh, pos), 1, 2);
    let v = T.transpose(T.reshape(this.v_proj.forward(x), [B, Tn, Hkv, hd]), 1, 2);
    if (cache) [k, v] = cache.update(layer, k, v);
    [k, v] = visible(k, v, pos, cache ? cache.firstOf(layer) : 0);
    const a = attention(q, k, v, { causal: true, mask: pos.mask, kvBf16: cache?.dtype === 'bf16' }); // (B, H, T, hd)
    return this.o_proj.forward(T.reshape(T.transpose(a, 1, 2), [B, Tn, H * hd]));
  }
  /**
   * Inference (no autograd): h += attention block of x, in place. q, k and v come from one
   * matmul with the rows of the three weights (adjacent in one storage), RoPE runs once over
   * the q and k heads, and o_proj accumulates into h.
   */
  forwardInto_(h: Tensor, x: Tensor, pos: Positions, cache: KVCache | null, layer: number): void {
    const w = fusedRows([this.q_proj, this.k_proj, this.v_proj]);
    if (!w || !plainLinear(this.o_proj) || this.q_norm) { T.addInPlace(h, this.forward(x, pos, cache, layer)); return; }
    const [B, Tn] = x.shape;
    const { num_attention_heads: H, num_key_value_heads: Hkv, head_dim: hd } = this.c;
    const qkv = T.linear(x, w); // (B, T, (H + 2·Hkv)·hd)
    let q: Tensor, k: Tensor, v: Tensor;
    if (cache && !pos.rows) {
      // Decoding and plain prefill: RoPE and the cache write in one kernel; q stays in qkv.
      [k, v] = cache.ropeAppend(layer, qkv, H, pos.cos, pos.sin);
      q = T.transpose(T.reshapeView(T.slice(qkv, 2, 0, H * hd), [B, Tn, H, hd]), 1, 2);
    } else {
      const qk = applyRope(T.reshape(T.slice(qkv, 2, 0, (H + Hkv) * hd), [B, Tn, H + Hkv, hd]), pos);
      q = T.transpose(T.slice(qk, 2, 0, H), 1, 2);
      k = T.transpose(T.slice(qk, 2, H, H + Hkv), 1, 2);
      v = T.transpose(T.reshapeView(T.slice(qkv, 2, (H + Hkv) * hd), [B, Tn, Hkv, hd]), 1, 2);
      if (cache) [k, v] = cache.update(layer, k, v);
    }
    [k, v] = visible(k, v, pos, cache ? cache.firstOf(layer) : 0);
    const a = attention(q, k, v, { causal: true, mask: pos.mask, kvBf16: cache?.dtype === 'bf16' }); // (B, H, T, hd)
    T.addLinearInPlace(h, T.reshape(T.transpose(a, 1, 2), [B, Tn, H * hd]), this.o_proj.weight);
  }
  /** The fused q/k/v rows and o_proj's weight when forwardInto_ takes its fused path (for a DecodePlan); else null. */
  planWeights(): { qkv: Tensor; o: Tensor } | null {
    const w = fusedRows([this.q_proj, this.k_proj, this.v_proj]);
    return w && plainLinear(this.o_proj) && !this.q_norm ? { qkv: w, o: this.o_proj.weight } : null;
  }
  /** What planWeights depends on, added to a plan's watch list. */
  planWatch(w: PlanWatch): void {
    watchLinear(w, this, 'q_proj'); watchLinear(w, this, 'k_proj'); watchLinear(w, this, 'v_proj'); watchLinear(w, this, 'o_proj');
    w.see(this, 'q_norm');
  }
}

class LlamaMLP extends Module {
  gate_proj: Linear;
  up_proj: Linear;
  down_proj: Linear;
  constructor(c: LlamaConfig, g: Generator) {
    super();
    const o = { bias: c.mlp_bias, generator: g, std: c.initializer_range };
    this.gate_proj = new Linear(c.hidden_size, c.intermediate_size, o);
    this.up_proj = new Linear(c.hidden_size, c.intermediate_size, o);
    this.down_proj = new Linear(c.intermediate_size, c.hidden_size, o);
    shareStorage([this.gate_proj, this.up_proj]);
  }
  forward(x: Tensor): Tensor {
    return this.down_proj.forward(T.mul(T.silu(this.gate_proj.forward(x)), this.up_proj.forward(x)));
  }
  /** Inference (no autograd): h += MLP of x, in place; gate and up in one matmul. */
  forwardInto_(h: Tensor, x: Tensor): void {
    const w = fusedRows([this.gate_proj, this.up_proj]);
    if (!w || !plainLinear(this.down_proj)) { T.addInPlace(h, this.forward(x)); return; }
    const gu = T.linear(x, w); // (B, T, 2·I)
    T.addLinearInPlace(h, swiglu(gu), this.down_proj.weight); // silu(gate) ⊙ up, one kernel
  }
  /** The fused gate/up rows and down_proj's weight when forwardInto_ takes its fused path; else null. */
  planWeights(): { gu: Tensor; down: Tensor } | null {
    const w = fusedRows([this.gate_proj, this.up_proj]);
    return w && plainLinear(this.down_proj) ? { gu: w, down: this.down_proj.weight } : null;
  }
  planWatch(w: PlanWatch): void {
    watchLinear(w, this, 'gate_proj'); watchLinear(w, this, 'up_proj'); watchLinear(w, this, 'down_proj');
  }
}

/**
 * What a decoding plan was made from: properties (holder, key) and the values they held then. The
 * plan serves while every one still holds its value (compared by identity), checked every step —
 * a LoRA adapter wrapping a projection, weights replaced by quantised ones or a layer swapped
 * makes a new plan. Listed once when the plan is made; the check is one small loop (a fresh
 * process compiles it in a moment, where walking the model every step took tens of milliseconds
 * of compiles in its first generation).
 */
export class PlanWatch {
  private holders: object[] = [];
  private keys: (string | number)[] = [];
  private values: unknown[] = [];
  /** Watches holder[key] (a holder watched before it, so a replaced holder fails first); returns its value. */
  see<V = unknown>(holder: object, key: string | number): V {
    const v = (holder as Record<string | number, unknown>)[key];
    this.holders.push(holder);
    this.keys.push(key);
    this.values.push(v);
    return v as V;
  }
  /** Whether every watched property still holds the value it had. */
  holds(): boolean {
    const { holders, keys, values } = this;
    for (let i = 0; i < holders.length; i++) if ((holders[i] as Record<string | number, unknown>)[keys[i]] !== values[i]) return false;
    return true;
  }
}

/** What a plan depends on of the projection holder[key]: the module, its weight and storage, its bias. */
function watchLinear(w: PlanWatch, holder: object, key: string): void {
  const l = w.see<Linear>(holder, key);
  w.see(w.see<Tensor>(l, 'weight'), 'storage');
  w.see(l, 'bias');
}

/** An RMSNorm as constructed with the model's eps and a contiguous f32 weight (a DecodePlan runs its kernel directly). */
function plainNorm(n: RMSNorm, eps: number): boolean {
  return n instanceof RMSNorm && n.constructor === RMSNorm && n.eps === eps && n.weight.dtype === 'f32' && n.weight.isContiguous();
}

class LlamaDecoderLayer extends Module {
  input_layernorm: RMSNorm;
  self_attn: LlamaAttention;
  post_attention_layernorm: RMSNorm;
  /** The feed-forward block: a SwiGLU MLP, or a sparse MoE block (named `block_sparse_moe` in Mixtral, `mlp` in Qwen2-MoE). */
  mlp?: LlamaMLP | SparseMoeBlock;
  block_sparse_moe?: SparseMoeBlock;
  private readonly _ffn: LlamaMLP | SparseMoeBlock;
  private readonly _swin: boolean;
  constructor(c: LlamaConfig, g: Generator, i: number) {
    super();
    this._swin = c.swin_norm === true;
    this.input_layernorm = new RMSNorm(c.hidden_size, c.rms_norm_eps);
    this.self_attn = new LlamaAttention(c, g);
    this.post_attention_layernorm = new RMSNorm(c.hidden_size, c.rms_norm_eps);
    const moe = moeLayer(c, i);
    const field = c.model_type === 'mixtral' ? 'block_sparse_moe' : 'mlp';
    this._ffn = moe ? new SparseMoeBlock({ ...moe, generator: g, std: c.initializer_range, name: `model.layers.${i}.${field}` }) : new LlamaMLP(c, g);
    if (field === 'block_sparse_moe') this.block_sparse_moe = this._ffn as SparseMoeBlock;
    else this.mlp = this._ffn;
  }
  /** `record` collects the router logits and load of MoE layers (for the auxiliary losses). */
  forward(h: Tensor, pos: Positions, cache: KVCache | null, layer: number, record?: RouterRecord[]): Tensor {
    const ffn = (x: Tensor): Tensor => (this._ffn instanceof SparseMoeBlock ? this._ffn.forward(x, record) : this._ffn.forward(x));
    if (this._swin) {
      // Chameleon's reordering: the norms on the blocks' outputs, the residual stream left raw.
      h = T.add(h, this.input_layernorm.forward(this.self_attn.forward(h, pos, cache, layer)));
      return T.add(h, this.post_attention_layernorm.forward(ffn(h)));
    }
    h = T.add(h, this.self_attn.forward(this.input_layernorm.forward(h), pos, cache, layer));
    return T.add(h, ffn(this.post_attention_layernorm.forward(h)));
  }
  /** This layer's weights for a DecodePlan, or null when it is not the plain graph (swin norm, MoE, q/k norms, biases, adapters). */
  planLayer(eps: number): PlanLayer | null {
    if (this._swin || !(this._ffn instanceof LlamaMLP) || !plainNorm(this.input_layernorm, eps) || !plainNorm(this.post_attention_layernorm, eps)) return null;
    const a = this.self_attn.planWeights(), m = this._ffn.planWeights();
    return a && m ? { inNorm: this.input_layernorm.weight, postNorm: this.post_attention_layernorm.weight, ...a, ...m } : null;
  }
  planWatch(w: PlanWatch): void {
    const attn = w.see<LlamaAttention>(this, 'self_attn'), ffn = w.see(this, '_ffn');
    w.see(w.see(this, 'input_layernorm'), 'weight');
    w.see(w.see(this, 'post_attention_layernorm'), 'weight');
    attn.planWatch(w);
    if (ffn instanceof LlamaMLP) ffn.planWatch(w);
  }
  /** Inference (no autograd): the same as forward, updating h in place. */
  forwardInto_(h: Tensor, pos: Positions, cache: KVCache | null, layer: number): void {
    if (this._swin) { T.copyInto(h, this.forward(h, pos, cache, layer)); return; }
    this.self_attn.forwardInto_(h, this.input_layernorm.forward(h), pos, cache, layer);
    const x = this.post_attention_layernorm.forward(h);
    this._ffn.forwardInto_(h, x);
  }
}

class LlamaModel extends Module {
  embed_tokens: Embedding;
  layers: LlamaDecoderLayer[];
  norm: RMSNorm;
  constructor(c: LlamaConfig, g: Generator) {
    super();
    this.embed_tokens = new Embedding(c.vocab_size, c.hidden_size, { generator: g, std: c.initializer_range });
    this.layers = Array.from({ length: c.num_hidden_layers }, (_, i) => new LlamaDecoderLayer(c, g, i));
    this.norm = new RMSNorm(c.hidden_size, c.rms_norm_eps);
  }
}

export class LlamaForCausalLM extends CausalLM {
  model: LlamaModel;
  /** The output projection; absent when tied to the input embedding. */
  lm_head: Linear | null;
  /** cos/sin for every position (max_position_embeddings, head_dim/2), computed once. */
  private _rope: { cos: Tensor; sin: Tensor };
  /** While loss() runs on a mixture of experts: what each MoE layer's router did. */
  private _record: RouterRecord[] | null = null;
  private _parts: LossParts | null = null;
  /** Whether decoding steps may run as a DecodePlan (false: always the generic layers; for tests and benchmarks). */
  static decodePlans = true;
  /** Decoding plans (llama_decode.ts) by B·65536 + Tn, with what each was made from. */
  private _plans = new Map<number, { plan: DecodePlan | null; watch: PlanWatch }>();

  constructor(readonly config: LlamaConfig, opts: { generator?: Generator } = {}) {
    super();
    const g = opts.generator ?? defaultGenerator;
    this.model = new LlamaModel(config, g);
    this.lm_head = config.tie_word_embeddings ? null : new Linear(config.hidden_size, config.vocab_size, { generator: g, std: config.initializer_range });
    this._rope = unscoped(() => {
      const t = ropeTables(config.max_position_embeddings, config.head_dim, { theta: config.rope_theta, scaling: config.rope_scaling?.factor ?? 1 });
      return { cos: t.cos.keep(), sin: t.sin.keep() };
    });
  }

  /**
   * max_position_embeddings; unbounded when every layer has a sliding window: its KV cache is a
   * rolling buffer of the window, and RoPE is computed for any position (positions beyond the
   * precomputed table get their own), as Hugging Face and llama.cpp do not refuse them either.
   */
  get contextLength(): number {
    const c = this.config;
    return c.sliding_window !== null && (c.max_window_layers ?? 0) === 0 ? Infinity : c.max_position_embeddings;
  }

  /**
   * Hidden states after the final norm (B, T, D). With `padLeft` (batched prompts of unequal
   * length, left-padded), row b's first padLeft[b] positions are padding: they are masked out
   * of attention and the row's positions start after them.
   */
  hidden(ids: Tensor, state: DecodeState | null = null, opts: ForwardOptions = {}): Tensor {
    if (ids.dtype !== 'i32' || ids.ndim !== 2) throw new ShapeError('LlamaForCausalLM', `input ids must be an i32 tensor (B, T), got ${ids.dtype} ${fmtShape(ids.shape)}`);
    if (state && !(state instanceof KVCache)) throw new DecodeStateError('LlamaForCausalLM: the decoding state is not a KV cache (made by another model family?)');
    const cache = state;
    const [B, Tn] = ids.shape;
    const start = cache ? cache.length : 0;
    if (cache && cache.batch !== B) throw new ShapeError('LlamaForCausalLM', `cache batch ${cache.batch} differs from input batch ${B}`);
    if (start + Tn > this.contextLength) {
      throw new ShapeError('LlamaForCausalLM', `positions up to ${start + Tn} exceed max_position_embeddings ${this.config.max_position_embeddings}`);
    }
    const win = this.config.sliding_window, firstWindowed = this.config.max_window_layers ?? 0;
    let pos: Positions;
    if (opts.tree) {
      const err = treeInputError(opts.tree, Tn);
      if (err) throw new ShapeError('LlamaForCausalLM', err);
      if (opts.padLeft?.some((p) => p > 0)) throw new ShapeError('LlamaForCausalLM', 'a token tree cannot be combined with left padding');
    } else if (cache && Tn > this.chunkOf(cache)) {
      // A prefill in chunks, each attending to the cache the ones before it filled.
      const step = this.chunkOf(cache), parts: Tensor[] = [];
      for (let a = 0; a < Tn; a += step) parts.push(this.hidden(T.contiguous(T.slice(ids, 1, a, Math.min(Tn, a + step))), cache, { padLeft: opts.padLeft }));
      return T.concat(parts, 1);
    }
    const padded = opts.padLeft?.some((p) => p > 0) ?? false;
    if (cache && Tn <= MAX_PLAN_TOKENS && LlamaForCausalLM.decodePlans && (cache.window === null || Tn === 1) && (!opts.tree || isChain(opts.tree, Tn)) &&
      start + Tn <= this._rope.cos.shape[0] && (!padded || (Tn === 1 && cache.window === null)) && !isGradEnabled() && !this._record) {
      // A decoding step (or a short chain to verify): the layers as a plan of kernel calls (the
      // same values as below; with left padding, attention over each row's own keys instead of a mask).
      const plan = this.decodePlan(B, Tn);
      if (plan) return this.model.norm.forward(plan.run(ids, cache, padded ? opts.padLeft! : null));
    }
    if (cache) cache.reserve(Tn);
    // When every layer has a window, keys before the first query's window are never looked at:
    // masks cover the keys from there on only (with a rolling cache the older ones are gone).
    const from = win !== null && firstWindowed === 0 ? Math.max(0, start - win + 1) : 0;
    if (opts.tree) {
      // A chain (every token the child of the one before) is plain causal attention.
      pos = isChain(opts.tree, Tn) ? this.positions(B, Tn, start, undefined, from) : this.treePositions(Tn, start, opts.tree, from);
    } else pos = this.positions(B, Tn, start, opts.padLeft, from);
    // Sliding-window layers see the keys of their window (Qwen2's first max_window_layers see all).
    const posW = win !== null && firstWindowed < this.config.num_hidden_layers ? slidingWindow(pos, win, start, Tn, opts.tree?.depth) : pos;
    const at = (i: number): Positions => (i >= firstWindowed ? posW : pos);
    let h = this.model.embed_tokens.forward(ids);
    // Without autograd the layers update the residual stream in place (fewer ops and copies), each
    // in a scope of its own: a layer's temporaries are freed before the next layer runs, so a
    // prefill's memory is one layer's, not every layer's (110M, 96-token prompt: 58 MB less RSS).
    if (!isGradEnabled() && !this._record) this.model.layers.forEach((layer, i) => scope(() => layer.forwardInto_(h, at(i), cache, i)));
    else this.model.layers.forEach((layer, i) => { h = layer.forward(h, at(i), cache, i, this._record ?? undefined); });
    if (cache) cache.length += Tn;
    return this.model.norm.forward(h);
  }

  /**
   * Most new positions one forward through `cache` takes at once: no more than the rolling buffers
   * have room for, and (without autograd) at most PREFILL_CHUNK positions' activations at a time,
   * as llama.cpp's micro-batches.
   */
  private chunkOf(cache: KVCache): number {
    return Math.min(cache.room, isGradEnabled() || this._record ? Infinity : PREFILL_CHUNK);
  }

  /**
   * The decoding plan for B rows of Tn tokens, or null when a layer is not the plain graph. Plans are kept
   * while the layers, their weights and norms are the same objects (a LoRA adapter wrapping a
   * projection, or weights replaced by quantised ones, makes a new plan).
   */
  private decodePlan(B: number, Tn: number): DecodePlan | null {
    const key = B * 0x10000 + Tn, got = this._plans.get(key);
    if (got && got.watch.holds()) return got.plan;
    got?.plan?.dispose();
    const watch = new PlanWatch(), model = watch.see<LlamaModel>(this, 'model');
    watch.see(watch.see<Tensor>(watch.see<Embedding>(model, 'embed_tokens'), 'weight'), 'storage');
    const layersNow = watch.see<LlamaDecoderLayer[]>(model, 'layers');
    watch.see(layersNow, 'length');
    const rope = watch.see<object>(this, '_rope');
    watch.see(rope, 'cos');
    watch.see(rope, 'sin');
    for (let i = 0; i < layersNow.length; i++) watch.see<LlamaDecoderLayer>(layersNow, i).planWatch(watch);
    const c = this.config, layers = this.model.layers.map((l) => l.planLayer(c.rms_norm_eps));
    const ok = layers.every((l): l is PlanLayer => l !== null) && c.head_dim % 2 === 0 && 2 * c.head_dim <= MAX_FUSED_HEAD_DIMS && this.model.embed_tokens.weight.isContiguous();
    const spec: PlanSpec | null = ok ? {
      layers: layers as PlanLayer[], embed: this.model.embed_tokens.weight, D: c.hidden_size, Hq: c.num_attention_heads, Hkv: c.num_key_value_heads,
      hd: c.head_dim, I: c.intermediate_size, eps: c.rms_norm_eps, cos: this._rope.cos, sin: this._rope.sin,
    } : null;
    if (got) this._plans.delete(key);
    const plan = spec ? new DecodePlan(spec, B, Tn) : null;
    if (this._plans.size >= 8) { for (const p of this._plans.values()) p.plan?.dispose(); this._plans.clear(); }
    this._plans.set(key, { plan, watch });
    return plan;
  }

  /** RoPE tables for positions start…start+n−1: a slice of the precomputed ones, computed beyond them. */
  private ropeRange(start: number, n: number): { cos: Tensor; sin: Tensor } {
    const c = this.config;
    if (start + n <= this._rope.cos.shape[0]) return { cos: T.slice(this._rope.cos, 0, start, start + n), sin: T.slice(this._rope.sin, 0, start, start + n) };
    return ropeTables(n, c.head_dim, { theta: c.rope_theta, scaling: c.rope_scaling?.factor ?? 1, offset: start });
  }

  /** Positions of Tn new tokens after `start`; the mask (if any) covers the keys from column `from` on. */
  private positions(B: number, Tn: number, start: number, padLeft?: number[], from = 0): Positions {
    const c = this.config;
    if (!padLeft || padLeft.every((p) => p === 0)) return { rows: null, ...this.ropeRange(start, Tn), mask: null, maskFrom: from };
    if (padLeft.length !== B) throw new ShapeError('LlamaForCausalLM', `padLeft has ${padLeft.length} entries for a batch of ${B}`);
    const S = start + Tn, K = S - from;
    // Keys at padding positions are masked; a padding query would then see no key at all, so
    // it sees itself (finite values that nothing reads: real queries give padding weight 0).
    const m = new Float32Array(B * Tn * K);
    padLeft.forEach((p, b) => {
      for (let i = 0; i < Tn; i++) for (let j = from; j < Math.min(p, S); j++) if (j !== start + i) m[(b * Tn + i) * K + j - from] = -Infinity;
    });
    const rows = padLeft.map((p) => ropeTables(Tn, c.head_dim, { theta: c.rope_theta, scaling: c.rope_scaling?.factor ?? 1, offset: start - p }));
    for (let b = 0; b < B; b++) if (padLeft[b] >= S) throw new ShapeError('LlamaForCausalLM', `row ${b} is all padding`);
    return { rows, cos: rows[0].cos, sin: rows[0].sin, mask: T.tensor(m, [B, 1, Tn, K]), maskFrom: from };
  }

  /**
   * A token tree after `start` positions: RoPE at start + depth[i], and a mask (1, 1, T, S) that
   * shows every earlier position and, among the new tokens, those of tree.mask (the causal mask
   * the attention adds as well hides nothing more: a token's ancestors precede it).
   */
  private treePositions(Tn: number, start: number, tree: { depth: readonly number[]; mask: Uint8Array }, from = 0): Positions {
    const table = this.ropeRange(start, Tn); // depth < Tn
    const at = T.tensor(Int32Array.from(tree.depth), [Tn], 'i32');
    const K = start + Tn - from, m = new Float32Array(Tn * K);
    for (let i = 0; i < Tn; i++) for (let j = 0; j < Tn; j++) if (!tree.mask[i * Tn + j]) m[i * K + start - from + j] = -Infinity;
    return { rows: null, cos: embedding(T.contiguous(table.cos), at), sin: embedding(T.contiguous(table.sin), at), mask: T.tensor(m, [1, 1, Tn, K]), maskFrom: from };
  }
  override get treeAttention(): boolean {
    return true;
  }
  /** Output logits from hidden states (tied or untied head). */
  project(h: Tensor): Tensor {
    return this.lm_head ? this.lm_head.forward(h) : T.linear(h, this.model.embed_tokens.weight);
  }

  /**
   * The cross-entropy, and for a mixture of experts the router's auxiliary losses over every MoE
   * layer's logits of this batch (HF's load_balancing_loss_func: E · Σ_e f_e · P_e, with f_e the
   * fraction of top-k assignments to expert e and P_e its mean router probability — added as
   * router_aux_loss_coef × aux when output_router_logits, as HF does; and ST-MoE's z-loss,
   * mean(logsumexp(logits)²), added as router_z_loss_coef × z).
   */
  override loss(ids: Tensor, targets?: Tensor, opts: { ignoreIndex?: number } = {}): Tensor {
    if (this.config.z_loss_coef) return this.zLoss(ids, targets, opts.ignoreIndex);
    if (!this.config.num_local_experts && !this.config.num_experts) return super.loss(ids, targets, opts);
    this._record = [];
    let ce: Tensor, rec: RouterRecord[];
    try {
      ce = super.loss(ids, targets, opts);
    } finally {
      rec = this._record;
      this._record = null;
    }
    if (!rec.length) { this._parts = null; return ce; }
    const c = this.config, E = rec[0].load.length;
    const logits = rec.length === 1 ? rec[0].logits : T.concat(rec.map((r) => r.logits), 0); // (L·N, E)
    const rows = logits.shape[0], k = c.num_experts_per_tok!;
    const f = new Float32Array(E);
    for (const r of rec) r.load.forEach((n, e) => { f[e] += n / rows; });
    const aux = T.mul(T.sum(T.mul(T.mean(softmax(logits, -1), 0), T.tensor(f, [E]))), E);
    const z = T.mean(T.pow(T.logsumexp(logits, -1), 2));
    let total = ce;
    if (c.output_router_logits && c.router_aux_loss_coef) total = T.add(total, T.mul(aux, c.router_aux_loss_coef));
    if (c.router_z_loss_coef) total = T.add(total, T.mul(z, c.router_z_loss_coef));
    this._parts = {
      values: { aux_loss: aux.item(), router_z_loss: z.item(), dropped_fraction: rec.reduce((s, r) => s + r.dropped, 0) / (rows * k) },
      expertLoad: rec.map((r) => { const n = r.load.reduce((a, b) => a + b, 0); return r.load.map((x) => x / n); }),
    };
    return total;
  }

  /**
   * The cross-entropy plus Chameleon's z-loss, z_loss_coef × mean over positions of
   * logsumexp(logits)² (it keeps the output softmax's normaliser near 1, which the paper found
   * needed for stable mixed-modal training), reported as the part z_loss.
   */
  private zLoss(ids: Tensor, targets: Tensor | undefined, ignoreIndex?: number): Tensor {
    const pair = nextTokenPair(ids, targets);
    const logits = this.forward(pair.inputs);
    const V = logits.shape[logits.ndim - 1];
    const flat = T.reshape(logits, [-1, V]);
    const ce = crossEntropy(flat, T.reshape(pair.targets, [-1]), { ignoreIndex });
    const z = T.mean(T.pow(T.logsumexp(flat, -1), 2));
    this._parts = { values: { z_loss: z.item() } };
    return T.add(ce, T.mul(z, this.config.z_loss_coef!));
  }

  override lossParts(): LossParts | null {
    return this._parts;
  }

  /** Without the experts a token does not visit: (E − k) experts of every MoE layer. */
  override numActiveParameters(): number {
    let idle = 0;
    this.model.layers.forEach((layer, i) => {
      const moe = moeLayer(this.config, i), block = layer.block_sparse_moe ?? layer.mlp;
      if (moe && block instanceof SparseMoeBlock) idle += (moe.experts - moe.topK) * block.experts[0].numParameters();
    });
    return this.numParameters() - idle;
  }

  /**
   * The element type of the KV caches newState makes: f32 (the default), or bf16 (half the
   * memory and half the bytes attention reads per step; each key and value rounded to nearest
   * even). CLI: --kv-dtype.
   */
  kvDtype: KVDType = 'f32';

  /** A KV cache (of kvDtype); `history`: positions truncate() can roll back on sliding-window layers (the others always can). */
  newState(batch: number, maxLength = this.contextLength, opts: { history?: number } = {}): KVCache {
    return new KVCache(this.config, batch, maxLength, opts.history ?? 0, this.kvDtype);
  }

  configJson(): Record<string, unknown> {
    return llamaConfigToJson(this.config);
  }

  /** Free the buffers of the decoding plans made so far (they are made again when next needed). */
  releaseDecodePlans(): void {
    for (const p of this._plans.values()) p.plan?.dispose();
    this._plans.clear();
  }

  override dispose(): void {
    super.dispose();
    this.releaseDecodePlans();
    this._rope.cos.dispose();
    this._rope.sin.dispose();
  }
}

/** Rotary tables for a step: shared by all rows, or one pair per row (left-padded batches). */
interface Positions {
  cos: Tensor;
  sin: Tensor;
  rows: { cos: Tensor; sin: Tensor }[] | null;
  /** Additive padding mask (B, 1, T, S − maskFrom) or null: keys from maskFrom on (S − keyStart after slidingWindow). */
  mask: Tensor | null;
  /** The first key (position) the mask covers. */
  maskFrom: number;
  /** Keys before this index are outside every query's sliding window: attention leaves them out. */
  keyStart?: number;
}

/**
 * Sliding-window attention (Mistral; Qwen2 with use_sliding_window): a query at position p sees
 * the keys at positions p − window + 1 … p, as HF's sliding-window causal mask. Keys before the
 * first query's window are left out of the attention (for decoding that is the whole effect: one
 * query, the last `window` keys, no mask); the band of further keys hidden from later queries
 * of a prefill or a training sequence is added to the mask. In a token tree a token's position
 * is start + its depth.
 */
function slidingWindow(pos: Positions, window: number, start: number, Tn: number, depth?: readonly number[]): Positions {
  const S = start + Tn;
  const qpos = (i: number): number => (depth ? start + depth[i] : start + i);
  const kpos = (j: number): number => (depth && j >= start ? start + depth[j - start] : j);
  let minQ = Infinity;
  for (let i = 0; i < Tn; i++) minQ = Math.min(minQ, qpos(i));
  const lo = Math.max(0, minQ - window + 1);
  const W = S - lo;
  let band: Float32Array | null = null;
  for (let i = 0; i < Tn; i++) {
    const edge = qpos(i) - window; // keys at or before this position are hidden
    for (let j = lo; j < S && kpos(j) <= edge; j++) (band ??= new Float32Array(Tn * W))[i * W + j - lo] = -Infinity;
  }
  if (lo === 0 && !band) return pos;
  let mask = pos.mask && lo > pos.maskFrom ? T.slice(pos.mask, 3, lo - pos.maskFrom, S - pos.maskFrom) : pos.mask;
  if (band) {
    const b = T.tensor(band, [1, 1, Tn, W]);
    mask = mask ? T.add(mask, b) : b;
  }
  return { ...pos, mask, keyStart: lo };
}

/** The keys and values attention sees: those from pos.keyStart on, of k/v (B, n_kv, S − first, hd) holding the positions from `first` on. */
function visible(k: Tensor, v: Tensor, pos: Positions, first: number): [Tensor, Tensor] {
  const from = pos.keyStart ?? 0;
  if (from === first) return [k, v];
  if (from < first) throw new ShapeError('LlamaForCausalLM', `attention needs the keys from position ${from}, the cache holds them from ${first}`);
  const S = k.shape[2];
  return [T.slice(k, 2, from - first, S), T.slice(v, 2, from - first, S)];
}

/** Whether a (checked) token tree is a chain: depth i for token i, which sees every token before it. */
function isChain(tree: { depth: readonly number[]; mask: Uint8Array }, Tn: number): boolean {
  for (let i = 0; i < Tn; i++) if (tree.depth[i] !== i) return false;
  return true; // depth i with a valid ancestor mask sees i + 1 tokens, all of 0…i
}

/** rope of x (B, T, heads, hd) with the step's positions. */
function applyRope(x: Tensor, pos: Positions): Tensor {
  if (!pos.rows) return rope(x, pos.cos, pos.sin, { seqDim: 1 });
  return T.concat(pos.rows.map((r, b) => rope(T.slice(x, 0, b, b + 1), r.cos, r.sin, { seqDim: 1 })), 0);
}

export { ConfigError };
