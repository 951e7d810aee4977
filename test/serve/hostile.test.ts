// Client mistakes and hostile requests against `tslm serve`: a seeded fuzzer over every route
// (bad JSON, wrong types, missing fields, huge numbers, bad URLs and request targets, unknown
// routes, wrong methods, path traversal) that must get 4xx, never 5xx; internal errors that say
// only "internal error" and an id (never a file's contents); the --model model never evicted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { init, shutdown } from '../../src/backend/index.js';
import { startServer } from '../../src/serve/server.js';
import type { RunningServer } from '../../src/serve/server.js';
import { Generator } from '../../src/tensor/random.js';
import { makeTinyModelDir } from './fixture.js';

let work = '', dir = '', models = '';
let server: RunningServer;
const logged: string[] = [];
const SECRET = 'TOP-SECRET-BYTES-0123456789';

before(async () => {
  await init({ threads: 1 });
  work = mkdtempSync(path.join(tmpdir(), 'tslm-serve-hostile-'));
  dir = await makeTinyModelDir(path.join(work, 'tiny'));
  models = path.join(work, 'models');
  mkdirSync(models);
  for (const n of ['a', 'b', 'c']) cpSync(dir, path.join(models, n), { recursive: true });
  // A model whose config.json is a symlink to a file that is not JSON (its first bytes must not
  // reach the client), and one whose config.json is valid JSON of the wrong shape.
  writeFileSync(path.join(work, 'secret.txt'), `${SECRET} and more private text`);
  cpSync(dir, path.join(models, 'broken'), { recursive: true });
  rmSync(path.join(models, 'broken', 'config.json'));
  symlinkSync(path.join(work, 'secret.txt'), path.join(models, 'broken', 'config.json'));
  cpSync(dir, path.join(models, 'wrong'), { recursive: true });
  writeFileSync(path.join(models, 'wrong', 'config.json'), JSON.stringify({ model_type: SECRET }));
  server = await startServer({ model: dir, modelsDir: models, port: 0, maxLoaded: 2, limits: { maxTokens: 6, maxBodyBytes: 1 << 16 }, errorLog: (l) => logged.push(l) });
});

after(async () => {
  await server?.close();
  await shutdown();
  rmSync(work, { recursive: true, force: true });
});

interface Answer { status: number; body: string; json: any }

async function call(method: string, p: string, body?: string, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<Answer> {
  const res = await fetch(`${server.url}${p}`, { method, headers, body });
  const text = await res.text();
  let json: any = null;
  try { json = JSON.parse(text); } catch { /* streamed or static */ }
  return { status: res.status, body: text, json };
}

/** A raw request target that fetch would normalise or refuse to send. */
function rawRequest(port: number, line: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(`${line}\r\nHost: x\r\nConnection: close\r\n\r\n`));
    let data = '';
    s.on('data', (d) => { data += d; });
    s.on('end', () => resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(data)?.[1] ?? 0), text: data }));
    s.on('error', reject);
  });
}

function assertClientError(a: Answer, what: string): void {
  assert.ok(a.status >= 400 && a.status < 500, `${what}: ${a.status} ${a.body.slice(0, 200)}`);
  assert.equal(typeof a.json?.error?.message, 'string', `${what}: not an OpenAI error body: ${a.body.slice(0, 200)}`);
}

const PALETTE: unknown[] = [
  null, true, false, 0, -1, 1.5, 1e308, -1e308, 2 ** 53 + 2, '', 'x', 'x'.repeat(5000), '%', '../../etc/passwd', [], [1, 2], [[]], {}, { a: { b: [null] } },
  [{}], [{ role: 'user' }], [{ type: 'text' }], { type: 'json_schema' }, { type: 'json_schema', json_schema: { name: 'n', schema: { $ref: '#/nope' } } },
];

const CHAT = { messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, seed: 1 };
const CHAT_FIELDS = ['model', 'messages', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'n', 'stop', 'seed', 'stream', 'stream_options',
  'logprobs', 'top_logprobs', 'logit_bias', 'presence_penalty', 'frequency_penalty', 'response_format', 'tools', 'tool_choice', 'user'];
const COMPLETION = { prompt: 'hi', max_tokens: 4, seed: 1 };
const COMPLETION_FIELDS = ['model', 'prompt', 'max_tokens', 'temperature', 'n', 'stop', 'echo', 'logprobs', 'best_of', 'suffix', 'stream', 'logit_bias'];
const EMBED = { input: 'hi' };
const EMBED_FIELDS = ['model', 'input', 'dimensions', 'encoding_format'];

