// `tslm bench structured --corpus <dir>`: the engine on a folder of real-world schemas as a server
// meets them. Each file is MaskBench's layout — {"schema": …, "tests": [{"data": …, "valid": bool}]}
// — or a bare schema (then only compiled). For every schema, with nothing cached but the
// vocabulary (a fresh grammar, automaton and matcher): the compile time (grammar, automaton and
// the first mask, as `tslm schema check --bench` prints it) and every token mask along each test
// instance (compact JSON, the file's key order), on the LLaMA-2 32K vocabulary, one thread.
// The reference for soundness is the corpus's own `valid` flag. Printed: how many schemas compile,
// are refused (by error class and keyword) or crash; instances the engine accepts that are invalid
// (unsound) and valid ones it rejects; the token-weighted mean mask, the median and worst
// per-schema p99, compile mean and max. No corpus ships with the repository: point it at one
// (e.g. MaskBench's data folder).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, basename } from 'node:path';
import { HFTokenizer } from '../src/tokenizers/hf.js';
import { SchemaCompiler, TokenVocab, TokenMatcher, DEAD, StructuredError } from '../src/structured/index.js';
import type { JsonSchema } from '../src/structured/index.js';
import { llama2Json } from '../test/tokenizers/real_vocabs.js';
import { warmUp } from './structured.js';
// The percentiles `tslm schema check --bench` prints, so a corpus figure and a single schema's agree.
import { pct } from '../src/cli/commands/schema.js';

export interface CorpusOptions {
  dir: string;
  /** Every k-th file (sorted by name), for a quicker sample (default 1). */
  every?: number;
  /** At most this many files. */
  limit?: number;
  /** Only files whose name contains this. */
  filter?: string;
  /** Also list this many slowest compiles and worst per-schema p99s (default 0). */
  slowest?: number;
  log?: (line: string) => void;
  /** Per-file results as JSON lines to this callback. */
  record?: (r: CorpusResult) => void;
}

export interface CorpusResult {
  file: string;
  status: 'compiled' | 'refused' | 'crash' | 'unreadable';
  error?: string;
  compileMs?: number;
  valid: number; validAccepted: number; invalid: number; invalidAccepted: number; crashes: number;
  masks: number[];
}

/** One schema and its tests. */
export function runCorpusFile(path: string, tok: HFTokenizer, vocab: TokenVocab, log: (l: string) => void): CorpusResult {
  const file = basename(path);
  const r: CorpusResult = { file, status: 'compiled', valid: 0, validAccepted: 0, invalid: 0, invalidAccepted: 0, crashes: 0, masks: [] };
  let doc: { schema?: JsonSchema; tests?: Array<{ data: unknown; valid: boolean }> };
  try { doc = JSON.parse(readFileSync(path, 'utf8')); } catch (e) { r.status = 'unreadable'; r.error = (e as Error).message; return r; }
  const schema = (doc && typeof doc === 'object' && 'schema' in doc ? doc.schema : doc) as JsonSchema;
  const tests = Array.isArray(doc?.tests) ? doc.tests : [];
  let m: TokenMatcher;
  const t0 = performance.now();
  try {
    m = new TokenMatcher(new SchemaCompiler(schema).compile(), vocab);
    m.mask(m.initial);
  } catch (e) {
    if (e instanceof StructuredError) { r.status = 'refused'; r.error = `${e.constructor.name}: ${e.message}`; return r; }
    r.status = 'crash'; r.error = (e as Error).stack ?? String(e); log(`CRASH compiling ${file}: ${r.error.split('\n').slice(0, 4).join(' | ')}`); return r;
  }
  r.compileMs = performance.now() - t0;
  for (const t of tests) {
    const text = JSON.stringify(t.data);
    if (text === undefined) continue;
    let ok = true;
    try {
      const ids = tok.encode(text);
      let s = m.initial;
      for (const id of ids) {
        const a = performance.now();
        const mask = m.mask(s);
        r.masks.push((performance.now() - a) * 1000);
        if (!(mask[id >>> 5] & (1 << (id & 31)))) { ok = false; break; }
        s = m.advance(s, id);
        if (s === DEAD) { ok = false; log(`MISMATCH ${file}: mask allows a token the automaton refuses`); break; }
      }
      if (ok) ok = m.automaton.accepting(s);
    } catch (e) {
      r.crashes++; log(`CRASH on an instance of ${file}: ${((e as Error).stack ?? String(e)).split('\n').slice(0, 4).join(' | ')}`); continue;
    }
    if (t.valid) { r.valid++; if (ok) r.validAccepted++; else log(`valid rejected ${file}: ${text.slice(0, 300)}`); }
    else { r.invalid++; if (ok) { r.invalidAccepted++; log(`UNSOUND ${file}: accepts ${text.slice(0, 300)}`); } }
  }
  return r;
}

