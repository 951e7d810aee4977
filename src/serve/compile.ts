// Grammar compilation for requests, awaited so that one request's schema does not hold up the
// others: the schema's size is checked first (maxSchemaBytes), then it is compiled within a time
// budget (maxSchemaMs); over either budget is a ComplexityError (a StructuredError: the caller
// answers 400 naming the limit).
//
// TEMPORARY: until src/structured/compile_worker.ts (compileJsonSchemaOffThread, compiled in a
// worker thread) is on main, this compiles on the event loop after one turn, so it only bounds
// the budget after the fact; the switch is one import.
import { compileJsonSchema } from '../structured/schema.js';
import type { JsonSchema, SchemaOptions } from '../structured/schema.js';
import type { Grammar } from '../structured/grammar.js';
import { ComplexityError } from '../structured/errors.js';

export async function compileSchemaAsync(schema: JsonSchema, options: SchemaOptions, budget: { timeoutMs: number }): Promise<Grammar> {
  await new Promise((r) => setImmediate(r));
  const t0 = performance.now();
  const g = compileJsonSchema(schema, options);
  const ms = performance.now() - t0;
  if (ms > budget.timeoutMs) throw new ComplexityError('schema compilation time (ms)', budget.timeoutMs, `took ${ms.toFixed(0)} ms; the server's --max-schema-ms`);
  return g;
}
