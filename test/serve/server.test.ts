// `tslm serve` as a real process on localhost, driven by the official `openai` npm client (and by
// raw HTTP for what a client library would not send): plain and streamed chat completions equal
// to generate() run in this process with the same options, completions, embeddings, json_schema
// and tool calls validated by ajv, logprobs, n, usage, errors in OpenAI's shape, body limits,
// model paths that try to leave the models directory, cancellation on disconnect, and a bounded
// load test with no failed request.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, symlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { Ajv } from 'ajv';
import { init, shutdown } from '../../src/backend/index.js';
import { loadModel } from '../../src/io/model.js';
import { generate } from '../../src/generate/generate.js';
import { applyChatTemplate } from '../../src/tokenizers/chat.js';
import { loadTest } from '../../src/serve/loadtest.js';
import type { CausalLM } from '../../src/models/causal.js';
import type { Tokenizer } from '../../src/tokenizers/tokenizer.js';
import { makeTinyModelDir, serveProcess, CHATML } from './fixture.js';
import { pngBytes } from '../../src/vision/png.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
let dir = '', work = '', url = '', proc: ChildProcess | null = null;
let client: OpenAI;
let ref: { model: CausalLM; tokenizer: Tokenizer };
let refMamba: { model: CausalLM; tokenizer: Tokenizer };
let refMoe: { model: CausalLM; tokenizer: Tokenizer };
const ajv = new Ajv({ strict: false });


before(async () => {
  await init({ threads: 1 });
  work = mkdtempSync(path.join(tmpdir(), 'tslm-serve-test-'));
  dir = await makeTinyModelDir(path.join(work, 'tiny'));
  // A models directory with one model of its own and a symlink that points outside it.
  const models = path.join(work, 'models');
  cpSync(dir, path.join(models, 'other'), { recursive: true });
  symlinkSync(dir, path.join(models, 'escape'));
  // and a Mamba: the server knows no family, only the model contract
  await makeTinyModelDir(path.join(models, 'mamba'), { family: 'mamba', seed: 3 });
  await makeTinyModelDir(path.join(models, 'moe'), { family: 'mixtral', seed: 4 });
  const loaded = await loadModel(dir);
  ref = { model: loaded.model, tokenizer: loaded.tokenizer! };
  const m = await loadModel(path.join(models, 'mamba'));
  refMamba = { model: m.model, tokenizer: m.tokenizer! };
  const e = await loadModel(path.join(models, 'moe'));
  refMoe = { model: e.model, tokenizer: e.tokenizer! };
  ({ proc, url } = await serveProcess(['--model', dir, '--models-dir', models, '--port', '0', '--threads', '1', '--max-active', '2', '--max-tokens-limit', '256', '--max-body-bytes', '65536', '--quiet']));
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
});

after(async () => {
  proc?.kill('SIGTERM');
  ref?.model.dispose();
  refMamba?.model.dispose();
  refMoe?.model.dispose();
  await shutdown();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** What the server should produce for a chat request: generate() here with the same options. */
function expectedChat(messages: { role: string; content: string }[], o: { max_tokens: number; temperature: number; top_p?: number; seed: number }, r0 = ref): { text: string; promptTokens: number; tokens: number } {
  const ref = r0;
  const ids = ref.tokenizer.encode(applyChatTemplate(messages, { template: CHATML, addGenerationPrompt: true, eosToken: '<|im_end|>' }), { specials: true });
  const r = generate(ref.model, ids, { maxNewTokens: o.max_tokens, temperature: o.temperature, topP: o.top_p, seed: o.seed, tokenizer: ref.tokenizer, stopIds: [ref.tokenizer.specialTokens.get('<|im_end|>')!] });
  return { text: r.text![0], promptTokens: ids.length, tokens: r.ids[0].length };
}

test('GET /v1/models and /health list the served models, without the one that escapes the directory', async () => {
  const list = await client.models.list();
  const ids = list.data.map((m) => m.id).sort();
  assert.deepEqual(ids, ['mamba', 'moe', 'other', 'tiny']);
  const h = await (await fetch(`${url}/health`)).json();
  assert.equal(h.status, 'ok');
});

test('chat completion equals generate() with the same seed, and usage counts tokens', async () => {
  const messages = [{ role: 'system' as const, content: 'You are terse.' }, { role: 'user' as const, content: 'Hello! 你好' }];
  const o = { max_tokens: 12, temperature: 0.8, top_p: 0.9, seed: 42 };
  const r = await client.chat.completions.create({ model: 'tiny', messages, ...o });
  const want = expectedChat(messages, o);
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, 'tiny');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content, want.text);
  assert.equal(r.usage!.prompt_tokens, want.promptTokens);
  assert.equal(r.usage!.completion_tokens, want.tokens);
  assert.equal(r.usage!.total_tokens, want.promptTokens + want.tokens);
  assert.equal(r.choices[0].finish_reason, want.tokens === 12 ? 'length' : 'stop');
  // Greedy (temperature 0) too.
  const g = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 8, temperature: 0 });
  assert.equal(g.choices[0].message.content, expectedChat(messages, { max_tokens: 8, temperature: 0, seed: 0 }).text);
});

