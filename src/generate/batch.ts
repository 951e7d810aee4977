// Continuous batching: requests join and leave one running batch, so that concurrent requests
// share each model call (one pass over the weights for every running sequence, instead of one
// pass each). A new request is prefilled on its own, then its decoding state is appended to the
// batch's (DecodeState.append), right-aligned with the rows already there: every row ends at the
// same position, and a row's earlier positions are left padding (for attention: masked, with
// per-row RoPE positions — the `padLeft` mechanism of batched generate()). Finished rows are
// removed by moving the last row into their place (DecodeState.select); when a KV cache is full,
// all rows drop the padding they share (DecodeState.dropLeading). Nothing here knows the family.
//
// A request alone in the batch computes exactly what Generation computes (same prefill, no
// padding, same kernels); requests that overlap in time see logits that may differ from a solo
// run in the last bits (a different matmul shape), as in any batching server.
import * as T from '../tensor/ops.js';
import { scope } from '../tensor/storage.js';
import { noGrad } from '../tensor/autograd.js';
import { Generator } from '../tensor/random.js';
import type { CausalLM, DecodeState } from '../models/causal.js';
import { Sequence, guideRow, logNormalisers, logSumExp, prepareGuidance, prepareRequest, resultOf, rowsOf } from './generate.js';
import type { GenerateOptions, GenerationResult, PreparedGuidance } from './generate.js';

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
  /**
   * `rowCount`: rows the request takes in the batch (one per sequence, two with classifier-free
   * guidance: its negative prompt's).
   */
  constructor(readonly prompts: number[][], readonly maxLen: number, readonly opts: GenerateOptions, seqs: Sequence[], readonly guide: PreparedGuidance | null, readonly rowCount: number) {
    this.sequences = seqs;
    this.g = new Generator(opts.seed ?? 0);
  }
  get done(): boolean { return this.state === 'finished' || this.state === 'cancelled'; }
  result(): GenerationResult { return resultOf(this.sequences, this.opts, this); }
}

interface Row {
  req: BatchedRequest;
  seq: Sequence;
  /** Leading positions of this row that are padding. */
  pad: number;
  /** Logits of the row's next token. */
  logits: Float32Array;
  /** The token chosen this step. */
  next: number;
  /** log Σ exp(logits), when the request asks for logprobs (or guides). */
  lse?: number;
  /** Classifier-free guidance: a sequence's row points to the row of its negative prompt, which points back (`of`) and is fed the same tokens. */
  neg?: Row;
  of?: Row;
}

export class DecodeBatch {
  private state: DecodeState | null = null;
  private rows: Row[] = [];
  private readonly pending: BatchedRequest[] = [];
  /** Model calls made (prefills and decode steps), and moves of the rows' positions (for tests and stats). */
  calls = 0;
  shifts = { right: 0, left: 0 };

  /**
   * `maxRows`: sequences decoded together at most (requests wait until their rows fit);
   * `maxLength`: positions of the shared state (default: the model's context).
   */
  constructor(readonly model: CausalLM, readonly maxRows = 8, readonly maxLength = model.contextLength) {}

  /** Queue a request (checked now: bad prompts or options throw here). */
  add(prompts: number[] | number[][], opts: GenerateOptions = {}): BatchedRequest {
    return this.enqueue(this.create(prompts, opts));
  }

  /** A checked request, not yet queued (enqueue it when it may start). */
  create(prompts: number[] | number[][], opts: GenerateOptions = {}): BatchedRequest {
    const p = this.plan(prompts, opts);
    if (p.rows > this.maxRows) throw new RangeError(`generate: ${p.batch.length} sequences${p.guide ? ' and their guidance rows' : ''} exceed the batch's ${this.maxRows} rows`);
    if (p.positions > this.maxLength) throw new RangeError(`generate: ${p.positions - p.maxNew} prompt tokens + ${p.maxNew} new exceed the batch cache of ${this.maxLength} positions`);
    return this.request(p, opts);
  }

  /** As create(), or null when the request could never run in this batch (too many sequences or positions). */
  tryCreate(prompts: number[] | number[][], opts: GenerateOptions = {}): BatchedRequest | null {
    const p = this.plan(prompts, opts);
    return p.rows > this.maxRows || p.positions > this.maxLength ? null : this.request(p, opts);
  }

