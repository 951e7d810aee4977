// One constraint (JSON Schema, regex, GBNF grammar or a list of choices) compiled to a grammar.
// Kept apart from api.ts (which pulls in generation) so that a compile thread loads only the compilers.
import { GrammarBuilder, type Grammar } from './grammar.js';
import { compileJsonSchema, type JsonSchema, type SchemaOptions } from './schema.js';
import { compileRegex } from './regex.js';
import { parseGbnf } from './gbnf.js';
import { StructuredError } from './errors.js';

/** Exactly one of these. */
export interface Constraint {
  schema?: JsonSchema;
  regex?: string;
  /** GBNF text (llama.cpp syntax), start rule "root". */
  grammar?: string;
  /** One of these strings, verbatim. */
  choices?: string[];
  /**
   * Options of the schema compiler. Generation defaults to additionalProperties 'declared' (an
   * object without additionalProperties gets only its declared properties, as XGrammar's strict
   * mode); pass additionalProperties: 'allow' for extra keys where JSON Schema allows them.
   */
  schemaOptions?: SchemaOptions;
}

/** The grammar of a constraint. */
export function compileConstraint(c: Constraint): Grammar {
  const given = (['schema', 'regex', 'grammar', 'choices'] as const).filter((k) => c[k] !== undefined);
  if (given.length !== 1) throw new StructuredError(`give exactly one of schema, regex, grammar, choices (got ${given.length ? given.join(', ') : 'none'})`);
  if (c.schema !== undefined) return compileJsonSchema(c.schema, { additionalProperties: 'declared', ...c.schemaOptions });
  if (c.regex !== undefined) return compileRegex(c.regex);
  if (c.grammar !== undefined) return parseGbnf(c.grammar);
  const choices = c.choices!;
  if (choices.length === 0) throw new StructuredError('choices: the list is empty');
  const b = new GrammarBuilder();
  return b.build(b.rule('root', choices.map((s) => b.lit(s))));
}

/** A schema travels as JSON text: posting the text is cheap, cloning a big schema object is not (60 ms for 30,000 consts). */
export type CompileTask = { kind: 'schema'; json: string; options: SchemaOptions } | { kind: 'constraint'; constraint: Constraint };

/** The grammar of a compile task (see compile_worker.ts: run on its thread, or here for lazy grammars). */
export function compileTask(task: CompileTask): Grammar {
  if (task.kind === 'constraint') return compileConstraint(task.constraint);
  let schema: JsonSchema;
  try { schema = JSON.parse(task.json) as JsonSchema; } catch (e) { throw new StructuredError(`the schema is not valid JSON (${(e as Error).message.replace(/,? ?".*$/s, '')})`); }
  return compileJsonSchema(schema, task.options);
}
