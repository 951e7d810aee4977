// Verifiable rewards for reasoning RL (GRPO and friends): math, code, format, a user's own JS
// module, and weighted sums of them.
//
//   const r = await createReward('math:1,format:0.2', { onError: (name, msg) => log(name, msg) });
//   const { total, components } = await r.scoreDetailed(batch);  // total[i] = 1·math[i] + 0.2·format[i]
//   // components: { math: number[], format: number[] }, unweighted, for `rewards/math`, `rewards/format`
//   await r.close?.();
//
// Every RewardFunction has `score(batch)` (the totals) and `scoreDetailed(batch)` → { total,
// components }: a single reward gives one component under its own name; a weighted sum gives one
// per part, unweighted. Every number returned is finite.
//
// The rewards, per RewardContext (completion = the policy's text, row = the data row):
//  - math:   1 if the final answer (extractAnswer: in the answer part — the last <answer>…</answer>,
//            else what follows </think>, else all — its last \boxed{…}/\fbox{…}, else the whole
//            tag content, else its last number) equals row.answer (string or number; a
//            GSM8K-style '… #### 42' counts from after '####'), compared by exact rational value
//            when both sides are numbers (mathEqual), else as normalised text; 0 otherwise.
//  - format: 1 if the completion is exactly one non-empty <think>…</think> followed by exactly one
//            non-empty <answer>…</answer> and nothing but whitespace (thinkAnswerFormat); with
//            answerTags false (option, or row.answer_tags === false) the answer is any non-empty
//            text after </think>. A prompt that ends with '<think>' opens the block for the
//            completion. A truncated completion scores 0.
//  - code:   the fraction of row.tests passed by the JavaScript in the completion (extractCode),
//            run in the sandbox (sandbox.ts); with codeAll, 1 only if all pass. row.tests is an
//            array of boolean expressions ('add(1, 2) === 3'; must be exactly true) or one string
//            of statements using assert(cond, msg) (passes if it does not throw); row.entry_point,
//            if given, is a function the code must define.
//  - a module path ('./my-reward.js', resolved against cwd): an ES module or CommonJS file that
//            exports a function (ctx: RewardContext) => number | Promise<number> as its default
//            export (module.exports = f) or as `reward`; or `rewardBatch(ctxs) => number[] |
//            Promise<number[]>` (preferred when present; one call per batch). It runs in a worker
//            thread, timeoutMs per call; a call that throws, hangs (the worker is terminated and
//            started again) or returns something that is not a finite number scores 0 and is
//            reported through onError, once per kind of failure and reward; training goes on.
// Bad specs, modules that are missing, fail to load or export no function, and rows without the
// field a reward needs throw clear errors (RewardSpecError, RewardModuleError, RewardInputError).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Sandbox } from './sandbox.js';
import type { WorkerMessage } from './reward_worker.js';

export interface RewardContext {
  prompt: string;                  // the prompt text given to the policy
  completion: string;              // the generated text after the prompt
  row: Record<string, unknown>;    // the data row (answer, tests, entry_point, …)
  truncated: boolean;              // hit max length without stopping
  completionTokens: number;
}
export interface RewardScores {
  total: number[];                         // one finite number per context
  components: Record<string, number[]>;    // per reward name, unweighted
}
export interface RewardFunction {
  readonly name: string;                   // 'math', 'code', 'format', a module's file name, or 'math+format'
  score(batch: RewardContext[]): Promise<number[]>;
  scoreDetailed(batch: RewardContext[]): Promise<RewardScores>;
  close?(): Promise<void> | void;          // stop sandbox processes and workers
}
export interface RewardOptions {
  onError?(name: string, message: string): void;   // a reward that failed (default: console.warn)
  timeoutMs?: number;       // a module reward's time per call (default 10 000)
  codeTimeoutMs?: number;   // a code candidate's execution time, code and all tests (default 2000)
  codeMemoryMb?: number;    // a sandbox process's JS heap (default 256)
  codeProcesses?: number;   // sandbox processes, candidates run concurrently (default 2)
  codeAll?: boolean;        // code: 1 only if all tests pass (default: the fraction passed)
  answerTags?: boolean;     // format: require <answer>…</answer> after </think> (default true)
  cwd?: string;             // where module paths are resolved from (default process.cwd())
}

