// An open-addressing hash table of fixed-length n-grams of word ids, stored in typed arrays
// (n int32 per slot, no per-entry objects): the memory-efficient core of n-gram counting.

const EMPTY = -1;

export class NgramTable {
  /** Word ids, n per slot; keys[slot * n] === -1 marks an empty slot. */
  keys: Int32Array;
  /** The main value per slot (a count, or a log10 probability). */
  val: Float64Array;
  /** A second value per slot (a backoff weight), allocated on first use. */
  val2: Float64Array | null = null;
  size = 0;
  private mask: number;

  constructor(readonly n: number, capacity = 1024) {
    let cap = 16;
    while (cap < capacity * 2) cap *= 2;
    this.mask = cap - 1;
    this.keys = new Int32Array(cap * Math.max(1, n)).fill(EMPTY);
    this.val = new Float64Array(cap);
  }

  get capacity(): number { return this.mask + 1; }

  private hash(ids: ArrayLike<number>, off: number): number {
    let h = 0x811c9dc5 ^ this.n;
    for (let i = 0; i < this.n; i++) {
      h = Math.imul(h ^ ids[off + i], 0x9e3779b1);
      h ^= h >>> 16;
    }
    h = Math.imul(h, 0x85ebca6b);
    return (h ^ (h >>> 13)) & this.mask;
  }

  private eq(slot: number, ids: ArrayLike<number>, off: number): boolean {
    const k = this.keys, base = slot * this.n;
    for (let i = 0; i < this.n; i++) if (k[base + i] !== ids[off + i]) return false;
    return true;
  }

  /** Slot of the n-gram ids[off .. off+n), or -1. */
  find(ids: ArrayLike<number>, off = 0): number {
    if (this.n === 0) return this.size > 0 ? 0 : -1;
    let s = this.hash(ids, off);
    const k = this.keys, n = this.n;
    for (;;) {
      if (k[s * n] === EMPTY) return -1;
      if (this.eq(s, ids, off)) return s;
      s = (s + 1) & this.mask;
    }
  }

  /** Slot of the n-gram, inserting it (values 0) when absent. */
  insert(ids: ArrayLike<number>, off = 0): number {
    if (this.n === 0) { this.size = 1; return 0; }
    if ((this.size + 1) * 4 > this.capacity * 3) this.grow();
    let s = this.hash(ids, off);
    const k = this.keys, n = this.n;
    for (;;) {
      if (k[s * n] === EMPTY) {
        for (let i = 0; i < n; i++) k[s * n + i] = ids[off + i];
        this.size++;
        return s;
      }
      if (this.eq(s, ids, off)) return s;
      s = (s + 1) & this.mask;
    }
  }

  add(ids: ArrayLike<number>, off: number, delta: number): void {
    // insert() first: it may grow the table and replace this.val.
    const s = this.insert(ids, off);
    this.val[s] += delta;
  }

  ensureVal2(): Float64Array {
    if (!this.val2) this.val2 = new Float64Array(this.capacity);
    return this.val2;
  }

  /** Occupied slots, in table order. */
  *slots(): Generator<number> {
    const cap = this.capacity, n = this.n, k = this.keys;
    if (n === 0) { if (this.size) yield 0; return; }
    for (let s = 0; s < cap; s++) if (k[s * n] !== EMPTY) yield s;
  }

  /** Occupied slots sorted lexicographically by their word ids. */
  sortedSlots(): Int32Array {
    const out = new Int32Array(this.size);
    let j = 0;
    for (const s of this.slots()) out[j++] = s;
    const k = this.keys, n = this.n;
    out.sort((a, b) => {
      for (let i = 0; i < n; i++) {
        const d = k[a * n + i] - k[b * n + i];
        if (d !== 0) return d;
      }
      return 0;
    });
    return out;
  }

  key(slot: number): number[] {
    return Array.from(this.keys.subarray(slot * this.n, slot * this.n + this.n));
  }

  private grow(): void {
    const oldKeys = this.keys, oldVal = this.val, oldVal2 = this.val2, n = this.n, oldCap = this.capacity;
    const cap = oldCap * 2;
    this.mask = cap - 1;
    this.keys = new Int32Array(cap * n).fill(EMPTY);
    this.val = new Float64Array(cap);
    this.val2 = oldVal2 ? new Float64Array(cap) : null;
    this.size = 0;
    for (let s = 0; s < oldCap; s++) {
      if (oldKeys[s * n] === EMPTY) continue;
      const t = this.insert(oldKeys, s * n);
      this.val[t] = oldVal[s];
      if (oldVal2) this.val2![t] = oldVal2[s];
    }
  }
}
