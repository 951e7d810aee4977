// Sparse mixture-of-experts models in GGUF: HF mixtral (llama.cpp's `llama` with experts) and
// qwen2_moe (`qwen2moe`). The round trip HF → GGUF → HF, the layout convert_hf_to_gguf.py writes
// (keys, experts stacked into ffn_*_exps, ne order, stored types), the HF tensor checks of both
// model types, what cannot be exported, bad input, the readModelGguf / writeModelGguf dispatch, and
// the outside reference, node-llama-cpp (llama.cpp's prebuilt binary, skipped when absent):
//   - its readGgufFileInfo reads our files with the same metadata and tensor infos;
//   - llama.cpp loads the tiny random Mixtral and Qwen2-MoE we write (F32) and its next-token
//     logits at every prompt position and its greedy tokens equal those of RefMoe (tiny_moe.ts),
//     a plain forward pass over the HF weights, to 1e-4 relative. Files with the experts stacked in
//     the wrong order or gate/up swapped, Mixtral q/k left in HF order, and a reference that skips
//     or adds the top-k renormalisation or drops the shared gate's sigmoid all disagree (the checks
//     can fail).
// llama.cpp, as node-llama-cpp 3.22.1 runs it, needs flashAttention: false for this precision: its
// CPU flash attention rounds to f16 inside (seen: ~4e-4 relative with it, ~3e-7 without), and F32
// KV-cache types. It refuses a qwen2moe file without output.weight ("missing tensor
// 'output.weight'"), hence the copy of token_embd for tied models; it loads qwen2moe files without
// q/k/v biases (qkv_bias false) and a 1-D ffn_gate_inp_shexp.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  serializeMoeGguf, writeMoeGguf, readMoeGguf, readModelGguf, writeModelGguf, readLlamaGguf, serializeLlamaGguf,
  serializeGguf, readGguf, gv, toFloat32, fromFloat32, convertDType, readSafetensors, permuteQK, unpermuteQK, moeDims, checkMoeTensors, moeTensorShapes,
  writeHfDir, readHfDir, ConfigFieldError, TensorError, MissingTensorError, UnexpectedTensorError,
} from '../../src/io/index.js';
import type { GgufValue, RawTensor, RawDType } from '../../src/io/index.js';
import { readFileSync } from 'node:fs';
import { tempDir, rng, randTensor, tinyLlamaConfig, tinyLlamaTensors } from './util.js';
import { fixturePath } from '../helpers.js';
import { tinySpmTokenizer, argmax } from './tiny_llama.js';
import { tinyMixtralConfig, tinyQwen2MoeConfig, tinyMoeTensors, RefMoe } from './tiny_moe.js';
import type { RefMoeMutation } from './tiny_moe.js';
import { assertSameAsGgufFileInfo, evalWithLlamaCpp, logitGap } from './llamacpp_util.js';
import { loadNodeLlamaCpp } from '../../bench/peers/nlc.js';
import type { NodeLlamaCpp } from '../../bench/peers/nlc.js';

let nlc: NodeLlamaCpp | null = null;
let llama: NodeLlamaCpp | null = null;
let skip: string | false = false;
before(async () => {
  const r = await loadNodeLlamaCpp();
  if ('error' in r) skip = r.error;
  else ({ nlc, llama } = r);
});
after(async () => { await llama?.dispose(); });

const tokenizer = tinySpmTokenizer(300);
const mixtral = tinyMixtralConfig(); // hidden 64, 4 heads / 2 kv, 4 experts of 64, top-2, 2 layers
const qwen = tinyQwen2MoeConfig(); // hidden 64, 4 heads / 2 kv, 4 experts of 32, top-2, shared 64, 2 layers

/** The stored type of an HF tensor for a file type: F32 for 1-D, routers and the shared gate; Q8_0 falls back to F16 for rows not of whole 32-blocks. */
function expectedDType(t: RawTensor, dtype: RawDType): RawDType {
  if (t.shape.length === 1 || /\.(block_sparse_moe\.gate|mlp\.gate|mlp\.shared_expert_gate)\.weight$/.test(t.name)) return 'F32';
  if (dtype === 'Q8_0' && t.shape[t.shape.length - 1] % 32 !== 0) return 'F16';
  return dtype;
}

const VARIANTS: [string, Record<string, unknown>][] = [
  ['mixtral', mixtral],
  ['mixtral tied', tinyMixtralConfig({ tie_word_embeddings: true })],
  ['mixtral 3 experts top-1, head_dim 32, 1 kv head', tinyMixtralConfig({ num_local_experts: 3, num_experts_per_tok: 1, head_dim: 32, num_key_value_heads: 1, intermediate_size: 48 })],
  ['qwen2_moe', qwen],
  ['qwen2_moe tied', tinyQwen2MoeConfig({ tie_word_embeddings: true })],
  ['qwen2_moe no qkv bias, 5 experts top-3, odd sizes', tinyQwen2MoeConfig({ qkv_bias: false, num_experts: 5, num_experts_per_tok: 3, moe_intermediate_size: 48, shared_expert_intermediate_size: 40, intermediate_size: 50 })],
];

