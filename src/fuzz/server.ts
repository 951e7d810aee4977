// Hostile HTTP requests against `tslm serve` on the tiny model, each sent while an ordinary
// request runs beside it: the hostile one must get a 4xx (never a 5xx: every request here is a
// client's mistake), the ordinary one must not be delayed by more than 100 ms, and the server
// must stay up.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import http from 'node:http';
import { BIN } from './runner.js';
import { manyProperties, deepNesting } from './mutators.js';

export interface HostileRequest {
  name: string;
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /** Send the body this slowly (bytes per 100 ms) and give up after `slowMs`, or never finish it. */
  slow?: { bytesPer100ms: number; slowMs: number; declared: number };
}

export interface ServerResult {
  name: string;
  status: number | 'no response' | 'connection error';
  /** Extra latency of the concurrent ordinary request over the baseline median, ms. */
  delayMs: number;
  verdict: 'ok' | '5xx' | 'slowed' | 'hang' | 'down' | 'leak';
  detail: string;
}

const chat = (extra: Record<string, unknown>): string => JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, ...extra });
const schemaFormat = (schema: unknown): Record<string, unknown> => ({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema } } });

export function hostileRequests(): HostileRequest[] {
  const post = (name: string, body: string, p = '/v1/chat/completions', headers: Record<string, string> = {}): HostileRequest => ({ name, method: 'POST', path: p, body, headers: { 'content-type': 'application/json', ...headers } });
  const get = (name: string, p: string): HostileRequest => ({ name, method: 'GET', path: p });
  return [
    post('bad JSON', '{"messages": [{"role": "user", "content": "hi"'),
    post('body is an array', '[1, 2, 3]'),
    post('body is a string', '"hello"'),
    post('empty body', ''),
    post('messages is a string', chat({ messages: 'hi' })),
    post('messages empty', chat({ messages: [] })),
    post('message content null', chat({ messages: [{ role: 'user', content: null }] })),
    post('unknown role', chat({ messages: [{ role: 'wizard', content: 'hi' }] })),
    post('max_tokens string', chat({ max_tokens: '4' })),
    post('max_tokens 1e9', chat({ max_tokens: 1e9 })),
    post('max_tokens -1', chat({ max_tokens: -1 })),
    post('max_tokens 2^53+1', chat({ max_tokens: 2 ** 53 + 1 })),
    post('temperature string', chat({ temperature: 'hot' })),
    post('temperature -1', chat({ temperature: -1 })),
    post('top_p 2', chat({ top_p: 2 })),
    post('n 1e9', chat({ n: 1e9 })),
    post('n 0', chat({ n: 0 })),
    post('seed 1e30', chat({ seed: 1e30 })),
    post('logit_bias huge id', chat({ logit_bias: { '99999999999': 5 } })),
    post('logit_bias NaN-ish', chat({ logit_bias: { '5': 'NaN' } })),
    post('stop 10k strings', chat({ stop: Array.from({ length: 10_000 }, (_, i) => `s${i}`) })),
    post('10k messages', chat({ messages: Array.from({ length: 10_000 }, () => ({ role: 'user', content: 'hi' })) })),
    post('prompt 3.9 MB', JSON.stringify({ prompt: 'the quick brown fox '.repeat(195_000), max_tokens: 4 }), '/v1/completions'),
    post('chat content 3.9 MB', chat({ messages: [{ role: 'user', content: 'hello world '.repeat(325_000) }] })),
    // Within the byte bound of the served model (4,096 positions × a 244-byte token): tokenised.
    post('prompt 900 KB (tokenised)', JSON.stringify({ prompt: 'the quick brown fox '.repeat(46_000), max_tokens: 4 }), '/v1/completions'),
    post('chat content 900 KB (tokenised)', chat({ messages: [{ role: 'user', content: 'hello world '.repeat(76_000) }] })),
    post('embeddings 16 × 56 KB (tokenised)', JSON.stringify({ input: Array.from({ length: 16 }, () => 'hello world '.repeat(4_800)) }), '/v1/embeddings'),
    post('body 5 MB (over the limit)', chat({ messages: [{ role: 'user', content: 'x'.repeat(5 * 2 ** 20) }] })),
    post('deep nesting 100k', '{"messages":' + deepNesting(100_000, 'array') + '}'),
    post('50k properties', manyProperties(50_000)),
    post('response_format oneOf 30k consts', chat(schemaFormat({ oneOf: Array.from({ length: 30_000 }, (_, i) => ({ const: `value-${i}` })) }))),
    post('response_format 50k properties', chat(schemaFormat({ type: 'object', properties: Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`p${i}`, { type: 'integer' }])) }))),
    post('response_format nested items 10k', chat(schemaFormat('@SCHEMA@')).replace('"@SCHEMA@"', '{"type":"array","items":'.repeat(10_000) + '{}' + '}'.repeat(10_000))),
    post('response_format enum 100k', chat(schemaFormat({ enum: Array.from({ length: 100_000 }, (_, i) => i) }))),
    post('response_format minLength 1e9', chat(schemaFormat({ type: 'string', minLength: 1e9 }))),
    post('response_format pattern (a+)+$', chat(schemaFormat({ type: 'string', pattern: '^(a+)+$' }))),
    post('response_format pattern a{1000000}', chat(schemaFormat({ type: 'string', pattern: '^a{1000000}$' }))),
    post('response_format $ref loop', chat(schemaFormat({ $defs: { a: { $ref: '#/$defs/b' }, b: { $ref: '#/$defs/a' } }, $ref: '#/$defs/a' }))),
    post('response_format not an object', chat({ response_format: 'json' })),
    post('embeddings input 100k strings', JSON.stringify({ input: Array.from({ length: 100_000 }, () => 'hi') }), '/v1/embeddings'),
    post('embeddings input ids 1e9', JSON.stringify({ input: [[1e9, -1]] }), '/v1/embeddings'),
    post('completions prompt ids out of range', JSON.stringify({ prompt: [1e9, -5, 1.5], max_tokens: 4 }), '/v1/completions'),
    post('unknown model', chat({ model: '../../etc/passwd' })),
    post('content-type text/plain', chat({}), '/v1/chat/completions', { 'content-type': 'text/plain' }),
    post('POST /v1/models', '{}', '/v1/models'),
    get('GET /v1/models/%', '/v1/models/%'),
    get('GET /v1/models/%E0%A4%A', '/v1/models/%E0%A4%A'),
    get('GET /v1/models/..%2F..%2Fetc%2Fpasswd', '/v1/models/..%2F..%2Fetc%2Fpasswd'),
    get('GET /../../../../etc/passwd', '/../../../../etc/passwd'),
    get('GET /%2e%2e/%2e%2e/%2e%2e/etc/passwd', '/%2e%2e/%2e%2e/%2e%2e/etc/passwd'),
    get('GET /..%2f..%2f..%2fpackage.json', '/..%2f..%2f..%2fpackage.json'),
    get('GET /model/..%2f..%2fetc%2fpasswd', '/model/..%2f..%2fetc%2fpasswd'),
    get('GET /%00', '/%00'),
    get('GET unknown route', '/v2/everything'),
    get('GET /v1/chat/completions', '/v1/chat/completions'),
    { name: 'DELETE /v1/chat/completions', method: 'DELETE', path: '/v1/chat/completions' },
    { name: 'huge header 60 KB', method: 'GET', path: '/health', headers: { 'x-big': 'a'.repeat(60_000) } },
    { name: 'slow body (1 byte / 100 ms, abandoned)', method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body: chat({}), slow: { bytesPer100ms: 1, slowMs: 3000, declared: 100_000 } },
    { name: 'content-length larger than body', method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body: chat({}), slow: { bytesPer100ms: 1e9, slowMs: 500, declared: 100_000 } },
  ];
}

