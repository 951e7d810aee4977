// HF tokenizer.json (model type BPE): added tokens → normalizer → pre-tokenizer → BPE → decoder.
// BOS/EOS come from the options of encode(), not from the post-processor; which ids they are is
// read from tokenizer_config.json when given, else from the post-processor's template, else from
// the usual names. Node-free: build it from the parsed JSON (or its text); fromFile and save
// touch files (Node only).
import { BPEModel } from './bpe.js';
import { buildDecoder, buildNormalizer, buildPreTokenizer, type BuiltPreTokenizer, type Decoder, type Normalizer } from './hf_components.js';
import {
  checkId,
  escapeRegExp,
  nodeFs,
  StreamDecoder,
  TokenizerError,
  TokenizerFormatError,
  type DecodeOptions,
  type EncodeOptions,
  type Tokenizer,
} from './tokenizer.js';
import { describeValue, MAX_JSON_DEPTH, MAX_VOCAB, parseJson, quoteShort } from './guard.js';

export interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
  single_word?: boolean;
}

/** The fields of tokenizer_config.json that we use. */
export interface TokenizerConfig {
  bos_token?: string | { content: string } | null;
  eos_token?: string | { content: string } | null;
  unk_token?: string | { content: string } | null;
  pad_token?: string | { content: string } | null;
  chat_template?: string | Array<{ name: string; template: string }> | null;
  add_bos_token?: boolean;
  add_eos_token?: boolean;
  [k: string]: unknown;
}

/** An added_tokens entry of a tokenizer.json as HF writes one (not stripped, not a single word). */
export function addedTokenJson(id: number, content: string, o: { special?: boolean; normalized?: boolean } = {}): AddedToken {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: o.normalized ?? false, special: o.special ?? true };
}

export function tokenContent(t: TokenizerConfig['bos_token']): string | null {
  if (t == null) return null;
  if (typeof t === 'string') return t;
  return typeof t === 'object' && typeof t.content === 'string' ? t.content : null;
}

export class HFTokenizer implements Tokenizer {
  readonly kind = 'hf' as const;
  readonly model: BPEModel;
  readonly addedTokens: AddedToken[];
  readonly specialTokens: Map<string, number>;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly unkId: number | null;
  readonly vocabSize: number;
  private readonly normalizer: Normalizer | null;
  private readonly preTokenizer: BuiltPreTokenizer | null;
  private readonly decoder: Decoder | null;
  private readonly addedById = new Map<number, AddedToken>();
  private readonly addedByContent = new Map<string, AddedToken>();
  private readonly allAddedRe: RegExp | null;
  private readonly nonSpecialAddedRe: RegExp | null;

