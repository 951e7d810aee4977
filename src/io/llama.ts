// LLaMA-family knowledge the formats need: the HF config's dimensions (validated), the HF tensor
// names and shapes, and the q/k row permutation between RoPE layouts.
//
// RoPE layouts of q_proj/k_proj rows, per format:
//   - Meta's original checkpoints, llama2.c (.bin legacy and ak42 v1) and GGUF (llama.cpp,
//     rope type NORM): "interleaved" — within each head, rows (2i, 2i+1) are the pair rotated
//     by frequency i.
//   - HF transformers (safetensors): "rotate-half" — within each head, rows (i, i + head_dim/2)
//     are the pair. transformers' convert_llama_weights_to_hf.py `permute` maps Meta → HF;
//     llama.cpp's convert_hf_to_gguf.py `LlamaModel.permute` maps HF → Meta.
// permuteQK is the former, unpermuteQK the latter. Readers in this layer return HF layout by
// default (so any checkpoint becomes an HF checkpoint); pass qkLayout: 'interleaved' to keep the
// file's own layout.
import { ConfigFieldError, TensorError } from './errors.js';
import { overLimit } from '../models/config.js';
import { brief } from './json.js';
import { checkTensorShapes, deferredTensor } from './dtypes.js';
import type { RawTensor } from './dtypes.js';

export type QKLayout = 'rotate-half' | 'interleaved';

/** Dimensions of a LLaMA model, from an HF config, validated. */
export interface LlamaDims {
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
  maxPositions: number;
  rmsNormEps: number;
  ropeTheta: number;
  tied: boolean;
}

