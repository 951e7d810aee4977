export { generate, Generation, Sequence } from './generate.js';
export { DecodeBatch, BatchedRequest } from './batch.js';
export type { GenerateOptions, GenerationResult, SequenceProcessor, TextDecoder_ } from './generate.js';
export * from './processors.js';
export { argmaxOf, sampleFrom, logSoftmaxOf } from './sample.js';
export { speculativeGenerate, SpeculativeGeneration, lookupDraft, acceptOrResample, canRollBack, SpeculativeError } from './speculative.js';
export type { SpeculativeOptions, SpeculativeResult, SpeculativeStats } from './speculative.js';
