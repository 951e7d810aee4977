// `tslm rl demo`: reinforcement learning with a verifiable reward that visibly learns on a CPU.
// A 0.8M-parameter LLaMA learns multi-step arithmetic answered think-then-answer (task.ts) by
// supervised fine-tuning on an imperfect teacher's worked solutions (it forgets carries), until
// its held-out accuracy stops improving; GRPO against the exact math verifier then trains it
// past its teacher. Held-out accuracy (200 problems no run trains on, verifier-judged, fixed
// seed) is measured after SFT and after RL, sampled at temperature 1 (the policy as it is
// trained and used) and greedily.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Generator } from '../tensor/random.js';
import { createModel } from '../models/index.js';
import type { CausalLM } from '../models/causal.js';
import { loadModel, saveModel } from '../io/model.js';
import { sftTrain } from '../sft/train.js';
import type { SftExample } from '../sft/data.js';
import { arithmeticProblems, arithmeticTokenizer, ANSWER_CLOSE } from './task.js';
import type { ArithmeticRow } from './task.js';
import { createReward, extractAnswer, mathEqual } from './rewards.js';
import { rollout } from './rollout.js';
import * as T from '../tensor/ops.js';
import { scope } from '../tensor/storage.js';
import { grpoTrain } from './grpo.js';
import type { GrpoOptions, GrpoResult } from './grpo.js';
import type { PromptRow } from './data.js';
import { promptTokens } from './data.js';
import { seriesSvg } from './report.js';

export interface DemoOptions {
  out: string;
  /** A few steps of everything (tests, a smoke run). */
  quick?: boolean;
  seed?: number;
  log?: (line: string) => void;
}

export interface DemoResult {
  sft: { steps: number; bestStep: number; accuracy: number; greedy: number; seconds: number; curve: [number, number][] };
  rl: { accuracy: number; greedy: number; seconds: number; kl: number | undefined; result: GrpoResult };
  teacherAccuracy: number;
  parameters: number;
  /** Held-out problems, and the samples of each the sampled accuracy averages. */
  heldOut: number;
  evalSamples: number;
  seconds: number;
}

/** The demo's model: the quickstart's LLaMA shape with the task's small vocabulary and 64 positions. */
export function demoConfig(vocab: number): Record<string, unknown> {
  return { model_type: 'llama', hidden_size: 128, intermediate_size: 344, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: vocab, max_position_embeddings: 64, rms_norm_eps: 1e-5, tie_word_embeddings: true };
}

const toPromptRow = (r: ArithmeticRow, i: number): PromptRow => ({ prompt: r.prompt, row: { answer: r.answer, difficulty: r.difficulty }, where: `demo problem ${i + 1}` });

