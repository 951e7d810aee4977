// Medusa tree decoding (src/generate/medusa.ts):
//   - medusa_choices arranged as the Medusa repo's buffers are (sorted by depth then index,
//     ancestor mask) and malformed ones refused naming the entry;
//   - greedy output equals plain greedy generate() token for token, whatever the heads guess:
//     random heads (few accepted), and oracle heads that know plain greedy's continuation and
//     put the right token first (every step accepts the deepest path: 5 tokens per step) or
//     second (the [1, 0] branch: compact keeps a path that is not the first);
//   - sampling with exact acceptance keeps plain sampling's distribution (chi-square against the
//     enumerated distribution of the first three tokens);
//   - typical acceptance follows its threshold;
//   - models without tree attention and prompts near the end of the context.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { init, shutdown, noGrad, scope, Tensor, generate, createModel, Linear } from '../../src/index.js';
import type { CausalLM } from '../../src/models/causal.js';
import { medusaGenerate, buildMedusaTree, MedusaChoicesError, DEFAULT_MEDUSA_CHOICES } from '../../src/generate/medusa.js';
import type { MedusaHeadsLike } from '../../src/generate/medusa.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

const V = 61;
function tiny(seed: number, over: Record<string, unknown> = {}): CausalLM {
  const m = createModel({ model_type: 'llama', vocab_size: V, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 96, initializer_range: 0.5, tie_word_embeddings: false, ...over }, 'tiny', { generator: new T.Generator(seed) });
  m.eval();
  return m;
}

/** Heads that are random linear maps of the hidden state. */
function randomHeads(K: number, D: number, seed: number): MedusaHeadsLike {
  const g = new T.Generator(seed);
  const ls = Array.from({ length: K }, () => new Linear(D, V, { bias: false, generator: g, std: 1 }));
  return { numHeads: K, forward: (h: Tensor) => ls.map((l) => l.forward(h)) };
}

/**
 * Heads that know the continuation `cont` (plain greedy's) and put its token first, or for head
 * 0 `rank`-th: they
 * count the tokens emitted so far through onToken. After the prefill nothing is emitted and the
 * base model's next token is cont[0], so head d guesses cont[1 + d]; after a step the pending
 * token cont[e − 1] is emitted already, so head d guesses cont[e + d].
 */
function oracle(K: number, cont: number[], rank: number): { heads: MedusaHeadsLike; onToken: (ev: { id: number }) => void } {
  let emitted = 0, calls = 0;
  const heads: MedusaHeadsLike = {
    numHeads: K,
    forward: (h: Tensor) => {
      const first = calls++ === 0;
      return Array.from({ length: K }, (_, d) => {
        const want = cont[(first ? 1 : emitted) + d];
        const row = new Float32Array(V).map((_, i) => -i * 0.01); // token 0 first, 1 second, …
        if (want !== undefined) {
          // head 0 puts the right token rank-th, the other heads first
          const other = want === 0 ? 1 : 0;
          row[want] = rank === 0 || d > 0 ? 10 : 5;
          if (rank === 1 && d === 0) row[other] = 10;
        }
        return T.tensor(row, [1, 1, V]);
      });
    },
  };
  return { heads, onToken: (ev) => { if (ev.id >= 0) emitted++; } };
}

