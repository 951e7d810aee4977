// One early-fusion model, three tasks (Chameleon's recipe at MNIST scale): a LLaMA-graph
// transformer with Chameleon's stability options (QK-norm, z-loss) over one vocabulary of text
// tokens, <image>/</image> and the image tokenizer's codes, trained on MNIST documents of two kinds
// packed one after another: "a handwritten 7" then the digit's image (drawing), and an image then
// its caption (captioning). Packing puts documents of both kinds side by side in a window, so the
// model also reads and writes interleaved text and images.
//
// The model directory is an ordinary HF checkpoint (config.json, model.safetensors, a
// tokenizer.json whose added tokens name the sentinels and codes) plus mixed_modal.json and the
// image tokenizer in image_tokenizer/, so `tslm generate --image-out` can turn codes into a PNG.
import { existsSync, mkdirSync, writeFileSync, copyFileSync, rmSync, appendFileSync } from 'node:fs';
import { readJsonObjectFileSync } from '../io/json_file.js';
import path from 'node:path';
import { Generator } from '../tensor/random.js';
import { createModel } from '../models/index.js';
import type { CausalLM } from '../models/index.js';
import { HFTokenizer, addedTokenJson } from '../tokenizers/hf.js';
import type { AddedToken } from '../tokenizers/hf.js';
import { trainByteLevelBPE } from '../tokenizers/trainer.js';
import { TokenFile, Batcher } from '../train/data.js';
import { trainLoop, createOptimizer, DEFAULT_TRAIN_OPTIONS, TrainingDivergedError } from '../train/trainer.js';
import { seriesSvg } from '../align/report.js';
import type { TrainOptions, TrainState } from '../train/trainer.js';
import { saveCheckpoint, findCheckpoint, loadCheckpoint } from '../train/checkpoint.js';
import { lossCurveSvg, writeFileAtomic, esc } from '../train/report.js';
import type { StepMetrics } from '../train/report.js';
import { progressPrinter, paramsText, readMetrics } from '../train/run.js';
import { generate } from '../generate/generate.js';
import { loadMnist, shiftImage } from './mnist.js';
import type { ImageSet } from './mnist.js';
import { ImageTokenizer, trainImageTokenizer, loadImageTokenizer, saveImageTokenizer } from './tokenizer.js';
import { MixedVocab, ImageSpanProcessor, MixedVocabError } from './mixed.js';
import { trainDigitClassifier, loadDigitClassifier, saveDigitClassifier, DigitClassifier } from './classifier.js';
import { tile, pngDataUrl } from './png.js';
import { MIXED_MODAL_FILE } from './mixed_file.js';

export { MIXED_MODAL_FILE };
export const IMAGE_TOKENIZER_DIR = 'image_tokenizer';

/** mixed_modal.json: how the vocabulary is laid out, and where the image tokenizer is. */
export interface MixedModalConfig {
  format: 'tslm-mixed-modal';
  version: 1;
  text_vocab_size: number;
  num_codes: number;
  grid: number;
  image_tokenizer: string;
  /** The caption of digit d is this with {digit} replaced. */
  caption_template: string;
}

export const CAPTION_TEMPLATE = 'a handwritten {digit}';
/**
 * The chat template of a mixed-modal model, in the documents' own form: <|endoftext|>, then each
 * message's content with no roles, an answer (the assistant's) ending its document with <|endoftext|>.
 */
export const MIXED_CHAT_TEMPLATE = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{% endfor %}";
export const caption = (d: number): string => CAPTION_TEMPLATE.replace('{digit}', String(d));

/** The added token that stands for image code c in a mixed tokenizer.json. */
const codeToken = (c: number): string => `<img_${c}>`;

/** The mixed vocabulary's tokenizer.json: the text tokenizer's, then <image>, </image>, <img_0>… as special added tokens. */
export function mixedTokenizerJson(text: HFTokenizer, numCodes: number): Record<string, unknown> {
  const json = structuredClone(text.toJSON());
  const added = [...(json.added_tokens as AddedToken[])];
  const v = new MixedVocab(text.vocabSize, numCodes, 1);
  added.push(addedTokenJson(v.imageStart, '<image>'), addedTokenJson(v.imageEnd, '</image>'));
  for (let c = 0; c < numCodes; c++) added.push(addedTokenJson(v.codeOffset + c, codeToken(c)));
  return { ...json, added_tokens: added };
}

