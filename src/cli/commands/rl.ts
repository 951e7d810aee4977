// `tslm rl grpo | demo | shortest-rejection`: policy optimisation with verifiable rewards.
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../args.js';
import { init, shutdown } from '../../backend/index.js';
import { loadModel } from '../../io/model.js';
import { splitRows } from '../../sft/finetune.js';
import { readPrompts, promptTokens } from '../../align/data.js';
import { createReward } from '../../align/rewards.js';
import type { RewardFunction } from '../../align/rewards.js';
import { DEFAULT_GRPO_OPTIONS, grpoOptions, grpoTrain } from '../../align/grpo.js';
import type { GrpoOptions } from '../../align/grpo.js';
import { LOSS_TYPES, KL_ESTIMATORS } from '../../align/losses.js';
import type { LossType, KlEstimator, ImportanceSampling } from '../../align/losses.js';
import type { RewardScale } from '../../align/advantages.js';
import { shortestRejection } from '../../align/advantages.js';
import { rollout } from '../../align/rollout.js';
import { rlDemo } from '../../align/demo.js';
import { demoArgs, interruptible, num } from '../args.js';

const D = DEFAULT_GRPO_OPTIONS;

export const usage = `tslm rl grpo --model <dir> --data <prompts.jsonl> --reward math|code|format|<module.js>[:w][,…] --out <dir>
      [--eval-data <file> | --eval-fraction 0.05] [--steps ${D.steps}] [--prompts-per-step ${D.promptsPerStep}] [--group-size ${D.groupSize}]
      [--max-new-tokens ${D.maxNewTokens}] [--temperature ${D.temperature}] [--top-p P] [--top-k K] [--stop-tag '${D.stopTags[0]}']
      [--loss grpo|bnpo|dapo|dr_grpo|gspo|k1.5] [--epsilon ${D.epsilonLow}] [--epsilon-low E] [--epsilon-high E] [--delta D]
      [--beta ${D.beta}] [--kl k1|k2|k3] [--ref-model <dir>] [--importance-sampling token|sequence] [--tau ${D.tau}]
      [--mu ${D.mu}] [--micro-batch ${D.microBatch}] [--scale-rewards group|batch|none] [--dynamic-sampling] [--max-resample ${D.maxResample}]
      [--overlong-buffer L] [--overlong-filter] [--length-penalty [W]] [--sampling uniform|prioritized|curriculum]
      [--curriculum] [--curriculum-steps N] [--lr ${D.lr}] [--warmup N] [--min-lr-ratio R] [--weight-decay W] [--grad-clip C]
      [--eval-every ${D.evalEvery}] [--eval-samples N] [--eval-greedy] [--checkpoint-every ${D.checkpointEvery}] [--seed S]
      [--resume] [--tokenizer FILE] [--threads N]
    Reinforcement learning with verifiable rewards (GRPO; DAPO clip-higher, dynamic sampling and
    overlong shaping; Dr. GRPO; GSPO; Kimi k1.5 mirror descent and length penalty). Prompt rows:
    {"prompt": …} (raw text), {"messages": […]} (chat template) or {"instruction": …}, plus what
    the rewards read ("answer"; "tests", "entry_point"; "difficulty" for --curriculum). Held-out
    accuracy is the first reward's mean (the verifier). Writes metrics.jsonl, report.html,
    checkpoints (--resume continues bit for bit) and the trained model to --out.
tslm rl demo [--out rl-demo] [--quick] [--seed S] [--threads N]
    A 0.8M-parameter LLaMA learns 3-step arithmetic answered <think>…</think><answer>…</answer>:
    SFT on an imperfect teacher until held-out accuracy stops improving, then GRPO against the
    math verifier; prints held-out accuracy of the SFT and RL models and writes the report.
tslm rl shortest-rejection --model <dir> --data <prompts.jsonl> --reward <spec> --out <file.jsonl>
      [--samples 8] [--max-new-tokens ${D.maxNewTokens}] [--temperature 1] [--stop-tag T] [--seed S]
    Kimi k1.5 long2short data: per prompt, the shortest of --samples completions the first reward
    judges correct, written as {"prompt", "completion"} rows.`;

