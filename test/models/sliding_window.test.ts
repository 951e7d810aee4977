// Sliding-window attention with a rolling KV cache (src/models/llama.ts, KVCache): far beyond the
// window (sequences of at least 3 windows; Mistral's past max_position_embeddings too), logits of
// incremental decoding, of prefills in chunks that straddle the buffer's roll, and of the full
// forward equal the PyTorch reference (scripts/gen_llama_fixtures.py, `long`); the windowed
// layers' buffers stay at window − 1 + history + window columns whatever the length, while
// Qwen2's full layers keep the whole context; rollback (speculative decoding, Medusa trees) and
// continuous batching give plain greedy decoding's tokens, and a rollback the buffer cannot do is
// refused naming `history`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { init, shutdown, scope, noGrad, withBackend, createModel, generate, DecodeStateError, Linear, heapStats } from '../../src/index.js';
import type { CausalLM, Tensor } from '../../src/index.js';
import { LlamaForCausalLM, KVCache, parseLlamaConfig } from '../../src/models/llama.js';
import { speculativeGenerate } from '../../src/generate/index.js';
import { medusaGenerate } from '../../src/generate/medusa.js';
import { DecodeBatch } from '../../src/generate/batch.js';
import { BACKENDS, assertClose, fixture, fixturePath, readF32Safetensors } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

interface Fx { config: Record<string, unknown>; long: { input_ids: number[]; logits: number[] } }

function load(name: string): { model: LlamaForCausalLM; fx: Fx } {
  const fx = fixture<Fx>(`llama/${name}.json`);
  const model = new LlamaForCausalLM(parseLlamaConfig(fx.config, `${name}.json`));
  scope(() => model.loadStateDict(readF32Safetensors(fixturePath(`llama/${name}.safetensors`))));
  model.eval();
  return { model, fx };
}

/** Logits of `ids` fed to a fresh cache in chunks of these sizes (cycled), as one flat array. */
function chunked(m: CausalLM, ids: number[], sizes: number[], cache = m.newState(1)): number[] {
  const out: number[] = [];
  for (let a = 0, i = 0; a < ids.length; a += sizes[i++ % sizes.length]) {
    const part = ids.slice(a, a + sizes[i % sizes.length]);
    out.push(...(m.forward(T.tensor([part], undefined, 'i32'), cache).toArray() as number[]));
  }
  return out;
}

for (const name of ['mistral_window', 'qwen2_window']) {
  test(`${name}: beyond 3 windows, incremental decoding and chunked prefills on the rolling cache equal the PyTorch reference; the buffers stay the window's size`, () => {
    const { model, fx } = load(name);
    const c = model.config, W = c.sliding_window!, ids = fx.long.input_ids;
    assert.ok(ids.length >= 3 * W);
    for (const b of BACKENDS) {
      withBackend(b, () => scope(() => noGrad(() => {
        assertClose(model.forward(T.tensor([ids], undefined, 'i32')).toArray(), fx.long.logits, 1e-4, 0, `${name} [${b}] full forward`);
        // One token at a time (decoding), then chunks of 1…9 that straddle every roll of the buffer
        // (a chunk longer than the room, W, is split by the model).
        for (const sizes of [[1], [2, 5, 1, 9, 3]]) {
          const cache = model.newState(1) as KVCache;
          assertClose(chunked(model, ids, sizes, cache), fx.long.logits, 1e-4, 0, `${name} [${b}] chunks ${sizes}`);
          assert.equal(cache.length, ids.length);
          cache.windowed.forEach((w, l) => assert.equal(cache.k[l].shape[2], w ? 2 * W - 1 : c.max_position_embeddings, `layer ${l}'s columns`));
          assert.ok(cache.first > 0, 'the buffer rolled');
          cache.dispose();
        }
      })));
    }
    // With autograd on, the layers take the unfused path (KVCache.update instead of ropeAppend).
    scope(() => {
      const cache = model.newState(1);
      assertClose(chunked(model, ids, [2, 5, 1, 9, 3], cache), fx.long.logits, 1e-4, 0, `${name} unfused path`);
      cache.dispose();
    });
    // Every layer windowed (Mistral): no context limit, a cache of Infinity positions; Qwen2 with
    // a full layer keeps max_position_embeddings.
    assert.equal(model.contextLength, name === 'mistral_window' ? Infinity : c.max_position_embeddings);
    if (name === 'mistral_window') assert.ok(ids.length > c.max_position_embeddings, 'the sequence runs past max_position_embeddings');
    else assert.throws(() => model.newState(1, Infinity), /only a model whose every layer has a sliding window/);
    model.dispose();
  });
}