/** A mixed-modal model directory's layout, or null when the directory is not one. */
export function readMixedModal(dir: string): { config: MixedModalConfig; vocab: MixedVocab } | null {
  const f = path.join(dir, MIXED_MODAL_FILE);
  if (!existsSync(f)) return null;
  const c = readJsonObjectFileSync(f, 'the mixed-modal layout') as unknown as MixedModalConfig;
  if (c.format !== 'tslm-mixed-modal') throw new MixedVocabError(`${f}: not a tslm mixed-modal description (format must be "tslm-mixed-modal")`);
  return { config: c, vocab: new MixedVocab(c.text_vocab_size, c.num_codes, c.grid) };
}

/** Every image of a set as its grid of codes (n × grid², row-major). */
export function encodeImages(it: ImageTokenizer, set: ImageSet): Int32Array {
  const S = set.size, px = S * S, g2 = it.grid * it.grid;
  const out = new Int32Array(set.n * g2);
  for (let s = 0; s < set.n; s += 250) {
    const b = Math.min(250, set.n - s);
    out.set(it.encodePixels(set.pixels.subarray(s * px, (s + b) * px), b), s * g2);
  }
  return out;
}

/** The documents of a set (drawing: caption + image; captioning: image + caption), each ending in `eos`, shuffled with `seed`. */
export function mixedDocuments(codes: Int32Array, labels: Int32Array, v: MixedVocab, text: (s: string) => number[], eos: number, seed: number): number[][] {
  const n = labels.length, g2 = v.codesPerImage, docs: number[][] = [];
  for (let i = 0; i < n; i++) {
    const img = v.imageTokens(codes.subarray(i * g2, (i + 1) * g2));
    const cap = text(caption(labels[i]));
    docs.push([...cap, ...img, eos], [...img, ...cap, eos]);
  }
  return new Generator(seed).shuffle(docs);
}

/** The first n training images and n/9 held-out ones (MNIST's sets interleave the classes, so a prefix is balanced). */
function limitSets(d: { train: ImageSet; test: ImageSet }, n: number | undefined): { train: ImageSet; test: ImageSet } {
  if (n === undefined) return d;
  const cut = (s: ImageSet, k: number): ImageSet => {
    const m = Math.min(s.n, Math.max(10, k));
    return { pixels: s.pixels.subarray(0, m * s.size * s.size), labels: s.labels.subarray(0, m), n: m, size: s.size };
  };
  return { train: cut(d.train, n), test: cut(d.test, Math.ceil(n / 9)) };
}

/**
 * The set followed by `copies` shifted copies of every image (each by a seeded random offset of
 * up to 2 pixels in x and y, not both 0; what moves out of the frame is dropped, what moves in is
 * black): more code grids per digit for the same labels.
 */
export function shiftedCopies(set: ImageSet, copies: number, seed: number): ImageSet {
  if (copies <= 0) return set;
  const S = set.size, px = S * S, n = set.n * (copies + 1);
  const pixels = new Float32Array(n * px), labels = new Int32Array(n);
  pixels.set(set.pixels.subarray(0, set.n * px));
  labels.set(set.labels.subarray(0, set.n));
  const g = new Generator(seed);
  for (let c = 1; c <= copies; c++) {
    for (let i = 0; i < set.n; i++) {
      let dx = 0, dy = 0;
      while (dx === 0 && dy === 0) { dx = g.int(5) - 2; dy = g.int(5) - 2; }
      const o = (c * set.n + i) * px;
      shiftImage(set.pixels.subarray(i * px, (i + 1) * px), pixels.subarray(o, o + px), S, dx, dy);
      labels[c * set.n + i] = set.labels[i];
    }
  }
  return { pixels, labels, n, size: S };
}

function writeTokens(file: string, docs: number[][]): void {
  const flat = Int32Array.from(docs.flat());
  writeFileSync(file, new Uint8Array(flat.buffer));
}

