// Chain speculative decoding (draft model, prompt lookup): greedy output equal to plain greedy
// decoding token for token (several target/draft pairs, LLaMA, Qwen2 and Mamba, both backends);
// sampled output distributed as plain sampling — chi-square of the first three tokens' joint
// distribution against the target's exact distribution enumerated with full forwards (no
// decoding state); prompt lookup's HF semantics; no extra work when nothing matches; bad input.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { init, shutdown, scope, noGrad, withBackend, Tensor, Generator, createModel, loadModel, generate, DecodeStateError } from '../../src/index.js';
import type { CausalLM, DecodeState } from '../../src/index.js';
import { speculativeGenerate, SpeculativeGeneration, lookupDraft, lookupMatch, canRollBack, SpeculativeError, Temperature, TopK } from '../../src/generate/index.js';
import type { ChainSpeculativeOptions } from '../../src/generate/index.js';
import type { LogitsProcessor } from '../../src/generate/processors.js';
import { BACKENDS, fixture, fixturePath, readF32Safetensors } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

function llamaFixture(name: string): CausalLM {
  const fx = fixture<any>(`llama/${name}.json`);
  const model = createModel(fx.config);
  scope(() => model.loadStateDict(readF32Safetensors(fixturePath(`llama/${name}.safetensors`))));
  return model;
}

/** A tiny random LLaMA (vocabulary V) with logits far from uniform. */
function tiny(seed: number, V = 5): CausalLM {
  return createModel({
    model_type: 'llama', vocab_size: V, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2,
    num_key_value_heads: 1, max_position_embeddings: 32, initializer_range: 0.5, tie_word_embeddings: false, eos_token_id: null, bos_token_id: null,
  }, `tiny${seed}`, { generator: new Generator(seed) });
}

let gqa: CausalLM, mha: CausalLM, qwen: CausalLM, mamba: CausalLM;
before(async () => {
  gqa = llamaFixture('llama_gqa_untied');
  mha = llamaFixture('llama_mha_tied');
  qwen = llamaFixture('qwen2_bias');
  mamba = (await loadModel(fixturePath('mamba/tied'))).model;
});

test('lookupDraft match first follows HF prompt lookup: longest n-gram first, earliest match with a continuation, up to numDraft', () => {
  // the last 2 ids [5, 6] occurred at 1 (followed by 7, 8, 5, 6 …)
  assert.deepEqual(lookupDraft([4, 5, 6, 7, 8, 5, 6], 3, 3, 'first'), [7, 8, 5]);
  // the 3-gram [9, 5, 6] never occurred before; the 2-gram [5, 6] did
  assert.deepEqual(lookupDraft([5, 6, 1, 2, 9, 5, 6], 3, 10, 'first'), [1, 2, 9, 5, 6]);
  // the earliest match wins over a later, longer-continued one; the continuation stops at the end
  assert.deepEqual(lookupDraft([3, 1, 3, 2, 3], 1, 10, 'first'), [1, 3, 2, 3]);
  assert.deepEqual(lookupDraft([3, 1, 3, 2, 3], 2, 10, 'first'), [1, 3, 2, 3], 'n = 2 finds nothing: n = 1');
  assert.deepEqual(lookupDraft([1, 2, 3, 4], 3, 10, 'first'), [], 'no id repeats');
  assert.deepEqual(lookupDraft([7, 7], 3, 10, 'first'), [7], 'a match that ends right before the tail');
  assert.deepEqual(lookupDraft([7], 3, 10, 'first'), []);
});