/** A reward spec that cannot be used: unknown name, bad weight, duplicate part. */
export class RewardSpecError extends Error {
  override name = 'RewardSpecError';
}
/** A reward module that is missing, fails to load, or exports no function. */
export class RewardModuleError extends Error {
  override name = 'RewardModuleError';
  constructor(readonly file: string, detail: string) {
    super(`reward module ${file}: ${detail}`);
  }
}
/** A data row without the field a reward needs (row = its position in the batch). */
export class RewardInputError extends Error {
  override name = 'RewardInputError';
}

// ---------------------------------------------------------------------------------------------
// Math: answer extraction and comparison by exact rational value.

/** Content of the last \boxed{…} or \fbox{…} with balanced braces, or null. */
function lastBoxed(text: string): string | null {
  const starts = [...text.matchAll(/\\(?:boxed|fbox)\s*\{/g)].map((m) => m.index! + m[0].length);
  for (const start of starts.reverse()) {
    let depth = 1;
    for (let i = start; i < text.length; i++) {
      if (text[i] === '{') depth++;
      else if (text[i] === '}' && --depth === 0) return text.slice(start, i);
    }
  }
  return null;
}

/** Content of the last <answer>…</answer>, or null. */
function lastAnswerTag(text: string): string | null {
  const all = [...text.matchAll(/<answer>([\s\S]*?)<\/answer>/g)];
  return all.length ? all[all.length - 1][1] : null;
}

// A number in running text: -12, 1,000, 3.5, 3/4 (a '-' right after a digit is not a sign).
const NUMBER_IN_TEXT = /(?:(?<![\d.])-)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\/\d+)?/g;

/** The answer part of a completion: the last <answer>…</answer>, else what follows the last
 * </think>, else all of it (so drafts inside the thinking do not count). */
export function answerPart(completion: string): string {
  const think = completion.lastIndexOf('</think>');
  return lastAnswerTag(completion) ?? (think >= 0 ? completion.slice(think + '</think>'.length) : completion);
}

/** The final answer in a completion's answer part: its last \boxed{}/\fbox{}, else all of an
 * <answer> tag's content, else the last number; null if none. */
export function extractAnswer(text: string): string | null {
  const part = answerPart(text);
  const boxed = lastBoxed(part);
  if (boxed !== null) return boxed.trim();
  if (lastAnswerTag(text) !== null) return part.trim();
  const numbers = part.match(NUMBER_IN_TEXT);
  return numbers ? numbers[numbers.length - 1] : null;
}

/** A rational number in lowest terms, den > 0. */
export interface Rational { num: bigint; den: bigint }

function rational(num: bigint, den: bigint): Rational | null {
  if (den === 0n) return null;
  if (den < 0n) [num, den] = [-num, -den];
  let [a, b] = [num < 0n ? -num : num, den];
  while (b) [a, b] = [b, a % b];
  return { num: num / a, den: den / a };
}

// 12, -3.50, .5, 1., 1,234,567.8, 2.5e-3 (digits with optional thousands commas, fraction, exponent).
const DECIMAL = /^([+-]?)(\d{1,3}(?:,\d{3})+|\d*)(?:\.(\d*))?(?:e([+-]?\d+))?$/i;

function parseDecimal(text: string): Rational | null {
  const m = DECIMAL.exec(text.trim());
  if (!m || (!m[2] && !m[3])) return null;
  const [, sign, int, frac = '', exp = '0'] = m;
  const e = Number(exp) - frac.length;
  if (Math.abs(e) > 10000) return null;
  const digits = BigInt(int.replaceAll(',', '') + frac) * (sign === '-' ? -1n : 1n);
  return e >= 0 ? rational(digits * 10n ** BigInt(e), 1n) : rational(digits, 10n ** BigInt(-e));
}

function divide(a: Rational | null, b: Rational | null): Rational | null {
  return a && b ? rational(a.num * b.den, a.den * b.num) : null;
}

