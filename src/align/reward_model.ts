// A reward model as LLaMA 2 trains one: a language-model backbone whose next-token head is
// replaced by a scalar head, in Hugging Face's `*ForSequenceClassification` layout:
//   h = backbone.hidden(ids)                  // (B, T, D), after the final norm
//   j_b = the rightmost position whose id is not pad_token_id  (HF: argmax(arange(T) · (ids ≠ pad)))
//   r_b = score.weight · h[b, j_b]            // score.weight (1, D), no bias: num_labels 1
// trained with the Bradley–Terry loss on preference pairs, with LLaMA 2's optional margin m:
//   L = −log σ(r_chosen − r_rejected − m)
// Saved as an HF directory whose safetensors hold the backbone's tensors (`model.*` for LLaMA)
// and `score.weight`, no lm_head; config.json: architectures ['<Family>ForSequenceClassification'],
// num_labels 1, pad_token_id. transformers' AutoModelForSequenceClassification loads it.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Tensor } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { scope } from '../tensor/storage.js';
import { noGrad } from '../tensor/autograd.js';
import { embedding } from '../tensor/nn.js';
import { Generator } from '../tensor/random.js';
import { Module, withoutInit } from '../nn/module.js';
import { Linear } from '../nn/layers.js';
import type { CausalLM } from '../models/causal.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { loadTokenizer } from '../tokenizers/load.js';
import { checkPairwiseOptions, pairwiseLoop, pairwiseSteps } from './pairwise.js';
import type { PairwiseStep, PairwiseTrainOptions } from './pairwise.js';
import { readHfConfig, readHfDir, writeHfDir } from '../io/hf.js';
import { f32StateDict, fromFloat32 } from '../io/dtypes.js';
import type { RawTensor } from '../io/dtypes.js';
import { loadModel } from '../io/model.js';
import { buildModelForWeights } from '../io/build_model.js';
import { isSequenceClassificationConfig } from '../io/families.js';
import { writeFileAtomic } from '../train/report.js';
import type { TokenizedPair } from './preference.js';
import { seriesSvg } from './report.js';
import { withDefaults } from '../train/options.js';

export class RewardModelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RewardModelError';
  }
}

/** The position whose hidden state each row's reward reads: HF's rightmost non-padding token (0 for a row of padding). */
export function lastNonPadIndex(ids: ArrayLike<number>, batch: number, length: number, padTokenId: number | null): Int32Array {
  const out = new Int32Array(batch);
  if (padTokenId === null) {
    if (batch !== 1) throw new RewardModelError('the reward model has no pad_token_id: it cannot score a batch of more than one sequence (HF refuses too); set pad_token_id in config.json');
    out[0] = length - 1;
    return out;
  }
  for (let b = 0; b < batch; b++) {
    let j = length - 1;
    while (j > 0 && ids[b * length + j] === padTokenId) j--;
    out[b] = ids[b * length + j] === padTokenId ? 0 : j;
  }
  return out;
}

/** A backbone (any CausalLM; its lm_head is not used) with a scalar score head. */
export class RewardModel extends Module {
  private readonly _backbone: CausalLM;
  score: Linear;
  padTokenId: number | null;

  constructor(backbone: CausalLM, opts: { padTokenId: number | null; generator?: Generator }) {
    super();
    this._backbone = backbone;
    const init = (backbone.configJson().initializer_range as number | undefined) ?? 0.02;
    this.score = new Linear(backbone.config.hidden_size, 1, { generator: opts.generator ?? new Generator(0), std: init });
    this.padTokenId = opts.padTokenId;
  }

  get backbone(): CausalLM {
    return this._backbone;
  }

  get contextLength(): number {
    return this._backbone.contextLength;
  }

  /** The backbone's tensors (HF names, lm_head left out) and score.weight. */
  override namedTensors(prefix = ''): [string, Tensor][] {
    const p = prefix ? `${prefix}.` : '';
    return [
      ...this._backbone.namedTensors(prefix).filter(([n]) => !n.slice(p.length).startsWith('lm_head.')),
      ...this.score.namedTensors(`${p}score`),
    ];
  }

  override modules(): Module[] {
    return [this, ...this._backbone.modules(), this.score];
  }

