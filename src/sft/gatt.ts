// Ghost Attention (GAtt, LLaMA 2 §3.3): data for multi-turn chats that keep following an
// instruction given once. Sampling: the instruction is attached to every user turn and the
// current model answers turn by turn through the chat template. Training: the instruction stays
// only in the first user turn, and the loss is taken on the last assistant turn only
// (FormatOptions.trainTurns = 'last'), since the earlier replies were sampled with an
// instruction that the training context no longer shows next to them.
//
// Reading of the paper: "we simply set the loss to 0 for all the tokens from the previous turns,
// including assistant messages" — so every token before the last assistant reply is masked:
// system, all user turns, and every earlier assistant reply (sampled, but with the instruction
// attached to the user turn before it). The sampled "best" reply of the paper comes from
// rejection sampling with the RLHF model; here one sample per turn is drawn from the given model
// (no reward-model ranking of several samples). The paper's random
// synthetic constraints and the shortened instruction in the final data are left to whoever
// writes the dialogue file.
import { describeValue } from '../tokenizers/guard.js';
import type { CausalLM } from '../models/causal.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { applyChatTemplate } from '../tokenizers/chat.js';
import type { ChatMessage } from '../tokenizers/chat.js';
import { generate } from '../generate/generate.js';
import { Generator } from '../tensor/random.js';
import { CHATML_TEMPLATE, SftDataError, jsonRows, readDataText } from './data.js';
import type { ChatRow } from './data.js';

/** A dialogue to synthesise: the instruction to hold throughout, and the user messages. */
export interface GattDialog { instruction: string; turns: string[]; system?: string }

/** A sampled chat row, with the instruction it was sampled under. */
export interface GattRow extends ChatRow { instruction: string }

export interface GattPlacement {
  /** Where the instruction goes in a user message (default 'prefix', as LLaMA 2's Figure 9 shows it). */
  placement?: 'prefix' | 'suffix';
  /** Between the instruction and the user message (default '\n'). */
  separator?: string;
}

export interface GattSampleOptions extends GattPlacement {
  maxNewTokens: number;
  /** Sampling temperature (0: greedy). */
  temperature: number;
  seed: number;
  topP?: number;
  /** Jinja chat template (default ChatML, what `tslm finetune` trains with). */
  chatTemplate?: string;
  bosToken?: string;
  eosToken?: string;
  /** Strings that end an assistant turn (default ['<|im_end|>'] for ChatML, else [eosToken] when given). */
  stop?: string[];
  /** Called with each sampling prompt (rendered text) before the reply is sampled. */
  onPrompt?: (dialog: number, turn: number, text: string) => void;
  /** Called after each dialogue (index, row). */
  onDialog?: (index: number, row: GattRow) => void;
}

/** A user message with the instruction attached. */
export function withInstruction(user: string, instruction: string, o: GattPlacement = {}): string {
  const sep = o.separator ?? '\n';
  return (o.placement ?? 'prefix') === 'prefix' ? `${instruction}${sep}${user}` : `${user}${sep}${instruction}`;
}

function checkDialog(obj: unknown, where: string): GattDialog {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new SftDataError(`${where}: expected an object with "instruction" and "turns", got ${describeValue(obj)}`);
  const o = obj as Record<string, unknown>;
  if (typeof o.instruction !== 'string' || !o.instruction.trim()) throw new SftDataError(`${where}: "instruction" must be a non-empty string${'instruction' in o ? `, got ${describeValue(o.instruction)}` : ' (missing)'}`);
  if (!Array.isArray(o.turns) || !o.turns.length) throw new SftDataError(`${where}: "turns" must be a non-empty list of user messages`);
  o.turns.forEach((t, i) => { if (typeof t !== 'string') throw new SftDataError(`${where}: turns[${i}] must be a string, got ${typeof t}`); });
  if (o.system !== undefined && typeof o.system !== 'string') throw new SftDataError(`${where}: "system" must be a string, got ${typeof o.system}`);
  return { instruction: o.instruction, turns: o.turns as string[], ...(o.system !== undefined ? { system: o.system as string } : {}) };
}

/** Parse GAtt dialogues, JSONL ({instruction, turns, system?} a line); errors name file:line. */
export function parseGattDialogs(text: string, file = '<dialogs>'): GattDialog[] {
  const out = jsonRows(text, file, (m) => new SftDataError(m), { arrays: false }).map(({ value, where }) => checkDialog(value, where));
  if (!out.length) throw new SftDataError(`${file}: no dialogues`);
  return out;
}

export function readGattDialogs(file: string): GattDialog[] {
  return parseGattDialogs(readDataText(file, (m) => new SftDataError(m)), file);
}

