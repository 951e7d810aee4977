// The outside reference for GGUF: node-llama-cpp (llama.cpp's prebuilt binary from npm).
// 1. Its GGUF parser (readGgufFileInfo) reads what we write with the same metadata and tensor infos.
// 2. llama.cpp loads a tiny LLaMA we write (F32, F16, Q8_0), and its logits and greedy tokens match
//    a plain reference forward pass over the HF-layout weights — which checks the tensor names,
//    the ne[] order, the q/k permutation to llama.cpp's interleaved RoPE and the metadata keys.
//
// How (the lead can reuse this to compare tslm's LLaMA greedy tokens with llama.cpp's):
//   const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
//   const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
//   const ctx = await model.createContext({ contextSize: 64, batchSize: 64, threads: 2,
//     experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
//   const seq = ctx.getSequence();
//   const out = await seq.controlledEvaluate([...prompt.slice(0, -1), [last, { generateNext: { token: true, logits: true } }]]);
//     → out[i].next.token (greedy) and out[i].next.logits (Map token → logit)
//   for await (const t of seq.evaluate(prompt, { temperature: 0 })) { … }  → greedy continuation
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { writeLlamaGguf, readGguf, readLlamaGguf } from '../../src/io/index.js';
import type { RawTensor } from '../../src/io/index.js';
import { tempDir, tinyLlamaConfig, tinyLlamaTensors } from './util.js';
import { tinySpmTokenizer, RefLlama, argmax } from './tiny_llama.js';
import { assertSameAsGgufFileInfo, evalWithLlamaCpp as evalModel } from './llamacpp_util.js';

import { loadNodeLlamaCpp } from '../../bench/peers/nlc.js';
import type { NodeLlamaCpp } from '../../bench/peers/nlc.js';
type NLC = NodeLlamaCpp;
type Token = number;
type Item = NodeLlamaCpp;
let nlc: NLC | null = null;
let llama: NodeLlamaCpp | null = null;
let skip: string | false = false;

before(async () => {
  const r = await loadNodeLlamaCpp();
  if ('error' in r) skip = r.error;
  else ({ nlc, llama } = r);
});
after(async () => { await llama?.dispose(); });

const cfg = tinyLlamaConfig(); // hidden 64, 4 heads, 2 kv heads, ffn 128, 2 layers, vocab 300
const tensors = tinyLlamaTensors(cfg, 7);
const tokenizer = tinySpmTokenizer(cfg.vocab_size as number);

test('node-llama-cpp readGgufFileInfo parses our GGUF: same metadata, same tensor infos', async (t) => {
  if (skip) return t.skip(skip);
  const dir = tempDir(t);
  for (const dtype of ['F32', 'F16', 'BF16', 'Q8_0'] as const) {
    const p = path.join(dir, `tiny-${dtype}.gguf`);
    await writeLlamaGguf(p, { config: cfg, tensors, tokenizer, dtype, name: 'tiny' });
    await assertSameAsGgufFileInfo(nlc, p);
    assert.equal((await readGguf(p)).metadata.get('general.architecture')!.value, 'llama');
  }
});

