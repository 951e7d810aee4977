// Fixed-length training windows over a token sequence (a token file on disk, or token ids in
// memory, as in a page), visited in a seeded shuffled order; Node-free, so tslm/browser trains
// with the same batches as `tslm train`.
import { Generator } from '../tensor/random.js';

export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataError';
  }
}

/** True when the first 4 KiB of `buf` look binary (a NUL byte, or over 10% control characters). */
export function looksBinary(buf: Uint8Array): boolean {
  const n = Math.min(buf.length, 4096);
  let bad = 0;
  for (let i = 0; i < n; i++) { const c = buf[i]; if (c === 0) return true; if (c < 9 || (c > 13 && c < 32)) bad++; }
  return bad > n * 0.1;
}

/** Token ids read in windows: an int32 token file (TokenFile) or ids in memory (MemoryTokens). */
export interface TokenSource {
  /** A name for messages. */
  readonly file: string;
  readonly length: number;
  read(start: number, count: number): Int32Array;
}

/** Token ids held in memory. */
export class MemoryTokens implements TokenSource {
  constructor(readonly ids: Int32Array, readonly file = '<memory>') {}
  get length(): number { return this.ids.length; }
  read(start: number, count: number): Int32Array { return this.ids.slice(start, start + count); }
}

export interface BatcherState { epoch: number; index: number; seed: number }

/**
 * Fixed-length windows of seqLen+1 tokens (inputs and shifted targets) over the given chunks
 * of a token file (chunk c starts at token c·seqLen), visited in a seeded shuffled order that
 * changes each epoch. Its state (epoch, index) makes a resumed run read exactly the same batches.
 */
export class Batcher {
  private perm: Uint32Array;
  epoch = 0;
  index = 0;
  readonly count: number;
  constructor(readonly data: TokenSource, readonly seqLen: number, readonly batchSize: number, readonly chunks: Uint32Array, readonly seed: number, readonly shuffle = true) {
    this.count = chunks.length;
    if (this.count < 1) throw new DataError(`${data.file}: too few tokens for one sequence of ${seqLen + 1}`);
    this.perm = this.permutation(0);
  }
  private permutation(epoch: number): Uint32Array {
    const p = new Uint32Array(this.count);
    for (let i = 0; i < p.length; i++) p[i] = i;
    if (!this.shuffle) return p;
    return new Generator(this.seed * 1000003 + epoch).shuffle(p);
  }
  /** The next batch: batchSize rows of seqLen+1 token ids. */
  next(): Int32Array {
    const L = this.seqLen + 1, out = new Int32Array(this.batchSize * L);
    for (let b = 0; b < this.batchSize; b++) {
      if (this.index >= this.count) { this.epoch++; this.index = 0; this.perm = this.permutation(this.epoch); }
      const chunk = this.chunks[this.perm[this.index++]];
      out.set(this.data.read(chunk * this.seqLen, L), b * L);
    }
    return out;
  }
  state(): BatcherState {
    return { epoch: this.epoch, index: this.index, seed: this.seed };
  }
  restore(s: BatcherState): void {
    if (s.seed !== this.seed) throw new DataError(`data-loader state has seed ${s.seed}, this run uses ${this.seed}`);
    this.epoch = s.epoch;
    this.index = s.index;
    this.perm = this.permutation(s.epoch);
  }
}

/**
 * Split a token file's chunks into training and validation batchers. Validation takes every
 * k-th chunk (k = 1/valFraction), so it samples the whole corpus rather than its last file.
 */
export function splitBatchers(data: TokenSource, seqLen: number, batchSize: number, opts: { valFraction?: number; seed?: number } = {}): { train: Batcher; val: Batcher } {
  const chunks = Math.floor((data.length - 1) / seqLen);
  if (chunks < 2) throw new DataError(`${data.file}: ${data.length} tokens are too few for sequences of ${seqLen} (need at least ${2 * seqLen + 1})`);
  const stride = Math.max(2, Math.round(1 / Math.min(0.5, Math.max(opts.valFraction ?? 0.05, 1e-6))));
  const val: number[] = [], train: number[] = [];
  for (let c = 0; c < chunks; c++) (c % stride === stride - 1 ? val : train).push(c);
  const seed = opts.seed ?? 0;
  return {
    train: new Batcher(data, seqLen, batchSize, Uint32Array.from(train), seed),
    val: new Batcher(data, seqLen, batchSize, Uint32Array.from(val), seed, false),
  };
}
