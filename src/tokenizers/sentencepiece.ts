// SentencePiece .model files (LLaMA-1/2, Mistral-7B v0.1, ...): the ModelProto is parsed here
// (a small bounds-checked protobuf reader), and encoding follows sentencepiece's normalizer.cc and
// bpe_model.cc: normalize (precompiled charsmap, dummy prefix, whitespace → ▁), split into
// characters (user-defined symbols kept whole), merge the adjacent pair whose piece has the
// highest score (leftmost on ties), then spell pieces that are not in the vocabulary as
// <0xXX> byte pieces (byte_fallback) or unk.
import { MaxHeap } from './heap.js';
import { charAt, PrecompiledCharsMap } from './charsmap.js';
import {
  byteFallbackToken,
  byteFallbackValue,
  checkId,
  nodeFs,
  splitOnSpecials,
  StreamDecoder,
  TokenizerError,
  TokenizerFormatError,
  utf8Encoder,
  type DecodeOptions,
  type EncodeOptions,
  type Tokenizer,
} from './tokenizer.js';

// ------------------------------------------------------------------ protobuf

class ProtoReader {
  pos: number;
  constructor(readonly buf: Uint8Array, readonly file: string, readonly field: string, start = 0, readonly end = buf.length) {
    this.pos = start;
  }
  get done(): boolean {
    return this.pos >= this.end;
  }
  fail(detail: string): never {
    throw new TokenizerFormatError(this.file, this.field, `${detail} at byte ${this.pos}`);
  }
  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail('truncated varint');
      const b = this.buf[this.pos++];
      if (i < 8) result += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) return result;
    }
    this.fail('varint longer than 10 bytes');
  }
  /** Returns [fieldNumber, wireType]. */
  tag(): [number, number] {
    const t = this.varint();
    return [Math.floor(t / 8), t & 7];
  }
  bytes(): [number, number] {
    const len = this.varint();
    if (this.pos + len > this.end) this.fail(`length ${len} runs past the end of the message`);
    const s = this.pos;
    this.pos += len;
    return [s, s + len];
  }
  fixed32(): DataView {
    if (this.pos + 4 > this.end) this.fail('truncated fixed32');
    const dv = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4);
    this.pos += 4;
    return dv;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) {
      if (this.pos + 8 > this.end) this.fail('truncated fixed64');
      this.pos += 8;
    } else if (wire === 2) this.bytes();
    else if (wire === 5) this.fixed32();
    else this.fail(`unsupported wire type ${wire}`);
  }
}

const dec = new TextDecoder('utf-8', { fatal: false });

export const enum PieceType {
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
}

export interface SentencePieceModelProto {
  pieces: Array<{ piece: string; score: number; type: PieceType }>;
  trainer: {
    modelType: number; // 1 UNIGRAM, 2 BPE, 3 WORD, 4 CHAR
    vocabSize: number;
    byteFallback: boolean;
    treatWhitespaceAsSuffix: boolean;
    unkId: number;
    bosId: number;
    eosId: number;
    padId: number;
    unkSurface: string;
  };
  normalizer: {
    name: string;
    precompiledCharsmap: Uint8Array | null;
    addDummyPrefix: boolean;
    removeExtraWhitespaces: boolean;
    escapeWhitespaces: boolean;
  };
}

