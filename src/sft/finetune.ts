// Fine-tuning runs as `tslm finetune` does them: load a model and its tokenizer, read and
// tokenise instruction data (response-only labels), hold out a validation split, LoRA (default)
// or full fine-tuning, then save a PEFT adapter directory or a full HF model directory.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadModel, saveModel } from '../io/model.js';
import type { CausalLM } from '../models/causal.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { Generator } from '../tensor/random.js';
import { applyLora, trainableSummary } from '../lora/model.js';
import { defaultLoraTargets } from '../models/index.js';
import { saveAdapter } from '../lora/peft.js';
import { SftDataError, isChatRow, pack, readInstructionData, tokenizeRow } from './data.js';
import type { FormatOptions, InstructionRow, SftExample } from './data.js';
import { DEFAULT_SFT_OPTIONS, responseLoss, sftTrain } from './train.js';
import type { SftOptions, SftStep } from './train.js';

export interface FinetuneOptions extends Partial<SftOptions> {
  /** Base model (HF directory, llama2.c .bin or GGUF). */
  model: string;
  /** Instruction data (Alpaca JSON / JSONL / chat JSONL). */
  data: string;
  out: string;
  /** LoRA hyper-parameters; null for full fine-tuning. */
  /** LoRA settings; target_modules default to the model family's (q_proj,v_proj for LLaMA, in_proj,out_proj for Mamba). */
  lora?: { r: number; lora_alpha: number; lora_dropout?: number; target_modules?: string[]; use_rslora?: boolean } | null;
  format?: FormatOptions;
  /** Pack examples into rows of this many tokens (default: no packing, padded batches). */
  packLength?: number;
  /** Fraction of rows held out for validation (default 0.05, at least one row when there are ≥ 10). */
  valFraction?: number;
  /** Epochs over the data (sets steps when steps is not given). */
  epochs?: number;
  tokenizer?: string;
  log?: (line: string) => void;
  onStep?: (s: SftStep) => void;
}

export interface FinetuneResult {
  model: CausalLM;
  tokenizer: Tokenizer;
  steps: SftStep[];
  valLossBefore: number | null;
  valLossAfter: number | null;
  trainable: number;
  total: number;
  trainRows: InstructionRow[];
  valRows: InstructionRow[];
}

/** Split rows into train / validation with a seeded shuffle. */
export function splitRows<T>(rows: T[], valFraction: number, seed: number): { train: T[]; val: T[] } {
  const idx = new Generator(seed).shuffle(rows.map((_, i) => i));
  const nVal = valFraction > 0 && rows.length >= 10 ? Math.max(1, Math.round(rows.length * valFraction)) : 0;
  return { val: idx.slice(0, nVal).map((i) => rows[i]), train: idx.slice(nVal).map((i) => rows[i]) };
}

