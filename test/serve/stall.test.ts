// One hostile request must not stall the others: `tslm serve` as a real process, an ordinary chat
// request timed alone, then beside (a) a response_format schema that is a oneOf of 30,000 consts
// (compiled off the event loop, over the --max-schema-ms budget: 400 naming the limit) and (b) a
// 4 MB prompt (refused by its byte length, without being tokenised: 400 context_length_exceeded).
// The ordinary request's extra latency is bounded generously (2 shared, loaded cores); the target
// of issue #21 is 100 ms, and the measured figures are printed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { init, shutdown } from '../../src/backend/index.js';
import { makeTinyModelDir, serveProcess } from './fixture.js';

const BOUND_MS = 600;
// Until compileJsonSchemaOffThread is merged, the serve side compiles on the event loop (TEMPORARY).
const OFF_THREAD = existsSync(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'structured', 'compile_worker.js'));
let work = '', url = '', proc: ChildProcess | null = null;

before(async () => {
  await init({ threads: 1 });
  work = mkdtempSync(path.join(tmpdir(), 'tslm-serve-stall-'));
  const dir = await makeTinyModelDir(path.join(work, 'tiny'), { maxPositions: 128 });
  ({ proc, url } = await serveProcess(['--model', dir, '--port', '0', '--threads', '1', '--quiet',
    '--max-body-bytes', String(5 << 20), '--max-schema-bytes', String(1 << 20), '--max-schema-ms', '500']));
});

after(async () => {
  proc?.kill('SIGTERM');
  await shutdown();
  rmSync(work, { recursive: true, force: true });
});

async function post(body: unknown): Promise<{ status: number; json: any; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const json = await res.json();
  return { status: res.status, json, ms: performance.now() - t0 };
}

const ORDINARY = { messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 8, seed: 1, temperature: 0 };

function median(xs: number[]): number { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; }

async function ordinaryBeside(hostile: unknown): Promise<{ delay: number; hostile: { status: number; json: any; ms: number }; ordinary: number }> {
  const alone: number[] = [];
  for (let i = 0; i < 5; i++) alone.push((await post(ORDINARY)).ms);
  const body = JSON.stringify(hostile);
  const h = post(body);
  // Let the hostile request arrive and start its work first.
  await new Promise((r) => setTimeout(r, 40));
  const o = await post(ORDINARY);
  assert.equal(o.status, 200, JSON.stringify(o.json));
  return { delay: o.ms - median(alone), hostile: await h, ordinary: o.ms };
}

test('a 30,000-const oneOf schema beside an ordinary request: 400 naming --max-schema-ms, the ordinary one not held up', { timeout: 60000, skip: !OFF_THREAD && 'compileJsonSchemaOffThread is not merged yet' }, async (t) => {
  const schema = { oneOf: Array.from({ length: 30000 }, (_, i) => ({ const: `v${i}` })) };
  const r = await ordinaryBeside({ ...ORDINARY, response_format: { type: 'json_schema', json_schema: { name: 'hostile', schema } } });
  t.diagnostic(`schema: ordinary request ${r.ordinary.toFixed(0)} ms (+${r.delay.toFixed(0)} ms over alone); hostile answered ${r.hostile.status} after ${r.hostile.ms.toFixed(0)} ms`);
  assert.equal(r.hostile.status, 400, JSON.stringify(r.hostile.json));
  assert.equal(r.hostile.json.error.code, 'schema_too_complex');
  assert.match(r.hostile.json.error.message, /500 ms.*--max-schema-ms|--max-schema-ms.*500/);
  assert.ok(r.delay < BOUND_MS, `the ordinary request was delayed by ${r.delay.toFixed(0)} ms`);
});

test('a 4 MB prompt beside an ordinary request: 400 context_length_exceeded without tokenising, the ordinary one not held up', { timeout: 60000 }, async (t) => {
  const r = await ordinaryBeside({ ...ORDINARY, messages: [{ role: 'user', content: 'lorem ipsum dolor '.repeat(4e6 / 18) }] });
  t.diagnostic(`prompt: ordinary request ${r.ordinary.toFixed(0)} ms (+${r.delay.toFixed(0)} ms over alone); hostile answered ${r.hostile.status} after ${r.hostile.ms.toFixed(0)} ms`);
  assert.equal(r.hostile.status, 400, JSON.stringify(r.hostile.json));
  assert.equal(r.hostile.json.error.code, 'context_length_exceeded');
  assert.match(r.hostile.json.error.message, /maximum context length is 128 tokens/);
  assert.ok(r.delay < BOUND_MS, `the ordinary request was delayed by ${r.delay.toFixed(0)} ms`);
  // A prompt under the byte bound but over the context is still refused (by its token count).
  const near = await post({ ...ORDINARY, messages: [{ role: 'user', content: 'fox '.repeat(300) }] });
  assert.equal(near.status, 400);
  assert.equal(near.json.error.code, 'context_length_exceeded');
});
