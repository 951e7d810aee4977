// Runs mutants: each in a fresh workspace, as the user-facing command in a child process, with
// a timeout and a peak-RSS probe (a --require preload writing process.resourceUsage().maxRSS at
// exit, and /proc/<pid>/status VmHWM polled while it runs, which also catches a killed child).
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { classify, memoryBudget, type Outcome, type Verdict } from './classify.js';
import type { FormatSpec } from './formats.js';
import type { BaseInputs } from './inputs.js';
import { mutate, type Expect } from './mutators.js';
import { Rng, mixSeed } from './rng.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const BIN = path.join(ROOT, 'bin', 'tslm.js');

const PRELOAD = `// tslm fuzz: report the peak RSS of this process at exit
const fs = require('fs');
process.on('exit', () => { try { if (process.env.TSLM_FUZZ_RSS) fs.writeFileSync(process.env.TSLM_FUZZ_RSS, String(process.resourceUsage().maxRSS * 1024)); } catch {} });
`;
/** Write the preload into `dir`; returns its path. */
export function writePreload(dir: string): string {
  const f = path.join(dir, 'tslm-fuzz-rss.cjs');
  writeFileSync(f, PRELOAD);
  return f;
}

const CAP = 64 * 1024;
function capped(): { push(b: Buffer): void; text(): string } {
  let head = '', tail = '', total = 0;
  return {
    push(b) { const s = b.toString('utf8'); total += s.length; if (head.length < CAP) head += s.slice(0, CAP - head.length); else tail = (tail + s).slice(-CAP); },
    text() { return total > head.length + tail.length ? `${head}\n…\n${tail}` : head + tail; },
  };
}
function vmHwm(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch { return 0; }
}

export interface RunOptions { cwd: string; timeoutMs: number; preload: string; inputBytes: number; killRss?: number }

/** Run `node bin/tslm.js …args` and record what happened. */
export function runCommand(args: string[], o: RunOptions): Promise<Outcome & { ms: number }> {
  const rssFile = path.join(o.cwd, `.rss-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const killRss = o.killRss ?? Math.max(2 * memoryBudget(o.inputBytes), 2 * 2 ** 30);
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, ['--require', o.preload, BIN, ...args], {
      cwd: o.cwd, stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TSLM_DEBUG: '1', TSLM_THREADS: '1', TSLM_FUZZ_RSS: rssFile, NODE_OPTIONS: '' },
    });
    const out = capped(), err = capped();
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    let peak = 0, timedOut = false, rssKilled = false;
    const poll = setInterval(() => {
      if (child.pid === undefined) return;
      peak = Math.max(peak, vmHwm(child.pid));
      if (peak > killRss && !rssKilled) { rssKilled = true; child.kill('SIGKILL'); }
    }, 50);
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, o.timeoutMs);
    child.on('close', (code, signal) => {
      clearInterval(poll); clearTimeout(timer);
      try { if (existsSync(rssFile)) { peak = Math.max(peak, Number(readFileSync(rssFile, 'utf8')) || 0); rmSync(rssFile, { force: true }); } } catch { /* no report */ }
      resolve({
        code, signal: timedOut || rssKilled ? null : signal, timedOut, rssKilled, stdout: out.text(), stderr: err.text(),
        peakRss: peak, inputBytes: o.inputBytes, ms: performance.now() - t0,
      });
    });
  });
}

export interface MutantResult {
  format: string; index: number; target: string; kind: string; expect: Expect;
  verdict: Verdict; detail: string; quotesContent?: boolean; heavy?: boolean; peakRss: number; inputBytes: number; ms: number;
  /** Under --keep: the kept workspace and the command that reproduces the result. */
  repro?: string;
}

export interface FuzzFormatOptions {
  base: BaseInputs; seed: number; count: number; timeoutMs: number; jobs: number;
  work: string; preload: string; keep?: string; keepAll?: boolean;
  onResult?: (r: MutantResult) => void;
}

const slug = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
const shellQuote = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** Build and run mutant `index` of a format. */
export async function runMutant(spec: FormatSpec, index: number, o: FuzzFormatOptions): Promise<MutantResult> {
  const r = new Rng(mixSeed(o.seed, spec.name, index));
  const target = r.pick(spec.targets);
  const ws = mkdtempSync(path.join(o.work, `${slug(spec.name)}-${index}-`));
  try {
    for (const [src, name] of spec.files(o.base)) cpSync(src, path.join(ws, name), { recursive: true });
    const base = new Uint8Array(readFileSync(path.join(ws, target.file)));
    const m = mutate(base, target.mutators, r);
    writeFileSync(path.join(ws, target.file), m.data);
    const args = spec.args.map((a) => (a === '{target}' ? target.file : a));
    const out = await runCommand(args, { cwd: ws, timeoutMs: o.timeoutMs, preload: o.preload, inputBytes: m.data.length });
    if (spec.exit1Answer && out.code === 1 && spec.exit1Answer.test(out.stdout) && !out.stderr.trim()) out.code = 0;
    const c = classify(out, m.expect, spec.checkOutput);
    const res: MutantResult = { format: spec.name, index, target: target.file, kind: m.kind, expect: m.expect, verdict: c.verdict, detail: c.detail, ...(c.quotesContent ? { quotesContent: true } : {}), ...(c.heavy ? { heavy: true } : {}), peakRss: out.peakRss, inputBytes: m.data.length, ms: out.ms };
    const failed = !['clear', 'accepted'].includes(c.verdict);
    if (o.keep && (failed || o.keepAll)) {
      const dest = path.join(o.keep, `${slug(spec.name)}-${index}`);
      rmSync(dest, { recursive: true, force: true });
      mkdirSync(path.dirname(dest), { recursive: true });
      rmSync(path.join(ws, 'out'), { recursive: true, force: true });
      cpSync(ws, dest, { recursive: true });
      res.repro = `(cd ${shellQuote(dest)} && node ${shellQuote(BIN)} ${args.map(shellQuote).join(' ')})`;
      writeFileSync(path.join(dest, 'REPRO.txt'), `${res.repro}\n# ${spec.name} #${index}: ${m.kind} (expect ${m.expect}) -> ${c.verdict}: ${c.detail}\n`);
    }
    return res;
  } finally {
    rmSync(ws, { recursive: true, force: true });
  }
}

/** Run `count` mutants of one format, `jobs` at a time. */
export async function fuzzFormat(spec: FormatSpec, o: FuzzFormatOptions): Promise<MutantResult[]> {
  const results: MutantResult[] = new Array(o.count);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < o.count) {
      const i = next++;
      results[i] = await runMutant(spec, i, o);
      o.onResult?.(results[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.jobs) }, worker));
  return results;
}