test('lookupMatch: the proposal and how far the occurrence agrees with the end of the text (the n-gram and the ids before it)', () => {
  // [8, 9, 1, 2] agrees at 0 (4 ids: the 2-gram and 8, 9 before it) — lookupDraft's proposal
  assert.deepEqual(lookupMatch([8, 9, 1, 2, 4, 4, 6, 9, 1, 2, 5, 5, 8, 9, 1, 2], 2, 2), { tokens: [4, 4], context: 4 });
  // a loop: the last turn (at 10) agrees as far back as the text goes (10 ids before the 3-gram)
  const loop = [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3];
  assert.deepEqual(lookupMatch(loop, 3, 4), { tokens: [4, 5, 1, 2], context: 13 });
  assert.equal(lookupMatch([...Array(80)].map((_, i) => i % 7), 3, 2).context, 3 + 32, 'at most LOOKUP_CONTEXT ids before the n-gram');
  // 'first': the n-gram alone
  assert.deepEqual(lookupMatch([8, 9, 1, 2, 4, 4, 6, 9, 1, 2, 5, 5, 8, 9, 1, 2], 2, 2, 'first'), { tokens: [4, 4], context: 2 });
  assert.deepEqual(lookupMatch([1, 2, 3, 4], 3, 10), { tokens: [], context: 0 }, 'nothing matches');
  assert.deepEqual(lookupMatch([3, 1, 3], 1, 0), { tokens: [], context: 0 }, 'numDraft 0');
});

test('lookupDraft match longest (the default): the occurrence whose preceding ids agree longest with the text, ties to the most recent', () => {
  // a single occurrence: as HF
  assert.deepEqual(lookupDraft([4, 5, 6, 7, 8, 5, 6], 3, 3), [7, 8, 5]);
  assert.deepEqual(lookupDraft([5, 6, 1, 2, 9, 5, 6], 3, 10), [1, 2, 9, 5, 6]);
  // [3] at 0 and 2, neither preceded by what precedes the tail (2): the most recent
  assert.deepEqual(lookupDraft([3, 1, 3, 2, 3], 1, 10), [2, 3]);
  // [1, 2] at 0 (after nothing) and at 6 (after 9, as the tail is): 6, though 0 comes first
  assert.deepEqual(lookupDraft([1, 2, 5, 5, 0, 9, 1, 2, 7, 7, 0, 9, 1, 2], 2, 3), [7, 7, 0]);
  // the earlier occurrence agrees further back (8, 9 before [1, 2]) than the later one (only 9)
  assert.deepEqual(lookupDraft([8, 9, 1, 2, 4, 4, 6, 9, 1, 2, 5, 5, 8, 9, 1, 2], 2, 2), [4, 4]);
  // the n-gram size still comes first: a 2-gram match beats any 1-gram context
  assert.deepEqual(lookupDraft([5, 6, 1, 0, 0, 6, 2, 5, 6], 2, 2), [1, 0]);
  assert.deepEqual(lookupDraft([1, 2, 3, 4], 3, 10), [], 'no id repeats');
  assert.deepEqual(lookupDraft([7, 7], 3, 10), [7]);
  assert.deepEqual(lookupDraft([7], 3, 10), []);
  assert.deepEqual(lookupDraft([3, 1, 3, 2, 3], 1, 0), [], 'numDraft 0');
});

const same = (a: CausalLM, b: CausalLM, name: string) => ({ a, b, name });
test('greedy: draft-model and prompt-lookup decoding give plain greedy decoding\'s tokens (both backends)', () => {
  const pairs = [same(gqa, mha, 'llama ← llama'), same(qwen, mamba, 'qwen2 ← mamba'), same(mamba, gqa, 'mamba ← llama'), same(mha, mha, 'draft = target')];
  const prompts = [[34, 37, 20, 32, 53], [42, 16, 10, 31, 14, 42, 16, 10], [7]];
  for (const backend of BACKENDS) {
    withBackend(backend, () => {
      for (const [pi, prompt] of prompts.entries()) {
        for (const { a: target, b: draft, name } of pairs) {
          for (const extra of [{}, { repetitionPenalty: 1.3 }]) {
            const opts = { maxNewTokens: 24, stopIds: [], logprobs: true, ...extra };
            const plain = generate(target, prompt, opts);
            const what = `${backend} ${name} prompt ${pi} ${JSON.stringify(extra)}`;
            for (const spec of [{ draft, numDraft: 3 }, { draft, numDraft: 5, draftSchedule: 'heuristic' as const }, { lookup: { ngram: 2, numDraft: 4 } }, { lookup: { ngram: 2, numDraft: 4, match: 'first' as const } }]) {
              const r = speculativeGenerate(target, prompt, { ...opts, ...spec });
              assert.deepEqual(r.ids[0], plain.ids[0], `${what} ${Object.keys(spec)[0]}`);
              r.logprobs![0].forEach((lp, i) => assert.ok(Math.abs(lp - plain.logprobs![0][i]) < 1e-4, `${what}: logprob ${i}`));
              const s = r.stats.speculative;
              assert.ok(s.steps >= 1 && s.steps <= 24 && s.accepted <= s.drafted);
              assert.ok(Math.abs(s.meanAcceptedLength - 24 / (s.steps + 1)) < 1e-9, `${what}: the prefill emits a token, every step its accepted tokens + 1`);
              if (draft === target && 'draft' in spec) assert.equal(s.acceptanceRate, 1, 'a draft equal to the target is always right');
            }
          }
        }
      }
    });
  }
});

