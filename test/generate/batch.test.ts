// Continuous batching (DecodeBatch): requests that join a running batch at different times (with
// longer prompts than the batch so far, several sequences per request, left padding inside a
// request), leave it early (stop ids, cancel), and outlive the cache (shift left) produce the
// same tokens as generate() run alone, with log-probabilities equal to 1e-4. The reference is the
// PyTorch-checked fixture model.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { init, shutdown, generate, heapStats } from '../../src/index.js';
import { DecodeBatch } from '../../src/generate/batch.js';
import type { BatchedRequest } from '../../src/generate/batch.js';
import type { GenerateOptions } from '../../src/generate/generate.js';
import { modelFromBytes } from '../../src/io/hf_bytes.js';
import type { CausalLM } from '../../src/models/causal.js';
import type { LlamaForCausalLM } from '../../src/models/llama.js';
import { BACKENDS, fixture, fixturePath } from '../helpers.js';
import { withBackend } from '../../src/backend/index.js';

let model: CausalLM;
before(async () => {
  await init({ threads: 2 });
  const fx = fixture<{ config: Record<string, unknown> }>('llama/llama_gqa_untied.json');
  model = modelFromBytes(fx.config, readFileSync(fixturePath('llama/llama_gqa_untied.safetensors')));
  model.eval();
});
after(async () => { model.dispose(); await shutdown(); });

function prompt(seed: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => 3 + ((seed * 17 + i * 5) % 60));
}

function checkSame(req: BatchedRequest, prompts: number[][], opts: GenerateOptions, what: string): void {
  const got = req.result();
  const want = generate(model, prompts, { ...opts, logprobs: true });
  assert.deepEqual(got.ids, want.ids, `${what}: ids`);
  assert.deepEqual(got.finishReason, want.finishReason, `${what}: finish reasons`);
  got.logprobs!.forEach((row, b) => row.forEach((lp, i) => assert.ok(Math.abs(lp - want.logprobs![b][i]) < 1e-4, `${what}: logprob ${b}/${i} ${lp} vs ${want.logprobs![b][i]}`)));
}

for (const backend of BACKENDS) {
  test(`[${backend}] requests joining and leaving a running batch match solo generate()`, () => withBackend(backend, () => {
    const batch = new DecodeBatch(model, 6);
    const a = { prompts: [prompt(1, 5)], opts: { maxNewTokens: 20, logprobs: true, stopIds: [] } };
    const b = { prompts: [prompt(2, 14)], opts: { maxNewTokens: 9, logprobs: true, stopIds: [] } };
    // Two sequences of different lengths in one request (padding inside the request), sampled.
    const c = { prompts: [prompt(3, 3), prompt(4, 7)], opts: { maxNewTokens: 12, logprobs: true, temperature: 0.9, seed: 5, stopIds: [] } };
    // A stop id ends this one early.
    const d = { prompts: [prompt(5, 4)], opts: { maxNewTokens: 30, logprobs: true, stopIds: [7, 9, 11, 13, 17, 19, 23] } };
    const ra = batch.add(a.prompts, a.opts);
    for (let i = 0; i < 4; i++) batch.step();
    // b's prompt (14) is longer than the batch so far (5 + 3): the running row shifts right.
    const rb = batch.add(b.prompts, b.opts);
    batch.step(); batch.step();
    const rc = batch.add(c.prompts, c.opts);
    const rd = batch.add(d.prompts, d.opts);
    let guard = 0;
    while (batch.step()) assert.ok(guard++ < 200);
    for (const r of [ra, rb, rc, rd]) assert.equal(r.state, 'finished');
    assert.ok(batch.shifts.right > 0, 'b did not shift the running rows');
    checkSame(ra, a.prompts, a.opts, 'a');
    checkSame(rb, b.prompts, b.opts, 'b');
    checkSame(rc, c.prompts, c.opts, 'c');
    checkSame(rd, d.prompts, d.opts, 'd');
    batch.dispose();
  }));
}

