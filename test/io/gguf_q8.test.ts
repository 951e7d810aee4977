// A Q8_0 GGUF stays quantised in memory: the linear layers' weights (q/k/v/o, gate/up/down, the
// output head) and the token embedding are q8_0 tensors holding the file's blocks, q/k/v and
// gate/up still fused in one storage each; everything else loads as before. Checked against the
// same file loaded with dtype 'f32' (every weight dequantised: the same values, so logits agree
// to f32 summation order and greedy tokens are equal), on both backends, untied and tied heads;
// and against llama.cpp (node-llama-cpp) on the same file: the same greedy tokens, logits within
// the rounding llama.cpp adds by quantising activations to Q8_0 blocks inside its matmuls.
// (A Q8_0 tensor whose rows are not whole 32-blocks is refused by the GGUF reader, naming it:
// hostile_gguf.test.ts.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import * as T from '../../src/index.js';
import { init, shutdown, scope, noGrad, generate, loadModel, exportGguf, writeLlamaGguf, readGguf, withBackend, heapStats } from '../../src/index.js';
import type { CausalLM } from '../../src/index.js';
import { tempDir, tinyLlamaConfig, tinyLlamaTensors } from './util.js';
import { tinySpmTokenizer } from './tiny_llama.js';
import { evalWithLlamaCpp, logitGap } from './llamacpp_util.js';
import { assertClose } from '../helpers.js';
import { loadNodeLlamaCpp } from '../../bench/peers/nlc.js';
import type { NodeLlamaCpp } from '../../bench/peers/nlc.js';

let llama: NodeLlamaCpp | null = null;
let skipLlamaCpp: string | false = false;
before(async () => {
  await init({ threads: 2 });
  const r = await loadNodeLlamaCpp();
  if ('error' in r) skipLlamaCpp = r.error;
  else ({ llama } = r);
});
after(async () => { await llama?.dispose(); await shutdown(); });

const PROMPT = [1, 270, 5, 290, 100, 33, 261, 299];
const logitsOf = (m: CausalLM, ids = PROMPT) => noGrad(() => scope(() => m.forward(T.tensor([ids], undefined, 'i32')).toArray()));
const LINEARS = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];

async function writeTiny(dir: string, name: string, over: Record<string, unknown> = {}): Promise<string> {
  const cfg = tinyLlamaConfig(over);
  const f = path.join(dir, name);
  await writeLlamaGguf(f, { config: cfg, tensors: tinyLlamaTensors(cfg, 11), tokenizer: tinySpmTokenizer(cfg.vocab_size as number), dtype: 'Q8_0' });
  return f;
}

