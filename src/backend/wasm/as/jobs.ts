// The thread pool's loops (pool.ts's protocol, see its header). A worker's `jobLoop` waits for a
// job posted in the control block, claims shares of it while any are left, runs each (a kernel
// through `dispatch`, or a kernel list through `listWalk`) and counts it finished. The poster's
// `postRun` runs share 0 of the job it has just written, takes every share no worker has claimed,
// and waits until the workers' shares are finished. WebAssembly, so that a fresh process runs
// them compiled from the first job: in JavaScript they ran unoptimised, then took TurboFan's
// time, while the first generation decoded.
import { dispatch } from './dispatch';
import { listWalk } from './list';
import { C_ARGS, C_CLAIM, C_ERROR, C_KERNEL, C_NT, C_PENDING, C_SEQ, C_SLEEPERS, C_STOP, C_WAITING, SPIN_CHECK, SPIN_MS, now } from './pool_layout';

// The last job this thread has seen (the control block starts zeroed and SEQ only counts up), and
// the share it is running (−1 between shares: read by the JavaScript side after a kernel trapped).
// Globals are per instance, so per thread.
let seen: i32 = 0;
let runningShare: i32 = -1;
/** The share this thread is running (of a job, as a worker or as the poster), or −1. */
export function jobRunningShare(): i32 { return runningShare; }

/**
 * Runs jobs until the stop word is set. listKernel: the kernel index that means "a kernel list"
 * (its arguments: the list's address and length).
 */
export function jobLoop(ctrl: usize, listKernel: i32): void {
  runningShare = -1;
  for (;;) {
    let s = atomic.load<i32>(ctrl + C_SEQ);
    let spins = 0;
    let t0: f64 = 0;
    while (s == seen) {
      if (++spins % SPIN_CHECK == 0) {
        const t = now();
        if (spins == SPIN_CHECK) t0 = t;
        if (t - t0 > SPIN_MS) {
          atomic.add<i32>(ctrl + C_SLEEPERS, 1);
          memory.atomic.wait32(ctrl + C_SEQ, seen, -1);
          atomic.sub<i32>(ctrl + C_SLEEPERS, 1);
          spins = 0;
        }
      }
      s = atomic.load<i32>(ctrl + C_SEQ);
    }
    seen = s;
    if (atomic.load<i32>(ctrl + C_STOP)) return;
    // A claim holds the job open (pending counts it), so the fields read after it are job s's.
    for (let share = claim(ctrl, s, load<i32>(ctrl + C_NT)); share >= 0; share = claim(ctrl, s, load<i32>(ctrl + C_NT))) {
      runShare(ctrl, share, listKernel, 1);
      jobShareDone(ctrl);
    }
  }
}

/** Runs share `share` of the posted job: its kernel, or its kernel list. */
function runShare(ctrl: usize, share: i32, listKernel: i32, canBlock: i32): void {
  const nt = load<i32>(ctrl + C_NT), k = load<i32>(ctrl + C_KERNEL);
  runningShare = share;
  if (k == listKernel) listWalk(<usize><i32><i64>load<f64>(ctrl + C_ARGS), <i32><i64>load<f64>(ctrl + C_ARGS + 8), ctrl, canBlock);
  else dispatch(k, ctrl + C_ARGS, share, nt);
  runningShare = -1;
}

/**
 * The poster's side of job seq, whose fields it has written (pool.ts JobPoster.run): runs share 0
 * (from = 0; from = 1 after a failure, when share 0 has been run), then every share no worker has
 * claimed, then waits until the shares the workers claimed are finished. After a failure (the
 * error word ≥ 0, any thread's) shares are taken and counted, not run.
 */
export function postRun(ctrl: usize, seq: i32, listKernel: i32, canBlock: i32, from: i32): void {
  runningShare = -1;
  if (from == 0 && atomic.load<i32>(ctrl + C_ERROR) < 0) runShare(ctrl, 0, listKernel, canBlock);
  for (let share = claim(ctrl, seq, load<i32>(ctrl + C_NT)); share >= 0; share = claim(ctrl, seq, load<i32>(ctrl + C_NT))) {
    if (atomic.load<i32>(ctrl + C_ERROR) < 0) runShare(ctrl, share, listKernel, canBlock);
    atomic.sub<i32>(ctrl + C_PENDING, 1);
  }
  // Until the workers have finished the shares they claimed: polls, then (where this thread may)
  // sleeps, saying so in the waiting word so that the last worker wakes it.
  let spins = 0;
  let t0: f64 = 0;
  for (;;) {
    const p = atomic.load<i32>(ctrl + C_PENDING);
    if (p == 0) return;
    if (canBlock && ++spins % SPIN_CHECK == 0) {
      const t = now();
      if (spins == SPIN_CHECK) t0 = t;
      if (t - t0 > SPIN_MS) {
        atomic.store<i32>(ctrl + C_WAITING, 1);
        memory.atomic.wait32(ctrl + C_PENDING, p, 50_000_000);
        atomic.store<i32>(ctrl + C_WAITING, 0);
      }
    }
  }
}

/** A share of the current job is finished: wakes the poster if it sleeps waiting for the last one. */
export function jobShareDone(ctrl: usize): void {
  if (atomic.sub<i32>(ctrl + C_PENDING, 1) == 1 && atomic.load<i32>(ctrl + C_WAITING)) atomic.notify(ctrl + C_PENDING);
}

/**
 * The next share of job seq (nt shares), or −1 when none is left or the job is gone. A worker reads
 * nt before claiming; that is safe because the poster replaces the claim word before it writes a
 * new job's fields: a claim that succeeds on job seq's word happened before any of the next job's
 * fields were written, so nt was job seq's.
 */
function claim(ctrl: usize, seq: i32, nt: i32): i32 {
  const base = (seq & 0x7fffff) << 8;
  for (;;) {
    const c = atomic.load<i32>(ctrl + C_CLAIM);
    if ((c & ~0xff) != base) return -1;
    const share = c & 0xff;
    if (share >= nt) return -1;
    if (atomic.cmpxchg<i32>(ctrl + C_CLAIM, c, c + 1) == c) return share;
  }
  return -1; // (not reached)
}
