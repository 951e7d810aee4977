// Grammar compilation for requests, off the event loop: the schema (as the JSON text the request
// already carried) is compiled on a worker thread of src/structured/compile_worker.ts within a
// time budget (the server's maxSchemaMs); past it, a ComplexityError (a StructuredError: the
// caller answers 400 naming the limit). Other requests go on meanwhile.
import { compileJsonSchemaOffThread } from '../structured/compile_worker.js';
import type { SchemaOptions } from '../structured/schema.js';
import type { Grammar } from '../structured/grammar.js';

export function compileSchemaAsync(schemaJson: string, options: SchemaOptions, budget: { timeoutMs: number }): Promise<Grammar> {
  return compileJsonSchemaOffThread(schemaJson, options, { timeoutMs: budget.timeoutMs });
}
