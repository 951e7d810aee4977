// `tslm bench fuzz`: mutants of every format tslm reads, run as the user runs them, and hostile
// requests against `tslm serve`; prints issue #21's table and one reproducer per failure.
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeBaseInputs } from './inputs.js';
import { FORMATS, findFormat, type FormatSpec } from './formats.js';
import { fuzzFormat, writePreload, type MutantResult } from './runner.js';
import { fuzzServer, type ServerResult, type HostileRequest } from './server.js';
import { FAILURES, type Verdict } from './classify.js';

export { FORMATS, findFormat } from './formats.js';
export { classify, memoryBudget, FAILURES } from './classify.js';
export type { Outcome, Verdict } from './classify.js';
export { Rng, mixSeed } from './rng.js';
export { fuzzServer, hostileRequests } from './server.js';
export { makeBaseInputs } from './inputs.js';
export { runMutant, fuzzFormat } from './runner.js';
export type { MutantResult } from './runner.js';
export type { ServerResult, HostileRequest } from './server.js';

export interface FuzzOptions {
  perFormat: number;
  seed: number;
  /** Only these formats (names as in FORMATS, or a prefix). */
  formats?: string[];
  /** Run the server requests too (default true unless formats are named without 'server'). */
  server?: boolean;
  timeoutMs: number;
  jobs: number;
  /** Only the hostile requests this accepts (default: all of them). */
  serverFilter?: (r: HostileRequest) => boolean;
  /** Keep each failing mutant's workspace (and a REPRO.txt) here. */
  keep?: string;
  log?: (line: string) => void;
}

export interface FormatRow { format: string; tried: number; counts: Record<Verdict, number>; peakRss: number; unnamed: number; quotes: number; seconds: number; results: MutantResult[] }
export interface FuzzReport { rows: FormatRow[]; server: { results: ServerResult[]; baselineMs: number } | null; seconds: number }

