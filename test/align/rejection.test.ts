// Rejection-sampling fine-tuning: the best of N samples per prompt is what is kept (by a verifier
// or a reward model), SFT on the kept samples raises the policy's score round after round, and
// the command line refuses a reward model with another tokenizer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, shutdown, createModel, Generator, trainByteLevelBPE, saveModel } from '../../src/index.js';
import { rejectionSampling, rewardModelScorer, rewardModelFromCausalLM, saveRewardModel } from '../../src/align/index.js';
import type { Scorer, PromptRow } from '../../src/align/index.js';
import type { CausalLM } from '../../src/models/causal.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const bin = path.join(root, 'bin', 'tslm.js');
let dir = '';
before(async () => { await init({ threads: 2 }); dir = mkdtempSync(path.join(tmpdir(), 'tslm-rs-')); });
after(async () => { await shutdown(); rmSync(dir, { recursive: true, force: true }); });

const tok = trainByteLevelBPE(['Q: say a\nQ: say b\naaaa bbbb'], { vocabSize: 262, specialTokens: ['<|endoftext|>'] });
const tiny = (seed: number, vocab = tok.vocabSize): CausalLM => createModel({ model_type: 'llama', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: vocab, max_position_embeddings: 32, tie_word_embeddings: true }, 'test', { generator: new Generator(seed) });
const prompts: PromptRow[] = Array.from({ length: 8 }, (_, i) => ({ prompt: `Q: say ${'ab'[i % 2]}\n`, row: {}, where: `row ${i}` }));

test('the best of N is kept, and SFT on it raises the score round after round', async () => {
  const model = tiny(0);
  const seen: number[][] = [];
  // Verifiable: the share of the completion's characters below '@'.
  const scorer: Scorer = {
    name: 'low',
    score: async (_rows, _p, rs) => { const s = rs.map((r) => [...r.text].filter((c) => c.charCodeAt(0) < 64).length / Math.max(1, r.ids.length)); seen.push(s); return s; },
  };
  const r = await rejectionSampling({ model, tokenizer: tok, prompts, scorer, options: { rounds: 3, samples: 6, maxNewTokens: 5, sft: { lr: 1e-2, steps: 12, batchSize: 8 } }, log: () => {} });
  assert.equal(r.rounds.length, 3);
  assert.ok(r.rounds[2].meanScore > r.rounds[0].meanScore + 0.15, `mean score ${r.rounds.map((x) => x.meanScore.toFixed(3))}`);
  // Round 1's kept samples are each prompt's maximum.
  const first = r.kept.filter((k) => k.round === 1);
  assert.equal(first.length, 8);
  first.forEach((k, p) => assert.equal(k.score, Math.max(...seen[0].slice(p * 6, (p + 1) * 6))));
  assert.ok(r.rounds.every((x) => x.meanBest >= x.meanScore));
  model.dispose();
});

test('a reward model scores prompt + completion; minScore drops weak bests', async () => {
  const policy = tiny(1);
  const rm = rewardModelFromCausalLM(tiny(2), { padTokenId: tok.eosId, seed: 3 });
  rm.eval();
  const scorer = rewardModelScorer(rm);
  let all: number[] = [];
  const wrapped: Scorer = { name: 'rm', score: async (rows, p, rs) => { all = await scorer.score(rows, p, rs); return all; } };
  const r = await rejectionSampling({ model: policy, tokenizer: tok, prompts: prompts.slice(0, 4), scorer: wrapped, options: { samples: 4, maxNewTokens: 4, sft: { steps: 2 } }, log: () => {} });
  for (const [p, k] of r.kept.entries()) assert.equal(k.score, Math.max(...all.slice(p * 4, (p + 1) * 4)));
  const median = [...all].sort((a, b) => a - b)[all.length >> 1];
  const r2 = await rejectionSampling({ model: tiny(1), tokenizer: tok, prompts: prompts.slice(0, 4), scorer, options: { samples: 4, maxNewTokens: 4, minScore: Math.max(...all) + 1, sft: { steps: 2 } }, log: () => {} });
  assert.equal(r2.kept.length, 0);
  assert.equal(r2.rounds[0].sftSteps, 0);
  assert.ok(Number.isFinite(median));
  policy.dispose();
});

