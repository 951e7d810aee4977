// A whole training run, as `tslm train` and `tslm quickstart` do it: tokenizer (given, or a
// byte-level BPE trained on the data), token file, model, AdamW with warmup + cosine, progress,
// metrics.jsonl, loss.svg, report.html, atomic checkpoints and --resume.
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Generator } from '../tensor/random.js';
import { createModel } from '../models/index.js';
import type { CausalLM } from '../models/causal.js';
import { ConfigError } from '../models/config.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { loadTokenizer } from '../tokenizers/load.js';
import { trainByteLevelBPE } from '../tokenizers/trainer.js';
import { DataError, TokenFile, listDataFiles, readDocuments, splitBatchers, tokenizeToFile } from './data.js';
import type { Batcher } from './data.js';
import { DEFAULT_TRAIN_OPTIONS, checkTrainOptions, createOptimizer, trainLoop } from './trainer.js';
import type { TrainOptions, TrainState } from './trainer.js';
import { appendMetrics, lossCurveSvg, progressLine, reportHtml, writeFileAtomic } from './report.js';
import type { StepMetrics } from './report.js';
import { findCheckpoint, loadCheckpoint, readMetricsFile, readTrainerState, saveCheckpoint } from './checkpoint.js';
import { PRESETS } from './presets.js';
import { removeStaleTemps } from './stale.js';

export interface RunOptions extends Partial<TrainOptions> {
  data: string;
  out: string;
  /** An HF config object, a path to a config.json, or a preset name ('260k', '15m', …). */
  config: Record<string, unknown> | string;
  /** A tokenizer file; otherwise a byte-level BPE of the config's vocab_size is trained on the data. */
  tokenizer?: string;
  resume?: boolean;
  valFraction?: number;
  /** At most this many characters of the data train the tokenizer (default 20M). */
  tokenizerSampleChars?: number;
  log?: (line: string) => void;
  /** Progress lines (default: stderr, rewritten in place on a terminal). */
  progress?: (m: StepMetrics, total: number) => void;
  title?: string;
  /** Extra HTML report content. */
  samples?: (model: CausalLM, tokenizer: Tokenizer) => { prompt: string; text: string }[];
  /** More summary rows for the report (computed once, at the end). */
  extraSummary?: (ctx: { tokens: TokenFile; train: Batcher; val: Batcher; vocab: number }) => [string, string][];
  /** Stop (with a checkpoint) once this many steps are done in total, before opts.steps. */
  stopAtStep?: number;
  /** Stop (with a checkpoint) when this signal is aborted (the CLI wires Ctrl-C to it). */
  signal?: AbortSignal;
}

export interface RunResult {
  model: CausalLM;
  tokenizer: Tokenizer;
  metrics: StepMetrics[];
  valLoss: number | null;
  state: TrainState;
  tokens: TokenFile;
  options: TrainOptions;
  checkpoint: string;
}

export function resolveConfig(c: Record<string, unknown> | string): Record<string, unknown> {
  if (typeof c !== 'string') return { ...c };
  if (PRESETS[c.toLowerCase()]) return { ...PRESETS[c.toLowerCase()] };
  if (!existsSync(c)) throw new ConfigError(c, `not a preset (${Object.keys(PRESETS).join(', ')}) and no such file`);
  try {
    return JSON.parse(readFileSync(c, 'utf8'));
  } catch (e) {
    // (the position only: Node's message quotes the file's text)
    const pos = /position (\d+)/.exec((e as Error).message)?.[1];
    throw new ConfigError(c, `is not valid JSON${pos ? ` (error at character ${pos})` : ''}`);
  }
}

async function tokenizerSample(data: string, maxChars: number): Promise<string[]> {
  const texts: string[] = [];
  let n = 0;
  for (const f of listDataFiles(data)) {
    for await (const d of readDocuments(f)) {
      texts.push(d.length > maxChars - n ? d.slice(0, maxChars - n) : d);
      n += d.length;
      if (n >= maxChars) return texts;
    }
  }
  return texts;
}

/**
 * Progress on stderr: the step line rewritten in place on a terminal (kept at evaluations and the
 * end), else a line per evaluation and at most one per 10 s; `evalText` is added at evaluations.
 */
export function progressPrinter(evalText: (m: StepMetrics) => string): (m: StepMetrics, total: number) => void {
  const tty = process.stderr.isTTY;
  let lastPrint = 0;
  return (m, total) => {
    const line = progressLine(m, total) + (m.valLoss !== undefined ? evalText(m) : '');
    if (tty) {
      process.stderr.write(`\r\x1b[K${line}`);
      if (m.valLoss !== undefined || m.step === total) process.stderr.write('\n');
    } else if (m.valLoss !== undefined || m.step === total || performance.now() - lastPrint > 10000) {
      process.stderr.write(line + '\n');
      lastPrint = performance.now();
    }
  };
}