test('streamed chat arrives in several chunks that add up to the plain answer', async () => {
  const messages = [{ role: 'user' as const, content: 'Tell me a story.' }];
  const o = { max_tokens: 24, temperature: 1, seed: 7 };
  const stream = await client.chat.completions.create({ model: 'tiny', messages, ...o, stream: true, stream_options: { include_usage: true } });
  let text = '', chunks = 0, finish: string | null = null, usage = null as null | { completion_tokens: number };
  for await (const c of stream) {
    if (c.usage) usage = c.usage;
    for (const ch of c.choices) {
      if (ch.delta.content) { text += ch.delta.content; chunks++; }
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  const want = expectedChat(messages, o);
  assert.equal(text, want.text);
  assert.ok(chunks >= 3, `only ${chunks} content chunks`);
  assert.ok(finish === 'length' || finish === 'stop');
  assert.equal(usage?.completion_tokens, want.tokens);
});

test('stop strings cut the text, n gives several choices, logprobs per token', async () => {
  const messages = [{ role: 'user' as const, content: 'Count.' }];
  const base = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 20, temperature: 1, seed: 3 });
  const full = base.choices[0].message.content!;
  const stop = full.slice(5, 7);
  if (stop.length === 2 && !stop.includes('\uFFFD')) {
    const cut = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 20, temperature: 1, seed: 3, stop: [stop] });
    assert.equal(cut.choices[0].message.content, full.slice(0, full.indexOf(stop)));
    assert.equal(cut.choices[0].finish_reason, 'stop');
  }
  const many = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 6, temperature: 1, seed: 9, n: 3, logprobs: true, top_logprobs: 2 });
  assert.equal(many.choices.length, 3);
  assert.deepEqual(many.choices.map((c) => c.index), [0, 1, 2]);
  for (const c of many.choices) {
    const lp = c.logprobs!.content!;
    assert.ok(lp.length >= 1 && lp.length <= 6);
    for (const t of lp) {
      assert.ok(t.logprob <= 0 && Number.isFinite(t.logprob));
      assert.equal(t.top_logprobs.length, 2);
      assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob);
      assert.ok(t.top_logprobs[0].logprob >= t.logprob - 1e-6);
    }
  }
  assert.equal(many.usage!.completion_tokens, many.choices.reduce((s, c) => s + c.logprobs!.content!.length, 0));
});

test('response_format json_schema (strict): every sample parses and validates', async () => {
  const schema = {
    type: 'object',
    properties: { name: { type: 'string', maxLength: 12 }, age: { type: 'integer', minimum: 0, maximum: 150 }, tags: { type: 'array', items: { enum: ['a', 'b', '中文'] }, maxItems: 3 } },
    required: ['name', 'age', 'tags'],
    additionalProperties: false,
  };
  const validate = ajv.compile(schema);
  for (let seed = 0; seed < 5; seed++) {
    const r = await client.chat.completions.create({
      model: 'tiny', messages: [{ role: 'user', content: 'A person as JSON.' }], max_tokens: 120, temperature: 1, seed,
      response_format: { type: 'json_schema', json_schema: { name: 'person', strict: true, schema } },
    });
    const v = JSON.parse(r.choices[0].message.content!);
    assert.ok(validate(v), `seed ${seed}: ${r.choices[0].message.content} ${JSON.stringify(validate.errors)}`);
  }
  const o = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'JSON please' }], max_tokens: 60, seed: 1, response_format: { type: 'json_object' } });
  const parsed = JSON.parse(o.choices[0].message.content!);
  assert.equal(typeof parsed, 'object');
  assert.ok(parsed !== null && !Array.isArray(parsed));
});

