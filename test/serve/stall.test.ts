// One hostile request must not stall the others: `tslm serve` as a real process, an ordinary chat
// request timed alone, then beside (a) a response_format schema that is a oneOf of 30,000 consts
// (compiled off the event loop, over the --max-schema-ms budget: 400 naming the limit), (b) a
// 4 MB prompt (over the 1 MiB body limit: 413, unread) and (c) a 0.9 MB prompt (refused by its
// byte length, without being tokenised: 400 context_length_exceeded).
// The ordinary request's extra latency is bounded generously (2 shared, loaded cores); the target
// of issue #21 is 100 ms, and the measured figures are printed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { init, shutdown } from '../../src/backend/index.js';
import { makeTinyModelDir, serveProcess } from './fixture.js';

const BOUND_MS = 600;
// The compile budget: a small fraction of what the 30,000-const schema takes even on a fast idle
// machine (160–180 ms here), so the hostile request is over it however fast the machine is.
const SCHEMA_MS = 40;
let work = '', url = '', proc: ChildProcess | null = null;

before(async () => {
  await init({ threads: 1 });
  work = mkdtempSync(path.join(tmpdir(), 'tslm-serve-stall-'));
  const dir = await makeTinyModelDir(path.join(work, 'tiny'), { maxPositions: 128 });
  ({ proc, url } = await serveProcess(['--model', dir, '--port', '0', '--threads', '1', '--quiet',
    '--max-schema-bytes', String(1 << 20), '--max-schema-ms', String(SCHEMA_MS)]));
});

after(async () => {
  proc?.kill('SIGTERM');
  await shutdown();
  rmSync(work, { recursive: true, force: true });
});

async function post(body: unknown): Promise<{ status: number; json: any; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = await res.json();
  return { status: res.status, json, ms: performance.now() - t0 };
}

const ORDINARY = { messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 8, seed: 1, temperature: 0 };

function median(xs: number[]): number { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; }

/**
 * The hostile request is sent by another process (so that building and sending megabytes does
 * not slow this process, which times the ordinary request): it reads the body from a file, says
 * "ready", and posts it when told "go".
 */
const SENDER = `
const body = require('node:fs').readFileSync(process.argv[2]);
process.stdout.write('ready\\n');
process.stdin.once('data', () => {
  const t0 = performance.now();
  const u = new URL(process.argv[1]);
  // node:http with "Expect: 100-continue" (as curl sends large bodies): a body over the limit is
  // answered 413 before it is sent (sent anyway, the server's early answer can race an EPIPE).
  const req = require('node:http').request({ host: u.hostname, port: u.port, path: '/v1/chat/completions', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': body.length, expect: '100-continue' } }, (res) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (d) => { text += d; });
    res.on('end', () => { process.stdout.write(JSON.stringify({ status: res.statusCode, json: JSON.parse(text), ms: performance.now() - t0 }) + '\\n'); process.exit(0); });
  });
  req.on('error', (e) => { process.stdout.write(JSON.stringify({ status: 0, json: { error: String(e) }, ms: performance.now() - t0 }) + '\\n'); process.exit(0); });
  req.on('continue', () => req.end(body));
});`;

