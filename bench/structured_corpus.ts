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
import { getHeapStatistics } from 'node:v8';
import { PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';

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
  /** Per mask: when it began (performance.now(), ms), to find the masks a garbage collection overlapped. */
  at?: number[];
  /** Per mask: bytes it allocated (V8 heap + ArrayBuffer backing stores), where no collection ran during it (else NaN). */
  alloc?: number[];
  /** Per mask: whether a garbage collection overlapped it (set by corpusStructured from PerformanceObserver 'gc' entries). */
  gc?: boolean[];
  /** Per mask: its least time over the re-timed runs in which no collection overlapped it (µs; corpusStructured, for schemas over RETIME_US). */
  least?: number[];
  /** The compile's least time over the re-timed runs (ms), for compiles over RETIME_COMPILE_MS. */
  compileLeastMs?: number;
}

/** Bytes allocated since `h` (V8 heap + ArrayBuffer backing stores), less the heap statistics' own object; NaN when a collection ran (the heap shrank). */
function allocatedSince(h: { used_heap_size: number; external_memory: number }): number {
  const n = getHeapStatistics();
  const d = n.used_heap_size - h.used_heap_size - HEAP_STATS_BYTES + Math.max(0, n.external_memory - h.external_memory);
  return n.used_heap_size < h.used_heap_size ? NaN : Math.max(0, d);
}

/** What one getHeapStatistics() call adds to the heap between two calls (measured once, the least of 64). */
const HEAP_STATS_BYTES = (() => {
  let least = Infinity;
  for (let i = 0; i < 64; i++) { const a = getHeapStatistics(); const b = getHeapStatistics(); const d = b.used_heap_size - a.used_heap_size; if (d >= 0) least = Math.min(least, d); }
  return Number.isFinite(least) ? least : 0;
})();

/** A mask's work as `--record` counts it: trie nodes walked + WORK_PER_STATE × parser states built. */
export const WORK_PER_STATE = 20;

/** A result as one JSON line of `--record`: its figures without the masks (their count and p99 instead). */
export function recordLine(r: CorpusResult): string {
  const { masks, error, work, at, alloc, gc, least, ...rest } = r;
  const fin = alloc?.filter((x) => Number.isFinite(x)) ?? [];
  return JSON.stringify({ ...rest, ...(gc ? { gcMasks: gc.filter(Boolean).length } : {}), ...(fin.length ? { allocMean: Math.round(fin.reduce((a, b) => a + b, 0) / fin.length) } : {}), ...(least ? { p99Least: +pct(least, 99).toFixed(1) } : {}), ...(error !== undefined ? { error: error.split('\n')[0].slice(0, 200) } : {}), ...(r.compileMs !== undefined ? { compileMs: +r.compileMs.toFixed(3) } : {}), nMasks: masks.length, p99: masks.length ? +pct(masks, 99).toFixed(1) : undefined, p99Work: work?.length ? pct(work, 99) : undefined });
}

/** A corpus file: a schema with its test instances ({ schema, tests }), or a bare schema. */
interface CorpusDoc { schema: JsonSchema; tests: Array<{ data: unknown; valid: boolean }> }
function readCorpusDoc(path: string): CorpusDoc {
  const doc = JSON.parse(readFileSync(path, 'utf8')) as { schema?: JsonSchema; tests?: CorpusDoc['tests'] };
  const schema = (doc && typeof doc === 'object' && 'schema' in doc ? doc.schema : doc) as JsonSchema;
  return { schema, tests: Array.isArray(doc?.tests) ? doc.tests : [] };
}

/** The schema's matcher as a server meets it (generating: only the declared keys), with its first mask made (part of the compile time). */
function compileCorpusSchema(schema: JsonSchema, vocab: TokenVocab, generating: boolean): TokenMatcher {
  const m = new TokenMatcher(new SchemaCompiler(schema, generating ? { additionalProperties: 'declared' } : {}).compile(), vocab);
  m.mask(m.initial);
  return m;
}

