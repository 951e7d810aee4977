// LLaMA-family parity with an independent PyTorch implementation (scripts/gen_llama_fixtures.py):
// logits to 1e-4, greedy continuations token for token (with and without the KV cache).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { init, shutdown, scope, noGrad, withBackend } from '../../src/index.js';
import { LlamaForCausalLM, parseLlamaConfig } from '../../src/models/llama.js';
import { assertClose, fixture, fixturePath, readF32Safetensors } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });


interface Fx { config: Record<string, unknown>; input_ids: number[][]; logits_shape: number[]; logits: number[]; greedy: { prompt: number[]; ids: number[] }; loss?: number; z_loss?: number }

for (const name of ['llama_gqa_untied', 'llama_mha_tied', 'qwen2_bias', 'mistral_window', 'qwen2_window', 'chameleon_qknorm', 'chameleon_swin']) {
  test(`${name}: logits and greedy tokens match the PyTorch reference`, () => {
    const fx = fixture<Fx>(`llama/${name}.json`);
    const model = new LlamaForCausalLM(parseLlamaConfig(fx.config, `${name}.json`));
    scope(() => model.loadStateDict(readF32Safetensors(fixturePath(`llama/${name}.safetensors`)), { source: `${name}.safetensors` }));
    for (const b of ['ref', 'wasm'] as const) {
      withBackend(b, () => scope(() => noGrad(() => {
        const ids = T.tensor(fx.input_ids, undefined, 'i32');
        const logits = model.forward(ids);
        assert.deepEqual(logits.shape, fx.logits_shape);
        assertClose(logits.toArray(), fx.logits, 1e-4, 0, `${name} [${b}] logits`);
        // greedy without cache: full recompute each step
        const seq = [...fx.greedy.prompt];
        for (let i = 0; i < fx.greedy.ids.length; i++) {
          const lg = model.forward(T.tensor([seq], undefined, 'i32'));
          seq.push(T.argmax(T.slice(lg, 1, -1), -1).item());
        }
        assert.deepEqual(seq.slice(fx.greedy.prompt.length), fx.greedy.ids, `${name} [${b}] greedy ids (no cache)`);
        // greedy with the KV cache: prefill then one token at a time
        const cache = model.newState(1, 32);
        let lg = model.forward(T.tensor([fx.greedy.prompt], undefined, 'i32'), cache);
        const out: number[] = [];
        for (let i = 0; i < fx.greedy.ids.length; i++) {
          const next = T.argmax(T.slice(lg, 1, -1), -1).item();
          out.push(next);
          lg = model.forward(T.tensor([[next]], undefined, 'i32'), cache);
        }
        cache.dispose();
        assert.deepEqual(out, fx.greedy.ids, `${name} [${b}] greedy ids (KV cache)`);
        if (fx.loss !== undefined) {
          // The training loss with Chameleon's z-loss: cross-entropy + z_loss_coef × mean(logsumexp²).
          const loss = model.loss(ids);
          assertClose([loss.item()], [fx.loss], 1e-4, 1e-5, `${name} [${b}] loss with z-loss`);
          assertClose([model.lossParts()!.values.z_loss], [fx.z_loss!], 1e-3, 1e-5, `${name} [${b}] z-loss part`);
        }
      })));
    }
    model.dispose();
  });
}

test('config validation names the file and field', () => {
  assert.throws(() => parseLlamaConfig({ hidden_size: 30, num_attention_heads: 4, vocab_size: 10, intermediate_size: 8, num_hidden_layers: 1 }, 'x/config.json'), /x\/config\.json: hidden_size 30 is not divisible by num_attention_heads 4/);
  assert.throws(() => parseLlamaConfig({ hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 3, vocab_size: 10, intermediate_size: 8, num_hidden_layers: 1 }), /not a multiple of num_key_value_heads 3/);
  assert.throws(() => parseLlamaConfig({ model_type: 'gpt2' }), /model_type "gpt2" is not a LLaMA-family model/);
  assert.throws(() => parseLlamaConfig({ hidden_size: 32, num_attention_heads: 4, intermediate_size: 8, num_hidden_layers: 1 }), /missing required field "vocab_size"/);
  assert.throws(() => parseLlamaConfig({ hidden_size: 32, num_attention_heads: 4, vocab_size: 10, intermediate_size: 8, num_hidden_layers: 1, rope_scaling: { type: 'yarn', factor: 4 } }), /rope_scaling type "yarn" is not supported/);
});

