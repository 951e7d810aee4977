export { generate } from './generate.js';
export type { CausalLM, GenerateOptions, GenerationResult } from './generate.js';
export * from './processors.js';
export { argmaxOf, sampleFrom, logSoftmaxOf } from './sample.js';
