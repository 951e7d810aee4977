// The kernel interface: one table, shared by every backend. Each entry lists the kernel's
// arguments in order. Conventions (for `ref` and `wasm` alike):
//   - pointers are byte addresses into the shared heap (backend/heap.ts);
//   - strides and sizes are in elements;
//   - every kernel is additionally called with (tid, nt) appended: it computes only its own
//     share of the work, so the `wasm` backend can run it on nt threads at once.
// Adding a fused op = one line here + one function in ref/ + one export in wasm/as/.

export const KERNEL_ARGS = {
  // C[b] (M×N, row stride ldc) = op(A[b]) (M×K) · op(B[b]) (K×N) (+ C[b] when beta = 1).
  // A[b][m,k] is at a + 4·(b·sAb + m·sAm + k·sAk); B[b][k,n] at b + 4·(b·sBb + k·sBk + n·sBn).
  sgemm: ['a', 'b', 'c', 'M', 'N', 'K', 'sAm', 'sAk', 'sBk', 'sBn', 'ldc', 'batch', 'sAb', 'sBb', 'sCb', 'beta'],
} as const;

export type KernelName = keyof typeof KERNEL_ARGS;
export const KERNEL_NAMES = Object.keys(KERNEL_ARGS).sort() as KernelName[];

/** A backend's implementation of one kernel: the listed arguments, then tid and nt. */
export type KernelFn = (...args: number[]) => void;
export type KernelTable = { [K in KernelName]: KernelFn };

export interface Backend {
  readonly name: 'ref' | 'wasm';
  /** Number of threads the backend may use (1 for ref). */
  readonly threads: number;
  /**
   * Run a kernel. `work` is a rough count of scalar operations; small jobs run on the calling
   * thread only, large ones are split over all threads.
   */
  call(kernel: KernelName, args: number[], work: number): void;
}

export class KernelArgumentError extends Error {
  constructor(kernel: string, expected: number, got: number) {
    super(`kernel ${kernel}: expected ${expected} arguments, got ${got}`);
    this.name = 'KernelArgumentError';
  }
}