test('sliding windows: which configs have one, batched and speculative paths agree with one sequence at a time', () => scope(() => noGrad(() => {
  const base = { hidden_size: 8, num_attention_heads: 2, vocab_size: 10, intermediate_size: 8, num_hidden_layers: 2, max_position_embeddings: 64 };
  assert.equal(parseLlamaConfig({ ...base, model_type: 'qwen2', sliding_window: 4, use_sliding_window: false }).sliding_window, null);
  assert.equal(parseLlamaConfig({ ...base, model_type: 'mistral', sliding_window: null }).sliding_window, null);
  const q = parseLlamaConfig({ ...base, model_type: 'qwen2', sliding_window: 4, use_sliding_window: true });
  assert.deepEqual([q.sliding_window, q.max_window_layers], [4, 28], "Qwen2's default: the first 28 layers see everything");
  assert.equal(parseLlamaConfig({ ...base, model_type: 'mistral', sliding_window: 4 }).max_window_layers, undefined);
  // A window of 3 over 12 positions: the cached decode (keys sliced to the window), a prefill in
  // two chunks, and the full recompute (a band mask) give the same logits.
  const m = new LlamaForCausalLM(parseLlamaConfig({ ...base, model_type: 'mistral', sliding_window: 3 }));
  const ids = [1, 5, 2, 7, 3, 3, 9, 4, 0, 6, 8, 2];
  const V = 10;
  /** A flat (B·T·V) logits array as its rows of V. */
  const rows = (a: number[]): number[][] => Array.from({ length: a.length / V }, (_, i) => a.slice(i * V, (i + 1) * V));
  const full = m.forward(T.tensor([ids], undefined, 'i32')).toArray() as number[];
  const cache = m.newState(1, 32);
  const chunk = m.forward(T.tensor([ids.slice(0, 5)], undefined, 'i32'), cache).toArray() as number[];
  const rest = m.forward(T.tensor([ids.slice(5, 8)], undefined, 'i32'), cache).toArray() as number[];
  const steps: number[][] = [];
  for (const id of ids.slice(8)) steps.push(m.forward(T.tensor([[id]], undefined, 'i32'), cache).toArray() as number[]);
  cache.dispose();
  const got = [...rows(chunk), ...rows(rest), ...steps];
  const F = rows(full);
  got.forEach((row, t) => assertClose(row, F[t], 1e-5, 1e-5, `position ${t}`));
  // Beyond the window the logits differ from full attention's (the window is in effect).
  const wide = new LlamaForCausalLM(parseLlamaConfig({ ...base, model_type: 'llama' }));
  wide.loadStateDict(m.stateDict());
  const noWindow = wide.forward(T.tensor([ids], undefined, 'i32')).toArray() as number[];
  assertClose(rows(noWindow)[2], F[2], 1e-5, 1e-5, 'within the window: the same');
  assert.ok(Math.abs(rows(noWindow)[11][0] - F[11][0]) > 1e-4, 'beyond the window: different');
  // Left-padded batch rows and a token tree (a chain of depths 0..3 after 6 positions) agree too.
  const padded = m.forward(T.tensor([[0, 0, ...ids.slice(0, 10)], ids.slice(0, 12)], undefined, 'i32'), null, { padLeft: [2, 0] }).toArray() as number[];
  const P = rows(padded);
  for (let t = 0; t < 10; t++) assertClose(P[t + 2], P[12 + t], 1e-5, 1e-5, `padded row, position ${t}`);
  const c2 = m.newState(1, 32);
  m.forward(T.tensor([ids.slice(0, 6)], undefined, 'i32'), c2);
  const tree = { depth: [0, 1, 1, 2], mask: Uint8Array.from([1, 0, 0, 0, 1, 1, 0, 0, 1, 0, 1, 0, 1, 1, 0, 1]) };
  const tl = m.forward(T.tensor([[ids[6], ids[7], 4, ids[8]]], undefined, 'i32'), c2, { tree }).toArray() as number[];
  c2.dispose();
  const L = rows(tl);
  assertClose(L[0], F[6], 1e-5, 1e-5, 'tree root');
  assertClose(L[1], F[7], 1e-5, 1e-5, 'tree depth 1');
  assertClose(L[3], F[8], 1e-5, 1e-5, 'tree depth 2 on the first branch');
  m.dispose(); wide.dispose();
})));

