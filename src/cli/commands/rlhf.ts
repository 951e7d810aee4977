// `tslm rlhf rejection-sampling | ppo | demo`: LLaMA 2-Chat's alignment stages, and a demo of all of them.
import { parseArgs } from 'node:util';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../args.js';
import { init, shutdown } from '../../backend/index.js';
import { loadModel, saveModel } from '../../io/model.js';
import { readPrompts } from '../../align/data.js';
import { createReward } from '../../align/rewards.js';
import { assertSameTokenizer, loadRewardModel } from '../../align/reward_model.js';
import { DEFAULT_REJECTION_OPTIONS, rejectionSampling, rewardModelScorer, verifierScorer } from '../../align/rejection.js';
import type { Scorer } from '../../align/rejection.js';
import { DEFAULT_PPO_OPTIONS, ppoTrain } from '../../align/ppo.js';
import type { PpoOptions } from '../../align/ppo.js';
import { demoArgs, interruptible, num } from '../args.js';
import { rlhfDemo } from '../../align/rlhf_demo.js';
import { JUDGE_MAX } from '../../align/preference_task.js';

const D = DEFAULT_REJECTION_OPTIONS, P = DEFAULT_PPO_OPTIONS;

export const usage = `tslm rlhf rejection-sampling --model <dir> --data <prompts.jsonl> (--reward-model <rm> | --reward <spec>) --out <dir>
      [--samples ${D.samples}] [--rounds ${D.rounds}] [--max-new-tokens ${D.maxNewTokens}] [--temperature ${D.temperature}] [--top-p P]
      [--stop-tag T] [--min-score S] [--steps N] [--lr ${D.sft.lr}] [--batch-size ${D.sft.batchSize}] [--seed S] [--tokenizer FILE] [--threads N]
    Rejection-sampling fine-tuning (LLaMA 2-Chat): per prompt, --samples completions from the
    policy scored by a reward model (tslm reward train) or a verifiable reward (as tslm rl
    grpo's --reward), the best kept (if ≥ --min-score), SFT on the kept ones (loss on the
    completion); --rounds repeats from the fine-tuned policy. Writes the model,
    rejection_sampling.jsonl (the kept samples) and rounds.json to --out.
tslm rlhf ppo --model <sft> --reward-model <rm> --data <prompts.jsonl> --out <dir> [--value-model <dir>] [--ref-model <dir>]
      [--steps ${P.steps}] [--batch-size ${P.batchSize}] [--max-new-tokens ${P.maxNewTokens}] [--temperature ${P.temperature}] [--stop-tag T]
      [--ppo-epochs ${P.ppoEpochs}] [--mini-batches ${P.miniBatches}] [--micro-batch ${P.microBatch}] [--lr ${P.lr}] [--kl-coef ${P.klCoef}]
      [--kl-target KL --kl-horizon ${P.klHorizon}] [--kl k1|k3] [--cliprange ${P.cliprange}] [--cliprange-value ${P.cliprangeValue}]
      [--vf-coef ${P.vfCoef}] [--gamma ${P.gamma}] [--lam ${P.lam}] [--whiten-rewards] [--missing-eos-penalty P] [--checkpoint-every N] [--resume]
      [--seed S] [--threads N]
    PPO against a reward model with TRL's PPOTrainer semantics: per-token reward −β·KL to the
    frozen reference (--ref-model, default --model) with the score at the last token; a value
    model (default: a copy of the reward model) for GAE(γ, λ); whitened advantages; clipped
    policy and value losses; β fixed or adaptive (--kl-target). Writes the policy, value_model/,
    metrics.jsonl and report.html to --out; checkpoints (every --checkpoint-every batches, at the
    end, on Ctrl-C) to --out/checkpoint, which --resume continues bit for bit.
tslm rlhf demo [--out rlhf-demo] [--quick] [--seed S] [--threads N]
    The whole LLaMA 2 recipe on a task the project makes (about 14 minutes on 2 cores): writing
    requests with four instructions and a programmatic judge; SFT on an imperfect teacher; a
    reward model on judge-labelled pairs of the SFT model's samples; PPO and DPO from the SFT
    model. Prints the reward model's held-out pair accuracy and each aligned model's judge win
    rate against the SFT model with its KL; report.html, the models and the data in --out.`;

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
    const { model, tokenizer } = await loadModel(values.model, { tokenizer: values.tokenizer, dtype: 'f32' });
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

