// One heap for all tensor storage: a shared WebAssembly.Memory that the wasm kernels (on every
// thread) and the plain-TypeScript reference kernels read and write alike. It is not garbage
// collected: storage is released explicitly, by memory scopes (see tensor/scope.ts).

const PAGE = 65536;
/** Bytes below this address belong to the kernel module's static data. */
export const HEAP_BASE = 1 << 20;
const ALIGN = 64;
const MAX_PAGES = 65536; // 4 GiB, the wasm32 limit

export class OutOfMemoryError extends Error {
  constructor(bytes: number, inUse: number) {
    super(`tslm heap: cannot allocate ${bytes} bytes (${inUse} bytes in use; wasm32 memory is limited to 4 GiB)`);
    this.name = 'OutOfMemoryError';
  }
}

/** Views over the heap, refreshed whenever the memory grows. Reference kernels read these. */
export const H = {
  memory: new WebAssembly.Memory({ initial: 256, maximum: MAX_PAGES, shared: true }),
  f32: new Float32Array(0),
  i32: new Int32Array(0),
  u8: new Uint8Array(0),
  f64: new Float64Array(0),
};
function refreshViews(): void {
  const buf = H.memory.buffer;
  if (H.f32.buffer === buf && H.f32.length * 4 === buf.byteLength) return;
  H.f32 = new Float32Array(buf);
  H.i32 = new Int32Array(buf);
  H.u8 = new Uint8Array(buf);
  H.f64 = new Float64Array(buf);
}
refreshViews();

/**
 * Size-class allocator: blocks are rounded up to 64 bytes (small) or to a power-of-two
 * fraction (large), freed blocks go on a free list per size and are reused first. Training
 * loops allocate the same sizes every step, so after the first step they allocate from the lists.
 */
const free = new Map<number, number[]>();
const sizeOf = new Map<number, number>();
let top = HEAP_BASE;
let inUse = 0;
let peak = 0;

function roundSize(bytes: number): number {
  if (bytes <= 4096) return Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
  // Round to 1/8 of the next power of two so sizes that differ slightly share a class.
  const p = 2 ** Math.ceil(Math.log2(bytes));
  const step = p / 8;
  return Math.ceil(bytes / step) * step;
}

export function alloc(bytes: number): number {
  const size = roundSize(Math.max(bytes, 1));
  const list = free.get(size);
  let ptr: number;
  if (list && list.length > 0) {
    ptr = list.pop()!;
  } else {
    ptr = top;
    const end = top + size;
    if (end > H.memory.buffer.byteLength) {
      const need = Math.ceil((end - H.memory.buffer.byteLength) / PAGE);
      const cur = H.memory.buffer.byteLength / PAGE;
      // Grow by at least 1/4 of the current size to amortise.
      const grow = Math.min(MAX_PAGES - cur, Math.max(need, Math.ceil(cur / 4)));
      if (grow < need) throw new OutOfMemoryError(bytes, inUse);
      H.memory.grow(grow);
      refreshViews();
    }
    top = end;
  }
  sizeOf.set(ptr, size);
  inUse += size;
  if (inUse > peak) peak = inUse;
  return ptr;
}

export function release(ptr: number): void {
  const size = sizeOf.get(ptr);
  if (size === undefined) throw new Error(`tslm heap: release of unknown or already released block at ${ptr}`);
  sizeOf.delete(ptr);
  inUse -= size;
  let list = free.get(size);
  if (!list) free.set(size, (list = []));
  list.push(ptr);
}

/** Make sure views are current (after another module grew the memory). */
export function views(): typeof H {
  refreshViews();
  return H;
}

export interface HeapStats {
  /** Bytes held by live blocks. */
  inUse: number;
  /** Highest inUse seen. */
  peak: number;
  /** Bytes ever handed out from the top of the heap (live + on free lists). */
  reserved: number;
  /** Size of the wasm memory. */
  memoryBytes: number;
  liveBlocks: number;
}
export function heapStats(): HeapStats {
  return { inUse, peak, reserved: top - HEAP_BASE, memoryBytes: H.memory.buffer.byteLength, liveBlocks: sizeOf.size };
}
