// GGUF files with Q4_0, Q4_K and Q6_K matrices, written by tslm's quantisers (ggml's reference
// quantisers), stay quantised in memory and decode as llama.cpp decodes the same file:
// - loaded natively the linear layers and the embedding hold the file's blocks (q4_0 / q4_k /
//   q6_k tensors, q/k/v and gate/up still fused), logits agree with the same file dequantised to
//   f32 within the activation rounding, the greedy tokens are equal;
// - llama.cpp (node-llama-cpp) on the same file gives the same greedy tokens;
// - --dtype q4_0|q4_k|q6_k (quantise on load) gives exactly the blocks exportGguf writes;
// - the quantisers round-trip within their step (|x − deq(q(x))| ≤ the block's step);
// - bad files: a NaN/Inf f16 scale (d or dmin) and truncated data are refused naming file and tensor.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as T from '../../src/index.js';
import { init, shutdown, scope, noGrad, generate, loadModel, writeLlamaGguf, readGguf, withBackend, heapStats } from '../../src/index.js';
import type { CausalLM } from '../../src/index.js';
import { quantizeQ4_0, quantizeQ4_1, quantizeQ5_0, quantizeQ4_K, quantizeQ5_K, quantizeQ6_K } from '../../src/io/quantize.js';
import { GGML_QUANT, dequantizeBlocks } from '../../src/backend/ref/ggml_blocks.js';
import { INT_PREFILL } from '../../src/backend/ref/quant.js';
import { tempDir, tinyLlamaConfig, tinyLlamaTensors } from './util.js';
import { tinySpmTokenizer } from './tiny_llama.js';
import { evalWithLlamaCpp, logitGap } from './llamacpp_util.js';
import { assertClose, uniformRng } from '../helpers.js';
import { loadNodeLlamaCpp } from '../../bench/peers/nlc.js';
import type { NodeLlamaCpp } from '../../bench/peers/nlc.js';

let llama: NodeLlamaCpp | null = null;
const written = new Map<string, string>();
let shared = '';
let skipLlamaCpp: string | false = false;
before(async () => {
  shared = mkdtempSync(path.join(tmpdir(), 'tslm-q4-'));
  await init({ threads: 2 });
  const r = await loadNodeLlamaCpp();
  if ('error' in r) skipLlamaCpp = r.error;
  else ({ llama } = r);
});
after(async () => { await llama?.dispose(); await shutdown(); rmSync(shared, { recursive: true, force: true }); });

const PROMPT = [1, 270, 5, 290, 100, 33, 261, 299];
const logitsOf = (m: CausalLM, ids = PROMPT) => noGrad(() => scope(() => m.forward(T.tensor([ids], undefined, 'i32')).toArray()));
const LINEARS = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];
// rows of 256 (hidden) and 512 (intermediate): whole blocks for every type
const CFG = { hidden_size: 256, intermediate_size: 512 };
// Random weights give near-ties: top-2 logits ~1% apart, which the rounding of activations in
// decoding (tslm and llama.cpp alike, each its own way) can order either way. With seed 11 the
// Q4_K file has one at the 7th token (tslm's quantised decode picks 142, llama.cpp and the f32
// load 146, at logits 2.14 vs 2.11), seed 12 Q5_0 one at the 6th, seed 14 Q5_K one at the 3rd;
// seed 13 has none in 12 tokens for any of the six types.
const SEED = 13;

// Each file written once (quantising is the slow part) into one directory for the whole file.
async function writeTiny(_dir: string, name: string, dtype: 'F32' | 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q4_K' | 'Q5_K' | 'Q6_K', over: Record<string, unknown> = {}): Promise<string> {
  const key = `${name} ${dtype} ${JSON.stringify(over)}`;
  if (written.has(key)) return written.get(key)!;
  const cfg = tinyLlamaConfig({ ...CFG, ...over });
  const f = path.join(shared, name);
  written.set(key, f);
  await writeLlamaGguf(f, { config: cfg, tensors: tinyLlamaTensors(cfg, SEED), tokenizer: tinySpmTokenizer(cfg.vocab_size as number), dtype });
  return f;
}