test('rollback on the rolling cache: within history it recomputes the same logits; beyond what the buffer keeps it is refused naming history', () => scope(() => noGrad(() => {
  const { model, fx } = load('mistral_window');
  const ids = fx.long.input_ids.slice(0, 20), W = model.config.sliding_window!, V = model.config.vocab_size;
  const want = fx.long.logits.slice(0, 20 * V);
  const plain = model.newState(1);
  chunked(model, ids, [1], plain);
  assert.throws(() => plain.truncate(17), (e: unknown) => e instanceof DecodeStateError && /history: 3/.test((e as Error).message));
  plain.truncate(20);
  plain.dispose();
  const cache = model.newState(1, undefined, { history: 3 }) as KVCache;
  assert.equal(cache.k[0].shape[2], 2 * W - 1 + 3);
  const got = chunked(model, ids.slice(0, 18), [1], cache);
  cache.truncate(15); // roll back 3, then feed 15…19 again as one chunk
  got.splice(15 * V);
  got.push(...(model.forward(T.tensor([ids.slice(15, 20)], undefined, 'i32'), cache).toArray() as number[]));
  assertClose(got, want, 1e-4, 0, 'after truncate');
  // clone() keeps the rolled buffer; truncate(0) starts over.
  const copy = cache.clone();
  assertClose(model.forward(T.tensor([[5]], undefined, 'i32'), copy).toArray(), model.forward(T.tensor([[5]], undefined, 'i32'), cache).toArray(), 1e-6, 0, 'clone');
  copy.truncate(0);
  assertClose(chunked(model, ids, [7], copy), want, 1e-4, 0, 'after truncate(0)');
  copy.dispose(); cache.dispose();
  model.dispose();
})));

/** Plain greedy decoding by full recomputation (no decoding state): the band-masked forward the fixtures check. */
function greedyNoCache(m: CausalLM, prompt: number[], n: number): number[] {
  const seq = [...prompt];
  noGrad(() => { for (let i = 0; i < n; i++) scope(() => { seq.push(T.argmax(T.slice(m.forward(T.tensor([seq], undefined, 'i32')), 1, -1), -1).item()); }); });
  return seq.slice(prompt.length);
}

