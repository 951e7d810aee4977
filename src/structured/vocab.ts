// A tokenizer's vocabulary as the bytes each token appends to the output, arranged as a flat
// token trie in depth-first order: walking it with a byte automaton skips the whole subtree of a
// dead prefix in one jump (`skip`), so a mask visits only the prefixes the constraint allows.
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { byteFallbackValue } from '../tokenizers/tokenizer.js';
import { CHAR_TO_BYTE } from '../tokenizers/bytelevel.js';
import { PlainIndex } from './plain.js';
import { TokenMatcher } from './matcher.js';
import { compileJsonSchema, FORMAT_SAMPLES } from './schema.js';

export class TokenVocab {
  /** Number of token ids (masks have this many bits; ids past it are never allowed). */
  readonly size: number;
  /** Bytes per token id; null for special/control tokens, which constraints never allow. */
  readonly bytes: (Uint8Array | null)[];
  /** End-of-sequence ids: allowed exactly when the constraint is complete. */
  readonly eosIds: number[];
  // Flat trie over token bytes (root excluded), nodes in depth-first preorder.
  readonly nodeByte: Uint8Array;
  readonly nodeDepth: Uint16Array;
  /** Index just past node i's subtree. */
  readonly nodeSkip: Int32Array;
  readonly nodeTokStart: Int32Array;
  readonly nodeTokEnd: Int32Array;
  readonly toks: Int32Array;
  readonly maxDepth: number;

  constructor(bytes: (Uint8Array | null)[], eosIds: number[]) {
    this.size = bytes.length;
    this.bytes = bytes;
    this.eosIds = eosIds.filter((e) => e >= 0 && e < bytes.length);
    const ids: number[] = [];
    let total = 0;
    for (let i = 0; i < bytes.length; i++) { const b = bytes[i]; if (b && b.length > 0) { ids.push(i); total += b.length; } }
    ids.sort((x, y) => cmpBytes(bytes[x]!, bytes[y]!) || x - y);
    const cap = total + 1;
    const nodeByte = new Uint8Array(cap), nodeDepth = new Uint16Array(cap), nodeSkip = new Int32Array(cap);
    const tokStart = new Int32Array(cap), tokEnd = new Int32Array(cap), toks = new Int32Array(ids.length);
    let n = 0, nt = 0, maxDepth = 0;
    const path: number[] = [];
    let prev: Uint8Array = new Uint8Array(0);
    for (const id of ids) {
      const w = bytes[id]!;
      let common = 0;
      while (common < prev.length && common < w.length && prev[common] === w[common]) common++;
      for (let d = prev.length; d > common; d--) nodeSkip[path[d]] = n;
      for (let d = common + 1; d <= w.length; d++) {
        nodeByte[n] = w[d - 1]; nodeDepth[n] = d; tokStart[n] = tokEnd[n] = nt; path[d] = n; n++;
      }
      const node = path[w.length];
      toks[nt++] = id;
      tokEnd[node] = nt;
      if (w.length > maxDepth) maxDepth = w.length;
      prev = w;
    }
    for (let d = prev.length; d > 0; d--) nodeSkip[path[d]] = n;
    this.nodeByte = nodeByte.slice(0, n);
    this.nodeDepth = nodeDepth.slice(0, n);
    this.nodeSkip = nodeSkip.slice(0, n);
    this.nodeTokStart = tokStart.slice(0, n);
    this.nodeTokEnd = tokEnd.slice(0, n);
    this.toks = toks;
    this.maxDepth = maxDepth;
  }

  get nodes(): number { return this.nodeByte.length; }

  /** Per-token tables of the plain-text fast path (built on first use; `fromTokenizer` builds them up front). */
  get plain(): PlainIndex { return PlainIndex.of(this); }

  /**
   * The same vocabulary with other end-of-sequence ids (a chat model's end-of-turn token, say):
   * the trie and the plain-text tables are shared, not rebuilt.
   */
  withEos(eosIds: number[]): TokenVocab {
    const v = Object.assign(Object.create(TokenVocab.prototype) as TokenVocab, this, { eosIds: eosIds.filter((e) => e >= 0 && e < this.size) });
    PlainIndex.share(this, v);
    return v;
  }

  private static cache = new WeakMap<object, TokenVocab>();