const choice = <T extends string>(v: string | undefined, name: string, allowed: readonly T[]): T | undefined => {
  if (v === undefined) return undefined;
  if (!allowed.includes(v as T)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got '${v}'`);
  return v as T;
};

const pos = (x: number) => Number.isInteger(x) && x > 0;
const nonNeg = (x: number) => Number.isInteger(x) && x >= 0;

async function loadPolicy(values: Record<string, unknown>) {
  if (!values.model) throw new UsageError('--model is required');
  if (!values.data) throw new UsageError('--data is required');
  const { model, tokenizer } = await loadModel(values.model as string, { tokenizer: values.tokenizer as string | undefined, dtype: 'f32' });
  if (!tokenizer) throw new UsageError(`${values.model}: no tokenizer found; pass --tokenizer`);
  return { model, tokenizer };
}

function rewardOf(spec: string | undefined): Promise<RewardFunction> {
  if (!spec) throw new UsageError('--reward is required (math, code, format, a module path, or a weighted list such as math:1,format:0.2)');
  return createReward(spec, { cwd: process.cwd(), onError: (name, msg) => process.stderr.write(`reward ${name}: ${msg} (scored 0; training goes on)\n`) });
}

/** `--length-penalty` alone means weight 1 (the flag may be given without a value). */
function lengthPenaltyArgs(args: string[]): string[] {
  const out: string[] = [];
  args.forEach((a, i) => {
    out.push(a);
    if (a === '--length-penalty' && (i + 1 >= args.length || args[i + 1].startsWith('--'))) out.push('1');
  });
  return out;
}

async function grpo(rest: string[]): Promise<number> {
  const { values } = parseArgs({
    args: lengthPenaltyArgs(rest),
    options: {
      model: { type: 'string' }, data: { type: 'string' }, reward: { type: 'string' }, out: { type: 'string' }, 'eval-data': { type: 'string' },
      'eval-fraction': { type: 'string' }, steps: { type: 'string' }, 'prompts-per-step': { type: 'string' }, 'group-size': { type: 'string' },
      'max-new-tokens': { type: 'string' }, temperature: { type: 'string' }, 'top-p': { type: 'string' }, 'top-k': { type: 'string' },
      'stop-tag': { type: 'string', multiple: true }, loss: { type: 'string' }, epsilon: { type: 'string' }, 'epsilon-low': { type: 'string' },
      'epsilon-high': { type: 'string' }, delta: { type: 'string' }, beta: { type: 'string' }, kl: { type: 'string' }, 'ref-model': { type: 'string' },
      'importance-sampling': { type: 'string' }, tau: { type: 'string' }, mu: { type: 'string' }, 'micro-batch': { type: 'string' },
      'scale-rewards': { type: 'string' }, 'dynamic-sampling': { type: 'boolean', default: false }, 'max-resample': { type: 'string' },
      'overlong-buffer': { type: 'string' }, 'overlong-filter': { type: 'boolean', default: false }, 'length-penalty': { type: 'string' },
      sampling: { type: 'string' }, curriculum: { type: 'boolean', default: false }, 'curriculum-steps': { type: 'string' }, lr: { type: 'string' },
      warmup: { type: 'string' }, 'min-lr-ratio': { type: 'string' }, 'weight-decay': { type: 'string' }, 'grad-clip': { type: 'string' },
      'eval-every': { type: 'string' }, 'eval-samples': { type: 'string' }, 'eval-greedy': { type: 'boolean', default: false },
      'checkpoint-every': { type: 'string' }, seed: { type: 'string' }, resume: { type: 'boolean', default: false }, tokenizer: { type: 'string' },
      threads: { type: 'string' },
    },
  });
  if (!values.out) throw new UsageError('--out is required');
  if (values.curriculum && values.sampling && values.sampling !== 'curriculum') throw new UsageError('--curriculum conflicts with --sampling ' + values.sampling);
  const eps = num(values.epsilon, 'epsilon', (x) => x > 0);
  const options: Partial<GrpoOptions> = {
    steps: num(values.steps, 'steps', pos), promptsPerStep: num(values['prompts-per-step'], 'prompts-per-step', pos),
    groupSize: num(values['group-size'], 'group-size', pos), maxNewTokens: num(values['max-new-tokens'], 'max-new-tokens', pos),
    temperature: num(values.temperature, 'temperature', (x) => x > 0), topP: num(values['top-p'], 'top-p', (x) => x > 0 && x <= 1),
    topK: num(values['top-k'], 'top-k', nonNeg), stopTags: values['stop-tag'],
    loss: choice<LossType>(values.loss, 'loss', LOSS_TYPES), epsilonLow: num(values['epsilon-low'], 'epsilon-low', (x) => x > 0) ?? eps,
    epsilonHigh: num(values['epsilon-high'], 'epsilon-high', (x) => x > 0) ?? eps, delta: num(values.delta, 'delta', (x) => x > 1),
    beta: num(values.beta, 'beta', (x) => x >= 0), kl: choice<KlEstimator>(values.kl, 'kl', KL_ESTIMATORS),
    importanceSampling: choice<ImportanceSampling>(values['importance-sampling'], 'importance-sampling', ['token', 'sequence']),
    tau: num(values.tau, 'tau', (x) => x > 0), mu: num(values.mu, 'mu', pos), microBatch: num(values['micro-batch'], 'micro-batch', pos),
    scaleRewards: choice<RewardScale>(values['scale-rewards'], 'scale-rewards', ['group', 'batch', 'none']),
    dynamicSampling: values['dynamic-sampling'], maxResample: num(values['max-resample'], 'max-resample', nonNeg),
    overlongBuffer: num(values['overlong-buffer'], 'overlong-buffer', pos), overlongFilter: values['overlong-filter'],
    lengthPenalty: num(values['length-penalty'], 'length-penalty', (x) => x >= 0),
    sampling: values.curriculum ? 'curriculum' : choice(values.sampling, 'sampling', ['uniform', 'prioritized', 'curriculum'] as const),
    curriculumSteps: num(values['curriculum-steps'], 'curriculum-steps', pos), lr: num(values.lr, 'lr', (x) => x > 0),
    warmupSteps: num(values.warmup, 'warmup', nonNeg), minLrRatio: num(values['min-lr-ratio'], 'min-lr-ratio', (x) => x >= 0 && x <= 1),
    weightDecay: num(values['weight-decay'], 'weight-decay', (x) => x >= 0), gradClip: num(values['grad-clip'], 'grad-clip', (x) => x >= 0),
    evalEvery: num(values['eval-every'], 'eval-every', nonNeg), evalSamples: num(values['eval-samples'], 'eval-samples', pos),
    evalGreedy: values['eval-greedy'], checkpointEvery: num(values['checkpoint-every'], 'checkpoint-every', nonNeg),
    seed: num(values.seed, 'seed', Number.isInteger),
  };
  // Check the options and the data before loading anything heavy.
  const o = grpoOptions(options);
  if (values['eval-data'] && values['eval-fraction']) throw new UsageError('--eval-data and --eval-fraction exclude each other');
  const rows = values.data ? readPrompts(values.data) : [];
  // A seeded held-out fraction (--eval-fraction 0: none), as tslm finetune splits its rows.
  const { train, val: held } = values['eval-data'] ? { train: rows, val: readPrompts(values['eval-data']) } : splitRows(rows, num(values['eval-fraction'], 'eval-fraction', (x) => x >= 0 && x < 1) ?? 0.05, o.seed + 17);
  await init({ threads: num(values.threads, 'threads', pos) });
  const reward = await rewardOf(values.reward);
  const stop = interruptible('batch');
  try {
    const { model, tokenizer } = await loadPolicy(values);
    let ref = null;
    if (o.beta > 0) {
      const refDir = values['ref-model'] ?? values.model!;
      const r = await loadModel(refDir, { tokenizer: values.tokenizer, dtype: 'f32' });
      if (r.model.config.vocab_size !== model.config.vocab_size) throw new Error(`--ref-model ${refDir}: vocabulary of ${r.model.config.vocab_size} tokens, the policy's has ${model.config.vocab_size}: the reference must share the policy's tokenizer`);
      if (r.tokenizer && tokenizer && r.tokenizer.vocabSize !== tokenizer.vocabSize) throw new Error(`--ref-model ${refDir}: its tokenizer has ${r.tokenizer.vocabSize} tokens, the policy's ${tokenizer.vocabSize}`);
      ref = r.model;
      ref.eval();
    } else if (values['ref-model']) throw new UsageError('--ref-model needs --beta > 0 (the KL term is what uses it)');
    console.error(`rl: ${model.config.model_type} ${(model.numParameters() / 1e6).toFixed(2)}M parameters; ${train.length} training prompts, ${held.length} held out; reward ${reward.name}; loss ${o.loss}, G ${o.groupSize}, ${o.promptsPerStep} prompts per batch, β ${o.beta}`);
    const r = await grpoTrain({ model, tokenizer, ref, train, eval: held, reward, options, out: values.out, resume: values.resume, signal: stop.signal, title: `tslm rl grpo: ${path.basename(path.resolve(values.model!))}` });
    console.error(r.step < o.steps ? `stopped after ${r.step} batches; continue with --resume (checkpoint in ${values.out})` : `done: ${r.step} batches; ${values.out} (model, metrics.jsonl, report.html)`);
  } finally {
    stop.release();
    await reward.close?.();
    await shutdown();
  }
  return 0;
}