/** Strip what surrounds an answer: $…$, \(…\), \text{…}, LaTeX spacing, a trailing period. */
function clean(text: string): string {
  return text.trim().replace(/\.$/, '')
    .replace(/^\$+|\$+$/g, '').replace(/^\\[([]|\\[)\]]$/g, '')
    .replace(/\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}/g, '$1')
    .replace(/\\[,!; ]/g, '').replace(/\{,\}/g, ',')
    .trim().replace(/\.$/, '').trim();
}

/** The exact value of '42', '-1,000', '2.50', '3/4', '\frac{3}{4}', '-\dfrac{1}{2}', '$1.5e3$', … or null. */
export function parseNumber(text: string): Rational | null {
  const s = clean(text).replace(/\s*\/\s*/g, '/');
  const frac = /^([+-]?)\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}$/.exec(s);
  if (frac) {
    const r = divide(parseDecimal(frac[2]), parseDecimal(frac[3]));
    return r && frac[1] === '-' ? { num: -r.num, den: r.den } : r;
  }
  const parts = s.split('/');
  if (parts.length === 1) return parseDecimal(s);
  return parts.length === 2 && /^\d/.test(parts[1]) ? divide(parseDecimal(parts[0]), parseDecimal(parts[1])) : null;
}

/** Equal as numbers (exact rationals) when both are numbers, else as normalised text. */
export function mathEqual(a: string, b: string): boolean {
  const x = parseNumber(a), y = parseNumber(b);
  if (x && y) return x.num === y.num && x.den === y.den;
  const norm = (s: string) => clean(s).replace(/\s+/g, ' ').toLowerCase();
  return norm(a) === norm(b);
}

function expectedAnswer(row: Record<string, unknown>, i: number): string {
  const a = row.answer;
  if (typeof a === 'number' && Number.isFinite(a)) return String(a);
  if (typeof a !== 'string') throw new RewardInputError(`math reward: row ${i} has no 'answer' (string or number), got ${a === null ? 'null' : typeof a}`);
  const hashes = a.lastIndexOf('####');
  const s = hashes >= 0 ? a.slice(hashes + 4) : a;
  return lastBoxed(s) ?? s;
}

// ---------------------------------------------------------------------------------------------
// Format and code extraction.

const count = (s: string, sub: string) => s.split(sub).length - 1;

/** One non-empty <think>…</think>, then one non-empty <answer>…</answer> and only whitespace
 * (answerTags), or then any non-empty text (answerTags false). Leading whitespace is allowed. */
export function thinkAnswerFormat(text: string, answerTags = true): boolean {
  if (count(text, '<think>') !== 1 || count(text, '</think>') !== 1) return false;
  const m = /^\s*<think>([\s\S]*)<\/think>([\s\S]*)$/.exec(text);
  if (!m || !m[1].trim()) return false;
  if (!answerTags) return m[2].trim() !== '';
  if (count(text, '<answer>') !== 1 || count(text, '</answer>') !== 1) return false;
  const a = /^\s*<answer>([\s\S]*)<\/answer>\s*$/.exec(m[2]);
  return !!a && a[1].trim() !== '';
}

/** The code of a completion: the last ```js/```javascript/``` block of its answer part, else that
 * answer part. */
export function extractCode(completion: string): string {
  const part = answerPart(completion);
  let code: string | null = null;
  for (const m of part.matchAll(/```[ \t]*([\w+#-]*)[^\n]*\n([\s\S]*?)```/g)) {
    if (/^(js|javascript)?$/i.test(m[1])) code = m[2];
  }
  return code ?? part;
}

// ---------------------------------------------------------------------------------------------
// Reward functions.

type Report = (name: string, kind: string, message: string) => void;

/** onError, called once per (reward, kind of failure). */
function reporter(o: RewardOptions): Report {
  const seen = new Set<string>();
  const onError = o.onError ?? ((name: string, message: string) => console.warn(`reward ${name}: ${message}`));
  return (name, kind, message) => {
    if (seen.has(`${name}\0${kind}`)) return;
    seen.add(`${name}\0${kind}`);
    onError(name, `${message}; scored 0 (reported once: further '${kind}' failures of this reward are not)`);
  };
}

