// `tslm serve`: an OpenAI-compatible HTTP server (node:http, no framework) and the playground.
//
//   GET  /health                  status, queue lengths
//   GET  /v1/models, /v1/models/ID
//   POST /v1/completions, /v1/chat/completions (JSON or server-sent events), /v1/embeddings
//   GET  /, /playground/…, /dist/…  the playground page and the modules its in-browser mode runs
//
// Every response is cross-origin isolated (COOP/COEP) so the playground gets SharedArrayBuffer.
// Requests are read with a body limit, parsed, validated and turned into jobs on one Scheduler;
// errors are OpenAI-shaped JSON with OpenAI's status codes; a closed connection cancels its job.
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { fileURLToPath } from 'node:url';
import { ApiError, internalError, jsonErrorPosition } from './errors.js';
import { ModelRegistry } from './models.js';
import type { RegistryOptions } from './models.js';
import { Scheduler } from './scheduler.js';
import { DEFAULT_LIMITS, chatCompletions, completions, embeddings, listModels, modelObject, sendJson } from './openai.js';
import type { Ctx, Limits } from './openai.js';
import { serveStatic } from './static.js';

export interface ServeOptions extends RegistryOptions {
  /** Port (default 8080; 0 = any free port). */
  port?: number;
  /** Interface to bind (default 127.0.0.1: local clients only). */
  host?: string;
  limits?: Partial<Limits>;
  /** Requests generating at once (default 4); more wait in a queue of maxQueue (default 64). */
  maxActive?: number;
  maxQueue?: number;
  /** Log one line per request to this function (default: none). */
  log?: (line: string) => void;

}

export interface RunningServer {
  url: string;
  port: number;
  host: string;
  registry: ModelRegistry;
  scheduler: Scheduler;
  close(): Promise<void>;
}

/** The package root (where playground/ and dist/ live), from this compiled file's place. */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

const ISOLATION = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
};

/**
 * The request body as text, within `limit` bytes. Decoded chunk by chunk as it arrives (a
 * multi-megabyte body copied and decoded in one piece held the event loop for 100+ ms).
 */
function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      reject(new ApiError(413, `the request body is ${declared} bytes; the limit is ${limit}`, 'invalid_request_error', null, 'request_too_large'));
      return;
    }
    const decoder = new StringDecoder('utf8');
    const parts: string[] = [];
    let n = 0, failed = false;
    req.on('data', (c: Buffer) => {
      if (failed) return;
      n += c.length;
      if (n > limit) {
        failed = true;
        reject(new ApiError(413, `the request body exceeds the limit of ${limit} bytes`, 'invalid_request_error', null, 'request_too_large'));
        return;
      }
      parts.push(decoder.write(c));
    });
    req.on('end', () => { if (!failed) { parts.push(decoder.end()); resolve(n === 0 ? '' : parts.join('')); } });
    req.on('error', (e) => { if (!failed) { failed = true; reject(e); } });
  });
}

/** Deepest nesting of objects and arrays a request body may have (a schema nested 10,000 deep overflowed JSON.stringify's stack). */
const MAX_BODY_DEPTH = 256;

function parseJson(text: string): unknown {
  if (text.length === 0) throw new ApiError(400, 'the request body is empty; send a JSON object');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    const where = jsonErrorPosition(e);
    throw new ApiError(400, `the request body is not valid JSON${where ? ` (${where})` : ''}`, 'invalid_request_error', null, 'invalid_json');
  }
  if (depthOver(body, MAX_BODY_DEPTH)) throw new ApiError(400, `the request body nests objects and arrays more than ${MAX_BODY_DEPTH} levels deep`, 'invalid_request_error', null, 'invalid_json');
  return body;
}

/** Whether a parsed JSON value nests deeper than `max` (an explicit stack: no recursion). */
function depthOver(v: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[v, 1]];
  while (stack.length) {
    const [x, d] = stack.pop()!;
    if (x === null || typeof x !== 'object') continue;
    if (d > max) return true;
    for (const y of Array.isArray(x) ? x : Object.values(x as object)) if (y !== null && typeof y === 'object') stack.push([y, d + 1]);
  }
  return false;
}