for (const [file, dtype] of [['Q4_0', 'q4_0'], ['Q4_K', 'q4_k'], ['Q6_K', 'q6_k'], ['Q4_1', 'q4_1'], ['Q5_0', 'q5_0'], ['Q5_K', 'q5_k']] as const) {
  test(`${file} GGUF: weights stay ${dtype}, close to the dequantised load, same greedy tokens as it and as llama.cpp`, async (t) => {
    const dir = tempDir(t);
    const f = await writeTiny(dir, `${dtype}.gguf`, file);
    const before0 = heapStats().inUse;
    const q = await loadModel(f);
    const qBytes = heapStats().inUse - before0;
    const d = await loadModel(f, { dtype: 'f32' });
    const dBytes = heapStats().inUse - before0 - qBytes;
    try {
      const sd = q.model.stateDict();
      for (let i = 0; i < 2; i++) for (const l of LINEARS) assert.equal(sd[`model.layers.${i}.${l}.weight`].dtype, dtype, `${i} ${l}`);
      assert.equal(sd['model.embed_tokens.weight'].dtype, dtype);
      assert.equal(sd['lm_head.weight'].dtype, dtype);
      assert.equal(sd['model.norm.weight'].dtype, 'f32');
      const s = (n: string) => sd[`model.layers.1.${n}.weight`].storage;
      assert.ok(s('self_attn.q_proj') === s('self_attn.v_proj') && s('mlp.gate_proj') === s('mlp.up_proj'));
      assert.ok(qBytes < (dtype === 'q6_k' || dtype === 'q5_k' || dtype === 'q5_0' ? 0.3 : 0.25) * dBytes, `heap: ${dtype} model ${qBytes} bytes, f32 model ${dBytes}`);
      // prefill (19 positions): an integer GEMM with x rounded to 8-bit blocks as llama.cpp's for
      // the types in INT_PREFILL (a few percent of a logit at most; its greedy tokens and
      // llama.cpp's are checked below), exact f32 on the dequantised weights (the panel path) otherwise
      const long = [...PROMPT, ...PROMPT, 7, 9, 11];
      if (INT_PREFILL.has(GGML_QUANT[dtype].id)) {
        const a = logitsOf(q.model, long), b = logitsOf(d.model, long);
        const scale = Math.max(1, ...b.map(Math.abs)), worst = Math.max(...a.map((v, i) => Math.abs(v - b[i])));
        assert.ok(worst / scale < 0.05 && worst > 0, `prefill of 19: max |Δlogit| ${worst}, logit scale ${scale}`);
      } else assertClose(logitsOf(q.model, long), logitsOf(d.model, long), 2e-4, 2e-4, 'prefill of 19');
      const a = generate(q.model, PROMPT, { maxNewTokens: 12, stopIds: [] }).ids[0];
      const b = generate(d.model, PROMPT, { maxNewTokens: 12, stopIds: [] }).ids[0];
      assert.deepEqual(a, b, 'greedy tokens, quantised vs dequantised');
      if (skipLlamaCpp) { t.diagnostic(`llama.cpp skipped: ${skipLlamaCpp}`); return; }
      const theirs = await evalWithLlamaCpp(llama!, f, PROMPT, 12, 300, { experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
      assert.deepEqual(theirs.greedy, a, 'greedy tokens, tslm vs llama.cpp');
      // after the prompt of 19 (tslm's prefill takes the rows together: the integer GEMM; Q4_1's f32
      // panel prefill, before it had one, gave another 7th token here)
      const theirsLong = await evalWithLlamaCpp(llama!, f, long, 10, 300, { experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
      assert.deepEqual(generate(q.model, long, { maxNewTokens: 10, stopIds: [] }).ids[0], theirsLong.greedy, 'greedy tokens after a prompt of 19, tslm vs llama.cpp');
      // logits at every prompt position (tslm's prefill: exact products of the dequantised weights;
      // llama.cpp rounds activations inside its matmuls): a misread layout would be off by the
      // logit scale, not by a few percent of it
      let worst = 0;
      PROMPT.forEach((_, i) => {
        const gap = logitGap(Float64Array.from(logitsOf(q.model, PROMPT.slice(0, i + 1)).slice(-300)), theirs.logits[i]);
        worst = Math.max(worst, gap.worst / Math.max(1, gap.scale));
      });
      t.diagnostic(`max |Δlogit| / logit scale vs llama.cpp: ${worst.toExponential(2)}`);
      assert.ok(worst < 0.05, `max |Δlogit| / scale ${worst}`);
    } finally {
      q.model.dispose();
      d.model.dispose();
    }
  });
}

test('--dtype q4_0 | q4_k | q6_k quantises on load exactly as exportGguf writes: same blocks, same logits', async (t) => {
  const dir = tempDir(t);
  const f32 = await writeTiny(dir, 'f32.gguf', 'F32');
  for (const [file, dtype] of [['Q4_0', 'q4_0'], ['Q4_K', 'q4_k'], ['Q6_K', 'q6_k']] as const) {
    const fq = await writeTiny(dir, `${dtype}.gguf`, file);
    const a = await loadModel(f32, { dtype });
    const b = await loadModel(fq);
    try {
      assert.equal(a.model.stateDict()['model.layers.0.mlp.down_proj.weight'].dtype, dtype);
      assert.deepEqual(logitsOf(a.model), logitsOf(b.model), dtype);
    } finally { a.model.dispose(); b.model.dispose(); }
  }
  // rows that are not whole 256-blocks: q4_k falls back to q8_0 (rows of whole 32-blocks)
  const odd = await writeTiny(dir, 'odd.gguf', 'F32', { hidden_size: 96, intermediate_size: 160, num_attention_heads: 3, num_key_value_heads: 1 });
  const m = await loadModel(odd, { dtype: 'q4_k' });
  try { assert.equal(m.model.stateDict()['model.layers.0.mlp.down_proj.weight'].dtype, 'q8_0'); } finally { m.model.dispose(); }
});

test('quantisers round-trip within their step; zero blocks stay zero', () => {
  const R = uniformRng(77);
  const x = Float32Array.from({ length: 2048 }, (_, i) => (R() - 0.5) * (i < 1024 ? 1 : 20));
  x.fill(0, 512, 768);
  for (const [q, type, rel] of [[quantizeQ4_0, 'q4_0', 1 / 8], [quantizeQ4_1, 'q4_1', 1 / 14], [quantizeQ5_0, 'q5_0', 1 / 16], [quantizeQ4_K, 'q4_k', 1 / 7], [quantizeQ5_K, 'q5_k', 1 / 14], [quantizeQ6_K, 'q6_k', 1 / 30]] as const) {
    const y = dequantizeBlocks(type, q(x), x.length);
    for (let b = 0; b < 2048; b += 32) {
      let amax = 0;
      for (let j = b; j < b + 32; j++) amax = Math.max(amax, Math.abs(x[j]));
      for (let j = b; j < b + 32; j++) assert.ok(Math.abs(y[j] - x[j]) <= rel * amax + 1e-7, `${type} ${j}: ${y[j]} vs ${x[j]} (amax ${amax})`);
    }
    for (let j = 512; j < 768; j++) assert.ok(y[j] === 0, `${type} zero block ${j}: ${y[j]}`);
  }
});

test('bad Q4_K / Q6_K / Q4_0 files: NaN or Inf scales and truncated data are refused naming file and tensor', async (t) => {
  const dir = tempDir(t);
  for (const [file, scaleAt] of [['Q4_K', 2], ['Q6_K', 208], ['Q4_0', 0]] as const) {
    const f = await writeTiny(dir, `${file}.gguf`, file);
    const g = await readGguf(f);
    const w = g.tensors.find((x) => x.name === 'blk.1.ffn_up.weight')!;
    const bytes = readFileSync(f);
    // find the tensor's bytes in the file and poison one block's f16 scale with +Inf (0x7c00)
    const at = Buffer.from(bytes).indexOf(Buffer.from(w.data.subarray(0, 64)));
    assert.ok(at > 0);
    const bad = Uint8Array.from(bytes);
    const blockBytes = file === 'Q4_K' ? 144 : file === 'Q6_K' ? 210 : 18;
    bad[at + 3 * blockBytes + scaleAt] = 0x00; bad[at + 3 * blockBytes + scaleAt + 1] = 0x7c;
    const p = path.join(dir, `bad-${file}.gguf`);
    writeFileSync(p, bad);
    await assert.rejects(loadModel(p), (e: Error) => /non-finite/.test(e.message) && e.message.includes(p) && /up_proj|ffn_up/.test(e.message), file);
    const cut = path.join(dir, `cut-${file}.gguf`);
    writeFileSync(cut, bytes.subarray(0, bytes.length - 100));
    await assert.rejects(loadModel(cut), (e: Error) => /truncated/i.test(e.message) && e.message.includes(cut), `${file} truncated`);
  }
});
