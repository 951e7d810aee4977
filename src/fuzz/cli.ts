// `tslm bench fuzz`: argument checks and printing (progress on stderr, the table on stdout).
import { UsageError } from '../cli/args.js';
import { runFuzz, formatReport, failureCount } from './index.js';

export async function benchFuzz(v: { 'per-format'?: string; seed?: string; format?: string[]; keep?: string; timeout?: string; jobs?: string; json?: boolean }): Promise<number> {
  const int = (s: string | undefined, name: string, def: number, min: number): number => {
    if (s === undefined) return def;
    const x = Number(s);
    if (!Number.isInteger(x) || x < min) throw new UsageError(`--${name} must be an integer >= ${min}, got '${s}'`);
    return x;
  };
  const rep = await runFuzz({
    perFormat: int(v['per-format'], 'per-format', 200, 1), seed: int(v.seed, 'seed', 1, 0), formats: v.format,
    timeoutMs: 1000 * int(v.timeout, 'timeout', 30, 1), jobs: int(v.jobs, 'jobs', 2, 1), keep: v.keep,
    log: (l) => process.stderr.write(l + '\n'),
  });
  if (v.json) console.log(JSON.stringify({ ...rep, rows: rep.rows.map((r) => ({ ...r, results: r.results.filter((x) => !['clear', 'accepted'].includes(x.verdict)) })) }));
  else console.log(formatReport(rep));
  return failureCount(rep) ? 1 : 0;
}