export interface MixedModalOptions {
  out: string;
  /** An image tokenizer directory; otherwise one is trained (imageTokenizerSteps) into out/image_tokenizer. */
  imageTokenizer?: string;
  imageTokenizerSteps?: number;
  steps?: number;
  batchSize?: number;
  seqLen?: number;
  lr?: number;
  seed?: number;
  /** Chameleon's stability options (default on): QK-norm and the z-loss (coefficient; 0: off). */
  qkNorm?: boolean;
  zLoss?: number;
  /** Model size overrides (config.json fields). */
  config?: Record<string, unknown>;
  /**
   * Held-out images per class judged for captioning (at most what the held-out set has: about 97
   * per digit), and images drawn per class (default 100: about 1,000 of each, so that a figure
   * near a target is not a few images' luck).
   */
  evalPerClass?: number;
  /**
   * Steps of the stability comparison (default 150; 0: none): the same model trained at a high
   * learning rate (stabilityLr, default 1e-2) with QK-norm + z-loss and without either, their
   * loss curves side by side in report.html.
   */
  stabilitySteps?: number;
  stabilityLr?: number;
  /** Sampling temperature of the judged drawings (default 1: the model's own distribution). */
  drawTemperature?: number;
  /** Classifier-free guidance scale of the judged drawings (default IMAGE_GUIDANCE; 1: none). */
  guidance?: number;
  /**
   * Shifted copies of each training image added to the documents, drawn and captioned
   * (shiftedCopies; default 1). With one copy and twice the steps (the defaults) the model
   * captions 95.8% of the held-out digits and draws 91.3% as asked; without copies, 91.8% and
   * 88.5% (BENCHMARKS.md).
   */
  augment?: number;
  /** Steps of the judge's training (default 600). */
  classifierSteps?: number;
  /** Use only the first N training and N/9 held-out images (quick runs and tests). */
  limitImages?: number;
  resume?: boolean;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface MixedModalReport {
  steps: number;
  valLoss: number | null;
  captionAccuracy: number;
  /** Drawings: the guidance scale, the judge's agreement with and without it, per class with it. */
  guidance: number;
  drawAgreement: number;
  drawAgreementUnguided: number;
  drawPerClass: number[];
  classifierAccuracy: number;
  seconds: number;
  checkpoint: string;
  /** The stability comparison: per variant its losses and the step it diverged at (null: finite throughout). */
  stability?: StabilityRun[];
}

export interface StabilityRun { name: string; qkNorm: boolean; zLoss: number; lr: number; losses: number[]; divergedAt: number | null }

/**
 * The same model, data and seed trained at learning rate `lr` for `steps` steps with QK-norm and
 * z-loss and without them: the losses of each, and the step where a loss stopped being finite.
 */
export async function compareStability(base: Record<string, unknown>, train: () => Batcher, o: { steps: number; lr: number; seed: number; batchSize: number; seqLen: number; log: (l: string) => void }): Promise<StabilityRun[]> {
  const variants = [{ name: 'QK-norm + z-loss', qkNorm: true, zLoss: 1e-5 }, { name: 'neither', qkNorm: false, zLoss: 0 }];
  const out: StabilityRun[] = [];
  for (const v of variants) {
    const cfg: Record<string, unknown> = { ...base, model_type: v.qkNorm ? 'chameleon' : 'llama' };
    delete cfg.z_loss_coef;
    if (v.zLoss > 0) cfg.z_loss_coef = v.zLoss;
    const model = createModel(cfg, 'stability config', { generator: new Generator(o.seed) });
    const opts: TrainOptions = { ...DEFAULT_TRAIN_OPTIONS, steps: o.steps, batchSize: o.batchSize, seqLen: o.seqLen, lr: o.lr, warmupSteps: Math.min(20, o.steps), evalEvery: 1 << 30, seed: o.seed };
    const losses: number[] = [];
    let divergedAt: number | null = null;
    try {
      await trainLoop(model, createOptimizer(model, opts), { train: train(), val: null }, opts, { step: 0, tokens: 0, elapsedSeconds: 0 }, { onStep(m) { losses.push(m.loss); } });
    } catch (e) {
      if (!(e instanceof TrainingDivergedError)) throw e;
      divergedAt = losses.length + 1;
    } finally {
      model.dispose();
    }
    o.log(`stability at lr ${o.lr}: ${v.name}: ${divergedAt === null ? `finite for ${o.steps} steps, last loss ${losses[losses.length - 1]?.toFixed(3)}` : `diverged at step ${divergedAt}`}`);
    out.push({ ...v, lr: o.lr, losses, divergedAt });
  }
  return out;
}

/** Train the mixed-modal model (and what it needs: image tokenizer, judge), then evaluate it and write report.html. */
export async function trainMixedModal(o: MixedModalOptions): Promise<MixedModalReport> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const t0 = performance.now();
  mkdirSync(o.out, { recursive: true });
  const data = limitSets(loadMnist(), o.limitImages);
  // 1. The image tokenizer.
  const itDir = path.join(o.out, IMAGE_TOKENIZER_DIR);
  let it: ImageTokenizer;
  if (o.imageTokenizer) it = await loadImageTokenizer(o.imageTokenizer);
  else if (existsSync(path.join(itDir, 'model.safetensors'))) { it = await loadImageTokenizer(itDir); log(`image tokenizer: ${itDir} (kept from an earlier run)`); }
  else it = (await trainImageTokenizer({ out: itDir, steps: o.imageTokenizerSteps ?? 500, seed: o.seed, log, train: data.train, test: data.test })).model;
  if (o.imageTokenizer) await saveImageTokenizer(it, itDir);
  const K = it.config.num_codes, grid = it.grid;
  // 2. The judge.
  const clsDir = path.join(o.out, 'classifier');
  const kept = await loadDigitClassifier(clsDir);
  const judge = kept ?? trainDigitClassifier(data.train, data.test, { seed: o.seed, log, steps: o.classifierSteps });
  if (!kept) await saveDigitClassifier(judge.model, clsDir, judge.accuracy);
  // 3. Text tokenizer and the mixed vocabulary.
  const captions = Array.from({ length: 10 }, (_, d) => caption(d)).join('\n');
  const textTok = trainByteLevelBPE(Array(20).fill(captions).join('\n'), { vocabSize: 280, specialTokens: ['<|endoftext|>'] });
  const eos = textTok.eosId ?? 0;
  const vocab = new MixedVocab(textTok.vocabSize, K, grid);
  const tokenizer = new HFTokenizer(mixedTokenizerJson(textTok, K), path.join(o.out, 'tokenizer.json'));
  const text = (s: string) => textTok.encode(s);
  // 4. Documents.
  const dataDir = path.join(o.out, 'data');
  mkdirSync(dataDir, { recursive: true });
  const trainFile = path.join(dataDir, 'train.bin'), valFile = path.join(dataDir, 'val.bin');
  const seed = o.seed ?? 0;
  const trainSet = shiftedCopies(data.train, o.augment ?? 1, seed + 3);
  const trainCodes = encodeImages(it, trainSet), testCodes = encodeImages(it, data.test);
  writeTokens(trainFile, mixedDocuments(trainCodes, trainSet.labels, vocab, text, eos, seed));
  writeTokens(valFile, mixedDocuments(testCodes, data.test.labels, vocab, text, eos, seed + 1));
  // 5. The model.
  const opts: TrainOptions = {
    ...DEFAULT_TRAIN_OPTIONS, steps: o.steps ?? 3000, batchSize: o.batchSize ?? 16, seqLen: o.seqLen ?? 128, lr: o.lr ?? 2e-3,
    warmupSteps: 100, evalEvery: 250, evalBatches: 8, weightDecay: 0.1, seed,
  };
  const qk = o.qkNorm ?? true, z = o.zLoss ?? 1e-5;
  const rawConfig: Record<string, unknown> = {
    model_type: qk ? 'chameleon' : 'llama', vocab_size: vocab.size, hidden_size: 192, intermediate_size: 512, num_hidden_layers: 4,
    num_attention_heads: 6, num_key_value_heads: 6, max_position_embeddings: Math.max(128, opts.seqLen), rms_norm_eps: 1e-5, rope_theta: 10000,
    tie_word_embeddings: false, bos_token_id: eos, eos_token_id: eos, ...(z > 0 ? { z_loss_coef: z } : {}), ...(o.config ?? {}),
  };
  const model = createModel(rawConfig, 'mixed-modal config', { generator: new Generator(seed) });
  const trainTokens = new TokenFile(trainFile), valTokens = new TokenFile(valFile);
  const chunks = (f: TokenFile) => Uint32Array.from({ length: Math.floor((f.length - 1) / opts.seqLen) }, (_, i) => i);
  const train = new Batcher(trainTokens, opts.seqLen, opts.batchSize, chunks(trainTokens), seed);
  const val = new Batcher(valTokens, opts.seqLen, opts.batchSize, chunks(valTokens), seed, false);
  const opt = createOptimizer(model, opts);
  let state: TrainState = { step: 0, tokens: 0, elapsedSeconds: 0 };
  const metricsFile = path.join(o.out, 'metrics.jsonl');
  const metrics: StepMetrics[] = [];
  const ck = o.resume ? findCheckpoint(o.out) : null;
  if (ck) {
    const st = await loadCheckpoint(ck, model, opt);
    train.restore(st.train as never);
    state = st.state;
    metrics.push(...readMetrics(metricsFile, state.step));
    writeFileAtomic(metricsFile, metrics.map((m) => JSON.stringify(m) + '\n').join(''));
    log(`resumed from ${ck} at step ${state.step}`);
  } else rmSync(metricsFile, { force: true });
  const mm: MixedModalConfig = { format: 'tslm-mixed-modal', version: 1, text_vocab_size: textTok.vocabSize, num_codes: K, grid, image_tokenizer: IMAGE_TOKENIZER_DIR, caption_template: CAPTION_TEMPLATE };
  const also = async (dir: string) => {
    writeFileSync(path.join(dir, MIXED_MODAL_FILE), JSON.stringify(mm, null, 2) + '\n');
    // Documents follow <|endoftext|>: a chat is that, then the messages' contents as they are.
    writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', chat_template: MIXED_CHAT_TEMPLATE }, null, 2) + '\n');
    mkdirSync(path.join(dir, IMAGE_TOKENIZER_DIR), { recursive: true });
    for (const f of ['config.json', 'model.safetensors']) copyFileSync(path.join(itDir, f), path.join(dir, IMAGE_TOKENIZER_DIR, f));
  };
  log(`mixed-modal model: ${model.config.model_type} (QK-norm ${qk ? 'on' : 'off'}, z-loss ${z}), ${paramsText(model)}; vocabulary ${vocab.size} = ${textTok.vocabSize} text + 2 sentinels + ${K} codes; ` +
    `${trainTokens.length.toLocaleString('en-US')} training tokens (${2 * trainSet.n} documents${trainSet.n > data.train.n ? ` of ${data.train.n} digits and ${trainSet.n - data.train.n} shifted copies` : ''}), ${opts.steps} steps of ${opts.batchSize}×${opts.seqLen}`);
  const progress = progressPrinter((m) => ` | val loss ${m.valLoss!.toFixed(4)}`);
  let checkpoint = ck ?? '';
  let valLoss: number | null = null;
  try {
    state = await trainLoop(model, opt, { train, val }, opts, state, {
      onStep(m) { metrics.push(m); appendFileSync(metricsFile, JSON.stringify(m) + '\n'); if (m.valLoss !== undefined) valLoss = m.valLoss; progress(m, opts.steps); },
      async onCheckpoint(s) { checkpoint = await saveCheckpoint(o.out, { model, tokenizer, opt, state: s, options: opts, train: train.state(), also }); },
      shouldStop: () => !!o.signal?.aborted,
    });
    if (!checkpoint || state.step !== opts.steps) checkpoint = await saveCheckpoint(o.out, { model, tokenizer, opt, state, options: opts, train: train.state(), also });
    // 6. Evaluation.
    const per = o.evalPerClass ?? 100;
    const ev = evaluateMixedModal(model, vocab, it, judge.model, data.test, testCodes, { encode: text, decode: (ids) => textTok.decode(ids) }, eos, { perClass: per, seed, drawTemperature: o.drawTemperature, guidance: o.guidance });
    const sSteps = o.stabilitySteps ?? 150;
    const stability = sSteps > 0
      ? await compareStability(rawConfig, () => new Batcher(trainTokens, opts.seqLen, opts.batchSize, chunks(trainTokens), seed + 2), { steps: sSteps, lr: o.stabilityLr ?? 1e-2, seed, batchSize: opts.batchSize, seqLen: opts.seqLen, log })
      : undefined;
    const report: MixedModalReport = {
      steps: state.step, valLoss, captionAccuracy: ev.captionAccuracy, guidance: ev.guidance, drawAgreement: ev.drawAgreement, drawAgreementUnguided: ev.drawAgreementUnguided, drawPerClass: ev.drawPerClass,
      classifierAccuracy: judge.accuracy, seconds: (performance.now() - t0) / 1000, checkpoint, stability,
    };
    writeFileAtomic(path.join(o.out, 'report.json'), JSON.stringify(report, null, 2) + '\n');
    writeFileAtomic(path.join(o.out, 'loss.svg'), lossCurveSvg(metrics, { title: 'mixed-modal training' }));
    writeFileAtomic(path.join(o.out, 'report.html'), mixedReportHtml(report, metrics, ev, model));
    log(`captioning: ${(ev.captionAccuracy * 100).toFixed(1)}% of ${ev.captioned} held-out digits captioned with their digit`);
    log(`drawing: the judge reads the requested digit in ${(ev.drawAgreement * 100).toFixed(1)}% of ${10 * per} drawn images with guidance ${ev.guidance} (per class: ${ev.drawPerClass.map((a) => (a * 100).toFixed(0)).join(' ')}; ${(ev.drawAgreementUnguided * 100).toFixed(1)}% without guidance); the judge's own accuracy on real held-out digits: ${(judge.accuracy * 100).toFixed(1)}%`);
    log(`wrote ${checkpoint} (the model), ${path.join(o.out, 'report.html')}`);
    return report;
  } finally {
    trainTokens.close(); valTokens.close();
    model.dispose();
  }
}

