// llama2.c's tokenizer.bin: int32 max_token_length, then for each token f32 score, int32 byte
// length, the bytes (little endian). The vocabulary size is not stored: tokens run to the end of
// the file (or pass vocabSize, as llama2.c takes it from the checkpoint header).
// Encoding is run.c's encode(): a " " dummy prefix, one token per UTF-8 character (else its
// bytes as ids byte+3), then repeatedly merge the adjacent pair whose concatenation is in the
// vocabulary with the highest score (leftmost on ties). BOS is id 1 and EOS id 2, as in run.c.
import { MaxHeap } from './heap.js';
import { SentencePieceTokenizer } from './sentencepiece.js';
import {
  byteFallbackToken,
  byteFallbackValue,
  checkId,
  nodeFs,
  splitOnSpecials,
  StreamDecoder,
  TokenizerFormatError,
  packUtf8,
  utf8Decoder,
  utf8Encoder,
  type DecodeOptions,
  type EncodeOptions,
  type Tokenizer,
} from './tokenizer.js';

const BOS = 1;
const EOS = 2;

export class Llama2cTokenizer implements Tokenizer {
  readonly kind = 'llama2c' as const;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly unkId: number | null = 0;
  readonly specialTokens: Map<string, number>;
  private readonly lookup = new Map<string, number>();
  /** Every token's UTF-8 bytes end to end (one buffer: 32K small arrays would cost ~10 MB of heap), token i at starts[i]…starts[i+1]. */
  private readonly packed: Uint8Array;
  private readonly starts: Int32Array;
  private readonly byteValue: Int16Array;
  /** Byte b's token: the "<0xXX>" piece; run.c assumes b + 3, which is the same in LLaMA's vocabulary. */
  private readonly byteIds: Int32Array;

  /** max_token_length as tokenizer.bin stores it (by default the longest token's UTF-8 bytes). */
  readonly maxTokenLength: number;

  constructor(readonly vocab: string[], readonly scores: Float32Array, maxTokenLength?: number, readonly file = 'tokenizer.bin') {
    const { bytes, starts } = packUtf8(vocab);
    this.packed = bytes.slice(); // (a copy the exact size: the packing buffer can be larger)
    this.starts = starts;
    if (maxTokenLength === undefined) {
      maxTokenLength = 0;
      for (let i = 0; i < vocab.length; i++) maxTokenLength = Math.max(maxTokenLength, starts[i + 1] - starts[i]);
    }
    this.maxTokenLength = maxTokenLength;
    // llama2.c's str_lookup is a bsearch over the sorted vocabulary; with duplicate strings it can
    // find either, so we take the first, as the sentencepiece export never has duplicates.
    vocab.forEach((v, i) => {
      if (!this.lookup.has(v)) this.lookup.set(v, i);
    });
    this.byteValue = new Int16Array(vocab.length).map((_, i) => byteFallbackValue(vocab[i]));
    this.byteIds = new Int32Array(256).map((_, b) => b + 3);
    this.byteValue.forEach((b, i) => {
      if (b >= 0 && vocab[i] === byteFallbackToken(b)) this.byteIds[b] = i;
    });
    this.bosId = vocab.length > BOS ? BOS : null;
    this.eosId = vocab.length > EOS ? EOS : null;
    // The export writes BOS/EOS as "\n<s>\n" / "\n</s>\n"; as specials they go by "<s>" / "</s>".
    this.specialTokens = new Map();
    if (this.bosId !== null) this.specialTokens.set('<s>', BOS);
    if (this.eosId !== null) this.specialTokens.set('</s>', EOS);
  }

  get vocabSize(): number {
    return this.vocab.length;
  }

