// `tslm dpo`: Direct Preference Optimization (or IPO) of a model on preference pairs.
import { parseArgs } from 'node:util';
import path from 'node:path';
import { UsageError } from '../args.js';
import { init, shutdown } from '../../backend/index.js';
import { loadModel, saveModel } from '../../io/model.js';
import { readPreferences, tokenizePairs } from '../../align/preference.js';
import { DEFAULT_DPO_OPTIONS, DPO_LOSS_TYPES, dpoOptions, dpoTrain } from '../../align/dpo.js';
import type { DpoLossType, DpoOptions } from '../../align/dpo.js';
import { assertSameTokenizer } from '../../align/reward_model.js';
import { splitRows } from '../../sft/finetune.js';
import { interruptible, num } from '../args.js';

const D = DEFAULT_DPO_OPTIONS;

export const usage = `tslm dpo --model <sft model> --data <pairs.jsonl> --out <dir> [--loss sigmoid|ipo] [--beta ${D.beta}]
      [--label-smoothing E] [--ref-model <dir>] [--eval-data <file> | --eval-fraction 0.05] [--steps N | --epochs ${D.epochs}]
      [--batch-size ${D.batchSize}] [--micro-batch ${D.microBatch}] [--lr ${D.lr}] [--warmup N] [--min-lr-ratio R] [--weight-decay W]
      [--grad-clip ${D.gradClip}] [--max-length N] [--eval-every N] [--checkpoint-every N] [--resume] [--seed S] [--tokenizer FILE] [--threads N]
    Direct Preference Optimization (sigmoid loss; --label-smoothing: conservative DPO) or IPO on
    rows {"prompt", "chosen", "rejected"} (text) or chat ({"prompt": [...], "chosen": [...],
    "rejected": [...]}, or "chosen"/"rejected" conversations sharing their prompt). The reference
    is the starting model (or --ref-model); its log-probs are computed once before training.
    Logs TRL's metrics (rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins,
    logps/chosen, logps/rejected; eval_… held out) to metrics.jsonl and writes report.html and
    the trained model to --out. Checkpoints (every --checkpoint-every steps, at the end, on Ctrl-C
    or a failed step) go to --out/checkpoint; --resume continues bit for bit.`;

const pos = (x: number) => Number.isInteger(x) && x > 0;
const nonNeg = (x: number) => Number.isInteger(x) && x >= 0;

