// A sandbox for untrusted JavaScript (the code reward's candidates): a pool of long-lived child
// Node processes (sandbox_child.ts says what each one allows), up to `processes` candidates at a
// time. Each candidate gets `timeoutMs` of execution for its code and all its tests (the vm
// time limit inside the child); the parent adds a wall-clock limit and, on Linux, a
// resident-memory limit, and kills a child that passes either (or dies: out of memory, a
// crash), scores that candidate 0 with the reason, and starts a fresh child for the next one.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ChildAnswer, ChildJob } from './sandbox_child.js';

export interface SandboxOptions {
  processes?: number;   // child processes, candidates run concurrently (default 2)
  timeoutMs?: number;   // execution time per candidate, its code and all its tests (default 2000)
  memoryMb?: number;    // JS heap of a child (--max-old-space-size, default 256); resident memory may be this + 128
  wallMs?: number;      // the parent's wall-clock limit per candidate (default 2·timeoutMs + 5000)
}
export interface SandboxJob {
  code: string;
  tests: string[] | string;  // boolean expressions that must be `true`, or one block of statements (using assert) that must not throw
  entryPoint?: string;       // a function the code must define
}
export interface SandboxResult {
  passed: number;
  total: number;             // tests.length, or 1 for a block of statements
  error?: string;            // why not everything passed (first failing test, or the candidate's failure)
}

export class SandboxError extends Error {
  override name = 'SandboxError';
}

export const SANDBOX_CHILD = fileURLToPath(new URL('./sandbox_child.js', import.meta.url));

/** The node flags a sandbox child runs with (exported so a test can check this layer directly). */
export function sandboxNodeArgs(memoryMb: number): string[] {
  const permission = process.allowedNodeEnvironmentFlags.has('--permission') ? '--permission' : '--experimental-permission';
  return [permission, `--allow-fs-read=${SANDBOX_CHILD}`, `--max-old-space-size=${memoryMb}`,
    '--experimental-vm-modules', '--disable-warning=ExperimentalWarning'];
}

/** Resident memory of a process in MB from /proc (0 where there is no /proc). */
function residentMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

interface Pending { job: ChildJob; total: number; resolve(r: SandboxResult): void }
interface Slot {
  proc: ChildProcess | null; stderr: string; pending: Pending | null; finish?: (r: SandboxResult) => void;
  /** The child said it started; until then `onReady` arms the wall-clock limit. */
  ready: boolean; onReady?: () => void;
}

export class Sandbox {
  readonly processes: number;
  readonly timeoutMs: number;
  readonly memoryMb: number;
  readonly wallMs: number;
  private readonly queue: Pending[] = [];
  private readonly slots: Slot[];
  private nextId = 1;
  private closed = false;

  constructor(o: SandboxOptions = {}) {
    this.processes = o.processes ?? 2;
    this.timeoutMs = o.timeoutMs ?? 2000;
    this.memoryMb = o.memoryMb ?? 256;
    this.wallMs = o.wallMs ?? 2 * this.timeoutMs + 5000;
    for (const [k, v] of Object.entries({ processes: this.processes, timeoutMs: this.timeoutMs, memoryMb: this.memoryMb, wallMs: this.wallMs })) {
      if (!Number.isInteger(v) || v < 1) throw new SandboxError(`sandbox option ${k} must be a positive integer, got ${v}`);
    }
    this.slots = Array.from({ length: this.processes }, () => ({ proc: null, stderr: '', pending: null, ready: false }));
  }

  run(job: SandboxJob): Promise<SandboxResult> {
    if (this.closed) return Promise.reject(new SandboxError('the sandbox is closed'));
    const { code, tests, entryPoint } = job;
    if (typeof code !== 'string') throw new SandboxError(`code must be a string, got ${typeof code}`);
    if (!(typeof tests === 'string' || (Array.isArray(tests) && tests.length > 0 && tests.every((t) => typeof t === 'string')))) {
      throw new SandboxError('tests must be a non-empty array of strings (expressions) or one string (statements)');
    }
    if (entryPoint !== undefined && !/^[A-Za-z_$][\w$]*$/.test(entryPoint)) throw new SandboxError(`entry point '${entryPoint}' is not an identifier`);
    const total = typeof tests === 'string' ? 1 : tests.length;
    return new Promise((resolve) => {
      this.queue.push({ job: { id: this.nextId++, code, tests, entryPoint, timeoutMs: this.timeoutMs }, total, resolve });
      this.pump();
    });
  }

