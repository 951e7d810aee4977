// Medusa heads with LM heads tied to the base's output head (MedusaHeads.tie):
//   - a tied head's logits (forward, forwardHead, and forwardMany's one product for several
//     heads) equal those of an untied head holding a copy of the base head, and a plain float64
//     computation of x_L Uᵀ from the weights (tied and untied base models, both backends);
//   - saved tied heads keep the Medusa repo's names, their LM weights the base head's values;
//     loading against the base ties exactly the heads whose LM weight equals the base head bit
//     for bit (one differing in a single element's last bit is not tied, and gives its own
//     logits), and nothing without a base or with tie: false; q8_0 loading leaves a tied head's
//     unused LM weight alone;
//   - greedy Medusa decoding with tied heads is plain greedy decoding, token for token.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as T from '../../src/index.js';
import { init, shutdown, scope, MedusaHeads, loadMedusaHeads, saveMedusaHeads, SafetensorsFile, Generator, createModel, generate } from '../../src/index.js';
import type { CausalLM } from '../../src/models/causal.js';
import { baseHeadWeight } from '../../src/nn/medusa.js';
import { tiedHeads, TIED_CHECK_MAX_WORK } from '../../src/io/medusa.js';
import { medusaGenerate } from '../../src/generate/medusa.js';
import { assertClose, onBackends, randArray } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

const D = 16, V = 43;

function base(tied: boolean, seed = 5): CausalLM {
  const m = createModel({ model_type: 'llama', hidden_size: D, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: V, max_position_embeddings: 64, initializer_range: 0.5, tie_word_embeddings: tied }, 'test', { generator: new Generator(seed) });
  m.eval();
  return m;
}

/** Heads copied from the base, with random ResBlocks (the LM heads stay copies of the base head). */
function randomHeads(m: CausalLM, K: number, L: number, seed: number): MedusaHeads {
  const heads = MedusaHeads.fromBase(m, { heads: K, layers: L });
  const g = new Generator(seed);
  for (const h of heads.heads) {
    T.copyInto(h.block!.linear.weight, T.tensor(randArray(D * D, g, -0.4, 0.4), [D, D]));
    T.copyInto(h.block!.linear.bias!, T.tensor(randArray(D, g, -0.4, 0.4), [D]));
  }
  heads.eval();
  return heads;
}

/** x_L U_kᵀ in float64 from the head's weights (W, b) and U (V, D): the logits of one hidden state. */
function reference(h: ArrayLike<number>, W: ArrayLike<number>, b: ArrayLike<number>, layers: number, U: ArrayLike<number>): number[] {
  let x = Array.from(h);
  for (let j = 0; j < layers; j++) {
    const y = x.map((_, o) => { let s = b[o]; for (let i = 0; i < D; i++) s += W[o * D + i] * x[i]; return s; });
    x = x.map((v, o) => v + y[o] / (1 + Math.exp(-y[o])));
  }
  return Array.from({ length: V }, (_, v) => { let s = 0; for (let i = 0; i < D; i++) s += U[v * D + i] * x[i]; return s; });
}

