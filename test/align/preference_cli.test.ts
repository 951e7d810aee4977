// `tslm reward train | score` and `tslm dpo` as a user runs them, and their errors on bad input.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, shutdown, createModel, saveModel, trainByteLevelBPE, Generator } from '../../src/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const bin = path.join(root, 'bin', 'tslm.js');
const run = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: dir, env: { ...process.env, TSLM_THREADS: '2' } });
let dir = '';

before(async () => { await init({ threads: 1 }); dir = mkdtempSync(path.join(tmpdir(), 'tslm-pref-cli-')); });
after(async () => { await shutdown(); rmSync(dir, { recursive: true, force: true }); });

const config = (V: number) => ({ model_type: 'llama', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: V, max_position_embeddings: 48, tie_word_embeddings: true });

test('tslm reward train → score, tslm dpo (sigmoid and ipo); clear errors', async () => {
  const words = ['red', 'blue', 'green', 'gold', 'pink', 'gray', 'teal', 'navy', 'lime', 'plum', 'rose', 'sand'];
  const rows = words.map((w, i) => JSON.stringify({ prompt: `say ${w}:`, chosen: ` ${w} please`, rejected: ` ${w} now`, ...(i % 2 ? { margin: 1 } : {}) }));
  const tok = trainByteLevelBPE([rows.join('\n').repeat(3)], { vocabSize: 300, specialTokens: ['<|endoftext|>'] });
  const m = createModel(config(tok.vocabSize), 'test', { generator: new Generator(2) });
  const base = path.join(dir, 'base');
  await saveModel(m, base, { tokenizer: tok });
  m.dispose();
  const data = path.join(dir, 'pairs.jsonl');
  writeFileSync(data, rows.slice(0, 10).join('\n') + '\n');
  const held = path.join(dir, 'held.jsonl');
  writeFileSync(held, rows.slice(10).join('\n') + '\n');

  // Reward model: trained from the causal LM (a new head), held-out accuracy printed, HF layout.
  const rm = path.join(dir, 'rm');
  const r = run(['reward', 'train', '--model', base, '--data', data, '--eval-data', held, '--out', rm, '--steps', '20', '--batch-size', '5', '--lr', '3e-3']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /new score head, pad_token_id 0\); 10 training pairs \(5 with a margin\), 2 held out/);
  assert.match(r.stdout, /held-out pair accuracy: [\d.]+% on 2 pairs \(before: [\d.]+%\)/);
  const cfg = JSON.parse(readFileSync(path.join(rm, 'config.json'), 'utf8'));
  assert.deepEqual([cfg.architectures[0], cfg.num_labels, cfg.pad_token_id], ['LlamaForSequenceClassification', 1, 0]);
  for (const f of ['model.safetensors', 'tokenizer.json', 'metrics.jsonl', 'report.html']) assert.ok(existsSync(path.join(rm, f)), f);
  const g = run(['generate', '--model', rm, '--prompt', 'say red:']);
  assert.equal(g.status, 1);
  assert.match(g.stderr, /rm: is a sequence-classification \(reward\) model \(LlamaForSequenceClassification\), not a causal language model/);
  // Scoring pairs and completions.
  const s = run(['reward', 'score', '--model', rm, '--data', held]);
  assert.equal(s.status, 0, s.stderr);
  assert.match(s.stdout, /pair accuracy: [\d.]+% on 2 pairs; mean margin/);
  const scored = s.stdout.trim().split('\n').slice(1).map((l) => JSON.parse(l));
  assert.equal(scored.length, 2);
  assert.ok(typeof scored[0].chosen_score === 'number' && typeof scored[0].rejected_score === 'number');
  const comp = path.join(dir, 'completions.jsonl');
  writeFileSync(comp, JSON.stringify({ prompt: 'say red:', completion: ' red please' }) + '\n' + JSON.stringify({ prompt: 'say red:', completion: ' red now' }) + '\n');
  const out = path.join(dir, 'scores.jsonl');
  const s2 = run(['reward', 'score', '--model', rm, '--data', comp, '--out', out]);
  assert.equal(s2.status, 0, s2.stderr);
  assert.equal(readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((x) => typeof x.score === 'number').length, 2);

  // DPO from the base model; metrics as TRL names them.
  const d = path.join(dir, 'dpo');
  const r2 = run(['dpo', '--model', base, '--data', data, '--eval-data', held, '--out', d, '--steps', '6', '--batch-size', '5', '--lr', '3e-3', '--beta', '0.2']);
  assert.equal(r2.status, 0, r2.stderr);
  assert.match(r2.stderr, /10 training pairs, 2 held out; loss sigmoid, β 0\.2; reference: the starting model/);
  assert.match(r2.stderr, /step 6\/6 loss [\d.]+ \| margin -?[\d.]+ \| accuracy \d+% \| held-out accuracy [\d.]+%/);
  const mrows = readFileSync(path.join(d, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(mrows.length, 6);
  for (const k of ['rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins', 'logps/chosen', 'logps/rejected']) assert.equal(typeof mrows[5][k], 'number', k);
  assert.ok(mrows[5]['rewards/margins'] > mrows[0]['rewards/margins']);
  for (const f of ['model.safetensors', 'config.json', 'tokenizer.json', 'report.html']) assert.ok(existsSync(path.join(d, f)), f);
  // Checkpoints and --resume: a run of 4 steps (constant learning rate) continued to 6 gives the 6-step run's weights.
  const dr = path.join(dir, 'dpo-resumed');
  const common = ['dpo', '--model', base, '--data', data, '--eval-data', held, '--batch-size', '5', '--lr', '3e-3', '--beta', '0.2', '--checkpoint-every', '2'];
  assert.equal(run([...common, '--steps', '4', '--out', dr]).status, 0);
  assert.ok(existsSync(path.join(dr, 'checkpoint', 'trainer_state.json')));
  const rr = run([...common, '--steps', '6', '--out', dr, '--resume']);
  assert.equal(rr.status, 0, rr.stderr);
  assert.match(rr.stderr, /dpo: resumed from .*checkpoint at step 4/);
  assert.match(rr.stderr, /step 6\/6 loss/);
  assert.doesNotMatch(rr.stderr, /step 4\/6 loss/);
  assert.deepEqual(readFileSync(path.join(dr, 'model.safetensors')), readFileSync(path.join(d, 'model.safetensors')));
  const rr2 = run(['reward', 'train', '--model', base, '--data', data, '--eval-data', held, '--out', path.join(dir, 'none'), '--resume']);
  assert.equal(rr2.status, 1);
  assert.match(rr2.stderr, /reward: --resume: no checkpoint in .*none/);
  const r3 = run(['dpo', '--model', base, '--data', data, '--out', path.join(dir, 'ipo'), '--steps', '2', '--batch-size', '5', '--loss', 'ipo', '--ref-model', base]);
  assert.equal(r3.status, 0, r3.stderr);
  assert.match(r3.stderr, /loss ipo, β 0\.1; reference: .*base/);

  // Bad input.
  const bad = path.join(dir, 'bad.jsonl');
  writeFileSync(bad, rows[0] + '\n' + JSON.stringify({ prompt: 'x', chosen: ' same', rejected: ' same' }) + '\n');
  const b1 = run(['dpo', '--model', base, '--data', bad, '--out', path.join(dir, 'x')]);
  assert.equal(b1.status, 1);
  assert.match(b1.stderr, /bad\.jsonl:2: "chosen" and "rejected" are identical/);
  writeFileSync(bad, rows[0] + '\n\n' + JSON.stringify({ prompt: 'x', chosen: ' a' }) + '\n');
  const b2 = run(['reward', 'train', '--model', base, '--data', bad, '--out', path.join(dir, 'x')]);
  assert.equal(b2.status, 1);
  assert.match(b2.stderr, /bad\.jsonl:3: missing "rejected"/);
  const b3 = run(['dpo', '--model', base, '--data', data, '--out', path.join(dir, 'x'), '--loss', 'kto']);
  assert.equal(b3.status, 2);
  assert.match(b3.stderr, /--loss must be one of sigmoid, ipo, got 'kto'/);
  const b4 = run(['reward', 'score', '--model', base, '--data', held]);
  assert.equal(b4.status, 1);
  assert.match(b4.stderr, /base: not a reward model/);
  // A reference (or reward model) with a different tokenizer than the policy.
  const tok2 = trainByteLevelBPE([rows.join('\n').repeat(3).split('').reverse().join('')], { vocabSize: tok.vocabSize, specialTokens: ['<|endoftext|>'] });
  assert.equal(tok2.vocabSize, tok.vocabSize);
  const o = createModel(config(tok.vocabSize));
  await saveModel(o, path.join(dir, 'other'), { tokenizer: tok2 });
  o.dispose();
  const b5 = run(['dpo', '--model', base, '--data', data, '--out', path.join(dir, 'x'), '--ref-model', path.join(dir, 'other')]);
  assert.equal(b5.status, 1);
  assert.match(b5.stderr, /--ref-model .*other and the policy .*base use different tokenizers: token \d+ is/);
  const b6 = run(['reward', 'score', '--model', rm, '--data', held, '--tokenizer', path.join(dir, 'other', 'tokenizer.json')]);
  assert.equal(b6.status, 1);
  assert.match(b6.stderr, /the reward model .*rm and --tokenizer .*tokenizer\.json use different tokenizers/);
});
