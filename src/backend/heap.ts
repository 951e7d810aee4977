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
 * Best-fit allocator with splitting and coalescing (the way caching allocators for tensors
 * work): free blocks are kept in bins by power-of-two size; an allocation takes the smallest
 * fitting block of the first bin that has one and splits off the rest; a release merges the
 * block with free neighbours, and a free block at the top of the heap returns to it. Reusing
 * memory matters: the first touch of fresh pages is expensive on some systems.
 */
const sizeOf = new Map<number, number>(); // live block start → size
const freeStart = new Map<number, number>(); // free block start → size
const freeEnd = new Map<number, number>(); // free block end → start
const bins: Set<number>[] = Array.from({ length: 33 }, () => new Set<number>());
let top = HEAP_BASE;
let inUse = 0;
let peak = 0;

const binOf = (size: number): number => 31 - Math.clz32(size);

function addFree(start: number, size: number): void {
  freeStart.set(start, size);
  freeEnd.set(start + size, start);
  bins[binOf(size)].add(start);
}
function removeFree(start: number): number {
  const size = freeStart.get(start)!;
  freeStart.delete(start);
  freeEnd.delete(start + size);
  bins[binOf(size)].delete(start);
  return size;
}

function takeFree(size: number): number {
  for (let k = binOf(size); k < bins.length; k++) {
    if (bins[k].size === 0) continue;
    let best = -1, bestSize = Infinity;
    for (const start of bins[k]) {
      const s = freeStart.get(start)!;
      if (s >= size && s < bestSize) {
        best = start;
        bestSize = s;
        if (s === size || k > binOf(size)) break;
      }
    }
    if (best >= 0) {
      removeFree(best);
      if (bestSize > size) addFree(best + size, bestSize - size);
      return best;
    }
  }
  return -1;
}

function growTo(end: number, bytes: number): void {
  if (end <= H.memory.buffer.byteLength) return;
  const need = Math.ceil((end - H.memory.buffer.byteLength) / PAGE);
  const cur = H.memory.buffer.byteLength / PAGE;
  // Grow by at least 1/8 of the current size to amortise.
  const grow = Math.min(MAX_PAGES - cur, Math.max(need, Math.ceil(cur / 8)));
  if (grow < need) throw new OutOfMemoryError(bytes, inUse);
  H.memory.grow(grow);
  refreshViews();
}

export function alloc(bytes: number): number {
  const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
  let ptr = takeFree(size);
  if (ptr < 0) {
    // Extend a free block that ends at the top, or bump.
    const tail = freeEnd.get(top);
    ptr = tail !== undefined ? tail : top;
    if (tail !== undefined) removeFree(tail);
    growTo(ptr + size, bytes);
    top = ptr + size;
  }
  sizeOf.set(ptr, size);
  inUse += size;
  if (inUse > peak) peak = inUse;
  return ptr;
}

export function release(ptr: number): void {
  let size = sizeOf.get(ptr);
  if (size === undefined) throw new Error(`tslm heap: release of unknown or already released block at ${ptr}`);
  sizeOf.delete(ptr);
  inUse -= size;
  let start = ptr;
  const before = freeEnd.get(start);
  if (before !== undefined) { size += removeFree(before); start = before; }
  const after = freeStart.get(start + size);
  if (after !== undefined) size += removeFree(start + size);
  if (start + size === top) top = start;
  else addFree(start, size);
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
  /** Bytes between the heap base and its top (live blocks and free gaps). */
  reserved: number;
  /** Size of the wasm memory. */
  memoryBytes: number;
  liveBlocks: number;
}
export function heapStats(): HeapStats {
  return { inUse, peak, reserved: top - HEAP_BASE, memoryBytes: H.memory.buffer.byteLength, liveBlocks: sizeOf.size };
}