  /** Builds from a parsed tokenizer.json; `file` names it in errors. */
  constructor(readonly json: Record<string, unknown>, readonly file = 'tokenizer.json', readonly config: TokenizerConfig | null = null) {
    if (json === null || typeof json !== 'object') throw new TokenizerFormatError(file, '(root)', 'must be a JSON object');
    if (Array.isArray(json)) throw new TokenizerFormatError(file, '(root)', 'must be a JSON object');
    const m = json.model as Record<string, unknown> | undefined;
    if (!m || typeof m !== 'object') throw new TokenizerFormatError(file, 'model', 'is missing');
    const type = m.type ?? (m.merges !== undefined ? 'BPE' : undefined);
    if (type !== 'BPE') throw new TokenizerFormatError(file, 'model.type', `${typeof type === 'string' ? quoteShort(type) : describeValue(type)} is not supported (only "BPE")`);
    if (!m.vocab || typeof m.vocab !== 'object' || Array.isArray(m.vocab)) throw new TokenizerFormatError(file, 'model.vocab', 'must be an object of token → id');
    const vocab = new Map<string, number>();
    const vocabEntries = Object.entries(m.vocab as Record<string, unknown>);
    if (json.added_tokens !== undefined && !Array.isArray(json.added_tokens)) throw new TokenizerFormatError(file, 'added_tokens', 'must be an array');
    const addedJson = (json.added_tokens as unknown[] | undefined) ?? [];
    // Ids must be dense enough: tables are sized by the largest id, so one id far beyond the
    // number of tokens would allocate (and fail) far from here.
    const nTokens = vocabEntries.length + addedJson.length;
    const idLimit = Math.min(MAX_VOCAB, 2 * nTokens + 1024);
    const checkTokenId = (field: string, id: unknown): number => {
      if (!Number.isInteger(id) || (id as number) < 0) throw new TokenizerFormatError(file, field, `must be a non-negative integer id, got ${describeValue(id)}`);
      if ((id as number) >= idLimit) throw new TokenizerFormatError(file, field, `id ${id} is far beyond the ${nTokens} tokens of the file (expected ids below ${idLimit})`);
      return id as number;
    };
    const byId = new Map<number, string>();
    for (const [t, id] of vocabEntries) {
      const field = `model.vocab[${quoteShort(t)}]`;
      const v = checkTokenId(field, id);
      const other = byId.get(v);
      if (other !== undefined) throw new TokenizerFormatError(file, field, `has id ${v}, which ${quoteShort(other)} already has`);
      byId.set(v, t);
      vocab.set(t, v);
    }
    byId.clear();
    if (!Array.isArray(m.merges)) throw new TokenizerFormatError(file, 'model.merges', 'must be an array');
    const merges: Array<[string, string]> = (m.merges as unknown[]).map((x, i) => {
      if (typeof x === 'string') {
        const sp = x.indexOf(' ', 1);
        if (sp < 0) throw new TokenizerFormatError(file, `model.merges[${i}]`, `${quoteShort(x)} is not two tokens separated by a space`);
        return [x.slice(0, sp), x.slice(sp + 1)];
      }
      if (Array.isArray(x) && x.length === 2 && typeof x[0] === 'string' && typeof x[1] === 'string') return [x[0], x[1]];
      throw new TokenizerFormatError(file, `model.merges[${i}]`, `must be "a b" or ["a", "b"], got ${describeValue(x)}`);
    });
    for (const k of ['unk_token', 'continuing_subword_prefix', 'end_of_word_suffix'] as const) {
      if (m[k] != null && typeof m[k] !== 'string') throw new TokenizerFormatError(file, `model.${k}`, `must be a string or null, got ${describeValue(m[k])}`);
    }
    // Added tokens may also sit outside model.vocab.
    this.addedTokens = [];
    addedJson.forEach((t, i) => {
      const a = t as AddedToken;
      if (!a || typeof a !== 'object' || typeof a.content !== 'string') throw new TokenizerFormatError(file, `added_tokens[${i}]`, 'must have an integer id and a string content');
      checkTokenId(`added_tokens[${i}].id`, a.id);
      this.addedTokens.push({ ...a, special: a.special === true });
    });
    const modelVocab = new Map(vocab);
    this.model = new BPEModel(
      modelVocab,
      merges,
      {
        unkToken: (m.unk_token as string | null | undefined) ?? null,
        byteFallback: m.byte_fallback === true,
        fuseUnk: m.fuse_unk === true,
        ignoreMerges: m.ignore_merges === true,
        continuingSubwordPrefix: (m.continuing_subword_prefix as string | null | undefined) ?? null,
        endOfWordSuffix: (m.end_of_word_suffix as string | null | undefined) ?? null,
      },
      (i, why) => {
        throw new TokenizerFormatError(file, `model.merges[${i}]`, why);
      },
    );
    let size = this.model.size;
    for (const a of this.addedTokens) {
      this.addedById.set(a.id, a);
      this.addedByContent.set(a.content, a);
      size = Math.max(size, a.id + 1);
    }
    this.vocabSize = size;
    this.specialTokens = new Map(this.addedTokens.filter((a) => a.special).map((a) => [a.content, a.id]));
    try {
      this.allAddedRe = addedRegex(this.addedTokens);
      this.nonSpecialAddedRe = addedRegex(this.addedTokens.filter((a) => !a.special));
    } catch (e) {
      throw new TokenizerFormatError(file, 'added_tokens', `cannot be matched: ${this.addedTokens.length} tokens are too many or too long for one regular expression (${(e as Error).name})`);
    }
    this.normalizer = json.normalizer == null ? null : buildNormalizer(file, 'normalizer', json.normalizer);
    this.preTokenizer = json.pre_tokenizer == null ? null : buildPreTokenizer(file, 'pre_tokenizer', json.pre_tokenizer);
    this.decoder = json.decoder == null ? null : buildDecoder(file, 'decoder', json.decoder);

    const [tplBos, tplEos] = templateSpecials(json.post_processor);
    const pick = (fromConfig: string | null, fromTemplate: string | null, names: string[]): number | null => {
      for (const name of [fromConfig, fromTemplate, ...names]) {
        if (name == null) continue;
        const id = this.tokenToId(name);
        if (id !== undefined) return id;
      }
      return null;
    };
    this.bosId = pick(tokenContent(config?.bos_token), tplBos, ['<s>', '<|begin_of_text|>', '<bos>', '<|startoftext|>', '<|endoftext|>']);
    this.eosId = pick(tokenContent(config?.eos_token), tplEos, ['</s>', '<|end_of_text|>', '<eos>', '<|endoftext|>', '<|im_end|>']);
    this.unkId = pick(tokenContent(config?.unk_token), null, [(m.unk_token as string | undefined) ?? '<unk>']);
  }

  /** Builds from the text of a tokenizer.json (fetched by a page, say); `file` names it in errors. */
  static fromText(text: string, file = 'tokenizer.json', config?: TokenizerConfig | null): HFTokenizer {
    const json = parseJson(text, (d) => new TokenizerFormatError(file, '(file)', `is not valid JSON (${d})`)) as Record<string, unknown>;
    return new HFTokenizer(json, file, config ?? null);
  }

