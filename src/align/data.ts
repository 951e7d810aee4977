// Prompt files for policy optimisation: JSONL (or a JSON array), one problem per row. The policy
// sees `prompt` as raw text, a chat (`messages`, rendered with the generation prompt by the chat
// template), or an Alpaca `instruction` (+ `input`). Every other field stays with the row for the
// verifiers: `answer` (math), `tests` and `entry_point` (code), `difficulty` (the curriculum).
import type { Generator } from '../tensor/random.js';
import type { ChatMessage } from '../tokenizers/chat.js';
import { applyChatTemplate } from '../tokenizers/chat.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { CHATML_TEMPLATE, alpacaPrompt, fieldList, jsonRows, readDataText } from '../sft/data.js';
import { describeValue } from '../tokenizers/guard.js';

export class PromptDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PromptDataError';
  }
}

export interface PromptRow {
  /** The text the policy continues (the chat or Alpaca rendering already applied). */
  prompt: string;
  /** The row as read (answer, tests, … for the verifiers). */
  row: Record<string, unknown>;
  /** Where it came from, for messages ("file:line"). */
  where: string;
}

export interface PromptFormat {
  /** Jinja chat template for `messages` rows (default ChatML). */
  chatTemplate?: string;
  bosToken?: string;
  eosToken?: string;
}

function render(o: Record<string, unknown>, where: string, f: PromptFormat): string {
  if (typeof o.prompt === 'string') {
    if (!o.prompt.length) throw new PromptDataError(`${where}: "prompt" is empty`);
    return o.prompt;
  }
  if ('prompt' in o) throw new PromptDataError(`${where}: "prompt" must be a string, got ${describeValue(o.prompt)}`);
  if ('messages' in o) {
    const m = o.messages;
    if (!Array.isArray(m) || !m.length) throw new PromptDataError(`${where}: "messages" must be a non-empty list`);
    m.forEach((x, i) => {
      if (typeof x !== 'object' || x === null || typeof (x as ChatMessage).role !== 'string' || typeof (x as ChatMessage).content !== 'string') {
        throw new PromptDataError(`${where}: messages[${i}] must have string "role" and "content"`);
      }
    });
    // A trailing assistant turn is a reference answer, not part of the prompt.
    const turns = (m as ChatMessage[]).at(-1)!.role === 'assistant' ? (m as ChatMessage[]).slice(0, -1) : (m as ChatMessage[]);
    return applyChatTemplate(turns, { template: f.chatTemplate ?? CHATML_TEMPLATE, addGenerationPrompt: true, bosToken: f.bosToken, eosToken: f.eosToken });
  }
  if (typeof o.instruction === 'string') {
    return alpacaPrompt({ instruction: o.instruction, input: typeof o.input === 'string' ? o.input : '' });
  }
  throw new PromptDataError(`${where}: expected "prompt", "messages" or "instruction" (has ${fieldList(o)})`);
}

/** Parse a prompt file's text (JSONL or a JSON array); errors name the file and line. */
export function parsePrompts(text: string, file = '<prompts>', f: PromptFormat = {}): PromptRow[] {
  const rows = jsonRows(text, file, (m) => new PromptDataError(m)).map(({ value, where }) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new PromptDataError(`${where}: expected a JSON object, got ${describeValue(value)}`);
    const o = value as Record<string, unknown>;
    return { prompt: render(o, where, f), row: o, where };
  });
  if (!rows.length) throw new PromptDataError(`${file}: no prompts`);
  return rows;
}

export function readPrompts(file: string, f: PromptFormat = {}): PromptRow[] {
  return parsePrompts(readDataText(file, (m) => new PromptDataError(m)), file, f);
}

/** A prompt's ids as the policy sees them (BOS first when the tokenizer has one). */
export function promptTokens(tok: Tokenizer, text: string): number[] {
  const ids = tok.encode(text);
  return tok.bosId !== null ? [tok.bosId, ...ids] : ids;
}

export interface ShuffledOrderState { n: number; order: number[]; pos: number; epoch: number; rng: number[] }

/** An endless seeded shuffle of n items drawn k at a time (a fresh order after each pass). */
export class ShuffledOrder {
  private order: number[] = [];
  private pos = 0;
  epoch = 0;
  constructor(readonly n: number, private readonly g: Generator) {}
  /** Passes over the items so far, fractional (epoch + position / n). */
  get progress(): number { return this.epoch + this.pos / this.n; }
  /** Plain JSON that load() restores: the pass under way, the position in it, the generator. */
  state(): ShuffledOrderState {
    return { n: this.n, order: [...this.order], pos: this.pos, epoch: this.epoch, rng: this.g.getState().slice(0, 4) };
  }
  load(s: ShuffledOrderState, where = 'trainer state'): void {
    const ok = s && s.n === this.n && Array.isArray(s.order) && (s.order.length === 0 || s.order.length === this.n) && s.order.every((x) => Number.isInteger(x) && x >= 0 && x < this.n)
      && Number.isInteger(s.pos) && s.pos >= 0 && s.pos <= s.order.length && Number.isInteger(s.epoch) && s.epoch >= 0
      && Array.isArray(s.rng) && s.rng.length === 4 && s.rng.every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32);
    if (!ok) throw new RangeError(`${where}: the data order is not one of ${this.n} items (${describeValue(s)}); resume with the same data`);
    this.order = [...s.order];
    this.pos = s.pos;
    this.epoch = s.epoch;
    this.g.setState([...s.rng, NaN]);
  }
  next(k: number): number[] {
    const out: number[] = [];
    while (out.length < k) {
      if (this.pos >= this.order.length) {
        if (this.order.length) this.epoch++;
        this.order = Array.from({ length: this.n }, (_, j) => j);
        for (let j = this.n - 1; j > 0; j--) { const q = this.g.int(j + 1); [this.order[j], this.order[q]] = [this.order[q], this.order[j]]; }
        this.pos = 0;
      }
      out.push(this.order[this.pos++]);
    }
    return out;
  }
}