for (const tied of [false, true]) {
  test(`Q8_0 GGUF (${tied ? 'tied' : 'untied'} head): linear weights and embedding stay q8_0, same logits and tokens as the dequantised load`, async (t) => {
    const f = await writeTiny(tempDir(t), 'q8.gguf', { tie_word_embeddings: tied });
    const before = heapStats().inUse;
    const q = await loadModel(f);
    const qBytes = heapStats().inUse - before;
    const d = await loadModel(f, { dtype: 'f32' });
    const dBytes = heapStats().inUse - before - qBytes;
    try {
      const sd = q.model.stateDict();
      for (let i = 0; i < 2; i++) for (const l of LINEARS) assert.equal(sd[`model.layers.${i}.${l}.weight`].dtype, 'q8_0', `${i} ${l}`);
      assert.equal(sd['model.embed_tokens.weight'].dtype, 'q8_0');
      assert.equal('lm_head.weight' in sd, !tied);
      if (!tied) assert.equal(sd['lm_head.weight'].dtype, 'q8_0');
      assert.equal(sd['model.norm.weight'].dtype, 'f32');
      for (const [, w] of Object.entries(d.model.stateDict())) assert.equal(w.dtype, 'f32');
      // q/k/v and gate/up stay adjacent rows of one storage (one fused matmul each)
      const s = (n: string) => sd[`model.layers.1.${n}.weight`].storage;
      assert.ok(s('self_attn.q_proj') === s('self_attn.k_proj') && s('self_attn.k_proj') === s('self_attn.v_proj'));
      assert.ok(s('mlp.gate_proj') === s('mlp.up_proj') && s('mlp.up_proj') !== s('mlp.down_proj'));
      // the quantised model takes about 34/128 of the f32 heap for its matrices
      assert.ok(qBytes < 0.45 * dBytes, `heap: q8_0 model ${qBytes} bytes, f32 model ${dBytes}`);
      // 9 positions: the prefill's matmuls take the panel path (exact f32 products of the
      // dequantised weights; up to 8 rows round x to Q8_0 blocks, as decoding does)
      const nine = [...PROMPT, 7];
      for (const be of ['wasm', 'ref'] as const) {
        withBackend(be, () => assertClose(logitsOf(q.model, nine), logitsOf(d.model, nine), 2e-4, 2e-4, `${be} logits`));
      }
      const long = [...PROMPT, ...PROMPT, 7, 9, 11]; // 19 positions: the prefill takes the panel path
      assertClose(logitsOf(q.model, long), logitsOf(d.model, long), 2e-4, 2e-4, 'prefill of 19');
      const a = generate(q.model, PROMPT, { maxNewTokens: 16, stopIds: [] }).ids[0];
      const b = generate(d.model, PROMPT, { maxNewTokens: 16, stopIds: [] }).ids[0];
      assert.deepEqual(a, b, 'greedy tokens');
    } finally {
      q.model.dispose();
      d.model.dispose();
    }
  });
}

test('a q8_0 model is for inference: training through it is refused clearly; exporting dequantises it explicitly (Q8_0 blocks round-trip unchanged)', async (t) => {
  const dir = tempDir(t);
  const f = await writeTiny(dir, 'q8.gguf');
  const q = await loadModel(f);
  try {
    assert.throws(() => scope(() => q.model.loss(T.tensor([PROMPT], undefined, 'i32'))), /is a q8_0 \(quantised\) weight, for inference only.*dtype f32/);
    const out = path.join(dir, 'again.gguf');
    await exportGguf(q.model, out, tinySpmTokenizer(300), 'Q8_0');
    const [x, y] = [await readGguf(f), await readGguf(out)];
    const byName = new Map(y.tensors.map((r) => [r.name, r]));
    for (const r of x.tensors) assert.deepEqual(byName.get(r.name)!.data, r.data, r.name);
  } finally {
    q.model.dispose();
  }
});

test('llama.cpp on the same Q8_0 GGUF: same greedy tokens, logits within its activation rounding', async (t) => {
  if (skipLlamaCpp) return t.skip(skipLlamaCpp);
  const f = await writeTiny(tempDir(t), 'q8.gguf');
  const q = await loadModel(f);
  try {
    const ours = generate(q.model, PROMPT, { maxNewTokens: 12, stopIds: [] }).ids[0];
    const theirs = await evalWithLlamaCpp(llama!, f, PROMPT, 12, 300, { experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
    assert.deepEqual(theirs.greedy, ours, 'greedy tokens');
    let worst = 0;
    PROMPT.forEach((_, i) => {
      const mine = Float64Array.from(logitsOf(q.model, PROMPT.slice(0, i + 1)).slice(-300));
      const gap = logitGap(mine, theirs.logits[i]);
      worst = Math.max(worst, gap.worst / Math.max(1, gap.scale));
    });
    // llama.cpp rounds each activation block to Q8_0 before its integer dot products (tslm keeps f32)
    assert.ok(worst < 3e-2, `max |Δlogit| / scale ${worst}`);
    t.diagnostic(`max |Δlogit| / logit scale vs llama.cpp: ${worst.toExponential(2)}`);
  } finally {
    q.model.dispose();
  }
});
