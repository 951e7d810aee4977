// Early fusion (Chameleon): one vocabulary for text tokens and image codes, so that one
// transformer reads and writes both. The text tokenizer's ids come first, then the sentinels
// <image> and </image>, then the image tokenizer's codes; an image is <image>, its grid of codes
// row by row, </image>. A logit processor keeps sampling well-formed: inside an image span only
// codes (exactly grid × grid of them, then </image>), outside it no codes.
import type { LogitsProcessor } from '../generate/processors.js';

export class MixedVocabError extends Error {
  constructor(message: string) { super(message); this.name = 'MixedVocabError'; }
}

export class MixedVocab {
  /** Id of <image> and of </image>. */
  readonly imageStart: number;
  readonly imageEnd: number;
  /** Id of image code 0. */
  readonly codeOffset: number;
  /** The whole vocabulary: text + 2 sentinels + codes. */
  readonly size: number;

  constructor(readonly textSize: number, readonly numCodes: number, readonly gridSide: number) {
    for (const [k, v] of [['textSize', textSize], ['numCodes', numCodes], ['gridSide', gridSide]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new MixedVocabError(`${k} must be a positive integer, got ${v}`);
    }
    this.imageStart = textSize;
    this.imageEnd = textSize + 1;
    this.codeOffset = textSize + 2;
    this.size = textSize + 2 + numCodes;
  }

  /** Codes per image (gridSide²). */
  get codesPerImage(): number { return this.gridSide * this.gridSide; }

  isCode(id: number): boolean { return id >= this.codeOffset && id < this.size; }

  /** The tokens of one image: <image>, its codes (row-major), </image>. */
  imageTokens(codes: ArrayLike<number>): number[] {
    if (codes.length !== this.codesPerImage) throw new MixedVocabError(`an image is ${this.gridSide}×${this.gridSide} = ${this.codesPerImage} codes, got ${codes.length}`);
    const out = [this.imageStart];
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i];
      if (!Number.isInteger(c) || c < 0 || c >= this.numCodes) throw new MixedVocabError(`code ${c} at position ${i} is outside the codebook (0…${this.numCodes - 1})`);
      out.push(this.codeOffset + c);
    }
    out.push(this.imageEnd);
    return out;
  }

  /** The complete images of a token sequence: where each <image> is, and its codes. */
  images(ids: readonly number[]): { at: number; codes: number[] }[] {
    const out: { at: number; codes: number[] }[] = [];
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] !== this.imageStart) continue;
      const n = this.codesPerImage, end = i + 1 + n;
      if (end < ids.length && ids[end] === this.imageEnd && ids.slice(i + 1, end).every((t) => this.isCode(t))) {
        out.push({ at: i, codes: ids.slice(i + 1, end).map((t) => t - this.codeOffset) });
        i = end;
      }
    }
    return out;
  }

  /** What a streaming CLI shows for a generated token: its text, nothing inside an image span, and one [image] mark at its end. */
  shown(id: number, text: string): string {
    if (id < this.imageStart) return text;
    return id === this.imageEnd ? '[image]' : '';
  }

  /** Where a sequence stands: outside an image, or inside one with `emitted` codes so far. */
  state(ids: readonly number[]): { inImage: false } | { inImage: true; emitted: number } {
    for (let i = ids.length - 1, n = 0; i >= 0; i--, n++) {
      if (ids[i] === this.imageEnd) return { inImage: false };
      if (ids[i] === this.imageStart) return { inImage: true, emitted: n };
      if (!this.isCode(ids[i])) return { inImage: false };
    }
    return { inImage: false };
  }
}

/**
 * Keeps sampled sequences well-formed: inside an image span only image codes until the grid is
 * full, then only </image>; outside, never a code or </image> (and never <image> with
 * `images: false`, for text-only answers; with `images: 'only'`, the next token must start one).
 */
export class ImageSpanProcessor implements LogitsProcessor {
  constructor(readonly vocab: MixedVocab, readonly opts: { images?: boolean | 'only' } = {}) {}

  process(ids: readonly number[], logits: Float32Array): void {
    const v = this.vocab;
    if (logits.length < v.size) throw new MixedVocabError(`the model's ${logits.length} logits do not cover the mixed vocabulary of ${v.size}`);
    const st = v.state(ids);
    const keep = (lo: number, hi: number): void => {
      for (let i = 0; i < logits.length; i++) if (i < lo || i >= hi) logits[i] = -Infinity;
    };
    if (st.inImage) {
      if (st.emitted < v.codesPerImage) keep(v.codeOffset, v.size);
      else keep(v.imageEnd, v.imageEnd + 1);
      return;
    }
    if (this.opts.images === 'only') { keep(v.imageStart, v.imageStart + 1); return; }
    for (let i = v.imageEnd; i < logits.length; i++) logits[i] = -Infinity;
    if (this.opts.images === false) logits[v.imageStart] = -Infinity;
  }
}