async function ppo(rest: string[]): Promise<number> {
  const { values } = parseArgs({
    args: rest,
    options: {
      model: { type: 'string' }, 'reward-model': { type: 'string' }, 'value-model': { type: 'string' }, 'ref-model': { type: 'string' }, data: { type: 'string' },
      out: { type: 'string' }, steps: { type: 'string' }, 'batch-size': { type: 'string' }, 'max-new-tokens': { type: 'string' }, temperature: { type: 'string' },
      'stop-tag': { type: 'string', multiple: true }, 'ppo-epochs': { type: 'string' }, 'mini-batches': { type: 'string' }, 'micro-batch': { type: 'string' },
      lr: { type: 'string' }, 'kl-coef': { type: 'string' }, 'kl-target': { type: 'string' }, 'kl-horizon': { type: 'string' }, kl: { type: 'string' },
      cliprange: { type: 'string' }, 'cliprange-value': { type: 'string' }, 'vf-coef': { type: 'string' }, gamma: { type: 'string' }, lam: { type: 'string' },
      'whiten-rewards': { type: 'boolean', default: false }, 'missing-eos-penalty': { type: 'string' }, seed: { type: 'string' }, tokenizer: { type: 'string' },
      'checkpoint-every': { type: 'string' }, resume: { type: 'boolean', default: false },
      threads: { type: 'string' },
    },
  });
  for (const k of ['model', 'reward-model', 'data', 'out'] as const) if (!values[k]) throw new UsageError(`--${k} is required`);
  if (values.kl !== undefined && values.kl !== 'k1' && values.kl !== 'k3') throw new UsageError(`--kl must be k1 or k3, got '${values.kl}'`);
  const rows = readPrompts(values.data!);
  const options: Partial<PpoOptions> = {
    steps: num(values.steps, 'steps', pos), batchSize: num(values['batch-size'], 'batch-size', pos), maxNewTokens: num(values['max-new-tokens'], 'max-new-tokens', pos),
    temperature: num(values.temperature, 'temperature', (x) => x > 0), stopTags: values['stop-tag'], ppoEpochs: num(values['ppo-epochs'], 'ppo-epochs', pos),
    miniBatches: num(values['mini-batches'], 'mini-batches', pos), microBatch: num(values['micro-batch'], 'micro-batch', pos), lr: num(values.lr, 'lr', (x) => x > 0),
    klCoef: num(values['kl-coef'], 'kl-coef', (x) => x >= 0), klTarget: num(values['kl-target'], 'kl-target', (x) => x > 0),
    klHorizon: num(values['kl-horizon'], 'kl-horizon', (x) => x > 0), kl: values.kl as 'k1' | 'k3' | undefined,
    cliprange: num(values.cliprange, 'cliprange', (x) => x > 0), cliprangeValue: num(values['cliprange-value'], 'cliprange-value', (x) => x > 0),
    vfCoef: num(values['vf-coef'], 'vf-coef', (x) => x >= 0), gamma: num(values.gamma, 'gamma', (x) => x >= 0 && x <= 1), lam: num(values.lam, 'lam', (x) => x >= 0 && x <= 1),
    whitenRewards: values['whiten-rewards'], missingEosPenalty: num(values['missing-eos-penalty'], 'missing-eos-penalty', Number.isFinite),
    seed: num(values.seed, 'seed', Number.isInteger), checkpointEvery: num(values['checkpoint-every'], 'checkpoint-every', (x) => Number.isInteger(x) && x >= 0),
  };
  await init({ threads: num(values.threads, 'threads', pos) });
  const stop = interruptible('batch');
  try {
    const { model: policy, tokenizer } = await loadModel(values.model!, { tokenizer: values.tokenizer, dtype: 'f32' });
    if (!tokenizer) throw new UsageError(`${values.model}: no tokenizer found; pass --tokenizer`);
    const refDir = values['ref-model'] ?? values.model!;
    const { model: ref, tokenizer: refTok } = await loadModel(refDir, { tokenizer: values.tokenizer, dtype: 'f32' });
    if (refTok) assertSameTokenizer(tokenizer, refTok, { a: `the policy (${values.model})`, b: `the reference (${refDir})` });
    const rm = await loadRewardModel(values['reward-model']!);
    if (!rm.tokenizer) throw new Error(`${values['reward-model']}: the reward model has no tokenizer.json; it must share the policy's tokenizer`);
    assertSameTokenizer(tokenizer, rm.tokenizer, { a: `the policy (${values.model})`, b: `the reward model (${values['reward-model']})` });
    const vm = await loadRewardModel(values['value-model'] ?? values['reward-model']!);
    const r = await ppoTrain({ policy, ref, rewardModel: rm.model, valueModel: vm.model, tokenizer, prompts: rows, options, out: values.out, resume: values.resume, signal: stop.signal });
    const first = r.metrics[0], last = r.metrics.at(-1);
    if (r.step < r.steps) console.error(`stopped after ${r.step} of ${r.steps} batches; continue with --resume (checkpoint in ${values.out})`);
    else console.error(`done: ${r.step} batches; reward model score ${first?.['objective/scores'].toFixed(4)} → ${last?.['objective/scores'].toFixed(4)}, KL ${last?.['objective/kl'].toFixed(4)}; ${values.out} (policy, value_model/, metrics.jsonl, report.html)`);
  } finally {
    stop.release();
    await shutdown();
  }
  return 0;
}

