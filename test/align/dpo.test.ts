// DPO / cDPO / IPO (src/align/dpo.ts) against PyTorch: scripts/ref_dpo.py →
// test/fixtures/align/dpo/losses.json holds one batch of 6 pairs of completion-aligned token
// log-probs (L = 7; completions of 1 to 7 tokens, padding positions holding junk the mask must
// remove) and, for the sigmoid loss at β 0.1 / 0.5 with ε 0.1 / 8 (saturated) / 3 with ε 0.3 and
// IPO at β 0.1 / 0.7, the loss, dL/d(token log-probs) of chosen and rejected, the per-pair losses
// and TRL's metrics. Tolerances 1e-5 (+1e-5 relative); the reference is float64 on the float32
// inputs. Then training: DPO on a tiny model raises the held-out margin and accuracy, IPO lowers
// its loss, and the reference log-probs are computed once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { init, shutdown, scope, tensor, createModel, trainByteLevelBPE, Generator, heapStats } from '../../src/index.js';
import type { CausalLM } from '../../src/index.js';
import { dpoLoss, dpoTrain, sequenceLogps, pairLogps, DpoLossError, dpoOptions } from '../../src/align/dpo.js';
import type { DpoLossType } from '../../src/align/dpo.js';
import { parsePreferences, tokenizePairs } from '../../src/align/preference.js';
import { rewardModelFromCausalLM, rewardTrain } from '../../src/align/reward_model.js';
import { assertClose, fixture, onBackends } from '../helpers.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

interface Enc { shape: number[]; data: number[] }
interface Case { name: string; beta: number; labelSmoothing: number; lossType: DpoLossType; loss: number; gradChosen: Enc; gradRejected: Enc; metrics: Record<string, number>; losses: Enc }
interface Fx { batch: { B: number; L: number; pc: Enc; pr: Enc; rc: Enc; rr: Enc; mc: Enc; mr: Enc }; cases: Case[] }
const fx = fixture<Fx>('align/dpo/losses.json');
const { B, L } = fx.batch;
const f32 = (e: Enc) => Float32Array.from(e.data);
const rowSums = (e: Enc, m: Enc) => Array.from({ length: B }, (_, b) => { let s = 0; for (let t = 0; t < L; t++) s += e.data[b * L + t] * m.data[b * L + t]; return s; });
const rowLens = (m: Enc) => Array.from({ length: B }, (_, b) => m.data.slice(b * L, (b + 1) * L).reduce((a, x) => a + x, 0));

test('the fixture covers sigmoid, cDPO, saturated and IPO cases, pairs ranked both ways', () => {
  assert.deepEqual([...new Set(fx.cases.map((c) => c.lossType))].sort(), ['ipo', 'sigmoid']);
  assert.ok(fx.cases.some((c) => c.labelSmoothing > 0));
  const acc = fx.cases[0].metrics['rewards/accuracies'];
  assert.ok(acc > 0 && acc < 1, 'some pairs ranked right, some wrong');
  assert.ok(fx.cases.some((c) => c.loss > 10), 'a saturated case');
});

for (const c of fx.cases) {
  test(`${c.name}: loss, gradients and TRL metrics match PyTorch on both backends`, () => {
    onBackends((bk) => scope(() => {
      const pcTok = tensor(f32(fx.batch.pc), [B, L]).requiresGrad_(), prTok = tensor(f32(fx.batch.pr), [B, L]).requiresGrad_();
      const pc = sequenceLogps(pcTok, f32(fx.batch.mc)), pr = sequenceLogps(prTok, f32(fx.batch.mr));
      const r = dpoLoss(pc, pr, rowSums(fx.batch.rc, fx.batch.mc), rowSums(fx.batch.rr, fx.batch.mr), {
        beta: c.beta, labelSmoothing: c.labelSmoothing, lossType: c.lossType, chosenTokens: rowLens(fx.batch.mc), rejectedTokens: rowLens(fx.batch.mr),
      });
      r.loss.backward();
      assertClose([r.loss.item()], [c.loss], 1e-5, 1e-5, `${bk} loss`);
      assertClose(r.losses, c.losses.data, 1e-5, 1e-5, `${bk} per-pair losses`);
      assertClose(pcTok.grad!.data() as Float32Array, c.gradChosen.data, 1e-5, 1e-5, `${bk} d/d chosen log-probs`);
      assertClose(prTok.grad!.data() as Float32Array, c.gradRejected.data, 1e-5, 1e-5, `${bk} d/d rejected log-probs`);
      for (const [k, v] of Object.entries(c.metrics)) assertClose([(r.metrics as unknown as Record<string, number>)[k]], [v], 1e-5, 1e-5, `${bk} ${k}`);
    }));
  });
}