export interface MixedEval {
  captionAccuracy: number;
  captioned: number;
  /** The classifier-free guidance scale of the drawings (1: none). */
  guidance: number;
  drawAgreement: number;
  drawPerClass: number[];
  /** The judge's agreement with drawings made without guidance (the same seeds). */
  drawAgreementUnguided: number;
  /** Drawn images, class by class (10 × perClass images), and the judge's verdicts. */
  drawn: Float32Array;
  verdicts: number[];
  /** A few held-out images with the captions the model wrote. */
  captions: { pixels: Float32Array; label: number; text: string }[];
  perClass: number;
  size: number;
}

/**
 * The classifier-free guidance scale mixed-modal models draw with by default (Chameleon's image
 * default): on the default mixed-modal model (4 × 192) it lifts the drawings the judge reads as requested from
 * about 60% to about 90% (BENCHMARKS.md).
 */
export const IMAGE_GUIDANCE = 3;

/** Caption held-out images (greedy) and draw each digit (sampled, temperature 1, guided); the judge reads the drawings. */
export function evaluateMixedModal(
  model: CausalLM, vocab: MixedVocab, it: ImageTokenizer, judge: DigitClassifier, test: ImageSet, testCodes: Int32Array,
  text: { encode: (s: string) => number[]; decode: (ids: number[]) => string }, eos: number, o: { perClass: number; seed: number; drawTemperature?: number; guidance?: number },
): MixedEval {
  const g2 = vocab.codesPerImage, S = test.size, px = S * S;
  // Captioning: perClass held-out images of each class.
  const pick: number[] = [];
  const seen = new Array(10).fill(0);
  for (let i = 0; i < test.n && pick.length < 10 * o.perClass; i++) if (seen[test.labels[i]] < o.perClass) { seen[test.labels[i]]++; pick.push(i); }
  let ok = 0;
  const caps: MixedEval['captions'] = [];
  for (let s = 0; s < pick.length; s += 50) {
    const idx = pick.slice(s, s + 50);
    const prompts = idx.map((i) => [eos, ...vocab.imageTokens(testCodes.subarray(i * g2, (i + 1) * g2))]);
    const r = generate(model, prompts, { maxNewTokens: 8, temperature: 0, stopIds: [eos], processors: [new ImageSpanProcessor(vocab, { images: false })] });
    r.ids.forEach((ids, k) => {
      const i = idx[k];
      const t = text.decode(ids.filter((x) => x < vocab.textSize));
      const m = /(\d)\s*$/.exec(t);
      if (m && Number(m[1]) === test.labels[i]) ok++;
      if (caps.length < 20 && k % 5 === 0) caps.push({ pixels: test.pixels.slice(i * px, (i + 1) * px), label: test.labels[i], text: t });
    });
  }
  // Drawing: perClass samples of each digit, with classifier-free guidance (the negative prompt
  // is the document start alone: the model's unconditional image) and, for comparison, without.
  const scale = o.guidance ?? IMAGE_GUIDANCE;
  const draw = (g: number) => {
    const drawn = new Float32Array(10 * o.perClass * px);
    const verdicts: number[] = [], perClass: number[] = [];
    for (let d = 0; d < 10; d++) {
      const prompts = Array.from({ length: o.perClass }, () => [eos, ...text.encode(caption(d))]);
      const r = generate(model, prompts, {
        maxNewTokens: g2 + 2, temperature: o.drawTemperature ?? 1, seed: o.seed * 10 + d, stopIds: [], processors: [new ImageSpanProcessor(vocab, { images: 'only' })],
        guidance: g !== 1 ? { scale: g, negative: [eos] } : undefined,
      });
      const codes: number[] = [];
      for (const ids of r.ids) {
        const img = vocab.images([...ids])[0];
        codes.push(...(img ? img.codes : new Array(g2).fill(0)));
      }
      const pixels = it.decodePixels(codes, o.perClass);
      drawn.set(pixels, d * o.perClass * px);
      const v = judge.predict(pixels, o.perClass);
      verdicts.push(...v);
      perClass.push(v.filter((x) => x === d).length / o.perClass);
    }
    return { drawn, verdicts, perClass, agreement: perClass.reduce((a, b) => a + b, 0) / 10 };
  };
  const guided = draw(scale);
  const plain = scale !== 1 ? draw(1) : guided;
  return {
    captionAccuracy: ok / pick.length, captioned: pick.length, guidance: scale, drawAgreement: guided.agreement, drawPerClass: guided.perClass,
    drawAgreementUnguided: plain.agreement, drawn: guided.drawn, verdicts: guided.verdicts, captions: caps, perClass: o.perClass, size: S,
  };
}

