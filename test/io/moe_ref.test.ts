// RefMoe (tiny_moe.ts, the reference forward the GGUF tests compare llama.cpp with) against the
// independent PyTorch MoE of scripts/ref_moe.py: the golden fixtures of test/fixtures/moe
// (scripts/gen_moe_fixtures.py). mixtral: 2 sparse layers, untied; qwen2_moe: 3 layers of which
// only layer 1 is sparse (mlp_only_layers [0], decoder_sparse_step 2), shared expert, q/k/v
// biases, tied head; capacity: a tied mixtral with 1 kv head (its eval-mode logits). The
// checkpoints, written by the outside tool, also pass this layer's HF tensor checks (moe.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readHfDir, readSafetensors, toFloat32, moeDims } from '../../src/io/index.js';
import { fixturePath } from '../helpers.js';
import { RefMoe, isSparseLayer } from './tiny_moe.js';
import type { RefMoeMutation } from './tiny_moe.js';
import { argmax } from './tiny_llama.js';

interface Expected {
  input_ids: number[][];
  greedy: { prompt: number[]; ids: number[] };
  config_derived: { sparse_layers: boolean[] };
  layer_rule_examples: { num_hidden_layers: number; decoder_sparse_step: number; mlp_only_layers: number[]; sparse_layers: boolean[] }[];
}

async function loadCase(name: string) {
  const dir = fixturePath(`moe/${name}`);
  const ck = await readHfDir(dir); // checked against its config by moe.ts
  const exp = await readSafetensors(`${dir}/expected.safetensors`);
  const tensor = (n: string) => toFloat32(exp.tensors.find((t) => t.name === n)!);
  const json = JSON.parse(readFileSync(`${dir}/expected.json`, 'utf8')) as Expected;
  return { ck, tensor, json };
}

/** Largest |a − b| / max(1, |b|∞) of one row of logits against PyTorch's. */
function rel(a: Float64Array, b: Float32Array): number {
  let worst = 0, scale = 0;
  for (let j = 0; j < b.length; j++) { worst = Math.max(worst, Math.abs(a[j] - b[j])); scale = Math.max(scale, Math.abs(b[j])); }
  return worst / Math.max(1, scale);
}

/** RefMoe's worst relative logit error over the fixture's batch (eval logits) and its greedy continuation. */
async function compare(name: string, logitsKey: string, mutation: RefMoeMutation = {}): Promise<{ batch: number; greedy: number; ids: number[] }> {
  const { ck, tensor, json } = await loadCase(name);
  const V = ck.config.vocab_size as number;
  const L = tensor(logitsKey);
  const T = json.input_ids[0].length;
  let batch = 0;
  json.input_ids.forEach((row, b) => {
    const ref = new RefMoe(ck.config, ck.tensors, mutation);
    row.forEach((tok, t) => { batch = Math.max(batch, rel(ref.step(tok), L.subarray((b * T + t) * V, (b * T + t + 1) * V))); });
  });
  // greedy: greedy.logits[i] are the logits that chose ids[i] (the prompt, then each chosen token fed back)
  const G = tensor('greedy.logits');
  const ref = new RefMoe(ck.config, ck.tensors, mutation);
  let last: Float64Array = new Float64Array(0);
  for (const tok of json.greedy.prompt) last = ref.step(tok);
  let greedy = 0;
  const ids: number[] = [];
  for (let i = 0; i < json.greedy.ids.length; i++) {
    greedy = Math.max(greedy, rel(last, G.subarray(i * V, (i + 1) * V)));
    ids.push(argmax(last));
    last = ref.step(json.greedy.ids[i]);
  }
  return { batch, greedy, ids };
}

test('RefMoe reproduces the PyTorch MoE fixtures (mixtral; qwen2_moe with dense layers, shared expert, biases, tied head; tied mixtral with 1 kv head): logits and greedy tokens', async (t) => {
  for (const [name, key] of [['mixtral', 'logits'], ['qwen2_moe', 'logits'], ['capacity', 'logits_eval']]) {
    const { json } = await loadCase(name);
    const r = await compare(name, key);
    // float64 here vs float32 there: seen ≤ 1e-6
    assert.ok(r.batch <= 1e-5, `${name}: batch logits, max relative error ${r.batch}`);
    assert.ok(r.greedy <= 1e-5, `${name}: greedy logits, max relative error ${r.greedy}`);
    assert.deepEqual(r.ids, json.greedy.ids, `${name}: greedy tokens`);
    t.diagnostic(`${name}: max relative |Δlogit| batch ${r.batch.toExponential(2)}, greedy ${r.greedy.toExponential(2)}`);
  }
});

test('the fixture comparison can fail: RefMoe without renormalisation, with it for qwen2_moe, or without the shared gate\'s sigmoid', async () => {
  for (const [name, mutation] of [['mixtral', { normTopk: false }], ['qwen2_moe', { normTopk: true }], ['qwen2_moe', { noSharedSigmoid: true }]] as const) {
    const r = await compare(name, 'logits', mutation);
    assert.ok(r.batch > 1e-2, `${name} ${JSON.stringify(mutation)}: should disagree (max relative error ${r.batch})`);
  }
});

test('the sparse-layer rule (mlp_only_layers, decoder_sparse_step) of moe.ts and RefMoe matches the fixtures\' examples', async () => {
  const { ck, json } = await loadCase('qwen2_moe');
  assert.deepEqual(moeDims(ck.config).sparse, json.config_derived.sparse_layers);
  for (const ex of json.layer_rule_examples) {
    const cfg = { ...ck.config, num_hidden_layers: ex.num_hidden_layers, decoder_sparse_step: ex.decoder_sparse_step, mlp_only_layers: ex.mlp_only_layers };
    assert.deepEqual(moeDims(cfg).sparse, ex.sparse_layers, JSON.stringify(ex));
    assert.deepEqual(ex.sparse_layers.map((_, i) => isSparseLayer(cfg, i)), ex.sparse_layers, JSON.stringify(ex));
  }
});