export async function runTraining(o: RunOptions): Promise<RunResult> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + '\n'));
  mkdirSync(o.out, { recursive: true });
  const stale = removeStaleTemps(o.out);
  if (stale.length) log(`removed ${stale.length} temporary file(s) of killed runs in ${o.out}: ${stale.join(', ')}`);
  const ckDir = o.resume ? findCheckpoint(o.out) : null;
  if (o.resume && !ckDir) throw new DataError(`${o.out}: --resume given but no checkpoint found there`);
  const prevState = ckDir ? readTrainerState(ckDir) : null;

  // Tokenizer: the checkpoint's, a given file, or a new byte-level BPE trained on the data.
  const rawConfig = resolveConfig(o.config);
  let tokenizer: Tokenizer;
  const savedTok = path.join(o.out, 'tokenizer.json');
  if (o.tokenizer) tokenizer = loadTokenizer(o.tokenizer);
  else if (existsSync(savedTok) && (o.resume || prevState)) tokenizer = loadTokenizer(savedTok);
  else {
    const vocab = Number(rawConfig.vocab_size ?? 4096);
    log(`training a byte-level BPE tokenizer (vocab ${vocab}) on ${o.data} …`);
    const t0 = performance.now();
    const sample = await tokenizerSample(o.data, o.tokenizerSampleChars ?? 20_000_000);
    if (!sample.some((s) => s.trim())) throw new DataError(`${o.data}: the corpus is empty (no text in any document)`);
    const tok = trainByteLevelBPE(sample, { vocabSize: vocab, specialTokens: ['<|endoftext|>'] });
    tok.save(savedTok);
    tokenizer = loadTokenizer(savedTok);
    log(`tokenizer: ${tokenizer.vocabSize} tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s → ${savedTok}`);
  }
  rawConfig.vocab_size = tokenizer.vocabSize;
  if (tokenizer.bosId !== null) rawConfig.bos_token_id = tokenizer.bosId;
  if (tokenizer.eosId !== null) rawConfig.eos_token_id = tokenizer.eosId;
  const given = definedOnly(o) as Record<string, unknown>;
  const stateOptions = prevState?.options && typeof prevState.options === 'object' && !Array.isArray(prevState.options) ? prevState.options : {};
  const opts: TrainOptions = { ...DEFAULT_TRAIN_OPTIONS, ...stateOptions, ...definedOnly(o) };
  // Options that come back from the checkpoint are checked as the command line's are.
  checkTrainOptions(opts, (k) => (ckDir && !(k in given) && k in stateOptions ? `${path.join(ckDir, 'trainer_state.json')}: options` : 'options'));
  // The model (random weights from the run's seed); its config is checked here, before the data is read.
  const model = createModel(rawConfig, typeof o.config === 'string' ? o.config : 'config', { generator: new Generator(opts.seed) });
  const config = model.config;
  if (opts.seqLen > model.contextLength) {
    model.dispose();
    throw new ConfigError('config', `sequence length ${opts.seqLen} exceeds max_position_embeddings ${model.contextLength} (the model's context)`);
  }

  // Token file (kept across resumes).
  const tokFile = path.join(o.out, 'tokens.bin');
  if (!(ckDir && existsSync(tokFile))) {
    const t0 = performance.now();
    const r = await tokenizeToFile(o.data, tokFile, { encode: (s) => tokenizer.encode(s), separator: tokenizer.eosId });
    log(`data: ${r.documents} documents, ${r.tokens} tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const tokens = new TokenFile(tokFile);
  // A token file kept from an earlier run must fit this tokenizer (a corrupt file, or one made
  // with another tokenizer, would index past the embedding table).
  if (ckDir) checkTokenIds(tokens, tokenizer.vocabSize);
  const { train, val } = splitBatchers(tokens, opts.seqLen, opts.batchSize, { valFraction: o.valFraction ?? 0.05, seed: opts.seed });

  const opt = createOptimizer(model, opts);
  let state: TrainState = { step: 0, tokens: 0, elapsedSeconds: 0 };
  const metricsFile = path.join(o.out, 'metrics.jsonl');
  if (ckDir) {
    const st = await loadCheckpoint(ckDir, model, opt);
    train.restore(st.train);
    state = st.state;
    log(`resumed from ${ckDir} at step ${state.step}`);
  } else rmSync(metricsFile, { force: true });
  // A killed run leaves the steps after its last checkpoint in metrics.jsonl (and maybe a cut
  // last line): keep only the steps the checkpoint holds, and write the file back so the resumed
  // run's steps are not appended after stale ones.
  const metrics: StepMetrics[] = ckDir ? readMetrics(metricsFile, state.step) : [];
  if (ckDir) writeFileAtomic(metricsFile, metrics.map((m) => JSON.stringify(m) + '\n').join(''));
  log(`model: ${config.model_type}, ${paramsText(model)}, ${config.num_hidden_layers} layers × ${config.hidden_size}; ` +
    `${opts.steps} steps of ${opts.batchSize}×${opts.seqLen}${opts.gradAccum > 1 ? `×${opts.gradAccum}` : ''} tokens; train ${train.count} / val ${val.count} sequences`);

  const progress = o.progress ?? progressPrinter((m) => ` | val loss ${m.valLoss!.toFixed(4)} (ppl ${m.valPerplexity!.toFixed(2)})`);
  let lastVal: number | null = metrics.filter((m) => m.valLoss !== undefined).pop()?.valLoss ?? null;
  let checkpoint = ckDir ?? '';
  state = await trainLoop(model, opt, { train, val }, opts, state, {
    onStep(m) {
      metrics.push(m);
      appendMetrics(metricsFile, m);
      if (m.valLoss !== undefined) lastVal = m.valLoss;
      progress(m, opts.steps);
    },
    async onCheckpoint(s) {
      checkpoint = await saveCheckpoint(o.out, { model, tokenizer, opt, state: s, options: opts, train: train.state() });
      writeReports(o, metrics, model, tokenizer, opts, s, lastVal, null);
    },
    shouldStop: (s) => (o.stopAtStep !== undefined && s.step >= o.stopAtStep) || !!o.signal?.aborted,
  });
  const extra = o.extraSummary?.({ tokens, train, val, vocab: tokenizer.vocabSize }) ?? [];
  writeReports(o, metrics, model, tokenizer, opts, state, lastVal, extra);
  return { model, tokenizer, metrics, valLoss: lastVal, state, tokens, options: opts, checkpoint };
}

/** Every id of a token file in [0, vocab), read in blocks; a DataError naming the first that is not. */
export function checkTokenIds(tokens: TokenFile, vocab: number): void {
  const block = 1 << 20;
  for (let start = 0; start < tokens.length; start += block) {
    const ids = tokens.read(start, Math.min(block, tokens.length - start));
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] < 0 || ids[i] >= vocab) {
        throw new DataError(`${tokens.file}: token ${start + i} is ${ids[i]}, outside the vocabulary (0…${vocab - 1}): the file is damaged or was made with another tokenizer; delete it and resume to tokenise the data again`);
      }
    }
  }
}

/** The metrics of steps 1…upTo from a metrics.jsonl (see readMetricsFile). */
export function readMetrics(file: string, upTo: number): StepMetrics[] {
  return readMetricsFile<StepMetrics>(file, upTo);
}

/** loss.svg and report.html; `extra` (summary rows) is given for the final report, which also gets samples. */
function writeReports(o: RunOptions, metrics: StepMetrics[], model: CausalLM, tokenizer: Tokenizer, opts: TrainOptions, s: TrainState, val: number | null, extra: [string, string][] | null): void {
  const final = extra !== null;
  const title = o.title ?? 'tslm training run';
  writeFileAtomic(path.join(o.out, 'loss.svg'), lossCurveSvg(metrics, { title }));
  const last = metrics[metrics.length - 1];
  const summary: [string, string][] = [
    ['model', `${model.config.model_type}, ${paramsText(model)} (${model.config.num_hidden_layers} layers, hidden ${model.config.hidden_size}, vocab ${model.config.vocab_size})`],
    ['steps', `${s.step} / ${opts.steps} (batch ${opts.batchSize} × ${opts.seqLen} tokens${opts.gradAccum > 1 ? ` × ${opts.gradAccum}` : ''})`],
    ['tokens seen', String(s.tokens)],
    ['training time', `${s.elapsedSeconds.toFixed(1)} s (${(s.tokens / Math.max(s.elapsedSeconds, 1e-9)).toFixed(0)} tokens/s)`],
    ['last training loss', last ? last.loss.toFixed(4) : '-'],
    ['validation loss', val !== null ? `${val.toFixed(4)} (perplexity ${Math.exp(val).toFixed(2)})` : '-'],
    ...(extra ?? []),
  ];
  const samples = final && o.samples ? o.samples(model, tokenizer) : undefined;
  writeFileAtomic(path.join(o.out, 'report.html'), reportHtml({ title, summary, metrics, samples }));
}

/** "1.23M parameters", or for a mixture of experts "4.56M parameters (1.23M active per token)". */
export function paramsText(model: CausalLM): string {
  const total = model.numParameters(), active = model.numActiveParameters();
  return `${(total / 1e6).toFixed(2)}M parameters${active < total ? ` (${(active / 1e6).toFixed(2)}M active per token)` : ''}`;
}

function definedOnly(o: RunOptions): Partial<TrainOptions> {
  const keys: (keyof TrainOptions)[] = ['steps', 'batchSize', 'seqLen', 'gradAccum', 'lr', 'minLrRatio', 'warmupSteps', 'weightDecay', 'betas', 'gradClip', 'evalEvery', 'evalBatches', 'seed'];
  const out: Partial<TrainOptions> = {};
  for (const k of keys) if (o[k] !== undefined) (out as Record<string, unknown>)[k] = o[k];
  return out;
}
