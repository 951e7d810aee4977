// Training Medusa heads, as `tslm medusa train` does it (Cai et al. 2024; FasterDecoding/Medusa
// and its axolotl fork's medusa_utils.py for the recipe):
//
//   data     self-distillation: the base model continues the training prompts (greedy by
//            default, or sampled), and prompt + continuation is the training text, so the heads
//            learn what the base itself would say next — what decoding will verify them against.
//   loss     head k (0-based) at position t predicts token t+k+2 (the base head predicts t+1):
//              L = Σ_k λ_k · CE_k,   λ_k = medusa_heads_coefficient · medusa_decay_coefficient^(k+1)
//            (0.2 and 0.8 in every config of the repo's recipe; 1 and 1 give the original
//            train_legacy.py's plain sum). Medusa-1: the base is frozen. Medusa-2 (joint): the
//            base trains too, and its loss joins with weight lmWeight (1 in the repo): by default
//            the KL divergence from the original model's next-token distribution (the repo's
//            medusa_self_distillation: the training text is the model's own, and fitting its
//            greedy tokens as hard labels sharpens the model away from its distribution), or
//            lmLoss 'ce' for the plain next-token cross-entropy.
//   report   per-head accuracy on held-out continuations as the repo's eval reports it
//            (medusa/eval/heads_accuracy.py: for head i, how often its rank-j guess is the token
//            i+2 ahead; the training logs' medusa{i}_top{k} are the cumulative top-k rates).
//
// The loop is the pre-training one (trainLoop: AdamW, warmup + cosine, clipping, progress with
// tokens/s and ETA, evaluation, checkpoints) over a model-like object whose loss() is the Medusa loss.
import { mkdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tensor } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { crossEntropy, logSoftmax, softmax } from '../tensor/nn.js';
import { noGrad } from '../tensor/autograd.js';
import { scope } from '../tensor/storage.js';
import { Generator } from '../tensor/random.js';
import { MedusaHeads } from '../nn/medusa.js';
import type { CausalLM, LossParts } from '../models/causal.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { loadModel, saveModel } from '../io/model.js';
import { loadMedusaHeads, saveMedusaHeads } from '../io/medusa.js';
import { generate } from '../generate/generate.js';
import { Batcher, DataError, TokenFile, listDataFiles, readDocuments } from './data.js';
import { DEFAULT_TRAIN_OPTIONS, createOptimizer, trainLoop } from './trainer.js';
import type { TrainOptions, TrainState, TrainableLM } from './trainer.js';
import { appendMetrics, writeFileAtomic } from './report.js';
import type { StepMetrics } from './report.js';
import { brownText } from './quickstart.js';
import { progressPrinter } from './run.js';

export class MedusaTrainError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MedusaTrainError';
  }
}

/** λ_k = headsCoefficient · decay^(k+1), k = 0…K−1 (the repo's recipe: 0.2, 0.8). */
export function medusaLossWeights(K: number, opts: { headsCoefficient?: number; decay?: number } = {}): number[] {
  const c = opts.headsCoefficient ?? 0.2, d = opts.decay ?? 0.8;
  return Array.from({ length: K }, (_, k) => c * d ** (k + 1));
}

/**
 * The Medusa loss of K heads' logits (B, T, V) on labels (B, T) (i32; ignoreIndex −100 leaves a
 * position out): Σ_k weights[k] · mean CE(logits_k[:, t], labels[:, t+k+2]) over t < T−k−2.
 * Returns the weighted sum and each head's unweighted loss (scalars).
 */
export function medusaLoss(logits: Tensor[], labels: Tensor, weights: readonly number[], opts: { ignoreIndex?: number } = {}): { loss: Tensor; headLosses: Tensor[] } {
  if (weights.length !== logits.length) throw new MedusaTrainError(`medusaLoss: ${logits.length} heads but ${weights.length} weights`);
  if (labels.ndim !== 2) throw new MedusaTrainError(`medusaLoss: labels must be (B, T), got [${labels.shape.join(', ')}]`);
  const Tn = labels.shape[1];
  const headLosses: Tensor[] = [];
  let loss: Tensor | null = null;
  logits.forEach((lg, k) => {
    const n = Tn - k - 2;
    if (n < 1) throw new MedusaTrainError(`medusaLoss: head ${k} predicts ${k + 2} tokens ahead, so sequences need at least ${k + 3} tokens (got ${Tn})`);
    const V = lg.shape[lg.ndim - 1];
    const x = T.reshape(T.contiguous(T.slice(lg, 1, 0, n)), [-1, V]);
    const y = T.reshape(T.contiguous(T.slice(labels, 1, k + 2, Tn)), [-1]);
    const l = crossEntropy(x, y, { ignoreIndex: opts.ignoreIndex });
    headLosses.push(l);
    const term = T.mul(l, weights[k]);
    loss = loss ? T.add(loss, term) : term;
  });
  return { loss: loss!, headLosses };
}