test('tools: the model picks a tool and its arguments are schema-valid (required, named, auto)', async () => {
  const tools = [
    { type: 'function' as const, function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 16 }, unit: { enum: ['c', 'f'] } }, required: ['city', 'unit'] } } },
    { type: 'function' as const, function: { name: 'add', parameters: { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'integer' } }, required: ['a', 'b'] } } },
  ];
  const byName = new Map(tools.map((t) => [t.function.name, ajv.compile({ ...t.function.parameters, additionalProperties: false })]));
  for (let seed = 0; seed < 4; seed++) {
    const r = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Weather in Paris?' }], tools, tool_choice: 'required', max_tokens: 100, temperature: 1, seed });
    const c = r.choices[0];
    assert.equal(c.finish_reason, 'tool_calls');
    assert.equal(c.message.content, null);
    const call = c.message.tool_calls![0];
    assert.equal(call.type, 'function');
    assert.ok(call.id.length > 0);
    if (call.type !== 'function') continue;
    const validate = byName.get(call.function.name);
    assert.ok(validate, `unknown tool ${call.function.name}`);
    assert.ok(validate(JSON.parse(call.function.arguments)), `${call.function.arguments}: ${JSON.stringify(validate.errors)}`);
  }
  const named = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: '2+3?' }], tools, tool_choice: { type: 'function', function: { name: 'add' } }, max_tokens: 60, seed: 5 });
  const call = named.choices[0].message.tool_calls![0];
  assert.ok(call.type === 'function' && call.function.name === 'add' && byName.get('add')!(JSON.parse(call.function.arguments)));
  // auto: either a valid call or a text answer.
  for (let seed = 0; seed < 3; seed++) {
    const a = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], tools, max_tokens: 80, temperature: 1, seed });
    const m = a.choices[0].message;
    if (m.tool_calls?.length) {
      const t = m.tool_calls[0];
      assert.ok(t.type === 'function' && byName.get(t.function.name)!(JSON.parse(t.function.arguments)));
    } else assert.equal(typeof m.content, 'string');
  }
  // Streaming a tool call: the call arrives as a tool_calls delta.
  const s = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Weather?' }], tools, tool_choice: 'required', max_tokens: 100, seed: 2, stream: true });
  let args = '', name = '';
  for await (const ch of s) for (const c of ch.choices) for (const tc of c.delta.tool_calls ?? []) { name += tc.function?.name ?? ''; args += tc.function?.arguments ?? ''; }
  assert.ok(byName.get(name)!(JSON.parse(args)), `${name} ${args}`);
});

test('completions (text and token-id prompts, echo, logprobs) and embeddings', async () => {
  const r = await client.completions.create({ model: 'tiny', prompt: 'The quick brown', max_tokens: 8, temperature: 0.7, seed: 11, logprobs: 3 });
  const ids = [ref.tokenizer.bosId ?? 0, ...ref.tokenizer.encode('The quick brown')];
  const want = generate(ref.model, ids, { maxNewTokens: 8, temperature: 0.7, seed: 11, tokenizer: ref.tokenizer, stopIds: [ref.tokenizer.specialTokens.get('<|im_end|>')!], logprobs: true });
  assert.equal(r.choices[0].text, want.text![0]);
  assert.equal(r.usage!.prompt_tokens, ids.length);
  const lp = r.choices[0].logprobs!;
  assert.equal(lp.tokens!.length, want.ids[0].length);
  for (let i = 0; i < want.logprobs![0].length; i++) assert.ok(Math.abs(lp.token_logprobs![i] - want.logprobs![0][i]) < 1e-5);
  assert.equal(Object.keys(lp.top_logprobs![0]).length <= 3, true);
  const echo = await client.completions.create({ model: 'tiny', prompt: [ids], max_tokens: 4, temperature: 0, echo: true });
  assert.ok(echo.choices[0].text.startsWith(ref.tokenizer.decode(ids)));
  const two = await client.completions.create({ model: 'tiny', prompt: ['a', 'b'], max_tokens: 3, n: 2, seed: 1 });
  assert.deepEqual(two.choices.map((c) => c.index), [0, 1, 2, 3]);

  const e = await client.embeddings.create({ model: 'tiny', input: ['hello world', '你好，世界', 'hello world'], encoding_format: 'float' });
  assert.equal(e.data.length, 3);
  const D = ref.model.config.hidden_size;
  for (const d of e.data) {
    assert.equal(d.embedding.length, D);
    const norm = Math.hypot(...d.embedding);
    assert.ok(Math.abs(norm - 1) < 1e-5, `norm ${norm}`);
  }
  assert.deepEqual(e.data[0].embedding, e.data[2].embedding);
  assert.notDeepEqual(e.data[0].embedding, e.data[1].embedding);
  // base64 carries the same float32 values; dimensions truncates and renormalises.
  const raw = await (await fetch(`${url}/v1/embeddings`, { method: 'POST', body: JSON.stringify({ input: 'hello world', encoding_format: 'base64' }) })).json();
  const b = Buffer.from(raw.data[0].embedding, 'base64');
  const f = new Float32Array(b.buffer, b.byteOffset, b.length / 4);
  assert.deepEqual(Array.from(f), e.data[0].embedding);
  const small = await client.embeddings.create({ model: 'tiny', input: 'hello world', dimensions: 8 });
  assert.equal(small.data[0].embedding.length, 8);
});