const KV_F32 = { experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' };
function evalWithLlamaCpp(modelPath: string, prompt: number[], nGen: number): Promise<{ logits: Float64Array[]; greedy: number[] }> {
  return evalModel(llama, modelPath, prompt, nGen, cfg.vocab_size as number, KV_F32);
}

function reference(ts: RawTensor[], prompt: number[], nGen: number): { logits: Float64Array[]; greedy: number[] } {
  const ref = new RefLlama(cfg as any, ts);
  const logits = prompt.map((tok) => ref.step(tok));
  const greedy: number[] = [];
  let last = logits[logits.length - 1];
  for (let i = 0; i < nGen; i++) {
    const tok = argmax(last);
    greedy.push(tok);
    if (i + 1 < nGen) last = ref.step(tok);
  }
  return { logits, greedy };
}

test('llama.cpp loads our LLaMA GGUF (F32, F16, Q8_0): same logits and greedy tokens as the reference forward', async (t) => {
  if (skip) return t.skip(skip);
  const dir = tempDir(t);
  const prompt = [1, 270, 5, 290, 100, 33, 261, 299];
  const nGen = 12;
  for (const dtype of ['F32', 'F16', 'Q8_0'] as const) {
    const p = path.join(dir, `tiny-${dtype}.gguf`);
    await writeLlamaGguf(p, { config: cfg, tensors, tokenizer, dtype });
    // the reference runs on the weights exactly as stored (dequantized), read back in HF layout
    const back = await readLlamaGguf(p);
    const ref = reference(back.tensors, prompt, nGen);
    const got = await evalWithLlamaCpp(p, prompt, nGen);
    // llama.cpp rounds activations to f16 (F16 weights) or Q8_0 blocks (Q8_0 weights) inside matmuls
    const tol = { F32: 2e-3, F16: 3e-2, Q8_0: 6e-2 }[dtype];
    for (let i = 0; i < prompt.length; i++) {
      let worst = 0, scale = 0;
      for (let j = 0; j < got.logits[i].length; j++) {
        worst = Math.max(worst, Math.abs(got.logits[i][j] - ref.logits[i][j]));
        scale = Math.max(scale, Math.abs(ref.logits[i][j]));
      }
      assert.ok(worst <= tol * Math.max(1, scale), `${dtype} position ${i}: max |Δlogit| ${worst} (logit scale ${scale})`);
    }
    if (dtype === 'F32') assert.deepEqual(got.greedy, ref.greedy, 'greedy tokens');
    else {
      // greedy paths may only part where the reference's top two logits are closer than the tolerance
      const agree = got.greedy.findIndex((x, i) => x !== ref.greedy[i]);
      assert.ok(agree === -1 || agree >= 4, `${dtype}: greedy tokens ${got.greedy} vs ${ref.greedy}`);
    }
    t.diagnostic(`${dtype}: llama.cpp greedy ${got.greedy.join(' ')}`);
  }
  // the check is sensitive: without the q/k permutation (HF layout stored as if interleaved) llama.cpp computes another model
  const wrong = path.join(dir, 'wrong.gguf');
  await writeLlamaGguf(wrong, { config: cfg, tensors, tokenizer, dtype: 'F32', qkLayout: 'interleaved' });
  const ref = reference(tensors, prompt, 1);
  const bad = await evalWithLlamaCpp(wrong, prompt, 1);
  const last = prompt.length - 1;
  const diff = Math.max(...Array.from(bad.logits[last], (v, j) => Math.abs(v - ref.logits[last][j])));
  assert.ok(diff > 0.05, `unpermuted q/k should change the logits (max |Δ| ${diff})`);
});

test('tied embeddings: no output.weight, llama.cpp falls back to token_embd', async (t) => {
  if (skip) return t.skip(skip);
  const dir = tempDir(t);
  const tcfg = tinyLlamaConfig({ tie_word_embeddings: true, num_key_value_heads: 4 });
  const ts = tinyLlamaTensors(tcfg, 9);
  const p = path.join(dir, 'tied.gguf');
  await writeLlamaGguf(p, { config: tcfg, tensors: ts, tokenizer, dtype: 'F32' });
  const g = await readGguf(p);
  assert.ok(!g.tensors.some((x) => x.name === 'output.weight'));
  const prompt = [1, 280, 281];
  const ref = new RefLlama(tcfg as any, ts);
  const want = prompt.map((x) => ref.step(x));
  const model = await llama!.loadModel({ modelPath: p, gpuLayers: 0 });
  const ctx = await model.createContext({ contextSize: 32, threads: 2, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
  const out = await ctx.getSequence().controlledEvaluate(prompt.map((x): Item => [x as Token, { generateNext: { token: true } }]));
  assert.deepEqual(out.map((o: any) => o!.next.token), want.map(argmax));
  await ctx.dispose();
  await model.dispose();
});
