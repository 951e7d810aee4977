// The training loop, flat like nanoGPT's: get a batch, forward, backward (with gradient
// accumulation), clip, step, log; evaluate and checkpoint every N steps. Every NaN/Inf stops the
// run with a message naming the step and the tensor.
import { Tensor } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { scope } from '../tensor/storage.js';
import { noGrad } from '../tensor/autograd.js';
import { NonFiniteError } from '../tensor/errors.js';
import { AdamW, clipGradNorm } from './optim.js';
import { cosineWithWarmup } from './schedule.js';
import type { Batcher } from './data.js';
import type { StepMetrics } from './report.js';
import type { LossParts } from '../models/causal.js';
import { ConfigError } from '../models/config.js';

/** What the trainer needs from a model: next-token loss of ids (B, T+1), and its parameters. */
export interface TrainableLM {
  loss(ids: Tensor): Tensor;
  /** What the last loss() was made of beyond the cross-entropy (CausalLM.lossParts). */
  lossParts?(): LossParts | null;
  namedParameters(): [string, Tensor][];
  train(on?: boolean): unknown;
}

/** The optimiser and schedule options every training loop takes (pre-training, SFT, DPO, reward models, GRPO). */
export interface OptimOptions {
  /** Peak learning rate (AdamW), reached after warmupSteps of linear warmup. */
  lr: number;
  warmupSteps: number;
  /** Final learning rate as a fraction of lr (cosine decay); 1 keeps it constant after warmup. */
  minLrRatio: number;
  weightDecay: number;
  /** Clip the global gradient norm to this (0 = no clipping). */
  gradClip: number;
  seed: number;
}

export interface TrainOptions extends OptimOptions {
  steps: number;
  batchSize: number;
  seqLen: number;
  /** Micro-batches per optimizer step (each of batchSize rows). */
  gradAccum: number;
  betas: [number, number];
  evalEvery: number;
  evalBatches: number;
}

export const DEFAULT_TRAIN_OPTIONS: TrainOptions = {
  steps: 1000, batchSize: 8, seqLen: 256, gradAccum: 1, lr: 5e-4, minLrRatio: 0.1, warmupSteps: 100,
  weightDecay: 0.1, betas: [0.9, 0.95], gradClip: 1, evalEvery: 200, evalBatches: 10, seed: 0,
};

export class TrainingDivergedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

/** Each option's allowed values: [integer?, min, max] (min and max inclusive). */
const OPTION_RANGES: Record<Exclude<keyof TrainOptions, 'betas'>, [boolean, number, number]> = {
  steps: [true, 1, 1e12], batchSize: [true, 1, 1e6], seqLen: [true, 1, 1e7], gradAccum: [true, 1, 1e5],
  lr: [false, Number.MIN_VALUE, Number.MAX_VALUE], minLrRatio: [false, 0, 1], warmupSteps: [true, 0, 1e12], weightDecay: [false, 0, Number.MAX_VALUE],
  gradClip: [false, 0, Number.MAX_VALUE], evalEvery: [true, 0, 1e12], evalBatches: [true, 0, 1e6], seed: [true, 0, Number.MAX_SAFE_INTEGER],
};

/**
 * Checks trainer options (a checkpoint's trainer_state.json brings them back on --resume: a
 * damaged one must not start a run with a NaN learning rate or a billion micro-batches). `where`
 * names the options' source in the error.
 */
export function checkTrainOptions(o: TrainOptions, where: (field: string) => string): void {
  for (const [k, [int, lo, hi]] of Object.entries(OPTION_RANGES)) {
    const v = (o as unknown as Record<string, unknown>)[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || (int && !Number.isInteger(v)) || v < lo || v > hi) {
      throw new ConfigError(where(k), `${k} must be ${int ? 'an integer' : 'a number'} from ${lo === Number.MIN_VALUE ? 'just above 0' : lo} to ${hi}, got ${JSON.stringify(v) ?? String(v)}`);
    }
  }
  const b = o.betas as unknown;
  if (!Array.isArray(b) || b.length !== 2 || !b.every((x) => typeof x === 'number' && x >= 0 && x < 1)) {
    throw new ConfigError(where('betas'), `betas must be two numbers in [0, 1), got ${JSON.stringify(b)?.slice(0, 80) ?? String(b)}`);
  }
}

/** Parameters that get weight decay: matrices; norms and biases (1-d) do not. */
export function paramGroups(model: TrainableLM, weightDecay: number) {
  const named = model.namedParameters();
  const seen = new Set<Tensor>();
  const decay: Tensor[] = [], noDecay: Tensor[] = [];
  for (const [name, p] of named) {
    if (seen.has(p)) continue;
    seen.add(p);
    p.name = name;
    (p.ndim >= 2 ? decay : noDecay).push(p);
  }
  return [
    { params: decay, options: { weightDecay } },
    { params: noDecay, options: { weightDecay: 0 } },
  ].filter((g) => g.params.length);
}

export function createOptimizer(model: TrainableLM, o: TrainOptions): AdamW {
  return new AdamW(paramGroups(model, o.weightDecay), { lr: o.lr, betas: o.betas, eps: 1e-8 });
}

