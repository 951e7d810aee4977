// `tslm generate` and `tslm chat` as a user runs them: child processes on saved model files.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '../../src/index.js';
import { init, shutdown, createModel, saveModel, exportLlama2c, generate, loadTokenizer, Generator } from '../../src/index.js';
import { fixturePath } from '../helpers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const bin = path.join(root, 'bin', 'tslm.js');
const run = (args: string[], input?: string) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', input, env: { ...process.env, TSLM_THREADS: '1' } });
let dir = '';

before(async () => { await init({ threads: 1 }); dir = mkdtempSync(path.join(tmpdir(), 'tslm-cli-')); });
after(async () => { await shutdown(); rmSync(dir, { recursive: true, force: true }); });

test('generate from an HF directory with a SentencePiece tokenizer: text, ids and speed', async () => {
  const tok = loadTokenizer(fixturePath('tokenizers/sp_bpe.model'));
  const m = createModel({ model_type: 'llama', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: tok.vocabSize, max_position_embeddings: 128, bos_token_id: 1, eos_token_id: 2 });
  const mdir = path.join(dir, 'hf');
  await saveModel(m, mdir);
  copyFileSync(fixturePath('tokenizers/sp_bpe.model'), path.join(mdir, 'tokenizer.model'));
  const expected = generate(m, [tok.bosId!, ...tok.encode('Hello 世界')], { maxNewTokens: 6, stopIds: [tok.eosId!] }).ids[0];
  const r = run(['generate', '--model', mdir, '--prompt', 'Hello 世界', '--max-tokens', '6', '--print-ids']);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.deepEqual(lines[lines.length - 1].split(' ').map(Number), expected);
  assert.ok(r.stdout.startsWith('Hello 世界'));
  assert.match(r.stderr, /prefill: \d+ tokens, [\d.]+ tok\/s; decode: \d+ tokens, [\d.]+ tok\/s/);
  // chat reads lines from stdin and answers each
  const c = run(['chat', '--model', mdir, '--max-tokens', '4'], 'hi\n/exit\n');
  assert.equal(c.status, 0, c.stderr);
  assert.match(c.stderr, /decode [\d.]+ tok\/s/);
  m.dispose();
});

test('a llama2.c checkpoint without a tokenizer generates ids from BOS; bad input fails clearly', async () => {
  const m = createModel({ model_type: 'llama', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 4, vocab_size: 40, max_position_embeddings: 32, rms_norm_eps: 1e-5 }, 'cfg');
  T.noGrad(() => (m as T.LlamaForCausalLM).model.embed_tokens.weight); // default init
  void Generator;
  const f = path.join(dir, 'model.bin');
  await exportLlama2c(m, f);
  const expected = generate(m, [1], { maxNewTokens: 5, stopIds: [] }).ids[0];
  const r = run(['generate', '--model', f, '--max-tokens', '5']);
  assert.equal(r.status, 0, r.stderr);
  const ids = r.stdout.trim().split('\n').pop()!.split(' ').map(Number);
  assert.deepEqual(ids, expected.slice(0, ids.length));
  const bad = run(['generate', '--model', path.join(dir, 'missing.bin')]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /missing\.bin: no such file/);
  assert.equal(run(['generate']).status, 2);
  assert.match(run(['generate', '--model', f, '--prompt', 'x']).stderr, /no tokenizer found/);
  m.dispose();
});

test('tslm generate on a Mamba HF directory without a tokenizer: greedy ids from the config BOS, as for LLaMA', async () => {
  const m = createModel({ model_type: 'mamba', vocab_size: 300, hidden_size: 32, state_size: 8, num_hidden_layers: 2, bos_token_id: 1, eos_token_id: 2, tie_word_embeddings: false }, 'cfg', { generator: new Generator(12) });
  const dirM = path.join(dir, 'mamba');
  await saveModel(m, dirM);
  const expected = generate(m, [1], { maxNewTokens: 10, stopIds: [2] }).ids[0];
  m.dispose();
  const r = run(['generate', '--model', dirM, '--temperature', '0', '--print-ids', '--max-tokens', '10']);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(expected.length >= 3, `a continuation (${expected})`);
  assert.deepEqual(r.stdout.trim().split('\n').pop()!.split(' ').map(Number), expected);
  assert.match(r.stderr, /decode: \d+ tokens, [\d.]+ tok\/s/);
});

test('tslm generate on Mixtral and Qwen2-MoE directories without a tokenizer (the PyTorch-checked fixtures): ids from the config BOS', async () => {
  for (const name of ['mixtral', 'qwen2_moe']) {
    const dirM = fixturePath(`moe/${name}`);
    const { model, config } = await T.loadModel(dirM);
    model.eval();
    const expected = generate(model, [config.bos_token_id as number], { maxNewTokens: 10, stopIds: [config.eos_token_id as number] }).ids[0];
    model.dispose();
    const r = run(['generate', '--model', dirM, '--temperature', '0', '--print-ids', '--max-tokens', '10']);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n').pop()!.split(' ').map(Number), expected, name);
  }
});

