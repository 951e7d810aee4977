// Reward models (src/align/reward_model.ts) against PyTorch: scripts/ref_dpo.py →
// test/fixtures/align/dpo/reward_model.json holds the Bradley–Terry loss and its gradients on
// fixed rewards (with and without LLaMA 2's margins), and a reward model on the LLaMA fixture's
// weights (test/fixtures/llama/llama_gqa_untied) with a random score head: the position each
// right-padded row is read at (HF's rightmost non-padding token), the rewards, and the gradients
// of a margin Bradley–Terry loss w.r.t. score.weight, model.norm.weight and the embeddings.
// Then: a tiny synthetic preference task learnt to high held-out accuracy, the HF layout of a
// saved reward model and its round trip, and errors on bad input.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { init, shutdown, scope, tensor, createModel, saveModel, trainByteLevelBPE, Generator, LlamaForCausalLM, parseLlamaConfig } from '../../src/index.js';
import * as T from '../../src/index.js';
import {
  RewardModel, RewardModelError, bradleyTerryLoss, lastNonPadIndex, loadRewardModel, saveRewardModel, rewardTrain, evaluateRewardModel, assertSameTokenizer, rewardModelFromCausalLM,
} from '../../src/align/reward_model.js';
import { parsePreferences, tokenizePairs } from '../../src/align/preference.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { assertClose, fixture, fixturePath, onBackends, readF32Safetensors } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

interface Enc { shape: number[]; data: number[] }
interface Fx {
  bt: { chosen: Enc; rejected: Enc; cases: { margin: Enc | null; loss: number; gradChosen: Enc; gradRejected: Enc; accuracy: number }[] };
  model: { pad_token_id: number; ids: number[][]; length: number; last: number[]; score: Enc; margin: Enc; rewards: Enc; loss: number; gradScore: Enc; gradNorm: Enc; gradEmbed: Enc };
}
const fx = fixture<Fx>('align/dpo/reward_model.json');

test('Bradley–Terry loss with and without margins: loss, gradients and accuracy match PyTorch', () => {
  for (const c of fx.bt.cases) {
    onBackends((bk) => scope(() => {
      const a = tensor(fx.bt.chosen.data).requiresGrad_(), b = tensor(fx.bt.rejected.data).requiresGrad_();
      const r = bradleyTerryLoss(a, b, c.margin ? c.margin.data : null);
      r.loss.backward();
      const what = `${bk} ${c.margin ? 'margin' : 'no margin'}`;
      assertClose([r.loss.item()], [c.loss], 1e-5, 1e-5, `${what} loss`);
      assertClose(a.grad!.data() as Float32Array, c.gradChosen.data, 1e-5, 1e-5, `${what} d/d chosen`);
      assertClose(b.grad!.data() as Float32Array, c.gradRejected.data, 1e-5, 1e-5, `${what} d/d rejected`);
      assertClose([r.metrics.accuracy], [c.accuracy], 1e-8, 0, `${what} accuracy`);
    }));
  }
  assert.notEqual(fx.bt.cases[0].loss, fx.bt.cases[1].loss, 'the margin changes the loss');
});

function fixtureBackbone(): LlamaForCausalLM {
  const c = fixture<{ config: Record<string, unknown> }>('llama/llama_gqa_untied.json').config;
  const m = new LlamaForCausalLM(parseLlamaConfig(c));
  scope(() => m.loadStateDict(readF32Safetensors(fixturePath('llama/llama_gqa_untied.safetensors'))));
  return m;
}