export async function runFuzz(o: FuzzOptions): Promise<FuzzReport> {
  const log = o.log ?? (() => {});
  const specs: FormatSpec[] = o.formats?.length ? o.formats.filter((n) => n !== 'server').map((n) => { const f = findFormat(n); if (!f) throw new Error(`unknown format '${n}' (${FORMATS.map((x) => x.name).join(', ')}, server)`); return f; }) : FORMATS;
  const withServer = o.server ?? (!o.formats?.length || o.formats.includes('server'));
  const t0 = performance.now();
  const work = mkdtempSync(path.join(tmpdir(), 'tslm-fuzz-'));
  try {
    const base = await makeBaseInputs(path.join(work, 'base'));
    const preload = writePreload(work);
    const mut = path.join(work, 'mutants');
    mkdirSync(mut);
    const rows: FormatRow[] = [];
    for (const spec of specs) {
      const t1 = performance.now();
      let done = 0;
      const results = await fuzzFormat(spec, {
        base, seed: o.seed, count: o.perFormat, timeoutMs: o.timeoutMs, jobs: o.jobs, work: mut, preload, keep: o.keep,
        onResult: (r) => {
          done++;
          if (FAILURES.includes(r.verdict)) log(`  ${spec.name} #${r.index} ${r.verdict}: ${r.kind} [${r.target}] → ${r.detail}${r.repro ? `\n      ${r.repro}` : ''}`);
          if (done % 25 === 0 || done === o.perFormat) log(`${spec.name}: ${done}/${o.perFormat}`);
        },
      });
      const counts = { clear: 0, accepted: 0, crash: 0, hang: 0, garbage: 0, rss: 0 } as Record<Verdict, number>;
      let peak = 0, unnamed = 0, quotes = 0;
      const files = spec.targets.map((t) => path.basename(t.file));
      for (const r of results) {
        counts[r.verdict]++;
        if (r.quotesContent) quotes++;
        peak = Math.max(peak, r.peakRss);
        if (r.verdict === 'clear' && !files.some((f) => r.detail.includes(f)) && !r.detail.includes(r.target.split('/')[0])) unnamed++;
      }
      rows.push({ format: spec.name, tried: results.length, counts, peakRss: peak, unnamed, quotes, seconds: (performance.now() - t1) / 1000, results });
    }
    let server: FuzzReport['server'] = null;
    if (withServer) {
      log('server: starting tslm serve on the tiny model');
      const s = await fuzzServer({ model: base.hf, timeoutMs: o.timeoutMs, only: o.serverFilter, onResult: (r) => { if (r.verdict !== 'ok') log(`  server ${r.verdict}: ${r.name} → ${r.detail}`); } });
      server = { results: s.results, baselineMs: s.baselineMs };
    }
    return { rows, server, seconds: (performance.now() - t0) / 1000 };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const mb = (x: number): string => `${Math.round(x / 2 ** 20)} MB`;

/** The Markdown table of issue #21, the server line, and each failure with its reproducer. */
export function formatReport(rep: FuzzReport): string {
  const lines = [
    '| input | tried | clear error | accepted (valid or harmless) | crash | hang | garbage accepted | RSS over budget | peak RSS |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rep.rows) {
    const c = r.counts;
    lines.push(`| ${r.format} | ${r.tried} | ${c.clear} | ${c.accepted} | ${c.crash} | ${c.hang} | ${c.garbage} | ${c.rss} | ${mb(r.peakRss)} |`);
  }
  if (rep.server) {
    const s = rep.server.results, n = (v: ServerResult['verdict']): number => s.filter((x) => x.verdict === v).length;
    const c4 = s.filter((x) => typeof x.status === 'number' && x.status >= 400 && x.status < 500).length;
    const worst = Math.max(0, ...s.map((x) => x.delayMs));
    lines.push('', `server (tslm serve, ${s.length} hostile requests, each beside an ordinary completion of ${rep.server.baselineMs.toFixed(0)} ms): ` +
      `${c4} answered 4xx, ${n('5xx')} answered 5xx, ${n('slowed')} delayed the ordinary request > 100 ms (worst +${worst.toFixed(0)} ms), ${n('hang')} no answer, ${n('leak')} leaked a file, ${n('down')} after the server went down`);
  }
  const heavy = rep.rows.map((r) => [r, r.results.filter((x) => x.heavy)] as const).filter(([, h]) => h.length);
  if (heavy.length) {
    lines.push('', `accepted (exit 0) with a peak RSS over 4 × input + 256 MB (the budget applies to refusing; reported, not failed): ${heavy.map(([r, h]) => `${r.format} ${h.length}`).join(', ')}`);
    for (const [r, h] of heavy) lines.push(`  ${r.format}: ${h[0].kind} [${h[0].target}] → ${h[0].detail.slice(0, 160)}`);
  }
  const unnamed = rep.rows.filter((r) => r.unnamed).map((r) => `${r.format} ${r.unnamed}`);
  if (unnamed.length) lines.push('', `clear errors whose message does not name the file: ${unnamed.join(', ')}`);
  const quotes = rep.rows.filter((r) => r.quotes).map((r) => `${r.format} ${r.quotes}`);
  if (quotes.length) lines.push('', `clear errors that quote the file's text (an unwrapped JSON.parse message): ${quotes.join(', ')}`);
  const examples = rep.rows.flatMap((r) => r.results.filter((x) => x.quotesContent).slice(0, 1).map((x) => `  ${r.format}: ${x.kind} [${x.target}] → ${x.detail.slice(0, 160)}`));
  if (examples.length) lines.push(...examples);
  const fails = rep.rows.flatMap((r) => r.results.filter((x) => FAILURES.includes(x.verdict)));
  const sfails = rep.server?.results.filter((x) => x.verdict !== 'ok') ?? [];
  if (fails.length || sfails.length) {
    lines.push('', 'failures:');
    for (const f of fails) lines.push(`- ${f.format} #${f.index} ${f.verdict}: ${f.kind} [${f.target}, expect ${f.expect}] → ${f.detail}${f.repro ? `\n    ${f.repro}` : ''}`);
    for (const f of sfails) lines.push(`- server ${f.verdict}: ${f.name} → ${f.detail}`);
  }
  lines.push('', `${rep.seconds.toFixed(0)} s in all`);
  return lines.join('\n');
}

/** Counts of failures in a report (crash + hang + garbage + rss, and server failures). */
export function failureCount(rep: FuzzReport): number {
  return rep.rows.reduce((s, r) => s + r.counts.crash + r.counts.hang + r.counts.garbage + r.counts.rss, 0) + (rep.server?.results.filter((x) => x.verdict !== 'ok').length ?? 0);
}
