// One heap for all tensor storage: a shared WebAssembly.Memory that the wasm kernels (on every
// thread) and the plain-TypeScript reference kernels read and write alike. It is not garbage
// collected: storage is released explicitly, by memory scopes (see tensor/scope.ts).

const PAGE = 65536;
/** Bytes below this address belong to the kernel module's static data. */
export const HEAP_BASE = 1 << 20;
const ALIGN = 64;
const MAX_PAGES = 65536; // 4 GiB, the wasm32 limit
/** Bytes the wasm32 memory can hold at most (4 GiB). */
export const HEAP_LIMIT = MAX_PAGES * PAGE;
/** The largest single block the heap could ever hand out (everything above the static data). */
export const MAX_ALLOC = HEAP_LIMIT - HEAP_BASE;

export class OutOfMemoryError extends Error {
  constructor(readonly bytes: number, readonly inUse: number, why = '') {
    super(`tslm heap: cannot allocate ${bytes} bytes: the wasm heap is limited to ${HEAP_LIMIT} bytes (4 GiB)${why ? `, ${why}` : ''} (${inUse} bytes in use)`);
    this.name = 'OutOfMemoryError';
  }
}

/** An allocation past the budget set by withHeapBudget (a model bigger than its file's weights, say). */
export class HeapBudgetError extends Error {
  constructor(readonly bytes: number, readonly budget: number) {
    super(`tslm heap: cannot allocate ${bytes} bytes: over the budget of ${budget} bytes set for this operation`);
    this.name = 'HeapBudgetError';
  }
}

/** Views over the heap, refreshed whenever the memory grows. Reference kernels read these. */
export const H = {
  memory: new WebAssembly.Memory({ initial: 256, maximum: MAX_PAGES, shared: true }),
  f32: new Float32Array(0),
  i32: new Int32Array(0),
  u8: new Uint8Array(0),
  u16: new Uint16Array(0),
  f64: new Float64Array(0),
};
function refreshViews(): void {
  const buf = H.memory.buffer;
  if (H.f32.buffer === buf && H.f32.length * 4 === buf.byteLength) return;
  H.f32 = new Float32Array(buf);
  H.i32 = new Int32Array(buf);
  H.u8 = new Uint8Array(buf);
  H.u16 = new Uint16Array(buf);
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
// live block start → size; a cached block (see below) keeps its entry with the size negated.
const sizeOf = new Map<number, number>();
const freeStart = new Map<number, number>(); // free block start → size
const freeEnd = new Map<number, number>(); // free block end → start
const bins: Set<number>[] = Array.from({ length: 33 }, () => new Set<number>());
let top = HEAP_BASE;
let inUse = 0;
let peak = 0;
/** inUse may not exceed this (withHeapBudget); Infinity when no budget is set. */
let budgetLimit = Infinity;
let budgetBytes = Infinity;

/**
 * Run fn with at most `bytes` more bytes allocatable: an allocation past that throws
 * HeapBudgetError before the heap grows. Loaders build a model under the budget its file's
 * weights justify, so a config that describes a far larger model is refused before gigabytes are
 * reserved.
 */
export function withHeapBudget<T>(bytes: number, fn: () => T): T {
  const saved = [budgetLimit, budgetBytes];
  budgetLimit = Math.min(budgetLimit, inUse + bytes);
  budgetBytes = bytes;
  try {
    return fn();
  } finally {
    [budgetLimit, budgetBytes] = saved;
  }
}

// Sizes are below MAX_ALLOC < 2^32 (alloc refuses larger ones first), so the bin is in [0, 31].
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
  if (grow < need) throw new OutOfMemoryError(bytes, inUse, `and the heap cannot grow by ${need * PAGE} more bytes`);
  try {
    H.memory.grow(grow);
  } catch (e) {
    // The engine or the system refused the pages (a RangeError): the same condition, said plainly.
    try { H.memory.grow(need); } catch { throw new OutOfMemoryError(bytes, inUse, `and growing it by ${need * PAGE} bytes failed (${(e as Error).message})`); }
  }
  refreshViews();
}

/**
 * Recently released small blocks, kept whole per exact size (LIFO) instead of being merged into
 * the free lists at once: a decode or training step allocates the same few sizes over and over,
 * and reusing a block from here costs an array pop where coalescing costs a dozen Map/Set
 * updates (the allocator was about 40% of the JavaScript time of a decode step). Cached blocks
 * count as free (not in inUse); they go back through the coalescing path when an allocation
 * would otherwise grow the heap, and before heapStats() reports.
 */
const CACHE_MAX_BLOCK = 256 << 10;
const CACHE_MAX_BYTES = 16 << 20;
const cached = new Map<number, number[]>(); // size → starts of cached blocks of that size
let cachedBytes = 0;
let cachedBlocks = 0;

/** Return every cached block to the free lists (coalescing them). */
function flushCache(): void {
  if (cachedBytes === 0) return;
  cachedBytes = 0;
  cachedBlocks = 0;
  for (const [size, starts] of cached) {
    for (const p of starts) { sizeOf.delete(p); freeBlock(p, size); }
    starts.length = 0;
  }
}

export function alloc(bytes: number): number {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`tslm heap: cannot allocate ${bytes} bytes: the size must be a non-negative integer`);
  if (bytes > MAX_ALLOC - ALIGN) throw new OutOfMemoryError(bytes, inUse, `of which ${MAX_ALLOC} at most can hold tensors`);
  const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
  if (inUse + size > budgetLimit) throw new HeapBudgetError(bytes, budgetBytes);
  const hit = cached.get(size);
  if (hit !== undefined && hit.length > 0) {
    const p = hit.pop()!;
    cachedBytes -= size;
    cachedBlocks--;
    sizeOf.set(p, size); // an update of the entry, not an insertion
    inUse += size;
    if (inUse > peak) peak = inUse;
    return p;
  }
  let ptr = takeFree(size);
  if (ptr < 0 && cachedBytes > 0 && (freeEnd.get(top) ?? top) + size > H.memory.buffer.byteLength) {
    // The memory would grow: first merge the cached blocks back, they may make room.
    flushCache();
    ptr = takeFree(size);
  }
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
  const size = sizeOf.get(ptr);
  if (size === undefined || size < 0) throw new Error(`tslm heap: release of unknown or already released block at ${ptr}`);
  inUse -= size;
  if (size <= CACHE_MAX_BLOCK && cachedBytes + size <= CACHE_MAX_BYTES) {
    let list = cached.get(size);
    if (list === undefined) cached.set(size, list = []);
    list.push(ptr);
    cachedBytes += size;
    cachedBlocks++;
    sizeOf.set(ptr, -size); // Map insertions and deletions are what cost; an update is cheap
    return;
  }
  sizeOf.delete(ptr);
  freeBlock(ptr, size);
}

/** Put the block [ptr, ptr + size) on the free lists, merged with free neighbours. */
function freeBlock(ptr: number, size: number): void {
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
/** Measure heapStats().peak again from the heap in use now (the peak of one operation: a load, a step). */
export function resetHeapPeak(): void {
  peak = inUse;
}

export function heapStats(): HeapStats {
  flushCache();
  return { inUse, peak, reserved: top - HEAP_BASE, memoryBytes: H.memory.buffer.byteLength, liveBlocks: sizeOf.size - cachedBlocks };
}
