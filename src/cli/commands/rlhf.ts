// `tslm rlhf rejection-sampling`: LLaMA 2-Chat's rejection-sampling fine-tuning rounds.
import { parseArgs } from 'node:util';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../main.js';
import { init, shutdown } from '../../backend/index.js';
import { loadModel, saveModel } from '../../io/model.js';
import { readPrompts } from '../../align/data.js';
import { createReward } from '../../align/rewards.js';
import { assertSameTokenizer, loadRewardModel } from '../../align/reward_model.js';
import { DEFAULT_REJECTION_OPTIONS, rejectionSampling, rewardModelScorer, verifierScorer } from '../../align/rejection.js';
import type { Scorer } from '../../align/rejection.js';
import { num } from './generate.js';

const D = DEFAULT_REJECTION_OPTIONS;

export const usage = `tslm rlhf rejection-sampling --model <dir> --data <prompts.jsonl> (--reward-model <rm> | --reward <spec>) --out <dir>
      [--samples ${D.samples}] [--rounds ${D.rounds}] [--max-new-tokens ${D.maxNewTokens}] [--temperature ${D.temperature}] [--top-p P]
      [--stop-tag T] [--min-score S] [--steps N] [--lr ${D.sft.lr}] [--batch-size ${D.sft.batchSize}] [--seed S] [--tokenizer FILE] [--threads N]
    Rejection-sampling fine-tuning (LLaMA 2-Chat): per prompt, --samples completions from the
    policy scored by a reward model (tslm reward train) or a verifiable reward (as tslm rl
    grpo's --reward), the best kept (if ≥ --min-score), SFT on the kept ones (loss on the
    completion); --rounds repeats from the fine-tuned policy. Writes the model,
    rejection_sampling.jsonl (the kept samples) and rounds.json to --out.`;

const pos = (x: number) => Number.isInteger(x) && x > 0;

async function rejection(rest: string[]): Promise<number> {
  const { values } = parseArgs({
    args: rest,
    options: {
      model: { type: 'string' }, data: { type: 'string' }, 'reward-model': { type: 'string' }, reward: { type: 'string' }, out: { type: 'string' },
      samples: { type: 'string' }, rounds: { type: 'string' }, 'max-new-tokens': { type: 'string' }, temperature: { type: 'string' }, 'top-p': { type: 'string' },
      'stop-tag': { type: 'string', multiple: true }, 'min-score': { type: 'string' }, steps: { type: 'string' }, lr: { type: 'string' },
      'batch-size': { type: 'string' }, seed: { type: 'string' }, tokenizer: { type: 'string' }, threads: { type: 'string' },
    },
  });
  if (!values.model) throw new UsageError('--model is required');
  if (!values.data) throw new UsageError('--data is required');
  if (!values.out) throw new UsageError('--out is required');
  if (!values['reward-model'] === !values.reward) throw new UsageError('give one of --reward-model <dir> or --reward <spec>');
  const rows = readPrompts(values.data);
  const options = {
    samples: num(values.samples, 'samples', pos), rounds: num(values.rounds, 'rounds', pos), maxNewTokens: num(values['max-new-tokens'], 'max-new-tokens', pos),
    temperature: num(values.temperature, 'temperature', (x) => x > 0), topP: num(values['top-p'], 'top-p', (x) => x > 0 && x <= 1),
    stopTags: values['stop-tag'], minScore: num(values['min-score'], 'min-score', Number.isFinite), seed: num(values.seed, 'seed', Number.isInteger),
    sft: {
      ...D.sft, ...(values.steps ? { steps: num(values.steps, 'steps', pos) } : {}), ...(values.lr ? { lr: num(values.lr, 'lr', (x) => x > 0) } : {}),
      ...(values['batch-size'] ? { batchSize: num(values['batch-size'], 'batch-size', pos) } : {}),
    },
  };
  await init({ threads: num(values.threads, 'threads', pos) });
  let close: (() => Promise<void> | void) | undefined;
  try {
    const { model, tokenizer } = await loadModel(values.model, { tokenizer: values.tokenizer });
    if (!tokenizer) throw new UsageError(`${values.model}: no tokenizer found; pass --tokenizer`);
    let scorer: Scorer;
    if (values['reward-model']) {
      const rm = await loadRewardModel(values['reward-model']);
      if (!rm.tokenizer) throw new Error(`${values['reward-model']}: the reward model has no tokenizer.json; it must share the policy's tokenizer`);
      assertSameTokenizer(tokenizer, rm.tokenizer, { a: `the policy (${values.model})`, b: `the reward model (${values['reward-model']})` });
      rm.model.eval();
      scorer = rewardModelScorer(rm.model);
    } else {
      const reward = await createReward(values.reward!, { cwd: process.cwd(), onError: (name, msg) => process.stderr.write(`reward ${name}: ${msg} (scored 0)\n`) });
      close = () => reward.close?.();
      scorer = verifierScorer(reward);
    }
    const r = await rejectionSampling({ model, tokenizer, prompts: rows, scorer, options });
    mkdirSync(values.out, { recursive: true });
    await saveModel(model, values.out, { tokenizer });
    writeFileSync(path.join(values.out, 'rejection_sampling.jsonl'), r.kept.map((k) => JSON.stringify(k)).join('\n') + (r.kept.length ? '\n' : ''));
    writeFileSync(path.join(values.out, 'rounds.json'), JSON.stringify(r.rounds, null, 1) + '\n');
    console.error(`done: ${r.rounds.length} round(s); model, rejection_sampling.jsonl and rounds.json in ${values.out}`);
  } finally {
    await close?.();
    await shutdown();
  }
  return 0;
}

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'rejection-sampling') return rejection(rest);
  throw new UsageError(sub === undefined ? 'a subcommand is required (rejection-sampling)' : `unknown subcommand '${sub}' (expected rejection-sampling)`);
}
