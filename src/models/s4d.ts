// S4D language model (model_type "s4d", tslm's own): Mamba's block without the convolution and
// without selectivity, gated like H3/GSS. Each layer's mixer is an S4D layer (nn/s4d.ts: a linear
// time-invariant SSM per channel with N/2 complex modes) on one half of the input projection,
// gated by SiLU of the other half. Tensor names mirror HF Mamba's, so both families read alike.
//
//   h = embeddings(ids)                                          // (B, T, D)
//   for each layer:
//     x, z = split(in_proj(RMSNorm(h)))                          // (B, T, d_inner) each, x first
//     h = h + out_proj(S4D(x) ⊙ silu(z))
//   logits = head(RMSNorm_f(h))                                  // (B, T, V); head tied or lm_head
//
// Training runs S4D's convolution mode. Decoding keeps one modal state per layer, (d_inner,
// N/2, 2) per row (a RecurrentState), O(d_inner·N) per token. Prefill of T > 1 positions is the
// convolution plus the state's terms (nn/s4d.ts s4dScan), which also yields the final state; with
// a state that keeps snapshots (rollback for speculative decoding) positions go one at a time.
// Left padding: the S4D input x is zeroed at padding positions, so a row's modal state stays 0
// until its first real token and its real positions are computed as without padding.
import { Tensor } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { Generator, defaultGenerator } from '../tensor/random.js';
import { Module, parameter } from '../nn/module.js';
import { Embedding, Linear, RMSNorm } from '../nn/layers.js';
import { S4DKernel, s4dConv, s4dScan } from '../nn/s4d.js';
import { S4D_INITS } from '../nn/hippo.js';
import type { S4DInit } from '../nn/hippo.js';
import { ConfigError, boolField, idsField, intField, numField } from './config.js';
import type { ModelConfig } from './causal.js';
import { RecurrentLM } from './recurrent.js';
import type { RecurrentBlock } from './recurrent.js';

export interface S4DConfig extends ModelConfig {
  model_type: 's4d';
  vocab_size: number;
  hidden_size: number;
  /** N: the SSM state size per channel; N/2 complex modes are stored (even). */
  state_size: number;
  /** d_inner = expand · hidden_size. */
  expand: number;
  num_hidden_layers: number;
  layer_norm_epsilon: number;
  /** The S4D initialisation of A: lin, inv, real or legs (nn/hippo.ts). */
  s4d_init: S4DInit;
  /** Range of the initial step sizes dt (log-uniform). */
  dt_min: number;
  dt_max: number;
  /** Biases on in_proj and out_proj. */
  use_bias: boolean;
  tie_word_embeddings: boolean;
  initializer_range: number;
  bos_token_id: number | null;
  eos_token_id: number[] | null;
  pad_token_id: number | null;
}

export const S4D_MODEL_TYPES = ['s4d'] as const;

/** Validate an HF-style config.json object for the S4D LM; `source` names the file in errors. */
export function parseS4DConfig(raw: Record<string, unknown>, source = 'config.json'): S4DConfig {
  const modelType = raw.model_type ?? 's4d';
  if (modelType !== 's4d') throw new ConfigError(source, `model_type "${String(modelType)}" is not an S4D model (s4d)`);
  const stateSize = intField(raw, 'state_size', source, 64);
  if (stateSize % 2) throw new ConfigError(source, `field "state_size" must be even (state_size/2 complex modes), got ${stateSize}`);
  const init = raw.s4d_init ?? 'lin';
  if (!(S4D_INITS as readonly unknown[]).includes(init)) throw new ConfigError(source, `field "s4d_init" must be one of ${S4D_INITS.join(', ')}, got ${JSON.stringify(init)}`);
  const dtMin = numField(raw, 'dt_min', source, 0.001), dtMax = numField(raw, 'dt_max', source, 0.1);
  if (dtMin > dtMax) throw new ConfigError(source, `field "dt_min" (${dtMin}) exceeds "dt_max" (${dtMax})`);
  const bos = idsField(raw, 'bos_token_id', source), pad = idsField(raw, 'pad_token_id', source);
  return {
    model_type: 's4d',
    vocab_size: intField(raw, 'vocab_size', source),
    hidden_size: intField(raw, 'hidden_size', source),
    state_size: stateSize,
    expand: intField(raw, 'expand', source, 2),
    num_hidden_layers: intField(raw, 'num_hidden_layers', source),
    layer_norm_epsilon: numField(raw, 'layer_norm_epsilon', source, 1e-5),
    s4d_init: init as S4DInit,
    dt_min: dtMin,
    dt_max: dtMax,
    use_bias: boolField(raw, 'use_bias', source, false),
    tie_word_embeddings: boolField(raw, 'tie_word_embeddings', source, true),
    initializer_range: numField(raw, 'initializer_range', source, 0.02),
    bos_token_id: bos ? bos[0] : null,
    eos_token_id: idsField(raw, 'eos_token_id', source),
    pad_token_id: pad ? pad[0] : null,
  };
}