test('classifier-free guidance in a running batch: the PyTorch reference alone, and guided requests (one with when) beside plain ones match solo generate()', () => {
  // The reference's cases, one request at a time (each takes two rows: its prompt's and its negative's).
  const gx = fixture<{ cases: { prompt: number[]; negative: number[]; scale: number; ids: number[]; logprobs: number[] }[] }>('llama/guidance.json');
  const solo = new DecodeBatch(model, 2);
  for (const c of gx.cases) {
    const r = solo.add(c.prompt, { maxNewTokens: c.ids.length, stopIds: [], logprobs: true, guidance: { scale: c.scale, negative: c.negative } });
    let guard = 0;
    while (solo.step()) assert.ok(guard++ < 100);
    const got = r.result();
    assert.deepEqual(got.ids[0], c.ids, `scale ${c.scale}, negative ${c.negative}`);
    got.logprobs![0].forEach((lp, i) => assert.ok(Math.abs(lp - c.logprobs[i]) < 1e-4, `scale ${c.scale} step ${i}: ${lp} vs ${c.logprobs[i]}`));
  }
  assert.throws(() => solo.create([prompt(1, 3), prompt(2, 3)], { guidance: { scale: 3, negative: [1] } }), /2 sequences and their guidance rows exceed the batch's 2 rows/);
  solo.dispose();
  // Overlapping requests: guided (two sequences, sampled), plain, guided only after the prompt's sixth new token.
  const batch = new DecodeBatch(model, 8);
  const a = { prompts: [prompt(6, 9), prompt(7, 4)], opts: { maxNewTokens: 14, logprobs: true, temperature: 0.8, seed: 3, stopIds: [], guidance: { scale: 2.5, negative: [[1], [1, 5, 9]] } } };
  const b = { prompts: [prompt(8, 6)], opts: { maxNewTokens: 10, logprobs: true, stopIds: [] } };
  const c = { prompts: [prompt(9, 12)], opts: { maxNewTokens: 12, logprobs: true, stopIds: [], guidance: { scale: 4, negative: [1], when: (ids: readonly number[]) => ids.length >= 18 } } };
  const rb = batch.add(b.prompts, b.opts);
  batch.step(); batch.step();
  const ra = batch.add(a.prompts, a.opts);
  batch.step(); batch.step(); batch.step();
  const rc = batch.add(c.prompts, c.opts);
  let guard = 0;
  while (batch.step()) assert.ok(guard++ < 200);
  checkSame(ra, a.prompts, a.opts, 'guided a');
  checkSame(rb, b.prompts, b.opts, 'plain b');
  checkSame(rc, c.prompts, c.opts, 'guided c');
  assert.notDeepEqual(rc.result().ids[0], generate(model, c.prompts, { maxNewTokens: 12, stopIds: [] }).ids[0], 'guidance changed nothing in c');
  batch.dispose();
});

test('a full cache shifts left; a cancelled request leaves the others intact; memory is returned', () => {
  (model as LlamaForCausalLM).releaseDecodePlans();
  const before = heapStats().inUse;
  const batch = new DecodeBatch(model, 4, 24);
  const o = { maxNewTokens: 16, logprobs: true, stopIds: [] };
  const p1 = [prompt(6, 4)], p2 = [prompt(7, 6)], p3 = [prompt(8, 5)];
  const r1 = batch.add(p1, o);
  for (let i = 0; i < 8; i++) batch.step();
  const r2 = batch.add(p2, o);
  const r3 = batch.add(p3, o);
  for (let i = 0; i < 5; i++) batch.step();
  batch.cancel(r3);
  assert.equal(r3.state, 'cancelled');
  const cut = r3.result().ids[0].length;
  assert.ok(cut > 0 && cut < 16);
  let guard = 0;
  while (batch.step()) assert.ok(guard++ < 200);
  // r1 ran 4 + 16 and r2 started 8 steps later with 6 + 16: together past 24 columns.
  assert.ok(batch.shifts.left > 0, 'the cache never shifted left');
  checkSame(r1, p1, o, 'r1');
  checkSame(r2, p2, o, 'r2');
  assert.throws(() => batch.add([prompt(9, 10)], { maxNewTokens: 20 }), /exceed the batch cache of 24/);
  batch.dispose();
  // (The model keeps its decoding plans' buffers for the next steps: freed here to compare.)
  (model as LlamaForCausalLM).releaseDecodePlans();
  assert.equal(heapStats().inUse, before);
});