async function demo(rest: string[]): Promise<number> {
  const { out, quick, seed, threads } = demoArgs(rest, 'rlhf-demo');
  await init({ threads });
  try {
    const r = await rlhfDemo({ out, quick, seed });
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
    console.log(`reward model: held-out pair accuracy ${pct(r.rewardModel.accuracy)} (${r.pairs.heldOut} judge-labelled pairs of SFT samples; trained on ${r.pairs.train})`);
    console.log(`judge on ${r.heldOut} held-out prompts × ${r.evalSamples} samples (temperature 1), score of ${JUDGE_MAX}:`);
    console.log(`  SFT model: ${r.sft.score.toFixed(2)}`);
    for (const [name, m] of [['PPO', r.ppo], ['DPO', r.dpo]] as const) {
      console.log(`  ${name} model: ${m.score.toFixed(2)}; wins ${pct(m.winRate)} of comparisons with the SFT model (${m.wins} won, ${m.ties} tied, ${m.losses} lost; a tie counts half); KL to the SFT model ${m.kl.toFixed(2)} nats per answer`);
    }
    console.log(`total ${(r.seconds / 60).toFixed(1)} min; report: ${path.join(out, 'report.html')}`);
    console.log(`try another recipe on the same pairs: tslm dpo --model ${path.join(out, 'sft')} --data ${path.join(out, 'pairs.jsonl')} --loss ipo --beta 0.5 --lr 1e-4 --out ${out}-ipo`);
  } finally {
    await shutdown();
  }
  return 0;
}

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'rejection-sampling') return rejection(rest);
  if (sub === 'ppo') return ppo(rest);
  if (sub === 'demo') return demo(rest);
  throw new UsageError(sub === undefined ? 'a subcommand is required (rejection-sampling, ppo, demo)' : `unknown subcommand '${sub}' (expected rejection-sampling, ppo or demo)`);
}
