// `tslm reward train | score`: reward models (a scalar head in HF's *ForSequenceClassification
// layout) trained on preference pairs with the Bradley–Terry loss, and scoring with one.
import { parseArgs } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../args.js';
import { init, shutdown } from '../../backend/index.js';
import { PreferenceDataError, parsePreferences, readPreferences, tokenizePairs } from '../../align/preference.js';
import { parsePrompts, promptTokens } from '../../align/data.js';
import { DEFAULT_REWARD_OPTIONS, assertSameTokenizer, evaluateRewardModel, loadRewardModel, rewardTrain, saveRewardModel } from '../../align/reward_model.js';
import type { RewardTrainOptions } from '../../align/reward_model.js';
import { splitRows } from '../../sft/finetune.js';
import { loadTokenizer } from '../../tokenizers/load.js';
import { interruptible, num } from '../args.js';

const D = DEFAULT_REWARD_OPTIONS;

export const usage = `tslm reward train --model <dir> --data <pairs.jsonl> --out <dir> [--eval-data <file> | --eval-fraction 0.05]
      [--steps N | --epochs ${D.epochs}] [--batch-size ${D.batchSize}] [--micro-batch ${D.microBatch}] [--lr ${D.lr}] [--warmup N]
      [--min-lr-ratio R] [--weight-decay W] [--grad-clip ${D.gradClip}] [--no-margin] [--max-length N] [--eval-every N]
      [--checkpoint-every N] [--resume] [--seed S] [--tokenizer FILE] [--threads N]
    Train a reward model (LLaMA 2's recipe): the model's backbone with a scalar head (a new one
    on a causal LM, or an existing reward model's), Bradley–Terry loss on rows {"prompt",
    "chosen", "rejected", "margin"?} or chat pairs, with the margin term when rows carry one.
    Prints held-out pair accuracy; writes the model (LlamaForSequenceClassification layout:
    model.* + score.weight, num_labels 1, pad_token_id), metrics.jsonl and report.html to --out.
    Checkpoints (every --checkpoint-every steps, at the end, on Ctrl-C or a failed step) go to
    --out/checkpoint; --resume continues bit for bit.
tslm reward score --model <reward model> --data <file> [--out scores.jsonl] [--tokenizer FILE] [--threads N]
    Score with a reward model: preference rows get chosen_score / rejected_score (and the pair
    accuracy is printed); rows {"prompt" (or "messages"), "completion"} get a score.`;

const pos = (x: number) => Number.isInteger(x) && x > 0;
const nonNeg = (x: number) => Number.isInteger(x) && x >= 0;

async function train(rest: string[]): Promise<number> {
  const { values } = parseArgs({
    args: rest,
    options: {
      model: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, 'eval-data': { type: 'string' }, 'eval-fraction': { type: 'string' },
      steps: { type: 'string' }, epochs: { type: 'string' }, 'batch-size': { type: 'string' }, 'micro-batch': { type: 'string' }, lr: { type: 'string' },
      warmup: { type: 'string' }, 'min-lr-ratio': { type: 'string' }, 'weight-decay': { type: 'string' }, 'grad-clip': { type: 'string' },
      'no-margin': { type: 'boolean', default: false }, 'max-length': { type: 'string' }, 'eval-every': { type: 'string' }, 'checkpoint-every': { type: 'string' }, resume: { type: 'boolean', default: false }, seed: { type: 'string' },
      tokenizer: { type: 'string' }, threads: { type: 'string' },
    },
  });
  if (!values.model) throw new UsageError('--model is required');
  if (!values.data) throw new UsageError('--data is required');
  if (!values.out) throw new UsageError('--out is required');
  if (values['eval-data'] && values['eval-fraction']) throw new UsageError('--eval-data and --eval-fraction exclude each other');
  const options: Partial<RewardTrainOptions> = {
    steps: num(values.steps, 'steps', pos), epochs: num(values.epochs, 'epochs', pos), batchSize: num(values['batch-size'], 'batch-size', pos),
    microBatch: num(values['micro-batch'], 'micro-batch', pos), lr: num(values.lr, 'lr', (x) => x > 0), warmupSteps: num(values.warmup, 'warmup', nonNeg),
    minLrRatio: num(values['min-lr-ratio'], 'min-lr-ratio', (x) => x >= 0 && x <= 1), weightDecay: num(values['weight-decay'], 'weight-decay', (x) => x >= 0),
    gradClip: num(values['grad-clip'], 'grad-clip', (x) => x >= 0), evalEvery: num(values['eval-every'], 'eval-every', nonNeg), checkpointEvery: num(values['checkpoint-every'], 'checkpoint-every', nonNeg),
    seed: num(values.seed, 'seed', Number.isInteger), useMargin: !values['no-margin'],
  };
  if (options.microBatch === undefined && options.batchSize !== undefined) options.microBatch = Math.min(options.batchSize, D.microBatch);
  const maxLength = num(values['max-length'], 'max-length', pos);
  const pairs = readPreferences(values.data);
  const held = values['eval-data'] ? readPreferences(values['eval-data']) : null;
  const { train: tr, val } = held ? { train: pairs, val: held } : splitRows(pairs, num(values['eval-fraction'], 'eval-fraction', (x) => x >= 0 && x < 1) ?? 0.05, options.seed ?? 0);
  await init({ threads: num(values.threads, 'threads', pos) });
  const stop = interruptible('step');
  try {
    const { model: rm, tokenizer, newHead } = await loadRewardModel(values.model, { tokenizer: values.tokenizer, fromCausalLM: true, seed: options.seed });
    if (!tokenizer) throw new UsageError(`${values.model}: no tokenizer found; pass --tokenizer`);
    const limit = Math.min(maxLength ?? Infinity, rm.contextLength);
    const tok = (ps: typeof pairs) => tokenizePairs(ps, tokenizer, { eos: false, maxLength: Number.isFinite(limit) ? limit : undefined });
    const margins = tr.filter((p) => p.margin !== 0).length;
    console.error(`reward: ${rm.backbone.config.model_type} ${(rm.numParameters() / 1e6).toFixed(2)}M parameters (${newHead ? 'new score head' : 'continuing a reward model'}, pad_token_id ${rm.padTokenId}); ` +
      `${tr.length} training pairs (${margins} with a margin${options.useMargin ? '' : ', ignored'}), ${val.length} held out`);
    const r = await rewardTrain(rm, tok(tr), { ...options, eval: tok(val), out: values.out, tokenizer, resume: values.resume, signal: stop.signal });
    if (r.step < r.steps) console.error(`stopped after ${r.step} of ${r.steps} steps; continue with --resume (checkpoint in ${values.out})`);
    else {
      await saveRewardModel(rm, values.out, { tokenizer });
      console.log(r.evalAfter ? `held-out pair accuracy: ${(100 * r.evalAfter.accuracy).toFixed(1)}% on ${val.length} pairs${r.evalBefore ? ` (before: ${(100 * r.evalBefore.accuracy).toFixed(1)}%)` : ''}` : 'no held-out pairs');
      console.error(`done: ${r.steps} steps; ${path.resolve(values.out)} (reward model, metrics.jsonl, report.html)`);
    }
  } finally {
    stop.release();
    await shutdown();
  }
  return 0;
}

