// Decoding plans (src/models/llama_decode.ts): a step of one token per row through the plan gives
// exactly (bit for bit) the logits of the generic layers, for f32, quantised and 16-bit weights,
// one and two rows, both backends; a plan is rebuilt when the layers change (a LoRA adapter);
// models it cannot run (sliding windows, q/k norms, biases, MoE) keep the generic path. The
// generic path itself is checked against PyTorch and llama.cpp elsewhere (llama.test.ts, the
// GGUF tests); this makes the plan answer to it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import * as T from '../../src/index.js';
import { init, shutdown, scope, noGrad, withBackend, loadModel, writeHfDir } from '../../src/index.js';
import type { CausalLM, DecodeState } from '../../src/index.js';
import { KVCache, LlamaForCausalLM, parseLlamaConfig } from '../../src/models/llama.js';
import { applyLora } from '../../src/lora/model.js';
import { tempDir, tinyLlamaConfig, tinyLlamaTensors } from '../io/util.js';
import { assertClose } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

const PROMPT = [1, 270, 5, 290, 100, 33, 261, 299];

/**
 * Logits (as bytes) of a prefill then `steps` steps of Tn tokens per row (the next token and
 * Tn − 1 others, as a speculative step verifies a chain; `chain`: passed as a token tree that is a
 * chain) for B rows, with plans on or off.
 */
function decodeBytes(m: CausalLM, B: number, steps: number, plans: boolean, Tn = 1, chain = false): Buffer[] {
  const was = LlamaForCausalLM.decodePlans;
  LlamaForCausalLM.decodePlans = plans;
  try {
    return noGrad(() => {
      const out: Buffer[] = [];
      let state: DecodeState | null = null;
      try {
        state = m.newState(B, 64);
        const prompt = Array.from({ length: B }, (_, b) => PROMPT.map((t) => (t + 7 * b) % 300));
        let next = scope(() => {
          const l = m.forward(T.tensor(prompt, undefined, 'i32'), state);
          return Array.from({ length: B }, (_, b) => argmaxLast(l, b));
        });
        for (let s = 0; s < steps; s++) {
          next = scope(() => {
            const ids = next.map((t, b) => [t, ...Array.from({ length: Tn - 1 }, (_, i) => (t * 3 + 11 * i + b) % 300)]);
            const tree = chain ? { depth: ids[0].map((_, i) => i), mask: chainMask(Tn) } : undefined;
            const l = m.forward(T.tensor(ids, undefined, 'i32'), state, { tree });
            const d = l.data() as Float32Array;
            out.push(Buffer.from(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength)));
            return Array.from({ length: B }, (_, b) => argmaxLast(l, b));
          });
        }
        return out;
      } finally {
        state?.dispose?.();
      }
    });
  } finally {
    LlamaForCausalLM.decodePlans = was;
  }
}

function chainMask(n: number): Uint8Array {
  const m = new Uint8Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) m[i * n + j] = 1;
  return m;
}

function argmaxLast(logits: T.Tensor, b: number): number {
  const [, Tn, V] = logits.shape;
  const d = T.slice(T.slice(logits, 0, b, b + 1), 1, Tn - 1, Tn).data();
  let best = 0;
  for (let i = 1; i < V; i++) if (d[i] > d[best]) best = i;
  // Vary the tokens a little so that rows and steps differ.
  return (best + b) % V;
}

/** How many decoding plans the model holds (white-box: the plan must really be taken, or not). */
function plansOf(m: CausalLM): number {
  return [...(m as LlamaForCausalLM)['_plans'].values()].filter((p) => p.plan !== null).length;
}

function assertSame(a: Buffer[], b: Buffer[], what: string): void {
  assert.equal(a.length, b.length, what);
  a.forEach((x, i) => assert.ok(x.equals(b[i]), `${what}: step ${i}: the plan's logits differ from the generic layers'`));
}

async function tiny(dir: string, over: Record<string, unknown> = {}, name = 'm'): Promise<string> {
  const cfg = tinyLlamaConfig(over), d = path.join(dir, name);
  await writeHfDir(d, { config: cfg, tensors: tinyLlamaTensors(cfg, 5) });
  return d;
}

