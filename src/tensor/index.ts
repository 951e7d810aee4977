export { Tensor, contiguousStrides, numel } from './tensor.js';
export type { DType, Shape, NestedArray } from './tensor.js';
export { scope, unscoped, Storage } from './storage.js';
export { noGrad, isGradEnabled } from './autograd.js';
export type { GradFn } from './autograd.js';
export * from './ops.js';
export * from './nn.js';
export { Generator, defaultGenerator, manualSeed } from './random.js';
export { ShapeError, DTypeError, IndexError, NonFiniteError } from './errors.js';