test('medusa_choices: the tree in the Medusa repo\'s order, with its ancestor mask; malformed choices name the entry', () => {
  const t = buildMedusaTree([[1], [0, 0], [0], [0, 1], [0, 0, 0]], 4, V);
  assert.deepEqual(t.choices, [[0], [1], [0, 0], [0, 1], [0, 0, 0]]);
  assert.deepEqual([...t.parent], [-1, 0, 0, 1, 1, 3]);
  assert.deepEqual([...t.depth], [0, 1, 1, 2, 2, 3]);
  assert.deepEqual([...t.head], [-1, 0, 0, 1, 1, 2]);
  assert.deepEqual([...t.rank], [0, 0, 1, 0, 1, 0]);
  assert.deepEqual(t.topk, [2, 2, 1, 0]);
  assert.equal(t.maxDepth, 3);
  const row = (i: number) => [...t.mask.subarray(i * 6, i * 6 + 6)];
  assert.deepEqual(row(5), [1, 1, 0, 1, 0, 1]);
  assert.deepEqual(row(2), [1, 0, 1, 0, 0, 0]);
  const bad = (c: unknown, re: RegExp) => assert.throws(() => buildMedusaTree(c as number[][], 3, V), (e: unknown) => e instanceof MedusaChoicesError && re.test((e as Error).message));
  bad([], /non-empty list/);
  bad([[0], [1, 0]], /medusa_choices\[1\] = \[1, 0\]: its parent \[1\] is not in the tree/);
  bad([[0], [0]], /medusa_choices\[1\] = \[0\]: a duplicate of medusa_choices\[0\]/);
  bad([[0], [0, 0], [0, 0, 0], [0, 0, 0, 0]], /length 4 needs 4 heads, the model has 3/);
  bad([[0], [-1]], /-1 is not a non-negative integer/);
  bad([[0], []], /non-empty list of top-k indices/);
  bad([[V]], /top-62 of a vocabulary of 61/);
  // the default tree is valid and cut to the heads there are
  assert.equal(buildMedusaTree(DEFAULT_MEDUSA_CHOICES, 4, V).size, DEFAULT_MEDUSA_CHOICES.length + 1);
});

test('greedy Medusa decoding is plain greedy decoding, token for token (random heads, oracle heads at rank 0 and 1)', () => {
  for (const [seed, prompt] of [[1, [3, 17, 42, 8]], [2, [5]], [3, [60, 1, 2, 3, 4, 5, 6, 7, 9, 11]]] as [number, number[]][]) {
    const m = tiny(seed);
    const want = generate(m, prompt, { maxNewTokens: 40, stopIds: [] }).ids[0];
    assert.equal(want.length, 40);
    const rnd = medusaGenerate(m, prompt, { maxNewTokens: 40, stopIds: [], medusa: { heads: randomHeads(4, 32, seed) } });
    assert.deepEqual(rnd.ids[0], want, `seed ${seed}: random heads`);
    assert.ok(rnd.stats.speculative.steps <= 40);
    // the library's generate() with GenerateOptions.speculative
    const viaGenerate = generate(m, prompt, { maxNewTokens: 40, stopIds: [], speculative: { medusa: { heads: randomHeads(4, 32, seed) } } });
    assert.deepEqual(viaGenerate.ids[0], want);
    assert.equal(viaGenerate.stats.speculative?.method, 'medusa');
    for (const rank of [0, 1]) {
      const o = oracle(4, want, rank);
      const r = medusaGenerate(m, prompt, { maxNewTokens: 40, stopIds: [], onToken: o.onToken, medusa: { heads: o.heads, choices: [[0], [1], [0, 0], [1, 0], [0, 0, 0], [0, 0, 0, 0]] } });
      assert.deepEqual(r.ids[0], want, `seed ${seed}: oracle heads, rank ${rank}`);
      const s = r.stats.speculative;
      // rank 0: the path [0, 0, 0, 0] every step (5 tokens); rank 1: [1, 0] (3 tokens); the first token comes from the prefill
      const perStep = rank === 0 ? 5 : 3;
      assert.equal(s.steps, Math.ceil((40 - 1) / perStep), `seed ${seed} rank ${rank}: steps`);
      assert.ok(Math.abs(s.meanAcceptedLength - 40 / (s.steps + 1)) < 1e-9);
      assert.ok(s.accepted >= (perStep - 1) * (s.steps - 1), `seed ${seed} rank ${rank}: every step but the last accepts ${perStep - 1} (${s.accepted} in ${s.steps})`);
    }
    m.dispose();
  }
});

