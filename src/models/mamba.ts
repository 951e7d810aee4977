// Mamba (Gu & Dao 2023) as Hugging Face's MambaForCausalLM: a stack of residual blocks, each
// RMSNorm → Mamba mixer (src/nn/mamba.ts), a final RMSNorm and a (usually tied) head. No
// attention and no positions: decoding carries a fixed-size state per layer (the convolution's
// last inputs and the SSM state), so a token costs the same at any context length.
//
//   h = embeddings(ids)                                  // (B, L, D)
//   for each layer: h = h + mixer(norm(h))
//   logits = lm_head(norm_f(h))                          // (B, L, V)
import { Tensor } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { Generator, defaultGenerator } from '../tensor/random.js';
import { Module, initEnabled } from '../nn/module.js';
import { Embedding, Linear, RMSNorm } from '../nn/layers.js';
import { MambaMixer } from '../nn/mamba.js';
import { ConfigError, boolField, idsField, intField, numField } from './config.js';
import { RecurrentLM } from './recurrent.js';
import type { RecurrentBlock } from './recurrent.js';

/** HF MambaConfig's fields (defaults as transformers' MambaConfig). */
export interface MambaConfig {
  model_type: 'mamba';
  vocab_size: number;
  hidden_size: number;
  /** N, the SSM state size per channel. */
  state_size: number;
  num_hidden_layers: number;
  layer_norm_epsilon: number;
  expand: number;
  /** d_inner = ⌊expand · hidden_size⌋ (HF writes it; a different value is an error). */
  intermediate_size: number;
  conv_kernel: number;
  use_bias: boolean;
  use_conv_bias: boolean;
  hidden_act: 'silu';
  initializer_range: number;
  /** Every computation here is f32, so the residual stream is always f32. */
  residual_in_fp32: boolean;
  /** Δ's projection rank ("auto" in a config = ⌈hidden_size / 16⌉). */
  time_step_rank: number;
  time_step_scale: number;
  time_step_min: number;
  time_step_max: number;
  time_step_init_scheme: 'random' | 'constant';
  time_step_floor: number;
  rescale_prenorm_residual: boolean;
  tie_word_embeddings: boolean;
  bos_token_id: number | null;
  eos_token_id: number[] | null;
  pad_token_id: number | null;
}

export const MAMBA_MODEL_TYPES = ['mamba'] as const;

/** Validate an HF MambaConfig object; errors name `source` and the field. */
export function parseMambaConfig(raw: Record<string, unknown>, source = 'config.json'): MambaConfig {
  if (raw.model_type !== 'mamba') throw new ConfigError(source, `model_type ${JSON.stringify(raw.model_type)} is not "mamba"`);
  const hidden = intField(raw, 'hidden_size', source);
  const expand = numField(raw, 'expand', source, 2);
  const inner = Math.floor(expand * hidden);
  if (inner < 1) throw new ConfigError(source, `expand ${expand} × hidden_size ${hidden} leaves no inner channels`);
  if (raw.intermediate_size !== undefined && raw.intermediate_size !== inner) {
    throw new ConfigError(source, `field "intermediate_size" (d_inner) is ${JSON.stringify(raw.intermediate_size)}, but expand × hidden_size = ${expand} × ${hidden} = ${inner}`);
  }
  const rank = raw.time_step_rank === undefined || raw.time_step_rank === 'auto' ? Math.ceil(hidden / 16) : intField(raw, 'time_step_rank', source);
  const act = raw.hidden_act ?? 'silu';
  if (act !== 'silu') throw new ConfigError(source, `hidden_act ${JSON.stringify(act)} is not supported (silu)`);
  const scheme = raw.time_step_init_scheme ?? 'random';
  if (scheme !== 'random' && scheme !== 'constant') throw new ConfigError(source, `time_step_init_scheme ${JSON.stringify(scheme)} must be "random" or "constant"`);
  const pad = idsField(raw, 'pad_token_id', source);
  const bos = idsField(raw, 'bos_token_id', source);
  return {
    model_type: 'mamba',
    vocab_size: intField(raw, 'vocab_size', source),
    hidden_size: hidden,
    state_size: intField(raw, 'state_size', source, 16),
    num_hidden_layers: intField(raw, 'num_hidden_layers', source),
    layer_norm_epsilon: numField(raw, 'layer_norm_epsilon', source, 1e-5),
    expand,
    intermediate_size: inner,
    conv_kernel: intField(raw, 'conv_kernel', source, 4),
    use_bias: boolField(raw, 'use_bias', source, false),
    use_conv_bias: boolField(raw, 'use_conv_bias', source, true),
    hidden_act: 'silu',
    initializer_range: numField(raw, 'initializer_range', source, 0.1),
    residual_in_fp32: boolField(raw, 'residual_in_fp32', source, true),
    time_step_rank: rank,
    time_step_scale: numField(raw, 'time_step_scale', source, 1),
    time_step_min: numField(raw, 'time_step_min', source, 0.001),
    time_step_max: numField(raw, 'time_step_max', source, 0.1),
    time_step_init_scheme: scheme,
    time_step_floor: numField(raw, 'time_step_floor', source, 1e-4),
    rescale_prenorm_residual: boolField(raw, 'rescale_prenorm_residual', source, false),
    tie_word_embeddings: boolField(raw, 'tie_word_embeddings', source, true),
    bos_token_id: bos ? bos[0] : null,
    eos_token_id: idsField(raw, 'eos_token_id', source),
    pad_token_id: pad ? pad[0] : null,
  };
}

