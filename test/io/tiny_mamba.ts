// A tiny Mamba for format tests: an HF MambaConfig, random HF-named weights of a realistic scale,
// and a plain float64 reference forward pass over the HF-layout weights (one token at a time,
// the selective scan as a sequential loop), to check that what llama.cpp computes from our GGUF
// is the same model. Per layer, for one token x (HF MambaMixer's slow path):
//   h      = RMSNorm(x) · norm.weight
//   [u, z] = in_proj(h)                                    u, z: d_inner each (u first)
//   u      = silu(conv1d(u over the last conv_kernel steps) + conv1d.bias)   causal, per channel
//   [δ, B, C] = x_proj(u)                                  time_step_rank, state_size, state_size
//   Δ      = softplus(dt_proj(δ) + dt_proj.bias)           d_inner
//   A      = −exp(A_log)                                   (d_inner, state_size)
//   s[c,n] = exp(Δ[c]·A[c,n])·s[c,n] + Δ[c]·B[n]·u[c]      the state, carried across tokens
//   y[c]   = Σ_n s[c,n]·C[n] + D[c]·u[c]
//   x     += out_proj(y · silu(z))
// then logits = lm_head(RMSNorm(x) · norm_f.weight) (embeddings when tied).
import { fromFloat32 } from '../../src/io/index.js';
import type { RawDType, RawTensor } from '../../src/io/index.js';
import { rng, uniformRng } from './util.js';
import { RefForward } from './tiny_llama.js';

/** A tiny HF MambaConfig (hidden 64, d_inner 128, state 16, conv 4, dt rank 4, 2 layers, vocab 300). */
export function tinyMambaConfig(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['MambaForCausalLM'], model_type: 'mamba',
    hidden_size: 64, intermediate_size: 128, expand: 2, state_size: 16, conv_kernel: 4, time_step_rank: 4,
    num_hidden_layers: 2, vocab_size: 300, layer_norm_epsilon: 1e-5, use_bias: false, use_conv_bias: true,
    hidden_act: 'silu', tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, ...over,
  };
}

/**
 * Random HF-named Mamba weights at the scales of HF's initialisation: softplus(dt_proj.bias) in
 * [1e-3, 0.1] (log-uniform), A_log = log(1..N) per row (jittered, so rows and columns differ),
 * conv weights ~U(−0.5, 0.5), D near 1, projections ~N(0, 1/fan_in), norms near 1 — except
 * x_proj at 3× that (δ, B, C of order 1, as in trained models), without which the state term
 * Σ s·C is a few % of D·u over a short prompt and storing A without its −exp would barely move
 * the logits (seen: greedy tokens parted only at the 12th).
 */
export function tinyMambaTensors(cfg: Record<string, any>, seed = 1, dtype: RawDType = 'F32'): RawTensor[] {
  const g = rng(seed), u = uniformRng(seed + 1000);
  const H = cfg.hidden_size, I = cfg.expand * H, N = cfg.state_size, K = cfg.conv_kernel, R = cfg.time_step_rank, V = cfg.vocab_size;
  const out: RawTensor[] = [];
  const add = (name: string, shape: number[], f: (i: number) => number, dt: RawDType = 'F32') => {
    const v = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < v.length; i++) v[i] = f(i);
    out.push(fromFloat32(name, shape, v, dt));
  };
  const normal = (s: number) => () => g() * s;
  const unif = (a: number, b: number) => () => a + (b - a) * u();
  add('backbone.embeddings.weight', [V, H], normal(1), dtype);
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `backbone.layers.${l}.`;
    add(`${p}norm.weight`, [H], () => 1 + 0.1 * g());
    add(`${p}mixer.in_proj.weight`, [2 * I, H], normal(1 / Math.sqrt(H)), dtype);
    if (cfg.use_bias) add(`${p}mixer.in_proj.bias`, [2 * I], normal(0.1));
    add(`${p}mixer.conv1d.weight`, [I, 1, K], unif(-0.5, 0.5));
    if (cfg.use_conv_bias ?? true) add(`${p}mixer.conv1d.bias`, [I], unif(-0.5, 0.5));
    add(`${p}mixer.x_proj.weight`, [R + 2 * N, I], normal(3 / Math.sqrt(I)), dtype);
    add(`${p}mixer.dt_proj.weight`, [I, R], unif(-1 / Math.sqrt(R), 1 / Math.sqrt(R)), dtype);
    add(`${p}mixer.dt_proj.bias`, [I], () => {
      const dt = Math.exp(Math.log(1e-3) + u() * (Math.log(0.1) - Math.log(1e-3)));
      return dt + Math.log(-Math.expm1(-dt)); // softplus⁻¹(dt)
    });
    add(`${p}mixer.A_log`, [I, N], (i) => Math.log((i % N) + 1) + 0.2 * g());
    add(`${p}mixer.D`, [I], () => 1 + 0.3 * g());
    add(`${p}mixer.out_proj.weight`, [H, I], normal(1 / Math.sqrt(I)), dtype);
    if (cfg.use_bias) add(`${p}mixer.out_proj.bias`, [H], normal(0.1));
  }
  add('backbone.norm_f.weight', [H], () => 1 + 0.1 * g());
  if (!cfg.tie_word_embeddings) add('lm_head.weight', [V, H], normal(1 / Math.sqrt(H)), dtype);
  return out;
}