test('fuzzed bodies, fields, methods, routes and URLs: never a 5xx, always an OpenAI error for a 4xx; the server keeps serving', { timeout: 120000 }, async () => {
  const g = new Generator(21);
  let tried = 0, ok = 0, refused = 0;
  const check = (a: Answer, what: string) => {
    tried++;
    assert.ok(a.status < 500, `${what}: ${a.status} ${a.body.slice(0, 300)}`);
    if (a.status >= 400) { refused++; assertClientError(a, what); } else ok++;
  };
  const routes: [string, Record<string, unknown>, string[]][] = [
    ['/v1/chat/completions', CHAT, CHAT_FIELDS], ['/v1/completions', COMPLETION, COMPLETION_FIELDS], ['/v1/embeddings', EMBED, EMBED_FIELDS],
  ];
  for (const [route, valid, fields] of routes) {
    // Every field set to every palette value, and removed.
    for (const f of fields) {
      for (const v of [undefined, ...PALETTE]) {
        const body = { ...valid, [f]: v };
        if (v === undefined) delete (body as Record<string, unknown>)[f];
        check(await call('POST', route, JSON.stringify(body)), `${route} ${f}=${JSON.stringify(v)?.slice(0, 40)}`);
      }
    }
    // Cut and byte-flipped JSON; JSON that is not an object.
    const text = JSON.stringify(valid);
    for (let i = 0; i < 12; i++) {
      const cut = text.slice(0, g.int(text.length));
      const bytes = Buffer.from(text);
      bytes[g.int(bytes.length)] = g.int(256);
      for (const b of [cut, bytes.toString('latin1')]) check(await call('POST', route, b), `${route} body ${JSON.stringify(b).slice(0, 60)}`);
    }
    for (const b of ['null', '[]', '"x"', '1e999', '{"__proto__": {"x": 1}}', '{"constructor": {"prototype": 1}}', '[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]', '{'.repeat(5000), '\u0000', '\uFEFF{}']) {
      check(await call('POST', route, b), `${route} body ${b.slice(0, 30)}`);
    }
    check(await call('POST', route, JSON.stringify(valid), { 'content-type': 'text/plain' }), `${route} text/plain`);
    for (const m of ['GET', 'PUT', 'DELETE', 'PATCH', 'HEAD']) {
      const a = await call(m, route);
      assert.ok(a.status === 405 || (m === 'HEAD' && a.status === 405), `${m} ${route}: ${a.status}`);
      tried++; refused++;
    }
  }
  // Nested message shapes and huge numbers inside them.
  for (const messages of [[{ role: 'user', content: [{ type: 'text', text: 5 }] }], [{ role: 'assistant', tool_calls: 'x' }], [{ role: 'assistant', tool_calls: [null, 5, { function: { arguments: '{' } }] }],
    [{ role: 'tool', content: 'x', tool_call_id: 5 }], [{ role: 'user', content: null }], [{ role: 'system', content: 'x'.repeat(60000) }]]) {
    check(await call('POST', '/v1/chat/completions', JSON.stringify({ ...CHAT, messages })), `messages ${JSON.stringify(messages).slice(0, 60)}`);
  }
  for (const prompt of [[1e308], [-1], [1.5], [[]], [[1, 2], 'x', [3]], Array(20).fill('x'), [Number.MAX_SAFE_INTEGER]]) {
    check(await call('POST', '/v1/completions', JSON.stringify({ ...COMPLETION, prompt })), `prompt ${JSON.stringify(prompt).slice(0, 60)}`);
  }
  // URLs: malformed escapes, traversal, unknown routes, every method.
  const paths = ['/v1/models/%', '/v1/models/%E0%A4%A', '/v1/models/%00', '/v1/models/..%2F..%2Fetc%2Fpasswd', '/v1/models/a%2Fb', '/v1/models/' + 'x'.repeat(5000),
    '/v1/models/tiny/extra', '/v1/%', '/%', '/playground/%', '/playground/model/%', '/dist/src/%.js', '/v1/../../etc/passwd', '/v2/models', '/v1', '/v1/', '/health/x',
    '/favicon.ico', '/?%', '/v1/models?x=%', '/playground/model/..%2f..%2fsecret.txt', '/.env', '/%2e%2e/%2e%2e/etc/passwd'];
  for (const p of paths) {
    for (const m of ['GET', 'POST', 'DELETE']) {
      const a = await call(m, p, m === 'POST' ? '{}' : undefined);
      check(a, `${m} ${p}`);
      assert.ok(!a.body.includes('root:x:0:0'), `${m} ${p} leaked a file`);
    }
  }
  for (const line of ['GET % HTTP/1.1', 'GET * HTTP/1.1', 'GET http://evil.example/v1/models HTTP/1.1', 'GET //etc/passwd HTTP/1.1', 'GET /v1/models/% HTTP/1.1', 'BREW /v1/models HTTP/1.1']) {
    const r = await rawRequest(server.port, line);
    tried++;
    assert.ok(r.status >= 400 && r.status < 500, `${line}: ${r.status} ${r.text.slice(0, 200)}`);
  }
  const mal = await call('GET', '/v1/models/%');
  assert.equal(mal.status, 400);
  assert.equal(mal.json.error.code, 'invalid_url');
  // Still serving, and nothing was logged as an internal error.
  const still = await call('POST', '/v1/chat/completions', JSON.stringify(CHAT));
  assert.equal(still.status, 200, still.body);
  assert.deepEqual(logged.filter((l) => l.startsWith('err_')), []);
  assert.ok(tried > 700 && ok > 20 && refused > 300, `tried ${tried}, ok ${ok}, refused ${refused}`);
});

