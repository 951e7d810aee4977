// Preference pairs for reward models and DPO: JSONL (or a JSON array), one comparison per row.
//   {"prompt": "…", "chosen": "…", "rejected": "…", "margin": 2}      text (margin optional)
//   {"prompt": [messages], "chosen": [messages], "rejected": [messages]}   TRL's conversational form
//   {"chosen": [messages], "rejected": [messages]}                   implicit prompt: the common prefix
// Chat rows are rendered with the chat template (default ChatML): the prompt with the generation
// prompt, each completion as the text its turns add after it. Errors name the file and line.
import type { ChatMessage } from '../tokenizers/chat.js';
import { applyChatTemplate } from '../tokenizers/chat.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { CHATML_TEMPLATE, fieldList, jsonRows, readDataText } from '../sft/data.js';
import { describeValue } from '../tokenizers/guard.js';
import type { PromptFormat } from './data.js';
import { promptTokens } from './data.js';

export class PreferenceDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PreferenceDataError';
  }
}

export interface PreferencePair {
  /** The text both completions continue (the chat template already applied). */
  prompt: string;
  chosen: string;
  rejected: string;
  /** LLaMA 2's margin (how much better chosen is); 0 when the row has none. */
  margin: number;
  /** "file:line" for messages. */
  where: string;
}

function isMessages(x: unknown): x is ChatMessage[] {
  return Array.isArray(x);
}

function checkMessages(x: unknown[], field: string, where: string): ChatMessage[] {
  x.forEach((m, i) => {
    if (typeof m !== 'object' || m === null || typeof (m as ChatMessage).role !== 'string' || typeof (m as ChatMessage).content !== 'string') {
      throw new PreferenceDataError(`${where}: ${field}[${i}] must have string "role" and "content"`);
    }
  });
  return x as ChatMessage[];
}

const same = (a: ChatMessage, b: ChatMessage) => a.role === b.role && a.content === b.content;

function parseRow(o: Record<string, unknown>, where: string, f: PromptFormat): PreferencePair {
  for (const k of ['chosen', 'rejected']) {
    if (!(k in o)) throw new PreferenceDataError(`${where}: missing "${k}" (has ${fieldList(o)})`);
  }
  let margin = 0;
  if (o.margin !== undefined && o.margin !== null) {
    if (typeof o.margin !== 'number' || !Number.isFinite(o.margin)) throw new PreferenceDataError(`${where}: "margin" must be a finite number, got ${describeValue(o.margin)}`);
    margin = o.margin;
  }
  let pair: Omit<PreferencePair, 'margin' | 'where'>;
  if (isMessages(o.chosen) || isMessages(o.rejected)) {
    for (const k of ['chosen', 'rejected'] as const) if (!isMessages(o[k]) || !(o[k] as unknown[]).length) throw new PreferenceDataError(`${where}: "${k}" must be a non-empty list of messages when the row is a chat`);
    let chosen = checkMessages(o.chosen as unknown[], 'chosen', where), rejected = checkMessages(o.rejected as unknown[], 'rejected', where);
    let prompt: ChatMessage[];
    if (o.prompt !== undefined) {
      if (!isMessages(o.prompt) || !o.prompt.length) throw new PreferenceDataError(`${where}: "prompt" must be a non-empty list of messages when "chosen" and "rejected" are`);
      prompt = checkMessages(o.prompt, 'prompt', where);
    } else {
      // Implicit prompt (TRL's extract_prompt): the longest common prefix, ending before an assistant turn.
      let n = 0;
      while (n < chosen.length && n < rejected.length && same(chosen[n], rejected[n])) n++;
      while (n > 0 && chosen[n] && chosen[n].role !== 'assistant') n--;
      if (n === 0) throw new PreferenceDataError(`${where}: no "prompt", and "chosen" and "rejected" share no conversation before an assistant turn`);
      prompt = chosen.slice(0, n);
      chosen = chosen.slice(n);
      rejected = rejected.slice(n);
    }
    for (const [k, ms] of [['chosen', chosen], ['rejected', rejected]] as const) {
      if (!ms.length) throw new PreferenceDataError(`${where}: "${k}" adds no turn after the prompt`);
      if (ms[0].role !== 'assistant') throw new PreferenceDataError(`${where}: "${k}" must start with an assistant turn, got role "${ms[0].role}"`);
    }
    const render = (ms: ChatMessage[], gen: boolean) => applyChatTemplate(ms, { template: f.chatTemplate ?? CHATML_TEMPLATE, addGenerationPrompt: gen, bosToken: f.bosToken, eosToken: f.eosToken });
    const p = render(prompt, true);
    const completion = (ms: ChatMessage[], k: string) => {
      const full = render([...prompt, ...ms], false);
      if (!full.startsWith(p)) throw new PreferenceDataError(`${where}: the chat template does not render the prompt as a prefix of the "${k}" conversation`);
      return full.slice(p.length);
    };
    pair = { prompt: p, chosen: completion(chosen, 'chosen'), rejected: completion(rejected, 'rejected') };
  } else {
    if (!('prompt' in o)) throw new PreferenceDataError(`${where}: missing "prompt" (has ${fieldList(o)})`);
    for (const k of ['prompt', 'chosen', 'rejected'] as const) {
      if (typeof o[k] !== 'string') throw new PreferenceDataError(`${where}: "${k}" must be a string (or all of prompt/chosen/rejected lists of messages), got ${describeValue(o[k])}`);
    }
    if (!(o.prompt as string).length) throw new PreferenceDataError(`${where}: "prompt" is empty`);
    pair = { prompt: o.prompt as string, chosen: o.chosen as string, rejected: o.rejected as string };
  }
  for (const k of ['chosen', 'rejected'] as const) if (!pair[k].length) throw new PreferenceDataError(`${where}: "${k}" is empty`);
  if (pair.chosen === pair.rejected) throw new PreferenceDataError(`${where}: "chosen" and "rejected" are identical (a pair must compare two different completions)`);
  return { ...pair, margin, where };
}

