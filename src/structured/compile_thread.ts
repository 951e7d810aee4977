// The compile worker thread (see compile_worker.ts): compiles one constraint per message and posts
// the grammar back as plain arrays (Grammar.toData), or the error's name, message and fields.
import { parentPort } from 'node:worker_threads';
import { compileConstraint, type Constraint } from './constraint.js';
import { compileJsonSchema, type JsonSchema, type SchemaOptions } from './schema.js';
import type { Grammar } from './grammar.js';
import { StructuredError } from './errors.js';

/** A schema travels as JSON text: posting the text is cheap, cloning a big schema object is not (60 ms for 30,000 consts). */
export type CompileTask = { kind: 'schema'; json: string; options: SchemaOptions } | { kind: 'constraint'; constraint: Constraint };

parentPort!.on('message', ({ id, task }: { id: number; task: CompileTask }) => {
  let g: Grammar;
  try {
    let schema: JsonSchema | undefined;
    if (task.kind === 'schema') {
      try { schema = JSON.parse(task.json) as JsonSchema; } catch (e) { throw new StructuredError(`the schema is not valid JSON (${(e as Error).message.replace(/,? ?".*$/s, '')})`); }
    }
    g = schema !== undefined ? compileJsonSchema(schema, (task as { options: SchemaOptions }).options) : compileConstraint((task as { constraint: Constraint }).constraint);
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