function stabilityHtml(runs: StabilityRun[] | undefined): string {
  if (!runs?.length) return '';
  const svg = seriesSvg(runs.map((r) => ({ name: `${r.name}${r.divergedAt !== null ? ` (diverged at step ${r.divergedAt})` : ''}`, points: r.losses.map((l, i) => [i + 1, l] as [number, number]) })),
    { title: `training loss at learning rate ${runs[0].lr}`, yLabel: 'loss', width: 720, height: 320 });
  const rows = runs.map((r) => `<li>${esc(r.name)}: ${r.divergedAt === null ? `finite for all ${r.losses.length} steps (last loss ${r.losses[r.losses.length - 1]?.toFixed(3)})` : `the loss stopped being finite at step ${r.divergedAt}`}</li>`).join('');
  return `<h2>Stability: QK-norm + z-loss against neither</h2><p>The same model, data and seed at a high learning rate.</p><ul>${rows}</ul>${svg}`;
}

function mixedReportHtml(r: MixedModalReport, metrics: StepMetrics[], ev: MixedEval, model: CausalLM): string {
  const S = ev.size, px = S * S;
  const rows = Array.from({ length: 10 }, (_, d) => {
    const imgs = ev.drawn.subarray(d * ev.perClass * px, (d + 1) * ev.perClass * px);
    const v = ev.verdicts.slice(d * ev.perClass, (d + 1) * ev.perClass);
    return `<tr><th>"${esc(caption(d))}"</th><td><img src="${pngDataUrl(tile(imgs, ev.perClass, S, ev.perClass))}" style="image-rendering:pixelated;height:${2 * (S + 1)}px"></td><td>${(r.drawPerClass[d] * 100).toFixed(0)}% read as ${d} (judge: ${v.join(' ')})</td></tr>`;
  }).join('');
  const caps = ev.captions.map((c) => `<figure style="display:inline-block;margin:4px;text-align:center"><img src="${pngDataUrl(tile(c.pixels, 1, S, 1))}" style="image-rendering:pixelated;width:56px"><figcaption>${esc(c.text)}</figcaption></figure>`).join('');
  const summary: [string, string][] = [
    ['model', `${model.config.model_type}, ${paramsText(model)}, ${model.config.num_hidden_layers} layers × ${model.config.hidden_size}`],
    ['steps', String(r.steps)], ['validation loss', r.valLoss === null ? '-' : r.valLoss.toFixed(4)],
    ['captioning accuracy (held-out digits)', `${(r.captionAccuracy * 100).toFixed(1)}%`],
    ['drawn digits the judge reads as requested', `${(r.drawAgreement * 100).toFixed(1)}% with classifier-free guidance ${r.guidance} (${(r.drawAgreementUnguided * 100).toFixed(1)}% without)`],
    ['the judge\'s accuracy on real held-out digits', `${(r.classifierAccuracy * 100).toFixed(1)}%`],
    ['time', `${r.seconds.toFixed(0)} s`],
  ];
  return `<!doctype html><html><head><meta charset="utf-8"><title>tslm mixed-modal model</title>
<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}table{border-collapse:collapse}th,td{padding:4px 10px;border-bottom:1px solid #eee;text-align:left}</style></head><body>
<h1>One model over text and image tokens (MNIST)</h1><table>${summary.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>
<h2>Loss</h2>${lossCurveSvg(metrics, { title: 'mixed-modal training' })}
<h2>Drawing: text → image tokens → pixels</h2><table>${rows}</table>
<h2>Captioning: image → text</h2>${caps}${stabilityHtml(r.stability)}</body></html>`;
}