test('a plan step equals the generic layers bit for bit: f32, Q8_0, Q4_0, F16, BF16 weights; one and two rows; 1, 4 (a chain tree) and 8 tokens; wasm and ref', async (t) => {
  const dir = await tiny(tempDir(t));
  for (const dtype of ['f32', 'q8_0', 'q4_0', 'f16', 'bf16'] as const) {
    const { model } = await loadModel(dir, { dtype });
    try {
      for (const B of [1, 2]) assertSame(decodeBytes(model, B, 6, true), decodeBytes(model, B, 6, false), `${dtype}, ${B} row(s)`);
      // Several tokens per row (speculative verification): 4 as a chain tree, 8 plain.
      assertSame(decodeBytes(model, 1, 3, true, 4, true), decodeBytes(model, 1, 3, false, 4, true), `${dtype}, a chain of 4`);
      assertSame(decodeBytes(model, 2, 3, true, 8), decodeBytes(model, 2, 3, false, 8), `${dtype}, 2 rows of 8`);
      if (dtype === 'f32' || dtype === 'q8_0') withBackend('ref', () => assertSame(decodeBytes(model, 1, 3, true), decodeBytes(model, 1, 3, false), `${dtype} on ref`));
    } finally {
      model.dispose();
    }
  }
});

test('a bf16 KV cache: the plan equals the generic layers bit for bit (f32 and Q8_0 weights, 1 and 2 rows, a chain of 4, 8 tokens, a sliding window), within bf16 rounding of an f32 cache, in half the bytes', async (t) => {
  const dir = await tiny(tempDir(t));
  for (const dtype of ['f32', 'q8_0'] as const) {
    const { model } = await loadModel(dir, { dtype });
    const m = model as LlamaForCausalLM;
    try {
      // (Quantised weights get a bf16 cache by default: loadModel's kvDtype 'auto'.)
      assert.equal(m.kvDtype, dtype === 'f32' ? 'f32' : 'bf16', 'the default cache');
      m.kvDtype = 'f32';
      const f32 = decodeBytes(model, 2, 6, true);
      m.kvDtype = 'bf16';
      for (const B of [1, 2]) assertSame(decodeBytes(model, B, 6, true), decodeBytes(model, B, 6, false), `${dtype}, bf16 cache, ${B} row(s)`);
      assertSame(decodeBytes(model, 1, 3, true, 4, true), decodeBytes(model, 1, 3, false, 4, true), `${dtype}, bf16 cache, a chain of 4`);
      assertSame(decodeBytes(model, 2, 3, true, 8), decodeBytes(model, 2, 3, false, 8), `${dtype}, bf16 cache, 2 rows of 8`);
      if (dtype === 'f32') withBackend('ref', () => assertSame(decodeBytes(model, 1, 3, true), decodeBytes(model, 1, 3, false), 'bf16 cache on ref'));
      // The same greedy path as the f32 cache here, the logits within bf16's rounding of the keys and values.
      const half = decodeBytes(model, 2, 6, true);
      half.forEach((b, i) => {
        const a = new Float32Array(f32[i].buffer.slice(f32[i].byteOffset, f32[i].byteOffset + f32[i].byteLength));
        const h = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
        // (Q8_0's decoding rounds x to int8, which turns a small change into a quantisation step.)
        const tol = dtype === 'f32' ? 1e-2 : 1e-1;
        assertClose(Array.from(h), Array.from(a), tol, tol, `${dtype} step ${i}: bf16 cache vs f32 cache`);
        assert.ok(!b.equals(f32[i]) || i > 0, 'the bf16 cache rounds (the logits are not the f32 cache\'s bit for bit)');
      });
      const st = m.newState(2, 64), st32 = new KVCache(m.config, 2, 64);
      try {
        assert.equal(st.k[0].size * 2, st32.k[0].size, 'a bf16 cache takes half the bytes');
      } finally {
        st.dispose(); st32.dispose();
      }
    } finally {
      m.kvDtype = 'f32';
      model.dispose();
    }
  }
  const mistral = new LlamaForCausalLM(parseLlamaConfig(tinyLlamaConfig({ sliding_window: 4, model_type: 'mistral' })));
  try {
    mistral.kvDtype = 'bf16';
    assertSame(decodeBytes(mistral, 2, 20, true), decodeBytes(mistral, 2, 20, false), 'bf16 cache, window 4, 2 rows');
  } finally {
    mistral.dispose();
  }
});

