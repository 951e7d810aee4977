// A tokenizer from the bytes of its file, Node-free (the browser entry point uses it):
// tokenizer.json, a SentencePiece .model or llama2.c's tokenizer.bin, told apart by content (a
// JSON object; a protobuf whose first field is a piece; an int32 length followed by llama2.c
// records), with the file name as a hint. loadTokenizer (load.ts) reads the file in Node.js.
import { HFTokenizer, type TokenizerConfig } from './hf.js';
import { Llama2cTokenizer } from './llama2c.js';
import { parseModelProto, SentencePieceTokenizer } from './sentencepiece.js';
import { TokenizerFormatError, utf8Decoder, type Tokenizer } from './tokenizer.js';
import { parseJson } from './guard.js';

export type TokenizerKind = 'hf' | 'sentencepiece' | 'llama2c';

export interface TokenizerFromBytesOptions {
  /** tokenizer_config.json contents (BOS/EOS names, chat template) for a tokenizer.json. */
  config?: TokenizerConfig | null;
  /** For llama2.c tokenizer.bin: read exactly this many tokens. */
  vocabSize?: number;
}

/** Which kind of tokenizer file the bytes are. */
export function detectTokenizerKind(buf: Uint8Array, path: string): TokenizerKind {
  let i = 0;
  while (i < buf.length && (buf[i] === 0x20 || buf[i] === 0x0a || buf[i] === 0x0d || buf[i] === 0x09 || buf[i] === 0xef || buf[i] === 0xbb || buf[i] === 0xbf)) i++;
  if (buf[i] === 0x7b /* { */) return 'hf';
  // ModelProto starts with field 1 (pieces), wire type 2: tag byte 0x0a.
  if (buf[0] === 0x0a) {
    let j = 1;
    let len = 0;
    for (let shift = 0; j < buf.length && shift < 35; shift += 7, j++) {
      len += (buf[j] & 0x7f) * 2 ** shift;
      if ((buf[j] & 0x80) === 0) break;
    }
    if (len > 0 && buf[j + 1] === 0x0a) return 'sentencepiece';
  }
  if (buf.length >= 12) {
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const maxLen = dv.getInt32(0, true);
    const len0 = dv.getInt32(8, true);
    if (maxLen > 0 && maxLen < 1 << 20 && len0 >= 0 && len0 <= maxLen) return 'llama2c';
  }
  if (/\.json$/i.test(path)) return 'hf';
  if (/\.model$/i.test(path)) return 'sentencepiece';
  if (/\.bin$/i.test(path)) return 'llama2c';
  throw new TokenizerFormatError(path, '(file)', 'is not a tokenizer.json, a SentencePiece .model or a llama2.c tokenizer.bin');
}

/** A tokenizer from the bytes of its file; `path` names it in errors and hints at its kind. */
export function tokenizerFromBytes(buf: Uint8Array, path: string, opts: TokenizerFromBytesOptions = {}): Tokenizer {
  const kind = detectTokenizerKind(buf, path);
  if (kind === 'hf') {
    const json = parseJson(utf8Decoder.decode(buf), (d) => new TokenizerFormatError(path, '(file)', `is not valid JSON (${d})`));
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new TokenizerFormatError(path, '(root)', 'must be a JSON object');
    return new HFTokenizer(json as Record<string, unknown>, path, opts.config ?? null);
  }
  if (kind === 'sentencepiece') return new SentencePieceTokenizer(parseModelProto(buf, path), path);
  return Llama2cTokenizer.parse(buf, path, opts.vocabSize);
}