/**
 * A model whose greedy next token is perm[current token] (a cycle of `period` tokens through the
 * vocabulary): attention and MLP outputs scaled down to a small perturbation, the LM head's row
 * perm[x] set to the embedding of x. Its greedy text loops, so prompt lookup's copies are right.
 */
function looper(seed: number, period: number): CausalLM {
  const m = tiny(seed);
  const perm = Array.from({ length: V }, (_, x) => x);
  for (let i = 0; i < period; i++) perm[i] = (i + 1) % period; // 0 → 1 → … → period − 1 → 0
  noGrad(() => {
    for (const [name, t] of m.namedParameters()) {
      if (/o_proj|down_proj/.test(name)) T.copyInto(t, T.tensor((t.data() as Float32Array).map((v) => v * 1e-3), t.shape));
    }
    const params = new Map(m.namedParameters());
    const e = params.get('model.embed_tokens.weight')!.data() as Float32Array, D = 32;
    const head = new Float32Array(V * D);
    for (let x = 0; x < V; x++) head.set(e.subarray(x * D, x * D + D), perm[x] * D);
    T.copyInto(params.get('lm_head.weight')!, T.tensor(head, [V, D]));
  });
  return m;
}

test('Medusa with prompt lookup\'s copies (medusa.lookup): plain greedy output; a looping text is copied in chains longer than the heads\' tree, the heads skipped for them', () => {
  for (const [seed, period, prompt] of [[1, 7, [3, 40, 2]], [2, 8, [50, 51, 0]], [3, 11, [9]]] as [number, number, number[]][]) {
    const m = looper(seed, period);
    const want = generate(m, prompt, { maxNewTokens: 40, stopIds: [] }).ids[0];
    assert.deepEqual(want.slice(period, 2 * period), want.slice(0, period), `seed ${seed}: the text loops`);
    let calls = 0;
    const inner = randomHeads(3, 32, seed);
    const heads: MedusaHeadsLike = { numHeads: 3, forward: (h: Tensor) => { calls++; return inner.forward(h); } };
    const alone = medusaGenerate(m, prompt, { maxNewTokens: 40, stopIds: [], medusa: { heads } });
    assert.deepEqual(alone.ids[0], want);
    const aloneCalls = calls;
    calls = 0;
    const r = medusaGenerate(m, prompt, { maxNewTokens: 40, stopIds: [], medusa: { heads, lookup: {} } });
    assert.deepEqual(r.ids[0], want, `seed ${seed}: plain greedy`);
    const s = r.stats.speculative;
    assert.ok(calls < aloneCalls && calls < s.steps && s.steps < alone.stats.speculative.steps, `seed ${seed}: the heads skipped for copies (${calls} calls in ${s.steps} steps; alone ${aloneCalls} in ${alone.stats.speculative.steps})`);
    // a prompt that has gone round the loop twice: every step copies 7 tokens (a loop of at least
    // 7: the copy ends where the text does) and accepts them (8
    // tokens a call, the first from the prefill), and the heads run only at the prefill
    const looped = [...prompt, ...want.slice(0, 2 * period)];
    const want2 = generate(m, looped, { maxNewTokens: 40, stopIds: [] }).ids[0];
    calls = 0;
    const r2 = medusaGenerate(m, looped, { maxNewTokens: 40, stopIds: [], medusa: { heads, lookup: {} } });
    assert.deepEqual(r2.ids[0], want2);
    assert.equal(r2.stats.speculative.steps, Math.ceil(39 / 8), `seed ${seed}: 8 tokens a call`);
    assert.equal(r2.stats.speculative.accepted, 39 - r2.stats.speculative.steps);
    assert.equal(calls, 1, 'the heads ran at the prefill only');
    // an agreement no match reaches (the n-gram and 32 ids before it): Medusa alone, step for step
    calls = 0;
    const never = medusaGenerate(m, prompt, { maxNewTokens: 40, stopIds: [], medusa: { heads, lookup: { minContext: 36 } } });
    assert.deepEqual(never.ids[0], want);
    assert.equal(never.stats.speculative.steps, alone.stats.speculative.steps);
    assert.equal(calls, aloneCalls);
    // short copies, copies at any agreement, and generate() with medusa and lookup together
    for (const lookup of [{ numDraft: 2, ngram: 1 }, { minContext: 1 }]) {
      assert.deepEqual(medusaGenerate(m, prompt, { maxNewTokens: 40, stopIds: [], medusa: { heads, lookup } }).ids[0], want, `seed ${seed}: ${JSON.stringify(lookup)}`);
    }
    const viaGenerate = generate(m, prompt, { maxNewTokens: 40, stopIds: [], speculative: { medusa: { heads }, lookup: {} } });
    assert.deepEqual(viaGenerate.ids[0], want);
    assert.equal(viaGenerate.stats.speculative?.method, 'medusa');
    assert.equal(viaGenerate.stats.speculative?.steps, s.steps);
    calls = 0;
    m.dispose();
  }
  // a random model (copies mostly wrong), the end of the context and the token budget
  const m = tiny(4, { max_position_embeddings: 24 });
  const heads = randomHeads(3, 32, 2);
  const plain = generate(m, [7, 7, 3], { maxNewTokens: 100, stopIds: [] }).ids[0];
  assert.deepEqual(medusaGenerate(m, [7, 7, 3], { maxNewTokens: 100, stopIds: [], medusa: { heads, lookup: { minContext: 1 } } }).ids[0], plain);
  assert.deepEqual(medusaGenerate(m, [7, 7, 3], { maxNewTokens: 9, stopIds: [], medusa: { heads, lookup: { minContext: 1 } } }).ids[0], plain.slice(0, 9));
  assert.throws(() => medusaGenerate(m, [1, 2], { medusa: { heads, lookup: { minContext: 0 } } }), /medusa.lookup.minContext must be a positive integer, got 0/);
  m.dispose();
  // a looping text with a stop id inside the loop
  const l = looper(1, 7);
  const stopWant = generate(l, [3], { maxNewTokens: 40, stopIds: [2] });
  const stopped = medusaGenerate(l, [3], { maxNewTokens: 40, stopIds: [2], medusa: { heads: randomHeads(3, 32, 1), lookup: { minContext: 1 } } });
  assert.deepEqual(stopped.ids[0], stopWant.ids[0]);
  assert.deepEqual(stopped.finishReason, stopWant.finishReason);
  l.dispose();
});

