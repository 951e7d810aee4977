// Tokenising off the event loop: the worker thread that holds a copy of a served model's tokenizer
// must give exactly the ids the tokenizer gives in place (every tokenizer kind, specials, Chinese,
// chat templates), refuse over-long renders and over-budget jobs with the right kind of error and
// recover after them; and the server must route long prompts through it with the same results.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, shutdown } from '../../src/backend/index.js';
import { loadTokenizer } from '../../src/tokenizers/load.js';
import { tokenizerFromBytes } from '../../src/tokenizers/from_bytes.js';
import { Llama2cTokenizer } from '../../src/tokenizers/llama2c.js';
import { applyChatTemplate } from '../../src/tokenizers/chat.js';
import { TokenizerThread, TokenizeError, encodeTexts, OFF_THREAD_CHARS } from '../../src/serve/tokenize.js';
import { startServer, type RunningServer } from '../../src/serve/server.js';
import { gpt2Json } from '../tokenizers/real_vocabs.js';
import { makeTinyModelDir, CHATML } from './fixture.js';

const FIX = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'tokenizers');
const TEXTS = [
  'Hello world! The quick brown fox jumps over the lazy dog.',
  '床前明月光，疑是地上霜。举头望明月，低头思故乡。 mixed 中文 and English\n\ttabs  and   spaces',
  '<|endoftext|> a special token in the text, and emoji 😀🎉, and bytes \u0000\u0007',
  '',
];
let work = '';
const threads: TokenizerThread[] = [];

before(async () => {
  await init({ threads: 1 });
  work = mkdtempSync(path.join(tmpdir(), 'tslm-tokenize-thread-'));
});
after(async () => {
  await Promise.all(threads.map((t) => t.close()));
  await shutdown();
  rmSync(work, { recursive: true, force: true });
});

function thread(source: ConstructorParameters<typeof TokenizerThread>[0]): TokenizerThread {
  const t = new TokenizerThread(source);
  threads.push(t);
  return t;
}

test('the thread encodes exactly as the tokenizer does in place, for every tokenizer kind', async () => {
  const gpt2 = path.join(work, 'tokenizer.json');
  writeFileSync(gpt2, JSON.stringify(gpt2Json()));
  const files = [gpt2, path.join(FIX, 'sp_bpe.model'), path.join(FIX, 'sp_nfkc.model'), path.join(FIX, 'tokenizer.bin')];
  for (const f of files) {
    const tok = loadTokenizer(f);
    const th = thread({ path: f });
    for (const specials of [true, false]) {
      const got = await th.encode(TEXTS, { specials });
      assert.deepEqual(got, TEXTS.map((t) => tok.encode(t, { specials })), `${path.basename(f)} specials=${specials}`);
    }
  }
  // A GGUF's vocabulary travels as the tokenizer.bin bytes it serialises to.
  const l2c = loadTokenizer(path.join(FIX, 'tokenizer.bin')) as Llama2cTokenizer;
  const th = thread({ bytes: l2c.serialize(), path: 'model.gguf (vocabulary).bin' });
  assert.deepEqual(await th.encode(TEXTS), TEXTS.map((t) => l2c.encode(t)));
  assert.deepEqual(tokenizerFromBytes(l2c.serialize(), 'x.bin').encode(TEXTS[1]), l2c.encode(TEXTS[1]));
});

test('chat jobs render the template and encode on the thread; bad templates and long renders are refused by kind', async () => {
  const tok = loadTokenizer(path.join(FIX, 'sp_bpe.model'));
  const th = thread({ path: path.join(FIX, 'sp_bpe.model') });
  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: TEXTS[1] }];
  const template = { template: CHATML, addGenerationPrompt: true, bosToken: '', eosToken: '<|im_end|>' };
  const ids = await th.chat(messages, template, 1 << 20, { specials: true });
  assert.deepEqual(ids, tok.encode(applyChatTemplate(messages, template), { specials: true }));
  await assert.rejects(th.chat(messages, { ...template, template: '{% for m in messages %}{{ m.content' }, 1 << 20), (e: unknown) => e instanceof TokenizeError && e.kind === 'render' && /chat_template/.test(e.message));
  const bytes = Buffer.byteLength(applyChatTemplate(messages, template));
  await assert.rejects(th.chat(messages, template, bytes - 1), (e: unknown) => e instanceof TokenizeError && e.kind === 'bytes' && e.bytes === bytes);
  assert.deepEqual(await th.chat(messages, template, bytes), ids, 'exactly at the bound is accepted');
});

