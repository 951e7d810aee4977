// Thread pool over one shared WebAssembly.Memory. The main thread and the workers each hold an
// instance of the kernel module. A job is posted through a control block in the heap:
//   i32[0] seq      incremented for every job (workers wait on it)
//   i32[1] kernel   index into the sorted kernel-name list
//   i32[2] (unused)
//   i32[3] pending  shares 1…nt−1 of the current job not finished yet
//   i32[4] nt       shares of the job (a kernel runs share tid of nt)
//   i32[5] stop     set to make workers exit
//   i32[6] error    set by a thread whose kernel threw
//   i32[7] sleepers workers in (or about to enter) Atomics.wait on seq
//   i32[8] waiting  1 while the posting thread is in (or about to enter) Atomics.wait on pending
//   i32[9] claim    (seq mod 2^23) << 8 | next share to take
//   f64 args from byte 64 on (at most 32)
// The poster runs share 0, then takes any share no worker has claimed yet: a worker that wakes
// late (descheduled on a busy machine, or asleep) does not hold the job up, it finds nothing
// left. A share's result does not depend on which thread runs it. Claims go through one word
// holding the job's sequence number, compare-and-swapped, so a worker that read an old seq can
// claim nothing of a later job; once it holds a claim the job cannot finish, so the arguments
// it reads next are that job's.
// Atomics.notify is a call into the runtime (a lock and a waiter-list scan) even when nobody
// waits, and a decode step posts a few dozen jobs to threads that are spinning: each side
// notifies only when the other has said it sleeps. This is safe with sequentially consistent
// atomics: a thread announces itself, then waits on the value it last saw; if the other side
// read the announcement as 0, its write of that value came first and the wait returns at once.
// Both sides' loops (the worker's job loop, the poster's run and wait, claims, the list walk) run
// in the kernel module (wasm/as/jobs.ts, wasm/as/list.ts; the layout in bytes in wasm/as/pool_layout.ts); here the poster
// writes the job, and failures are handled.
export const CTRL = { SEQ: 0, KERNEL: 1, PENDING: 3, NT: 4, STOP: 5, ERROR: 6, SLEEPERS: 7, WAITING: 8, CLAIM: 9, ARGS_BYTE: 64, BYTES: 64 + 8 * 32 };

/** Most shares a job may have (the claim word keeps 8 bits for the share). */
export const MAX_SHARES = 255;

const claimBase = (seq: number): number => (seq & 0x7fffff) << 8;

/** What a kernel instance exports for a worker's job loop (wasm/as/jobs.ts). */
export interface JobExports extends ListExports {
  jobLoop(ctrl: number, listKernel: number): void;
  jobRunningShare(): number;
  jobShareDone(ctrl: number): void;
}

/**
 * A worker's loop: its instance's `jobLoop` (WebAssembly; it waits for jobs, claims shares and runs
 * them as described above) until the pool stops. A kernel that traps or throws unwinds out of it:
 * the share is then recorded in the error word (which the poster reports), a kernel list it was
 * walking is finished (ListWalker.recover), the share is counted finished, and the loop goes on.
 * listKernel: the kernel index of list jobs (their arguments: the list's address and length).
 */
export function runJobLoop(memory: WebAssembly.Memory, ctrl: number, exp: JobExports, listKernel: number): void {
  const i32 = new Int32Array(memory.buffer, ctrl, 16);
  const f64 = new Float64Array(memory.buffer, ctrl + CTRL.ARGS_BYTE, 2);
  const walker = new ListWalker(memory, ctrl, exp);
  for (;;) {
    try {
      exp.jobLoop(ctrl, listKernel);
      return;
    } catch (e) {
      const share = exp.jobRunningShare();
      if (share < 0) throw e; // the loop itself failed, not a kernel
      if (exp.listRunningCall() >= 0) {
        try { walker.recover(f64[0], f64[1], e); } catch { /* reported through the error word */ }
      }
      Atomics.store(i32, CTRL.ERROR, share);
      exp.jobShareDone(ctrl);
    }
  }
}

