// `tslm rlhf demo`: alignment from preferences, the LLaMA 2 way, visibly learning on a CPU.
// The task (preference_task.ts): writing requests with four instructions (use a given word, stay
// within a word limit, open politely, stay on topic), and a programmatic judge that scores them in place of
// human labellers. A 0.8M-parameter LLaMA is fine-tuned on an imperfect teacher that often breaks
// the instructions; the fine-tuned (SFT) model's own samples, judged, become preference
// pairs; a reward model (initialised from the SFT model, LLaMA 2's margin from the judge's score
// difference) learns them; then PPO against the reward model and DPO on the pairs each align a
// copy of the SFT model. On held-out prompts (topic and word combinations no stage trains on), the judge compares each aligned
// model's answer with the SFT model's (same prompt, same sample index: win, tie or loss), and the
// KL of each aligned model to the SFT model (its reference) is estimated on its own samples.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Generator } from '../tensor/random.js';
import * as T from '../tensor/ops.js';
import { scope } from '../tensor/storage.js';
import { noGrad } from '../tensor/autograd.js';
import { createModel } from '../models/index.js';
import type { CausalLM } from '../models/causal.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { loadModel, saveModel } from '../io/model.js';
import { sftTrain } from '../sft/train.js';
import type { SftExample } from '../sft/data.js';
import { esc, writeFileAtomic } from '../train/report.js';
import { rollout } from './rollout.js';
import type { Rollout } from './rollout.js';
import { promptTokens } from './data.js';
import type { PromptRow } from './data.js';
import { packSequences, tokenLogprobs } from './logprobs.js';
import type { TokenizedPair } from './preference.js';
import { evaluateRewardModel, rewardModelFromCausalLM, rewardTrain, saveRewardModel, loadRewardModel } from './reward_model.js';
import { dpoTrain } from './dpo.js';
import { ppoTrain } from './ppo.js';
import { seriesSvg } from './report.js';
import { JUDGE_MAX, judge, preferenceTaskRows, preferenceTaskTokenizer } from './preference_task.js';
import type { JudgeVerdict, PreferenceTaskRow } from './preference_task.js';
import { demoConfig } from './demo.js';

export interface RlhfDemoOptions {
  out: string;
  /** A few steps of everything (tests, a smoke run). */
  quick?: boolean;
  seed?: number;
  log?: (line: string) => void;
}

/** How one model does on the held-out prompts. */
export interface ModelScore {
  /** The judge's mean score (0–4) and each instruction's rate. */
  score: number;
  keyword: number;
  length: number;
  polite: number;
  onTopic: number;
  /** Mean answer length in words. */
  words: number;
}

export interface Comparison {
  wins: number;
  ties: number;
  losses: number;
  /** (wins + ties / 2) / comparisons. */
  winRate: number;
  /** KL(model ‖ SFT) per answer in nats, estimated on the model's own samples (mean of Σ log π − log π_SFT). */
  kl: number;
}

export interface RlhfDemoResult {
  parameters: number;
  teacher: ModelScore;
  sft: ModelScore & { steps: number; seconds: number };
  pairs: { train: number; heldOut: number };
  rewardModel: { accuracyBefore: number; accuracy: number; steps: number; seconds: number };
  ppo: ModelScore & Comparison & { steps: number; seconds: number };
  dpo: ModelScore & Comparison & { steps: number; seconds: number };
  heldOut: number;
  evalSamples: number;
  seconds: number;
}

const MAX_NEW = 40;

interface Judged { row: number; sample: number; text: string; ids: number[]; verdict: JudgeVerdict }

function summarise(vs: JudgeVerdict[]): ModelScore {
  const m = (f: (v: JudgeVerdict) => number) => vs.reduce((s, v) => s + f(v), 0) / Math.max(1, vs.length);
  return { score: m((v) => v.score), keyword: m((v) => +v.keyword), length: m((v) => +v.length), polite: m((v) => +v.polite), onTopic: m((v) => +v.onTopic), words: m((v) => v.words) };
}

