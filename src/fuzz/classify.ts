// What a mutant's run means. Pure functions of the recorded outcome, so tests feed them
// synthetic outcomes.
import type { Expect } from './mutators.js';

export interface Outcome {
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  signal: string | null;
  /** Killed by the runner after the timeout. */
  timedOut: boolean;
  /** Killed by the runner because its peak RSS passed the kill limit. */
  rssKilled?: boolean;
  stdout: string;
  stderr: string;
  /** Peak resident set size in bytes (0 when unknown). */
  peakRss: number;
  /** Size of the mutated input in bytes (for the memory budget). */
  inputBytes: number;
}

/**
 * clear:    refused with one `tslm …:` message and no internal error;
 * accepted: exit 0 with finite output, for a mutation that may be valid;
 * crash:    signal, abort, internal error (TypeError, RangeError, stack overflow, out of memory,
 *           wasm trap, unwrapped JSON.parse SyntaxError) or a stack trace without a tslm message;
 * hang:     still running at the timeout;
 * garbage:  exit 0 but non-finite numbers in the output, or exit 0 on a mutant that must be refused;
 * rss:      peak RSS over 4 × input size + 256 MB while refusing the input (issue #21's target);
 *           an accepted input over it is reported (`heavy`), not failed: accepting means doing
 *           the work (training on a 10 MB row), whose memory is the work's.
 */
export type Verdict = 'clear' | 'accepted' | 'crash' | 'hang' | 'garbage' | 'rss';
export const FAILURES: readonly Verdict[] = ['crash', 'hang', 'garbage', 'rss'];

export interface Classified {
  verdict: Verdict;
  detail: string;
  /** A clear error that still breaks the conventions: it quotes the file's text (Node's JSON.parse message). */
  quotesContent?: boolean;
  /** Accepted, with a peak RSS over the budget that refusing must keep to. */
  heavy?: boolean;
}

/** Names of errors that mean a bug rather than a refused input. */
const INTERNAL_NAMES = /^(?:Uncaught )?(TypeError|RangeError|ReferenceError|SyntaxError|EvalError|URIError|AggregateError|RuntimeError|CompileError|LinkError|InternalError)\b.*$/m;
/** Messages of internal failures, also when wrapped in a tslm error's message. */
const INTERNAL_MESSAGES = /Maximum call stack size exceeded|heap out of memory|FATAL ERROR|Cannot read properties of (?:undefined|null)|is not a function|is not iterable|Invalid array length|Invalid typed array length|Array buffer allocation failed|memory access out of bounds|\bunreachable\b|Map maximum size exceeded|Set maximum size exceeded|Invalid string length|Cannot create a string longer|out of bounds memory access|integer overflow|Cannot convert .* to a BigInt|WebAssembly\.Memory\(\): could not allocate|Aborted\(/;
const STACK_FRAME = /^\s+at .+(?:\(.*:\d+:\d+\)|:\d+:\d+)$/m;
const NONFINITE_OUT = /(?<![A-Za-z])(?:NaN|-?Infinity)(?![A-Za-z])/;

export function memoryBudget(inputBytes: number): number { return 4 * inputBytes + 256 * 2 ** 20; }

function firstLine(s: string, re: RegExp): string {
  const m = re.exec(s);
  if (!m) return '';
  const start = s.lastIndexOf('\n', m.index) + 1, end = s.indexOf('\n', m.index);
  return s.slice(start, end < 0 ? undefined : end).trim().slice(0, 240);
}
/** The first stack frame in our own code (or any), shortened: where an internal error came from. */
export function topFrame(stderr: string): string {
  const frames = stderr.split('\n').filter((l) => STACK_FRAME.test(l)).map((l) => l.trim());
  const own = frames.find((l) => /\/dist\/src\//.test(l)) ?? frames[0];
  return own ? ` (${own.replace(/\(?(?:file:\/\/)?\/\S*?\/dist\/src\//, (m) => (m.startsWith('(') ? '(' : '') + 'src/').replace(/\.js:/, '.ts(js):')})` : '';
}
/** The user-facing message: the first `tslm …:` line of stderr. */
export function tslmMessage(stderr: string): string { return firstLine(stderr, /^tslm\b[^\n]*:/m); }

/**
 * Classify one run. `expect`: what the mutation requires (see mutators.ts). `checkOutput`:
 * whether the command prints numbers (scores, similarities, losses) that must be finite.
 * The run is made with TSLM_DEBUG=1, so a refused input prints its error's stack: the name on
 * the stack's first line tells an error class of tslm's from an internal one.
 */
export function classify(o: Outcome, expect: Expect, checkOutput: boolean): Classified {
  const mb = (x: number): string => `${(x / 2 ** 20).toFixed(0)} MB`;
  if (o.timedOut) return { verdict: 'hang', detail: `no exit within the timeout${o.peakRss ? ` (peak RSS ${mb(o.peakRss)})` : ''}` };
  if (o.rssKilled) return { verdict: 'rss', detail: `killed at peak RSS ${mb(o.peakRss)} (budget ${mb(memoryBudget(o.inputBytes))})` };
  const err = o.stderr;
  const internal = firstLine(err, INTERNAL_NAMES) || firstLine(err, INTERNAL_MESSAGES);
  if (o.signal) return { verdict: 'crash', detail: `killed by ${o.signal}${internal ? `: ${internal}` : ''}${topFrame(err)}` };
  if (internal) return { verdict: 'crash', detail: internal + topFrame(err) };
  const msg = tslmMessage(err);
  let v: Classified;
  if (o.code !== 0) {
    if (o.code !== 1 && o.code !== 2) v = { verdict: 'crash', detail: `exit code ${o.code}${msg ? `: ${msg}` : ''}` };
    else if (!msg) v = { verdict: 'crash', detail: `exit ${o.code} without a tslm message${STACK_FRAME.test(err) ? ' (stack trace)' : ''}: ${err.trim().split('\n')[0]?.slice(0, 200) ?? ''}` };
    else v = { verdict: 'clear', detail: msg, ...(/is not valid JSON|Unexpected token/.test(msg) && /"[^"]{2,}/.test(msg.replace(/^[^(]*/, '')) ? { quotesContent: true } : {}) };
  } else if (checkOutput && NONFINITE_OUT.test(o.stdout + '\n' + err)) {
    v = { verdict: 'garbage', detail: `exit 0 with non-finite output: ${firstLine(o.stdout + '\n' + err, NONFINITE_OUT)}` };
  } else if (expect === 'reject') {
    v = { verdict: 'garbage', detail: 'exit 0 on a mutant that must be refused' };
  } else v = { verdict: 'accepted', detail: 'exit 0' };
  if (v.verdict === 'clear' && o.peakRss > memoryBudget(o.inputBytes)) {
    return { verdict: 'rss', detail: `peak RSS ${mb(o.peakRss)} over the budget ${mb(memoryBudget(o.inputBytes))} (${v.verdict}: ${v.detail})` };
  }
  if (v.verdict === 'accepted' && o.peakRss > memoryBudget(o.inputBytes)) return { ...v, detail: `${v.detail}, peak RSS ${mb(o.peakRss)}`, heavy: true };
  return v;
}
