// tslm's Mamba exported as GGUF (llama.cpp's `mamba` architecture) runs in llama.cpp
// (node-llama-cpp, the outside reference) with our next-token logits and our greedy tokens; and
// the GGUF loads back into tslm (loadModel) with the same logits. Skipped without node-llama-cpp.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import * as T from '../../src/index.js';
import { init, shutdown, createModel, exportGguf, loadModel, generate, noGrad, scope, Generator } from '../../src/index.js';
import type { MambaForCausalLM } from '../../src/index.js';
import { loadNodeLlamaCpp } from '../../bench/peers/nlc.js';
import type { NodeLlamaCpp } from '../../bench/peers/nlc.js';
import { tinySpmTokenizer } from '../io/tiny_llama.js';
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

function tinyMamba(): MambaForCausalLM {
  // Untied: a tiny tied model's head mostly echoes its input token.
  const m = createModel({ model_type: 'mamba', vocab_size: V, hidden_size: 32, state_size: 8, num_hidden_layers: 2, bos_token_id: 1, eos_token_id: 2, tie_word_embeddings: false },
    'tiny', { generator: new Generator(12) }) as MambaForCausalLM;
  // HF's initial x_proj makes the scan ~0.3% of the mixer's output; at 8× it is a real part of it
  // (the greedy tokens differ from those at 4×).
  for (const l of m.backbone.layers) T.scaleInPlace(l.mixer.x_proj.weight, 8);
  m.eval();
  return m;
}

test('our Mamba as GGUF in llama.cpp: same logits at every position and the same greedy tokens', async (t) => {
  if (skip) return t.skip(skip);
  const dir = tempDir(t);
  const model = tinyMamba();
  const file = path.join(dir, 'mamba.gguf');
  await exportGguf(model, file, tinySpmTokenizer(V));
  const prompt = [1, 270, 5, 290, 100, 33, 261, 297];
  const nGen = 12;
  const ours = noGrad(() => scope(() => {
    const logits = model.forward(T.tensor([prompt], undefined, 'i32')).toArray() as number[];
    return Array.from({ length: prompt.length }, (_, i) => Float64Array.from(logits.slice(i * V, (i + 1) * V)));
  }));
  const greedy = generate(model, prompt, { maxNewTokens: nGen, stopIds: [2] }).ids[0];
  const got = await evalWithLlamaCpp(llama!, file, prompt, nGen, V);
  for (let i = 0; i < prompt.length; i++) {
    const { worst, scale } = logitGap(got.logits[i], ours[i]);
    assert.ok(worst <= 1e-4 * Math.max(1, scale), `position ${i}: max |Δlogit| ${worst} (logit scale ${scale})`);
  }
  assert.deepEqual(got.greedy, greedy, 'greedy tokens: llama.cpp vs tslm');
  assert.ok(new Set(greedy).size >= 8, `a varied continuation (${greedy})`);
  // and back: the GGUF loads into tslm with the same logits (A_log through −exp and log: ~1 ulp)
  const back = await loadModel(file);
  assert.equal(back.format, 'gguf');
  assert.equal(back.config.model_type, 'mamba');
  const again = noGrad(() => scope(() => back.model.forward(T.tensor([prompt], undefined, 'i32')).toArray() as number[]));
  for (let i = 0; i < prompt.length; i++) {
    const { worst } = logitGap(Float64Array.from(again.slice(i * V, (i + 1) * V)), ours[i]);
    assert.ok(worst < 1e-4, `reloaded position ${i}: ${worst}`);
  }
  back.model.dispose();
  model.dispose();
});
