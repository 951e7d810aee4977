// The code sandbox's child process (spawned by sandbox.ts under Node's permission model: it may
// read only this file, not write files, start processes or workers). Each candidate runs in a
// fresh vm context that holds no host object, so it has no require/process/fetch/timers; only
// strings and numbers cross back, and the answer goes to the parent over IPC.
//
// Layers, innermost first:
//  1. the vm context: created from a null-prototype object (so `this.constructor.constructor`
//     yields the context's own Function), `import()` refused with a primitive (a host error
//     object would be a way out), FinalizationRegistry removed (its callbacks would run outside
//     the time limit), microtasks drained inside the time limit ('afterEvaluate');
//  2. this process, should code ever get out of the context: no network (net/dgram/dns/fetch
//     refused below), no process.kill, no module loader (getBuiltinModule), no fs writes, child
//     processes or workers (permission model), old-space heap capped (--max-old-space-size);
//  3. the parent: a wall-clock limit and a resident-memory limit; it kills this process and
//     starts a fresh one.
import vm from 'node:vm';
import net from 'node:net';
import dgram from 'node:dgram';
import dns from 'node:dns';
import { types } from 'node:util';

export interface ChildJob { id: number; code: string; tests: string[] | string; entryPoint?: string; timeoutMs: number }
export interface ChildAnswer { id: number; passed: number; total: number; error?: string }

function refuse(what: string): () => never {
  return () => { throw new Error(`${what} is not allowed in the sandbox`); };
}

/** Layer 2: take the network and the module loader away from this process. */
export function harden(): void {
  const set = (o: object, key: string, what: string) => Object.defineProperty(o, key, { value: refuse(what), writable: false, configurable: false });
  set(net.Socket.prototype, 'connect', 'network access');
  set(net.Server.prototype, 'listen', 'network access');
  set(dgram.Socket.prototype, 'bind', 'network access');
  set(dgram.Socket.prototype, 'send', 'network access');
  for (const o of [dns, dns.promises, dns.Resolver.prototype, dns.promises.Resolver.prototype]) {
    for (const key of Object.getOwnPropertyNames(o)) {
      if (/^(lookup|resolve|reverse)/.test(key) && typeof (o as Record<string, unknown>)[key] === 'function') set(o, key, 'DNS');
    }
  }
  for (const key of ['fetch', 'WebSocket', 'EventSource']) delete (globalThis as Record<string, unknown>)[key];
  set(process, 'kill', 'process.kill');
  delete (process as { getBuiltinModule?: unknown }).getBuiltinModule;
}

// Run in every new context before the candidate: `module`/`exports` for code that ends with
// `module.exports = f`, and `assert(cond, msg)` (returns true, so `assert(x)` also works as an
// expression test), which the candidate cannot redefine.
const PRELUDE = `
var module = { exports: {} }, exports = module.exports;
Object.defineProperty(globalThis, 'assert', { writable: false, configurable: false, value: function assert(ok, message) {
  if (!ok) throw new Error(message === undefined ? 'assertion failed' : String(message));
  return true;
} });
delete globalThis.FinalizationRegistry;
`;

// A rejection reason that is a host object would hand the candidate the host's Function.
const refuseImport = (): never => { throw 'import() is not available in the sandbox'; };

/** A thrown value as text, without running any of the candidate's code (no getters, no proxies). */
function describe(e: unknown): string {
  if (typeof e !== 'object' || e === null) return typeof e === 'function' ? 'a function' : String(e as string);
  if (types.isProxy(e)) return 'a proxy';
  const d = Object.getOwnPropertyDescriptor(e, 'message');
  return d && typeof d.value === 'string' ? d.value : 'a value that is not an Error';
}

/** `export function f`, `export default class`, `export { f }`, `export default f;` → a script. */
function stripExports(code: string): string {
  return code
    .replace(/^([ \t]*)export\s+(?:default\s+)?(?=(?:async\s+)?function\b|class\b|const\b|let\b|var\b)/gm, '$1')
    .replace(/^[ \t]*export\s*(?:\{[^}]*\}|default\s+[\w$]+)\s*;?[ \t]*$/gm, '');
}

export function runCandidate(job: ChildJob): Omit<ChildAnswer, 'id'> {
  // Without this flag Node ignores importModuleDynamically and rejects import() with a host error.
  if (typeof (vm as { SourceTextModule?: unknown }).SourceTextModule !== 'function') {
    throw new Error('the sandbox child must run with node --experimental-vm-modules');
  }
  const statements = typeof job.tests === 'string';
  const tests = statements ? [job.tests as string] : (job.tests as string[]);
  const total = tests.length;
  const deadline = Date.now() + job.timeoutMs;
  const context = vm.createContext(Object.create(null), { microtaskMode: 'afterEvaluate', codeGeneration: { strings: true, wasm: false } });
  const run = (source: string, filename: string): unknown =>
    new vm.Script(source, { filename, importModuleDynamically: refuseImport as never })
      .runInContext(context, { timeout: Math.max(1, deadline - Date.now()) });
  try {
    run(PRELUDE, 'prelude.js');
    run(stripExports(job.code), 'candidate.js');
    if (job.entryPoint && run(`typeof ${job.entryPoint}`, 'entry.js') !== 'function') {
      return { passed: 0, total, error: `the candidate does not define function ${job.entryPoint}` };
    }
  } catch (e) {
    return { passed: 0, total, error: `the candidate failed: ${describe(e)}` };
  }
  let passed = 0;
  let error: string | undefined;
  tests.forEach((test, i) => {
    // Expression tests must be exactly `true`; a statement block passes when it does not throw.
    const source = statements ? `(() => {\n${test}\n})(), true` : `(\n${test}\n)`;
    try {
      if (run(source, `test${i}.js`) === true) passed++;
      else error ??= `test ${i} is not true: ${test}`;
    } catch (e) {
      error ??= `test ${i} failed: ${describe(e)}`;
    }
  });
  return error === undefined ? { passed, total } : { passed, total, error };
}

if (process.env.TSLM_SANDBOX_CHILD === '1' && process.send) {
  harden();
  process.on('unhandledRejection', () => {}); // candidates' rejected promises: never inspected
  process.on('disconnect', () => process.exit(0));
  process.on('message', (job: ChildJob) => process.send!({ id: job.id, ...runCandidate(job) }));
  // Started: the parent's wall-clock limit counts from here (a process start is not the candidate's time).
  process.send({ ready: true });
}
