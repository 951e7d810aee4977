// Per-instance scratch memory. Every thread instantiates the module over the same shared
// memory; globals are per instance, so each thread gets its own scratch region (set once by
// the loader) for packing matrices and other temporary buffers.
export const SCRATCH_BYTES: i32 = 4 << 20;
let scratchBase: usize = 0;
export function setScratch(ptr: usize): void { scratchBase = ptr; }
// @ts-ignore: decorator
@inline export function scratch(): usize { return scratchBase; }
