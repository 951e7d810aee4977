// What the pool's loops (jobs.ts, list.ts) share with pool.ts: the control block's and a kernel
// list's layout in bytes (pool.ts CTRL and LIST count 4-byte words), how long a thread polls, and
// the clock.

// The control block.
export const C_SEQ: usize = 0, C_KERNEL: usize = 4, C_PENDING: usize = 12, C_NT: usize = 16, C_STOP: usize = 20, C_ERROR: usize = 24;
export const C_SLEEPERS: usize = 28, C_WAITING: usize = 32, C_CLAIM: usize = 36, C_ARGS: usize = 64;
// A kernel list's call: i32 kernel, shares, claim, done; the f64 arguments from byte 32; one call every L_STRIDE bytes.
export const L_KERNEL: usize = 0, L_NT: usize = 8, L_CLAIM: usize = 12, L_DONE: usize = 16, L_ARGS: usize = 32, L_STRIDE: usize = 32 + 8 * 32;

// An idle thread polls for about SPIN_MS before it sleeps: waking a sleeping thread costs tens
// of microseconds or more, while the gaps between parallel kernels in a forward/backward pass
// (small ops run on the main thread) are usually shorter than this. SPIN_CHECK: polls between two
// looks at the clock.
export const SPIN_CHECK = 256;
export const SPIN_MS: f64 = 1;

/** The clock in milliseconds (the instance's import: Date.now). */
// @ts-ignore: decorator
@external('env', 'now') export declare function now(): f64;