/**
 * The Medusa repo's self-distillation loss for the base (medusa_self_distillation):
 * F.kl_div(log_softmax(student), softmax(teacher), reduction='sum') over the rows whose label is
 * not ignoreIndex, divided by the number of rows N (ignored ones included, as the repo divides by
 * its logits' rows). student and teacher are (N, V) logits, labels (N) i32; the teacher is a
 * constant (no gradient flows to it).
 */
export function selfDistillationLoss(student: Tensor, teacher: Tensor, labels: Tensor, opts: { ignoreIndex?: number } = {}): Tensor {
  if (student.ndim !== 2 || teacher.shape.join() !== student.shape.join()) {
    throw new MedusaTrainError(`selfDistillationLoss: student [${student.shape.join(', ')}] and teacher [${teacher.shape.join(', ')}] must be the same (N, V)`);
  }
  const [N, V] = student.shape;
  if (labels.ndim !== 1 || labels.shape[0] !== N) throw new MedusaTrainError(`selfDistillationLoss: labels [${labels.shape.join(', ')}] must be (${N})`);
  const ignore = opts.ignoreIndex ?? -100;
  const lab = labels.data() as Int32Array;
  const mask = new Float32Array(N);
  // The soft labels p (ignored rows zeroed) and Σ p·log p, the constant part of the divergence.
  const { w, plogp } = noGrad(() => {
    const p = T.contiguous(softmax(teacher));
    const pv = p.data() as Float32Array;
    let plogp = 0;
    for (let n = 0; n < N; n++) {
      if (lab[n] === ignore) continue;
      mask[n] = 1;
      for (let v = n * V; v < (n + 1) * V; v++) if (pv[v] > 0) plogp += pv[v] * Math.log(pv[v]);
    }
    return { w: T.mul(p, T.tensor(mask, [N, 1])), plogp };
  });
  return T.mul(T.sub(plogp, T.sum(T.mul(w, logSoftmax(student)))), 1 / N);
}

/**
 * The whole training objective on the base's hidden states h (B, L, D) of ids (B, L): the
 * heads' weighted Medusa loss, plus lm.weight × the base's loss on its logits lm.project(h) at
 * t when `lm` is given (Medusa-2): the cross-entropy against ids[t+1], or with lm.teacher (the
 * original model's logits (B, L, V) on the same ids) the self-distillation loss against its
 * distribution at t.
 */
export function medusaObjective(h: Tensor, ids: Tensor, heads: MedusaHeads, weights: readonly number[], lm?: { project: (h: Tensor) => Tensor; weight: number; teacher?: Tensor }): { loss: Tensor; headLosses: Tensor[]; lmLoss: Tensor | null } {
  const { loss, headLosses } = medusaLoss(heads.forward(h), ids, weights);
  if (!lm) return { loss, headLosses, lmLoss: null };
  const L = ids.shape[1], V = heads.config.vocab_size;
  const rows = (x: Tensor) => T.reshape(T.contiguous(T.slice(x, 1, 0, L - 1)), [-1, V]);
  const lg = T.reshape(T.contiguous(lm.project(T.slice(h, 1, 0, L - 1))), [-1, V]);
  const labels = T.reshape(T.contiguous(T.slice(ids, 1, 1, L)), [-1]);
  const lmLoss = lm.teacher ? selfDistillationLoss(lg, rows(lm.teacher), labels) : crossEntropy(lg, labels);
  return { loss: T.add(loss, T.mul(lmLoss, lm.weight)), headLosses, lmLoss };
}

