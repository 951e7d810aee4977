// Medusa training end to end on a tiny model: self-distilled rows are the base's own greedy
// continuations, training (Medusa-1, base frozen) lowers every head's held-out loss and raises
// its top-1 accuracy, the base is untouched, the saved heads load back against the base; the
// joint variant (Medusa-2) changes the base and saves it beside the heads; `tslm medusa train`
// runs from the command line and rejects bad arguments.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '../../src/index.js';
import { init, shutdown, createModel, saveModel, loadModel, loadMedusaHeads, trainByteLevelBPE, loadTokenizer, Generator, generate, selfDistill, trainMedusa, noGrad, scope } from '../../src/index.js';

before(async () => { await init({ threads: 2 }); });
after(async () => { await shutdown(); });

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
let dir = '', modelDir = '', data = '';

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'tslm-medusa-train-'));
  const words = ['the', 'cat', 'sat', 'on', 'a', 'mat', 'and', 'dog', 'ran', 'to', 'park', 'with', 'red', 'ball', 'today'];
  const g = new Generator(3);
  const lines = Array.from({ length: 300 }, () => Array.from({ length: 8 + g.int(6) }, () => words[g.int(words.length)]).join(' '));
  data = path.join(dir, 'prompts.jsonl');
  writeFileSync(data, lines.map((text) => JSON.stringify({ text })).join('\n') + '\n');
  const tok = trainByteLevelBPE(lines, { vocabSize: 300, specialTokens: ['<|endoftext|>'] });
  tok.save(path.join(dir, 'tokenizer.json'));
  const tokenizer = loadTokenizer(path.join(dir, 'tokenizer.json'));
  // A random tiny LLaMA: its greedy continuations are deterministic functions of the context, for the heads to learn.
  const model = createModel({ model_type: 'llama', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
    vocab_size: tokenizer.vocabSize, max_position_embeddings: 64, tie_word_embeddings: true, eos_token_id: tokenizer.eosId }, 'test', { generator: new Generator(1) });
  modelDir = path.join(dir, 'base');
  await saveModel(model, modelDir, { tokenizer });
  model.dispose();
});
after(() => { rmSync(dir, { recursive: true, force: true }); });

test('self-distilled rows are the base\'s greedy continuations of the prompts', async () => {
  const { model, tokenizer } = await loadModel(modelDir);
  try {
    const rows = selfDistill(model, tokenizer!, ['the cat sat on a mat', 'a dog ran to the park today'], { prompts: 2, promptTokens: 3, rowLength: 12, temperature: 0, seed: 0 });
    assert.equal(rows.length, 2);
    for (const r of rows) {
      assert.equal(r.length, 12);
      const prompt = Array.from(r.slice(0, 4));
      assert.equal(prompt[0], tokenizer!.eosId); // BOS (here the tokenizer's only special token)
      const g = generate(model, prompt, { maxNewTokens: 8, stopIds: [] });
      assert.deepEqual(Array.from(r.slice(4)), g.ids[0]);
    }
  } finally {
    model.dispose();
  }
});

/** The heads saved in `out` load back (onto the trained base) with the trained heads' logits; `check` sees what loaded. */
async function assertLoadsBack(out: string, r: Awaited<ReturnType<typeof trainMedusa>>, check: (back: Awaited<ReturnType<typeof loadMedusaHeads>>) => void): Promise<void> {
  const back = await loadMedusaHeads(out, { base: r.base });
  try {
    check(back);
    noGrad(() => scope(() => {
      const h = r.base.hidden(T.tensor([1, 2, 3, 4], [1, 4], 'i32'));
      const x = r.heads.forward(h), y = back.heads.forward(h);
      x.forEach((l, k) => assert.deepEqual(y[k].toArray(), l.toArray()));
    }));
  } finally {
    back.heads.dispose();
  }
}