/** Samples per prompt from a model, judged; seeded per (seed, prompt) so models sample with the same random numbers. */
function sampleJudged(model: CausalLM, tok: Tokenizer, rows: PreferenceTaskRow[], n: number, seed: number): Judged[] {
  const rs: Rollout[] = rollout(model, tok, rows.map((r) => promptTokens(tok, r.prompt)), { groupSize: n, maxNewTokens: MAX_NEW, temperature: 1, seed });
  const seen = new Map<number, number>();
  return rs.map((r) => {
    const k = seen.get(r.prompt) ?? 0;
    seen.set(r.prompt, k + 1);
    // A cut answer (no end of text within MAX_NEW tokens) is judged as it stands: too long.
    return { row: r.prompt, sample: k, text: r.text, ids: r.stopId !== null ? [...r.ids, r.stopId] : r.ids, verdict: judge(rows[r.prompt].prompt, r.text) };
  });
}

/** Preference pairs from judged samples: every two samples of a prompt the judge tells apart (margin: score difference − 1). */
function judgedPairs(tok: Tokenizer, rows: PreferenceTaskRow[], js: Judged[], what: string): TokenizedPair[] {
  const by = new Map<number, Judged[]>();
  for (const j of js) by.set(j.row, [...(by.get(j.row) ?? []), j]);
  const pairs: TokenizedPair[] = [];
  const eos = tok.eosId!;
  const ids = (j: Judged) => (j.ids.at(-1) === eos ? j.ids : [...j.ids, eos]);
  for (const [row, ss] of by) {
    const prompt = promptTokens(tok, rows[row].prompt);
    for (const a of ss) for (const b of ss) {
      if (a.verdict.score > b.verdict.score && a.text !== b.text) pairs.push({ prompt, chosen: ids(a), rejected: ids(b), margin: a.verdict.score - b.verdict.score - 1, where: `${what} prompt ${row + 1}` });
    }
  }
  return pairs;
}

/** Win/tie/loss of `model` against `base` answers on the same prompt and sample index. */
function compare(model: Judged[], base: Judged[]): Omit<Comparison, 'kl'> {
  const key = (j: Judged) => `${j.row}:${j.sample}`;
  const b = new Map(base.map((j) => [key(j), j.verdict.score]));
  let wins = 0, ties = 0, losses = 0;
  for (const j of model) {
    const s = b.get(key(j));
    if (s === undefined) continue;
    if (j.verdict.score > s) wins++; else if (j.verdict.score === s) ties++; else losses++;
  }
  const n = wins + ties + losses;
  return { wins, ties, losses, winRate: n ? (wins + ties / 2) / n : NaN };
}