export interface MedusaLossOptions {
  /** λ_k = headsCoefficient · decay^(k+1). */
  headsCoefficient: number;
  decay: number;
  /** Medusa-2: train the base too, adding lmWeight · its loss (lmLoss). */
  joint: boolean;
  lmWeight: number;
  /**
   * The base's loss in joint training: 'kl' (default) the KL divergence from the original
   * model's next-token distribution (the Medusa repo's self-distillation; a frozen copy of the
   * model gives it), 'ce' the cross-entropy against the next token of the training text.
   */
  lmLoss: 'kl' | 'ce';
}

export const DEFAULT_MEDUSA_LOSS: MedusaLossOptions = { headsCoefficient: 0.2, decay: 0.8, joint: false, lmWeight: 1, lmLoss: 'kl' };

/**
 * The base with its heads as the trainer sees a model: loss(ids (B, L)) runs the base on all L
 * tokens and returns the Medusa loss (plus the base's weighted next-token loss when joint);
 * lossParts() gives each head's loss as medusa{k}_loss (and lm_loss).
 */
export class MedusaTrainee implements TrainableLM {
  private parts: Record<string, number> = {};
  readonly weights: number[];
  /**
   * `teacher`: the original model, frozen (joint training with lmLoss 'kl' needs it; the caller
   * owns it).
   */
  constructor(readonly base: CausalLM, readonly heads: MedusaHeads, readonly o: MedusaLossOptions = DEFAULT_MEDUSA_LOSS, readonly teacher: CausalLM | null = null) {
    heads.checkBase(base);
    this.weights = medusaLossWeights(heads.numHeads, { headsCoefficient: o.headsCoefficient, decay: o.decay });
    if (!o.joint) base.freeze();
    if (o.joint && o.lmLoss === 'kl') {
      if (!teacher) throw new MedusaTrainError('joint training with the self-distillation loss (lmLoss \'kl\') needs the original model as the teacher');
      teacher.freeze();
      teacher.eval();
    }
  }
  loss(ids: Tensor): Tensor {
    const h = this.o.joint ? this.base.hidden(ids) : noGrad(() => this.base.hidden(ids));
    const teacher = this.o.joint && this.o.lmLoss === 'kl' ? noGrad(() => this.teacher!.project(this.teacher!.hidden(ids))) : undefined;
    const r = medusaObjective(h, ids, this.heads, this.weights, this.o.joint ? { project: (x) => this.base.project(x), weight: this.o.lmWeight, teacher } : undefined);
    const parts: Record<string, number> = {};
    r.headLosses.forEach((l, k) => { parts[`medusa${k}_loss`] = l.item(); });
    if (r.lmLoss) parts.lm_loss = r.lmLoss.item();
    this.parts = parts;
    return r.loss;
  }
  lossParts(): LossParts {
    return { values: { ...this.parts } };
  }
  namedParameters(): [string, Tensor][] {
    const heads = this.heads.namedParameters().map(([n, t]) => [`medusa_head.${n}`, t] as [string, Tensor]);
    return this.o.joint ? [...this.base.namedParameters(), ...heads] : heads;
  }
  train(on = true): void {
    this.heads.train(on);
    this.base.train(on && this.o.joint);
  }
}

/** Per-head accuracy on rows of token ids: the Medusa repo's table and its top-k rates. */
export interface HeadAccuracy {
  /** Positions scored per head. */
  positions: number[];
  /** perRank[i][j]: fraction of positions where head i's rank-j guess (0 = best) is the token i+2 ahead (heads_accuracy.py's table). */
  perRank: number[][];
  /** topK[i][k−1]: fraction where the token is among head i's k best (the training logs' medusa{i}_top{k}). */
  topK: number[][];
  /** Each head's mean cross-entropy on those positions. */
  loss: number[];
}

/**
 * Score the heads on rows (each a token sequence the base is run on): for head i at position t
 * the truth is row[t+i+2]. A guess's rank is the number of logits strictly larger than the true
 * token's (ties resolved in its favour).
 */