/** Start serving; resolves once the default model is loaded and the port is listening. */
export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const registry = new ModelRegistry(opts);
  await registry.init();
  const scheduler = new Scheduler(opts.maxActive ?? 4, opts.maxQueue ?? 64);
  const limits: Limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const ctx: Ctx = { registry, scheduler, limits, errorLog: opts.errorLog };
  const posts: Record<string, typeof chatCompletions> = {
    '/v1/chat/completions': chatCompletions,
    '/v1/completions': completions,
    '/v1/embeddings': embeddings,
  };

  async function handle(req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> {
    for (const [k, v] of Object.entries(ISOLATION)) res.setHeader(k, v);
    const rawUrl = req.url ?? '/';
    // Origin-form only ("/path?query"): not "*", not an absolute URL, not "//host/…".
    if (!rawUrl.startsWith('/') || rawUrl.startsWith('//')) throw new ApiError(400, 'the request target must be a path starting with a single /', 'invalid_request_error', null, 'invalid_url');
    let p: string;
    try { p = new URL(rawUrl, 'http://localhost').pathname; } catch { throw new ApiError(400, 'the request URL is malformed', 'invalid_request_error', null, 'invalid_url'); }
    const method = req.method ?? 'GET';
    if (method === 'OPTIONS') {
      res.writeHead(204, { allow: 'GET, POST, OPTIONS' });
      res.end();
      return;
    }
    if (p in posts) {
      if (method !== 'POST') throw new ApiError(405, `${p} takes POST, not ${method}`, 'invalid_request_error', null, 'method_not_allowed');
      const body = parseJson(await readBody(req, limits.maxBodyBytes));
      await posts[p](ctx, body, res, signal);
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') {
      const known = p === '/health' || p === '/v1/models' || p.startsWith('/v1/models/');
      throw new ApiError(known ? 405 : 404, `no route for ${method} ${p}`, 'invalid_request_error', null, known ? 'method_not_allowed' : 'unknown_url');
    }
    if (p === '/health') {
      const loaded = Object.fromEntries(registry.loadedModels.map((m) => [m.id, { batch: m.batchStats }]));
      sendJson(res, 200, { status: 'ok', models: registry.ids(), active: scheduler.activeCount, queued: scheduler.queuedCount, loaded });
      return;
    }
    if (p === '/v1/models') { sendJson(res, 200, listModels(ctx)); return; }
    if (p.startsWith('/v1/models/')) {
      let id: string;
      try { id = decodeURIComponent(p.slice('/v1/models/'.length)); } catch {
        throw new ApiError(400, 'the model id in the URL has a malformed %-escape', 'invalid_request_error', 'model', 'invalid_url');
      }
      if (!registry.ids().includes(id)) throw new ApiError(404, `The model '${id}' does not exist`, 'invalid_request_error', 'model', 'model_not_found');
      sendJson(res, 200, modelObject(ctx, id));
      return;
    }
    if (!p.startsWith('/v1/') && serveStatic(req, res, { root: PACKAGE_ROOT, modelDir: registry.defaultModel?.hfDir ?? null })) return;
    throw new ApiError(404, `no route for ${method} ${p}`, 'invalid_request_error', null, 'unknown_url');
  }

  const server = createServer((req, res) => {
    const t0 = performance.now();
    const abort = new AbortController();
    // The client went away before the response was complete: cancel its generation.
    res.on('close', () => { if (!res.writableFinished) abort.abort(); });
    handle(req, res, abort.signal).catch((e: unknown) => {
      const err = e instanceof ApiError ? e : internalError(e, opts.errorLog);
      if (res.headersSent) { if (!res.writableEnded) res.end(); return; }
      const data = JSON.stringify(err.toJSON());
      res.writeHead(err.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(data), ...(err.status === 413 ? { connection: 'close' } : {}) });
      res.end(data);
      // A body over the limit is not read: let it drain briefly (so the client reads the answer
      // rather than a reset), then close the connection.
      if (err.status === 413) {
        req.resume();
        setTimeout(() => req.socket?.destroy(), 2000).unref();
      }
    }).finally(() => {
      opts.log?.(`${req.method} ${req.url} ${res.statusCode} ${(performance.now() - t0).toFixed(0)} ms`);
    });
  });
  // "Expect: 100-continue" (curl does this for large bodies): refuse an oversized body before it is sent.
  server.on('checkContinue', (req, res) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limits.maxBodyBytes) {
      const data = JSON.stringify(new ApiError(413, `the request body is ${declared} bytes; the limit is ${limits.maxBodyBytes}`, 'invalid_request_error', null, 'request_too_large').toJSON());
      res.writeHead(413, { ...ISOLATION, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(data), connection: 'close' });
      res.end(data);
      return;
    }
    res.writeContinue();
    server.emit('request', req, res);
  });
  server.keepAliveTimeout = 5000;
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8080, host, () => { server.off('error', reject); resolve(); });
  });
  const port = (server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown === '0.0.0.0' ? '127.0.0.1' : shown}:${port}`,
    port, host, registry, scheduler,
    async close() {
      scheduler.close();
      await new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections(); });
      registry.dispose();
    },
  };
}