/** Send one raw request over a socket; resolves with the status (or why none came). */
function rawRequest(port: number, r: HostileRequest, timeoutMs: number): Promise<{ status: number | 'no response' | 'connection error'; body: string }> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = '', done = false, slowTimer: NodeJS.Timeout | undefined;
    const finish = (status: number | 'no response' | 'connection error'): void => {
      if (done) return; done = true; clearTimeout(timer); clearInterval(slowTimer); sock.destroy();
      resolve({ status, body: data.slice(data.indexOf('\r\n\r\n') + 4, 4096 + data.indexOf('\r\n\r\n')) });
    };
    const timer = setTimeout(() => finish(/^HTTP\/1\.1 (\d+)/.exec(data) ? Number(/^HTTP\/1\.1 (\d+)/.exec(data)![1]) : 'no response'), timeoutMs);
    sock.on('data', (b) => { data += b.toString('latin1'); if (data.length > 1 << 20) data = data.slice(0, 1 << 20); });
    sock.on('error', () => finish(/^HTTP\/1\.1 (\d+)/.exec(data) ? Number(/^HTTP\/1\.1 (\d+)/.exec(data)![1]) : 'connection error'));
    sock.on('close', () => finish(/^HTTP\/1\.1 (\d+)/.exec(data) ? Number(/^HTTP\/1\.1 (\d+)/.exec(data)![1]) : 'connection error'));
    sock.on('connect', () => {
      const body = Buffer.from(r.body ?? '', 'utf8');
      const headers = { host: '127.0.0.1', connection: 'close', ...(r.headers ?? {}), ...(r.body !== undefined ? { 'content-length': String(r.slow ? r.slow.declared : body.length) } : {}) };
      sock.write(`${r.method} ${r.path} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`);
      if (!r.slow) { sock.write(body); return; }
      let off = 0; const t0 = Date.now();
      slowTimer = setInterval(() => {
        if (Date.now() - t0 > r.slow!.slowMs) { clearInterval(slowTimer); finish(/^HTTP\/1\.1 (\d+)/.exec(data) ? Number(/^HTTP\/1\.1 (\d+)/.exec(data)![1]) : 'no response'); return; }
        if (off < body.length) { sock.write(body.subarray(off, off + r.slow!.bytesPer100ms)); off += r.slow!.bytesPer100ms; }
      }, 100);
    });
  });
}

