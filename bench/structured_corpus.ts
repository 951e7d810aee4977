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
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/**
 * ajv (+ ajv-formats) for a corpus schema, in the draft its `$schema` names (draft-04 through
 * ajv-draft-04, a development dependency; 2019-09, 2020-12; otherwise draft-07, then draft-04 for
 * schemas written with draft-04's `id`): the outside reference the engine's soundness is judged by
 * (the corpus's own flags come from another validator). Null when no ajv compiles the schema.
 */
export function ajvJudge(schema: JsonSchema): ((v: unknown) => boolean) | null {
  const meta = typeof schema === 'object' && schema !== null && typeof schema.$schema === 'string' ? schema.$schema : '';
  const load = (m: string): (new (o: object) => { compile(s: object): (v: unknown) => boolean }) | null => {
    try { const x = require(m); return x.default ?? x; } catch { return null; }
  };
  const addFormats = load('ajv-formats') as unknown as ((a: unknown) => void) | null;
  const order = /draft-04|draft-03/.test(meta) ? ['ajv-draft-04', 'ajv'] : /2020-12/.test(meta) ? ['ajv/dist/2020'] : /2019-09/.test(meta) ? ['ajv/dist/2019'] : ['ajv', 'ajv-draft-04'];
  for (const m of order) {
    const A = load(m);
    if (!A) continue;
    try {
      const a = new A({ strict: false, logger: false, validateSchema: false, allErrors: false });
      addFormats?.(a);
      const s = typeof schema === 'object' && schema !== null ? { ...schema } : schema;
      if (typeof s === 'object') delete s.$schema;
      const v = a.compile(s as object) as ((v: unknown) => boolean) & { $async?: boolean };
      // An "$async" schema validates to a promise: not judged here.
      if (v.$async) return null;
      return (x: unknown) => { try { return v(x) as boolean; } catch { return false; } };
    } catch { /* the next draft */ }
  }
  return null;
}

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
  /** Compile as generation does (additionalProperties 'declared': schema order) instead of as checking does. */
  generating?: boolean;
  /** The outside validator (default ajvJudge; null for a schema: only the files' flags judge it). */
  judge?: (schema: JsonSchema) => ((v: unknown) => boolean) | null;
}

export interface CorpusResult {
  file: string;
  status: 'compiled' | 'refused' | 'crash' | 'unreadable';
  error?: string;
  compileMs?: number;
  valid: number; validAccepted: number; invalid: number; invalidAccepted: number; crashes: number;
  /** Judged by ajv (ajvJudge) where it compiles the schema: valid, accepted; invalid, accepted (unsound); flags ajv disputes. */
  ajv?: { valid: number; validAccepted: number; invalid: number; invalidAccepted: number; disputed: number };
  masks: number[];
  /** Work the masks did, which load does not change: trie nodes walked (TokenMatcher.stats) and parser states built. */
  walked?: number;
  states?: number;
  /** Stacks expanded building those states (ByteAutomaton.expansions): load does not change it either. */
  expanded?: number;
  /** Per mask (as `masks`): its work, trie nodes walked + 20 × parser states built (load does not change it). */
  work?: number[];
}

/** A mask's work as `--record` counts it: trie nodes walked + WORK_PER_STATE × parser states built. */
export const WORK_PER_STATE = 20;

/** A result as one JSON line of `--record`: its figures without the masks (their count and p99 instead). */
export function recordLine(r: CorpusResult): string {
  const { masks, error, work, ...rest } = r;
  return JSON.stringify({ ...rest, ...(error !== undefined ? { error: error.split('\n')[0].slice(0, 200) } : {}), ...(r.compileMs !== undefined ? { compileMs: +r.compileMs.toFixed(3) } : {}), nMasks: masks.length, p99: masks.length ? +pct(masks, 99).toFixed(1) : undefined, p99Work: work?.length ? pct(work, 99) : undefined });
}