// A kernel list: many kernel calls posted as one job (a decoding step's few dozen kernels), so the
// poster does not post, wake and wait once per kernel. The calls lie in the heap at a fixed
// stride: i32 kernel index, a word unused, shares, then two words every thread counts on (the
// next share to claim and the shares finished), then the f64 arguments. Every thread that holds a
// share of the list job walks the whole list: it claims shares of a call while any are left, and
// waits until all of the call's shares are finished before it goes to the next call (the next
// call reads what this one wrote). A thread that comes late finds the calls before it claimed and
// finished, and joins at the first one that is not. The poster resets the counters before it
// posts the list, which is safe: a thread walks only while it holds a share of the list job, and
// the poster returns from a job after every share of it is finished.
export const LIST = { KERNEL: 0, NT: 2, CLAIM: 3, DONE: 4, ARGS_BYTE: 32, STRIDE: 32 + 8 * 32 };

/** What a kernel instance exports for kernel lists (wasm/as/list.ts). */
export interface ListExports {
  listWalk(ptr: number, n: number, ctrl: number, canBlock: number): void;
  listRunningCall(): number;
  listRunningShare(): number;
}

/**
 * A thread's side of kernel lists: `walk(ptr, n)` runs list jobs as described above, in its
 * instance's `listWalk` (WebAssembly, compiled before the first call). A kernel that traps or
 * throws unwinds out of it: its share is then counted done, the error word set, and the walk
 * resumed, so that the rest is claimed and counted and no other thread waits forever; the first
 * error is rethrown at the end.
 */
export class ListWalker {
  private ctrl32: Int32Array;
  constructor(private memory: WebAssembly.Memory, private ctrl: number, private exp: ListExports, private canBlock = true) {
    this.ctrl32 = new Int32Array(memory.buffer, ctrl, 16);
  }
  walk(ptr: number, n: number): void {
    try {
      this.exp.listWalk(ptr, n, this.ctrl, this.canBlock ? 1 : 0);
    } catch (e) {
      this.recover(ptr, n, e);
    }
  }

  /**
   * After `listWalk` threw `first`: the failing share is counted done and recorded in the error
   * word, and the walk resumed to the end (the rest claimed and counted, not run); then `first` is
   * rethrown. Rethrown at once when the walk itself failed, not a kernel.
   */
  recover(ptr: number, n: number, first: unknown): never {
    const c = this.exp.listRunningCall();
    if (c < 0) throw first;
    Atomics.store(this.ctrl32, CTRL.ERROR, this.exp.listRunningShare());
    Atomics.add(new Int32Array(this.memory.buffer), ((ptr + c * LIST.STRIDE) >> 2) + LIST.DONE, 1);
    this.exp.listWalk(ptr, n, this.ctrl, this.canBlock ? 1 : 0);
    throw first;
  }
}

/**
 * The imports of a kernel instance over `memory`. The pool's loops look at the clock through `now`:
 * Date.now itself (milliseconds are fine for "polled for about a millisecond"), a built-in, so no
 * JavaScript of ours to compile while the first generation runs.
 */
export function kernelImports(memory: WebAssembly.Memory): WebAssembly.Imports {
  return { env: { memory, abort: () => { throw new Error('wasm abort'); }, now: Date.now } };
}

/** What a kernel instance exports for the poster's side (wasm/as/jobs.ts). */
export interface PostExports extends ListExports {
  postRun(ctrl: number, seq: number, listKernel: number, canBlock: number, from: number): void;
  jobRunningShare(): number;
}

/**
 * Main-thread side: writes a job into the control block, then its instance's `postRun`
 * (WebAssembly) runs share 0, takes the shares no worker has claimed and waits for the others.
 * A kernel that traps or throws on this thread unwinds out of it: the share is recorded in the
 * error word, a kernel list it was walking is finished (ListWalker.recover), and `postRun` goes on
 * from there (taking and counting the rest, running nothing), so that no worker waits forever;
 * then the error is thrown. A worker's failure is thrown as "kernel failed on the thread…".
 */
