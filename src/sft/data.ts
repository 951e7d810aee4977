// Instruction data for supervised fine-tuning: Alpaca rows ({instruction, input, output}) in JSON
// or JSONL, and chat rows ({messages: [{role, content}, …]}); Stanford Alpaca's prompt template
// (with and without input) or a chat template; token ids with labels that are −100 (ignored by
// the loss) everywhere but on response tokens; batches padded per batch, or packed.
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { applyChatTemplate } from '../tokenizers/chat.js';
import type { ChatMessage } from '../tokenizers/chat.js';
import { Generator } from '../tensor/random.js';
import { describeValue, parseJson, quoteShort } from '../tokenizers/guard.js';
import { nodeFs } from '../tokenizers/tokenizer.js';

export class SftDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SftDataError';
  }
}

export const IGNORE_INDEX = -100;

export interface AlpacaRow { instruction: string; input?: string; output: string }
export interface ChatRow { messages: ChatMessage[] }
export type InstructionRow = AlpacaRow | ChatRow;

export function isChatRow(r: InstructionRow): r is ChatRow {
  return Array.isArray((r as ChatRow).messages);
}

/** Stanford Alpaca's templates (train.py's PROMPT_DICT). */
export const ALPACA_PROMPT_INPUT =
  'Below is an instruction that describes a task, paired with an input that provides further context. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n';
export const ALPACA_PROMPT_NO_INPUT =
  'Below is an instruction that describes a task. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Response:\n';

/** The Alpaca prompt for a row (the response follows it directly). */
export function alpacaPrompt(row: { instruction: string; input?: string }): string {
  const tpl = row.input ? ALPACA_PROMPT_INPUT : ALPACA_PROMPT_NO_INPUT;
  return tpl.replace('{instruction}', () => row.instruction).replace('{input}', () => row.input ?? '');
}

/** ChatML, for tokenizers without a chat template of their own. */
export const CHATML_TEMPLATE = "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

function checkRow(obj: unknown, where: string): InstructionRow {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new SftDataError(`${where}: expected an object with "instruction" and "output" (or "messages"), got ${describeValue(obj)}`);
  const o = obj as Record<string, unknown>;
  if ('messages' in o) {
    const m = o.messages;
    if (!Array.isArray(m) || !m.length) throw new SftDataError(`${where}: "messages" must be a non-empty list`);
    m.forEach((x, i) => {
      if (typeof x !== 'object' || x === null || typeof (x as ChatMessage).role !== 'string' || typeof (x as ChatMessage).content !== 'string') {
        throw new SftDataError(`${where}: messages[${i}] must have string "role" and "content"`);
      }
    });
    if (!m.some((x) => (x as ChatMessage).role === 'assistant')) throw new SftDataError(`${where}: "messages" has no assistant turn to train on`);
    return { messages: m as ChatMessage[] };
  }
  for (const k of ['instruction', 'output']) {
    if (!(k in o)) throw new SftDataError(`${where}: missing "${k}" (has ${fieldList(o)})`);
    if (typeof o[k] !== 'string') throw new SftDataError(`${where}: "${k}" must be a string, got ${typeof o[k]}`);
  }
  if (o.input !== undefined && o.input !== null && typeof o.input !== 'string') throw new SftDataError(`${where}: "input" must be a string, got ${typeof o.input}`);
  return { instruction: o.instruction as string, input: (o.input as string | undefined) ?? '', output: o.output as string };
}

/** The first few field names of an object, for messages. */
export function fieldList(o: object): string {
  const keys: string[] = [];
  let n = 0;
  for (const k in o) if (n++ < 6) keys.push(quoteShort(k, 24));
  if (n === 0) return 'no fields';
  return keys.join(', ') + (n > 6 ? `, … (${n} fields)` : '');
}

/**
 * Parse instruction data: a JSON array (Alpaca's alpaca_data.json) or JSONL, each row Alpaca
 * or chat. Errors name the file and the row (and the line for JSONL).
 */
export function parseInstructionData(text: string, file = '<data>'): InstructionRow[] {
  const rows = jsonRows(text, file, (m) => new SftDataError(m), { rowLabels: true }).map(({ value, where }) => checkRow(value, where));
  if (!rows.length) throw new SftDataError(`${file}: no rows`);
  return rows;
}

export function readInstructionData(file: string): InstructionRow[] {
  return parseInstructionData(readDataText(file, (m) => new SftDataError(m)), file);
}

/** The largest instruction / prompt / preference file, read whole (V8's longest string is ~512 M chars). */
export const MAX_DATA_BYTES = 256 * 1024 * 1024;