  override dispose(): void {
    this._backbone.dispose();
    this.score.dispose();
  }

  /** Rewards (B) of right- (or left-) padded ids (B, T): the score of each row's last non-padding token. */
  forward(ids: ArrayLike<number>, batch: number, length: number): Tensor {
    const D = this._backbone.config.hidden_size;
    const last = lastNonPadIndex(ids, batch, length, this.padTokenId);
    const h = this._backbone.hidden(T.tensor(Int32Array.from(ids), [batch, length], 'i32')); // (B, T, D)
    const at = Int32Array.from(last, (j, b) => b * length + j);
    const rows = embedding(T.reshape(h, [batch * length, D]), T.tensor(at, [batch], 'i32')); // (B, D)
    return T.reshape(this.score.forward(rows), [batch]);
  }

  /** Rewards of token sequences (right-padded with pad_token_id here), no gradients, in micro-batches. */
  scoreSequences(seqs: readonly (readonly number[])[], microBatch = 16): Float32Array {
    const out = new Float32Array(seqs.length);
    const was = this.training;
    this.eval();
    for (let s = 0; s < seqs.length; s += microBatch) {
      const mb = seqs.slice(s, s + microBatch);
      const { ids, length } = padRight(mb, this.padTokenId ?? 0);
      if (mb.length > 1 && this.padTokenId === null) throw new RewardModelError('the reward model has no pad_token_id: score one sequence at a time or set pad_token_id');
      noGrad(() => scope(() => { out.set(this.forward(ids, mb.length, length).data() as Float32Array, s); }));
    }
    this.train(was);
    return out;
  }

  /** The HF config.json of the reward model. */
  configJson(): Record<string, unknown> {
    const c = this._backbone.configJson();
    const arch = String((c.architectures as string[] | undefined)?.[0] ?? `${c.model_type}ForCausalLM`).replace(/ForCausalLM$/, 'ForSequenceClassification');
    return { ...c, architectures: [arch], num_labels: 1, id2label: { 0: 'LABEL_0' }, label2id: { LABEL_0: 0 }, pad_token_id: this.padTokenId };
  }
}

function padRight(seqs: readonly (readonly number[])[], pad: number): { ids: Int32Array; length: number } {
  const L = Math.max(1, ...seqs.map((s) => s.length));
  const ids = new Int32Array(seqs.length * L).fill(pad);
  seqs.forEach((s, b) => ids.set(s, b * L));
  return { ids, length: L };
}

/** The tokenizer's padding id: a pad special token when it has one, else EOS, else 0. */
export function padTokenOf(tok: Tokenizer | null): number {
  if (!tok) return 0;
  for (const name of ['<pad>', '<|pad|>', '[PAD]', '<|padding|>']) {
    const id = tok.specialTokens.get(name);
    if (id !== undefined) return id;
  }
  return tok.eosId ?? 0;
}

/** A reward model with a new score head (random, std initializer_range) on a causal LM. */
export function rewardModelFromCausalLM(model: CausalLM, opts: { padTokenId: number | null; seed?: number }): RewardModel {
  return new RewardModel(model, { padTokenId: opts.padTokenId, generator: new Generator(opts.seed ?? 0) });
}

/** True when an HF config describes a sequence-classification (reward) model. */
export function isRewardModelConfig(config: Record<string, unknown>): boolean {
  return isSequenceClassificationConfig(config);
}

/** Save a reward model as an HF directory (config.json, model.safetensors, tokenizer.json when it can). */
export async function saveRewardModel(rm: RewardModel, dir: string, opts: { tokenizer?: Tokenizer | null } = {}): Promise<void> {
  const seen = new Set<Tensor>();
  const tensors: RawTensor[] = [];
  for (const [name, t] of rm.namedTensors()) {
    if (seen.has(t)) continue;
    seen.add(t);
    tensors.push(fromFloat32(name, [...t.shape], t.data() as Float32Array, 'F32'));
  }
  await writeHfDir(dir, { config: rm.configJson(), tensors });
  const tk = opts.tokenizer as (Tokenizer & { save?: (p: string) => void }) | null | undefined;
  if (tk && typeof tk.save === 'function' && tk.kind === 'hf') tk.save(path.join(dir, 'tokenizer.json'));
}

