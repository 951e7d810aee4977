// The reference backend: every kernel in plain TypeScript, written to be obviously correct
// rather than fast. Tests compare the wasm backend against it.
import type { Backend, KernelName, KernelTable } from '../kernels.js';
import { KERNEL_ARGS, KernelArgumentError } from '../kernels.js';
import { sgemm } from './matmul.js';

export const refKernels: KernelTable = { sgemm };

export const refBackend: Backend = {
  name: 'ref',
  threads: 1,
  call(kernel: KernelName, args: number[]): void {
    if (args.length !== KERNEL_ARGS[kernel].length) throw new KernelArgumentError(kernel, KERNEL_ARGS[kernel].length, args.length);
    refKernels[kernel](...args, 0, 1);
  },
};