export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, loss: { type: 'string' }, beta: { type: 'string' },
      'label-smoothing': { type: 'string' }, 'ref-model': { type: 'string' }, 'eval-data': { type: 'string' }, 'eval-fraction': { type: 'string' },
      steps: { type: 'string' }, epochs: { type: 'string' }, 'batch-size': { type: 'string' }, 'micro-batch': { type: 'string' }, lr: { type: 'string' },
      warmup: { type: 'string' }, 'min-lr-ratio': { type: 'string' }, 'weight-decay': { type: 'string' }, 'grad-clip': { type: 'string' },
      'max-length': { type: 'string' }, 'eval-every': { type: 'string' }, 'checkpoint-every': { type: 'string' }, resume: { type: 'boolean', default: false }, seed: { type: 'string' }, tokenizer: { type: 'string' }, threads: { type: 'string' },
    },
  });
  if (!values.model) throw new UsageError('--model is required');
  if (!values.data) throw new UsageError('--data is required');
  if (!values.out) throw new UsageError('--out is required');
  if (values.loss !== undefined && !DPO_LOSS_TYPES.includes(values.loss as DpoLossType)) throw new UsageError(`--loss must be one of ${DPO_LOSS_TYPES.join(', ')}, got '${values.loss}'`);
  if (values['eval-data'] && values['eval-fraction']) throw new UsageError('--eval-data and --eval-fraction exclude each other');
  const options: Partial<DpoOptions> = {
    loss: values.loss as DpoLossType | undefined, beta: num(values.beta, 'beta', (x) => x > 0),
    labelSmoothing: num(values['label-smoothing'], 'label-smoothing', (x) => x >= 0 && x < 0.5),
    steps: num(values.steps, 'steps', pos), epochs: num(values.epochs, 'epochs', pos), batchSize: num(values['batch-size'], 'batch-size', pos),
    microBatch: num(values['micro-batch'], 'micro-batch', pos), lr: num(values.lr, 'lr', (x) => x > 0), warmupSteps: num(values.warmup, 'warmup', nonNeg),
    minLrRatio: num(values['min-lr-ratio'], 'min-lr-ratio', (x) => x >= 0 && x <= 1), weightDecay: num(values['weight-decay'], 'weight-decay', (x) => x >= 0),
    gradClip: num(values['grad-clip'], 'grad-clip', (x) => x >= 0), evalEvery: num(values['eval-every'], 'eval-every', nonNeg), checkpointEvery: num(values['checkpoint-every'], 'checkpoint-every', nonNeg), seed: num(values.seed, 'seed', Number.isInteger),
  };
  if (options.microBatch === undefined && options.batchSize !== undefined) options.microBatch = Math.min(options.batchSize, D.microBatch);
  const o = dpoOptions(options);
  const maxLength = num(values['max-length'], 'max-length', pos);
  // The data is checked before any model is loaded.
  const pairs = readPreferences(values.data);
  const held = values['eval-data'] ? readPreferences(values['eval-data']) : null;
  const { train, val } = held ? { train: pairs, val: held } : splitRows(pairs, num(values['eval-fraction'], 'eval-fraction', (x) => x >= 0 && x < 1) ?? 0.05, o.seed);
  await init({ threads: num(values.threads, 'threads', pos) });
  const stop = interruptible('step');
  try {
    const { model, tokenizer } = await loadModel(values.model, { tokenizer: values.tokenizer, dtype: 'f32' });
    if (!tokenizer) throw new UsageError(`${values.model}: no tokenizer found; pass --tokenizer`);
    let ref = null;
    if (values['ref-model']) {
      const r = await loadModel(values['ref-model'], { tokenizer: values.tokenizer, dtype: 'f32' });
      if (r.model.config.vocab_size !== model.config.vocab_size) throw new Error(`--ref-model ${values['ref-model']}: vocabulary of ${r.model.config.vocab_size} tokens, the policy's has ${model.config.vocab_size}: the reference must share the policy's tokenizer`);
      if (r.tokenizer) assertSameTokenizer(r.tokenizer, tokenizer, { a: `--ref-model ${values['ref-model']}`, b: `the policy ${values.model}` });
      ref = r.model;
    }
    const limit = Math.min(maxLength ?? Infinity, model.contextLength + 1);
    const tok = (ps: typeof pairs) => tokenizePairs(ps, tokenizer, { maxLength: Number.isFinite(limit) ? limit : undefined });
    console.error(`dpo: ${model.config.model_type} ${(model.numParameters() / 1e6).toFixed(2)}M parameters; ${train.length} training pairs, ${val.length} held out; loss ${o.loss}, β ${o.beta}${o.labelSmoothing ? `, label smoothing ${o.labelSmoothing}` : ''}; reference: ${values['ref-model'] ?? 'the starting model'}`);
    const r = await dpoTrain({ model, tokenizer, ref, train: tok(train), eval: tok(val), options: o, out: values.out, resume: values.resume, signal: stop.signal });
    ref?.dispose();
    if (r.step < r.steps) console.error(`stopped after ${r.step} of ${r.steps} steps; continue with --resume (checkpoint in ${values.out})`);
    else {
      await saveModel(model, values.out, { tokenizer });
      console.error(`done: ${r.steps} steps; ${path.resolve(values.out)} (model, metrics.jsonl, report.html)`);
    }
  } finally {
    stop.release();
    await shutdown();
  }
  return 0;
}