test('tied heads give the untied heads\' logits (same weights) and a float64 reference; forwardMany runs several heads in one product', () => {
  for (const tiedBase of [true, false]) {
    onBackends((bk) => scope(() => {
      const m = base(tiedBase);
      const untied = randomHeads(m, 3, 2, 9), tied = randomHeads(m, 3, 2, 9).tie(m);
      try {
        assert.deepEqual([0, 1, 2].map((k) => [untied.isTied(k), tied.isTied(k)]), [[false, true], [false, true], [false, true]]);
        const U = baseHeadWeight(m).toArray();
        const hv = randArray(D, new Generator(3));
        const h = T.tensor(hv, [1, 1, D]);
        const many = tied.forwardMany(h, [0, 1, 2]).toArray();
        for (let k = 0; k < 3; k++) {
          const hd = tied.heads[k];
          const want = reference(hv, hd.block!.linear.weight.toArray(), hd.block!.linear.bias!.toArray(), 2, U);
          const a = tied.forwardHead(h, k).toArray(), b = untied.forwardHead(h, k).toArray();
          assertClose(a, want, 1e-4, 1e-4, `[${bk}, tied base ${tiedBase}] tied head ${k} vs float64`);
          assertClose(a, b, 1e-5, 1e-5, `[${bk}] tied head ${k} vs untied`);
          assertClose(many.slice(k * V, (k + 1) * V), a, 1e-5, 1e-5, `[${bk}] forwardMany row ${k}`);
        }
        // A subset, in another order; untied heads through forwardMany too.
        const sub = tied.forwardMany(h, [2, 0]);
        assert.deepEqual(sub.shape, [2, V]);
        assertClose(sub.toArray().slice(0, V), many.slice(2 * V, 3 * V), 1e-5, 1e-5, 'forwardMany [2, 0] row 0');
        assertClose(untied.forwardMany(h, [1, 2]).toArray(), many.slice(V), 1e-5, 1e-5, 'untied forwardMany');
        // Batched hidden states through forward(): the same logits as the untied heads.
        const hb = T.tensor(randArray(2 * 3 * D, new Generator(4)), [2, 3, D]);
        tied.forward(hb).forEach((l, k) => assertClose(l.toArray(), untied.forward(hb)[k].toArray(), 1e-5, 1e-5, `[${bk}] forward head ${k}`));
        assert.throws(() => tied.forwardMany(hb, [0]), /one hidden state expected/);
        assert.throws(() => tied.forwardMany(h, [3]), /head 3 outside \[0, 3\)/);
        // A tied head's own LM weight no longer trains.
        assert.deepEqual(tied.namedParameters().map(([n]) => n).filter((n) => n.includes('lm_head')), []);
      } finally {
        untied.dispose();
        tied.dispose();
        m.dispose();
      }
    }));
  }
});