/** One schema and its tests. */
export function runCorpusFile(path: string, tok: HFTokenizer, vocab: TokenVocab, log: (l: string) => void, judgeOf: CorpusOptions['judge'] = ajvJudge, generating = false): CorpusResult {
  const file = basename(path);
  const r: CorpusResult = { file, status: 'compiled', valid: 0, validAccepted: 0, invalid: 0, invalidAccepted: 0, crashes: 0, masks: [] };
  let doc: CorpusDoc;
  try { doc = readCorpusDoc(path); } catch (e) { r.status = 'unreadable'; r.error = (e as Error).message; return r; }
  const { schema, tests } = doc;
  let m: TokenMatcher;
  const t0 = performance.now();
  try {
    m = compileCorpusSchema(schema, vocab, generating);
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
        const h = getHeapStatistics();
        const a = performance.now();
        const mask = m.mask(s);
        const b = performance.now();
        (r.alloc ??= []).push(allocatedSince(h));
        r.masks.push((b - a) * 1000);
        (r.at ??= []).push(a);
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

/**
 * The same schema's compile and masks again, timed only (a fresh grammar and matcher, the same
 * instances): to re-time a schema whose figures a pause may have made (least of k). Null if it
 * does not compile.
 */
export function timeCorpusFile(path: string, tok: HFTokenizer, vocab: TokenVocab, generating = false): { start: number; compileMs: number; masks: number[]; at: number[] } | null {
  const { schema, tests } = readCorpusDoc(path);
  let m: TokenMatcher;
  const t0 = performance.now();
  try {
    m = compileCorpusSchema(schema, vocab, generating);
  } catch { return null; }
  const out = { start: t0, compileMs: performance.now() - t0, masks: [] as number[], at: [] as number[] };
  for (const t of tests) {
    const text = JSON.stringify(t.data);
    if (text === undefined) continue;
    try {
      let s = m.initial;
      for (const id of tok.encode(text)) {
        const a = performance.now();
        const mask = m.mask(s);
        out.masks.push((performance.now() - a) * 1000);
        out.at.push(a);
        if (!(mask[id >>> 5] & (1 << (id & 31)))) break;
        s = m.advance(s, id);
        if (s === DEAD) break;
      }
    } catch { /* counted by runCorpusFile */ }
  }
  return out;
}

/** Schemas whose p99 mask time is over this (µs) are re-timed (least of RETIMES + 1 runs). */
export const RETIME_US = 500;
/** Compiles over this (ms) are re-timed likewise. */
export const RETIME_COMPILE_MS = 50;
/** Further runs of a re-timed schema. */
export const RETIMES = 2;

/**
 * Garbage collections as PerformanceObserver reports them ('gc' entries: start and duration on
 * performance.now()'s clock), delivered between schemas (the runner yields to the event loop).
 */
export class GcLog {
  readonly spans: Array<{ start: number; end: number; major: boolean }> = [];
  private readonly obs: PerformanceObserver;
  constructor() {
    this.obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        // detail.kind: a scavenge (minor), a mark-compact (major), incremental marking, weak callbacks.
        const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0;
        this.spans.push({ start: e.startTime, end: e.startTime + e.duration, major: kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR });
      }
    });
    this.obs.observe({ entryTypes: ['gc'] });
  }
  /** Lets the observer's queued entries arrive (Node queues a collection's entry in one turn of the event loop and delivers it in the next). */
  async flush(): Promise<void> { for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r)); }
  /** Per mask (start times at, durations in µs): whether a collection overlapped it. */
  overlaps(at: number[], us: number[]): boolean[] {
    const out = new Array<boolean>(at.length).fill(false);
    if (!this.spans.length || !at.length) return out;
    const lo = at[0];
    for (const g of this.spans) {
      if (g.end < lo) continue;
      for (let i = 0; i < at.length; i++) if (g.start <= at[i] + us[i] / 1000 && g.end >= at[i]) out[i] = true;
    }
    return out;
  }
  /** Drops the entries before t. */
  forget(t: number): void { let k = 0; while (k < this.spans.length && this.spans[k].end < t) k++; if (k) this.spans.splice(0, k); }
  close(): void { this.obs.disconnect(); }
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
  const gcs = new GcLog();
  let gcMs = 0, gcN = 0, gcMajor = 0;
  for (const [i, f] of files.entries()) {
    const ts = performance.now();
    const res = runCorpusFile(join(opts.dir, f), tok, vocab, log, opts.judge, opts.generating);
    const te = performance.now();
    results.push(res);
    await gcs.flush();
    if (res.at) res.gc = gcs.overlaps(res.at, res.masks);
    for (const g of gcs.spans) if (g.start >= ts && g.start <= te) { gcN++; gcMs += g.end - g.start; if (g.major) gcMajor++; }
    // Pauses (a collection, the scheduler) from timing: a schema over a bound is run again from a
    // fresh compile; each mask keeps its least time over the runs in which no collection overlapped it.
    const p99 = res.masks.length ? pct(res.masks, 99) : 0;
    const slowCompile = res.status === 'compiled' && res.compileMs! > RETIME_COMPILE_MS;
    if (res.status === 'compiled' && (p99 > RETIME_US || slowCompile)) {
      const least = res.masks.map((x, j) => (res.gc![j] ? Infinity : x));
      // (A compile's collections are its own allocation's: its least time keeps them.)
      let cLeast = res.compileMs!;
      for (let k = 0; k < RETIMES; k++) {
        gcs.forget(performance.now());
        const t = timeCorpusFile(join(opts.dir, f), tok, vocab, opts.generating);
        await gcs.flush();
        if (!t || t.masks.length !== least.length) break;
        const g = gcs.overlaps(t.at, t.masks);
        for (let j = 0; j < least.length; j++) if (!g[j]) least[j] = Math.min(least[j], t.masks[j]);
        cLeast = Math.min(cLeast, t.compileMs);
      }
      // A mask that a collection overlapped in every run keeps its least time.
      if (p99 > RETIME_US) res.least = least.map((x, j) => (Number.isFinite(x) ? x : res.masks[j]));
      if (slowCompile) res.compileLeastMs = cLeast;
    }
    gcs.forget(performance.now());
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
  gcs.close();
  if (masks.length) {
    // Pauses apart from work: the masks a garbage collection overlapped, what the masks allocate,
    // and the p99s without pauses (collections left out; schemas over RETIME_US re-timed).
    const gcMasks = compiled.reduce((a, r) => a + (r.gc?.filter(Boolean).length ?? 0), 0);
    const al = compiled.flatMap((r) => r.alloc?.filter((x) => Number.isFinite(x)) ?? []);
    const alMean = al.length ? al.reduce((a, b) => a + b, 0) / al.length : 0;
    const alTop = compiled.filter((r) => r.alloc?.length).map((r) => ({ f: r.file, m: Math.max(...r.alloc!.filter((x) => Number.isFinite(x)), 0) })).sort((a, b) => b.m - a.m)[0];
    const kb = (x: number) => (x / 1024).toFixed(1) + ' KB';
    log(`pauses: ${gcN} garbage collections while the schemas ran (${gcMajor} mark-compact, ${gcMs.toFixed(0)} ms), ${gcMasks} masks overlapped one (${((100 * gcMasks) / masks.length).toFixed(3)}%); allocation per mask: mean ${kb(alMean)}, p50 ${kb(pct(al, 50))}, p99 ${kb(pct(al, 99))}, max ${kb(alTop?.m ?? 0)} (${alTop?.f}), all masks ${(al.reduce((a, b) => a + b, 0) / 2 ** 20).toFixed(0)} MB`);
    const noGc = compiled.filter((r) => r.masks.length).map((r) => { const xs = r.masks.filter((_, j) => !r.gc?.[j]); return { f: r.file, p: xs.length ? pct(xs, 99) : 0 }; }).sort((a, b) => a.p - b.p);
    log(`per-schema p99, masks a collection overlapped left out: median ${pct(noGc.map((x) => x.p), 50).toFixed(1)} µs, worst ${noGc[noGc.length - 1].p.toFixed(1)} µs (${noGc[noGc.length - 1].f}); schemas with p99 > 500 µs: ${noGc.filter((x) => x.p > 500).length}`);
    const lst = compiled.filter((r) => r.masks.length).map((r) => ({ f: r.file, p: r.least ? pct(r.least, 99) : pct(r.masks, 99), re: !!r.least })).sort((a, b) => a.p - b.p);
    log(`per-schema p99 without pauses (the ${lst.filter((x) => x.re).length} schemas over ${RETIME_US} µs re-timed: each mask's least over ${RETIMES + 1} fresh runs, runs a collection overlapped left out): worst ${lst[lst.length - 1].p.toFixed(1)} µs (${lst[lst.length - 1].f}); schemas with p99 > 500 µs: ${lst.filter((x) => x.p > 500).length}`);
    if (k > 0) {
      log(`worst per-schema p99 without pauses:`);
      for (const x of lst.slice(-k).reverse()) log(`  ${x.p.toFixed(0).padStart(9)} µs  ${x.f}`);
    }
  }
  if (cms.length) {
    const cl = compiled.map((r) => ({ f: r.file, ms: r.compileLeastMs ?? r.compileMs! })).sort((a, b) => b.ms - a.ms);
    log(`compile re-timed (the ${compiled.filter((r) => r.compileLeastMs !== undefined).length} over ${RETIME_COMPILE_MS} ms: least of ${RETIMES + 1} fresh compiles): max ${cl[0].ms.toFixed(1)} ms (${cl[0].f}); over 50 ms: ${cl.filter((x) => x.ms > 50).length}`);
    if (k > 0) for (const x of cl.slice(0, Math.min(k, cl.filter((y) => y.ms > RETIME_COMPILE_MS).length))) log(`  ${x.ms.toFixed(1).padStart(9)} ms  ${x.f}`);
  }
  log(`corpus: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  // Unsound: accepted where ajv (or, where ajv cannot compile the schema, the corpus's flag) says invalid.
  const unjudgedUnsound = compiled.filter((r) => !r.ajv).reduce((a, r) => a + r.invalidAccepted, 0);
  return crashed.length === 0 && ajUnsound + unjudgedUnsound === 0;
}
