// Continuous batching: requests join and leave one running batch, so that concurrent requests
// share each model call (one pass over the weights for every running sequence, instead of one
// pass each). A new request is prefilled on its own, then its keys/values are copied into the
// batch's KV cache, right-aligned with the rows already there: every row ends at the same cache
// position, and a row's earlier columns are left padding (masked, with per-row RoPE positions:
// the `padLeft` mechanism of batched generate()). Finished rows are removed by moving the last
// row into their place; when the cache is full, all rows shift left by the padding they share.
//
// A request alone in the batch computes exactly what Generation computes (same prefill, no
// padding, same kernels); requests that overlap in time see logits that may differ from a solo
// run in the last bits (a different matmul shape), as in any batching server.
import * as T from '../tensor/ops.js';
import { scope } from '../tensor/storage.js';
import { noGrad } from '../tensor/autograd.js';
import { Generator } from '../tensor/random.js';
import { KVCache } from '../models/llama.js';
import type { LlamaForCausalLM } from '../models/llama.js';
import { Sequence, prepareRequest, resultOf, rowsOf } from './generate.js';
import type { GenerateOptions, GenerationResult } from './generate.js';

/** One request in a DecodeBatch: n sequences sharing a seeded generator (as in Generation). */
let nextRequestId = 0;

export class BatchedRequest {
  readonly id = nextRequestId++;
  readonly sequences: Sequence[];
  readonly g: Generator;
  state: 'pending' | 'running' | 'finished' | 'cancelled' = 'pending';
  prefillMs = 0;
  decodeMs = 0;
  /** What a processor of this request threw (the request is then cancelled; others go on). */
  error: unknown = undefined;
  constructor(readonly prompts: number[][], readonly maxLen: number, readonly opts: GenerateOptions, seqs: Sequence[]) {
    this.sequences = seqs;
    this.g = new Generator(opts.seed ?? 0);
  }
  get done(): boolean { return this.state === 'finished' || this.state === 'cancelled'; }
  result(): GenerationResult { return resultOf(this.sequences, this.opts, this); }
}

interface Row {
  req: BatchedRequest;
  seq: Sequence;
  /** Leading cache columns of this row that are padding. */
  pad: number;
  /** Logits of the row's next token. */
  logits: Float32Array;
  /** The token chosen this step. */
  next: number;
}

export class DecodeBatch {
  private cache: KVCache | null = null;
  private rows: Row[] = [];
  /** Cache columns in use (every row ends here). */
  private length = 0;
  private readonly pending: BatchedRequest[] = [];
  /** Model calls made (prefills and decode steps), and cache moves (for tests and stats). */
  calls = 0;
  shifts = { right: 0, left: 0 };

  /**
   * `maxRows`: sequences decoded together at most (requests wait until their rows fit);
   * `maxLength`: cache columns (default: the model's context).
   */
  constructor(readonly model: LlamaForCausalLM, readonly maxRows = 8, readonly maxLength = model.config.max_position_embeddings) {}

  /** Queue a request (checked now: bad prompts or options throw here). */
  add(prompts: number[] | number[][], opts: GenerateOptions = {}): BatchedRequest {
    return this.enqueue(this.create(prompts, opts));
  }

  /** A checked request, not yet queued (enqueue it when it may start). */
  create(prompts: number[] | number[][], opts: GenerateOptions = {}): BatchedRequest {
    const req = this.tryCreate(prompts, opts);
    if (!req) {
      const { batch, maxLen, maxNew } = prepareRequest(this.model, prompts, opts);
      if (batch.length > this.maxRows) throw new RangeError(`generate: ${batch.length} sequences exceed the batch's ${this.maxRows} rows`);
      throw new RangeError(`generate: ${maxLen} prompt tokens + ${maxNew} new exceed the batch cache of ${this.maxLength} positions`);
    }
    return req;
  }

