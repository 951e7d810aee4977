// Compiling constraints off the event loop (Node): a server must not stall every other request
// while one request's JSON Schema compiles (a oneOf of 30,000 consts took seconds). A small pool
// of worker threads compiles; the grammar comes back as a few typed arrays (Grammar.toData).
// A compilation past its time budget is stopped (its thread terminated) and answered with a
// ComplexityError naming the budget; one past the thread's memory limit likewise.
import { Worker } from 'node:worker_threads';
import { cpus } from 'node:os';
import { Grammar, type GrammarData } from './grammar.js';
import { compileTask, type CompileTask, type Constraint } from './constraint.js';
import type { JsonSchema, SchemaOptions } from './schema.js';
import {
  StructuredError, UnsupportedKeywordError, InvalidSchemaError, UnsatisfiableError, RegexError, GrammarError, ComplexityError,
} from './errors.js';

export interface OffThreadOptions {
  /** Longest a compilation may run, from when a thread starts it (default 10,000 ms). */
  timeoutMs?: number;
  /** Heap limit of a compile thread, MB (default 1024). */
  maxHeapMb?: number;
}

interface Job { task: CompileTask; timeoutMs: number; resolve: (g: Grammar) => void; reject: (e: Error) => void }
interface Slot { worker: Worker; job: Job | null; id: number; timer?: NodeJS.Timeout; heapMb: number }

const ERRORS: Record<string, new (...a: never[]) => StructuredError> = {
  StructuredError, UnsupportedKeywordError, InvalidSchemaError, UnsatisfiableError, RegexError, GrammarError, ComplexityError,
};

/** Rebuilds an error posted by the thread as an instance of its class (instanceof works). */
function rebuildError(name: string, message: string, fields: Record<string, unknown>): Error {
  const cls = ERRORS[name];
  if (cls === undefined) return new Error(`the constraint compiler failed: ${name}: ${message}`);
  const e = new StructuredError(message);
  Object.setPrototypeOf(e, cls.prototype);
  e.name = name;
  Object.assign(e, fields);
  return e;
}

export class CompilePool {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 0;
  private closed = false;

  /** At most `size` threads (default: min(2, CPUs)). */
  constructor(readonly size = Math.max(1, Math.min(2, cpus().length))) {}

  compile(task: CompileTask, opts: OffThreadOptions = {}): Promise<Grammar> {
    if (this.closed) return Promise.reject(new StructuredError('the compile pool is closed'));
    return new Promise<Grammar>((resolve, reject) => {
      this.queue.push({ task, timeoutMs: opts.timeoutMs ?? 10_000, resolve, reject });
      this.pump(opts.maxHeapMb ?? 1024);
    });
  }

  /** Threads running now (for tests and stats). */
  get threads(): number { return this.slots.length; }

  /** Stops every thread; pending compilations fail. */
  async close(): Promise<void> {
    this.closed = true;
    for (const j of this.queue.splice(0)) j.reject(new StructuredError('the compile pool is closed'));
    await Promise.all(this.slots.splice(0).map((s) => { s.job?.reject(new StructuredError('the compile pool is closed')); clearTimeout(s.timer); return s.worker.terminate(); }));
  }

  private pump(heapMb: number): void {
    while (this.queue.length) {
      let slot = this.slots.find((s) => s.job === null);
      if (!slot) {
        if (this.slots.length >= this.size) return;
        slot = this.spawn(heapMb);
      }
      this.start(slot, this.queue.shift()!);
    }
  }

  private spawn(heapMb: number): Slot {
    const worker = new Worker(new URL('./compile_thread.js', import.meta.url), { resourceLimits: { maxOldGenerationSizeMb: heapMb } });
    const slot: Slot = { worker, job: null, id: -1, heapMb };
    worker.on('message', (m: { id: number; ok: boolean; data?: GrammarData; lazy?: boolean; name?: string; message?: string; fields?: Record<string, unknown> }) => {
      const job = slot.job;
      if (!job || m.id !== slot.id) return;
      this.finish(slot);
      if (!m.ok) job.reject(rebuildError(m.name!, m.message!, m.fields ?? {}));
      else if (m.lazy) {
        // Finished within the budget on the thread: compiling here again is bounded by it.
        try { job.resolve(compileTask(job.task)); } catch (e) { job.reject(e as Error); }
      } else job.resolve(new Grammar(m.data!));
    });
    worker.on('error', (e: Error & { code?: string }) => {
      const job = slot.job;
      this.drop(slot);
      if (job) job.reject(e.code === 'ERR_WORKER_OUT_OF_MEMORY' ? new ComplexityError('memory of the constraint compiler', `${slot.heapMb} MB`) : new Error(`the constraint compiler failed: ${e.message}`));
    });
    worker.on('exit', () => {
      const job = slot.job;
      this.drop(slot);
      if (job) job.reject(new Error('the constraint compiler thread exited'));
    });
    worker.unref();
    this.slots.push(slot);
    return slot;
  }

  private start(slot: Slot, job: Job): void {
    slot.job = job;
    slot.id = this.nextId++;
    slot.worker.ref();
    slot.timer = setTimeout(() => {
      if (slot.job !== job) return;
      this.drop(slot);
      void slot.worker.terminate();
      job.reject(new ComplexityError('compile time', `${job.timeoutMs} ms`, 'the constraint took too long to compile'));
      this.pump(slot.heapMb);
    }, job.timeoutMs);
    slot.worker.postMessage({ id: slot.id, task: job.task });
  }

  private finish(slot: Slot): void {
    clearTimeout(slot.timer);
    slot.job = null;
    slot.worker.unref();
    this.pump(slot.heapMb);
  }

  private drop(slot: Slot): void {
    clearTimeout(slot.timer);
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    slot.job = null;
    if (!this.closed) this.pump(slot.heapMb);
  }
}

let shared: CompilePool | null = null;
/** The process's pool (created on first use). */
export function compilePool(): CompilePool {
  return (shared ??= new CompilePool());
}

/**
 * compileJsonSchema on a worker thread, within a time budget (a ComplexityError past it). The
 * schema may be given as its JSON text (what a server has already: the cheapest to send).
 */
export function compileJsonSchemaOffThread(schema: JsonSchema | string, options: SchemaOptions = {}, opts: OffThreadOptions = {}): Promise<Grammar> {
  let json: string;
  try { json = typeof schema === 'string' ? schema : JSON.stringify(schema); } catch (e) {
    return Promise.reject(new InvalidSchemaError('$schema', '#', `not serialisable as JSON (${(e as Error).message})`));
  }
  return compilePool().compile({ kind: 'schema', json, options }, opts);
}

/** compileConstraint (schema, regex, GBNF or choices) on a worker thread, within a time budget. */
export function compileConstraintOffThread(c: Constraint, opts: OffThreadOptions = {}): Promise<Grammar> {
  return compilePool().compile({ kind: 'constraint', constraint: c }, opts);
}