test('K-quants (256-value blocks) through the plan: Q4_K and Q6_K equal the generic layers', async (t) => {
  const dir = await tiny(tempDir(t), { hidden_size: 256, intermediate_size: 256, num_attention_heads: 4, num_key_value_heads: 1 });
  for (const dtype of ['q4_k', 'q6_k'] as const) {
    const { model } = await loadModel(dir, { dtype });
    try {
      assertSame(decodeBytes(model, 1, 4, true), decodeBytes(model, 1, 4, false), dtype);
    } finally {
      model.dispose();
    }
  }
});

test('the plan is actually taken, and rebuilt when a projection is wrapped by a LoRA adapter', async (t) => {
  const dir = await tiny(tempDir(t));
  const { model } = await loadModel(dir);
  try {
    decodeBytes(model, 1, 2, true);
    assert.equal(plansOf(model), 2, 'plans for one row: the 8-token prompt, then one token per step');
    const plain = decodeBytes(model, 1, 4, true);
    applyLora(model, { r: 2, lora_alpha: 4, lora_dropout: 0, use_rslora: false, target_modules: ['v_proj'] });
    // Give the adapter non-zero weights (B starts at zero).
    for (const [name, p] of Object.entries(model.stateDict())) if (name.includes('lora_B')) noGrad(() => T.copyInto(p, T.full(p.shape, 0.05)));
    const lora = decodeBytes(model, 1, 4, true);
    assertSame(lora, decodeBytes(model, 1, 4, false), 'with a LoRA adapter');
    assert.ok(!lora[0].equals(plain[0]), 'the adapter changes the logits (the old plan was not reused)');
  } finally {
    model.dispose();
  }
});

test('the plan is rebuilt when a norm weight, a projection weight or a layer is replaced (its watch list)', async (t) => {
  const dir = await tiny(tempDir(t));
  const { model } = await loadModel(dir);
  try {
    const m = model as LlamaForCausalLM;
    let before = decodeBytes(m, 1, 3, true);
    const changes: [string, () => void][] = [
      ['a norm weight', () => { m.model.layers[1].post_attention_layernorm.weight = noGrad(() => T.full([m.config.hidden_size], 2)); }],
      ['a projection weight', () => { const l = m.model.layers[0].mlp as unknown as { down_proj: { weight: T.Tensor } }; l.down_proj.weight = noGrad(() => T.mul(l.down_proj.weight, 0.5)); }],
      ['a layer', () => { m.model.layers[0] = m.model.layers[1]; }],
    ];
    for (const [what, change] of changes) {
      change();
      const after = decodeBytes(m, 1, 3, true);
      assertSame(after, decodeBytes(m, 1, 3, false), `after replacing ${what}`);
      assert.ok(!after[0].equals(before[0]), `replacing ${what} changes the logits (the old plan was not reused)`);
      before = after;
    }
  } finally {
    model.dispose();
  }
});

test('sliding-window layers (Mistral, window 4): one-token steps through the plan equal the generic layers as the rolling buffer rolls', () => {
  const model = new LlamaForCausalLM(parseLlamaConfig(tinyLlamaConfig({ sliding_window: 4, model_type: 'mistral' })));
  try {
    for (const B of [1, 2]) {
      const got = decodeBytes(model, B, 20, true);
      assert.ok(plansOf(model) >= 1, 'a plan was made');
      assertSame(got, decodeBytes(model, B, 20, false), `window 4, ${B} row(s)`);
    }
  } finally {
    model.dispose();
  }
});

