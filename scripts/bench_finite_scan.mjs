// The cost of refusing non-finite weights at load (issue #21): load a model directory with the
// scan and without (allowNonFinite), and time the scan alone. Usage, after `npm run build`:
//   node scripts/bench_finite_scan.mjs [model-dir …]        (default: a synthetic 134M-parameter
//   LLaMA written once to $TMPDIR in F32 and F16)
import { mkdirSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { init, shutdown } from '../dist/src/backend/index.js';
import { loadModel, writeHfDir, readHfDir, checkFiniteTensors } from '../dist/src/io/index.js';

const cfg = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 768, intermediate_size: 2048, num_hidden_layers: 12,
  num_attention_heads: 12, num_key_value_heads: 12, vocab_size: 32000, max_position_embeddings: 2048, rms_norm_eps: 1e-5,
  rope_theta: 10000, hidden_act: 'silu', tie_word_embeddings: false,
};

async function synthetic(dtype) {
  const dir = path.join(tmpdir(), `tslm-finite-bench-${dtype}`);
  if (existsSync(path.join(dir, 'config.json'))) return dir;
  mkdirSync(dir, { recursive: true });
  const h = cfg.hidden_size, f = cfg.intermediate_size, v = cfg.vocab_size;
  let seed = 1;
  const rand = (n) => { const a = new Float32Array(n); for (let i = 0; i < n; i++) { seed = (seed * 1103515245 + 12345) >>> 0; a[i] = (seed / 2 ** 32 - 0.5) * 0.05; } return a; };
  const { fromFloat32 } = await import('../dist/src/io/index.js');
  const t = (name, shape) => fromFloat32(name, shape, shape.length === 1 ? new Float32Array(shape[0]).fill(1) : rand(shape.reduce((a, b) => a * b, 1)), shape.length === 1 ? 'F32' : dtype);
  const tensors = [t('model.embed_tokens.weight', [v, h])];
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    tensors.push(t(`${p}input_layernorm.weight`, [h]), t(`${p}post_attention_layernorm.weight`, [h]));
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) tensors.push(t(`${p}self_attn.${n}.weight`, [h, h]));
    tensors.push(t(`${p}mlp.gate_proj.weight`, [f, h]), t(`${p}mlp.up_proj.weight`, [f, h]), t(`${p}mlp.down_proj.weight`, [h, f]));
  }
  tensors.push(t('model.norm.weight', [h]), t('lm_head.weight', [v, h]));
  await writeHfDir(dir, { config: cfg, tensors });
  return dir;
}

await init({ threads: 1 });
const dirs = process.argv.slice(2);
if (!dirs.length) dirs.push(await synthetic('F32'), await synthetic('F16'));
const best = async (fn, n = 3) => { let b = Infinity; for (let i = 0; i < n; i++) { const t0 = performance.now(); await fn(); b = Math.min(b, performance.now() - t0); } return b; };
for (const dir of dirs) {
  const bytes = statSync(path.join(dir, 'model.safetensors')).size;
  const { tensors } = await readHfDir(dir);
  const params = tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  const scan = await best(() => checkFiniteTensors(tensors, dir, { allowNonFinite: false }), 5);
  // Loads interleaved (the machine is shared: medians of 5 each).
  const w = [], wo = [];
  for (let i = 0; i < 5; i++) {
    for (const [allow, into] of [[false, w], [true, wo]]) {
      const t0 = performance.now();
      (await loadModel(dir, { allowNonFinite: allow })).model.dispose();
      into.push(performance.now() - t0);
    }
  }
  const med = (a) => a.sort((x, y) => x - y)[a.length >> 1];
  const withScan = med(w), without = med(wo);
  console.log(`${dir}: ${(bytes / 2 ** 20).toFixed(0)} MB, ${(params / 1e6).toFixed(1)}M parameters (matrices ${tensors.find((t) => t.shape.length === 2).dtype})`);
  console.log(`  scan alone ${scan.toFixed(1)} ms (${(bytes / 2 ** 20 / (scan / 1000)).toFixed(0)} MB/s); loadModel ${withScan.toFixed(0)} ms with the scan, ${without.toFixed(0)} ms without (allowNonFinite): ${(100 * scan / without).toFixed(1)}% of the load`);
}
await shutdown();
