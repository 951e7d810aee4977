export { generate, Generation, Sequence } from './generate.js';
export { DecodeBatch, BatchedRequest } from './batch.js';
export type { GenerateOptions, GenerationResult, SequenceProcessor, TextDecoder_ } from './generate.js';
export * from './processors.js';
export { argmaxOf, sampleFrom, logSoftmaxOf } from './sample.js';
export { newGeneration } from './stepped.js';
export type { SpeculativeOptions, SpeculativeStats, SpeculativeResult, SteppedGeneration } from './stepped.js';
export { medusaGenerate, MedusaGeneration, buildMedusaTree, MedusaChoicesError, DEFAULT_MEDUSA_CHOICES } from './medusa.js';
export type { MedusaOptions, MedusaHeadsLike, MedusaTree } from './medusa.js';