test('greedy: stop ids, stop strings, streaming and the token budget behave as in plain decoding', () => {
  const prompt = [34, 37, 20, 32, 53];
  const ref = generate(gqa, prompt, { maxNewTokens: 20, stopIds: [], repetitionPenalty: 1.3 }).ids[0];
  const tok = { decode: (ids: number[]) => ids.map((i) => String.fromCharCode(97 + (i % 26))).join('') };
  const stop = tok.decode(ref).slice(9, 11);
  for (const spec of [{ draft: mha }, { draft: gqa }, { lookup: {} }] as ChainSpeculativeOptions[]) {
    const common = { repetitionPenalty: 1.3, ...spec };
    const byId = speculativeGenerate(gqa, prompt, { ...common, maxNewTokens: 20, stopIds: [ref[6]] });
    assert.deepEqual(byId.ids[0], ref.slice(0, ref.indexOf(ref[6])));
    assert.equal(byId.finishReason[0], 'stop');
    const streamed: string[] = [];
    const ids: number[] = [];
    const s = speculativeGenerate(gqa, prompt, { ...common, maxNewTokens: 20, stopIds: [], tokenizer: tok, stopStrings: [stop], onToken: (e) => { streamed.push(e.text); if (e.id >= 0) ids.push(e.id); } });
    const plain = generate(gqa, prompt, { repetitionPenalty: 1.3, maxNewTokens: 20, stopIds: [], tokenizer: tok, stopStrings: [stop] });
    assert.equal(s.text![0], plain.text![0]);
    assert.equal(streamed.join(''), s.text![0]);
    assert.deepEqual(ids, s.ids[0], 'one event per emitted token');
    assert.equal(s.finishReason[0], 'stop');
    for (const n of [0, 1, 2, 7]) assert.deepEqual(speculativeGenerate(gqa, prompt, { ...common, maxNewTokens: n, stopIds: [] }).ids[0], ref.slice(0, n), `budget ${n}`);
  }
});

test('prompt lookup with nothing to copy: one single-token target forward per token, as plain decoding', () => {
  const calls: number[] = [];
  const counted = Object.create(gqa) as CausalLM;
  counted.forward = (ids: Tensor, state?: DecodeState | null, o?: any) => { calls.push(ids.shape[1]); return gqa.forward(ids, state, o); };
  // A huge repetition penalty: no id repeats, so no n-gram of the text occurred before.
  const opts = { maxNewTokens: 16, stopIds: [], repetitionPenalty: 1e6 };
  const prompt = [34, 37, 20, 32, 53];
  const plain = generate(gqa, prompt, opts).ids[0];
  assert.equal(new Set([...prompt, ...plain]).size, prompt.length + plain.length, 'the setting repeats no id');
  assert.ok(canRollBack(counted)); // (a probe, once per model)
  calls.length = 0;
  const r = speculativeGenerate(counted, prompt, { ...opts, lookup: {} });
  assert.deepEqual(r.ids[0], plain);
  assert.deepEqual(r.stats.speculative, { method: 'lookup', steps: 15, drafted: 0, accepted: 0, meanAcceptedLength: 1, acceptanceRate: 0 });
  // the prompt (prefill: the first token, as plain decoding), then one id per step
  assert.deepEqual(calls, [5, ...new Array(15).fill(1)]);
});

