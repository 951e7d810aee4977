// Structured generation: JSON Schema / regex / GBNF constraints compiled to grammars over bytes,
// token masks over real vocabularies, a logit processor for generate(), tool calls and
// prompt-based extraction.
export * from './errors.js';
export { Grammar, GrammarBuilder, utf8Sequences } from './grammar.js';
export type { Sym, GrammarLimits } from './grammar.js';
export { compileJsonSchema, SchemaCompiler } from './schema.js';
export type { JsonSchema, SchemaOptions } from './schema.js';
export { compileRegex, parseRegex } from './regex.js';
export { parseGbnf } from './gbnf.js';
export { TokenVocab, tokenBytes } from './vocab.js';
export { ByteAutomaton, TokenMatcher, applyMask, DEAD } from './matcher.js';
export type { AutomatonLimits, MaskStats } from './matcher.js';
export { ConstraintProcessor, TokenBudgetError } from './processor.js';
export {
  compileConstraint, constraintProcessor, generateStructured, toolCallSchema, toolsPrompt, generateToolCall,
  extractionPrompt, parseJsonReply, extractWithPrompt, ExtractionError,
} from './api.js';
export type { Constraint, StructuredOptions, StructuredResult, Tool, ToolCall, ExtractOptions } from './api.js';
export type { SequenceProcessor } from '../generate/generate.js';