/** Mean over answers of Σ_t (log π(y_t) − log ref(y_t)) on the model's own samples (nats per answer). */
function sequenceKl(model: CausalLM, ref: CausalLM, tok: Tokenizer, rows: PreferenceTaskRow[], js: Judged[]): number {
  let total = 0;
  for (let s = 0; s < js.length; s += 32) {
    const mb = js.slice(s, s + 32);
    const packed = packSequences(mb.map((j) => ({ prompt: promptTokens(tok, rows[j.row].prompt), completion: j.ids })), tok.eosId ?? 0);
    noGrad(() => scope(() => {
      const a = tokenLogprobs(model, packed).logprobs.data() as Float32Array, b = tokenLogprobs(ref, packed).logprobs.data() as Float32Array;
      for (let k = 0; k < a.length; k++) total += (a[k] - b[k]) * packed.mask[k];
    }));
  }
  return total / Math.max(1, js.length);
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const describe = (m: ModelScore) => `judge score ${m.score.toFixed(2)}/${JUDGE_MAX} (word ${pct(m.keyword)}, length ${pct(m.length)}, polite ${pct(m.polite)}, on topic ${pct(m.onTopic)}; ${m.words.toFixed(1)} words)`;

export async function rlhfDemo(o: RlhfDemoOptions): Promise<RlhfDemoResult> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const seed = o.seed ?? 0, q = o.quick ?? false;
  const t0 = performance.now();
  mkdirSync(o.out, { recursive: true });
  // Four draws: the teacher's SFT data, the prompts whose samples make the preference pairs
  // (reward model, DPO), the PPO prompts, and the held-out prompts — these from (topic, word)
  // combinations that no training draw contains.
  const sftRows = preferenceTaskRows({ count: q ? 1000 : 20000, seed: seed * 4 + 1 });
  const pairRows = preferenceTaskRows({ count: q ? 40 : 5000, seed: seed * 4 + 2 });
  const ppoRows = preferenceTaskRows({ count: q ? 40 : 3000, seed: seed * 4 + 3 });
  const heldOut = preferenceTaskRows({ count: q ? 16 : 300, seed: seed * 4 + 4, split: 'heldout' });
  const teacher = summarise(sftRows.map((r) => judge(r.prompt, r.response)));
  const tok = preferenceTaskTokenizer(sftRows);
  const sftModel: CausalLM = createModel(demoConfig(tok.vocabSize), 'rlhf demo', { generator: new Generator(seed) });
  const parameters = sftModel.numParameters();
  log(`task: "Write about the <topic> using the word "<word>" in at most <n> words." — the judge gives a point for each instruction followed (the word, the limit, a polite opener, on topic)`);
  log(`teacher (SFT data, ${sftRows.length} answers): ${describe(teacher)}`);
  log(`model: LLaMA, ${(parameters / 1e6).toFixed(2)}M parameters, vocabulary ${tok.vocabSize}`);
  const evalSamples = 2, evalSeed = seed + 777;

  // 1. Supervised fine-tuning on the teacher's answers (loss on the answer).
  const ts = performance.now();
  const examples: SftExample[] = sftRows.map((r) => {
    const p = promptTokens(tok, r.prompt), c = [...tok.encode(r.response), tok.eosId!];
    return { ids: [...p, ...c], labels: [...p.map(() => -100), ...c] };
  });
  const sftSteps = q ? 30 : 1500;
  sftTrain(sftModel, examples, {
    steps: sftSteps, batchSize: 32, lr: 1e-3, warmupSteps: q ? 5 : 50, minLrRatio: 0.1, seed,
    onStep: (s) => { if (s.step % (q ? 10 : 250) === 0) log(`SFT step ${s.step}/${sftSteps}: loss ${s.loss.toFixed(3)} (${((performance.now() - ts) / 1000).toFixed(0)} s)`); },
  });
  const sftDir = path.join(o.out, 'sft');
  await saveModel(sftModel, sftDir, { tokenizer: tok });
  const sftHeld = sampleJudged(sftModel, tok, heldOut, evalSamples, evalSeed);
  const sft = { ...summarise(sftHeld.map((j) => j.verdict)), steps: sftSteps, seconds: (performance.now() - ts) / 1000 };
  log(`SFT model (${sftDir}): ${describe(sft)} on ${heldOut.length} held-out prompts × ${evalSamples} samples`);

  // 2. Preference pairs: the SFT model's own samples, judged.
  const tp = performance.now();
  const perPrompt = q ? 4 : 4;
  const trainSamples = sampleJudged(sftModel, tok, pairRows, perPrompt, seed + 11);
  const heldSamples = sampleJudged(sftModel, tok, heldOut, perPrompt, seed + 12);
  // The same pairs train the reward model and DPO (chosen/rejected end with EOS: DPO learns to stop;
  // the reward model reads the last token before it, EOS being its padding).
  const pairs = judgedPairs(tok, pairRows, trainSamples, 'pair');
  const heldPairs = judgedPairs(tok, heldOut, heldSamples, 'held-out');
  const jsonl = (rows: PreferenceTaskRow[], js: Judged[]) => js.map((j) => JSON.stringify({ prompt: rows[j.row].prompt, response: j.text, ...j.verdict })).join('\n') + '\n';
  writeFileSync(path.join(o.out, 'samples.jsonl'), jsonl(pairRows, trainSamples));
  log(`preference pairs: ${pairs.length} from ${pairRows.length} prompts × ${perPrompt} SFT samples (${heldPairs.length} held out), judged in ${((performance.now() - tp) / 1000).toFixed(0)} s`);

  // 3. Reward model: the SFT model with a score head, Bradley–Terry with LLaMA 2's margin.
  const tr = performance.now();
  const rm = rewardModelFromCausalLM((await loadModel(sftDir, { dtype: 'f32' })).model, { padTokenId: tok.eosId!, seed });
  const rmOut = path.join(o.out, 'reward_model');
  const rmRes = await rewardTrain(rm, pairs, {
    epochs: q ? 1 : 2, batchSize: 32, microBatch: 32, lr: 3e-4, warmupSteps: q ? 0 : 20, minLrRatio: 0.1, seed,
    evalEvery: q ? 0 : 100, eval: heldPairs, out: rmOut, log,
    onStep: (m, total) => { if (m.eval_accuracy !== undefined) log(`reward model step ${m.step}/${total}: loss ${m.loss.toFixed(4)}, held-out pair accuracy ${pct(m.eval_accuracy)} (${m.elapsed_seconds.toFixed(0)} s)`); },
  });
  await saveRewardModel(rm, rmOut, { tokenizer: tok });
  const rewardModel = { accuracyBefore: rmRes.evalBefore?.accuracy ?? NaN, accuracy: rmRes.evalAfter?.accuracy ?? evaluateRewardModel(rm, heldPairs).accuracy, steps: rmRes.steps, seconds: (performance.now() - tr) / 1000 };
  log(`reward model (${rmOut}): held-out pair accuracy ${pct(rewardModel.accuracy)} (${pct(rewardModel.accuracyBefore)} with the new head)`);

  const ref = sftModel;
  ref.eval();
  // 4. PPO against the reward model (value model: a copy of the reward model).
  const tpp = performance.now();
  const policyPpo = (await loadModel(sftDir, { dtype: 'f32' })).model;
  const valueModel = (await loadRewardModel(rmOut)).model;
  const ppoOut = path.join(o.out, 'ppo');
  const ppoSteps = q ? 3 : 100;
  const ppoRes = await ppoTrain({
    policy: policyPpo, ref, rewardModel: rm, valueModel, tokenizer: tok,
    prompts: ppoRows.map((r, k): PromptRow => ({ prompt: r.prompt, row: {}, where: `ppo prompt ${k + 1}` })),
    options: {
      steps: ppoSteps, batchSize: q ? 8 : 32, maxNewTokens: MAX_NEW, temperature: 1, ppoEpochs: 4, miniBatches: q ? 1 : 2, microBatch: 32,
      lr: 3e-5, klCoef: 0.05, missingEosPenalty: 1, seed,
    },
    out: ppoOut, log,
    progress: (m, total) => { if (m.step % (q ? 1 : 10) === 0) log(`PPO batch ${m.step}/${total}: reward-model score ${m['objective/scores'].toFixed(3)}, KL ${m['objective/kl'].toFixed(3)}, length ${m['completions/mean_length'].toFixed(1)} tokens (${m.elapsed_seconds.toFixed(0)} s)`); },
  });
  valueModel.dispose();
  const ppoHeld = sampleJudged(policyPpo, tok, heldOut, evalSamples, evalSeed);
  const ppo = { ...summarise(ppoHeld.map((j) => j.verdict)), ...compare(ppoHeld, sftHeld), kl: sequenceKl(policyPpo, ref, tok, heldOut, ppoHeld), steps: ppoSteps, seconds: (performance.now() - tpp) / 1000 };
  log(`PPO model (${ppoOut}): ${describe(ppo)}; wins ${pct(ppo.winRate)} against SFT (${ppo.wins} won, ${ppo.ties} tied, ${ppo.losses} lost), KL to SFT ${ppo.kl.toFixed(2)} nats`);

  // 5. DPO on the preference pairs (reference: the SFT model).
  const td = performance.now();
  const policyDpo = (await loadModel(sftDir, { dtype: 'f32' })).model;
  const dpoOut = path.join(o.out, 'dpo');
  const dpoRes = await dpoTrain({
    model: policyDpo, tokenizer: tok, ref, train: pairs, eval: heldPairs, out: dpoOut, log,
    options: { epochs: q ? 1 : 1, batchSize: 32, microBatch: 32, beta: 0.1, lr: 1e-4, warmupSteps: q ? 0 : 10, minLrRatio: 0.1, seed, evalEvery: q ? 0 : 50 },
    onStep: (m, total) => { if (m['eval_rewards/accuracies'] !== undefined) log(`DPO step ${m.step}/${total}: loss ${m.loss.toFixed(4)}, held-out reward accuracy ${pct(m['eval_rewards/accuracies'])}, margin ${m['eval_rewards/margins'].toFixed(3)} (${m.elapsed_seconds.toFixed(0)} s)`); },
  });
  await saveModel(policyDpo, dpoOut, { tokenizer: tok });
  const heldPairsSamples = sampleJudged(policyDpo, tok, heldOut, evalSamples, evalSeed);
  const dpo = { ...summarise(heldPairsSamples.map((j) => j.verdict)), ...compare(heldPairsSamples, sftHeld), kl: sequenceKl(policyDpo, ref, tok, heldOut, heldPairsSamples), steps: dpoRes.steps, seconds: (performance.now() - td) / 1000 };
  log(`DPO model (${dpoOut}): ${describe(dpo)}; wins ${pct(dpo.winRate)} against SFT (${dpo.wins} won, ${dpo.ties} tied, ${dpo.losses} lost), KL to SFT ${dpo.kl.toFixed(2)} nats`);

  const seconds = (performance.now() - t0) / 1000;
  const result: RlhfDemoResult = {
    parameters, teacher, sft, pairs: { train: pairs.length, heldOut: heldPairs.length }, rewardModel, ppo, dpo,
    heldOut: heldOut.length, evalSamples, seconds,
  };
  writeFileSync(path.join(o.out, 'demo.json'), JSON.stringify(result, null, 1) + '\n');
  const promptsJsonl = (rs: PreferenceTaskRow[]) => rs.map((r) => JSON.stringify({ prompt: r.prompt })).join('\n') + '\n';
  writeFileSync(path.join(o.out, 'prompts.jsonl'), promptsJsonl(ppoRows));
  writeFileSync(path.join(o.out, 'heldout.jsonl'), promptsJsonl(heldOut));
  // The pairs as `tslm dpo` / `tslm reward train` read them; the few with an empty answer (the
  // model ended at once) are left out, as the preference reader refuses empty texts.
  const textPairs = pairs.map((p) => ({ prompt: tok.decode(p.prompt.filter((id) => id !== tok.bosId)), chosen: tok.decode(p.chosen.slice(0, -1)), rejected: tok.decode(p.rejected.slice(0, -1)), margin: p.margin }))
    .filter((p) => p.chosen.trim() && p.rejected.trim());
  writeFileSync(path.join(o.out, 'pairs.jsonl'), textPairs.map((p) => JSON.stringify(p)).join('\n') + '\n');
  writeFileAtomic(path.join(o.out, 'report.html'), rlhfDemoReport(result, {
    rm: rmRes.metrics.filter((m) => m.eval_accuracy !== undefined).map((m) => [m.step, m.eval_accuracy!]),
    ppoScore: ppoRes.metrics.map((m) => [m.step, m['objective/scores']]),
    ppoKl: ppoRes.metrics.map((m) => [m.step, m['objective/kl']]),
    dpoAcc: dpoRes.metrics.filter((m) => m['eval_rewards/accuracies'] !== undefined).map((m) => [m.step, m['eval_rewards/accuracies']]),
    dpoMargin: dpoRes.metrics.filter((m) => m['eval_rewards/margins'] !== undefined).map((m) => [m.step, m['eval_rewards/margins']]),
  }, heldOut.slice(0, 8).map((r, k) => ({
    prompt: r.prompt,
    answers: ([['SFT', sftHeld], ['PPO', ppoHeld], ['DPO', heldPairsSamples]] as const).map(([name, js]) => { const j = js.find((x) => x.row === k && x.sample === 0)!; return { name, text: j.text, score: j.verdict.score }; }),
  }))));
  log(`report: ${path.join(o.out, 'report.html')} (${seconds.toFixed(0)} s in all)`);
  for (const m of [policyPpo, policyDpo, rm, sftModel]) m.dispose();
  return result;
}

