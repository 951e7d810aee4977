// The wasm backend: SIMD128 kernels compiled from AssemblyScript (wasm/as/), run on the main
// thread and on worker threads that share the heap's WebAssembly.Memory.
import { H, alloc, release } from '../heap.js';
import type { Backend, KernelBatch, KernelName } from '../kernels.js';
import { KERNEL_NAMES, SequentialBatch, checkKernelArgs } from '../kernels.js';
import { CTRL, JobPoster, LIST, invoke, kernelImports } from './pool.js';
import type { PostExports } from './pool.js';
import { refKernels } from '../ref/index.js';
import { platform } from './platform.js';
import type { WorkerHandle } from './platform.js';

/** Work (scalar operations) below which a kernel runs on the calling thread only. */
export const PARALLEL_THRESHOLD = 1 << 16;

/**
 * Where the kernel files are: kernels-{relaxed,simd}.wasm and the kernel worker. By default the
 * package's own layout (dist/wasm/ and this module's worker.js); `assets` names one folder holding
 * all three, for a page whose bundler does not copy files that modules load at run time.
 */
export interface KernelAssets {
  wasm(variant: string): URL;
  worker(): URL;
}

export function kernelAssets(assets?: string | URL): KernelAssets {
  if (assets === undefined) {
    return {
      wasm: (variant) => new URL(`../../../wasm/kernels-${variant}.wasm`, import.meta.url),
      worker: () => new URL('./worker.js', import.meta.url),
    };
  }
  const here = (globalThis as { location?: { href: string } }).location?.href;
  let base: URL;
  try {
    base = new URL(String(assets), here);
  } catch {
    throw new Error(`tslm: init({ assets }) must be a URL of the folder holding the kernel files, got '${String(assets)}'`);
  }
  if (!base.pathname.endsWith('/')) base = new URL(`${base.pathname}/${base.search}`, base);
  return { wasm: (variant) => new URL(`kernels-${variant}.wasm`, base), worker: () => new URL('worker.js', base) };
}

async function loadModule(assets: KernelAssets): Promise<{ module: WebAssembly.Module; variant: string }> {
  await platform.enableRelaxedSimd();
  for (const variant of ['relaxed', 'simd']) {
    const url = assets.wasm(variant);
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = await platform.loadBytes(url);
    } catch (e) {
      throw new Error(`tslm: cannot load the kernel module ${url.href} (${e instanceof Error ? e.message : String(e)}); `
        + (platform.name === 'node' ? 'run `npm run build`' : 'serve node_modules/tslm/dist/wasm/ there, or pass init({ assets }) the URL where it is'));
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
    const instance = new WebAssembly.Instance(module, kernelImports(H.memory));
    this.exportsObj = instance.exports as Record<string, unknown>;
    const exp = instance.exports as Record<string, (...a: number[]) => void>;
    const scratchBytes = (instance.exports.SCRATCH_BYTES as WebAssembly.Global).value as number;
    exp.setScratch(alloc(scratchBytes));
    this.halfTable = alloc((instance.exports.HALF_TABLE_BYTES as WebAssembly.Global).value as number);
    exp.setHalfTable(this.halfTable, 1);
    // A kernel the module lacks runs on the reference implementation, single-threaded; tests
    // assert that `missing` is empty.
    this.missing = KERNEL_NAMES.filter((n) => typeof exp[n] !== 'function');
    // The list walker's dispatch numbers kernels as KERNEL_NAMES does when it was built.
    const hash = instance.exports.DISPATCH_NAMES_HASH as WebAssembly.Global | undefined;
    if (!hash || hash.value >>> 0 !== namesHash(KERNEL_NAMES)) {
      throw new Error('tslm: the kernel module was built for another kernel table (backend/kernels.ts); run `npm run build`');
    }
    this.fns = KERNEL_NAMES.map((n) => (typeof exp[n] === 'function' ? exp[n] : refKernels[n]));
    this.scratchBytes = scratchBytes;
    this.module = module;
  }
  private scratchBytes: number;
  /** The f16 → f32 table the quantised kernels read scales through (quant.ts), shared by every thread. */
  private halfTable: number;
  private module: WebAssembly.Module;

  /**
   * Create the backend and start `threads - 1` worker threads (default: available cores). Where
   * threads are impossible (a page that is not cross-origin isolated) it runs on one thread and
   * `threadsUnavailable` says why.
   */
  static async create(threads = defaultThreads(), assets: KernelAssets = kernelAssets()): Promise<WasmBackend> {
    const { module, variant } = await loadModule(assets);
    let n = Math.max(1, threads | 0);
    const why = n > 1 ? platform.threadsUnavailable() : null;
    if (why) n = 1;
    const be = new WasmBackend(n, module, variant);
    be.threadsUnavailable = why;
    if (be.threads > 1) await be.startWorkers(assets.worker());
    return be;
  }

  /** Why fewer threads run than were asked for (null when all run). */
  threadsUnavailable: string | null = null;

  private async startWorkers(url: URL): Promise<void> {
    const ctrl = alloc(CTRL.BYTES);
    new Int32Array(H.memory.buffer, ctrl, 16).fill(0);
    const starts: Promise<WorkerHandle>[] = [];
    for (let w = 1; w < this.threads; w++) {
      starts.push(platform.startWorker(url, { module: this.module, memory: H.memory, scratch: alloc(this.scratchBytes), halfTable: this.halfTable, ctrl, listKernel: KERNEL_NAMES.length }));
    }
    this.workers = await Promise.all(starts);
    for (const w of this.workers) w.unref();
    this.poster = new JobPoster(H.memory, ctrl, this.exportsObj as unknown as PostExports, KERNEL_NAMES.length, platform.canBlock);
  }

  /**
   * With worker threads, a batch is one list job (pool.ts): the calls posted and shared as `call`
   * would, without a post and a wait per call. Otherwise (one thread, or a kernel the module
   * lacks, which only this thread can run) the calls run one by one.
   */
  batch(): KernelBatch {
    if (!this.poster || this.missing.length) return new SequentialBatch(this);
    return new ListBatch(this.poster, this.index, this.threads);
  }

  call(kernel: KernelName, args: number[], work: number): void {
    checkKernelArgs(kernel, args);
    const idx = this.index.get(kernel)!;
    if (this.poster && work >= PARALLEL_THRESHOLD && !this.missing.includes(kernel)) this.poster.run(idx, args, this.threads);
    else invoke(this.fns[idx], args, args.length, 0, 1);
  }

  /** Stop the worker threads. */
  async dispose(): Promise<void> {
    this.poster?.stop();
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers = [];
    this.poster = null;
  }
}

