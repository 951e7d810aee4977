export { Module, StateDictError, parameter, withoutInit } from './module.js';
export { Linear, Embedding, RMSNorm, LayerNorm, Dropout } from './layers.js';
export type { InitOptions } from './layers.js';
