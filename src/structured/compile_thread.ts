// The compile worker thread (see compile_worker.ts): compiles one constraint per message and posts
// the grammar back as plain arrays (Grammar.toData), or the error's name, message and fields.
import { parentPort } from 'node:worker_threads';
import { compileTask, type CompileTask } from './constraint.js';
import type { Grammar } from './grammar.js';

parentPort!.on('message', ({ id, task }: { id: number; task: CompileTask }) => {
  let g: Grammar;
  try {
    g = compileTask(task);
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    const fields: Record<string, unknown> = {};
    for (const k of ['keyword', 'pointer', 'pattern', 'offset', 'where', 'what', 'limit'] as const) {
      const v = (err as unknown as Record<string, unknown>)[k];
      if (typeof v === 'string' || typeof v === 'number') fields[k] = v;
    }
    parentPort!.postMessage({ id, ok: false, name: err.name, message: err.message, fields });
    return;
  }
  let data;
  try { data = g.toData(); } catch {
    // Lazily built rules (members in any order, 'schema' mode) cannot travel: the caller
    // compiles again on its own thread, knowing it finishes within the budget.
    parentPort!.postMessage({ id, ok: true, lazy: true });
    return;
  }
  parentPort!.postMessage({ id, ok: true, data }, [data.prog.buffer, data.minRest.buffer, data.minLen.buffer, data.classes.buffer, data.altStart.buffer, data.altFlat.buffer] as ArrayBuffer[]);
});