test('round trip HF → GGUF → HF (mixtral, qwen2_moe; tied, untied; F32, F16, BF16, Q8_0): config, tokenizer and every tensor exact', async () => {
  for (const [label0, c] of VARIANTS) {
    for (const dtype of ['F32', 'F16', 'BF16', 'Q8_0'] as const) {
      const ts = tinyMoeTensors(c, 3);
      const label = `${label0} ${dtype}`;
      const bytes = serializeMoeGguf({ config: c, tensors: ts, tokenizer, dtype });
      const back = await readMoeGguf(bytes);
      assert.equal(back.modelType, c.model_type, label);
      assert.deepEqual(back.config, c, label);
      assert.deepEqual(back.tokenizer!.tokens, tokenizer.tokens);
      assert.deepEqual(Array.from(back.tokenizer!.scores!), Array.from(tokenizer.scores!));
      assert.deepEqual([back.tokenizer!.bosId, back.tokenizer!.eosId, back.tokenizer!.unkId, back.tokenizer!.addBos], [1, 2, 0, true]);
      assert.deepEqual(back.tensors.map((x) => x.name), ts.map((x) => x.name), label);
      for (const [i, orig] of ts.entries()) {
        const got = back.tensors[i];
        assert.deepEqual(got.shape, orig.shape, `${label} ${orig.name}`);
        assert.equal(got.dtype, expectedDType(orig, dtype), `${label} ${orig.name}`);
        assert.ok(Buffer.from(got.data).equals(convertDType(orig, got.dtype).data), `${label} ${orig.name}: bytes differ`);
      }
      // readModelGguf dispatches to the same reader
      const viaModel = await readModelGguf(bytes);
      assert.equal(viaModel.architecture, c.model_type === 'mixtral' ? 'llama' : 'qwen2moe');
      assert.equal(viaModel.modelType, c.model_type);
      assert.deepEqual(viaModel.config, back.config);
      assert.deepEqual(viaModel.tensors.map((x) => x.name), back.tensors.map((x) => x.name));
    }
  }
  // HF defaults fill what a config leaves out, and the file makes them explicit
  const minimal = { model_type: 'mixtral', hidden_size: 64, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 4, vocab_size: 300 };
  const full = tinyMixtralConfig({ num_hidden_layers: 1, num_key_value_heads: 4, num_local_experts: 8, rms_norm_eps: 1e-5, rope_theta: 1e6, max_position_embeddings: 131072 });
  const back = await readMoeGguf(serializeMoeGguf({ config: { ...minimal, num_key_value_heads: 4 }, tensors: tinyMoeTensors(full, 5), tokenizer }));
  assert.deepEqual(back.config, full);
  const d = moeDims({ ...minimal, num_key_value_heads: 4 });
  assert.deepEqual([d.experts, d.expertsPerTok, d.rmsNormEps, d.ropeTheta, d.maxPositions, d.slidingWindow, d.normTopkProb], [8, 2, 1e-5, 1e6, 131072, null, true]);
  assert.throws(() => moeDims(minimal), /num_key_value_heads: 8 does not divide num_attention_heads 4/); // MixtralConfig's default is 8 kv heads
  const qd = moeDims({ model_type: 'qwen2_moe', hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 16, vocab_size: 300 });
  assert.deepEqual([qd.kvHeads, qd.intermediate, qd.experts, qd.expertsPerTok, qd.expertIntermediate, qd.sharedIntermediate, qd.normTopkProb, qd.qkvBias, qd.sparse, qd.slidingWindow, qd.rmsNormEps],
    [16, 5632, 60, 4, 1408, 5632, false, true, [true, true], null, 1e-6]);
});

