// Tiny sparse mixture-of-experts models (HF mixtral and qwen2_moe) for format tests: configs,
// random HF-named tensors enumerated here independently of src/io/moe.ts, and RefMoe, a plain
// float64 reference forward pass over the HF-layout weights (scalar loops, as RefLlama), to check
// that what llama.cpp computes from our GGUF is the same model. It follows transformers'
// MixtralSparseMoeBlock / Qwen2MoeSparseMoeBlock:
//   p = softmax(router · h) over all experts; keep the top num_experts_per_tok;
//   mixtral renormalises them to sum 1, qwen2_moe only when norm_topk_prob;
//   y = Σ_kept p_e · down_e(silu(gate_e · h) ⊙ (up_e · h))
//       (+ sigmoid(shared_expert_gate · h) · shared_expert(h) for qwen2_moe);
//   qwen2_moe layers in mlp_only_layers or with (i + 1) % decoder_sparse_step ≠ 0 are dense MLPs.
import { fromFloat32 } from '../../src/io/index.js';
import type { RawTensor } from '../../src/io/index.js';
import { rng, randTensor } from './util.js';
import { RefForward } from './tiny_llama.js';

/** A tiny HF MixtralConfig (hidden 64, 4 heads, 2 kv heads, 4 experts of 64, top-2, 2 layers, vocab 300). */
export function tinyMixtralConfig(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['MixtralForCausalLM'], model_type: 'mixtral',
    hidden_size: 64, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
    vocab_size: 300, max_position_embeddings: 128, rms_norm_eps: 1e-5, rope_theta: 10000, hidden_act: 'silu',
    tie_word_embeddings: false, num_local_experts: 4, num_experts_per_tok: 2, ...over,
  };
}

/** A tiny HF Qwen2MoeConfig (hidden 64, 4 heads, 2 kv heads, 4 experts of 32, top-2, shared expert 64, 2 layers, vocab 300). */
export function tinyQwen2MoeConfig(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['Qwen2MoeForCausalLM'], model_type: 'qwen2_moe',
    hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
    vocab_size: 300, max_position_embeddings: 128, rms_norm_eps: 1e-6, rope_theta: 10000, hidden_act: 'silu',
    tie_word_embeddings: false, num_experts: 4, num_experts_per_tok: 2, moe_intermediate_size: 32,
    shared_expert_intermediate_size: 64, norm_topk_prob: false, decoder_sparse_step: 1, mlp_only_layers: [], qkv_bias: true, ...over,
  };
}

/** Whether layer i of a config is a sparse MoE block (transformers' rule). */
export function isSparseLayer(cfg: Record<string, any>, i: number): boolean {
  if (cfg.model_type === 'mixtral') return true;
  return !(cfg.mlp_only_layers ?? []).includes(i) && cfg.num_experts > 0 && (i + 1) % (cfg.decoder_sparse_step ?? 1) === 0;
}

/**
 * Random HF-named tensors for a mixtral / qwen2_moe config, in the models' natural order (norm
 * weights near 1; routers scaled by `routerScale` / √hidden so their logits spread; embeddings
 * N(0, 1), N(0, 0.3²) when tied).
 */