/** Last-position logits of `steps` greedy steps of left-padded prompts (one row each), plans on or off. */
function paddedSteps(m: CausalLM, prompts: number[][], steps: number, plans: boolean): Float32Array[][] {
  const was = LlamaForCausalLM.decodePlans;
  LlamaForCausalLM.decodePlans = plans;
  const B = prompts.length, L = Math.max(...prompts.map((p) => p.length)), padLeft = prompts.map((p) => L - p.length);
  const state = m.newState(B, 64);
  try {
    return noGrad(() => {
      const rows = (l: T.Tensor): Float32Array[] => {
        const V = l.shape[2], Tn = l.shape[1], d = T.contiguous(l).data() as Float32Array;
        return Array.from({ length: B }, (_, b) => d.slice((b * Tn + Tn - 1) * V, (b * Tn + Tn) * V));
      };
      const argmax = (r: Float32Array): number => r.reduce((best, v, i) => (v > r[best] ? i : best), 0);
      let last = scope(() => rows(m.forward(T.tensor(prompts.map((p, b) => [...new Array(padLeft[b]).fill(0), ...p]), undefined, 'i32'), state, { padLeft })));
      const out: Float32Array[][] = [];
      for (let s = 0; s < steps; s++) {
        const next = last.map(argmax);
        last = scope(() => rows(m.forward(T.tensor(next.map((t) => [t]), undefined, 'i32'), state, { padLeft })));
        out.push(last);
      }
      return out;
    });
  } finally {
    state.dispose?.();
    LlamaForCausalLM.decodePlans = was;
  }
}

test('left-padded rows (continuous batching): the plan attends each row over its own keys — the masked generic path\'s values, and (f32) each row as decoded alone', async (t) => {
  const dir = await tiny(tempDir(t));
  for (const dtype of ['f32', 'q8_0'] as const) {
    const { model } = await loadModel(dir, { dtype });
    try {
      const prompts = [PROMPT, PROMPT.slice(0, 3), [1, 9, 8, 7, 6]];
      const plan = paddedSteps(model, prompts, 6, true), generic = paddedSteps(model, prompts, 6, false);
      assert.ok(plansOf(model) >= 1, 'a plan was made');
      const alone = prompts.map((p) => paddedSteps(model, [p], 6, true));
      plan.forEach((step, s) => step.forEach((row, b) => {
        assertClose(Array.from(row), Array.from(generic[s][b]), 1e-5, 1e-5, `${dtype} step ${s} row ${b}: plan vs masked generic`);
        // (Q8_0's prefill of B·T rows takes another kernel path than T rows: only f32 matches alone to rounding.)
        if (dtype === 'f32') assertClose(Array.from(row), Array.from(alone[b][s][0]), 1e-5, 1e-5, `${dtype} step ${s} row ${b}: batched vs alone`);
      }));
    } finally {
      model.dispose();
    }
  }
});

test('models the plan does not cover decode as before: attention biases, q/k norms (Chameleon), mixture of experts', () => {
  for (const over of [{ attention_bias: true }, { model_type: 'chameleon' }, { model_type: 'mixtral', num_local_experts: 4, num_experts_per_tok: 2 }]) {
    const model = new LlamaForCausalLM(parseLlamaConfig(tinyLlamaConfig(over)));
    try {
      const got = decodeBytes(model, 1, 4, true);
      assert.equal(plansOf(model), 0, `${JSON.stringify(over)}: no plan was made`);
      assertSame(got, decodeBytes(model, 1, 4, false), JSON.stringify(over));
    } finally {
      model.dispose();
    }
  }
});