test('Medusa-1 training lowers every head\'s held-out loss and leaves the base untouched; the heads load back against it', async () => {
  const out = path.join(dir, 'm1');
  const lines: string[] = [];
  const r = await trainMedusa({ model: modelDir, data, out, heads: 3, layers: 1, prompts: 96, promptTokens: 3, seqLen: 31, steps: 60, batchSize: 8, lr: 3e-3, warmupSteps: 5, evalEvery: 30, log: (s) => lines.push(s), progress: () => {} });
  try {
    for (let k = 0; k < 3; k++) {
      assert.ok(r.after.loss[k] < r.before.loss[k] - 0.3, `head ${k}: held-out loss ${r.before.loss[k]} → ${r.after.loss[k]}`);
    }
    assert.ok(r.metrics.some((m) => m.valLoss !== undefined && m.parts?.medusa2_loss !== undefined));
    assert.match(lines.join('\n'), /head +top1 +top2 +top3 +top5 +top10 +loss\nmedusa0 +0\.\d{4}/);
    // The base is frozen: the saved model's weights are the same as before.
    const { model: fresh } = await loadModel(modelDir);
    try {
      const a = r.base.namedTensors(), b = fresh.namedTensors();
      a.forEach(([n, t], i) => assert.deepEqual(t.toArray(), b[i][1].toArray(), n));
    } finally {
      fresh.dispose();
    }
    const acc = JSON.parse(readFileSync(path.join(out, 'heads_accuracy.json'), 'utf8'));
    assert.equal(acc.after.medusa0_top1, r.after.topK[0][0]);
    assert.equal(acc.after.per_rank.length, 3);
    await assertLoadsBack(out, r, (back) => assert.equal(back.config.base_model_name_or_path, path.resolve(modelDir)));
  } finally {
    r.heads.dispose();
    r.base.dispose();
  }
});

test('--tie-lm-head: only the ResBlocks train; the saved LM weights are the base head bit for bit, and load back tied', async () => {
  const out = path.join(dir, 'tied');
  const r = await trainMedusa({ model: modelDir, data, out, heads: 2, layers: 1, prompts: 64, promptTokens: 3, seqLen: 31, steps: 30, batchSize: 8, lr: 3e-3, warmupSteps: 2, evalEvery: 0, tieLmHead: true, log: () => {}, progress: () => {} });
  try {
    assert.ok([0, 1].every((k) => r.heads.isTied(k)));
    for (let k = 0; k < 2; k++) assert.ok(r.after.loss[k] < r.before.loss[k] - 0.02, `head ${k}: held-out loss ${r.before.loss[k]} → ${r.after.loss[k]}`);
    const base = noGrad(() => T.contiguous(T.transpose(r.base.project(T.tensor(Array.from({ length: 32 * 32 }, (_, i) => (i % 33 === 0 ? 1 : 0)), [32, 32]))))).toArray();
    r.heads.heads.forEach((h, k) => {
      assert.ok(h.block!.linear.weight.toArray().some((x) => x !== 0), `head ${k}'s ResBlock trained`);
      assert.deepEqual(h.lm_head.weight.toArray(), base, `head ${k}'s own LM weight untouched`);
    });
    await assertLoadsBack(out, r, (back) => assert.deepEqual(back.tied, [0, 1]));
  } finally {
    r.heads.dispose();
    r.base.dispose();
  }
});