export class JobPoster {
  private i32: Int32Array;
  private f64: Float64Array;
  private walker: ListWalker;
  /** listKernel: the kernel index of list jobs; canBlock: whether this thread may wait (a browser's main thread may not: it spins). */
  constructor(memory: WebAssembly.Memory, private ctrl: number, private exp: PostExports, private listKernel: number, readonly canBlock = true) {
    this.i32 = new Int32Array(memory.buffer, ctrl, 16);
    this.f64 = new Float64Array(memory.buffer, ctrl + CTRL.ARGS_BYTE, 32);
    this.walker = new ListWalker(memory, ctrl, exp, canBlock);
  }
  run(kernelIndex: number, args: number[], nt: number): void {
    const { i32, f64 } = this;
    if (!(nt >= 1 && nt <= MAX_SHARES)) throw new RangeError(`thread pool: ${nt} shares (1…${MAX_SHARES})`);
    // The claim word first: from here on no thread can claim a share of the previous job, so no
    // worker reads the fields below half-written (see jobs.ts claim). SEQ last publishes the job.
    const seq = i32[CTRL.SEQ] + 1;
    Atomics.store(i32, CTRL.CLAIM, claimBase(seq) | 1); // share 0 is this thread's
    for (let i = 0; i < args.length; i++) f64[i] = args[i];
    i32[CTRL.KERNEL] = kernelIndex;
    i32[CTRL.NT] = nt;
    i32[CTRL.ERROR] = -1;
    Atomics.store(i32, CTRL.PENDING, nt - 1);
    Atomics.store(i32, CTRL.SEQ, seq);
    if (nt > 1 && Atomics.load(i32, CTRL.SLEEPERS)) Atomics.notify(i32, CTRL.SEQ);
    try {
      this.exp.postRun(this.ctrl, seq, this.listKernel, this.canBlock ? 1 : 0, 0);
    } catch (e) {
      this.recover(seq, e);
    }
    const err = Atomics.load(i32, CTRL.ERROR);
    if (err >= 0) throw new Error(`kernel failed on the thread running share ${err}`);
  }
  private recover(seq: number, first: unknown): never {
    const share = this.exp.jobRunningShare();
    if (share < 0) throw first; // postRun itself failed, not a kernel
    if (this.exp.listRunningCall() >= 0) {
      try { this.walker.recover(this.f64[0], this.f64[1], first); } catch { /* thrown below */ }
    }
    Atomics.store(this.i32, CTRL.ERROR, share);
    if (share > 0) Atomics.sub(this.i32, CTRL.PENDING, 1); // share 0 is not counted in pending
    this.exp.postRun(this.ctrl, seq, this.listKernel, this.canBlock ? 1 : 0, 1);
    throw first;
  }
  stop(): void {
    Atomics.store(this.i32, CTRL.STOP, 1);
    Atomics.add(this.i32, CTRL.SEQ, 1);
    Atomics.notify(this.i32, CTRL.SEQ);
  }
}

// A kernel's call with its share: fn(...args[0, n), tid, nt) without the spread. A spread followed by
// more arguments makes V8 build a new array for every call (≈ 150 bytes; a decoding step makes
// ~50 calls per token, and the young generation fills with them); a call with the arguments
// listed makes none. The cases are the argument counts of KERNEL_ARGS (backend/kernels.ts; a
// test checks that each has one); any other count takes the spread. (Threads run their shares in
// the kernel module; this is the calling thread's path for a call it runs alone.)
type Fn = (...a: number[]) => void;

export function invoke(fn: Fn, a: readonly number[], n: number, tid: number, nt: number): void {
  switch (n) {
    case 3: return fn(a[0], a[1], a[2], tid, nt);
    case 4: return fn(a[0], a[1], a[2], a[3], tid, nt);
    case 5: return fn(a[0], a[1], a[2], a[3], a[4], tid, nt);
    case 6: return fn(a[0], a[1], a[2], a[3], a[4], a[5], tid, nt);
    case 7: return fn(a[0], a[1], a[2], a[3], a[4], a[5], a[6], tid, nt);
    case 8: return fn(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], tid, nt);
    case 9: return fn(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], tid, nt);
    case 10: return fn(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], tid, nt);
    case 11: return fn(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], tid, nt);
    case 13: return fn(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], tid, nt);
    case 15: return fn(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], tid, nt);
    case 16: return fn(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], tid, nt);
    case 18: return fn(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17], tid, nt);
    case 24: return fn(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17], a[18], a[19], a[20], a[21], a[22], a[23], tid, nt);
    case 26: return fn(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17], a[18], a[19], a[20], a[21], a[22], a[23], a[24], a[25], tid, nt);
    case 27: return fn(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17], a[18], a[19], a[20], a[21], a[22], a[23], a[24], a[25], a[26], tid, nt);
    default: return fn(...a.slice(0, n), tid, nt);
  }
}

/** The argument counts invoke lists (the test compares them with KERNEL_ARGS). */
export const INVOKE_COUNTS: readonly number[] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 16, 18, 24, 26, 27];
