// The training loop that DPO and reward models share: batches of preference pairs drawn from a
// seeded shuffle, each step's loss the mean over its pairs (micro-batches weigh by their share),
// AdamW with warmup + cosine, gradient clipping, held-out evaluation every evalEvery steps and
// at the end, metrics.jsonl and a progress line. The caller gives the loss of a micro-batch.
// Checkpoints (every checkpointEvery steps, after a failed step, when stopped, at the end) hold the weights,
// AdamW's moments and the data order; resume continues bit for bit.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Tensor } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { scope } from '../tensor/storage.js';
import { Generator } from '../tensor/random.js';
import type { CausalLM } from '../models/causal.js';
import { AdamW, clipGradNorm } from '../train/optim.js';
import { cosineWithWarmup } from '../train/schedule.js';
import { paramGroups, TrainingDivergedError, yieldToEventLoop } from '../train/trainer.js';
import type { OptimOptions } from '../train/trainer.js';
import { resumeCheckpoint, saveCheckpoint } from '../train/checkpoint.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { ShuffledOrder } from './data.js';
import type { ShuffledOrderState } from './data.js';

export interface PairwiseLoopOptions extends OptimOptions {
  steps: number;
  /** Pairs per step. */
  batchSize: number;
  /** Pairs per forward/backward (gradients accumulate). */
  microBatch: number;
  /** Held-out metrics every N steps (0: only before and after). */
  evalEvery: number;
  /** Write a checkpoint every N steps (0: only when stopped, failed and at the end). */
  checkpointEvery: number;
}

/** The options DPO and reward-model training share: the loop's, with steps 0 meaning `epochs` passes over the pairs. */
export interface PairwiseTrainOptions extends PairwiseLoopOptions {
  epochs: number;
}

/** Check the shared options; errors name the trainer and the option (`dpo: lr = 0: must be > 0`). */
export function checkPairwiseOptions(what: string, o: PairwiseTrainOptions): void {
  const bad = (k: keyof PairwiseTrainOptions, why: string) => { throw new RangeError(`${what}: ${k} = ${JSON.stringify(o[k])}: ${why}`); };
  for (const k of ['batchSize', 'microBatch', 'epochs'] as const) if (!Number.isInteger(o[k]) || o[k] < 1) bad(k, 'must be a positive integer');
  if (!Number.isInteger(o.steps) || o.steps < 0) bad('steps', 'must be an integer ≥ 0 (0: from epochs)');
  if (!(o.lr > 0)) bad('lr', 'must be > 0');
}

/** Optimiser steps of a run over n pairs: the given steps, or enough for `epochs` passes. */
export function pairwiseSteps(o: PairwiseTrainOptions, n: number): number {
  return o.steps || Math.max(1, Math.ceil((o.epochs * n) / Math.min(o.batchSize, n)));
}

/** A step's metrics as the loop fills them (the loss's metrics, averaged over the step's pairs, come first). */
export interface PairwiseStep {
  step: number;
  epoch: number;
  grad_norm: number;
  learning_rate: number;
  step_seconds: number;
  elapsed_seconds: number;
}

