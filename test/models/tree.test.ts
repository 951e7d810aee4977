// Tree attention (ForwardOptions.tree) and DecodeState.compact, the two things tree-based
// speculative decoding needs from a model: every node of a token tree verified in one forward
// gets the logits that a plain forward of the prefix followed by the node's root-to-node path
// gives at its last position (the definition; the plain forward itself is checked against
// PyTorch elsewhere); after compact() keeps one path, decoding continues as if only that path
// had been fed. LLaMA (GQA), a mixture of experts and a model whose tree exceeds the fused
// attention's reach, on both backends; bad trees and states that cannot compact are errors.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { init, shutdown, noGrad, scope, withBackend, Tensor } from '../../src/index.js';
import { createModel } from '../../src/models/index.js';
import type { CausalLM, TreeInput } from '../../src/models/causal.js';
import { DecodeStateError } from '../../src/models/causal.js';
import { assertClose } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

const base = { vocab_size: 53, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, rms_norm_eps: 1e-5, initializer_range: 0.3, tie_word_embeddings: false };
const CONFIGS: Record<string, Record<string, unknown>> = {
  llama: { ...base, model_type: 'llama', intermediate_size: 40 },
  mixtral: { ...base, model_type: 'mixtral', intermediate_size: 24, num_local_experts: 4, num_experts_per_tok: 2 },
};

/** A tree as parent indices (−1: child of the prefix's last token); tokens in the given order. */
function treeOf(parents: number[]): TreeInput & { paths: number[][] } {
  const n = parents.length, depth: number[] = [], mask = new Uint8Array(n * n), paths: number[][] = [];
  parents.forEach((p, i) => {
    depth.push(p < 0 ? 0 : depth[p] + 1);
    paths.push(p < 0 ? [i] : [...paths[p], i]);
    for (const a of paths[i]) mask[i * n + a] = 1;
  });
  return { depth, mask, paths };
}

// Three root candidates, children and grandchildren: 10 nodes, depths 0–3.
const PARENTS = [-1, -1, -1, 0, 0, 1, 3, 3, 5, 6];
const TOKENS = [7, 19, 3, 44, 12, 7, 30, 2, 51, 9];
const PREFIX = [5, 17, 40, 22, 8, 1];

const ids = (row: number[]): Tensor => T.tensor([row], undefined, 'i32');

function plainLast(m: CausalLM, seq: number[]): Float32Array {
  return scope(() => m.forward(ids(seq)).detach().data().slice((seq.length - 1) * m.config.vocab_size) as Float32Array);
}