test('tslm rlhf rejection-sampling and ppo from the command line; a reward model with another tokenizer is refused', async () => {
  const mdir = path.join(dir, 'policy');
  const m = tiny(4);
  await saveModel(m, mdir, { tokenizer: tok });
  m.dispose();
  const data = path.join(dir, 'prompts.jsonl');
  writeFileSync(data, prompts.map((p) => JSON.stringify({ prompt: p.prompt })).join('\n') + '\n');
  writeFileSync(path.join(dir, 'len.mjs'), 'export default (ctx) => ctx.completion.length;\n');
  const out = path.join(dir, 'rs');
  const r = spawnSync(process.execPath, [bin, 'rlhf', 'rejection-sampling', '--model', mdir, '--data', data, '--reward', './len.mjs', '--out', out, '--samples', '3', '--max-new-tokens', '4', '--steps', '2'], { encoding: 'utf8', cwd: dir });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /round 1\/1: 24 samples, mean len\.mjs score [\d.]+, best of 3 [\d.]+; kept 8 of 8; SFT 2 steps/);
  assert.ok(existsSync(path.join(out, 'model.safetensors')));
  assert.equal(readFileSync(path.join(out, 'rejection_sampling.jsonl'), 'utf8').trim().split('\n').length, 8);
  // PPO from the command line against a reward model with the policy's tokenizer.
  const same = rewardModelFromCausalLM(tiny(6), { padTokenId: tok.eosId, seed: 2 });
  await saveRewardModel(same, path.join(dir, 'rm-same'), { tokenizer: tok });
  const pout = path.join(dir, 'ppo');
  const p = spawnSync(process.execPath, [bin, 'rlhf', 'ppo', '--model', mdir, '--reward-model', path.join(dir, 'rm-same'), '--data', data, '--out', pout, '--steps', '2', '--batch-size', '4', '--max-new-tokens', '4', '--kl-target', '0.5'], { encoding: 'utf8', cwd: dir });
  assert.equal(p.status, 0, p.stderr);
  assert.match(p.stderr, /ppo batch 2\/2 score -?[\d.]+ \| kl -?[\d.]+ \(β [\d.]+\)/);
  for (const f of ['model.safetensors', 'value_model/model.safetensors', 'metrics.jsonl', 'report.html']) assert.ok(existsSync(path.join(pout, f)), f);
  const otherTok = trainByteLevelBPE(['something else entirely, zzz'], { vocabSize: 264, specialTokens: ['<|endoftext|>'] });
  const rm = rewardModelFromCausalLM(tiny(5, otherTok.vocabSize), { padTokenId: otherTok.eosId, seed: 1 });
  await saveRewardModel(rm, path.join(dir, 'rm'), { tokenizer: otherTok });
  const b = spawnSync(process.execPath, [bin, 'rlhf', 'rejection-sampling', '--model', mdir, '--data', data, '--reward-model', path.join(dir, 'rm'), '--out', path.join(dir, 'x')], { encoding: 'utf8', cwd: dir });
  assert.equal(b.status, 1);
  assert.match(b.stderr, /the policy .* and the reward model .* use different tokenizers/);
  const b2 = spawnSync(process.execPath, [bin, 'rlhf', 'ppo', '--model', mdir, '--reward-model', path.join(dir, 'rm'), '--data', data, '--out', path.join(dir, 'y')], { encoding: 'utf8', cwd: dir });
  assert.equal(b2.status, 1);
  assert.match(b2.stderr, /the policy .* and the reward model .* use different tokenizers/);
});
