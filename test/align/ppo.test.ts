// PPO against a reward model: the reward model's score of the policy's responses rises while the
// KL to the reference is reported; outputs and bad input. (The losses, GAE and KL controllers
// are checked against PyTorch in ppo_losses.test.ts.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { init, shutdown, createModel, Generator, trainByteLevelBPE } from '../../src/index.js';
import { ppoTrain, ppoOptions, rewardModelFromCausalLM } from '../../src/align/index.js';
import type { PromptRow } from '../../src/align/index.js';
import type { CausalLM } from '../../src/models/causal.js';

let dir = '';
before(async () => { await init({ threads: 2 }); dir = mkdtempSync(path.join(tmpdir(), 'tslm-ppo-')); });
after(async () => { await shutdown(); rmSync(dir, { recursive: true, force: true }); });

const tok = trainByteLevelBPE(['Q: say a\nQ: say b\naaaa bbbb'], { vocabSize: 262, specialTokens: ['<|endoftext|>'] });
const tiny = (seed: number, vocab = tok.vocabSize): CausalLM => createModel({ model_type: 'llama', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: vocab, max_position_embeddings: 32, tie_word_embeddings: true }, 'test', { generator: new Generator(seed) });
const prompts: PromptRow[] = Array.from({ length: 8 }, (_, i) => ({ prompt: `Q: say ${'ab'[i % 2]}\n`, row: {}, where: `row ${i}` }));

test('PPO raises the reward model\'s score; KL, value and clip metrics reported; policy and value model saved', async () => {
  const policy = tiny(0), ref = tiny(0);
  const rm = rewardModelFromCausalLM(tiny(7), { padTokenId: tok.eosId, seed: 11 });
  const vm = rewardModelFromCausalLM(tiny(7), { padTokenId: tok.eosId, seed: 11 });
  const out = path.join(dir, 'ppo');
  const r = await ppoTrain({
    policy, ref, rewardModel: rm, valueModel: vm, tokenizer: tok, prompts, out, progress: () => {},
    options: { steps: 20, batchSize: 8, maxNewTokens: 6, temperature: 1, lr: 1e-2, ppoEpochs: 2, miniBatches: 2, klCoef: 0.01 },
  });
  const s = r.metrics.map((m) => m['objective/scores']);
  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  assert.ok(avg(s.slice(-5)) > avg(s.slice(0, 5)) + 0.05, `score ${s.map((x) => x.toFixed(3))}`);
  const m = r.metrics.at(-1)!;
  assert.ok(m['objective/kl'] > 0, 'the policy moved away from the reference');
  for (const k of ['policy/approxkl_avg', 'policy/clipfrac_avg', 'loss/policy_avg', 'loss/value_avg', 'val/clipfrac_avg', 'val/mean'] as const) assert.ok(Number.isFinite(m[k]), k);
  for (const f of ['model.safetensors', 'value_model/model.safetensors', 'value_model/config.json', 'metrics.jsonl', 'report.html']) assert.ok(existsSync(path.join(out, f)), f);
  assert.deepEqual(JSON.parse(readFileSync(path.join(out, 'value_model', 'config.json'), 'utf8')).architectures, ['LlamaForSequenceClassification']);
  assert.equal(readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').length, 20);
});

test('PPO: adaptive β moves toward its target; bad options and vocabularies are refused', async () => {
  const policy = tiny(1), ref = tiny(1);
  const rm = rewardModelFromCausalLM(tiny(2), { padTokenId: tok.eosId, seed: 3 });
  const vm = rewardModelFromCausalLM(tiny(2), { padTokenId: tok.eosId, seed: 3 });
  const r = await ppoTrain({
    policy, ref, rewardModel: rm, valueModel: vm, tokenizer: tok, prompts, progress: () => {},
    options: { steps: 3, batchSize: 8, maxNewTokens: 4, temperature: 1, lr: 1e-2, klCoef: 0.1, klTarget: 1e-6, klHorizon: 16, kl: 'k3' },
  });
  // The first batch's KL is exactly 0 (policy = reference): β shrinks by the capped error,
  // 1 − 0.2·8/16; then KL (k3: never negative) far above a tiny target: β grows by 1 + 0.2·8/16.
  assert.equal(r.metrics[0]['objective/kl'], 0);
  assert.ok(Math.abs(r.metrics[1].kl_coef - 0.1 * (1 - 0.2 * 8 / 16)) < 1e-9, JSON.stringify(r.metrics.map((m) => m.kl_coef)));
  assert.ok(Math.abs(r.metrics[2].kl_coef - r.metrics[1].kl_coef * 1.1) < 1e-9, JSON.stringify(r.metrics.map((m) => [m.kl_coef, m['objective/kl']])));
  assert.throws(() => ppoOptions({ miniBatches: 9, batchSize: 8 }), /miniBatches = 9: more mini-batches than the 8 sequences/);
  assert.throws(() => ppoOptions({ gamma: 1.5 }), /gamma = 1\.5: must be in \[0, 1\]/);
  const other = tiny(3, tok.vocabSize + 4);
  await assert.rejects(ppoTrain({ policy, ref: other, rewardModel: rm, valueModel: vm, tokenizer: tok, prompts }), /the reference's vocabulary \(266\) differs from the policy's \(262\)/);
});
