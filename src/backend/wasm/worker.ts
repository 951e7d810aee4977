// A kernel thread (Node worker_threads or a browser module Web Worker): instantiates the kernel
// module over the shared heap and runs its share of each job posted in the control block.
import { kernelImports, runJobLoop } from './pool.js';
import type { JobExports } from './pool.js';
import { isNode, nodeImport } from './platform.js';

interface Init { module: WebAssembly.Module; memory: WebAssembly.Memory; scratch: number; halfTable: number; ctrl: number; listKernel: number }

function start(d: Init, ready: () => void): void {
  const instance = new WebAssembly.Instance(d.module, kernelImports(d.memory));
  const exp = instance.exports as Record<string, (...a: number[]) => void>;
  exp.setScratch(d.scratch);
  exp.setHalfTable(d.halfTable, 0);
  ready();
  runJobLoop(d.memory, d.ctrl, instance.exports as unknown as JobExports, d.listKernel);
}

if (isNode) {
  const v8 = await nodeImport<typeof import('node:v8')>('node:v8');
  v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
  const { parentPort, workerData } = await nodeImport<typeof import('node:worker_threads')>('node:worker_threads');
  start(workerData as Init, () => parentPort!.postMessage('ready'));
} else {
  const scope = globalThis as unknown as { onmessage: ((e: MessageEvent) => void) | null; postMessage(m: unknown): void };
  scope.onmessage = (e: MessageEvent) => {
    scope.onmessage = null;
    start(e.data as Init, () => scope.postMessage('ready'));
  };
}