for (const [name, what] of [['mamba', 'a Mamba'], ['moe', 'a Mixtral mixture of experts']] as const) test(`${what} from --models-dir: plain, streamed and concurrent (batched) chats equal generate() with the same seed`, async () => {
  const ref = name === 'mamba' ? refMamba : refMoe;
  const messages = [{ role: 'user' as const, content: 'Hello! 你好' }];
  const o = { max_tokens: 16, temperature: 0.8, seed: 5 };
  const want = expectedChat(messages, o, ref);
  const r = await client.chat.completions.create({ model: name, messages, ...o });
  assert.equal(r.choices[0].message.content, want.text);
  assert.equal(r.usage!.completion_tokens, want.tokens);
  // concurrent streamed requests share model calls (continuous batching of recurrent states)
  const seeds = [11, 12, 13];
  const texts = await Promise.all(seeds.map(async (seed) => {
    const s = await client.chat.completions.create({ model: name, messages, ...o, seed, stream: true });
    let text = '';
    for await (const c of s) for (const ch of c.choices) text += ch.delta.content ?? '';
    return text;
  }));
  // (rows that overlap in a batch may differ from a solo run in the last bits: a sampled token could flip only on a draw that close to a boundary)
  texts.forEach((t, i) => assert.equal(t, expectedChat(messages, { ...o, seed: seeds[i] }, ref).text, `${name} seed ${seeds[i]}`));
});

test('models from --models-dir load on demand; names cannot leave the directory', async () => {
  const r = await client.chat.completions.create({ model: 'other', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, seed: 1 });
  assert.equal(r.model, 'other');
  for (const name of ['escape', '../tiny', '..', '/etc/passwd', 'other/../../tiny', `${dir}`, 'nope']) {
    await assert.rejects(client.chat.completions.create({ model: name, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }), (e: any) => {
      assert.equal(e.status, 404, name);
      assert.equal(e.code, 'model_not_found');
      return true;
    });
  }
  const raw = await fetch(`${url}/v1/models/..%2F..%2Fetc`);
  assert.equal(raw.status, 404);
});

