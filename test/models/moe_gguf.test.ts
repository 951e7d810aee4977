// tslm's own mixture-of-experts models (LlamaForCausalLM with Mixtral's and Qwen2-MoE's sparse
// blocks) exported with exportGguf run in llama.cpp (node-llama-cpp, the outside reference) with
// our next-token logits at every prompt position and our greedy tokens (tslm's generate takes the
// MoE decoding path: host top-k and the fused expert kernels); the GGUF loads back into tslm with
// the same logits. Skipped without node-llama-cpp.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import * as T from '../../src/index.js';
import { init, shutdown, exportGguf, loadModel, generate, noGrad, scope } from '../../src/index.js';
import { writeHfDir } from '../../src/io/hf.js';
import type { CausalLM } from '../../src/models/causal.js';
import { loadNodeLlamaCpp } from '../../bench/peers/nlc.js';
import type { NodeLlamaCpp } from '../../bench/peers/nlc.js';
import { tinySpmTokenizer } from '../io/tiny_llama.js';
import { tinyMixtralConfig, tinyQwen2MoeConfig, tinyMoeTensors } from '../io/tiny_moe.js';
import { evalWithLlamaCpp, logitGap } from '../io/llamacpp_util.js';
import { tempDir } from '../io/util.js';

let llama: NodeLlamaCpp | null = null;
let skip: string | false = false;
before(async () => {
  await init({ threads: 2 });
  const r = await loadNodeLlamaCpp();
  if ('error' in r) skip = r.error;
  else llama = r.llama;
});
after(async () => { await llama?.dispose(); await shutdown(); });

const V = 300;
// llama.cpp's F32 K/V cache and no flash attention (its flash path rounds K/V to f16).
const CTX = { experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32', flashAttention: false };
const PROMPT = [1, 270, 5, 290, 100, 33, 261, 299];
const NGEN = 10;

function logitsOf(model: CausalLM, prompt: number[]): Float64Array[] {
  return noGrad(() => scope(() => {
    const all = model.forward(T.tensor([prompt], undefined, 'i32')).toArray() as number[];
    return prompt.map((_, i) => Float64Array.from(all.slice(i * V, (i + 1) * V)));
  }));
}

/** Smallest gap between the top two logits of a row (a greedy choice that rounding cannot flip). */
function topGap(row: Float64Array): number {
  let a = -Infinity, b = -Infinity;
  for (const v of row) if (v > a) { b = a; a = v; } else if (v > b) b = v;
  return a - b;
}

const CASES: [string, Record<string, unknown>, number][] = [
  ['mixtral', tinyMixtralConfig({ bos_token_id: 1, eos_token_id: 2 }), 3],
  ['mixtral tied', tinyMixtralConfig({ tie_word_embeddings: true, bos_token_id: 1, eos_token_id: 2 }), 10],
  // llama.cpp's qwen2moe: every layer sparse, no renormalisation (what it can run as HF does)
  ['qwen2_moe', tinyQwen2MoeConfig({ bos_token_id: 1, eos_token_id: 2 }), 2],
  ['qwen2_moe 5 experts top-3', tinyQwen2MoeConfig({ num_experts: 5, num_experts_per_tok: 3, moe_intermediate_size: 48, shared_expert_intermediate_size: 40, bos_token_id: 1, eos_token_id: 2 }), 1],
];

for (const [label, config, seed] of CASES) {
  test(`our ${label} model as GGUF in llama.cpp: same logits at every position and the same greedy tokens; loads back`, async (t) => {
    if (skip) return t.skip(skip);
    const dir = tempDir(t);
    // Our model, with weights whose routers and logits spread (HF-named tensors through loadModel)
    await writeHfDir(path.join(dir, 'hf'), { config, tensors: tinyMoeTensors(config, seed) });
    const { model } = await loadModel(path.join(dir, 'hf'));
    model.eval();
    const file = path.join(dir, 'moe.gguf');
    await exportGguf(model, file, tinySpmTokenizer(V));
    const ours = logitsOf(model, PROMPT);
    const greedy = generate(model, PROMPT, { maxNewTokens: NGEN, stopIds: [2] }).ids[0];
    // the greedy continuation's every choice has a margin far above the F32 error
    const path2 = [...PROMPT, ...greedy];
    const margins = logitsOf(model, path2.slice(0, -1)).slice(PROMPT.length - 1).map(topGap);
    assert.ok(Math.min(...margins) >= 1e-3, `${label}: greedy margins ${margins.map((m) => m.toFixed(4))}`);
    assert.ok(new Set(greedy).size >= 4, `${label}: a varied continuation (${greedy})`);
    const got = await evalWithLlamaCpp(llama!, file, PROMPT, NGEN, V, CTX);
    for (let i = 0; i < PROMPT.length; i++) {
      const { worst, scale } = logitGap(got.logits[i], ours[i]);
      assert.ok(worst <= 1e-4 * Math.max(1, scale), `${label} position ${i}: max |Δlogit| ${worst} (logit scale ${scale})`);
    }
    assert.deepEqual(got.greedy, greedy, `${label}: greedy tokens, llama.cpp vs tslm`);
    // and back: the GGUF loads into tslm as the same model
    const back = await loadModel(file);
    assert.equal(back.format, 'gguf');
    assert.equal(back.config.model_type, config.model_type);
    const again = logitsOf(back.model, PROMPT);
    for (let i = 0; i < PROMPT.length; i++) assert.ok(logitGap(again[i], ours[i]).worst < 1e-5, `${label}: reloaded position ${i}`);
    t.diagnostic(`${label}: greedy ${greedy.join(' ')}, min margin ${Math.min(...margins).toFixed(3)}`);
    back.model.dispose();
    model.dispose();
  });
}
