// A kernel thread: instantiates the kernel module over the shared heap and runs its share
// of each job posted in the control block (see pool.ts for the layout).
import { parentPort, workerData } from 'node:worker_threads';
import v8 from 'node:v8';
import { CTRL, runJobLoop } from './pool.js';

v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
const { module, memory, scratch, ctrl, tid, names } = workerData as {
  module: WebAssembly.Module; memory: WebAssembly.Memory; scratch: number; ctrl: number; tid: number; names: string[];
};
const instance = new WebAssembly.Instance(module, { env: { memory, abort: () => { throw new Error('wasm abort'); } } });
const exp = instance.exports as Record<string, (...a: number[]) => void>;
exp.setScratch(scratch);
const fns = names.map((n) => exp[n]);
parentPort!.postMessage('ready');
runJobLoop(memory, ctrl, tid, fns);
void CTRL;
