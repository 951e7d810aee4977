// `tslm medusa train`: Medusa heads for a model, trained on its own continuations.
import { parseArgs } from 'node:util';
import path from 'node:path';
import { UsageError } from '../args.js';
import { init, shutdown } from '../../backend/index.js';
import { trainMedusa, DEFAULT_MEDUSA_TRAIN } from '../../train/medusa.js';
import { num } from '../args.js';

const D = DEFAULT_MEDUSA_TRAIN;

export const usage = `tslm medusa train --model <dir> [--data <file|dir|jsonl>] [--out <dir>] [--heads ${D.heads}] [--layers ${D.layers}]
      [--tie-lm-head] [--joint [--lm-loss kl|ce] [--lm-weight 1]] [--heads-coefficient 0.2] [--decay 0.8] [--prompts ${D.prompts}]
      [--prompt-tokens ${D.promptTokens}] [--temperature 0] [--field text] [--seq-len T] [--steps ${D.train.steps}]
      [--batch-size ${D.train.batchSize}] [--lr ${D.train.lr}] [--warmup N] [--eval-every N] [--val-fraction F]
      [--init <medusa dir>] [--seed S] [--tokenizer FILE] [--threads N]
    Train Medusa heads (Cai et al. 2024) on self-distilled data: the model continues prompts
    (the first --prompt-tokens tokens of each line of --data; default data: the quickstart
    corpus) greedily (or at --temperature), and head k learns the token k+2 ahead from its own
    last hidden state; losses weighted heads-coefficient·decay^(k+1) as the Medusa repo's recipe.
    --tie-lm-head: every head's LM head is the model's output head (only the ResBlocks train;
    decoding runs the heads' LM products as one few-row product; saved as copies, same layout).
    Medusa-1 (default) freezes the model; --joint (Medusa-2) trains it too and saves it with
    the heads; its own loss × --lm-weight joins the heads': --lm-loss kl (default) the KL
    divergence from the original model's next-token distribution (the Medusa repo's
    self-distillation: the model keeps its distribution), ce the next-token cross-entropy on
    the training text (on its own greedy text this sharpens the model away from it). Prints each head's held-out
    top-1…top-10 accuracy (medusa{i}_top{k}) before and after; writes config.json +
    medusa_lm_head.safetensors (the Medusa repo's layout), metrics.jsonl and heads_accuracy.json
    to --out (default: <model>-medusa).`;

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'train') throw new UsageError(sub === undefined ? 'a subcommand is required (train)' : `unknown subcommand '${sub}' (expected train)`);
  const { values } = parseArgs({
    args: rest,
    options: {
      model: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, heads: { type: 'string' }, layers: { type: 'string' },
      joint: { type: 'boolean', default: false }, 'tie-lm-head': { type: 'boolean', default: false }, 'lm-weight': { type: 'string' }, 'lm-loss': { type: 'string' }, 'heads-coefficient': { type: 'string' }, decay: { type: 'string' },
      prompts: { type: 'string' }, 'prompt-tokens': { type: 'string' }, temperature: { type: 'string' }, field: { type: 'string' },
      'seq-len': { type: 'string' }, steps: { type: 'string' }, 'batch-size': { type: 'string' }, lr: { type: 'string' }, warmup: { type: 'string' },
      'eval-every': { type: 'string' }, 'val-fraction': { type: 'string' }, init: { type: 'string' }, seed: { type: 'string' },
      tokenizer: { type: 'string' }, threads: { type: 'string' }, 'weight-decay': { type: 'string' },
    },
  });
  if (!values.model) throw new UsageError('--model is required');
  for (const f of ['lm-weight', 'lm-loss'] as const) if (values[f] !== undefined && !values.joint) throw new UsageError(`--${f} applies to --joint training (Medusa-2) only`);
  const lmLoss = values['lm-loss'];
  if (lmLoss !== undefined && lmLoss !== 'kl' && lmLoss !== 'ce') throw new UsageError(`--lm-loss: kl or ce, got '${lmLoss}'`);
  const pos = (x: number) => Number.isInteger(x) && x > 0;
  const out = values.out ?? `${path.resolve(values.model).replace(/[\\/]+$/, '')}-medusa`;
  await init({ threads: num(values.threads, 'threads', pos) });
  try {
    const r = await trainMedusa({
      model: values.model, data: values.data, out, tokenizer: values.tokenizer, textField: values.field, init: values.init,
      heads: num(values.heads, 'heads', pos), layers: num(values.layers, 'layers', (x) => Number.isInteger(x) && x >= 0),
      joint: values.joint, tieLmHead: values['tie-lm-head'], lmWeight: num(values['lm-weight'], 'lm-weight', (x) => x >= 0), lmLoss,
      headsCoefficient: num(values['heads-coefficient'], 'heads-coefficient', (x) => x > 0), decay: num(values.decay, 'decay', (x) => x > 0),
      prompts: num(values.prompts, 'prompts', pos), promptTokens: num(values['prompt-tokens'], 'prompt-tokens', pos),
      temperature: num(values.temperature, 'temperature', (x) => x >= 0),
      seqLen: num(values['seq-len'], 'seq-len', pos), steps: num(values.steps, 'steps', pos), batchSize: num(values['batch-size'], 'batch-size', pos),
      lr: num(values.lr, 'lr', (x) => x > 0), warmupSteps: num(values.warmup, 'warmup', (x) => Number.isInteger(x) && x >= 0),
      evalEvery: num(values['eval-every'], 'eval-every', (x) => Number.isInteger(x) && x >= 0), valFraction: num(values['val-fraction'], 'val-fraction', (x) => x > 0 && x < 1),
      weightDecay: num(values['weight-decay'], 'weight-decay', (x) => x >= 0), seed: num(values.seed, 'seed', Number.isInteger),
    });
    const top1 = r.after.topK.map((t) => t[0].toFixed(3)).join(' / ');
    console.error(`done: ${r.state.step} steps; held-out top-1 per head ${top1}; heads: ${out} (config.json, medusa_lm_head.safetensors)`);
    r.heads.dispose();
    r.base.dispose();
  } finally {
    await shutdown();
  }
  return 0;
}
