// Argument helpers shared by the commands (kept apart from main.ts, which loads the commands).
import { parseArgs } from 'node:util';

/** A bad command-line argument: exit code 2 like other usage errors. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A numeric option's value, checked (undefined when the option is absent). */
export function num(v: string | undefined, name: string, check: (x: number) => boolean = Number.isFinite): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!check(x)) throw new UsageError(`--${name}: invalid value '${v}'`);
  return x;
}

/**
 * Ctrl-C for a training command: the first one aborts the signal (the trainer stops after the
 * step under way and writes a checkpoint), a second one quits at once. release() when done.
 */
export function interruptible(unit: string): { signal: AbortSignal; release(): void } {
  const ac = new AbortController();
  const onSigint = () => { console.error(`\ninterrupted: saving a checkpoint after this ${unit} (Ctrl-C again to quit now)`); ac.abort(); process.off('SIGINT', onSigint); };
  process.on('SIGINT', onSigint);
  return { signal: ac.signal, release: () => process.off('SIGINT', onSigint) };
}

/** What every `… demo` command takes: --out (a default), --quick, --seed, --threads. */
export function demoArgs(args: string[], defaultOut: string): { out: string; quick: boolean; seed: number | undefined; threads: number | undefined } {
  const { values } = parseArgs({ args, options: { out: { type: 'string' }, quick: { type: 'boolean', default: false }, seed: { type: 'string' }, threads: { type: 'string' } } });
  return {
    out: values.out ?? defaultOut, quick: values.quick ?? false, seed: num(values.seed, 'seed', Number.isInteger),
    threads: num(values.threads, 'threads', (x) => Number.isInteger(x) && x > 0),
  };
}