/** A mixed-modal model directory's vocabulary and image tokenizer (null for a text-only model). */
export async function loadMixedModal(dir: string): Promise<{ vocab: MixedVocab; imageTokenizer: ImageTokenizer; config: MixedModalConfig } | null> {
  const mm = existsSync(dir) ? readMixedModal(dir) : null;
  if (!mm) return null;
  const imageTokenizer = await loadImageTokenizer(path.join(dir, mm.config.image_tokenizer));
  if (imageTokenizer.config.num_codes !== mm.config.num_codes || imageTokenizer.grid !== mm.config.grid) {
    throw new MixedVocabError(`${path.join(dir, MIXED_MODAL_FILE)}: ${mm.config.num_codes} codes on a ${mm.config.grid}×${mm.config.grid} grid, but the image tokenizer has ${imageTokenizer.config.num_codes} codes on ${imageTokenizer.grid}×${imageTokenizer.grid}`);
  }
  return { ...mm, imageTokenizer };
}

/** The tokens of an image (<image>, codes, </image>) for the model: the picture is checked against the image tokenizer's size. */
export function imagePromptTokens(it: ImageTokenizer, vocab: MixedVocab, img: { width: number; height: number; pixels: Float32Array }, file: string): number[] {
  return vocab.imageTokens(it.encodeImage(img, file));
}