export function headAccuracy(base: CausalLM, heads: MedusaHeads, rows: readonly ArrayLike<number>[], opts: { ranks?: number; batchSize?: number } = {}): HeadAccuracy {
  const K = heads.numHeads, R = opts.ranks ?? 10, V = heads.config.vocab_size, bs = opts.batchSize ?? 8;
  const counts = Array.from({ length: K }, () => new Float64Array(R));
  const positions = new Array<number>(K).fill(0), nll = new Array<number>(K).fill(0);
  const wasTraining = heads.training;
  heads.eval();
  base.eval();
  for (let r0 = 0; r0 < rows.length; r0 += bs) {
    const group = rows.slice(r0, r0 + bs);
    const L = group[0].length;
    if (group.some((g) => g.length !== L)) throw new MedusaTrainError('headAccuracy: rows of a batch must have equal lengths');
    noGrad(() => scope(() => {
      const ids = T.tensor(Int32Array.from(group.flatMap((g) => Array.from(g))), [group.length, L], 'i32');
      const logits = heads.forward(base.hidden(ids));
      logits.forEach((lg, i) => {
        const d = lg.data() as Float32Array;
        for (let b = 0; b < group.length; b++) {
          for (let t = 0; t + i + 2 < L; t++) {
            const off = (b * L + t) * V, y = group[b][t + i + 2], ly = d[off + y];
            let rank = 0, max = -Infinity;
            for (let v = 0; v < V; v++) { const x = d[off + v]; if (x > ly) rank++; if (x > max) max = x; }
            let se = 0;
            for (let v = 0; v < V; v++) se += Math.exp(d[off + v] - max);
            nll[i] += max + Math.log(se) - ly;
            if (rank < R) counts[i][rank]++;
            positions[i]++;
          }
        }
      });
    }));
  }
  heads.train(wasTraining);
  const perRank = counts.map((c, i) => Array.from(c, (x) => x / Math.max(1, positions[i])));
  const topK = perRank.map((p) => { let s = 0; return p.map((x) => (s += x)); });
  return { positions, perRank, topK, loss: nll.map((x, i) => x / Math.max(1, positions[i])) };
}

/** The accuracy table as printed: one row per head, its top-1…top-k rates and loss. */
export function formatHeadAccuracy(a: HeadAccuracy, ks: readonly number[] = [1, 2, 3, 5, 10]): string {
  const cols = ks.filter((k) => k <= (a.topK[0]?.length ?? 0));
  const head = ['head    ', ...cols.map((k) => `top${k}`.padStart(7)), '   loss'].join(' ');
  const lines = a.topK.map((t, i) => [`medusa${i}`.padEnd(8), ...cols.map((k) => t[k - 1].toFixed(4).padStart(7)), a.loss[i].toFixed(4).padStart(7)].join(' '));
  return [head, ...lines].join('\n');
}

/** Metric names as the repo's training logs: medusa{i}_top{k}, medusa{i}_loss. */
export function headAccuracyMetrics(a: HeadAccuracy): Record<string, number> {
  const out: Record<string, number> = {};
  a.topK.forEach((t, i) => { t.forEach((x, k) => { out[`medusa${i}_top${k + 1}`] = x; }); out[`medusa${i}_loss`] = a.loss[i]; });
  return out;
}

// ---- self-distillation data ---------------------------------------------------------------

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Prompt lines: every non-empty line of the data's documents, or of the quickstart corpus when no data is given. */
export async function promptLines(data?: string, opts: { textField?: string } = {}): Promise<string[]> {
  const lines: string[] = [];
  const add = (doc: string) => { for (const l of doc.split('\n')) { const s = l.trim(); if (s) lines.push(s); } };
  if (data) {
    for (const f of listDataFiles(data)) for await (const d of readDocuments(f, { textField: opts.textField })) add(d);
    if (!lines.length) throw new DataError(`${data}: no text to take prompts from`);
  } else {
    for (const d of brownText()) add(d.text);
    const zh = path.join(root, 'data', 'quickstart', 'zh-classics.txt');
    if (existsSync(zh)) add(readFileSync(zh, 'utf8'));
  }
  return lines;
}