test('saved tied heads keep the Medusa names and the base head\'s values; loading ties exactly the heads equal to the base head bit for bit', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-medusa-tied-'));
  const m = base(true, 7), other = base(true, 8);
  const heads = randomHeads(m, 3, 1, 11).tie(m);
  try {
    await saveMedusaHeads(heads, path.join(dir, 'tied'));
    const f = await SafetensorsFile.open(path.join(dir, 'tied', 'medusa_lm_head.safetensors'));
    try {
      assert.deepEqual(f.names.sort(), [0, 1, 2].flatMap((i) => [`${i}.0.linear.bias`, `${i}.0.linear.weight`, `${i}.1.weight`]).sort());
      const U = baseHeadWeight(m).toArray();
      for (let i = 0; i < 3; i++) assert.deepEqual(Array.from(new Float32Array((await f.read(`${i}.1.weight`)).data.slice().buffer)), U, `${i}.1.weight is the base head`);
    } finally {
      await f.close();
    }
    const h = T.tensor(randArray(D, new Generator(5)), [1, 1, D]);
    const want = scope(() => heads.forward(h).map((t) => t.toArray()));

    const back = await loadMedusaHeads(path.join(dir, 'tied'), { base: m });
    try {
      assert.deepEqual(back.tied, [0, 1, 2]);
      assert.ok([0, 1, 2].every((k) => back.heads.isTied(k)));
      scope(() => back.heads.forward(h).forEach((t, k) => assertClose(t.toArray(), want[k], 1e-6, 1e-6, `loaded tied head ${k}`)));
    } finally {
      back.heads.dispose();
    }
    // Not tied: without a base that can project, with tie: false, or against another base.
    for (const [what, o] of [['sizes only', { base: { config: m.config } }], ['tie: false', { base: m, tie: false }], ['another base', { base: other }]] as const) {
      const r = await loadMedusaHeads(path.join(dir, 'tied'), o);
      assert.deepEqual(r.tied, [], what);
      assert.ok(!r.heads.isTied(0), what);
      r.heads.dispose();
    }

    // Head 1's LM weight differs from the base head in one element's last bit: only 0 and 2 are tied,
    // and head 1 gives the logits of its own weight.
    const odd = randomHeads(m, 3, 1, 11);
    const w1 = odd.heads[1].lm_head.weight.toArray();
    const bits = new Uint32Array(new Float32Array(w1).buffer);
    const j = 5 * D + 3;
    bits[j] ^= 1;
    const w1b = Array.from(new Float32Array(bits.buffer));
    w1b[j + 1] = w1b[j + 1] + 0.75; // and one visible change, so the logits show which weight is read
    T.copyInto(odd.heads[1].lm_head.weight, T.tensor(w1b, [V, D]));
    await saveMedusaHeads(odd, path.join(dir, 'odd'));
    const r = await loadMedusaHeads(path.join(dir, 'odd'), { base: m });
    try {
      assert.deepEqual(r.tied, [0, 2]);
      const hd = r.heads.heads[1];
      const own = reference(h.toArray(), hd.block!.linear.weight.toArray(), hd.block!.linear.bias!.toArray(), 1, w1b);
      scope(() => assertClose(r.heads.forwardHead(h, 1).toArray(), own, 1e-4, 1e-4, 'head 1 reads its own LM weight'));
      scope(() => assertClose(r.heads.forwardMany(h, [0, 1, 2]).toArray().slice(V, 2 * V), own, 1e-4, 1e-4, 'forwardMany: head 1 reads its own LM weight'));
    } finally {
      r.heads.dispose();
      odd.dispose();
    }
    // Only a single last-bit change (no visible one): still not tied.
    const odd2 = randomHeads(m, 2, 1, 12);
    const b2 = new Uint32Array(new Float32Array(odd2.heads[0].lm_head.weight.toArray()).buffer);
    b2[b2.length - 1] ^= 1;
    T.copyInto(odd2.heads[0].lm_head.weight, T.tensor(Array.from(new Float32Array(b2.buffer)), [V, D]));
    await saveMedusaHeads(odd2, path.join(dir, 'odd2'));
    odd2.dispose();
    const r2 = await loadMedusaHeads(path.join(dir, 'odd2'), { base: m });
    assert.deepEqual(r2.tied, [1]);
    r2.heads.dispose();

  } finally {
    heads.dispose();
    m.dispose();
    other.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('q8_0 loading quantises a tied head\'s ResBlock but not its unused LM weight (whole Q8_0 rows)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-medusa-tied-q-'));
  const m = createModel({ model_type: 'llama', hidden_size: 64, intermediate_size: 96, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: V, max_position_embeddings: 32, tie_word_embeddings: true }, 'test', { generator: new Generator(2) });
  try {
    const heads = MedusaHeads.fromBase(m, { heads: 2, layers: 1 });
    T.copyInto(heads.heads[1].lm_head.weight, T.add(heads.heads[1].lm_head.weight, 0.5));
    await saveMedusaHeads(heads, dir);
    heads.dispose();
    const q = await loadMedusaHeads(dir, { base: m, dtype: 'q8_0' });
    try {
      assert.deepEqual(q.tied, [0]);
      const dt = Object.fromEntries(q.heads.namedTensors().map(([n, t]) => [n, t.dtype]));
      assert.deepEqual([dt['heads.0.block.linear.weight'], dt['heads.0.lm_head.weight'], dt['heads.1.lm_head.weight']], ['q8_0', 'f32', 'q8_0']);
    } finally {
      q.heads.dispose();
    }
  } finally {
    m.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('greedy Medusa decoding with tied heads is plain greedy decoding, token for token', () => {
  for (const [seed, prompt] of [[1, [3, 17, 42, 8]], [2, [5, 6]]] as [number, number[]][]) {
    const m = base(seed === 1, seed);
    const heads = randomHeads(m, 4, 1, seed + 20).tie(m);
    try {
      const want = generate(m, prompt, { maxNewTokens: 30, stopIds: [] }).ids[0];
      for (const choices of [undefined, [[0], [1], [0, 0], [0, 1], [0, 0, 0], [0, 0, 0, 0]]]) {
        const r = medusaGenerate(m, prompt, { maxNewTokens: 30, stopIds: [], medusa: { heads, choices, backoff: false } });
        assert.deepEqual(r.ids[0], want, `seed ${seed}, choices ${JSON.stringify(choices)}`);
      }
    } finally {
      heads.dispose();
      m.dispose();
    }
  }
});

test('tied-head detection reads the base head through project() only for bases up to TIED_CHECK_MAX_WORK (larger ones load untied)', () => {
  let calls = 0;
  const big = { config: { hidden_size: 4096, vocab_size: 131072 }, project: () => { calls++; throw new Error('not to be called'); } };
  assert.deepEqual(tiedHeads([new Float32Array(4)], big as never), []);
  assert.equal(calls, 0);
  assert.ok(16 * 16 * V <= TIED_CHECK_MAX_WORK);
});