test('GGUF layout as convert_hf_to_gguf.py writes it: keys, experts stacked on the outer axis, ne order, stored types, q/k', async () => {
  const mts = tinyMoeTensors(mixtral, 7), qts = tinyMoeTensors(qwen, 7);
  const mHf = new Map(mts.map((t) => [t.name, t])), qHf = new Map(qts.map((t) => [t.name, t]));
  const m = await readGguf(serializeMoeGguf({ config: mixtral, tensors: mts, tokenizer, dtype: 'Q8_0', name: 'tiny' }));
  const q = await readGguf(serializeMoeGguf({ config: qwen, tensors: qts, tokenizer, dtype: 'F16' }));
  const md = (g: typeof m, k: string) => { const v = g.metadata.get(k); assert.ok(v, k); return [v.type, v.value]; };
  assert.deepEqual(md(m, 'general.architecture'), ['string', 'llama']);
  assert.deepEqual(md(m, 'general.name'), ['string', 'tiny']);
  for (const [k, v] of [['block_count', 2], ['context_length', 128], ['embedding_length', 64], ['feed_forward_length', 64], ['attention.head_count', 4],
    ['attention.head_count_kv', 2], ['expert_count', 4], ['expert_used_count', 2], ['vocab_size', 300], ['rope.dimension_count', 16]] as const) {
    assert.deepEqual(md(m, `llama.${k}`), ['u32', v], k);
  }
  assert.deepEqual(md(m, 'llama.attention.layer_norm_rms_epsilon'), ['f32', Math.fround(1e-5)]);
  assert.deepEqual(md(m, 'general.file_type'), ['u32', 7]);
  assert.deepEqual(md(q, 'general.architecture'), ['string', 'qwen2moe']);
  for (const [k, v] of [['block_count', 2], ['embedding_length', 64], ['feed_forward_length', 96], ['expert_count', 4], ['expert_used_count', 2],
    ['expert_feed_forward_length', 32], ['expert_shared_feed_forward_length', 64], ['attention.head_count_kv', 2]] as const) {
    assert.deepEqual(md(q, `qwen2moe.${k}`), ['u32', v], k);
  }
  assert.deepEqual(md(q, 'general.file_type'), ['u32', 1]);
  assert.ok(!q.metadata.has('qwen2moe.rope.dimension_count') && !q.metadata.has('llama.expert_count'));
  // [name, ne (ggml order), type]
  const want: [typeof m, string, number[], RawDType][] = [
    [m, 'token_embd.weight', [64, 300], 'Q8_0'], [m, 'blk.0.attn_norm.weight', [64], 'F32'], [m, 'blk.0.attn_q.weight', [64, 64], 'Q8_0'],
    [m, 'blk.0.attn_k.weight', [64, 32], 'Q8_0'], [m, 'blk.0.attn_output.weight', [64, 64], 'Q8_0'], [m, 'blk.0.ffn_norm.weight', [64], 'F32'],
    [m, 'blk.0.ffn_gate_inp.weight', [64, 4], 'F32'], [m, 'blk.0.ffn_gate_exps.weight', [64, 64, 4], 'Q8_0'],
    [m, 'blk.0.ffn_up_exps.weight', [64, 64, 4], 'Q8_0'], [m, 'blk.0.ffn_down_exps.weight', [64, 64, 4], 'Q8_0'],
    [m, 'output_norm.weight', [64], 'F32'], [m, 'output.weight', [64, 300], 'Q8_0'],
    [q, 'blk.1.attn_q.bias', [64], 'F32'], [q, 'blk.1.attn_k.bias', [32], 'F32'], [q, 'blk.1.attn_v.weight', [64, 32], 'F16'],
    [q, 'blk.1.ffn_gate_inp.weight', [64, 4], 'F32'], [q, 'blk.1.ffn_gate_exps.weight', [64, 32, 4], 'F16'],
    [q, 'blk.1.ffn_up_exps.weight', [64, 32, 4], 'F16'], [q, 'blk.1.ffn_down_exps.weight', [32, 64, 4], 'F16'],
    [q, 'blk.1.ffn_gate_inp_shexp.weight', [64, 1], 'F32'], [q, 'blk.1.ffn_gate_shexp.weight', [64, 64], 'F16'],
    [q, 'blk.1.ffn_up_shexp.weight', [64, 64], 'F16'], [q, 'blk.1.ffn_down_shexp.weight', [64, 64], 'F16'], [q, 'output.weight', [64, 300], 'F16'],
  ];
  for (const [g, name, ne, type] of want) {
    const t = g.tensors.find((x) => x.name === name);
    assert.ok(t, name);
    assert.deepEqual([...t.shape].reverse(), ne, name);
    assert.equal(t.dtype, type, name);
  }
  assert.equal(m.tensors.length, 1 + 2 * 10 + 2);
  assert.equal(q.tensors.length, 1 + 2 * 17 + 2);
  // expert e is slab e of the outermost axis (ne[2]); w1 → gate, w3 → up, w2 → down
  const slab = (g: typeof m, name: string, e: number, n: number) => toFloat32(g.tensors.find((x) => x.name === name)!).subarray(e * n, (e + 1) * n);
  for (let e = 0; e < 4; e++) {
    for (const [gname, hf] of [['gate', 'w1'], ['up', 'w3'], ['down', 'w2']]) {
      const want = toFloat32(convertDType(mHf.get(`model.layers.1.block_sparse_moe.experts.${e}.${hf}.weight`)!, 'Q8_0'));
      assert.deepEqual(slab(m, `blk.1.ffn_${gname}_exps.weight`, e, 64 * 64), want, `mixtral ${gname} expert ${e}`);
    }
    for (const kind of ['gate', 'up', 'down']) {
      const want = toFloat32(convertDType(qHf.get(`model.layers.0.mlp.experts.${e}.${kind}_proj.weight`)!, 'F16'));
      assert.deepEqual(slab(q, `blk.0.ffn_${kind}_exps.weight`, e, 64 * 32), want, `qwen ${kind} expert ${e}`);
    }
  }
  // the router is stored exactly; mixtral's q/k rows are in llama.cpp's interleaved order, qwen2moe's (NEOX RoPE) as HF has them
  assert.deepEqual(m.tensors.find((x) => x.name === 'blk.0.ffn_gate_inp.weight')!.data, mHf.get('model.layers.0.block_sparse_moe.gate.weight')!.data);
  const mq = convertDType(mHf.get('model.layers.0.self_attn.k_proj.weight')!, 'Q8_0');
  assert.deepEqual(m.tensors.find((x) => x.name === 'blk.0.attn_k.weight')!.data, unpermuteQK(mq, 2).data);
  assert.notDeepEqual(unpermuteQK(mq, 2).data, mq.data);
  assert.deepEqual(q.tensors.find((x) => x.name === 'blk.0.attn_q.weight')!.data, convertDType(qHf.get('model.layers.0.self_attn.q_proj.weight')!, 'F16').data);
  assert.deepEqual(q.tensors.find((x) => x.name === 'blk.0.attn_q.bias')!.data, qHf.get('model.layers.0.self_attn.q_proj.bias')!.data);
  // tied: mixtral has no output.weight (llama.cpp falls back to token_embd); qwen2moe, which requires it, gets token_embd's bytes
  for (const c of [tinyMixtralConfig({ tie_word_embeddings: true }), tinyQwen2MoeConfig({ tie_word_embeddings: true })]) {
    const g = await readGguf(serializeMoeGguf({ config: c, tensors: tinyMoeTensors(c, 1), tokenizer, dtype: 'Q8_0' }));
    const out = g.tensors.find((x) => x.name === 'output.weight');
    if (c.model_type === 'mixtral') assert.equal(out, undefined);
    else assert.deepEqual(out!.data, g.tensors.find((x) => x.name === 'token_embd.weight')!.data);
  }
  // an untied qwen2_moe whose lm_head equals its embeddings reads back as tied (the same model)
  const same = qts.map((t) => (t.name === 'lm_head.weight' ? { ...qHf.get('model.embed_tokens.weight')!, name: 'lm_head.weight' } : t));
  const back = await readMoeGguf(serializeMoeGguf({ config: qwen, tensors: same, tokenizer }));
  assert.equal(back.config.tie_word_embeddings, true);
  assert.ok(!back.tensors.some((t) => t.name === 'lm_head.weight'));
  // a 1-D ffn_gate_inp_shexp (llama.cpp's declared shape) reads as the HF (1, H)
  const oneD = serializeGguf({ metadata: q.metadata, tensors: q.tensors.map((t) => (t.name.endsWith('ffn_gate_inp_shexp.weight') ? { ...t, shape: [64] } : t)) });
  const r1 = await readMoeGguf(oneD);
  assert.deepEqual(r1.tensors.find((t) => t.name === 'model.layers.1.mlp.shared_expert_gate.weight')!.shape, [1, 64]);
});

