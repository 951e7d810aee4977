// The decode loop of the server. Requests become jobs; at most `maxActive` run at once and the
// rest wait in a FIFO queue (full queue: the caller answers 429). Running jobs are advanced
// round-robin, one model call each per turn, and the loop yields to the event loop between turns
// so that sockets are read and written while generating: a long generation cannot starve a
// short one, and a client that goes away has its job cancelled at the next turn.

export interface Job {
  /** Do one unit of work (one model call); false when the job has finished. */
  step(): boolean;
  /** Free the job's resources; called once, whether it finished, failed or was cancelled. */
  dispose(): void;
}

interface Entry {
  job: Job;
  resolve: () => void;
  reject: (e: unknown) => void;
  cancelled: boolean;
  state: 'queued' | 'active' | 'done';
}

export class QueueFullError extends Error {
  constructor(readonly queued: number) {
    super(`the server is busy: ${queued} requests are already waiting; retry later`);
    this.name = 'QueueFullError';
  }
}

export class Scheduler {
  private readonly active: Entry[] = [];
  private readonly queue: Entry[] = [];
  private running = false;
  private closed = false;
  /** Turns taken (one model call per active job each), for tests and /health. */
  turns = 0;

  constructor(readonly maxActive = 4, readonly maxQueue = 64) {}

  get activeCount(): number { return this.active.length; }
  get queuedCount(): number { return this.queue.length; }

  /**
   * Run a job to completion. Resolves when it has finished (or was cancelled), rejects with the
   * error a step threw. `signal` cancels it: a queued job never starts, a running one stops at
   * its next turn.
   */
  run(job: Job, signal?: AbortSignal): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the server is shutting down'));
    if (this.active.length >= this.maxActive && this.queue.length >= this.maxQueue) return Promise.reject(new QueueFullError(this.queue.length));
    return new Promise<void>((resolve, reject) => {
      const e: Entry = { job, resolve, reject, cancelled: false, state: 'queued' };
      if (signal) {
        if (signal.aborted) e.cancelled = true;
        else signal.addEventListener('abort', () => { e.cancelled = true; this.kick(); }, { once: true });
      }
      this.queue.push(e);
      this.kick();
    });
  }

  /** Cancel everything (server shutdown). */
  close(): void {
    this.closed = true;
    for (const e of [...this.queue, ...this.active]) e.cancelled = true;
    this.kick();
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    setImmediate(() => this.loop());
  }

  private finish(e: Entry, err?: unknown): void {
    if (e.state === 'done') return;
    e.state = 'done';
    try { e.job.dispose(); } catch { /* already reported through the step */ }
    if (err === undefined) e.resolve(); else e.reject(err);
  }

  private loop(): void {
    // Drop cancelled jobs, admit queued ones.
    for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i].cancelled) this.finish(this.queue.splice(i, 1)[0]);
    for (let i = this.active.length - 1; i >= 0; i--) if (this.active[i].cancelled) this.finish(this.active.splice(i, 1)[0]);
    while (this.active.length < this.maxActive && this.queue.length) {
      const e = this.queue.shift()!;
      e.state = 'active';
      this.active.push(e);
    }
    if (this.active.length === 0) { this.running = false; return; }
    // One turn: every active job advances by one model call.
    this.turns++;
    for (const e of [...this.active]) {
      if (e.cancelled) continue;
      let more: boolean;
      try {
        more = e.job.step();
      } catch (err) {
        this.active.splice(this.active.indexOf(e), 1);
        this.finish(e, err);
        continue;
      }
      if (!more) {
        this.active.splice(this.active.indexOf(e), 1);
        this.finish(e);
      }
    }
    setImmediate(() => this.loop());
  }
}
