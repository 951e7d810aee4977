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

test('PPO stopped mid-way resumes bit for bit: policy, value model, AdamW moments of both, adaptive β, prompt order', async () => {
  const make = () => ({ policy: tiny(4), ref: tiny(4), rm: rewardModelFromCausalLM(tiny(8), { padTokenId: tok.eosId, seed: 5 }), vm: rewardModelFromCausalLM(tiny(8), { padTokenId: tok.eosId, seed: 5 }) });
  const options = { steps: 5, batchSize: 4, maxNewTokens: 5, temperature: 1, lr: 1e-2, ppoEpochs: 2, miniBatches: 2, klCoef: 0.1, klTarget: 0.05, klHorizon: 16 };
  const weights = (m: { namedTensors(): [string, { data(): unknown }][] }) => m.namedTensors().map(([n, t]) => [n, Array.from(t.data() as Float32Array)] as const);
  const strip = (file: string) => readFileSync(file, 'utf8').trim().split('\n').map((l) => { const r = JSON.parse(l); delete r.elapsed_seconds; return r; });
  const a = make();
  await ppoTrain({ policy: a.policy, ref: a.ref, rewardModel: a.rm, valueModel: a.vm, tokenizer: tok, prompts, options, out: path.join(dir, 'straight'), progress: () => {} });
  const b = make(), ac = new AbortController();
  const r1 = await ppoTrain({ policy: b.policy, ref: b.ref, rewardModel: b.rm, valueModel: b.vm, tokenizer: tok, prompts, options, out: path.join(dir, 'stopped'), signal: ac.signal, progress: (m) => { if (m.step === 2) ac.abort(); } });
  assert.equal(r1.step, 2);
  assert.ok(existsSync(path.join(dir, 'stopped', 'checkpoint', 'value_model', 'model.safetensors')));
  const c = make();
  const logs: string[] = [];
  const r2 = await ppoTrain({ policy: c.policy, ref: c.ref, rewardModel: c.rm, valueModel: c.vm, tokenizer: tok, prompts, options, out: path.join(dir, 'stopped'), resume: true, log: (l) => logs.push(l), progress: () => {} });
  assert.equal(r2.step, 5);
  assert.match(logs.join('\n'), /ppo: resumed from .*checkpoint at batch 2/);
  assert.deepEqual(weights(c.policy), weights(a.policy));
  assert.deepEqual(weights(c.vm), weights(a.vm));
  assert.deepEqual(strip(path.join(dir, 'stopped', 'metrics.jsonl')), strip(path.join(dir, 'straight', 'metrics.jsonl')));
  await assert.rejects(ppoTrain({ policy: c.policy, ref: c.ref, rewardModel: c.rm, valueModel: c.vm, tokenizer: tok, prompts: prompts.slice(1), options, out: path.join(dir, 'stopped'), resume: true, log: () => {} }), /trained on 8 prompts, this run has 7; resume with the same data/);
});