/** Parses a serialized sentencepiece ModelProto. */
export function parseModelProto(buf: Uint8Array, file: string): SentencePieceModelProto {
  const out: SentencePieceModelProto = {
    pieces: [],
    trainer: { modelType: 1, vocabSize: 8000, byteFallback: false, treatWhitespaceAsSuffix: false, unkId: 0, bosId: 1, eosId: 2, padId: -1, unkSurface: ' \u2047 ' },
    normalizer: { name: '', precompiledCharsmap: null, addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true },
  };
  const signed = (v: number) => (v >= 2 ** 63 ? -1 : v > 2 ** 31 ? v - 2 ** 64 : v); // int32 -1 is a 10-byte varint
  const r = new ProtoReader(buf, file, 'ModelProto');
  while (!r.done) {
    const [fno, wire] = r.tag();
    if (fno === 1 && wire === 2) {
      const [s, e] = r.bytes();
      const idx = out.pieces.length;
      const pr = new ProtoReader(buf, file, `pieces[${idx}]`, s, e);
      const p = { piece: '', score: 0, type: PieceType.NORMAL };
      while (!pr.done) {
        const [f, w] = pr.tag();
        if (f === 1 && w === 2) {
          const [a, b] = pr.bytes();
          p.piece = dec.decode(buf.subarray(a, b));
        } else if (f === 2 && w === 5) p.score = pr.fixed32().getFloat32(0, true);
        else if (f === 3 && w === 0) p.type = pr.varint() as PieceType;
        else pr.skip(w);
      }
      if (p.type < 1 || p.type > 6) throw new TokenizerFormatError(file, `pieces[${idx}].type`, `${p.type} is not a sentencepiece piece type`);
      if (!Number.isFinite(p.score)) throw new TokenizerFormatError(file, `pieces[${idx}].score`, `is ${p.score} (scores must be finite)`);
      if (p.piece === '') throw new TokenizerFormatError(file, `pieces[${idx}].piece`, 'is empty (sentencepiece requires every piece to be non-empty)');
      out.pieces.push(p);
    } else if (fno === 2 && wire === 2) {
      const [s, e] = r.bytes();
      const tr = new ProtoReader(buf, file, 'trainer_spec', s, e);
      const t = out.trainer;
      while (!tr.done) {
        const [f, w] = tr.tag();
        if (w === 0 && [3, 4, 24, 35, 40, 41, 42, 43].includes(f)) {
          const v = signed(tr.varint());
          if (f === 3) t.modelType = v;
          else if (f === 4) t.vocabSize = v;
          else if (f === 24) t.treatWhitespaceAsSuffix = v !== 0;
          else if (f === 35) t.byteFallback = v !== 0;
          else if (f === 40) t.unkId = v;
          else if (f === 41) t.bosId = v;
          else if (f === 42) t.eosId = v;
          else if (f === 43) t.padId = v;
        } else if (f === 44 && w === 2) {
          const [a, b] = tr.bytes();
          t.unkSurface = dec.decode(buf.subarray(a, b));
        } else tr.skip(w);
      }
    } else if (fno === 3 && wire === 2) {
      const [s, e] = r.bytes();
      const nr = new ProtoReader(buf, file, 'normalizer_spec', s, e);
      const n = out.normalizer;
      while (!nr.done) {
        const [f, w] = nr.tag();
        if (f === 1 && w === 2) {
          const [a, b] = nr.bytes();
          n.name = dec.decode(buf.subarray(a, b));
        } else if (f === 2 && w === 2) {
          const [a, b] = nr.bytes();
          n.precompiledCharsmap = b > a ? buf.subarray(a, b) : null;
        } else if (f === 3 && w === 0) n.addDummyPrefix = nr.varint() !== 0;
        else if (f === 4 && w === 0) n.removeExtraWhitespaces = nr.varint() !== 0;
        else if (f === 5 && w === 0) n.escapeWhitespaces = nr.varint() !== 0;
        else nr.skip(w);
      }
    } else r.skip(wire);
  }
  if (out.pieces.length === 0) throw new TokenizerFormatError(file, 'pieces', 'is empty (not a sentencepiece model?)');
  return out;
}

// ------------------------------------------------------------------ tokenizer

const SPACE = '\u2581'; // ▁

export class SentencePieceTokenizer implements Tokenizer {
  readonly kind = 'sentencepiece' as const;
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly unkId: number | null;
  readonly specialTokens: Map<string, number>;
  private readonly pieceToId = new Map<string, number>();
  private readonly userDefined: string[];
  private readonly userDefinedRe: RegExp | null;
  private readonly charsmap: PrecompiledCharsMap | null;
  private readonly byteIds: Int32Array | null;