/** The config as a config.json object (architectures, every field), for saving. */
export function s4dConfigToJson(c: S4DConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { architectures: ['S4DForCausalLM'], ...c, torch_dtype: 'float32' };
  if (c.eos_token_id && c.eos_token_id.length === 1) out.eos_token_id = c.eos_token_id[0];
  return out;
}

class S4DMixer extends Module {
  in_proj: Linear;
  kernel: S4DKernel;
  D: Tensor;
  out_proj: Linear;
  constructor(private readonly dInner: number, c: S4DConfig, g: Generator) {
    super();
    const o = { bias: c.use_bias, generator: g, std: c.initializer_range };
    this.in_proj = new Linear(c.hidden_size, 2 * dInner, o);
    this.kernel = new S4DKernel(dInner, { stateSize: c.state_size, init: c.s4d_init, dtMin: c.dt_min, dtMax: c.dt_max, generator: g });
    this.D = parameter(() => T.ones([dInner]));
    this.out_proj = new Linear(dInner, c.hidden_size, o);
  }
  /** u (B, T, D) → (B, T, D); `state` (B, d_inner, N/2, 2) advances in place; keep (B, T, 1) zeroes padding. */
  forward(u: Tensor, state: Tensor | null, keep: Tensor | null): Tensor {
    const [x0, z] = T.split(this.in_proj.forward(u), [this.dInner, this.dInner], -1); // (B, T, d_inner) each
    const x = keep ? T.mul(x0, keep) : x0;
    const y = state ? s4dScan(this.kernel, this.D, x, state) : s4dConv(this.kernel, this.D, x);
    return this.out_proj.forward(T.mul(y, T.silu(z)));
  }
}

class S4DBlock extends Module implements RecurrentBlock {
  norm: RMSNorm;
  mixer: S4DMixer;
  constructor(dInner: number, c: S4DConfig, g: Generator) {
    super();
    this.norm = new RMSNorm(c.hidden_size, c.layer_norm_epsilon);
    this.mixer = new S4DMixer(dInner, c, g);
  }
  /** state: this layer's [modal state (B, d_inner, N/2, 2)], advanced in place. */
  forward(h: Tensor, state: Tensor[] | null, keep: Tensor | null): Tensor {
    return T.add(h, this.mixer.forward(this.norm.forward(h), state ? state[0] : null, keep));
  }
}

class S4DModel extends Module {
  embeddings: Embedding;
  layers: S4DBlock[];
  norm_f: RMSNorm;
  constructor(c: S4DConfig, g: Generator) {
    super();
    const dInner = c.expand * c.hidden_size;
    this.embeddings = new Embedding(c.vocab_size, c.hidden_size, { generator: g, std: c.initializer_range });
    this.layers = Array.from({ length: c.num_hidden_layers }, () => new S4DBlock(dInner, c, g));
    this.norm_f = new RMSNorm(c.hidden_size, c.layer_norm_epsilon);
  }
}

export class S4DForCausalLM extends RecurrentLM {
  backbone: S4DModel;
  /** The output projection; absent when tied to the input embedding. */
  lm_head: Linear | null;

  constructor(readonly config: S4DConfig, opts: { generator?: Generator } = {}) {
    super();
    const g = opts.generator ?? defaultGenerator;
    this.backbone = new S4DModel(config, g);
    this.lm_head = config.tie_word_embeddings ? null : new Linear(config.hidden_size, config.vocab_size, { generator: g, std: config.initializer_range });
  }

  /** Per row and layer: one modal state (d_inner, N/2, 2). */
  protected layerStateShapes(): number[][] {
    const c = this.config;
    return [[c.expand * c.hidden_size, c.state_size / 2, 2]];
  }

  configJson(): Record<string, unknown> {
    return s4dConfigToJson(this.config);
  }
}