/**
 * The exact distribution of the first three generated ids (V³ cells) under temperature and
 * top-k: full forwards of prompt + prefix (no decoding state), processed as the processors define.
 */
function exactJoint(model: CausalLM, prompt: number[], temperature: number, topK: number): Float64Array {
  const V = model.config.vocab_size;
  const next = (ids: number[]): Float64Array => noGrad(() => scope(() => {
    const l = Float32Array.from(T.slice(model.forward(T.tensor([ids], [1, ids.length], 'i32')), 1, -1).toArray());
    new Temperature(temperature).process(ids, l);
    new TopK(topK).process(ids, l);
    const m = Math.max(...l), e = Array.from(l, (x) => (x === -Infinity ? 0 : Math.exp(x - m))), s = e.reduce((a, b) => a + b, 0);
    return Float64Array.from(e, (x) => x / s);
  }));
  const out = new Float64Array(V ** 3);
  const p1 = next(prompt);
  for (let a = 0; a < V; a++) {
    if (!p1[a]) continue;
    const p2 = next([...prompt, a]);
    for (let b = 0; b < V; b++) {
      if (!p2[b]) continue;
      const p3 = next([...prompt, a, b]);
      for (let c = 0; c < V; c++) out[(a * V + b) * V + c] = p1[a] * p2[b] * p3[c];
    }
  }
  return out;
}

/** Pearson's chi-square of counts against probabilities, cells with expectation < 5 pooled; and its degrees of freedom. */
function chiSquare(counts: number[], p: Float64Array, n: number): { chi2: number; df: number } {
  let chi2 = 0, cells = 0, poolO = 0, poolE = 0;
  p.forEach((pi, i) => {
    const e = pi * n;
    if (e < 5) { poolO += counts[i]; poolE += e; return; }
    chi2 += (counts[i] - e) ** 2 / e;
    cells++;
  });
  if (poolE > 0) { chi2 += (poolO - poolE) ** 2 / poolE; cells++; }
  return { chi2, df: cells - 1 };
}

/** The chi-square quantile at upper tail probability 1e-4 (Wilson–Hilferty; z = 3.719). */
function chi2Critical(df: number): number {
  const h = 2 / (9 * df);
  return df * (1 - h + 3.719 * Math.sqrt(h)) ** 3;
}

function drawJoint(target: CausalLM, prompt: number[], n: number, spec: ChainSpeculativeOptions): { counts: number[]; drafted: number; accepted: number } {
  const V = target.config.vocab_size;
  const counts = new Array(V ** 3).fill(0);
  let drafted = 0, accepted = 0;
  for (let i = 0; i < n; i++) {
    const r = speculativeGenerate(target, prompt, { maxNewTokens: 3, stopIds: [], temperature: 1.3, topK: 4, seed: 1000 + i, ...spec });
    const [a, b, c] = r.ids[0];
    counts[(a * V + b) * V + c]++;
    drafted += r.stats.speculative.drafted;
    accepted += r.stats.speculative.accepted;
  }
  return { counts, drafted, accepted };
}

test('sampling with a draft model: the first three tokens are distributed as the target\'s (chi-square)', () => {
  // Target and draft are different random models (their next-token distributions differ by
  // ~0.8 in total variation), so accepting drafts blindly, or resampling a rejected position from
  // p instead of the residual, moves the joint distribution far past the threshold.
  const target = tiny(1), draft = tiny(2), prompt = [1, 3, 0, 2], N = 4000;
  const exact = exactJoint(target, prompt, 1.3, 4);
  const { counts, drafted, accepted } = drawJoint(target, prompt, N, { draft, numDraft: 2 });
  const { chi2, df } = chiSquare(counts, exact, N);
  assert.ok(chi2 < chi2Critical(df), `chi-square ${chi2.toFixed(1)} with ${df} degrees of freedom (critical ${chi2Critical(df).toFixed(1)})`);
  assert.ok(drafted >= N && accepted > 0.1 * drafted && accepted < 0.9 * drafted, `the rule both accepts and rejects (${accepted}/${drafted})`);
  target.dispose();
  draft.dispose();
});