test('confidence cut: the heads run in depth order until the product of their top-1 probabilities falls below it; the tree ends there; output unchanged', () => {
  const m = tiny(4), prompt = [3, 17, 42, 8];
  const want = generate(m, prompt, { maxNewTokens: 40, stopIds: [] }).ids[0];
  // Oracle heads one by one (forwardHead): heads 0 and 1 sure of the right token (p ≈ 0.997),
  // head 2 right but unsure (p ≈ 0.03), head 3 sure.
  let emitted = 0, firstCall = true;
  const calls = [0, 0, 0, 0];
  const forwardHead = (_h: Tensor, d: number): Tensor => {
    calls[d]++;
    const want0 = cont(d);
    const row = new Float32Array(V).map((_, i) => -i * 0.01);
    if (want0 !== undefined) row[want0] = d === 2 ? 0.5 : 10;
    return T.tensor(row, [1, 1, V]);
  };
  const cont = (d: number) => want[(firstCall ? 1 : emitted) + d];
  const heads: MedusaHeadsLike = {
    numHeads: 4,
    forward: (h: Tensor) => [0, 1, 2, 3].map((d) => forwardHead(h, d)),
    forwardHead: (h: Tensor, d: number) => { const t = forwardHead(h, d); if (d === 3 || (d === 2 && cut > 0)) firstCall = false; return t; },
  };
  let cut = 0;
  const run = (c: number) => {
    cut = c; emitted = 0; firstCall = true; calls.fill(0);
    const r = medusaGenerate(m, prompt, { maxNewTokens: 40, stopIds: [], onToken: (ev) => { if (ev.id >= 0) emitted++; }, medusa: { heads, cut: c, choices: [[0], [0, 0], [0, 0, 0], [0, 0, 0, 0]] } });
    assert.deepEqual(r.ids[0], want, `cut ${c}`);
    return r.stats.speculative;
  };
  const whole = run(0);
  assert.equal(whole.steps, Math.ceil(39 / 5), 'no cut: the chain of 4, 5 tokens per step');
  assert.ok(calls[3] > 0);
  const cutRun = run(0.5);
  assert.equal(cutRun.steps, Math.ceil(39 / 3), 'cut below head 2: chains of 2, 3 tokens per step');
  assert.equal(calls[3], 0, 'head 3 never runs');
  assert.ok(calls[2] > 0);
  assert.throws(() => medusaGenerate(m, prompt, { medusa: { heads, cut: 2 } }), /medusa.cut must be a number in \[0, 1\]/);
  m.dispose();
});