export function tinyMoeTensors(cfg: Record<string, any>, seed = 1, routerScale = 2): RawTensor[] {
  const r = rng(seed);
  const h = cfg.hidden_size, v = cfg.vocab_size;
  const hd = cfg.head_dim ?? h / cfg.num_attention_heads;
  const q = cfg.num_attention_heads * hd, kv = cfg.num_key_value_heads * hd;
  const mixtral = cfg.model_type === 'mixtral';
  const E = mixtral ? cfg.num_local_experts : cfg.num_experts;
  const I = mixtral ? cfg.intermediate_size : cfg.moe_intermediate_size;
  const out: RawTensor[] = [];
  const norm = (name: string) => out.push(fromFloat32(name, [h], Float32Array.from({ length: h }, () => 1 + 0.1 * r())));
  const lin = (name: string, rows: number, cols: number, scale = 1) => out.push(randTensor(name, [rows, cols], r, 'F32', scale / Math.sqrt(cols)));
  // tied: smaller embeddings, or the model keeps predicting the token it was just given
  out.push(randTensor('model.embed_tokens.weight', [v, h], r, 'F32', cfg.tie_word_embeddings ? 0.3 : 1));
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    norm(`${p}input_layernorm.weight`);
    const bias = !mixtral && cfg.qkv_bias !== false;
    for (const [x, rows] of [['q', q], ['k', kv], ['v', kv]] as const) {
      lin(`${p}self_attn.${x}_proj.weight`, rows, h);
      if (bias) out.push(randTensor(`${p}self_attn.${x}_proj.bias`, [rows], r, 'F32', 0.2));
    }
    lin(`${p}self_attn.o_proj.weight`, h, q);
    norm(`${p}post_attention_layernorm.weight`);
    if (mixtral) {
      lin(`${p}block_sparse_moe.gate.weight`, E, h, routerScale);
      for (let e = 0; e < E; e++) {
        const x = `${p}block_sparse_moe.experts.${e}.`;
        lin(`${x}w1.weight`, I, h);
        lin(`${x}w3.weight`, I, h);
        lin(`${x}w2.weight`, h, I);
      }
    } else if (isSparseLayer(cfg, i)) {
      lin(`${p}mlp.gate.weight`, E, h, routerScale);
      for (let e = 0; e < E; e++) {
        const x = `${p}mlp.experts.${e}.`;
        lin(`${x}gate_proj.weight`, I, h);
        lin(`${x}up_proj.weight`, I, h);
        lin(`${x}down_proj.weight`, h, I);
      }
      const S = cfg.shared_expert_intermediate_size;
      lin(`${p}mlp.shared_expert.gate_proj.weight`, S, h);
      lin(`${p}mlp.shared_expert.up_proj.weight`, S, h);
      lin(`${p}mlp.shared_expert.down_proj.weight`, h, S);
      lin(`${p}mlp.shared_expert_gate.weight`, 1, h, 2);
    } else {
      const F = cfg.intermediate_size;
      lin(`${p}mlp.gate_proj.weight`, F, h);
      lin(`${p}mlp.up_proj.weight`, F, h);
      lin(`${p}mlp.down_proj.weight`, h, F);
    }
  }
  norm('model.norm.weight');
  if (!cfg.tie_word_embeddings) lin('lm_head.weight', v, h);
  return out;
}

/** Switches that break RefMoe on purpose (mutation checks of the tests that compare with it). */
export interface RefMoeMutation {
  /** Renormalise the top-k weights (true) or not (false) whatever the config says. */
  normTopk?: boolean;
  /** Multiply the shared expert by its gate's raw logit instead of its sigmoid. */
  noSharedSigmoid?: boolean;
}

