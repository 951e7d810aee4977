// Training from text held in memory, one step at a time: what the playground's Train tab runs in a
// Web Worker (and any page or Node program can). The same pieces as `tslm quickstart` — a
// byte-level BPE tokenizer trained on the text, a LLaMA of the quickstart's size, AdamW with
// warmup + cosine, the seeded batcher — but no file is touched: the snapshot (for IndexedDB) and
// the downloads (HF directory files, GGUF) are bytes. Node-free (exported from tslm/browser).
import { Generator } from '../tensor/random.js';
import * as T from '../tensor/ops.js';
import { scope, unscoped } from '../tensor/storage.js';
import { noGrad } from '../tensor/autograd.js';
import type { Tensor } from '../tensor/tensor.js';
import { createModel } from '../models/index.js';
import type { CausalLM } from '../models/causal.js';
import { HFTokenizer } from '../tokenizers/hf.js';
import { trainByteLevelBPE } from '../tokenizers/trainer.js';
import { generate } from '../generate/generate.js';
import { serializeSafetensors, parseSafetensorsBytes } from '../io/safetensors_bytes.js';
import { fromFloat32, float32Values, f32StateDict } from '../io/dtypes.js';
import { modelTensors } from '../io/model_tensors.js';
import { serializeLlamaGguf } from '../io/gguf_llama.js';
import { ggufTokenizerOf } from '../io/tokenizer_convert.js';
import { DataError, MemoryTokens, looksBinary, splitBatchers } from './batcher.js';
import type { Batcher, BatcherState } from './batcher.js';
import { DEFAULT_TRAIN_OPTIONS, checkTrainOptions, createOptimizer, evaluate, trainLoop } from './trainer.js';
import type { TrainOptions, TrainState } from './trainer.js';
import type { AdamW } from './optim.js';
import type { StepMetrics } from './report.js';
import { PRESETS } from './presets.js';

export interface SessionOptions extends TrainOptions {
  /** The model's HF config (vocab_size is the tokenizer's size to train); default the quickstart LLaMA. */
  config: Record<string, unknown>;
  /** Every k-th sequence is held out for validation (0.05: one in 20). */
  valFraction: number;
}

/** The quickstart's model and schedule (`tslm quickstart`), with fewer steps. */
export const SESSION_DEFAULTS: SessionOptions = {
  ...DEFAULT_TRAIN_OPTIONS,
  config: PRESETS.quickstart, steps: 300, batchSize: 16, seqLen: 128, lr: 2e-3, warmupSteps: 30, minLrRatio: 0.1, weightDecay: 0.1,
  evalEvery: 0, evalBatches: 10, seed: 1337, valFraction: 0.05,
};

/**
 * The documents of an uploaded or pasted file: a .jsonl gives each line's "text" field, anything
 * else is one document of UTF-8 text. Empty, binary and non-UTF-8 input is a DataError naming the
 * file (and the line).
 */
export function documentsFromBytes(name: string, bytes: Uint8Array): string[] {
  if (bytes.length === 0) throw new DataError(`${name}: the file is empty`);
  if (looksBinary(bytes)) throw new DataError(`${name}: looks like a binary file, not text (upload .txt or .jsonl)`);
  let text: string;
  try { text = new TextDecoder('utf-8', { fatal: true }).decode(bytes); } catch { throw new DataError(`${name}: is not UTF-8 text`); }
  return documentsFromText(name, text);
}

/** documentsFromBytes for text already decoded (a textarea). */
export function documentsFromText(name: string, text: string): string[] {
  if (!/\.jsonl$/i.test(name)) {
    if (!text.trim()) throw new DataError(`${name}: there is no text (only white space)`);
    return [text];
  }
  const docs: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const s = lines[i].trim();
    if (!s) continue;
    let obj: unknown;
    try { obj = JSON.parse(s); } catch { throw new DataError(`${name}:${i + 1}: not valid JSON`); }
    const t = obj !== null && typeof obj === 'object' ? (obj as Record<string, unknown>).text : undefined;
    if (typeof t !== 'string') throw new DataError(`${name}:${i + 1}: expected an object with a string "text" field`);
    if (t.trim()) docs.push(t);
  }
  if (!docs.length) throw new DataError(`${name}: no line has any text`);
  return docs;
}

/** Everything a paused session needs to go on exactly where it was (structured-cloneable: IndexedDB keeps it as it is). */
export interface SessionSnapshot {
  format: 'tslm-train-session';
  version: 1;
  options: SessionOptions;
  /** tokenizer.json's text. */
  tokenizer: string;
  state: TrainState;
  batcher: BatcherState;
  optimizerSteps: number[];
  metrics: StepMetrics[];
  /** The model's weights and the optimizer's moments, as safetensors. */
  weights: Uint8Array;
  optimizer: Uint8Array;
  /** The tokenised corpus. */
  tokens: Int32Array;
}

