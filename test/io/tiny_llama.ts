// A tiny LLaMA for format tests: an SPM-style vocabulary llama.cpp accepts, and a plain
// float64 reference forward pass over HF-layout (rotate-half) weights, to check that what
// llama.cpp computes from our GGUF is the same model.
import { toFloat32 } from '../../src/io/index.js';
import type { RawTensor, GgufTokenizer } from '../../src/io/index.js';

/** <unk>, <s>, </s>, the 256 byte tokens <0x00>…<0xFF>, then pieces, `size` in all. */
export function tinySpmTokenizer(size: number): GgufTokenizer {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [2, 3, 3];
  const scores = [0, 0, 0];
  for (let b = 0; b < 256; b++) { tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`); types.push(6); scores.push(0); }
  const pieces = ['▁', ...'abcdefghijklmnopqrstuvwxyz'.split(''), '▁a', '▁b', '▁c', '▁the', 'th', 'he', 'in', 'er', 'an', 're', 'on', 'at', 'en', 'nd', 'ti', 'es', 'or', 'te', 'of', 'ed', 'is', 'it', 'al', 'ar', 'st', 'to', 'nt', 'ng', 'se', 'ha', 'as', 'ou', 'io', 'le', 've', 'co', 'me', 'de', 'hi', 'ri', 'ro', 'ic', 'ne', 'ea', 'ra', 'ce'];
  for (let i = 0; tokens.length < size; i++) {
    tokens.push(i < pieces.length ? pieces[i] : `▁w${i}`);
    types.push(1);
    scores.push(-i);
  }
  return { model: 'llama', pre: 'default', tokens, scores, tokenTypes: types, bosId: 1, eosId: 2, unkId: 0, addBos: true, addEos: false };
}

interface Cfg { hidden_size: number; num_attention_heads: number; num_key_value_heads: number; num_hidden_layers: number; rms_norm_eps: number; rope_theta: number; tie_word_embeddings?: boolean; vocab_size: number }

/**
 * What the float64 reference forwards share (RefLlama, RefMamba, RefMoe): HF-named f32 weights,
 * y = W x (+ b), RMSNorm with the subclass's epsilon, and HF's rotate-half RoPE.
 */
export abstract class RefForward {
  protected readonly w = new Map<string, Float32Array>();
  protected abstract get eps(): number;
  constructor(tensors: readonly RawTensor[]) {
    for (const t of tensors) this.w.set(t.name, toFloat32(t));
  }
  protected W(n: string): Float32Array { const x = this.w.get(n); if (!x) throw new Error(`no ${n}`); return x; }
  /** y = W x (+ b) with W row-major (rows, x.length). */
  protected mv(name: string, x: Float64Array, rows: number, bias?: string): Float64Array {
    const w = this.W(name), cols = x.length, y = new Float64Array(rows);
    if (w.length !== rows * cols) throw new Error(`${name}: ${w.length} values, expected ${rows}×${cols}`);
    const b = bias && this.w.has(bias) ? this.W(bias) : null;
    for (let r = 0; r < rows; r++) { let s = b ? b[r] : 0; for (let c = 0; c < cols; c++) s += w[r * cols + c] * x[c]; y[r] = s; }
    return y;
  }
  protected rms(x: Float64Array, name: string): Float64Array {
    const w = this.W(name);
    let ss = 0; for (const v of x) ss += v * v;
    const s = 1 / Math.sqrt(ss / x.length + this.eps);
    return x.map((v, i) => v * s * w[i]);
  }
  /** Rotate-half RoPE of `heads` heads of size hd at position pos, in place. */
  protected ropeAt(x: Float64Array, heads: number, hd: number, pos: number, theta: number): void {
    const half = hd / 2;
    for (let h = 0; h < heads; h++) for (let i = 0; i < half; i++) {
      const a = pos * Math.pow(theta, (-2 * i) / hd);
      const c = Math.cos(a), s = Math.sin(a);
      const x0 = x[h * hd + i], x1 = x[h * hd + i + half];
      x[h * hd + i] = x0 * c - x1 * s;
      x[h * hd + i + half] = x1 * c + x0 * s;
    }
  }
}

/** Incremental reference forward (float64 accumulation over f32 weights), HF rotate-half RoPE. */
export class RefLlama extends RefForward {
  private kc: Float64Array[][] = [];
  private vc: Float64Array[][] = [];
  private pos = 0;
  private readonly hd: number;
  constructor(private readonly cfg: Cfg, tensors: RawTensor[]) {
    super(tensors);
    this.hd = cfg.hidden_size / cfg.num_attention_heads;
    for (let l = 0; l < cfg.num_hidden_layers; l++) { this.kc.push([]); this.vc.push([]); }
  }
  protected get eps(): number { return this.cfg.rms_norm_eps; }
  private rope(x: Float64Array, heads: number): void { this.ropeAt(x, heads, this.hd, this.pos, this.cfg.rope_theta); }
  /** Feed one token, return the logits for the next. */
  step(tok: number): Float64Array {
    const { hidden_size: H, num_attention_heads: NH, num_key_value_heads: NKV, vocab_size: V } = this.cfg;
    const hd = this.hd;
    const E = this.W('model.embed_tokens.weight');
    let x = Float64Array.from(E.subarray(tok * H, (tok + 1) * H));
    for (let l = 0; l < this.cfg.num_hidden_layers; l++) {
      const p = `model.layers.${l}.`;
      const h = this.rms(x, `${p}input_layernorm.weight`);
      const q = this.mv(`${p}self_attn.q_proj.weight`, h, NH * hd);
      const k = this.mv(`${p}self_attn.k_proj.weight`, h, NKV * hd);
      const v = this.mv(`${p}self_attn.v_proj.weight`, h, NKV * hd);
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
      const g = this.mv(`${p}mlp.gate_proj.weight`, h2, this.W(`${p}mlp.gate_proj.weight`).length / H);
      const u = this.mv(`${p}mlp.up_proj.weight`, h2, g.length);
      const a = g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[i]);
      const dn = this.mv(`${p}mlp.down_proj.weight`, a, H);
      x = x.map((xv, i) => xv + dn[i]);
    }
    const hf = this.rms(x, 'model.norm.weight');
    this.pos++;
    return this.mv(this.w.has('lm_head.weight') ? 'lm_head.weight' : 'model.embed_tokens.weight', hf, V);
  }
}

export function argmax(x: ArrayLike<number>): number {
  let b = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[b]) b = i;
  return b;
}
