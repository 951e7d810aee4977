// Tokenizers from one file format to another, for `tslm convert`: a tokenizer as GGUF stores it
// (tokenizer.ggml.*) from a tokenizer.json, a SentencePiece model or a llama2.c tokenizer.bin,
// and back: a tokenizer.json or a tokenizer.bin from a GGUF's vocabulary.
//
// Two families exist and neither turns into the other:
// - byte-level BPE (GPT-2 style: tokens spelled in ByteLevel's byte alphabet, merges, a
//   pre-tokenising regex) is GGUF's "gpt2" model; the regex is named by tokenizer.ggml.pre
//   ("gpt-2" or "llama-bpe" here, as llama.cpp names them);
// - SentencePiece-style BPE by scores (▁ for spaces, <0xXX> byte pieces) is GGUF's "llama"
//   model, a llama2.c tokenizer.bin, and as a tokenizer.json a BPE model with byte_fallback whose
//   merges are ranked by the merged piece's score (as transformers' LlamaConverter writes it).
import { HFTokenizer, addedTokenJson } from '../tokenizers/hf.js';
import type { TokenizerConfig, AddedToken } from '../tokenizers/hf.js';
import { Llama2cTokenizer } from '../tokenizers/llama2c.js';
import { SentencePieceTokenizer } from '../tokenizers/sentencepiece.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { GPT2_PATTERN, LLAMA3_PATTERN } from '../tokenizers/bytelevel.js';
import { GgufTokenType, definedFields } from './gguf_arch.js';
import type { GgufTokenizer } from './gguf_arch.js';
import { IoError } from './errors.js';

const SPACE = '\u2581';
const BYTE_PIECE = /^<0x[0-9A-F]{2}>$/;

/** What a tokenizer.json / tokenizer_config.json adds beside the vocabulary. */
export interface TokenizerExtras {
  /** tokenizer_config.json's chat_template. */
  chatTemplate?: string;
  /** Whether the model's prompts start with BOS (tokenizer_config.json's add_bos_token). */
  addBos?: boolean;
}

/** GGUF's pre-tokenizer names for the byte-level patterns we know, as llama.cpp spells them. */
const PRE_BY_PATTERN: ReadonlyMap<string, string> = new Map([[GPT2_PATTERN, 'gpt-2'], [LLAMA3_PATTERN, 'llama-bpe']]);
const PATTERN_BY_PRE: ReadonlyMap<string, string> = new Map([['gpt-2', GPT2_PATTERN], ['gpt2', GPT2_PATTERN], ['llama-bpe', LLAMA3_PATTERN], ['llama3', LLAMA3_PATTERN]]);

/** The pre-tokenising regex of a byte-level tokenizer.json, or null when it is not one we can name in GGUF. */
function byteLevelPattern(json: Record<string, unknown>): string | null {
  const pre = json.pre_tokenizer as Record<string, unknown> | null | undefined;
  if (!pre) return null;
  if (pre.type === 'ByteLevel') return pre.use_regex === false || pre.add_prefix_space === true ? null : GPT2_PATTERN;
  if (pre.type !== 'Sequence' || !Array.isArray(pre.pretokenizers) || pre.pretokenizers.length !== 2) return null;
  const [split, bl] = pre.pretokenizers as Record<string, unknown>[];
  const regex = (split?.pattern as Record<string, unknown> | undefined)?.Regex;
  if (split?.type !== 'Split' || typeof regex !== 'string' || split.behavior !== 'Isolated' || split.invert === true) return null;
  if (bl?.type !== 'ByteLevel' || bl.use_regex !== false || bl.add_prefix_space === true) return null;
  return regex;
}

/**
 * The tokenizer in GGUF's terms (tokenizer.ggml.*): a byte-level tokenizer.json becomes model
 * "gpt2" (tokens, merges, types, pre); a SentencePiece model or a llama2.c tokenizer.bin model
 * "llama" (pieces with ▁, scores, types). `file` names the tokenizer in errors.
 */
