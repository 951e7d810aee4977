// Browser entry point: everything of the public API that needs no Node.js module (file
// formats and the CLI read files; load their bytes yourself in a page). Serve the page
// cross-origin isolated (COOP same-origin, COEP require-corp) so SharedArrayBuffer exists.
export * from './tensor/index.js';
export { init, shutdown, backend, setBackend, withBackend, heapStats } from './backend/index.js';
export type { InitOptions } from './backend/index.js';
export { SGD, AdamW, clipGradNorm } from './train/optim.js';
export type { SGDOptions, AdamWOptions, ParamGroup } from './train/optim.js';
export * from './train/schedule.js';
export * from './nn/index.js';
export * from './models/index.js';
export * from './generate/index.js';
