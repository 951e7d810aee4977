// The tokenizer worker thread (see tokenize.ts): builds the model's tokenizer once from where it
// came from, then per message encodes texts, or renders chat messages with a template and encodes
// the result, and posts the ids back as Int32Arrays.
import { parentPort, workerData } from 'node:worker_threads';
import { loadTokenizer } from '../tokenizers/load.js';
import { tokenizerFromBytes } from '../tokenizers/from_bytes.js';
import { applyChatTemplate } from '../tokenizers/chat.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import type { TokenizerSource } from '../io/model.js';
import type { ThreadJob, ThreadReply } from './tokenize.js';

const source = workerData as TokenizerSource;
let tok: Tokenizer | null = null;
let loadError: Error | null = null;
try {
  tok = 'bytes' in source ? tokenizerFromBytes(source.bytes, source.path) : loadTokenizer(source.path);
} catch (e) {
  loadError = e instanceof Error ? e : new Error(String(e));
}

function run(job: ThreadJob): ThreadReply {
  if (!tok) return { id: job.id, ok: false, kind: 'error', message: `the tokenizer cannot be built on its thread: ${loadError!.message}` };
  let texts: string[];
  if (job.kind === 'encode') texts = job.texts;
  else {
    let text: string;
    try {
      text = applyChatTemplate(job.messages, job.template);
    } catch (e) {
      return { id: job.id, ok: false, kind: 'render', message: (e as Error).message };
    }
    const bytes = Buffer.byteLength(text);
    if (bytes > job.maxBytes) return { id: job.id, ok: false, kind: 'bytes', message: `${bytes} bytes`, bytes };
    texts = [text];
  }
  try {
    return { id: job.id, ok: true, ids: texts.map((t) => Int32Array.from(tok!.encode(t, job.opts))) };
  } catch (e) {
    return { id: job.id, ok: false, kind: 'error', message: (e as Error).message };
  }
}

parentPort!.on('message', (job: ThreadJob) => {
  const r = run(job);
  parentPort!.postMessage(r, r.ok ? r.ids.map((a) => a.buffer as ArrayBuffer) : []);
});