/** The config as an HF config.json object (with architectures), for saving. */
export function mambaConfigToJson(c: MambaConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { architectures: ['MambaForCausalLM'], ...c, torch_dtype: 'float32' };
  if (c.eos_token_id && c.eos_token_id.length === 1) out.eos_token_id = c.eos_token_id[0];
  return out;
}

class MambaBlock extends Module implements RecurrentBlock {
  norm: RMSNorm;
  mixer: MambaMixer;
  constructor(c: MambaConfig, g: Generator) {
    super();
    this.norm = new RMSNorm(c.hidden_size, c.layer_norm_epsilon);
    this.mixer = new MambaMixer({
      hidden: c.hidden_size, inner: c.intermediate_size, state: c.state_size, conv: c.conv_kernel, dtRank: c.time_step_rank,
      useBias: c.use_bias, useConvBias: c.use_conv_bias, dtMin: c.time_step_min, dtMax: c.time_step_max, dtFloor: c.time_step_floor,
      dtScale: c.time_step_scale, dtInit: c.time_step_init_scheme, generator: g,
    });
  }
  /** state: this layer's [conv (B, d_conv − 1, d_inner), ssm (B, d_inner, N)], advanced in place. */
  forward(h: Tensor, state: Tensor[] | null, keep: Tensor | null): Tensor {
    return T.add(h, this.mixer.forward(this.norm.forward(h), state ? { conv: state[0], ssm: state[1] } : null, keep));
  }
}

class MambaModel extends Module {
  embeddings: Embedding;
  layers: MambaBlock[];
  norm_f: RMSNorm;
  constructor(c: MambaConfig, g: Generator) {
    super();
    this.embeddings = new Embedding(c.vocab_size, c.hidden_size, { generator: g, std: c.initializer_range });
    this.layers = Array.from({ length: c.num_hidden_layers }, () => new MambaBlock(c, g));
    this.norm_f = new RMSNorm(c.hidden_size, c.layer_norm_epsilon);
  }
}

export class MambaForCausalLM extends RecurrentLM {
  backbone: MambaModel;
  /** The output projection; absent when tied to the input embedding. */
  lm_head: Linear | null;

  constructor(readonly config: MambaConfig, opts: { generator?: Generator } = {}) {
    super();
    const g = opts.generator ?? defaultGenerator;
    this.backbone = new MambaModel(config, g);
    this.lm_head = config.tie_word_embeddings ? null : new Linear(config.hidden_size, config.vocab_size, { generator: g, std: config.initializer_range });
    if (config.rescale_prenorm_residual && initEnabled()) {
      // GPT-2's scheme as mamba_ssm applies it: out_proj weights scaled by 1/√n_layer (at
      // initialisation: weights a checkpoint fills next are left alone).
      const s = 1 / Math.sqrt(config.num_hidden_layers);
      for (const l of this.backbone.layers) T.scaleInPlace(l.mixer.out_proj.weight, s);
    }
  }

  /** Per row and layer: the convolution's last d_conv − 1 inputs, and the SSM state. */
  protected layerStateShapes(): number[][] {
    const c = this.config;
    return [[Math.max(c.conv_kernel - 1, 0), c.intermediate_size], [c.intermediate_size, c.state_size]];
  }

  configJson(): Record<string, unknown> {
    return mambaConfigToJson(this.config);
  }
}