describe('tree attention', () => {
  for (const name of Object.keys(CONFIGS)) {
    it(`${name}: each node's logits equal the plain forward of prefix + its path; compact keeps one path`, () => {
      const m = createModel(CONFIGS[name], name, { generator: new T.Generator(4) });
      m.eval();
      assert.equal(m.treeAttention, true);
      const V = m.config.vocab_size, tree = treeOf(PARENTS);
      for (const b of ['ref', 'wasm'] as const) withBackend(b, () => noGrad(() => scope(() => {
        const want = tree.paths.map((p) => plainLast(m, [...PREFIX, ...p.map((i) => TOKENS[i])]));
        const state = m.newState(1, 32);
        m.forward(ids(PREFIX), state);
        const lg = m.forward(ids(TOKENS), state, { tree }).data();
        assert.equal(state.length, PREFIX.length + TOKENS.length);
        tree.paths.forEach((_, i) => assertClose(lg.slice(i * V, (i + 1) * V), want[i], 1e-5, 1e-5, `${name} [${b}] node ${i}`));
        // keep the path to node 9 (0 → 3 → 6 → 9), then decode one more token after it
        const keep = tree.paths[9];
        state.compact(PREFIX.length, keep);
        assert.equal(state.length, PREFIX.length + keep.length);
        const seq = [...PREFIX, ...keep.map((i) => TOKENS[i])];
        const next = m.forward(ids([23]), state).data();
        assertClose(next, plainLast(m, [...seq, 23]), 1e-5, 1e-5, `${name} [${b}] after compact`);
        // a second tree after the compacted state (positions continue from the kept path)
        const small = treeOf([-1, 0, -1]);
        const lg2 = m.forward(ids([4, 4, 38]), state, { tree: small }).data();
        small.paths.forEach((p, i) => assertClose(lg2.slice(i * V, (i + 1) * V), plainLast(m, [...seq, 23, ...p.map((j) => [4, 4, 38][j])]), 1e-5, 1e-5, `${name} [${b}] second tree node ${i}`));
        state.dispose();
      })));
      m.dispose();
    });
  }

  it('a batch of two rows shares one tree; the chain tree equals plain decoding', () => {
    const m = createModel(CONFIGS.llama, 'llama', { generator: new T.Generator(5) });
    m.eval();
    const V = m.config.vocab_size, tree = treeOf([-1, 0, 0, 1]);
    const rows = [[9, 2, 33], [14, 50, 6]], toks = [[3, 8, 21, 40], [11, 11, 0, 52]];
    noGrad(() => scope(() => {
      const state = m.newState(2, 16);
      m.forward(T.tensor(rows, undefined, 'i32'), state);
      const lg = m.forward(T.tensor(toks, undefined, 'i32'), state, { tree }).data();
      for (let r = 0; r < 2; r++) {
        tree.paths.forEach((p, i) => assertClose(lg.slice((r * 4 + i) * V, (r * 4 + i + 1) * V), plainLast(m, [...rows[r], ...p.map((j) => toks[r][j])]), 1e-5, 1e-5, `row ${r} node ${i}`));
      }
      // a chain is ordinary causal decoding
      const chain = treeOf([-1, 0, 1]);
      const s1 = m.newState(1, 16), s2 = m.newState(1, 16);
      m.forward(ids(rows[0]), s1); m.forward(ids(rows[0]), s2);
      assertClose(m.forward(ids([5, 6, 7]), s1, { tree: chain }).data(), m.forward(ids([5, 6, 7]), s2).data(), 1e-5, 1e-5, 'chain');
      for (const s of [state, s1, s2]) s.dispose();
    }));
    m.dispose();
  });

  it('bad trees are errors naming the fault; compact checks its offsets', () => {
    const m = createModel(CONFIGS.llama, 'llama', { generator: new T.Generator(5) });
    m.eval();
    noGrad(() => scope(() => {
      const state = m.newState(1, 16);
      m.forward(ids([1, 2]), state);
      const bad = (tree: TreeInput, re: RegExp) => assert.throws(() => m.forward(ids([3, 4, 5]), state, { tree }), re);
      bad({ depth: [0, 1], mask: new Uint8Array(9) }, /tree\.depth has 2 entries for 3/);
      bad({ depth: [0, 1, 1], mask: Uint8Array.from([1, 0, 0, 1, 1, 0, 0, 0, 0]) }, /token 2 does not see itself/);
      bad({ depth: [0, 0, 1], mask: Uint8Array.from([1, 1, 0, 0, 1, 0, 1, 0, 1]) }, /token 0 sees the later token 1/);
      bad({ depth: [0, 1, 1], mask: Uint8Array.from([1, 0, 0, 1, 1, 0, 0, 0, 1]) }, /token 2 at depth 1 sees 1 tokens/);
      assert.equal(state.length, 2, 'a refused tree does not advance the state');
      m.forward(ids([3, 4, 5]), state, { tree: treeOf([-1, 0, 0]) });
      assert.throws(() => state.compact(2, [0, 0]), DecodeStateError);
      assert.throws(() => state.compact(2, [3]), /strictly ascending offsets in \[0, 3\)/);
      state.compact(2, [0, 2]);
      assert.equal(state.length, 4);
      state.dispose();
    }));
    m.dispose();
  });

  it('recurrent families: no tree attention; compact keeps a chain (a rollback) and refuses a branch', () => {
    const m = createModel({ model_type: 'mamba', vocab_size: 40, hidden_size: 16, state_size: 4, num_hidden_layers: 1 }, 'mamba', { generator: new T.Generator(2) });
    m.eval();
    assert.equal(m.treeAttention, false);
    noGrad(() => scope(() => {
      const s = m.newState(1, undefined, { history: 4 }), ref = m.newState(1);
      m.forward(ids([1, 2, 3]), s);
      m.forward(ids([1, 2, 3]), ref);
      m.forward(ids([7, 8, 9]), s);
      assert.throws(() => s.compact(3, [0, 2]), /cannot keep a branch/);
      s.compact(3, [0, 1]);
      m.forward(ids([7, 8]), ref);
      assertClose(m.forward(ids([5]), s).data(), m.forward(ids([5]), ref).data(), 1e-6, 1e-6, 'after a chain compact');
      s.dispose(); ref.dispose();
    }));
    m.dispose();
  });
});
