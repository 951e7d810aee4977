export { SGD, AdamW, clipGradNorm } from './optim.js';
export type { SGDOptions, AdamWOptions, ParamGroup } from './optim.js';
export { constantSchedule, cosineWithWarmup, linearWithWarmup } from './schedule.js';
export type { Schedule } from './schedule.js';
export { DataError, TokenFile, Batcher, splitBatchers, tokenizeToFile, readDocuments, listDataFiles, MemoryTokens, looksBinary } from './data.js';
export type { BatcherState, TokenSource } from './data.js';
export { TrainSession, SESSION_DEFAULTS, documentsFromBytes, documentsFromText } from './session.js';
export type { SessionOptions, SessionSnapshot, SessionInfo } from './session.js';
export { trainLoop, evaluate, createOptimizer, paramGroups, DEFAULT_TRAIN_OPTIONS, TrainingDivergedError } from './trainer.js';
export type { OptimOptions, TrainOptions, TrainState, TrainHooks, TrainableLM } from './trainer.js';
export { saveCheckpoint, loadCheckpoint, findCheckpoint, readTrainerState, CheckpointError } from './checkpoint.js';
export { runTraining, resolveConfig } from './run.js';
export type { RunOptions, RunResult } from './run.js';
export { PRESETS } from './presets.js';
export { lossCurveSvg, reportHtml, progressLine } from './report.js';
export type { StepMetrics } from './report.js';
export { quickstart, brownText, unigramLoss, QUICKSTART_CONFIG } from './quickstart.js';
export {
  trainMedusa, medusaLoss, medusaObjective, medusaLossWeights, MedusaTrainee, headAccuracy, formatHeadAccuracy, headAccuracyMetrics, selfDistill, promptLines,
  MedusaTrainError, DEFAULT_MEDUSA_LOSS, DEFAULT_MEDUSA_TRAIN,
} from './medusa.js';
export type { MedusaLossOptions, MedusaTrainOptions, MedusaTrainResult, HeadAccuracy, DistillOptions } from './medusa.js';
