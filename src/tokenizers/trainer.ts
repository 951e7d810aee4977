// Byte-level BPE training (GPT-2 / LLaMA-3 style): pre-tokenize with a Unicode-aware regex,
// count words, then repeatedly merge the most frequent adjacent pair (ties: the smaller pair of
// ids, as HF's trainer). Pair counts are updated incrementally for the words that hold the pair,
// with a lazy max-heap. The result is an HFTokenizer whose tokenizer.json HF tokenizers and
// transformers.js load.
import { BYTE_TO_CHAR, GPT2_PATTERN, LLAMA3_PATTERN, translateRegex } from './bytelevel.js';
import { HFTokenizer, addedTokenJson } from './hf.js';
import { splitOnSpecials, TokenizerError, utf8Encoder } from './tokenizer.js';

export interface TrainBPEOptions {
  /** Target vocabulary size, including the 256 byte tokens and the special tokens. */
  vocabSize: number;
  /** 'gpt2' (default), 'llama3', or a regex in tokenizer.json (Oniguruma) syntax. */
  pattern?: 'gpt2' | 'llama3' | string;
  /** Added as special tokens with the first ids, e.g. ['<|endoftext|>']; never learnt from. */
  specialTokens?: string[];
  /** Pairs seen fewer times than this are not merged (default 2). */
  minFrequency?: number;
  /** Called every 500 merges. */
  onProgress?: (merges: number, total: number) => void;
}

const M = 1 << 21; // pair key = a * M + b (ids < 2M)
/** Words longer than this (UTF-16 units) are counted in pieces of this length. */
const MAX_WORD = 256;