export async function finetune(o: FinetuneOptions): Promise<FinetuneResult> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const rows = readInstructionData(o.data);
  if (o.format?.trainTurns === 'last') {
    const bad = rows.findIndex((r) => !isChatRow(r));
    if (bad >= 0) throw new SftDataError(`${o.data}: row ${bad + 1} is not a chat row ({messages}); Ghost Attention (--gatt) trains multi-turn chats`);
  }
  const { model, tokenizer } = await loadModel(o.model, { tokenizer: o.tokenizer, dtype: 'f32' });
  if (!tokenizer) throw new SftDataError(`${o.model}: no tokenizer found; pass --tokenizer`);
  const maxLen = Math.min(o.format?.maxLength ?? model.contextLength, model.contextLength);
  const fmt: FormatOptions = { ...o.format, maxLength: maxLen };
  const seed = o.seed ?? 0;
  const { train: trainRows, val: valRows } = splitRows(rows, o.valFraction ?? 0.05, seed);
  // A row whose response was cut away entirely (a prompt filling max-length) has nothing to learn
  // or to measure: left out (a validation set of such rows gave a NaN loss).
  const learnable = (e: SftExample) => e.labels.some((l) => l !== -100);
  const trainAll = trainRows.map((r) => tokenizeRow(r, tokenizer, fmt)), valAll = valRows.map((r) => tokenizeRow(r, tokenizer, fmt));
  let train: SftExample[] = trainAll.filter(learnable);
  const val = valAll.filter(learnable);
  const cut = trainAll.length - train.length + valAll.length - val.length;
  // What cut the rows: --max-length, or the model's own context when --max-length asks for more (or is not given).
  const cutBy = `${maxLen} tokens (${maxLen < model.contextLength ? '--max-length' : "the model's context, max_position_embeddings"})`;
  if (cut) log(`${cut} row${cut === 1 ? '' : 's'} left out: no response token is left after cutting to ${cutBy}`);
  if (o.packLength) {
    if (o.packLength + 1 > model.contextLength) throw new SftDataError(`--pack ${o.packLength} exceeds the model's context (max_position_embeddings ${model.contextLength}) − 1`);
    train = pack(train, o.packLength);
    if (!train.length) throw new SftDataError(`${o.data}: too little data for one packed row of ${o.packLength} tokens`);
  }
  const batchSize = o.batchSize ?? DEFAULT_SFT_OPTIONS.batchSize;
  const steps = o.steps ?? Math.max(1, Math.ceil(((o.epochs ?? 1) * train.length) / batchSize));
  const lora = o.lora ? { ...o.lora, target_modules: o.lora.target_modules ?? defaultLoraTargets(model.config.model_type) } : null;
  if (lora) applyLora(model, { ...lora, seed });
  const { trainable, total } = trainableSummary(model);
  const respTokens = train.reduce((s, e) => s + e.labels.filter((l) => l !== -100).length, 0);
  // Nothing to learn from: every response was cut (the loss would be 0/0, NaN).
  if (respTokens === 0) {
    model.dispose();
    throw new SftDataError(`${o.data}: no response token is left to train on after cutting the rows to ${cutBy}; the prompts fill it — ${maxLen < model.contextLength ? 'raise --max-length or shorten the prompts' : 'shorten the prompts (or use a model with a longer context)'}`);
  }
  log(`data: ${rows.length} rows (${trainRows.length} train${o.packLength ? ` → ${train.length} packed rows of ${o.packLength}` : ''}, ${valRows.length} validation), ${respTokens} response tokens`);
  log(`${lora ? `LoRA r=${lora.r} alpha=${lora.lora_alpha}${lora.use_rslora ? ' (rsLoRA)' : ''} on ${lora.target_modules.join(',')}` : 'full fine-tuning'}: ` +
    `${trainable.toLocaleString('en-US')} trainable of ${total.toLocaleString('en-US')} parameters (${((100 * trainable) / total).toFixed(2)}%); ${steps} steps of ${batchSize}`);
  const padId = tokenizer.eosId ?? 0;
  const valLossBefore = val.length ? responseLoss(model, val, batchSize, padId) : null;
  if (valLossBefore !== null) log(`validation loss before: ${valLossBefore.toFixed(4)}`);
  const stepsLog = sftTrain(model, train, {
    ...o, steps, batchSize, val, padId, evalEvery: o.evalEvery ?? Math.max(1, Math.floor(steps / 4)),
    onStep: (s) => {
      o.onStep?.(s);
      if (s.valLoss !== undefined || s.step === steps || s.step % 10 === 0) log(`step ${s.step}/${steps} loss ${s.loss.toFixed(4)} lr ${s.lr.toExponential(2)}${s.valLoss !== undefined ? ` | val loss ${s.valLoss.toFixed(4)}` : ''} (${s.seconds.toFixed(1)} s)`);
    },
  });
  const valLossAfter = val.length ? responseLoss(model, val, batchSize, padId) : null;
  mkdirSync(o.out, { recursive: true });
  if (o.lora) {
    await saveAdapter(model, o.out, { baseModel: path.resolve(o.model) });
    log(`adapter: ${o.out} (adapter_config.json, adapter_model.safetensors)`);
  } else {
    await saveModel(model, o.out, { tokenizer });
    log(`model: ${o.out}`);
  }
  writeFileSync(path.join(o.out, 'finetune_log.json'), JSON.stringify({ data: o.data, base: o.model, lora, steps: stepsLog, valLossBefore, valLossAfter, trainable, total }, null, 1) + '\n');
  return { model, tokenizer, steps: stepsLog, valLossBefore, valLossAfter, trainable, total, trainRows, valRows };
}