async function demo(rest: string[]): Promise<number> {
  const { out, quick, seed, threads } = demoArgs(rest, 'rl-demo');
  await init({ threads });
  try {
    const r = await rlDemo({ out, quick, seed });
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
    console.log(`held-out accuracy (${r.heldOut} problems, verifier-judged; sampled: ${r.evalSamples} samples each at temperature 1, fixed seed):`);
    console.log(`  SFT model (best of ${r.sft.steps} steps: step ${r.sft.bestStep}): ${pct(r.sft.accuracy)} sampled, ${pct(r.sft.greedy)} greedy`);
    console.log(`  RL model  (${r.rl.result.step} GRPO batches): ${pct(r.rl.accuracy)} sampled, ${pct(r.rl.greedy)} greedy  (+${(100 * (r.rl.accuracy - r.sft.accuracy)).toFixed(1)} / +${(100 * (r.rl.greedy - r.sft.greedy)).toFixed(1)} points)`);
    if (r.rl.kl !== undefined) console.log(`  KL to the SFT model at the end: ${r.rl.kl.toExponential(2)} nats/token`);
    console.log(`total ${(r.seconds / 60).toFixed(1)} min (SFT ${(r.sft.seconds / 60).toFixed(1)}, RL ${(r.rl.seconds / 60).toFixed(1)}); report: ${path.join(out, 'rl', 'report.html')}`);
    console.log(`try other recipes from the SFT model: tslm rl grpo --model ${path.join(out, 'sft')} --data ${path.join(out, 'prompts.jsonl')} --eval-data ${path.join(out, 'heldout.jsonl')} --reward math,format:0.1 --lr 1e-4 --loss dapo --epsilon-high 0.28 --dynamic-sampling --out ${out}-dapo`);
  } finally {
    await shutdown();
  }
  return 0;
}