/**
 * Load a reward model from an HF directory written by saveRewardModel or transformers
 * (`*ForSequenceClassification`, num_labels 1). With `fromCausalLM`, a causal LM directory is
 * also accepted and gets a new score head (reward-model training starts from an SFT model).
 */
export async function loadRewardModel(dir: string, opts: { tokenizer?: string; fromCausalLM?: boolean; seed?: number } = {}): Promise<{ model: RewardModel; tokenizer: Tokenizer | null; newHead: boolean }> {
  const cfgFile = path.join(dir, 'config.json');
  if (existsSync(dir) && existsSync(cfgFile)) {
    const c = await readHfConfig(dir);
    if (isRewardModelConfig(c)) {
      const labels = c.id2label && typeof c.id2label === 'object' ? Object.keys(c.id2label).length : (c.num_labels as number | undefined) ?? 1;
      if (labels !== 1) throw new RewardModelError(`${cfgFile}: a reward model has one label (num_labels 1), this classifier has ${labels}`);
      const pad = c.pad_token_id;
      const padTokenId = pad === null || pad === undefined ? null : Array.isArray(pad) ? Number(pad[0]) : Number(pad);
      // readHfDir checks the backbone's tensors and score.weight [1, hidden_size] against the
      // config; the backbone (without an lm_head: tied, a reward model has none) is built within
      // the heap its weights justify, so a damaged config is refused before it allocates.
      const ck = await readHfDir(dir);
      const backbone = buildModelForWeights({ ...c, architectures: undefined, tie_word_embeddings: true }, cfgFile, dir, ck.tensors);
      const rm = withoutInit(() => new RewardModel(backbone, { padTokenId }));
      try {
        rm.loadStateDict(f32StateDict(ck.tensors, dir), { source: dir });
      } catch (e) {
        rm.dispose();
        throw e;
      }
      let tok: Tokenizer | null = null;
      if (opts.tokenizer) tok = loadTokenizer(opts.tokenizer);
      else for (const name of ['tokenizer.json', 'tokenizer.model']) if (existsSync(path.join(dir, name))) { tok = loadTokenizer(path.join(dir, name)); break; }
      return { model: rm, tokenizer: tok, newHead: false };
    }
  }
  if (!opts.fromCausalLM) throw new RewardModelError(`${dir}: not a reward model (config.json architectures should end in ForSequenceClassification; train one with tslm reward train)`);
  const { model, tokenizer } = await loadModel(dir, { tokenizer: opts.tokenizer, dtype: 'f32' });
  return { model: rewardModelFromCausalLM(model, { padTokenId: padTokenOf(tokenizer), seed: opts.seed }), tokenizer, newHead: true };
}

/**
 * Refuse to pair models whose tokenizers differ (a reward model must read the policy's token ids
 * as the same text): same vocabulary size, the same BOS/EOS, the same strings for every id.
 */
export function assertSameTokenizer(a: Tokenizer, b: Tokenizer, what: { a: string; b: string }): void {
  const fail = (why: string) => { throw new RewardModelError(`${what.a} and ${what.b} use different tokenizers: ${why}`); };
  if (a.vocabSize !== b.vocabSize) fail(`${a.vocabSize} vs ${b.vocabSize} tokens`);
  if (a.eosId !== b.eosId) fail(`EOS id ${a.eosId} vs ${b.eosId}`);
  if (a.bosId !== b.bosId) fail(`BOS id ${a.bosId} vs ${b.bosId}`);
  for (let id = 0; id < a.vocabSize; id++) if (a.idToToken(id) !== b.idToToken(id)) fail(`token ${id} is ${JSON.stringify(a.idToToken(id))} vs ${JSON.stringify(b.idToToken(id))}`);
}

