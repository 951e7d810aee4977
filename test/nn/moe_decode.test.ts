// The MoE block's decoding path (SparseMoeBlock.forwardInto_: router → host top-k → the chosen
// experts in two fused kernels) against its general path (router softmax, experts dispatched by
// expert over gathered rows, scatter-add; the path autograd and long inputs take), on tiny
// Mixtral- and Qwen2-MoE-shaped models built with createModel, on both backends:
//   - decoding token by token from an empty cache, a short prefill (3 rows) and batched decoding
//     (2 rows) give the logits of the full forward with autograd on, to 1e-5;
//   - the fast path is the one taken (SparseMoeBlock.forward is not called), and it falls back
//     to the general path when an expert is wrapped by LoRA (still the same logits);
//   - a step reads only the chosen experts: with one expert's weights NaN, the logits stay
//     finite (and bit for bit the same) unless the router chose it, which it does for exactly
//     k experts per MoE layer; the shared expert is always read.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { init, shutdown, noGrad, scope, withBackend, Tensor } from '../../src/index.js';
import { createModel } from '../../src/models/index.js';
import type { LlamaForCausalLM, KVCache } from '../../src/models/llama.js';
import { SparseMoeBlock, SwiGLU, moeDecodeTuning } from '../../src/nn/moe.js';
import { LoRALinear } from '../../src/nn/lora.js';
import { Linear } from '../../src/nn/layers.js';
import { assertClose } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

const base = { hidden_size: 36, num_attention_heads: 3, num_key_value_heads: 1, vocab_size: 61, max_position_embeddings: 32, rms_norm_eps: 1e-5, initializer_range: 0.2, tie_word_embeddings: false };
const CONFIGS: Record<string, Record<string, unknown>> = {
  // 6 experts of width 22 (not a multiple of 4), top-2, renormalised
  mixtral: { ...base, model_type: 'mixtral', intermediate_size: 22, num_hidden_layers: 2, num_local_experts: 6, num_experts_per_tok: 2 },
  // top-3 of 7 experts of width 18 without renormalisation, a shared expert of width 26, layer 1 dense (mlp_only_layers)
  qwen2_moe: {
    ...base, model_type: 'qwen2_moe', num_key_value_heads: 3, intermediate_size: 40, num_hidden_layers: 3, num_experts: 7, num_experts_per_tok: 3,
    moe_intermediate_size: 18, shared_expert_intermediate_size: 26, norm_topk_prob: false, decoder_sparse_step: 1, mlp_only_layers: [1],
  },
  // top-4 of 5 renormalised, sparse layers 1 and 3 only (decoder_sparse_step 2)
  qwen2_moe_step2: {
    ...base, model_type: 'qwen2_moe', intermediate_size: 30, num_hidden_layers: 4, num_experts: 5, num_experts_per_tok: 4,
    moe_intermediate_size: 9, shared_expert_intermediate_size: 13, norm_topk_prob: true, decoder_sparse_step: 2,
  },
};

function build(name: string): LlamaForCausalLM {
  const m = createModel(CONFIGS[name], name, { generator: new T.Generator(11) }) as LlamaForCausalLM;
  m.eval();
  return m;
}
function blocks(m: LlamaForCausalLM): SparseMoeBlock[] {
  return m.model.layers.map((l) => l.block_sparse_moe ?? l.mlp).filter((b): b is SparseMoeBlock => b instanceof SparseMoeBlock);
}
const ids = (rows: number[][]): Tensor => T.tensor(rows, undefined, 'i32');
const PROMPTS = [[3, 17, 42, 8, 59, 23, 1], [44, 2, 30, 30, 11, 5, 60]];

/** Logits (T, V) of row r of the full forward, autograd on (the general path). */
function reference(m: LlamaForCausalLM, prompt: number[]): Float32Array {
  return scope(() => m.forward(ids([prompt])).detach().data() as Float32Array);
}