test('HF tensor checks of mixtral and qwen2_moe: missing, extra or misshapen expert tensors name the file and tensor; num_experts_per_tok > experts names the field', async (t) => {
  const dir = tempDir(t);
  const cfgPath = path.join(dir, 'config.json');
  for (const c of [mixtral, qwen]) {
    const ts = tinyMoeTensors(c, 3);
    await writeHfDir(dir, { config: c, tensors: ts });
    assert.equal((await readHfDir(dir)).tensors.length, ts.length);
    // the enumeration of tiny_moe.ts and moe.ts's agree, in order
    assert.deepEqual([...moeTensorShapes(moeDims(c)).keys()], ts.map((x) => x.name));
  }
  const withTensors = async (c: Record<string, unknown>, ts: RawTensor[], cls: Function, re: RegExp) => {
    await writeHfDir(dir, { config: c, tensors: ts });
    await assert.rejects(readHfDir(dir), (e: unknown) => {
      assert.ok(e instanceof cls, `${(e as Error).name}: ${(e as Error).message}`);
      assert.match((e as Error).message, re);
      return true;
    });
  };
  const mts = tinyMoeTensors(mixtral, 3), qts = tinyMoeTensors(qwen, 3);
  const drop = (ts: RawTensor[], n: string) => ts.filter((x) => x.name !== n);
  const reshape = (ts: RawTensor[], n: string, shape: number[]) => ts.map((x) => (x.name === n ? randTensor(n, shape, rng(1)) : x));
  await withTensors(mixtral, drop(mts, 'model.layers.1.block_sparse_moe.experts.3.w2.weight'), MissingTensorError, /model\.safetensors: tensor 'model\.layers\.1\.block_sparse_moe\.experts\.3\.w2\.weight': missing/);
  await withTensors(mixtral, [...mts, randTensor('model.layers.0.block_sparse_moe.experts.4.w1.weight', [64, 64], rng(1))], UnexpectedTensorError,
    /model\.safetensors: tensor 'model\.layers\.0\.block_sparse_moe\.experts\.4\.w1\.weight': expert 4 does not exist: the config has num_local_experts = 4/);
  await withTensors(mixtral, reshape(mts, 'model.layers.0.block_sparse_moe.experts.1.w2.weight', [64, 32]), TensorError,
    /tensor 'model\.layers\.0\.block_sparse_moe\.experts\.1\.w2\.weight': shape \[64, 32\] does not match the config's \[64, 64\]/);
  await withTensors(mixtral, reshape(mts, 'model.layers.1.block_sparse_moe.gate.weight', [3, 64]), TensorError,
    /tensor 'model\.layers\.1\.block_sparse_moe\.gate\.weight': shape \[3, 64\] does not match the config's \[4, 64\]/);
  await withTensors(qwen, drop(qts, 'model.layers.0.mlp.shared_expert_gate.weight'), MissingTensorError, /tensor 'model\.layers\.0\.mlp\.shared_expert_gate\.weight': missing/);
  await withTensors(qwen, reshape(qts, 'model.layers.0.mlp.experts.2.up_proj.weight', [64, 32]), TensorError,
    /tensor 'model\.layers\.0\.mlp\.experts\.2\.up_proj\.weight': shape \[64, 32\] does not match the config's \[32, 64\]/);
  await withTensors(qwen, drop(qts, 'model.layers.1.self_attn.v_proj.bias'), MissingTensorError, /tensor 'model\.layers\.1\.self_attn\.v_proj\.bias': missing/);
  await withTensors({ ...qwen, qkv_bias: false }, qts, UnexpectedTensorError, /tensor 'model\.layers\.\d\.self_attn\.[qkv]_proj\.bias': unexpected/);
  await withTensors({ ...qwen, num_experts: 5 }, qts, TensorError, /tensor 'model\.layers\.0\.mlp\.gate\.weight': shape \[4, 64\] does not match the config's \[5, 64\]/);
  await withTensors({ ...qwen, num_experts: 5 }, qts.map((x) => (x.name.endsWith('mlp.gate.weight') ? randTensor(x.name, [5, 64], rng(1)) : x)), MissingTensorError,
    /tensor 'model\.layers\.0\.mlp\.experts\.4\.gate_proj\.weight': missing/);
  await withTensors({ ...mixtral, num_local_experts: 3, num_experts_per_tok: 2 }, mts, UnexpectedTensorError, /expert 3 does not exist: the config has num_local_experts = 3/);
  // a qwen2_moe with a dense layer (mlp_only_layers) has mlp.{gate,up,down}_proj there and no experts
  const dense = tinyQwen2MoeConfig({ mlp_only_layers: [0] });
  await writeHfDir(dir, { config: dense, tensors: tinyMoeTensors(dense, 3) });
  assert.ok((await readHfDir(dir)).tensors.some((x) => x.name === 'model.layers.0.mlp.down_proj.weight'));
  await withTensors(dense, qts, UnexpectedTensorError, /tensor 'model\.layers\.0\.mlp\.(gate|experts|shared_expert)[^']*': unexpected/);
  const sparse2 = tinyQwen2MoeConfig({ decoder_sparse_step: 2 }); // layer 0 dense, layer 1 sparse
  assert.deepEqual(moeDims(sparse2).sparse, [false, true]);
  checkMoeTensors('x', tinyMoeTensors(sparse2, 1), moeDims(sparse2));
  // config fields
  const withCfg = async (c: unknown, re: RegExp) => {
    await writeHfDir(dir, { config: mixtral, tensors: mts });
    writeFileSync(cfgPath, JSON.stringify(c));
    await assert.rejects(readHfDir(dir), (e: unknown) => e instanceof ConfigFieldError && re.test((e as Error).message));
  };
  await withCfg({ ...mixtral, num_experts_per_tok: 5 }, /config\.json: num_experts_per_tok: 5 is more than the 4 experts \(num_local_experts\)/);
  await withCfg({ ...qwen, num_experts_per_tok: 5 }, /config\.json: num_experts_per_tok: 5 is more than the 4 experts \(num_experts\)/);
  await withCfg({ ...mixtral, num_local_experts: 0 }, /config\.json: num_local_experts: must be a positive integer, got 0/);
  await withCfg({ ...qwen, moe_intermediate_size: 'big' }, /config\.json: moe_intermediate_size: must be a positive integer, got "big"/);
  await withCfg({ ...qwen, mlp_only_layers: [2] }, /config\.json: mlp_only_layers: must be a list of layer indices in \[0, 2\), got \[2\]/);
  await withCfg({ ...qwen, norm_topk_prob: 1 }, /config\.json: norm_topk_prob: must be a boolean, got 1/);
  await withCfg({ ...mixtral, sliding_window: -1 }, /config\.json: sliding_window: must be a positive integer, got -1/);
});

test('export refusals: what llama.cpp cannot run as HF does is refused naming the config field', async (t) => {
  const rej = (c: Record<string, unknown>, re: RegExp) => {
    const ts = tinyMoeTensors(c, 2);
    checkMoeTensors('ok', ts, moeDims(c)); // a valid HF model, just not one llama.cpp computes
    assert.throws(() => serializeMoeGguf({ config: c, tensors: ts, tokenizer }), (e: unknown) => {
      assert.ok(e instanceof ConfigFieldError, `${(e as Error).name}: ${(e as Error).message}`);
      assert.match((e as Error).message, re);
      return true;
    });
  };
  rej(tinyQwen2MoeConfig({ mlp_only_layers: [1] }), /^<memory>: mlp_only_layers: makes layer 1 a dense MLP: llama\.cpp's qwen2moe has a sparse MoE block with a shared expert in every layer; this model cannot be exported to GGUF/);
  rej(tinyQwen2MoeConfig({ decoder_sparse_step: 2 }), /^<memory>: decoder_sparse_step: makes layer 0 a dense MLP/);
  rej(tinyQwen2MoeConfig({ norm_topk_prob: true }), /^<memory>: norm_topk_prob: is true: llama\.cpp's qwen2moe never renormalises the top-k routing weights/);
  rej(tinyQwen2MoeConfig({ head_dim: 32 }), /^<memory>: head_dim: 32 × 4 heads ≠ hidden_size 64: llama\.cpp's qwen2moe needs head_dim = hidden_size \/ num_attention_heads/);
  rej(tinyQwen2MoeConfig({ use_sliding_window: true, sliding_window: 64 }), /^<memory>: use_sliding_window: a sliding window of 64 < max_position_embeddings 128: llama\.cpp's qwen2moe attends to the whole context/);
  rej(tinyMixtralConfig({ sliding_window: 32 }), /^<memory>: sliding_window: a sliding window of 32 < max_position_embeddings 128: llama\.cpp's llama attends/);
  rej(tinyMixtralConfig({ hidden_act: 'gelu' }), /^<memory>: hidden_act: "gelu": llama\.cpp's experts are SwiGLU/);
  rej(tinyMixtralConfig({ rope_scaling: { type: 'linear', factor: 2 } }), /^<memory>: rope_scaling: is set/);
  const dir = tempDir(t);
  await assert.rejects(writeModelGguf(path.join(dir, 'x.gguf'), { config: tinyQwen2MoeConfig({ norm_topk_prob: true }), tensors: tinyMoeTensors(qwen, 2), tokenizer }), /x\.gguf: norm_topk_prob: is true/);
  // a window no shorter than the context changes nothing: written (and read back without it)
  const w = tinyMixtralConfig({ sliding_window: 128 });
  assert.equal((await readMoeGguf(serializeMoeGguf({ config: w, tensors: tinyMoeTensors(w, 2), tokenizer }))).config.sliding_window, undefined);
  const q = tinyQwen2MoeConfig({ use_sliding_window: false, sliding_window: 16 }); // sliding_window unused without use_sliding_window
  serializeMoeGguf({ config: q, tensors: tinyMoeTensors(q, 2), tokenizer });
});

test('bad MoE input: tensors against the config, GGUF metadata and tensors, and the readers of other architectures', async () => {
  const mts = tinyMoeTensors(mixtral, 3);
  assert.throws(() => serializeMoeGguf({ config: mixtral, tensors: mts.filter((x) => !x.name.endsWith('1.block_sparse_moe.experts.2.w3.weight')), tokenizer }),
    /<memory>: tensor 'model\.layers\.1\.block_sparse_moe\.experts\.2\.w3\.weight': missing/);
  assert.throws(() => serializeMoeGguf({ config: mixtral, tensors: mts, tokenizer: tinySpmTokenizer(299) }), /tokenizer\.ggml\.tokens: has 299 tokens but vocab_size is 300/);
  assert.throws(() => serializeMoeGguf({ config: { ...mixtral, model_type: 'llama' }, tensors: mts, tokenizer }), /<memory>: model_type: expected "mixtral" or "qwen2_moe", got "llama"/);
  assert.throws(() => serializeMoeGguf({ config: mixtral, tensors: mts, tokenizer, dtype: 'Q2_K' as any }), /dtype: must be F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K or Q6_K, got "Q2_K"/);

  const rewrite = async (c: Record<string, unknown>, edit: (md: Map<string, GgufValue>, ts: RawTensor[]) => void) => {
    const g = await readGguf(serializeMoeGguf({ config: c, tensors: tinyMoeTensors(c, 3), tokenizer }));
    const md = new Map(g.metadata);
    const ts = [...g.tensors];
    edit(md, ts);
    return serializeGguf({ metadata: md, tensors: ts });
  };
  const rej = async (bytes: Uint8Array, cls: Function, re: RegExp) => {
    for (const read of [() => readMoeGguf(bytes, { label: 'm.gguf' }), () => readModelGguf(bytes, { label: 'm.gguf' })]) {
      await assert.rejects(read(), (e: unknown) => {
        assert.ok(e instanceof cls, `${(e as Error).name}: ${(e as Error).message}`);
        assert.match((e as Error).message, re);
        return true;
      });
    }
  };
  const replace = (ts: RawTensor[], x: RawTensor) => { ts[ts.findIndex((y) => y.name === x.name)] = x; };
  await rej(await rewrite(qwen, (md) => md.delete('qwen2moe.expert_count')), ConfigFieldError, /^m\.gguf: qwen2moe\.expert_count: is missing/);
  await rej(await rewrite(qwen, (md) => md.set('qwen2moe.expert_used_count', gv.u32(5))), ConfigFieldError, /^m\.gguf: qwen2moe\.expert_used_count: 5 is more than qwen2moe\.expert_count 4/);
  await rej(await rewrite(mixtral, (md) => md.set('llama.expert_used_count', gv.f32(2))), ConfigFieldError, /^m\.gguf: llama\.expert_used_count: must be an integer, got type f32/);
  await rej(await rewrite(mixtral, (md) => md.set('llama.expert_count', gv.u32(5))), TensorError, /^m\.gguf: tensor 'blk\.0\.ffn_gate_inp\.weight': shape \[4, 64\] does not match the config's \[5, 64\]/);
  await rej(await rewrite(qwen, (md) => md.set('qwen2moe.expert_feed_forward_length', gv.u32(64))), TensorError, /^m\.gguf: tensor 'blk\.0\.ffn_gate_exps\.weight': shape \[4, 32, 64\] does not match the config's \[4, 64, 64\]/);
  await rej(await rewrite(qwen, (_, ts) => replace(ts, randTensor('blk.1.ffn_down_exps.weight', [4, 32, 64], rng(1)))), TensorError, /tensor 'blk\.1\.ffn_down_exps\.weight': shape \[4, 32, 64\] does not match the config's \[4, 64, 32\]/);
  await rej(await rewrite(qwen, (_, ts) => ts.splice(ts.findIndex((x) => x.name === 'blk.0.ffn_up_shexp.weight'), 1)), MissingTensorError, /^m\.gguf: tensor 'blk\.0\.ffn_up_shexp\.weight': missing/);
  await rej(await rewrite(mixtral, (_, ts) => ts.push(randTensor('blk.0.ffn_gate_shexp.weight', [64, 64], rng(1)))), UnexpectedTensorError, /^m\.gguf: tensor 'blk\.0\.ffn_gate_shexp\.weight': unexpected/);
  await rej(await rewrite(mixtral, (_, ts) => ts.splice(ts.findIndex((x) => x.name === 'blk.1.ffn_gate_inp.weight'), 1)), MissingTensorError, /tensor 'blk\.1\.ffn_gate_inp\.weight': missing/);
  // the other readers point at this one, and this one at them
  const mbytes = await rewrite(mixtral, () => {});
  await assert.rejects(readLlamaGguf(mbytes, { label: 'm.gguf' }), /^ConfigFieldError: m\.gguf: llama\.expert_count: is 4: a mixture-of-experts \(Mixtral\) model; read it with readMoeGguf or readModelGguf/);
  const lc = tinyLlamaConfig();
  await assert.rejects(readMoeGguf(serializeLlamaGguf({ config: lc, tensors: tinyLlamaTensors(lc, 1), tokenizer }), { label: 'l.gguf' }), /l\.gguf: llama\.expert_count: is missing/);
  await assert.rejects(readMoeGguf(await rewrite(mixtral, (md) => md.set('general.architecture', gv.str('mamba'))), { label: 'm.gguf' }),
    /m\.gguf: general\.architecture: expected "llama" \(with experts\) or "qwen2moe", got "mamba"/);
});

test('readModelGguf / writeModelGguf dispatch: mixtral → llama with experts, qwen2_moe → qwen2moe, plain llama stays llama', async (t) => {
  const dir = tempDir(t);
  const lc = tinyLlamaConfig();
  for (const [c, ts, arch] of [[mixtral, tinyMoeTensors(mixtral, 2), 'llama'], [qwen, tinyMoeTensors(qwen, 2), 'qwen2moe'], [lc, tinyLlamaTensors(lc, 2), 'llama']] as const) {
    const p = path.join(dir, `${String(c.model_type)}.gguf`);
    await writeModelGguf(p, { config: c, tensors: ts, tokenizer, dtype: 'F16' });
    const back = await readModelGguf(p);
    assert.equal(back.architecture, arch);
    assert.equal(back.modelType, c.model_type);
    assert.deepEqual(back.config, c);
    assert.deepEqual(back.tensors.map((x) => x.name), ts.map((x) => x.name));
    if (c !== lc) assert.deepEqual(back.tensors, (await readMoeGguf(p)).tensors);
  }
  await assert.rejects(writeModelGguf(path.join(dir, 'y.gguf'), { config: { model_type: 'gpt2' }, tensors: [], tokenizer }), /y\.gguf: model_type: "gpt2" has no GGUF writer \(tslm writes llama, mamba, mixtral, qwen2_moe\)/);
});

// ---- node-llama-cpp -------------------------------------------------------------------------

test('node-llama-cpp readGgufFileInfo parses our MoE GGUFs: same metadata, same tensor infos', async (t) => {
  if (skip) return t.skip(skip);
  const dir = tempDir(t);
  for (const [i, [, c]] of VARIANTS.entries()) {
    const dtype = (['F32', 'F16', 'BF16', 'Q8_0'] as const)[i % 4];
    const p = path.join(dir, `v${i}.gguf`);
    await writeMoeGguf(p, { config: c, tensors: tinyMoeTensors(c, 1), tokenizer, dtype, name: 'tiny' });
    await assertSameAsGgufFileInfo(nlc, p);
  }
});

// llama.cpp's CPU flash attention rounds to f16: off, with F32 KV cache, llama.cpp's F32 path is exact to ~1e-6
const CTX = { experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32', flashAttention: false };

interface RefRun { logits: Float64Array[]; greedy: number[]; minRouterGap: number; minTopGap: number }

/** RefMoe's logits after each prompt token and its greedy continuation (ending before </s>, as node-llama-cpp's evaluate does). */
function reference(c: Record<string, unknown>, ts: RawTensor[], prompt: number[], nGen: number, mutation: RefMoeMutation = {}): RefRun {
  const ref = new RefMoe(c, ts, mutation);
  const logits = prompt.map((tok) => ref.step(tok));
  const greedy: number[] = [];
  let last = logits[logits.length - 1];
  let minTopGap = Infinity;
  for (let i = 0; i < nGen; i++) {
    const tok = argmax(last);
    const second = Math.max(...Array.from(last).filter((_, j) => j !== tok));
    minTopGap = Math.min(minTopGap, last[tok] - second);
    if (tok === tokenizer.eosId) break;
    greedy.push(tok);
    if (i + 1 < nGen) last = ref.step(tok);
  }
  return { logits, greedy, minRouterGap: ref.minRouterGap, minTopGap };
}

/** Largest |Δlogit| / max(1, logit scale) over the prompt positions. */
function relGap(got: Float64Array[], want: Float64Array[]): number {
  let w = 0;
  for (let i = 0; i < want.length; i++) {
    const { worst, scale } = logitGap(got[i], want[i]);
    w = Math.max(w, worst / Math.max(1, scale));
  }
  return w;
}

const PROMPT = [1, 270, 5, 290, 100, 33, 261, 299];
const NGEN = 10;
const TOL = 1e-4;
/** Seeds of the random weights whose routers and greedy path keep margins ≥ 2e-3 on PROMPT (asserted below). */
const SEED = { mixtral: 1, qwen: 2 };

test('llama.cpp loads our Mixtral and Qwen2-MoE GGUFs (F32, tied and untied): same logits (1e-4) and greedy tokens as the reference forward', async (t) => {
  if (skip) return t.skip(skip);
  const dir = tempDir(t);
  const cases: [string, Record<string, unknown>, number][] = [
    ['mixtral', mixtral, SEED.mixtral], ['mixtral tied', tinyMixtralConfig({ tie_word_embeddings: true }), 10],
    ['qwen2_moe', qwen, SEED.qwen], ['qwen2_moe tied', tinyQwen2MoeConfig({ tie_word_embeddings: true }), 10],
    ['qwen2_moe no qkv bias, 5 experts top-3', tinyQwen2MoeConfig({ qkv_bias: false, num_experts: 5, num_experts_per_tok: 3, moe_intermediate_size: 48, shared_expert_intermediate_size: 40 }), 1],
  ];
  for (const [label, c, seed] of cases) {
    const ts = tinyMoeTensors(c, seed);
    const p = path.join(dir, 'm.gguf');
    await writeMoeGguf(p, { config: c, tensors: ts, tokenizer });
    const ref = reference(c, ts, PROMPT, NGEN);
    // no near-ties: the top-k choice of every router and each greedy token hold with a margin far above the F32 error
    assert.ok(ref.minRouterGap >= 1e-3, `${label}: router top-k margin ${ref.minRouterGap}`);
    assert.ok(ref.minTopGap >= 1e-3, `${label}: greedy margin ${ref.minTopGap}`);
    assert.equal(ref.greedy.length, NGEN, `${label}: the reference's greedy path reaches </s>`);
    assert.ok(new Set(ref.greedy).size >= 4, `${label}: a greedy path that is not one token repeated`);
    const got = await evalWithLlamaCpp(llama, p, PROMPT, NGEN, 300, CTX);
    const gap = relGap(got.logits, ref.logits);
    assert.ok(gap <= TOL, `${label}: max |Δlogit| / scale ${gap}`);
    assert.deepEqual(got.greedy, ref.greedy, `${label}: greedy tokens`);
    t.diagnostic(`${label}: max relative |Δlogit| ${gap.toExponential(2)}, router margin ${ref.minRouterGap.toFixed(3)}, greedy ${got.greedy.join(' ')}`);
  }
});

test('the llama.cpp comparison can fail: experts out of order, gate/up swapped, unpermuted q/k, and a reference that mis-normalises or drops the sigmoid', async (t) => {
  if (skip) return t.skip(skip);
  const dir = tempDir(t);
  const mts = tinyMoeTensors(mixtral, SEED.mixtral), qts = tinyMoeTensors(qwen, SEED.qwen);
  const wrongBy = 100 * TOL; // a broken model misses by far more than the tolerance
  // files broken in ways a writer could be, each against the correct reference
  const reorder = (x: RawTensor): RawTensor => { // expert e ← expert E−1−e
    if (!/_exps\.weight$/.test(x.name)) return x;
    const per = x.data.length / 4, data = new Uint8Array(x.data.length);
    for (let e = 0; e < 4; e++) data.set(x.data.subarray((3 - e) * per, (4 - e) * per), e * per);
    return { ...x, data };
  };
  const fileCases: [string, Record<string, unknown>, RawTensor[], (ts: RawTensor[]) => RawTensor[]][] = [
    ['mixtral experts stacked in reverse order', mixtral, mts, (ts) => ts.map(reorder)],
    ['qwen2_moe experts stacked in reverse order', qwen, qts, (ts) => ts.map(reorder)],
    ['mixtral gate and up swapped', mixtral, mts, (ts) => ts.map((x) => ({ ...x, name: x.name.replace(/ffn_(gate|up)_exps/, (_, k) => `ffn_${k === 'gate' ? 'up' : 'gate'}_exps`) }))],
    ['mixtral q/k in HF order', mixtral, mts, (ts) => ts.map((x) => (/attn_q\.weight$/.test(x.name) ? permuteQK(x, 4) : /attn_k\.weight$/.test(x.name) ? permuteQK(x, 2) : x))],
  ];
  for (const [label, c, ts, edit] of fileCases) {
    const g = await readGguf(serializeMoeGguf({ config: c, tensors: ts, tokenizer }));
    const p = path.join(dir, 'wrong.gguf');
    writeFileSync(p, serializeGguf({ metadata: g.metadata, tensors: edit([...g.tensors]) }));
    const got = await evalWithLlamaCpp(llama, p, PROMPT, 1, 300, CTX);
    const gap = relGap(got.logits, reference(c, ts, PROMPT, 1).logits);
    assert.ok(gap > wrongBy, `${label}: llama.cpp should compute another model (relative gap ${gap})`);
  }
  // a reference with other semantics disagrees with llama.cpp on the correct files
  const refCases: [string, Record<string, unknown>, RawTensor[], RefMoeMutation][] = [
    ['mixtral without renormalising the top-k weights', mixtral, mts, { normTopk: false }],
    ['qwen2_moe renormalising the top-k weights (norm_topk_prob)', qwen, qts, { normTopk: true }],
    ['qwen2_moe without the shared gate\'s sigmoid', qwen, qts, { noSharedSigmoid: true }],
  ];
  for (const [label, c, ts, mutation] of refCases) {
    const p = path.join(dir, 'right.gguf');
    await writeMoeGguf(p, { config: c, tensors: ts, tokenizer });
    const got = await evalWithLlamaCpp(llama, p, PROMPT, 1, 300, CTX);
    assert.ok(relGap(got.logits, reference(c, ts, PROMPT, 1).logits) <= TOL, `${label}: the correct reference agrees`);
    const gap = relGap(got.logits, reference(c, ts, PROMPT, 1, mutation).logits);
    assert.ok(gap > wrongBy, `${label}: should disagree with llama.cpp (relative gap ${gap})`);
  }
});

test('llama.cpp loads our F16 and Q8_0 MoE files: logits within the rounding of its f16 / Q8_0 matmuls', async (t) => {
  if (skip) return t.skip(skip);
  const dir = tempDir(t);
  for (const [label, c, seed] of [['mixtral', mixtral, SEED.mixtral], ['qwen2_moe', qwen, SEED.qwen]] as const) {
    const ts = tinyMoeTensors(c, seed);
    for (const dtype of ['F16', 'Q8_0'] as const) {
      const p = path.join(dir, `${dtype}.gguf`);
      await writeMoeGguf(p, { config: c, tensors: ts, tokenizer, dtype });
      // the reference runs on the weights as the file stores them
      const ref = reference(c, (await readMoeGguf(p)).tensors, PROMPT, 1);
      const got = await evalWithLlamaCpp(llama, p, PROMPT, 1, 300, CTX);
      // llama.cpp rounds the activations to f16 / Q8_0 blocks inside those matmuls (as for LLaMA and Mamba)
      const tol = { F16: 1e-2, Q8_0: 6e-2 }[dtype];
      const gap = relGap(got.logits, ref.logits);
      assert.ok(gap <= tol, `${label} ${dtype}: max |Δlogit| / scale ${gap}`);
      t.diagnostic(`${label} ${dtype}: max relative |Δlogit| ${gap.toExponential(2)}`);
    }
  }
});

test('llama.cpp on the independent PyTorch MoE fixtures (test/fixtures/moe): our GGUF of their checkpoints gives their logits; the qwen2_moe one (dense layers) is refused', async (t) => {
  // the tokenizer llama.cpp needs has the 256 byte tokens, more than the fixtures' vocabularies:
  // embedding and lm_head get zero rows up to 300 tokens, which leaves the first V logits as they were
  const dir = tempDir(t);
  const qdir = fixturePath('moe/qwen2_moe');
  const q = await readHfDir(qdir);
  assert.throws(() => serializeMoeGguf({ config: q.config, tensors: q.tensors, tokenizer }), /mlp_only_layers: makes layer 0 a dense MLP/);
  if (skip) return t.skip(skip);
  for (const [name, key] of [['mixtral', 'logits'], ['capacity', 'logits_eval']]) {
    const fdir = fixturePath(`moe/${name}`);
    const ck = await readHfDir(fdir);
    const V = ck.config.vocab_size as number;
    const pad = (x: RawTensor): RawTensor => {
      if (x.name !== 'model.embed_tokens.weight' && x.name !== 'lm_head.weight') return x;
      const v = new Float32Array(300 * x.shape[1]);
      v.set(toFloat32(x));
      return fromFloat32(x.name, [300, x.shape[1]], v);
    };
    const p = path.join(dir, `${name}.gguf`);
    await writeMoeGguf(p, { config: { ...ck.config, vocab_size: 300 }, tensors: ck.tensors.map(pad), tokenizer });
    const L = toFloat32((await readSafetensors(path.join(fdir, 'expected.safetensors'))).tensors.find((x) => x.name === key)!);
    const ids = (JSON.parse(readFileSync(path.join(fdir, 'expected.json'), 'utf8')) as { input_ids: number[][] }).input_ids;
    const T = ids[0].length;
    let worst = 0;
    for (const [b, row] of ids.entries()) {
      const got = await evalWithLlamaCpp(llama, p, row, 1, 300, CTX);
      const want = row.map((_, i) => Float64Array.from(L.subarray((b * T + i) * V, (b * T + i + 1) * V)));
      worst = Math.max(worst, relGap(got.logits.map((l) => l.subarray(0, V)), want));
    }
    assert.ok(worst <= TOL, `${name}: llama.cpp vs PyTorch, max |Δlogit| / scale ${worst}`);
    t.diagnostic(`${name}: llama.cpp vs PyTorch max relative |Δlogit| ${worst.toExponential(2)}`);
  }
});
