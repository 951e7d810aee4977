// Entry point of the kernel module: every exported function is a kernel callable from JS.
// Conventions: pointers are byte addresses into the shared memory, strides are in elements,
// and each kernel ends with (tid, nt): the calling thread's index and the thread count; a
// kernel computes only its own share of the work, split deterministically.
export { setScratch, SCRATCH_BYTES } from './scratch';
export * from './matmul';
export * from './elementwise';
export * from './nn';
export * from './attention';
export * from './optim';
export * from './ssm';
export * from './moe';
export * from './conv';
export * from './quant';
export { bf16_pack, bf16_widen } from './bf16';
export { listWalk, listRunningCall, listRunningShare } from './list';
export { jobLoop, jobRunningShare, jobShareDone, postRun } from './jobs';
export { DISPATCH_NAMES_HASH } from './dispatch';
