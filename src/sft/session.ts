// LoRA fine-tuning of a loaded model on Alpaca or chat rows, one step at a time: the Train tab's
// fine-tuning (in a Web Worker) and any page or Node program. The same pieces as `tslm finetune
// --lora`: rows tokenised with the response tokens as labels (tokenizeRow), adapters on the
// family's default targets (applyLora), AdamW on the adapters with warmup + cosine (sftStep); the
// adapter comes out as PEFT's two files, as bytes. Node-free (exported from tslm/browser).
import * as T from '../tensor/ops.js';
import { scope } from '../tensor/storage.js';
import { noGrad } from '../tensor/autograd.js';
import type { CausalLM } from '../models/causal.js';
import { defaultLoraTargets } from '../models/index.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { generate } from '../generate/generate.js';
import { AdamW } from '../train/optim.js';
import { cosineWithWarmup } from '../train/schedule.js';
import { paramGroups } from '../train/trainer.js';
import { looksBinary } from '../train/batcher.js';
import type { StepMetrics } from '../train/report.js';
import { applyLora, trainableSummary } from '../lora/model.js';
import { adapterFiles } from '../lora/peft_bytes.js';
import { SftBatcher, SftDataError, parseInstructionData, tokenizeRow, promptIds } from './data.js';
import type { FormatOptions, InstructionRow, SftExample } from './data.js';
import { DEFAULT_SFT_OPTIONS, sftStep } from './train.js';
import type { SftOptions } from './train.js';

export interface LoraSessionOptions extends SftOptions {
  r: number;
  loraAlpha: number;
  /** Module names to adapt (default: the family's, e.g. q_proj and v_proj). */
  targetModules?: string[];
  format?: FormatOptions;
}

export const LORA_SESSION_DEFAULTS: LoraSessionOptions = { ...DEFAULT_SFT_OPTIONS, steps: 60, batchSize: 4, lr: 2e-3, warmupSteps: 5, r: 8, loraAlpha: 16 };

/** Alpaca ({instruction, input?, output}) or chat ({messages}) rows of an uploaded .jsonl / .json file. */
export function instructionRowsFromBytes(name: string, bytes: Uint8Array): InstructionRow[] {
  if (bytes.length === 0) throw new SftDataError(`${name}: the file is empty`);
  if (looksBinary(bytes)) throw new SftDataError(`${name}: looks like a binary file, not JSON lines`);
  let text: string;
  try { text = new TextDecoder('utf-8', { fatal: true }).decode(bytes); } catch { throw new SftDataError(`${name}: is not UTF-8 text`); }
  return parseInstructionData(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text, name);
}

export class LoraSession {
  readonly metrics: StepMetrics[] = [];
  state = { step: 0, tokens: 0, elapsedSeconds: 0 };
  private readonly opt: AdamW;
  private readonly batcher: SftBatcher;
  private readonly sched: (step: number) => number;

  private constructor(readonly model: CausalLM, readonly tokenizer: Tokenizer, readonly options: LoraSessionOptions, readonly examples: SftExample[], readonly trainable: number) {
    this.opt = new AdamW(paramGroups(model, options.weightDecay), { lr: options.lr, betas: [0.9, 0.999], eps: 1e-8 });
    this.batcher = new SftBatcher(examples, options.batchSize, tokenizer.eosId ?? 0, options.seed);
    this.sched = cosineWithWarmup(options.warmupSteps, options.steps, options.minLrRatio);
  }

  /** Adapters on `model` (which is changed: its weights are frozen, LoRA layers put in) and the rows tokenised. */
  static create(model: CausalLM, tokenizer: Tokenizer, rows: InstructionRow[], options: Partial<LoraSessionOptions> = {}): LoraSession {
    const o = { ...LORA_SESSION_DEFAULTS, ...options } as LoraSessionOptions;
    const fmt: FormatOptions = { ...o.format, maxLength: Math.min(o.format?.maxLength ?? model.contextLength, model.contextLength) };
    const examples = rows.map((r) => tokenizeRow(r, tokenizer, fmt)).filter((e) => e.labels.some((l) => l !== -100));
    if (!examples.length) throw new SftDataError(`no row has a response token left after cutting to the model's context (${fmt.maxLength} tokens)`);
    applyLora(model, { r: o.r, lora_alpha: o.loraAlpha, target_modules: o.targetModules ?? defaultLoraTargets(model.config.model_type), seed: o.seed });
    return new LoraSession(model, tokenizer, { ...o, format: fmt }, examples, trainableSummary(model).trainable);
  }

  get done(): boolean { return this.state.step >= this.options.steps; }

  get info() {
    return { parameters: this.model.numParameters(), trainable: this.trainable, rows: this.examples.length, vocab: this.tokenizer.vocabSize };
  }

  async step(): Promise<StepMetrics> {
    const t0 = performance.now();
    const step = this.state.step;
    const lr = this.options.lr * this.sched(step);
    this.model.train(true);
    const r = sftStep(this.model, this.opt, this.batcher, lr, this.options.gradClip, step);
    const dt = (performance.now() - t0) / 1000;
    this.state.step++;
    this.state.tokens += r?.tokens ?? 0;
    this.state.elapsedSeconds += dt;
    const m: StepMetrics = {
      step: this.state.step, loss: r?.loss ?? NaN, lr, gradNorm: r?.gradNorm ?? 0, tokens: this.state.tokens,
      tokensPerSecond: (r?.tokens ?? 0) / Math.max(dt, 1e-9), elapsedSeconds: this.state.elapsedSeconds,
    };
    this.metrics.push(m);
    return m;
  }

  /** The model's answer to an instruction (the rows' prompt format), with the adapter as it is now. */
  sample(instruction: string, o: { maxNewTokens?: number; temperature?: number; seed?: number } = {}): string {
    const { ids } = promptIds({ instruction, output: '' }, this.tokenizer, this.options.format);
    this.model.train(false);
    const g = generate(this.model, ids, {
      maxNewTokens: Math.max(1, Math.min(o.maxNewTokens ?? 64, this.model.contextLength - ids.length)), temperature: o.temperature ?? 0.8, seed: o.seed ?? 0,
      tokenizer: this.tokenizer, stopIds: this.tokenizer.eosId !== null ? [this.tokenizer.eosId] : [],
    });
    return g.text![0];
  }

  logits(ids: number[]): Float32Array {
    this.model.train(false);
    return noGrad(() => scope(() => this.model.forward(T.tensor(Int32Array.from(ids), [1, ids.length], 'i32')).data() as Float32Array).slice());
  }

  /** adapter_config.json and adapter_model.safetensors (PEFT). */
  adapterFiles(baseModel: string | null = null): Record<'adapter_config.json' | 'adapter_model.safetensors', Uint8Array> {
    return adapterFiles(this.model, { baseModel });
  }

  dispose(): void {
    for (const t of Object.values(this.opt.stateDict().tensors)) t.dispose();
    this.model.dispose();
  }
}