test('reward model on the LLaMA fixture: last non-padding positions, rewards and gradients match PyTorch', () => {
  const m = fx.model, Bn = m.ids.length, Tn = m.length, n = Bn / 2;
  const flat = m.ids.flat();
  assert.deepEqual([...lastNonPadIndex(flat, Bn, Tn, m.pad_token_id)], m.last);
  const rm = new RewardModel(fixtureBackbone(), { padTokenId: m.pad_token_id });
  try {
    scope(() => T.copyInto(rm.score.weight, tensor(m.score.data, [1, 32])));
    onBackends((bk) => scope(() => {
      for (const [, p] of rm.namedParameters()) p.grad = null;
      const r = rm.forward(flat, Bn, Tn);
      assertClose(r.data() as Float32Array, m.rewards.data, 1e-5, 1e-5, `${bk} rewards`);
      const bt = bradleyTerryLoss(T.slice(r, 0, 0, n), T.slice(r, 0, n, Bn), m.margin.data);
      bt.loss.backward();
      assertClose([bt.loss.item()], [m.loss], 1e-5, 1e-5, `${bk} loss`);
      const sd = rm.stateDict();
      assertClose(sd['score.weight'].grad!.data() as Float32Array, m.gradScore.data, 1e-5, 1e-4, `${bk} d/d score.weight`);
      assertClose(sd['model.norm.weight'].grad!.data() as Float32Array, m.gradNorm.data, 1e-5, 1e-4, `${bk} d/d model.norm.weight`);
      assertClose(sd['model.embed_tokens.weight'].grad!.data() as Float32Array, m.gradEmbed.data, 1e-5, 1e-4, `${bk} d/d embed_tokens`);
      for (const [, p] of rm.namedParameters()) { p.grad?.dispose(); p.grad = null; }
    }));
    assert.ok(!rm.namedTensors().some(([k]) => k.startsWith('lm_head')), 'the unused lm_head is not a reward-model tensor');
  } finally {
    rm.dispose();
  }
  assert.throws(() => lastNonPadIndex([1, 2, 3, 4], 2, 2, null), /no pad_token_id: it cannot score a batch of more than one sequence/);
  assert.deepEqual([...lastNonPadIndex([7, 8, 9], 1, 3, null)], [2]);
  assert.deepEqual([...lastNonPadIndex([0, 0, 5, 0, 0, 0], 2, 3, 0)], [2, 0], 'left padding reads the last token; a row of padding reads position 0');
});

// Synthetic preferences: completions are six letters a/b; the one with more a's is preferred.
function countingTask(n: number, seed: number): string[] {
  const g = new Generator(seed);
  const word = () => Array.from({ length: 6 }, () => (g.int(2) ? 'a' : 'b')).join(' ');
  const count = (w: string) => w.split('a').length - 1;
  const rows: string[] = [];
  while (rows.length < n) {
    const x = word(), y = word();
    if (count(x) === count(y)) continue;
    const [c, r] = count(x) > count(y) ? [x, y] : [y, x];
    rows.push(JSON.stringify({ prompt: 'pick:', chosen: ` ${c}`, rejected: ` ${r}`, margin: (count(c) - count(r)) / 3 }));
  }
  return rows;
}

