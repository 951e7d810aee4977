// The GRPO trainer: it raises a reward on a toy task; micro-batching gives the whole batch's
// update for every loss type; dynamic sampling drops equal-reward groups; a run stopped and
// resumed from its checkpoint ends bit-for-bit where the uninterrupted run does; bad input
// gets clear errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as T from '../../src/index.js';
import { init, shutdown, createModel, Generator, trainByteLevelBPE } from '../../src/index.js';
import { grpoTrain, grpoOptions } from '../../src/align/index.js';
import type { RewardFunction, RewardContext, PromptRow, RlMetrics, LossType } from '../../src/align/index.js';
import type { CausalLM } from '../../src/models/causal.js';

let dir = '';
before(async () => { await init({ threads: 2 }); dir = mkdtempSync(path.join(tmpdir(), 'tslm-grpo-')); });
after(async () => { await shutdown(); rmSync(dir, { recursive: true, force: true }); });

const tok = trainByteLevelBPE(['Q: say a\nQ: say b\naaaa bbbb'], { vocabSize: 262, specialTokens: ['<|endoftext|>'] });
function tinyModel(seed = 0): CausalLM {
  const m = createModel({ model_type: 'llama', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: tok.vocabSize, max_position_embeddings: 32, tie_word_embeddings: true }, 'test', { generator: new Generator(seed) });
  return m;
}
const prompts: PromptRow[] = Array.from({ length: 12 }, (_, i) => ({ prompt: i % 2 ? 'Q: say a\n' : 'Q: say b\n', row: { i }, where: `row ${i}` }));

/** A reward a program checks: the share of the completion's tokens that decode to characters below '@' (a quarter of the bytes). */
function asciiReward(extra?: (c: RewardContext) => number | null): RewardFunction {
  const f = (c: RewardContext) => extra?.(c) ?? Math.min(1, [...c.completion].filter((ch) => ch.charCodeAt(0) < 64).length / Math.max(1, c.completionTokens));
  return {
    name: 'ascii',
    score: async (b) => b.map(f),
    scoreDetailed: async (b) => { const t = b.map(f); return { total: t, components: { ascii: t } }; },
  };
}

const weights = (m: CausalLM) => m.namedParameters().map(([n, p]) => [n, Float32Array.from(p.data() as Float32Array)] as const);

test('GRPO raises a verifiable reward; metrics carry TRL\'s names; report and model written', async () => {
  const model = tinyModel();
  const out = path.join(dir, 'learn');
  const r = await grpoTrain({
    model, tokenizer: tok, train: prompts, eval: prompts.slice(0, 4), reward: asciiReward(), out, log: () => {}, progress: () => {},
    options: { steps: 16, promptsPerStep: 4, groupSize: 8, maxNewTokens: 6, lr: 1e-2, evalEvery: 0, stopTags: [], checkpointEvery: 0 },
  });
  const first = r.metrics.slice(0, 3).reduce((s, m) => s + m.reward, 0) / 3, last = r.metrics.slice(-3).reduce((s, m) => s + m.reward, 0) / 3;
  assert.ok(last > first + 0.2, `reward ${first.toFixed(3)} → ${last.toFixed(3)}`);
  assert.ok(r.evalAfter!.accuracy > r.evalBefore!.accuracy, `held-out ${r.evalBefore!.accuracy} → ${r.evalAfter!.accuracy}`);
  const m = r.metrics[0] as unknown as Record<string, unknown>;
  for (const k of ['reward', 'reward_std', 'frac_reward_zero_std', 'completions/mean_length', 'completions/clipped_ratio', 'entropy', 'clip_ratio/low_mean', 'clip_ratio/high_mean', 'clip_ratio/region_mean', 'loss', 'grad_norm', 'learning_rate']) {
    assert.equal(typeof m[k], 'number', k);
  }
  assert.equal(r.metrics[0]['clip_ratio/region_mean'], 0, 'one pass per batch: the ratio is 1, nothing is clipped');
  const lines = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n');
  assert.equal(lines.length, 16);
  const html = readFileSync(path.join(out, 'report.html'), 'utf8');
  for (const t of ['Reward', 'Held-out accuracy', 'KL to the reference', 'Completion length', 'Policy entropy', 'Clip fraction']) assert.ok(html.includes(t), t);
  assert.ok(existsSync(path.join(out, 'model.safetensors')) && existsSync(path.join(out, 'config.json')));
  model.dispose();
});