  /** As create(), or null when the request could never run in this batch (too many sequences or positions). */
  tryCreate(prompts: number[] | number[][], opts: GenerateOptions = {}): BatchedRequest | null {
    const { batch, maxLen, maxNew, stopIds } = prepareRequest(this.model, prompts, opts);
    if (batch.length > this.maxRows || maxLen + maxNew > this.maxLength) return null;
    return new BatchedRequest(batch, maxLen, opts, batch.map((p, b) => new Sequence(b, p, opts, stopIds, maxNew)));
  }

  enqueue(req: BatchedRequest): BatchedRequest {
    if (req.state !== 'pending' || this.pending.includes(req)) throw new Error('DecodeBatch: request already queued or started');
    this.pending.push(req);
    return req;
  }

  /** Stop a request now; its rows are freed. */
  cancel(req: BatchedRequest): void {
    if (req.done) return;
    const i = this.pending.indexOf(req);
    if (i >= 0) this.pending.splice(i, 1);
    req.state = 'cancelled';
    for (const q of req.sequences) if (!q.done) q.close(false);
    this.removeFinished();
  }

  get busy(): boolean { return this.rows.length > 0 || this.pending.length > 0; }
  get runningRows(): number { return this.rows.length; }

  /**
   * One model call: the prefill of the next waiting request that fits, else a token for every
   * running row. False when there is nothing left to do.
   */
  step(): boolean {
    const next = this.pending[0];
    if (next && this.rows.length + next.prompts.length <= this.maxRows) {
      this.pending.shift();
      this.prefill(next);
      return true;
    }
    if (this.rows.length === 0) return this.pending.length > 0;
    this.decode();
    return this.busy;
  }

  private ensureCache(): KVCache {
    if (!this.cache) {
      this.cache = this.model.newCache(this.maxRows, this.maxLength);
      // Padding columns are masked, but a masked NaN would still poison the softmax: start from zeros.
      for (const t of [...this.cache.k, ...this.cache.v]) T.fill_(t, 0);
    }
    return this.cache;
  }

  private prefill(req: BatchedRequest): void {
    const t0 = performance.now();
    req.state = 'running';
    const { model } = this;
    const V = model.config.vocab_size, n = req.prompts.length, P = req.maxLen;
    const padIn = req.prompts.map((p) => P - p.length);
    const cache = this.ensureCache();
    const logits = noGrad(() => scope(() => {
      const tmp = model.newCache(n, P);
      try {
        const ids = T.tensor(req.prompts.map((p, b) => [...new Array(padIn[b]).fill(0), ...p]), [n, P], 'i32');
        const out = rowsOf(T.contiguous(model.forward(ids, tmp, { padLeft: padIn, lastOnly: true })), n, V);
        if (this.rows.length === 0) this.length = 0;
        // Right-align: the batch must reach at least P columns.
        if (P > this.length) this.shiftRows(P - this.length);
        const r0 = this.rows.length, c0 = this.length - P;
        for (let l = 0; l < cache.k.length; l++) {
          T.copyInto(T.slice(T.slice(cache.k[l], 0, r0, r0 + n), 2, c0, this.length), tmp.k[l]);
          T.copyInto(T.slice(T.slice(cache.v[l], 0, r0, r0 + n), 2, c0, this.length), tmp.v[l]);
        }
        return out;
      } finally {
        tmp.dispose();
      }
    }));
    this.calls++;
    req.sequences.forEach((seq, b) => this.rows.push({ req, seq, pad: this.length - P + padIn[b], logits: logits[b], next: 0 }));
    req.prefillMs = performance.now() - t0;
    if (req.sequences.every((q) => q.maxNew <= 0)) { for (const q of req.sequences) q.done = true; this.removeFinished(); }
  }

  /** Move every row's columns right by d (new padding on the left). */
  private shiftRows(d: number): void {
    const cache = this.cache!, R = this.rows.length, L = this.length;
    if (R > 0 && L > 0) {
      this.shifts.right++;
      scope(() => {
        for (const kv of [cache.k, cache.v]) {
          for (const t of kv) {
            const moved = T.clone(T.slice(T.slice(t, 0, 0, R), 2, 0, L));
            T.copyInto(T.slice(T.slice(t, 0, 0, R), 2, d, d + L), moved);
          }
        }
      });
    }
    for (const r of this.rows) r.pad += d;
    this.length = L + d;
  }