/** The messages of a dialogue up to user turn k (inclusive), the instruction on every user turn. */
export function gattSamplingMessages(d: GattDialog, replies: string[], k: number, o: GattPlacement = {}): ChatMessage[] {
  const ms: ChatMessage[] = d.system !== undefined ? [{ role: 'system', content: d.system }] : [];
  for (let t = 0; t <= k; t++) {
    ms.push({ role: 'user', content: withInstruction(d.turns[t], d.instruction, o) });
    if (t < k) ms.push({ role: 'assistant', content: replies[t] });
  }
  return ms;
}

/**
 * Sample the assistant's replies turn by turn with the instruction on every user turn (the
 * prompt is the chat so far through the chat template with the generation prompt; a reply ends
 * at the end-of-turn marker, EOS or maxNewTokens). Returns chat rows as sampled (instruction on
 * every user turn); gattTrainingRows turns them into training rows. Seeded: the same seed gives
 * the same rows.
 */
export function gattSample(model: CausalLM, tok: Tokenizer, dialogs: GattDialog[], opts: GattSampleOptions): GattRow[] {
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 1) throw new SftDataError(`gatt: maxNewTokens must be a positive integer, got ${opts.maxNewTokens}`);
  if (!(opts.temperature >= 0)) throw new SftDataError(`gatt: temperature must be ≥ 0, got ${opts.temperature}`);
  if (opts.placement !== undefined && opts.placement !== 'prefix' && opts.placement !== 'suffix') throw new SftDataError(`gatt: placement must be 'prefix' or 'suffix', got ${JSON.stringify(opts.placement)}`);
  dialogs.forEach((d, i) => checkDialog(d, `dialog ${i + 1}`));
  const template = opts.chatTemplate ?? CHATML_TEMPLATE;
  const stop = opts.stop ?? (opts.chatTemplate === undefined ? ['<|im_end|>'] : opts.eosToken ? [opts.eosToken] : []);
  const ctx = model.contextLength;
  const g = new Generator(opts.seed);
  const rows: GattRow[] = [];
  dialogs.forEach((d, di) => {
    const replies: string[] = [];
    for (let k = 0; k < d.turns.length; k++) {
      const ms = gattSamplingMessages(d, replies, k, opts);
      const text = applyChatTemplate(ms, { template, addGenerationPrompt: true, bosToken: opts.bosToken, eosToken: opts.eosToken });
      opts.onPrompt?.(di, k, text);
      const ids = tok.bosId !== null ? [tok.bosId, ...tok.encode(text)] : tok.encode(text);
      if (ids.length >= ctx) throw new SftDataError(`gatt: dialog ${di + 1}, turn ${k + 1}: the prompt has ${ids.length} tokens, the model's context is ${ctx}`);
      const r = generate(model, ids, {
        maxNewTokens: Math.min(opts.maxNewTokens, ctx - ids.length), temperature: opts.temperature, topP: opts.topP, seed: g.int(0x7fffffff),
        stopStrings: stop.length ? stop : undefined, tokenizer: tok, stopIds: tok.eosId !== null ? [tok.eosId] : [],
      });
      replies.push(r.text![0].trim());
    }
    const messages = gattSamplingMessages(d, replies, d.turns.length - 1, opts);
    messages.push({ role: 'assistant', content: replies[d.turns.length - 1] });
    const row: GattRow = { messages, instruction: d.instruction };
    rows.push(row);
    opts.onDialog?.(di, row);
  });
  return rows;
}

/**
 * Training rows from sampled rows: the instruction is dropped from every user turn but the first
 * (each later user turn must carry it as withInstruction put it). Train them with
 * FormatOptions.trainTurns = 'last' (`tslm finetune --gatt`).
 */
export function gattTrainingRows<R extends ChatRow>(rows: R[], instruction: string, o: GattPlacement = {}): R[] {
  const sep = o.separator ?? '\n';
  const placement = o.placement ?? 'prefix';
  const affix = placement === 'prefix' ? instruction + sep : sep + instruction;
  return rows.map((row, ri) => {
    let seen = 0;
    const messages = row.messages.map((m, mi) => {
      if (m.role !== 'user') return { ...m };
      const has = placement === 'prefix' ? m.content.startsWith(affix) : m.content.endsWith(affix);
      if (!has) throw new SftDataError(`gatt: row ${ri + 1}, messages[${mi}]: the user turn does not carry the instruction as a ${placement} ${JSON.stringify(affix).slice(0, 60)}`);
      if (seen++ === 0) return { ...m };
      return { ...m, content: placement === 'prefix' ? m.content.slice(affix.length) : m.content.slice(0, m.content.length - affix.length) };
    });
    if (!seen) throw new SftDataError(`gatt: row ${ri + 1} has no user turn`);
    return { ...row, messages };
  });
}