test('bad requests get OpenAI-style 4xx errors and the server keeps serving', async () => {
  const msg = [{ role: 'user' as const, content: 'x' }];
  const cases: [Record<string, unknown>, number, string | null][] = [
    [{ model: 'tiny', messages: msg, max_tokens: -5 }, 400, 'max_tokens'],
    [{ model: 'tiny', messages: msg, max_tokens: 100000 }, 400, 'max_tokens'],
    [{ model: 'tiny', messages: msg, max_tokens: 1.5 }, 400, 'max_tokens'],
    [{ model: 'tiny', messages: msg, temperature: 3 }, 400, 'temperature'],
    [{ model: 'tiny', messages: msg, n: 0 }, 400, 'n'],
    [{ model: 'tiny', messages: [] }, 400, 'messages'],
    [{ model: 'tiny', messages: [{ role: 'wizard', content: 'x' }] }, 400, 'messages[0].role'],
    [{ model: 'tiny', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, 400, 'messages[0].content[0].image_url.url'],
    [{ model: 'tiny', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${pngBytes({ width: 2, height: 2, pixels: new Float32Array(4) }).toString('base64')}` } }] }] }, 400, 'messages[0].content[0]'],
    [{ model: 'tiny', messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: '' } }] }] }, 400, 'messages[0].content[0]'],
    [{ model: 'tiny', messages: msg, response_format: { type: 'json_schema', json_schema: { name: 's', schema: { type: 'string', not: { format: 'email' } } } } }, 400, 'response_format.json_schema.schema'],
    [{ model: 'tiny', messages: msg, response_format: { type: 'json_schema', json_schema: { name: 's', schema: { type: 'bogus' } } } }, 400, 'response_format.json_schema.schema'],
    [{ model: 'tiny', messages: msg, response_format: { type: 'xml' } }, 400, 'response_format.type'],
    [{ model: 'tiny', messages: msg, tools: [{ type: 'function', function: { name: 'a b' } }] }, 400, 'tools[0].function.name'],
    [{ model: 'tiny', messages: msg, tools: [{ type: 'function', function: { name: 'f' } }], tool_choice: { type: 'function', function: { name: 'g' } } }, 400, 'tool_choice'],
    [{ model: 'tiny', messages: msg, stop: ['a', 'b', 'c', 'd', 'e'] }, 400, 'stop'],
    [{ model: 'tiny', messages: msg, logit_bias: { 999999: 5 } }, 400, 'logit_bias'],
    [{ model: 'tiny', messages: [{ role: 'user', content: 'word '.repeat(700) }] }, 400, 'messages'],
    [{ model: 'no-such-model', messages: msg }, 404, 'model'],
  ];
  for (const [body, status, param] of cases) {
    const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(res.status, status, JSON.stringify(body).slice(0, 120));
    const j = await res.json();
    assert.equal(typeof j.error.message, 'string');
    assert.equal(typeof j.error.type, 'string');
    assert.equal(j.error.param, param, j.error.message);
  }
  // The client library raises typed errors with the status.
  await assert.rejects(client.chat.completions.create({ model: 'tiny', messages: msg, max_tokens: -1 }), (e: any) => e instanceof OpenAI.BadRequestError && e.status === 400);
  // Malformed JSON, an empty body, a wrong method, an unknown route, an oversized body.
  const post = (body: string, p = '/v1/chat/completions') => fetch(`${url}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  for (const [res, status] of [
    [await post('{"model": "tiny", "messages": ['), 400],
    [await post(''), 400],
    [await fetch(`${url}/v1/chat/completions`), 405],
    [await post('{}', '/v1/nothing'), 404],
    [await post(' '.repeat(100000)), 413],
  ] as const) {
    assert.equal(res.status, status);
    const j = await res.json();
    assert.equal(typeof j.error.message, 'string');
  }
  // Still serving.
  const ok = await client.chat.completions.create({ model: 'tiny', messages: msg, max_tokens: 2 });
  assert.equal(ok.choices.length, 1);
});

test('a client that disconnects cancels its generation', async () => {
  const ac = new AbortController();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST', signal: ac.signal, headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'go on forever' }], max_tokens: 256, temperature: 1, seed: 1, stream: true }),
  });
  const reader = res.body!.getReader();
  await reader.read();
  let h = await (await fetch(`${url}/health`)).json();
  assert.equal(h.active, 1);
  ac.abort();
  for (let i = 0; i < 50 && h.active > 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
    h = await (await fetch(`${url}/health`)).json();
  }
  assert.equal(h.active, 0, 'the generation is still running after the client left');
});

test('concurrent clients: fair scheduling and a bounded load test with no failures', async () => {
  // Running requests take turns token by token: a short request sent while a long one runs
  // finishes first.
  // The long request streams; the short one is sent once the long one's first token arrived.
  const stream = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'long' }], max_tokens: 250, temperature: 1, seed: 1, stream: true, logit_bias: { [ref.tokenizer.specialTokens.get('<|im_end|>')!]: -100 } });
  const it = stream[Symbol.asyncIterator]();
  await it.next();
  const a = (async () => { let n = 0; for (let r = await it.next(); !r.done; r = await it.next()) n++; assert.ok(n > 100); return performance.now(); })();
  const short = client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'short' }], max_tokens: 2 }).then(() => performance.now());
  const [ta, ts] = await Promise.all([a, short]);
  assert.ok(ts < ta, 'the short request waited for the long one');
  const calls0 = (await (await fetch(`${url}/health`)).json()).loaded.tiny.batch.calls;
  const r = await loadTest({ url, clients: 6, requests: 24, stream: true, body: (i) => ({ model: 'tiny', messages: [{ role: 'user', content: `hi ${i}` }], max_tokens: 8, seed: i, logit_bias: { [ref.tokenizer.specialTokens.get('<|im_end|>')!]: -100 } }) });
  assert.equal(r.failed, 0, r.errors.join('\n'));
  assert.equal(r.ok, 24);
  assert.equal(r.completionTokens, 24 * 8);
  // Continuous batching: concurrent requests share model calls (24 prefills + far fewer decode
  // calls than the 24 × 7 a request-at-a-time server makes).
  const calls = (await (await fetch(`${url}/health`)).json()).loaded.tiny.batch.calls - calls0;
  assert.ok(calls < 24 + 24 * 7, `${calls} model calls for 24 requests`);
  assert.ok(r.latencyMs.p99 >= r.latencyMs.p50 && r.requestsPerSecond > 0);
});
