// The common tokenizer interface, its errors, and a streaming decoder shared by every kind.

export interface EncodeOptions {
  /** Prepend the BOS id (default false). */
  bos?: boolean;
  /** Append the EOS id (default false). */
  eos?: boolean;
  /** Recognise special / added tokens written in the text, e.g. "<|eot_id|>" (default true). */
  specials?: boolean;
}

export interface DecodeOptions {
  /** Leave out special (control) tokens such as BOS/EOS (default false). */
  skipSpecial?: boolean;
}

export interface Tokenizer {
  /** 'hf' (tokenizer.json), 'sentencepiece' (.model) or 'llama2c' (tokenizer.bin). */
  readonly kind: 'hf' | 'sentencepiece' | 'llama2c';
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly unkId: number | null;
  /** Special tokens by their text (BOS/EOS/control/added special tokens). */
  readonly specialTokens: ReadonlyMap<string, number>;
  encode(text: string, opts?: EncodeOptions): number[];
  decode(ids: readonly number[], opts?: DecodeOptions): string;
  /** The token's text in the vocabulary (e.g. "▁the", "Ġthe", "<0x0A>"); undefined when out of range. */
  idToToken(id: number): string | undefined;
  tokenToId(token: string): number | undefined;
  /** A decoder fed one id at a time that returns text only once its UTF-8 bytes are complete. */
  decodeStream(opts?: DecodeOptions): StreamDecoder;
}

/** A tokenizer file that we cannot read: names the file and the field at fault. */
export class TokenizerFormatError extends Error {
  constructor(readonly file: string, readonly field: string, detail: string) {
    super(`${file}: ${field} ${detail}`);
    this.name = 'TokenizerFormatError';
  }
}

/** Bad arguments to a tokenizer (an id out of range, an unknown special token, ...). */
export class TokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenizerError';
  }
}

/**
 * Incremental decoding, after HF tokenizers' DecodeStream: decode a short window of ids and emit
 * the new suffix once it no longer ends in U+FFFD (an incomplete UTF-8 sequence, e.g. the first
 * of three byte-fallback tokens of a Chinese character). The window keeps the ids of the last
 * emitted text as context, so that decoders which strip a leading space only do it at the start.
 */
export class StreamDecoder {
  private ids: number[] = [];
  /** ids[0, contextLen) were emitted before; `context` is their decoded text. */
  private contextLen = 0;
  private context = '';

  constructor(private readonly decodeFn: (ids: number[]) => string) {}

  /** Feed one id; returns the newly completed text ('' when none is complete yet). */
  push(id: number): string {
    this.ids.push(id);
    const text = this.decodeFn(this.ids);
    if (text.endsWith('\uFFFD') || text.length <= this.context.length || !text.startsWith(this.context)) return '';
    const out = text.slice(this.context.length);
    this.ids = this.ids.slice(this.contextLen);
    this.contextLen = this.ids.length;
    this.context = this.decodeFn(this.ids);
    return out;
  }

  /** What is still held back (incomplete bytes decode to U+FFFD); resets the decoder. */
  flush(): string {
    const text = this.decodeFn(this.ids);
    const out = text.startsWith(this.context) ? text.slice(this.context.length) : '';
    this.ids = [];
    this.contextLen = 0;
    this.context = '';
    return out;
  }
}

export const utf8Encoder = new TextEncoder();

/**
 * The UTF-8 bytes of strings end to end, string i at bytes[starts[i] .. starts[i + 1]) (one
 * buffer instead of a small array per string): one encoding of the strings joined by newlines,
 * or string by string into the buffer when one of them holds a newline.
 */
export function packUtf8(strings: readonly string[]): { bytes: Uint8Array; starts: Int32Array } {
  const V = strings.length, starts = new Int32Array(V + 1);
  const joined = utf8Encoder.encode(strings.join('\n'));
  let k = 0, p = 0;
  for (let i = 0; i < joined.length; i++) {
    const c = joined[i];
    if (c === 10) { if (++k < V) starts[k] = p; } else joined[p++] = c;
  }
  if (k === Math.max(0, V - 1)) { starts[V] = p; return { bytes: joined.subarray(0, p), starts }; }
  // A string holds a newline: one by one (at most 3 bytes per UTF-16 unit).
  let buf = new Uint8Array(Math.max(1024, 8 * V)), n = 0;
  strings.forEach((v, i) => {
    starts[i] = n;
    if (n + 3 * v.length > buf.length) {
      const grown = new Uint8Array(Math.max(2 * buf.length, n + 3 * v.length));
      grown.set(buf.subarray(0, n));
      buf = grown;
    }
    n += utf8Encoder.encodeInto(v, buf.subarray(n)).written;
  });
  starts[V] = n;
  return { bytes: buf.subarray(0, n), starts };
}

export const utf8Decoder = new TextDecoder('utf-8', { fatal: false });

/** "<0x0A>" → 10, anything else → -1. */
export function byteFallbackValue(token: string): number {
  if (token.length === 6 && token.startsWith('<0x') && token.endsWith('>')) {
    const v = parseInt(token.slice(3, 5), 16);
    if (Number.isInteger(v) && /^[0-9A-Fa-f]{2}$/.test(token.slice(3, 5))) return v;
  }
  return -1;
}

export function byteFallbackToken(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/** Throws TokenizerError for an id that is not an integer in [0, vocabSize). */
export function checkId(id: number, vocabSize: number): void {
  if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
    throw new TokenizerError(`token id ${id} is out of range [0, ${vocabSize})`);
  }
}

/**
 * Splits text at occurrences of the given literal tokens (longest match first, leftmost first).
 * Returns pieces that are either { text } or { token }.
 */
export function splitOnSpecials(text: string, specials: readonly string[]): Array<{ text: string } | { token: string }> {
  if (specials.length === 0 || text === '') return text === '' ? [] : [{ text }];
  const sorted = [...specials].filter((s) => s.length > 0).sort((a, b) => b.length - a.length);
  const re = new RegExp(sorted.map(escapeRegExp).join('|'), 'gu');
  const out: Array<{ text: string } | { token: string }> = [];
  let last = 0;
  for (const m of text.matchAll(re)) {
    const i = m.index!;
    if (i > last) out.push({ text: text.slice(last, i) });
    out.push({ token: m[0] });
    last = i + m[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out;
}

export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** The part of node:fs that fromFile and save use (typed here so browser builds need no Node types). */
export interface SyncFs {
  readFileSync(path: string): Uint8Array;
  readFileSync(path: string, encoding: 'utf8'): string;
  writeFileSync(path: string, data: string): void;
}

/**
 * node:fs, for the few methods that read or write a file (fromFile, save), taken at call time so
 * that these modules hold no static Node import and load in a browser (Node ≥ 20.16).
 */
export function nodeFs(what: string): SyncFs {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const fs = proc?.getBuiltinModule?.('node:fs') as SyncFs | undefined;
  if (!fs) throw new TokenizerError(`${what} reads or writes a file and needs Node.js ≥ 20.16; in a browser, fetch the bytes and build the tokenizer from them`);
  return fs;
}