export function ggufTokenizerOf(tok: Tokenizer, file: string, extras: TokenizerExtras = {}): GgufTokenizer {
  const common = { bosId: tok.bosId ?? undefined, eosId: tok.eosId ?? undefined, chatTemplate: extras.chatTemplate };
  if (tok instanceof HFTokenizer) {
    const json = tok.toJSON();
    const model = json.model as Record<string, unknown>;
    if (model.byte_fallback === true || json.normalizer) {
      throw new IoError(file, 'is a SentencePiece-style tokenizer.json (byte_fallback or a normalizer): convert from its tokenizer.model instead (GGUF stores that kind as scores, which a tokenizer.json does not hold)');
    }
    const pattern = byteLevelPattern(json);
    const pre = pattern === null ? undefined : PRE_BY_PATTERN.get(pattern);
    if (pre === undefined) {
      throw new IoError(file, `pre_tokenizer ${JSON.stringify(json.pre_tokenizer)} is not one GGUF names (byte-level with GPT-2's or LLaMA-3's regex)`);
    }
    const tokens: string[] = [];
    const types: number[] = [];
    const addedById = new Map(tok.addedTokens.map((a) => [a.id, a]));
    for (let id = 0; id < tok.vocabSize; id++) {
      const t = tok.idToToken(id);
      if (t === undefined) throw new IoError(file, `has no token with id ${id} (GGUF needs ids 0…${tok.vocabSize - 1} without gaps)`);
      tokens.push(t);
      const added = addedById.get(id);
      types.push(added ? (added.special ? GgufTokenType.CONTROL : GgufTokenType.USER_DEFINED) : GgufTokenType.NORMAL);
    }
    const merges = ((model.merges as unknown[]) ?? []).map((m) => (typeof m === 'string' ? m : (m as string[]).join(' ')));
    return definedFields({ model: 'gpt2', pre, tokens, tokenTypes: Int32Array.from(types), merges, ...common, addBos: extras.addBos ?? false, addEos: false });
  }
  if (tok instanceof SentencePieceTokenizer) {
    const p = tok.proto.pieces;
    return definedFields({
      model: 'llama', pre: 'default', tokens: p.map((x) => x.piece), scores: Float32Array.from(p, (x) => x.score),
      // sentencepiece's piece types are numbered as llama.cpp's token types.
      tokenTypes: Int32Array.from(p, (x) => x.type as number), unkId: tok.unkId ?? undefined, ...common, addBos: extras.addBos ?? true, addEos: false,
    });
  }
  if (tok instanceof Llama2cTokenizer) {
    // llama2.c's export spells BOS/EOS "\n<s>\n" / "\n</s>\n" and ▁ as a space.
    const tokens = tok.vocab.map((v, i) => (i === tok.bosId ? '<s>' : i === tok.eosId ? '</s>' : v.replaceAll(' ', SPACE)));
    const types = tokens.map((t, i) => (i === 0 ? GgufTokenType.UNKNOWN : i === tok.bosId || i === tok.eosId ? GgufTokenType.CONTROL : BYTE_PIECE.test(t) ? GgufTokenType.BYTE : GgufTokenType.NORMAL));
    return definedFields({ model: 'llama', pre: 'default', tokens, scores: Float32Array.from(tok.scores), tokenTypes: Int32Array.from(types), unkId: 0, ...common, addBos: extras.addBos ?? true, addEos: false });
  }
  throw new IoError(file, `a ${(tok as Tokenizer).kind} tokenizer cannot be written to GGUF`);
}

/** The token types of a GGUF vocabulary (NORMAL where the file has none). */
function typesOf(t: GgufTokenizer): ArrayLike<number> {
  return t.tokenTypes ?? new Int32Array(t.tokens.length).fill(GgufTokenType.NORMAL);
}

/** tokenizer.json's added_tokens for a GGUF vocabulary's control (special) and user-defined tokens. */
function addedTokens(t: GgufTokenizer, types: ArrayLike<number>): AddedToken[] {
  const out: AddedToken[] = [];
  t.tokens.forEach((content, id) => {
    const ty = types[id];
    if (ty === GgufTokenType.CONTROL || ty === GgufTokenType.USER_DEFINED || (ty === GgufTokenType.UNKNOWN && t.model === 'llama')) {
      out.push(addedTokenJson(id, content, { normalized: ty === GgufTokenType.USER_DEFINED && t.model === 'llama', special: ty !== GgufTokenType.USER_DEFINED }));
    }
  });
  return out;
}

/**
 * A tokenizer.json object for a GGUF vocabulary: "gpt2" as a byte-level BPE (the regex its pre
 * names), "llama" as a BPE with byte_fallback whose merges are every split of a piece into two
 * pieces, ranked by the merged piece's score (then the left and right lengths), so that merging
 * the lowest rank is SentencePiece's "merge the best-scoring pair".
 */