test('a windowed model: generate(), speculative decoding (draft model, prompt lookup), Medusa trees and continuous batching run past the window with greedy tokens of full recomputation', () => {
  const { model } = load('mistral_window');
  const prompt = [34, 37, 20, 32, 53, 34, 37], n = 30; // 37 positions: 9 windows
  const want = greedyNoCache(model, prompt, n);
  const opts = { maxNewTokens: n, stopIds: [] as number[] };
  assert.deepEqual(generate(model, prompt, opts).ids[0], want, 'generate');
  assert.deepEqual(speculativeGenerate(model, prompt, { ...opts, draft: model, numDraft: 3 }).ids[0], want, 'draft = target');
  // The heuristic schedule grows the draft to 8: verifications longer than the buffer's room of 4.
  assert.deepEqual(speculativeGenerate(model, prompt, { ...opts, draft: model, numDraft: 2, draftSchedule: 'heuristic' }).ids[0], want, 'heuristic schedule');
  const other = createModel({ ...model.config, model_type: 'llama', sliding_window: null }, 'draft', { generator: new T.Generator(3) });
  const sp = speculativeGenerate(model, prompt, { ...opts, draft: other, numDraft: 4 });
  assert.deepEqual(sp.ids[0], want, 'a wrong draft: rejections roll the target back');
  assert.ok(sp.stats.speculative.accepted < sp.stats.speculative.drafted);
  assert.deepEqual(speculativeGenerate(model, prompt, { ...opts, lookup: { ngram: 2, numDraft: 4 } }).ids[0], want, 'prompt lookup');
  // Medusa: a tree of 6 tokens (more than the buffer's room of 4: it grows) and the default tree.
  const g = new T.Generator(5), D = model.config.hidden_size, V = model.config.vocab_size;
  const ls = Array.from({ length: 3 }, () => new Linear(D, V, { bias: false, generator: g, std: 1 }));
  const heads = { numHeads: 3, forward: (h: Tensor) => ls.map((l) => l.forward(h)) };
  for (const choices of [[[0], [1], [0, 0], [1, 0], [0, 0, 0]], undefined]) {
    assert.deepEqual(medusaGenerate(model, prompt, { ...opts, medusa: { heads, choices } }).ids[0], want, `medusa ${choices ? 'small' : 'default'} tree`);
  }
  // Continuous batching: requests of other lengths join while the first one's buffer has rolled.
  const batch = new DecodeBatch(model, 4);
  const p2 = [9, 8, 7, 6, 5, 4, 3, 2, 1, 9, 8], p3 = [11, 12];
  const r1 = batch.add([prompt], opts);
  for (let i = 0; i < 10; i++) batch.step();
  const r2 = batch.add([p2], { maxNewTokens: 20, stopIds: [] });
  for (let i = 0; i < 5; i++) batch.step();
  const r3 = batch.add([p3], { maxNewTokens: 25, stopIds: [] });
  let guard = 0;
  while (batch.step()) assert.ok(guard++ < 200);
  assert.deepEqual(r1.result().ids[0], want, 'batch: first request');
  assert.deepEqual(r2.result().ids[0], greedyNoCache(model, p2, 20), 'batch: a longer prompt joining');
  assert.deepEqual(r3.result().ids[0], greedyNoCache(model, p3, 25), 'batch: a shorter prompt joining');
  batch.dispose();
  other.dispose();
  model.dispose();
});

test('Qwen2 whose max_window_layers (default 28) covers every layer: a plain cache of the whole context', () => {
  const m = new LlamaForCausalLM(parseLlamaConfig({ model_type: 'qwen2', hidden_size: 8, num_attention_heads: 2, vocab_size: 10, intermediate_size: 8, num_hidden_layers: 2, max_position_embeddings: 64, sliding_window: 4, use_sliding_window: true }));
  const c = m.newState(1);
  assert.deepEqual([c.window, c.room, c.k.map((t) => t.shape[2]), m.contextLength], [null, Infinity, [64, 64], 64]);
  c.dispose(); m.dispose();
});

test('continuous batching in a finite cache (as the server sizes it): rows drop shared padding (dropLeading) on rolled buffers; memory is returned', () => {
  // Measured around the model too: it keeps its decoding plans' buffers (llama_decode.ts) until disposed.
  const before = heapStats().inUse;
  const { model } = load('mistral_window');
  const batch = new DecodeBatch(model, 4, 24);
  const o = { maxNewTokens: 16, stopIds: [] as number[] };
  const p1 = [3, 9, 27, 17], p2 = [5, 6, 7, 8, 9, 10];
  const r1 = batch.add([p1], o);
  for (let i = 0; i < 8; i++) batch.step();
  const r2 = batch.add([p2], o);
  let guard = 0;
  while (batch.step()) assert.ok(guard++ < 200);
  assert.ok(batch.shifts.left > 0, 'the cache never shifted left');
  assert.deepEqual(r1.result().ids[0], greedyNoCache(model, p1, 16), 'first request');
  assert.deepEqual(r2.result().ids[0], greedyNoCache(model, p2, 16), 'second request');
  batch.dispose();
  model.dispose();
  assert.equal(heapStats().inUse, before);
});
