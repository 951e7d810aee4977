// The decoding state of a recurrent family (Mamba's conv + SSM states, S4D's modal states): a
// fixed set of tensors per row, whatever the length of the sequence, so decoding costs O(1)
// memory per token. Every tensor's first dimension is the row (capacity rows are allocated, the
// first `batch` are in use); positions are not stored, so append() and dropLeading() only move
// rows. Rolling back (speculative decoding) needs the states of earlier positions: with
// `history` k > 0 the family keeps a snapshot after each of the last k positions it consumed
// (it then advances one position at a time: see `wantsSnapshots`), and truncate() restores one.
import { Tensor } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { scope, unscoped } from '../tensor/storage.js';
import { DecodeStateError, checkRows } from './causal.js';
import type { DecodeState } from './causal.js';

export class RecurrentState implements DecodeState {
  /** The state tensors, (capacity, …) each, zero at the start. */
  readonly tensors: Tensor[];
  batch: number;
  readonly capacity: number;
  length = 0;
  readonly maxLength = Infinity;
  /** Snapshots of the rows in use after each of the last `history` positions: [length, tensors]. */
  private snapshots: [number, Tensor[]][] = [];

  /**
   * `kind` names the family in errors; `shapes` are the per-row shapes of the state tensors;
   * `history`: positions that truncate() can roll back (0: none).
   */
  constructor(readonly kind: string, readonly shapes: readonly (readonly number[])[], capacity: number, readonly history = 0) {
    this.batch = this.capacity = capacity;
    this.tensors = unscoped(() => shapes.map((s) => T.zeros([capacity, ...s])));
  }

  /** State tensor i for the rows in use (batch, …): a view the family reads and writes in place. */
  rows(i: number): Tensor {
    const t = this.tensors[i];
    return this.batch === this.capacity ? t : T.slice(t, 0, 0, this.batch);
  }

  /** Does the family need to stop after each position and call snapshot()? */
  get wantsSnapshots(): boolean { return this.history > 0; }

  /** Record the state after the position just consumed (length already advanced). */
  snapshot(): void {
    if (!this.history) return;
    const copy = unscoped(() => this.tensors.map((_, i) => T.clone(this.rows(i))));
    this.snapshots.push([this.length, copy]);
    while (this.snapshots.length > this.history) for (const t of this.snapshots.shift()![1]) t.dispose();
  }

  private dropSnapshots(): void {
    for (const [, ts] of this.snapshots) for (const t of ts) t.dispose();
    this.snapshots = [];
  }

  truncate(length: number): void {
    if (!Number.isInteger(length) || length < 0 || length > this.length) throw new DecodeStateError(`${this.kind}.truncate: length ${length} outside [0, ${this.length}]`);
    if (length === this.length) return;
    if (length === 0) {
      scope(() => { for (let i = 0; i < this.tensors.length; i++) T.fill_(this.rows(i), 0); });
    } else {
      const snap = this.snapshots.find(([l]) => l === length);
      if (!snap) {
        throw new DecodeStateError(`${this.kind}.truncate: a recurrent state cannot roll back from ${this.length} to ${length} positions ` +
          `(it keeps the states of the last ${this.history} positions; create it with a larger history)`);
      }
      scope(() => snap[1].forEach((t, i) => T.copyInto(this.rows(i), t)));
    }
    this.snapshots = this.snapshots.filter(([l, ts]) => {
      if (l <= length) return true;
      for (const t of ts) t.dispose();
      return false;
    });
    this.length = length;
  }

  select(rows: readonly number[]): void {
    checkRows(rows, this.batch, this.kind);
    scope(() => {
      const moves = rows.map((src, dst) => [src, dst]).filter(([src, dst]) => src !== dst);
      const saved = moves.map(([src]) => this.tensors.map((t) => T.clone(T.slice(t, 0, src, src + 1))));
      moves.forEach(([, dst], m) => this.tensors.forEach((t, i) => T.copyInto(T.slice(t, 0, dst, dst + 1), saved[m][i])));
    });
    this.batch = rows.length;
    this.dropSnapshots();
  }

  append(src: DecodeState): void {
    if (!(src instanceof RecurrentState) || src.kind !== this.kind || src.shapes.map((s) => s.join()).join(';') !== this.shapes.map((s) => s.join()).join(';')) {
      throw new DecodeStateError(`${this.kind}.append: the source is not a state of the same model`);
    }
    const r0 = this.batch, n = src.batch;
    if (r0 + n > this.capacity) throw new DecodeStateError(`${this.kind}.append: ${r0} + ${n} rows exceed the capacity of ${this.capacity}`);
    scope(() => this.tensors.forEach((t, i) => T.copyInto(T.slice(t, 0, r0, r0 + n), src.rows(i))));
    this.batch = r0 + n;
    this.length = Math.max(this.length, src.length);
    this.dropSnapshots();
  }

  dropLeading(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.length) throw new DecodeStateError(`${this.kind}.dropLeading: ${n} outside [0, ${this.length}]`);
    this.length -= n;
    this.dropSnapshots();
  }

  clone(): RecurrentState {
    const c = new RecurrentState(this.kind, this.shapes, this.capacity, this.history);
    c.batch = this.batch;
    c.length = this.length;
    scope(() => this.tensors.forEach((_, i) => T.copyInto(c.rows(i), this.rows(i))));
    return c;
  }

  dispose(): void {
    for (const t of this.tensors) t.dispose();
    this.dropSnapshots();
  }
}