export interface SessionInfo {
  parameters: number; vocab: number; tokens: number; documents: number; trainSequences: number; valSequences: number;
}

export class TrainSession {
  readonly metrics: StepMetrics[] = [];
  private train: Batcher;
  private val: Batcher;
  private constructor(
    readonly options: SessionOptions, readonly tokenizer: HFTokenizer, readonly model: CausalLM, readonly opt: AdamW,
    readonly tokens: Int32Array, public state: TrainState, readonly documents: number,
  ) {
    const b = splitBatchers(new MemoryTokens(tokens, 'the corpus'), options.seqLen, options.batchSize, { valFraction: options.valFraction, seed: options.seed });
    this.train = b.train;
    this.val = b.val;
  }

  /**
   * Train a tokenizer on `docs`, tokenise them (EOS between documents) and build the model and
   * optimizer. A corpus too small for the tokenizer's size or for two sequences is a DataError
   * that says how much more is needed.
   */
  static create(docs: string[], options: Partial<SessionOptions> = {}): TrainSession {
    const o = { ...SESSION_DEFAULTS, ...options } as SessionOptions;
    checkTrainOptions(o, () => 'options');
    const chars = docs.reduce((n, d) => n + d.length, 0);
    if (!docs.some((d) => d.trim())) throw new DataError('the corpus is empty (no text in any document)');
    const vocab = Number(o.config.vocab_size ?? 2048);
    const tokenizer = trainByteLevelBPE(docs, { vocabSize: vocab, specialTokens: ['<|endoftext|>'] });
    if (tokenizer.vocabSize < vocab) {
      throw new DataError(`the corpus (${chars} characters) is too small for a ${vocab}-token vocabulary: only ${tokenizer.vocabSize} tokens could be learnt ` +
        '(no pair of tokens occurs twice any more). Give more text or choose a smaller vocabulary.');
    }
    const ids: number[] = [];
    for (const d of docs) { for (const t of tokenizer.encode(d)) ids.push(t); if (tokenizer.eosId !== null) ids.push(tokenizer.eosId); }
    // splitBatchers holds out every stride-th sequence: one of them at least is wanted for validation.
    const stride = Math.max(2, Math.round(1 / Math.min(0.5, Math.max(o.valFraction, 1e-6))));
    const need = stride * o.seqLen + 1;
    if (ids.length < need) {
      throw new DataError(`the corpus is ${ids.length} tokens long after tokenising, too few for sequences of ${o.seqLen} (at least ${need} are needed: ` +
        `${stride} sequences, one held out for validation): give more text or a shorter sequence length`);
    }
    return TrainSession.build(o, tokenizer, Int32Array.from(ids), null, docs.length);
  }

  private static build(o: SessionOptions, tokenizer: HFTokenizer, tokens: Int32Array, snap: SessionSnapshot | null, documents: number): TrainSession {
    const config: Record<string, unknown> = { ...o.config, vocab_size: tokenizer.vocabSize };
    if (tokenizer.bosId !== null) config.bos_token_id = tokenizer.bosId;
    if (tokenizer.eosId !== null) config.eos_token_id = tokenizer.eosId;
    const model = createModel(config, 'config', { generator: new Generator(o.seed) });
    try {
      if (o.seqLen > model.contextLength) throw new DataError(`sequence length ${o.seqLen} exceeds the model's context (max_position_embeddings ${model.contextLength})`);
      const opt = createOptimizer(model, o);
      const s = new TrainSession(o, tokenizer, model, opt, tokens, snap ? { ...snap.state } : { step: 0, tokens: 0, elapsedSeconds: 0 }, documents);
      if (snap) s.load(snap);
      return s;
    } catch (e) {
      model.dispose();
      throw e;
    }
  }

  get info(): SessionInfo {
    return {
      parameters: this.model.numParameters(), vocab: this.tokenizer.vocabSize, tokens: this.tokens.length, documents: this.documents,
      trainSequences: this.train.count, valSequences: this.val.count,
    };
  }

  get done(): boolean { return this.state.step >= this.options.steps; }

  /** One optimizer step (the trainer's loop, stopped after it); its metrics. */
  async step(): Promise<StepMetrics> {
    if (this.done) throw new DataError(`the run is complete (${this.options.steps} steps)`);
    let last: StepMetrics | null = null;
    this.state = await trainLoop(this.model, this.opt, { train: this.train, val: null }, this.options, this.state, {
      onStep: (m) => { last = m; },
      shouldStop: () => true,
    });
    this.metrics.push(last!);
    return last!;
  }

  /** Mean loss over up to n validation batches. */
  validationLoss(n = this.options.evalBatches || 10): number {
    return evaluate(this.model, this.val, n);
  }

