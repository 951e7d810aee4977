// The kernel-list walker (the thread side of a list job, pool.ts LIST): a decoding step's few
// dozen kernel calls lie in the heap, and every thread that holds a share of the list job walks
// them here. Per call it claims shares while any are left, runs each through `dispatch`
// (dispatch.ts, generated at build from KERNEL_ARGS), counts it done, and waits until all the
// call's shares are done before the next call (the next call reads what this one wrote). A thread
// that comes late finds the earlier calls claimed and done and joins at the first that is not.
// After a failure (the control block's error word ≥ 0) the rest is claimed and counted, not run.
// The walk is WebAssembly so that a fresh process runs it compiled from its first call; written
// in JavaScript it ran unoptimised, and then took TurboFan's time, through the first generation.
import { dispatch } from './dispatch';
import { C_ERROR, L_ARGS, L_CLAIM, L_DONE, L_KERNEL, L_NT, L_STRIDE, SPIN_CHECK, SPIN_MS, now } from './pool_layout';

// The call and share this thread is running (−1 between calls): read by the JavaScript side
// after a kernel trapped, to count that share done and go on. Globals are per instance, so per thread.
let runningCall: i32 = -1;
let runningShare: i32 = -1;
export function listRunningCall(): i32 { return runningCall; }
export function listRunningShare(): i32 { return runningShare; }

/** Walk the n calls at ptr; ctrl is the pool's control block; canBlock: whether this thread may wait. */
export function listWalk(ptr: usize, n: i32, ctrl: usize, canBlock: i32): void {
  runningCall = -1;
  for (let c = 0; c < n; c++) {
    const at = ptr + <usize>c * L_STRIDE;
    const nt = load<i32>(at + L_NT);
    for (let share = atomic.add<i32>(at + L_CLAIM, 1); share < nt; share = atomic.add<i32>(at + L_CLAIM, 1)) {
      if (atomic.load<i32>(ctrl + C_ERROR) < 0) {
        runningCall = c;
        runningShare = share;
        dispatch(load<i32>(at + L_KERNEL), at + L_ARGS, share, nt);
        runningCall = -1;
      }
      atomic.add<i32>(at + L_DONE, 1);
    }
    waitDone(at + L_DONE, nt, canBlock);
  }
}

/** Until the word at `at` reaches nt: polls, then (where this thread may) waits in slices of 1 ms; nobody notifies. */
function waitDone(at: usize, nt: i32, canBlock: i32): void {
  let spins = 0;
  let t0: f64 = 0;
  for (;;) {
    const d = atomic.load<i32>(at);
    if (d >= nt) return;
    if (canBlock && ++spins % SPIN_CHECK == 0) {
      const t = now();
      if (spins == SPIN_CHECK) t0 = t;
      if (t - t0 > SPIN_MS) memory.atomic.wait32(at, d, 1000000);
    }
  }
}
