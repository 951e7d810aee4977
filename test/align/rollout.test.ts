// Rollouts (G seeded samples per prompt with continuous batching, stop tags kept, truncation
// flagged) and the training-side log-probabilities of what was sampled: the packed, completion-
// aligned log-probs equal a row-by-row log-softmax of the model's own logits, and the sampler's.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { init, shutdown, createModel, Generator, trainByteLevelBPE, noGrad, scope } from '../../src/index.js';
import { rollout, packSequences, tokenLogprobs, sliceRows, parsePrompts, PromptDataError, promptTokens } from '../../src/align/index.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

const tok = trainByteLevelBPE(['Q: 1+2\n<think>1+2=3</think><answer>3</answer> abc abd'], { vocabSize: 270, specialTokens: ['<|endoftext|>'] });
function tinyModel(seed = 0) {
  const m = createModel({ model_type: 'llama', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: tok.vocabSize, max_position_embeddings: 64, tie_word_embeddings: true }, 'test', { generator: new Generator(seed) });
  T.copyInto((m as T.LlamaForCausalLM).model.embed_tokens.weight, T.randn([tok.vocabSize, 32], { std: 0.3, generator: new Generator(seed + 1) }));
  return m;
}

test('rollout: G seeded completions per prompt, reproducible, stop tags kept, truncation flagged', () => {
  const model = tinyModel();
  const prompts = [promptTokens(tok, 'Q: 1+2\n'), promptTokens(tok, 'abc')];
  const o = { groupSize: 5, maxNewTokens: 12, temperature: 1, seed: 3 };
  const a = rollout(model, tok, prompts, o), b = rollout(model, tok, prompts, o);
  assert.equal(a.length, 10);
  assert.deepEqual(a.map((r) => r.prompt), [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
  assert.deepEqual(a.map((r) => r.ids), b.map((r) => r.ids));
  // Samples of one prompt differ (a shared seeded generator per prompt, not one draw repeated).
  assert.ok(new Set(a.slice(0, 5).map((r) => r.ids.join())).size > 1);
  // A prompt decoded alone draws the same completions (seeded per prompt index).
  const alone = rollout(model, tok, [prompts[0]], o);
  assert.deepEqual(alone.map((r) => r.ids), a.slice(0, 5).map((r) => r.ids));
  const c = rollout(model, tok, prompts, { ...o, seed: 4 });
  assert.notDeepEqual(c.map((r) => r.ids), a.map((r) => r.ids));
  for (const r of a) {
    assert.equal(r.logprobs.length, r.ids.length);
    assert.equal(r.truncated, r.ids.length === 12 && r.stopId === null);
  }
  // A stop tag taken from a sampled completion: the same draw ends right after it, tag included.
  const k = a.findIndex((r) => r.text.length >= 3 && !r.text.slice(0, 3).includes('\uFFFD'));
  assert.ok(k >= 0, 'some completion starts with clean text');
  const tag = a[k].text.slice(1, 3);
  const s = rollout(model, tok, prompts, { ...o, stopTags: [tag] })[k];
  assert.ok(s.text.includes(tag), JSON.stringify([s.text, tag]));
  // It stopped at the token that completed the tag (a token may carry a few more bytes).
  assert.ok(s.text.indexOf(tag) + tag.length >= s.text.length - 4, JSON.stringify([s.text, tag]));
  assert.ok(a[k].text.startsWith(s.text), 'the same draw, cut after the tag');
  assert.equal(s.truncated, false);
  assert.throws(() => rollout(model, tok, prompts, { ...o, temperature: -1 }), /temperature must be ≥ 0/);
  // Temperature 0 is greedy: every sample of a prompt is the argmax path.
  const gr = rollout(model, tok, prompts, { ...o, temperature: 0 });
  assert.equal(new Set(gr.slice(0, 5).map((r) => r.ids.join())).size, 1);
});

test('tokenLogprobs: completion-aligned log-probs equal each row alone and the sampler\'s', () => {
  const model = tinyModel(5);
  const prompts = [promptTokens(tok, 'Q: 1+2\n'), promptTokens(tok, 'a'), promptTokens(tok, 'abd abc')];
  const rs = rollout(model, tok, prompts, { groupSize: 2, maxNewTokens: 9, temperature: 1, seed: 1 });
  const seqs = rs.map((r) => ({ prompt: prompts[r.prompt], completion: r.stopId !== null ? [...r.ids, r.stopId] : r.ids }));
  const packed = packSequences(seqs, 0);
  const Lc = packed.completionLength;
  const lp = noGrad(() => scope(() => tokenLogprobs(model, packed, 1, { entropy: true }))) as { logprobs: T.Tensor; entropy: Float32Array };
  const got = lp.logprobs.data() as Float32Array;
  for (const [b, s] of seqs.entries()) {
    // The row alone: logits of prompt + completion[:-1], log-softmax in float64 here.
    const ids = [...s.prompt, ...s.completion];
    const logits = noGrad(() => scope(() => model.forward(T.tensor([ids.slice(0, -1)], [1, ids.length - 1], 'i32')).data() as Float32Array));
    const V = tok.vocabSize;
    for (let t = 0; t < Lc; t++) {
      if (t >= s.completion.length) { assert.equal(got[b * Lc + t], 0); assert.equal(packed.mask[b * Lc + t], 0); continue; }
      const row = logits.subarray((s.prompt.length - 1 + t) * V, (s.prompt.length + t) * V);
      let mx = -Infinity;
      for (const v of row) mx = Math.max(mx, v);
      let z = 0, ent = 0;
      for (const v of row) z += Math.exp(v - mx);
      for (const v of row) { const p = Math.exp(v - mx) / z; ent -= p > 0 ? p * Math.log(p) : 0; }
      const want = row[s.completion[t]] - mx - Math.log(z);
      assert.ok(Math.abs(got[b * Lc + t] - want) < 2e-4, `row ${b} token ${t}: ${got[b * Lc + t]} vs ${want}`);
      assert.ok(Math.abs(lp.entropy[b * Lc + t] - ent) < 2e-4, `entropy row ${b} token ${t}`);
      // The sampler recorded the same log-probability (the stop id is not in its list).
      if (t < rs[b].logprobs.length) assert.ok(Math.abs(rs[b].logprobs[t] - want) < 2e-4, `sampler row ${b} token ${t}`);
    }
  }
  // Slicing rows keeps their values.
  const part = noGrad(() => scope(() => tokenLogprobs(model, sliceRows(packed, 2, 5), 1).logprobs.data() as Float32Array));
  for (let k = 0; k < part.length; k++) assert.ok(Math.abs(part[k] - got[2 * Lc + k]) < 1e-5);
  lp.logprobs.dispose();
});

test('prompt files: raw prompts, chats, Alpaca rows; errors name the file and line', () => {
  const rows = parsePrompts([
    JSON.stringify({ prompt: 'Q: 2+2\n', answer: '4' }),
    '',
    JSON.stringify({ messages: [{ role: 'user', content: '2+3?' }, { role: 'assistant', content: '5' }], answer: 5 }),
    JSON.stringify({ instruction: 'Add.', input: '1 1', answer: '2' }),
  ].join('\n'), 'p.jsonl');
  assert.equal(rows.length, 3);
  assert.equal(rows[0].prompt, 'Q: 2+2\n');
  assert.equal(rows[1].prompt, '<|im_start|>user\n2+3?<|im_end|>\n<|im_start|>assistant\n');
  assert.match(rows[2].prompt, /### Instruction:\nAdd\.\n\n### Input:\n1 1\n\n### Response:\n$/);
  assert.equal(rows[1].row.answer, 5);
  assert.equal(rows[2].where, 'p.jsonl:4');
  assert.throws(() => parsePrompts('{"prompt": "a"}\n{"prompt": 3}\n', 'p.jsonl'), (e: Error) => e instanceof PromptDataError && /p\.jsonl:2: "prompt" must be a string/.test(e.message));
  assert.throws(() => parsePrompts('{"prompt": "a"}\n{oops\n', 'p.jsonl'), /p\.jsonl:2: invalid JSON/);
  assert.throws(() => parsePrompts('{"question": "a"}\n', 'p.jsonl'), /p\.jsonl:1: expected "prompt", "messages" or "instruction" \(has "question"\)/);
  assert.throws(() => parsePrompts('\n\n', 'p.jsonl'), /p\.jsonl: no prompts/);
});
