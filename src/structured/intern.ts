// Hash-consing of number sequences: one id per distinct sequence, the same id for equal ones. The
// schema compiler names a schema's content by the ids of its members (SchemaCompiler.keyOf): a
// sequence is written into a scratch stack (a member's own sequence above its parent's, popped
// before the parent goes on), hashed as numbers and compared number by number with the entry of
// the same hash, instead of being joined into a text key and hashed as text (semgrep's and
// circleciconfig's compiles spent 15–19% in building, flattening and hashing those keys).

/** Ids for number sequences (equal sequences, equal ids) and for leaves (`fresh`: equal to no other). */
export class SeqInterner {
  /** The sequences' numbers, entry after entry. */
  private pool = new Int32Array(4096);
  private poolTop = 0;
  /** Per id: where its sequence starts in pool, its length (−1: a leaf, no sequence), its hash. */
  private starts = new Int32Array(256);
  private lens = new Int32Array(256);
  private hashes = new Int32Array(256);
  private count = 0;
  /** How many of the ids are sequences (in table). */
  private seqs = 0;
  /** Open addressing: id + 1 of the entry in each slot (0: empty); at most half full. */
  private table = new Int32Array(512);
  private scratch = new Int32Array(1024);
  private sp = 0;

  /** How many ids were given. */
  get size(): number { return this.count; }

  /** A new id that no sequence and no other leaf has. */
  fresh(): number {
    const id = this.count;
    this.grow(id + 1);
    this.lens[id] = -1;
    this.count++;
    return id;
  }

  /** The top of the scratch stack: a sequence begins here (see `intern`). */
  mark(): number { return this.sp; }

  /** Appends x (any 32-bit integer) to the sequence being written. */
  push(x: number): void {
    if (this.sp === this.scratch.length) { const s = new Int32Array(this.scratch.length * 2); s.set(this.scratch); this.scratch = s; }
    this.scratch[this.sp++] = x;
  }

  /** The id of the sequence pushed since `mark` (taken off the stack). */
  intern(mark: number): number {
    const s = this.scratch, len = this.sp - mark;
    let h = 0x811c9dc5 ^ len;
    for (let i = mark; i < this.sp; i++) { h = Math.imul(h ^ s[i], 0x01000193); h ^= h >>> 13; }
    h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
    h ^= h >>> 16;
    const mask = this.table.length - 1;
    for (let slot = h & mask; ; slot = (slot + 1) & mask) {
      const e = this.table[slot];
      if (e === 0) break;
      const id = e - 1;
      if (this.hashes[id] !== h || this.lens[id] !== len) continue;
      const p = this.pool, at = this.starts[id];
      let j = 0;
      while (j < len && p[at + j] === s[mark + j]) j++;
      if (j === len) { this.sp = mark; return id; }
    }
    const id = this.count;
    this.grow(id + 1);
    if (this.poolTop + len > this.pool.length) {
      const p = new Int32Array(Math.max(this.pool.length * 2, this.poolTop + len));
      p.set(this.pool.subarray(0, this.poolTop));
      this.pool = p;
    }
    this.pool.set(s.subarray(mark, this.sp), this.poolTop);
    this.starts[id] = this.poolTop; this.lens[id] = len; this.hashes[id] = h;
    this.poolTop += len;
    this.count++;
    this.sp = mark;
    if (2 * ++this.seqs > this.table.length) this.rehash(this.table.length * 2);
    else this.place(id);
    return id;
  }

  private place(id: number): void {
    const mask = this.table.length - 1;
    let slot = this.hashes[id] & mask;
    while (this.table[slot] !== 0) slot = (slot + 1) & mask;
    this.table[slot] = id + 1;
  }

  private rehash(size: number): void {
    this.table = new Int32Array(size);
    for (let id = 0; id < this.count; id++) if (this.lens[id] >= 0) this.place(id);
  }

  private grow(n: number): void {
    if (n <= this.starts.length) return;
    const m = this.starts.length * 2;
    const g = (a: Int32Array) => { const b = new Int32Array(m); b.set(a); return b; };
    this.starts = g(this.starts); this.lens = g(this.lens); this.hashes = g(this.hashes);
  }
}