export function intField(cfg: Record<string, unknown>, key: string, file: string, dflt?: number): number {
  const v = cfg[key] ?? dflt;
  if (v === undefined) throw new ConfigFieldError(file, key, 'is missing');
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new ConfigFieldError(file, key, `must be a positive integer, got ${brief(v)}`);
  const max = overLimit(key, v);
  if (max !== null) throw new ConfigFieldError(file, key, `${v} is more than the limit of ${max}`);
  return v;
}
export function numField(cfg: Record<string, unknown>, key: string, file: string, dflt: number): number {
  const v = cfg[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new ConfigFieldError(file, key, `must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

/** Read and check the dimensions of a LLaMA HF config (LlamaConfig defaults where HF has them). */
export function llamaDims(cfg: Record<string, unknown>, file = 'config.json'): LlamaDims {
  const hidden = intField(cfg, 'hidden_size', file);
  const heads = intField(cfg, 'num_attention_heads', file);
  const kvHeads = intField(cfg, 'num_key_value_heads', file, heads);
  let headDim: number;
  if (cfg.head_dim !== undefined && cfg.head_dim !== null) {
    headDim = intField(cfg, 'head_dim', file);
  } else {
    if (hidden % heads !== 0) throw new ConfigFieldError(file, 'num_attention_heads', `${heads} does not divide hidden_size ${hidden}`);
    headDim = hidden / heads;
  }
  if (heads % kvHeads !== 0) throw new ConfigFieldError(file, 'num_key_value_heads', `${kvHeads} does not divide num_attention_heads ${heads}`);
  if (headDim % 2 !== 0) throw new ConfigFieldError(file, 'head_dim', `RoPE needs an even head dimension, got ${headDim}`);
  const tie = cfg.tie_word_embeddings ?? false;
  if (typeof tie !== 'boolean') throw new ConfigFieldError(file, 'tie_word_embeddings', `must be a boolean, got ${JSON.stringify(tie)}`);
  return {
    hidden, heads, kvHeads, headDim,
    intermediate: intField(cfg, 'intermediate_size', file),
    layers: intField(cfg, 'num_hidden_layers', file),
    vocab: intField(cfg, 'vocab_size', file),
    maxPositions: intField(cfg, 'max_position_embeddings', file, 2048),
    rmsNormEps: numField(cfg, 'rms_norm_eps', file, 1e-6),
    ropeTheta: numField(cfg, 'rope_theta', file, 10000),
    tied: tie,
  };
}

/** The HF tensor names and shapes of a LLaMA model (lm_head only when not tied). */
export function llamaTensorShapes(d: LlamaDims): Map<string, number[]> {
  const m = new Map<string, number[]>();
  m.set('model.embed_tokens.weight', [d.vocab, d.hidden]);
  for (let i = 0; i < d.layers; i++) {
    const p = `model.layers.${i}.`;
    m.set(`${p}input_layernorm.weight`, [d.hidden]);
    m.set(`${p}self_attn.q_proj.weight`, [d.heads * d.headDim, d.hidden]);
    m.set(`${p}self_attn.k_proj.weight`, [d.kvHeads * d.headDim, d.hidden]);
    m.set(`${p}self_attn.v_proj.weight`, [d.kvHeads * d.headDim, d.hidden]);
    m.set(`${p}self_attn.o_proj.weight`, [d.hidden, d.heads * d.headDim]);
    m.set(`${p}post_attention_layernorm.weight`, [d.hidden]);
    m.set(`${p}mlp.gate_proj.weight`, [d.intermediate, d.hidden]);
    m.set(`${p}mlp.down_proj.weight`, [d.hidden, d.intermediate]);
    m.set(`${p}mlp.up_proj.weight`, [d.intermediate, d.hidden]);
  }
  m.set('model.norm.weight', [d.hidden]);
  if (!d.tied) m.set('lm_head.weight', [d.vocab, d.hidden]);
  return m;
}

/** Buffers that old transformers checkpoints carry and that hold no weights. */
const IGNORED = /\.rotary_emb\.inv_freq$/;

/**
 * Check that `tensors` are exactly the LLaMA model's: each missing, extra or misshapen tensor is
 * an error naming it. With tied embeddings an `lm_head.weight` is accepted (and must match).
 */
export function checkLlamaTensors(file: string, tensors: readonly Pick<RawTensor, 'name' | 'shape'>[], d: LlamaDims): void {
  const tiedHead = d.tied ? new Map([['lm_head.weight', [d.vocab, d.hidden]]]) : undefined;
  checkTensorShapes(file, tensors.filter((t) => !IGNORED.test(t.name)), llamaTensorShapes(d), tiedHead);
}

// ---- q/k permutation ------------------------------------------------------------------------

function permuteRows(t: RawTensor, nHeads: number, toHf: boolean): RawTensor {
  const rows = t.shape[0];
  if (t.shape.length !== 2 || rows % (2 * nHeads) !== 0) {
    throw new TensorError('<memory>', t.name, `cannot permute q/k rows: shape [${t.shape.join(', ')}] with ${nHeads} heads`);
  }
  const headDim = rows / nHeads;
  const half = headDim / 2;
  if (t.source) {
    // Deferred: the permutation travels with the tensor and is applied as its rows are read.
    const to = new Uint32Array(rows); // destination of each row
    for (let h = 0; h < nHeads; h++) {
      for (let i = 0; i < half; i++) {
        for (let j = 0; j < 2; j++) {
          const meta = h * headDim + 2 * i + j, hf = h * headDim + j * half + i;
          if (toHf) to[meta] = hf; else to[hf] = meta;
        }
      }
    }
    const prev = t.source.rowOrder;
    const rowOrder = prev ? prev.map((r) => to[r]) : to;
    return deferredTensor(t.name, t.dtype, [...t.shape], { ...t.source, rowOrder });
  }
  const rowBytes = t.data.length / rows;
  const out = new Uint8Array(t.data.length);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const meta = h * headDim + 2 * i + j; // interleaved: pair (2i, 2i+1)
        const hf = h * headDim + j * half + i; // rotate-half: pair (i, i + half)
        const [src, dst] = toHf ? [meta, hf] : [hf, meta];
        out.set(t.data.subarray(src * rowBytes, (src + 1) * rowBytes), dst * rowBytes);
      }
    }
  }
  return { ...t, shape: [...t.shape], data: out };
}

/**
 * Meta/llama2.c/GGUF (interleaved) → HF (rotate-half) rows of a q_proj or k_proj weight, as
 * transformers' convert_llama_weights_to_hf.py `permute(w, n_heads)`. Use num_key_value_heads
 * for k_proj. Works on any dtype whose rows are whole (Q8_0 too).
 */
export function permuteQK(t: RawTensor, nHeads: number): RawTensor { return permuteRows(t, nHeads, true); }

/** HF (rotate-half) → interleaved: the inverse of permuteQK, as convert_hf_to_gguf.py's LlamaModel.permute. */
export function unpermuteQK(t: RawTensor, nHeads: number): RawTensor { return permuteRows(t, nHeads, false); }

const Q_OR_K = /^model\.layers\.(\d+)\.self_attn\.([qk])_proj\.weight$/;

/** Apply permuteQK/unpermuteQK to every q_proj/k_proj tensor (HF names) of a list. */
export function convertQKLayout(tensors: RawTensor[], d: Pick<LlamaDims, 'heads' | 'kvHeads'>, from: QKLayout, to: QKLayout): RawTensor[] {
  if (from === to) return tensors;
  return tensors.map((t) => {
    const m = Q_OR_K.exec(t.name);
    if (!m) return t;
    const n = m[2] === 'q' ? d.heads : d.kvHeads;
    return to === 'rotate-half' ? permuteQK(t, n) : unpermuteQK(t, n);
  });
}