abstract class SingleReward implements RewardFunction {
  abstract readonly name: string;
  abstract score(batch: RewardContext[]): Promise<number[]>;
  async scoreDetailed(batch: RewardContext[]): Promise<RewardScores> {
    const total = await this.score(batch);
    return { total, components: { [this.name]: total } };
  }
}

class RowReward extends SingleReward {
  constructor(readonly name: string, private readonly f: (c: RewardContext, i: number) => number) {
    super();
  }
  async score(batch: RewardContext[]): Promise<number[]> {
    return batch.map(this.f);
  }
}

const mathReward = () => new RowReward('math', (c, i) => {
  const got = extractAnswer(c.completion);
  return got !== null && mathEqual(got, expectedAnswer(c.row, i)) ? 1 : 0;
});

const formatReward = (o: RewardOptions) => new RowReward('format', (c) => {
  if (c.truncated) return 0;
  const opened = c.prompt.trimEnd().endsWith('<think>') && !c.completion.trimStart().startsWith('<think>');
  const answerTags = typeof c.row.answer_tags === 'boolean' ? c.row.answer_tags : o.answerTags ?? true;
  return thinkAnswerFormat(opened ? `<think>${c.completion}` : c.completion, answerTags) ? 1 : 0;
});

class CodeReward extends SingleReward {
  readonly name = 'code';
  private sandbox: Sandbox | null = null;
  constructor(private readonly o: RewardOptions) {
    super();
  }

  /** A code reward whose sandbox has run one correct candidate (so a broken setup fails now). */
  static async create(o: RewardOptions): Promise<CodeReward> {
    const r = new CodeReward(o);
    const check = await r.pool().run({ code: 'function one() { return 1 }', tests: ['one() === 1'], entryPoint: 'one' });
    if (check.passed !== 1) {
      await r.close();
      throw new RewardSpecError(`code reward: the sandbox does not run code here: ${check.error}`);
    }
    return r;
  }

  private pool(): Sandbox {
    return (this.sandbox ??= new Sandbox({ processes: this.o.codeProcesses, timeoutMs: this.o.codeTimeoutMs, memoryMb: this.o.codeMemoryMb }));
  }

  async score(batch: RewardContext[]): Promise<number[]> {
    const jobs = batch.map((c, i) => {
      const { tests, entry_point: entryPoint } = c.row;
      if (!(typeof tests === 'string' || (Array.isArray(tests) && tests.length > 0 && tests.every((t) => typeof t === 'string')))) {
        throw new RewardInputError(`code reward: row ${i} needs 'tests': a non-empty array of JS expressions or a string of statements`);
      }
      if (entryPoint !== undefined && (typeof entryPoint !== 'string' || !/^[A-Za-z_$][\w$]*$/.test(entryPoint))) {
        throw new RewardInputError(`code reward: row ${i} has an 'entry_point' that is not a function name: ${JSON.stringify(entryPoint)}`);
      }
      return { code: extractCode(c.completion), tests: tests as string | string[], entryPoint: entryPoint as string | undefined };
    });
    const results = await this.pool().runAll(jobs);
    return results.map((r) => (this.o.codeAll ? (r.passed === r.total ? 1 : 0) : r.passed / r.total));
  }

  async close(): Promise<void> {
    const s = this.sandbox;
    this.sandbox = null;
    await s?.close();
  }
}

const WORKER = new URL('./reward_worker.js', import.meta.url);

class ModuleReward extends SingleReward {
  private constructor(readonly name: string, private readonly file: string, private readonly timeoutMs: number,
    private readonly report: Report, private worker: Worker | null, private readonly batchCall: boolean) {
    super();
  }