/** Runs the corpus; returns false on any crash or unsound acceptance. */
export async function corpusStructured(opts: CorpusOptions): Promise<boolean> {
  const log = opts.log ?? (() => {});
  const { init } = await import('../src/index.js');
  await init({ threads: 1 });
  if (!statSync(opts.dir, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`--corpus: '${opts.dir}' is not a folder`);
  let files = readdirSync(opts.dir).filter((f) => f.endsWith('.json') && (!opts.filter || f.includes(opts.filter))).sort();
  files = files.filter((_, i) => i % (opts.every ?? 1) === 0);
  if (opts.limit !== undefined) files = files.slice(0, opts.limit);
  const tok = new HFTokenizer(await llama2Json());
  const vocab = TokenVocab.fromTokenizer(tok);
  warmUp();
  log(`corpus: ${files.length} schemas from ${opts.dir}, LLaMA-2 32K vocabulary, one thread, cold caches per schema`);
  const results: CorpusResult[] = [];
  const t0 = performance.now();
  for (const [i, f] of files.entries()) {
    const res = runCorpusFile(join(opts.dir, f), tok, vocab, log);
    results.push(res);
    opts.record?.(res);
    if ((i + 1) % 200 === 0) log(`… ${i + 1}/${files.length} schemas, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  const n = results.filter((r) => r.status !== 'unreadable').length;
  const compiled = results.filter((r) => r.status === 'compiled');
  const refused = results.filter((r) => r.status === 'refused');
  const crashed = results.filter((r) => r.status === 'crash' || r.crashes > 0);
  const reasons = new Map<string, number>();
  for (const r of refused) {
    const key = (r.error ?? '').replace(/^(\w+): .*?'([^']+)'.*$/s, '$1 $2').replace(/ at #.*$/s, '').slice(0, 80);
    reasons.set(key, (reasons.get(key) ?? 0) + 1);
  }
  const sum = (f: (r: CorpusResult) => number) => results.reduce((a, r) => a + f(r), 0);
  const valid = sum((r) => r.valid), validAcc = sum((r) => r.validAccepted), invalid = sum((r) => r.invalid), unsound = sum((r) => r.invalidAccepted);
  const masks = compiled.flatMap((r) => r.masks);
  const p99s = compiled.filter((r) => r.masks.length).map((r) => ({ f: r.file, p: pct(r.masks, 99) })).sort((a, b) => a.p - b.p);
  const cms = compiled.map((r) => r.compileMs!).sort((a, b) => a - b);
  const pc = (a: number, b: number) => (b ? ((100 * a) / b).toFixed(1) : '–') + '%';
  log(`schemas ${n}: compiled ${compiled.length} (${pc(compiled.length, n)}), refused ${refused.length} (${pc(refused.length, n)}), crashed ${crashed.length}, unreadable ${results.length - n}`);
  for (const [k, c] of [...reasons.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25)) log(`  refused ${String(c).padStart(5)}  ${k}`);
  log(`instances on compiled schemas: valid ${valid}, accepted ${validAcc} (${pc(validAcc, valid)}); invalid ${invalid}, accepted (unsound) ${unsound}`);
  if (masks.length) {
    const mean = masks.reduce((a, b) => a + b, 0) / masks.length;
    log(`masks ${masks.length}: token-weighted mean ${mean.toFixed(1)} µs, p50 ${pct(masks, 50).toFixed(1)} µs, p99 ${pct(masks, 99).toFixed(1)} µs`);
    log(`per-schema p99: median ${pct(p99s.map((x) => x.p), 50).toFixed(1)} µs, worst ${p99s[p99s.length - 1].p.toFixed(1)} µs (${p99s[p99s.length - 1].f}); schemas with p99 > 500 µs: ${p99s.filter((x) => x.p > 500).length}`);
  }
  if (cms.length) log(`compile: mean ${(cms.reduce((a, b) => a + b, 0) / cms.length).toFixed(2)} ms, p50 ${pct(cms, 50).toFixed(2)} ms, max ${cms[cms.length - 1].toFixed(1)} ms (${compiled.find((r) => r.compileMs === cms[cms.length - 1])?.file}); over 50 ms: ${cms.filter((x) => x > 50).length}`);
  const k = opts.slowest ?? 0;
  if (k > 0) {
    log(`slowest compiles:`);
    for (const r of [...compiled].sort((a, b) => b.compileMs! - a.compileMs!).slice(0, k)) log(`  ${r.compileMs!.toFixed(1).padStart(9)} ms  ${r.file}`);
    log(`worst per-schema p99:`);
    for (const x of p99s.slice(-k).reverse()) log(`  ${x.p.toFixed(0).padStart(9)} µs  ${x.f}`);
  }
  log(`corpus: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return crashed.length === 0 && unsound === 0;
}
