// Mamba (HF MambaForCausalLM) knowledge the formats need: the HF config's dimensions, validated,
// with transformers' MambaConfig defaults, and the HF tensor names and shapes:
//
//   backbone.embeddings.weight               (vocab, hidden)
//   backbone.layers.N.norm.weight            (hidden)                       RMSNorm before the mixer
//   backbone.layers.N.mixer.in_proj.weight   (2·d_inner, hidden)            x then z; .bias when use_bias
//   backbone.layers.N.mixer.conv1d.weight    (d_inner, 1, conv_kernel)      depthwise, causal; .bias when use_conv_bias
//   backbone.layers.N.mixer.x_proj.weight    (time_step_rank + 2·state_size, d_inner)   dt, B, C
//   backbone.layers.N.mixer.dt_proj.weight   (d_inner, time_step_rank)      + .bias (d_inner), always
//   backbone.layers.N.mixer.A_log            (d_inner, state_size)          A = −exp(A_log)
//   backbone.layers.N.mixer.D                (d_inner)
//   backbone.layers.N.mixer.out_proj.weight  (hidden, d_inner)              .bias when use_bias
//   backbone.norm_f.weight                   (hidden)
//   lm_head.weight                           (vocab, hidden)                absent when tie_word_embeddings
//
// d_inner = intermediate_size = expand · hidden_size; time_step_rank "auto" = ⌈hidden_size / 16⌉.
import { ConfigFieldError } from './errors.js';
import { checkTensorShapes } from './dtypes.js';
import type { RawTensor } from './dtypes.js';
import { intField, numField } from './llama.js';

/** Dimensions of a Mamba model, from an HF config, validated. */
export interface MambaDims {
  hidden: number;
  /** d_inner = expand · hidden. */
  inner: number;
  expand: number;
  /** d_state (state_size). */
  state: number;
  convKernel: number;
  dtRank: number;
  layers: number;
  vocab: number;
  /** RMSNorm epsilon (layer_norm_epsilon). */
  eps: number;
  /** in_proj / out_proj biases. */
  useBias: boolean;
  /** conv1d bias. */
  useConvBias: boolean;
  tied: boolean;
}

function boolField(cfg: Record<string, unknown>, key: string, file: string, dflt: boolean): boolean {
  const v = cfg[key] ?? dflt;
  if (typeof v !== 'boolean') throw new ConfigFieldError(file, key, `must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

/** Read and check the dimensions of a Mamba HF config (MambaConfig's defaults where it has them). */
export function mambaDims(cfg: Record<string, unknown>, file = 'config.json'): MambaDims {
  if (cfg.model_type !== undefined && cfg.model_type !== 'mamba') {
    const why = cfg.model_type === 'falcon_mamba' ? ' (Falcon-Mamba RMS-normalises dt, B and C: not supported)' : '';
    throw new ConfigFieldError(file, 'model_type', `expected "mamba", got ${JSON.stringify(cfg.model_type)}${why}`);
  }
  const hidden = intField(cfg, 'hidden_size', file);
  const expand = intField(cfg, 'expand', file, 2);
  const inner = expand * hidden;
  if (cfg.intermediate_size !== undefined && cfg.intermediate_size !== inner) {
    throw new ConfigFieldError(file, 'intermediate_size', `${JSON.stringify(cfg.intermediate_size)} ≠ expand × hidden_size = ${expand} × ${hidden} = ${inner}`);
  }
  const rank = cfg.time_step_rank === undefined || cfg.time_step_rank === 'auto' ? Math.ceil(hidden / 16) : intField(cfg, 'time_step_rank', file);
  return {
    hidden, inner, expand,
    state: intField(cfg, 'state_size', file, 16),
    convKernel: intField(cfg, 'conv_kernel', file, 4),
    dtRank: rank,
    layers: intField(cfg, 'num_hidden_layers', file),
    vocab: intField(cfg, 'vocab_size', file),
    eps: numField(cfg, 'layer_norm_epsilon', file, 1e-5),
    useBias: boolField(cfg, 'use_bias', file, false),
    useConvBias: boolField(cfg, 'use_conv_bias', file, true),
    tied: boolField(cfg, 'tie_word_embeddings', file, true), // PretrainedConfig's default; MambaConfig keeps it
  };
}

/** The HF tensor names and shapes of a Mamba model (lm_head only when not tied). */
export function mambaTensorShapes(d: MambaDims): Map<string, number[]> {
  const m = new Map<string, number[]>();
  m.set('backbone.embeddings.weight', [d.vocab, d.hidden]);
  for (let i = 0; i < d.layers; i++) {
    const p = `backbone.layers.${i}.`;
    m.set(`${p}norm.weight`, [d.hidden]);
    m.set(`${p}mixer.in_proj.weight`, [2 * d.inner, d.hidden]);
    if (d.useBias) m.set(`${p}mixer.in_proj.bias`, [2 * d.inner]);
    m.set(`${p}mixer.conv1d.weight`, [d.inner, 1, d.convKernel]);
    if (d.useConvBias) m.set(`${p}mixer.conv1d.bias`, [d.inner]);
    m.set(`${p}mixer.x_proj.weight`, [d.dtRank + 2 * d.state, d.inner]);
    m.set(`${p}mixer.dt_proj.weight`, [d.inner, d.dtRank]);
    m.set(`${p}mixer.dt_proj.bias`, [d.inner]);
    m.set(`${p}mixer.A_log`, [d.inner, d.state]);
    m.set(`${p}mixer.D`, [d.inner]);
    m.set(`${p}mixer.out_proj.weight`, [d.hidden, d.inner]);
    if (d.useBias) m.set(`${p}mixer.out_proj.bias`, [d.hidden]);
  }
  m.set('backbone.norm_f.weight', [d.hidden]);
  if (!d.tied) m.set('lm_head.weight', [d.vocab, d.hidden]);
  return m;
}

/**
 * Tensor names older Mamba checkpoints use for today's (transformers renames them on load):
 * `backbone.embedding.weight` → `backbone.embeddings.weight`.
 */
export function mambaTensorName(name: string): string {
  return name === 'backbone.embedding.weight' ? 'backbone.embeddings.weight' : name;
}

/**
 * Check that `tensors` are exactly the Mamba model's: each missing, extra or misshapen tensor is
 * an error naming it. With tied embeddings an `lm_head.weight` is accepted (and must match).
 */
export function checkMambaTensors(file: string, tensors: readonly Pick<RawTensor, 'name' | 'shape'>[], d: MambaDims): void {
  const tiedHead = d.tied ? new Map([['lm_head.weight', [d.vocab, d.hidden]]]) : undefined;
  checkTensorShapes(file, tensors, mambaTensorShapes(d), tiedHead);
}