/** Bradley–Terry loss −log σ(r_c − r_r − m), mean over pairs, and the pair accuracy (r_c > r_r). */
export function bradleyTerryLoss(chosen: Tensor, rejected: Tensor, margin?: ArrayLike<number> | null): { loss: Tensor; metrics: RewardMetrics } {
  const B = chosen.size;
  if (rejected.size !== B) throw new RewardModelError(`bradleyTerryLoss: ${B} chosen rewards, ${rejected.size} rejected`);
  if (margin && margin.length !== B) throw new RewardModelError(`bradleyTerryLoss: ${margin.length} margins for ${B} pairs`);
  let d = T.sub(T.reshape(chosen, [B]), T.reshape(rejected, [B]));
  if (margin) d = T.sub(d, T.tensor(Float32Array.from(margin), [B]));
  const loss = T.mean(T.softplus(T.mul(d, -1)));
  const c = T.detach(chosen).data() as Float32Array, r = T.detach(rejected).data() as Float32Array;
  let acc = 0, sc = 0, sr = 0;
  for (let b = 0; b < B; b++) { acc += c[b] > r[b] ? 1 : 0; sc += c[b]; sr += r[b]; }
  return { loss, metrics: { loss: loss.item(), accuracy: acc / B, 'rewards/chosen': sc / B, 'rewards/rejected': sr / B, 'rewards/margins': (sc - sr) / B } };
}

export interface RewardMetrics {
  loss: number;
  accuracy: number;
  'rewards/chosen': number;
  'rewards/rejected': number;
  'rewards/margins': number;
}

export interface RewardTrainOptions extends PairwiseTrainOptions {
  /** Use the rows' margins in the loss (LLaMA 2); rows without one have margin 0. */
  useMargin: boolean;
}

export const DEFAULT_REWARD_OPTIONS: RewardTrainOptions = {
  steps: 0, epochs: 1, batchSize: 8, microBatch: 8, lr: 1e-5, warmupSteps: 0, minLrRatio: 1, weightDecay: 0, gradClip: 1, seed: 0, useMargin: true, evalEvery: 0, checkpointEvery: 0,
};

export interface RewardStepMetrics extends RewardMetrics, PairwiseStep {
  eval_loss?: number;
  eval_accuracy?: number;
  'eval_rewards/margins'?: number;
}

/** Reward-model sequences of a pair: prompt + completion (no EOS appended: the reward reads the last real token). */
function pairSeqs(pairs: TokenizedPair[]): number[][] {
  return [...pairs.map((p) => [...p.prompt, ...p.chosen]), ...pairs.map((p) => [...p.prompt, ...p.rejected])];
}

/** Held-out metrics of a reward model on pairs (no gradients). */
export function evaluateRewardModel(rm: RewardModel, pairs: TokenizedPair[], o: { microBatch?: number; useMargin?: boolean } = {}): RewardMetrics & { chosen: Float32Array; rejected: Float32Array } {
  const chosen = rm.scoreSequences(pairs.map((p) => [...p.prompt, ...p.chosen]), 2 * (o.microBatch ?? 8));
  const rejected = rm.scoreSequences(pairs.map((p) => [...p.prompt, ...p.rejected]), 2 * (o.microBatch ?? 8));
  const m = noGrad(() => scope(() => bradleyTerryLoss(T.tensor(chosen), T.tensor(rejected), (o.useMargin ?? true) ? pairs.map((p) => p.margin) : null).metrics));
  return { ...m, chosen, rejected };
}

function checkPairs(rm: RewardModel, pairs: TokenizedPair[]): void {
  const V = rm.backbone.config.vocab_size;
  for (const p of pairs) {
    const n = p.prompt.length + Math.max(p.chosen.length, p.rejected.length);
    if (n > rm.contextLength) throw new RangeError(`${p.where}: prompt + completion is ${n} tokens, the model's context is ${rm.contextLength}`);
    for (const ids of [p.prompt, p.chosen, p.rejected]) for (const id of ids) if (!(id >= 0 && id < V)) throw new RangeError(`${p.where}: token id ${id} outside the model's vocabulary of ${V} (a different tokenizer?)`);
  }
}

