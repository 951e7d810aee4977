// useQuantizedWeights: named Linear/Embedding weights of a built model become q8_0 tensors that a
// state dict fills with Q8_0 blocks; fused groups (q/k/v, gate/up in one storage) stay fused when
// all of a group is quantised, and work unfused when only part of it is. Logits equal a model
// holding the same values dequantised (the prompt's 8 positions take the exact-f32 prefill path).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { init, shutdown, scope, noGrad, createModel, useQuantizedWeights, quantizeQ8_0, dequantizeQ8_0 } from '../../src/index.js';
import { assertClose } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

const cfg = { model_type: 'llama', hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 80, max_position_embeddings: 32 };
// 9 positions: the q8_0 matmuls take the panel path (exact f32 products of the dequantised
// weights; up to 8 rows round x to Q8_0 blocks first)
const PROMPT = [1, 5, 9, 33, 2, 70, 11, 4, 6];

test('a quantised subset of a fused group, and a whole group, give the logits of the dequantised values', () => {
  const g = new T.Generator(3);
  const ref = createModel(cfg);
  const blocks: Record<string, Uint8Array> = {};
  scope(() => {
    const sd: Record<string, T.Tensor> = {};
    for (const [name, t] of ref.namedTensors()) {
      const v = Float32Array.from(T.randn(t.shape, { generator: g, std: 0.2 }).data());
      if (t.ndim === 2) blocks[name] = quantizeQ8_0(v);
      sd[name] = T.tensor(t.ndim === 2 ? dequantizeQ8_0(blocks[name]) : v, t.shape);
    }
    ref.loadStateDict(sd);
  });
  const want = noGrad(() => scope(() => ref.forward(T.tensor([PROMPT], undefined, 'i32')).toArray()));
  const L0 = 'model.layers.0.', L1 = 'model.layers.1.';
  const sets = [
    new Set([`${L0}self_attn.q_proj.weight`, `${L0}self_attn.k_proj.weight`, `${L1}mlp.up_proj.weight`]), // parts of groups
    new Set(Object.keys(blocks)), // everything, embedding and head included
  ];
  for (const names of sets) {
    const m = createModel(cfg);
    const done = useQuantizedWeights(m, names);
    assert.deepEqual([...done].sort(), [...names].sort());
    const sd: Record<string, T.Tensor | { shape: number[]; blocks: Uint8Array }> = {};
    scope(() => {
      for (const [name, t] of ref.namedTensors()) sd[name] = names.has(name) ? { shape: [...t.shape], blocks: blocks[name] } : T.clone(t);
      m.loadStateDict(sd);
    });
    const own = m.stateDict();
    for (const n of names) assert.equal(own[n].dtype, 'q8_0', n);
    if (names.size > 3) assert.equal(own[`${L0}self_attn.q_proj.weight`].storage, own[`${L0}self_attn.v_proj.weight`].storage, 'q/k/v stay in one storage');
    else assert.equal(own[`${L0}self_attn.v_proj.weight`].dtype, 'f32');
    const got = noGrad(() => scope(() => m.forward(T.tensor([PROMPT], undefined, 'i32')).toArray()));
    assertClose(got, want, 1e-4, 1e-4, `${names.size} quantised`);
    m.dispose();
  }
  ref.dispose();
});
