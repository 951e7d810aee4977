// `tslm finetune`, `tslm generate --adapter` and `tslm merge-lora` as a user runs them, and their
// errors on bad input.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '../../src/index.js';
import { init, shutdown, createModel, saveModel, loadModel, generate, trainByteLevelBPE, Generator } from '../../src/index.js';
import { loadAdapter } from '../../src/lora/peft.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const bin = path.join(root, 'bin', 'tslm.js');
const run = (args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, TSLM_THREADS: '1' } });
let dir = '';
const WORDS = ['red', 'blue', 'green', 'cat', 'dog', 'sun', 'moon', 'tree'];

before(async () => { await init({ threads: 1 }); dir = mkdtempSync(path.join(tmpdir(), 'tslm-sft-cli-')); });
after(async () => { await shutdown(); rmSync(dir, { recursive: true, force: true }); });

test('finetune (LoRA) → PEFT adapter; generate --adapter; merge-lora gives the same tokens; clear errors', async () => {
  const tok = trainByteLevelBPE(['Below is an instruction that describes a task. Write a response that appropriately completes the request. ### Instruction: ### Response: Name a colour. red blue green cat dog sun moon tree'], { vocabSize: 280, specialTokens: ['<|endoftext|>'] });
  const m = createModel({ model_type: 'llama', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: tok.vocabSize, max_position_embeddings: 128, tie_word_embeddings: true, bos_token_id: 0, eos_token_id: 0 });
  T.copyInto((m as T.LlamaForCausalLM).model.embed_tokens.weight, T.randn([tok.vocabSize, 32], { std: 1, generator: new Generator(4) }));
  const mdir = path.join(dir, 'base');
  await saveModel(m, mdir, { tokenizer: tok });
  m.dispose();
  const g = new Generator(0);
  const rows = Array.from({ length: 24 }, () => ({ instruction: 'Name a colour.', input: '', output: WORDS[g.int(3)] }));
  const data = path.join(dir, 'data.json');
  writeFileSync(data, JSON.stringify(rows));
  const adir = path.join(dir, 'adapter');
  const r = run(['finetune', '--model', mdir, '--data', data, '--out', adir, '--lora-r', '4', '--lora-alpha', '8', '--lora-targets', 'q_proj,v_proj,down_proj', '--steps', '6', '--batch-size', '4', '--lr', '0.01']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /LoRA r=4 alpha=8 on q_proj,v_proj,down_proj: [\d,]+ trainable of [\d,]+ parameters/);
  assert.match(r.stderr, /validation loss [\d.]+ → [\d.]+/);
  const cfg = JSON.parse(readFileSync(path.join(adir, 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.peft_type, 'LORA');
  assert.deepEqual([cfg.r, cfg.lora_alpha, cfg.target_modules], [4, 8, ['down_proj', 'q_proj', 'v_proj']]);
  assert.ok(existsSync(path.join(adir, 'adapter_model.safetensors')));

  // generate --adapter = the library with the adapter loaded
  const { model, tokenizer } = await loadModel(mdir);
  await loadAdapter(model, adir);
  model.eval();
  const prompt = 'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nName a colour.\n\n### Response:\n';
  const expected = generate(model, [0, ...tokenizer!.encode(prompt)], { maxNewTokens: 6, stopIds: [] }).ids[0];
  model.dispose();
  const gen = run(['generate', '--model', mdir, '--adapter', adir, '--prompt', prompt, '--max-tokens', '6', '--print-ids']);
  assert.equal(gen.status, 0, gen.stderr);
  const idsOf = (out: string) => out.trim().split('\n').pop()!.split(' ').filter(Boolean).map(Number);
  const got = idsOf(gen.stdout);
  const eos = expected.indexOf(0);
  assert.deepEqual(got, eos < 0 ? expected : expected.slice(0, eos), 'CLI stops at EOS');
  // merged model: same tokens without the adapter
  const merged = path.join(dir, 'merged');
  const mg = run(['merge-lora', '--model', mdir, '--adapter', adir, '--out', merged]);
  assert.equal(mg.status, 0, mg.stderr);
  assert.ok(existsSync(path.join(merged, 'tokenizer.json')));
  const gm = run(['generate', '--model', merged, '--prompt', prompt, '--max-tokens', '6', '--print-ids']);
  assert.equal(gm.status, 0, gm.stderr);
  assert.deepEqual(idsOf(gm.stdout), got);

  // bad input
  writeFileSync(data, JSON.stringify([...rows.slice(0, 2), { instruction: 'x', outptu: 'y' }]));
  const bad = run(['finetune', '--model', mdir, '--data', data, '--out', path.join(dir, 'x')]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /data\.json: row 3: missing "output"/);
  writeFileSync(data, JSON.stringify(rows));
  const unk = run(['finetune', '--model', mdir, '--data', data, '--out', path.join(dir, 'x'), '--lora-targets', 'q_proj,query_key_value']);
  assert.equal(unk.status, 1);
  assert.match(unk.stderr, /unknown target module\(s\) "query_key_value"; this model's linear layers are q_proj, k_proj/);
  const big = run(['finetune', '--model', mdir, '--data', data, '--out', path.join(dir, 'x'), '--lora-r', '64', '--lora-targets', 'k_proj']);
  assert.equal(big.status, 1);
  assert.match(big.stderr, /LoRA rank r = 64 is larger than a dimension of model\.layers\.0\.self_attn\.k_proj \(16×32; at most 16\)/);
  // Rows cut so short that no response token is left: an error, not a NaN loss and exit 0.
  const cut = run(['finetune', '--model', mdir, '--data', data, '--out', path.join(dir, 'x'), '--max-length', '3', '--steps', '1']);
  assert.equal(cut.status, 1, cut.stderr);
  assert.match(cut.stderr, /no response token is left to train on after cutting the rows to 3 tokens \(--max-length\)/);
  // Rows whose prompt alone fills --max-length are left out (of the validation set too: its loss was NaN).
  const long = rows.map((r, i) => (i % 2 ? { ...r, input: 'red blue green '.repeat(60) } : r));
  writeFileSync(data, JSON.stringify(long));
  const some = run(['finetune', '--model', mdir, '--data', data, '--out', path.join(dir, 'y'), '--max-length', '128', '--steps', '1', '--val-fraction', '0.5']);
  assert.equal(some.status, 0, some.stderr);
  assert.match(some.stderr, /12 rows left out: no response token is left after cutting to 128 tokens/);
  assert.doesNotMatch(some.stderr, /NaN/);
});