  /**
   * A request's prompts and options checked (bad ones throw), with the rows it takes (one per
   * sequence, two with classifier-free guidance: its negative prompt's) and the positions it needs.
   */
  private plan(prompts: number[] | number[][], opts: GenerateOptions) {
    const r = prepareRequest(this.model, prompts, opts);
    const guide = prepareGuidance(this.model, r.batch, r.maxNew, opts);
    return { ...r, guide, rows: r.batch.length * (guide ? 2 : 1), positions: Math.max(r.maxLen, guide?.maxLen ?? 0) + r.maxNew };
  }

  /** The request of a plan that fits (its sequences' processors learn their prompts now). */
  private request(p: ReturnType<DecodeBatch['plan']>, opts: GenerateOptions): BatchedRequest {
    return new BatchedRequest(p.batch, p.maxLen, opts, p.batch.map((q, b) => new Sequence(b, q, opts, p.stopIds, p.maxNew)), p.guide, p.rows);
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
    if (next && this.rows.length + next.rowCount <= this.maxRows) {
      this.pending.shift();
      this.prefill(next);
      return true;
    }
    if (this.rows.length === 0) return this.pending.length > 0;
    this.decode();
    return this.busy;
  }

  private ensureState(): DecodeState {
    if (!this.state) {
      this.state = this.model.newState(this.maxRows, this.maxLength);
      this.state.select([]);
    }
    return this.state;
  }

  private prefill(req: BatchedRequest): void {
    const t0 = performance.now();
    req.state = 'running';
    const n = req.prompts.length, gd = req.guide;
    const state = this.ensureState();
    if (this.rows.length === 0) state.truncate(0);
    // The prompts, then (with guidance) the negative prompts, each prefilled as Generation does.
    const own = this.prefillRows(req, req.prompts, req.maxLen, req.opts.logprobs || !!gd);
    req.sequences.forEach((seq, b) => this.rows.push({ req, seq, pad: own.pad[b], logits: own.logits[b], next: 0, lse: own.lse?.[b] }));
    if (gd) {
      const neg = this.prefillRows(req, gd.batch, gd.maxLen, true);
      const rows = this.rows.slice(this.rows.length - n);
      rows.forEach((r, b) => {
        r.neg = { req, seq: r.seq, pad: neg.pad[b], logits: neg.logits[b], next: 0, lse: neg.lse![b], of: r };
        this.rows.push(r.neg);
      });
      this.guideRows(rows);
    }
    req.prefillMs = performance.now() - t0;
    if (req.sequences.every((q) => q.maxNew <= 0)) { for (const q of req.sequences) q.done = true; this.removeFinished(); }
  }

  /** Prefill `prompts` (left-padded to P) and append their positions to the batch's state, right-aligned; each row's padding and last logits. */
  private prefillRows(req: BatchedRequest, prompts: number[][], P: number, wantLse: boolean): { pad: number[]; logits: Float32Array[]; lse: Float32Array | null } {
    const { model } = this, state = this.state!;
    const V = model.config.vocab_size, n = prompts.length;
    const padIn = prompts.map((p) => P - p.length);
    let lse: Float32Array | null = null;
    const logits = noGrad(() => scope(() => {
      const tmp = model.newState(n, P);
      try {
        const ids = T.tensor(prompts.map((p, b) => [...new Array(padIn[b]).fill(0), ...p]), [n, P], 'i32');
        const lg = T.contiguous(model.forward(ids, tmp, { padLeft: padIn, lastOnly: true }));
        const out = rowsOf(lg, n, V);
        lse = wantLse ? logNormalisers(lg, n, V) : null;
        // Right-aligned: rows already here get d more positions of padding.
        const d = Math.max(0, P - state.length);
        if (d > 0 && this.rows.length > 0 && state.length > 0) this.shifts.right++;
        state.append(tmp);
        for (const r of this.rows) r.pad += d;
        return out;
      } finally {
        tmp.dispose();
      }
    }));
    this.calls++;
    return { pad: padIn.map((p) => state.length - P + p), logits, lse };
  }

