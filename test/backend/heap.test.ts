// The heap allocator: no two live blocks overlap, freed memory is reused and coalesced.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { alloc, release, heapStats, MAX_ALLOC, OutOfMemoryError } from '../../src/backend/heap.js';
import * as T from '../../src/tensor/ops.js';
import { Generator } from '../../src/tensor/random.js';

test('random alloc/free never overlaps live blocks and returns to the same top', () => {
  const g = new Generator(5);
  const start = heapStats();
  const live = new Map<number, number>();
  for (let i = 0; i < 20000; i++) {
    if (live.size && g.uniform() < 0.45) {
      const keys = [...live.keys()];
      const k = keys[g.int(keys.length)];
      release(k);
      live.delete(k);
    } else {
      const bytes = 1 + g.int(g.uniform() < 0.1 ? 1 << 20 : 5000);
      const p = alloc(bytes);
      assert.equal(p % 64, 0, 'aligned to 64 bytes');
      for (const [q, n] of live) assert.ok(p + bytes <= q || q + n <= p, `block ${p}+${bytes} overlaps ${q}+${n}`);
      live.set(p, bytes);
    }
  }
  for (const k of live.keys()) release(k);
  const end = heapStats();
  assert.equal(end.inUse, start.inUse);
  assert.equal(end.reserved, start.reserved, 'all blocks coalesced back into the top');
  assert.throws(() => release(12345), /release of unknown/);
});

test('a freed large block serves smaller requests (splitting) and merges back', () => {
  const a = alloc(1 << 20), b = alloc(64);
  release(a);
  const c = alloc(300 << 10), d = alloc(600 << 10);
  assert.equal(c, a, 'best fit reuses the freed block');
  assert.ok(d > c && d < a + (1 << 20), 'the remainder serves the next request');
  release(c); release(d);
  assert.equal(alloc(1 << 20), a, 'neighbours coalesced');
  release(a); release(b);
});

test('released small blocks are reused by size and count as free', () => {
  const start = heapStats();
  const a = alloc(1000), b = alloc(5000), c = alloc(1000);
  release(a);
  assert.equal(heapStats().inUse, start.inUse + 5056 + 1024, 'a cached block is not in use');
  // heapStats() merged a back into the free lists; release again and take it from the cache.
  const a2 = alloc(1000);
  release(a2);
  assert.equal(alloc(1000), a2, 'same size: the cached block is reused');
  assert.throws(() => release(a2 + 64), /release of unknown/);
  release(a2); release(b); release(c);
  assert.throws(() => release(c), /already released/);
  const end = heapStats();
  assert.equal(end.inUse, start.inUse);
  assert.equal(end.reserved, start.reserved, 'cached blocks merge back into the top');
});

test('sizes of 4 GiB and more (and nonsense sizes) get a clear error, and the heap is untouched', () => {
  const before = heapStats();
  // None of these is actually allocated: the allocator refuses them before touching its bins or the memory.
  for (const bytes of [2 ** 32, 2 ** 32 + 5, 2 ** 32 - 1, 5 * 2 ** 30, 2 ** 40, Number.MAX_SAFE_INTEGER, MAX_ALLOC]) {
    assert.throws(() => alloc(bytes), (e: Error) => e instanceof OutOfMemoryError && e.message.includes(`cannot allocate ${bytes} bytes`) && /limited to 4294967296/.test(e.message), `alloc(${bytes})`);
  }
  for (const bytes of [-1, NaN, Infinity, 1.5, 2 ** 60]) {
    assert.throws(() => alloc(bytes), (e: Error) => (e instanceof RangeError || e instanceof OutOfMemoryError) && e.message.includes('cannot allocate'), `alloc(${bytes})`);
  }
  const after = heapStats();
  assert.equal(after.inUse, before.inUse);
  assert.equal(after.reserved, before.reserved);
  assert.equal(after.memoryBytes, before.memoryBytes, 'the memory did not grow');
  const p = alloc(1000);
  release(p);
});

test('a tensor of more than 4 GiB is refused with the heap error, not a TypeError', () => {
  assert.throws(() => T.empty([1 << 20, 1 << 11]), (e: Error) => e instanceof OutOfMemoryError && e.message.includes(`cannot allocate ${2 ** 33} bytes`));
});
