// Storage blocks in the shared heap, and memory scopes that release them.
//
// The heap is not garbage-collected. A Storage created while a scope is open belongs to that
// scope and is released when the scope ends, unless it is returned from the scope's function
// (it then moves to the enclosing scope) or kept with `keep()`. Storage created outside any
// scope (model parameters, optimizer state) lives until `dispose()`.
import { alloc, release } from '../backend/heap.js';

let nextSerial = 0;
let deferring = 0;

/**
 * Run `build` (a loader building the model its file's weights go into) with the storage of
 * unfilled parameters (`Tensor.unfilled`) not allocated until first written: the loader then
 * materialises each one as it copies a weight in, and a parameter that is replaced instead (an f32
 * weight whose quantised blocks stay as stored) never takes heap at all. A 1.1B-parameter Q4_0
 * model then needs its 0.6 GB of blocks, not 4.4 GB of f32 parameters first (more than the wasm32
 * heap can hold).
 */
export function deferAllocation<T>(build: () => T): T {
  deferring++;
  try {
    return build();
  } finally {
    deferring--;
  }
}

/** Whether an unfilled parameter made now should wait for its first write (inside deferAllocation). */
export function allocationDeferred(): boolean {
  return deferring > 0;
}

export class Storage {
  freed = false;
  owner: Scope | null;
  /** The heap address, or −1 while a deferred storage waits for materialise(). */
  private at: number;
  /** Creation order: storages with a larger serial were created later. */
  readonly serial = nextSerial++;
  /** With `deferred`, no heap is taken until materialise() (see deferAllocation). */
  constructor(readonly bytes: number, deferred = false) {
    this.at = deferred ? -1 : alloc(bytes);
    this.owner = currentScope;
    if (currentScope) currentScope.items.push(this);
    if (tracking) tracking.push(this);
  }
  /** Byte address in the heap. */
  get ptr(): number {
    const p = this.at;
    if (p < 0) throw new Error(`a ${this.bytes}-byte storage was read before it was allocated (a parameter of a model still being loaded: call materialise() first)`);
    return p;
  }
  /** False for a deferred storage not yet materialised. */
  get allocated(): boolean {
    return this.at >= 0;
  }
  /** Take the heap a deferred storage waits for (its contents undefined); nothing for one already allocated. */
  materialise(): this {
    if (this.at < 0) {
      if (this.freed) throw new Error('materialise: the storage was freed');
      this.at = alloc(this.bytes);
    }
    return this;
  }
  free(): void {
    if (this.freed) return;
    this.freed = true;
    if (this.at >= 0) release(this.at);
  }
}

export class Scope {
  items: Storage[] = [];
  constructor(readonly parent: Scope | null) {}
}

let currentScope: Scope | null = null;
/** Storages created inside releaseOnThrow, scoped or not. */
let tracking: Storage[] | null = null;

/**
 * Run fn (which builds long-lived storage, a model say, whose parameters are unscoped): if it
 * throws, every storage it created is freed (none leaks from a half-built model); if it returns,
 * nothing changes. Not for functions that put storage into caches that outlive them.
 */
export function releaseOnThrow<T>(fn: () => T): T {
  const prev = tracking;
  const mine: Storage[] = [];
  tracking = mine;
  try {
    const r = fn();
    if (prev) for (const st of mine) prev.push(st);
    return r;
  } catch (e) {
    for (const st of mine) st.free();
    throw e;
  } finally {
    tracking = prev;
  }
}

/** Anything a scope function may return: storages reachable through it survive the scope. */
interface HasStorage { storage: Storage }
function collect(value: unknown, out: Set<Storage>, seen: Set<unknown>): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  const s = (value as Partial<HasStorage>).storage;
  if (s instanceof Storage) {
    out.add(s);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collect(v, out, seen);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collect(v, out, seen);
}

/**
 * Run fn in a new memory scope: every tensor it creates is released when it returns, except
 * the tensors in its return value (a tensor, or arrays / plain objects holding tensors), which
 * move to the enclosing scope. fn must be synchronous.
 */
export function scope<T>(fn: () => T): T {
  const s = new Scope(currentScope);
  currentScope = s;
  let result: T;
  try {
    result = fn();
    if (result instanceof Promise) throw new Error('scope(): the function must be synchronous (it returned a Promise)');
  } catch (e) {
    currentScope = s.parent;
    for (const st of s.items) if (st.owner === s) st.free();
    throw e;
  }
  currentScope = s.parent;
  const survivors = new Set<Storage>();
  collect(result, survivors, new Set());
  for (const st of s.items) {
    if (st.owner !== s) continue;
    if (survivors.has(st)) {
      st.owner = s.parent;
      if (s.parent) s.parent.items.push(st);
    } else st.free();
  }
  return result;
}

/** The serial the next Storage will get. */
export function storageSerial(): number {
  return nextSerial;
}

/** Detach a storage from every scope: it lives until freed explicitly. */
export function keepStorage(st: Storage): void {
  st.owner = null;
}

/** Run fn with no scope open: what it allocates lives until freed explicitly. */
export function unscoped<T>(fn: () => T): T {
  const prev = currentScope;
  currentScope = null;
  try {
    return fn();
  } finally {
    currentScope = prev;
  }
}