test('Medusa-2 (joint) trains the base too and saves it beside the heads; its loss is the KL divergence from the original model by default', async () => {
  const out = path.join(dir, 'm2');
  const r = await trainMedusa({ model: modelDir, data, out, heads: 2, layers: 1, prompts: 40, promptTokens: 3, seqLen: 23, steps: 4, batchSize: 4, lr: 1e-3, warmupSteps: 0, evalEvery: 0, joint: true, lmWeight: 0.5, log: () => {}, progress: () => {} });
  try {
    // Self-distillation: at the first step the model is its own teacher (divergence 0); then it moves.
    assert.ok(Math.abs(r.metrics[0].parts!.lm_loss) < 1e-5, `first step's KL ${r.metrics[0].parts!.lm_loss}`);
    assert.ok(r.metrics[r.metrics.length - 1].parts!.lm_loss > 1e-7);
    const { model: fresh } = await loadModel(modelDir);
    const { model: saved } = await loadModel(out);
    try {
      const w = (m: T.CausalLM) => m.namedTensors().find(([n]) => n === 'model.layers.0.self_attn.q_proj.weight')![1].toArray();
      assert.notDeepEqual(w(r.base), w(fresh));
      assert.deepEqual(w(saved), w(r.base));
    } finally {
      fresh.dispose();
      saved.dispose();
    }
    const back = await loadMedusaHeads(out, { base: r.base });
    back.heads.dispose();
  } finally {
    r.heads.dispose();
    r.base.dispose();
  }
  // lmLoss 'ce': the next-token cross-entropy on the training text, well above 0 from the start.
  const ce = await trainMedusa({ model: modelDir, data, out: path.join(dir, 'm2ce'), heads: 2, layers: 1, prompts: 40, promptTokens: 3, seqLen: 23, steps: 2, batchSize: 4, lr: 1e-3, warmupSteps: 0, evalEvery: 0, joint: true, lmLoss: 'ce', log: () => {}, progress: () => {} });
  try {
    assert.ok(ce.metrics[0].parts!.lm_loss > 0.1, `first step's cross-entropy ${ce.metrics[0].parts!.lm_loss}`);
  } finally {
    ce.heads.dispose();
    ce.base.dispose();
  }
});

test('tslm medusa train from the command line; bad arguments and a mismatched --init exit with a message', () => {
  const bin = path.join(root, 'bin', 'tslm.js');
  const run = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: dir, env: { ...process.env, TSLM_THREADS: '1' } });
  const out = path.join(dir, 'cli');
  const a = run(['medusa', 'train', '--model', modelDir, '--data', data, '--out', out, '--heads', '2', '--prompts', '24', '--prompt-tokens', '3', '--seq-len', '15', '--steps', '3', '--batch-size', '4', '--eval-every', '3']);
  assert.equal(a.status, 0, a.stderr);
  assert.match(a.stderr, /step 3\/3 \[=+>\] loss [\d.]+ \| lr [\d.e+-]+ \| [\d.]+k? tok\/s \| [\d:]+ elapsed, ETA [\d:]+ \| val loss [\d.]+ \| medusa0_loss [\d.]+ medusa1_loss [\d.]+/);
  assert.match(a.stderr, /done: 3 steps; held-out top-1 per head [\d.]+ \/ [\d.]+; heads: /);
  assert.ok(existsSync(path.join(out, 'medusa_lm_head.safetensors')) && existsSync(path.join(out, 'config.json')));
  assert.equal(run(['medusa']).status, 2);
  assert.equal(run(['medusa', 'train']).status, 2);
  assert.equal(run(['medusa', 'train', '--model', modelDir, '--heads', '0']).status, 2);
  assert.equal(run(['medusa', 'train', '--model', modelDir, '--lm-weight', '0.5']).status, 2);
  assert.match(run(['medusa', 'train', '--model', modelDir, '--lm-loss', 'ce']).stderr, /--lm-loss applies to --joint training \(Medusa-2\) only/);
  assert.match(run(['medusa', 'train', '--model', modelDir, '--joint', '--lm-loss', 'mse']).stderr, /--lm-loss: kl or ce, got 'mse'/);
  // Heads of another vocabulary as --init: a clear error before any data is generated.
  const bad = run(['medusa', 'train', '--model', modelDir, '--data', data, '--out', path.join(dir, 'bad'), '--init', path.join(root, 'test', 'fixtures', 'medusa', 'heads_k3_l2')]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /tensor '0\.2\.weight': shape \[11, 5\]: hidden_size 5 does not match the base model's hidden_size 32/);
});