interface Cfg { hidden_size: number; expand: number; state_size: number; conv_kernel: number; time_step_rank: number; num_hidden_layers: number; vocab_size: number; layer_norm_epsilon: number }

const silu = (v: number) => v / (1 + Math.exp(-v));
const softplus = (v: number) => (v > 20 ? v : Math.log1p(Math.exp(v)));

/** Incremental reference forward (float64 over f32 weights): feed tokens one by one. */
export class RefMamba extends RefForward {
  /** Per layer: the last conv_kernel − 1 conv inputs per channel, oldest first: (d_inner, K − 1). */
  private conv: Float64Array[] = [];
  /** Per layer: the SSM state s: (d_inner, state_size). */
  private ssm: Float64Array[] = [];
  constructor(private readonly cfg: Cfg, tensors: RawTensor[]) {
    super(tensors);
    const I = cfg.expand * cfg.hidden_size;
    for (let l = 0; l < cfg.num_hidden_layers; l++) {
      this.conv.push(new Float64Array(I * (cfg.conv_kernel - 1)));
      this.ssm.push(new Float64Array(I * cfg.state_size));
    }
  }
  protected get eps(): number { return this.cfg.layer_norm_epsilon; }

  /** Feed one token, return the logits for the next. */
  step(tok: number): Float64Array {
    const { hidden_size: H, state_size: N, conv_kernel: K, time_step_rank: R, vocab_size: V } = this.cfg;
    const I = this.cfg.expand * H;
    const E = this.W('backbone.embeddings.weight');
    const x = Float64Array.from(E.subarray(tok * H, (tok + 1) * H));
    for (let l = 0; l < this.cfg.num_hidden_layers; l++) {
      const p = `backbone.layers.${l}.`, m = `${p}mixer.`;
      const h = this.rms(x, `${p}norm.weight`);
      const xz = this.mv(`${m}in_proj.weight`, h, 2 * I, `${m}in_proj.bias`);
      const cw = this.W(`${m}conv1d.weight`); // (I, 1, K): cw[c·K + k]; k = K − 1 is the current step
      const cb = this.w.get(`${m}conv1d.bias`);
      const prev = this.conv[l];
      const uu = new Float64Array(I);
      for (let c = 0; c < I; c++) {
        let s = cb ? cb[c] : 0;
        for (let k = 0; k < K - 1; k++) s += cw[c * K + k] * prev[c * (K - 1) + k];
        s += cw[c * K + K - 1] * xz[c];
        uu[c] = silu(s);
        for (let k = 0; k < K - 2; k++) prev[c * (K - 1) + k] = prev[c * (K - 1) + k + 1];
        if (K > 1) prev[c * (K - 1) + K - 2] = xz[c];
      }
      const dbc = this.mv(`${m}x_proj.weight`, uu, R + 2 * N);
      const delta = dbc.subarray(0, R), B = dbc.subarray(R, R + N), C = dbc.subarray(R + N, R + 2 * N);
      const dt = this.mv(`${m}dt_proj.weight`, Float64Array.from(delta), I, `${m}dt_proj.bias`).map(softplus);
      const Alog = this.W(`${m}A_log`), D = this.W(`${m}D`);
      const s = this.ssm[l];
      const y = new Float64Array(I);
      for (let c = 0; c < I; c++) {
        let acc = 0;
        for (let n = 0; n < N; n++) {
          const A = -Math.exp(Alog[c * N + n]);
          s[c * N + n] = Math.exp(dt[c] * A) * s[c * N + n] + dt[c] * B[n] * uu[c];
          acc += s[c * N + n] * C[n];
        }
        y[c] = (acc + D[c] * uu[c]) * silu(xz[I + c]);
      }
      const o = this.mv(`${m}out_proj.weight`, y, H, `${m}out_proj.bias`);
      for (let i = 0; i < H; i++) x[i] += o[i];
    }
    const hf = this.rms(x, 'backbone.norm_f.weight');
    return this.mv(this.w.has('lm_head.weight') ? 'lm_head.weight' : 'backbone.embeddings.weight', hf, V);
  }
}