async function score(rest: string[]): Promise<number> {
  const { values } = parseArgs({ args: rest, options: { model: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, tokenizer: { type: 'string' }, threads: { type: 'string' } } });
  if (!values.model) throw new UsageError('--model is required');
  if (!values.data) throw new UsageError('--data is required');
  let text: string;
  try { text = readFileSync(values.data, 'utf8'); } catch (e) { throw new PreferenceDataError(`${values.data}: cannot read (${(e as Error).message})`); }
  let first: unknown = null;
  try { first = text.trimStart().startsWith('[') ? (JSON.parse(text) as unknown[])[0] : JSON.parse(text.split('\n').find((l) => l.trim()) ?? 'null'); } catch { /* the parsers below name the line */ }
  const isPairs = !!first && typeof first === 'object' && ('chosen' in first || 'rejected' in first);
  await init({ threads: num(values.threads, 'threads', pos) });
  try {
    const { model: rm, tokenizer } = await loadRewardModel(values.model);
    const tok = values.tokenizer ? loadTokenizer(values.tokenizer) : tokenizer;
    if (!tok) throw new UsageError(`${values.model}: no tokenizer found; pass --tokenizer`);
    if (values.tokenizer && tokenizer) assertSameTokenizer(tokenizer, tok, { a: `the reward model ${values.model}`, b: `--tokenizer ${values.tokenizer}` });
    const V = rm.backbone.config.vocab_size;
    if (tok.vocabSize > V) throw new Error(`--tokenizer ${values.tokenizer}: ${tok.vocabSize} tokens, the reward model ${values.model} reads ${V}: a reward model scores text in its own tokenizer's ids`);
    let rows: Record<string, unknown>[];
    if (isPairs) {
      const pairs = tokenizePairs(parsePreferences(text, values.data), tok, { eos: false, maxLength: rm.contextLength });
      const m = evaluateRewardModel(rm, pairs);
      rows = pairs.map((_, i) => ({ chosen_score: m.chosen[i], rejected_score: m.rejected[i] }));
      console.log(`pair accuracy: ${(100 * m.accuracy).toFixed(1)}% on ${pairs.length} pairs; mean margin ${m['rewards/margins'].toFixed(4)}`);
    } else {
      const prompts = parsePrompts(text, values.data);
      const seqs = prompts.map((p) => {
        if (typeof p.row.completion !== 'string') throw new PreferenceDataError(`${p.where}: expected "completion" (a string) to score, or "chosen" and "rejected"`);
        const ids = [...promptTokens(tok, p.prompt), ...tok.encode(p.row.completion)];
        if (ids.length > rm.contextLength) throw new PreferenceDataError(`${p.where}: ${ids.length} tokens, the reward model's context is ${rm.contextLength}`);
        return ids;
      });
      const s = rm.scoreSequences(seqs);
      rows = prompts.map((_, i) => ({ score: s[i] }));
      console.error(`scored ${rows.length} completions; mean ${(s.reduce((a, b) => a + b, 0) / Math.max(1, s.length)).toFixed(4)}`);
    }
    const lines = rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
    if (values.out) writeFileSync(values.out, lines);
    else process.stdout.write(lines);
    rm.dispose();
  } finally {
    await shutdown();
  }
  return 0;
}

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'train') return train(rest);
  if (sub === 'score') return score(rest);
  throw new UsageError(sub === undefined ? 'a subcommand is required (train, score)' : `unknown subcommand '${sub}' (expected train or score)`);
}