test('micro-batches accumulate to the whole batch\'s update for every loss type', async () => {
  const cases: [LossType, Record<string, unknown>][] = [['grpo', {}], ['bnpo', {}], ['dapo', {}], ['dr_grpo', {}], ['gspo', {}], ['k1.5', { beta: 0 }], ['grpo', { beta: 0.1, mu: 2 }]];
  for (const [loss, extra] of cases) {
    const run = async (microBatch: number) => {
      const model = tinyModel(3), ref = extra.beta ? tinyModel(3) : null;
      const r = await grpoTrain({
        model, ref, tokenizer: tok, train: prompts, reward: asciiReward(), log: () => {}, progress: () => {},
        // Stop tags that end about half the completions early: rows of unequal length.
        options: { steps: 1, promptsPerStep: 3, groupSize: 4, maxNewTokens: 5, lr: 1e-2, evalEvery: 0, stopTags: [...'abcdefghijklmnopqrstuvwxyz0123456789'], loss, microBatch, ...extra },
      });
      const w = weights(model);
      model.dispose();
      ref?.dispose();
      return { w, m: r.metrics[0] };
    };
    const whole = await run(12), split = await run(4);
    // The loss and the gradient norm (before clipping) catch a wrong scale; AdamW's first step would not.
    const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(1e-12, Math.abs(a));
    assert.ok(Math.abs(whole.m.loss - split.m.loss) < 1e-6 + 1e-4 * Math.abs(whole.m.loss), `${loss}: loss ${whole.m.loss} vs ${split.m.loss} micro-batched`);
    assert.ok(rel(whole.m.grad_norm, split.m.grad_norm) < 1e-4, `${loss}: gradient norm ${whole.m.grad_norm} vs ${split.m.grad_norm} micro-batched`);
    assert.ok(whole.m.grad_norm > 1e-6, `${loss}: a gradient`);
    assert.ok(whole.m['completions/mean_length'] < 4.5, 'completions of unequal length');
    let maxDiff = 0;
    whole.w.forEach(([, a], k) => { for (let j = 0; j < a.length; j++) maxDiff = Math.max(maxDiff, Math.abs(a[j] - split.w[k][1][j])); });
    assert.ok(maxDiff < 1e-4, `${loss} ${JSON.stringify(extra)}: micro-batched update differs by ${maxDiff}`);
  }
});

test('dynamic sampling drops groups whose rewards are all equal and samples more', async () => {
  const model = tinyModel(7);
  // Rows with i < 6 always score 1: their groups carry no signal.
  const reward = asciiReward((c) => (Number(c.row.i) < 6 ? 1 : null));
  const r = await grpoTrain({
    model, tokenizer: tok, train: prompts, reward, log: () => {}, progress: () => {},
    options: { steps: 3, promptsPerStep: 4, groupSize: 4, maxNewTokens: 5, lr: 1e-3, evalEvery: 0, stopTags: [], dynamicSampling: true, maxResample: 4 },
  });
  const m: RlMetrics[] = r.metrics;
  assert.ok(m.some((x) => x.dropped_groups > 0), 'some groups were dropped');
  for (const x of m) assert.ok(x.completions <= 16 && x.completions % 4 === 0);
  assert.ok(m.every((x) => x.completions === 16), `refilled to 4 groups: ${m.map((x) => x.completions)}`);
  model.dispose();
});

test('a run stopped and resumed from its checkpoint ends bit-for-bit where the uninterrupted run does', async () => {
  const options = { steps: 4, promptsPerStep: 3, groupSize: 4, maxNewTokens: 5, lr: 1e-2, evalEvery: 0, stopTags: [], checkpointEvery: 1, sampling: 'prioritized' as const, mu: 2 };
  const full = tinyModel(11);
  const a = await grpoTrain({ model: full, tokenizer: tok, train: prompts, reward: asciiReward(), out: path.join(dir, 'full'), options, log: () => {}, progress: () => {} });
  const outB = path.join(dir, 'resumed');
  const part = tinyModel(11);
  await grpoTrain({ model: part, tokenizer: tok, train: prompts, reward: asciiReward(), out: outB, options, stopAtStep: 2, log: () => {}, progress: () => {} });
  part.dispose();
  const again = tinyModel(99); // different start: the checkpoint must overwrite everything
  const b = await grpoTrain({ model: again, tokenizer: tok, train: prompts, reward: asciiReward(), out: outB, options, resume: true, log: () => {}, progress: () => {} });
  assert.equal(b.step, 4);
  const wa = weights(full), wb = weights(again);
  wa.forEach(([n, x], k) => assert.deepEqual(Buffer.from(x.buffer), Buffer.from(wb[k][1].buffer), n));
  const strip = (m: RlMetrics) => ({ ...m, step_seconds: 0, elapsed_seconds: 0, rollout_tokens_per_second: 0 });
  assert.deepEqual(b.metrics.map(strip), a.metrics.map(strip));
  assert.deepEqual(readFileSync(path.join(outB, 'model.safetensors')), readFileSync(path.join(dir, 'full', 'model.safetensors')));
  full.dispose();
  again.dispose();
});

test('bad options and inputs get clear errors', async () => {
  assert.throws(() => grpoOptions({ groupSize: 1 }), /groupSize = 1: group-normalised advantages need at least 2/);
  assert.throws(() => grpoOptions({ loss: 'k1.5', beta: 0.1 }), /k1\.5 loss takes no KL term/);
  assert.throws(() => grpoOptions({ temperature: 0 }), /temperature = 0: must be > 0/);
  const model = tinyModel();
  const other = createModel({ model_type: 'llama', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: tok.vocabSize + 5, max_position_embeddings: 32, tie_word_embeddings: true });
  await assert.rejects(grpoTrain({ model, ref: other, tokenizer: tok, train: prompts, reward: asciiReward(), options: { beta: 0.1 }, log: () => {} }), /reference model's vocabulary \(267\) differs from the policy's \(262\)/);
  await assert.rejects(grpoTrain({ model, tokenizer: tok, train: prompts, reward: asciiReward(), options: { beta: 0.1 }, log: () => {} }), /beta > 0 needs a reference model/);
  await assert.rejects(grpoTrain({ model, tokenizer: tok, train: [{ prompt: 'x'.repeat(40), row: {}, where: 'p.jsonl:7' }], reward: asciiReward(), log: () => {} }), /p\.jsonl:7: the prompt has \d+ tokens, the model's context is 32/);
  model.dispose();
  other.dispose();
});
