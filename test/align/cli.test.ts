// `tslm rl grpo | demo | shortest-rejection` as a user runs them, and their errors on bad input.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, shutdown, createModel, saveModel, trainByteLevelBPE, Generator } from '../../src/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const bin = path.join(root, 'bin', 'tslm.js');
const run = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: dir, env: { ...process.env, TSLM_THREADS: '2' } });
let dir = '';

before(async () => { await init({ threads: 1 }); dir = mkdtempSync(path.join(tmpdir(), 'tslm-rl-cli-')); });
after(async () => { await shutdown(); rmSync(dir, { recursive: true, force: true }); });

test('tslm rl demo --quick: SFT then GRPO, accuracies printed, report and models written', () => {
  const out = path.join(dir, 'demo');
  const r = run(['rl', 'demo', '--quick', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /SFT model \(best of \d+ steps: step \d+\): [\d.]+% sampled, [\d.]+% greedy/);
  assert.match(r.stdout, /RL model {2}\(3 GRPO batches\): [\d.]+% sampled, [\d.]+% greedy/);
  assert.match(r.stderr, /batch 3\/3 reward [\d.]+/);
  for (const f of ['sft/model.safetensors', 'sft/tokenizer.json', 'rl/model.safetensors', 'rl/metrics.jsonl', 'rl/report.html', 'demo.json', 'prompts.jsonl', 'heldout.jsonl']) assert.ok(existsSync(path.join(out, f)), f);
  assert.match(r.stdout, /try other recipes from the SFT model: tslm rl grpo --model /);
  const d = JSON.parse(readFileSync(path.join(out, 'demo.json'), 'utf8'));
  assert.ok(d.sft.accuracy >= 0 && d.rl.accuracy >= 0 && d.parameters < 5e6);
});

test('tslm rl grpo with a reward module, --resume, shortest-rejection; clear errors', async () => {
  const tok = trainByteLevelBPE(['Q: 1+1\nQ: 2+2\n<answer>2</answer><answer>4</answer>'], { vocabSize: 270, specialTokens: ['<|endoftext|>'] });
  const m = createModel({ model_type: 'llama', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: tok.vocabSize, max_position_embeddings: 48, tie_word_embeddings: true }, 'test', { generator: new Generator(2) });
  const mdir = path.join(dir, 'base');
  await saveModel(m, mdir, { tokenizer: tok });
  m.dispose();
  const data = path.join(dir, 'prompts.jsonl');
  writeFileSync(data, Array.from({ length: 12 }, (_, i) => JSON.stringify({ prompt: `Q: ${i}+${i}\n`, answer: String(2 * i) })).join('\n') + '\n');
  writeFileSync(path.join(dir, 'my-reward.mjs'), 'export default (ctx) => ctx.completion.length % 3 === 0 ? 1 : 0;\n');
  const out = path.join(dir, 'run');
  const args = ['rl', 'grpo', '--model', mdir, '--data', data, '--reward', './my-reward.mjs,math:0.5', '--out', out, '--steps', '3', '--prompts-per-step', '2',
    '--group-size', '4', '--max-new-tokens', '6', '--beta', '0.04', '--loss', 'dapo', '--epsilon-high', '0.28', '--eval-every', '2', '--checkpoint-every', '1'];
  const r = run([...args.slice(0, -6), '--steps', '2', '--eval-every', '2', '--checkpoint-every', '1']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /11 training prompts, 1 held out; reward my-reward\.mjs\+math; loss dapo, G 4/);
  assert.match(r.stderr, /batch 2\/2 reward [\d.-]+ \| held-out [\d.]+% \| kl /);
  const rows = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(rows.length, 2);
  assert.ok('my-reward.mjs' in rows[0].rewards && 'math' in rows[0].rewards && typeof rows[0].kl === 'number');
  // Resume to 3 batches, after a kill left a cut metrics line and a temporary checkpoint folder
  // of a process that is gone.
  appendFileSync(path.join(out, 'metrics.jsonl'), '{"step": 3, "lo');
  mkdirSync(path.join(out, 'checkpoint.tmp-999999999'));
  const r2 = run([...args, '--resume']);
  assert.equal(r2.status, 0, r2.stderr);
  assert.match(r2.stderr, /resumed from .*checkpoint at batch 2/);
  assert.deepEqual(readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step), [1, 2, 3]);
  assert.ok(!existsSync(path.join(out, 'checkpoint.tmp-999999999')));
  assert.ok(existsSync(path.join(out, 'model.safetensors')) && existsSync(path.join(out, 'report.html')));
  // The recipes' switches from the command line (--length-penalty may come without a value).
  const k = run(['rl', 'grpo', '--model', mdir, '--data', data, '--reward', 'math,format:0.1', '--out', path.join(dir, 'kimi'), '--steps', '1', '--prompts-per-step', '2',
    '--group-size', '4', '--max-new-tokens', '6', '--loss', 'k1.5', '--length-penalty', '--curriculum', '--overlong-buffer', '2', '--overlong-filter', '--dynamic-sampling', '--max-resample', '1']);
  assert.equal(k.status, 0, k.stderr);
  const st = JSON.parse(readFileSync(path.join(dir, 'kimi', 'checkpoint', 'trainer_state.json'), 'utf8'));
  assert.deepEqual([st.options.loss, st.options.lengthPenalty, st.options.sampling, st.options.overlongBuffer, st.options.overlongFilter, st.options.dynamicSampling], ['k1.5', 1, 'curriculum', 2, true, true]);
  // Shortest rejection sampling with a reward every completion passes.
  writeFileSync(path.join(dir, 'yes.mjs'), 'export function reward() { return 1; }\n');
  const sr = run(['rl', 'shortest-rejection', '--model', mdir, '--data', data, '--reward', './yes.mjs', '--samples', '3', '--max-new-tokens', '4', '--out', path.join(dir, 'short.jsonl')]);
  assert.equal(sr.status, 0, sr.stderr);
  const picked = readFileSync(path.join(dir, 'short.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(picked.length, 12);
  assert.ok(typeof picked[0].prompt === 'string' && typeof picked[0].completion === 'string');
  // Bad input.
  writeFileSync(path.join(dir, 'bad.jsonl'), '{"prompt": "a", "answer": "1"}\n{"prompt": 5}\n');
  const b1 = run(['rl', 'grpo', '--model', mdir, '--data', path.join(dir, 'bad.jsonl'), '--reward', 'math', '--out', path.join(dir, 'x')]);
  assert.equal(b1.status, 1);
  assert.match(b1.stderr, /bad\.jsonl:2: "prompt" must be a string/);
  writeFileSync(path.join(dir, 'nofn.mjs'), 'export const x = 1;\n');
  const b2 = run(['rl', 'grpo', '--model', mdir, '--data', data, '--reward', './nofn.mjs', '--out', path.join(dir, 'x')]);
  assert.notEqual(b2.status, 0);
  assert.match(b2.stderr, /nofn\.mjs.*(export|function)/);
  const b3 = run(['rl', 'grpo', '--model', mdir, '--data', data, '--reward', 'math', '--out', path.join(dir, 'x'), '--loss', 'ppo']);
  assert.equal(b3.status, 2);
  assert.match(b3.stderr, /--loss must be one of grpo, bnpo, dapo, dr_grpo, gspo, k1\.5/);
  const other = createModel({ model_type: 'llama', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: tok.vocabSize + 3, max_position_embeddings: 48, tie_word_embeddings: true });
  await saveModel(other, path.join(dir, 'other'));
  other.dispose();
  const b4 = run(['rl', 'grpo', '--model', mdir, '--data', data, '--reward', 'math', '--out', path.join(dir, 'x'), '--beta', '0.1', '--ref-model', path.join(dir, 'other'), '--steps', '1']);
  assert.equal(b4.status, 1);
  assert.ok(b4.stderr.includes(`other: vocabulary of ${tok.vocabSize + 3} tokens, the policy's has ${tok.vocabSize}`), b4.stderr);
});
