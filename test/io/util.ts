// Helpers for the io tests: fixture paths, temporary directories, small random tensors.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromFloat32 } from '../../src/io/index.js';
import type { RawDType, RawTensor } from '../../src/io/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** test/fixtures/io/<name> (the compiled tests live in dist/test/io). */
export function ioFixture(name: string): string {
  return path.resolve(here, '..', '..', '..', 'test', 'fixtures', 'io', name);
}
export function ioExpected<T = any>(): T {
  return JSON.parse(readFileSync(ioFixture('expected.json'), 'utf8')) as T;
}

export function tempDir(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(path.join(tmpdir(), 'tslm-io-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

export { uniformRng } from '../helpers.js';
import { uniformRng } from '../helpers.js';

/** Deterministic pseudo-random normal numbers (mulberry32 + Box-Muller). */
export function rng(seed: number): () => number {
  const u = uniformRng(seed);
  return () => Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u());
}

export function randTensor(name: string, shape: number[], r: () => number, dtype: RawDType = 'F32', scale = 1): RawTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = r() * scale;
  return fromFloat32(name, shape, v, dtype);
}

/** A tiny LLaMA HF config. */
export function tinyLlamaConfig(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama',
    hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
    vocab_size: 300, max_position_embeddings: 128, rms_norm_eps: 1e-5, rope_theta: 10000, hidden_act: 'silu',
    tie_word_embeddings: false, ...over,
  };
}

/** Random HF-named LLaMA tensors for a config (norm weights near 1). */
export function tinyLlamaTensors(cfg: Record<string, any>, seed = 1, dtype: RawDType = 'F32'): RawTensor[] {
  const r = rng(seed);
  const h = cfg.hidden_size, f = cfg.intermediate_size, v = cfg.vocab_size;
  const hd = cfg.head_dim ?? h / cfg.num_attention_heads;
  const q = cfg.num_attention_heads * hd, kv = (cfg.num_key_value_heads ?? cfg.num_attention_heads) * hd;
  const out: RawTensor[] = [];
  const norm = (name: string) => {
    const x = new Float32Array(h);
    for (let i = 0; i < h; i++) x[i] = 1 + 0.1 * r();
    out.push(fromFloat32(name, [h], x, 'F32'));
  };
  out.push(randTensor('model.embed_tokens.weight', [v, h], r, dtype, 1));
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    norm(`${p}input_layernorm.weight`);
    out.push(randTensor(`${p}self_attn.q_proj.weight`, [q, h], r, dtype, 1 / Math.sqrt(h)));
    out.push(randTensor(`${p}self_attn.k_proj.weight`, [kv, h], r, dtype, 1 / Math.sqrt(h)));
    out.push(randTensor(`${p}self_attn.v_proj.weight`, [kv, h], r, dtype, 1 / Math.sqrt(h)));
    out.push(randTensor(`${p}self_attn.o_proj.weight`, [h, q], r, dtype, 1 / Math.sqrt(q)));
    norm(`${p}post_attention_layernorm.weight`);
    out.push(randTensor(`${p}mlp.gate_proj.weight`, [f, h], r, dtype, 1 / Math.sqrt(h)));
    out.push(randTensor(`${p}mlp.down_proj.weight`, [h, f], r, dtype, 1 / Math.sqrt(f)));
    out.push(randTensor(`${p}mlp.up_proj.weight`, [f, h], r, dtype, 1 / Math.sqrt(h)));
  }
  norm('model.norm.weight');
  if (!cfg.tie_word_embeddings) out.push(randTensor('lm_head.weight', [v, h], r, dtype, 1 / Math.sqrt(h)));
  return out;
}