test('a job past its time budget is stopped (kind "timeout") and the next one runs on a fresh thread', async () => {
  const f = path.join(work, 'tokenizer.json');
  writeFileSync(f, JSON.stringify(gpt2Json()));
  const tok = loadTokenizer(f);
  const th = thread({ path: f });
  const long = 'the quick brown fox jumps over the lazy dog. '.repeat(40_000);
  await assert.rejects(th.encode([long], {}, 1), (e: unknown) => e instanceof TokenizeError && e.kind === 'timeout');
  assert.deepEqual(await th.encode([TEXTS[0]]), [tok.encode(TEXTS[0])]);
  // A tokenizer that cannot be built on the thread is an error of the job, not a crash.
  const bad = thread({ path: path.join(work, 'missing.json') });
  await assert.rejects(bad.encode(['x']), (e: unknown) => e instanceof TokenizeError && e.kind === 'error' && /missing\.json/.test(e.message));
});

test('encodeTexts keeps short inputs in place and sends long ones to the thread', async () => {
  const tok = loadTokenizer(path.join(FIX, 'tokenizer.bin'));
  const th = thread({ path: path.join(FIX, 'tokenizer.bin') });
  const short = ['a'.repeat(OFF_THREAD_CHARS)];
  assert.deepEqual(await encodeTexts(tok, th, short), short.map((t) => tok.encode(t)));
  assert.equal(th.done, 0);
  const long = ['b'.repeat(OFF_THREAD_CHARS / 2), 'c'.repeat(OFF_THREAD_CHARS / 2 + 1)];
  assert.deepEqual(await encodeTexts(tok, th, long), long.map((t) => tok.encode(t)));
  assert.equal(th.done, 1);
});

test('the server tokenises long prompts, chats and embedding inputs on the thread with unchanged results', async () => {
  const dir = await makeTinyModelDir(path.join(work, 'tiny'), { maxPositions: 8192 });
  let server: RunningServer | null = null;
  try {
    server = await startServer({ model: dir, port: 0 });
    const m = server.registry.defaultModel!;
    const post = async (p: string, body: unknown): Promise<any> => {
      const r = await fetch(`${server!.url}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: r.status, json: await r.json() };
    };
    const prompt = 'The quick brown fox jumps over the lazy dog. 床前明月光。'.repeat(120); // > OFF_THREAD_CHARS
    assert.ok(prompt.length > OFF_THREAD_CHARS);
    const tok = m.tokenizer!;
    const c = await post('/v1/completions', { prompt, max_tokens: 1, temperature: 0 });
    assert.equal(c.status, 200, JSON.stringify(c.json));
    assert.equal(c.json.usage.prompt_tokens, 1 + tok.encode(prompt).length);
    assert.equal(m.tokenizerThread!.done, 1);
    const messages = Array.from({ length: 100 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `message ${i}` }));
    const ch = await post('/v1/chat/completions', { messages, max_tokens: 1, temperature: 0 });
    assert.equal(ch.status, 200, JSON.stringify(ch.json));
    const rendered = applyChatTemplate(messages, { template: CHATML, addGenerationPrompt: true, bosToken: '<|endoftext|>', eosToken: '<|im_end|>' });
    assert.equal(ch.json.usage.prompt_tokens, tok.encode(rendered, { specials: true }).length);
    assert.equal(m.tokenizerThread!.done, 2);
    const e = await post('/v1/embeddings', { input: [prompt.slice(0, 3000), prompt.slice(0, 3000)] });
    assert.equal(e.status, 200, JSON.stringify(e.json));
    assert.equal(e.json.usage.prompt_tokens, 2 * (1 + tok.encode(prompt.slice(0, 3000)).length));
    assert.equal(m.tokenizerThread!.done, 3);
    // Over the context after tokenising on the thread: a 400 naming the context, as in place.
    const over = await post('/v1/completions', { prompt: prompt.repeat(8), max_tokens: 1 });
    assert.equal(over.status, 400);
    assert.equal(over.json.error.code, 'context_length_exceeded');
  } finally {
    await server?.close();
  }
});