  runAll(jobs: SandboxJob[]): Promise<SandboxResult[]> {
    return Promise.all(jobs.map((j) => this.run(j)));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.resolve({ passed: 0, total: p.total, error: 'the sandbox was closed' });
    for (const slot of this.slots) this.kill(slot, 'the sandbox was closed');
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (!slot.pending && this.queue.length) this.start(slot, this.queue.shift()!);
    }
  }

  private start(slot: Slot, p: Pending): void {
    const proc = slot.proc ?? this.spawn(slot);
    slot.pending = p;
    // The wall-clock limit counts from the child's start: a fresh process on a loaded machine
    // can take longer to start than a candidate may run (a start that never ends is cut too).
    let wall = setTimeout(() => this.kill(slot, `the sandbox process did not start within ${this.wallMs + 30_000} ms`), slot.ready ? 0 : this.wallMs + 30_000);
    const arm = () => {
      clearTimeout(wall);
      wall = setTimeout(() => this.kill(slot, `no answer within ${this.wallMs} ms (wall-clock limit)`), this.wallMs);
    };
    if (slot.ready) arm(); else slot.onReady = arm;
    const limitMb = this.memoryMb + 128;
    const watch = setInterval(() => {
      const mb = residentMb(proc.pid ?? 0);
      if (mb > limitMb) this.kill(slot, `used ${Math.round(mb)} MB of memory (limit ${limitMb} MB)`);
    }, 50);
    slot.finish = (r) => {
      clearTimeout(wall);
      slot.onReady = undefined;
      clearInterval(watch);
      slot.pending = null;
      slot.finish = undefined;
      p.resolve(r);
      if (!this.closed) this.pump();
    };
    proc.send(p.job);
  }

  private spawn(slot: Slot): ChildProcess {
    const proc = spawn(process.execPath, [...sandboxNodeArgs(this.memoryMb), SANDBOX_CHILD], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: { TSLM_SANDBOX_CHILD: '1' }, serialization: 'json',
    });
    slot.proc = proc;
    slot.stderr = '';
    slot.ready = false;
    proc.stderr!.on('data', (b: Buffer) => { slot.stderr = (slot.stderr + b.toString()).slice(-2000); });
    proc.on('message', (m: ChildAnswer) => {
      if (slot.proc !== proc) return;
      if ((m as { ready?: unknown } | null)?.ready === true) { slot.ready = true; const f = slot.onReady; slot.onReady = undefined; f?.(); return; }
      const p = slot.pending;
      if (!p || m?.id !== p.job.id) return;
      const passed = Number.isInteger(m.passed) ? Math.min(Math.max(m.passed, 0), p.total) : 0;
      slot.finish!(typeof m.error === 'string' ? { passed, total: p.total, error: m.error } : { passed, total: p.total });
    });
    proc.on('error', (e) => this.lost(slot, proc, `the sandbox process failed: ${e.message}`));
    proc.on('exit', (code, signal) => {
      const fatal = /FATAL ERROR[^\n]*|Error[^\n]*/.exec(slot.stderr)?.[0];
      this.lost(slot, proc, `the sandbox process died (${signal ?? `exit code ${code}`})${fatal ? `: ${fatal.trim()}` : ''}`);
    });
    // The pool must not keep the trainer alive; a pending candidate's timers do while it runs.
    proc.unref();
    proc.channel?.unref();
    (proc.stderr as unknown as { unref?(): void }).unref?.();
    return proc;
  }

  /** `proc` is gone: if it was this slot's, forget it and fail the candidate it was running. */
  private lost(slot: Slot, proc: ChildProcess, reason: string): void {
    if (slot.proc !== proc) return;
    slot.proc = null;
    slot.finish?.({ passed: 0, total: slot.pending!.total, error: reason });
  }

  private kill(slot: Slot, reason: string): void {
    const proc = slot.proc;
    if (!proc) return;
    this.lost(slot, proc, reason);
    proc.kill('SIGKILL');
  }
}
