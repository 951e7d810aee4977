// Thread pool over one shared WebAssembly.Memory. The main thread and nt-1 workers each hold
// an instance of the kernel module. A job is posted through a control block in the heap:
//   i32[0] seq      incremented for every job (workers wait on it)
//   i32[1] kernel   index into the sorted kernel-name list
//   i32[2] nargs
//   i32[3] pending  workers yet to finish the current job
//   i32[4] nt       threads taking part
//   i32[5] stop     set to make workers exit
//   i32[6] error    set by a worker whose kernel threw
//   i32[7] sleepers workers in (or about to enter) Atomics.wait on seq
//   i32[8] waiting  1 while the posting thread is in (or about to enter) Atomics.wait on pending
//   f64 args from byte 64 on (at most 32)
// Atomics.notify is a call into the runtime (a lock and a waiter-list scan) even when nobody
// waits, and a decode step posts a few dozen jobs to threads that are spinning: each side
// notifies only when the other has said it sleeps. This is safe with sequentially consistent
// atomics: a thread announces itself, then waits on the value it last saw; if the other side
// read the announcement as 0, its write of that value came first and the wait returns at once.
export const CTRL = { SEQ: 0, KERNEL: 1, NARGS: 2, PENDING: 3, NT: 4, STOP: 5, ERROR: 6, SLEEPERS: 7, WAITING: 8, ARGS_BYTE: 64, BYTES: 64 + 8 * 32 };

// An idle thread polls for about SPIN_MS before it sleeps on Atomics.wait: waking a sleeping
// thread costs tens of microseconds or more, while the gaps between parallel kernels in a
// forward/backward pass (small ops run on the main thread) are usually shorter than this.
const SPIN_MS = 1;
// Polls between two looks at the clock.
const SPIN_CHECK = 256;

export function runJobLoop(memory: WebAssembly.Memory, ctrl: number, tid: number, fns: ((...a: number[]) => void)[]): void {
  const i32 = new Int32Array(memory.buffer, ctrl, 16);
  const f64 = new Float64Array(memory.buffer, ctrl + CTRL.ARGS_BYTE, 32);
  // The control block starts zeroed and SEQ only counts up from there. Reading the current
  // SEQ instead would race with a job posted before this thread got here (the worker reports
  // ready before entering this loop) and lose that job, hanging the poster.
  let seen = 0;
  const args: number[] = [];
  for (;;) {
    let s = Atomics.load(i32, CTRL.SEQ);
    let spins = 0;
    let t0 = -1;
    while (s === seen) {
      if (++spins % SPIN_CHECK === 0) {
        const t = performance.now();
        if (t0 < 0) t0 = t;
        else if (t - t0 > SPIN_MS) {
          Atomics.add(i32, CTRL.SLEEPERS, 1);
          Atomics.wait(i32, CTRL.SEQ, seen);
          Atomics.sub(i32, CTRL.SLEEPERS, 1);
          t0 = -1;
        }
      }
      s = Atomics.load(i32, CTRL.SEQ);
    }
    seen = s;
    if (Atomics.load(i32, CTRL.STOP)) return;
    const nt = i32[CTRL.NT];
    if (tid < nt) {
      const n = i32[CTRL.NARGS];
      args.length = n;
      for (let i = 0; i < n; i++) args[i] = f64[i];
      args.push(tid, nt);
      try { fns[i32[CTRL.KERNEL]](...args); } catch { Atomics.store(i32, CTRL.ERROR, tid); }
    }
    if (Atomics.sub(i32, CTRL.PENDING, 1) === 1 && Atomics.load(i32, CTRL.WAITING)) Atomics.notify(i32, CTRL.PENDING);
  }
}

/** Main-thread side: post a job, run share 0, wait for the others. */
export class JobPoster {
  private i32: Int32Array;
  private f64: Float64Array;
  /** canBlock: whether this thread may Atomics.wait (a browser's main thread may not: it spins). */
  constructor(memory: WebAssembly.Memory, ctrl: number, readonly workers: number, readonly canBlock = true) {
    this.i32 = new Int32Array(memory.buffer, ctrl, 16);
    this.f64 = new Float64Array(memory.buffer, ctrl + CTRL.ARGS_BYTE, 32);
  }
  run(kernelIndex: number, fn: (...a: number[]) => void, args: number[], nt: number): void {
    const { i32, f64 } = this;
    for (let i = 0; i < args.length; i++) f64[i] = args[i];
    i32[CTRL.KERNEL] = kernelIndex;
    i32[CTRL.NARGS] = args.length;
    i32[CTRL.NT] = nt;
    i32[CTRL.ERROR] = -1;
    Atomics.store(i32, CTRL.PENDING, this.workers);
    Atomics.add(i32, CTRL.SEQ, 1);
    if (Atomics.load(i32, CTRL.SLEEPERS)) Atomics.notify(i32, CTRL.SEQ);
    try {
      fn(...args, 0, nt);
    } finally {
      let spins = 0;
      let t0 = -1;
      for (;;) {
        const p = Atomics.load(i32, CTRL.PENDING);
        if (p === 0) break;
        if (this.canBlock && ++spins % SPIN_CHECK === 0) {
          const t = performance.now();
          if (t0 < 0) t0 = t;
          else if (t - t0 > SPIN_MS) {
            Atomics.store(i32, CTRL.WAITING, 1);
            Atomics.wait(i32, CTRL.PENDING, p, 50);
            Atomics.store(i32, CTRL.WAITING, 0);
          }
        }
      }
    }
    const err = Atomics.load(i32, CTRL.ERROR);
    if (err >= 0) throw new Error(`kernel failed on worker thread ${err}`);
  }
  stop(): void {
    Atomics.store(this.i32, CTRL.STOP, 1);
    Atomics.add(this.i32, CTRL.SEQ, 1);
    Atomics.notify(this.i32, CTRL.SEQ);
  }
}