  static parse(buf: Uint8Array, file = 'tokenizer.bin', vocabSize?: number): Llama2cTokenizer {
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    if (buf.length < 4) throw new TokenizerFormatError(file, 'max_token_length', `needs 4 bytes, the file has ${buf.length}`);
    const maxLen = dv.getInt32(0, true);
    if (maxLen <= 0 || maxLen > 1 << 20) throw new TokenizerFormatError(file, 'max_token_length', `${maxLen} is not a plausible token length (not a llama2.c tokenizer.bin?)`);
    const vocab: string[] = [];
    const scores: number[] = [];
    const dec = new TextDecoder('utf-8', { fatal: false });
    let pos = 4;
    while (pos < buf.length && (vocabSize === undefined || vocab.length < vocabSize)) {
      const i = vocab.length;
      if (pos + 8 > buf.length) throw new TokenizerFormatError(file, `token ${i}`, `header (score, length) at byte ${pos} runs past the end of the ${buf.length}-byte file`);
      const score = dv.getFloat32(pos, true);
      const len = dv.getInt32(pos + 4, true);
      if (!Number.isFinite(score)) throw new TokenizerFormatError(file, `token ${i} score`, `is ${score} at byte ${pos} (scores must be finite)`);
      pos += 8;
      if (len < 0 || len > maxLen) throw new TokenizerFormatError(file, `token ${i} length`, `${len} is outside [0, max_token_length ${maxLen}]`);
      if (pos + len > buf.length) throw new TokenizerFormatError(file, `token ${i} bytes`, `${len} bytes at byte ${pos} run past the end of the ${buf.length}-byte file`);
      vocab.push(dec.decode(buf.subarray(pos, pos + len)));
      scores.push(score);
      pos += len;
    }
    if (vocabSize !== undefined && vocab.length < vocabSize) throw new TokenizerFormatError(file, 'vocab_size', `expected ${vocabSize} tokens, the file has ${vocab.length}`);
    if (vocab.length < 3 + 256) throw new TokenizerFormatError(file, 'tokens', `${vocab.length} tokens is fewer than unk/bos/eos plus 256 byte tokens`);
    return new Llama2cTokenizer(vocab, Float32Array.from(scores), maxLen, file);
  }

  static fromFile(path: string, vocabSize?: number): Llama2cTokenizer {
    return Llama2cTokenizer.parse(nodeFs('Llama2cTokenizer.fromFile').readFileSync(path), path, vocabSize);
  }

  /** llama2.c's tokenizer.py export of a SentencePiece model. */
  static fromSentencePiece(sp: SentencePieceTokenizer): Llama2cTokenizer {
    const vocab: string[] = [];
    const scores: number[] = [];
    for (let i = 0; i < sp.vocabSize; i++) {
      let t = sp.idToToken(i)!;
      if (i === sp.bosId) t = '\n<s>\n';
      else if (i === sp.eosId) t = '\n</s>\n';
      vocab.push(t.replaceAll('\u2581', ' '));
      scores.push(sp.score(i));
    }
    return new Llama2cTokenizer(vocab, Float32Array.from(scores), undefined, sp.file.replace(/[^/]*$/, 'tokenizer.bin'));
  }

  /** The tokenizer.bin bytes. */
  serialize(): Uint8Array {
    const V = this.vocab.length;
    const out = new Uint8Array(4 + 8 * V + this.packed.length);
    const dv = new DataView(out.buffer);
    dv.setInt32(0, this.maxTokenLength, true);
    let pos = 4;
    for (let i = 0; i < V; i++) {
      const b = this.raw(i);
      dv.setFloat32(pos, this.scores[i], true);
      dv.setInt32(pos + 4, b.length, true);
      out.set(b, pos + 8);
      pos += 8 + b.length;
    }
    return out;
  }

  /** Token id's UTF-8 bytes (a view). */
  private raw(id: number): Uint8Array {
    return this.packed.subarray(this.starts[id], this.starts[id + 1]);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (opts.bos) out.push(BOS);
    const specials = opts.specials === false ? [] : [...this.specialTokens.keys()];
    for (const part of splitOnSpecials(text, specials)) {
      if ('token' in part) out.push(this.specialTokens.get(part.token)!);
      else this.encodeText(part.text, out);
    }
    if (opts.eos) out.push(EOS);
    return out;
  }