export async function pairwiseLoop<P, E, M extends PairwiseStep>(c: {
  /** Names the trainer in errors ('dpo', 'reward'). */
  what: string;
  /** The model trained (its trainable parameters; train/eval mode; configJson and tensors for checkpoints). */
  model: { train(on?: boolean): unknown; eval(): unknown };
  /** Saved with checkpoints. */
  tokenizer?: Tokenizer | null;
  /** Continue from the checkpoint in `out`. */
  resume?: boolean;
  /** Stop (with a checkpoint) when aborted, after the step under way. */
  signal?: AbortSignal;
  log?: (line: string) => void;
  items: P[];
  o: PairwiseLoopOptions;
  out?: string;
  /** The loss of a micro-batch (the mean over its pairs) and its metrics (means); idx: the pairs' indices. */
  microLoss(mb: P[], idx: number[]): { loss: Tensor; metrics: { loss: number } };
  /** Held-out evaluation: its result and the entries it adds to the step's metrics. */
  evaluate?: () => { result: E; entries: Record<string, number> };
  onStep(m: M, total: number): void;
}): Promise<{ metrics: M[]; evalAfter: E | null; step: number }> {
  const { o, items } = c;
  const N = items.length, B = Math.min(o.batchSize, N);
  const groups = paramGroups(c.model as unknown as CausalLM, o.weightDecay);
  if (!groups.length) throw new TrainingDivergedError(`${c.what}: the model has no trainable parameters`);
  const opt = new AdamW(groups, { lr: o.lr, betas: [0.9, 0.999], eps: 1e-8 });
  const sched = cosineWithWarmup(o.warmupSteps, o.steps, o.minLrRatio);
  const order = new ShuffledOrder(N, new Generator(o.seed));
  const metricsFile = c.out ? path.join(c.out, 'metrics.jsonl') : null;
  if (c.out) mkdirSync(c.out, { recursive: true });
  let metrics: M[] = [];
  let step = 0, elapsed0 = 0;
  const asLm = c.model as unknown as CausalLM;
  if (c.resume) {
    const r = await resumeCheckpoint<PairwiseLoopOptions, { order: ShuffledOrderState; items: number }, M>(c.what, c.out, asLm, opt);
    if (r.state.train.items !== N) throw new RangeError(`${r.dir}: the checkpoint was trained on ${r.state.train.items} pairs, this run has ${N}; resume with the same data`);
    order.load(r.state.train.order, r.dir);
    step = r.state.state.step;
    elapsed0 = r.state.state.elapsedSeconds;
    metrics = r.metrics;
    (c.log ?? ((l: string) => process.stderr.write(l + '\n')))(`${c.what}: resumed from ${r.dir} at step ${step}`);
  } else if (metricsFile) writeFileSync(metricsFile, '');
  let evalAfter: E | null = null;
  const tStart = performance.now();
  const save = async () => {
    if (!c.out) return;
    await saveCheckpoint<PairwiseLoopOptions, { order: ShuffledOrderState; items: number }>(c.out, {
      model: asLm, tokenizer: c.tokenizer, opt, options: o, train: { order: order.state(), items: N },
      state: { step, tokens: 0, elapsedSeconds: elapsed0 + (performance.now() - tStart) / 1000 },
    });
  };
  c.model.train(true);
  try {
    while (step < o.steps && !c.signal?.aborted) {
      const ts = performance.now();
      const idx = order.next(B);
      const lr = o.lr * sched(step);
      opt.setLr(lr);
      const sums: Record<string, number> = {};
      for (let s = 0; s < B; s += o.microBatch) {
        const ks = idx.slice(s, s + o.microBatch), mb = ks.map((k) => items[k]), n = mb.length;
        scope(() => {
          const r = c.microLoss(mb, ks);
          if (!Number.isFinite(r.metrics.loss)) throw new TrainingDivergedError(`${c.what} step ${step + 1}: the loss is ${r.metrics.loss}; lower the learning rate (${o.lr})`);
          // The step's loss is the mean over its pairs: each micro-batch weighs by its share.
          (n === B ? r.loss : T.mul(r.loss, n / B)).backward();
          for (const [k, v] of Object.entries(r.metrics) as [string, number][]) sums[k] = (sums[k] ?? 0) + v * n;
        });
      }
      const gradNorm = clipGradNorm(opt.params, o.gradClip > 0 ? o.gradClip : Infinity);
      opt.step();
      opt.zeroGrad();
      step++;
      const m = Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / B])) as unknown as M;
      m.step = step;
      m.epoch = order.progress;
      m.grad_norm = gradNorm;
      m.learning_rate = lr;
      if (c.evaluate && ((o.evalEvery > 0 && m.step % o.evalEvery === 0) || m.step === o.steps)) {
        const e = c.evaluate();
        c.model.train(true);
        Object.assign(m, e.entries);
        if (m.step === o.steps) evalAfter = e.result;
      }
      m.step_seconds = (performance.now() - ts) / 1000;
      m.elapsed_seconds = elapsed0 + (performance.now() - tStart) / 1000;
      metrics.push(m);
      if (metricsFile) writeFileSync(metricsFile, JSON.stringify(m) + '\n', { flag: 'a' });
      c.onStep(m, o.steps);
      if (o.checkpointEvery > 0 && step % o.checkpointEvery === 0 && step < o.steps) await save();
      // Let a signal (Ctrl-C) be handled between steps.
      if (c.signal) await yieldToEventLoop();
    }
    // Also at the end: --resume with more steps continues from here.
    await save();
  } catch (e) {
    // A failed step never reaches opt.step(): the weights are those of the steps done; keep them.
    opt.zeroGrad();
    if (c.out && step > 0) {
      await save();
      (c.log ?? ((l: string) => process.stderr.write(l + '\n')))(`${c.what}: saved a checkpoint after ${step} steps in ${c.out} (continue with --resume once the cause is fixed)`);
    }
    throw e;
  } finally {
    opt.zeroGrad();
    for (const t of Object.values(opt.stateDict().tensors)) t.dispose();
    c.model.eval();
  }
  return { metrics, evalAfter, step };
}