  /**
   * Classifier-free guidance of these sequence rows by their negative rows (as Generation does):
   * each guided row's logits become the guided scores; its lse is kept only for logprobs.
   */
  private guideRows(rows: Row[]): void {
    for (const r of rows) {
      const gd = r.req.guide!, q = r.seq, u = r.neg!;
      if (!q.done && !(gd.when && !gd.when(q.ids))) {
        guideRow(r.logits, u.logits, r.lse!, u.lse!, gd.scale);
        if (r.req.opts.logprobs) r.lse = logSumExp(r.logits);
      }
      if (!r.req.opts.logprobs) r.lse = undefined;
    }
  }

  /** Drop the padding every row has (when the state is full). */
  private shiftLeft(): void {
    const m = Math.min(...this.rows.map((r) => r.pad));
    if (m <= 0) throw new RangeError('DecodeBatch: a sequence reached the end of the cache');
    this.shifts.left++;
    this.state!.dropLeading(m);
    for (const r of this.rows) r.pad -= m;
  }

  private decode(): void {
    const t0 = performance.now();
    const touched = new Set<BatchedRequest>();
    // A request's sequences draw from its generator in their own order (as in Generation),
    // whatever rows they have moved to.
    const order = [...this.rows].sort((x, y) => x.req.id - y.req.id || x.seq.index - y.seq.index);
    for (const r of order) {
      touched.add(r.req);
      if (r.req.state !== 'running' || r.of) continue;
      try {
        r.next = r.seq.take(r.logits, r.req.g, r.lse);
      } catch (e) {
        r.req.error = e;
        r.req.state = 'cancelled';
        for (const q of r.req.sequences) if (!q.done) q.close(false);
      }
    }
    // A negative prompt's row is fed its sequence's token.
    for (const r of this.rows) if (r.of) r.next = r.of.next;
    // Finished rows leave the batch; the others get their chosen token fed back.
    this.removeFinished();
    if (this.rows.length > 0) {
      const state = this.state!;
      if (state.length >= state.maxLength) this.shiftLeft();
      const R = this.rows.length, V = this.model.config.vocab_size;
      const padLeft = this.rows.map((r) => r.pad);
      const ids = this.rows.map((r) => [r.next]);
      const wantLse = this.rows.some((r) => r.req.opts.logprobs || r.req.guide);
      noGrad(() => scope(() => {
        const lg = T.contiguous(this.model.forward(T.tensor(ids, [R, 1], 'i32'), state, { padLeft }));
        rowsOf(lg, R, V, this.rows.map((r) => r.logits));
        const lse = wantLse ? logNormalisers(lg, R, V) : null;
        this.rows.forEach((r, k) => { r.lse = lse && (r.req.opts.logprobs || r.req.guide) ? lse[k] : undefined; });
      }));
      this.calls++;
      const guided = this.rows.filter((r) => r.neg);
      if (guided.length) this.guideRows(guided);
    }
    const ms = performance.now() - t0;
    for (const req of touched) req.decodeMs += ms;
  }

  /** Remove rows whose sequence is done (the last row moves into each hole); end finished requests. */
  private removeFinished(): void {
    const ended = new Set<BatchedRequest>();
    const order = this.rows.map((_, i) => i);
    for (let i = 0; i < this.rows.length;) {
      const r = this.rows[i];
      if (!r.seq.done && r.req.state !== 'cancelled') { i++; continue; }
      ended.add(r.req);
      const last = this.rows.length - 1;
      this.rows[i] = this.rows[last];
      order[i] = order[last];
      this.rows.pop();
      order.pop();
    }
    if (this.state && order.length < this.state.batch) this.state.select(order);
    const live = new Set(this.rows.map((r) => r.req));
    for (const req of ended) {
      if (live.has(req) || req.state !== 'running') continue;
      req.state = 'finished';
      for (const q of req.sequences) q.close();
    }
    if (this.rows.length === 0) this.state?.truncate(0);
  }

  dispose(): void {
    for (const r of [...this.pending]) this.cancel(r);
    for (const r of [...new Set(this.rows.map((x) => x.req))]) this.cancel(r);
    this.state?.dispose();
    this.state = null;
  }
}