test('a prompt longer than PREFILL_CHUNK is prefilled in chunks: the logits of one pass without a cache, a left-padded row as alone, the activations of one chunk', async () => {
  const { PREFILL_CHUNK } = await import('../../src/models/llama.js');
  const { heapStats, resetHeapPeak } = await import('../../src/backend/heap.js');
  const L = 549;
  assert.ok(PREFILL_CHUNK <= 256, `chunks of ${PREFILL_CHUNK}: the prompt of ${L} positions makes at least two`);
  const model = new LlamaForCausalLM(parseLlamaConfig(tinyLlamaConfig({ max_position_embeddings: 1024 })));
  try {
    noGrad(() => {
      const ids = Array.from({ length: L }, (_, i) => (i * 37 + 11) % 300);
      // Without a cache: one pass over all L positions (no chunks).
      const full = scope(() => T.contiguous(model.forward(T.tensor([ids], undefined, 'i32'))).data() as Float32Array);
      const state = model.newState(1, L);
      try {
        resetHeapPeak();
        const before = heapStats().inUse;
        const got = scope(() => T.contiguous(model.forward(T.tensor([ids], undefined, 'i32'), state)).data() as Float32Array);
        // One layer's activations for a chunk, not for all L positions: the peak above the cache
        // is less than half what the unchunked pass needs (its per-layer temporaries scale with L).
        const peak = heapStats().peak - before;
        assert.equal(state.length, L);
        assertClose(got, full, 2e-5, 1e-4, 'chunked prefill vs one pass');
        resetHeapPeak();
        const b0 = heapStats().inUse;
        scope(() => model.forward(T.tensor([ids], undefined, 'i32')));
        const unchunked = heapStats().peak - b0;
        assert.ok(peak < unchunked / 2, `the chunked prefill peaked at ${peak} bytes, one pass at ${unchunked}`);
      } finally {
        state.dispose();
      }
      // A left-padded batch: the padded row's last logits equal the row prefilled alone.
      const short = ids.slice(0, L - 50);
      const pad = [50, 0];
      const two = model.newState(2, L), one = model.newState(1, L);
      try {
        const lastOf = (l: T.Tensor, b: number): Float32Array => {
          const V = l.shape[2], Tn = l.shape[1], d = T.contiguous(l).data() as Float32Array;
          return d.slice((b * Tn + Tn - 1) * V, (b * Tn + Tn) * V);
        };
        const batch = scope(() => lastOf(model.forward(T.tensor([[...new Array(50).fill(0), ...short], ids], undefined, 'i32'), two, { padLeft: pad }), 0));
        const alone = scope(() => lastOf(model.forward(T.tensor([short], undefined, 'i32'), one), 0));
        assertClose(batch, alone, 2e-5, 1e-4, 'left-padded row vs alone');
      } finally {
        two.dispose();
        one.dispose();
      }
    });
  } finally {
    model.dispose();
  }
});

test('a 600-token prompt prefilled in chunks of PREFILL_CHUNK: the logits at the chunks\' edges and the greedy continuation equal PyTorch\'s (scripts/gen_llama_fixtures.py, llama_long_prompt)', async () => {
  const { PREFILL_CHUNK } = await import('../../src/models/llama.js');
  const { BACKENDS, fixture, fixturePath, readF32Safetensors } = await import('../helpers.js');
  const { generate } = await import('../../src/generate/generate.js');
  interface Fx { config: Record<string, unknown>; long_prompt: { input_ids: number[]; positions: number[]; logits: number[]; greedy: number[] } }
  const fx = fixture<Fx>('llama/llama_long_prompt.json');
  const { input_ids: ids, positions, logits: want, greedy } = fx.long_prompt;
  assert.ok(ids.length > 2 * PREFILL_CHUNK, `${ids.length} positions make at least three chunks of ${PREFILL_CHUNK}`);
  const model = new LlamaForCausalLM(parseLlamaConfig(fx.config, 'llama_long_prompt.json'));
  try {
    scope(() => model.loadStateDict(readF32Safetensors(fixturePath('llama/llama_long_prompt.safetensors'))));
    model.eval();
    const V = model.config.vocab_size;
    for (const b of BACKENDS) {
      withBackend(b, () => noGrad(() => {
        const state = model.newState(1, ids.length + 8);
        try {
          const got = scope(() => T.contiguous(model.forward(T.tensor([ids], undefined, 'i32'), state)).data() as Float32Array);
          assert.equal(state.length, ids.length);
          const at = positions.flatMap((p) => Array.from(got.subarray(p * V, (p + 1) * V)));
          assertClose(at, want, 1e-4, 1e-4, `[${b}] logits at positions ${positions.join(', ')}`);
        } finally {
          state.dispose();
        }
        assert.deepEqual(generate(model, ids, { maxNewTokens: greedy.length, stopIds: [] }).ids[0], greedy, `[${b}] greedy tokens after the prompt`);
      }));
    }
  } finally {
    model.dispose();
  }
});