for (const backoff of [true, false]) {
  test(`sampling with prompt lookup (backoff ${backoff}): the first three tokens are distributed as the target's (chi-square)`, () => {
    // The prompt repeats, so lookup proposes its continuation; the proposals are often rejected.
    const target = tiny(3), prompt = [1, 3, 0, 2, 4, 1, 3], N = 3000;
    const exact = exactJoint(target, prompt, 1.3, 4);
    // (minContext 1: the 2-gram's copy is proposed although sampling's default asks for 3 tokens of agreement.)
    const { counts, drafted, accepted } = drawJoint(target, prompt, N, { lookup: { ngram: 2, numDraft: 2, backoff, minContext: 1 } });
    const { chi2, df } = chiSquare(counts, exact, N);
    assert.ok(chi2 < chi2Critical(df), `chi-square ${chi2.toFixed(1)} with ${df} degrees of freedom (critical ${chi2Critical(df).toFixed(1)})`);
    assert.ok(drafted >= N / 2 && accepted > 0.1 * drafted && accepted < 0.9 * drafted, `the rule both accepts and rejects (${accepted}/${drafted})`);
    target.dispose();
  });
}

test('prompt lookup proposes from short matches greedy, and when sampling only from matches of lookup.minContext tokens (default 3)', () => {
  // The first generated id is forced to 7 (the prefill's token): the text then ends in 7, which
  // occurred once before, after 6 (the id before the end is 9): one token of agreement.
  const prompt = [6, 7, 8, 5, 9];
  const force = (at: number): LogitsProcessor => ({ process: (ids: number[], l: Float32Array) => { if (ids.length === at) { l.fill(-Infinity); l[7] = 0; } } });
  const drafted = (p: number[], o: object, lookup: object = {}) =>
    speculativeGenerate(gqa, p, { maxNewTokens: 3, stopIds: [], processors: [force(p.length)], ...o, lookup }).stats.speculative.drafted;
  assert.deepEqual(lookupMatch([...prompt, 7], 3, 1), { tokens: [8], context: 1 });
  assert.equal(drafted(prompt, {}), 1, 'greedy: the copy of a 1-token match');
  assert.equal(drafted(prompt, {}, { minContext: 2 }), 0, 'greedy with minContext 2');
  assert.equal(drafted(prompt, { temperature: 0.7, seed: 1 }), 0, 'sampling: no copy of a 1-token match');
  assert.equal(drafted(prompt, { temperature: 0.7, seed: 1 }, { minContext: 1 }), 1, 'sampling with minContext 1');
  // Three tokens of agreement ([5, 9, 7] occurred before): sampling proposes by default.
  const p3 = [5, 9, 7, 8, 1, 5, 9];
  assert.equal(lookupMatch([...p3, 7], 3, 1).context, 3);
  assert.equal(drafted(p3, { temperature: 0.7, seed: 1 }), 1);
  assert.throws(() => speculativeGenerate(gqa, prompt, { maxNewTokens: 3, lookup: { minContext: 0 } }), /lookup.minContext must be a positive integer, got 0/);
});

test('prompt lookup backs off after rejected proposals (and HF behaviour without backoff)', () => {
  // Hot sampling: the copied continuations are mostly rejected.
  const prompt = [42, 16, 10, 31, 14, 42, 16, 10, 31, 14, 42, 16];
  const opts = { maxNewTokens: 40, stopIds: [], temperature: 3, seed: 2 };
  // (minContext 1: every match proposes, as HF's prompt lookup; the back-off alone cuts them.)
  const on = speculativeGenerate(gqa, prompt, { ...opts, lookup: { minContext: 1 } }).stats.speculative;
  const off = speculativeGenerate(gqa, prompt, { ...opts, lookup: { backoff: false, minContext: 1 } }).stats.speculative;
  assert.ok(off.acceptanceRate < 0.3, `mostly rejected (${off.accepted}/${off.drafted})`);
  assert.ok(on.drafted < off.drafted / 2, `backoff proposes less: ${on.drafted} vs ${off.drafted}`);
});

