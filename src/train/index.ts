export { SGD, AdamW, clipGradNorm } from './optim.js';
export type { SGDOptions, AdamWOptions, ParamGroup } from './optim.js';
export { constantSchedule, cosineWithWarmup, linearWithWarmup } from './schedule.js';
export type { Schedule } from './schedule.js';
