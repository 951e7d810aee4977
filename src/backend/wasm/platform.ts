// What the wasm backend needs from its host, for Node.js and for browsers: the kernel bytes,
// worker threads, and whether this thread may block in Atomics.wait. Node modules are imported
// dynamically so that the backend loads in a browser (module Web Workers + SharedArrayBuffer,
// which needs a cross-origin-isolated page: COOP same-origin + COEP require-corp).
// The Node modules' names go through a variable so that bundlers building for browsers (esbuild,
// Vite, webpack) leave these imports alone instead of failing to resolve `node:` modules.

export interface WorkerHandle {
  terminate(): Promise<unknown> | void;
  unref(): void;
}

export interface Platform {
  readonly name: 'node' | 'browser';
  /** Make relaxed SIMD available to WebAssembly compilation where the engine gates it. */
  enableRelaxedSimd(): Promise<void>;
  loadBytes(url: URL): Promise<Uint8Array<ArrayBuffer>>;
  /** Start a worker running `url` with `data`; resolves once it has posted 'ready'. */
  startWorker(url: URL, data: unknown): Promise<WorkerHandle>;
  defaultThreads(): number;
  /** Whether the calling thread may block in Atomics.wait (not a browser's main thread). */
  readonly canBlock: boolean;
  env(name: string): string | undefined;
  /** Why this thread cannot run kernel workers (null when it can): a page that is not cross-origin isolated. */
  threadsUnavailable(): string | null;
}

export const isNode = typeof process !== 'undefined' && !!process.versions?.node;

/** import() of a Node.js built-in, opaque to bundlers (they would try to resolve a literal specifier). */
export function nodeImport<T = any>(name: string): Promise<T> {
  return import(/* webpackIgnore: true */ /* @vite-ignore */ name) as Promise<T>;
}

function nodePlatform(): Platform {
  return {
    name: 'node',
    async enableRelaxedSimd() {
      const v8 = await nodeImport<typeof import('node:v8')>('node:v8');
      v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
    },
    async loadBytes(url) {
      const { readFile } = await nodeImport<typeof import('node:fs/promises')>('node:fs/promises');
      return new Uint8Array(await readFile(url));
    },
    async startWorker(url, data) {
      const { Worker } = await nodeImport<typeof import('node:worker_threads')>('node:worker_threads');
      const w = new Worker(url, { workerData: data });
      await new Promise<void>((res, rej) => { w.once('message', () => res()); w.once('error', rej); });
      return w;
    },
    defaultThreads() {
      const env = Number(process.env.TSLM_THREADS);
      if (env > 0) return env | 0;
      // os is loaded synchronously through the built-in module table.
      return nodeCores;
    },
    canBlock: true,
    env: (n) => process.env[n],
    threadsUnavailable: () => null,
  };
}

let nodeCores = 1;
if (isNode) {
  const os = await nodeImport<typeof import('node:os')>('node:os');
  nodeCores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

function browserPlatform(): Platform {
  const g = globalThis as unknown as { navigator?: { hardwareConcurrency?: number }; document?: unknown; Worker: new (u: URL, o: object) => Worker; crossOriginIsolated?: boolean };
  return {
    name: 'browser',
    async enableRelaxedSimd() {},
    async loadBytes(url) {
      const r = await fetch(url);
      if (!r.ok) throw new Error(`tslm: cannot fetch kernel module ${url.href}: HTTP ${r.status}`);
      return new Uint8Array(await r.arrayBuffer());
    },
    async startWorker(url, data) {
      const w = new g.Worker(url, { type: 'module' });
      await new Promise<void>((res, rej) => {
        w.onmessage = () => res();
        w.onerror = (e) => rej(new Error(`tslm: the kernel worker ${url.href} failed to start${e.message ? `: ${e.message}` : ''} `
          + '(a page that bundles tslm serves a bundle of tslm/worker there, or passes init({ assets }) the folder that holds it)'));
        w.postMessage(data);
      });
      return { terminate: () => w.terminate(), unref: () => {} };
    },
    defaultThreads: () => g.navigator?.hardwareConcurrency ?? 1,
    // Only a browser's main (document) thread may not block.
    canBlock: typeof g.document === 'undefined',
    env: () => undefined,
    // Worker threads share the heap's WebAssembly.Memory, which a page may only post to a worker
    // when it is cross-origin isolated.
    threadsUnavailable: () => (g.crossOriginIsolated === false
      ? 'the page is not cross-origin isolated, so its WebAssembly memory cannot be shared with worker threads: serve it with the headers Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp'
      : null),
  };
}

export const platform: Platform = isNode ? nodePlatform() : browserPlatform();
