// tslm public API.
export * from './tensor/index.js';
export { init, shutdown, backend, setBackend, withBackend, heapStats } from './backend/index.js';
export type { InitOptions } from './backend/index.js';
export * from './train/index.js';
export * from './nn/index.js';
export * from './models/index.js';
export * from './generate/index.js';
export * from './tokenizers/index.js';
export * from './io/index.js';
export * from './classic/index.js';
export * from './structured/index.js';
export * from './lora/index.js';
export * from './sft/index.js';
export * from './align/index.js';
export * from './vision/index.js';