  /**
   * The vocabulary of one of our tokenizers (cached per tokenizer object), prepared: its
   * plain-text tables and the per-alphabet tables of the built-in string formats are built up
   * front (see prepareFormats), not in the first masks that need them.
   */
  static fromTokenizer(tok: Tokenizer): TokenVocab {
    let v = TokenVocab.cache.get(tok);
    if (!v) {
      v = new TokenVocab(tokenBytes(tok), tok.eosId === null ? [] : [tok.eosId]);
      v.prepareFormats();
      TokenVocab.cache.set(tok, v);
    }
    return v;
  }

  /**
   * Builds the plain-text tables and the per-alphabet tables that masks inside the built-in
   * string formats (email, uri, …) use, and keeps the latter for good: the masks along a valid
   * value of each format (FORMAT_SAMPLES) build the tables of the states a value of that format
   * passes through, which depend on the format's alphabets, not on the schema around it (the
   * tests check that masks along other values then build none).
   */
  prepareFormats(): void {
    this.plain.pinTables(() => {
      for (const [format, sample] of Object.entries(FORMAT_SAMPLES)) {
        const m = new TokenMatcher(compileJsonSchema({ type: 'string', format }), this);
        let s = m.initial;
        for (const b of enc.encode(JSON.stringify(sample))) {
          m.mask(s);
          s = m.automaton.step(s, b);
          if (s < 0) break; // (a sample the format does not accept: the tests say so)
        }
      }
    });
  }

  /** The text of a sequence of ids, from the token bytes (exactly what the constraint matched). */
  text(ids: readonly number[]): string {
    const parts: Uint8Array[] = [];
    let n = 0;
    for (const id of ids) { const b = this.bytes[id]; if (b) { parts.push(b); n += b.length; } }
    const all = new Uint8Array(n);
    let o = 0;
    for (const p of parts) { all.set(p, o); o += p.length; }
    return new TextDecoder().decode(all);
  }
}

function cmpBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

const enc = new TextEncoder();

/**
 * The bytes each token contributes. Byte-level BPE (GPT-2, LLaMA-3, Qwen): token characters map
 * back to bytes through the byte-to-unicode table. SentencePiece style (LLaMA-2, Mistral,
 * llama2.c): "▁" is a space and "<0xAB>" is the byte 0xAB. Special and control tokens: null.
 */
export function tokenBytes(tok: Tokenizer): (Uint8Array | null)[] {
  const special = new Set(tok.specialTokens.values());
  if (tok.unkId !== null) special.add(tok.unkId);
  if (tok.bosId !== null) special.add(tok.bosId);
  if (tok.eosId !== null) special.add(tok.eosId);
  const byteLevel = isByteLevel(tok);
  const out: (Uint8Array | null)[] = new Array(tok.vocabSize).fill(null);
  for (let id = 0; id < tok.vocabSize; id++) {
    if (special.has(id)) continue;
    const t = tok.idToToken(id);
    if (t === undefined || t === '') continue;
    if (byteLevel) {
      const bs: number[] = [];
      let ok = true;
      for (const ch of t) { const b = CHAR_TO_BYTE.get(ch); if (b === undefined) { ok = false; break; } bs.push(b); }
      // Added (non-special) tokens are stored as plain text.
      out[id] = ok ? Uint8Array.from(bs) : enc.encode(t);
    } else {
      const bv = byteFallbackValue(t);
      out[id] = bv >= 0 ? Uint8Array.of(bv) : enc.encode(t.replace(/\u2581/g, ' '));
    }
  }
  return out;
}

function isByteLevel(tok: Tokenizer): boolean {
  if (tok.kind !== 'hf') return false;
  const json = (tok as unknown as { json?: Record<string, unknown> }).json;
  if (json && JSON.stringify(json.decoder ?? null).includes('ByteLevel')) return true;
  if (json && JSON.stringify(json.pre_tokenizer ?? null).includes('ByteLevel')) return true;
  // Fallback: byte-level vocabularies spell a space as "Ġ".
  let g = 0, s = 0;
  for (let id = 0; id < Math.min(tok.vocabSize, 5000); id++) {
    const t = tok.idToToken(id) ?? '';
    if (t.includes('Ġ')) g++;
    if (t.includes('\u2581')) s++;
  }
  return g > s;
}