/** One schema and its tests. */
export function runCorpusFile(path: string, tok: HFTokenizer, vocab: TokenVocab, log: (l: string) => void, judgeOf: CorpusOptions['judge'] = ajvJudge, generating = false): CorpusResult {
  const file = basename(path);
  const r: CorpusResult = { file, status: 'compiled', valid: 0, validAccepted: 0, invalid: 0, invalidAccepted: 0, crashes: 0, masks: [] };
  let doc: { schema?: JsonSchema; tests?: Array<{ data: unknown; valid: boolean }> };
  try { doc = JSON.parse(readFileSync(path, 'utf8')); } catch (e) { r.status = 'unreadable'; r.error = (e as Error).message; return r; }
  const schema = (doc && typeof doc === 'object' && 'schema' in doc ? doc.schema : doc) as JsonSchema;
  const tests = Array.isArray(doc?.tests) ? doc.tests : [];
  let m: TokenMatcher;
  const t0 = performance.now();
  try {
    m = new TokenMatcher(new SchemaCompiler(schema, generating ? { additionalProperties: 'declared' } : {}).compile(), vocab);
    m.mask(m.initial);
  } catch (e) {
    if (e instanceof StructuredError) { r.status = 'refused'; r.error = `${e.constructor.name}: ${e.message}`; return r; }
    r.status = 'crash'; r.error = (e as Error).stack ?? String(e); log(`CRASH compiling ${file}: ${r.error.split('\n').slice(0, 4).join(' | ')}`); return r;
  }
  r.compileMs = performance.now() - t0;
  const judge = tests.length ? judgeOf(schema) : null;
  if (judge) r.ajv = { valid: 0, validAccepted: 0, invalid: 0, invalidAccepted: 0, disputed: 0 };
  for (const t of tests) {
    const text = JSON.stringify(t.data);
    if (text === undefined) continue;
    let ok = true;
    try {
      const ids = tok.encode(text);
      let s = m.initial;
      for (const id of ids) {
        const w0 = m.stats.nodesVisited + WORK_PER_STATE * m.automaton.states;
        const a = performance.now();
        const mask = m.mask(s);
        r.masks.push((performance.now() - a) * 1000);
        (r.work ??= []).push(m.stats.nodesVisited + WORK_PER_STATE * m.automaton.states - w0);
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
    if (judge && r.ajv) {
      const v = judge(t.data);
      if (v !== t.valid) { r.ajv.disputed++; log(`ajv disputes the flag (${t.valid ? 'valid' : 'invalid'}) of ${file}: ${text.slice(0, 200)}`); }
      if (v) { r.ajv.valid++; if (ok) r.ajv.validAccepted++; else log(`rejected, valid by ajv: ${file}: ${text.slice(0, 300)}`); } else { r.ajv.invalid++; if (ok) { r.ajv.invalidAccepted++; log(`UNSOUND by ajv ${file}: accepts ${text.slice(0, 300)}`); } }
    }
  }
  r.walked = m.stats.nodesVisited;
  r.states = m.automaton.states;
  r.expanded = m.automaton.expansions;
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
  log(`corpus: ${files.length} schemas from ${opts.dir}, LLaMA-2 32K vocabulary, one thread, cold caches per schema, compiled as ${opts.generating ? 'generation does (schema order, declared keys)' : 'checking does (members in any order)'}`);
  const results: CorpusResult[] = [];
  const t0 = performance.now();
  for (const [i, f] of files.entries()) {
    const res = runCorpusFile(join(opts.dir, f), tok, vocab, log, opts.judge, opts.generating);
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
  const judged = compiled.filter((r) => r.ajv);
  const aj = (f: (a: NonNullable<CorpusResult['ajv']>) => number) => judged.reduce((a, r) => a + f(r.ajv!), 0);
  const ajUnsound = aj((a) => a.invalidAccepted);
  log(`judged by ajv (+ ajv-formats; ${judged.length} of ${compiled.filter((r) => r.valid + r.invalid > 0).length} schemas with tests): valid ${aj((a) => a.valid)}, accepted ${aj((a) => a.validAccepted)} (${pc(aj((a) => a.validAccepted), aj((a) => a.valid))}); invalid ${aj((a) => a.invalid)}, accepted (unsound) ${ajUnsound}; corpus flags ajv disputes: ${aj((a) => a.disputed)}`);
  if (masks.length) {
    const mean = masks.reduce((a, b) => a + b, 0) / masks.length;
    log(`masks ${masks.length}: token-weighted mean ${mean.toFixed(1)} µs, p50 ${pct(masks, 50).toFixed(1)} µs, p99 ${pct(masks, 99).toFixed(1)} µs`);
    log(`per-schema p99: median ${pct(p99s.map((x) => x.p), 50).toFixed(1)} µs, worst ${p99s[p99s.length - 1].p.toFixed(1)} µs (${p99s[p99s.length - 1].f}); schemas with p99 > 500 µs: ${p99s.filter((x) => x.p > 500).length}`);
    // The same rank by work, which load does not change: a full walk of the 32K trie is over 20,000.
    const w99 = compiled.filter((r) => r.work?.length).map((r) => pct(r.work!, 99));
    log(`per-schema p99 of mask work (trie nodes walked + ${WORK_PER_STATE} × parser states built): median ${pct(w99, 50).toFixed(0)}; schemas over 2,000: ${w99.filter((x) => x > 2000).length}, over 5,000: ${w99.filter((x) => x > 5000).length}, over 20,000: ${w99.filter((x) => x > 20000).length}`);
    const tot = (f: (r: CorpusResult) => number | undefined) => compiled.reduce((a, r) => a + (f(r) ?? 0), 0);
    log(`work of all schemas (compile included): trie nodes walked ${(tot((r) => r.walked) / 1e6).toFixed(2)} M, parser states built ${(tot((r) => r.states) / 1e6).toFixed(3)} M, stacks expanded ${(tot((r) => r.expanded) / 1e6).toFixed(2)} M`);
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
  // Unsound: accepted where ajv (or, where ajv cannot compile the schema, the corpus's flag) says invalid.
  const unjudgedUnsound = compiled.filter((r) => !r.ajv).reduce((a, r) => a + r.invalidAccepted, 0);
  return crashed.length === 0 && ajUnsound + unjudgedUnsound === 0;
}