test('loadStateDict reports missing, unexpected and mis-shaped tensors by name', () => scope(() => {
  const cfg = parseLlamaConfig({ hidden_size: 8, num_attention_heads: 2, vocab_size: 10, intermediate_size: 8, num_hidden_layers: 1 });
  const m = new LlamaForCausalLM(cfg);
  const sd = { ...m.stateDict() };
  delete sd['model.norm.weight'];
  sd['model.extra'] = T.ones([1]);
  assert.throws(() => m.loadStateDict(sd, { source: 'm.safetensors' }), /m\.safetensors: missing tensor\(s\): model\.norm\.weight; unexpected tensor\(s\): model\.extra/);
  const sd2 = { ...m.stateDict(), 'lm_head.weight': T.ones([10, 7]) };
  assert.throws(() => m.loadStateDict(sd2), /tensor lm_head\.weight has shape \[10, 7\], the model expects \[10, 8\]/);
  m.dispose();
}));

test('inference fusions of the decoder layer equal the composite ops (swiglu, ropeQkvToCache)', () => {
  const g = new T.Generator(7);
  for (const b of ['wasm', 'ref'] as const) {
    withBackend(b, () => scope(() => noGrad(() => {
      // swiglu: the same arithmetic as silu(gate) * up (bit for bit on wasm)
      for (const shape of [[1, 1, 2 * 768], [2, 3, 2 * 33], [5, 2]]) {
        const gu = T.randn(shape, { generator: g, std: 3 });
        const n = shape[shape.length - 1] / 2;
        const want = T.mul(T.silu(T.slice(gu, -1, 0, n)), T.slice(gu, -1, n)).toArray() as number[];
        const got = T.swiglu(gu).toArray() as number[];
        if (b === 'wasm') assert.deepEqual(got, want, `swiglu ${shape}`);
        else assertClose(got, want, 1e-6, 1e-6, `swiglu ${shape} [ref]`);
      }
      // ropeQkvToCache against rope + copies into the cache slices
      for (const [B, Tn, Hq, Hkv, D, L, start] of [[1, 1, 6, 6, 48, 10, 4], [2, 3, 4, 2, 8, 7, 2], [1, 5, 2, 1, 6, 5, 0]]) {
        const R = (Hq + 2 * Hkv) * D;
        const qkv = T.randn([B, Tn, R], { generator: g });
        const tabs = T.ropeTables(L, D);
        const cos = T.slice(tabs.cos, 0, start, start + Tn), sin = T.slice(tabs.sin, 0, start, start + Tn);
        const k0 = T.randn([B, Hkv, L, D], { generator: g }), v0 = T.randn([B, Hkv, L, D], { generator: g });
        const kc = T.add(k0, 0), vc = T.add(v0, 0);
        // composite
        const q = T.rope(T.reshape(T.slice(qkv, 2, 0, Hq * D), [B, Tn, Hq, D]), cos, sin, { seqDim: 1 });
        const k = T.transpose(T.rope(T.reshape(T.slice(qkv, 2, Hq * D, (Hq + Hkv) * D), [B, Tn, Hkv, D]), cos, sin, { seqDim: 1 }), 1, 2);
        const v = T.transpose(T.reshape(T.slice(qkv, 2, (Hq + Hkv) * D), [B, Tn, Hkv, D]), 1, 2);
        T.copyInto(T.slice(k0, 2, start, start + Tn), k);
        T.copyInto(T.slice(v0, 2, start, start + Tn), v);
        const wantQ = T.contiguous(q).toArray() as number[];
        T.ropeQkvToCache(qkv, kc, vc, start, cos, sin, Hq, Hkv);
        const gotQ = T.contiguous(T.reshape(T.slice(qkv, 2, 0, Hq * D), [B, Tn, Hq, D])).toArray() as number[];
        const cmp = (x: number[], y: number[], what: string) => (b === 'wasm' ? assert.deepEqual(x, y, what) : assertClose(x, y, 1e-6, 1e-6, what));
        cmp(gotQ, wantQ, `q ${B},${Tn},${Hq},${Hkv},${D} [${b}]`);
        cmp(kc.toArray() as number[], k0.toArray() as number[], `k cache [${b}]`);
        assert.deepEqual(vc.toArray(), v0.toArray(), `v cache [${b}]`);
        assert.throws(() => T.ropeQkvToCache(qkv, kc, vc, L - Tn + 1, T.slice(tabs.cos, 0, 0, Tn), T.slice(tabs.sin, 0, 0, Tn), Hq, Hkv), /do not fit a cache/);
      }
    })));
  }
  // With autograd, swiglu is the composite and has its gradient.
  scope(() => {
    const gu = T.randn([3, 8], { generator: g }).requiresGrad_();
    T.sum(T.swiglu(gu)).backward();
    assert.ok(gu.grad && (gu.grad.toArray() as number[]).every(Number.isFinite));
  });
});