/** The pixels (size × size) of the first complete image in generated ids, or null. */
export function imageFromTokens(it: ImageTokenizer, vocab: MixedVocab, ids: readonly number[]): Float32Array | null {
  const img = vocab.images(ids)[0];
  if (!img) return null;
  return it.decodePixels(img.codes, 1);
}

/** The special-token text of an image (<image><img_12>…</image>), which the mixed tokenizer encodes as the image's tokens. */
export function imageTokenText(it: ImageTokenizer, vocab: MixedVocab, img: { width: number; height: number; pixels: Float32Array }, where: string): string {
  const ids = imagePromptTokens(it, vocab, img, where);
  return ids.map((t) => (t === vocab.imageStart ? '<image>' : t === vocab.imageEnd ? '</image>' : codeToken(t - vocab.codeOffset))).join('');
}

/** Generated ids as content parts: text between images, and each complete image as a PNG data URL. */
export function contentParts(it: ImageTokenizer, vocab: MixedVocab, ids: readonly number[], decode: (ids: number[]) => string): Array<{ type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string } }> {
  const out: Array<{ type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string } }> = [];
  const S = it.config.image_size;
  let from = 0;
  for (const img of vocab.images(ids)) {
    const text = decode(ids.slice(from, img.at).filter((t) => t < vocab.textSize));
    if (text) out.push({ type: 'text', text });
    out.push({ type: 'image_url', image_url: { url: pngDataUrl({ width: S, height: S, pixels: it.decodePixels(img.codes, 1) }) } });
    from = img.at + vocab.codesPerImage + 2;
  }
  const rest = decode(ids.slice(from).filter((t) => t < vocab.textSize));
  if (rest) out.push({ type: 'text', text: rest });
  return out;
}