  constructor(readonly proto: SentencePieceModelProto, readonly file = 'tokenizer.model') {
    const { trainer, normalizer, pieces } = proto;
    if (trainer.modelType !== 2) {
      const names: Record<number, string> = { 1: 'UNIGRAM', 3: 'WORD', 4: 'CHAR' };
      throw new TokenizerFormatError(file, 'trainer_spec.model_type', `${names[trainer.modelType] ?? trainer.modelType} is not supported (only BPE)`);
    }
    if (!normalizer.escapeWhitespaces) throw new TokenizerFormatError(file, 'normalizer_spec.escape_whitespaces', 'false is not supported');
    this.vocabSize = pieces.length;
    pieces.forEach((p, i) => {
      if (!this.pieceToId.has(p.piece)) this.pieceToId.set(p.piece, i);
    });
    const valid = (id: number) => (id >= 0 && id < pieces.length ? id : null);
    this.bosId = valid(trainer.bosId);
    this.eosId = valid(trainer.eosId);
    this.unkId = valid(trainer.unkId);
    if (this.unkId === null) throw new TokenizerFormatError(file, 'trainer_spec.unk_id', `${trainer.unkId} is not a piece id`);
    this.specialTokens = new Map(pieces.flatMap((p, i) => (p.type === PieceType.CONTROL || p.type === PieceType.UNKNOWN ? [[p.piece, i] as [string, number]] : [])));
    this.userDefined = pieces.filter((p) => p.type === PieceType.USER_DEFINED).map((p) => p.piece);
    this.userDefinedRe = this.userDefined.length
      ? new RegExp(this.userDefined.sort((a, b) => b.length - a.length).map((s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('|'), 'y')
      : null;
    this.charsmap = normalizer.precompiledCharsmap ? new PrecompiledCharsMap(normalizer.precompiledCharsmap, file, 'normalizer_spec.precompiled_charsmap') : null;
    if (trainer.byteFallback) {
      this.byteIds = new Int32Array(256);
      for (let b = 0; b < 256; b++) {
        const id = this.pieceToId.get(byteFallbackToken(b));
        if (id === undefined || pieces[id].type !== PieceType.BYTE) throw new TokenizerFormatError(file, 'pieces', `has byte_fallback but no byte piece ${byteFallbackToken(b)}`);
        this.byteIds[b] = id;
      }
    } else this.byteIds = null;
  }

  static fromFile(path: string): SentencePieceTokenizer {
    return new SentencePieceTokenizer(parseModelProto(nodeFs('SentencePieceTokenizer.fromFile').readFileSync(path), path), path);
  }

  /** sentencepiece's Normalizer::Normalize: returns the normalized text (▁ for spaces). */
  normalize(text: string): string {
    const { addDummyPrefix, removeExtraWhitespaces } = this.proto.normalizer;
    const suffix = this.proto.trainer.treatWhitespaceAsSuffix;
    const bytes = utf8Encoder.encode(text);
    const out: string[] = [];
    const prefix = (pos: number): [string, number] => {
      if (this.userDefinedRe) {
        // Match user-defined symbols on the text (they are never normalized).
        const s = dec.decode(bytes.subarray(pos, Math.min(bytes.length, pos + 256)));
        this.userDefinedRe.lastIndex = 0;
        const m = this.userDefinedRe.exec(s);
        if (m) return [m[0], utf8Encoder.encode(m[0]).length];
      }
      const [rep, n] = this.charsmap ? this.charsmap.normalizePrefix(bytes, pos) : charAt(bytes, pos);
      return [dec.decode(rep), n];
    };
    let pos = 0;
    if (removeExtraWhitespaces) {
      while (pos < bytes.length) {
        const [s, n] = prefix(pos);
        if (s !== ' ') break;
        pos += n;
      }
    }
    if (pos >= bytes.length) return '';
    if (!suffix && addDummyPrefix) out.push(SPACE);
    let prevSpace = removeExtraWhitespaces;
    while (pos < bytes.length) {
      let [s, n] = prefix(pos);
      while (prevSpace && s.startsWith(' ')) s = s.slice(1);
      if (s !== '') {
        out.push(s.replaceAll(' ', SPACE));
        prevSpace = s.endsWith(' ');
      }
      pos += n;
      if (!removeExtraWhitespaces) prevSpace = false;
    }
    let res = out.join('');
    if (removeExtraWhitespaces) while (res.endsWith(SPACE)) res = res.slice(0, -1);
    if (suffix && addDummyPrefix) res += SPACE;
    return res;
  }

  /** The pieces of normalized text by sentencepiece's BPE (before byte fallback). */
  private bpe(normalized: string): string[] {
    const pieces = this.proto.pieces;
    // Initial symbols: user-defined symbols whole (frozen), else single characters.
    const sym: string[] = [];
    const frozen: boolean[] = [];
    for (let i = 0; i < normalized.length; ) {
      let m: RegExpExecArray | null = null;
      if (this.userDefinedRe) {
        this.userDefinedRe.lastIndex = i;
        m = this.userDefinedRe.exec(normalized);
      }
      if (m) {
        sym.push(m[0]);
        frozen.push(true);
        i += m[0].length;
      } else {
        const cp = normalized.codePointAt(i)!;
        const ch = String.fromCodePoint(cp);
        sym.push(ch);
        frozen.push(false);
        i += ch.length;
      }
    }
    const n = sym.length;
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    // Max-heap on (score, -left).
    type Pair = { left: number; right: number; score: number; text: string };
    const heap = new MaxHeap<Pair>((a, b) => a.score > b.score || (a.score === b.score && a.left < b.left));
    const push = (p: Pair) => heap.push(p);
    const revMerge = new Map<string, [string, string]>();
    const maybeAdd = (left: number, right: number) => {
      if (left < 0 || right < 0 || frozen[left] || frozen[right]) return;
      const text = sym[left] + sym[right];
      const id = this.pieceToId.get(text);
      if (id === undefined) return;
      const t = pieces[id].type;
      if (t !== PieceType.NORMAL && t !== PieceType.USER_DEFINED && t !== PieceType.UNUSED) return;
      push({ left, right, score: pieces[id].score, text });
      if (t === PieceType.UNUSED) revMerge.set(text, [sym[left], sym[right]]);
    };
    for (let i = 1; i < n; i++) maybeAdd(i - 1, i);
    while (heap.size > 0) {
      const top = heap.pop()!;
      if (sym[top.left] === '' || sym[top.right] === '' || sym[top.left] + sym[top.right] !== top.text || next[top.left] !== top.right) continue;
      sym[top.left] = top.text;
      next[top.left] = next[top.right];
      if (next[top.right] >= 0) prev[next[top.right]] = top.left;
      sym[top.right] = '';
      maybeAdd(prev[top.left], top.left);
      maybeAdd(top.left, next[top.left]);
    }
    const out: string[] = [];
    const resegment = (w: string) => {
      const id = this.pieceToId.get(w);
      const rm = revMerge.get(w);
      if (id !== undefined && pieces[id].type === PieceType.UNUSED && rm) {
        resegment(rm[0]);
        resegment(rm[1]);
      } else out.push(w);
    };
    for (let i = n > 0 ? 0 : -1; i >= 0; i = next[i]) resegment(sym[i]);
    return out;
  }

  private pieceIds(piece: string, out: number[]): void {
    const id = this.pieceToId.get(piece);
    const t = id === undefined ? PieceType.UNKNOWN : this.proto.pieces[id].type;
    // Control and byte pieces cannot come from text.
    if (id !== undefined && t !== PieceType.CONTROL && t !== PieceType.BYTE && t !== PieceType.UNKNOWN) {
      out.push(id);
      return;
    }
    if (this.byteIds) for (const b of utf8Encoder.encode(piece)) out.push(this.byteIds[b]);
    else out.push(this.unkId!);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (opts.bos) out.push(this.require(this.bosId, 'bos_id'));
    // Control tokens written in the text ("<s>", "</s>") are recognised when specials is on; the
    // sentencepiece library itself never does this, so the text between them is encoded alone.
    const specials = opts.specials === false ? [] : [...this.specialTokens.keys()].filter((s) => s !== this.proto.pieces[this.unkId!].piece);
    for (const part of splitOnSpecials(text, specials)) {
      if ('token' in part) out.push(this.specialTokens.get(part.token)!);
      else {
        // Without byte fallback, a run of unknown pieces becomes one unk (as sentencepiece does).
        let prevUnk = false;
        for (const p of this.bpe(this.normalize(part.text))) {
          const before = out.length;
          this.pieceIds(p, out);
          const isUnk = out.length === before + 1 && out[before] === this.unkId;
          if (isUnk && prevUnk) out.pop();
          prevUnk = isUnk;
        }
      }
    }
    if (opts.eos) out.push(this.require(this.eosId, 'eos_id'));
    return out;
  }

  /** sentencepiece's DecodeIds: control pieces vanish, byte pieces join into UTF-8, ▁ → space,
   *  and the dummy-prefix space of the first piece is dropped. */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const pieces = this.proto.pieces;
    let text = '';
    let bytes: number[] = [];
    const { addDummyPrefix, removeExtraWhitespaces } = this.proto.normalizer;
    const suffix = this.proto.trainer.treatWhitespaceAsSuffix;
    const stripFirst = !suffix && (addDummyPrefix || removeExtraWhitespaces);
    let atStart = true;
    const flushBytes = () => {
      if (bytes.length === 0) return;
      text += decodeBytesLikeSentencePiece(bytes);
      bytes = [];
    };
    for (const id of ids) {
      checkId(id, this.vocabSize);
      const p = pieces[id];
      // sentencepiece decodes control pieces (<s>, </s>) to nothing, whatever skipSpecial says.
      if (p.type === PieceType.CONTROL) continue;
      // Only the first non-control piece loses its dummy-prefix space.
      const first = atStart;
      atStart = false;
      if (p.type === PieceType.BYTE) {
        bytes.push(byteFallbackValue(p.piece));
        continue;
      }
      flushBytes();
      if (p.type === PieceType.UNKNOWN) {
        if (!opts.skipSpecial) text += this.proto.trainer.unkSurface;
        continue;
      }
      let s = p.piece;
      if (first && stripFirst && s.startsWith(SPACE)) s = s.slice(1);
      text += s.replaceAll(SPACE, ' ');
    }
    flushBytes();
    if (suffix && addDummyPrefix && text.endsWith(' ')) text = text.slice(0, -1);
    return text;
  }

  decodeStream(opts: DecodeOptions = {}): StreamDecoder {
    return new StreamDecoder((ids) => this.decode(ids, opts));
  }

  idToToken(id: number): string | undefined {
    return this.proto.pieces[id]?.piece;
  }

  tokenToId(token: string): number | undefined {
    return this.pieceToId.get(token);
  }

  /** The piece's score (for BPE models, the merge priority). */
  score(id: number): number {
    return this.proto.pieces[id]?.score ?? 0;
  }

  private require(id: number | null, field: string): number {
    if (id === null) throw new TokenizerError(`${this.file}: trainer_spec.${field} is not set, so the model has no such token`);
    return id;
  }
}

/** UTF-8 bytes to text, each malformed byte becoming one U+FFFD (as sentencepiece does). */
function decodeBytesLikeSentencePiece(bytes: number[]): string {
  const u8 = new Uint8Array(bytes);
  let s = '';
  for (let pos = 0; pos < u8.length; ) {
    const [rep, n] = charAt(u8, pos);
    s += dec.decode(rep);
    pos += n;
  }
  return s;
}