async function shortest(rest: string[]): Promise<number> {
  const { values } = parseArgs({
    args: rest,
    options: {
      model: { type: 'string' }, data: { type: 'string' }, reward: { type: 'string' }, out: { type: 'string' }, samples: { type: 'string' },
      'max-new-tokens': { type: 'string' }, temperature: { type: 'string' }, 'stop-tag': { type: 'string', multiple: true }, seed: { type: 'string' },
      tokenizer: { type: 'string' }, threads: { type: 'string' },
    },
  });
  if (!values.out) throw new UsageError('--out is required');
  const rows = values.data ? readPrompts(values.data) : [];
  await init({ threads: num(values.threads, 'threads', pos) });
  const reward = await rewardOf(values.reward);
  try {
    const { model, tokenizer } = await loadPolicy(values);
    const n = num(values.samples, 'samples', pos) ?? 8;
    const rs = rollout(model, tokenizer, rows.map((r) => promptTokens(tokenizer, r.prompt)), {
      groupSize: n, maxNewTokens: num(values['max-new-tokens'], 'max-new-tokens', pos) ?? D.maxNewTokens,
      temperature: num(values.temperature, 'temperature', (x) => x > 0) ?? 1, seed: num(values.seed, 'seed', Number.isInteger) ?? 0,
      stopTags: values['stop-tag'] ?? D.stopTags,
    });
    const s = await reward.scoreDetailed(rs.map((r) => ({ prompt: rows[r.prompt].prompt, completion: r.text, row: rows[r.prompt].row, truncated: r.truncated, completionTokens: r.ids.length })));
    const verifier = Object.values(s.components)[0] ?? s.total;
    const picked = shortestRejection(rs.map((r, i) => ({ prompt: String(r.prompt), correct: verifier[i] >= 1, length: r.ids.length, r })));
    writeFileSync(values.out, picked.map((p) => JSON.stringify({ prompt: rows[p.r.prompt].prompt, completion: p.r.text })).join('\n') + (picked.length ? '\n' : ''));
    console.error(`${picked.length} of ${rows.length} prompts had a correct completion among ${n} samples; the shortest of each: ${values.out}`);
  } finally {
    await reward.close?.();
    await shutdown();
  }
  return 0;
}

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'grpo') return grpo(rest);
  if (sub === 'demo') return demo(rest);
  if (sub === 'shortest-rejection') return shortest(rest);
  throw new UsageError(sub === undefined ? 'a subcommand is required (grpo, demo, shortest-rejection)' : `unknown subcommand '${sub}' (expected grpo, demo or shortest-rejection)`);
}