test('dpoLoss: bad options and shapes are clear errors', () => {
  scope(() => {
    const a = tensor([-1, -2]), b = tensor([-2, -3]);
    assert.throws(() => dpoLoss(a, b, [0, 0], [0, 0], { beta: 0 }), /beta = 0: must be a finite number > 0/);
    assert.throws(() => dpoLoss(a, b, [0, 0], [0, 0], { beta: 0.1, labelSmoothing: 0.5 }), /labelSmoothing = 0.5: must be in \[0, 0.5\)/);
    assert.throws(() => dpoLoss(a, b, [0, 0], [0, 0], { beta: 0.1, lossType: 'ipo' }), /ipo loss needs chosenTokens and rejectedTokens/);
    assert.throws(() => dpoLoss(a, b, [0, 0], [0, 0], { beta: 0.1, lossType: 'ipo', labelSmoothing: 0.1, chosenTokens: [1, 1], rejectedTokens: [1, 1] }), DpoLossError);
    assert.throws(() => dpoLoss(a, b, [0], [0, 0], { beta: 0.1 }), /refChosen has 1 values, policyChosen 2/);
    assert.throws(() => dpoLoss(a, b, [0, 0], [0, 0], { beta: 0.1, lossType: 'kto' as DpoLossType }), /loss type "kto"/);
  });
  assert.throws(() => dpoOptions({ batchSize: 0 }), /batchSize = 0: must be a positive integer/);
  assert.throws(() => dpoOptions({ loss: 'ipo', labelSmoothing: 0.1 }), /applies to the sigmoid loss/);
});

// A tiny preference task: the prompt names a colour; the chosen answer repeats it politely
// ("... please"), the rejected one is curt ("... now"). Held-out prompts use other words.
function task() {
  const words = ['red', 'blue', 'green', 'gold', 'pink', 'gray', 'teal', 'navy', 'lime', 'plum', 'rose', 'sand', 'jade', 'ruby', 'onyx', 'opal', 'mint', 'rust', 'snow', 'wine'];
  const rows = words.map((w) => JSON.stringify({ prompt: `say ${w}:`, chosen: ` ${w} please`, rejected: ` ${w} now` }));
  const tok = trainByteLevelBPE([rows.join('\n')], { vocabSize: 300, specialTokens: ['<|endoftext|>'] });
  const pairs = parsePreferences(rows.join('\n'), 'colours.jsonl');
  return { tok, train: pairs.slice(0, 14), held: pairs.slice(14) };
}

function tinyModel(V: number, seed = 3): CausalLM {
  return createModel({ model_type: 'llama', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: V, max_position_embeddings: 32, tie_word_embeddings: true }, 'tiny', { generator: new Generator(seed) });
}