/** Parse a preference file's text (JSONL or a JSON array); errors name the file and line. */
export function parsePreferences(text: string, file = '<pairs>', f: PromptFormat = {}): PreferencePair[] {
  const rows = jsonRows(text, file, (m) => new PreferenceDataError(m)).map(({ value, where }) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new PreferenceDataError(`${where}: expected a JSON object with "chosen" and "rejected", got ${describeValue(value)}`);
    return parseRow(value as Record<string, unknown>, where, f);
  });
  if (!rows.length) throw new PreferenceDataError(`${file}: no preference pairs`);
  return rows;
}

export function readPreferences(file: string, f: PromptFormat = {}): PreferencePair[] {
  return parsePreferences(readDataText(file, (m) => new PreferenceDataError(m)), file, f);
}

/** A pair as token ids: the prompt (BOS first when the tokenizer has one) and the two completions. */
/** The most UTF-8 bytes one token decodes to (special tokens included); an upper bound is enough. */
function longestTokenBytes(tok: Tokenizer): number {
  let max = 1;
  for (let id = 0; id < tok.vocabSize; id++) max = Math.max(max, Buffer.byteLength(tok.decode([id])));
  for (const s of tok.specialTokens.keys()) max = Math.max(max, Buffer.byteLength(s));
  // Decoders may strip a token's leading space: a few bytes of margin keep the bound an upper one.
  return max + 4;
}

export interface TokenizedPair { prompt: number[]; chosen: number[]; rejected: number[]; margin: number; where: string }

/**
 * Tokenise pairs. Completions get the tokenizer's EOS appended (`eos`, default true, as TRL's
 * DPO does); with `maxLength`, completions are cut so prompt + completion fits, and a prompt that
 * leaves no room for a completion token is an error naming the row.
 */
export function tokenizePairs(pairs: PreferencePair[], tok: Tokenizer, o: { eos?: boolean; maxLength?: number } = {}): TokenizedPair[] {
  const eos = (o.eos ?? true) && tok.eosId !== null ? [tok.eosId] : [];
  let widest = 0;
  return pairs.map((p) => {
    // A prompt of more bytes than maxLength tokens can hold is refused before it is tokenised
    // (a 10 MB prompt took half a gigabyte of memory to tokenise only to be refused).
    if (o.maxLength !== undefined && typeof p.prompt === 'string' && p.prompt.length > o.maxLength) {
      widest ||= longestTokenBytes(tok);
      const bytes = Buffer.byteLength(p.prompt);
      if (bytes > o.maxLength * widest) throw new PreferenceDataError(`${p.where}: the prompt is ${bytes} bytes, more than ${o.maxLength} tokens of at most ${widest} bytes each can hold: no room is left for a completion`);
    }
    const prompt = promptTokens(tok, p.prompt);
    let chosen = [...tok.encode(p.chosen), ...eos], rejected = [...tok.encode(p.rejected), ...eos];
    if (o.maxLength !== undefined) {
      const room = o.maxLength - prompt.length;
      if (room < 1) throw new PreferenceDataError(`${p.where}: the prompt has ${prompt.length} tokens, which leaves no room for a completion within ${o.maxLength} tokens`);
      chosen = chosen.slice(0, room);
      rejected = rejected.slice(0, room);
    }
    return { prompt, chosen, rejected, margin: p.margin, where: p.where };
  });
}
