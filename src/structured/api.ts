// Structured generation API: one constraint (JSON Schema, regex, GBNF grammar or a list of
// choices) compiled to a grammar, matched against the tokenizer's vocabulary, applied as a logit
// processor; tool calls as a schema over tools; and prompt-based extraction (schema and examples in
// the prompt, validate, retry with the error) for remote models that cannot be constrained.
import { parse as parseYaml } from 'yaml';
import { Ajv } from 'ajv';
import addFormatsMod from 'ajv-formats';
import { generate } from '../generate/generate.js';
import type { GenerateOptions, GenerationResult } from '../generate/generate.js';
import type { CausalLM } from '../models/causal.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import type { Grammar } from './grammar.js';
import type { JsonSchema, SchemaOptions } from './schema.js';
import { TokenVocab } from './vocab.js';
import { TokenMatcher } from './matcher.js';
import { ConstraintProcessor } from './processor.js';
import { StructuredError } from './errors.js';

import { compileConstraint, type Constraint } from './constraint.js';

export { compileConstraint };
export type { Constraint };

/** A constraint bound to a tokenizer: the logit processor for generate(). */
export function constraintProcessor(c: Constraint | Grammar, tokenizer: Tokenizer | TokenVocab, opts: { maxNewTokens?: number } = {}): ConstraintProcessor {
  const grammar = 'prog' in c ? (c as Grammar) : compileConstraint(c as Constraint);
  const vocab = tokenizer instanceof TokenVocab ? tokenizer : TokenVocab.fromTokenizer(tokenizer);
  // A schema's JSON output: no key twice in one object (YAML output has no undeclared keys).
  const json = !('prog' in c) && (c as Constraint).schema !== undefined && (c as Constraint).schemaOptions?.output !== 'yaml';
  return new ConstraintProcessor(new TokenMatcher(grammar, vocab), { ...opts, uniqueKeys: json });
}

export interface StructuredOptions extends Constraint, Omit<GenerateOptions, 'stopIds' | 'tokenizer'> {}

export interface StructuredResult {
  /** The generated text (exactly the bytes the constraint matched). */
  text: string;
  /** Parsed value for a schema (JSON, or YAML with schemaOptions.output 'yaml'); undefined otherwise. */
  value: unknown;
  ids: number[];
  /** 'stop': complete; 'length': cut by the budget (the output is still valid: the budget was honoured). */
  finishReason: 'length' | 'stop';
  /** Whether the output is a complete match. */
  complete: boolean;
  result: GenerationResult;
}

/**
 * generate() under a constraint: `generateStructured(model, tok, prompt, { schema })` returns the
 * parsed object. The prompt is text (BOS prepended) or token ids.
 */
export function generateStructured(model: CausalLM, tokenizer: Tokenizer, prompt: string | number[], opts: StructuredOptions): StructuredResult {
  const vocab = TokenVocab.fromTokenizer(tokenizer);
  const proc = constraintProcessor(opts, vocab);
  const ids = typeof prompt === 'string' ? [tokenizer.bosId ?? model.config.bos_token_id ?? 1, ...tokenizer.encode(prompt)] : prompt;
  const { schema: _s, regex: _r, grammar: _g, choices: _c, schemaOptions, ...gen } = opts;
  const seq = [...ids];
  const r = generate(model, seq, { ...gen, processors: [...(gen.processors ?? []), proc], stopIds: vocab.eosIds });
  const out = r.ids[0];
  const text = vocab.text(out);
  const complete = proc.matcher.automaton.accepting(proc.matcher.automaton.advanceBytes(proc.matcher.initial, new TextEncoder().encode(text)));
  let value: unknown;
  if (opts.schema !== undefined && complete) value = schemaOptions?.output === 'yaml' ? parseYaml(text) : JSON.parse(text);
  return { text, value, ids: out, finishReason: r.finishReason[0], complete, result: r };
}

// ---- tool calling -------------------------------------------------------------------------------

export interface Tool {
  name: string;
  description?: string;
  /** JSON Schema of the arguments object. */
  parameters: JsonSchema;
}

export interface ToolCall { name: string; arguments: unknown }

/** The schema of one call: {"name": <one tool>, "arguments": <that tool's parameters>}. */
export function toolCallSchema(tools: Tool[]): JsonSchema {
  if (tools.length === 0) throw new StructuredError('tools: the list is empty');
  const names = new Set<string>();
  for (const t of tools) {
    if (names.has(t.name)) throw new StructuredError(`tools: '${t.name}' is listed twice`);
    names.add(t.name);
  }
  return {
    anyOf: tools.map((t) => ({
      type: 'object',
      properties: { name: { const: t.name }, arguments: t.parameters },
      required: ['name', 'arguments'],
      additionalProperties: false,
    })),
  };
}