/** The ordinary request: a short greedy completion on a fresh connection; resolves with its latency in ms. */
function ordinary(url: string, timeoutMs = 60_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const body = JSON.stringify({ prompt: 'the cat', max_tokens: 4, temperature: 0 });
    const req = http.request(`${url}/v1/completions`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`ordinary request: HTTP ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`ordinary request: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

function startServe(model: string): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'serve', '--model', model, '--port', '0', '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TSLM_THREADS: '1' } });
    let out = '', err = '';
    const t = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`tslm serve did not start: ${err.slice(-500)}`)); }, 60_000);
    child.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) { clearTimeout(t); resolve({ child, url: m[1] }); }
    });
    child.on('exit', (code) => { clearTimeout(t); reject(new Error(`tslm serve exited (${code}): ${err.slice(-500)}`)); });
  });
}

export interface ServerFuzzOptions { model: string; timeoutMs: number; maxDelayMs?: number; only?: (r: HostileRequest) => boolean; log?: (l: string) => void; onResult?: (r: ServerResult) => void }

/** Start `tslm serve`, measure the ordinary request's baseline, then send every hostile request. */
export async function fuzzServer(o: ServerFuzzOptions): Promise<{ results: ServerResult[]; baselineMs: number; stderrTail: string }> {
  const maxDelay = o.maxDelayMs ?? 100;
  const { child, url } = await startServe(o.model);
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => { stderr = (stderr + b.toString()).slice(-20_000); });
  let alive = true;
  child.on('exit', () => { alive = false; });
  const port = Number(new URL(url).port);
  const results: ServerResult[] = [];
  try {
    for (let i = 0; i < 2; i++) await ordinary(url); // warm up
    const base: number[] = [];
    for (let i = 0; i < 7; i++) base.push(await ordinary(url));
    base.sort((a, b) => a - b);
    const baselineMs = base[3];
    for (const req of hostileRequests().filter(o.only ?? (() => true))) {
      if (!alive) { results.push({ name: req.name, status: 'connection error', delayMs: 0, verdict: 'down', detail: 'the server had exited' }); continue; }
      // wait until the server answers again (a stalled server's backlog must not count against the next request)
      try { await ordinary(url, 300_000); } catch { /* counted below */ }
      const hostile = rawRequest(port, req, o.timeoutMs);
      await new Promise((r) => setTimeout(r, 20));
      let delayMs = 0, ordErr = '';
      try { delayMs = Math.max(0, (await ordinary(url, o.timeoutMs)) - baselineMs); } catch (e) { ordErr = (e as Error).message; }
      const h = await hostile;
      let verdict: ServerResult['verdict'] = 'ok', detail = `HTTP ${h.status}`;
      if (!alive) { verdict = 'down'; detail = 'the server exited'; }
      else if (ordErr) { verdict = 'slowed'; detail = `the ordinary request failed: ${ordErr}`; }
      else if (typeof h.status === 'number' && h.status >= 500) { verdict = '5xx'; detail = `HTTP ${h.status}: ${h.body.replace(/\s+/g, ' ').slice(0, 200)}`; }
      else if (/root:.*:0:0:/.test(h.body)) { verdict = 'leak'; detail = 'the response holds /etc/passwd'; }
      else if (h.status === 'no response' && !req.slow) { verdict = 'hang'; detail = `no response within ${o.timeoutMs} ms`; }
      else if (typeof h.status === 'number' && h.status >= 200 && h.status < 300 && req.method !== 'GET' && !/^(?:seed|stop|10k messages|n 0|logit_bias)/.test(req.name)) { detail = `HTTP ${h.status} (accepted)`; }
      if (verdict === 'ok' && delayMs > maxDelay) { verdict = 'slowed'; detail = `ordinary request delayed ${delayMs.toFixed(0)} ms (${detail})`; }
      const res: ServerResult = { name: req.name, status: h.status, delayMs, verdict, detail };
      results.push(res);
      o.onResult?.(res);
    }
    return { results, baselineMs, stderrTail: stderr };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => { if (!alive) r(null); else { child.once('exit', r); setTimeout(() => { child.kill('SIGKILL'); r(null); }, 5000); } });
  }
}