test('generate on a Q8_0 GGUF: weights kept quantised by default, --dtype f32 dequantises; other --dtype values get the usage message', async () => {
  const { writeLlamaGguf, loadModel } = await import('../../src/index.js');
  const { tinyLlamaConfig, tinyLlamaTensors } = await import('../io/util.js');
  const { tinySpmTokenizer } = await import('../io/tiny_llama.js');
  const cfg = tinyLlamaConfig();
  const f = path.join(dir, 'q8.gguf');
  await writeLlamaGguf(f, { config: cfg, tensors: tinyLlamaTensors(cfg, 5), tokenizer: tinySpmTokenizer(300), dtype: 'Q8_0' });
  for (const dtype of ['native', 'f32'] as const) {
    const l = await loadModel(f, { dtype });
    assert.equal(l.model.stateDict()['model.layers.0.mlp.down_proj.weight'].dtype, dtype === 'native' ? 'q8_0' : 'f32');
    const expected = generate(l.model, [1], { maxNewTokens: 8, stopIds: [] }).ids[0];
    l.model.dispose();
    const r = run(['generate', '--model', f, '--max-tokens', '8', '--print-ids', ...(dtype === 'f32' ? ['--dtype', 'f32'] : [])]);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.deepEqual(lines[lines.length - 1].split(' ').map(Number), expected, dtype);
  }
  const bad = run(['generate', '--model', f, '--dtype', 'q2_k']);
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /--dtype: invalid value 'q2_k'/);
});

test('the KV cache\'s element type: bf16 by default for quantised weights, f32 otherwise, --kv-dtype either way; bad values and models without a KV cache refused', async () => {
  const { writeLlamaGguf, loadModel } = await import('../../src/index.js');
  const { tinyLlamaConfig, tinyLlamaTensors } = await import('../io/util.js');
  const { tinySpmTokenizer } = await import('../io/tiny_llama.js');
  const { tinyMambaConfig } = await import('../io/tiny_mamba.js');
  const cfg = tinyLlamaConfig();
  const f = path.join(dir, 'q8-kv.gguf');
  await writeLlamaGguf(f, { config: cfg, tensors: tinyLlamaTensors(cfg, 5), tokenizer: tinySpmTokenizer(300), dtype: 'Q8_0' });
  const kvOf = async (opts: Record<string, string>): Promise<string> => {
    const l = await loadModel(f, opts);
    try { return (l.model as unknown as { kvDtype: string }).kvDtype; } finally { l.model.dispose(); }
  };
  assert.equal(await kvOf({}), 'bf16', 'quantised weights: a bf16 cache');
  assert.equal(await kvOf({ dtype: 'f32' }), 'f32', 'widened to f32: an f32 cache');
  assert.equal(await kvOf({ kvDtype: 'f32' }), 'f32');
  assert.equal(await kvOf({ dtype: 'f32', kvDtype: 'bf16' }), 'bf16');
  // The CLI's flag reaches the model: an f32 cache's greedy ids are loadModel's with kvDtype f32.
  const l = await loadModel(f, { kvDtype: 'f32' });
  const expected = generate(l.model, [1], { maxNewTokens: 8, stopIds: [] }).ids[0];
  l.model.dispose();
  const r = run(['generate', '--model', f, '--max-tokens', '8', '--print-ids', '--kv-dtype', 'f32']);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.deepEqual(lines[lines.length - 1].split(' ').map(Number), expected);
  const bad = run(['generate', '--model', f, '--kv-dtype', 'f16']);
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /--kv-dtype: invalid value 'f16' \(f32 or bf16/);
  await assert.rejects(loadModel(f, { kvDtype: 'q8_0' as never }), /kvDtype "q8_0" is not one of f32, bf16/);
  // A state-space model has no KV cache to keep in bf16.
  const m = createModel(tinyMambaConfig());
  const md = path.join(dir, 'mamba-kv');
  await saveModel(m, md);
  m.dispose();
  await assert.rejects(loadModel(md, { kvDtype: 'bf16' }), /kvDtype bf16: a MambaForCausalLM has no KV cache/);
  const ok = await loadModel(md);
  ok.model.dispose();
});

test('generate --dtype q4_0 quantises an f32 model as it loads (the ids of loadModel with dtype q4_0)', async () => {
  const { writeLlamaGguf, loadModel } = await import('../../src/index.js');
  const { tinyLlamaConfig, tinyLlamaTensors } = await import('../io/util.js');
  const { tinySpmTokenizer } = await import('../io/tiny_llama.js');
  const cfg = tinyLlamaConfig();
  const f = path.join(dir, 'f32-for-q4.gguf');
  await writeLlamaGguf(f, { config: cfg, tensors: tinyLlamaTensors(cfg, 5), tokenizer: tinySpmTokenizer(300), dtype: 'F32' });
  const l = await loadModel(f, { dtype: 'q4_0' });
  assert.equal(l.model.stateDict()['model.layers.0.mlp.down_proj.weight'].dtype, 'q4_0');
  const expected = generate(l.model, [1], { maxNewTokens: 8, stopIds: [] }).ids[0];
  l.model.dispose();
  const r = run(['generate', '--model', f, '--max-tokens', '8', '--print-ids', '--dtype', 'q4_0']);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.deepEqual(lines[lines.length - 1].split(' ').map(Number), expected);
});

test('tslm generate on a sliding-window Mistral runs past the window and past max_position_embeddings (rolling KV cache): full recomputation\'s greedy ids', async () => {
  const W = 4, n = 40;
  const m = createModel({ model_type: 'mistral', vocab_size: 50, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, sliding_window: W, max_position_embeddings: 16, initializer_range: 0.5, bos_token_id: 1, eos_token_id: null, tie_word_embeddings: false }, 'cfg', { generator: new Generator(7) });
  const dirM = path.join(dir, 'mistral');
  await saveModel(m, dirM);
  // The reference: every step recomputes the whole sequence (band-masked attention, no cache).
  const seq = [1];
  T.noGrad(() => { for (let i = 0; i < n; i++) T.scope(() => { seq.push(T.argmax(T.slice(m.forward(T.tensor([seq], undefined, 'i32')), 1, -1), -1).item()); }); });
  m.dispose();
  const r = run(['generate', '--model', dirM, '--temperature', '0', '--print-ids', '--max-tokens', String(n)]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n').pop()!.split(' ').map(Number), seq.slice(1));
});