/** FNV-1a of the names joined by commas, as scripts/kernel-dispatch.mjs writes DISPATCH_NAMES_HASH. */
function namesHash(names: readonly string[]): number {
  const s = names.join(',');
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** TSLM_THREADS, else the available cores. */
export function defaultThreads(): number {
  return platform.defaultThreads();
}

/** A batch written as a kernel list in the heap (pool.ts LIST) and run as one job. */
class ListBatch implements KernelBatch {
  private ptr = 0;
  private capacity = 0;
  private n = 0;
  private readonly job: number[] = [0, 0];
  constructor(private poster: JobPoster, private index: Map<string, number>, private threads: number) {}

  add(kernel: KernelName, args: number[], work: number): void {
    checkKernelArgs(kernel, args);
    if (this.n === this.capacity) this.grow();
    const at = this.ptr + this.n++ * LIST.STRIDE, w = at >>> 2, a = (at + LIST.ARGS_BYTE) >>> 3;
    const i32 = H.i32, f64 = H.f64;
    i32[w + LIST.KERNEL] = this.index.get(kernel)!;
    i32[w + LIST.NT] = this.sharesOf(work);
    for (let i = 0; i < args.length; i++) f64[a + i] = args[i];
  }

  private grow(): void {
    const capacity = Math.max(64, 2 * this.capacity), ptr = alloc(capacity * LIST.STRIDE);
    if (this.n) H.u8.copyWithin(ptr, this.ptr, this.ptr + this.n * LIST.STRIDE);
    if (this.ptr) release(this.ptr);
    this.ptr = ptr;
    this.capacity = capacity;
  }

  get length(): number {
    return this.n;
  }

  set(i: number, j: number, value: number): void {
    H.f64[((this.ptr + i * LIST.STRIDE + LIST.ARGS_BYTE) >>> 3) + j] = value;
  }

  setWork(i: number, work: number): void {
    H.i32[((this.ptr + i * LIST.STRIDE) >>> 2) + LIST.NT] = this.sharesOf(work);
  }

  /** A call's shares: all threads from PARALLEL_THRESHOLD on, as WasmBackend.call decides. */
  private sharesOf(work: number): number {
    return work >= PARALLEL_THRESHOLD ? this.threads : 1;
  }

  run(): void {
    const n = this.n;
    if (!n) return;
    // Every call's counters start at zero (no thread walks the list between two runs).
    const i32 = H.i32;
    for (let c = 0, w = this.ptr >>> 2; c < n; c++, w += LIST.STRIDE >>> 2) i32[w + LIST.CLAIM] = i32[w + LIST.DONE] = 0;
    this.job[0] = this.ptr;
    this.job[1] = n;
    this.poster.run(KERNEL_NAMES.length, this.job, this.threads);
  }

  clear(): void {
    this.n = 0;
  }

  dispose(): void {
    if (this.ptr) release(this.ptr);
    this.ptr = 0;
    this.capacity = 0;
    this.n = 0;
  }
}