  /** Drop the padding every row has (when the cache is full). */
  private shiftLeft(): void {
    const m = Math.min(...this.rows.map((r) => r.pad));
    if (m <= 0) throw new RangeError('DecodeBatch: a sequence reached the end of the cache');
    this.shifts.left++;
    const cache = this.cache!, R = this.rows.length, L = this.length;
    scope(() => {
      for (const kv of [cache.k, cache.v]) {
        for (const t of kv) {
          const moved = T.clone(T.slice(T.slice(t, 0, 0, R), 2, m, L));
          T.copyInto(T.slice(T.slice(t, 0, 0, R), 2, 0, L - m), moved);
        }
      }
    });
    for (const r of this.rows) r.pad -= m;
    this.length = L - m;
  }

  private decode(): void {
    const t0 = performance.now();
    const touched = new Set<BatchedRequest>();
    // A request's sequences draw from its generator in their own order (as in Generation),
    // whatever rows they have moved to.
    const order = [...this.rows].sort((x, y) => x.req.id - y.req.id || x.seq.index - y.seq.index);
    for (const r of order) {
      touched.add(r.req);
      if (r.req.state !== 'running') continue;
      try {
        r.next = r.seq.take(r.logits, r.req.g);
      } catch (e) {
        r.req.error = e;
        r.req.state = 'cancelled';
        for (const q of r.req.sequences) if (!q.done) q.close(false);
      }
    }
    // Finished rows leave the batch; the others get their chosen token fed back.
    this.removeFinished();
    if (this.rows.length > 0) {
      if (this.length >= this.maxLength) this.shiftLeft();
      const cache = this.cache!, R = this.rows.length, V = this.model.config.vocab_size;
      const view = cacheView(cache, R, this.length);
      const padLeft = this.rows.map((r) => r.pad);
      const ids = this.rows.map((r) => [r.next]);
      noGrad(() => scope(() => { rowsOf(this.model.forward(T.tensor(ids, [R, 1], 'i32'), view, { padLeft }), R, V, this.rows.map((r) => r.logits)); }));
      this.calls++;
      this.length = view.length;
    }
    const ms = performance.now() - t0;
    for (const req of touched) req.decodeMs += ms;
  }

  /** Remove rows whose sequence is done (the last row moves into each hole); end finished requests. */
  private removeFinished(): void {
    const cache = this.cache;
    const ended = new Set<BatchedRequest>();
    for (let i = 0; i < this.rows.length;) {
      const r = this.rows[i];
      if (!r.seq.done && r.req.state !== 'cancelled') { i++; continue; }
      ended.add(r.req);
      const last = this.rows.length - 1;
      if (i !== last && cache && this.length > 0) {
        scope(() => {
          for (const kv of [cache.k, cache.v]) {
            for (const t of kv) T.copyInto(T.slice(T.slice(t, 0, i, i + 1), 2, 0, this.length), T.slice(T.slice(t, 0, last, last + 1), 2, 0, this.length));
          }
        });
      }
      this.rows[i] = this.rows[last];
      this.rows.pop();
    }
    const live = new Set(this.rows.map((r) => r.req));
    for (const req of ended) {
      if (live.has(req) || req.state !== 'running') continue;
      req.state = 'finished';
      for (const q of req.sequences) q.close();
    }
    if (this.rows.length === 0) this.length = 0;
  }

  dispose(): void {
    for (const r of [...this.pending]) this.cancel(r);
    for (const r of [...new Set(this.rows.map((x) => x.req))]) this.cancel(r);
    this.cache?.dispose();
    this.cache = null;
  }
}

/** The first R rows of a cache, `length` columns filled, as a cache the model can extend. */
function cacheView(cache: KVCache, R: number, length: number): KVCache {
  const view = Object.create(KVCache.prototype) as KVCache;
  Object.assign(view, {
    config: cache.config, batch: R, maxLength: cache.maxLength, length,
    k: cache.k.map((t) => T.slice(t, 0, 0, R)), v: cache.v.map((t) => T.slice(t, 0, 0, R)),
  });
  return view;
}