type Pts = [number, number][];

function rlhfDemoReport(r: RlhfDemoResult, c: { rm: Pts; ppoScore: Pts; ppoKl: Pts; dpoAcc: Pts; dpoMargin: Pts }, examples: { prompt: string; answers: { name: string; text: string; score: number }[] }[]): string {
  const row = (name: string, m: ModelScore, extra = '') => `<tr><th>${esc(name)}</th><td>${m.score.toFixed(2)}</td><td>${pct(m.keyword)}</td><td>${pct(m.length)}</td><td>${pct(m.polite)}</td><td>${pct(m.onTopic)}</td><td>${m.words.toFixed(1)}</td>${extra}</tr>`;
  const cmp = (x: Comparison) => `<td>${pct(x.winRate)} (${x.wins}/${x.ties}/${x.losses})</td><td>${x.kl.toFixed(2)}</td>`;
  const charts = [
    seriesSvg([{ name: 'held-out pair accuracy', points: c.rm }], { title: 'Reward model', yLabel: 'accuracy' }),
    seriesSvg([{ name: 'reward-model score', points: c.ppoScore }], { title: 'PPO: score of its samples', yLabel: 'score' }),
    seriesSvg([{ name: 'KL to SFT', points: c.ppoKl }], { title: 'PPO: KL per answer', yLabel: 'nats' }),
    seriesSvg([{ name: 'held-out reward accuracy', points: c.dpoAcc }], { title: 'DPO: implicit reward accuracy', yLabel: 'accuracy' }),
    seriesSvg([{ name: 'held-out margin', points: c.dpoMargin }], { title: 'DPO: implicit reward margin', yLabel: 'margin' }),
  ];
  return `<!doctype html><html><head><meta charset="utf-8"><title>tslm rlhf demo</title>
<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}th,td{text-align:left;padding:2px 10px 2px 0}.charts{display:flex;flex-wrap:wrap;gap:12px}pre{white-space:pre-wrap;margin:0}</style></head><body>
<h1>tslm rlhf demo</h1>
<p>LLaMA ${(r.parameters / 1e6).toFixed(2)}M parameters. Judged on ${r.heldOut} held-out prompts × ${r.evalSamples} samples (temperature 1); a win is a higher judge score than the SFT model's answer to the same prompt, a tie counts half. Reward model held-out pair accuracy ${pct(r.rewardModel.accuracy)} on ${r.pairs.heldOut} pairs. ${r.seconds.toFixed(0)} s in all.</p>
<table><tr><th></th><th>judge score (of ${JUDGE_MAX})</th><th>uses the word</th><th>within the limit</th><th>polite</th><th>on topic</th><th>words</th><th>win rate vs SFT (won/tied/lost)</th><th>KL to SFT (nats)</th></tr>
${row('teacher (SFT data)', r.teacher, '<td></td><td></td>')}
${row('SFT', r.sft, '<td></td><td></td>')}
${row('PPO', r.ppo, cmp(r.ppo))}
${row('DPO', r.dpo, cmp(r.dpo))}
</table>
<div class="charts">${charts.join('\n')}</div>
<h2>Held-out examples (first sample)</h2><table>${examples.map((e) => `<tr><td colspan="3"><b><pre>${esc(e.prompt.trim())}</pre></b></td></tr>${e.answers.map((a) => `<tr><th>${esc(a.name)}</th><td>${a.score}/${JUDGE_MAX}</td><td><pre>${esc(a.text)}</pre></td></tr>`).join('')}`).join('')}</table>
</body></html>
`;
}
