// Backend selection. The `wasm` backend is the default once `init()` has run; `ref` can be
// forced globally (setBackend('ref') or TSLM_BACKEND=ref) so tests can compare the two.
import type { Backend } from './kernels.js';
import { refBackend } from './ref/index.js';
import { WasmBackend, defaultThreads, kernelAssets } from './wasm/index.js';
import { platform } from './wasm/platform.js';
import { alloc } from './heap.js';

export type { Backend, KernelName } from './kernels.js';
export { BinaryOp, UnaryOp, ReduceOp } from './kernels.js';
export { heapStats } from './heap.js';

let wasm: WasmBackend | null = null;
let current: Backend = refBackend;

/** An i32 block the ops layer fills with shapes/strides before a kernel call (see kernels.ts). */
export const META = alloc(4096);

export interface InitOptions {
  /** Threads for the wasm backend (default: TSLM_THREADS or the available cores). */
  threads?: number;
  /** Backend to make current (default: TSLM_BACKEND or 'wasm'). */
  backend?: 'ref' | 'wasm';
  /**
   * For a page that bundles tslm with a bundler that does not copy the files modules load at run
   * time (esbuild): the URL (absolute, or relative to the page) of a folder holding
   * kernels-relaxed.wasm and kernels-simd.wasm (from node_modules/tslm/dist/wasm/) and worker.js
   * (a bundle of `tslm/worker`). Default: where the package's own modules find them.
   */
  assets?: string | URL;
}

let asked: { threads: number; assets: string } | null = null;

/** Start the wasm backend (compiles the kernels, starts worker threads) and select a backend. */
export async function init(opts: InitOptions = {}): Promise<Backend> {
  const threads = opts.threads ?? defaultThreads();
  const assets = opts.assets === undefined ? '' : String(opts.assets);
  if (!wasm || asked?.threads !== threads || asked.assets !== assets) {
    if (wasm) await wasm.dispose();
    wasm = null;
    wasm = await WasmBackend.create(threads, kernelAssets(opts.assets));
    asked = { threads, assets };
    // A page without cross-origin isolation runs single-threaded: say so once, where a developer looks.
    if (wasm.threadsUnavailable) console.warn(`tslm: running on 1 thread instead of ${threads}: ${wasm.threadsUnavailable}`);
  }
  const want = opts.backend ?? (platform.env('TSLM_BACKEND') === 'ref' ? 'ref' : 'wasm');
  current = want === 'ref' ? refBackend : wasm;
  return current;
}

export function backend(): Backend {
  return current;
}

/** Select the backend ops run on; `init()` must have run before selecting 'wasm'. */
export function setBackend(name: 'ref' | 'wasm'): void {
  if (name === 'wasm' && !wasm) throw new Error("tslm: call `await init()` before selecting the 'wasm' backend");
  current = name === 'ref' ? refBackend : wasm!;
}

/** Run fn with the given backend current, restoring the previous one after. */
export function withBackend<T>(name: 'ref' | 'wasm', fn: () => T): T {
  const prev = current;
  setBackend(name);
  try {
    return fn();
  } finally {
    current = prev;
  }
}

export function wasmBackend(): WasmBackend | null {
  return wasm;
}

/** Stop worker threads (lets a process exit promptly; init() may be called again). */
export async function shutdown(): Promise<void> {
  if (wasm) await wasm.dispose();
  wasm = null;
  current = refBackend;
}
