// Browser entry point: everything of the public API that needs no Node.js module (file
// formats and the CLI read files; load their bytes yourself in a page). Serve the page
// cross-origin isolated (COOP same-origin, COEP require-corp) so SharedArrayBuffer exists.
// Nothing reachable from here may import a `node:` module statically (test/browser/imports.test.ts
// walks the graph); the one bare import is @huggingface/jinja (chat templates), which a page maps
// with an import map, or its server rewrites for Web Workers (src/serve/static.ts does).
export * from './tensor/index.js';
export { init, shutdown, backend, setBackend, withBackend, heapStats } from './backend/index.js';
export type { InitOptions } from './backend/index.js';
export { SGD, AdamW, clipGradNorm } from './train/optim.js';
export type { SGDOptions, AdamWOptions, ParamGroup } from './train/optim.js';
export * from './train/schedule.js';
// Training from text in memory, step by step (the playground's Train tab), and its downloads.
export { TrainSession, SESSION_DEFAULTS, documentsFromBytes, documentsFromText } from './train/session.js';
export type { SessionOptions, SessionSnapshot, SessionInfo } from './train/session.js';
export { DataError, MemoryTokens, Batcher, splitBatchers } from './train/batcher.js';
export type { BatcherState, TokenSource } from './train/batcher.js';
export { PRESETS } from './train/presets.js';
// LoRA fine-tuning of a loaded model on Alpaca/chat rows, step by step; the adapter as PEFT's files.
export { LoraSession, LORA_SESSION_DEFAULTS, instructionRowsFromBytes } from './sft/session.js';
export type { LoraSessionOptions } from './sft/session.js';
export { adapterFiles, peftConfig } from './lora/peft_bytes.js';
export type { StepMetrics } from './train/report.js';
export * from './nn/index.js';
export * from './models/index.js';
export * from './generate/index.js';

// Tokenizers, from parsed JSON or file bytes, and chat templates.
export { TokenizerFormatError, TokenizerError, StreamDecoder } from './tokenizers/tokenizer.js';
export type { Tokenizer, EncodeOptions, DecodeOptions } from './tokenizers/tokenizer.js';
export { HFTokenizer } from './tokenizers/hf.js';
export type { AddedToken, TokenizerConfig } from './tokenizers/hf.js';
export { SentencePieceTokenizer, parseModelProto } from './tokenizers/sentencepiece.js';
export { Llama2cTokenizer } from './tokenizers/llama2c.js';
export { trainByteLevelBPE } from './tokenizers/trainer.js';
export type { TrainBPEOptions } from './tokenizers/trainer.js';
export { applyChatTemplate, chatTemplateFromConfig, ChatTemplateError } from './tokenizers/chat.js';
export type { ChatMessage, ChatTemplateOptions } from './tokenizers/chat.js';
export { detectTokenizerKind, tokenizerFromBytes } from './tokenizers/from_bytes.js';
export type { TokenizerKind, TokenizerFromBytesOptions } from './tokenizers/from_bytes.js';
export { GPT2_PATTERN, LLAMA3_PATTERN, BYTE_TO_CHAR } from './tokenizers/bytelevel.js';

// Checkpoint bytes: safetensors parsed and written in memory, dtypes, a model from config + weights.
export * from './io/errors.js';
export * from './io/dtypes.js';
export {
  SAFETENSORS_MAX_HEADER, SAFETENSORS_DTYPES, parseSafetensorsHeader, parseSafetensorsBufferHeader, parseSafetensorsBytes, serializeSafetensors,
} from './io/safetensors_bytes.js';
export type { SafetensorsEntry, SafetensorsHeader, SafetensorsContents } from './io/safetensors_bytes.js';
export { modelFromBytes } from './io/hf_bytes.js';
export type { ModelFromBytesOptions } from './io/hf_bytes.js';
export { llamaDims, checkLlamaTensors, permuteQK, unpermuteQK, convertQKLayout } from './io/llama.js';
export { modelTensors } from './io/model_tensors.js';
export { serializeGguf, readGguf, gv } from './io/gguf.js';
export type { GgufValue, GgufContents } from './io/gguf.js';
export { serializeLlamaGguf } from './io/gguf_llama.js';
export { ggufTokenizerOf, tokenizerJsonFromGguf, tokenizerFromGguf } from './io/tokenizer_convert.js';
export type { GgufTokenizer } from './io/gguf_arch.js';
export type { LlamaDims, QKLayout } from './io/llama.js';

// Structured generation without the schema validator (Ajv) and YAML of the Node entry point:
// JSON Schema / regex / GBNF → grammar → token masks → a logit processor for generate().
export * from './structured/errors.js';
export { Grammar, GrammarBuilder } from './structured/grammar.js';
export { compileJsonSchema } from './structured/schema.js';
export type { JsonSchema, SchemaOptions } from './structured/schema.js';
export { compileRegex } from './structured/regex.js';
export { parseGbnf } from './structured/gbnf.js';
export { TokenVocab } from './structured/vocab.js';
export { TokenMatcher } from './structured/matcher.js';
export { ConstraintProcessor, TokenBudgetError } from './structured/processor.js';