/** Incremental reference forward (float64 accumulation over f32 weights), HF rotate-half RoPE. */
export class RefMoe extends RefForward {
  private kc: Float64Array[][] = [];
  private vc: Float64Array[][] = [];
  private pos = 0;
  private readonly hd: number;
  private readonly mixtral: boolean;
  /** Smallest gap between the k-th and (k+1)-th router logits seen so far (how safe the top-k choice is). */
  minRouterGap = Infinity;
  constructor(private readonly cfg: Record<string, any>, tensors: RawTensor[], private readonly mutation: RefMoeMutation = {}) {
    super(tensors);
    this.hd = cfg.head_dim ?? cfg.hidden_size / cfg.num_attention_heads;
    this.mixtral = cfg.model_type === 'mixtral';
    for (let l = 0; l < cfg.num_hidden_layers; l++) { this.kc.push([]); this.vc.push([]); }
  }
  protected get eps(): number { return this.cfg.rms_norm_eps; }
  private rope(x: Float64Array, heads: number): void { this.ropeAt(x, heads, this.hd, this.pos, this.cfg.rope_theta); }
  private rows(name: string, cols: number): number { return this.W(name).length / cols; }
  /** down(silu(gate · x) ⊙ (up · x)). */
  private mlp(gate: string, up: string, down: string, x: Float64Array): Float64Array {
    const H = x.length;
    const g = this.mv(gate, x, this.rows(gate, H));
    const u = this.mv(up, x, g.length);
    const a = g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[i]);
    return this.mv(down, a, H);
  }
  private moe(p: string, x: Float64Array): Float64Array {
    const cfg = this.cfg, H = x.length;
    const E: number = this.mixtral ? cfg.num_local_experts : cfg.num_experts;
    const k: number = cfg.num_experts_per_tok;
    const router = this.mixtral ? `${p}block_sparse_moe.gate.weight` : `${p}mlp.gate.weight`;
    const logits = this.mv(router, x, E);
    const m = Math.max(...logits);
    const ex = logits.map((l) => Math.exp(l - m));
    const z = ex.reduce((a, b) => a + b, 0);
    const prob = ex.map((e) => e / z);
    const order = Array.from({ length: E }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
    if (k < E) this.minRouterGap = Math.min(this.minRouterGap, logits[order[k - 1]] - logits[order[k]]);
    const top = order.slice(0, k);
    const norm = this.mutation.normTopk ?? (this.mixtral || cfg.norm_topk_prob === true);
    const sum = norm ? top.reduce((s, e) => s + prob[e], 0) : 1;
    const y = new Float64Array(H);
    for (const e of top) {
      const n = this.mixtral ? [`w1`, `w3`, `w2`].map((w) => `${p}block_sparse_moe.experts.${e}.${w}.weight`)
        : ['gate_proj', 'up_proj', 'down_proj'].map((w) => `${p}mlp.experts.${e}.${w}.weight`);
      const o = this.mlp(n[0], n[1], n[2], x);
      for (let i = 0; i < H; i++) y[i] += (prob[e] / sum) * o[i];
    }
    if (!this.mixtral) {
      const s = this.mlp(`${p}mlp.shared_expert.gate_proj.weight`, `${p}mlp.shared_expert.up_proj.weight`, `${p}mlp.shared_expert.down_proj.weight`, x);
      const gl = this.mv(`${p}mlp.shared_expert_gate.weight`, x, 1)[0];
      const g = this.mutation.noSharedSigmoid ? gl : 1 / (1 + Math.exp(-gl));
      for (let i = 0; i < H; i++) y[i] += g * s[i];
    }
    return y;
  }
  /** Feed one token, return the logits for the next. */
  step(tok: number): Float64Array {
    const cfg = this.cfg;
    const H: number = cfg.hidden_size, NH: number = cfg.num_attention_heads, NKV: number = cfg.num_key_value_heads, V: number = cfg.vocab_size;
    const hd = this.hd;
    const emb = this.W('model.embed_tokens.weight');
    let x = Float64Array.from(emb.subarray(tok * H, (tok + 1) * H));
    for (let l = 0; l < cfg.num_hidden_layers; l++) {
      const p = `model.layers.${l}.`;
      const h = this.rms(x, `${p}input_layernorm.weight`);
      const q = this.mv(`${p}self_attn.q_proj.weight`, h, NH * hd, `${p}self_attn.q_proj.bias`);
      const k = this.mv(`${p}self_attn.k_proj.weight`, h, NKV * hd, `${p}self_attn.k_proj.bias`);
      const v = this.mv(`${p}self_attn.v_proj.weight`, h, NKV * hd, `${p}self_attn.v_proj.bias`);
      this.rope(q, NH); this.rope(k, NKV);
      this.kc[l].push(k); this.vc[l].push(v);
      const att = new Float64Array(NH * hd);
      for (let hh = 0; hh < NH; hh++) {
        const kvh = Math.floor(hh / (NH / NKV));
        const sc = this.kc[l].map((kk) => { let s = 0; for (let i = 0; i < hd; i++) s += q[hh * hd + i] * kk[kvh * hd + i]; return s / Math.sqrt(hd); });
        const m = Math.max(...sc); const e = sc.map((s) => Math.exp(s - m)); const z = e.reduce((a, b) => a + b, 0);
        for (let t = 0; t < e.length; t++) for (let i = 0; i < hd; i++) att[hh * hd + i] += (e[t] / z) * this.vc[l][t][kvh * hd + i];
      }
      const o = this.mv(`${p}self_attn.o_proj.weight`, att, H);
      x = x.map((xv, i) => xv + o[i]);
      const h2 = this.rms(x, `${p}post_attention_layernorm.weight`);
      const f = isSparseLayer(cfg, l) ? this.moe(p, h2) : this.mlp(`${p}mlp.gate_proj.weight`, `${p}mlp.up_proj.weight`, `${p}mlp.down_proj.weight`, h2);
      x = x.map((xv, i) => xv + f[i]);
    }
    const hf = this.rms(x, 'model.norm.weight');
    this.pos++;
    return this.mv(this.w.has('lm_head.weight') ? 'lm_head.weight' : 'model.embed_tokens.weight', hf, V);
  }
}