/** A model whose decoding states cannot roll back (as a family without snapshots would). */
function noRollback(model: CausalLM): CausalLM {
  const m = Object.create(model) as CausalLM;
  m.newState = (batch: number, maxLength?: number) => {
    const s = model.newState(batch, maxLength);
    return new Proxy(s, {
      get(t, k) {
        if (k === 'truncate') return (n: number) => { if (n !== t.length) throw new DecodeStateError('test state: cannot roll back'); };
        const v = Reflect.get(t, k, t);
        return typeof v === 'function' ? v.bind(t) : v;
      },
    });
  };
  return m;
}

test('bad input: clear errors before decoding; a target that cannot roll back decodes plainly and says so', () => {
  const prompt = [34, 37, 20];
  const small = tiny(4, 5);
  assert.throws(() => speculativeGenerate(gqa, prompt, { draft: small }), (e: Error) => e instanceof SpeculativeError && /draft model's vocabulary \(vocab_size 5, llama\) differs from the target's \(vocab_size 64/.test(e.message));
  assert.throws(() => speculativeGenerate(gqa, [prompt, prompt], { lookup: {} }), /one prompt at a time, got a batch of 2/);
  assert.throws(() => speculativeGenerate(gqa, prompt, { lookup: {}, draft: mha }), /not both/);
  assert.throws(() => speculativeGenerate(gqa, prompt, {}), /give a draft model/);
  assert.throws(() => speculativeGenerate(gqa, prompt, { draft: mha, numDraft: 0 }), /numDraft must be a positive integer, got 0/);
  assert.throws(() => speculativeGenerate(gqa, prompt, { lookup: { ngram: 1.5 } }), /lookup.ngram must be a positive integer/);
  assert.throws(() => speculativeGenerate(gqa, prompt, { lookup: { match: 'last' as 'first' } }), /lookup.match must be 'longest' or 'first'/);
  assert.throws(() => speculativeGenerate(gqa, prompt, { draft: noRollback(mha) }), /draft model's decoding state \(llama\) cannot roll back/);
  const plain = generate(gqa, prompt, { maxNewTokens: 10, stopIds: [] });
  const r = speculativeGenerate(noRollback(gqa), prompt, { maxNewTokens: 10, stopIds: [], draft: mha });
  assert.deepEqual(r.ids[0], plain.ids[0]);
  assert.match(r.stats.speculative.fallback ?? '', /cannot roll back: decoded plainly/);
  assert.equal(r.stats.speculative.steps, 9, 'the first token from the prefill, then one per step');
  assert.equal(r.stats.speculative.meanAcceptedLength, 1);
  small.dispose();
});

test('SpeculativeGeneration steps one target forward at a time (for a server) and can be cancelled', () => {
  const prompt = [42, 16, 10, 31, 14, 42, 16, 10];
  const opts = { maxNewTokens: 20, stopIds: [], lookup: {} };
  const whole = speculativeGenerate(gqa, prompt, opts);
  const g = new SpeculativeGeneration(gqa, prompt, opts);
  assert.equal(g.step(), true, 'the prefill');
  assert.equal(g.sequences[0].out.length, 1, 'the prefill gives the first token');
  const lengths: number[] = [];
  while (g.step()) lengths.push(g.sequences[0].out.length);
  lengths.push(g.sequences[0].out.length);
  lengths.forEach((n, i) => assert.ok(n > (i ? lengths[i - 1] : 1), 'each step emits at least one token'));
  assert.deepEqual(g.result().ids, whole.ids);
  assert.equal(g.result().stats.speculative.steps, lengths.length);
  const c = new SpeculativeGeneration(gqa, prompt, { ...opts, draft: mha, lookup: undefined });
  c.step();
  c.step();
  c.cancel();
  assert.equal(c.step(), false);
  const part = c.result();
  assert.ok(part.ids[0].length >= 1 && part.ids[0].length <= 5);
  assert.deepEqual(part.ids[0], whole.ids[0].slice(0, part.ids[0].length));
});