  /** Continue `prompt` (EOS first, as the training documents are separated) with the model as it is now. */
  sample(prompt: string, o: { maxNewTokens?: number; temperature?: number; topK?: number; seed?: number } = {}): string {
    const ids = [this.tokenizer.eosId ?? 0, ...this.tokenizer.encode(prompt)].slice(-this.model.contextLength + 1);
    this.model.train(false);
    try {
      const g = generate(this.model, ids, {
        maxNewTokens: Math.min(o.maxNewTokens ?? 64, this.model.contextLength - ids.length), temperature: o.temperature ?? 0.8, topK: o.topK ?? 40,
        seed: o.seed ?? 0, tokenizer: this.tokenizer, stopIds: [],
      });
      return g.text![0];
    } finally {
      this.model.train(true);
    }
  }

  /** Logits (T, V) at every position of `ids`, row-major (for checks against other tools). */
  logits(ids: number[]): Float32Array {
    this.model.train(false);
    try {
      return noGrad(() => scope(() => this.model.forward(T.tensor(Int32Array.from(ids), [1, ids.length], 'i32')).data() as Float32Array).slice());
    } finally {
      this.model.train(true);
    }
  }

  /** Weights, optimizer moments, data position and metrics: resume(snapshot) goes on bit for bit. */
  snapshot(): SessionSnapshot {
    const sd = this.opt.stateDict();
    const names = this.opt.params.map((p, i) => p.name ?? String(i));
    const moments = Object.entries(sd.tensors).map(([k, t]) => {
      const dot = k.indexOf('.');
      return fromFloat32(`${names[Number(k.slice(0, dot))]}.${k.slice(dot + 1)}`, [...t.shape], t.data() as Float32Array);
    });
    return {
      format: 'tslm-train-session', version: 1, options: this.options, tokenizer: JSON.stringify(this.tokenizer.toJSON()),
      state: { ...this.state }, batcher: this.train.state(), optimizerSteps: sd.steps, metrics: this.metrics.map((m) => ({ ...m })),
      weights: serializeSafetensors(modelTensors(this.model)), optimizer: serializeSafetensors(moments), tokens: this.tokens.slice(),
    };
  }

  static resume(snap: SessionSnapshot): TrainSession {
    if (snap?.format !== 'tslm-train-session' || snap.version !== 1) throw new DataError('the saved checkpoint is not a tslm training session (version 1)');
    const tokenizer = new HFTokenizer(JSON.parse(snap.tokenizer), 'the saved tokenizer.json');
    return TrainSession.build({ ...SESSION_DEFAULTS, ...snap.options }, tokenizer, snap.tokens, snap, -1);
  }

  private load(snap: SessionSnapshot): void {
    const w = parseSafetensorsBytes(snap.weights, 'the saved weights');
    this.model.loadStateDict(f32StateDict(w.tensors, 'the saved weights'), { source: 'the saved weights' });
    const byName = new Map(parseSafetensorsBytes(snap.optimizer, 'the saved optimizer').tensors.map((t) => [t.name, t]));
    const out: Record<string, Tensor> = {};
    this.opt.params.forEach((p, i) => {
      for (const kind of ['exp_avg', 'exp_avg_sq']) {
        const t = byName.get(`${p.name ?? i}.${kind}`);
        if (t) out[`${i}.${kind}`] = unscoped(() => T.tensor(float32Values(t, 'the saved optimizer'), t.shape));
      }
    });
    this.opt.loadStateDict({ tensors: out, steps: snap.optimizerSteps });
    this.opt.stepCount = snap.state.step;
    this.train.restore(snap.batcher);
    this.metrics.push(...snap.metrics);
  }

  /** The model as a Hugging Face directory's files: config.json, model.safetensors, tokenizer.json. */
  hfFiles(): Record<'config.json' | 'model.safetensors' | 'tokenizer.json', Uint8Array> {
    const enc = new TextEncoder();
    return {
      'config.json': enc.encode(JSON.stringify(this.model.configJson(), null, 2) + '\n'),
      'model.safetensors': serializeSafetensors(modelTensors(this.model), { format: 'pt' }),
      'tokenizer.json': enc.encode(JSON.stringify(this.tokenizer.toJSON(), null, 2) + '\n'),
    };
  }

  /** The model as one GGUF file (F32, the tokenizer inside as llama.cpp's "gpt2" BPE). */
  gguf(name = 'tslm-browser'): Uint8Array {
    return serializeLlamaGguf({ config: this.model.configJson(), tensors: modelTensors(this.model), tokenizer: ggufTokenizerOf(this.tokenizer, 'tokenizer.json'), name });
  }

  dispose(): void {
    this.model.dispose();
  }
}