export async function rlDemo(o: DemoOptions): Promise<DemoResult> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const seed = o.seed ?? 0, q = o.quick ?? false;
  const t0 = performance.now();
  mkdirSync(o.out, { recursive: true });
  // Three disjoint draws: the teacher's SFT data, the RL prompts, the held-out problems.
  const teacherError = 0.7;
  const sftRows = arithmeticProblems({ count: q ? 2000 : 20000, seed: seed * 3 + 1, steps: [3], maxOperand: 9, teacherError });
  const rlRows = arithmeticProblems({ count: q ? 200 : 4000, seed: seed * 3 + 2, steps: [3], maxOperand: 9 });
  const heldOut = arithmeticProblems({ count: q ? 24 : 200, seed: seed * 3 + 3, steps: [3], maxOperand: 9 });
  const teacherAccuracy = sftRows.filter((r) => r.teacherCorrect).length / sftRows.length;
  const tok = arithmeticTokenizer(sftRows);
  const model: CausalLM = createModel(demoConfig(tok.vocabSize), 'demo', { generator: new Generator(seed) });
  const parameters = model.numParameters();
  log(`task: 3-step arithmetic with single-digit operands, answered <think>…</think><answer>…</answer>; the SFT teacher forgets a carry or borrow ${100 * teacherError}% of the time (right on ${(100 * teacherAccuracy).toFixed(1)}% of its ${sftRows.length} worked solutions)`);
  log(`model: LLaMA, ${(parameters / 1e6).toFixed(2)}M parameters, vocabulary ${tok.vocabSize}`);
  const reward = await createReward('math');
  try {
    const evalRows = heldOut.map(toPromptRow);
    const evalSamples = 2, evalSeed = seed + 4242;
    const evalPrompts = heldOut.map((r) => promptTokens(tok, r.prompt));
    // The verifier's judgement, synchronously (the SFT loop's early-stopping hook is synchronous).
    const accuracy = (greedy: boolean): number => {
      const rs = rollout(model, tok, evalPrompts, { groupSize: greedy ? 1 : evalSamples, maxNewTokens: 40, temperature: greedy ? 0 : 1, seed: evalSeed, stopTags: [ANSWER_CLOSE] });
      return rs.filter((r) => { const a = extractAnswer(r.text); return a !== null && mathEqual(a, heldOut[r.prompt].answer); }).length / rs.length;
    };

    // 1. Supervised warm-up on the teacher's solutions until held-out accuracy stops improving
    //    (evaluated every `every` steps; after `patience` evaluations without a point of gain it
    //    stops, and the best weights are kept).
    const examples: SftExample[] = sftRows.map((r) => {
      const p = promptTokens(tok, r.prompt), c = [...tok.encode(r.completion), tok.eosId!];
      return { ids: [...p, ...c], labels: [...p.map(() => -100), ...c] };
    });
    const every = q ? 20 : 250, maxSteps = q ? 40 : 4000, patience = 2;
    const ts = performance.now();
    let best = { sampled: -1, greedy: 0, step: 0 }, since = 0, steps = 0;
    let bestWeights: Float32Array[] = [];
    const curve: [number, number][] = [];
    sftTrain(model, examples, {
      steps: maxSteps, batchSize: 32, lr: 1e-3, warmupSteps: q ? 5 : 50, minLrRatio: 0.1, seed,
      shouldStop: (st) => {
        steps = st.step;
        if (st.step % every) return false;
        const acc = { sampled: accuracy(false), greedy: accuracy(true), step: st.step };
        curve.push([st.step, acc.sampled]);
        log(`SFT step ${st.step}: loss ${st.loss.toFixed(3)}, held-out accuracy ${(100 * acc.sampled).toFixed(1)}% sampled, ${(100 * acc.greedy).toFixed(1)}% greedy (${((performance.now() - ts) / 1000).toFixed(0)} s)`);
        if (acc.sampled > best.sampled + 0.01 || best.sampled < 0) {
          best = acc;
          since = 0;
          bestWeights = model.parameters().map((p) => Float32Array.from(p.data() as Float32Array));
        } else since++;
        return since >= patience;
      },
    });
    model.parameters().forEach((p, k) => { if (bestWeights[k]) scope(() => T.copyInto(p, T.tensor(bestWeights[k], p.shape))); });
    const sftSeconds = (performance.now() - ts) / 1000;
    const sft = { steps, bestStep: best.step, accuracy: best.sampled, greedy: best.greedy, seconds: sftSeconds, curve };
    await saveModel(model, path.join(o.out, 'sft'), { tokenizer: tok });
    log(`SFT model: ${path.join(o.out, 'sft')} (step ${best.step} of ${steps}: held-out accuracy ${(100 * sft.accuracy).toFixed(1)}% sampled, ${(100 * sft.greedy).toFixed(1)}% greedy)`);

    // 2. GRPO against the verifier, with a small KL to the SFT model (its copy is the reference).
    const ref = (await loadModel(path.join(o.out, 'sft'), { dtype: 'f32' })).model;
    ref.eval();
    const options: Partial<GrpoOptions> = {
      steps: q ? 3 : 200, promptsPerStep: q ? 4 : 16, groupSize: 8, maxNewTokens: 40, temperature: 1, lr: 1e-4, beta: 0.02,
      loss: 'grpo', stopTags: [ANSWER_CLOSE], evalEvery: q ? 0 : 25, evalSamples, evalGreedy: true, checkpointEvery: q ? 0 : 50, seed, microBatch: 64,
    };
    const tr = performance.now();
    const result = await grpoTrain({
      model, tokenizer: tok, ref, train: rlRows.map(toPromptRow), eval: evalRows, reward, options, out: path.join(o.out, 'rl'), log,
      title: 'tslm rl demo: GRPO on 3-step arithmetic', summary: [
        ['model', `LLaMA ${(parameters / 1e6).toFixed(2)}M parameters`], ['SFT teacher accuracy', `${(100 * teacherAccuracy).toFixed(1)}%`],
        ['SFT steps (batch 32)', String(steps)], ['SFT held-out accuracy', `${(100 * sft.accuracy).toFixed(1)}% sampled, ${(100 * sft.greedy).toFixed(1)}% greedy`],
      ],
    });
    ref.dispose();
    const after = { sampled: result.evalAfter!.accuracy, greedy: result.evalAfter!.greedyAccuracy! };
    const rlSeconds = (performance.now() - tr) / 1000;
    const kl = result.metrics.at(-1)?.kl;
    const rl = { accuracy: after.sampled, greedy: after.greedy, seconds: rlSeconds, kl, result };
    const seconds = (performance.now() - t0) / 1000;
    const summary = {
      task: '3-step single-digit arithmetic, think-then-answer', parameters, teacherAccuracy, sft: { ...sft }, rl: { accuracy: rl.accuracy, greedy: rl.greedy, seconds: rlSeconds, kl, batches: result.step },
      heldOut: heldOut.length, evalSamples, seconds,
    };
    writeFileSync(path.join(o.out, 'demo.json'), JSON.stringify(summary, null, 1) + '\n');
    // The prompt files, for `tslm rl grpo` on the same task (from the SFT model, other options).
    const jsonl = (rs: ArithmeticRow[]) => rs.map((r) => JSON.stringify({ prompt: r.prompt, answer: r.answer, difficulty: r.difficulty })).join('\n') + '\n';
    writeFileSync(path.join(o.out, 'prompts.jsonl'), jsonl(rlRows));
    writeFileSync(path.join(o.out, 'heldout.jsonl'), jsonl(heldOut));
    writeFileSync(path.join(o.out, 'accuracy.svg'), seriesSvg([
      { name: 'SFT (sampled)', points: curve },
    ], { title: 'Held-out accuracy during SFT', yLabel: 'accuracy' }));
    return { sft, rl, teacherAccuracy, parameters, heldOut: heldOut.length, evalSamples, seconds };
  } finally {
    await reward.close?.();
  }
}