/** Run fn with SparseMoeBlock.forward counting its calls. */
function countingForward<R>(fn: () => R): [R, number] {
  const orig = SparseMoeBlock.prototype.forward;
  let calls = 0;
  SparseMoeBlock.prototype.forward = function (this: SparseMoeBlock, ...a: Parameters<typeof orig>) { calls++; return orig.apply(this, a); };
  try {
    return [fn(), calls];
  } finally {
    SparseMoeBlock.prototype.forward = orig;
  }
}

describe('MoE decoding path', () => {
  for (const name of Object.keys(CONFIGS)) for (const router of ['host', 'kernel'] as const) {
    it(`${name}: token-by-token decoding, a 3-row prefill and batched decoding equal the full forward (router logits in ${router === 'host' ? 'JS' : 'a kernel'})`, (t) => {
      const saved = moeDecodeTuning.hostRouterMacs;
      moeDecodeTuning.hostRouterMacs = router === 'host' ? Infinity : 0;
      t.after(() => { moeDecodeTuning.hostRouterMacs = saved; });
      const m = build(name), V = m.config.vocab_size, nMoe = blocks(m).length;
      assert.ok(nMoe > 0 && (name === 'mixtral' || nMoe < m.config.num_hidden_layers));
      for (const b of ['ref', 'wasm'] as const) withBackend(b, () => {
        const want = PROMPTS.map((p) => reference(m, p));
        const [, calls] = countingForward(() => scope(() => noGrad(() => {
          // one token at a time from an empty cache
          const cache = m.newState(1, 16);
          PROMPTS[0].forEach((tok, t) => {
            const lg = m.forward(ids([[tok]]), cache).data();
            assertClose(lg, want[0].slice(t * V, (t + 1) * V), 1e-5, 1e-5, `${name} [${b}] position ${t}`);
          });
          // prefill 3 tokens, then 2 rows decoded together
          const c2 = m.newState(2, 16);
          const pre = m.forward(ids(PROMPTS.map((p) => p.slice(0, 3))), c2).data();
          for (let r = 0; r < 2; r++) assertClose(pre.slice((r * 3 + 2) * V, (r * 3 + 3) * V), want[r].slice(2 * V, 3 * V), 1e-5, 1e-5, `${name} [${b}] row ${r} prefill`);
          for (let t = 3; t < 7; t++) {
            const lg = m.forward(ids(PROMPTS.map((p) => [p[t]])), c2).data();
            for (let r = 0; r < 2; r++) assertClose(lg.slice(r * V, (r + 1) * V), want[r].slice(t * V, (t + 1) * V), 1e-5, 1e-5, `${name} [${b}] row ${r} position ${t}`);
          }
          // 2 rows × 3 tokens = 6 rows: the general path, still equal
          const c3 = m.newState(2, 16);
          m.forward(ids(PROMPTS.map((p) => p.slice(0, 3))), c3);
          const lg6 = m.forward(ids(PROMPTS.map((p) => p.slice(3, 6))), c3).data();
          for (let r = 0; r < 2; r++) assertClose(lg6.slice((r * 3 + 2) * V, (r * 3 + 3) * V), want[r].slice(5 * V, 6 * V), 1e-5, 1e-5, `${name} [${b}] row ${r} 3-token step`);
          for (const c of [cache, c2, c3]) c.dispose();
        })));
        // Only the three 6-row steps (one call per MoE layer each) took the general path.
        assert.equal(calls, 3 * nMoe, `${name} [${b}]: SparseMoeBlock.forward calls while decoding`);
      });
      m.dispose();
    });
  }

  it('an expert wrapped by LoRA: the general path, the same logits', () => {
    const m = build('mixtral'), V = m.config.vocab_size;
    const ex = blocks(m)[0].experts[0] as unknown as Record<string, Linear | LoRALinear>;
    const lora = LoRALinear.fromLinear(ex.w1 as Linear, { r: 2, lora_alpha: 4, generator: new T.Generator(3) });
    noGrad(() => T.copyInto(lora.lora_B!.weight, T.randn(lora.lora_B!.weight.shape, { generator: new T.Generator(4), std: 0.5 })));
    ex.w1 = lora;
    for (const b of ['ref', 'wasm'] as const) withBackend(b, () => {
      const want = reference(m, PROMPTS[1]);
      const [, calls] = countingForward(() => scope(() => noGrad(() => {
        const cache = m.newState(1, 16);
        PROMPTS[1].forEach((tok, t) => {
          const lg = m.forward(ids([[tok]]), cache).data();
          assertClose(lg, want.slice(t * V, (t + 1) * V), 1e-5, 1e-5, `LoRA [${b}] position ${t}`);
        });
        cache.dispose();
      })));
      assert.ok(calls > 0, 'the block with a LoRA expert fell back to forward');
    });
    m.dispose();
  });

  for (const name of ['mixtral', 'qwen2_moe']) {
    it(`${name}: a decoding step reads only the k chosen experts (others NaN: logits unchanged)`, () => {
      const m = build(name), k = m.config.num_experts_per_tok!;
      const moe = blocks(m);
      const weights = (s: SwiGLU): Tensor[] => s.parameters();
      for (const b of ['ref', 'wasm'] as const) withBackend(b, () => scope(() => noGrad(() => {
        const cache = m.newState(1, 16) as KVCache;
        m.forward(ids([PROMPTS[0].slice(0, 5)]), cache);
        // The step's logits, or null when a NaN hidden state reached a later layer's router.
        const step = (): Float32Array | null => scope(() => {
          const c = cache.clone();
          try {
            return m.forward(ids([[PROMPTS[0][5]]]), c).data() as Float32Array;
          } catch (e) {
            if (e instanceof T.NonFiniteError && /router probabilities/.test(e.message)) return null;
            throw e;
          } finally {
            c.dispose();
          }
        });
        const nan = (lg: Float32Array | null): boolean => lg === null || lg.every(Number.isNaN);
        const clean = step();
        assert.ok(clean !== null && clean.every(Number.isFinite));
        const poisoned = (ws: Tensor[], fn: () => void): void => {
          const saved = ws.map((w) => T.clone(w));
          ws.forEach((w) => T.fill_(w, NaN));
          try { fn(); } finally { ws.forEach((w, i) => T.copyInto(w, saved[i])); }
        };
        const unread: Tensor[] = [];
        moe.forEach((blk, l) => {
          let read = 0;
          blk.experts.forEach((ex) => poisoned(weights(ex), () => {
            const lg = step();
            if (lg !== null && lg.every(Number.isFinite)) {
              assert.deepEqual(lg, clean, `${name} [${b}] layer ${l}: an unread expert changed the logits`);
              unread.push(...weights(ex));
            } else {
              assert.ok(nan(lg), `${name} [${b}] layer ${l}: a read NaN expert makes the hidden state NaN`);
              read++;
            }
          }));
          assert.equal(read, k, `${name} [${b}] MoE layer ${l}: experts read`);
          if (blk.shared_expert) poisoned(weights(blk.shared_expert), () => assert.ok(nan(step()), 'the shared expert is read'));
        });
        // Every unchosen expert of every layer NaN at once: the same logits.
        poisoned(unread, () => assert.deepEqual(step(), clean));
        cache.dispose();
      })));
      m.dispose();
    });
  }

  it('a NaN router probability names the block', () => {
    const m = build('mixtral');
    noGrad(() => T.fill_(blocks(m)[1].gate.weight, NaN));
    scope(() => noGrad(() => {
      const cache = m.newState(1, 4);
      assert.throws(() => m.forward(ids([[5]]), cache), /model\.layers\.1\.block_sparse_moe: router probabilities/);
    }));
    m.dispose();
  });
});