/** A data file's text (a UTF-8 BOM dropped); an unreadable or too large file throws makeError naming it. */
export function readDataText(file: string, makeError: (message: string) => Error): string {
  // (node:fs when called: the row parsers here are Node-free, for tslm/browser)
  let buf: Buffer;
  try { buf = nodeFs('readDataText').readFileSync(file) as Buffer; } catch (e) { throw makeError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`); }
  if (buf.length > MAX_DATA_BYTES) throw makeError(`${file}: ${buf.length} bytes is larger than the ${MAX_DATA_BYTES} bytes a data file read whole may have (split it)`);
  const text = buf.toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/**
 * The values of a JSONL text (blank lines skipped), or of a JSON array when `arrays` allows it
 * and the text starts with '[', each with where it came from ("file:line", "file: row i");
 * invalid JSON throws makeError naming the file and line.
 */
export function jsonRows(text: string, file: string, makeError: (message: string) => Error, opts: { arrays?: boolean; rowLabels?: boolean } = {}): { value: unknown; where: string }[] {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if ((opts.arrays ?? true) && text.trimStart().startsWith('[')) {
    const arr = parseJson(text, (d) => makeError(`${file}: invalid JSON (${d})`)) as unknown[];
    return arr.map((value, i) => ({ value, where: `${file}: row ${i + 1}` }));
  }
  const out: { value: unknown; where: string }[] = [];
  let lineNo = 0;
  for (let start = 0; start < text.length; ) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    lineNo++;
    const line = text.slice(start, end);
    start = end + 1;
    if (!line.trim()) continue;
    const where = opts.rowLabels ? `${file}:${lineNo}: row ${out.length + 1}` : `${file}:${lineNo}`;
    out.push({ value: parseJson(line, (d) => makeError(`${where}: invalid JSON (${d.replace(/^line 1, /, '')})`)), where });
  }
  return out;
}

/** A tokenised example: input ids and per-token labels (−100 where no loss is taken). */
export interface SftExample { ids: number[]; labels: number[] }

export interface FormatOptions {
  /** 'alpaca' (default for Alpaca rows) or 'chat' (always used for chat rows). */
  template?: 'alpaca' | 'chat';
  /** Jinja chat template (default ChatML). */
  chatTemplate?: string;
  bosToken?: string;
  eosToken?: string;
  /** Prepend the tokenizer's BOS id (default: when it has one). */
  addBos?: boolean;
  /** Append EOS after each response (default true), as Alpaca does. */
  addEos?: boolean;
  /** Truncate examples to this many tokens. */
  maxLength?: number;
  /** Also train on prompt tokens (default false: response tokens only). */
  trainOnPrompt?: boolean;
  /**
   * Which assistant turns of a chat row carry the loss: 'all' (default) or 'last', Ghost
   * Attention's labels (LLaMA 2 §3.3: the loss is 0 on every token of the previous turns,
   * earlier assistant replies included; only the last assistant reply is trained).
   */
  trainTurns?: 'all' | 'last';
}

/** A row as text segments, each trained on (response) or not (prompt). */
export function rowSegments(row: InstructionRow, o: FormatOptions = {}): { text: string; train: boolean }[] {
  if (!isChatRow(row) && (o.template ?? 'alpaca') === 'alpaca') {
    return [{ text: alpacaPrompt(row), train: false }, { text: row.output, train: true }];
  }
  const messages: ChatMessage[] = isChatRow(row) ? row.messages : [
    { role: 'user', content: row.input ? `${row.instruction}\n\n${row.input}` : row.instruction },
    { role: 'assistant', content: row.output },
  ];
  const render = (ms: ChatMessage[], gen: boolean) => applyChatTemplate(ms, {
    template: o.chatTemplate ?? CHATML_TEMPLATE, addGenerationPrompt: gen, bosToken: o.bosToken, eosToken: o.eosToken,
  });
  // Each assistant turn is the text its message adds after the generation prompt.
  const segs: { text: string; train: boolean }[] = [];
  let done = '';
  messages.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    const prefix = render(messages.slice(0, i), true), full = render(messages.slice(0, i + 1), false);
    if (!prefix.startsWith(done) || !full.startsWith(prefix)) throw new SftDataError(`the chat template does not render conversations as growing prefixes; cannot find assistant turn ${i}`);
    segs.push({ text: prefix.slice(done.length), train: false }, { text: full.slice(prefix.length), train: true });
    done = full;
  });
  const all = render(messages, false);
  if (all.length > done.length && all.startsWith(done)) segs.push({ text: all.slice(done.length), train: false });
  if (o.trainTurns === 'last') {
    // Ghost Attention: only the last assistant turn is trained; earlier replies become context.
    let last = -1;
    segs.forEach((s, i) => { if (s.train && s.text.length) last = i; });
    segs.forEach((s, i) => { if (i !== last) s.train = false; });
  }
  return segs.filter((s) => s.text.length);
}

/** Tokenise a row: segments encoded separately and concatenated (prompt tokens labelled −100). */
export function tokenizeRow(row: InstructionRow, tok: Tokenizer, o: FormatOptions = {}): SftExample {
  if (o.trainTurns !== undefined && o.trainTurns !== 'all' && o.trainTurns !== 'last') throw new SftDataError(`trainTurns: expected 'all' or 'last', got ${JSON.stringify(o.trainTurns)}`);
  if (o.trainTurns === 'last' && o.trainOnPrompt) throw new SftDataError('trainTurns \'last\' (Ghost Attention) and trainOnPrompt exclude each other: one masks earlier turns, the other trains on them');
  const ids: number[] = [], labels: number[] = [];
  const addBos = o.addBos ?? tok.bosId !== null;
  if (addBos && tok.bosId !== null) { ids.push(tok.bosId); labels.push(IGNORE_INDEX); }
  const chat = isChatRow(row) || o.template === 'chat';
  for (const s of rowSegments(row, o)) {
    const t = tok.encode(s.text);
    for (const id of t) {
      ids.push(id);
      labels.push(s.train || o.trainOnPrompt ? id : IGNORE_INDEX);
    }
  }
  // Alpaca appends EOS to the response; a chat template ends turns itself.
  if ((o.addEos ?? !chat) && tok.eosId !== null) { ids.push(tok.eosId); labels.push(tok.eosId); }
  if (o.maxLength && ids.length > o.maxLength) { ids.length = o.maxLength; labels.length = o.maxLength; }
  return { ids, labels };
}

/** The prompt of a row as the model sees it at inference (ids), and the expected response. */
export function promptIds(row: InstructionRow, tok: Tokenizer, o: FormatOptions = {}): { ids: number[]; response: string } {
  const segs = rowSegments(row, o);
  let lastTrain = -1;
  segs.forEach((s, i) => { if (s.train) lastTrain = i; });
  const ids: number[] = [];
  if ((o.addBos ?? tok.bosId !== null) && tok.bosId !== null) ids.push(tok.bosId);
  for (const s of segs.slice(0, lastTrain)) for (const id of tok.encode(s.text)) ids.push(id);
  return { ids, response: segs[lastTrain].text };
}

/** Rows of (ids, targets) for one batch: next-token shift, right padding with label −100. */
export interface SftBatch { ids: number[]; targets: number[]; batch: number; length: number; responseTokens: number }

/** Pad examples to the longest (inputs ids[0..L−2], targets labels[1..L−1]). */
export function collate(examples: SftExample[], padId: number): SftBatch {
  let longest = 2;
  for (const e of examples) longest = Math.max(longest, e.ids.length);
  const L = longest - 1;
  const ids: number[] = [], targets: number[] = [];
  let n = 0;
  for (const e of examples) {
    for (let t = 0; t < L; t++) {
      ids.push(t < e.ids.length - 1 ? e.ids[t] : padId);
      const y = t + 1 < e.labels.length ? e.labels[t + 1] : IGNORE_INDEX;
      targets.push(y);
      if (y !== IGNORE_INDEX) n++;
    }
  }
  return { ids, targets, batch: examples.length, length: L, responseTokens: n };
}

/**
 * Packing: concatenate examples (labels kept per token) into rows of exactly seqLen+1 tokens,
 * splitting examples across rows; attention is not reset between examples (as TRL's simple packing).
 */
export function pack(examples: SftExample[], seqLen: number): SftExample[] {
  const ids = examples.flatMap((e) => e.ids), labels = examples.flatMap((e) => e.labels);
  const out: SftExample[] = [];
  for (let i = 0; i + seqLen + 1 <= ids.length; i += seqLen) out.push({ ids: ids.slice(i, i + seqLen + 1), labels: [IGNORE_INDEX, ...labels.slice(i + 1, i + seqLen + 1)] });
  return out;
}

/** An endless seeded shuffle over examples, in batches. */
export class SftBatcher {
  private order: number[] = [];
  private pos = 0;
  epoch = 0;
  private g: Generator;
  constructor(readonly examples: SftExample[], readonly batchSize: number, readonly padId: number, seed = 0) {
    if (!examples.length) throw new SftDataError('no training examples');
    this.g = new Generator(seed);
    this.reshuffle();
  }
  private reshuffle(): void {
    this.order = this.g.shuffle(this.examples.map((_, i) => i));
    this.pos = 0;
  }
  next(): SftBatch {
    const picked: SftExample[] = [];
    while (picked.length < this.batchSize) {
      if (this.pos >= this.order.length) { this.epoch++; this.reshuffle(); }
      picked.push(this.examples[this.order[this.pos++]]);
    }
    return collate(picked, this.padId);
  }
}