  static async load(spec: string, o: RewardOptions, report: Report): Promise<ModuleReward> {
    const file = path.resolve(o.cwd ?? process.cwd(), spec);
    if (!existsSync(file)) throw new RewardModuleError(file, `not found (from '${spec}')`);
    const timeoutMs = o.timeoutMs ?? 10_000;
    if (!(timeoutMs > 0)) throw new RewardSpecError(`timeoutMs must be positive, got ${timeoutMs}`);
    const { worker, ready } = await ModuleReward.start(file, timeoutMs);
    if (!ready.reward && !ready.batch) {
      await worker.terminate();
      throw new RewardModuleError(file, `exports no reward function: expected a default export function (or module.exports = function), ` +
        `or a function named 'reward' or 'rewardBatch'; it exports ${ready.exports}`);
    }
    return new ModuleReward(path.basename(file), file, timeoutMs, report, worker, ready.batch);
  }

  private static start(file: string, timeoutMs: number): Promise<{ worker: Worker; ready: Extract<WorkerMessage, { type: 'ready' }> }> {
    const worker = new Worker(WORKER, { workerData: { file } });
    worker.unref();
    worker.on('error', () => {}); // an uncaught error in the module: the call in progress (if any) reports it
    return new Promise((resolve, reject) => {
      const fail = (detail: string) => {
        clearTimeout(timer);
        void worker.terminate();
        reject(new RewardModuleError(file, detail));
      };
      const timer = setTimeout(() => fail(`did not load within ${timeoutMs} ms`), timeoutMs);
      const onExit = (code: number) => fail(`failed to load (the worker exited with code ${code})`);
      worker.once('exit', onExit);
      worker.once('message', (m: WorkerMessage) => {
        if (m.type !== 'ready') return fail(`failed to load: ${m.type === 'load-error' ? m.message : m.type}`);
        clearTimeout(timer);
        worker.off('exit', onExit);
        resolve({ worker, ready: m });
      });
    });
  }

  /** A finite number, or 0 with the failure reported. */
  private check(r: { value?: number; bad?: string; error?: string }, where: string): number {
    if (r.error !== undefined) this.report(this.name, 'threw', `${where} threw ${r.error}`);
    else if (r.bad !== undefined) this.report(this.name, 'not a number', `${where} ${r.bad}, not a number`);
    else if (!Number.isFinite(r.value)) this.report(this.name, 'not a number', `${where} returned ${r.value}, not a finite number`);
    else return r.value!;
    return 0;
  }

  async score(batch: RewardContext[]): Promise<number[]> {
    const out = new Array<number>(batch.length).fill(0);
    for (let from = 0; from < batch.length;) {
      try {
        if (!this.worker) this.worker = (await ModuleReward.start(this.file, this.timeoutMs)).worker;
      } catch (e) {
        this.report(this.name, 'crashed', `could not restart: ${(e as Error).message}`);
        break;
      }
      from = await this.call(this.worker, batch, from, out);
    }
    return out;
  }

  /** Score batch[from..] in the worker; resolves where to go on from (past an item that failed). */
  private call(worker: Worker, batch: RewardContext[], from: number, out: number[]): Promise<number> {
    return new Promise((resolve) => {
      let next = from; // the item in progress (per-item calls)
      let timer: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => stop('timed out', `timed out after ${this.timeoutMs} ms`), this.timeoutMs);
      };
      const done = (at: number) => {
        clearTimeout(timer);
        worker.off('message', onMessage);
        worker.off('exit', onExit);
        worker.off('error', onError);
        resolve(at);
      };
      const where = () => (this.batchCall ? 'rewardBatch' : `reward(row ${next})`);
      const stop = (kind: string, message: string) => {
        this.report(this.name, kind, `${where()} ${message}`);
        this.worker = null;
        void worker.terminate();
        done(this.batchCall ? batch.length : next + 1);
      };
      const onExit = (code: number) => stop('crashed', `stopped its worker (exit code ${code})`);
      const onError = (e: Error) => stop('crashed', `crashed its worker: ${e.name}: ${e.message}`);
      const onMessage = (m: WorkerMessage) => {
        if (m.type === 'item') {
          out[from + m.i] = this.check(m, `reward(row ${from + m.i})`);
          next = from + m.i + 1;
          if (next === batch.length) done(next);
          else arm();
        } else if (m.type === 'batch') {
          if (m.values && m.values.length === batch.length) m.values.forEach((v, i) => (out[i] = this.check(v, `rewardBatch (row ${i})`)));
          else if (m.values) this.report(this.name, 'not a number', `rewardBatch returned ${m.values.length} values for ${batch.length} rows`);
          else this.check(m, 'rewardBatch');
          done(batch.length);
        }
      };
      worker.on('message', onMessage);
      worker.on('exit', onExit);
      worker.on('error', onError);
      arm();
      worker.postMessage(batch.slice(from));
    });
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    await w?.terminate();
  }
}

