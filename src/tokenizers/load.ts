// loadTokenizer(path): tokenizer.json, a SentencePiece .model or llama2.c's tokenizer.bin, told
// apart by content (a JSON object; a protobuf whose first field is a piece; an int32 length
// followed by llama2.c records), with the file name as a hint. Node.js only: the file reading;
// telling the kinds apart and building from bytes is Node-free (from_bytes.ts, which the browser
// entry point uses).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { TokenizerConfig } from './hf.js';
import { TokenizerFormatError, type Tokenizer } from './tokenizer.js';
import { detectTokenizerKind, tokenizerFromBytes, type TokenizerFromBytesOptions } from './from_bytes.js';
import { describeValue, parseJson } from './guard.js';

export { detectTokenizerKind } from './from_bytes.js';
export type { TokenizerKind } from './from_bytes.js';

export interface LoadTokenizerOptions extends TokenizerFromBytesOptions {
  /** tokenizer_config.json contents (BOS/EOS names, chat template); by default read from beside a tokenizer.json. */
  config?: TokenizerConfig | null;
}

export function loadTokenizer(path: string, opts: LoadTokenizerOptions = {}): Tokenizer {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new TokenizerFormatError(path, '(file)', `cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let config = opts.config;
  if (config === undefined && detectTokenizerKind(buf, path) === 'hf') {
    const cfgPath = join(dirname(path), 'tokenizer_config.json');
    config = existsSync(cfgPath) ? readTokenizerConfig(cfgPath) : null;
  }
  return tokenizerFromBytes(buf, path, { ...opts, config });
}

/** Reads a tokenizer_config.json. */
export function readTokenizerConfig(path: string): TokenizerConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new TokenizerFormatError(path, '(file)', `cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const c = parseJson(text, (d) => new TokenizerFormatError(path, '(file)', `is not valid JSON (${d})`));
  if (c === null || typeof c !== 'object' || Array.isArray(c)) throw new TokenizerFormatError(path, '(root)', `must be a tokenizer_config.json object, got ${describeValue(c)}`);
  const cfg = c as TokenizerConfig;
  for (const k of ['bos_token', 'eos_token', 'unk_token', 'pad_token'] as const) {
    const v = cfg[k];
    if (v != null && typeof v !== 'string' && (typeof v !== 'object' || typeof (v as { content?: unknown }).content !== 'string')) {
      throw new TokenizerFormatError(path, k, `must be a string or {"content": string}, got ${describeValue(v)}`);
    }
  }
  const ct = cfg.chat_template;
  if (ct != null && typeof ct !== 'string') {
    if (!Array.isArray(ct)) throw new TokenizerFormatError(path, 'chat_template', `must be a string or a list of {name, template}, got ${describeValue(ct)}`);
    ct.forEach((t, i) => {
      if (!t || typeof t !== 'object' || typeof t.name !== 'string' || typeof t.template !== 'string') throw new TokenizerFormatError(path, `chat_template[${i}]`, 'must be {"name": string, "template": string}');
    });
  }
  return cfg;
}
