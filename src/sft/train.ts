// Supervised fine-tuning loop: batches of (ids, targets with −100 on prompt tokens), AdamW over
// the model's trainable parameters only (after applyLora, just the adapters), warmup + cosine,
// gradient clipping; held-out loss over response tokens and greedy exact match for evaluation.
import * as T from '../tensor/ops.js';
import { scope } from '../tensor/storage.js';
import { noGrad } from '../tensor/autograd.js';
import type { CausalLM } from '../models/causal.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { AdamW, clipGradNorm } from '../train/optim.js';
import { cosineWithWarmup } from '../train/schedule.js';
import { paramGroups, TrainingDivergedError } from '../train/trainer.js';
import type { OptimOptions } from '../train/trainer.js';
import { generate } from '../generate/generate.js';
import { SftBatcher, collate, promptIds } from './data.js';
import type { FormatOptions, InstructionRow, SftExample } from './data.js';
import { withDefaults } from '../train/options.js';

export interface SftOptions extends OptimOptions {
  steps: number;
  batchSize: number;
  /** Evaluate held-out loss every N steps (0: only at the end). */
  evalEvery: number;
}

export const DEFAULT_SFT_OPTIONS: SftOptions = { steps: 200, batchSize: 8, lr: 2e-3, warmupSteps: 10, minLrRatio: 0.1, weightDecay: 0, gradClip: 1, seed: 0, evalEvery: 0 };

export interface SftStep { step: number; loss: number; lr: number; gradNorm: number; valLoss?: number; seconds: number }

/** Mean loss over the response tokens of the examples (no grad; dropout off). */
export function responseLoss(model: CausalLM, examples: SftExample[], batchSize = 8, padId = 0): number {
  const was = model.training;
  model.eval();
  let total = 0, count = 0;
  for (let i = 0; i < examples.length; i += batchSize) {
    const b = collate(examples.slice(i, i + batchSize), padId);
    if (!b.responseTokens) continue;
    const l = noGrad(() => scope(() => model.loss(T.tensor(b.ids, [b.batch, b.length], 'i32'), T.tensor(b.targets, [b.batch, b.length], 'i32')).item()));
    total += l * b.responseTokens;
    count += b.responseTokens;
  }
  model.train(was);
  return count ? total / count : NaN;
}

/**
 * One optimizer step on the batcher's next batch at learning rate lr: loss over the response
 * tokens, backward, clip, AdamW. null for a batch without response tokens (nothing learnt).
 */
export function sftStep(model: CausalLM, opt: AdamW, batcher: SftBatcher, lr: number, gradClip: number, step: number): { loss: number; gradNorm: number; tokens: number } | null {
  opt.setLr(lr);
  const b = batcher.next();
  const loss = scope(() => {
    const l = model.loss(T.tensor(b.ids, [b.batch, b.length], 'i32'), T.tensor(b.targets, [b.batch, b.length], 'i32'));
    const v = l.item();
    if (Number.isFinite(v)) l.backward();
    return v;
  });
  if (!Number.isFinite(loss)) {
    opt.zeroGrad();
    if (b.responseTokens === 0) return null;
    throw new TrainingDivergedError(`step ${step}: the loss is ${loss}; lower the learning rate (${lr.toExponential(2)})`);
  }
  const gradNorm = clipGradNorm(opt.params, gradClip > 0 ? gradClip : Infinity);
  opt.step();
  opt.zeroGrad();
  return { loss, gradNorm, tokens: b.batch * b.length };
}

/** Fine-tune on examples; only parameters that require grad are optimized. */
export function sftTrain(model: CausalLM, train: SftExample[], opts: Partial<SftOptions> & {
  val?: SftExample[]; padId?: number; onStep?: (s: SftStep) => void;
  /** Called after each step (after onStep): true ends training there (early stopping). */
  shouldStop?: (s: SftStep) => boolean;
} = {}): SftStep[] {
  const o: SftOptions = withDefaults(DEFAULT_SFT_OPTIONS, opts);
  const groups = paramGroups(model, o.weightDecay);
  if (!groups.length) throw new TrainingDivergedError('the model has no trainable parameters (frozen without adapters?)');
  const opt = new AdamW(groups, { lr: o.lr, betas: [0.9, 0.999], eps: 1e-8 });
  const sched = cosineWithWarmup(o.warmupSteps, o.steps, o.minLrRatio);
  const batcher = new SftBatcher(train, o.batchSize, opts.padId ?? 0, o.seed);
  const log: SftStep[] = [];
  const t0 = performance.now();
  model.train(true);
  try {
    for (let step = 0; step < o.steps; step++) {
      const lr = o.lr * sched(step);
      const r = sftStep(model, opt, batcher, lr, o.gradClip, step);
      if (!r) continue; // a batch of fully truncated responses
      const { loss, gradNorm } = r;
      const s: SftStep = { step: step + 1, loss, lr, gradNorm, seconds: (performance.now() - t0) / 1000 };
      if (opts.val?.length && ((o.evalEvery > 0 && s.step % o.evalEvery === 0) || s.step === o.steps)) {
        s.valLoss = responseLoss(model, opts.val, o.batchSize, opts.padId ?? 0);
        model.train(true);
      }
      log.push(s);
      opts.onStep?.(s);
      if (opts.shouldStop?.(s)) break;
    }
  } finally {
    opt.zeroGrad();
    for (const t of Object.values(opt.stateDict().tensors)) t.dispose();
  }
  model.eval();
  return log;
}

/** Greedy answers to each row's prompt and the fraction that equal the expected response exactly (trimmed). */
export function exactMatch(model: CausalLM, tok: Tokenizer, rows: InstructionRow[], o: FormatOptions & { maxNewTokens?: number } = {}): { accuracy: number; answers: string[] } {
  const was = model.training;
  model.eval();
  const answers: string[] = [];
  let hit = 0;
  const stopIds = tok.eosId !== null ? [tok.eosId] : model.config.eos_token_id ?? [];
  for (const row of rows) {
    const { ids, response } = promptIds(row, tok, o);
    const r = generate(model, ids, { maxNewTokens: o.maxNewTokens ?? 24, stopIds, tokenizer: tok, stopStrings: o.template === 'chat' || 'messages' in row ? ['<|im_end|>'] : ['\n###'] });
    const text = r.text![0];
    answers.push(text);
    if (text.trim() === response.trim()) hit++;
  }
  model.train(was);
  return { accuracy: rows.length ? hit / rows.length : 0, answers };
}
