// The playground's static files, served by `tslm serve` beside the API: the page (playground/),
// the compiled browser modules (dist/src/**.js, dist/wasm/*.wasm), the few vendor modules they
// import by bare name, and the served model's files for the in-browser mode. Only whitelisted
// directories, extensions and names; a path that could leave them is refused.
//
// Module Web Workers have no import maps, so the bare specifiers in dist/src modules (only
// @huggingface/jinja, for chat templates) are rewritten to /vendor/ URLs as the files are served.
import { createReadStream, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface StaticContext {
  /** The package root (holds playground/, dist/ and node_modules/). */
  root: string;
  /** The served Hugging Face model directory; null when the model is not one (no in-browser mode). */
  modelDir: string | null;
}

/** Bare module specifiers the browser modules import → the URL they are served at. */
export const VENDOR_MODULES: Readonly<Record<string, string>> = {
  '@huggingface/jinja': '/vendor/@huggingface/jinja/index.js',
};

/** Files of the model directory the page may fetch. */
export const MODEL_FILES: readonly string[] = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];

/** The headers SharedArrayBuffer needs (cross-origin isolation), and the resource policy that goes with them. */
export const ISOLATION_HEADERS: Readonly<Record<string, string>> = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.safetensors': 'application/octet-stream',
};

/** Where a vendor module's ESM build lives (resolved as this package's own imports resolve it). */
function vendorFile(specifier: string, root: string): string | null {
  try {
    const resolved = fileURLToPath(import.meta.resolve(specifier));
    // import.meta.resolve picks the "import" condition: the ES module build.
    return resolved;
  } catch {
    const guess = path.join(root, 'node_modules', ...specifier.split('/'), 'dist', 'index.js');
    try { return statSync(guess).isFile() ? guess : null; } catch { return null; }
  }
}

const BARE = new RegExp(
  `(\\bfrom\\s*|\\bimport\\s*\\(\\s*|\\bimport\\s+)(['"])(${Object.keys(VENDOR_MODULES).map((s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('|')})\\2`,
  'g',
);

/** A module's source with its vendor bare specifiers replaced by their URLs. */
export function rewriteBareImports(source: string): string {
  return source.replace(BARE, (_m, kw: string, q: string, spec: string) => `${kw}${q}${VENDOR_MODULES[spec]}${q}`);
}

/**
 * The path segments of a URL path below `prefix`, decoded, or null when the path is malformed or
 * could escape: `..` or `.` segments, empty segments, encoded slashes or backslashes, NUL bytes,
 * drive letters.
 */
export function safeSegments(rawPath: string, prefix: string): string[] | null {
  if (!rawPath.startsWith(prefix)) return null;
  const rest = rawPath.slice(prefix.length);
  if (/%2f|%5c|%00/i.test(rest) || rest.includes('\\')) return null;
  let decoded: string;
  try { decoded = decodeURIComponent(rest); } catch { return null; }
  if (decoded.includes('\0') || decoded.includes('\\')) return null;
  const segs = decoded.split('/');
  for (const s of segs) if (s === '' || s === '.' || s === '..' || /^[A-Za-z]:/.test(s)) return null;
  return segs;
}

function setIsolation(res: ServerResponse): void {
  for (const [k, v] of Object.entries(ISOLATION_HEADERS)) if (!res.hasHeader(k)) res.setHeader(k, v);
}

function notFound(res: ServerResponse, what: string): true {
  const body = JSON.stringify({ error: { message: `not found: ${what}`, type: 'invalid_request_error', param: null, code: 'not_found' } });
  res.writeHead(404, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
  return true;
}

/** Send a file (streamed; `transform` for small text files that are rewritten). */
function sendFile(req: IncomingMessage, res: ServerResponse, file: string, what: string, transform?: (s: string) => string): true {
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) return notFound(res, what);
    size = st.size;
  } catch {
    return notFound(res, what);
  }
  const headers: Record<string, string | number> = {
    'Content-Type': TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
    'Cache-Control': 'no-cache',
    'X-Content-Type-Options': 'nosniff',
  };
  if (transform) {
    let body: Buffer;
    try { body = Buffer.from(transform(readFileSync(file, 'utf8'))); } catch { return notFound(res, what); }
    res.writeHead(200, { ...headers, 'Content-Length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
    return true;
  }
  res.writeHead(200, { ...headers, 'Content-Length': size });
  if (req.method === 'HEAD') { res.end(); return true; }
  const stream = createReadStream(file);
  stream.on('error', () => res.destroy());
  res.on('close', () => stream.destroy());
  stream.pipe(res);
  return true;
}

/**
 * Serve a GET/HEAD request for the playground: `/` (the page), `/playground/*`, `/playground/model/<file>`,
 * `/dist/src/**.js`, `/dist/wasm/*.wasm`, `/vendor/*`. Returns false when the path is none of
 * these (the caller answers), true when it answered (a 404 for a path under its prefixes).
 */
export function serveStatic(req: IncomingMessage, res: ServerResponse, ctx: StaticContext): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const raw = (req.url ?? '/').split('?')[0].split('#')[0];
  const pg = path.join(ctx.root, 'playground');
  if (raw === '/' || raw === '/playground' || raw === '/playground/' || raw === '/index.html') {
    setIsolation(res);
    return sendFile(req, res, path.join(pg, 'index.html'), 'the playground page');
  }
  if (raw.startsWith('/playground/model/')) {
    setIsolation(res);
    const segs = safeSegments(raw, '/playground/model/');
    if (!segs || segs.length !== 1 || !MODEL_FILES.includes(segs[0])) return notFound(res, raw);
    if (!ctx.modelDir) return notFound(res, `${raw} (the served model is not a Hugging Face directory)`);
    return sendFile(req, res, path.join(ctx.modelDir, segs[0]), raw);
  }
  if (raw.startsWith('/playground/')) {
    setIsolation(res);
    const segs = safeSegments(raw, '/playground/');
    if (!segs || segs.length !== 1 || !TYPES[path.extname(segs[0]).toLowerCase()]) return notFound(res, raw);
    return sendFile(req, res, path.join(pg, segs[0]), raw);
  }
  if (raw.startsWith('/dist/')) {
    setIsolation(res);
    if (raw.startsWith('/dist/src/')) {
      const segs = safeSegments(raw, '/dist/src/');
      if (!segs || !segs[segs.length - 1].endsWith('.js')) return notFound(res, raw);
      return sendFile(req, res, path.join(ctx.root, 'dist', 'src', ...segs), raw, rewriteBareImports);
    }
    if (raw.startsWith('/dist/wasm/')) {
      const segs = safeSegments(raw, '/dist/wasm/');
      if (!segs || segs.length !== 1 || !segs[0].endsWith('.wasm')) return notFound(res, raw);
      return sendFile(req, res, path.join(ctx.root, 'dist', 'wasm', segs[0]), raw);
    }
    return notFound(res, raw);
  }
  if (raw.startsWith('/vendor/')) {
    setIsolation(res);
    const spec = Object.keys(VENDOR_MODULES).find((s) => VENDOR_MODULES[s] === raw);
    const file = spec ? vendorFile(spec, ctx.root) : null;
    if (!file) return notFound(res, raw);
    return sendFile(req, res, file, raw);
  }
  return false;
}
