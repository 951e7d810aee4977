// Speculative decoding as a user runs it: `tslm generate|chat --medusa DIR | --draft-model DIR |
// --lookup [N]` (and --medusa with --lookup) in child processes print plain greedy decoding's ids and a line of what the
// method achieved; bad combinations are usage errors (exit 2) and heads of another model are
// refused naming the field before decoding; `tslm serve --medusa DIR` answers a real HTTP client
// with plain decoding's text and reports usage.speculative (n > 1 falls back and says why).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, shutdown, createModel, saveModel, generate, loadModel, Generator } from '../../src/index.js';
import { MedusaHeads } from '../../src/nn/medusa.js';
import { saveMedusaHeads } from '../../src/io/medusa.js';
import { applyChatTemplate } from '../../src/tokenizers/chat.js';
import { makeTinyModelDir, serveProcess, CHATML } from '../serve/fixture.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const bin = path.join(root, 'bin', 'tslm.js');
const run = (args: string[], input?: string) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', input, env: { ...process.env, TSLM_THREADS: '1' } });
let dir = '', model = '', heads = '', draft = '', otherHeads = '';

before(async () => {
  await init({ threads: 1 });
  dir = mkdtempSync(path.join(tmpdir(), 'tslm-spec-cli-'));
  model = await makeTinyModelDir(path.join(dir, 'model'), { seed: 5 });
  draft = await makeTinyModelDir(path.join(dir, 'draft'), { seed: 6 });
  const { model: m } = await loadModel(model);
  const h = MedusaHeads.fromBase(m, { heads: 3, layers: 1 });
  heads = path.join(dir, 'heads');
  await saveMedusaHeads(h, heads);
  h.dispose();
  m.dispose();
  // heads of a model with another hidden size
  const o = createModel({ model_type: 'llama', hidden_size: 48, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 360, max_position_embeddings: 64 }, 'o', { generator: new Generator(1) });
  const oh = MedusaHeads.fromBase(o, { heads: 2, layers: 1 });
  otherHeads = path.join(dir, 'other-heads');
  await saveMedusaHeads(oh, otherHeads);
  oh.dispose();
  o.dispose();
});
after(async () => { await shutdown(); rmSync(dir, { recursive: true, force: true }); });

const ids = (stdout: string) => stdout.trim().split('\n').pop()!.split(' ').map(Number);

test('generate --medusa / --draft-model / --lookup: plain greedy ids, and the method\'s line', () => {
  const base = ['generate', '--model', model, '--prompt', 'The quick brown fox jumps over the lazy dog. The quick brown', '--max-tokens', '24', '--print-ids'];
  const plain = run(base);
  assert.equal(plain.status, 0, plain.stderr);
  const want = ids(plain.stdout);
  assert.equal(want.length, 24);
  for (const [flags, method] of [[['--medusa', heads], 'medusa'], [['--draft-model', draft, '--num-draft', '3'], 'draft'], [['--lookup'], 'lookup'], [['--lookup', '5', '--lookup-ngram', '2'], 'lookup'], [['--lookup', '--lookup-context', '4'], 'lookup'], [['--medusa', heads, '--lookup', '--lookup-context', '2'], 'medusa']] as [string[], string][]) {
    const r = run([...base, ...flags]);
    assert.equal(r.status, 0, `${flags.join(' ')}: ${r.stderr}`);
    assert.deepEqual(ids(r.stdout), want, `${flags.join(' ')}: the ids of plain greedy decoding`);
    assert.match(r.stderr, new RegExp(`speculative \\(${method}\\): \\d+ verification steps, mean accepted length [\\d.]+ tokens per model call, acceptance rate [\\d.]+%`), flags.join(' '));
  }
  // chat takes the same flags
  const c = run(['chat', '--model', model, '--max-tokens', '6', '--lookup', '4'], 'hi\n/exit\n');
  assert.equal(c.status, 0, c.stderr);
  assert.match(c.stderr, /\[speculative \(lookup\)/);
});

test('bad speculative flags: usage errors before loading, heads of another model named', () => {
  const base = ['generate', '--model', model, '--max-tokens', '4'];
  for (const [flags, re] of [
    [['--medusa', heads, '--draft-model', draft], /give one of --medusa, --draft-model, --lookup, or --medusa with --lookup/],
    [['--lookup-context', '4'], /--lookup-context needs --lookup/],
    [['--lookup', '--lookup-context', '0'], /--lookup-context: expected a positive integer/],
    [['--medusa', heads, '--lookup', '--lookup-match', 'first'], /--lookup-match is not available with --medusa/],
    [['--medusa', heads, '--lookup', '--lookup-context', '0'], /--lookup-context: expected a positive integer/],
    [['--num-draft', '3'], /--num-draft needs --draft-model/],
    [['--lookup', '--lookup-ngram', '0'], /--lookup-ngram: expected a positive integer/],
    [['--medusa', heads, '--medusa-acceptance', 'fast'], /--medusa-acceptance: exact or typical/],
    [['--medusa', heads, '--medusa-choices', '[[0], [1, 5]]'], /medusa_choices\[1\] = \[1, 5\]: its parent \[1\] is not in the tree/],
  ] as [string[], RegExp][]) {
    const r = run([...base, ...flags]);
    assert.notEqual(r.status, 0, flags.join(' '));
    assert.match(r.stderr, re, flags.join(' '));
  }
  const r = run([...base, '--medusa', otherHeads]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /hidden_size/);
});


test('serve --medusa: chat completions equal plain decoding, usage.speculative reports it; n = 2 falls back and says so', async () => {
  const { proc, url } = await serveProcess(['--model', model, '--port', '0', '--threads', '1', '--quiet', '--medusa', heads]);
  try {
    const messages = [{ role: 'user', content: 'Hello, world! How are you today?' }];
    const post = async (body: Record<string, unknown>) => {
      const r = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'model', messages, max_tokens: 16, temperature: 0, ...body }) });
      assert.equal(r.status, 200);
      return await r.json() as { choices: { message: { content: string } }[]; usage: { completion_tokens: number; speculative: Record<string, unknown> } };
    };
    const { model: m, tokenizer } = await loadModel(model);
    const prompt = tokenizer!.encode(applyChatTemplate(messages, { template: CHATML, addGenerationPrompt: true, bosToken: '', eosToken: '<|im_end|>' }), { specials: true });
    const want = generate(m, prompt, { maxNewTokens: 16, stopIds: [tokenizer!.specialTokens.get('<|im_end|>')!], tokenizer: tokenizer!, stopStrings: ['<|im_end|>'] });
    m.dispose();
    const one = await post({});
    assert.equal(one.choices[0].message.content, want.text![0]);
    assert.equal(one.usage.speculative.method, 'medusa');
    assert.equal(typeof one.usage.speculative.mean_accepted_length, 'number');
    const two = await post({ n: 2 });
    assert.equal(two.choices.length, 2);
    assert.equal(two.choices[1].message.content, want.text![0]);
    assert.deepEqual(two.usage.speculative.method, null);
    assert.match(String(two.usage.speculative.reason), /n = 2: medusa decoding runs one sequence at a time/);
  } finally {
    proc.kill('SIGTERM');
  }
});