export function trainByteLevelBPE(texts: Iterable<string> | string, opts: TrainBPEOptions): HFTokenizer {
  const specials = opts.specialTokens ?? [];
  const minFreq = opts.minFrequency ?? 2;
  const nBase = specials.length + 256;
  if (!Number.isInteger(opts.vocabSize) || opts.vocabSize < nBase) {
    throw new TokenizerError(`trainByteLevelBPE: vocabSize ${opts.vocabSize} is smaller than 256 bytes + ${specials.length} special tokens`);
  }
  if (opts.vocabSize >= M) throw new TokenizerError(`trainByteLevelBPE: vocabSize ${opts.vocabSize} is too large (max ${M - 1})`);
  const patternSrc = opts.pattern === undefined || opts.pattern === 'gpt2' ? GPT2_PATTERN : opts.pattern === 'llama3' ? LLAMA3_PATTERN : opts.pattern;
  const re = translateRegex(patternSrc);

  // 1. Word counts.
  const wordCounts = new Map<string, number>();
  for (const text of typeof texts === 'string' ? [texts] : texts) {
    for (const part of splitOnSpecials(text, specials)) {
      if (!('text' in part)) continue;
      re.lastIndex = 0;
      for (const m of part.text.matchAll(re)) {
        const w = m[0];
        if (w.length <= MAX_WORD) {
          if (w.length > 0) wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
          continue;
        }
        // A very long "word" (a run of letters, digits or spaces with no break) is counted in
        // pieces: merging it whole costs its length at every merge that touches it.
        for (let i = 0; i < w.length; ) {
          let e = Math.min(w.length, i + MAX_WORD);
          if (e < w.length && (w.charCodeAt(e - 1) & 0xfc00) === 0xd800) e--; // keep a surrogate pair whole
          const piece = w.slice(i, e);
          wordCounts.set(piece, (wordCounts.get(piece) ?? 0) + 1);
          i = e;
        }
      }
    }
  }

  // 2. Words as byte ids (id = specials.length + byte).
  const tokStr: string[] = [...specials, ...BYTE_TO_CHAR];
  const words: Int32Array[] = [];
  const counts: number[] = [];
  const lens: number[] = [];
  for (const [w, c] of wordCounts) {
    const bytes = utf8Encoder.encode(w);
    if (bytes.length < 2) continue;
    words.push(Int32Array.from(bytes, (b) => b + specials.length));
    lens.push(bytes.length);
    counts.push(c);
  }
  wordCounts.clear();

  // 3. Initial pair counts and where they occur.
  const pairCount = new Map<number, number>();
  // where: the words holding each pair, in increasing order (a word is listed once per pair:
  // words are visited in order, so a repeat is always the last entry).
  const where = new Map<number, number[]>();
  const addWhere = (k: number, wi: number) => {
    const s = where.get(k);
    if (!s) where.set(k, [wi]);
    else if (s[s.length - 1] !== wi) s.push(wi);
  };
  for (let wi = 0; wi < words.length; wi++) {
    const w = words[wi];
    const c = counts[wi];
    for (let i = 0; i + 1 < lens[wi]; i++) {
      const k = w[i] * M + w[i + 1];
      pairCount.set(k, (pairCount.get(k) ?? 0) + c);
      addWhere(k, wi);
    }
  }
  const heap = new PairHeap();
  for (const [k, c] of pairCount) heap.push(c, k);

  // 4. Merge loop.
  const merges: Array<[string, string]> = [];
  const total = opts.vocabSize - nBase;
  const touched = new Set<number>();
  const addPair = (pk: number, d: number) => pairCount.set(pk, (pairCount.get(pk) ?? 0) + d);
  const addNew = (pk: number, d: number, wi: number) => {
    addPair(pk, d);
    touched.add(pk);
    addWhere(pk, wi);
  };
  while (merges.length < total && heap.size > 0) {
    const [c, k] = heap.pop();
    const cur = pairCount.get(k) ?? 0;
    if (cur !== c) {
      if (cur > 0) heap.push(cur, k);
      continue;
    }
    if (c < minFreq) break;
    const a = Math.floor(k / M);
    const b = k % M;
    const newId = tokStr.length;
    tokStr.push(tokStr[a] + tokStr[b]);
    merges.push([tokStr[a], tokStr[b]]);
    touched.clear();
    const ws = where.get(k)!;
    where.delete(k);
    for (const wi of ws) {
      const w = words[wi];
      const n = lens[wi];
      const wc = counts[wi];
      // Merge left to right, updating only the pairs next to each merge (HF's Word::merge):
      // (left, a) → (left, new) and (b, right) → (new, right).
      let j = 0;
      let merged = false;
      for (let i = 0; i < n; i++) {
        if (i + 1 < n && w[i] === a && w[i + 1] === b) {
          merged = true;
          if (j > 0) {
            const left = w[j - 1];
            addPair(left * M + a, -wc);
            addNew(left * M + newId, wc, wi);
          }
          if (i + 2 < n) {
            const right = w[i + 2];
            addPair(b * M + right, -wc);
            addNew(newId * M + right, wc, wi);
          }
          w[j++] = newId;
          i++;
        } else w[j++] = w[i];
      }
      if (merged) lens[wi] = j;
    }
    pairCount.delete(k);
    for (const pk of touched) heap.push(pairCount.get(pk)!, pk);
    if (opts.onProgress && merges.length % 500 === 0) opts.onProgress(merges.length, total);
  }

  // 5. tokenizer.json.
  const vocab: Record<string, number> = {};
  tokStr.forEach((t, i) => (vocab[t] = i));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const preTokenizer =
    patternSrc === GPT2_PATTERN
      ? byteLevel
      : {
          type: 'Sequence',
          pretokenizers: [
            { type: 'Split', pattern: { Regex: patternSrc }, behavior: 'Isolated', invert: false },
            { ...byteLevel, use_regex: false },
          ],
        };
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content, id) => addedTokenJson(id, content)),
    normalizer: null,
    pre_tokenizer: preTokenizer,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
  return new HFTokenizer(json, 'trained tokenizer.json');
}

/** Max-heap of (count, pair key); ties: the smaller key first. */
class PairHeap {
  private c: number[] = [];
  private k: number[] = [];
  get size(): number {
    return this.c.length;
  }
  private above(i: number, j: number): boolean {
    return this.c[i] > this.c[j] || (this.c[i] === this.c[j] && this.k[i] < this.k[j]);
  }
  private swap(i: number, j: number): void {
    const tc = this.c[i];
    this.c[i] = this.c[j];
    this.c[j] = tc;
    const tk = this.k[i];
    this.k[i] = this.k[j];
    this.k[j] = tk;
  }
  push(count: number, key: number): void {
    this.c.push(count);
    this.k.push(key);
    for (let i = this.c.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  pop(): [number, number] {
    const top: [number, number] = [this.c[0], this.k[0]];
    this.swap(0, this.c.length - 1);
    this.c.pop();
    this.k.pop();
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      let m = i;
      if (l < this.c.length && this.above(l, m)) m = l;
      if (l + 1 < this.c.length && this.above(l + 1, m)) m = l + 1;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
    return top;
  }
}