async function ordinaryBeside(hostile: unknown): Promise<{ delay: number; hostile: { status: number; json: any; ms: number }; ordinary: number; n: number }> {
  const file = path.join(work, 'hostile.json');
  writeFileSync(file, JSON.stringify(hostile));
  const child = spawn(process.execPath, ['-e', SENDER, url, file], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  const done = new Promise<void>((r) => child.on('exit', () => r()));
  while (!out.includes('ready')) await new Promise((r) => setTimeout(r, 10));
  const alone: number[] = [];
  for (let i = 0; i < 5; i++) alone.push((await post(ORDINARY)).ms);
  child.stdin!.write('go\n');
  // Ordinary requests one after another for as long as the hostile one runs: the slowest counts.
  let finished = false, worst = 0, n = 0;
  void done.then(() => { finished = true; });
  while (!finished || n === 0) {
    const o = await post(ORDINARY);
    assert.equal(o.status, 200, JSON.stringify(o.json));
    worst = Math.max(worst, o.ms);
    n++;
  }
  return { delay: worst - median(alone), hostile: JSON.parse(out.slice(out.indexOf('{'))), ordinary: worst, n };
}

test('a 30,000-const oneOf schema beside an ordinary request: 400 naming --max-schema-ms, the ordinary one not held up', { timeout: 60000 }, async (t) => {
  const schema = { oneOf: Array.from({ length: 30000 }, (_, i) => ({ const: `v${i}` })) };
  const r = await ordinaryBeside({ ...ORDINARY, response_format: { type: 'json_schema', json_schema: { name: 'hostile', schema } } });
  t.diagnostic(`schema: slowest of ${r.n} ordinary requests ${r.ordinary.toFixed(0)} ms (+${r.delay.toFixed(0)} ms over alone); hostile answered ${r.hostile.status} after ${r.hostile.ms.toFixed(0)} ms`);
  assert.equal(r.hostile.status, 400, JSON.stringify(r.hostile.json));
  assert.equal(r.hostile.json.error.code, 'schema_too_complex');
  assert.match(r.hostile.json.error.message, new RegExp(`${SCHEMA_MS} ms.*--max-schema-ms|--max-schema-ms.*${SCHEMA_MS}`));
  assert.ok(r.delay < BOUND_MS, `the ordinary request was delayed by ${r.delay.toFixed(0)} ms`);
});

test('a 4 MB prompt (over the 1 MiB body limit: 413) and a 0.9 MB one (400 context_length_exceeded without tokenising) beside ordinary requests', { timeout: 60000 }, async (t) => {
  const big = await ordinaryBeside({ ...ORDINARY, messages: [{ role: 'user', content: 'lorem ipsum dolor '.repeat(4e6 / 18) }] });
  t.diagnostic(`4 MB prompt: slowest of ${big.n} ordinary requests ${big.ordinary.toFixed(0)} ms (+${big.delay.toFixed(0)} ms over alone); hostile answered ${big.hostile.status} after ${big.hostile.ms.toFixed(0)} ms`);
  assert.equal(big.hostile.status, 413, JSON.stringify(big.hostile.json));
  assert.equal(big.hostile.json.error.code, 'request_too_large');
  assert.match(big.hostile.json.error.message, /the limit is 1048576/);
  assert.ok(big.delay < BOUND_MS, `the ordinary request was delayed by ${big.delay.toFixed(0)} ms`);
  const r = await ordinaryBeside({ ...ORDINARY, messages: [{ role: 'user', content: 'lorem ipsum dolor '.repeat(9e5 / 18) }] });
  t.diagnostic(`0.9 MB prompt: slowest of ${r.n} ordinary requests ${r.ordinary.toFixed(0)} ms (+${r.delay.toFixed(0)} ms over alone); hostile answered ${r.hostile.status} after ${r.hostile.ms.toFixed(0)} ms`);
  assert.equal(r.hostile.status, 400, JSON.stringify(r.hostile.json));
  assert.equal(r.hostile.json.error.code, 'context_length_exceeded');
  assert.match(r.hostile.json.error.message, /maximum context length is 128 tokens; the prompt is 900000 bytes/);
  assert.ok(r.delay < BOUND_MS, `the ordinary request was delayed by ${r.delay.toFixed(0)} ms`);
  // A prompt under the byte bound but over the context is still refused (by its token count).
  const near = await post({ ...ORDINARY, messages: [{ role: 'user', content: 'fox '.repeat(300) }] });
  assert.equal(near.status, 400);
  assert.equal(near.json.error.code, 'context_length_exceeded');
  assert.match(near.json.error.message, /the prompt has \d+ tokens/);
});