/** Mean validation loss over up to n batches (the batcher restarts from its first chunk). */
export function evaluate(model: TrainableLM, val: Batcher, n: number): number {
  model.train(false);
  val.restore({ epoch: 0, index: 0, seed: val.seed });
  const batches = Math.min(n, Math.max(1, Math.floor(val.count / val.batchSize)));
  let total = 0;
  for (let i = 0; i < batches; i++) {
    total += noGrad(() => scope(() => model.loss(T.tensor(val.next(), [val.batchSize, val.seqLen + 1], 'i32')).item()));
  }
  model.train(true);
  return total / batches;
}

export interface TrainState { step: number; tokens: number; elapsedSeconds: number }

export interface TrainHooks {
  onStep?(m: StepMetrics): void;
  /** Called after evaluation steps, at the end and when stopping early; write a checkpoint here. */
  onCheckpoint?(state: TrainState): void | Promise<void>;
  /**
   * Checked after every step: true stops the run early (after a checkpoint), e.g. on Ctrl-C. With
   * it, the loop lets the event loop run between steps, so that a signal handler that asks to
   * stop runs within a step (a loop that only awaited at checkpoints ignored Ctrl-C until the next
   * evaluation, minutes later).
   */
  shouldStop?(state: TrainState): boolean;
}

/**
 * One turn of the event loop (setImmediate in Node, a zero timeout elsewhere): a training loop
 * awaits it between steps so that a signal handler (Ctrl-C) can run.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => (typeof setImmediate === 'function' ? setImmediate(resolve) : setTimeout(resolve, 0)));
}

/**
 * Run optimizer steps state.step … o.steps−1. The learning rate follows linear warmup then
 * cosine decay to minLrRatio·lr. Returns the final state.
 */
export async function trainLoop(model: TrainableLM, opt: AdamW, data: { train: Batcher; val: Batcher | null }, o: TrainOptions, state: TrainState, hooks: TrainHooks = {}): Promise<TrainState> {
  const sched = cosineWithWarmup(o.warmupSteps, o.steps, o.minLrRatio);
  const params = opt.params;
  const shape = [o.batchSize, o.seqLen + 1];
  model.train(true);
  let last = performance.now();
  const startElapsed = state.elapsedSeconds;
  const t0 = performance.now();
  for (let step = state.step; step < o.steps; step++) {
    const lr = o.lr * sched(step);
    opt.setLr(lr);
    let loss = 0, parts: LossParts | null = null;
    for (let micro = 0; micro < o.gradAccum; micro++) {
      const ids = data.train.next();
      const l = scope(() => {
        const out = model.loss(T.tensor(ids, shape, 'i32'));
        const v = out.item();
        if (!Number.isFinite(v)) return v;
        (o.gradAccum > 1 ? T.mul(out, 1 / o.gradAccum) : out).backward();
        return v;
      });
      if (!Number.isFinite(l)) {
        opt.zeroGrad();
        throw new TrainingDivergedError(`step ${step}: the loss is ${l} (micro-batch ${micro}); lower the learning rate (${lr.toExponential(2)}) or check the data`);
      }
      loss += l / o.gradAccum;
      parts = model.lossParts?.() ?? null;
    }
    let norm: number;
    try {
      norm = clipGradNorm(params, o.gradClip > 0 ? o.gradClip : Infinity, { errorIfNonfinite: true });
    } catch (e) {
      opt.zeroGrad();
      throw new TrainingDivergedError(`step ${step}: ${(e as Error).message}`);
    }
    opt.step();
    opt.zeroGrad();
    state.step = step + 1;
    state.tokens += o.batchSize * o.seqLen * o.gradAccum;
    const now = performance.now();
    state.elapsedSeconds = startElapsed + (now - t0) / 1000;
    const m: StepMetrics = {
      step: state.step, loss, lr, gradNorm: norm, tokens: state.tokens,
      tokensPerSecond: (o.batchSize * o.seqLen * o.gradAccum) / ((now - last) / 1000), elapsedSeconds: state.elapsedSeconds,
      ...(parts ? { parts: parts.values, ...(parts.expertLoad ? { expertLoad: parts.expertLoad } : {}) } : {}),
    };
    last = now;
    const evalNow = data.val && o.evalEvery > 0 && (state.step % o.evalEvery === 0 || state.step === o.steps);
    if (evalNow) {
      m.valLoss = evaluate(model, data.val!, o.evalBatches);
      m.valPerplexity = Math.exp(m.valLoss);
      last = performance.now();
    }
    hooks.onStep?.(m);
    if (hooks.shouldStop) await yieldToEventLoop();
    const stop = hooks.shouldStop?.(state) ?? false;
    if (evalNow || state.step === o.steps || stop) await hooks.onCheckpoint?.({ ...state });
    if (stop) break;
  }
  return state;
}

/** Name the first parameter whose value is NaN/Inf (after a step, to catch silent divergence). */
export function checkParametersFinite(model: TrainableLM, step: number): void {
  for (const [name, p] of model.namedParameters()) {
    const bad = T.findNonFinite(p);
    if (bad) throw new NonFiniteError(`step ${step}: parameter ${name}`, bad.count, bad.index, bad.value);
  }
}
