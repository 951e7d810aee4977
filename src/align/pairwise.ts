// The training loop that DPO and reward models share: batches of preference pairs drawn from a
// seeded shuffle, each step's loss the mean over its pairs (micro-batches weigh by their share),
// AdamW with warmup + cosine, gradient clipping, held-out evaluation every evalEvery steps and
// at the end, metrics.jsonl and a progress line. The caller gives the loss of a micro-batch.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Tensor } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { scope } from '../tensor/storage.js';
import { Generator } from '../tensor/random.js';
import type { CausalLM } from '../models/causal.js';
import { AdamW, clipGradNorm } from '../train/optim.js';
import { cosineWithWarmup } from '../train/schedule.js';
import { paramGroups, TrainingDivergedError } from '../train/trainer.js';
import { ShuffledOrder } from './data.js';

export interface PairwiseLoopOptions {
  steps: number;
  batchSize: number;
  microBatch: number;
  lr: number;
  warmupSteps: number;
  minLrRatio: number;
  weightDecay: number;
  gradClip: number;
  seed: number;
  evalEvery: number;
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

export function pairwiseLoop<P, E, M extends PairwiseStep>(c: {
  /** Names the trainer in errors ('dpo', 'reward'). */
  what: string;
  /** The model trained (its trainable parameters; train/eval mode). */
  model: { train(on?: boolean): unknown; eval(): unknown };
  items: P[];
  o: PairwiseLoopOptions;
  out?: string;
  /** The loss of a micro-batch (the mean over its pairs) and its metrics (means); idx: the pairs' indices. */
  microLoss(mb: P[], idx: number[]): { loss: Tensor; metrics: { loss: number } };
  /** Held-out evaluation: its result and the entries it adds to the step's metrics. */
  evaluate?: () => { result: E; entries: Record<string, number> };
  onStep(m: M, total: number): void;
}): { metrics: M[]; evalAfter: E | null } {
  const { o, items } = c;
  const N = items.length, B = Math.min(o.batchSize, N);
  const groups = paramGroups(c.model as unknown as CausalLM, o.weightDecay);
  if (!groups.length) throw new TrainingDivergedError(`${c.what}: the model has no trainable parameters`);
  const opt = new AdamW(groups, { lr: o.lr, betas: [0.9, 0.999], eps: 1e-8 });
  const sched = cosineWithWarmup(o.warmupSteps, o.steps, o.minLrRatio);
  const order = new ShuffledOrder(N, new Generator(o.seed));
  const metricsFile = c.out ? path.join(c.out, 'metrics.jsonl') : null;
  if (c.out) mkdirSync(c.out, { recursive: true });
  if (metricsFile) writeFileSync(metricsFile, '');
  const metrics: M[] = [];
  let evalAfter: E | null = null;
  const tStart = performance.now();
  c.model.train(true);
  try {
    for (let step = 0; step < o.steps; step++) {
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
      const m = Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / B])) as unknown as M;
      m.step = step + 1;
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
      m.elapsed_seconds = (performance.now() - tStart) / 1000;
      metrics.push(m);
      if (metricsFile) writeFileSync(metricsFile, JSON.stringify(m) + '\n', { flag: 'a' });
      c.onStep(m, o.steps);
    }
  } finally {
    opt.zeroGrad();
    for (const t of Object.values(opt.stateDict().tensors)) t.dispose();
    c.model.eval();
  }
  return { metrics, evalAfter };
}
