// Tokenizers: HF tokenizer.json (BPE), SentencePiece .model, llama2.c tokenizer.bin, a byte-level
// BPE trainer, and chat templates.
export { TokenizerFormatError, TokenizerError, StreamDecoder } from './tokenizer.js';
export type { Tokenizer, EncodeOptions, DecodeOptions } from './tokenizer.js';
export { HFTokenizer } from './hf.js';
export type { AddedToken, TokenizerConfig } from './hf.js';
export { SentencePieceTokenizer, parseModelProto } from './sentencepiece.js';
export type { SentencePieceModelProto } from './sentencepiece.js';
export { Llama2cTokenizer } from './llama2c.js';
export { trainByteLevelBPE } from './trainer.js';
export type { TrainBPEOptions } from './trainer.js';
export { applyChatTemplate, chatTemplateFromConfig, ChatTemplateError } from './chat.js';
export type { ChatMessage, ChatTemplateOptions } from './chat.js';
export { loadTokenizer, detectTokenizerKind, readTokenizerConfig } from './load.js';
export type { LoadTokenizerOptions, TokenizerKind } from './load.js';
export { tokenizerFromBytes } from './from_bytes.js';
export type { TokenizerFromBytesOptions } from './from_bytes.js';
export { GPT2_PATTERN, LLAMA3_PATTERN, BYTE_TO_CHAR } from './bytelevel.js';