test('a schema over the default --max-schema-bytes (256 KiB) is a 400 naming the limit, before any compilation', async () => {
  const schema = { oneOf: Array.from({ length: 30000 }, (_, i) => ({ const: `v${i}` })) };
  const a = await call('POST', '/v1/chat/completions', JSON.stringify({ ...CHAT, response_format: { type: 'json_schema', json_schema: { name: 's', schema } } }));
  // (the body limit of this server is 64 KiB: raise it for this request's sake by sending it to a second server)
  assert.equal(a.status, 413);
  const s2 = await startServer({ model: dir, port: 0 });
  try {
    const res = await fetch(`${s2.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...CHAT, response_format: { type: 'json_schema', json_schema: { name: 's', schema } } }) });
    const j = await res.json() as any;
    assert.equal(res.status, 400, JSON.stringify(j));
    assert.equal(j.error.code, 'schema_too_large');
    assert.equal(j.error.param, 'response_format.json_schema.schema');
    assert.match(j.error.message, /the schema is \d+ bytes as JSON; the server's limit is 262144 \(--max-schema-bytes\)/);
    assert.equal(s2.registry.loadedModels[0].compilingCount, 0);
  } finally {
    await s2.close();
  }
});

test('a body nested deeper than 256 levels (a schema nested 10,000 deep overflowed the stack) is a 400', async () => {
  const deep = '{"type":"array","items":'.repeat(2000) + '{}' + '}'.repeat(2000);
  const body = JSON.stringify({ ...CHAT, response_format: { type: 'json_schema', json_schema: { name: 's', schema: '@S@' } } }).replace('"@S@"', deep);
  const a = await call('POST', '/v1/chat/completions', body);
  assert.equal(a.status, 400, a.body);
  assert.match(a.body, /nests objects and arrays more than 256 levels deep/);
  const ok = await call('POST', '/v1/chat/completions', JSON.stringify(CHAT));
  assert.equal(ok.status, 200);
});

test('a token mask past --max-mask-ms ends the request with a 400 naming the limit; the server goes on', async () => {
  const schema = { type: 'object', properties: Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`p${i}`, { type: 'integer' }])) };
  const s2 = await startServer({ model: dir, port: 0, limits: { maxMaskMs: 0, maxTokens: 6 } });
  try {
    const res = await fetch(`${s2.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...CHAT, response_format: { type: 'json_schema', json_schema: { name: 's', schema } } }) });
    const j = await res.json() as any;
    assert.equal(res.status, 400, JSON.stringify(j));
    assert.equal(j.error.code, 'schema_too_complex');
    assert.match(j.error.message, /--max-mask-ms/);
    const ok = await fetch(`${s2.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(CHAT) });
    assert.equal(ok.status, 200);
  } finally {
    await s2.close();
  }
});

test('a model that cannot be loaded: 500 "internal error" with an id, never the file contents; the log has the details', async () => {
  for (const name of ['broken', 'wrong']) {
    logged.length = 0;
    const a = await call('POST', '/v1/chat/completions', JSON.stringify({ ...CHAT, model: name }));
    assert.equal(a.status, 500, a.body);
    assert.ok(!a.body.includes(SECRET) && !a.body.includes('private'), `${name}: ${a.body}`);
    assert.ok(!a.body.includes(work), `${name}: the answer names a server path: ${a.body}`);
    const id = /id (err_[0-9a-f]+)/.exec(a.json.error.message)?.[1];
    assert.ok(id, a.json.error.message);
    assert.equal(a.json.error.code, 'model_load_failed');
    assert.ok(logged.some((l) => l.startsWith(id)), `the log has no line for ${id}: ${logged.join('\n')}`);
  }
});

test('the --model model is never evicted: after other models are used, the playground model files and the default still answer', { timeout: 60000 }, async () => {
  for (const name of ['a', 'b', 'c', 'a', 'b']) {
    const a = await call('POST', '/v1/chat/completions', JSON.stringify({ ...CHAT, model: name }));
    assert.equal(a.status, 200, `${name}: ${a.body}`);
  }
  const loaded = server.registry.loadedModels.map((m) => m.id);
  assert.ok(loaded.includes('tiny'), `loaded: ${loaded}`);
  assert.ok(loaded.length <= 2, `loaded: ${loaded}`);
  const cfg = await call('GET', '/playground/model/config.json');
  assert.equal(cfg.status, 200, cfg.body);
  assert.equal(cfg.json.num_hidden_layers, 2);
  const d = await call('POST', '/v1/chat/completions', JSON.stringify(CHAT));
  assert.equal(d.status, 200);
});