test('greedy Medusa decoding on other members of the LLaMA family (Qwen2 with q/k/v biases, a Mixtral MoE): plain greedy, token for token', () => {
  for (const over of [{ model_type: 'qwen2' }, { model_type: 'mixtral', num_local_experts: 4, num_experts_per_tok: 2, intermediate_size: 24 }]) {
    const m = tiny(9, over);
    const prompt = [7, 30, 2, 51];
    const want = generate(m, prompt, { maxNewTokens: 30, stopIds: [] }).ids[0];
    const o = oracle(4, want, 0);
    for (const [heads, onToken] of [[randomHeads(4, 32, 2), undefined], [o.heads, o.onToken]] as const) {
      const r = medusaGenerate(m, prompt, { maxNewTokens: 30, stopIds: [], onToken, medusa: { heads, choices: [[0], [1], [0, 0], [1, 0], [0, 0, 0]] } });
      assert.deepEqual(r.ids[0], want, `${over.model_type}`);
      if (heads === o.heads) assert.ok(r.stats.speculative.meanAcceptedLength > 3, `${over.model_type}: the oracle's chain is accepted (${r.stats.speculative.meanAcceptedLength})`);
    }
    m.dispose();
  }
});

test('stop ids, the token budget and the end of the context', () => {
  const m = tiny(4, { max_position_embeddings: 24 });
  const prompt = [7, 7, 3];
  const plain = generate(m, prompt, { maxNewTokens: 100, stopIds: [] }).ids[0];
  assert.equal(plain.length, 21, 'plain decoding fills the context');
  const o = oracle(4, plain, 0);
  const r = medusaGenerate(m, prompt, { maxNewTokens: 100, stopIds: [], onToken: o.onToken, medusa: { heads: o.heads } });
  assert.deepEqual(r.ids[0], plain, 'the tree shrinks where the context ends');
  const stop = plain[6];
  const wantStop = generate(m, prompt, { maxNewTokens: 100, stopIds: [stop] });
  const o2 = oracle(4, plain, 0);
  const r2 = medusaGenerate(m, prompt, { maxNewTokens: 100, stopIds: [stop], onToken: o2.onToken, medusa: { heads: o2.heads } });
  assert.deepEqual(r2.ids[0], wantStop.ids[0]);
  assert.deepEqual(r2.finishReason, ['stop']);
  const r3 = medusaGenerate(m, prompt, { maxNewTokens: 7, stopIds: [], medusa: { heads: randomHeads(4, 32, 9) } });
  assert.deepEqual(r3.ids[0], plain.slice(0, 7));
  m.dispose();
});