/** Train a reward model on preference pairs (Bradley–Terry, LLaMA 2's margin when the rows carry one). */
export async function rewardTrain(rm: RewardModel, train: TokenizedPair[], opts: Partial<RewardTrainOptions> & {
  eval?: TokenizedPair[]; out?: string; log?: (line: string) => void; onStep?: (m: RewardStepMetrics, total: number) => void;
  /** Continue from the checkpoint in `out`; stop with one when `signal` aborts. */
  resume?: boolean; signal?: AbortSignal; tokenizer?: Tokenizer | null;
} = {}): Promise<{ metrics: RewardStepMetrics[]; evalBefore: RewardMetrics | null; evalAfter: RewardMetrics | null; steps: number; step: number }> {
  const o = withDefaults(DEFAULT_REWARD_OPTIONS, opts);
  checkPairwiseOptions('reward', o);
  if (!train.length) throw new RangeError('reward: no training pairs');
  if (rm.padTokenId === null) throw new RewardModelError('reward: the model has no pad_token_id (needed to batch sequences)');
  checkPairs(rm, train);
  if (opts.eval) checkPairs(rm, opts.eval);
  const log = opts.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const steps = pairwiseSteps(o, train.length);
  const held = opts.eval?.length ? opts.eval : null;
  const evalBefore = held && !opts.resume ? evaluateRewardModel(rm, held, o) : null;
  if (evalBefore) log(`held-out before: accuracy ${(100 * evalBefore.accuracy).toFixed(1)}%, loss ${evalBefore.loss.toFixed(4)}`);
  const { metrics, evalAfter, step } = await pairwiseLoop<TokenizedPair, RewardMetrics, RewardStepMetrics>({
    what: 'reward', model: rm, items: train, o: { ...o, steps }, out: opts.out, tokenizer: opts.tokenizer, resume: opts.resume, signal: opts.signal, log,
    microLoss: (mb) => {
      const n = mb.length;
      const { ids, length } = padRight(pairSeqs(mb), rm.padTokenId!);
      const r = rm.forward(ids, 2 * n, length);
      return bradleyTerryLoss(T.slice(r, 0, 0, n), T.slice(r, 0, n, 2 * n), o.useMargin ? mb.map((p) => p.margin) : null);
    },
    evaluate: held ? () => {
      const e = evaluateRewardModel(rm, held, o);
      return { result: e, entries: { eval_loss: e.loss, eval_accuracy: e.accuracy, 'eval_rewards/margins': e['rewards/margins'] } };
    } : undefined,
    onStep: opts.onStep ?? ((mm, total) => log(`step ${mm.step}/${total} loss ${mm.loss.toFixed(4)} | accuracy ${(100 * mm.accuracy).toFixed(0)}%` +
      (mm.eval_accuracy !== undefined ? ` | held-out accuracy ${(100 * mm.eval_accuracy).toFixed(1)}%` : '') + ` | ${mm.elapsed_seconds.toFixed(1)} s`)),
  });
  if (evalAfter) log(`held-out after: accuracy ${(100 * evalAfter.accuracy).toFixed(1)}%, loss ${evalAfter.loss.toFixed(4)}`);
  if (opts.out) {
    const s = (name: string, key: keyof RewardStepMetrics) => ({ name, points: metrics.filter((m) => m[key] !== undefined).map((m) => [m.step, m[key] as number] as [number, number]) });
    const charts = [
      seriesSvg([s('train', 'loss'), s('held-out', 'eval_loss')], { title: 'Bradley–Terry loss', yLabel: 'loss' }),
      seriesSvg([s('train', 'accuracy'), s('held-out', 'eval_accuracy')], { title: 'pair accuracy', yLabel: 'accuracy' }),
      seriesSvg([s('train', 'rewards/margins'), s('held-out', 'eval_rewards/margins')], { title: 'reward margin (chosen − rejected)', yLabel: 'margin' }),
    ];
    const fmt = (e: RewardMetrics | null) => e ? `accuracy ${(100 * e.accuracy).toFixed(1)}%, loss ${e.loss.toFixed(4)}` : '—';
    writeFileAtomic(path.join(opts.out, 'report.html'), `<!doctype html><html><head><meta charset="utf-8"><title>tslm reward train</title>
<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}th{text-align:left;padding-right:1em}.charts{display:flex;flex-wrap:wrap;gap:12px}</style></head><body>
<h1>tslm reward train</h1><table><tr><th>steps</th><td>${steps}</td></tr><tr><th>held-out before</th><td>${fmt(evalBefore)}</td></tr><tr><th>held-out after</th><td>${fmt(evalAfter)}</td></tr></table>
<div class="charts">${charts.join('\n')}</div></body></html>
`);
  }
  return { metrics, evalBefore, evalAfter, steps, step };
}
