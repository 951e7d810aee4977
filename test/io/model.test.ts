// Models through every format: tslm's LLaMA saved as an HF directory, a llama2.c checkpoint
// and a GGUF loads back with the same logits; and the GGUF, run by llama.cpp (node-llama-cpp),
// gives the same greedy tokens as tslm.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import * as T from '../../src/index.js';
import { init, shutdown, scope, noGrad, generate, createModel, loadModel, saveModel, exportGguf, exportLlama2c } from '../../src/index.js';
import type { CausalLM } from '../../src/index.js';
import { tempDir, tinyLlamaConfig, tinyLlamaTensors } from './util.js';
import { tinySpmTokenizer } from './tiny_llama.js';
import { assertClose } from '../helpers.js';

import { loadNodeLlamaCpp } from '../../bench/peers/nlc.js';
import type { NodeLlamaCpp } from '../../bench/peers/nlc.js';
type NLC = NodeLlamaCpp;
let nlc: NLC | null = null;
let llama: NodeLlamaCpp | null = null;
let skipLlamaCpp: string | false = false;

before(async () => {
  await init({ threads: 2 });
  const r = await loadNodeLlamaCpp();
  if ('error' in r) skipLlamaCpp = r.error;
  else ({ nlc, llama } = r);
});
after(async () => { await llama?.dispose(); await shutdown(); });

const cfg = tinyLlamaConfig(); // hidden 64, 4 heads, 2 kv heads, 2 layers, vocab 300, theta 1e4, eps 1e-5
const PROMPT = [1, 270, 5, 290, 100, 33, 261, 299];

function tinyModel(): CausalLM {
  const m = createModel(cfg);
  scope(() => {
    const sd: Record<string, T.Tensor> = {};
    for (const t of tinyLlamaTensors(cfg, 7)) sd[t.name] = T.tensor(T.toFloat32(t), t.shape);
    m.loadStateDict(sd);
  });
  return m;
}
const logitsOf = (m: CausalLM) => noGrad(() => scope(() => m.forward(T.tensor([PROMPT], undefined, 'i32')).toArray()));

test('HF directory round trip (F32 exact, F16 close)', async (t) => {
  const dir = tempDir(t);
  const m = tinyModel();
  const ref = logitsOf(m);
  await saveModel(m, path.join(dir, 'f32'));
  const a = await loadModel(path.join(dir, 'f32'));
  assert.equal(a.format, 'hf');
  assert.deepEqual(logitsOf(a.model), ref);
  await saveModel(m, path.join(dir, 'f16'), { dtype: 'F16' });
  const b = await loadModel(path.join(dir, 'f16'));
  assertClose(logitsOf(b.model), ref, 2e-2, 2e-2, 'F16 logits');
  for (const x of [m, a.model, b.model]) x.dispose();
});

test('loading builds the model without random initialisation (no draws from the default generator)', async (t) => {
  const dir = tempDir(t);
  const m = tinyModel();
  await saveModel(m, dir);
  T.manualSeed(42);
  const expected = T.defaultGenerator.uniform();
  T.manualSeed(42);
  const a = await loadModel(dir);
  assert.equal(T.defaultGenerator.uniform(), expected, 'loadModel drew random numbers (initialised weights it then overwrote)');
  assert.deepEqual(logitsOf(a.model), logitsOf(m));
  // Outside withoutInit, construction still initialises (and draws).
  T.manualSeed(42);
  createModel(cfg).dispose();
  assert.notEqual(T.defaultGenerator.uniform(), expected);
  for (const x of [m, a.model]) x.dispose();
});

test('llama2.c checkpoints (v1 and legacy) load back with the same logits', async (t) => {
  const dir = tempDir(t);
  const m = tinyModel();
  const ref = logitsOf(m);
  for (const version of [0, 1] as const) {
    const f = path.join(dir, `m${version}.bin`);
    await exportLlama2c(m, f, { version });
    const l = await loadModel(f);
    assert.equal(l.format, 'llama2c');
    assertClose(logitsOf(l.model), ref, 1e-5, 1e-5, `llama2.c v${version}`);
    l.model.dispose();
  }
  m.dispose();
});

test('a GGUF written by tslm loads back, and llama.cpp generates the same greedy tokens as tslm', async (t) => {
  const dir = tempDir(t);
  const m = tinyModel();
  const ref = logitsOf(m);
  const ours = generate(m, PROMPT, { maxNewTokens: 12, stopIds: [] }).ids[0];
  for (const dtype of ['F32', 'Q8_0'] as const) {
    const f = path.join(dir, `m-${dtype}.gguf`);
    await exportGguf(m, f, tinySpmTokenizer(cfg.vocab_size as number), dtype);
    const l = await loadModel(f);
    assert.equal(l.format, 'gguf');
    if (dtype === 'F32') assertClose(logitsOf(l.model), ref, 1e-5, 1e-5, 'GGUF F32 logits');
    else assertClose(logitsOf(l.model), ref, 0.1, 0.05, 'GGUF Q8_0 logits');
    l.model.dispose();
    if (skipLlamaCpp) { t.diagnostic(skipLlamaCpp); continue; }
    const lm = await llama!.loadModel({ modelPath: f, gpuLayers: 0 });
    const ctx = await lm.createContext({ contextSize: 64, batchSize: 64, threads: 2, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
    const seq = ctx.getSequence();
    const theirs: number[] = [];
    for await (const tok of seq.evaluate(PROMPT as never, { temperature: 0 })) {
      theirs.push(tok as number);
      if (theirs.length === 12) break;
    }
    await ctx.dispose();
    await lm.dispose();
    assert.deepEqual(theirs, ours, `llama.cpp (${dtype}) vs tslm greedy tokens`);
  }
  m.dispose();
});

test('a training run\'s folder given as the model: the error names the folder and its checkpoint', async (t) => {
  const dir = tempDir(t);
  const m = createModel({ model_type: 'llama', hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: 40, max_position_embeddings: 16 });
  await saveModel(m, path.join(dir, 'checkpoint'));
  m.dispose();
  await assert.rejects(loadModel(dir), (e: unknown) => /directory has no config\.json .*a training run's folder: its model is .*checkpoint/.test((e as Error).message));
  const empty = path.join(dir, 'checkpoint', 'nested');
  (await import('node:fs')).mkdirSync(empty);
  await assert.rejects(loadModel(empty), (e: unknown) => /directory has no config\.json \(expected a Hugging Face model directory\)/.test((e as Error).message));
});
