// What the wasm backend needs from its host, for Node.js and for browsers: the kernel bytes,
// worker threads, and whether this thread may block in Atomics.wait. Node modules are imported
// dynamically so that the backend loads in a browser (module Web Workers + SharedArrayBuffer,
// which needs a cross-origin-isolated page: COOP same-origin + COEP require-corp).

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
}

export const isNode = typeof process !== 'undefined' && !!process.versions?.node;

function nodePlatform(): Platform {
  return {
    name: 'node',
    async enableRelaxedSimd() {
      const v8 = await import('node:v8');
      v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
    },
    async loadBytes(url) {
      const { readFile } = await import('node:fs/promises');
      return new Uint8Array(await readFile(url));
    },
    async startWorker(url, data) {
      const { Worker } = await import('node:worker_threads');
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
  };
}

let nodeCores = 1;
if (isNode) {
  const os = await import('node:os');
  nodeCores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

function browserPlatform(): Platform {
  const g = globalThis as unknown as { navigator?: { hardwareConcurrency?: number }; document?: unknown; Worker: new (u: URL, o: object) => Worker };
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
        w.onerror = (e) => rej(new Error(`tslm: kernel worker failed to start: ${e.message}`));
        w.postMessage(data);
      });
      return { terminate: () => w.terminate(), unref: () => {} };
    },
    defaultThreads: () => g.navigator?.hardwareConcurrency ?? 1,
    // Only a browser's main (document) thread may not block.
    canBlock: typeof g.document === 'undefined',
    env: () => undefined,
  };
}

export const platform: Platform = isNode ? nodePlatform() : browserPlatform();
