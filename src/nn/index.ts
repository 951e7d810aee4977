export { Module, StateDictError, parameter, withoutInit } from './module.js';
export type { HostValues, HostBlocks, HostFill } from './module.js';
export { useQuantizedWeights } from './quantized.js';
export { Linear, Embedding, RMSNorm, LayerNorm, Dropout } from './layers.js';
export type { InitOptions } from './layers.js';
export { S4D, S4DKernel, s4dConv, s4dScan } from './s4d.js';
export type { S4DOptions, S4DDiscrete } from './s4d.js';
export {
  HippoError, S4D_INITS, discretize, hippoReconstruct, hippoRun, hippoTransition, legendre, legsNormal, s4dInit,
} from './hippo.js';
export type { Discretization, Measure, S4DInit } from './hippo.js';
export { MedusaHeads, MedusaHead, ResBlock, MedusaConfigError, baseHeadWeight, checkMedusaConfig, checkHeadsFitBase } from './medusa.js';
export type { MedusaHeadsConfig, MedusaBase } from './medusa.js';
export { VectorQuantizer } from './vq.js';
export type { VectorQuantizerOptions, Quantized } from './vq.js';
export { Conv2d, ConvTranspose2d } from './conv.js';