  private encodeText(text: string, out: number[]): void {
    if (text === '') return;
    const sym: number[] = [];
    const dummy = this.lookup.get(' ');
    if (dummy !== undefined) sym.push(dummy);
    for (const ch of text) {
      const id = this.lookup.get(ch);
      if (id !== undefined) sym.push(id);
      else for (const b of utf8Encoder.encode(ch)) sym.push(this.byteIds[b]);
    }
    // Best-score merge with a heap over a linked list (same result as run.c's quadratic loop).
    const n = sym.length;
    const next = new Int32Array(n).map((_, i) => (i + 1 < n ? i + 1 : -1));
    const prev = new Int32Array(n).map((_, i) => i - 1);
    const id = Int32Array.from(sym);
    type Pair = { left: number; right: number; lid: number; rid: number; merged: number; score: number };
    const heap = new MaxHeap<Pair>((a, b) => a.score > b.score || (a.score === b.score && a.left < b.left));
    const push = (p: Pair) => heap.push(p);
    const alive = new Uint8Array(n).fill(1);
    const tryPush = (left: number) => {
      if (left < 0) return;
      const right = next[left];
      if (right < 0) return;
      const merged = this.lookup.get(this.vocab[id[left]] + this.vocab[id[right]]);
      if (merged !== undefined) push({ left, right, lid: id[left], rid: id[right], merged, score: this.scores[merged] });
    };
    for (let i = 0; i + 1 < n; i++) tryPush(i);
    while (heap.size > 0) {
      const p = heap.pop()!;
      if (!alive[p.left] || !alive[p.right] || next[p.left] !== p.right || id[p.left] !== p.lid || id[p.right] !== p.rid) continue;
      id[p.left] = p.merged;
      alive[p.right] = 0;
      next[p.left] = next[p.right];
      if (next[p.right] >= 0) prev[next[p.right]] = p.left;
      tryPush(prev[p.left]);
      tryPush(p.left);
    }
    for (let i = n > 0 ? 0 : -1; i >= 0; i = next[i]) out.push(id[i]);
  }

  /** run.c's decode: byte tokens are raw bytes; the space after BOS (or at the start) is dropped.
   *  BOS/EOS decode to nothing. */
  decode(ids: readonly number[], _opts: DecodeOptions = {}): string {
    // Two passes over the ids, the bytes' length then the bytes: one array, no per-byte pushes
    // (a streaming decoder calls this twice per generated token).
    let n = 0;
    for (let pass = 0; pass < 2; pass++) {
      const out = pass === 1 ? new Uint8Array(n) : null;
      let at = 0, atStart = true;
      for (const id of ids) {
        if (pass === 0) checkId(id, this.vocabSize);
        if (id === BOS) {
          atStart = true;
          continue;
        }
        if (id === EOS) continue;
        const b = this.byteValue[id];
        if (b >= 0) {
          if (out) out[at] = b;
          at++;
        } else {
          let from = this.starts[id];
          const to = this.starts[id + 1];
          if (atStart && from < to && this.packed[from] === 0x20) from++;
          if (out) for (let k = from; k < to; k++) out[at + k - from] = this.packed[k];
          at += to - from;
        }
        atStart = false;
      }
      if (out) return utf8Decoder.decode(out);
      n = at;
    }
    return '';
  }

  decodeStream(opts: DecodeOptions = {}): StreamDecoder {
    return new StreamDecoder((ids) => this.decode(ids, opts));
  }

  idToToken(id: number): string | undefined {
    return this.vocab[id];
  }

  tokenToId(token: string): number | undefined {
    return this.specialTokens.get(token) ?? this.lookup.get(token);
  }
}
