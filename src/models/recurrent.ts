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
import { ShapeError, fmtShape } from '../tensor/errors.js';
import type { Module } from '../nn/module.js';
import type { Embedding, Linear, RMSNorm } from '../nn/layers.js';
import { CausalLM, DecodeStateError, checkRows } from './causal.js';
import type { DecodeState, ForwardOptions } from './causal.js';

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

  compact(start: number, keep: readonly number[]): void {
    // A chain (the first keep.length new positions) is a rollback; any other branch is not stored.
    if (!keep.every((p, j) => p === j)) {
      throw new DecodeStateError(`${this.kind}.compact: a recurrent state cannot keep a branch of a token tree (its positions are not stored separately)`);
    }
    this.truncate(start + keep.length);
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

/**
 * A layer of a recurrent stack: h (B, T, D) → (B, T, D), continuing from its own state tensors
 * (advanced in place; null: from zeros, nothing kept). `keep` (B, T, 1) is 0 at padding positions.
 */
export interface RecurrentBlock extends Module {
  forward(h: Tensor, state: Tensor[] | null, keep: Tensor | null): Tensor;
}

/**
 * What the recurrent families (Mamba, S4D) share: HF Mamba's layout — `backbone.embeddings`,
 * `backbone.layers.N` (residual blocks), `backbone.norm_f`, a tied or untied `lm_head` — and the
 * decoding around it: a RecurrentState holding each layer's state tensors, left padding as a
 * mask the blocks apply, one position at a time when the state keeps snapshots. A family gives
 * its blocks and the per-row shapes of one layer's state.
 */
export abstract class RecurrentLM extends CausalLM {
  abstract backbone: Module & { embeddings: Embedding; layers: RecurrentBlock[]; norm_f: RMSNorm };
  /** The output projection; absent when tied to the input embedding. */
  abstract lm_head: Linear | null;

  /** Per-row shapes of one layer's state tensors. */
  protected abstract layerStateShapes(): number[][];

  /** A recurrent model: no limit on the sequence length. */
  get contextLength(): number { return Infinity; }

  private get stateKind(): string { return `${this.config.model_type} state`; }

  /**
   * A zero decoding state for `batch` rows (maxLength is not needed: the state does not grow);
   * `history` > 0 keeps the states of the last `history` positions so that truncate() can roll
   * back (speculative decoding), at one position per model step.
   */
  newState(batch: number, _maxLength = Infinity, opts: { history?: number } = {}): RecurrentState {
    const per = this.layerStateShapes();
    return new RecurrentState(this.stateKind, this.backbone.layers.flatMap(() => per), batch, opts.history ?? 0);
  }

  /**
   * Hidden states after the final norm (B, T, D). With a state, continue from it and advance it
   * by T; with `padLeft`, row b's positions before padLeft[b] (counted from the state's start)
   * are padding: they leave the row's state and outputs as if they were not there.
   */
  hidden(ids: Tensor, state: DecodeState | null = null, opts: ForwardOptions = {}): Tensor {
    const who = this.constructor.name;
    if (ids.dtype !== 'i32' || ids.ndim !== 2) throw new ShapeError(who, `input ids must be an i32 tensor (B, T), got ${ids.dtype} ${fmtShape(ids.shape)}`);
    const per = this.layerStateShapes().length, layers = this.backbone.layers;
    if (state && !(state instanceof RecurrentState && state.kind === this.stateKind && state.tensors.length === layers.length * per)) {
      throw new DecodeStateError(`${who}: the decoding state was not made by this model (newState)`);
    }
    const [B, Tn] = ids.shape;
    if (state && state.batch !== B) throw new ShapeError(who, `state batch ${state.batch} differs from input batch ${B}`);
    if (opts.padLeft && opts.padLeft.length !== B) throw new ShapeError(who, `padLeft has ${opts.padLeft.length} entries for a batch of ${B}`);
    if (state && state.wantsSnapshots && Tn > 1) {
      // One position at a time, so that truncate() can return to any of them.
      return T.concat(Array.from({ length: Tn }, (_, t) => this.hidden(T.contiguous(T.slice(ids, 1, t, t + 1)), state, opts)), 1);
    }
    const start = state ? state.length : 0;
    const keep = paddingMask(B, Tn, start, opts.padLeft);
    let h = this.backbone.embeddings.forward(ids);
    layers.forEach((layer, i) => {
      h = layer.forward(h, state ? Array.from({ length: per }, (_, j) => state.rows(i * per + j)) : null, keep);
    });
    if (state) {
      state.length += Tn;
      state.snapshot();
    }
    return this.backbone.norm_f.forward(h);
  }

  project(h: Tensor): Tensor {
    return this.lm_head ? this.lm_head.forward(h) : T.linear(h, this.backbone.embeddings.weight);
  }
}

/** (B, T, 1): 0 at the padding positions start + t < padLeft[b], 1 elsewhere; null when none is padding. */
function paddingMask(B: number, Tn: number, start: number, padLeft?: number[]): Tensor | null {
  if (!padLeft || padLeft.every((p) => p <= start)) return null;
  const m = new Float32Array(B * Tn);
  padLeft.forEach((p, b) => { for (let t = 0; t < Tn; t++) m[b * Tn + t] = start + t < p ? 0 : 1; });
  return T.tensor(m, [B, Tn, 1]);
}