/** A system-prompt section describing the tools and the call format. */
export function toolsPrompt(tools: Tool[]): string {
  const lines = tools.map((t) => `- ${t.name}${t.description ? `: ${t.description}` : ''}\n  parameters: ${JSON.stringify(t.parameters)}`);
  return `You can call one of these tools:\n${lines.join('\n')}\nAnswer with a JSON object {"name": <tool name>, "arguments": <arguments object>}.`;
}

/** The model picks a tool and emits schema-valid arguments. */
export function generateToolCall(model: CausalLM, tokenizer: Tokenizer, prompt: string | number[], tools: Tool[], opts: Omit<StructuredOptions, keyof Constraint> & { schemaOptions?: SchemaOptions } = {}): ToolCall & { text: string; complete: boolean } {
  const r = generateStructured(model, tokenizer, prompt, { ...opts, schema: toolCallSchema(tools), schemaOptions: { additionalProperties: 'forbid', ...opts.schemaOptions } });
  if (!r.complete) throw new StructuredError(`tool call cut at ${r.ids.length} tokens before completion; raise maxNewTokens`);
  const v = r.value as ToolCall;
  return { name: v.name, arguments: v.arguments, text: r.text, complete: r.complete };
}

// ---- prompt-based extraction (Kor-style) ---------------------------------------------------------

export interface ExtractOptions {
  schema: JsonSchema;
  /** Worked examples: input text and the expected output object. */
  examples?: Array<{ text: string; output: unknown }>;
  instruction?: string;
  /** Further attempts after the first, each told the previous error (default 2). */
  maxRetries?: number;
}

export class ExtractionError extends StructuredError {
  constructor(readonly attempts: Array<{ reply: string; error: string }>) {
    super(`extraction failed after ${attempts.length} attempts; last error: ${attempts[attempts.length - 1]?.error}`);
    this.name = 'ExtractionError';
  }
}

/** The extraction prompt: instruction, schema, examples and the input text. */
export function extractionPrompt(text: string, opts: ExtractOptions): string {
  const parts = [
    opts.instruction ?? 'Extract the information from the text into a JSON object that matches the JSON Schema below. Answer with the JSON object only.',
    `JSON Schema:\n${JSON.stringify(opts.schema)}`,
  ];
  for (const ex of opts.examples ?? []) parts.push(`Input: ${ex.text}\nOutput: ${JSON.stringify(ex.output)}`);
  parts.push(`Input: ${text}\nOutput:`);
  return parts.join('\n\n');
}

/** The first JSON value in a reply (code fences and surrounding prose allowed). */
export function parseJsonReply(reply: string): unknown {
  const fenced = /```(?:json)?\s*([\s\S]*?)```/.exec(reply);
  const body = fenced ? fenced[1] : reply;
  const start = body.search(/[[{]/);
  if (start < 0) throw new SyntaxError('no JSON object or array in the reply');
  // Shortest balanced prefix that parses.
  for (let end = body.length; end > start; end--) {
    const c = body[end - 1];
    if (c !== '}' && c !== ']') continue;
    try { return JSON.parse(body.slice(start, end)); } catch { /* shorter */ }
  }
  throw new SyntaxError('the reply has no parseable JSON value');
}

const addFormats = ((addFormatsMod as unknown as { default?: unknown }).default ?? addFormatsMod) as (a: Ajv) => void;

/**
 * Prompt-based extraction for models that cannot be constrained (remote APIs): ask with the schema
 * and examples, parse and validate the reply with ajv, and retry with the validation error.
 */
export async function extractWithPrompt(complete: (prompt: string) => Promise<string> | string, text: string, opts: ExtractOptions): Promise<{ value: unknown; attempts: number; prompt: string }> {
  const ajv = new Ajv({ allErrors: false, strict: false });
  addFormats(ajv);
  const check = ajv.compile(opts.schema as object);
  const base = extractionPrompt(text, opts);
  const attempts: Array<{ reply: string; error: string }> = [];
  let prompt = base;
  for (let k = 0; k <= (opts.maxRetries ?? 2); k++) {
    const reply = await complete(prompt);
    let error: string;
    try {
      const value = parseJsonReply(reply);
      if (check(value)) return { value, attempts: k + 1, prompt };
      error = ajv.errorsText(check.errors, { dataVar: 'output' });
    } catch (e) {
      error = (e as Error).message;
    }
    attempts.push({ reply, error });
    prompt = `${base} ${reply}\n\nThat output is invalid: ${error}. Answer again with a corrected JSON object only.\nOutput:`;
  }
  throw new ExtractionError(attempts);
}