test('sampling with exact acceptance keeps the distribution of plain sampling, with and without lookup copies (chi-square on the first three tokens)', () => {
  // A tiny vocabulary so that every triple of first tokens can be enumerated (the third is the
  // first drawn at a tree node that was accepted, or not).
  const Vs = 4;
  const m = createModel({ model_type: 'llama', vocab_size: Vs, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 16, initializer_range: 0.6, tie_word_embeddings: false }, 't', { generator: new T.Generator(8) });
  m.eval();
  const prompt = [1, 3], temp = 1.3;
  const probs = (seq: number[]): number[] => noGrad(() => scope(() => {
    const lg = m.forward(T.tensor([seq], undefined, 'i32')).data().slice((seq.length - 1) * Vs) as Float32Array;
    const z = lg.map((v) => v / temp), mx = Math.max(...z), e = [...z].map((v) => Math.exp(v - mx)), s = e.reduce((a, b) => a + b);
    return e.map((v) => v / s);
  }));
  const p1 = probs(prompt), expect: number[] = [];
  for (let a = 0; a < Vs; a++) {
    const p2 = probs([...prompt, a]);
    for (let b = 0; b < Vs; b++) { const p3 = probs([...prompt, a, b]); for (let c = 0; c < Vs; c++) expect.push(p1[a] * p2[b] * p3[c]); }
  }
  // Heads whose guesses are confident and often wrong: accepted only when the draw agrees.
  const g = new T.Generator(3);
  const heads: MedusaHeadsLike = { numHeads: 2, forward: () => [0, 1].map(() => T.tensor(Array.from({ length: Vs }, () => g.int(5)), [1, 1, Vs])) };
  // The heads alone, then with prompt lookup's copies at any agreement (ngram 1: [1, 3, a] copies when a is 1 or 3).
  const draftedBy: number[] = [];
  for (const lookup of [undefined, { ngram: 1, minContext: 1, numDraft: 2 }]) {
    const N = 3000, counts = new Array(Vs ** 3).fill(0);
    let accepted = 0, drafted = 0;
    for (let i = 0; i < N; i++) {
      const r = medusaGenerate(m, prompt, { maxNewTokens: 3, temperature: temp, seed: i + 1, stopIds: [], medusa: { heads, choices: [[0], [1], [0, 0]], lookup } });
      const [a, b, c] = r.ids[0];
      counts[(a * Vs + b) * Vs + c]++;
      accepted += r.stats.speculative.accepted;
      drafted += r.stats.speculative.drafted;
    }
    let chi2 = 0, dof = -1;
    // pool cells expected below 5 draws
    let poolO = 0, poolE = 0;
    expect.forEach((p, c) => { const e = p * N; if (e < 5) { poolO += counts[c]; poolE += e; } else { chi2 += (counts[c] - e) ** 2 / e; dof++; } });
    if (poolE > 0) { chi2 += (poolO - poolE) ** 2 / poolE; dof++; }
    // 99.9th percentile of chi-square: ≈ dof + 3.1·√(2·dof) + 5 (conservative for dof 10–40)
    const limit = dof + 3.1 * Math.sqrt(2 * dof) + 5;
    const what = lookup ? 'with lookup copies' : 'heads alone';
    assert.ok(chi2 < limit, `${what}: chi-square ${chi2.toFixed(1)} ≥ ${limit.toFixed(1)} (dof ${dof})`);
    assert.ok(accepted > N * 0.05, `${what}: candidates were accepted (${accepted}), so the test exercises acceptance`);
    draftedBy.push(drafted);
  }
  // a copy here is one token (the budget leaves room for one) where the tree drafts 2: copies were verified
  assert.ok(draftedBy[1] < draftedBy[0], `copies were proposed (${draftedBy[1]} drafted against ${draftedBy[0]})`);
  m.dispose();
});