class WeightedReward implements RewardFunction {
  readonly name: string;
  constructor(private readonly parts: RewardFunction[], private readonly weights: number[], private readonly report: Report) {
    this.name = parts.map((p) => p.name).join('+');
  }
  async scoreDetailed(batch: RewardContext[]): Promise<RewardScores> {
    const scores = await Promise.all(this.parts.map((p) => p.score(batch)));
    const components = Object.fromEntries(this.parts.map((p, k) => [p.name, scores[k]]));
    const total = batch.map((_, i) => {
      const t = scores.reduce((s, c, k) => s + this.weights[k] * c[i], 0);
      if (Number.isFinite(t)) return t;
      this.report(this.name, 'not finite', `row ${i}: the weighted sum is ${t}`);
      return 0;
    });
    return { total, components };
  }
  async score(batch: RewardContext[]): Promise<number[]> {
    return (await this.scoreDetailed(batch)).total;
  }
  async close(): Promise<void> {
    await Promise.all(this.parts.map((p) => p.close?.()));
  }
}

const BUILTIN = ['math', 'code', 'format'];

/** 'math:1, format:0.2, ./mine.js:0.5' → parts; a ':' followed by no path separator starts a weight. */
function parseSpec(spec: string): { name: string; weight: number }[] {
  const parts = spec.split(',').map((s) => s.trim()).filter(Boolean).map((part) => {
    const colon = part.lastIndexOf(':');
    const tail = part.slice(colon + 1);
    if (colon < 0 || /[\\/]/.test(tail)) return { name: part, weight: 1 };
    const name = part.slice(0, colon).trim();
    const weight = tail.trim() === '' ? NaN : Number(tail);
    if (!Number.isFinite(weight)) throw new RewardSpecError(`reward '${spec}': the weight of '${name}' is '${tail}', not a finite number`);
    return { name, weight };
  });
  if (!parts.length) throw new RewardSpecError(`reward spec is empty: use ${BUILTIN.join(', ')}, a JS module path, or a list such as 'math:1,format:0.2'`);
  for (const { name } of parts) {
    if (!BUILTIN.includes(name) && !/[\\/]|\.[cm]?js$/.test(name)) {
      throw new RewardSpecError(`unknown reward '${name}' in '${spec}': valid are ${BUILTIN.join(', ')}, or a path to a JS module (./my-reward.js)`);
    }
  }
  const names = parts.map((p) => (BUILTIN.includes(p.name) ? p.name : path.basename(p.name)));
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw new RewardSpecError(`reward '${spec}' names '${twice}' twice`);
  return parts;
}

/** A reward from a spec: 'math' | 'code' | 'format' | './module.js' | 'math:1,format:0.2'. */
export async function createReward(spec: string, o: RewardOptions = {}): Promise<RewardFunction> {
  const parts = parseSpec(spec);
  const report = reporter(o);
  const made: RewardFunction[] = [];
  try {
    for (const { name } of parts) {
      if (name === 'math') made.push(mathReward());
      else if (name === 'format') made.push(formatReward(o));
      else if (name === 'code') made.push(await CodeReward.create(o));
      else made.push(await ModuleReward.load(name, o, report));
    }
  } catch (e) {
    await Promise.all(made.map((r) => r.close?.()));
    throw e;
  }
  if (parts.length === 1 && parts[0].weight === 1) return made[0];
  return new WeightedReward(made, parts.map((p) => p.weight), report);
}