export function tokenizerJsonFromGguf(t: GgufTokenizer, file: string): Record<string, unknown> {
  const types = typesOf(t);
  const vocab: Record<string, number> = {};
  t.tokens.forEach((tok, id) => {
    if (!Object.prototype.hasOwnProperty.call(vocab, tok)) vocab[tok] = id;
  });
  if (t.model === 'gpt2') {
    const pattern = PATTERN_BY_PRE.get(t.pre ?? 'gpt-2');
    if (pattern === undefined) throw new IoError(file, `tokenizer.ggml.pre ${JSON.stringify(t.pre)} is not a pre-tokenizer tslm knows (gpt-2, llama-bpe)`);
    if (!t.merges) throw new IoError(file, 'tokenizer.ggml.merges is missing (a gpt2 tokenizer needs its merges)');
    const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
    const preTokenizer = pattern === GPT2_PATTERN ? byteLevel
      : { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false }, { ...byteLevel, use_regex: false }] };
    return {
      version: '1.0', truncation: null, padding: null, added_tokens: addedTokens(t, types), normalizer: null, pre_tokenizer: preTokenizer,
      post_processor: { ...byteLevel, trim_offsets: false }, decoder: byteLevel,
      model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: t.merges },
    };
  }
  if (t.model === 'llama') {
    if (!t.scores) throw new IoError(file, 'tokenizer.ggml.scores is missing (a llama tokenizer merges by score)');
    const scores = t.scores;
    // Every piece that can be merged: a NORMAL piece of at least two characters split into two pieces of the vocabulary.
    const merges: Array<{ l: string; r: string; score: number }> = [];
    t.tokens.forEach((piece, id) => {
      if (types[id] !== GgufTokenType.NORMAL && types[id] !== GgufTokenType.USER_DEFINED) return;
      if (vocab[piece] !== id) return;
      const chars = Array.from(piece);
      for (let i = 1; i < chars.length; i++) {
        const l = chars.slice(0, i).join('');
        const r = chars.slice(i).join('');
        const li = vocab[l], ri = vocab[r];
        if (li === undefined || ri === undefined) continue;
        if (!isMergeable(types[li]) || !isMergeable(types[ri])) continue;
        merges.push({ l, r, score: scores[id] });
      }
    });
    // Best score first; ties by the longer left, then the longer right piece (transformers' order).
    merges.sort((a, b) => b.score - a.score || Array.from(b.l).length - Array.from(a.l).length || Array.from(b.r).length - Array.from(a.r).length);
    const unk = t.unkId !== undefined ? t.tokens[t.unkId] : null;
    return {
      version: '1.0', truncation: null, padding: null, added_tokens: addedTokens(t, types),
      normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: SPACE }, { type: 'Replace', pattern: { String: ' ' }, content: SPACE }] },
      pre_tokenizer: null, post_processor: null,
      decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: SPACE }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
      model: { type: 'BPE', dropout: null, unk_token: unk, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges: merges.map((m) => [m.l, m.r]) },
    };
  }
  throw new IoError(file, `tokenizer.ggml.model ${JSON.stringify(t.model)} cannot be written as a tokenizer.json (tslm converts gpt2 and llama vocabularies)`);
}

function isMergeable(type: number): boolean {
  return type === GgufTokenType.NORMAL || type === GgufTokenType.USER_DEFINED;
}

/** tokenizer_config.json for a GGUF vocabulary: the BOS/EOS/UNK tokens, add_bos_token and the chat template. */
export function tokenizerConfigFromGguf(t: GgufTokenizer): Record<string, unknown> {
  const name = (id: number | undefined) => (id === undefined ? undefined : t.tokens[id]);
  return definedFields({
    bos_token: name(t.bosId), eos_token: name(t.eosId), unk_token: name(t.unkId), pad_token: name(t.padId),
    add_bos_token: t.addBos ?? (t.model === 'llama'), add_eos_token: t.addEos ?? false, chat_template: t.chatTemplate,
    tokenizer_class: t.model === 'llama' ? 'LlamaTokenizerFast' : 'PreTrainedTokenizerFast',
  });
}

/** The tokenizer tslm uses for a GGUF vocabulary: llama as llama2.c's tokenizer (run.c's encoder), gpt2 as a tokenizer.json. */
export function tokenizerFromGguf(t: GgufTokenizer, file: string): Tokenizer {
  if (t.model === 'llama') {
    if (!t.scores) throw new IoError(file, 'tokenizer.ggml.scores is missing (a llama tokenizer merges by score)');
    const vocab = t.tokens.map((s) => s.replace(/\u2581/g, ' '));
    return new Llama2cTokenizer(vocab, Float32Array.from(t.scores), undefined, file);
  }
  return new HFTokenizer(tokenizerJsonFromGguf(t, file), `${file} (vocabulary)`, tokenizerConfigFromGguf(t) as TokenizerConfig);
}

/** A llama2.c tokenizer.bin for a SentencePiece-style tokenizer (llama2.c's tokenizer.py export); byte-level BPE has no such form. */
export function llama2cTokenizerOf(tok: Tokenizer, file: string): Llama2cTokenizer {
  if (tok instanceof Llama2cTokenizer) return tok;
  if (tok instanceof SentencePieceTokenizer) return Llama2cTokenizer.fromSentencePiece(tok);
  throw new IoError(file, `a ${tok.kind === 'hf' ? 'byte-level BPE (tokenizer.json)' : tok.kind} tokenizer has no llama2.c tokenizer.bin form (llama2.c merges SentencePiece pieces by score)`);
}