export interface DistillOptions {
  /** Prompts to take (at random, seeded) from the lines. */
  prompts: number;
  /** Tokens of each line that form its prompt (lines with fewer are skipped). */
  promptTokens: number;
  /** Length of every row (prompt included; BOS included when the tokenizer has one). */
  rowLength: number;
  /** 0: greedy continuations; otherwise sampled at this temperature. */
  temperature: number;
  topK?: number;
  seed: number;
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Self-distilled rows: for each chosen prompt (BOS, if any, then the first promptTokens tokens
 * of a line), the base's continuation to rowLength tokens (no stop token: every row is full).
 */
export function selfDistill(base: CausalLM, tokenizer: Tokenizer, lines: readonly string[], o: DistillOptions): Int32Array[] {
  const order = new Generator(o.seed).shuffle(lines.map((_, i) => i));
  const bos = tokenizer.bosId ?? tokenizer.eosId ?? base.config.bos_token_id;
  const prompts: number[][] = [];
  for (const i of order) {
    if (prompts.length >= o.prompts) break;
    const ids = tokenizer.encode(lines[i]);
    if (ids.length < o.promptTokens) continue;
    prompts.push([...(bos !== null ? [bos] : []), ...ids.slice(0, o.promptTokens)]);
  }
  if (!prompts.length) throw new DataError(`no line has ${o.promptTokens} tokens to form a prompt (lower --prompt-tokens)`);
  const P = prompts[0].length, gen = o.rowLength - P;
  if (gen < 1) throw new MedusaTrainError(`rows of ${o.rowLength} tokens leave no room to generate after ${P}-token prompts`);
  const rows: Int32Array[] = [], bs = o.batchSize ?? 32;
  base.eval();
  for (let i = 0; i < prompts.length; i += bs) {
    const batch = prompts.slice(i, i + bs);
    const r = generate(base, batch, { maxNewTokens: gen, temperature: o.temperature, topK: o.topK, seed: o.seed + i, stopIds: [] });
    batch.forEach((p, b) => rows.push(Int32Array.from([...p, ...r.ids[b]])));
    o.onProgress?.(Math.min(i + bs, prompts.length), prompts.length);
  }
  return rows;
}

/** A Batcher over whole rows of a token file (row c = tokens c·(seqLen+1) …): no window crosses two rows. */
class RowBatcher extends Batcher {
  private order: Uint32Array;
  constructor(data: TokenFile, seqLen: number, batchSize: number, rows: number, seed: number, shuffle: boolean) {
    super(data, seqLen, batchSize, Uint32Array.from({ length: rows }, (_, i) => i), seed, shuffle);
    this.order = this.rowOrder(0);
  }
  private rowOrder(epoch: number): Uint32Array {
    const p = Uint32Array.from({ length: this.count }, (_, i) => i);
    if (!this.shuffle) return p;
    return new Generator(this.seed * 1000003 + epoch).shuffle(p);
  }
  override next(): Int32Array {
    const L = this.seqLen + 1, out = new Int32Array(this.batchSize * L);
    for (let b = 0; b < this.batchSize; b++) {
      if (this.index >= this.count) { this.epoch++; this.index = 0; this.order = this.rowOrder(this.epoch); }
      out.set(this.data.read(this.order[this.index++] * L, L), b * L);
    }
    return out;
  }
  override restore(s: { epoch: number; index: number; seed: number }): void {
    super.restore(s);
    this.order = this.rowOrder(s.epoch);
  }
}

function writeRows(file: string, rows: readonly Int32Array[]): TokenFile {
  const L = rows[0].length, all = new Int32Array(rows.length * L);
  rows.forEach((r, i) => all.set(r, i * L));
  writeFileAtomic(file, new Uint8Array(all.buffer));
  return new TokenFile(file);
}

// ---- the run ------------------------------------------------------------------------------

export interface MedusaTrainOptions extends Partial<TrainOptions>, Partial<MedusaLossOptions> {
  /** Base model (HF directory, llama2.c .bin or GGUF). */
  model: string;
  /** Prompt data (text/JSONL/Parquet files or a folder); default: the quickstart corpus. */
  data?: string;
  out: string;
  heads?: number;
  layers?: number;
  /** Continue from heads saved earlier (a Medusa directory) instead of fresh ones. */
  init?: string;
  /**
   * Tie the heads' LM heads to the base's output head (MedusaHeads.tie): only the ResBlocks
   * train, and decoding runs the heads' LM products as one few-row product with the base head.
   * Saved in the same layout (each LM weight a copy of the base head).
   */
  tieLmHead?: boolean;
  tokenizer?: string;
  textField?: string;
  prompts?: number;
  promptTokens?: number;
  /** Temperature of the self-distillation (0 = greedy). */
  temperature?: number;
  /** Fraction of the rows held out for validation and the accuracy report. */
  valFraction?: number;
  /** Ranks of the accuracy table (top-1 … top-ranks). */
  ranks?: number;
  log?: (line: string) => void;
  progress?: (m: StepMetrics, total: number) => void;
}

export interface MedusaTrainResult {
  base: CausalLM;
  heads: MedusaHeads;
  tokenizer: Tokenizer;
  metrics: StepMetrics[];
  /** Held-out accuracy before training (fresh heads copy the base head) and after. */
  before: HeadAccuracy;
  after: HeadAccuracy;
  state: TrainState;
  options: TrainOptions;
  trainRows: number;
  valRows: number;
}

/** Defaults that train useful heads for the quickstart model in a few minutes on 2 cores. */
export const DEFAULT_MEDUSA_TRAIN = {
  heads: 4, layers: 1, prompts: 1024, promptTokens: 8, temperature: 0, valFraction: 1 / 16, ranks: 10,
  train: { steps: 400, batchSize: 16, lr: 1e-3, warmupSteps: 40, minLrRatio: 0.1, weightDecay: 0, gradClip: 1, evalEvery: 100, evalBatches: 4, seed: 0 } as Partial<TrainOptions>,
};

/** Self-distil, train, report and save: `tslm medusa train`. */
export async function trainMedusa(o: MedusaTrainOptions): Promise<MedusaTrainResult> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const D = DEFAULT_MEDUSA_TRAIN;
  const lossOpts: MedusaLossOptions = {
    headsCoefficient: o.headsCoefficient ?? DEFAULT_MEDUSA_LOSS.headsCoefficient, decay: o.decay ?? DEFAULT_MEDUSA_LOSS.decay,
    joint: o.joint ?? false, lmWeight: o.lmWeight ?? DEFAULT_MEDUSA_LOSS.lmWeight, lmLoss: o.lmLoss ?? DEFAULT_MEDUSA_LOSS.lmLoss,
  };
  if (lossOpts.lmLoss !== 'kl' && lossOpts.lmLoss !== 'ce') throw new MedusaTrainError(`lmLoss must be 'kl' or 'ce', got ${JSON.stringify(lossOpts.lmLoss)}`);
  const { model: base, tokenizer } = await loadModel(o.model, { tokenizer: o.tokenizer, dtype: 'f32' });
  let heads: MedusaHeads | null = null;
  // Joint training's self-distillation teacher: the original model, loaded again and frozen.
  let teacher: CausalLM | null = null;
  try {
    if (!tokenizer) throw new DataError(`${o.model}: no tokenizer found to encode the prompts; pass --tokenizer`);
    heads = o.init
      ? (await loadMedusaHeads(o.init, { base })).heads
      : MedusaHeads.fromBase(base, { heads: o.heads ?? D.heads, layers: o.layers ?? D.layers });
    if (o.tieLmHead) {
      if (heads.numLayers === 0) throw new MedusaTrainError('tied LM heads with 0 layers would leave nothing to train: every head would be the base head (use --layers ≥ 1)');
      heads.tie(base);
    }
    const rowLength = Math.min((o.seqLen ?? 127) + 1, base.contextLength);
    const opts: TrainOptions = { ...DEFAULT_TRAIN_OPTIONS, ...D.train, ...definedOnly(o), seqLen: rowLength - 1 };
    if (rowLength < heads.numHeads + 3) throw new MedusaTrainError(`rows of ${rowLength} tokens are too short for ${heads.numHeads} heads (need ${heads.numHeads + 3})`);
    mkdirSync(o.out, { recursive: true });

    // Self-distillation.
    const lines = await promptLines(o.data, { textField: o.textField });
    const t0 = performance.now();
    const temperature = o.temperature ?? D.temperature;
    log(`self-distillation: ${temperature ? `sampling at temperature ${temperature}` : 'greedy'} continuations of up to ${o.prompts ?? D.prompts} prompts (${o.promptTokens ?? D.promptTokens} tokens of a line each) to ${rowLength} tokens, from ${lines.length} lines of ${o.data ?? 'the quickstart corpus'} …`);
    const rows = selfDistill(base, tokenizer, lines, {
      prompts: o.prompts ?? D.prompts, promptTokens: o.promptTokens ?? D.promptTokens, rowLength, temperature, seed: opts.seed,
    });
    const nVal = Math.max(1, Math.round(rows.length * (o.valFraction ?? D.valFraction)));
    if (rows.length - nVal < 1) throw new DataError(`only ${rows.length} prompt(s): too few to hold ${nVal} out for validation and train on the rest`);
    const valRows = rows.slice(0, nVal), trainRows = rows.slice(nVal);
    log(`data: ${rows.length} rows × ${rowLength} tokens (${trainRows.length} train, ${valRows.length} held out) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const dataDir = path.join(o.out, 'data');
    mkdirSync(dataDir, { recursive: true });
    const trainFile = writeRows(path.join(dataDir, 'train.bin'), trainRows), valFile = writeRows(path.join(dataDir, 'val.bin'), valRows);
    const batch = Math.min(opts.batchSize, trainRows.length);
    opts.batchSize = batch;
    const train = new RowBatcher(trainFile, opts.seqLen, batch, trainRows.length, opts.seed, true);
    const val = new RowBatcher(valFile, opts.seqLen, Math.min(batch, valRows.length), valRows.length, opts.seed, false);

    if (lossOpts.joint && lossOpts.lmLoss === 'kl') teacher = (await loadModel(o.model, { tokenizer: o.tokenizer, dtype: 'f32' })).model;
    const trainee = new MedusaTrainee(base, heads, lossOpts, teacher);
    const ranks = o.ranks ?? D.ranks;
    const before = headAccuracy(base, heads, valRows, { ranks });
    const nParams = heads.numParameters();
    log(`Medusa-${lossOpts.joint ? `2 (joint: the base trains too, its ${lossOpts.lmLoss === 'kl' ? 'KL divergence from the original model' : 'next-token loss'} × ${lossOpts.lmWeight})` : '1 (base frozen)'}: ${heads.numHeads} heads × ${heads.numLayers} layer(s), ` +
      `${(nParams / 1e6).toFixed(2)}M head parameters${o.tieLmHead ? ' (LM heads tied to the base head)' : ''}; loss weights ${trainee.weights.map((w) => w.toFixed(4)).join(', ')}; ${opts.steps} steps of ${opts.batchSize}×${opts.seqLen + 1} tokens`);
    log(`held-out accuracy before training (each head a copy of the base head):\n${formatHeadAccuracy(before)}`);

    const opt = createOptimizer(trainee, opts);
    const metricsFile = path.join(o.out, 'metrics.jsonl');
    rmSync(metricsFile, { force: true });
    const metrics: StepMetrics[] = [];
    const progress = o.progress ?? progressPrinter((m) => ` | val loss ${m.valLoss!.toFixed(4)} | ${m.parts ? Object.entries(m.parts).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(' ') : ''}`);
    const save = async () => {
      if (lossOpts.joint) await saveModel(base, o.out, { tokenizer });
      await saveMedusaHeads(heads!, o.out, { baseModel: lossOpts.joint ? path.resolve(o.out) : path.resolve(o.model), extraConfig: lossOpts.joint ? base.configJson() : {} });
    };
    const state = await trainLoop(trainee, opt, { train, val }, opts, { step: 0, tokens: 0, elapsedSeconds: 0 }, {
      onStep(m) { metrics.push(m); appendMetrics(metricsFile, m); progress(m, opts.steps); },
      onCheckpoint: save,
    });
    const after = headAccuracy(base, heads, valRows, { ranks });
    log(`held-out accuracy after ${state.step} steps (${after.positions[0]} positions for medusa0; medusa{i}_top{k}: the token i+2 ahead among head i's k best):\n${formatHeadAccuracy(after)}`);
    writeFileAtomic(path.join(o.out, 'heads_accuracy.json'), JSON.stringify({
      before: { ...headAccuracyMetrics(before), per_rank: before.perRank }, after: { ...headAccuracyMetrics(after), per_rank: after.perRank, positions: after.positions },
    }, null, 1) + '\n');
    trainFile.close();
    valFile.close();
    return { base, heads, tokenizer, metrics, before, after, state, options: opts, trainRows: trainRows.length, valRows: valRows.length };
  } catch (e) {
    heads?.dispose();
    base.dispose();
    throw e;
  } finally {
    teacher?.dispose();
  }
}

function definedOnly(o: Partial<TrainOptions>): Partial<TrainOptions> {
  const keys: (keyof TrainOptions)[] = ['steps', 'batchSize', 'gradAccum', 'lr', 'minLrRatio', 'warmupSteps', 'weightDecay', 'betas', 'gradClip', 'evalEvery', 'evalBatches', 'seed'];
  const out: Partial<TrainOptions> = {};
  for (const k of keys) if (o[k] !== undefined) (out as Record<string, unknown>)[k] = o[k];
  return out;
}