test('DPO on a tiny model raises the held-out chosen − rejected margin and accuracy; metrics.jsonl and report.html', async () => {
  const { tok, train, held } = task();
  const model = tinyModel(tok.vocabSize);
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-dpo-'));
  try {
    const heap0 = heapStats().inUse;
    const r = await dpoTrain({ model, tokenizer: tok, train: tokenizePairs(train, tok), eval: tokenizePairs(held, tok), options: { steps: 30, batchSize: 7, microBatch: 4, lr: 3e-3, beta: 0.1 }, out: dir, log: () => {}, onStep: () => {} });
    assert.equal(r.evalBefore!['rewards/margins'], 0, 'the reference is the starting policy: no margin before training');
    assert.equal(r.evalBefore!['rewards/accuracies'], 0, 'ties (equal rewards) do not count as ranked right, as in TRL');
    assert.ok(r.evalAfter!['rewards/margins'] > 0.3, `held-out margin ${r.evalAfter!['rewards/margins']}`);
    assert.equal(r.evalAfter!['rewards/accuracies'], 1);
    assert.ok(r.evalAfter!.loss < r.evalBefore!.loss);
    assert.ok(r.metrics.at(-1)!['rewards/margins'] > r.metrics[0]['rewards/margins']);
    const rows = readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(rows.length, 30);
    for (const k of ['loss', 'rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins', 'logps/chosen', 'logps/rejected', 'grad_norm', 'learning_rate']) assert.equal(typeof rows[0][k], 'number', k);
    assert.equal(typeof rows[29]['eval_rewards/accuracies'], 'number');
    assert.ok(existsSync(path.join(dir, 'report.html')));
    // Training holds no memory beyond the model's once done.
    assert.ok(heapStats().inUse - heap0 < 64 * 1024, `heap grew by ${heapStats().inUse - heap0} bytes`);
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('IPO and cDPO train too; the reference log-probs are computed once, before the first step', async () => {
  const { tok, train, held } = task();
  const model = tinyModel(tok.vocabSize), ref = tinyModel(tok.vocabSize);
  let refForwards = 0;
  const fwd = ref.forward.bind(ref);
  ref.forward = ((...a: Parameters<CausalLM['forward']>) => { refForwards++; return fwd(...a); }) as CausalLM['forward'];
  try {
    const tp = tokenizePairs(train, tok), th = tokenizePairs(held, tok);
    const r = await dpoTrain({ model, tokenizer: tok, ref, train: tp, eval: th, options: { steps: 12, batchSize: 7, microBatch: 7, lr: 3e-3, beta: 0.5, loss: 'ipo' }, log: () => {}, onStep: () => {} });
    assert.equal(refForwards, 2 + 1, 'two micro-batches of training pairs and one of held-out pairs');
    assert.ok(r.metrics.at(-1)!.loss < r.metrics[0].loss, `ipo loss ${r.metrics[0].loss} → ${r.metrics.at(-1)!.loss}`);
    // With another reference, the margin before training is what the two models disagree on.
    const p = pairLogps(ref, th, tok.eosId ?? 0), q = pairLogps(model, th, tok.eosId ?? 0);
    assert.ok(p.chosen.every((v, i) => v !== q.chosen[i]));
    const c = await dpoTrain({ model, tokenizer: tok, train: tp, options: { steps: 3, batchSize: 7, lr: 1e-3, beta: 0.1, labelSmoothing: 0.2 }, log: () => {}, onStep: () => {} });
    assert.ok(Number.isFinite(c.metrics[2].loss));
    // Bad input: a reference with another vocabulary; a pair longer than the context.
    const other = tinyModel(tok.vocabSize + 5);
    await assert.rejects(() => dpoTrain({ model, tokenizer: tok, ref: other, train: tp, log: () => {} }), /reference model's vocabulary \(305\) differs from the policy's \(300\)/);
    other.dispose();
    const long = tokenizePairs(parsePreferences(JSON.stringify({ prompt: 'say '.repeat(40), chosen: 'a', rejected: 'b' }), 'long.jsonl'), tok);
    await assert.rejects(() => dpoTrain({ model, tokenizer: tok, train: long, log: () => {} }), /long\.jsonl:1: prompt \+ completion is \d+ tokens, the model's context is 32/);
  } finally {
    model.dispose();
    ref.dispose();
  }
});

test('DPO and reward-model training stopped mid-way resume bit for bit from their checkpoints (weights, AdamW moments, data order)', async () => {
  const { tok, train, held } = task();
  const tp = tokenizePairs(train, tok), th = tokenizePairs(held, tok);
  const dir = mkdtempSync(path.join(tmpdir(), 'tslm-dpo-resume-'));
  const weights = (m: { namedTensors(): [string, { data(): unknown }][] }) => m.namedTensors().map(([n, t]) => [n, Array.from(t.data() as Float32Array)] as const);
  const strip = (file: string) => readFileSync(file, 'utf8').trim().split('\n').map((l) => { const r = JSON.parse(l); delete r.step_seconds; delete r.elapsed_seconds; return r; });
  const options = { steps: 9, batchSize: 4, microBatch: 4, lr: 3e-3, beta: 0.1, warmupSteps: 2, minLrRatio: 0.1, evalEvery: 3 };
  try {
    // DPO: one run straight through; another stopped after 4 steps (Ctrl-C), then resumed.
    const a = tinyModel(tok.vocabSize);
    await dpoTrain({ model: a, tokenizer: tok, train: tp, eval: th, options, out: path.join(dir, 'a'), log: () => {}, onStep: () => {} });
    const b = tinyModel(tok.vocabSize), ac = new AbortController();
    const r1 = await dpoTrain({ model: b, tokenizer: tok, train: tp, eval: th, options, out: path.join(dir, 'b'), signal: ac.signal, log: () => {}, onStep: (m) => { if (m.step === 4) ac.abort(); } });
    assert.equal(r1.step, 4);
    assert.ok(existsSync(path.join(dir, 'b', 'checkpoint', 'optimizer.safetensors')));
    b.dispose();
    const c = tinyModel(tok.vocabSize); // a fresh start: the reference log-probs come from it, the weights from the checkpoint
    const logs: string[] = [];
    const r2 = await dpoTrain({ model: c, tokenizer: tok, train: tp, eval: th, options, out: path.join(dir, 'b'), resume: true, log: (l) => logs.push(l), onStep: () => {} });
    assert.equal(r2.step, 9);
    assert.ok(logs.some((l) => /resumed from .*checkpoint at step 4/.test(l)), logs.join('\n'));
    assert.deepEqual(weights(c), weights(a));
    assert.deepEqual(strip(path.join(dir, 'b', 'metrics.jsonl')), strip(path.join(dir, 'a', 'metrics.jsonl')));
    // The checkpoint is refused for other data.
    await assert.rejects(() => dpoTrain({ model: c, tokenizer: tok, train: tp.slice(1), options, out: path.join(dir, 'b'), resume: true, log: () => {} }), /trained on 14 pairs, this run has 13; resume with the same data/);
    a.dispose();
    c.dispose();
    // Reward model: the same loop, the score head included.
    const rmOf = (seed: number) => rewardModelFromCausalLM(tinyModel(tok.vocabSize), { padTokenId: tok.eosId, seed });
    const ro = { steps: 7, batchSize: 4, microBatch: 2, lr: 3e-3, evalEvery: 2, log: () => {}, onStep: () => {}, eval: th, tokenizer: tok };
    const x = rmOf(5);
    await rewardTrain(x, tp, { ...ro, out: path.join(dir, 'rx') });
    const y = rmOf(5), ac2 = new AbortController();
    const s1 = await rewardTrain(y, tp, { ...ro, out: path.join(dir, 'ry'), signal: ac2.signal, onStep: (m) => { if (m.step === 3) ac2.abort(); } });
    assert.equal(s1.step, 3);
    y.dispose();
    const z = rmOf(5);
    await rewardTrain(z, tp, { ...ro, out: path.join(dir, 'ry'), resume: true });
    assert.deepEqual(weights(z), weights(x));
    assert.deepEqual(strip(path.join(dir, 'ry', 'metrics.jsonl')), strip(path.join(dir, 'rx', 'metrics.jsonl')));
    x.dispose();
    z.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