test('a reward model learns a synthetic preference (more a\'s is better) to high held-out pair accuracy in seconds; HF layout round trip', async () => {
  const trainRows = countingTask(96, 1), heldRows = countingTask(48, 2);
  const tok = trainByteLevelBPE(['pick: a b a b b a'], { vocabSize: 262, specialTokens: ['<|endoftext|>'] });
  const backbone = createModel({ model_type: 'llama', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: tok.vocabSize, max_position_embeddings: 32, tie_word_embeddings: false }, 'tiny', { generator: new Generator(4) });
  const rm = rewardModelFromCausalLM(backbone, { padTokenId: tok.eosId, seed: 1 });
  const train = tokenizePairs(parsePreferences(trainRows.join('\n'), 'train.jsonl'), tok, { eos: false });
  const held = tokenizePairs(parsePreferences(heldRows.join('\n'), 'held.jsonl'), tok, { eos: false });
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-rm-'));
  try {
    const t0 = performance.now();
    const r = await rewardTrain(rm, train, { eval: held, steps: 120, batchSize: 16, microBatch: 16, lr: 3e-3, out: dir, log: () => {}, onStep: () => {} });
    const seconds = (performance.now() - t0) / 1000;
    assert.ok(r.evalBefore!.accuracy < 0.8, `before ${r.evalBefore!.accuracy}`);
    assert.ok(r.evalAfter!.accuracy >= 0.9, `held-out accuracy ${r.evalAfter!.accuracy} after ${seconds.toFixed(1)} s`);
    assert.equal(readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').length, 120);
    // Saved in HF's LlamaForSequenceClassification layout.
    const out = path.join(dir, 'rm');
    await saveRewardModel(rm, out, { tokenizer: tok });
    const cfg = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'));
    assert.deepEqual(cfg.architectures, ['LlamaForSequenceClassification']);
    assert.equal(cfg.num_labels, 1);
    assert.deepEqual(cfg.id2label, { 0: 'LABEL_0' });
    assert.equal(cfg.pad_token_id, tok.eosId);
    assert.equal(cfg.model_type, 'llama');
    const st = await SafetensorsFile.open(path.join(out, 'model.safetensors'));
    const names = [...st.names].sort();
    await st.close();
    assert.ok(names.includes('score.weight') && names.includes('model.embed_tokens.weight') && names.includes('model.norm.weight'));
    assert.ok(names.every((k) => k === 'score.weight' || k.startsWith('model.')), names.join(', '));
    assert.ok(!names.some((k) => k.startsWith('lm_head')));
    assert.equal(names.length, 1 + 1 + 2 * 9 + 1);
    // Loaded back: the same rewards.
    const { model: back, tokenizer, newHead } = await loadRewardModel(out);
    assert.equal(newHead, false);
    assert.equal(tokenizer!.vocabSize, tok.vocabSize);
    const a = evaluateRewardModel(rm, held), b = evaluateRewardModel(back, held);
    assertClose(b.chosen, a.chosen, 1e-6, 1e-6, 'chosen rewards after the round trip');
    assertClose(b.rejected, a.rejected, 1e-6, 1e-6, 'rejected rewards after the round trip');
    back.dispose();
    // A causal-LM directory is not a reward model unless asked to start one.
    const lm = path.join(dir, 'lm');
    await saveModel(rm.backbone, lm, { tokenizer: tok });
    await assert.rejects(loadRewardModel(lm), /lm: not a reward model \(config.json architectures should end in ForSequenceClassification/);
    const fresh = await loadRewardModel(lm, { fromCausalLM: true });
    assert.equal(fresh.newHead, true);
    assert.equal(fresh.model.padTokenId, tok.eosId);
    fresh.model.dispose();
    // A classifier with more labels, and a reward directory without its head, are refused.
    const bad = path.join(dir, 'bad');
    mkdirSync(bad);
    writeFileSync(path.join(bad, 'config.json'), JSON.stringify({ ...cfg, id2label: { 0: 'NEG', 1: 'POS' } }));
    writeFileSync(path.join(bad, 'model.safetensors'), readFileSync(path.join(out, 'model.safetensors')));
    await assert.rejects(loadRewardModel(bad), /a reward model has one label \(num_labels 1\), this classifier has 2/);
    // A head of the wrong width, or none, is named by the tensor check (before any weight is loaded).
    writeFileSync(path.join(bad, 'config.json'), JSON.stringify({ ...cfg, hidden_size: 48, id2label: undefined }));
    await assert.rejects(loadRewardModel(bad), /tensor 'score\.weight': shape \[1, 32\] does not match the config's \[1, 48\]/);
    const lmTensors = path.join(lm, 'model.safetensors');
    writeFileSync(path.join(bad, 'config.json'), readFileSync(path.join(out, 'config.json')));
    writeFileSync(path.join(bad, 'model.safetensors'), readFileSync(lmTensors));
    await assert.rejects(loadRewardModel(bad), /tensor 'score\.weight': missing \(the classification head/);
  } finally {
    rm.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('different tokenizers are refused by name; a batch without pad_token_id is refused', async () => {
  const bpe = (text: string, vocabSize: number) => trainByteLevelBPE([text.repeat(20)], { vocabSize, specialTokens: ['<|endoftext|>'] });
  const a = bpe('hello world ', 262), b = bpe('good night ', 262), c = bpe('hello world ', 266);
  assertSameTokenizer(a, bpe('hello world ', 262), { a: 'rm', b: 'policy' });
  assert.throws(() => assertSameTokenizer(a, c, { a: 'the reward model', b: 'the policy' }), /the reward model and the policy use different tokenizers: 262 vs 266 tokens/);
  assert.throws(() => assertSameTokenizer(a, b, { a: 'rm', b: 'policy' }), (e: Error) => e instanceof RewardModelError && /rm and policy use different tokenizers: token \d+ is/.test(e.message));
  const m = createModel({ model_type: 'llama', hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2, vocab_size: 262, max_position_embeddings: 16, tie_word_embeddings: true });
  const rm = new RewardModel(m, { padTokenId: null });
  assert.equal(rm.scoreSequences([[1, 2, 3]]).length, 1);
  assert.throws(() => rm.scoreSequences([[1, 2, 3], [4, 5]]), /no pad_token_id/);
  await assert.rejects(() => rewardTrain(rm, tokenizePairs(parsePreferences('{"prompt":"a","chosen":"b","rejected":"c"}', 'p.jsonl'), a), { log: () => {} }), /no pad_token_id/);
  rm.padTokenId = 0;
  await assert.rejects(() => rewardTrain(rm, [{ prompt: [1], chosen: [265], rejected: [3], margin: 0, where: 'p.jsonl:1' }], { log: () => {} }), /p\.jsonl:1: token id 265 outside the model's vocabulary of 262 \(a different tokenizer\?\)/);
  rm.dispose();
});