test('typical acceptance: threshold 0 accepts down the deepest path, an unreachable one accepts nothing; greedy is refused', () => {
  const m = tiny(6);
  const heads = randomHeads(3, 32, 4);
  const all = medusaGenerate(m, [2, 9], { maxNewTokens: 30, temperature: 0.8, seed: 5, stopIds: [], medusa: { heads, acceptance: 'typical', posteriorThreshold: 0, posteriorAlpha: 0 } });
  // probability > 0 always holds: every step takes a path of the tree's full depth (3) + its own token
  assert.equal(all.ids[0].length, 30);
  assert.equal(all.stats.speculative.steps, 8, '1 token from the prefill, then 4 per step');
  assert.equal(all.stats.speculative.meanAcceptedLength, 30 / 9);
  const none = medusaGenerate(m, [2, 9], { maxNewTokens: 30, temperature: 0.8, seed: 5, stopIds: [], medusa: { heads, acceptance: 'typical', posteriorThreshold: 1, posteriorAlpha: 1e9 } });
  assert.equal(none.stats.speculative.accepted, 0);
  assert.equal(none.stats.speculative.steps, 29, 'the first token comes from the prefill, then one per step');
  // back-off: after a tree with nothing accepted, 1, 3, 7, 15 plain steps; without it a tree every step
  const trees = (backoff: boolean) => {
    const orig = m.hidden.bind(m);
    let n = 0;
    m.hidden = (ids, st, o) => { if (o?.tree) n++; return orig(ids, st, o); };
    try {
      const r = medusaGenerate(m, [2, 9], { maxNewTokens: 30, temperature: 0.8, seed: 5, stopIds: [], medusa: { heads, acceptance: 'typical', posteriorThreshold: 1, posteriorAlpha: 1e9, backoff } });
      assert.deepEqual(r.ids[0], none.ids[0], 'plain steps draw as the trees would: the same tokens');
    } finally {
      m.hidden = orig;
    }
    return n;
  };
  assert.equal(trees(true), 4, 'trees at steps 1, 3, 7 and 15 (of 29)');
  assert.equal(trees(false), 29);
  assert.throws(() => medusaGenerate(m, [2, 9], { medusa: { heads, acceptance: 'typical' } }), /temperature > 0/);
  m.dispose();
});

test('back-off when sampling: a tree that accepts one token is not working, one that accepts two is', () => {
  const m = tiny(6);
  const heads = randomHeads(3, 32, 4);
  // Threshold 0: typical acceptance takes every candidate, so a tree accepts its full depth.
  const run = (choices: number[][]) => {
    const orig = m.hidden.bind(m);
    let trees = 0;
    m.hidden = (ids, st, o) => { if (o?.tree) trees++; return orig(ids, st, o); };
    try {
      const r = medusaGenerate(m, [2, 9], { maxNewTokens: 40, temperature: 0.8, seed: 5, stopIds: [], medusa: { heads, choices, acceptance: 'typical', posteriorThreshold: 0, posteriorAlpha: 0 } });
      return { trees, ...r.stats.speculative };
    } finally {
      m.hidden = orig;
    }
  };
  const one = run([[0]]), two = run([[0], [0, 0]]);
  assert.equal(one.accepted, one.trees, 'depth 1: one token accepted per tree');
  assert.equal(one.trees, 5, 'one token per tree: backed off (1, 3, 7, then 15 plain steps after each tree: 5 trees in 40 tokens)');
  assert.equal(two.accepted, 2 * two.trees, 'depth 2: two tokens per tree');
  assert.equal(two.trees, two.steps, 'two tokens per tree: a tree every step');
  m.dispose();
});

test('generate() with speculative options: one prompt, one method', () => {
  const m = tiny(7), heads = randomHeads(2, 32, 1);
  assert.throws(() => generate(m, [[1, 2], [3, 4]], { speculative: { medusa: { heads } } }), /one prompt at a time, got 2/);
  assert.equal(generate(m, [[1, 2]], { maxNewTokens: 3, speculative: { medusa: { heads } } }).ids[0].length, 3);
  m.dispose();
});

test('a model without tree attention is refused before decoding', () => {
  const m = createModel({ model_type: 'mamba', vocab_size: V, hidden_size: 16, state_size: 4, num_hidden_layers: 1 }, 'mamba', { generator: new T.Generator(2) });
  assert.throws(() => medusaGenerate(m, [1, 2], { medusa: { heads: randomHeads(2, 16, 1) } }), /needs tree attention, which model_type "mamba" does not have/);
  m.dispose();
});
