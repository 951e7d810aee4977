// The wasm backend: SIMD128 kernels compiled from AssemblyScript (wasm/as/), run on the main
// thread and on worker threads that share the heap's WebAssembly.Memory.
import { H, alloc } from '../heap.js';
import type { Backend, KernelName } from '../kernels.js';
import { KERNEL_ARGS, KERNEL_NAMES, KernelArgumentError } from '../kernels.js';
import { CTRL, JobPoster } from './pool.js';
import { refKernels } from '../ref/index.js';
import { platform } from './platform.js';
import type { WorkerHandle } from './platform.js';

/** Work (scalar operations) below which a kernel runs on the calling thread only. */
export const PARALLEL_THRESHOLD = 1 << 16;

async function loadModule(): Promise<{ module: WebAssembly.Module; variant: string }> {
  await platform.enableRelaxedSimd();
  for (const variant of ['relaxed', 'simd']) {
    const url = new URL(`../../../wasm/kernels-${variant}.wasm`, import.meta.url);
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = await platform.loadBytes(url);
    } catch {
      throw new Error(`tslm: kernel module ${url.pathname} is missing; run \`npm run build\``);
    }
    if (WebAssembly.validate(bytes)) return { module: await WebAssembly.compile(bytes), variant };
  }
  throw new Error('tslm: this JavaScript engine supports neither relaxed SIMD nor SIMD128 WebAssembly');
}

export class WasmBackend implements Backend {
  readonly name = 'wasm' as const;
  readonly variant: string;
  private fns: ((...a: number[]) => void)[];
  private poster: JobPoster | null = null;
  private workers: WorkerHandle[] = [];
  private exportsObj: Record<string, unknown>;
  private index = new Map<string, number>(KERNEL_NAMES.map((n, i) => [n, i]));
  /** Kernels absent from the module (served by `ref`). */
  readonly missing: KernelName[];

  private constructor(readonly threads: number, module: WebAssembly.Module, variant: string) {
    this.variant = variant;
    const instance = new WebAssembly.Instance(module, { env: { memory: H.memory, abort: () => { throw new Error('wasm abort'); } } });
    this.exportsObj = instance.exports as Record<string, unknown>;
    const exp = instance.exports as Record<string, (...a: number[]) => void>;
    const scratchBytes = (instance.exports.SCRATCH_BYTES as WebAssembly.Global).value as number;
    exp.setScratch(alloc(scratchBytes));
    // A kernel the module lacks runs on the reference implementation, single-threaded; tests
    // assert that `missing` is empty.
    this.missing = KERNEL_NAMES.filter((n) => typeof exp[n] !== 'function');
    this.fns = KERNEL_NAMES.map((n) => (typeof exp[n] === 'function' ? exp[n] : refKernels[n]));
    this.scratchBytes = scratchBytes;
    this.module = module;
  }
  private scratchBytes: number;
  private module: WebAssembly.Module;

  /** Create the backend and start `threads - 1` worker threads (default: available cores). */
  static async create(threads = defaultThreads()): Promise<WasmBackend> {
    const { module, variant } = await loadModule();
    const be = new WasmBackend(Math.max(1, threads | 0), module, variant);
    if (be.threads > 1) await be.startWorkers();
    return be;
  }

  private async startWorkers(): Promise<void> {
    const ctrl = alloc(CTRL.BYTES);
    new Int32Array(H.memory.buffer, ctrl, 16).fill(0);
    const url = new URL('./worker.js', import.meta.url);
    const starts: Promise<WorkerHandle>[] = [];
    for (let w = 1; w < this.threads; w++) {
      starts.push(platform.startWorker(url, { module: this.module, memory: H.memory, scratch: alloc(this.scratchBytes), ctrl, names: KERNEL_NAMES }));
    }
    this.workers = await Promise.all(starts);
    for (const w of this.workers) w.unref();
    this.poster = new JobPoster(H.memory, ctrl, platform.canBlock);
  }

  call(kernel: KernelName, args: number[], work: number): void {
    const spec = KERNEL_ARGS[kernel];
    if (args.length !== spec.length) throw new KernelArgumentError(kernel, spec.length, args.length);
    const idx = this.index.get(kernel)!;
    if (this.poster && work >= PARALLEL_THRESHOLD && !this.missing.includes(kernel)) this.poster.run(idx, this.fns[idx], args, this.threads);
    else this.fns[idx](...args, 0, 1);
  }

  /** Stop the worker threads. */
  async dispose(): Promise<void> {
    this.poster?.stop();
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers = [];
    this.poster = null;
  }
}

/** TSLM_THREADS, else the available cores. */
export function defaultThreads(): number {
  return platform.defaultThreads();
}
