// A worker thread's job loop (the thread side of pool.ts's protocol, see its header): waits for a
// job posted in the control block, claims shares of it while any are left, runs each (a kernel
// through `dispatch`, or a kernel list through `listWalk`) and counts it finished. WebAssembly, so
// that a fresh process runs it compiled from the first job: in JavaScript it ran unoptimised,
// then took TurboFan's time, while the first generation decoded.
import { dispatch } from './dispatch';
import { listWalk, now, SPIN_CHECK, SPIN_MS } from './list';

// The control block (pool.ts CTRL), in bytes.
const SEQ: usize = 0, KERNEL: usize = 4, PENDING: usize = 12, NT: usize = 16, STOP: usize = 20, SLEEPERS: usize = 28, WAITING: usize = 32, CLAIM: usize = 36, ARGS: usize = 64;

// The last job this thread has seen (the control block starts zeroed and SEQ only counts up), and
// the share it is running (−1 between shares: read by the JavaScript side after a kernel trapped).
// Globals are per instance, so per thread.
let seen: i32 = 0;
let runningShare: i32 = -1;
export function jobRunningShare(): i32 { return runningShare; }

/**
 * Runs jobs until the stop word is set. listKernel: the kernel index that means "a kernel list"
 * (its arguments: the list's address and length).
 */
export function jobLoop(ctrl: usize, listKernel: i32): void {
  runningShare = -1;
  for (;;) {
    let s = atomic.load<i32>(ctrl + SEQ);
    let spins = 0;
    let t0: f64 = 0;
    while (s == seen) {
      if (++spins % SPIN_CHECK == 0) {
        const t = now();
        if (spins == SPIN_CHECK) t0 = t;
        if (t - t0 > SPIN_MS) {
          atomic.add<i32>(ctrl + SLEEPERS, 1);
          memory.atomic.wait32(ctrl + SEQ, seen, -1);
          atomic.sub<i32>(ctrl + SLEEPERS, 1);
          spins = 0;
        }
      }
      s = atomic.load<i32>(ctrl + SEQ);
    }
    seen = s;
    if (atomic.load<i32>(ctrl + STOP)) return;
    // A claim holds the job open (pending counts it), so the fields read after it are job s's.
    for (let share = claim(ctrl, s, load<i32>(ctrl + NT)); share >= 0; share = claim(ctrl, s, load<i32>(ctrl + NT))) {
      const nt = load<i32>(ctrl + NT), k = load<i32>(ctrl + KERNEL);
      runningShare = share;
      if (k == listKernel) listWalk(<usize><i32><i64>load<f64>(ctrl + ARGS), <i32><i64>load<f64>(ctrl + ARGS + 8), ctrl, 1);
      else dispatch(k, ctrl + ARGS, share, nt);
      runningShare = -1;
      jobShareDone(ctrl);
    }
  }
}

/** A share of the current job is finished: wakes the poster if it sleeps waiting for the last one. */
export function jobShareDone(ctrl: usize): void {
  if (atomic.sub<i32>(ctrl + PENDING, 1) == 1 && atomic.load<i32>(ctrl + WAITING)) atomic.notify(ctrl + PENDING);
}

/** The next share of job seq (nt shares), or −1 when none is left or the job is gone (pool.ts claim). */
function claim(ctrl: usize, seq: i32, nt: i32): i32 {
  const base = (seq & 0x7fffff) << 8;
  for (;;) {
    const c = atomic.load<i32>(ctrl + CLAIM);
    if ((c & ~0xff) != base) return -1;
    const share = c & 0xff;
    if (share >= nt) return -1;
    if (atomic.cmpxchg<i32>(ctrl + CLAIM, c, c + 1) == c) return share;
  }
  return -1; // (not reached)
}