  /** Reads a tokenizer.json file (Node.js). */
  static fromFile(path: string, config?: TokenizerConfig | null): HFTokenizer {
    let text: string;
    try {
      text = nodeFs('HFTokenizer.fromFile').readFileSync(path, 'utf8');
    } catch (e) {
      if (e instanceof TokenizerError) throw e;
      throw new TokenizerFormatError(path, '(file)', `cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    return HFTokenizer.fromText(text, path, config);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (opts.bos) out.push(this.requireId(this.bosId, 'BOS'));
    const re = opts.specials === false ? this.nonSpecialAddedRe : this.allAddedRe;
    let first = true;
    for (const part of splitAdded(text, re, this.addedByContent)) {
      if (typeof part !== 'string') {
        out.push(part.id);
      } else {
        this.encodeText(part, first, out);
      }
      first = false;
    }
    if (opts.eos) out.push(this.requireId(this.eosId, 'EOS'));
    return out;
  }

  /** Normalize → pre-tokenize → BPE of a stretch of text without added tokens. */
  private encodeText(text: string, first: boolean, out: number[]): void {
    if (text === '') return;
    const normalized = this.normalizer ? this.normalizer(text) : text;
    const words = this.preTokenizer ? this.preTokenizer.run([normalized], first) : [normalized];
    for (const w of words) for (const id of this.model.tokenize(w)) out.push(id);
  }

  /** The token strings of encode(text). */
  tokenize(text: string, opts: EncodeOptions = {}): string[] {
    return this.encode(text, opts).map((id) => this.idToToken(id)!);
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const toks: string[] = [];
    for (const id of ids) {
      checkId(id, this.vocabSize);
      const added = this.addedById.get(id);
      if (added && added.special && opts.skipSpecial) continue;
      const t = added ? added.content : this.model.idToTok[id];
      if (t === undefined) continue;
      toks.push(t);
    }
    if (!this.decoder) return toks.join(' ');
    return this.decoder(toks).join('');
  }

  decodeStream(opts: DecodeOptions = {}): StreamDecoder {
    return new StreamDecoder((ids) => this.decode(ids, opts));
  }

  idToToken(id: number): string | undefined {
    return this.addedById.get(id)?.content ?? this.model.idToTok[id];
  }

  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token)?.id ?? this.model.vocab.get(token);
  }

  /** The tokenizer.json object (what was loaded, or what the trainer built). */
  toJSON(): Record<string, unknown> {
    return this.json;
  }

  /** Writes tokenizer.json (Node.js; loadable by HF tokenizers, transformers and transformers.js). */
  save(path: string): void {
    nodeFs('HFTokenizer.save').writeFileSync(path, JSON.stringify(this.json, null, 2) + '\n');
  }

  private requireId(id: number | null, what: string): number {
    if (id === null) throw new TokenizerError(`${this.file}: no ${what} token (set bos_token/eos_token in tokenizer_config.json)`);
    return id;
  }
}

function addedRegex(tokens: AddedToken[]): RegExp | null {
  const ts = tokens.filter((t) => t.content.length > 0).sort((a, b) => b.content.length - a.content.length);
  if (ts.length === 0) return null;
  const alts = ts.map((t) => `${t.lstrip ? '\\s*' : ''}${escapeRegExp(t.content)}${t.rstrip ? '\\s*' : ''}`);
  return new RegExp(alts.join('|'), 'gu');
}

/** Splits text at added tokens; strings are plain text, objects the tokens found. */
function splitAdded(text: string, re: RegExp | null, byContent: Map<string, AddedToken>): Array<string | AddedToken> {
  if (!re) return [text];
  const out: Array<string | AddedToken> = [];
  let last = 0;
  re.lastIndex = 0;
  for (const m of text.matchAll(re)) {
    if (m[0].length === 0) continue;
    const tok = byContent.get(m[0].trim()) ?? byContent.get(m[0]);
    if (!tok) continue;
    if (m.index! > last) out.push(text.slice(last, m.index!));
    out.push(tok);
    last = m.index! + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

/** The first special token before and after "$A" in a TemplateProcessing post-processor. */
function templateSpecials(pp: unknown): [string | null, string | null] {
  const find = (p: any, depth: number): any => {
    if (!p || typeof p !== 'object' || depth > MAX_JSON_DEPTH) return null;
    if (p.type === 'TemplateProcessing') return p;
    if (p.type === 'Sequence' && Array.isArray(p.processors)) {
      for (const q of p.processors) {
        const t = find(q, depth + 1);
        if (t) return t;
      }
    }
    return null;
  };
  const t = find(pp, 0);
  if (!t || !Array.isArray(t.single)) return [null, null];
  let bos: string | null = null;
  let eos: string | null = null;
  let seenSeq = false;
  for (const piece of t.single) {
    if (!piece || typeof piece !== 'object') continue;
    if (piece.Sequence) seenSeq = true;
    else if (piece.SpecialToken && typeof piece.SpecialToken.id === 'string') {
      if (!seenSeq && bos === null) bos = piece.SpecialToken.id;
      if (seenSeq && eos === null) eos = piece.SpecialToken.id;
    }
  }
  return [bos, eos];
}
