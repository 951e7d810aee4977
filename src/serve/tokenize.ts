// Tokenising long texts off the event loop: a prompt of a few hundred kilobytes takes a BPE
// tokenizer with long tokens (GPT-2's, LLaMA-3's) a large part of a second, and rendering
// thousands of chat messages through a Jinja template takes as long; every other request of the
// server waits while the loop is busy. Each model gets one worker thread, started on its first
// long input, that holds the same tokenizer (built again from its file, or from the bytes a GGUF's
// vocabulary serialises to) and renders and encodes there. Short inputs are handled in place:
// posting them costs more than encoding them.
import { Worker } from 'node:worker_threads';
import type { Tokenizer, EncodeOptions } from '../tokenizers/tokenizer.js';
import type { ChatMessage, ChatTemplateOptions } from '../tokenizers/chat.js';
import type { TokenizerSource } from '../io/model.js';

/** Inputs (of one request) longer than this many UTF-16 units in all are tokenised on the thread. */
export const OFF_THREAD_CHARS = 4096;
/** Chat requests with more messages than this are rendered and tokenised on the thread. */
export const OFF_THREAD_MESSAGES = 64;

/** What the thread is asked to do. */
export type ThreadJob =
  | { id: number; kind: 'encode'; texts: string[]; opts: EncodeOptions }
  | { id: number; kind: 'chat'; messages: ChatMessage[]; template: ChatTemplateOptions; maxBytes: number; opts: EncodeOptions };
/** What it answers: ids, or why not ('render': the template failed; 'bytes': the rendered text is over maxBytes). */
export type ThreadReply =
  | { id: number; ok: true; ids: Int32Array[] }
  | { id: number; ok: false; kind: 'render' | 'bytes' | 'error'; message: string; bytes?: number };

type JobInput = ThreadJob extends infer J ? (J extends { id: number } ? Omit<J, 'id'> : never) : never;

export class TokenizeError extends Error {
  constructor(message: string, readonly kind: 'timeout' | 'render' | 'bytes' | 'error', readonly bytes = 0) {
    super(message);
    this.name = 'TokenizeError';
  }
}

interface Pending { job: ThreadJob; timeoutMs: number; resolve: (ids: number[][]) => void; reject: (e: Error) => void }

/** One tokenizer on a worker thread; jobs run in order, each within a time budget. */
export class TokenizerThread {
  private worker: Worker | null = null;
  private readonly queue: Pending[] = [];
  private current: Pending | null = null;
  private timer: NodeJS.Timeout | undefined;
  private nextId = 0;
  private closed = false;
  /** Jobs finished on the thread so far (for tests and stats). */
  done = 0;

  constructor(readonly source: TokenizerSource) {}

  /** `tokenizer.encode(text, opts)` of each text, on the thread. */
  encode(texts: string[], opts: EncodeOptions = {}, timeoutMs = 30_000): Promise<number[][]> {
    return this.submit({ kind: 'encode', texts, opts }, timeoutMs);
  }

  /**
   * `tokenizer.encode(applyChatTemplate(messages, template), opts)` on the thread; refused (a
   * TokenizeError of kind 'bytes') without encoding when the rendered text is over `maxBytes`.
   */
  async chat(messages: ChatMessage[], template: ChatTemplateOptions, maxBytes: number, opts: EncodeOptions = {}, timeoutMs = 30_000): Promise<number[]> {
    return (await this.submit({ kind: 'chat', messages, template, maxBytes, opts }, timeoutMs))[0];
  }

  /** Stops the thread; pending jobs fail. */
  async close(): Promise<void> {
    this.closed = true;
    const closed = (): TokenizeError => new TokenizeError('the tokenizer thread is closed', 'error');
    for (const j of this.queue.splice(0)) j.reject(closed());
    this.current?.reject(closed());
    this.current = null;
    clearTimeout(this.timer);
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }

  private submit(input: JobInput, timeoutMs: number): Promise<number[][]> {
    if (this.closed) return Promise.reject(new TokenizeError('the tokenizer thread is closed', 'error'));
    return new Promise((resolve, reject) => {
      this.queue.push({ job: { ...input, id: this.nextId++ } as ThreadJob, timeoutMs, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    if (this.current || this.closed || this.queue.length === 0) return;
    const p = (this.current = this.queue.shift()!);
    const w = this.spawn();
    w.ref();
    this.timer = setTimeout(() => {
      if (this.current !== p) return;
      this.current = null;
      const old = this.worker;
      this.worker = null;
      if (old) void old.terminate();
      p.reject(new TokenizeError(`tokenising took longer than ${p.timeoutMs} ms`, 'timeout'));
      this.pump();
    }, p.timeoutMs);
    w.postMessage(p.job);
  }

  private spawn(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL('./tokenize_thread.js', import.meta.url), { workerData: this.source });
    w.on('message', (r: ThreadReply) => {
      const p = this.current;
      if (!p || p.job.id !== r.id) return;
      this.finish();
      this.done++;
      if (r.ok) p.resolve(r.ids.map((a) => Array.from(a)));
      else p.reject(new TokenizeError(r.message, r.kind, r.bytes ?? 0));
    });
    const fail = (why: string): void => {
      if (this.worker !== w) return;
      this.worker = null;
      const p = this.current;
      if (p) { this.finish(); p.reject(new TokenizeError(why, 'error')); }
    };
    w.on('error', (e) => fail(`the tokenizer thread failed: ${e.message}`));
    w.on('exit', () => fail('the tokenizer thread exited'));
    w.unref();
    return (this.worker = w);
  }

  private finish(): void {
    clearTimeout(this.timer);
    this.current = null;
    this.worker?.unref();
    this.pump();
  }
}

/**
 * Encode texts with `tok`: in place when they are short (or there is no thread), else on `thread`.
 * The results are those of `tok.encode(text, opts)` either way.
 */
export async function encodeTexts(tok: Tokenizer, thread: TokenizerThread | null, texts: string[], opts: EncodeOptions = {}): Promise<number[][]> {
  let chars = 0;
  for (const t of texts) chars += t.length;
  if (!thread || chars <= OFF_THREAD_CHARS) return texts.map((t) => tok.encode(t, opts));
  return thread.encode(texts, opts);
}
